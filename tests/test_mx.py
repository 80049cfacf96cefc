"""MX block formats: the OCP presets bit for bit against gfloat, the scale rules against exact rationals.

Oracles, none of them mpsim's own code: gfloat (Graphcore's reference of the
OCP MX formats: ``compute_scale_amax`` is the floor rule, ``encode_block`` and
``decode_block`` the element encoding with saturation); the scale rules of
:mod:`mpsim.mx` written again on ``fractions.Fraction``; the stochastic rule
on exact rationals (``tests.exact_reference``) with the draws of a
``CounterRNG`` (element ``i`` in C order takes draw ``i``, as in ``mpsim.quantize``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from gfloat import BlockFormatInfo, compute_scale_amax, decode_block, encode_block
from gfloat import formats as gf

import mpsim
from mpsim.formats import parse_format as parse_element
from mpsim.mx import MX_PRESETS, MXFormat, ScaleMode, parse_mx_format
from mpsim.mx_edges import edge_rows, random_rows
from mpsim.randbits import LFSR, CounterRNG
from tests.exact_reference import round_exact

#: The OCP MX v1.0 formats and gfloat's descriptions of them.
GFLOAT = {
    "mxfp8_e4m3": gf.format_info_mxfp8_e4m3,
    "mxfp8_e5m2": gf.format_info_mxfp8_e5m2,
    "mxfp6_e3m2": gf.format_info_mxfp6_e3m2,
    "mxfp6_e2m3": gf.format_info_mxfp6_e2m3,
    "mxfp4_e2m1": gf.format_info_mxfp4_e2m1,
    "mxint8": gf.format_info_mxint8,
}
PRESETS = list(GFLOAT)
MODES = [m.value for m in ScaleMode]
F32 = np.float32


def has_nan(name: str) -> bool:
    return GFLOAT[name].etype.num_nans > 0


def element_mbits(name: str) -> int:
    """Bits after the leading one of the element's largest value (MXINT8: 127/64 = 1.111111b)."""
    return 6 if name == "mxint8" else GFLOAT[name].etype.precision - 1


# --------------------------------------------------------------------------- exact references


def floor_log2(v: Fraction) -> int:
    e = v.numerator.bit_length() - v.denominator.bit_length()
    while Fraction(2) ** e > v:
        e -= 1
    while Fraction(2) ** (e + 1) <= v:
        e += 1
    return e


def reference_exponent(name: str, amax: float, mode: str) -> int | None:
    """The shared exponent of an OCP preset by the documented rule, on rationals; None for NaN."""
    etype = GFLOAT[name].etype
    return rule_exponent(Fraction(etype.max), element_mbits(name), amax, mode)


def rule_exponent(top: Fraction, mbits: int, amax: float, mode: str) -> int | None:
    """The shared exponent for elements of largest value ``top`` and ``mbits`` mantissa bits; None for NaN."""
    emax = floor_log2(top)
    if math.isnan(amax):
        return None
    if math.isinf(amax):
        return 127
    if amax == 0:
        return -127
    a = Fraction(amax)
    e = floor_log2(a)
    if mode == "floor":
        shared = e - emax
    elif mode == "ceil":
        shared = e + (a != Fraction(2) ** e) - emax
    elif mode == "rceil":
        shared = e - emax - 1
        while a / Fraction(2) ** shared > top:  # the smallest E with amax / 2**E <= max
            shared += 1
    else:  # even: amax to m mantissa bits, ties away, then floor
        step = Fraction(2) ** (e - mbits)
        shared = floor_log2(math.floor(a / step + Fraction(1, 2)) * step) - emax
    return min(max(shared, -127), 127)


