"""Floating-point datapath pieces shared by the components (internal).

Everything here builds combinational logic into a given :class:`~amaranth.hdl.Module`
and returns signals; the public blocks in :mod:`hls_gen.multiplier`,
:mod:`hls_gen.accumulator`, :mod:`hls_gen.mac` and :mod:`hls_gen.array` wrap
them into ``wiring.Component`` s.

The numbers follow :mod:`mpsim` exactly (see :mod:`mpsim.kernels` and
:mod:`mpsim.rounding`):

* An *unpacked* value (:class:`Unpacked`) is ``(-1)**sign * sig * 2**(exp - (W-1))``
  with ``sig`` a ``W``-bit integer whose top bit is set (normalized; subnormal
  inputs are normalized when unpacked), plus flags ``zero``, ``inf``, ``nan``.
* :func:`round_pack` rounds an unpacked value plus a *sticky* bit (the exact
  value lies strictly above the one given, by less than one unit of ``sig``'s
  last bit) into a format's bit pattern: nearest-even or stochastic with ``k``
  random bits (round the magnitude up iff ``(t + r) >> k`` where ``t`` are the
  top ``k`` discarded bits), subnormals or flush, overflow to Inf, NaN or
  ``max`` per the format's specials and overflow policy, exactly as
  ``mpsim.quantize`` does.
* :func:`add_exact` adds two unpacked values into a window wide enough that
  the truncated window plus a sticky bit decides every rounding exactly as
  the exact sum would (the guard/sticky argument is in its docstring).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data

from mpsim.formats import FloatFormat

__all__ = [
    "Aligned",
    "OnGrid",
    "Ordered",
    "Product",
    "Rounding",
    "SumFlags",
    "Summed",
    "Unpacked",
    "add_aligned",
    "add_exact",
    "align",
    "exp_shape",
    "from_view",
    "grid_floor",
    "grid_layout",
    "leading_zeros",
    "multiply",
    "multiply_exact",
    "normalize",
    "normalize_product",
    "order",
    "place",
    "registered",
    "round_decide",
    "round_encode",
    "round_pack",
    "round_place",
    "select_unpacked",
    "select_value",
    "shift_out_leading_zeros",
    "unpack",
    "unpack_flags",
    "unpack_modes",
    "unpacked_layout",
    "unpacked_view",
]


def exp_shape(lo: int, hi: int) -> Shape:
    """A signed shape holding every integer of ``lo..hi`` (always signed)."""
    width = max(Shape.cast(range(min(lo, -1), max(hi, 1) + 1)).width, 2)
    return signed(width)


@dataclass
class Unpacked:
    """An unpacked floating-point value as signals (see the module docstring).

    ``exp_lo``/``exp_hi`` bound ``exp`` for finite nonzero values; they size
    the arithmetic that follows.
    """

    sign: Value
    zero: Value
    inf: Value
    nan: Value
    exp: Value
    sig: Value
    exp_lo: int
    exp_hi: int

    @property
    def width(self) -> int:
        return len(self.sig)


def _count_tree(bits: Value) -> tuple[Value, Value]:
    """(leading-zero count, all zero) of a power-of-two wide slice: halves combined, one multiplexer per level."""
    n = len(bits)
    if n == 2:  # no zero-width counts below this (they would be [-1:0] vectors in the Verilog)
        return ~bits[1], ~(bits[1] | bits[0])
    half = n // 2
    high_count, high_zero = _count_tree(bits[half:])
    low_count, low_zero = _count_tree(bits[:half])
    return Cat(Mux(high_zero, low_count, high_count), high_zero), high_zero & low_zero


def leading_zeros(x: Value) -> Value:
    """Leading-zero count of ``x`` (``len(x)`` when ``x`` is 0), as a log-depth tree of multiplexers."""
    w = len(x)
    width = 1 << w.bit_length()  # a power of two above w: room for a marker one below x
    padded = Cat(Const(0, width - w - 1), Const(1, 1), x)  # the marker makes a zero x count w
    count, _ = _count_tree(padded)
    return count


def shift_out_leading_zeros(m: Module, x: Value, name: str) -> tuple[Signal, Signal]:
    """``(x << lz, lz)`` with ``lz`` the leading-zero count of ``x`` (``len(x)`` for a zero ``x``, shifted to 0).

    Two independent log-depth networks from ``x``: the count
    (:func:`leading_zeros`, for the exponent) and the shift, which for
    amounts ``2**i``, largest first, moves the value up by ``2**i`` when its
    top ``2**i`` bits are zero (one NOR and one multiplexer per level), so
    the significand does not wait for the count as a priority encoder
    followed by a barrel shifter would make it.
    """
    w = len(x)
    value: Value = x
    for i in reversed(range(max((w - 1).bit_length(), 1))):
        n = 1 << i
        top_zero = value[w - n :] == 0 if n < w else value == 0
        value = Mux(top_zero, (value << n)[:w], value)
    shifted = Signal(w, name=f"{name}_normalized")
    count = Signal(range(w + 1), name=f"{name}_lz")
    m.d.comb += [shifted.eq(value), count.eq(leading_zeros(x))]
    return shifted, count


def _unpacked_exp_range(fmt: FloatFormat) -> tuple[int, int]:
    """``exp_lo``, ``exp_hi`` of an unpacked ``fmt`` value (subnormals normalized below ``emin``)."""
    return (fmt.emin - fmt.man_bits if fmt.subnormals else fmt.emin), fmt.emax


def _formats(formats: FloatFormat | Sequence[FloatFormat]) -> tuple[FloatFormat, ...]:
    return (formats,) if isinstance(formats, FloatFormat) else tuple(formats)


def _union(formats: FloatFormat | Sequence[FloatFormat]) -> tuple[int, int, int]:
    """(significand width, exp_lo, exp_hi) that hold an unpacked value of any of ``formats``."""
    fmts = _formats(formats)
    ranges = [_unpacked_exp_range(f) for f in fmts]
    return max(f.man_bits + 1 for f in fmts), min(lo for lo, _ in ranges), max(hi for _, hi in ranges)


def unpacked_layout(formats: FloatFormat | Sequence[FloatFormat]) -> data.StructLayout:
    """The fields of :func:`unpack`'s result as one value: a decoded operand that wires and registers carry.

    Several formats (the modes of a multi-mode array): wide enough for any of them.
    """
    width, exp_lo, exp_hi = _union(formats)
    fields = {"sig": width, "exp": exp_shape(exp_lo, exp_hi), "sign": 1, "zero": 1, "inf": 1, "nan": 1}
    return data.StructLayout(fields)


def unpacked_view(m: Module, value: Unpacked, formats: FloatFormat | Sequence[FloatFormat], name: str) -> data.View:
    """``value`` (an unpacked value of one of ``formats``) as one signal of :func:`unpacked_layout`.

    A narrower significand is left-aligned (zeros below), which keeps the value.
    """
    view = Signal(unpacked_layout(formats), name=name)
    width = len(view.sig)
    sig = Cat(Const(0, width - value.width), value.sig) if value.width < width else value.sig
    m.d.comb += [getattr(view, f).eq(getattr(value, f)) for f in ("exp", "sign", "zero", "inf", "nan")]
    m.d.comb += view.sig.eq(sig)
    return view


def from_view(view: data.View, formats: FloatFormat | Sequence[FloatFormat]) -> Unpacked:
    """The :class:`Unpacked` that a signal of :func:`unpacked_layout` carries."""
    _, exp_lo, exp_hi = _union(formats)
    return Unpacked(view.sign, view.zero, view.inf, view.nan, view.exp, view.sig, exp_lo, exp_hi)


def unpack_flags(code: Value, fmt: FloatFormat) -> tuple[Value, Value, Value, Value]:
    """``(sign, zero, inf, nan)`` of a bit pattern of ``fmt`` (zero: the code is a zero of ``fmt``)."""
    e, mb = fmt.exp_bits, fmt.man_bits
    field = code[mb : mb + e]
    frac = code[:mb] if mb else Const(0, 1)
    all_ones = (1 << e) - 1
    sign = code[fmt.bits - 1]
    inf: Value = Const(0, 1)
    nan: Value = Const(0, 1)
    if fmt.specials == "ieee":
        inf = (field == all_ones) & (frac == 0)
        nan = (field == all_ones) & (frac != 0)
    elif fmt.specials == "fn":
        nan = code[: fmt.bits - 1] == (1 << (fmt.bits - 1)) - 1
    elif fmt.specials == "fnuz":
        nan = code[: fmt.bits] == 1 << (fmt.bits - 1)
    # "finite": every pattern is a number
    zero = (field == 0) & (frac == 0) if fmt.subnormals and mb > 0 else field == 0
    return sign, zero, inf, nan


def unpack(m: Module, code: Value, fmt: FloatFormat, name: str) -> Unpacked:
    """Decode a bit pattern of ``fmt`` into a normalized :class:`Unpacked` (``man_bits + 1`` bit sig)."""
    e, mb = fmt.exp_bits, fmt.man_bits
    exp_lo, exp_hi = _unpacked_exp_range(fmt)
    exp = Signal(exp_shape(exp_lo, exp_hi), name=f"{name}_exp")
    sig = Signal(mb + 1, name=f"{name}_sig")
    field = code[mb : mb + e]
    frac = code[:mb] if mb else Const(0, 1)
    sign, _, inf, nan = unpack_flags(code, fmt)
    normal_exp = Cat(field, Const(0, 1)).as_signed() - fmt.exponent_bias
    normal_sig = Cat(frac, Const(1, 1)) if mb else Const(1, 1)
    if fmt.subnormals and mb > 0:
        zero = (field == 0) & (frac == 0)
        # value = frac * 2**(emin - mb): the leading one at bit i moves up to bit mb
        sub_exp: Value = Const(0, exp.shape())
        sub_sig: Value = Const(0, mb + 1)
        for i in range(mb):  # ascending: the highest set bit is the outermost choice
            sub_exp = Mux(frac[i], fmt.emin - mb + i, sub_exp)
            sub_sig = Mux(frac[i], (frac << (mb - i))[: mb + 1], sub_sig)
        m.d.comb += [exp.eq(Mux(field != 0, normal_exp, sub_exp)), sig.eq(Mux(field != 0, normal_sig, sub_sig))]
    else:
        zero = field == 0  # without subnormals the 0.xxx codes read as zero
        m.d.comb += [exp.eq(normal_exp), sig.eq(Mux(field != 0, normal_sig, 0))]
    return Unpacked(sign, zero, inf, nan, exp, sig, exp_lo, exp_hi)


def unpack_modes(m: Module, code: Value, formats: Sequence[FloatFormat], select: Value, name: str) -> Unpacked:
    """``code`` decoded in the format of mode ``select`` (``formats[select]``, its bits the low ones of ``code``):
    :func:`select_unpacked` of each format's :func:`unpack`, with one normalization for every format.

    The mode picks each format's fields first (the fraction left-aligned in the widest), and a subnormal's
    leading one is found and shifted up once, in log depth, instead of by a chain of choices per format. A
    zero's exponent and significand are left as they come (its flag says what it is).
    """
    distinct = list(dict.fromkeys(formats))
    if len(distinct) == 1:
        return unpack(m, code[: distinct[0].bits], distinct[0], name)
    frac_bits = max(f.man_bits for f in distinct)
    ranges = [_unpacked_exp_range(f) for f in distinct]
    exp = Signal(exp_shape(min(lo for lo, _ in ranges), max(hi for _, hi in ranges)), name=f"{name}_exp")
    sig = Signal(frac_bits + 1, name=f"{name}_sig")

    def field(f: FloatFormat) -> Value:
        return code[f.man_bits : f.man_bits + f.exp_bits]

    def frac(f: FloatFormat) -> Value:
        return Cat(Const(0, frac_bits - f.man_bits), code[: f.man_bits])

    def picked(value: object, what: str) -> Value:
        """Each distinct format's ``value(f)`` (a Value or an int), the one of mode ``select``."""
        options = {f: value(f) for f in distinct}  # type: ignore[operator]
        as_values = {f: Const(v) if isinstance(v, int) else v for f, v in options.items()}
        return select_value(m, select, [as_values[f] for f in formats], f"{name}_{what}")

    flags = {f: unpack_flags(code, f) for f in distinct}
    fraction = picked(frac, "frac")
    field_zero = picked(lambda f: field(f) == 0, "field_zero")
    normal_exp = picked(lambda f: Cat(field(f), Const(0, 1)).as_signed() - f.exponent_bias, "normal_exp")
    # A subnormal's value frac * 2**(emin - mb): its leading one lz places under the fraction's top is worth
    # 2**(emin - 1 - lz), the fraction left-aligned or not.
    normalized, lz = shift_out_leading_zeros(m, fraction, f"{name}_sub")
    sub_exp = picked(lambda f: f.emin - 1 if f.subnormals and f.man_bits else 0, "sub_emin") - lz
    subnormal = field_zero & picked(lambda f: int(f.subnormals and f.man_bits > 0), "has_subnormals")
    m.d.comb += [
        exp.eq(Mux(subnormal, sub_exp, normal_exp)),
        sig.eq(Mux(field_zero, Mux(subnormal, Cat(Const(0, 1), normalized), 0), Cat(fraction, Const(1, 1)))),
    ]
    sign, zero, inf, nan = (
        picked(lambda f, i=i: flags[f][i], what) for i, what in enumerate(("sign", "zero", "inf", "nan"))
    )
    lo, hi = min(lo for lo, _ in ranges), max(hi for _, hi in ranges)
    return Unpacked(sign, zero, inf, nan, exp, sig, lo, hi)


