"""Stochastic rounding: the documented rule bit for bit, and its statistics.

The rule (mpsim.rounding): with ``f`` the distance from the lower neighbour in
ulps, ``t = floor(f * 2**k)`` and ``r`` the element's ``k`` random bits, the
magnitude rounds up iff ``t + r >= 2**k``; exact mode uses ``k = 62``. The
oracle below computes neighbours and ``f`` with exact rationals from the format
parameters alone, never from mpsim's kernels.

Statistical bounds: ``n`` copies of one value round up ``c`` times, binomial
``(n, p)``; we require ``|c - n p| <= 6 sqrt(n p (1 - p))`` (6 sigma, plus 1
count of slack for the discreteness), with ``p`` exactly 0 or 1 giving an exact
count. All seeds are fixed, so the outcome is deterministic; a correct
implementation fails a given check with probability below about 1e-8.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpsim
from mpsim.formats import FixedFormat, parse_format
from mpsim.randbits import LFSR, CounterRNG
from mpsim.rounding import parse_rounding

FORMATS = ["e4m3", "e5m2", "bf16", "e3m4", "q4.11"]
FRACTIONS = [Fraction(1, 8), Fraction(1, 3), Fraction(1, 2), Fraction(9, 10), Fraction(1, 2**10)]
RAND_BITS = [None, 1, 2, 4, 8]
EXACT_K = 62
N_COPIES = 1 << 15
DTYPES = [np.float32, np.float64]


# --------------------------------------------------------------------------- oracle


def quantum_exponent(fmt: object, mag: Fraction) -> int:
    """log2 of the spacing of the format's grid at magnitude ``mag`` (> 0)."""
    if isinstance(fmt, FixedFormat):
        return -fmt.frac_bits
    exponent = math.floor(math.log2(mag))
    # math.log2 of a rational may be off by one at powers of two: correct exactly.
    while Fraction(2) ** exponent > mag:
        exponent -= 1
    while Fraction(2) ** (exponent + 1) <= mag:
        exponent += 1
    return max(exponent, fmt.emin) - fmt.man_bits


def neighbours(fmt: object, x: float) -> tuple[Fraction, Fraction, Fraction]:
    """(lower magnitude, quantum, f) for ``|x|``: ``|x| = lower + f * quantum``, 0 <= f < 1."""
    mag = abs(Fraction(x))
    if mag == 0:
        return Fraction(0), Fraction(1), Fraction(0)
    quantum = Fraction(2) ** quantum_exponent(fmt, mag)
    units = mag / quantum
    whole = math.floor(units)
    return whole * quantum, quantum, units - whole


def signed(fmt: object, x: float, mag: Fraction) -> float:
    value = float(mag)
    if value == 0.0 and isinstance(fmt, FixedFormat):
        return 0.0
    return math.copysign(value, x)


def sr_reference(fmt: object, x: float, k: int, r: int) -> float:
    """The documented rule on exact rationals (values must not overflow the format)."""
    lower, quantum, f = neighbours(fmt, x)
    t = math.floor(f * 2**k)
    up = t + r >= 2**k
    return signed(fmt, x, lower + quantum * up)


