"""qmatmul's fast kernel paths give the general path's bits, and are taken only where that is proven.

The end-to-end tests check which path :meth:`GemmPlan.kernel_kinds` picks (so
a fast path is really exercised), then compare the output bit for bit with the
general path (TwoSum pairs rounded by ``round_pair``, products by
``quantize_scalar``), which ``mpsim.gemm._FAST_PATHS = False`` forces. The
roundings themselves are checked against ``quantize_scalar`` and ``round_pair``
on values built to sit on their decision boundaries.
"""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest

import mpsim
from mpsim import gemm, qmatmul
from mpsim import gemm_kernels as gk
from mpsim.gemm import GemmPlan, Products, fits
from mpsim.gemm_config import GemmConfig
from mpsim.kernels import quantize_scalar
from mpsim.params import NEAREST, exact_params, kernel_params
from mpsim.randbits import LFSR, CounterRNG
from tests.conftest import assert_same_floats, stable_seed

ORDERS = ["sequential", "pairwise", 3]
NAN_PAYLOAD = float(np.uint32(0x7FFFFFFF).view(np.float32))  # a NaN whose payload is all ones


def _spec(**kwargs) -> GemmPlan:
    assert not (kwargs.get("fma") and kwargs.get("mul") is not None)
    config = GemmConfig(
        mul=kwargs.get("mul"),
        acc=kwargs.get("acc", "fp32"),
        rounding=kwargs.get("rounding", "nearest"),
        mul_rounding=kwargs.get("mul_rounding", "nearest"),
        order=kwargs.get("order", "sequential"),
        saturate=kwargs.get("saturate"),
    )
    return GemmPlan.build(config)


def _kinds(a: np.ndarray, b: np.ndarray, **kwargs) -> tuple[int, int]:
    a3 = a if a.ndim == 3 else a[None]
    b3 = b if b.ndim == 3 else b[None]
    return _spec(**kwargs).kernel_kinds(np.ascontiguousarray(a3), np.ascontiguousarray(b3))


