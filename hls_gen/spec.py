"""What the hardware generator can build, checked at generation time.

Every component takes its formats and roundings as mpsim specs (or strings
for :func:`mpsim.parse_format` / :func:`mpsim.parse_rounding`) and checks
them here, at once, so that a configuration that cannot be built fails with
a clear message before any logic is elaborated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.randbits import LFSR_TAPS, LFSRSpec
from mpsim.rounding import Rounding, RoundingMode, parse_rounding

__all__ = [
    "BUFFER_STAGES",
    "LOOP_CUTS",
    "LOOP_DEPTH",
    "MAX_ARRAY_SIDE",
    "MAX_INTERLEAVE",
    "MAX_OPERAND_BITS",
    "MAX_PIPELINE",
    "array_latency",
    "check_int",
    "check_nan_capable",
    "checking",
    "described",
    "float_format",
    "guard_bits",
    "hw_rounding",
    "lfsr_spec",
    "operand_format",
    "rounding_string",
    "rounding_token",
    "shared_adder_bits",
]

_C = TypeVar("_C")

#: Widest multiplier operand (bits, sign included): FP4..FP16 and bf16. The
#: exact product of two such operands has at most 22 significand bits.
MAX_OPERAND_BITS = 16
#: Largest number of processing elements along a side of a MAC array.
MAX_ARRAY_SIDE = 64
#: Registers between each PE of an array and its place in the output buffer. The buffer lies by the output
#: multiplexer, up to the width of the device from its PE on an 8 x 8 array; the registers are there to split
#: that way (nextpnr kept both by the PE at stop 29: docs/hardware.md, "The output buffer's distance").
BUFFER_STAGES = 2


def array_latency(rows: int, cols: int, interleave: int, pipeline: int) -> int:
    """Cycles from accepting a job's last beat to the output's ``valid`` (:attr:`hls_gen.array.MACArray.latency`).

    ``pipeline + interleave + rows + cols - 1 + BUFFER_STAGES``: the ``interleave`` flush steps follow the last
    beat, the last of them crosses ``rows - 1 + cols - 1`` PEs and the PE's ``pipeline`` registers, then its
    :data:`BUFFER_STAGES` load registers, and the buffer takes it a cycle later.
    """
    return pipeline + interleave + rows + cols - 1 + BUFFER_STAGES


#: Pipeline registers a MAC can insert before its accumulator (see :class:`hls_gen.mac.MAC`).
MAX_PIPELINE = 2

#: Where the accumulate loop of :func:`hls_gen.accumulator.accumulate` is cut into registers, by interleave L
#: (at most 7 cuts of logic; a longer loop adds plain delay registers after the rounding). The cuts: after unpacking
#: the sum so far, after ordering the operands by magnitude, after the alignment, after the add, after the
#: normalization, after shifting it onto the format's grid, and between deciding the rounding and encoding it.
LOOP_CUTS: dict[int, tuple[str, ...]] = {
    1: (),
    2: ("add",),
    3: ("align", "normalize"),
    4: ("align", "add", "normalize"),
    5: ("align", "add", "normalize", "round"),
    6: ("unpack", "align", "add", "normalize", "round"),
    7: ("unpack", "order", "align", "add", "normalize", "round"),
    8: ("unpack", "order", "align", "add", "normalize", "place", "round"),
}
#: The largest interleave the generators build (a ring of this many sums per PE).
MAX_INTERLEAVE = 16


def loop_latency(pipeline: int, interleave: int) -> int:
    """Enabled cycles from accepting a step marked ``last`` to ``done``: the ``pipeline`` registers before the
    accumulate loop, its entry, and the registers that cut it at ``interleave`` (:data:`LOOP_CUTS`)."""
    return pipeline + 1 + len(LOOP_CUTS[min(interleave, len(LOOP_CUTS))])


#: The accumulate loop's depth cut everywhere :data:`LOOP_CUTS` allows: the interleave at which each of its logic
#: stages has a register of its own (``--interleave auto``). Fewer sums merge stages (a slower clock); more add
#: only delay registers (the same clock, taller tiles).
LOOP_DEPTH = max(LOOP_CUTS)


@contextmanager
def checking(component: object) -> Iterator[None]:
    """Around a component's parameter checks: a component whose constructor raised is not "unused".

    Amaranth warns about elaboratables that are created and never elaborated;
    one whose configuration was refused should only raise its error.
    """
    try:
        yield
    except Exception:
        described(component)
        raise


def described(component: _C) -> _C:
    """``component`` marked as a description only, read for its parameters or built to check them.

    Amaranth warns about elaboratables that are created and never elaborated;
    a description is never meant to be.
    """
    # The one place that sets Amaranth's private per-object switch (amaranth._unused.MustUse). Amaranth 0.5 has
    # no public way to mark one object: its public switches are a "# amaranth: UnusedElaboratable=no" first
    # line, which silences every elaboratable constructed in that source file (here also the designs a user
    # builds and may forget to elaborate), and filtering the UnusedElaboratable warning, which cannot be
    # scoped, since the warning is raised from __del__ whenever the object is collected.
    component._MustUse__silence = True  # type: ignore[attr-defined]
    return component


def check_int(value: object, what: str, lo: int, hi: int) -> int:
    """An integer in ``lo..hi``, or TypeError/ValueError in Amaranth's message shape."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be {lo}..{hi}, not {value!r}")
    return value


