"""A sum normalized and shifted onto a format's grid as one shift, prepared a stage ahead and split over two.

The adder's window ``v`` (``W`` bits, the top one worth ``2**(big_exp + 1)``)
normalizes to ``v << lz`` with exponent ``big_exp + 1 - lz`` (``lz`` its
leading zeros); a result below the format's smallest normal (*small*:
``lz > big_exp + 1 - emin``) then shifts right onto the grid by
``grid_floor - exponent``. Together that is one shift of ``v`` to the left by

* ``lz`` when the result is not small,
* ``big_exp + 1 - grid_floor`` when it is (``lz`` cancels out),

so nothing has to wait for a shifted significand: the count and the choice
of shift are one stage (:func:`plan`), the shift itself the next
(:func:`place_counted`), and what depends only on the larger operand's
exponent is computed while the adder adds (:func:`headroom`). The result
is the :class:`~hls_gen.arith.OnGrid` that :func:`hls_gen.arith.round_place`
gives for the normalized sum, bit for bit; :func:`hls_gen.arith.round_decide`
and :func:`hls_gen.arith.round_encode` follow as before.

The shift is a right shift by ``u = T - left`` of the window placed ``T``
bits up (``T = 2**n - 1 >= W``): ``T - lz`` is ``lz`` inverted, and ``T -
(big_exp + 1 - grid_floor)`` comes saturated from the add stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value

from hls_gen.arith import OnGrid, SumFlags, Summed, grid_floor, grid_layout, leading_zeros, select_value
from mpsim.formats import FloatFormat

__all__ = [
    "Counted",
    "Grid",
    "Headroom",
    "ShiftPlan",
    "count",
    "headroom",
    "place_counted",
    "plan",
    "select_headroom",
]

#: A rounder's target: the format, and the random bits of its stochastic rounding (None: nearest).
Grid = tuple[FloatFormat, int | None]


def _span(width: int) -> int:
    """``T``: the largest left shift, ``2**n - 1`` for the count's ``n`` bits (so ``T - lz`` is ``~lz``)."""
    return (1 << Shape.cast(range(width + 1)).width) - 1


@dataclass
class Headroom:
    """One rounder's placement of a sum, from the larger operand's exponent alone (ready with the adder's operands).

    ``small_mask`` marks the window bits that are all zero exactly when the
    result is small; ``small_right`` is the right shift ``u`` of a small
    result (saturated: every bit it moves out stays below the kept ones);
    ``over`` is ``big_exp + 1 - (emax + 1)``: a count below it puts the
    exponent above ``emax + 1``, where it is clamped.
    """

    small_mask: Value
    small_right: Value
    over: Value


def headroom(m: Module, flags: SumFlags, width: int, fmt: FloatFormat, grids: Sequence[Grid], name: str) -> Headroom:
    """:class:`Headroom` of a ``width``-bit window for ``fmt``, in the layout that serves ``grids`` (``fmt``'s
    among them; see :func:`hls_gen.arith.grid_layout`)."""
    big = flags.big_exp  # the window's top bit is worth 2**(big + 1)
    # small <=> lz > big + 1 - emin <=> the top (big + 2 - emin) window bits are zero: window bit j counts when
    # big >= width - 2 - j + emin. Each mask bit compares the exponent with a constant, side by side (no adder
    # first: a window below every bit's bound masks nothing and is small, one above masks all of it).
    mask = Signal(width, name=f"{name}_small_mask")
    m.d.comb += mask.eq(Cat(*(big >= width - 2 - j + fmt.emin for j in range(width))))
    below = grid_layout(width, grids)[3]
    # A small result's right shift: span - (big + 1 - grid_floor), saturated at a shift of below - 1 past the
    # kept bits (which moves every bit below them) and at 0; the bounds are compared beside the subtraction.
    span = _span(width)
    base = span + grid_floor(fmt) - 1  # the shift is base - big
    most = span + below - 1
    small_right = Signal(range(most + 1), name=f"{name}_small_right")
    m.d.comb += small_right.eq(Mux(big < base - most, most, Mux(big > base, 0, base - big)))
    over = Signal((big - fmt.emax).shape(), name=f"{name}_over")
    m.d.comb += over.eq(big - fmt.emax)  # (big + 1) - (emax + 1)
    return Headroom(mask, small_right, over)


