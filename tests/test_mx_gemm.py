"""MX GEMMs (qmatmul with an MX ``mul``) bit for bit against an exact-rational model of an MX dot-product unit.

The model: operands from ``mpsim.encode_mx`` (tested against gfloat in
tests/test_mx.py): scale codes, and element values read back with
``decode_mx`` at scale 2**0; then for each output, block by block, the exact
block sum of element products (Fractions) times ``2**(Ea + Eb)`` (NaN for a
NaN scale), added into the accumulator from 0 and rounded by
``tests.exact_reference.round_exact``; stochastic bits from the documented
counter stream (``tests.random_reference.gemm_draw`` with K = the number of blocks).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import mpsim
from mpsim import GemmConfig, qmatmul
from mpsim.mx import MX_PRESETS, SCALE_BIAS, SCALE_NAN_CODE
from mpsim.mx_gemm import block_split
from mpsim.mx_gemm_kernels import mx_gemm_sequential
from mpsim.params import SOURCE_ARRAY, kernel_params
from mpsim.randbits import LFSR
from tests.conftest import stable_seed
from tests.exact_reference import Value, add, round_exact, same
from tests.random_reference import gemm_draw

PRESETS = list(MX_PRESETS)


def _blocks_of(x: np.ndarray, fmt: mpsim.MXFormat, axis: int, rounding="nearest", seed=None):
    """(scale codes as ints; element values), blocks along ``axis``, elements rounded as ``encode_mx`` rounds."""
    scales, codes = mpsim.encode_mx(x, fmt, axis=axis, rounding=rounding, seed=seed)
    elements = mpsim.decode_mx(np.full_like(scales, SCALE_BIAS), codes, fmt, axis=axis, shape=x.shape)
    return scales.astype(np.int64), elements


def _formats(spec: str) -> tuple[mpsim.MXFormat, mpsim.MXFormat]:
    """A's and B's formats of ``"F"`` or ``"A,B"``."""
    names = spec.split(",")
    return mpsim.parse_format(names[0]), mpsim.parse_format(names[-1])


def reference_mx_qmatmul(a, b, fmt, acc, mode, k, draw, block_sum=None, elements="nearest", element_seed=None):
    """The exact model of the module doc; ``draw(output, block)`` gives a stochastic rounding's bits.

    ``block_sum``: a format each exact block sum is rounded into (to nearest) before the scaling.
    ``elements``: the elements' rounding, A's draws then B's from the source ``element_seed``.
    """
    fmt_a, fmt_b = _formats(fmt)
    acc_fmt = mpsim.parse_format(acc)
    sa, ea = _blocks_of(a, fmt_a, axis=1, rounding=elements, seed=element_seed)
    sb, eb = _blocks_of(b, fmt_b, axis=0, rounding=elements, seed=element_seed)
    m, kd = a.shape
    n = b.shape[1]
    bs = fmt_a.block_size
    nb = -(-kd // bs)
    out = np.empty((m, n), dtype=object)
    for i in range(m):
        for j in range(n):
            total: Value = Fraction(0)
            for t in range(nb):
                if SCALE_NAN_CODE in (sa[i, t], sb[t, j]):
                    term: Value = math.nan
                else:
                    block = range(t * bs, min((t + 1) * bs, kd))  # the padding adds nothing
                    exact = sum((Fraction(float(ea[i, u])) * Fraction(float(eb[u, j])) for u in block), Fraction(0))
                    scaled: Value = exact if block_sum is None else round_exact(exact, block_sum, "nearest")
                    scale = Fraction(2) ** (int(sa[i, t]) + int(sb[t, j]) - 2 * SCALE_BIAS)
                    term = scaled if isinstance(scaled, float) else scaled * scale  # Inf and NaN stay
                r = draw(i * n + j, t) if mode == "stochastic" else 0
                total = round_exact(add(total, term), acc_fmt, mode, r=r, k=k)
            out[i, j] = total
    return out


def _check(a, b, fmt, acc, rounding, seed=11, block_sum=None):
    rule = mpsim.parse_rounding(rounding)
    k = rule.kernel_rand_bits
    nb = -(-a.shape[1] // _formats(fmt)[0].block_size)
    got = qmatmul(a, b, mul=fmt, acc=acc, rounding=rounding, seed=seed, block_sum=block_sum)
    draw = lambda output, t: gemm_draw(seed, 0, output, nb, t, 1, k)  # noqa: E731
    bs_fmt = None if block_sum is None else mpsim.parse_format(block_sum)
    want = reference_mx_qmatmul(a, b, fmt, acc, rule.mode.value, k, draw, bs_fmt)
    for (i, j), value in np.ndenumerate(want):
        assert same(float(got[i, j]), value), (i, j, float(got[i, j]), value)
    return want


def _operands(seed: int, m: int, kd: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes over 2**-40..2**40 within blocks, each block times its own power of two."""
    rng = np.random.default_rng(seed)

    def one(shape: tuple[int, int]) -> np.ndarray:
        x = rng.choice([-1.0, 1.0], shape) * rng.uniform(1, 2, shape) * 2.0 ** rng.integers(-40, 40, shape)
        x *= 2.0 ** rng.integers(-30, 30, (shape[0], 1))
        return x.astype(np.float32)

    return one((m, kd)), one((n, kd)).T.copy()


