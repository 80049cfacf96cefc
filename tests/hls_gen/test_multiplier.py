"""FPMultiplier: every pair of e4m3 and of e5m2 operands against mpsim, bit for bit.

Each exhaustive sweep runs in one simulator: the e4m3 x e4m3 exact and the
e4m3 x e5m2 -> e5m6 stochastic:6 multipliers see every pair on Verilator
(tests/sim/test_cosim.py, the emitted Verilog), and here, in Amaranth's
simulator, a sample of :data:`SAMPLE` pairs; the other two see every pair here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import mpsim
from hls_gen.multiplier import FPMultiplier, exact_product_bounds
from hls_gen.spec import described
from mpsim.randbits import LFSR
from tests.conftest import stable_seed
from tests.hls_gen.harness import same_values, stream

SAMPLE = 4096  # operand pairs of a sweep whose every pair runs on Verilator


def all_pairs(fa: mpsim.FloatFormat, fb: mpsim.FloatFormat, every: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) code pair, a-major; else :data:`SAMPLE` of them drawn without replacement, in the same order."""
    a, b = np.meshgrid(np.arange(1 << fa.bits), np.arange(1 << fb.bits), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    if every:
        return a, b
    pick = np.sort(np.random.default_rng(stable_seed(str(fa), str(fb))).choice(a.size, SAMPLE, replace=False))
    return a[pick], b[pick]


def exact_values(fields: list[list[int]], width: int, exp_width: int) -> np.ndarray:
    """float64 values of exact-product structs given as (sig, exp, sign, zero, inf, nan) lists."""
    sig, exp, sign, zero, inf, nan = (np.array(f, dtype=np.int64) for f in fields)
    exp = np.where(exp >= 1 << (exp_width - 1), exp - (1 << exp_width), exp)
    mag = np.ldexp(sig.astype(np.float64), exp - (width - 1))
    mag = np.where(zero == 1, 0.0, mag)
    mag = np.where(inf == 1, np.inf, mag)
    mag = np.where(nan == 1, np.nan, mag)
    return np.where(sign == 1, -mag, mag)


@pytest.mark.parametrize(
    "a_name, b_name, every",
    [
        pytest.param("e4m3", "e4m3", False, id="e4m3-e4m3-sample"),  # every pair: test_cosim
        pytest.param("e5m2", "e5m2", True, id="e5m2-e5m2-every", marks=pytest.mark.slow),
    ],
)
def test_exact_products(a_name: str, b_name: str, every: bool) -> None:
    fa, fb = mpsim.parse_format(a_name), mpsim.parse_format(b_name)
    dut = FPMultiplier(a_format=fa, b_format=fb)
    a, b = all_pairs(fa, fb, every)
    p = dut.product
    fields = stream(dut, [(dut.a, a), (dut.b, b)], [p.sig, p.exp, p.sign, p.zero, p.inf, p.nan])
    width, _, _ = exact_product_bounds(fa, fb)
    got = exact_values(fields, width, len(p.exp))
    with np.errstate(invalid="ignore"):
        want = mpsim.decode(fa, a).astype(np.float64) * mpsim.decode(fb, b).astype(np.float64)
    bad = ~same_values(got, want)
    assert not bad.any(), [
        (hex(x), hex(y), g, w) for x, y, g, w in zip(a[bad][:5], b[bad][:5], got[bad][:5], want[bad][:5])
    ]
    # the significand is normalized: its top bit is set for every finite nonzero product
    finite = (np.array(fields[3]) == 0) & (np.array(fields[4]) == 0) & (np.array(fields[5]) == 0)
    assert ((np.array(fields[0])[finite] >> (width - 1)) == 1).all()


@pytest.mark.parametrize(
    "a_name, b_name, out_name, rounding, every",
    [
        pytest.param(
            "e4m3", "e4m3", "e4m3", "nearest", True, id="e4m3-e4m3-e4m3-nearest-every", marks=pytest.mark.slow
        ),
        pytest.param(
            "e4m3", "e5m2", "e5m6", "stochastic:6", False, id="e4m3-e5m2-e5m6-sr6-sample"
        ),  # every: test_cosim
    ],
)
def test_rounded_products(a_name: str, b_name: str, out_name: str, rounding: str, every: bool) -> None:
    fa, fb, fo = (mpsim.parse_format(n) for n in (a_name, b_name, out_name))
    dut = FPMultiplier(a_format=fa, b_format=fb, out_format=fo, rounding=rounding)
    a, b = all_pairs(fa, fb, every)
    inputs = [(dut.a, a), (dut.b, b)]
    seed = None
    if dut.rand_bits is not None:
        inputs.append((dut.rand, LFSR(20, 3).draw(a.size, dut.rand_bits)))
        seed = LFSR(20, 3)
    (codes,) = stream(dut, inputs, [dut.product])
    got = mpsim.decode(fo, np.array(codes))
    with np.errstate(invalid="ignore"):  # 0 x Inf
        exact = (mpsim.decode(fa, a).astype(np.float64) * mpsim.decode(fb, b).astype(np.float64)).astype(
            np.float32
        )  # exact in float32
    want = mpsim.quantize(exact, fo, rounding, seed=seed)
    bad = ~same_values(got, want)
    assert not bad.any(), [
        (hex(x), hex(y), g, w) for x, y, g, w in zip(a[bad][:5], b[bad][:5], got[bad][:5], want[bad][:5])
    ]


@pytest.mark.parametrize(
    "a_name, b_name, out_name",
    [
        ("e5m2", "e5m2", "e5m2"),
        ("e4m3fnuz", "e5m2fnuz", "e4m3fnuz"),
        ("e2m1", "e3m2", "e2m3"),
        ("e4m3", "e4m3", "e4m3ns"),
        ("e5m2", "e4m3", "e5m2sat"),
    ],
)
def test_rounded_product_other_formats(a_name: str, b_name: str, out_name: str) -> None:
    fa, fb, fo = (mpsim.parse_format(n) for n in (a_name, b_name, out_name))
    dut = FPMultiplier(a_format=fa, b_format=fb, out_format=fo)
    rng = np.random.default_rng(7)
    a = rng.integers(0, 1 << fa.bits, 3000)
    b = rng.integers(0, 1 << fb.bits, 3000)
    (codes,) = stream(dut, [(dut.a, a), (dut.b, b)], [dut.product])
    with np.errstate(invalid="ignore"):
        exact = (mpsim.decode(fa, a).astype(np.float64) * mpsim.decode(fb, b).astype(np.float64)).astype(np.float32)
    want = mpsim.quantize(exact, fo)
    assert same_values(mpsim.decode(fo, np.array(codes)), want).all()


def test_nan_output_is_canonical() -> None:
    dut = FPMultiplier(a_format="e4m3", b_format="e4m3", out_format="e5m2")
    (codes,) = stream(
        dut, [(dut.a, np.array([0x7F, 0xFF, 0x7F])), (dut.b, np.array([0x38, 0x38, 0xFF]))], [dut.product]
    )
    assert codes == [mpsim.parse_format("e5m2").nan_code] * 3


def test_ports_and_properties() -> None:
    dut = described(FPMultiplier(a_format="e4m3", b_format="e5m2", out_format="fp16", rounding="stochastic:7"))
    assert (len(dut.a), len(dut.b), len(dut.rand), len(dut.product)) == (8, 8, 7, 16)
    assert (str(dut.a_format), str(dut.b_format), str(dut.out_format), dut.rand_bits) == ("e4m3", "e5m2", "fp16", 7)
    exact = described(FPMultiplier(a_format="e4m3", b_format="e5m2"))
    assert exact.out_format is None and exact.rand_bits is None
    assert len(exact.product.sig) == 4 + 3  # (3 + 1) x (2 + 1) significand bits
    assert not hasattr(exact, "rand")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(a_format="fp32", b_format="e4m3"),
            ValueError,
            "multiplier operand format a must be at most 16 bits wide, not fp32 (32 bits): "
            "the multiplier supports FP4..FP16/bf16 operands",
        ),
        (
            dict(a_format="e4m3", b_format="q4.3"),
            ValueError,
            "multiplier operand format b must be a floating-point format, not fixed-point q4.3: "
            "the hardware generator has no fixed-point datapath",
        ),
        (
            dict(a_format="e4m3", b_format="e4m3", rounding="stochastic:8"),
            ValueError,
            "an exact product takes no rounding, not 'stochastic:8'; give out_format to round it",
        ),
        (
            dict(a_format="e4m3", b_format="e4m3", out_format="e4m3", rounding="toward_zero"),
            ValueError,
            "product rounding must be 'nearest' or 'stochastic:K', not 'toward_zero': "
            "the hardware implements only these",
        ),
        (
            dict(a_format="e4m3", b_format="e4m3", out_format="e4m3", rounding="stochastic"),
            ValueError,
            "product rounding must give its random bits, 'stochastic:K', not exact 'stochastic': "
            "the LFSR hands out K bits per rounding",
        ),
        (
            dict(a_format="e5m2", b_format="e4m3", out_format="e3m2"),
            ValueError,
            "product format e3m2 has no NaN, but operand format e5m2 brings NaN or Inf; "
            "use a format with NaN or finite operand formats",
        ),
        (
            dict(a_format=8, b_format="e4m3"),
            TypeError,
            "multiplier operand format a must be a format string or an mpsim format, not 8",
        ),
        (dict(a_format="e4m3x", b_format="e4m3"), ValueError, "unknown format 'e4m3x'.*"),
    ],
)
def test_unbuildable_configurations(kwargs: dict, error: type, message: str) -> None:
    pattern = message if message.endswith(".*") else re.escape(message)
    with pytest.raises(error, match=f"^{pattern}$"):
        FPMultiplier(**kwargs)
