"""``mpsim emit``: write a design's Verilog and manifest (registered through ``mpsim.commands``).

Units: ``array`` (an R x C MAC array), ``mac`` (one MAC unit: the 1 x 1
array, the same ports as every array) and ``multiplier`` (``--lanes``
combinational multipliers side by side, exact or rounded products).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from hls_gen.array_size import DSP_BLOCKS, interleave_arg, parse_array_size
from mpsim import cli_kit
from mpsim.cli_kit import UserError
from mpsim.extras import require
from mpsim.mx import is_mx_spec
from mpsim.progress import Activity

if TYPE_CHECKING:
    from hls_gen.emit import ArrayConfig, MultiplierConfig

__all__ = [
    "UNITS",
    "add_design_arguments",
    "array_size",
    "config_from_args",
    "parse_config",
    "parse_precision_name",
    "refuse_format_options",
    "register",
]

#: The units ``mpsim emit --unit`` writes.
UNITS = ("array", "mac", "multiplier")


def array_size(text: str) -> tuple[int, int]:
    """``ROWSxCOLS`` as (rows, cols), both at least 1 (``--array`` of emit and cost)."""
    try:
        return parse_array_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _taps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"LFSR taps must be comma-separated integers such as 16,15,13,4, not {text!r}"
        ) from None


def parse_precision_name(spec: str) -> None:
    """Refuse a precision that is neither a preset nor a readable precision file (one line naming it)."""
    from mpsim.precision import parse_precision

    try:
        parse_precision(spec)
    except (OSError, ValueError) as error:
        raise ValueError(f"--precision {spec}: {error}") from None


def refuse_format_options(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """With ``--precision``, none of the single-arithmetic options ``names`` may be given (a line naming one)."""
    given = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in names if getattr(args, n) is not None]
    if given:
        raise ValueError(f"--precision names the modes' formats and roundings; drop {given[0]}")


def config_from_args(args: argparse.Namespace) -> ArrayConfig | MultiplierConfig:
    """The configuration an ``mpsim emit`` command line asks for.

    An :class:`~hls_gen.emit.ArrayConfig` or a :class:`~hls_gen.emit.MultiplierConfig`.
    """
    from hls_gen.emit import ArrayConfig, MultiplierConfig  # Amaranth is imported only when a design is generated

    unit = getattr(args, "unit", "array")
    precisions = tuple(getattr(args, "precision", None) or ())
    geometry = dict(
        rows=args.array[0],
        cols=args.array[1],
        pipeline=args.pipeline,
        interleave=args.interleave,
        dsp=args.dsp,
        lfsr_width=args.lfsr_width,
        lfsr_seed=args.lfsr_seed,
        lfsr_taps=args.lfsr_taps,
    )
    if precisions:
        refuse_format_options(args, ("mul", "acc", "rounding", "product", "product_rounding"))
        if unit == "multiplier":
            raise ValueError("--precision is for a MAC or an array, not --unit multiplier")
        if args.lanes != 1:
            raise ValueError(f"--lanes is for --unit multiplier, not --unit {unit} (use --array ROWSxCOLS)")
        if len(set(precisions)) != len(precisions):
            raise ValueError(f"--precision {next(p for p in precisions if precisions.count(p) > 1)} is given twice")
        for spec in precisions:
            parse_precision_name(spec)
        _check_mac_size(unit, args.array)
        return ArrayConfig(precisions=precisions, **geometry)  # type: ignore[arg-type]
    if args.mul is None:
        raise ValueError("--mul (the operand formats) or --precision (modes of training precisions) is required")
    rounding = args.rounding or "nearest"
    product_rounding = args.product_rounding or "nearest"
    operands = [f.strip() for f in args.mul.split(",")]
    if len(operands) not in (1, 2) or not all(operands):
        raise ValueError(f"--mul must be one format or two separated by a comma (A,B), not {args.mul!r}")
    mx = [f for f in operands if is_mx_spec(f)]
    if unit == "multiplier":
        if mx:
            raise ValueError(
                f"--unit multiplier multiplies element formats, not MX format {mx[0]}; an MX design is --unit array "
                "or mac (its PEs take a block's elements and scales)"
            )
        if args.dsp != "inferred":
            raise ValueError("--dsp is for a MAC or an array (its PEs' multipliers), not --unit multiplier")
        if args.acc is not None:
            raise ValueError(f"--acc is for a MAC or an array; a multiplier has no accumulator, not --acc {args.acc}")
        return MultiplierConfig(
            a_format=operands[0],
            b_format=operands[1] if len(operands) == 2 else None,
            out_format=args.product,
            rounding=product_rounding,
            lanes=args.lanes,
        )
    if args.acc is None:
        raise ValueError(f"--acc is required for --unit {unit}")
    if args.lanes != 1:
        raise ValueError(f"--lanes is for --unit multiplier, not --unit {unit} (use --array ROWSxCOLS)")
    _check_mac_size(unit, args.array)
    return ArrayConfig(
        a_format=operands[0],
        b_format=operands[1] if len(operands) == 2 else None,
        acc_format=args.acc,
        product_format=args.product,
        rounding=rounding,
        product_rounding=product_rounding,
        **geometry,  # type: ignore[arg-type]
    )


def _check_mac_size(unit: str, size: tuple[int, int]) -> None:
    if unit == "mac" and tuple(size) != (1, 1):
        raise ValueError(f"a MAC unit is the 1x1 array, not --array {size[0]}x{size[1]}; use --unit array")


#: How progress lines name the step from configuration to Verilog.
GENERATION = "Verilog generation (Amaranth)"

#: Where ``mpsim emit`` writes without ``--out``.
DEFAULT_OUT = "runs/emit"


def cmd_emit(args: argparse.Namespace) -> int:
    require("hw", "amaranth")
    from hls_gen.emit import emit

    config = config_from_args(args)
    out = args.out or DEFAULT_OUT
    with Activity(GENERATION, prefix="[emit] ", quiet=args.quiet, show_after_s=3):  # an 8x8 array takes seconds
        v_path, j_path = emit(config, Path(out) / config.name, command=config.command(args.out))
    print(f"wrote {v_path} and {j_path}")
    return 0


class _OptionsParser(argparse.ArgumentParser):
    """An argparse parser whose errors are ``ValueError`` (it parses options given inside another option)."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def parse_config(argv: list[str]) -> ArrayConfig | MultiplierConfig:
    """The configuration ``mpsim emit ARGV`` would write (``--out`` is ignored); ``ValueError`` on bad arguments."""
    parser = _OptionsParser(prog="mpsim emit", add_help=False, exit_on_error=False)
    add_design_arguments(parser)
    parser.add_argument("--out", default=None)
    try:
        args = parser.parse_args(argv)
    except (argparse.ArgumentError, ValueError) as error:
        raise UserError(f"bad mpsim emit options {' '.join(argv)!r}: {error}") from None
    return config_from_args(args)