def select_unpacked(m: Module, select: Value, options: list[Unpacked], name: str) -> Unpacked:
    """``options[select]`` as one :class:`Unpacked` wide enough for every option (a multiplexer per field).

    Narrower significands are left-aligned (zeros below), which keeps the
    value: ``sig * 2**(exp - (W-1))`` with ``W`` the common width. The
    exponent bounds are the union of the options'. Several entries may be the
    same object (modes that share a format); one option is returned as is.
    """
    if len(options) == 1:
        return options[0]
    width = max(u.width for u in options)
    lo, hi = min(u.exp_lo for u in options), max(u.exp_hi for u in options)
    out = Unpacked(
        Signal(name=f"{name}_sign"),
        Signal(name=f"{name}_zero"),
        Signal(name=f"{name}_inf"),
        Signal(name=f"{name}_nan"),
        Signal(exp_shape(lo, hi), name=f"{name}_exp"),
        Signal(width, name=f"{name}_sig"),
        lo,
        hi,
    )
    distinct: list[Unpacked] = []
    for u in options:
        if not any(u is d for d in distinct):
            distinct.append(u)

    # Multiplexers, not a case statement: Yosys writes a switch as an always @* block, which some
    # simulators do not evaluate before its inputs first change (X until then, also during reset).
    def pick(field: str) -> Value:
        def value(u: Unpacked) -> Value:
            if field == "sig" and u.width < width:
                return Cat(Const(0, width - u.width), u.sig)
            return getattr(u, field)

        expr = value(distinct[-1])
        for u in reversed(distinct[:-1]):
            chosen = Const(0, 1)
            for i, o in enumerate(options):
                if o is u:
                    chosen = chosen | (select == i)
            expr = Mux(chosen, value(u), expr)
        return expr

    m.d.comb += [getattr(out, f).eq(pick(f)) for f in ("sign", "zero", "inf", "nan", "exp", "sig")]
    return out