def gfloat_encode(name: str, x: np.ndarray, block: int, mode: str = "floor") -> tuple[list, list, np.ndarray]:
    """Per row of ``x`` (2-D, float32) and block: gfloat's (scale code, element codes) and float32 values.

    Floor uses gfloat's own ``compute_scale_amax``; other modes pass the reference exponent as the scale.
    A block holding NaN gets (255, None) and NaN values: gfloat cannot encode NaN in FP6/FP4/INT8.
    """
    fi = BlockFormatInfo(name, GFLOAT[name].etype, block, gf.format_info_ocp_e8m0)
    scales, codes, values = [], [], np.empty(x.shape, dtype=F32)
    for i, row in enumerate(x.astype(np.float64)):
        row_scales, row_codes = [], []
        for j in range(0, row.size, block):
            vals = row[j : j + block]
            if np.isnan(vals).any():
                row_scales.append(255)
                row_codes.append(None)
                values[i, j : j + block] = np.nan
                continue
            if mode == "floor":
                scale = float(compute_scale_amax(fi.etype.emax, vals))
            else:
                scale = 2.0 ** reference_exponent(name, float(np.abs(vals).max()), mode)
            enc = list(encode_block(fi, scale, vals / scale))
            row_scales.append(enc[0])
            row_codes.append(enc[1:])
            with np.errstate(over="ignore"):
                values[i, j : j + block] = np.array(list(decode_block(fi, enc)), dtype=np.float64).astype(F32)
        scales.append(row_scales)
        codes.append(row_codes)
    return scales, codes, values