def bits_of(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.view(np.uint64)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    got64, want64 = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    bad = np.flatnonzero(bits_of(got64).ravel() != bits_of(want64).ravel())
    assert bad.size == 0, (
        f"{bad.size} mismatches, first at {bad[0]}: got {got64.ravel()[bad[0]]!r}, want {want64.ravel()[bad[0]]!r}"
    )


def binomial_ok(count: int, n: int, p: Fraction) -> bool:
    if p == 0:
        return count == 0
    if p == 1:
        return count == n
    pf = float(p)
    return abs(count - n * pf) <= 6 * math.sqrt(n * pf * (1 - pf)) + 1


def random_values(fmt_name: str, n: int, seed: int, dtype: type) -> np.ndarray:
    """Values of both signs across the format's range (subnormals included), never above max."""
    fmt = parse_format(fmt_name)
    rng = np.random.default_rng(seed)
    if isinstance(fmt, FixedFormat):
        x = rng.uniform(-float(fmt.max), float(fmt.max), n)
        x[: n // 8] = rng.uniform(-4 * 2.0**-fmt.frac_bits, 4 * 2.0**-fmt.frac_bits, n // 8)
    else:
        lo = max(fmt.emin - fmt.man_bits - 2, -148 if dtype == np.float32 else -1070)
        hi = math.log2(float(fmt.max))
        x = 2.0 ** rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n)
    x[:4] = [0.0, -0.0, float(fmt.max), -float(fmt.max) if not isinstance(fmt, FixedFormat) or fmt.signed else 0.0]
    x = x.astype(dtype)
    return np.clip(x, -fmt.max, fmt.max).astype(dtype)


def kernel_k(k: int | None) -> int:
    return EXACT_K if k is None else k


def rounding_of(k: int | None) -> str:
    return "stochastic" if k is None else f"stochastic:{k}"


# --------------------------------------------------------------------------- the rule, bit for bit


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [None, 1, 3, 8, 23, 40])
@pytest.mark.parametrize("dtype", DTYPES)
def test_counter_source_follows_rule(fmt_name: str, k: int | None, dtype: type) -> None:
    """quantize(seed=CounterRNG(s)) == rule with r = CounterRNG(s).draw(n, k), element i taking draw i."""
    fmt = parse_format(fmt_name)
    x = random_values(fmt_name, 400, seed=FORMATS.index(fmt_name) * 100 + (k or 0), dtype=dtype)
    r = CounterRNG(31).draw(x.size, kernel_k(k))
    want = np.array([sr_reference(fmt, float(v), kernel_k(k), int(ri)) for v, ri in zip(x, r)])
    rng = CounterRNG(31)
    got = mpsim.quantize(x, fmt_name, rounding_of(k), seed=rng)
    assert got.dtype == dtype and got.shape == x.shape
    assert rng.offset == x.size
    assert_same_bits(got, want)
    # The int seed is the same stream.
    assert_same_bits(mpsim.quantize(x, fmt_name, rounding_of(k), seed=31), want)


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [1, 4, 8, 16])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lfsr_source_follows_rule(fmt_name: str, k: int, dtype: type) -> None:
    fmt = parse_format(fmt_name)
    x = random_values(fmt_name, 300, seed=k, dtype=dtype)
    r = LFSR(width=24, seed=0xBEEF).draw(x.size, k)
    want = np.array([sr_reference(fmt, float(v), k, int(ri)) for v, ri in zip(x, r)])
    lfsr = LFSR(width=24, seed=0xBEEF)
    got = mpsim.quantize(x, fmt_name, "stochastic", rand_bits=k, seed=lfsr)
    assert_same_bits(got, want)
    twin = LFSR(width=24, seed=0xBEEF)
    twin.draw(x.size * k, 1)
    assert lfsr.state == twin.state  # advanced by k steps per element


def test_lfsr_needs_finite_rand_bits() -> None:
    msg = r"^an LFSR source needs a finite number of random bits \(rounding 'stochastic:K'\), not None$"
    with pytest.raises(ValueError, match=msg):
        mpsim.quantize(np.ones(3), "e4m3", "stochastic", seed=LFSR())


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [None, 2, 8])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_scalar_property(fmt_name: str, k: int | None, data: st.DataObject) -> None:
    """Any float within range rounds to one of its two neighbours, exactly as the rule says."""
    fmt = parse_format(fmt_name)
    bound = float(fmt.max)
    x = data.draw(st.floats(-bound, bound, allow_nan=False, allow_subnormal=True), label="x")
    if isinstance(fmt, FixedFormat) and not fmt.signed:
        x = abs(x)
    seed = data.draw(st.integers(0, 2**64 - 1), label="seed")
    r = int(CounterRNG(seed).draw(1, kernel_k(k))[0])
    got = mpsim.quantize(x, fmt_name, rounding_of(k), seed=seed)
    assert isinstance(got, float)
    lower, quantum, _ = neighbours(fmt, x)
    assert abs(Fraction(got)) in (lower, lower + quantum)
    assert bits_of(np.array(got)) == bits_of(np.array(sr_reference(fmt, x, kernel_k(k), r)))