ACCS = [("fp32", "nearest"), ("fp16", "nearest"), ("bf16", "stochastic:8"), ("fp16", "stochastic"), ("e5m6", "up")]


@pytest.mark.parametrize("fmt", PRESETS)
@pytest.mark.parametrize(("acc", "rounding"), ACCS)
@pytest.mark.parametrize("kd", [1, 33, 64])
def test_mx_qmatmul_matches_exact_model(fmt, acc, rounding, kd):
    a, b = _operands(stable_seed(fmt, kd) % 1000, 3, kd, 2)
    _check(a, b, fmt, acc, rounding)


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3,mxfp8_e5m2", "mxfp4_e2m1,mxint8", "mxfp6_e2m3:b16,mx:e3m4:b16"])
@pytest.mark.parametrize(("acc", "rounding"), [("fp32", "nearest"), ("bf16", "stochastic:8")])
def test_mixed_operand_formats_match_exact_model(fmt, acc, rounding):
    a, b = _operands(stable_seed(fmt) % 1000, 3, 40, 2)
    _check(a, b, fmt, acc, rounding)


@pytest.mark.parametrize("fmt", PRESETS)
@pytest.mark.parametrize("block_sum", ["bf16", "e4m3", "e5m2", "q8.7"])
@pytest.mark.parametrize(("acc", "rounding"), [("fp32", "nearest"), ("bf16", "stochastic:8")])
def test_block_sums_rounded_before_scaling_match_exact_model(fmt, block_sum, acc, rounding):
    rng = np.random.default_rng(stable_seed(fmt, block_sum) % 1000)
    a = (rng.standard_normal((3, 64)) * 2.0 ** rng.integers(-20, 20, (3, 1))).astype(np.float32)
    b = (rng.standard_normal((64, 4)) * 2.0 ** rng.integers(-20, 20, (1, 4))).astype(np.float32)
    want = _check(a, b, fmt, acc, rounding, block_sum=block_sum)
    if block_sum in ("e4m3", "e5m2"):  # 4 and 3 significant bits: some of 24 block sums lose bits
        assert (want != _check(a, b, fmt, acc, rounding)).any()


@pytest.mark.parametrize(("acc", "rounding"), [("fp32", "nearest"), ("bf16", "stochastic:8"), ("fp32", "stochastic")])
def test_e5m2_block_sums_wider_than_float64(acc, rounding):
    """E5M2 products span 2**-32..2**31: these blocks' exact sums are not float64 numbers (checked), yet exact."""
    rng = np.random.default_rng(4)
    kd = 96
    a = (rng.choice([-1.0, 1.0], (4, kd)) * 2.0 ** rng.integers(-16, 16, (4, kd)) * rng.uniform(1, 2, (4, kd))).astype(
        np.float32
    )
    b = (rng.choice([-1.0, 1.0], (kd, 3)) * 2.0 ** rng.integers(-16, 16, (kd, 3)) * rng.uniform(1, 2, (kd, 3))).astype(
        np.float32
    )
    fmt = MX_PRESETS["mxfp8_e5m2"]
    _, ea = _blocks_of(a, fmt, axis=1)
    _, eb = _blocks_of(b, fmt, axis=0)
    sums = [sum(Fraction(float(x)) * Fraction(float(y)) for x, y in zip(ea[0, :32], eb[:32, j])) for j in range(3)]
    assert any(Fraction(float(s)) != s for s in sums)
    _check(a, b, "mxfp8_e5m2", acc, rounding)


