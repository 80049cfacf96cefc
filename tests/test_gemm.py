"""qmatmul against an exact-rational model of the documented orders and random-bit numbering."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import mpsim
from mpsim import qmatmul
from tests.conftest import stable_seed
from tests.exact_reference import Value, add, round_exact, same
from tests.random_reference import gemm_draw


def reference_qmatmul(a, b, *, mul, acc, mode, k, order, fma, draw, saturate=None, mul_mode="nearest", mul_k=None):
    """Exact model: products and sums as Fractions, each rounding by ``round_exact``.

    ``draw(output, term, stage)`` gives a stochastic rounding's random bits (None: deterministic).
    """
    mul_fmt = None if mul is None else mpsim.parse_format(mul)
    acc_fmt = mpsim.parse_format(acc)
    m, kd = a.shape
    n = b.shape[1]
    out = np.empty((m, n), dtype=object)

    for i in range(m):
        for j in range(n):
            output = i * n + j

            def rnd(value: Value, term: int, stage: int) -> Value:
                r = draw(output, term, stage) if mode == "stochastic" else 0
                return round_exact(value, acc_fmt, mode, r=r, k=k, saturate=saturate)

            terms: list[Value] = []
            for t in range(kd):
                prod = Fraction(float(a[i, t])) * Fraction(float(b[t, j]))
                if mul_fmt is not None and not fma:
                    r = draw(output, t, 0) if mul_mode == "stochastic" else None
                    prod = round_exact(prod, mul_fmt, mul_mode, r=r, k=mul_k, saturate=saturate)
                terms.append(prod)
            if order == "pairwise":
                vals = list(terms)
                if len(vals) == 1:
                    vals = [rnd(add(Fraction(0), vals[0]), 0, 1)]
                node = 0
                while len(vals) > 1:
                    nxt = []
                    for w in range(len(vals) // 2):
                        nxt.append(rnd(add(vals[2 * w], vals[2 * w + 1]), node, 1))
                        node += 1
                    if len(vals) % 2:
                        nxt.append(vals[-1])
                    vals = nxt
                out[i, j] = vals[0]
                continue
            block = order if isinstance(order, int) else kd
            total: Value = Fraction(0)
            partial: Value = Fraction(0)
            for t, term in enumerate(terms):
                start = Fraction(0) if t % block == 0 else partial
                partial = rnd(add(start, term), t, 1)
                if isinstance(order, int) and ((t + 1) % block == 0 or t == kd - 1):
                    total = rnd(add(total, partial), t // block, 2)
            out[i, j] = total if isinstance(order, int) else partial
    return out


def _operands(seed: int, m: int, kd: int, n: int, edge: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, kd)) * 4.0 ** rng.integers(-3, 4, (m, kd))
    b = rng.standard_normal((kd, n)) * 4.0 ** rng.integers(-3, 4, (kd, n))
    if edge:  # values that overflow e4m3/fp16-sized accumulators, zeros, negative zeros
        a[0, 0], a[-1, -1], b[0, -1] = 400.0, -0.0, 0.0
        b[-1, 0] = -300.0
    fmt = "e4m3"
    return mpsim.quantize(a.astype(np.float32), fmt), mpsim.quantize(b.astype(np.float32), fmt)


ORDERS = ["sequential", "pairwise", 3]
CONFIGS = [
    # (mul, acc, rounding, fma)
    ("e4m3", "e5m6", "nearest", False),
    (None, "fp16", "nearest", True),
    ("e5m6", "bf16", "stochastic:8", False),
    (None, "e5m6", "stochastic", True),
    ("e4m3", "e4m3", "stochastic:3", False),
    (None, "e6m9", "toward_zero", True),
    (None, "fp16", "up", True),
    ("fp16", "e5m2", "down", False),
    (None, "e3m4", "nearest_away", True),
    (None, "q4.11", "nearest", True),
    (None, "q3.4wrap", "stochastic:4", True),
    ("e4m3", "e8m7ns", "nearest", False),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("mul", "acc", "rounding", "fma"), CONFIGS)
@pytest.mark.parametrize("shape", [(3, 7, 4), (2, 1, 3), (2, 8, 5), (2, 37, 2)])
def test_qmatmul_matches_exact_model(order, mul, acc, rounding, fma, shape):
    m, kd, n = shape
    a, b = _operands(stable_seed(m, kd, n) % 1000, m, kd, n, edge=True)
    rule = mpsim.parse_rounding(rounding)
    k = rule.kernel_rand_bits
    draw = (lambda output, term, stage: gemm_draw(11, 0, output, kd, term, stage, k)) if rule.stochastic else None
    got = qmatmul(a, b, mul=None if fma else mul, acc=acc, rounding=rounding, fma=fma, order=order, seed=11)
    want = reference_qmatmul(a, b, mul=mul, acc=acc, mode=rule.mode.value, k=k, order=order, fma=fma, draw=draw)
    for (i, j), value in np.ndenumerate(want):
        assert same(float(got[i, j]), value), (i, j, float(got[i, j]), value)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("mul_rounding", "rounding"),
    [
        ("stochastic:5", "stochastic:8"),
        ("stochastic:16", "nearest"),
        ("stochastic:33", "stochastic:2"),
        ("stochastic", "stochastic:32"),
    ],
)
def test_stochastic_products_match_exact_model(order, mul_rounding, rounding):
    """Products and sums each rounded stochastically: stage 0 and stage 1 draws, runs of 64 // k terms per word."""
    m, kd, n = 3, 41, 4
    a, b = _operands(5, m, kd, n, edge=True)
    mul_rule, rule = mpsim.parse_rounding(mul_rounding), mpsim.parse_rounding(rounding)
    ks = {0: mul_rule.kernel_rand_bits, 1: rule.kernel_rand_bits, 2: rule.kernel_rand_bits}
    got = qmatmul(a, b, mul="e4m3", mul_rounding=mul_rounding, acc="bf16", rounding=rounding, order=order, seed=7)
    want = reference_qmatmul(
        a,
        b,
        mul="e4m3",
        acc="bf16",
        mode=rule.mode.value,
        k=ks[1],
        order=order,
        fma=False,
        draw=lambda output, term, stage: gemm_draw(7, 0, output, kd, term, stage, ks[stage]),
        mul_mode=mul_rule.mode.value,
        mul_k=ks[0],
    )
    for (i, j), value in np.ndenumerate(want):
        assert same(float(got[i, j]), value), (i, j, float(got[i, j]), value)