# --------------------------------------------------------------------------- probabilities


def grid_point(fmt_name: str, region: str) -> tuple[float, float]:
    """(lower neighbour, ulp) in the normal range or at the bottom (subnormals / near zero)."""
    fmt = parse_format(fmt_name)
    if isinstance(fmt, FixedFormat):
        ulp = 2.0**-fmt.frac_bits
        return (5.0 + 3 * ulp, ulp) if region == "normal" else (0.0, ulp)
    if region == "normal":
        return 1.25 * 4.0, 4.0 * 2.0**-fmt.man_bits
    ulp = 2.0 ** (fmt.emin - fmt.man_bits)
    return 3 * ulp, ulp


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("region", ["normal", "bottom"])
@pytest.mark.parametrize("frac", FRACTIONS, ids=str)
@pytest.mark.parametrize("k", RAND_BITS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_of_rounding_up(fmt_name: str, region: str, frac: Fraction, k: int | None, dtype: type) -> None:
    """P(up) = floor(f 2^k) / 2^k (k = 62 when exact); below 2^-k ulp it is exactly 0."""
    fmt = parse_format(fmt_name)
    lower, ulp = grid_point(fmt_name, region)
    x = dtype(Fraction(lower) + frac * Fraction(ulp))  # nearest float to lower + f ulp
    low_n, quantum, f = neighbours(fmt, float(x))
    assert low_n == Fraction(lower) and quantum == Fraction(ulp)
    assert abs(f - frac) <= Fraction(1, 2**10)  # the dtype holds f to well within the tested resolution
    kk = kernel_k(k)
    p = Fraction(math.floor(f * 2**kk), 2**kk)
    if k is not None and frac < Fraction(1, 2**k):
        assert p == 0
    copies = np.full(N_COPIES, x, dtype=dtype)
    for sign in (1, -1):
        got = mpsim.quantize(sign * copies, fmt_name, rounding_of(k), seed=1000 + (k or 0))
        assert got.dtype == dtype
        up = got == dtype(sign * (lower + ulp))
        down = got == dtype(sign * lower)
        assert (up | down).all(), "a result is not one of the two neighbours"
        count = int(up.sum())
        assert binomial_ok(count, N_COPIES, p), (count, N_COPIES * float(p))


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_unbiased_in_exact_mode(fmt_name: str, dtype: type) -> None:
    """Mean of n SR copies is x: |mean - x| <= 6 ulp sqrt(f (1 - f) / n) per value (+ 2^-62 ulp bias)."""
    fmt = parse_format(fmt_name)
    x = random_values(fmt_name, 48, seed=5, dtype=dtype)
    n = 4096
    copies = np.repeat(x[:, None], n, axis=1)
    got = mpsim.quantize(copies, fmt_name, "stochastic", seed=2718).astype(np.float64)
    means = got.mean(axis=1)
    for value, mean in zip(x, means):
        _, quantum, f = neighbours(fmt, float(value))
        sd = float(quantum) * math.sqrt(float(f * (1 - f)) / n)
        tol = 6 * sd + float(quantum) * (2.0**-62 + 2.0**-40) + abs(float(value)) * 2.0**-50
        assert abs(mean - float(value)) <= tol, (value, mean, float(f))


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [1, 4])
def test_biased_mean_with_few_bits(fmt_name: str, k: int) -> None:
    """With k bits the mean is lower + floor(f 2^k) 2^-k ulp, i.e. biased toward zero by < 2^-k ulp."""
    lower, ulp = grid_point(fmt_name, "normal")
    frac = Fraction(7, 10)
    x = float(Fraction(lower) + frac * Fraction(ulp))
    n = 1 << 16
    got = mpsim.quantize(np.full(n, x), fmt_name, f"stochastic:{k}", seed=99)
    p = math.floor(frac * 2**k) / 2**k
    expected = lower + p * ulp
    assert abs(got.mean() - expected) <= 6 * ulp * math.sqrt(p * (1 - p) / n)
    assert expected <= x


