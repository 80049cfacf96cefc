"""Random-bit sources: the Galois LFSR (period proven in GF(2)) and CounterRNG (SplitMix64 oracle)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from mpsim.randbits import LFSR, LFSR_TAPS, CounterRNG, make_source
from tests.random_reference import GOLDEN, counter_oracle, splitmix64

# --------------------------------------------------------------------------- oracles


def lfsr_step(state: int, mask: int) -> tuple[int, int]:
    """One documented Galois step: out = s & 1; s >>= 1; if out: s ^= mask."""
    out = state & 1
    state >>= 1
    if out:
        state ^= mask
    return state, out


def prime_factors(n: int) -> list[int]:
    """Distinct prime factors by trial division (n < 2**32 here: divisors up to 2**16)."""
    factors = []
    d = 2
    while d * d <= n:
        if n % d == 0:
            factors.append(d)
            while n % d == 0:
                n //= d
        d += 1 if d == 2 else 2
    if n > 1:
        factors.append(n)
    return factors


# GF(2) polynomials as Python ints (bit i = coefficient of x^i).


def poly_mulmod(a: int, b: int, mod: int) -> int:
    deg = mod.bit_length() - 1
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a <<= 1
        if (a >> deg) & 1:
            a ^= mod
    return result


def poly_powmod(base: int, exponent: int, mod: int) -> int:
    result = 1
    while exponent:
        if exponent & 1:
            result = poly_mulmod(result, base, mod)
        base = poly_mulmod(base, base, mod)
        exponent >>= 1
    return result


# GF(2) w x w matrices as a tuple of column bitmasks (column j = image of basis vector e_j).


def mat_vec(cols: tuple[int, ...], v: int) -> int:
    out = 0
    j = 0
    while v:
        if v & 1:
            out ^= cols[j]
        v >>= 1
        j += 1
    return out


def mat_mul(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(mat_vec(a, col) for col in b)


def mat_pow(cols: tuple[int, ...], exponent: int) -> tuple[int, ...]:
    result = tuple(1 << j for j in range(len(cols)))
    while exponent:
        if exponent & 1:
            result = mat_mul(result, cols)
        cols = mat_mul(cols, cols)
        exponent >>= 1
    return result


def test_prime_factors_oracle() -> None:
    assert prime_factors(2**32 - 1) == [3, 5, 17, 257, 65537]
    assert prime_factors(2**31 - 1) == [2**31 - 1]
    assert prime_factors(2**11 - 1) == [23, 89]
    for w in range(3, 33):
        n = 2**w - 1
        assert math.prod(p ** _multiplicity(n, p) for p in prime_factors(n)) == n


def _multiplicity(n: int, p: int) -> int:
    m = 0
    while n % p == 0:
        n //= p
        m += 1
    return m


# --------------------------------------------------------------------------- LFSR period

WIDTHS = sorted(LFSR_TAPS)


def test_tap_table_covers_3_to_32() -> None:
    assert list(range(3, 33)) == WIDTHS
    for w, taps in LFSR_TAPS.items():
        assert max(taps) == w and min(taps) >= 1 and len(set(taps)) == len(taps)


@pytest.mark.parametrize("width", range(3, 21))
def test_full_period_by_stepping(width: int) -> None:
    lfsr = LFSR(width=width)
    assert lfsr.period() == 2**width - 1
    assert lfsr.period(limit=2**width - 2) == -1
    assert lfsr.state == 1  # period() does not advance


@pytest.mark.parametrize("width", [3, 4, 5, 8])
def test_every_nonzero_state_on_one_cycle(width: int) -> None:
    lfsr = LFSR(width=width)
    seen = set()
    state = lfsr.state
    for _ in range(2**width - 1):
        seen.add(state)
        state, _ = lfsr_step(state, lfsr.mask)
    assert seen == set(range(1, 2**width))
    for seed in range(1, 2**width):
        assert LFSR(width=width, seed=seed).period() == 2**width - 1


@pytest.mark.parametrize("width", WIDTHS)
def test_tap_polynomial_is_primitive(width: int) -> None:
    """x^w + sum x^t + 1 (taps t < w) has order exactly 2^w - 1 in GF(2)[x]: primitive."""
    poly = 1 | (1 << width)
    for t in LFSR_TAPS[width]:
        if t != width:
            poly ^= 1 << t
    n = 2**width - 1
    x = 0b10
    assert poly_powmod(x, n, poly) == 1
    for p in prime_factors(n):
        assert poly_powmod(x, n // p, poly) != 1, f"x^((2^{width}-1)/{p}) == 1"


@pytest.mark.parametrize("width", WIDTHS)
def test_transition_matrix_has_order_2w_minus_1(width: int) -> None:
    """The implementation's one-step map, as a GF(2) matrix, has order exactly 2^w - 1.

    Column j is the state after one step from the basis state e_j, taken from
    LFSR.draw itself. The orbit of seed 1 then has length exactly 2^w - 1:
    A^n e_0 = e_0 for n = 2^w - 1 and not for any n / p (p prime, p | n).
    """
    cols = []
    mask = LFSR(width=width).mask
    for j in range(width):
        lfsr = LFSR(width=width, seed=1 << j)
        lfsr.draw(1, 1)
        assert lfsr.state == lfsr_step(1 << j, mask)[0]
        cols.append(lfsr.state)
    matrix = tuple(cols)
    n = 2**width - 1
    identity = tuple(1 << j for j in range(width))
    assert mat_pow(matrix, n) == identity
    for p in prime_factors(n):
        power = mat_pow(matrix, n // p)
        assert power != identity
        assert mat_vec(power, 1) != 1


@pytest.mark.parametrize("width", WIDTHS)
def test_mask_from_taps(width: int) -> None:
    lfsr = LFSR(width=width)
    assert lfsr.mask == sum(1 << (t - 1) for t in LFSR_TAPS[width])
    assert lfsr.mask >> (width - 1) == 1  # the top bit: state stays within width bits


def test_custom_taps_non_maximal() -> None:
    # x^4 + 1 is not primitive: taps (4,) give a short cycle.
    lfsr = LFSR(width=4, seed=1, taps=(4,))
    assert lfsr.mask == 0b1000
    assert lfsr.period() == 4
    assert LFSR(width=4, taps=(4, 3)).period() == 15


# --------------------------------------------------------------------------- LFSR draws


def stepped_bits(width: int, seed: int, n: int, taps: tuple[int, ...] | None = None) -> list[int]:
    mask = LFSR(width=width, seed=seed, taps=taps).mask
    state = seed
    out = []
    for _ in range(n):
        state, bit = lfsr_step(state, mask)
        out.append(bit)
    return out


@pytest.mark.parametrize(
    ("width", "seed", "k"), [(3, 5, 2), (8, 1, 3), (16, 0xACE1, 8), (32, 1, 1), (32, 0xDEADBEEF, 13), (20, 7, 62)]
)
def test_draw_is_bits_grouped_msb_first(width: int, seed: int, k: int) -> None:
    n = 50
    bits = LFSR(width=width, seed=seed).draw(n * k, 1)
    assert bits.dtype == np.int64
    assert bits.tolist() == stepped_bits(width, seed, n * k)
    grouped = [int("".join(str(b) for b in bits[i * k : (i + 1) * k]), 2) for i in range(n)]
    lfsr = LFSR(width=width, seed=seed)
    values = lfsr.draw(n, k)
    assert values.dtype == np.int64
    assert values.tolist() == grouped
    assert ((values >= 0) & (values < 2**k)).all()
    twin = LFSR(width=width, seed=seed)
    twin.draw(n * k, 1)
    assert lfsr.state == twin.state


def test_draws_continue_the_stream() -> None:
    one = LFSR(width=24, seed=0x123)
    split = np.concatenate([one.draw(7, 5), one.draw(0, 5), one.draw(13, 5)])
    assert split.tolist() == LFSR(width=24, seed=0x123).draw(20, 5).tolist()


def test_lfsr_defaults_and_repr() -> None:
    lfsr = LFSR()
    assert lfsr.width == 32 and lfsr.state == 1 and lfsr.mask == LFSR(32, 1, LFSR_TAPS[32]).mask
    assert repr(lfsr) == "LFSR(width=32, seed=1, state=0x1)"


@pytest.mark.parametrize("width", [2, 33, 0, -1])
def test_lfsr_width_out_of_table(width: int) -> None:
    with pytest.raises(ValueError, match=rf"^LFSR width must be 3\.\.32, not {width}$"):
        LFSR(width=width)


@pytest.mark.parametrize("width", [8.0, True, "8"])
def test_lfsr_width_not_an_integer(width: object) -> None:
    msg = f"LFSR width must be an integer, not {width!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        LFSR(width=width)  # type: ignore[arg-type]


@pytest.mark.parametrize(("width", "seed"), [(8, 0), (8, 256), (8, -1), (32, 2**32), (3, 8)])
def test_lfsr_seed_out_of_range(width: int, seed: int) -> None:
    msg = f"LFSR seed must be 1..2**{width}-1 (nonzero), not {seed!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        LFSR(width=width, seed=seed)


@pytest.mark.parametrize("seed", [1.0, True, "1", None])
def test_lfsr_seed_not_an_integer(seed: object) -> None:
    msg = f"LFSR seed must be an integer, not {seed!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        LFSR(width=8, seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("taps", [(), (7, 3), (9, 8), (8, 0), (8, -2)])
def test_lfsr_bad_taps(taps: tuple[int, ...]) -> None:
    msg = f"LFSR taps must be positions 1..8 including 8, not {taps!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        LFSR(width=8, taps=taps)


@pytest.mark.parametrize("k", [0, 63, -1, True, 2.0])
def test_lfsr_draw_bad_k(k: object) -> None:
    msg = f"random bits per draw must be 1..62, not {k!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        LFSR(width=16).draw(4, k)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- CounterRNG


@pytest.mark.parametrize("seed", [0, 1, 42, 2**63, 2**64 - 1])
@pytest.mark.parametrize("k", [1, 8, 32, 62, 63])
def test_counter_matches_splitmix_oracle(seed: int, k: int) -> None:
    rng = CounterRNG(seed)
    assert rng.key == splitmix64(seed)
    values = rng.draw(40, k)
    assert values.dtype == np.int64
    assert values.tolist() == counter_oracle(seed, 0, 40, k)
    assert ((values >= 0) & (values < 2**k)).all()
    assert rng.offset == 40


def test_splitmix_oracle_known_value() -> None:
    # SplitMix64 reference stream (Vigna's splitmix64.c) seeded with 0: first output.
    assert splitmix64(0 + GOLDEN) == 0xE220A8397B1DCDAF


def test_counter_determinism() -> None:
    a = CounterRNG(7).draw(1000, 16)
    b = CounterRNG(7).draw(1000, 16)
    c = CounterRNG(8).draw(1000, 16)
    assert np.array_equal(a, b)
    assert (a != c).mean() > 0.99


def test_counter_stream_split_equals_one_call() -> None:
    rng = CounterRNG(123)
    parts = [rng.draw(5, 20), rng.draw(0, 20), rng.draw(17, 20)]
    assert rng.offset == 22
    assert np.concatenate(parts).tolist() == CounterRNG(123).draw(22, 20).tolist()


def test_counter_k_bits_are_top_bits() -> None:
    full = CounterRNG(99).draw(64, 63)
    for k in (1, 5, 31, 62):
        assert (CounterRNG(99).draw(64, k) == full >> (63 - k)).all()


def test_counter_reserve_and_offset() -> None:
    rng = CounterRNG(5)
    assert rng.reserve(10) == 0
    assert rng.offset == 10
    assert rng.reserve(0) == 10
    assert rng.draw(3, 8).tolist() == counter_oracle(5, 10, 3, 8)
    assert rng.reserve(4) == 13
    assert rng.offset == 17
    assert CounterRNG(5, offset=13).draw(4, 8).tolist() == counter_oracle(5, 13, 4, 8)
    assert CounterRNG(5, offset=10).draw(7, 8).tolist() == CounterRNG(5).draw(17, 8)[10:].tolist()
    assert repr(CounterRNG(5, offset=3)) == "CounterRNG(seed=5, offset=3)"


def test_counter_offset_wraps_modulo_2_64() -> None:
    rng = CounterRNG(11, offset=2**64 - 2)
    values = rng.draw(4, 32)
    assert rng.offset == 2
    assert values.tolist() == counter_oracle(11, 2**64 - 2, 4, 32)
    assert values[2:].tolist() == CounterRNG(11).draw(2, 32).tolist()
    assert CounterRNG(0, offset=2**64 - 1).reserve(3) == 2**64 - 1


def test_counter_accepts_numpy_integer_seed() -> None:
    assert CounterRNG(np.uint64(2**64 - 1)).draw(3, 10).tolist() == counter_oracle(2**64 - 1, 0, 3, 10)
    assert CounterRNG(np.int32(9)).seed == 9


@pytest.mark.parametrize("seed", [1.5, True, "3", None])
def test_counter_seed_not_an_integer(seed: object) -> None:
    msg = f"seed must be an integer, not {seed!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        CounterRNG(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_counter_seed_out_of_range(seed: int) -> None:
    with pytest.raises(ValueError, match=rf"^seed must be in 0\.\.2\*\*64-1, not {seed}$"):
        CounterRNG(seed)


@pytest.mark.parametrize("k", [0, 64, -3, False, 8.0])
def test_counter_draw_bad_k(k: object) -> None:
    msg = f"random bits per draw must be 1..63, not {k!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        CounterRNG(1).draw(4, k)  # type: ignore[arg-type]


def test_counter_bit_balance() -> None:
    """Each of the 63 bit positions is set in half the draws: 6-sigma binomial bound."""
    n = 1 << 16
    words = CounterRNG(2024).draw(n, 63).astype(np.uint64)
    bound = 6 * math.sqrt(n * 0.25)
    for bit in range(63):
        ones = int(((words >> np.uint64(bit)) & np.uint64(1)).sum())
        assert abs(ones - n / 2) <= bound, (bit, ones)


@pytest.mark.parametrize("source", ["counter", "lfsr"])
def test_byte_histogram_chi_square(source: str) -> None:
    """8-bit draws: chi-square over 256 cells, 255 dof; mean 255, sd sqrt(510) ~ 22.6.

    Bound 255 + 6 * 22.6 ~ 390 (the 1 - 1e-9 quantile is about 410).
    """
    n = 256 * 400
    values = CounterRNG(77).draw(n, 8) if source == "counter" else LFSR(width=32, seed=0x1234567).draw(n, 8)
    counts = np.bincount(values, minlength=256)
    assert counts.size == 256
    expected = n / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 255 + 6 * math.sqrt(2 * 255), chi2


# --------------------------------------------------------------------------- make_source


def test_make_source() -> None:
    rng = CounterRNG(3)
    lfsr = LFSR(width=8)
    assert make_source(rng) is rng
    assert make_source(lfsr) is lfsr
    fresh = make_source(3)
    assert isinstance(fresh, CounterRNG) and fresh.seed == 3 and fresh.offset == 0
    assert isinstance(make_source(np.int64(4)), CounterRNG)
    a, b = make_source(None), make_source(None)
    assert isinstance(a, CounterRNG) and isinstance(b, CounterRNG)
    assert a.seed != b.seed  # 64 bits of OS entropy: a collision has probability 2**-64


@pytest.mark.parametrize("seed", [1.5, "3", True])
def test_make_source_bad_seed(seed: object) -> None:
    msg = f"seed must be an integer, a CounterRNG or an LFSR, not {seed!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        make_source(seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", [-1, 2**64])
def test_counter_offset_out_of_range(offset: int) -> None:
    with pytest.raises(ValueError, match=rf"^offset must be in 0\.\.2\*\*64-1, not {offset}$"):
        CounterRNG(5, offset=offset)


@pytest.mark.parametrize("offset", [1.5, "3", True])
def test_counter_offset_not_an_integer(offset: object) -> None:
    msg = f"offset must be an integer, not {offset!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        CounterRNG(5, offset=offset)  # type: ignore[arg-type]