def add_design_arguments(p: argparse.ArgumentParser) -> None:
    """The options that describe a design (``--unit``, formats, roundings, sizes, LFSR)."""
    p.add_argument(
        "--unit",
        choices=UNITS,
        default="array",
        help="what to generate: array (R x C MACs), mac (one MAC unit: the 1x1 array) or multiplier (default: array)",
    )
    p.add_argument("--mul", default=None, help="multiplier operand format, or two as A,B (e.g. e4m3 or e4m3,e5m2)")
    p.add_argument(
        "--acc", default=None, help="accumulator format (e.g. e5m6, fp16, bf16, e6m9, fp32); required for mac and array"
    )
    p.add_argument("--rounding", default=None, help="accumulation rounding: nearest or stochastic:K (default: nearest)")
    p.add_argument(
        "--product",
        default=None,
        help="round each product to this format first (unfused MAC, or a rounded multiplier; default: exact products)",
    )
    p.add_argument(
        "--product-rounding", default=None, help="product rounding: nearest or stochastic:K (default: nearest)"
    )
    p.add_argument(
        "--precision",
        action="append",
        default=None,
        metavar="NAME",
        help="instead of --mul/--acc/--rounding: a training precision (a preset such as e4m3-sr or bf16, or a "
        "precision .json/.yaml file); repeat it for more. The array executes every GEMM a training step of each "
        "needs (forward, input and weight gradient), one mode per distinct arithmetic, chosen per job by the input "
        "payload's mode. An MX preset (mxfp8, mxfp8-sr, mxfp6) makes an MX array of MX modes; an array's modes "
        "are all MX or all element-wise, and mxfp4 (stochastically rounded elements) is refused",
    )
    p.add_argument(
        "--lanes", type=int, default=1, help="multipliers side by side (--unit multiplier only), 1..1024 (default: 1)"
    )
    p.add_argument(
        "--array", type=array_size, default=(1, 1), metavar="ROWSxCOLS", help="processing elements (default: 1x1)"
    )
    p.add_argument(
        "--pipeline",
        type=int,
        default=1,
        help="pipeline registers before the accumulator, 0..2, 0..6 for an MX array (default: 1)",
    )
    p.add_argument(
        "--interleave",
        type=interleave_arg,
        default=1,
        help="sums each PE holds in turn, 1..16: its accumulate loop cut into up to 8 register stages for the clock "
        "(8: about 100 MHz on ECP5); a job's tile has ROWS x INTERLEAVE rows; auto: the loop's depth, 8, one "
        "register per stage (default: 1, one-cycle loop)",
    )
    p.add_argument(
        "--dsp",
        choices=DSP_BLOCKS,
        default="inferred",
        help="how the PEs multiply significands: inferred (a * b, mapped by the synthesis tool) or ecp5 (a MULT18X18D "
        "instantiated with its input and output registers, which need --pipeline 2; its simulation model is "
        "appended to the Verilog under `ifndef SYNTHESIS) (default: inferred)",
    )
    p.add_argument("--lfsr-width", type=int, default=32, help="LFSR width, 3..32 (default: 32)")
    p.add_argument(
        "--lfsr-seed", type=int, default=1, metavar="N", help="LFSR seed of the array's random stream (default: 1)"
    )
    p.add_argument("--lfsr-taps", type=_taps, default=None, help="LFSR taps, comma-separated (default: mpsim's table)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``emit`` to the ``mpsim`` command (entry point group ``mpsim.commands``)."""
    p = subparsers.add_parser(
        "emit",
        help="write Verilog and a JSON manifest for a MAC array, a MAC unit or a multiplier",
        description="Generate synthesizable Verilog (Amaranth) for an R x C output-stationary MAC array, a MAC unit "
        "(the 1x1 array) or a multiplier top in the given formats and roundings, bit-exact with mpsim, plus a JSON "
        "manifest with the ports, formats, latency and random stream. Writes DIR/NAME.v and DIR/NAME.json, NAME "
        "(also the Verilog module's name) from the parameters, e.g. mac_e4m3_e5m6_sr8_2x2.",
        epilog="examples:\n  mpsim emit --mul e4m3 --acc e5m6 --rounding stochastic:8 --array 2x2\n"
        "  mpsim emit --precision e4m3-sr --precision bf16 --array 8x8 --interleave 8\n"
        "  mpsim emit --unit multiplier --mul e4m3,e5m2 --lanes 16 --out my_designs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_design_arguments(p)
    cli_kit.add_out(p, DEFAULT_OUT, "folder for NAME.v and NAME.json")
    cli_kit.add_quiet(p)
    p.set_defaults(func=cmd_emit)
