"""How much of a design's LUT4 count is the tools' own scatter: the same circuit under other names, resynthesized.

    nice -n 19 python benchmarks/lut_scatter.py [--outliers 8] [--others 8] [--seeds 1,2] [--max-pes 2]
                                                [--log results/hw/surrogate/lut_scatter.jsonl]

The cost surrogate predicts LUT4 within 10 % for most held-out designs, not all
(``python -m hls_gen.cost_surrogate --evaluate``). Yosys and ABC map a circuit
by heuristics whose result depends on the order they meet its wires and cells
in, so a design's LUT4 count is one draw of that order. Here each design is
synthesized as the cache measured it and again after ``rename -scramble-name
-seed S`` (:func:`hls_gen.synth.yosys_script`): the same circuit, its names
(and so the passes' order) changed. The spread of those counts is what no
model of the configuration can predict.

Designs: the ``--outliers`` with the largest leave-one-out LUT4 error of the
committed evaluation (``results/hw/surrogate/surrogate.csv``) and ``--others``
drawn (seed 0) from the rest, arrays of at most ``--max-pes`` PEs (Yosys only,
20-90 s each). One JSON line per synthesis goes to ``--log``; a rerun skips
what it holds. Prints the table with the surrogate's error beside the tools'
own, and writes ``--out``/lut_scatter.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench_kit import md_table
from tqdm import tqdm

from hls_gen.cost_surrogate import config_from_dict
from hls_gen.emit import ArrayConfig, emit
from hls_gen.synth import SynthOptions, synthesize_verilog

SURROGATE = Path("results/hw/surrogate")


def _designs(reports: Path, loo: Path, outliers: int, others: int, max_pes: int) -> list[tuple[ArrayConfig, float]]:
    """(configuration, its leave-one-out LUT4 error) of the worst ``outliers`` and ``others`` drawn from the rest."""
    errors = {
        row["name"]: float(row["luts_predicted"]) / float(row["luts"]) - 1
        for row in csv.DictReader(loo.open())
        if float(row["luts"]) > 0
    }
    configs = {}
    for line in reports.open():
        config = config_from_dict(json.loads(line)["config"])
        if config.name in errors and config.rows * config.cols <= max_pes:
            configs[config.name] = config
    ranked = sorted(configs, key=lambda name: (-abs(errors[name]), name))
    rest = sorted(ranked[outliers:])
    chosen = ranked[:outliers] + random.Random(0).sample(rest, min(others, len(rest)))
    return [(configs[name], errors[name]) for name in chosen]


def _synthesize(config: ArrayConfig, seed: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mpsim-scatter-") as tmp:
        verilog, _ = emit(config, Path(tmp) / config.name, command=config.command())
        fields = synthesize_verilog(
            verilog,
            verilog.stem,
            SynthOptions(pnr=False, timeout_s=1800),
            workdir=Path(tmp) / "work",
            scramble_seed=seed,
        )
    return {"luts": fields["luts"], "ffs": fields["ffs"], "carry": fields["carry"], "seconds": fields["synth_seconds"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outliers", type=int, default=8, help="designs of largest surrogate error (default: 8)")
    parser.add_argument("--others", type=int, default=8, help="designs drawn from the rest (default: 8)")
    parser.add_argument("--seeds", default="1,2", help="scramble seeds, each a synthesis per design (default: 1,2)")
    parser.add_argument("--max-pes", type=int, default=2, help="arrays of at most this many PEs (default: 2)")
    parser.add_argument("--reports", default=str(SURROGATE / "reports.jsonl"), help="the surrogate's reports")
    parser.add_argument("--loo", default=str(SURROGATE / "surrogate.csv"), help="its leave-one-out predictions")
    parser.add_argument("--log", default=str(SURROGATE / "lut_scatter.jsonl"), help="one JSON line per synthesis")
    parser.add_argument("--out", default=str(SURROGATE), help="folder of lut_scatter.md and .json")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if any(s <= 0 for s in seeds):
        parser.error(f"--seeds must be positive integers (Yosys refuses 0), not {args.seeds!r}")
    designs = _designs(Path(args.reports), Path(args.loo), args.outliers, args.others, args.max_pes)
    log = Path(args.log)
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            done[entry["design"], entry["seed"]] = entry
    todo = [(c, s) for c, _ in designs for s in [0, *seeds] if (c.name, s) not in done]
    for config, seed in tqdm(todo, desc="Yosys runs", unit="run"):
        entry = {"design": config.name, "seed": seed, **_synthesize(config, seed or None)}
        done[config.name, seed] = entry
        with log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    rows, table = [], []
    finished = [(c, e) for c, e in designs if all((c.name, s) in done for s in [0, *seeds])]
    for config, error in finished:
        base = done[config.name, 0]["luts"]
        scrambled = [done[config.name, s]["luts"] for s in seeds]
        spread = max(abs(n / base - 1) for n in scrambled)
        group = "outlier" if designs.index((config, error)) < args.outliers else "other"
        rows.append({"design": config.name, "group": group, "luts": base, "scrambled": scrambled})
        rows[-1] |= {"tool_spread": spread, "surrogate_error": error}
        cells = [config.name, group, f"{base:,}", ", ".join(f"{n:,} ({n / base - 1:+.1%})" for n in scrambled)]
        table.append([*cells, f"{spread:.1%}", f"{error:+.1%}"])
    headers = ["design", "chosen as", "LUT4", "scrambled (seeds " + args.seeds + ")", "tool spread", "surrogate"]
    summary = []
    for group in ("outlier", "other"):
        spreads = [r["tool_spread"] for r in rows if r["group"] == group]
        errors = [abs(r["surrogate_error"]) for r in rows if r["group"] == group]
        if spreads:
            summary.append(
                f"{group}s ({len(spreads)}): tool spread median {statistics.median(spreads):.1%}, max "
                f"{max(spreads):.1%}; surrogate |error| median {statistics.median(errors):.1%}, max {max(errors):.1%}"
            )
    if len(finished) < len(designs):
        summary.append(f"{len(designs) - len(finished)} designs not yet synthesized: rerun to finish")
    text = md_table(headers, table) + "\n\n" + "\n".join(summary) + "\n"
    print(text)
    out = Path(args.out)
    (out / "lut_scatter.md").write_text(text)
    (out / "lut_scatter.json").write_text(json.dumps({"seeds": seeds, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
