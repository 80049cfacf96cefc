"""``mpsim cosim``: generate, build, simulate and check a design against mpsim.

Registered through the ``mpsim.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from mpsim.extras import require

__all__ = ["register"]


def _flip(text: str) -> tuple[int, int]:
    index, sep, bit = text.partition(":")
    if not sep or not (index.isdecimal() and bit.isdecimal()):
        raise argparse.ArgumentTypeError(f"--flip-expected must be INDEX:BIT such as 0:3, not {text!r}")
    return int(index), int(bit)


def _manifest_for(args: argparse.Namespace, log) -> Path:  # type: ignore[no-untyped-def]
    """The manifest to check: the one given, or one generated from --config into the run directory."""
    if args.manifest is not None:
        return Path(args.manifest)
    from hls_gen.cli import parse_config
    from hls_gen.emit import emit
    from hls_gen.regen import PRESETS

    presets = {c.name: c for c in PRESETS}
    config = presets.get(args.config.strip()) or parse_config(shlex.split(args.config))
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mpsim-cosim-"))
    log(f"generate: {config.command(str(out_dir / config.name))}")
    _, manifest = emit(config, out_dir / config.name)
    return manifest


def cmd_cosim(args: argparse.Namespace) -> int:
    require("hw", "amaranth", "cocotb", "cocotb_tools")
    from sim.runner import cosimulate
    from sim.vectors import Stimulus

    log = (lambda _: None) if args.quiet else (lambda line: print(f"[cosim] {line}", file=sys.stderr, flush=True))
    stimulus = Stimulus(
        seed=args.seed,
        vectors=args.vectors,
        steps=args.steps,
        max_k=args.max_k,
        backpressure=args.backpressure,
        lfsr_seed=args.lfsr_seed,
        flip=args.flip_expected,
    )
    manifest = _manifest_for(args, log)
    try:
        report = cosimulate(
            manifest,
            simulator=args.simulator,
            stimulus=stimulus,
            waves=args.waves,
            waves_on_failure=not args.no_waves_on_failure,
            opt=args.opt,
            cache_dir=args.cache_dir,
            run_dir=args.out,
            rebuild=args.rebuild,
            log=log,
        )
    except RuntimeError as error:  # a simulator that is missing or fails to build: say so, no traceback
        print(f"mpsim cosim: error: {error}", file=sys.stderr)
        return 2
    print(report.format())
    if args.json:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0 if report.passed else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cosim`` to the ``mpsim`` command (entry point group ``mpsim.commands``)."""
    p = subparsers.add_parser(
        "cosim",
        help="co-simulate generated Verilog (cocotb on Verilator or Icarus) against mpsim, bit for bit",
        description="Generate a design (or take an emitted manifest), build it on Verilator or Icarus Verilog "
        "(cached), drive it with cocotb and compare every result with mpsim bit for bit, stochastic rounding "
        "(LFSR) included. Reports vectors checked, mismatches (bits and decoded values), cycles simulated and "
        "per second, build and run time. Exits 1 on any mismatch.",
        epilog="examples:\n"
        "  mpsim cosim --config mac_e4m3_e5m6_sr8_4x4\n"
        "  mpsim cosim --config '--unit mac --mul e4m3 --acc fp16 --rounding stochastic:8' --steps 50000\n"
        "  mpsim cosim --config '--unit multiplier --mul e4m3 --lanes 64'      # every e4m3 x e4m3 pair\n"
        "  mpsim cosim --manifest rtl/mac_e4m3_e5m6_sr8_1x1.json --simulator icarus --waves",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--config", help="a preset name from rtl/ (e.g. mac_e4m3_e5m6_sr8_4x4) or `mpsim emit` options in quotes"
    )
    what.add_argument("--manifest", help="NAME.json written by `mpsim emit` (NAME.v next to it)")
    p.add_argument("--simulator", default="verilator", help="verilator (default) or icarus")
    p.add_argument(
        "--seed", type=int, default=0, help="stimulus seed; the same seed gives the same vectors (default: 0)"
    )
    p.add_argument(
        "--vectors",
        type=int,
        default=None,
        help="multiplier: operand pairs (default: every pair up to 65,536, else 65,536 random)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=20_000,
        help="MAC unit or array: MAC steps (input beats) to stream (default: 20000)",
    )
    p.add_argument("--max-k", type=int, default=32, help="MAC unit or array: longest reduction K (default: 32)")
    p.add_argument(
        "--backpressure",
        type=float,
        default=0.0,
        help="probability per cycle of holding in_valid / out_ready low (default: 0)",
    )
    p.add_argument(
        "--lfsr-seed",
        type=int,
        default=1,
        help="multiplier with stochastic rounding: seed of the LFSR feeding rand_in (default: 1)",
    )
    p.add_argument(
        "--waves",
        action="store_true",
        help="record a waveform (FST on Verilator, VCD on Icarus); always recorded on failure",
    )
    p.add_argument("--no-waves-on-failure", action="store_true", help="do not rerun a failed check with tracing")
    p.add_argument(
        "--opt",
        default="O1",
        choices=["O0", "O1", "O2", "Os"],
        help="Verilator C++ optimization: O0 builds fastest (default: O1)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="run directory: generated design, logs, results, waveform (default: runs/cosim/NAME_SIM)",
    )
    p.add_argument(
        "--cache-dir", default=None, help="build cache (default: $MPSIM_COSIM_CACHE or ~/.cache/mpsim/cosim)"
    )
    p.add_argument("--rebuild", action="store_true", help="build again even when the cache holds this configuration")
    p.add_argument("--json", default=None, help="also write the report as JSON to this path")
    p.add_argument(
        "--flip-expected",
        type=_flip,
        default=None,
        metavar="INDEX:BIT",
        help="self-check: flip bit BIT of expected result INDEX; the run must then report that mismatch and fail",
    )
    p.add_argument("--quiet", action="store_true", help="print only the report (no per-phase log)")
    p.set_defaults(func=cmd_cosim)