def test_lfsr_source_feeds_block_t_of_output_o_draw_3_o_nb_plus_3_t_plus_1():
    """An LFSR's draws in qmatmul's layout: block t of output o takes draw (o * nb + t) * 3 + 1 (stage 1, the sum)."""
    a, b = _operands(9, 2, 70, 3)
    nb, k = 3, 6
    got = qmatmul(a, b, mul="mxfp6_e3m2", acc="bf16", rounding=f"stochastic:{k}", seed=LFSR(20, seed=3))
    bits = LFSR(20, seed=3).draw(a.shape[0] * b.shape[1] * nb * 3, k)
    want = reference_mx_qmatmul(
        a, b, "mxfp6_e3m2", "bf16", "stochastic", k, lambda output, t: int(bits[(output * nb + t) * 3 + 1])
    )
    for (i, j), value in np.ndenumerate(want):
        assert same(float(got[i, j]), value), (i, j, float(got[i, j]), value)


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp6_e3m2,mxfp6_e2m3", "mxfp4_e2m1", "mxint8"])
@pytest.mark.parametrize(("acc", "rounding"), [("fp16", "nearest"), ("bf16", "stochastic:8")])
def test_stochastic_elements_match_exact_model(fmt, acc, rounding):
    """Elements rounded stochastically: A's take draws 0..A.size-1, B's the next B.size, the accumulator the rest."""
    rng = np.random.default_rng(stable_seed(fmt, acc))
    a = (rng.standard_normal((3, 70)) * 2.0 ** rng.integers(-6, 6, (3, 1))).astype(np.float32)
    b = (rng.standard_normal((70, 4)) * 2.0 ** rng.integers(-6, 6, (1, 4))).astype(np.float32)
    seed = 17
    rule = mpsim.parse_rounding(rounding)
    k = rule.kernel_rand_bits
    nb = -(-a.shape[1] // 32)
    got = qmatmul(a, b, mul=fmt, acc=acc, rounding=rounding, mul_rounding="stochastic:8", seed=seed)
    draw = lambda output, t: gemm_draw(seed, a.size + b.size, output, nb, t, 1, k)  # noqa: E731
    source = mpsim.CounterRNG(seed)
    want = reference_mx_qmatmul(a, b, fmt, acc, rule.mode.value, k, draw, elements="stochastic:8", element_seed=source)
    assert source.offset == a.size + b.size
    for (i, j), value in np.ndenumerate(want):
        assert same(float(got[i, j]), value), (i, j, float(got[i, j]), value)
    assert not np.array_equal(got, qmatmul(a, b, mul=fmt, acc=acc, rounding=rounding, seed=seed))


@pytest.mark.parametrize("fmt", ["mxfp4_e2m1", "mxfp8_e4m3"])
def test_stochastic_elements_make_an_unbiased_product(fmt):
    """Mean of 4,000 independently rounded copies of one dot product against its exact value: within 4.5 standard
    errors, where rounding the elements to nearest is off by more than 10 (and the fp32 accumulator adds < 1e-6).

    Each block's largest magnitude is below 1.45 times its binade, so that no element saturates: the OCP floor
    scale maps [1.5, 2) x 2**e above the element max of FP4 (6 = 1.5 x 4), where rounding is biased whatever
    the draws (why MXFP4 training recipes scale blocks by 3/4 first)."""
    rng = np.random.default_rng(stable_seed(fmt))
    x = rng.uniform(1.0, 1.45, 64).astype(np.float32) * 2.0 ** -rng.integers(0, 4, 64).astype(np.float32)
    x[0] = x[32] = 1.44
    y = rng.uniform(0.5, 0.72, 64).astype(np.float32)
    exact = float(np.dot(x.astype(np.float64), y.astype(np.float64)))
    copies = 4000  # a batch of copies: B is rounded afresh in each, as A is
    a, b = np.tile(x, (copies, 1, 1)), np.tile(y[:, None], (copies, 1, 1))
    got = qmatmul(a, b, mul=fmt, acc="fp32", mul_rounding="stochastic:8", seed=5)[:, 0, 0].astype(np.float64)
    se = got.std(ddof=1) / math.sqrt(copies)
    assert se > 0
    assert abs(got.mean() - exact) < 4.5 * se, (got.mean(), exact, se)
    nearest = float(qmatmul(x[None, :], y[:, None], mul=fmt, acc="fp32")[0, 0])
    assert abs(nearest - exact) > 10 * se, (nearest, exact, se)


def test_stochastic_elements_are_refused_with_a_mac_array_stream():
    a = np.ones((2, 40), np.float32)
    grid = mpsim.randbits.LFSRGrid(16, seed=1, rows=2, cols=2)
    with pytest.raises(ValueError, match=r"^a MAC array's random stream rounds the accumulator only, not MX elements"):
        qmatmul(a, a.T.copy(), mul="mxfp8_e4m3", acc="fp16", mul_rounding="stochastic:8", seed=grid)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_bits_62_binades_below_a_tie_decide_it(sign):
    """acc = 1, then a block summing to 2**-11 +- 2**-73: half an fp16 ulp of 1 and a bit far below, which decides."""
    a = np.zeros((1, 64), np.float32)
    b = np.zeros((64, 1), np.float32)
    a[0, 0], b[0, 0] = 1.0, 1.0  # block 0: 1
    a[0, 32], a[0, 33] = 2.0**-6, sign * 2.0**-37  # elements 2**15 and 2**-16 at scale 2**-21
    b[32, 0], b[33, 0] = 2.0**-5, 2.0**-36  # the same at 2**-20: products 2**-11 and +-2**-73
    want = _check(a, b, "mxfp8_e5m2", "fp16", "nearest")
    assert want[0, 0] == (1 + Fraction(2) ** -10 if sign > 0 else 1)


def test_edge_blocks():
    """Scales near both E8M0 ends (their products over- and underflow fp16), Inf, NaN and zero blocks, K = 33."""
    kd = 33
    a = np.ones((6, kd), np.float32)
    b = np.ones((kd, 4), np.float32)
    a[0, :32] = 3.0e38  # floor(log2) = 127: E near 127 - emax
    b[:32, 0] = 2.0e38
    a[1, :32] = 1.5 * 2.0**-126  # E clamped to -127 (MXINT8: -126), nonzero elements: the scaled products underflow
    b[:32, 1] = 1.25 * 2.0**-120
    b[:5, 2] = 1e-44  # float32 subnormals in a block (with ones)
    a[2, 5] = np.inf  # E = 127, the Inf element saturates
    a[3, 7] = np.nan  # a NaN block: this row's outputs are NaN
    a[4, :32] = 0.0  # an all-zero block: E = -127
    b[32:, 2] = 0.0
    a[5, 32] = -0.0
    b[:, 3] = -b[:, 3]
    for fmt in PRESETS:
        sa, _ = _blocks_of(a, MX_PRESETS[fmt], axis=1)
        sb, _ = _blocks_of(b, MX_PRESETS[fmt], axis=0)
        emax = MX_PRESETS[fmt].element_emax
        assert sa[0, 0] == sb[0, 0] == 2 * SCALE_BIAS - emax  # E = 127 - emax
        assert sa[4, 0] == 0  # an all-zero block: E = -127
        assert (sa[1, 0], sb[0, 1]) == (max(0, 1 - emax), max(0, 7 - emax))  # E = -126 - emax, -120 - emax, clamped
        assert sa[2, 0] == 2 * SCALE_BIAS and sa[3, 0] == SCALE_NAN_CODE  # Inf: E = 127; NaN
        for acc, rounding in [("fp16", "nearest"), ("fp16", "stochastic:4"), ("e5m6", "toward_zero")]:
            want = _check(a, b, fmt, acc, rounding)
            assert all(isinstance(v, float) and math.isnan(v) for v in want[3])
            if acc == "fp16" and rounding == "nearest":
                # block 0: 2**(254 - 2 emax) overflows; 2**-247 or less rounds to 0, and block 1 adds 1
                assert want[0, 0] == math.inf and want[1, 1] == 1


def test_saturating_fixed_point_accumulator():
    a, b = _operands(7, 2, 40, 3)
    a, b = a * np.float32(2.0**-60), b * np.float32(2.0**-60)
    _check(a, b, "mxint8", "q8.7", "nearest")
    _check(a, b, "mxfp6_e2m3", "q4.11", "stochastic:4")


def test_config_torch_and_broadcast_give_the_same_bits():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 320)).astype(np.float32)
    b = rng.standard_normal((320, 3)).astype(np.float32)
    got = qmatmul(a, b, mul="mxfp4_e2m1", acc="bf16", rounding="stochastic:8", seed=2)
    config = GemmConfig(mul=MX_PRESETS["mxfp4_e2m1"], acc="bf16", rounding="stochastic:8")
    np.testing.assert_array_equal(qmatmul(a, b, config=config, seed=2), got)
    assert GemmConfig.from_dict(config.to_dict()) == GemmConfig(mul="mxfp4_e2m1", acc="bf16", rounding="stochastic:8")
    pair = GemmConfig(mul=(MX_PRESETS["mxfp4_e2m1"], "mxint8"), acc="bf16")
    assert GemmConfig.from_dict(pair.to_dict()).mx_formats == (MX_PRESETS["mxfp4_e2m1"], MX_PRESETS["mxint8"])
    np.testing.assert_array_equal(qmatmul(a, b, config=pair), qmatmul(a, b, mul="mxfp4_e2m1,mxint8", acc="bf16"))
    tensor = qmatmul(torch.from_numpy(a), torch.from_numpy(b), config=config, seed=2)
    np.testing.assert_array_equal(tensor.numpy(), got)
    batched = qmatmul(np.stack([a, a]), b, mul="mxfp4_e2m1", acc="bf16")
    np.testing.assert_array_equal(batched[1], qmatmul(a, b, mul="mxfp4_e2m1", acc="bf16"))
    assert not np.array_equal(got, qmatmul(a, b, config=config, seed=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"order": "pairwise"},
            r"^an MX GEMM \(mxfp8_e4m3\) adds its blocks in order: order must be 'sequential', not 'pairwise'$",
        ),
        ({"order": 4}, r"^an MX GEMM \(mxfp8_e4m3\) adds its blocks in order: order must be 'sequential', not 4$"),
        (
            {"acc": "q3.4wrap"},
            r"^an MX GEMM \(mxfp8_e4m3\) needs an accumulator that does not wrap, not q3\.4wrap$",
        ),
        (
            {"acc": "q3.4", "saturate": False},
            r"^an MX GEMM \(mxfp8_e4m3\) needs an accumulator that does not wrap, not q3\.4$",
        ),
        ({"mul": "mxfp9"}, r"^unknown MX format 'mxfp9': .*$"),
        (
            {"mul": "e4m3", "block_sum": "bf16"},
            r"^block_sum rounds the block sums of an MX GEMM: it needs an MX mul, not 'e4m3'$",
        ),
        ({"block_sum": "e4m9x"}, r"^unknown format 'e4m9x': .*$"),
        (
            {"mul": "mxfp8_e4m3,mxfp8_e5m2:b16"},
            r"^MX operands must share a block size: A's mxfp8_e4m3 has 32, B's mxfp8_e5m2:b16 has 16$",
        ),
        (
            {"mul": "mxint8,mxint8,mxint8"},
            r"^an MX mul is one format or two \(A,B\), not 'mxint8,mxint8,mxint8'$",
        ),
    ],
)
def test_bad_mx_configuration_is_refused(kwargs, message):
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match=message):
        qmatmul(a, a, **{"mul": "mxfp8_e4m3", **kwargs})


