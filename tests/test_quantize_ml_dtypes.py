"""mpsim against ml_dtypes: decode, encode and round-to-nearest-even, bit for bit.

The oracle is ml_dtypes' ``astype`` (NumPy's for float16). ml_dtypes keeps one
sub-byte value (float6, float4) per byte, so bit patterns become values through
``np.array(codes, np.uint8).view(dtype)``. Two known differences from mpsim are
not compared against ml_dtypes: ml_dtypes casts float64 to the narrow types
through float32 (rounding twice), so float64 inputs here are float32 values; and
ml_dtypes turns NaN into -0 for finite-only formats, where mpsim keeps NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import mpsim
from tests.conftest import ML_DTYPES_FORMATS, all_codes, assert_same_floats

FORMATS = [pytest.param(mpsim.parse_format(name), dtype, id=name) for name, dtype in ML_DTYPES_FORMATS]


def code_dtype(fmt: mpsim.FloatFormat) -> type:
    return np.uint8 if fmt.bits <= 8 else np.uint16


def oracle_values(fmt: mpsim.FloatFormat, dtype: type, codes: np.ndarray) -> np.ndarray:
    """ml_dtypes' values of the bit patterns ``codes`` (as float64)."""
    with np.errstate(invalid="ignore"):  # ml_dtypes warns on casting its NaNs
        return np.asarray(codes, dtype=code_dtype(fmt)).view(dtype).astype(np.float64)


def oracle_round(x: np.ndarray, dtype: type) -> np.ndarray:
    """ml_dtypes' (or NumPy's) cast of ``x`` to ``dtype`` and back to ``x``'s dtype."""
    with np.errstate(over="ignore", invalid="ignore"):
        return x.astype(dtype).astype(x.dtype)


def finite_values(fmt: mpsim.FloatFormat, dtype: type) -> np.ndarray:
    """Distinct finite values of the format (per ml_dtypes), ascending, float64; -0 folded into 0."""
    values = oracle_values(fmt, dtype, all_codes(fmt))
    return np.unique(values[np.isfinite(values)] + 0.0)


# --- bit patterns ----------------------------------------------------------


@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_sub_byte_view_is_the_oracle(fmt, dtype):
    """The oracle itself: one value per byte, and astype back gives the same byte for every number."""
    codes = all_codes(fmt)
    stored = np.asarray(codes, dtype=code_dtype(fmt))
    values = stored.view(dtype)
    assert values.dtype.itemsize * 8 >= fmt.bits
    assert values.size == 1 << fmt.bits
    with np.errstate(invalid="ignore"):
        wide = values.astype(np.float32)
    numbers = ~np.isnan(wide)
    np.testing.assert_array_equal(wide[numbers].astype(dtype).view(stored.dtype), stored[numbers])
    # the count of NaN patterns matches the format's specials
    nan_patterns = {"ieee": 2 * ((1 << fmt.man_bits) - 1), "fn": 2, "fnuz": 1, "finite": 0}[fmt.specials]
    assert np.count_nonzero(~numbers) == nan_patterns


@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_decode_every_pattern(fmt, dtype):
    codes = all_codes(fmt)
    want = oracle_values(fmt, dtype, codes)
    for out_dtype in (np.float32, np.float64):
        got = mpsim.decode(fmt, codes, dtype=out_dtype)
        assert got.dtype == out_dtype
        with np.errstate(invalid="ignore"):  # NaN payloads from float16
            want_out = want.astype(out_dtype)
        assert_same_floats(got, want_out, codes)


@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_encode_every_number(fmt, dtype):
    codes = all_codes(fmt)
    values = oracle_values(fmt, dtype, codes)
    numbers = ~np.isnan(values)
    got = mpsim.encode(fmt, values[numbers])
    assert got.dtype == code_dtype(fmt)
    np.testing.assert_array_equal(got, codes[numbers])
    # float32 input gives the same codes
    np.testing.assert_array_equal(mpsim.encode(fmt, values[numbers].astype(np.float32)), codes[numbers])


@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_encode_nan(fmt, dtype):
    if fmt.has_nan:
        assert int(mpsim.encode(fmt, np.nan)) == fmt.nan_code
        # ml_dtypes' canonical NaN is the same pattern
        canonical = np.array([np.nan], np.float32).astype(dtype).view(code_dtype(fmt))
        assert int(canonical[0]) == fmt.nan_code
    else:
        with pytest.raises(ValueError, match=rf"^cannot encode nan in {fmt}: the format has no NaN or Inf$"):
            mpsim.encode(fmt, [1.0, np.nan])


@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_encode_inf(fmt, dtype):
    """+-Inf encode as ml_dtypes casts them: Inf, else NaN, else +-max (finite-only formats)."""
    want = np.array([np.inf, -np.inf], np.float32).astype(dtype).view(code_dtype(fmt))
    got = mpsim.encode(fmt, [np.inf, -np.inf])
    np.testing.assert_array_equal(got, want)
    if fmt.has_inf:
        np.testing.assert_array_equal(got, [fmt.inf_code, fmt.inf_code | 1 << (fmt.bits - 1)])


# --- round to nearest even -------------------------------------------------