def test_fp32_sequential_equals_plain_float32_loop():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 33)).astype(np.float32)
    b = rng.standard_normal((33, 9)).astype(np.float32)
    loop = np.zeros((20, 9), np.float32)
    for t in range(33):
        loop = loop + a[:, t : t + 1] * b[t : t + 1, :]  # float32 products and sums, each rounded
    got = qmatmul(a, b, mul="fp32", acc="fp32")
    np.testing.assert_array_equal(got.view(np.uint32), loop.view(np.uint32))


def test_fp32_within_rounding_error_bound_of_float64_matmul():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 128)).astype(np.float32)
    b = rng.standard_normal((128, 8)).astype(np.float32)
    exact = torch.from_numpy(a).double() @ torch.from_numpy(b).double()
    got = torch.from_numpy(qmatmul(a, b, mul="fp32", acc="fp32")).double()
    u = 2.0**-24
    bound = (128 * u / (1 - 128 * u)) * (torch.from_numpy(np.abs(a)).double() @ torch.from_numpy(np.abs(b)).double())
    assert bool(((got - exact).abs() <= bound).all())


def test_batched_and_broadcast_equal_per_matrix_products():
    rng = np.random.default_rng(2)
    a = mpsim.quantize(rng.standard_normal((3, 4, 6)).astype(np.float32), "e4m3")
    w = mpsim.quantize(rng.standard_normal((6, 5)).astype(np.float32), "e4m3")
    got = qmatmul(a, w, acc="e5m6")
    for z in range(3):
        np.testing.assert_array_equal(got[z], qmatmul(a[z], w, acc="e5m6"))


