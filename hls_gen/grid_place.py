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
    "headroom_modes",
    "mode_layout",
    "place_counted",
    "place_modes",
    "plan",
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


def headroom(m: Module, flags: SumFlags, width: int, fmt: FloatFormat, below: int, name: str) -> Headroom:
    """:class:`Headroom` of a ``width``-bit window for ``fmt``, in a layout whose shift catches ``below`` bits
    under the kept ones (:func:`hls_gen.arith.grid_layout`'s ``Z``)."""
    big = flags.big_exp  # the window's top bit is worth 2**(big + 1)
    # small <=> lz > big + 1 - emin <=> the top (big + 2 - emin) window bits are zero: window bit j counts when
    # big >= width - 2 - j + emin. Each mask bit compares the exponent with a constant, side by side (no adder
    # first: a window below every bit's bound masks nothing and is small, one above masks all of it).
    mask = Signal(width, name=f"{name}_small_mask")
    m.d.comb += mask.eq(Cat(*(big >= width - 2 - j + fmt.emin for j in range(width))))
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


def _by_mode(m: Module, select: Value, options: list[Value | int], name: str) -> Value | int:
    """``options[select]``; a value the modes all share as it is (no multiplexer)."""
    first = options[0]
    if all(o is first or (isinstance(o, int) and o == first) for o in options):
        return first
    return select_value(m, select, [Const(o) if isinstance(o, int) else o for o in options], name)


def headroom_modes(
    m: Module, flags: SumFlags, width: int, modes: Sequence[FloatFormat], below: int, select: Value, name: str
) -> Headroom:
    """:func:`headroom` for the format of mode ``select`` of ``modes``: the mode picks the format's constants, and
    each bound is one subtraction from the exponent, not a comparison per window bit."""
    big = flags.big_exp
    span = _span(width)

    def less(constants: list[int], what: str) -> Signal:
        """``constants[select] - big``, in a signal of its own."""
        value = _by_mode(m, select, constants, f"{name}_{what}_bound") - big
        out = Signal(value.shape(), name=f"{name}_{what}")
        m.d.comb += out.eq(value)
        return out

    # Window bit j is masked when big >= width - 2 - j + emin, i.e. when j >= t = width - 2 + emin - big: the
    # mask is all ones shifted up by t (t < 0: all ones; t >= width: none).
    t = less([width - 2 + f.emin for f in modes], "small_from")
    n = Shape.cast(range(width)).width
    mask = Signal(width, name=f"{name}_small_mask")
    ones = Const((1 << width) - 1, width)
    m.d.comb += mask.eq(Mux(t[-1], ones, Mux(t[n:-1].any(), 0, ones << t[:n])))
    # A small result's right shift, span + grid_floor - 1 - big, clamped at 0 and saturated at all ones (a
    # shift of at least span + below - 1 leaves every window bit under the kept ones, see headroom).
    most = span + below - 1
    bits = Shape.cast(range(most + 1)).width
    u = less([span + grid_floor(f) - 1 for f in modes], "small_shift")
    small_right = Signal(bits, name=f"{name}_small_right")
    m.d.comb += small_right.eq(Mux(u[-1], 0, Mux(u[bits:-1].any(), (1 << bits) - 1, u[:bits])))
    excess = big - _by_mode(m, select, [f.emax for f in modes], f"{name}_emax")  # (big + 1) - (emax + 1)
    over = Signal(excess.shape(), name=f"{name}_over")
    m.d.comb += over.eq(excess)
    return Headroom(mask, small_right, over)


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


def _shifted(m: Module, x: Counted, shift: ShiftPlan, padded: Value, below: int, name: str) -> Signal:
    """``padded`` (the window in its layout) shifted right by the plan's ``u`` from ``span`` bits up, over
    ``below`` bits that catch what falls out."""
    span = _span(len(x.window))
    wide = Signal(below + span + len(padded), name=f"{name}_wide")
    m.d.comb += wide.eq(Cat(Const(0, below + span), padded) >> shift.right)
    return wide


def _clamped_exp(x: Counted, shift: ShiftPlan, room: Headroom, emin: Value | int, emax: Value | int) -> Value:
    """The exponent that sets the quantum: ``emin`` for a small result, else clamped at ``emax + 1`` (enough to
    overflow), decided beside the shift: a count below ``room.over`` means above it."""
    return Mux(shift.small, emin, Mux(x.lz < room.over, emax + 1, x.top - x.lz))