# --------------------------------------------------------------------------- symmetry, seeds, streams


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_negatives_symmetric(fmt_name: str, k: int | None, dtype: type) -> None:
    """Rounding acts on the magnitude: quantize(-x) == -quantize(x) with the same bits."""
    fmt = parse_format(fmt_name)
    x = np.abs(random_values(fmt_name, 1000, seed=3, dtype=dtype))
    pos = mpsim.quantize(x, fmt_name, rounding_of(k), seed=17)
    neg = mpsim.quantize(-x, fmt_name, rounding_of(k), seed=17)
    if isinstance(fmt, FixedFormat):
        np.testing.assert_array_equal(neg, -pos)
    else:
        assert_same_bits(neg, -pos)


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_bits_different_seed_different(fmt_name: str, dtype: type) -> None:
    lower, ulp = grid_point(fmt_name, "normal")
    x = np.full(2000, lower + ulp / 2, dtype=dtype)  # f = 1/2: each element is a fair coin
    a = mpsim.quantize(x, fmt_name, "stochastic", seed=123)
    b = mpsim.quantize(x, fmt_name, "stochastic", seed=123)
    c = mpsim.quantize(x, fmt_name, "stochastic", seed=124)
    assert_same_bits(a, b)
    # Independent fair coins agree everywhere with probability 2^-2000; 6-sigma: about half differ.
    differ = int((a != c).sum())
    assert abs(differ - 1000) <= 6 * math.sqrt(500)
    # seed=None draws from OS entropy.
    d = mpsim.quantize(x, fmt_name, "stochastic")
    e = mpsim.quantize(x, fmt_name, "stochastic")
    assert (d != e).any()


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [None, 5])
def test_counter_object_advances(fmt_name: str, k: int | None) -> None:
    """One CounterRNG across calls gives fresh bits: the calls equal one call on the concatenation."""
    x = random_values(fmt_name, 700, seed=8, dtype=np.float64)
    rng = CounterRNG(2024)
    first = mpsim.quantize(x[:300], fmt_name, rounding_of(k), seed=rng)
    assert rng.offset == 300
    second = mpsim.quantize(x[300:].reshape(20, 20), fmt_name, rounding_of(k), seed=rng)
    assert rng.offset == 700
    whole = mpsim.quantize(x, fmt_name, rounding_of(k), seed=CounterRNG(2024))
    assert_same_bits(np.concatenate([first, second.ravel()]), whole)
    third = mpsim.quantize(float(x[5]), fmt_name, rounding_of(k), seed=rng)
    assert rng.offset == 701
    assert third == mpsim.quantize(np.concatenate([x, x[5:6]]), fmt_name, rounding_of(k), seed=2024)[-1]