def select_value(m: Module, select: Value, options: list[Value], name: str) -> Value:
    """``options[select]`` (extended to a shape that holds each: signed if one is); one option is returned as is."""
    if len(options) == 1:
        return options[0]
    expr = options[-1]
    for i in reversed(range(len(options) - 1)):
        expr = Mux(select == i, options[i], expr)
    out = Signal(expr.shape(), name=name)
    m.d.comb += out.eq(expr)
    return out


@dataclass
class Product:
    """The exact product of two unpacked values before its one bit of normalization.

    ``full = a.sig * b.sig`` lies in ``[2**(W-2), 2**W)`` (``W`` its width) and
    the value is ``(-1)**sign * full * 2**(exp - (W - 2))`` with ``exp = a.exp
    + b.exp``: nothing but the multiplier lies between the operands and
    ``full``, so a register of this record is a multiplier block's output
    register. :func:`normalize_product` makes it an :class:`Unpacked`.
    """

    sign: Value
    zero: Value
    inf: Value
    nan: Value
    exp: Value
    full: Value
    exp_lo: int
    exp_hi: int


def multiply(m: Module, a: Unpacked, b: Unpacked, name: str) -> Product:
    """The exact product of two unpacked values, IEEE specials (see :class:`Product`).

    NaN if either is NaN or for 0 x Inf; Inf if either is Inf; zero (sign
    ``a.sign ^ b.sign``) if either is zero.
    """
    lo, hi = a.exp_lo + b.exp_lo, a.exp_hi + b.exp_hi
    exp = Signal(exp_shape(lo, hi), name=f"{name}_exp_sum")
    full = Signal(a.width + b.width, name=f"{name}_full")
    m.d.comb += [exp.eq(a.exp + b.exp), full.eq(a.sig * b.sig)]
    sign = a.sign ^ b.sign
    nan = a.nan | b.nan | (a.inf & b.zero) | (a.zero & b.inf)
    inf = (a.inf | b.inf) & ~(a.nan | b.nan | a.zero | b.zero)
    zero = (a.zero | b.zero) & ~(a.nan | b.nan | a.inf | b.inf)
    return Product(sign, zero, inf, nan, exp, full, lo, hi)


