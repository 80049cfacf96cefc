"""Exact-rational reference rounding, written from the format definitions (the tests' oracle).

Independent of the kernels: values are ``fractions.Fraction``; the
representable neighbours come from the format's fields; the stochastic rule is
the documented one (``floor(f * 2**k) + r >= 2**k``). Non-finite values are the
floats ``inf``, ``-inf`` and ``nan``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from mpsim.formats import FixedFormat, FloatFormat

Value = Fraction | float  # float only for inf / nan


def quantum(fmt: FloatFormat | FixedFormat, magnitude: Fraction) -> Fraction:
    """Spacing of the format around a positive magnitude (exponent unbounded above)."""
    if isinstance(fmt, FixedFormat):
        return Fraction(1, 2**fmt.frac_bits)
    exponent = math.floor(math.log2(magnitude)) if magnitude > 0 else fmt.emin
    # log2 of a Fraction can be off by one near powers of two: fix it exactly
    while Fraction(2) ** exponent > magnitude:
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= magnitude:
        exponent += 1
    if exponent >= fmt.emin:
        return Fraction(2) ** (exponent - fmt.man_bits)
    return Fraction(2) ** fmt.min_exponent


def rounds_up(frac: Fraction, odd: bool, mode: str, negative: bool, r: int | None, k: int | None) -> bool:
    """Whether a magnitude ``frac`` (0 < frac < 1) of a quantum above an ``odd`` or even grid point rounds up."""
    if mode == "nearest":
        return frac > Fraction(1, 2) or (frac == Fraction(1, 2) and odd)
    if mode == "nearest_away":
        return frac >= Fraction(1, 2)
    if mode == "toward_zero":
        return False
    if mode == "up":
        return not negative
    if mode == "down":
        return negative
    if mode.startswith("stochastic"):  # "stochastic" or "stochastic:K"; k is given
        assert r is not None and k is not None and 0 <= r < 2**k
        return math.floor(frac * 2**k) + r >= 2**k
    raise ValueError(mode)


def round_exact(
    x: Value,
    fmt: FloatFormat | FixedFormat,
    mode: str,
    *,
    r: int = 0,
    k: int = 62,
    saturate: bool | None = None,
) -> Value:
    """Round ``x`` into ``fmt``; ``mode`` in nearest, nearest_away, toward_zero, up, down, stochastic."""
    fixed = isinstance(fmt, FixedFormat)
    if saturate is None:
        saturate = fmt.overflow == "saturate" if fixed else fmt.saturates
    if isinstance(x, float):
        if math.isnan(x):
            return math.nan
        if fixed:
            if not saturate:
                return math.nan
            return fmt.max_exact if x > 0 else fmt.min_exact
        if saturate or not (fmt.has_inf or fmt.has_nan):
            return fmt.max_exact if x > 0 else -fmt.max_exact
        return x if fmt.has_inf else math.nan
    negative = x < 0
    magnitude = -x if negative else x
    if magnitude == 0:
        return Fraction(0)
    q = quantum(fmt, magnitude)
    low = (magnitude // q) * q
    frac = (magnitude - low) / q
    up = frac != 0 and rounds_up(frac, (low / q) % 2 == 1, mode, negative, r, k)
    result = low + (q if up else 0)
    if fixed:
        return _fixed(fmt, -result if negative else result, saturate)
    if result > fmt.max_exact:
        toward_zero = mode == "toward_zero" or (mode == "up" and negative) or (mode == "down" and not negative)
        if saturate or toward_zero or not (fmt.has_inf or fmt.has_nan):
            result = fmt.max_exact
        elif fmt.has_inf:
            return -math.inf if negative else math.inf
        else:
            return math.nan
    return -result if negative else result


def _fixed(fmt: FixedFormat, value: Fraction, saturate: bool) -> Fraction:
    if fmt.min_exact <= value <= fmt.max_exact:
        return value
    if saturate:
        return fmt.max_exact if value > 0 else fmt.min_exact
    count = value * 2**fmt.frac_bits
    modulus = 2**fmt.bits
    wrapped = count % modulus
    if fmt.signed and wrapped >= modulus // 2:
        wrapped -= modulus
    return Fraction(wrapped, 2**fmt.frac_bits)


def add(a: Value, b: Value) -> Value:
    """Exact sum with IEEE rules for non-finite operands."""
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b)
    return a + b


def same(got: float, want: Value) -> bool:
    """``got`` (a float) equals the reference value (NaN equals NaN; zeros compare by value)."""
    if isinstance(want, float) and math.isnan(want):
        return math.isnan(got)
    if isinstance(want, float):
        return got == want
    return not math.isnan(got) and not math.isinf(got) and Fraction(got) == want