def unpack(codes: np.ndarray, name: str, n: int) -> np.ndarray:
    """Element codes of a 2-D ``encode_mx`` result: two per byte, earlier in the low nibble, for FP4."""
    if GFLOAT[name].etype.bits > 4:
        return codes.astype(np.int64)
    j = np.arange(n)
    return (codes[:, j // 2].astype(np.int64) >> (4 * (j % 2))) & 0xF


def check_against_gfloat(name: str, x: np.ndarray, block: int, mode: str = "floor") -> None:
    fmt = parse_mx_format(name if block == 32 else f"{name}:b{block}")
    want_scales, want_codes, want_values = gfloat_encode(name, x, block, mode)
    got = mpsim.quantize_mx(x, fmt, scale_mode=mode)
    assert got.dtype == F32 and got.shape == x.shape
    np.testing.assert_array_equal(got.view(np.uint32), want_values.view(np.uint32))  # -0 and NaN too
    scales, codes = mpsim.encode_mx(x, fmt, scale_mode=mode)
    assert scales.dtype == np.uint8 and codes.dtype == np.uint8
    np.testing.assert_array_equal(scales, np.array(want_scales))
    elements = unpack(codes, name, x.shape[1])
    for i, row in enumerate(want_codes):
        for b, block_codes in enumerate(row):
            if block_codes is not None:
                assert elements[i, b * block : (b + 1) * block].tolist() == block_codes, (i, b)
    decoded = mpsim.decode_mx(scales, codes, fmt, shape=x.shape)
    np.testing.assert_array_equal(decoded.view(np.uint32), want_values.view(np.uint32))


# --------------------------------------------------------------------------- gfloat, bit for bit


@pytest.mark.parametrize("name", PRESETS)
def test_random_data_matches_gfloat(name: str) -> None:
    check_against_gfloat(name, random_rows(24, 96, seed=1), 32)


@pytest.mark.parametrize("name", PRESETS)
def test_edge_blocks_match_gfloat(name: str) -> None:
    x = edge_rows(name)
    check_against_gfloat(name, x, 32)
    np.testing.assert_array_equal(mpsim.quantize_mx(x[:2], name), np.zeros((2, 32), F32))


@pytest.mark.parametrize("name", PRESETS)
def test_every_code_decodes_as_gfloat_decodes_it(name: str) -> None:
    """Every element code under scales at both ends, around 1.0 and NaN; the values encode and decode back."""
    bits = GFLOAT[name].etype.bits
    mx = f"{name}:b{1 << bits}"  # one block of every code
    fi = BlockFormatInfo(name, GFLOAT[name].etype, 1 << bits, gf.format_info_ocp_e8m0)
    elements = np.arange(1 << bits, dtype=np.uint8)
    packed = elements[0::2] | (elements[1::2] << 4) if bits <= 4 else elements
    for scale in (0, 1, 100, 127, 130, 254, 255):
        got = mpsim.decode_mx(np.array([[scale]], np.uint8), packed[None, :], mx)[0]
        with np.errstate(over="ignore"):
            want = np.array(list(decode_block(fi, [scale, *elements.tolist()])), dtype=np.float64).astype(F32)
        if scale == 255:
            assert np.isnan(want).all() and np.isnan(got).all()
            continue
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        if scale in (1, 127, 130):  # exact float32 values: the finite ones up to max (not MXINT8's -2) encode back
            top = GFLOAT[name].etype.max * 2.0 ** (scale - 127)
            kept = np.isfinite(got) & (np.abs(got) <= top)
            scales, codes = mpsim.encode_mx(np.where(kept, got, 0.0)[None, :].astype(F32), mx)
            np.testing.assert_array_equal(mpsim.decode_mx(scales, codes, mx)[0][kept], got[kept])


@pytest.mark.parametrize("name", PRESETS)
def test_float64_and_float16_inputs_match_gfloat(name: str) -> None:
    """float64 values between float32's (and beyond its range) and float16 ones: the same rules, float32 out."""
    x = random_rows(6, 64, seed=11).astype(np.float64) * (1 + 2.0**-40)
    x[0, 3] = 1e300  # E clamps at 127: the block saturates
    x[1, 7] = 1e-300  # below float32's range, beside normal values: flushes to zero
    x[2, 32:] *= 1e-318  # a block of float64 subnormals: the scale clamps at 2**-127
    check_against_gfloat(name, x, 32)
    half = (np.random.default_rng(12).standard_normal((4, 32)) * 1000).astype(np.float16)
    np.testing.assert_array_equal(mpsim.quantize_mx(half, name), mpsim.quantize_mx(half.astype(F32), name))


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("block", [1, 7, 16])
def test_other_block_sizes_match_gfloat(name: str, block: int) -> None:
    x = random_rows(6, 40, seed=block)  # 40 is not a multiple of 7 or 16: a partial last block
    check_against_gfloat(name, x, block)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("mode", MODES)
def test_scale_rules_match_exact_reference(name: str, mode: str) -> None:
    """Every rule: scales from the rational reference, elements rounded by gfloat under that scale."""
    x = np.concatenate([edge_rows(name), random_rows(24, 32, seed=2)])
    check_against_gfloat(name, x, 32, mode)
    scales, _ = mpsim.encode_mx(x, name, scale_mode=mode)
    for row, code in zip(x, scales[:, 0]):
        e = reference_exponent(name, float(np.abs(row.astype(np.float64)).max()), mode)
        assert int(code) == (255 if e is None else e + 127), (row, mode)


@pytest.mark.parametrize("spec", [*PRESETS, "mx:e3m4:b16", "mx:e2m1:b7", "mx:e3m2:b1"])
@pytest.mark.parametrize("mode", MODES)
def test_float32_fast_path_equals_the_general_kernel(spec: str, mode: str) -> None:
    """float32 input, nearest: quantize_mx_f32_nearest; the same values as float64 input (quantize_mx_blocks).

    Values bit for bit (-0 and NaN too) and element codes, along the last axis
    and along the first (blocks strided in memory), partial last blocks included.
    """
    name = spec if spec in GFLOAT else "mxfp4_e2m1"
    x = np.concatenate([edge_rows(name), random_rows(24, 32, seed=21)])
    x = np.concatenate([x, x[:, :9]], axis=1)  # 41 columns: partial blocks at every block size
    for axis in (-1, 0):
        fast = mpsim.quantize_mx(x, spec, axis=axis, scale_mode=mode)
        general = mpsim.quantize_mx(x.astype(np.float64), spec, axis=axis, scale_mode=mode)
        np.testing.assert_array_equal(fast.view(np.uint32), general.view(np.uint32))
        fast_scales, fast_codes = mpsim.encode_mx(x, spec, axis=axis, scale_mode=mode)
        scales, codes = mpsim.encode_mx(x.astype(np.float64), spec, axis=axis, scale_mode=mode)
        np.testing.assert_array_equal(fast_scales, scales)
        np.testing.assert_array_equal(fast_codes, codes)
        assert fast_codes.dtype == codes.dtype


@pytest.mark.parametrize("name", PRESETS)
def test_rceil_never_saturates_and_floor_may(name: str) -> None:
    """rceil: amax / 2**E <= max; floor at amax just below the next binade: beyond max, so it saturates."""
    top, emax = GFLOAT[name].etype.max, GFLOAT[name].etype.emax
    amax = float(np.nextafter(F32(2.0 ** (emax + 1)), F32(0)))
    x = np.full((1, 32), amax, F32)
    scales, _ = mpsim.encode_mx(x, name, scale_mode="rceil")
    assert Fraction(amax) / Fraction(2) ** (int(scales[0, 0]) - 127) <= Fraction(top)
    assert mpsim.quantize_mx(x, name)[0, 0] == F32(top)  # floor: E = 0, the element saturates


@pytest.mark.parametrize("spec", ["mx:e3m4:b16", "mx:e5m6:b8:rceil", "mx:e4m3fnuz:ceil", "mx:e3m0f:b4:even", "mx:q2.5"])
def test_general_formats_match_exact_reference(spec: str) -> None:
    """Any element format: scale by the rule on rationals, elements rounded exactly (nearest even, saturating)."""
    fmt = mpsim.parse_format(spec)
    element = fmt.element
    mbits = element.man_bits if hasattr(element, "man_bits") else element.int_bits + element.frac_bits - 1
    x = random_rows(6, 40, seed=14)
    x[0, :4] = [0.0, -0.0, 0.0, 0.0]
    got = mpsim.quantize_mx(x, fmt)
    scales, codes = mpsim.encode_mx(x, fmt)
    np.testing.assert_array_equal(mpsim.decode_mx(scales, codes, fmt, shape=x.shape), got)
    b = fmt.block_size
    for i, j in np.ndindex(x.shape):
        block = x[i, (j // b) * b : (j // b + 1) * b]
        e = rule_exponent(element.max_exact, mbits, float(np.abs(block).max()), fmt.scale_mode.value)
        assert int(scales[i, j // b]) == e + 127
        scale = Fraction(2) ** e
        want = round_exact(Fraction(float(x[i, j])) / scale, element, "nearest", saturate=True) * scale
        assert Fraction(float(got[i, j])) == want, (i, j)


# --------------------------------------------------------------------------- NaN, Inf, zero blocks


@pytest.mark.parametrize("name", PRESETS)
def test_nan_block_is_all_nan_and_others_untouched(name: str) -> None:
    x = random_rows(2, 64, seed=3)
    x[0, 40] = np.nan
    got = mpsim.quantize_mx(x, name)
    assert np.isnan(got[0, 32:]).all() and not np.isnan(got[0, :32]).any() and not np.isnan(got[1]).any()
    scales, codes = mpsim.encode_mx(x, name)
    assert scales[0].tolist()[1] == 0xFF and 0xFF not in scales[0, :1].tolist() + scales[1].tolist()
    element = MX_PRESETS[name].element
    if has_nan(name):  # the element format's (positive) NaN, else 0
        assert set(unpack(codes, name, 64)[0, 32:].tolist()) == {element.nan_code}
    else:
        assert set(unpack(codes, name, 64)[0, 32:].tolist()) == {0}


@pytest.mark.parametrize("name", PRESETS)
def test_inf_saturates_at_the_largest_scale(name: str) -> None:
    """Inf: E = 127 (gfloat's clamp of log2(Inf)), the Inf element is +-max, the finite ones flush to 0."""
    x = np.array([[1.0, -np.inf, 2.0, np.inf] + [0.5] * 28], F32)
    scales, codes = mpsim.encode_mx(x, name)
    assert scales.tolist() == [[254]]
    assert mpsim.decode_mx(scales, codes, name, shape=x.shape)[0, 3] == mpsim.quantize_mx(x, name)[0, 3]
    top = Fraction(GFLOAT[name].etype.max) * Fraction(2) ** 127
    bottom = Fraction(GFLOAT[name].etype.min) * Fraction(2) ** 127  # -max, or -2 for MXINT8's two's complement
    want = [0.0, float(bottom), 0.0, float(top)] + [0.0] * 28
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(mpsim.quantize_mx(x, name), np.array([want]).astype(F32))


# --------------------------------------------------------------------------- stochastic elements


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize(("k", "axis"), [(4, -1), (8, -1), (8, 0)])
def test_stochastic_elements_follow_the_rule_and_the_stream(name: str, k: int, axis: int) -> None:
    """Element i (C order) takes draw i of CounterRNG(seed): the rule of mpsim.rounding on x / 2**E, saturated."""
    x = random_rows(8, 48, seed=4)  # 48: a partial second block
    seed = 1234
    if axis == 0:  # blocks down the columns of x.T: the draws still follow x.T's C order
        draws = CounterRNG(seed).draw(x.size, k).reshape(x.T.shape).T
        got = mpsim.quantize_mx(x.T.copy(), name, axis=0, rounding=f"stochastic:{k}", seed=seed).T
    else:
        draws = CounterRNG(seed).draw(x.size, k).reshape(x.shape)
        got = mpsim.quantize_mx(x, name, rounding=f"stochastic:{k}", seed=seed)
    element = MX_PRESETS[name].element
    for i, j in np.ndindex(x.shape):
        b = j // 32
        e = reference_exponent(name, float(np.abs(x[i, b * 32 : (b + 1) * 32]).max()), "floor")
        scale = Fraction(2) ** e
        want = round_exact(
            Fraction(float(x[i, j])) / scale, element, "stochastic", r=int(draws[i, j]), k=k, saturate=True
        )
        assert Fraction(float(got[i, j])) == want * scale, (i, j)


@pytest.mark.parametrize("name", PRESETS)
def test_stochastic_elements_are_unbiased(name: str) -> None:
    """Mean of n copies of x is x (exact stochastic rounding), 6 sigma: the first element fixes E = 0."""
    etype = GFLOAT[name].etype
    top = etype.max
    n = 1 << 14
    values = [top * 0.29, top * 0.01, -top * 0.77, etype.smallest_subnormal * 1.3 if name != "mxint8" else 0.013]
    x = np.empty((n, 1 + len(values)), F32)
    x[:, 0] = top
    x[:, 1:] = values
    got = mpsim.quantize_mx(x, name, rounding="stochastic", seed=77).astype(np.float64)
    assert (got[:, 0] == F32(top)).all()
    element = MX_PRESETS[name].element
    for col, value in enumerate(x[0, 1:], start=1):
        low = float(round_exact(Fraction(float(value)), element, "toward_zero"))
        high = float(round_exact(Fraction(float(value)), element, "up" if value > 0 else "down"))
        assert set(np.unique(got[:, col])) <= {low, high}
        if low == high:
            continue  # representable: nothing to round
        p = (float(value) - low) / (high - low)
        sd = abs(high - low) * math.sqrt(p * (1 - p) / n)
        assert abs(got[:, col].mean() - float(value)) <= 6 * sd + 1e-12, (value, got[:, col].mean())


@pytest.mark.parametrize("name", PRESETS)
def test_stochastic_encode_decodes_to_quantize(name: str) -> None:
    x = random_rows(4, 40, seed=13)
    scales, codes = mpsim.encode_mx(x, name, rounding="stochastic:6", seed=21)
    want = mpsim.quantize_mx(x, name, rounding="stochastic:6", seed=21)
    np.testing.assert_array_equal(mpsim.decode_mx(scales, codes, name, shape=x.shape), want)


def test_empty_arrays() -> None:
    for shape in [(0, 32), (3, 0)]:
        x = np.zeros(shape, F32)
        assert mpsim.quantize_mx(x, "mxfp4_e2m1").shape == shape
        scales, codes = mpsim.encode_mx(x, "mxfp4_e2m1")
        assert scales.shape == (shape[0], -(-shape[1] // 32)) and codes.shape == (shape[0], (shape[1] + 1) // 2)


@pytest.mark.parametrize("name", PRESETS)
def test_same_seed_same_bits_as_quantize(name: str) -> None:
    """Blocks whose scale is 1 (E = 0): quantize_mx is mpsim.quantize of the element format, draw for draw."""
    etype = GFLOAT[name].etype
    x = np.random.default_rng(15).uniform(-etype.max, etype.max, (8, 64)).astype(F32)
    x[:, ::32] = etype.max  # amax = max: E = 0 in every block
    element = MX_PRESETS[name].element
    sources = [
        ("stochastic", lambda: 5),
        ("stochastic:3", lambda: CounterRNG(6)),
        ("stochastic:4", lambda: LFSR(20, 7)),
    ]
    for rounding, source in sources:
        got = mpsim.quantize_mx(x, name, rounding=rounding, seed=source())
        want = mpsim.quantize(x, element, rounding, seed=source(), saturate=True)
        np.testing.assert_array_equal(got, want)


def test_stochastic_seeds() -> None:
    x = random_rows(4, 64, seed=5)
    a = mpsim.quantize_mx(x, "mxfp4_e2m1", rounding="stochastic", seed=9)
    b = mpsim.quantize_mx(x, "mxfp4_e2m1", rounding="stochastic", seed=9)
    c = mpsim.quantize_mx(x, "mxfp4_e2m1", rounding="stochastic", seed=10)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    source = CounterRNG(9)
    first = mpsim.quantize_mx(x, "mxfp4_e2m1", rounding="stochastic", seed=source)
    np.testing.assert_array_equal(first, a)
    assert source.offset == x.size  # one draw per element, padding takes none
    lfsr_a = mpsim.quantize_mx(x, "mxfp4_e2m1", rounding="stochastic:4", seed=LFSR(16, seed=5))
    lfsr_b = mpsim.quantize_mx(x, "mxfp4_e2m1", rounding="stochastic:4", seed=LFSR(16, seed=5))
    np.testing.assert_array_equal(lfsr_a, lfsr_b)


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4_e2m1"])
def test_axis_and_partial_blocks(name: str) -> None:
    x = random_rows(5, 70, seed=6)
    along_rows = mpsim.quantize_mx(x.T.copy(), name, axis=0)
    np.testing.assert_array_equal(along_rows, mpsim.quantize_mx(x, name).T)
    padded = np.concatenate([x, np.zeros((5, 26), F32)], axis=1)  # 70 -> 96: the partial block padded by hand
    np.testing.assert_array_equal(mpsim.quantize_mx(x, name), mpsim.quantize_mx(padded, name)[:, :70])
    cube = x.reshape(5, 7, 10)
    scales, codes = mpsim.encode_mx(cube, name, axis=1, seed=0)
    assert scales.shape == (5, 1, 10)
    assert codes.shape == ((5, 4, 10) if name == "mxfp4_e2m1" else (5, 7, 10))
    np.testing.assert_array_equal(
        mpsim.decode_mx(scales, codes, name, axis=1, shape=cube.shape), mpsim.quantize_mx(cube, name, axis=1)
    )


def test_fp4_packing_low_nibble_first() -> None:
    x = np.array([[1.0, 2.0, -0.5, 6.0, 3.0]], F32)  # E = 0 (amax 6 = 1.5 * 2**2, emax 2)
    _, codes = mpsim.encode_mx(x, "mxfp4_e2m1")
    # E2M1 codes (OCP): 1.0 = 0b0010, 2.0 = 0b0100, -0.5 = 0b1001, 6.0 = 0b0111, 3.0 = 0b0101
    assert codes.tolist() == [[0x42, 0x79, 0x05]]


def test_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    x = random_rows(3, 64, seed=8)
    got = mpsim.quantize_mx(torch.from_numpy(x), "mxfp6_e2m3", rounding="stochastic", seed=3)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), mpsim.quantize_mx(x, "mxfp6_e2m3", rounding="stochastic", seed=3))
    bf = torch.from_numpy(x).to(torch.bfloat16)
    np.testing.assert_array_equal(
        mpsim.quantize_mx(bf, "mxfp8_e4m3").numpy(), mpsim.quantize_mx(bf.float().numpy(), "mxfp8_e4m3")
    )


# --------------------------------------------------------------------------- the spec


@pytest.mark.parametrize("name", PRESETS)
def test_presets_are_the_ocp_formats(name: str) -> None:
    fmt = mpsim.parse_format(name)
    etype = GFLOAT[name].etype
    assert isinstance(fmt, MXFormat) and str(fmt) == name and fmt.block_size == GFLOAT[name].k == 32
    assert fmt.element.bits == etype.bits
    assert fmt.element.max == etype.max and fmt.element_emax == etype.emax
    assert fmt.element.has_nan == has_nan(name) and fmt.element.has_inf == (etype.num_posinfs > 0)
    assert fmt.bits_per_element == etype.bits + 8 / 32
    assert fmt.bits_per_element * 32 == GFLOAT[name].block_size_bytes * 8


@pytest.mark.parametrize(
    "spec",
    ["mx:e3m4:b16", "mxfp8_e4m3:b16", "mxfp4_e2m1:rceil", "mx:int8:b8:even", "mx:e4m3fnsat:b32", "mxint8:ceil"],
)
def test_labels_read_back(spec: str) -> None:
    fmt = mpsim.parse_format(spec)
    assert mpsim.parse_format(str(fmt)) == fmt
    assert mpsim.parse_format(spec.upper()) == fmt


def test_general_spelling() -> None:
    fmt = mpsim.parse_format("mx:e3m4:b16:even")
    assert fmt == MXFormat(parse_element("e3m4"), 16, ScaleMode.EVEN)
    assert fmt.bits_per_element == 8 + 8 / 16
    assert mpsim.parse_format("mx:int8") == MX_PRESETS["mxint8"]
    assert mpsim.parse_format("e4m3") == parse_element("e4m3")  # element formats unchanged


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mx:e4m3:b0", "impossible MX format 'mx:e4m3:b0': MX block size must be a positive integer, not 0"),
        ("mxfp4_e2m1:b-4", "impossible MX format 'mxfp4_e2m1:b-4': MX block size must be a positive integer, not -4"),
        ("mx:e9m2", "MX format 'mx:e9m2': impossible format 'e9m2': exponent bits must be 1..8, not 9"),
        (
            "mx:fp16",
            "MX format 'mx:fp16': MX element format fp16 has values down to 2**-24: times the smallest scale "
            "2**-127 they are not float32 numbers (need 2**-22 or more)",
        ),
        ("mx:uq1.6", "MX format 'mx:uq1.6': MX element format must be signed and saturating, not uq1.6"),
        ("mxfp8_e4m3:round", "MX format 'mxfp8_e4m3:round': 'round' is neither a block size bN nor a scale mode"),
        (
            "mxfp9",
            "unknown MX format 'mxfp9': expected one of mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, "
            "mxfp4_e2m1, mxint8 or mx:ELEMENT[:bN][:MODE]",
        ),
    ],
)
def test_bad_formats(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        mpsim.parse_format(spec)


def test_bad_arguments() -> None:
    x = np.ones((2, 32), F32)
    with pytest.raises(
        ValueError, match=r"^scale mode must be one of 'floor', 'ceil', 'rceil', 'even', not 'nearest'$"
    ):
        mpsim.quantize_mx(x, "mxfp8_e4m3", scale_mode="nearest")
    with pytest.raises(ValueError, match=r"^axis must be an integer in -2\.\.1 for shape \(2, 32\), not 2$"):
        mpsim.quantize_mx(x, "mxfp8_e4m3", axis=2)
    with pytest.raises(ValueError, match=r"^quantize_mx takes float16, float32 or float64 arrays, not dtype int64$"):
        mpsim.quantize_mx(np.ones((2, 32), np.int64), "mxfp8_e4m3")
    with pytest.raises(ValueError, match=r"^MX block size must be a positive integer, not 0$"):
        MXFormat(parse_element("e4m3"), 0)
    with pytest.raises(
        ValueError,
        match=r"^unknown format 'mxfp8_e4m3': MX block formats \(mxfp8_e4m3, \.\.\.\) are for mpsim\.quantize_mx$",
    ):
        mpsim.quantize(x, "mxfp8_e4m3")
    _, codes = mpsim.encode_mx(x, "mxfp8_e4m3")
    with pytest.raises(
        ValueError, match=r"^MX scales must have shape \(2, 1\) for values of shape \(2, 32\), not \(2, 2\)$"
    ):
        mpsim.decode_mx(np.zeros((2, 2), np.uint8), codes, "mxfp8_e4m3")
    with pytest.raises(ValueError, match=r"^MX codes with 2 axes do not hold values of shape \(64,\)$"):
        mpsim.decode_mx(np.zeros((2, 1), np.uint8), codes, "mxfp8_e4m3", shape=(64,))
    with pytest.raises(ValueError, match=r"^bit pattern 64 is not a 6-bit code of e3m2$"):
        mpsim.decode_mx(np.zeros((1, 1), np.uint8), np.full((1, 32), 64, np.uint8), "mxfp6_e3m2")


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's MX example runs and prints what its comments say."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Microscaling (MX) formats", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    commented = [line.split("# ")[1].split(":")[0] for line in code.splitlines() if line.startswith("print(")]
    assert [[float(v) for v in p.strip("[]").split()] for p in printed] == [
        [float(v) for v in c.strip("[]").split()] for c in commented
    ]
    assert namespace["scales"].tolist() == [[133]] and namespace["codes"].shape == (1, 16)
