"""How much of a design's LUT4 count is the tools' own scatter: the same circuit under other names, resynthesized.

    nice -n 19 python benchmarks/lut_scatter.py [--outliers 8] [--others 8] [--seeds 1,2] [--max-pes 2] [--cache DIR]

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
3-15 s each for these). Every synthesis goes into the cache
(``SynthOptions.scramble_seed`` is part of its key), so a rerun skips what it
holds and the cost surrogate learns each design's LUT4 as the median of its
draws. Prints the table with the surrogate's error (against the synthesis as
written and against the median of the draws) beside the tools' own, and writes ``--out``/lut_scatter.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
from pathlib import Path

from bench_kit import md_table
from tqdm import tqdm

from hls_gen.cost_surrogate import config_from_dict
from hls_gen.emit import ArrayConfig
from hls_gen.synth import SynthCache, SynthOptions, synthesize

SURROGATE = Path("results/hw/surrogate")


def _designs(reports: Path, loo: Path, outliers: int, others: int, max_pes: int) -> list[tuple[ArrayConfig, float]]:
    """(configuration, its leave-one-out LUT4 prediction) of the ``outliers`` furthest from their synthesis as
    written and ``others`` drawn from the rest."""
    predicted, written = {}, {}
    for row in csv.DictReader(loo.open()):
        if row["luts_predicted"]:
            predicted[row["name"]] = float(row["luts_predicted"])
            written[row["name"]] = float(row.get("luts_as_written") or row["luts"])
    configs = {}
    for line in reports.open():
        config = config_from_dict(json.loads(line)["config"])
        if config.name in predicted and config.rows * config.cols <= max_pes:
            configs[config.name] = config
    ranked = sorted(configs, key=lambda name: (-abs(predicted[name] / written[name] - 1), name))
    rest = sorted(ranked[outliers:])
    chosen = ranked[:outliers] + random.Random(0).sample(rest, min(others, len(rest)))
    return [(configs[name], predicted[name]) for name in chosen]


def _luts(config: ArrayConfig, seed: int, cache: SynthCache) -> int:
    """LUT4 of ``config`` synthesized (Yosys only) under names scrambled with ``seed`` (0: as written), cached."""
    return synthesize(config, SynthOptions(pnr=False, timeout_s=1800, scramble_seed=seed or None), cache=cache).luts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outliers", type=int, default=8, help="designs of largest surrogate error (default: 8)")
    parser.add_argument("--others", type=int, default=8, help="designs drawn from the rest (default: 8)")
    parser.add_argument("--seeds", default="1,2", help="scramble seeds, each a synthesis per design (default: 1,2)")
    parser.add_argument("--max-pes", type=int, default=2, help="arrays of at most this many PEs (default: 2)")
    parser.add_argument("--reports", default=str(SURROGATE / "reports.jsonl"), help="the surrogate's reports")
    parser.add_argument("--loo", default=str(SURROGATE / "surrogate.csv"), help="its leave-one-out predictions")
    parser.add_argument("--cache", default=None, help="synthesis cache folder (default: ~/.cache/mpsim/synth)")
    parser.add_argument("--out", default=str(SURROGATE), help="folder of lut_scatter.md and .json")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s <= 0 for s in seeds):
        parser.error(f"--seeds must be positive integers (Yosys refuses 0), not {args.seeds!r}")
    designs = _designs(Path(args.reports), Path(args.loo), args.outliers, args.others, args.max_pes)
    cache = SynthCache(args.cache)
    done = {}
    runs = [(c, s) for c, _ in designs for s in [0, *seeds]]
    for config, seed in tqdm(runs, desc="Yosys runs (cached ones at once)", unit="run"):
        done[config.name, seed] = _luts(config, seed, cache)
    rows, table = [], []
    for number, (config, predicted) in enumerate(designs):
        base = done[config.name, 0]
        scrambled = [done[config.name, s] for s in seeds]
        median = statistics.median([base, *scrambled])
        row = {"design": config.name, "group": "outlier" if number < args.outliers else "other", "luts": base}
        row |= {"scrambled": scrambled, "tool_spread": max(abs(n / base - 1) for n in scrambled)}
        row |= {"predicted": predicted, "vs_written": predicted / base - 1, "vs_median": predicted / median - 1}
        rows.append(row)
        draws = ", ".join(f"{n:,} ({n / base - 1:+.1%})" for n in scrambled)
        cells = [config.name, row["group"], f"{base:,}", draws, f"{row['tool_spread']:.1%}", f"{predicted:,.0f}"]
        table.append([*cells, f"{row['vs_written']:+.1%}", f"{row['vs_median']:+.1%}"])
    headers = ["design", "chosen as", "LUT4", f"scrambled (seeds {args.seeds})", "tool spread", "surrogate"]
    headers += ["vs as written", "vs median of draws"]
    summary = []
    for group in ("outlier", "other"):
        chosen = [r for r in rows if r["group"] == group]
        if chosen:
            spreads = [r["tool_spread"] for r in chosen]
            line = [f"{group}s ({len(chosen)}): tool spread median {statistics.median(spreads):.1%}"]
            line.append(f"max {max(spreads):.1%}")
            for key, what in (("vs_written", "as written"), ("vs_median", "median of draws")):
                errors = [abs(r[key]) for r in chosen]
                within = sum(e <= 0.10 for e in errors) / len(errors)
                line.append(
                    f"surrogate vs {what}: median {statistics.median(errors):.1%}, max {max(errors):.1%}, "
                    f"{within:.0%} within 10%"
                )
            summary.append("; ".join(line))
    text = md_table(headers, table) + "\n\n" + "\n".join(summary) + "\n"
    print(text)
    out = Path(args.out)
    (out / "lut_scatter.md").write_text(text)
    (out / "lut_scatter.json").write_text(json.dumps({"seeds": seeds, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