def test_stochastic_same_seed_same_bits_and_torch_matches_numpy():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((5, 9)).astype(np.float32)
    b = rng.standard_normal((9, 4)).astype(np.float32)
    one = qmatmul(a, b, acc="bf16", rounding="stochastic:8", seed=4)
    np.testing.assert_array_equal(one, qmatmul(a, b, acc="bf16", rounding="stochastic:8", seed=4))
    assert not np.array_equal(one, qmatmul(a, b, acc="bf16", rounding="stochastic:8", seed=5))
    tensor = qmatmul(torch.from_numpy(a), torch.from_numpy(b), acc="bf16", rounding="stochastic:8", seed=4)
    assert isinstance(tensor, torch.Tensor)
    np.testing.assert_array_equal(tensor.numpy(), one)


def test_stochastic_accumulation_is_unbiased_where_nearest_stalls():
    """Adding many small terms to a large one: nearest stalls, stochastic tracks the exact sum."""
    a = np.ones((1, 4096), np.float32)
    b = np.full((4096, 1), 2.0**-9, np.float32)
    b[0, 0] = 1.0  # bf16 ulp at 1 is 2**-7: each later term is a quarter ulp
    exact = 1.0 + 4095 * 2.0**-9
    nearest = float(qmatmul(a, b, acc="bf16")[0, 0])
    assert nearest == 1.0
    runs = [float(qmatmul(a, b, acc="bf16", rounding="stochastic", seed=s)[0, 0]) for s in range(20)]
    assert abs(np.mean(runs) - exact) < 0.05 * exact


# Statistics of the counter stream's shared words: a run of 64 // k terms reads disjoint k-bit fields of one
# SplitMix64 word. Each check is a 6-sigma binomial bound (plus 1 count), fixed seeds: a correct stream fails one
# with probability below about 1e-8.


def _within_6_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p)) + 1


def _terms_at(places: list[list[int]], k_dim: int, values: list[float], outputs: int = 64) -> tuple[np.ndarray, ...]:
    """Batch z of ``outputs x outputs`` outputs whose only nonzero terms are ``values`` at ``places[z]``."""
    a = np.ones((len(places), outputs, k_dim), np.float32)
    b = np.zeros((len(places), k_dim, outputs), np.float32)
    for z, where in enumerate(places):
        b[z, where, :] = np.array(values[: len(where)], np.float32)[:, None]
    return a, b


@pytest.mark.parametrize("k", [1, 3, 8, 16, 21, 32])
def test_every_place_in_a_run_rounds_up_with_its_probability(k):
    """The term at place s of a run rounds up with P = floor(f 2**k) / 2**k, for every s (bf16 sums, f = 11/16)."""
    per_word = 64 // k
    f = 0.5 if k == 1 else 11 / 16 if k < 4 else 11 / 16 + 2.0**-k  # the fraction of an ulp past 1
    a, b = _terms_at([[s] for s in range(per_word + 1)], per_word + 1, [1.0 + f * 2.0**-7])  # places 0..P-1, then 0
    got = qmatmul(a, b, acc="bf16", rounding=f"stochastic:{k}", seed=1000 + k)
    p_up = math.floor(f * 2**k) / 2**k
    for s in range(per_word + 1):
        ups = int((got[s] == np.float32(1.0 + 2.0**-7)).sum())
        assert ups + int((got[s] == 1.0).sum()) == got[s].size
        assert _within_6_sigma(ups, got[s].size, p_up), (k, s, ups, got[s].size * p_up)