def normalize_product(m: Module, p: Product, name: str) -> Unpacked:
    """``p`` as an :class:`Unpacked` (``W``-bit sig): at most one bit of normalization."""
    width = len(p.full)
    top = p.full[width - 1]
    exp = Signal(exp_shape(p.exp_lo, p.exp_hi + 1), name=f"{name}_exp")
    sig = Signal(width, name=f"{name}_sig")
    # Both exponents are ready before the product's top bit is (the increment runs beside the multiplier
    # when nothing registers the product): after the multiplier only a 2:1 choice remains.
    m.d.comb += [exp.eq(Mux(top, p.exp + 1, p.exp)), sig.eq(Mux(top, p.full, p.full << 1))]
    return Unpacked(p.sign, p.zero, p.inf, p.nan, exp, sig, p.exp_lo, p.exp_hi + 1)


def multiply_exact(m: Module, a: Unpacked, b: Unpacked, name: str) -> Unpacked:
    """The exact product of two unpacked values (``a.width + b.width`` bit sig), IEEE specials (:func:`multiply`)."""
    return normalize_product(m, multiply(m, a, b, name), name)


@dataclass
class Rounding:
    """A value placed on its format's grid with its rounding decided: :func:`round_decide`'s result.

    ``count`` is the magnitude in quanta rounded down, ``up`` whether it
    rounds up, ``e_eff`` the exponent that sets the quantum (clamped), and
    the flags carry what :func:`round_encode` needs for specials.
    """

    count: Value
    up: Value
    small: Value
    e_eff: Value
    sign: Value
    zero: Value
    inf: Value
    nan: Value