def test_deterministic_rounding_does_not_advance_source() -> None:
    rng = CounterRNG(1)
    lfsr = LFSR(width=16)
    mpsim.quantize(np.ones(10), "e4m3", "nearest", seed=rng)
    mpsim.quantize(np.ones(10), "e4m3", "toward_zero", seed=lfsr)
    assert rng.offset == 0 and lfsr.state == 1


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [None, 1, 6, 8, 24])
def test_float32_equals_float64(fmt_name: str, k: int | None) -> None:
    """Same values, same seed: float32 (fast kernel, and strided) and float64 (general kernel) agree."""
    x32 = random_values(fmt_name, 3000, seed=11, dtype=np.float32)
    x64 = x32.astype(np.float64)
    rule = rounding_of(k)
    got32 = mpsim.quantize(x32, fmt_name, rule, seed=77)
    got64 = mpsim.quantize(x64, fmt_name, rule, seed=77)
    assert got32.dtype == np.float32 and got64.dtype == np.float64
    assert_same_bits(got32.astype(np.float64), got64)
    # Non-contiguous float32 goes through the strided kernel: same stream, element i takes draw i.
    spaced = np.zeros(2 * x32.size, dtype=np.float32)
    spaced[::2] = x32
    assert_same_bits(mpsim.quantize(spaced[::2], fmt_name, rule, seed=77).astype(np.float64), got64)
    if k is not None:
        lfsr_a, lfsr_b = LFSR(width=32, seed=5), LFSR(width=32, seed=5)
        a = mpsim.quantize(x32, fmt_name, rule, seed=lfsr_a)
        b = mpsim.quantize(x64, fmt_name, rule, seed=lfsr_b)
        assert_same_bits(a.astype(np.float64), b)


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("k", [None, 4])
@pytest.mark.parametrize("dtype", DTYPES)
def test_results_are_neighbours(fmt_name: str, k: int | None, dtype: type) -> None:
    """Every result is the value itself (on the grid) or one of its two neighbours, never farther."""
    fmt = parse_format(fmt_name)
    x = random_values(fmt_name, 2000, seed=13, dtype=dtype)
    down = mpsim.quantize(x, fmt_name, "toward_zero")
    got = mpsim.quantize(x, fmt_name, rounding_of(k), seed=4)
    for value, result, trunc in zip(x, got, down):
        lower, quantum, f = neighbours(fmt, float(value))
        assert Fraction(abs(float(trunc))) == lower
        allowed = (lower,) if f == 0 else (lower, lower + quantum)
        assert abs(Fraction(float(result))) in allowed
        if result != 0:
            assert math.copysign(1.0, float(result)) == math.copysign(1.0, float(value))


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_special_values_under_stochastic(fmt_name: str) -> None:
    """NaN stays NaN; zeros stay zeros; representable values are fixed points."""
    fmt = parse_format(fmt_name)
    x = np.array([np.nan, 0.0, -0.0, 1.0, -1.0, 0.5, float(fmt.max)])
    for dtype in DTYPES:
        got = mpsim.quantize(x.astype(dtype), fmt_name, "stochastic", seed=0)
        assert np.isnan(got[0])
        np.testing.assert_array_equal(got[1:], x[1:].astype(dtype))
        if not isinstance(fmt, FixedFormat):
            assert_same_bits(got[1:3], x[1:3])


# --------------------------------------------------------------------------- overflow