def _assert_general_bits(monkeypatch: pytest.MonkeyPatch, a: np.ndarray, b: np.ndarray, **kwargs) -> None:
    """qmatmul on the path it picks equals qmatmul forced onto the general path (NaN matches NaN).

    Where the path is a guarded kind, the exact kind it stands for (which
    redoes a tile the guard stopped) is checked as well, taken for every tile.
    """
    fast = qmatmul(a, b, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(gemm, "_FAST_PATHS", False)
        general = qmatmul(a, b, **kwargs)
    assert_same_floats(fast, general)
    picked = GemmPlan.kernel_kinds
    with monkeypatch.context() as m:
        m.setattr(GemmPlan, "kernel_kinds", lambda self, a3, b3: tuple(gk._checked(k) for k in picked(self, a3, b3)))
        assert_same_floats(qmatmul(a, b, **kwargs), general)


def _guarded_step(acc: str, order: str | int, operand_lsb: int, stochastic: bool, specials: bool) -> int:
    """The guarded step for terms on a grid of ``2**(2 * operand_lsb)``, Inf and NaN operands or not."""
    on_grid = 2 * operand_lsb >= mpsim.parse_format(acc).min_exponent
    if stochastic:
        return gk.STEP_STOCHASTIC_ON_GRID if on_grid and not specials else gk.STEP_STOCHASTIC_GUARDED
    if not on_grid:
        return gk.STEP_NEAREST_GUARDED
    return gk.STEP_NEAREST_ON_GRID_SIGNED if order == "pairwise" else gk.STEP_NEAREST_ON_GRID


def _with_edges(rng: np.random.Generator, a_shape: tuple, b_shape: tuple, fmt: str, specials: bool) -> tuple:
    """Operands holding ``fmt`` values, with zeros, -0, the format's extremes, optionally Inf and NaN.

    Row 0 of ``a`` is tiny and positive, column 0 of ``b`` tiny and negative:
    output (0, 0) sums tiny negative products, which round to -0 in narrow formats.
    """
    f = mpsim.parse_format(fmt)
    edges = [0.0, -0.0, f.max, -f.max, f.smallest_subnormal]
    edges += [np.inf, -np.inf, np.nan, NAN_PAYLOAD] if specials else []
    operands = []
    for shape in (a_shape, b_shape):
        x = rng.standard_normal(shape) * 4.0 ** rng.integers(-3, 4, shape)
        x = mpsim.quantize(x.astype(np.float32), f, saturate=True)
        x.reshape(-1)[rng.choice(x.size, size=len(edges), replace=False)] = edges
        operands.append(x)
    a, b = operands
    a[..., 0, :] = f.smallest_subnormal
    b[..., :, 0] = -f.smallest_subnormal
    return a, b


def _wide(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 values over a wide exponent range: products and sums far from exact in narrow formats."""
    return (rng.standard_normal(shape) * 2.0 ** rng.integers(-24, 24, shape)).astype(np.float32)


# (acc, rounding, saturate): formats with Inf (e5m6, fp16), NaN only (e4m3), neither (e3m2),
# saturating, without -0 (fnuz), wider ones (bf16, fp32); k below and above the discarded bits.
EXACT_ACCS = [
    ("e5m6", "nearest", None),
    ("fp16", "stochastic:8", None),
    ("fp16", "stochastic", None),
    ("e4m3", "nearest", None),
    ("e4m3", "stochastic:3", True),
    ("e4m3fnuz", "nearest", None),
    ("e3m2", "stochastic:2", None),
    ("bf16", "stochastic:8", None),
    ("fp32", "stochastic:12", None),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("acc", "rounding", "saturate"), EXACT_ACCS)
@pytest.mark.parametrize("specials", [False, True])
def test_exact_sum_path_equals_general(monkeypatch, order, acc, rounding, saturate, specials):
    """e4m3 operands, batched: every sum is exact in float64, so the sum itself is rounded."""
    rng = np.random.default_rng(stable_seed(order, acc, rounding, specials))
    a, b = _with_edges(rng, (2, 5, 11), (11, 23), "e4m3", specials)
    kwargs = dict(acc=acc, rounding=rounding, fma=True, order=order, saturate=saturate)
    e4m3_lsb = mpsim.parse_format("e4m3").min_exponent  # the operands hold e4m3's smallest subnormal
    step = _guarded_step(acc, order, e4m3_lsb, mpsim.parse_rounding(rounding).stochastic, specials)
    assert _kinds(a, b, **kwargs) == (gk.PROD_EXACT, step)
    _assert_general_bits(monkeypatch, a, b, seed=7, **kwargs)


# (inputs, mul, mul_rounding, acc, rounding, specials, product kind)
MUL_CONFIGS = [
    ("e4m3", "e5m2", "nearest", "e5m6", "nearest", True, gk.PROD_NEAREST_GUARDED),
    ("e4m3", "e4m3fnuz", "nearest", "fp16", "nearest", False, gk.PROD_NEAREST_GUARDED),  # -0 products become +0
    ("e4m3", "e5m2fnuz", "stochastic:5", "fp16", "stochastic:8", True, gk.PROD_STOCHASTIC_GUARDED),
    ("e4m3", "e3m4", "stochastic", "bf16", "nearest", True, gk.PROD_STOCHASTIC_GUARDED),
    ("e2m1", "e2m1", "stochastic:3", "e5m6", "stochastic:6", False, gk.PROD_STOCHASTIC_GUARDED),  # top binade: redone
    ("fp32", "e4m3", "stochastic:6", "fp16", "nearest", True, gk.PROD_STOCHASTIC),  # products below 2**(emin-52)
    ("e4m3", "bf16", "nearest", "bf16", "stochastic:4", True, gk.PROD_EXACT),  # e4m3 products fit bf16
    ("e2m1", "e5m2", "nearest", "fp16", "nearest", False, gk.PROD_NEAREST_GUARDED),  # 4-bit products, 3-bit format
    ("e2m1", "e4m3", "nearest", "fp16", "nearest", False, gk.PROD_EXACT),
    ("e2m1", "e4m3", "nearest", "fp16", "nearest", True, gk.PROD_NEAREST_GUARDED),  # Inf products: e4m3 has no Inf
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("inputs", "mul", "mul_rounding", "acc", "rounding", "specials", "prod_kind"), MUL_CONFIGS)
def test_rounded_products_equal_general(
    monkeypatch, order, inputs, mul, mul_rounding, acc, rounding, specials, prod_kind
):
    rng = np.random.default_rng(stable_seed(order, inputs, mul, specials))
    a, b = _with_edges(rng, (6, 13), (3, 13, 9), inputs, specials)  # a broadcasts over b's batch
    kwargs = dict(mul=mul, mul_rounding=mul_rounding, acc=acc, rounding=rounding, order=order)
    assert _kinds(a, b, **kwargs)[0] == prod_kind
    _assert_general_bits(monkeypatch, a, b, seed=3, **kwargs)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("acc", "rounding"),
    [
        ("e5m6", "nearest"),
        ("bf16", "stochastic:8"),
        ("fp16", "stochastic:29"),
        ("e4m3", "nearest"),
        ("e3m2", "stochastic:5"),
    ],
)
def test_round_to_odd_pair_path_equals_general(monkeypatch, order, acc, rounding):
    """Sums far from exact (wide float32 data): TwoSum, rounded to odd, then rounded like an exact value."""
    rng = np.random.default_rng(5)
    a = _wide(rng, (17, 64))
    b = rng.standard_normal((64, 19)).astype(np.float32)
    assert _kinds(a, b, acc=acc, rounding=rounding, order=order) == (gk.PROD_EXACT, gk.STEP_PAIR)
    _assert_general_bits(monkeypatch, a, b, acc=acc, rounding=rounding, order=order, seed=3)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic:1", "stochastic:6"])
def test_pair_path_ties_and_cell_edges(monkeypatch, rounding):
    """Sums whose float64 value is a bf16 tie (a stochastic cell edge) and only the TwoSum error decides."""
    rng = np.random.default_rng(11)
    k = 24
    a = np.full((8, k), 2.0**-8 * (1 + 2.0**-23), np.float32)
    b = (rng.choice([-1.0, 1.0], (k, 16)) * (1 - 2.0**-23)).astype(np.float32)
    a[:, 0], b[0] = 1.0, 1 + 2.0**-7
    # the accumulator starts at 1 + 2**-7 (odd last bit); each term is +-(2**-8 - 2**-54): the float64 sum
    # is the tie 1 + 2**-7 +- 2**-8, the error 2**-54 says which side the exact sum is on
    for order in ORDERS:
        assert _kinds(a, b, acc="bf16", rounding=rounding, fma=True, order=order) == (gk.PROD_EXACT, gk.STEP_PAIR)
        _assert_general_bits(monkeypatch, a, b, acc="bf16", rounding=rounding, fma=True, order=order, seed=1)
    if rounding == "nearest":  # the exact sums round back to 1 + 2**-7 every step
        np.testing.assert_array_equal(qmatmul(a, b, acc="bf16", fma=True), np.float32(1 + 2.0**-7))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("data", "mul", "prod_kind"),
    [
        ("e4m3", None, gk.PROD_EXACT),
        ("bf16", None, gk.PROD_EXACT),
        ("wide", "fp32", gk.PROD_NEAREST_GUARDED),
        ("wide", "e5m2", gk.PROD_NEAREST_GUARDED),
    ],
)
def test_float32_hardware_path_equals_general(monkeypatch, order, data, mul, prod_kind):
    """fp32 nearest accumulation of float32-valued terms, with overflow to Inf, Inf and NaN inputs."""
    rng = np.random.default_rng(stable_seed(order, data, mul))
    if data == "wide":
        a, b = _wide(rng, (9, 20)), _wide(rng, (20, 14))
        a[0, :4] = [3e38, -3e38, np.inf, np.nan]  # float32 overflow and specials
        b[:4, 0] = 3e38
    else:
        a = mpsim.quantize(_wide(rng, (9, 20)) * np.float32(2.0**-20), data)
        b = mpsim.quantize(rng.standard_normal((20, 14)).astype(np.float32), data)
    kwargs = dict(mul=mul, fma=mul is None, acc="fp32", order=order)
    assert _kinds(a, b, **kwargs) == (prod_kind, gk.STEP_F32)
    with np.errstate(over="ignore", invalid="ignore"):
        _assert_general_bits(monkeypatch, a, b, **kwargs)


@pytest.mark.parametrize(("acc", "rounding"), [("e5m6", "nearest"), ("fp16", "stochastic:8"), ("bf16", "stochastic:5")])
def test_tiles_and_batches_take_their_own_draws(monkeypatch, acc, rounding):
    """Any split into work items gives the same bits, and batch z takes the draws that follow batch z-1's."""
    rng = np.random.default_rng(2)
    a, b = _with_edges(rng, (2, 19, 7), (2, 7, 150), "e4m3", specials=False)
    for order in ORDERS:
        kwargs = dict(acc=acc, rounding=rounding, fma=True, order=order)
        monkeypatch.setattr(gemm, "TILE_ELEMENTS", 10**9)  # one work item per batch entry
        whole = qmatmul(a, b, seed=CounterRNG(9), **kwargs)
        monkeypatch.setattr(gemm, "TILE_ELEMENTS", 6)  # many row and column tiles
        assert_same_floats(qmatmul(a, b, seed=CounterRNG(9), **kwargs), whole)
        _assert_general_bits(monkeypatch, a, b, seed=9, **kwargs)
        draws = 19 * 150 * 7 * gk.STAGES
        for z in range(2):
            assert_same_floats(qmatmul(a[z], b[z], seed=CounterRNG(9, offset=z * draws), **kwargs), whole[z])


def test_lfsr_bits_reach_the_fast_paths_unchanged(monkeypatch):
    """Explicit random bits (an LFSR's) are read by draw index exactly as the general path reads them."""
    rng = np.random.default_rng(4)
    a, b = _with_edges(rng, (4, 9), (9, 6), "e4m3", specials=False)
    kwargs = dict(mul="e5m2", mul_rounding="stochastic:7", acc="fp16", rounding="stochastic:7", order="pairwise")
    assert _kinds(a, b, **kwargs) == (gk.PROD_STOCHASTIC_GUARDED, gk.STEP_STOCHASTIC_ON_GRID)
    fast = qmatmul(a, b, seed=LFSR(16, seed=5), **kwargs)
    monkeypatch.setattr(gemm, "_FAST_PATHS", False)
    assert_same_floats(fast, qmatmul(a, b, seed=LFSR(16, seed=5), **kwargs))


@pytest.mark.parametrize(
    ("kwargs", "kinds"),
    [
        (dict(acc="fp16", fma=True), (gk.PROD_EXACT, gk.STEP_PAIR)),  # wide data: sums are not exact
        (dict(acc="fp32", fma=True), (gk.PROD_EXACT, gk.STEP_PAIR)),  # products need 48 bits, not 24
        (dict(acc="fp32", rounding="stochastic:29", fma=True), (gk.PROD_EXACT, gk.STEP_GENERAL)),  # 23 + 29 > 51
        (dict(acc="bf16", rounding="stochastic", fma=True), (gk.PROD_EXACT, gk.STEP_GENERAL)),  # exact SR: 62 bits
        (dict(acc="e8m7ns", fma=True), (gk.PROD_EXACT, gk.STEP_GENERAL)),  # no subnormals
        (dict(acc="fp16", rounding="toward_zero", fma=True), (gk.PROD_EXACT, gk.STEP_GENERAL)),
        (dict(acc="q4.11", fma=True), (gk.PROD_EXACT, gk.STEP_GENERAL)),
        (dict(mul="q3.8", acc="fp16"), (gk.PROD_GENERAL, gk.STEP_NEAREST_ON_GRID)),  # fixed-point terms: exact sums
        (dict(mul="fp16", mul_rounding="up", acc="fp32"), (gk.PROD_GENERAL, gk.STEP_F32)),
    ],
)
def test_path_choice_for_wide_operands(monkeypatch, kwargs, kinds):
    """Where no fast path is proven the general steps remain; what is proven is still taken."""
    rng = np.random.default_rng(8)
    a, b = _wide(rng, (5, 12)), _wide(rng, (12, 4))
    assert _kinds(a, b, **kwargs) == kinds
    with np.errstate(over="ignore", invalid="ignore"):
        _assert_general_bits(monkeypatch, a, b, seed=2, **kwargs)


def test_narrow_accumulators_are_exact_for_any_length():
    """e4m3 products into e5m6 or fp16 are exact in float64 whatever K (the format bounds every sum)."""
    a = mpsim.quantize(np.linspace(-448, 448, 2 * 100_000, dtype=np.float32).reshape(2, -1), "e4m3")
    b = np.ascontiguousarray(a.T)
    for acc in ("e5m6", "fp16"):
        assert _kinds(a, b, acc=acc, fma=True) == (gk.PROD_EXACT, gk.STEP_NEAREST_ON_GRID)
    assert _kinds(a, b, acc="bf16", fma=True) == (gk.PROD_EXACT, gk.STEP_PAIR)  # 2**129 over a 2**-18 grid


def test_saturation_to_max_counts_in_the_grid_of_the_sums():
    """Terms on a coarse grid (2**60) still meet max (448, on a 2**5 grid): 2**100 + 448 needs 96 bits."""
    spec = _spec(acc="e4m3", fma=True, saturate=True)
    assert spec._sums_exact(60, 2.0**100, 4) is False
    assert spec._sums_exact(5, 2.0**40, 4) is True


def test_fits_is_exactly_the_format():
    e5m2, p = mpsim.parse_format("e5m2"), kernel_params(mpsim.parse_format("e5m2"), mpsim.parse_rounding("nearest"))
    inside = Products(lsb=e5m2.min_exponent, sig=e5m2.man_bits + 1, max=e5m2.max, inf=True)
    assert fits(inside, e5m2, p)
    assert not fits(inside._replace(sig=e5m2.man_bits + 2), e5m2, p)
    assert not fits(inside._replace(lsb=e5m2.min_exponent - 1), e5m2, p)
    assert not fits(inside._replace(max=e5m2.max * (1 + 2.0**-10)), e5m2, p)
    saturating = kernel_params(e5m2, mpsim.parse_rounding("nearest"), saturate=True)
    assert not fits(inside, e5m2, saturating) and fits(inside._replace(inf=False), e5m2, saturating)
    e4m3fnuz = mpsim.parse_format("e4m3fnuz")
    assert not fits(Products(0, 1, 1.0, False), e4m3fnuz, kernel_params(e4m3fnuz, mpsim.parse_rounding("nearest")))


@numba.njit
def _exact_roundings(values, draws, p, x, nearest, stochastic, general):
    for i in range(values.size):
        nearest[i] = gk.round_exact_nearest(values[i], x)
        stochastic[i] = gk.round_exact_stochastic(values[i], x, np.uint64(draws[i]))
        general[i] = quantize_scalar(values[i], p, draws[i])


def _top_bits(x: float, fmt: mpsim.FloatFormat, k: int) -> int:
    """The top ``k`` bits of the fraction of ``|x|`` (finite) in quanta of ``fmt`` (exponent unbounded above)."""
    mag = abs(Fraction(x))
    if mag == 0:
        return 0
    exponent = mag.numerator.bit_length() - mag.denominator.bit_length()
    exponent += 1 if Fraction(2) ** (exponent + 1) <= mag else -1 if Fraction(2) ** exponent > mag else 0
    quantum = Fraction(2) ** (exponent - fmt.man_bits if exponent >= fmt.emin else fmt.min_exponent)
    return int((mag / quantum - mag // quantum) * 2**k)


def _boundary_values(fmt: mpsim.FloatFormat, k: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 values across the format's range, with draws that put them on their decision edges.

    For each value with top fraction bits ``t``: the draw ``2**k - t`` (a carry, just), one less (just
    none), and a random one. The values include ties, grid points, overflow, zeros and specials.
    """
    exponents = rng.integers(fmt.min_exponent - 3, fmt.emax + 3, n)
    values = [float(np.ldexp(1.0 + rng.random(), int(e))) for e in exponents]
    values += [float(np.ldexp(2 * int(rng.integers(1, 64)) + 1, fmt.min_exponent - 1)) for _ in range(n // 4)]  # ties
    values += [fmt.max, fmt.max * (1 + 2.0 ** -(fmt.man_bits + 1)), 0.0, np.inf, np.nan, NAN_PAYLOAD]
    vals, draws = [], []
    for v in values:
        top = _top_bits(v, fmt, k) if np.isfinite(v) else 0
        for r in (2**k - top, 2**k - top - 1, int(rng.integers(0, 2**k, dtype=np.uint64))):
            if 0 <= r < 2**k:
                vals += [v, -v]
                draws += [r, r]
    return np.array(vals), np.array(draws, dtype=np.int64)


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "e4m3", "e4m3fnuz", "e3m2", "e2m1", "fp32"])
@pytest.mark.parametrize("k", [1, 8, 29, 62])
@pytest.mark.parametrize("saturate", [None, True])
def test_exact_value_roundings_equal_quantize_scalar(fmt, k, saturate):
    f = mpsim.parse_format(fmt)
    rng = np.random.default_rng(stable_seed(fmt, k, saturate))
    values, draws = _boundary_values(f, k, rng, 300)
    results = {}
    for rounding in ("nearest", f"stochastic:{k}"):
        rule = mpsim.parse_rounding(rounding)
        p = kernel_params(f, rule, saturate)
        out = [np.empty_like(values) for _ in range(3)]
        _exact_roundings(values, draws, p, exact_params(f, rule, p), *out)
        results[rounding] = out
    nearest, _, general_nearest = results["nearest"]
    _, stochastic, general_stochastic = results[f"stochastic:{k}"]
    clear = 0.0 if f.specials == "fnuz" else -0.0  # their -0 is cleared when a product's outputs are stored
    assert_same_floats(nearest + clear, general_nearest, values)
    assert_same_floats(stochastic + clear, general_stochastic, values)


@numba.njit
def _guarded_roundings(values, draws, x, nearest, on_grid, stochastic, stochastic_on_grid):
    for i in range(values.size):
        nearest[i] = gk.round_nearest_guarded(values[i], x)
        on_grid[i] = gk.round_nearest_on_grid(values[i], x)
        addend = gk.stochastic_addend(np.uint64(draws[i]), x)
        stochastic[i] = gk.round_stochastic_guarded(values[i], x, addend)
        # the on-grid kind's values are held times 2**(1024 - emax)
        stochastic_on_grid[i] = gk.round_stochastic_on_grid(values[i] * x.guard_scale, x, addend) / x.guard_scale


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "e4m3", "e4m3fnuz", "e3m2", "e2m1", "fp32", "e5m6"])
@pytest.mark.parametrize("k", [1, 8, 29, 62])
def test_guarded_roundings_equal_quantize_scalar_below_two_to_emax(fmt, k):
    """The guarded roundings give quantize_scalar's bits below 2**emax and NaN from there up.

    The stochastic one on multiples of 2**(emin - 52), the on-grid nearest one
    on multiples of the smallest quantum (not -0), as their callers guarantee.
    The on-grid stochastic one, which works on scaled values, gives Inf where
    the value or its rounding is 2**emax or more.
    """
    f = mpsim.parse_format(fmt)
    rng = np.random.default_rng(stable_seed(fmt, k, "guarded"))
    values, draws = _boundary_values(f, k, rng, 300)
    values[: values.size // 3] = np.round(values[: values.size // 3] / 2.0**f.min_exponent) * 2.0**f.min_exponent
    want = {}
    for rounding in ("nearest", f"stochastic:{k}"):
        p = kernel_params(f, mpsim.parse_rounding(rounding))
        want[rounding] = np.array([quantize_scalar(v, p, int(r)) for v, r in zip(values, draws)])
    rule = mpsim.parse_rounding("nearest")
    nearest, on_grid, _, _ = out = [np.empty_like(values) for _ in range(4)]
    with np.errstate(invalid="ignore", over="ignore"):
        _guarded_roundings(values, draws, exact_params(f, rule, kernel_params(f, rule)), *out)
    inside = np.nan_to_num(np.abs(values), nan=np.inf) < 2.0**f.emax  # False for Inf and NaN
    finite = np.where(np.isfinite(values), values, 0.5)  # fmod of specials: a non-multiple, no warning
    assert np.isnan(nearest[~inside]).all() and np.isnan(on_grid[~inside]).all()
    clear = 0.0 if f.specials == "fnuz" else -0.0  # their -0 is cleared when a product's outputs are stored
    assert_same_floats(nearest[inside] + clear, want["nearest"][inside], values[inside])
    grid = inside & (np.fmod(finite, 2.0**f.min_exponent) == 0) & ~((values == 0) & np.signbit(values))
    assert grid.sum() > 100
    assert_same_floats(on_grid[grid] + clear, want["nearest"][grid], values[grid])
    fine = inside & (np.fmod(finite, 2.0 ** (f.emin - 52)) == 0)
    assert fine.sum() > 100
    stochastic_rule = mpsim.parse_rounding(f"stochastic:{k}")
    _, _, sr, sr_on_grid = out = [np.empty_like(values) for _ in range(4)]
    with np.errstate(invalid="ignore", over="ignore"):
        _guarded_roundings(values, draws, exact_params(f, stochastic_rule, kernel_params(f, stochastic_rule)), *out)
    assert np.isnan(sr[~inside]).all()
    assert_same_floats(sr[fine] + clear, want[f"stochastic:{k}"][fine], values[fine])
    # on the grid: the same bits where the result is below 2**emax; Inf where the value or the result is not
    # (its callers keep NaN operands away)
    want_sr = want[f"stochastic:{k}"]
    reaches = ~inside | (np.abs(want_sr) >= 2.0**f.emax)
    assert np.isinf(sr_on_grid[reaches & ~np.isnan(values) & (grid | ~inside)]).all()
    assert (grid & ~reaches).sum() > 100
    assert_same_floats(sr_on_grid[grid & ~reaches] + clear, want_sr[grid & ~reaches], values[grid & ~reaches])


@numba.njit
def _addends(words, used, k, x, placed, drawn):
    left, shift = gk._addend_placement(used, x)
    for i in range(words.size):
        placed[i] = gk._addend(words[i], left, shift, x)
        drawn[i] = gk.stochastic_addend(gk._draw(words[i], used, k), x)


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "e4m3", "e2m1", "fp32", "e5m6"])
@pytest.mark.parametrize("k", [1, 3, 8, 16, 21, 32, 45, 62])
def test_an_addend_cut_from_its_word_is_the_draw_placed(fmt, k):
    """The steps' two-shift cut of a rounding's bits equals the draw (_draw) scaled by stochastic_addend.

    Every place a draw of ``k`` bits takes in its word (``used`` = 0, k, 2k, ...,
    as the runs of shared words hand them out), random words and extremes.
    """
    f = mpsim.parse_format(fmt)
    rule = mpsim.parse_rounding(f"stochastic:{k}")
    x = exact_params(f, rule, kernel_params(f, rule))
    rng = np.random.default_rng(k)
    words = np.concatenate([rng.integers(0, 2**64, 200, dtype=np.uint64), np.array([0, 2**64 - 1], np.uint64)])
    placed, drawn = np.empty_like(words), np.empty_like(words)
    for used in range(0, 64 - k + 1, k):
        _addends(words, used, k, x, placed, drawn)
        np.testing.assert_array_equal(placed, drawn)
        assert (placed != 0).any()


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(
    ("acc", "rounding", "saturate"),
    [("e5m6", "nearest", None), ("e5m6", "nearest", True), ("fp16", "stochastic:8", True), ("e4m3", "nearest", True)],
)
def test_a_guard_recomputes_only_what_it_must(monkeypatch, order, acc, rounding, saturate):
    """Sums that climb into the top binade or overflow, then come back, in some tiles of many.

    Row 0 of ``a`` with columns 0 and 1 of ``b`` overflows the accumulator
    (a saturating one then recovers), row 1 passes through the top binade
    without overflowing; every other output stays small. The guarded kinds must hand
    those tiles to the checked ones and keep the rest.
    """
    f = mpsim.parse_format(acc)
    big = mpsim.quantize(np.float32(np.sqrt(f.max)), "e4m3", rounding="toward_zero")  # two such products overflow
    rng = np.random.default_rng(6)
    a = mpsim.quantize(rng.standard_normal((40, 8)).astype(np.float32), "e4m3")
    b = mpsim.quantize(rng.standard_normal((8, 70)).astype(np.float32), "e4m3")
    a[0, :4], b[:4, 0] = [big, big, -big, -big], [big, big, big, big]
    a[1, :4], b[:4, 1] = [big, -big, big, -big], [big * 0.75, big * 0.75, big * 0.75, big * 0.75]
    b[:4, 1] = mpsim.quantize(b[:4, 1], "e4m3")
    kwargs = dict(acc=acc, rounding=rounding, fma=True, order=order, saturate=saturate, seed=4)
    assert gk._checked(_kinds(a, b, **kwargs)[1]) != _kinds(a, b, **kwargs)[1]  # a guarded kind is picked
    monkeypatch.setattr(gemm, "TILE_ELEMENTS", 64)
    _assert_general_bits(monkeypatch, a, b, **kwargs)
    out = qmatmul(a, b, **kwargs)
    if saturate is None:
        assert np.isinf(out[0, 0]) or np.isnan(out[0, 0])  # overflowed for good
    assert np.isfinite(out[1:]).all() and np.isfinite(out[0, 2:]).all()  # (0, 1) overflows too


@pytest.mark.parametrize("rounding", ["nearest", "stochastic:8"])
def test_a_pairwise_tree_of_negative_zeros_is_negative_zero(monkeypatch, rounding):
    """-0 products: a pairwise tree adds -0 + -0 = -0 at every node; a sequential sum starts from +0."""
    a = np.ones((3, 9), np.float32)
    b = np.ones((9, 4), np.float32)
    a[0], b[:, 0] = 0.0, -1.0  # output (0, 0): nine -0 products; (0, 1..3): +0 ones; (1.., 0): -1 each
    for order, zero in (("pairwise", -0.0), ("sequential", 0.0), (4, 0.0)):
        kwargs = dict(acc="e5m6", rounding=rounding, fma=True, order=order, seed=1)
        step = _guarded_step("e5m6", order, 0, rounding != "nearest", specials=False)
        assert _kinds(a, b, **kwargs) == (gk.PROD_EXACT, step)
        out = qmatmul(a, b, **kwargs)
        assert out[0, 0] == 0 and np.signbit(out[0, 0]) == np.signbit(zero)
        _assert_general_bits(monkeypatch, a, b, **kwargs)


@pytest.mark.parametrize("rounding", ["nearest", "stochastic:4"])
def test_formats_below_one_keep_the_checked_nearest_step(monkeypatch, rounding):
    """A large bias puts emax below 1: the guarded nearest constants would overflow, so the checked step runs."""
    acc = mpsim.FloatFormat(3, 2, bias=20)  # emin -19, emax -14
    rng = np.random.default_rng(12)
    a = mpsim.quantize((rng.standard_normal((6, 9)) * 2.0**-8).astype(np.float32), "e4m3")
    b = mpsim.quantize((rng.standard_normal((9, 5)) * 2.0**-8).astype(np.float32), "e4m3")
    step = gk.STEP_STOCHASTIC_GUARDED if rounding != "nearest" else gk.STEP_NEAREST
    assert _kinds(a, b, acc=acc, rounding=rounding, fma=True) == (gk.PROD_EXACT, step)
    _assert_general_bits(monkeypatch, a, b, acc=acc, rounding=rounding, fma=True, seed=5)


@numba.njit
def _pair_roundings(x, y, draws, p, xp, fast, general):
    for i in range(x.size):
        s, e = gk.two_sum(x[i], y[i])
        odd = gk.round_to_odd(s, e)
        if p.mode == NEAREST:
            fast[i] = gk.round_exact_nearest(odd, xp)
        else:
            fast[i] = gk.round_exact_stochastic(odd, xp, np.uint64(draws[i]))
        general[i] = gk.round_pair(s, e, p, draws[i])


@pytest.mark.parametrize(
    ("fmt", "rounding"),
    [
        ("bf16", "nearest"),
        ("e5m6", "nearest"),
        ("bf16", "stochastic:1"),
        ("fp16", "stochastic:29"),
        ("fp32", "stochastic:28"),
    ],
)
def test_round_to_odd_pairs_equal_round_pair(fmt, rounding):
    """Pairs s + e on and next to ties and cell edges (s a float64 on the edge, e tiny of either sign)."""
    f, rule = mpsim.parse_format(fmt), mpsim.parse_rounding(rounding)
    p = kernel_params(f, rule)
    rng = np.random.default_rng(3)
    k = rule.kernel_rand_bits if rule.stochastic else 1
    n = 4000
    exponent = rng.integers(f.min_exponent - 2, f.emax + 2, n)
    # x: a multiple of 2**(quantum - k) (an edge of a stochastic cell, or a tie when k = 1); y tiny
    x = np.ldexp(rng.integers(2**k, 2 ** (k + f.man_bits + 1), n).astype(np.float64), exponent - f.man_bits - k)
    y = np.ldexp(rng.choice([-1.0, 1.0, -3.0, 0.0], n), exponent - 60)
    x[:6], y[:6] = [np.inf, -np.inf, np.nan, 1.0, f.max, -f.max], [1.0, 1.0, 1.0, np.inf, 2.0**-40, -(2.0**-40)]
    draws = rng.integers(0, 2**k, n, dtype=np.int64)
    draws[1::2] = 2**k - 1  # the top draw: up unless the fraction is below the first cell edge
    fast, general = np.empty(n), np.empty(n)
    with np.errstate(invalid="ignore"):
        _pair_roundings(x, y, draws, p, exact_params(f, rule, p), fast, general)
    assert_same_floats(fast, general, x)


@pytest.mark.parametrize("order", ["sequential", "pairwise"])
def test_outputs_do_not_depend_on_the_thread_count(monkeypatch, order):
    """Work items are shared out over threads: one thread and two give the same bits, guard-redone tiles included."""
    f = mpsim.parse_format("fp16")
    big = mpsim.quantize(np.float32(np.sqrt(f.max)), "e4m3", rounding="toward_zero")
    rng = np.random.default_rng(8)
    a = mpsim.quantize(rng.standard_normal((40, 12)).astype(np.float32), "e4m3")
    b = mpsim.quantize(rng.standard_normal((12, 90)).astype(np.float32), "e4m3")
    a[0, :4], b[:4, 0] = [big, big, big, big], [big, big, big, big]  # output (0, 0) overflows: its tile is redone
    monkeypatch.setattr(gemm, "TILE_ELEMENTS", 64)  # many tiles
    kwargs = dict(acc="fp16", rounding="stochastic:8", fma=True, order=order, seed=3)
    assert gk._checked(_kinds(a, b, **kwargs)[1]) != _kinds(a, b, **kwargs)[1]  # a guarded kind
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        alone = qmatmul(a, b, **kwargs)
    finally:
        numba.set_num_threads(threads)
    shared = qmatmul(a, b, **kwargs)
    assert threads >= 2 or numba.config.NUMBA_NUM_THREADS < 2  # (this machine has 2 cores: two threads ran)
    assert np.isinf(alone[0, 0]) and np.isfinite(alone[1:]).all()
    assert_same_floats(shared, alone)


def test_a_kernel_refuses_an_unknown_kind():
    a = np.ones((1, 2, 2), np.float32)
    no_bits = np.zeros(0, np.int64)
    args = gk.GemmArgs(
        gk.PROD_EXACT, None, None, None, None, gk.ORDER_SEQUENTIAL, 1, 0, np.uint64(0), np.uint64(0), no_bits
    )
    with pytest.raises(ValueError, match=r"^unknown step kind 99; known: "):
        gk.qgemm(a, a, np.zeros((1, 2, 2)), args, 99, 2, 2)
    with pytest.raises(ValueError, match=r"^unknown order kind 7; known: "):
        gk.qgemm(a, a, np.zeros((1, 2, 2)), args._replace(order=7), gk.STEP_F32, 2, 2)
    with pytest.raises(ValueError, match=r"^unknown product kind 5; known: "):
        gk.qgemm(a, a, np.zeros((1, 2, 2)), args._replace(prod_kind=5), gk.STEP_F32, 2, 2)


def test_a_step_kind_known_only_at_run_time_does_not_compile():
    """Each kernel compiles its own step kind's loop only.

    A step kind that is not a constant is a typing error, rather than a compile of every loop.
    """

    @numba.njit
    def step_of(kind, x, ones, params, exact):
        gk._step(kind, x, ones, x, 1, params, exact, np.zeros((1, 1), np.uint64), 0)

    x, ones = np.zeros((1, 1)), np.ones(1)
    spec = _spec(acc="fp16")
    with pytest.raises(numba.core.errors.TypingError, match="compile-time constant"):
        step_of(gk.STEP_NEAREST, x, ones, spec.acc_params, spec.acc_exact)