def float_format(value: str | FloatFormat | FixedFormat, what: str) -> FloatFormat:
    """A floating-point format the datapath can handle (any mpsim float format)."""
    if not isinstance(value, (str, FloatFormat, FixedFormat)):
        raise TypeError(f"{what} must be a format string or an mpsim format, not {value!r}")
    fmt = parse_format(value)
    if isinstance(fmt, FixedFormat):
        raise ValueError(
            f"{what} must be a floating-point format, not fixed-point {fmt}: "
            "the hardware generator has no fixed-point datapath"
        )
    return fmt


def operand_format(value: str | FloatFormat | FixedFormat, what: str) -> FloatFormat:
    """A multiplier operand format: floating point, at most :data:`MAX_OPERAND_BITS` bits."""
    fmt = float_format(value, what)
    if fmt.bits > MAX_OPERAND_BITS:
        raise ValueError(
            f"{what} must be at most {MAX_OPERAND_BITS} bits wide, not {fmt} ({fmt.bits} bits): "
            "the multiplier supports FP4..FP16/bf16 operands"
        )
    return fmt


def hw_rounding(value: str | Rounding, what: str, lfsr_width: int | None = None) -> int | None:
    """Random bits ``k`` of a hardware rounding: None for nearest-even, ``k`` for ``stochastic:k``.

    The hardware rounds to nearest (ties to even) or stochastically with a
    finite number of random bits from the LFSR, at most the LFSR's width.
    """
    if not isinstance(value, (str, Rounding, RoundingMode)):
        raise TypeError(f"{what} must be a rounding string or an mpsim Rounding, not {value!r}")
    rule = parse_rounding(value)
    if rule.mode is RoundingMode.NEAREST:
        return None
    if rule.mode is not RoundingMode.STOCHASTIC:
        raise ValueError(
            f"{what} must be 'nearest' or 'stochastic:K', not {str(rule)!r}: the hardware implements only these"
        )
    if rule.rand_bits is None:
        raise ValueError(
            f"{what} must give its random bits, 'stochastic:K', not exact 'stochastic': "
            "the LFSR hands out K bits per rounding"
        )
    if lfsr_width is not None and rule.rand_bits > lfsr_width:
        raise ValueError(f"{what} takes {rule.rand_bits} random bits, more than the {lfsr_width}-bit LFSR holds")
    return rule.rand_bits


def rounding_token(rand_bits: int | None) -> str:
    """``rne`` or ``srK``: how names and manifests spell a hardware rounding."""
    return "rne" if rand_bits is None else f"sr{rand_bits}"


def rounding_string(rand_bits: int | None) -> str:
    """The mpsim rounding string of a hardware rounding."""
    return "nearest" if rand_bits is None else f"stochastic:{rand_bits}"


def lfsr_spec(width: object, seed: object, taps: object = None) -> LFSRSpec:
    """An :class:`mpsim.randbits.LFSRSpec`, its errors in this module's shape."""
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"LFSR width must be an integer, not {width!r}")
    if taps is None and width not in LFSR_TAPS:
        raise ValueError(f"LFSR width must be {min(LFSR_TAPS)}..{max(LFSR_TAPS)}, not {width!r}")
    if taps is not None:
        taps = tuple(taps)  # type: ignore[arg-type]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"LFSR seed must be an integer, not {seed!r}")
    return LFSRSpec(width=width, seed=seed, taps=taps)  # range errors are mpsim's ValueErrors


def check_nan_capable(result: FloatFormat, what: str, operands: tuple[FloatFormat, ...]) -> None:
    """A result format must encode NaN when the operands can bring NaN or Inf (Inf - Inf, 0 x Inf)."""
    if result.has_nan:
        return
    special = [str(f) for f in operands if f.has_nan or f.has_inf]
    if special:
        raise ValueError(
            f"{what} {result} has no NaN, but operand format {special[0]} brings NaN or Inf; "
            "use a format with NaN or finite operand formats"
        )


def guard_bits(rand_bits: int | None) -> int:
    """Guard bits of the exact adder: ``k + 2`` (``k = 1`` for nearest); see :func:`hls_gen.arith.add_exact`."""
    return (1 if rand_bits is None else rand_bits) + 2


def shared_adder_bits(modes: Sequence[tuple[FloatFormat, int | None]], term_bits: Sequence[int]) -> tuple[int, int]:
    """(significand bits, guard bits) of the adder several modes share (``modes``: accumulator format and random
    bits of each, ``term_bits``: the significand bits its terms fill).

    Every mode's significands are left-aligned in the shared ones with zeros below, so the adder is as wide as
    the most bits one mode fills, and a mode that fills fewer has the zeros below its own as guard bits: the
    guard is what the neediest mode lacks beyond them. The window is ``significand + guard + 1`` bits
    (:func:`hls_gen.arith.add_exact`).
    """
    filled = [max(f.man_bits + 1, t) for (f, _), t in zip(modes, term_bits)]
    width = max(filled)
    return width, max(guard_bits(k) - (width - n) for (_, k), n in zip(modes, filled))