def place_counted(
    m: Module, x: Counted, shift: ShiftPlan, room: Headroom, fmt: FloatFormat, rand_bits: int | None, name: str
) -> OnGrid:
    """The window shifted onto ``fmt``'s grid: :func:`hls_gen.arith.round_place` of the normalized sum."""
    width = len(x.window)
    guard, pad, pw, below = grid_layout(width, [(fmt, rand_bits)])
    wide = _shifted(m, x, shift, Cat(Const(0, guard + pad), x.window), below, name)
    return OnGrid(
        wide[below : below + pw],
        wide[:below],
        x.sticky,
        shift.small,
        _clamped_exp(x, shift, room, fmt.emin, fmt.emax),
        x.sign,
        x.zero,
        x.inf,
        x.nan,
        guard + width + pad - 1 - fmt.man_bits,
    )


def mode_layout(width: int, modes: Sequence[Grid]) -> tuple[int, int, int, int]:
    """:func:`hls_gen.arith.grid_layout` of a ``width``-bit window for :func:`place_modes`: the window of a
    format narrower than the widest sits lower by the difference, so the layout is that much wider."""
    lowered = max(f.man_bits for f, _ in modes) - min(f.man_bits for f, _ in modes)
    return grid_layout(width + lowered, modes)


def _falls(window: Value, right: Value, offset: int) -> Value:
    """Whether a bit of ``window`` lands under the kept ones when it is shifted right by ``right``: bit ``j``
    does when ``right > j + offset``. The ORs of the window's low bits, one per shift, looked up by the shift
    (a multiplexer, not a comparator per bit)."""
    below = [Const(0, 1)]  # below[i]: the OR of the window's i lowest bits
    for bit in window:
        below.append(below[-1] | bit)
    table = Cat(*(below[min(max(u - offset, 0), len(window))] for u in range(1 << len(right))))
    return table.bit_select(right, 1)


def place_modes(
    m: Module, x: Counted, shift: ShiftPlan, room: Headroom, modes: Sequence[Grid], select: Value, name: str
) -> OnGrid:
    """The window shifted onto the grid of mode ``select`` (``shift`` and ``room`` are that mode's placement),
    its quantum on the same bit whatever the mode: one rounder for every ``(format, random bits)`` of ``modes``.

    A format ``d`` significand bits narrower than the widest has its window ``d`` bits lower before the one
    shift, so its count fills the low bits of the widest's count, and every rounding reads the same bits
    (:func:`hls_gen.arith.round_decide` with each mode's random bits, the mode picking its decision). The
    kept bits are the widest count and the most random bits a mode draws (one, the round bit, for nearest);
    ``below`` is nonzero when a window bit falls under them, for the nearest modes (stochastic rounding looks
    no further than its random bits): each window bit is compared with the shift, beside it, instead of
    shifting out a copy of the bits that fall.
    """
    width = len(x.window)
    widest = max(f.man_bits for f, _ in modes)
    guard, pad, pw, below = mode_layout(width, modes)
    lowered = pw - guard - pad - width  # the most any window sits lower
    keep = max(1 if k is None else k for _, k in modes)  # random bits kept under the count
    layouts = {b: Cat(Const(0, guard + pad + lowered - widest + b), x.window) for b in {f.man_bits for f, _ in modes}}
    wide = _shifted(
        m, x, shift, _by_mode(m, select, [layouts[f.man_bits] for f, _ in modes], f"{name}_lowered"), below, name
    )
    nearest = {f.man_bits for f, k in modes if k is None}
    falls = {b: _falls(x.window, shift.right, _span(width) + b + keep + 1 - width) for b in nearest}
    ignored = next(iter(falls.values()), Const(0, 1))  # what a stochastic mode's decision does not read
    lost = [falls[f.man_bits] if k is None else ignored for f, k in modes]
    e_eff = _clamped_exp(
        x,
        shift,
        room,
        _by_mode(m, select, [f.emin for f, _ in modes], f"{name}_emin"),
        _by_mode(m, select, [f.emax for f, _ in modes], f"{name}_emax"),
    )
    return OnGrid(
        wide[below + pw - 1 - widest - keep : below + pw],
        _by_mode(m, select, lost, f"{name}_lost"),
        x.sticky,
        shift.small,
        e_eff,
        x.sign,
        x.zero,
        x.inf,
        x.nan,
        keep,
    )
