"""``mpsim cosim``: generate, build, simulate and check a design against mpsim.

Registered through the ``mpsim.commands`` entry-point group.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mpsim import cli_kit
from mpsim.cli_kit import UserError
from mpsim.extras import require
from mpsim.progress import Activity

if TYPE_CHECKING:
    from hls_gen.emit import ArrayConfig, MultiplierConfig

__all__ = ["register"]


def _flip(text: str) -> tuple[int, int]:
    index, sep, bit = text.partition(":")
    if not sep or not (index.isdecimal() and bit.isdecimal()):
        raise argparse.ArgumentTypeError(f"--flip-expected must be INDEX:BIT such as 0:3, not {text!r}")
    return int(index), int(bit)


def _design(args: argparse.Namespace) -> ArrayConfig | MultiplierConfig | None:
    """The configuration ``--config`` names (a preset, or emit options), or None with ``--manifest``."""
    if args.manifest is not None:
        return None
    from hls_gen.cli import DEFAULT_OUT, parse_config
    from hls_gen.regen import PRESETS

    presets = {c.name: c for c in PRESETS}
    text = args.config.strip()
    if text in presets:
        return presets[text]
    if not text.startswith("-") and len(text.split()) == 1:
        emitted = Path(DEFAULT_OUT) / f"{text}.json"
        hint = f"; to check what mpsim emit wrote: --manifest {emitted}" if emitted.is_file() else ""
        raise UserError(
            f"unknown preset {text!r}: presets are {', '.join(presets)}; "
            f"or give mpsim emit options in quotes, e.g. --config '--mul e4m3 --acc e5m6 --array 2x2'{hint}"
        )
    return parse_config(shlex.split(text))


def cmd_cosim(args: argparse.Namespace) -> int:
    require("hw", "amaranth", "cocotb", "cocotb_tools")
    from sim.runner import BuildError, cosimulate
    from sim.toolchain import SimulatorMissing, check_name, check_simulator
    from sim.vectors import Stimulus

    # Every argument checked before any work: stimulus, simulator, design.
    stimulus = Stimulus(
        seed=args.seed,
        vectors=args.vectors,
        steps=args.steps,
        max_k=args.max_k,
        backpressure=args.backpressure,
        lfsr_seed=args.lfsr_seed,
        flip=args.flip_expected,
    )
    check_name(args.simulator)
    try:
        check_simulator(args.simulator)
    except SimulatorMissing as error:
        raise UserError(str(error)) from None
    config = _design(args)
    out = args.out if config is None else args.out or f"runs/cosim/{config.name}_{args.simulator}"
    log = (lambda _: None) if args.quiet else (lambda line: print(f"[cosim] {line}", file=sys.stderr, flush=True))
    cache = cli_kit.cache_dir("cosim", args.cache_dir)
    resume = cli_kit.command_line() if out is None else cli_kit.command_line(out=out)
    cli_kit.resumable(f"finished builds are kept in {cache} (a stopped build starts again)", resume)
    manifest = args.manifest
    if config is not None:
        from hls_gen.cli import GENERATION
        from hls_gen.emit import emit

        log(f"generate: {config.command(out)}")
        with Activity(GENERATION, prefix="[cosim] ", quiet=args.quiet, show_after_s=3):
            _, manifest = emit(config, Path(out) / config.name, command=config.command(out))
    try:
        report = cosimulate(
            manifest,
            simulator=args.simulator,
            stimulus=stimulus,
            waves=args.waves,
            waves_on_failure=not args.no_waves_on_failure,
            opt=args.opt,
            cache_dir=cache,
            run_dir=out,
            rebuild=args.rebuild,
            log=log,
            progress=not args.quiet,
        )
    except BuildError as error:
        raise UserError(f"{error.summary}; its log: {error.log}") from None
    except SimulatorMissing as error:
        raise UserError(str(error)) from None
    if args.json == "-":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format())
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
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
        "--config",
        metavar="PRESET|OPTIONS",
        help="a preset from rtl/ (e.g. mac_e4m3_e5m6_sr8_1x1; a name that is none lists them) "
        "or `mpsim emit` options in quotes",
    )
    what.add_argument("--manifest", metavar="NAME.json", help="a manifest written by `mpsim emit` (NAME.v beside it)")
    p.add_argument("--simulator", default="verilator", help="verilator (default) or icarus (see mpsim doctor)")
    cli_kit.add_seed(p, "the stimulus (the same seed gives the same vectors)")
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
        help="probability per cycle of holding inp__valid / out__ready low (default: 0)",
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
    cli_kit.add_out(p, "runs/cosim/NAME_SIMULATOR", "run folder: generated design, logs, results, waveform")
    env, folder, _ = cli_kit.CACHES["cosim"]
    cli_kit.add_cache_dir(p, "Verilator/Icarus build", env, folder)
    p.add_argument("--rebuild", action="store_true", help="build again even when the cache holds this configuration")
    cli_kit.add_json(p, "the report")
    p.add_argument(
        "--flip-expected",
        type=_flip,
        default=None,
        metavar="INDEX:BIT",
        help="self-check: flip bit BIT of expected result INDEX; the run must then report that mismatch and fail",
    )
    cli_kit.add_quiet(p)
    p.set_defaults(func=cmd_cosim)
