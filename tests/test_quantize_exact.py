"""mpsim.quantize against an exact-rational reference written here from the format definitions.

The reference never calls mpsim's kernels, encode or decode: the representable
values are enumerated from a format's fields (exponent and mantissa fields,
bias, subnormals, specials; integer and fraction bits), the two neighbours of a
value are found among them (beyond the largest finite value the grid goes on
with an unbounded exponent, as IEEE 754 rounds before it detects overflow),
and the rounding modes, the stochastic rule of :mod:`mpsim.rounding` and the
overflow rules are applied with ``fractions.Fraction``.
"""

from __future__ import annotations

import bisect
import functools
import math
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpsim
from mpsim.formats import FixedFormat, FloatFormat
from mpsim.randbits import LFSR, CounterRNG
from tests.conftest import assert_same_floats
from tests.exact_reference import rounds_up

#: (format, saturate argument of quantize)
CASES = [
    ("e3m4", None),
    ("e6m9", None),
    ("e8m7ns", None),
    ("e4m3", None),
    ("e5m2", None),
    ("e2m1", None),
    ("e5m2", True),
    ("e4m3fnuz", None),
    ("e4m3b5", None),
    ("q4.11", None),
    ("uq4.12", None),
    ("q3.4wrap", None),
    ("e5m2sat", False),
    ("q3.4wrap", True),
]
_SATURATE_IDS = {None: "", True: "-saturate", False: "-nosaturate"}
FORMATS = [
    pytest.param(mpsim.parse_format(name), saturate, id=name + _SATURATE_IDS[saturate]) for name, saturate in CASES
]
DETERMINISTIC = ["nearest", "nearest_away", "toward_zero", "up", "down"]
STOCHASTIC = ["stochastic:1", "stochastic:3", "stochastic:8", "stochastic"]
MODES = DETERMINISTIC + STOCHASTIC
SEED = 20240611


# --- the reference ---------------------------------------------------------


def rand_bits_of(mode: str) -> int | None:
    """k of ``stochastic:k`` (62 for exact ``stochastic``), None for deterministic modes."""
    if not mode.startswith("stochastic"):
        return None
    _, _, k = mode.partition(":")
    return int(k) if k else 62


def wraps(fmt: FloatFormat | FixedFormat, saturate: bool | None) -> bool:
    """Whether overflow wraps around (two's complement fixed point)."""
    return fmt.is_fixed and (fmt.overflow == "wrap" if saturate is None else not saturate)


@functools.cache
def magnitudes(fmt: FloatFormat) -> tuple[Fraction, ...]:
    """Every finite non-negative value of a float format, ascending, from its fields."""
    e, m, bias = fmt.exp_bits, fmt.man_bits, fmt.exponent_bias
    values = set()
    for field in range(1 << e):
        for frac in range(1 << m):
            if fmt.specials == "ieee" and field == (1 << e) - 1:
                continue  # Inf and NaN
            if fmt.specials == "fn" and field == (1 << e) - 1 and frac == (1 << m) - 1:
                continue  # the one NaN
            if field == 0:
                values.add(Fraction(frac if fmt.subnormals else 0) * Fraction(2) ** (1 - bias - m))
            else:
                values.add(Fraction((1 << m) + frac) * Fraction(2) ** (field - bias - m))
    return tuple(sorted(values))


def floor_log2(v: Fraction) -> int:
    """floor(log2(v)) for v > 0, exactly."""
    e = v.numerator.bit_length() - v.denominator.bit_length()
    while Fraction(2) ** e > v:
        e -= 1
    while Fraction(2) ** (e + 1) <= v:
        e += 1
    return e