@pytest.mark.parametrize("k", [1, 8, 16, 32])
def test_places_of_a_run_are_independent(k):
    """Two fair coins at neighbouring places of one run: 0, 1 and 2 ups in proportions 1/4, 1/2, 1/4.

    The first term (1 + ulp/2) makes 1 or 1 + ulp, the second (ulp/2) adds half an ulp to that (bf16, ulp 2**-7).
    """
    per_word = 64 // k
    pairs = [[s, s + 1] for s in range(per_word - 1)] + [[0, per_word - 1]]
    ulp = 2.0**-7
    a, b = _terms_at(pairs, per_word, [1.0 + ulp / 2, ulp / 2])
    got = qmatmul(a, b, acc="bf16", rounding=f"stochastic:{k}", seed=2000 + k)
    for z, pair in enumerate(pairs):
        ups = (got[z].astype(np.float64) - 1.0) / ulp
        assert set(np.unique(ups)) <= {0.0, 1.0, 2.0}, (k, pair)
        counts = np.bincount(ups.astype(int).ravel(), minlength=3)
        for count, p in zip(counts, (0.25, 0.5, 0.25)):
            assert _within_6_sigma(int(count), ups.size, p), (k, pair, counts)


@pytest.mark.parametrize("rounding", ["stochastic:8", "stochastic:16", "stochastic"])
def test_stochastic_sums_are_unbiased_over_many_outputs(rounding):
    """1 plus 255 terms of at most half an ulp, every output the same sum: nearest stays 1, the SR mean is the sum.

    The terms are multiples of 2**-23, 16 bits below bf16's ulp at 1 (2**-7), so even 8 random bits leave each
    rounding's expectation within 2**-8 ulp of the exact sum (255 * 2**-15 in all, a quarter of the 6-sigma bound).
    """
    rng = np.random.default_rng(3)
    terms = np.concatenate([[1.0], rng.integers(1, 2**14, 255) * 2.0**-23]).astype(np.float32)
    exact = sum(Fraction(float(t)) for t in terms)
    a = np.ones((64, 256), np.float32)
    b = np.repeat(terms[:, None], 64, axis=1)
    assert (qmatmul(a, b, acc="bf16") == 1.0).all()
    got = qmatmul(a, b, acc="bf16", rounding=rounding, seed=5).astype(np.float64).ravel()
    k = mpsim.parse_rounding(rounding).kernel_rand_bits
    bias_bound = 255 * 2.0**-7 * 2.0**-k if k < 16 else 0.0  # truncating the fraction to k bits rounds up less often
    assert abs(got.mean() - float(exact)) <= 6 * got.std() / math.sqrt(got.size) + bias_bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": "diagonal"}, r"^order must be 'sequential', 'pairwise' or a block size >= 1, not 'diagonal'$"),
        ({"order": 0}, r"^order must be 'sequential', 'pairwise' or a block size >= 1, not 0$"),
        ({"mul": "e4m3", "fma": True}, r"^fma=True rounds once per step: it excludes a product format, got mul=e4m3$"),
        ({"acc": "e4m9x"}, r"^unknown format 'e4m9x': .*$"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match=message):
        qmatmul(a, a, **kwargs)


def test_bad_operands_are_refused():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"^qmatmul shapes \(2, 3\) and \(2, 3\) do not match: 3 != 2$"):
        qmatmul(a, a)
    with pytest.raises(
        ValueError, match=r"^qmatmul a must hold float32 values .*0\.1 is not one: quantize the input first$"
    ):
        qmatmul(np.full((2, 3), 0.1), a.T.copy())
    with pytest.raises(ValueError, match=r"^mpsim has no meta kernel yet: qmatmul a is on meta$"):
        qmatmul(torch.empty(2, 3, device="meta"), torch.ones(3, 2))
    assert not math.isnan(float(qmatmul(a, a.T.copy())[0, 0]))
