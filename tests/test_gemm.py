"""qmatmul against an exact-rational model of the documented orders and random-bit numbering."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import mpsim
from mpsim.gemm import qmatmul
from mpsim.randbits import CounterRNG
from tests.exact_reference import Value, add, round_exact, same

STAGES = 3


def reference_qmatmul(a, b, *, mul, acc, mode, k, order, fma, draws, saturate=None):
    """Exact model: products and sums as Fractions, each rounding by ``round_exact``."""
    mul_fmt = None if mul is None else mpsim.parse_format(mul)
    acc_fmt = mpsim.parse_format(acc)
    m, kd = a.shape
    n = b.shape[1]
    out = np.empty((m, n), dtype=object)

    def r_at(index: int) -> int:
        return int(draws[index]) if draws is not None else 0

    for i in range(m):
        for j in range(n):
            base = (i * n + j) * kd

            def rnd(value: Value, index: int) -> Value:
                return round_exact(value, acc_fmt, mode, r=r_at(index), k=k, saturate=saturate)

            terms: list[Value] = []
            for t in range(kd):
                prod = Fraction(float(a[i, t])) * Fraction(float(b[t, j]))
                if mul_fmt is not None and not fma:
                    prod = round_exact(prod, mul_fmt, "nearest", saturate=saturate)
                terms.append(prod)
            if order == "pairwise":
                vals = list(terms)
                if len(vals) == 1:
                    vals = [rnd(add(Fraction(0), vals[0]), (base + 0) * STAGES + 1)]
                node = 0
                while len(vals) > 1:
                    nxt = []
                    for w in range(len(vals) // 2):
                        nxt.append(rnd(add(vals[2 * w], vals[2 * w + 1]), (base + node) * STAGES + 1))
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
                partial = rnd(add(start, term), (base + t) * STAGES + 1)
                if isinstance(order, int) and ((t + 1) % block == 0 or t == kd - 1):
                    total = rnd(add(total, partial), (base + t // block) * STAGES + 2)
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
@pytest.mark.parametrize("shape", [(3, 7, 4), (2, 1, 3), (2, 8, 5)])
def test_qmatmul_matches_exact_model(order, mul, acc, rounding, fma, shape):
    m, kd, n = shape
    a, b = _operands(hash((m, kd, n)) % 1000, m, kd, n, edge=True)
    rule = mpsim.parse_rounding(rounding)
    k = rule.kernel_rand_bits
    draws = CounterRNG(11).draw(m * n * kd * STAGES, k) if rule.stochastic else None
    got = qmatmul(a, b, mul=None if fma else mul, acc=acc, rounding=rounding, fma=fma, order=order, seed=11)
    want = reference_qmatmul(a, b, mul=mul, acc=acc, mode=rule.mode.value, k=k, order=order, fma=fma, draws=draws)
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
    with pytest.raises(ValueError, match=r"^qmatmul a must hold float32 values .*0\.1 is not one: quantize the input first$"):
        qmatmul(np.full((2, 3), 0.1), a.T.copy())
    with pytest.raises(ValueError, match=r"^mpsim has no meta kernel yet: qmatmul a is on meta$"):
        qmatmul(torch.empty(2, 3, device="meta"), torch.ones(3, 2))
    assert not math.isnan(float(qmatmul(a, a.T.copy())[0, 0]))