@dataclass
class OnGrid:
    """A value shifted onto its format's grid: :func:`round_place`'s result, what :func:`round_decide` reads."""

    kept: Value
    below: Value  # the bits shifted out below the window (their OR and the sticky bit: anything lost)
    sticky: Value
    small: Value
    e_eff: Value
    sign: Value
    zero: Value
    inf: Value
    nan: Value
    keep_lo: int


def grid_floor(fmt: FloatFormat) -> int:
    """The exponent below which a value of ``fmt`` is shifted further onto the grid (``emin``, or ``emin + mb``
    without subnormals, whose quantum there stays ``2**emin``)."""
    return fmt.emin + (0 if fmt.subnormals else fmt.man_bits)


def grid_layout(width: int, grids: Sequence[tuple[FloatFormat, int | None]]) -> tuple[int, int, int, int]:
    """How a ``width``-bit significand is laid out to be shifted onto the grid of each ``(format, random bits)``
    in ``grids``: (guard bits below it, zero padding below it when it is narrower than a format's significand,
    the padded width ``pw``, and ``Z``: the bits below that catch a right shift, a power of two above ``pw``).
    Several grids share one shift: the layout has the most guard bits and padding any of them needs."""
    guard = max(1 if k is None else k for _, k in grids) + 1
    pad = max(0, max(f.man_bits for f, _ in grids) + 1 - width)
    pw = width + pad + guard
    return guard, pad, pw, 1 << Shape.cast(range(pw + 1)).width


def round_place(m: Module, x: Unpacked, sticky: Value, fmt: FloatFormat, rand_bits: int | None, name: str) -> OnGrid:
    """First part of :func:`round_pack`: shift ``x`` onto the format's grid (subnormal results shift further).

    (A pipelined accumulator places its sums with :mod:`hls_gen.grid_place`, the same result from the sum's
    window, with the normalizing shift and this one merged.)
    """
    mb = fmt.man_bits
    guard, pad, pw, below = grid_layout(x.width, [(fmt, rand_bits)])
    padded = Cat(Const(0, guard + pad), x.sig)  # width pw
    # Below the smallest normal the quantum stays 2**(emin - mb) (2**emin without subnormals).
    small = x.exp < fmt.emin
    shift_raw = grid_floor(fmt) - x.exp
    # Shifts of pw or more all leave nothing kept; saturating at below - 1 >= pw (an OR of the high bits) does the
    # same as clamping at pw when the window below is that wide, and needs no comparator.
    sk = below.bit_length() - 1
    saturated = Mux(shift_raw[sk:].any(), below - 1, shift_raw[:sk]) if len(shift_raw) > sk else shift_raw[:sk]
    shift = Mux(small, saturated, 0)
    wide = Signal(below + pw, name=f"{name}_wide")
    m.d.comb += wide.eq(Cat(Const(0, below), padded) >> shift)
    e_top = fmt.emax + 1  # clamped at emax + 1, which is enough to overflow
    e_eff = Mux(small, fmt.emin, Mux(x.exp > e_top, e_top, x.exp))
    return OnGrid(
        wide[below:], wide[:below], sticky, small, e_eff, x.sign, x.zero, x.inf, x.nan, guard + x.width + pad - 1 - mb
    )