@functools.lru_cache(maxsize=1 << 16)
def neighbours(fmt: FloatFormat | FixedFormat, mag: Fraction) -> tuple[Fraction, Fraction]:
    """``lo <= mag < hi``: neighbouring magnitudes of the format, its exponent unbounded above."""
    if fmt.is_fixed:
        q = Fraction(1, 1 << fmt.frac_bits)
    else:
        grid = magnitudes(fmt)
        if mag < grid[-1]:
            i = bisect.bisect_right(grid, mag)
            return grid[i - 1], grid[i]
        q = Fraction(2) ** (floor_log2(mag) - fmt.man_bits)  # beyond max: the binade's spacing
    lo = (mag // q) * q
    return lo, lo + q


def reference_round(
    x: float,
    fmt: FloatFormat | FixedFormat,
    mode: str,
    r: int | None = None,
    k: int | None = None,
    saturate: bool | None = None,
) -> float:
    """``x`` (a float) rounded into ``fmt``; ``r`` the ``k``-bit random integer of stochastic rounding."""
    if math.isnan(x):
        return math.nan
    neg = math.copysign(1.0, x) < 0
    if fmt.is_fixed:
        sat = not wraps(fmt, saturate)
    else:
        sat = fmt.overflow == "saturate" if saturate is None else saturate
    if math.isinf(x):
        if fmt.is_fixed:
            return float(fmt.min_exact if neg else fmt.max_exact) if sat else math.nan
        if sat or not (fmt.has_inf or fmt.has_nan):
            return -fmt.max if neg else fmt.max
        return x if fmt.has_inf else math.nan
    mag = abs(Fraction(x))
    if mag == 0:
        return x if fmt.has_negative_zero else 0.0
    lo, hi = neighbours(fmt, mag)
    if mag == lo:
        up = False
    else:
        spacing = hi - lo
        frac = (mag - lo) / spacing
        assert (lo / spacing).denominator == 1
        up = rounds_up(frac, (lo / spacing) % 2 == 1, mode, neg, r, k)
    result = hi if up else lo
    if fmt.is_fixed:
        value = -result if neg else result
        if fmt.min_exact <= value <= fmt.max_exact:
            return float(value)
        if sat:
            return float(fmt.min_exact if value < 0 else fmt.max_exact)
        width = fmt.bits  # two's complement modulo 2**bits
        code = int(value * (1 << fmt.frac_bits)) % (1 << width)
        if fmt.signed and code >= 1 << (width - 1):
            code -= 1 << width
        return float(Fraction(code, 1 << fmt.frac_bits))
    if result > fmt.max_exact:
        toward_zero = mode == "toward_zero" or (mode == "up" and neg) or (mode == "down" and not neg)
        if sat or toward_zero or not (fmt.has_inf or fmt.has_nan):
            result = fmt.max_exact
        elif fmt.has_inf:
            return -math.inf if neg else math.inf
        else:
            return math.nan
    if result == 0 and not fmt.has_negative_zero:
        return 0.0
    return -float(result) if neg else float(result)


def reference_array(x: np.ndarray, fmt, mode: str, draws: np.ndarray | None = None, saturate=None) -> np.ndarray:
    """The reference elementwise in C order; ``draws[i]`` are the random bits of element ``i``."""
    k = rand_bits_of(mode)
    flat = x.reshape(-1)
    out = [
        reference_round(float(v), fmt, mode, None if k is None else int(draws[i]), k, saturate)
        for i, v in enumerate(flat)
    ]
    return np.array(out, dtype=x.dtype).reshape(x.shape)


def quantize_and_reference(x: np.ndarray, fmt, mode: str, saturate, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    k = rand_bits_of(mode)
    draws = None if k is None else CounterRNG(seed).draw(x.size, k)
    got = mpsim.quantize(x, fmt, mode, seed=seed, saturate=saturate)
    return got, reference_array(x, fmt, mode, draws, saturate)


# --- the reference's own grid ---------------------------------------------


@pytest.mark.parametrize("fmt, saturate", [p for p in FORMATS if not p.values[0].is_fixed])
def test_enumerated_grid_is_the_formats(fmt, saturate):
    """The reference's values are the format's: count, extremes and decode of every code."""
    grid = magnitudes(fmt)
    assert 2 * (len(grid) - 1) + 1 == fmt.num_finite
    assert grid[-1] == fmt.max_exact
    assert grid[1] == Fraction(fmt.smallest_subnormal)
    codes = np.arange(1 << fmt.bits)
    decoded = mpsim.decode(fmt, codes, dtype=np.float64)
    finite = np.unique(np.abs(decoded[np.isfinite(decoded)]))
    assert [Fraction(v) for v in finite] == list(grid)


# --- boundary-rich inputs ---------------------------------------------------


def signed_grid(fmt) -> list[Fraction]:
    """Every finite value, ascending (when wider than 8 bits, a sample: both ends, around zero, at random)."""
    if fmt.is_fixed:
        lo = -(1 << (fmt.int_bits + fmt.frac_bits)) if fmt.signed else 0
        codes = list(range(lo, 1 << (fmt.int_bits + fmt.frac_bits)))
        values = [Fraction(c, 1 << fmt.frac_bits) for c in codes]
    else:
        mags = magnitudes(fmt)
        values = sorted({-v for v in mags} | set(mags))
    if len(values) <= 600:
        return values
    rng = np.random.default_rng(len(values))
    n = len(values)
    zero = values.index(0)
    picks = set(range(100)) | set(range(n - 100, n)) | set(range(max(0, zero - 150), min(n, zero + 150)))
    picks |= set(rng.choice(n, 300, replace=False).tolist())
    return [values[i] for i in sorted(picks)]


def boundary_inputs(fmt) -> tuple[np.ndarray, np.ndarray]:
    """(float32 inputs, extra float64-only inputs): values, midpoints, their neighbours, extremes, specials."""
    values = signed_grid(fmt)
    top = fmt.max_exact
    top_q = Fraction(1, 1 << fmt.frac_bits) if fmt.is_fixed else Fraction(2) ** (floor_log2(top) - fmt.man_bits)
    bottom = fmt.min_exact if fmt.is_fixed else -top
    points = set(values)
    for v in values:  # midpoints to the next magnitude up (the last one beyond max)
        if v >= 0:
            points.add((v + neighbours(fmt, v)[1]) / 2)
    smallest = neighbours(fmt, Fraction(0))[1]
    points |= {smallest / 8, smallest / 4, 3 * smallest / 4, 5 * smallest / 4}
    for t in (top, -bottom):
        points |= {t + top_q / 2, t + top_q, t + 3 * top_q / 2, 2 * t, 4 * t, 1024 * t}
    points |= {-p for p in points}
    f32_max = Fraction(float(np.finfo(np.float32).max))
    base = np.array(sorted(float(p) for p in points if abs(p) <= f32_max), dtype=np.float64)
    x32 = base.astype(np.float32)
    assert (x32.astype(np.float64) == base).all()  # every point is exact in float32
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    x32 = np.concatenate(
        [
            x32,
            np.nextafter(x32, np.float32(np.inf)),
            np.nextafter(x32, np.float32(-np.inf)),
            [tiny, -tiny, 3 * tiny, np.finfo(np.float32).smallest_normal, np.finfo(np.float32).max],
            [np.float32(-np.finfo(np.float32).max), np.float32(0.0), np.float32(-0.0)],
            np.array([np.inf, -np.inf, np.nan, -np.nan], np.float32),
        ]
    ).astype(np.float32)
    x64 = np.concatenate(
        [
            np.nextafter(base, np.inf),
            np.nextafter(base, -np.inf),
            [5e-324, -5e-324, 1e-300, 2.0**-1022, 1e300, -1e300, np.finfo(np.float64).max, 2.0**128],
        ]
    )
    return x32, x64


@functools.cache
def cached_boundary_inputs(fmt) -> tuple[np.ndarray, np.ndarray]:
    return boundary_inputs(fmt)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt, saturate", FORMATS)
def test_boundaries(fmt, saturate, mode):
    """float32 inputs (as float32 and as float64), then float64-only ones, against the reference."""
    x32, x64_extra = cached_boundary_inputs(fmt)
    x64 = np.concatenate([x32.astype(np.float64), x64_extra])
    k = rand_bits_of(mode)
    draws = None if k is None else CounterRNG(SEED).draw(x64.size, k)
    want = reference_array(x64, fmt, mode, draws, saturate)
    got64 = mpsim.quantize(x64, fmt, mode, seed=SEED, saturate=saturate)
    assert_same_floats(got64, want, x64)
    got32 = mpsim.quantize(x32, fmt, mode, seed=SEED, saturate=saturate)
    assert got32.dtype == np.float32
    assert_same_floats(got32, want[: x32.size].astype(np.float32), x32)


# --- Hypothesis: arbitrary floats -------------------------------------------


def elements(fmt, width: int) -> st.SearchStrategy[float]:
    """Any float, floats across the format's range, and floats near its smallest values."""
    f_max = float(np.finfo(np.float32 if width == 32 else np.float64).max)
    span = min(4 * fmt.max, f_max)
    small = 8 * fmt.smallest_subnormal
    return st.one_of(
        st.floats(width=width),
        st.floats(min_value=-span, max_value=span, width=width),
        st.floats(min_value=-small, max_value=small, width=width),
    )


def float_arrays(fmt, dtype) -> st.SearchStrategy[np.ndarray]:
    width = np.dtype(dtype).itemsize * 8
    return hnp.arrays(dtype, st.integers(1, 24), elements=elements(fmt, width))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt, saturate", FORMATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_arbitrary_floats(fmt, saturate, dtype, data):
    x = data.draw(float_arrays(fmt, dtype), label="x")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    seed = data.draw(st.integers(0, 2**64 - 1), label="seed")
    got, want = quantize_and_reference(x, fmt, mode, saturate, seed)
    assert got.dtype == x.dtype and got.shape == x.shape
    assert_same_floats(got, want, x)


@pytest.mark.parametrize("fmt, saturate", FORMATS)
def test_python_scalars(fmt, saturate):
    for x in (0.1, -2.75, 1e-7, 12345.678, -0.0):
        for mode in DETERMINISTIC:
            got = mpsim.quantize(x, fmt, mode, saturate=saturate)
            assert isinstance(got, float)
            want = reference_round(x, fmt, mode, saturate=saturate)
            if math.isnan(want):
                assert math.isnan(got)
            else:
                assert got == want and math.copysign(1, got) == math.copysign(1, want)


# --- Hypothesis: properties -------------------------------------------------


@pytest.mark.parametrize("fmt, saturate", FORMATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_idempotent(fmt, saturate, data):
    """Rounding a representable value changes nothing, in every mode."""
    x = data.draw(float_arrays(fmt, data.draw(st.sampled_from([np.float32, np.float64]))))
    mode = data.draw(st.sampled_from(MODES))
    q = mpsim.quantize(x, fmt, mode, seed=1, saturate=saturate)
    assert_same_floats(mpsim.quantize(q, fmt, mode, seed=2, saturate=saturate), q, x)


@pytest.mark.parametrize("fmt, saturate", FORMATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_nearest_is_monotonic(fmt, saturate, data):
    """x <= y gives q(x) <= q(y) (NaN results aside) unless overflow wraps around."""
    if wraps(fmt, saturate):
        return
    x = data.draw(float_arrays(fmt, data.draw(st.sampled_from([np.float32, np.float64]))))
    x = np.sort(x[~np.isnan(x)])
    q = mpsim.quantize(x, fmt, saturate=saturate)
    q = q[~np.isnan(q)]
    assert (q[1:] >= q[:-1]).all(), (x, q)


@pytest.mark.parametrize("fmt, saturate", FORMATS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_result_is_representable(fmt, saturate, data):
    """Finite results survive encode then decode unchanged; Inf and NaN only where the format has them.

    (A format without NaN still passes NaN through, and wrapping fixed point turns Inf into NaN.)
    """
    x = data.draw(float_arrays(fmt, data.draw(st.sampled_from([np.float32, np.float64]))))
    mode = data.draw(st.sampled_from(MODES))
    q = mpsim.quantize(x, fmt, mode, seed=3, saturate=saturate)
    finite = np.isfinite(q)
    assert_same_floats(mpsim.decode(fmt, mpsim.encode(fmt, q[finite]), dtype=q.dtype), q[finite], x[finite])
    assert fmt.has_inf or not np.isinf(q).any()
    nan_passed_through = np.isnan(x) | (np.isinf(x) & wraps(fmt, saturate))
    assert fmt.has_nan or (np.isnan(q) <= nan_passed_through).all()


@pytest.mark.parametrize("mode", ["nearest", "toward_zero"])
@pytest.mark.parametrize("fmt, saturate", [p for p in FORMATS if not p.values[0].is_fixed])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_sign_symmetry(fmt, saturate, mode, data):
    """Sign-magnitude formats: q(-x) == -q(x) (zero's sign too, where the format has -0)."""
    x = data.draw(float_arrays(fmt, data.draw(st.sampled_from([np.float32, np.float64]))))
    pos, neg = mpsim.quantize(x, fmt, mode, saturate=saturate), mpsim.quantize(-x, fmt, mode, saturate=saturate)
    np.testing.assert_array_equal(neg, -pos)
    if fmt.has_negative_zero:
        assert_same_floats(neg, -pos, x)


# --- where the random bits come from -----------------------------------------


def recover_random_bits(dtype, k: int, n: int, seed: int) -> tuple[np.ndarray, int]:
    """The top bits of each element's random integer, read back from stochastic roundings alone.

    Element ``i`` is ``4 + t_i * 2**-f`` in e5m2 (spacing 1 on [4, 8)), so it rounds
    up iff ``t_i * 2**(k-f) + r_i >= 2**k``; a binary search over ``t_i`` finds the
    least such ``t_i``, which is ``2**f - (r_i >> (k - f))``. Returns ``(r >> (k-f), k-f)``.
    """
    f = min(k, 21 if dtype == np.float32 else 50)  # fraction bits below 4 in the input
    lo = np.zeros(n, dtype=np.int64)  # rounds down at lo (t = 0 never rounds up)
    hi = np.full(n, 1 << f, dtype=np.int64)  # rounds up at hi (carries whatever r)
    mode = "stochastic" if k == 62 else f"stochastic:{k}"
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        x = (4 + np.ldexp(mid.astype(np.float64), -f)).astype(dtype)
        up = mpsim.quantize(x, "e5m2", mode, seed=seed) == 5
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return (1 << f) - hi, k - f


@pytest.mark.parametrize(
    "dtype, k",
    [
        (np.float32, 1),
        (np.float32, 3),
        (np.float32, 8),
        (np.float32, 16),
        (np.float32, 62),
        (np.float64, 3),
        (np.float64, 16),
        (np.float64, 52),
        (np.float64, 62),
    ],
)
def test_counter_rng_draws_are_the_bits_quantize_uses(dtype, k):
    """CounterRNG(seed).draw(n, k) gives element i's random integer (C order), read back bit for bit."""
    n, seed = 300, 99
    top, dropped = recover_random_bits(dtype, k, n, seed)
    np.testing.assert_array_equal(top, CounterRNG(seed).draw(n, k) >> dropped)


VIEWS = {
    "strided": lambda x: x[:, ::2],
    "reversed": lambda x: x[::-1, ::-3],
    "transposed": lambda x: x.T,
    "fortran": np.asfortranarray,
}


@pytest.mark.parametrize("mode", ["nearest", "stochastic:4"])
@pytest.mark.parametrize("view", VIEWS)
def test_non_contiguous_input_follows_c_order(view, mode):
    """A strided, reversed or transposed array rounds like its C-contiguous copy, draws in C order included."""
    x = VIEWS[view](np.linspace(-3, 3, 600).reshape(20, 30) + 1 / 3)
    assert not x.flags.c_contiguous
    got = mpsim.quantize(x, "e4m3", mode, seed=5)
    draws = None if mode == "nearest" else CounterRNG(5).draw(x.size, 4)
    want = reference_array(x, mpsim.parse_format("e4m3"), mode, draws)
    assert_same_floats(got, want, x)
    assert_same_floats(got, mpsim.quantize(np.ascontiguousarray(x), "e4m3", mode, seed=5), x)


def test_counter_rng_object_advances():
    """A CounterRNG passed as seed is consumed: two calls use draws 0..n-1 then n..n+m-1."""
    x = np.linspace(-1, 1, 100) / 3
    rng = CounterRNG(42)
    first = mpsim.quantize(x[:37], "e3m4", "stochastic:6", seed=rng)
    second = mpsim.quantize(x[37:], "e3m4", "stochastic:6", seed=rng)
    assert rng.offset == 100
    whole = mpsim.quantize(x, "e3m4", "stochastic:6", seed=42)
    assert_same_floats(np.concatenate([first, second]), whole)


@pytest.mark.parametrize("k", [1, 5, 12])
@pytest.mark.parametrize("fmt, saturate", [FORMATS[0], FORMATS[3], FORMATS[9], FORMATS[11]])
def test_lfsr_source(fmt, saturate, k):
    """An LFSR as seed: element i takes LFSR.draw's i-th k-bit integer, and the LFSR advances."""
    x32, _ = cached_boundary_inputs(fmt)
    x = x32.astype(np.float64)
    source = LFSR(16, seed=0xACE1)
    got = mpsim.quantize(x, fmt, f"stochastic:{k}", seed=source, saturate=saturate)
    draws = LFSR(16, seed=0xACE1).draw(x.size, k)
    assert_same_floats(got, reference_array(x, fmt, f"stochastic:{k}", draws, saturate), x)
    follow_on = LFSR(16, seed=0xACE1)
    follow_on.draw(x.size, k)
    assert source.state == follow_on.state


def test_lfsr_needs_finite_bits():
    with pytest.raises(
        ValueError,
        match=r"^an LFSR source needs a finite number of random bits \(rounding 'stochastic:K'\), not None$",
    ):
        mpsim.quantize(np.ones(3), "e4m3", "stochastic", seed=LFSR(8, seed=3))


# --- formats without mantissa bits -------------------------------------------

NO_MANTISSA = ["e4m0f", "e5m0fn", "e3m0fnuz"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NO_MANTISSA)
def test_no_mantissa_bits(name, mode):
    """Powers of two only (the significand is the implicit 1): every mode, float64 and float32 input."""
    fmt = mpsim.parse_format(name)
    x32, x64_extra = cached_boundary_inputs(fmt)
    x64 = np.concatenate([x32.astype(np.float64), x64_extra])
    k = rand_bits_of(mode)
    draws = None if k is None else CounterRNG(SEED).draw(x64.size, k)
    want = reference_array(x64, fmt, mode, draws)
    assert_same_floats(mpsim.quantize(x64, fmt, mode, seed=SEED), want, x64)
    if mode != "nearest":  # float32 nearest: test_no_mantissa_bits_float32_nearest
        got32 = mpsim.quantize(x32, fmt, mode, seed=SEED)
        assert_same_floats(got32, want[: x32.size].astype(np.float32), x32)


@pytest.mark.parametrize("name", NO_MANTISSA)
def test_no_mantissa_bits_float32_nearest(name):
    """Ties between 2**e and 2**(e+1) (1.5 * 2**e) round alike from float32 and float64 input."""
    fmt = mpsim.parse_format(name)
    x = np.array([3.0, -3.0, 6.0, 12.0, 0.75, 1.5], np.float32)
    want = reference_array(x.astype(np.float64), fmt, "nearest").astype(np.float32)
    assert_same_floats(mpsim.quantize(x.astype(np.float64), fmt).astype(np.float32), want, x)
    assert_same_floats(mpsim.quantize(x, fmt), want, x)