def boundary_inputs(fmt: mpsim.FloatFormat, dtype: type) -> np.ndarray:
    """Every finite value, every midpoint, their float32 neighbours, overflow and specials; both signs."""
    values = finite_values(fmt, dtype)
    mids = (values[:-1] + values[1:]) / 2
    top = values[-1]
    ulp_at_max = 2.0 ** (np.floor(np.log2(top)) - fmt.man_bits)
    f32 = np.finfo(np.float32)
    beyond = np.array([top + ulp_at_max / 2, top + ulp_at_max, top + 1.5 * ulp_at_max, 2 * top, 4 * top])
    beyond = beyond[beyond <= f32.max]
    f32_subnormals = np.array(
        [
            f32.smallest_subnormal,
            3 * f32.smallest_subnormal,
            f32.smallest_normal / 2,
            f32.smallest_normal - f32.smallest_subnormal,
            f32.smallest_normal,
            f32.max,
        ]
    )
    base = np.concatenate([values, mids, beyond]).astype(np.float32)
    assert (base.astype(np.float64) == np.concatenate([values, mids, beyond])).all()  # all exact in float32
    near = np.concatenate([base, np.nextafter(base, np.float32(np.inf)), np.nextafter(base, np.float32(-np.inf))])
    x = np.concatenate([near, f32_subnormals.astype(np.float32), [np.float32(np.inf)]])
    return np.concatenate([x, -x, [np.float32(-0.0)]]).astype(np.float32)


@pytest.mark.parametrize("in_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_nearest_at_boundaries(fmt, dtype, in_dtype):
    x = boundary_inputs(fmt, dtype).astype(in_dtype)
    got = mpsim.quantize(x, fmt)
    assert got.dtype == in_dtype and got.shape == x.shape
    assert_same_floats(got, oracle_round(x, dtype), x, nan_sign=fmt.has_negative_zero)


@pytest.mark.parametrize("in_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_nearest_nan(fmt, dtype, in_dtype):
    if in_dtype == np.float32:
        nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF], np.uint32).view(np.float32)
    else:
        nans = np.array([0x7FF8 << 48, 0xFFF8 << 48, 0x7FF0 << 48 | 1, (0xFFF8 << 48) - 1], np.uint64).view(np.float64)
    assert np.isnan(nans).all()
    got = mpsim.quantize(nans, fmt)
    assert np.isnan(got).all()
    if fmt.has_nan:
        assert_same_floats(got, oracle_round(nans, dtype), nans, nan_sign=fmt.has_negative_zero)
    else:
        # ml_dtypes casts NaN to -0 in formats without NaN; mpsim keeps NaN so that
        # a NaN never silently becomes a number (encode refuses it instead).
        assert (oracle_round(nans, dtype) == 0).all()


def random_float32(n: int, fmt: mpsim.FloatFormat, seed: int) -> np.ndarray:
    """``n`` float32: half uniform bit patterns, half with exponents around the format's range."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    half = n // 2
    low = max(1, 127 + fmt.emin - fmt.man_bits - 3)
    high = min(254, 127 + fmt.emax + 2)
    exponents = rng.integers(low, high + 1, size=half, dtype=np.uint32)
    bits[:half] = (bits[:half] & np.uint32(0x807FFFFF)) | (exponents << np.uint32(23))
    return bits.view(np.float32)


@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_nearest_random_float32(fmt, dtype):
    x = random_float32(1 << 22, fmt, seed=2024)
    keep = ~np.isnan(x) if not fmt.has_nan else np.ones(x.shape, bool)  # NaN: see test_nearest_nan
    x = x[keep]
    assert_same_floats(mpsim.quantize(x, fmt), oracle_round(x, dtype), x, nan_sign=fmt.has_negative_zero)


@pytest.mark.parametrize(
    "layout",
    ["float64", "float32-strided", "float64-2d-transposed"],
)
@pytest.mark.parametrize("fmt, dtype", FORMATS)
def test_nearest_random_other_paths(fmt, dtype, layout):
    """The general kernel (float64 input) and the strided kernel agree with ml_dtypes too."""
    x = random_float32(1 << 18, fmt, seed=7)
    x = np.where(np.isnan(x), np.float32(1.0), x) if not fmt.has_nan else x
    with np.errstate(invalid="ignore"):  # signalling NaNs become quiet in float64
        if layout == "float64":
            x = x.astype(np.float64)
        elif layout == "float32-strided":
            x = x[::2]
        else:
            x = x.astype(np.float64).reshape(512, -1).T
    assert not x.flags.c_contiguous or layout == "float64"
    got = mpsim.quantize(x, fmt)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert_same_floats(got, oracle_round(x, dtype), x, nan_sign=fmt.has_negative_zero)


def test_fp32_nearest_is_numpys_float64_cast():
    """fp32 itself: rounding float64 to it is NumPy's float64 -> float32 cast (subnormals, overflow)."""
    rng = np.random.default_rng(11)
    n = 1 << 18
    bits = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    exponents = rng.integers(1023 - 160, 1023 + 130, size=n // 2, dtype=np.uint64)
    bits[: n // 2] = (bits[: n // 2] & np.uint64(0x800FFFFFFFFFFFFF)) | (exponents << np.uint64(52))
    x = bits.view(np.float64)
    x = x[~np.isnan(x)]
    with np.errstate(over="ignore"):
        want = x.astype(np.float32).astype(np.float64)
    assert_same_floats(mpsim.quantize(x, "fp32"), want, x)