def round_decide(m: Module, g: OnGrid, rand_bits: int | None, rand: Value | None) -> Rounding:
    """Second part of :func:`round_pack`: whether the value on the grid rounds up (nearest-even, or stochastic)."""
    k = 1 if rand_bits is None else rand_bits
    count = g.kept[g.keep_lo :]  # mb + 1 bits: whole quanta
    frac = g.kept[: g.keep_lo]  # >= k + 1 bits: the top discarded bits
    nf = len(frac)
    if rand_bits is None:
        lost = (g.below != 0) | g.sticky
        up = frac[nf - 1] & ((frac[: nf - 1] != 0) | lost | count[0])
    else:
        up = (frac[nf - k :] + rand)[k]
    return Rounding(count, up, g.small, g.e_eff, g.sign, g.zero, g.inf, g.nan)


def round_encode(m: Module, r: Rounding, fmt: FloatFormat, name: str) -> Signal:
    """Second half of :func:`round_pack`: the rounded magnitude's code, overflow and specials resolved."""
    mb = fmt.man_bits
    rounded = r.count + r.up
    # Code of the rounded magnitude with the exponent unbounded above: ((E + bias - 1) << mb) + count, E >= emin.
    e_top = fmt.emax + 1
    biased = (r.e_eff + (fmt.exponent_bias - 1)).as_unsigned()[: Shape.cast(range(e_top + fmt.exponent_bias)).width]
    if fmt.subnormals or mb == 0:
        code = (biased << mb) + rounded
    else:
        code = Mux(r.small, rounded << mb, (biased << mb) + rounded)
    overflow = code > fmt.max_code
    if fmt.saturates:
        over_code = inf_code = fmt.max_code
    elif fmt.has_inf:
        over_code = inf_code = fmt.inf_code
    else:  # NaN is the only way to say "too big"
        over_code = inf_code = fmt.nan_code
    mag_bits = fmt.bits - 1
    mag_mask = (1 << mag_bits) - 1
    nan_code = fmt.nan_code if fmt.has_nan else 0
    is_nan = r.nan | (r.inf & (inf_code == nan_code)) | (~r.inf & ~r.zero & overflow & (over_code == nan_code))
    mag = Mux(r.inf, inf_code & mag_mask, Mux(r.zero, 0, Mux(overflow, over_code & mag_mask, code[:mag_bits])))
    mag_sig = Signal(mag_bits, name=f"{name}_mag")
    m.d.comb += mag_sig.eq(mag)
    if fmt.has_negative_zero:
        signed_code = Cat(mag_sig, r.sign)
    else:
        signed_code = Cat(mag_sig, r.sign & (mag_sig != 0))
    out = Signal(fmt.bits, name=name)
    m.d.comb += out.eq(Mux(is_nan, nan_code, signed_code))
    return out


def round_pack(
    m: Module,
    x: Unpacked,
    sticky: Value,
    fmt: FloatFormat,
    rand_bits: int | None,
    rand: Value | None,
    name: str,
) -> Signal:
    """Round ``x`` (plus ``sticky``) into a bit pattern of ``fmt``: nearest-even, or stochastic.

    ``rand_bits=None`` is round to nearest, ties to even; otherwise ``rand`` is
    the ``rand_bits``-bit random draw of this rounding. Matches
    ``mpsim.quantize`` bit for bit on finite values; a NaN result is the
    format's canonical ``nan_code``. Three stages, which a pipelined
    accumulator registers between: :func:`round_place`, :func:`round_decide`,
    :func:`round_encode`.
    """
    return round_encode(m, round_decide(m, round_place(m, x, sticky, fmt, rand_bits, name), rand_bits, rand), fmt, name)