@pytest.mark.parametrize("fmt_name", FORMATS)
@pytest.mark.parametrize("frac", [Fraction(1, 8), Fraction(1, 2), Fraction(9, 10)], ids=str)
@pytest.mark.parametrize("k", [None, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_overflow_probability(fmt_name: str, frac: Fraction, k: int | None, dtype: type) -> None:
    """Between max and the next grid point the rule still decides: down gives +-max, up overflows.

    Up resolves per the format: Inf where it has one, NaN where it only has NaN,
    max where it saturates (fixed point: +max, but -2**int_bits is representable).
    ``saturate=True`` sends both outcomes to max. P(up) as in the rule; 6-sigma bound.
    """
    fmt = parse_format(fmt_name)
    top = Fraction(fmt.max)
    _, ulp, _ = neighbours(fmt, fmt.max)
    x = dtype(top + frac * ulp)
    low_n, quantum, f = neighbours(fmt, float(x))
    assert low_n == top and quantum == ulp and abs(f - frac) <= Fraction(1, 2**10)
    kk = kernel_k(k)
    p = Fraction(math.floor(f * 2**kk), 2**kk)
    copies = np.full(N_COPIES, x, dtype=dtype)
    for sign in (1, -1):
        if isinstance(fmt, FixedFormat):
            up_value = float(top) if sign > 0 else -float(top + ulp)  # saturated; the negative end is one more
        elif fmt.saturates:
            up_value = sign * float(top)
        elif fmt.has_inf:
            up_value = sign * math.inf
        else:
            up_value = math.nan
        got = mpsim.quantize(sign * copies, fmt_name, rounding_of(k), seed=555)
        down = got == dtype(sign * float(top))
        up = np.isnan(got) if math.isnan(up_value) else got == dtype(up_value)
        if up_value == sign * float(top):
            assert down.all()
        else:
            assert (up | down).all() and not (up & down).any()
            assert binomial_ok(int(up.sum()), N_COPIES, p), (int(up.sum()), N_COPIES * float(p))
        clamped = mpsim.quantize(sign * copies, fmt_name, rounding_of(k), seed=555, saturate=True)
        if isinstance(fmt, FixedFormat):
            np.testing.assert_array_equal(clamped, got)
        else:
            assert (clamped == dtype(sign * float(top))).all()


# --------------------------------------------------------------------------- rounding errors through quantize

ROUNDING_ERRORS = [
    # (rounding, rand_bits, whole message)
    (
        "bogus",
        None,
        "unknown rounding 'bogus': expected one of nearest, nearest_away, toward_zero, up, down, "
        "stochastic (stochastic:K for K random bits)",
    ),
    (
        "stochastic:0",
        None,
        "unknown rounding 'stochastic:0': random-bit count must be 1..62 ('stochastic' alone rounds exactly), not '0'",
    ),
    (
        "sr0",
        None,
        "unknown rounding 'sr0': random-bit count must be 1..62 ('stochastic' alone rounds exactly), not '0'",
    ),
    (
        "stochastic:63",
        None,
        "unknown rounding 'stochastic:63': random-bit count must be 1..62 ('stochastic' alone rounds exactly), "
        "not '63'",
    ),
    ("stochastic:x", None, "unknown rounding 'stochastic:x': random-bit count must be a positive integer, not 'x'"),
    ("stochastic:-1", None, "unknown rounding 'stochastic:-1': random-bit count must be a positive integer, not '-1'"),
    ("stochastic:", None, "unknown rounding 'stochastic:': random-bit count must be a positive integer, not ''"),
    ("nearest", 4, "random bits only apply to stochastic rounding, not to 'nearest' (got rand_bits=4)"),
    ("toward_zero", 1, "random bits only apply to stochastic rounding, not to 'toward_zero' (got rand_bits=1)"),
    ("nearest:3", None, "random bits only apply to stochastic rounding, not to 'nearest' (got rand_bits=3)"),
    ("stochastic:8", 4, "rand_bits=4 contradicts rounding 'stochastic:8'"),
    ("sr8", 16, "rand_bits=16 contradicts rounding 'sr8'"),
    ("stochastic", 0, "random bits must be 1..62 or None, not 0"),
    ("stochastic", 63, "random bits must be 1..62 or None, not 63"),
    ("stochastic", True, "random bits must be an integer or None, not True"),
    ("stochastic", 2.0, "random bits must be an integer or None, not 2.0"),
]


@pytest.mark.parametrize(("rounding", "rand_bits", "message"), ROUNDING_ERRORS)
def test_rounding_errors_through_quantize(rounding: str, rand_bits: object, message: str) -> None:
    rng = CounterRNG(1)
    for x in (np.ones(3), 1.0):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            mpsim.quantize(x, "e4m3", rounding, rand_bits=rand_bits, seed=rng)  # type: ignore[arg-type]
    assert rng.offset == 0  # refused before drawing any bits


def test_rounding_object_contradicted() -> None:
    rule = parse_rounding("stochastic:8")
    with pytest.raises(ValueError, match=r"^rand_bits=4 contradicts rounding 'stochastic:8'$"):
        mpsim.quantize(np.ones(3), "e4m3", rule, rand_bits=4, seed=1)
    exact = parse_rounding("stochastic")
    with pytest.raises(ValueError, match=r"^rand_bits=4 contradicts rounding 'stochastic'$"):
        mpsim.quantize(np.ones(3), "e4m3", exact, rand_bits=4, seed=1)
    # Agreeing counts are fine, and spellings of one rule give the same bits.
    x = random_values("e4m3", 200, seed=21, dtype=np.float64)
    want = mpsim.quantize(x, "e4m3", rule, rand_bits=8, seed=3)
    for spelling in ("stochastic:8", "sr8", " SR:8 ", "Stochastic"):
        extra = {"rand_bits": 8} if spelling == "Stochastic" else {}
        assert_same_bits(mpsim.quantize(x, "e4m3", spelling, seed=3, **extra), want)


@pytest.mark.parametrize("rounding", ["stochastic:\u00b2", "sr\u00b2"])
def test_rounding_superscript_digit(rounding: str) -> None:
    msg = f"unknown rounding {rounding!r}: random-bit count must be a positive integer, not '\u00b2'"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        mpsim.quantize(np.ones(3), "e4m3", rounding, seed=1)