def select_headroom(m: Module, select: Value | None, options: list[Headroom], name: str) -> Headroom:
    """``options[select]``: the placement of the mode ``select`` (one option is returned as is)."""
    if select is None or len(options) == 1:
        return options[0]
    fields = ("small_mask", "small_right", "over")
    picked = [select_value(m, select, [getattr(o, f) for o in options], f"{name}_{f}") for f in fields]
    return Headroom(*picked)


@dataclass
class Counted:
    """The window's sum with its leading zeros counted, not yet shifted: :func:`count`'s result."""

    window: Value
    sticky: Value
    lz: Value
    top: Value  # big_exp + 1: the exponent of the window's top bit
    sign: Value
    zero: Value
    inf: Value
    nan: Value


def count(m: Module, x: Summed, name: str) -> Counted:
    """The sum's leading zeros (a log-depth tree), its sign and specials, as :func:`hls_gen.arith.normalize` gives
    them, but the window left as it is."""
    f = x.flags
    window = x.total[1:]
    lz = Signal(range(len(window) + 1), name=f"{name}_lz")
    m.d.comb += lz.eq(leading_zeros(window))
    cancelled = window == 0
    sign = Mux(f.inf, f.inf_sign, Mux(f.both_zero, f.zero_sign, Mux(cancelled, 0, f.big_sign)))
    top = Signal((f.big_exp + 1).shape(), name=f"{name}_top")
    m.d.comb += top.eq(f.big_exp + 1)
    return Counted(window, x.total[0], lz, top, sign, f.both_zero | cancelled, f.inf, f.nan)


@dataclass
class ShiftPlan:
    """Whether the result is small, and the right shift ``u`` that places it: :func:`plan`'s result."""

    small: Value
    right: Value


def plan(m: Module, x: Counted, room: Headroom, name: str) -> ShiftPlan:
    """The result is small when the masked window bits are all zero; its shift is then the prepared one, else
    the count's (``T - lz``, the count inverted)."""
    small = Signal(name=f"{name}_small")
    m.d.comb += small.eq((x.window & room.small_mask) == 0)
    right = Signal(len(room.small_right), name=f"{name}_right")
    m.d.comb += right.eq(Mux(small, room.small_right, ~x.lz))
    return ShiftPlan(small, right)


def place_counted(
    m: Module, x: Counted, shift: ShiftPlan, room: Headroom, grids: Sequence[Grid], name: str
) -> list[OnGrid]:
    """The window shifted onto the grid of each of ``grids``: :func:`hls_gen.arith.round_place` of the normalized
    sum for each. One shift serves them all (``shift`` and ``room`` place the sum for the grid that will keep it):
    each reads its own slice, counted from the leading one down."""
    width = len(x.window)
    guard, pad, pw, below = grid_layout(width, grids)
    span = _span(width)
    padded = Cat(Const(0, guard + pad), x.window)
    wide = Signal(below + span + pw, name=f"{name}_wide")
    m.d.comb += wide.eq(Cat(Const(0, below + span), padded) >> shift.right)
    # The exponent, clamped at emax + 1 (enough to overflow), beside the shift: lz < over means above it.
    exp = x.top - x.lz
    return [
        OnGrid(
            wide[below : below + pw],
            wide[:below],
            x.sticky,
            shift.small,
            Mux(shift.small, fmt.emin, Mux(x.lz < room.over, fmt.emax + 1, exp)),
            x.sign,
            x.zero,
            x.inf,
            x.nan,
            guard + width + pad - 1 - fmt.man_bits,
        )
        for fmt, _ in grids
    ]
