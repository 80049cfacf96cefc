"""Format specs: parsing, derived numbers as identities of the definition, and error messages."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpsim
from mpsim.formats import FixedFormat, FloatFormat
from tests.conftest import ML_DTYPES_FORMATS, all_codes, assert_same_floats

GENERIC = [
    "e3m4",
    "e6m9",
    "e8m7ns",
    "e4m3b5",
    "e3m3b-2",
    "e7m8b70",
    "e5m10ns",
    "e3m2fnuz",
    "e4m3f",
    "e2m2f",
    "e5m0fn",
    "e4m0f",
    "e1m1fn",
    "e1m2f",
    "e2m1fnuz",
    "e4m3fnb9nssat",
    "e3m4sat",
    "e8m23",
    "e6m17ns",
]
FLOAT_FORMATS = [pytest.param(fmt, id=name) for name, fmt in mpsim.PRESETS.items()] + [
    pytest.param(mpsim.parse_format(name), id=name) for name in GENERIC
]
FIXED_FORMATS = [
    pytest.param(mpsim.parse_format(name), id=name)
    for name in ["q4.11", "uq4.12", "q3.4wrap", "uq0.8", "q7.0", "q0.15", "q10.13wrap", "uq24.0"]
]
SMALL = 16  # formats of at most this many bits are checked at every bit pattern


def value_from_fields(fmt: FloatFormat | FixedFormat, code: int) -> float:
    """The value a bit pattern stands for, straight from the format definition."""
    if fmt.is_fixed:
        if fmt.signed and code >= 1 << (fmt.bits - 1):
            code -= 1 << fmt.bits
        return float(Fraction(code, 1 << fmt.frac_bits))
    e, m = fmt.exp_bits, fmt.man_bits
    negative = code >> (e + m) == 1
    field, frac = (code >> m) & ((1 << e) - 1), code & ((1 << m) - 1)
    if fmt.specials == "ieee" and field == (1 << e) - 1:
        return math.nan if frac else (-math.inf if negative else math.inf)
    if fmt.specials == "fn" and field == (1 << e) - 1 and frac == (1 << m) - 1:
        return math.nan
    if fmt.specials == "fnuz" and code == 1 << (e + m):
        return math.nan
    if field == 0:
        magnitude = Fraction(frac if fmt.subnormals else 0) * Fraction(2) ** (1 - fmt.exponent_bias - m)
    else:
        magnitude = Fraction((1 << m) + frac) * Fraction(2) ** (field - fmt.exponent_bias - m)
    return -float(magnitude) if negative else float(magnitude)


# --- parsing ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(mpsim.PRESETS))
def test_presets_parse_to_themselves(name):
    fmt = mpsim.parse_format(name)
    assert fmt is mpsim.PRESETS[name]
    assert str(fmt) == fmt.label == name
    assert mpsim.parse_format(f"  {name.upper()} ") is fmt
    assert mpsim.parse_format(fmt) is fmt


@pytest.mark.parametrize(
    "alias, name",
    [
        ("float32", "fp32"),
        ("float16", "fp16"),
        ("half", "fp16"),
        ("bfloat16", "bf16"),
        ("e4m3fn", "e4m3"),
        ("fp8_e4m3", "e4m3"),
        ("fp8_e5m2", "e5m2"),
        ("e3m2fn", "e3m2"),
        ("e2m3fn", "e2m3"),
        ("e2m1fn", "e2m1"),
        ("fp6_e3m2", "e3m2"),
        ("fp6_e2m3", "e2m3"),
        ("fp4_e2m1", "e2m1"),
        ("BFloat16", "bf16"),
    ],
)
def test_aliases(alias, name):
    assert mpsim.parse_format(alias) is mpsim.PRESETS[name]


@pytest.mark.parametrize("spec, name", [("e4m3sat", "e4m3"), ("bfloat16sat", "bf16"), ("e2m1sat", "e2m1")])
def test_preset_with_saturation(spec, name):
    fmt, preset = mpsim.parse_format(spec), mpsim.PRESETS[name]
    assert fmt.overflow == "saturate" and fmt.saturates
    assert fmt.label == f"{name}sat"
    for field in ("exp_bits", "man_bits", "exponent_bias", "subnormals", "specials"):
        assert getattr(fmt, field) == getattr(preset, field)


@pytest.mark.parametrize(
    "spec, want",
    [
        ("e3m4", FloatFormat(3, 4)),
        ("E3M4", FloatFormat(3, 4)),
        ("e8m7ns", FloatFormat(8, 7, subnormals=False)),
        ("e4m3b5", FloatFormat(4, 3, bias=5)),
        ("e3m3b-2", FloatFormat(3, 3, bias=-2)),
        ("e3m2fnuz", FloatFormat(3, 2, specials="fnuz")),
        ("e5m2fn", FloatFormat(5, 2, specials="fn")),
        ("e4m3f", FloatFormat(4, 3, specials="finite")),
        ("e3m4sat", FloatFormat(3, 4, overflow="saturate")),
        ("e4m3fnb9nssat", FloatFormat(4, 3, bias=9, subnormals=False, specials="fn", overflow="saturate")),
        ("q4.11", FixedFormat(4, 11)),
        ("uq4.12", FixedFormat(4, 12, signed=False)),
        ("q3.4wrap", FixedFormat(3, 4, overflow="wrap")),
        ("q3.4sat", FixedFormat(3, 4)),
        ("uq0.8", FixedFormat(0, 8, signed=False)),
    ],
)
def test_generic_strings(spec, want):
    assert mpsim.parse_format(spec) == want


@pytest.mark.parametrize("fmt", FLOAT_FORMATS + FIXED_FORMATS)
def test_label_reads_back(fmt):
    again = mpsim.parse_format(fmt.label)
    for field in ("bits", "max", "eps", "smallest_subnormal", "num_finite", "has_inf", "has_nan", "saturates"):
        assert getattr(again, field) == getattr(fmt, field)
    if fmt.name is None:
        assert again == fmt


# --- derived numbers: identities ---------------------------------------------


@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
def test_float_identities(fmt):
    e, m = fmt.exp_bits, fmt.man_bits
    assert fmt.bits == 1 + e + m
    assert fmt.eps == 2.0**-m
    default_bias = 2 ** (e - 1) - (0 if fmt.specials == "fnuz" else 1)
    assert fmt.exponent_bias == (default_bias if fmt.bias is None else fmt.bias)
    assert fmt.emin == 1 - fmt.exponent_bias
    assert fmt.smallest_normal == 2.0**fmt.emin
    assert fmt.smallest_subnormal == 2.0 ** (fmt.emin - m if fmt.subnormals else fmt.emin)
    assert isinstance(fmt.max_exact, Fraction) and fmt.max == float(fmt.max_exact) == -fmt.min
    assert fmt.max_exact == value_from_fields(fmt, fmt.max_code)
    assert 2.0**fmt.emax <= fmt.max < 2.0 ** (fmt.emax + 1)
    assert fmt.has_inf == (fmt.specials == "ieee") and fmt.has_nan == (fmt.specials != "finite")
    assert fmt.has_negative_zero == (fmt.specials != "fnuz")
    assert fmt.saturates == (fmt.overflow == "saturate" or not (fmt.has_inf or fmt.has_nan))
    # every value is exact in float32
    assert fmt.fits_in(8, 23)
    assert float(np.float32(fmt.max)) == fmt.max and float(np.float32(fmt.smallest_subnormal)) > 0
    if fmt.has_nan:
        assert math.isnan(value_from_fields(fmt, fmt.nan_code))
    else:
        assert fmt.nan_code is None
    if fmt.has_inf:
        assert value_from_fields(fmt, fmt.inf_code) == math.inf
    else:
        assert fmt.inf_code is None


@pytest.mark.parametrize("fmt", [p for p in FLOAT_FORMATS + FIXED_FORMATS if p.values[0].bits <= SMALL])
def test_every_pattern(fmt):
    """decode of every bit pattern is the definition; max, smallest, count and specials are the decoded ones."""
    codes = all_codes(fmt)
    values = mpsim.decode(fmt, codes, dtype=np.float64)
    want = np.array([value_from_fields(fmt, int(c)) for c in codes])
    assert_same_floats(values, want, codes)
    assert_same_floats(mpsim.decode(fmt, codes), want.astype(np.float32), codes)  # float32 by default
    finite = values[np.isfinite(values)]
    assert fmt.max == finite.max()
    assert np.unique(finite).size == fmt.num_finite  # +0 and -0 are one value
    assert fmt.smallest_subnormal == finite[finite > 0].min()
    assert fmt.has_inf == np.isinf(values).any()
    assert fmt.has_nan == np.isnan(values).any()
    assert fmt.has_negative_zero == bool(((values == 0) & np.signbit(values)).any())
    if not fmt.is_fixed:
        assert mpsim.decode(fmt, fmt.max_code) == fmt.max
        assert fmt.smallest_normal == finite[finite >= 2.0**fmt.emin].min()


@pytest.mark.parametrize("fmt", [p for p in FLOAT_FORMATS if p.values[0].bits > SMALL])
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_wide_patterns(fmt, data):
    """Formats too wide to enumerate: random bit patterns decode to the definition and encode back."""
    codes = data.draw(hnp.arrays(np.uint32, st.integers(1, 64), elements=st.integers(0, 2**fmt.bits - 1)))
    values = mpsim.decode(fmt, codes, dtype=np.float64)
    want = np.array([value_from_fields(fmt, int(c)) for c in codes])
    assert_same_floats(values, want, codes)
    numbers = ~np.isnan(values)
    back = mpsim.encode(fmt, values[numbers])
    if not fmt.subnormals:  # the unused subnormal patterns read as zero and encode as zero
        unused = (codes[numbers] >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1) == 0
        np.testing.assert_array_equal(back[unused], codes[numbers][unused] & (1 << (fmt.bits - 1)))
        numbers[numbers] = ~unused
        back = mpsim.encode(fmt, values[numbers])
    np.testing.assert_array_equal(back, codes[numbers])


@pytest.mark.parametrize("fmt", FIXED_FORMATS)
def test_fixed_identities(fmt):
    i, f = fmt.int_bits, fmt.frac_bits
    assert fmt.bits == i + f + (1 if fmt.signed else 0)
    assert fmt.eps == fmt.smallest_subnormal == fmt.smallest_normal == 2.0**-f
    assert fmt.max_exact == 2**i - Fraction(1, 2**f) and fmt.max == float(fmt.max_exact)
    assert fmt.min_exact == (-(2**i) if fmt.signed else 0) and fmt.min == float(fmt.min_exact)
    assert fmt.num_finite == 2**fmt.bits
    assert not (fmt.has_inf or fmt.has_nan or fmt.has_negative_zero)
    assert fmt.saturates == (fmt.overflow == "saturate")
    assert fmt.fits_in(8, 23)


@pytest.mark.parametrize("name, dtype", [*ML_DTYPES_FORMATS, ("fp32", np.float32)])
def test_finfo_agrees(name, dtype):
    fmt, info = mpsim.parse_format(name), ml_dtypes.finfo(dtype)
    assert fmt.bits == info.bits
    assert fmt.exp_bits == info.nexp and fmt.man_bits == info.nmant
    assert fmt.emin == info.minexp and fmt.emax + 1 == info.maxexp
    assert fmt.max == float(info.max)
    assert fmt.eps == float(info.eps)
    assert fmt.smallest_normal == float(info.smallest_normal)
    assert fmt.smallest_subnormal == float(info.smallest_subnormal)


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "e4m3x",
            "unknown format 'e4m3x': expected one of fp32, tf32, fp16, bf16, e5m2, e4m3, e4m3fnuz, "
            "e5m2fnuz, e3m2, e2m3, e2m1, eXmY[fn|fnuz|f][bN][ns][sat], qI.F or uqI.F",
        ),
        (
            "",
            "unknown format '': expected one of fp32, tf32, fp16, bf16, e5m2, e4m3, e4m3fnuz, "
            "e5m2fnuz, e3m2, e2m3, e2m1, eXmY[fn|fnuz|f][bN][ns][sat], qI.F or uqI.F",
        ),
        ("e0m3", "impossible format 'e0m3': exponent bits must be 1..8, not 0"),
        ("e9m2", "impossible format 'e9m2': exponent bits must be 1..8, not 9"),
        ("e5m24", "impossible format 'e5m24': mantissa bits must be 0..23, not 24"),
        (
            "e4m0",
            "impossible format 'e4m0': specials 'ieee' needs at least 1 mantissa bit to encode NaN, "
            "not man_bits=0; use specials 'fn' or 'finite'",
        ),
        (
            "e1m2",
            "impossible format 'e1m2': specials 'ieee' needs at least 2 exponent bits (one exponent "
            "field is reserved for Inf/NaN), not exp_bits=1",
        ),
        (
            "e1m0fn",
            "impossible format 'e1m0fn': format FloatFormat(exp_bits=1, man_bits=0, bias=0, "
            "subnormals=True, specials='fn', overflow='inf') has no normal finite value",
        ),
        (
            "e8m23b0",
            "impossible format 'e8m23b0': bias 0 gives max exponent 254, beyond float32's 127; "
            "mpsim formats must fit in float32",
        ),
        (
            "e8m23b200",
            "impossible format 'e8m23b200': bias 200 gives smallest exponent -222, below "
            "float32's -149; mpsim formats must fit in float32",
        ),
        ("q20.20", "impossible format 'q20.20': integer + fraction bits must be 1..24 (exact in float32), not 40"),
        ("uq0.0", "impossible format 'uq0.0': integer + fraction bits must be 1..24 (exact in float32), not 0"),
    ],
)
def test_parse_errors(spec, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        mpsim.parse_format(spec)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: mpsim.parse_format(3), "format must be a string or a format spec, not 3"),
        (lambda: FloatFormat(4.0, 3), "exponent bits must be an integer, not 4.0"),
        (lambda: FloatFormat(4, True), "mantissa bits must be an integer, not True"),
        (lambda: FloatFormat(4, 3, bias=1.5), "bias must be an integer, not 1.5"),
        (lambda: FloatFormat(4, 3, subnormals=1), "subnormals must be True or False, not 1"),
        (
            lambda: FloatFormat(4, 3, specials="nan"),
            "specials must be one of 'ieee', 'fn', 'fnuz', 'finite', not 'nan'",
        ),
        (lambda: FloatFormat(4, 3, overflow="clip"), "overflow must be one of 'inf', 'saturate', not 'clip'"),
        (lambda: FixedFormat("4", 3), "integer bits must be an integer, not '4'"),
        (lambda: FixedFormat(4, 3.0), "fraction bits must be an integer, not 3.0"),
        (lambda: FixedFormat(-1, 3), "integer bits must be >= 0, not -1"),
        (lambda: FixedFormat(1, -3), "fraction bits must be >= 0, not -3"),
        (lambda: FixedFormat(4, 3, signed=0), "signed must be True or False, not 0"),
        (
            lambda: FixedFormat(4, 3, overflow="clamp"),
            "fixed-point overflow must be one of 'saturate', 'wrap', not 'clamp'",
        ),
        (
            lambda: FixedFormat(4, 3, overflow="inf"),
            "fixed-point overflow must be one of 'saturate', 'wrap', not 'inf'",
        ),
    ],
)
def test_constructor_errors(make, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make()


def test_decode_errors():
    fmt = mpsim.parse_format("e4m3")
    with pytest.raises(ValueError, match=r"^bit pattern 256 is not a 8-bit code of e4m3$"):
        mpsim.decode(fmt, [1, 256])
    with pytest.raises(ValueError, match=r"^bit pattern -1 is not a 8-bit code of e4m3$"):
        mpsim.decode(fmt, np.array([-1]))
    with pytest.raises(ValueError, match=r"^bit patterns must be integers, not dtype float64$"):
        mpsim.decode(fmt, [1.0])


def test_encode_errors():
    with pytest.raises(ValueError, match=r"^cannot encode nan in fixed-point q3\.4: it has no NaN or Inf$"):
        mpsim.encode(mpsim.parse_format("q3.4"), [0.5, np.nan])
    with pytest.raises(ValueError, match=r"^cannot encode inf in fixed-point q3\.4wrap: it has no NaN or Inf$"):
        mpsim.encode(mpsim.parse_format("q3.4wrap"), [np.inf])
    with pytest.raises(ValueError, match=r"^cannot encode nan in e2m1: the format has no NaN or Inf$"):
        mpsim.encode(mpsim.parse_format("e2m1"), [-np.nan])