@dataclass
class SumFlags:
    """What a sum of two values is besides its window: the larger operand's exponent and sign, and the specials.

    Set by :func:`order`, carried through the adder's stages to :func:`normalize`.
    """

    big_exp: Value
    big_sign: Value
    nan: Value
    inf: Value
    inf_sign: Value
    both_zero: Value
    zero_sign: Value
    exp_lo: int
    exp_hi: int


@dataclass
class Ordered:
    """The operands of :func:`add_exact` ordered by magnitude, with the shift of the smaller: :func:`order`'s result."""

    big_sig: Value
    small_sig: Value
    shift: Value
    subtract: Value
    guard: int
    flags: SumFlags


@dataclass
class Aligned:
    """Two operands of :func:`add_exact` placed in the adder's window: what :func:`add_aligned` adds.

    ``big``/``small`` are in units of half the window's last place (bit 0
    the sticky position, see :func:`add_exact`).
    """

    big: Value
    small: Value
    subtract: Value
    width: int
    flags: SumFlags


@dataclass
class Summed:
    """The window's sum: :func:`add_aligned`'s result, what :func:`normalize` shifts."""

    total: Value
    width: int
    flags: SumFlags


def order(m: Module, a: Unpacked, b: Unpacked, guard: int, name: str) -> Ordered:
    """Stage 1a of :func:`add_exact`: which operand is larger, and how far the smaller shifts right."""
    s = max(a.width, b.width)
    width = s + guard + 1  # window: carry, s significand bits, guard bits
    asig = Cat(Const(0, s - a.width), a.sig) if a.width < s else a.sig
    bsig = Cat(Const(0, s - b.width), b.sig) if b.width < s else b.sig
    a_big = Signal(name=f"{name}_a_big")
    m.d.comb += a_big.eq(b.zero | (~a.zero & ((a.exp > b.exp) | ((a.exp == b.exp) & (asig >= bsig)))))
    span = s + guard  # small operand window: s significand bits over guard bits
    # The shift is |a.exp - b.exp| clamped to span, computed beside a_big rather than after it: a_big waits for the
    # significands' comparison, the distance does not (for equal exponents both give 0, and a zero smaller
    # operand is dropped whatever its shift).
    distance = a.exp - b.exp  # its natural shape: no wrap whatever the exponent signals hold
    d = Signal(distance.shape(), name=f"{name}_exp_diff")
    m.d.comb += d.eq(distance)
    far = (d > span) | (d < -span)
    diff = Mux(far, span, Mux(d < 0, -d, d))
    opposite_inf = a.inf & b.inf & (a.sign != b.sign)
    flags = SumFlags(
        big_exp=Mux(a_big, a.exp, b.exp),
        big_sign=Mux(a_big, a.sign, b.sign),
        nan=a.nan | b.nan | opposite_inf,
        inf=(a.inf | b.inf) & ~(a.nan | b.nan) & ~opposite_inf,
        inf_sign=Mux(a.inf, a.sign, b.sign),
        both_zero=a.zero & b.zero,
        zero_sign=a.sign & b.sign,
        exp_lo=min(a.exp_lo, b.exp_lo) - width,
        exp_hi=max(a.exp_hi, b.exp_hi) + 1,
    )
    return Ordered(
        big_sig=Mux(a_big, asig, bsig),
        small_sig=Mux(Mux(a_big, b.zero, a.zero), 0, Mux(a_big, bsig, asig)),
        shift=diff[: Shape.cast(range(span + 1)).width],
        subtract=a.sign != b.sign,
        guard=guard,
        flags=flags,
    )


def place(m: Module, x: Ordered, name: str) -> Aligned:
    """Stage 1b of :func:`add_exact`: the smaller operand shifted into the window below the larger."""
    s, guard = len(x.big_sig), x.guard
    span = s + guard
    small_wide = Signal(2 * span, name=f"{name}_small_wide")
    m.d.comb += small_wide.eq(Cat(Const(0, span), Const(0, guard), x.small_sig) >> x.shift)
    return Aligned(
        big=Cat(Const(0, 1 + guard), x.big_sig, Const(0, 1)),  # window width + 1 bits
        small=Cat(small_wide[:span] != 0, small_wide[span:], Const(0, 1)),
        subtract=x.subtract,
        width=s + guard + 1,
        flags=x.flags,
    )


def align(m: Module, a: Unpacked, b: Unpacked, guard: int, name: str) -> Aligned:
    """Stage 1 of :func:`add_exact`: :func:`order` the operands, then :func:`place` the smaller in the window."""
    return place(m, order(m, a, b, guard, name), name)