@pytest.mark.parametrize("r_offset", [0, 1])
def test_a_sticky_bit_far_below_the_float64_sum_reaches_the_rounding(r_offset):
    """acc = 2**40, then a block 2**-13 - 2**-75 (E5M2 products 2**30 and -2**-32 at scale 2**-43), into bf16.

    The exact sum has 116 bits: stochastic rounding with 62 random bits reads its fraction as 2**16 - 1 (not
    2**16, what dropping the -2**-75 would read), so r = 2**62 - 2**16 rounds down and r + 1 up. The draws are
    explicit (the kernel's array source) to reach that boundary.
    """
    ea = np.zeros((1, 1, 64), np.float32)
    eb = np.zeros((1, 1, 64), np.float32)
    ea[0, 0, 0] = eb[0, 0, 0] = 1.0
    ea[0, 0, 32], ea[0, 0, 33] = 2.0**15, -(2.0**-16)
    eb[0, 0, 32], eb[0, 0, 33] = 2.0**15, 2.0**-16
    sa = np.array([[[SCALE_BIAS + 20, SCALE_BIAS - 21]]], np.uint8)
    sb = np.array([[[SCALE_BIAS + 20, SCALE_BIAS - 22]]], np.uint8)
    rounding = mpsim.parse_rounding("stochastic")
    acc = mpsim.parse_format("bf16")
    r = 2**62 - 2**16 + r_offset
    rand = np.zeros(6, np.int64)
    rand[(0 * 2 + 1) * 3 + 1] = r  # output 0, block 1, stage 1 (sum)
    out = np.empty((1, 1, 1))
    fmt = MX_PRESETS["mxfp8_e5m2"]
    mx_gemm_sequential(
        ea,
        sa,
        eb,
        sb,
        out,
        32,
        block_split(fmt, fmt),
        kernel_params(acc, rounding),
        SOURCE_ARRAY,
        0,
        0,
        rand,
        False,
        kernel_params(acc, rounding),
    )
    x = Fraction(2) ** 40 + Fraction(2) ** -13 - Fraction(2) ** -75
    want = round_exact(x, acc, "stochastic", r=r, k=rounding.kernel_rand_bits)
    assert want == Fraction(2) ** 40 + (Fraction(2) ** 33 if r_offset else 0)
    assert same(float(out[0, 0, 0]), want)
