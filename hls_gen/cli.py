"""``mpsim emit``: write a MAC array's Verilog and manifest (registered through ``mpsim.commands``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hls_gen.emit import ArrayConfig

__all__ = ["register", "config_from_args"]


def _array_size(text: str) -> tuple[int, int]:
    rows, sep, cols = text.lower().partition("x")
    if not sep or not (rows.isdecimal() and cols.isdecimal()):
        raise argparse.ArgumentTypeError(f"array size must be ROWSxCOLS such as 4x4, not {text!r}")
    return int(rows), int(cols)


def _taps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"LFSR taps must be comma-separated integers such as 16,15,13,4, not {text!r}") from None


def config_from_args(args: argparse.Namespace) -> "ArrayConfig":
    """The :class:`~hls_gen.emit.ArrayConfig` an ``mpsim emit`` command line asks for."""
    from hls_gen.emit import ArrayConfig  # Amaranth is imported only when a design is generated

    operands = [f.strip() for f in args.mul.split(",")]
    if len(operands) not in (1, 2) or not all(operands):
        raise ValueError(f"--mul must be one format or two separated by a comma (A,B), not {args.mul!r}")
    rows, cols = args.array
    return ArrayConfig(
        a_format=operands[0], b_format=operands[1] if len(operands) == 2 else None, acc_format=args.acc,
        product_format=args.product, rounding=args.rounding, product_rounding=args.product_rounding,
        rows=rows, cols=cols, pipeline=args.pipeline,
        lfsr_width=args.lfsr_width, lfsr_seed=args.seed, lfsr_taps=args.lfsr_taps,
    )  # fmt: skip


def cmd_emit(args: argparse.Namespace) -> int:
    from hls_gen.emit import emit

    config = config_from_args(args)
    out = args.out or config.name
    v_path, j_path = emit(config, out)
    print(f"wrote {v_path} and {j_path}")
    return 0


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``emit`` to the ``mpsim`` command (entry point group ``mpsim.commands``)."""
    p = subparsers.add_parser(
        "emit",
        help="write Verilog and a JSON manifest for a MAC array",
        description="Generate synthesizable Verilog for an R x C output-stationary MAC array (Amaranth) in the "
        "given formats and roundings, bit-exact with mpsim.qmatmul, plus a JSON manifest with the ports, formats, "
        "latency and random stream. Writes OUT.v and OUT.json.",
    )
    p.add_argument("--mul", required=True, help="multiplier operand format, or two as A,B (e.g. e4m3 or e4m3,e5m2)")
    p.add_argument("--acc", required=True, help="accumulator format (e.g. e5m6, fp16, bf16, e6m9, fp32)")
    p.add_argument("--rounding", default="nearest", help="accumulation rounding: nearest or stochastic:K (default: nearest)")
    p.add_argument("--product", default=None, help="round each product to this format first (unfused MAC; default: fused, exact products)")
    p.add_argument("--product-rounding", default="nearest", help="product rounding: nearest or stochastic:K (default: nearest)")
    p.add_argument("--array", type=_array_size, default=(1, 1), help="ROWSxCOLS processing elements (default: 1x1)")
    p.add_argument("--pipeline", type=int, default=1, help="pipeline registers before the accumulator, 0..2 (default: 1)")
    p.add_argument("--lfsr-width", type=int, default=32, help="LFSR width, 3..32 (default: 32)")
    p.add_argument("--seed", type=int, default=1, help="LFSR seed of the array's random stream (default: 1)")
    p.add_argument("--lfsr-taps", type=_taps, default=None, help="LFSR taps, comma-separated (default: mpsim's table)")
    p.add_argument("--out", default=None, help="output path without extension; the file name is the module name (default: ./NAME from the parameters)")
    p.set_defaults(func=cmd_emit)