def add_aligned(m: Module, x: Aligned, name: str) -> Summed:
    """Stage 2 of :func:`add_exact`: the window's sum or difference, the sticky bit in the last place."""
    total = Signal(x.width + 1, name=f"{name}_total")
    m.d.comb += total.eq(Mux(x.subtract, x.big - x.small, x.big + x.small))
    return Summed(total, x.width, x.flags)


def normalize(m: Module, x: Summed, name: str) -> tuple[Unpacked, Value, Value]:
    """Stage 3 of :func:`add_exact`: shift the window's leading one to the top; the sum, its sticky bit, the shift."""
    f = x.flags
    window = x.total[1:]
    normalized, lz = shift_out_leading_zeros(m, window, name)
    exp = Signal(exp_shape(f.exp_lo, f.exp_hi), name=f"{name}_exp")
    sig = Signal(x.width, name=f"{name}_sig")
    m.d.comb += [exp.eq(f.big_exp + 1 - lz), sig.eq(normalized)]
    cancelled = window == 0
    zero = f.both_zero | cancelled
    sign = Mux(f.inf, f.inf_sign, Mux(f.both_zero, f.zero_sign, Mux(cancelled, 0, f.big_sign)))
    return Unpacked(sign, zero, f.inf, f.nan, exp, sig, f.exp_lo, f.exp_hi), x.total[0], lz


def add_exact(m: Module, a: Unpacked, b: Unpacked, guard: int, name: str) -> tuple[Unpacked, Value]:
    """``a + b`` as a normalized window plus a sticky bit, exact for every later rounding.

    Both significands are left-aligned to ``S = max(a.width, b.width)`` bits;
    the larger magnitude sits below one carry bit, the smaller is shifted
    right by the exponent difference into ``guard`` guard bits and one sticky
    position (the OR of every bit shifted further). Subtracting with the sticky
    bit in the last place gives the exact ``floor`` of the difference on the
    window grid and a nonzero tail: the window plus sticky lies in the same
    open cell of the grid as the exact sum. Bits can be lost only when the
    exponents differ by more than ``guard``, and then cancellation normalizes
    by at most one place, so at least ``guard - 2`` window bits below the
    accumulator's last kept bit are exact: ``guard = k + 2`` makes every
    rounding with ``k`` random bits (``k = 1`` for nearest) exact. An exact
    zero from cancellation is +0; zero plus zero keeps the sign only when both
    are -0 (IEEE 754 round to nearest). Three stages, which a pipelined
    accumulator registers between: :func:`align`, :func:`add_aligned`,
    :func:`normalize`.
    """
    total, sticky, _ = normalize(m, add_aligned(m, align(m, a, b, guard, name), name), name)
    return total, sticky


def registered(m: Module, en: Value | None, x: Any, name: str, init: int = 0, *, keep: bool = False) -> Any:
    """A pipeline register of ``x``: a Value, a bundle (``data.View``), or a tuple or dataclass of them.

    Every Value gets a register of its shape, reset to ``init`` and loaded
    while ``en`` is high (every cycle for ``en=None``); a bundle one
    register of its layout, reset to zero; tuples and dataclasses are
    registered element by element; anything else (ints, static bounds,
    None) passes through. ``keep`` marks the registers ``(* keep *)``: a
    step's control is the same bits in every PE it reaches in the same
    cycle, and synthesis would otherwise merge those registers into one
    that drives PEs across the array (hls_gen.synth applies the mark to the
    flip-flops, which Yosys' register merging then leaves apart).
    """
    attrs = {"keep": 1} if keep else {}
    if isinstance(x, data.View):
        if init:
            raise ValueError(f"a bundle register resets to zero, not {init!r}")
        reg = Signal(x.shape(), name=name, attrs=attrs)
    elif isinstance(x, Value):
        reg = Signal(x.shape(), name=name, init=init, attrs=attrs)
    elif isinstance(x, tuple):
        return tuple(registered(m, en, v, f"{name}_{i}", init, keep=keep) for i, v in enumerate(x))
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        changes = {
            f.name: registered(m, en, getattr(x, f.name), f"{name}_{f.name}", init, keep=keep)
            for f in dataclasses.fields(x)
        }
        return dataclasses.replace(x, **changes)
    else:
        return x
    if en is None:
        m.d.sync += reg.eq(x)
    else:
        with m.If(en):
            m.d.sync += reg.eq(x)
    return reg
