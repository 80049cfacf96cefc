"""Shared format lists and comparison helpers for the mpsim tests."""

from __future__ import annotations

import zlib

import ml_dtypes
import numpy as np

import mpsim

#: mpsim formats that ml_dtypes implements, with the ml_dtypes (or NumPy) dtype.
ML_DTYPES_FORMATS = [
    ("e4m3", ml_dtypes.float8_e4m3fn),
    ("e5m2", ml_dtypes.float8_e5m2),
    ("e4m3fnuz", ml_dtypes.float8_e4m3fnuz),
    ("e5m2fnuz", ml_dtypes.float8_e5m2fnuz),
    ("e3m2", ml_dtypes.float6_e3m2fn),
    ("e2m3", ml_dtypes.float6_e2m3fn),
    ("e2m1", ml_dtypes.float4_e2m1fn),
    ("bf16", ml_dtypes.bfloat16),
    ("fp16", np.float16),
]


def stable_seed(*parts: object) -> int:
    """A seed from a test's parameters, the same in every process (``hash()`` of a str is salted per process)."""
    return zlib.crc32(repr(parts).encode())


def all_codes(fmt: mpsim.FloatFormat | mpsim.FixedFormat) -> np.ndarray:
    """Every bit pattern of a format of at most 16 bits, ascending (uint32)."""
    assert fmt.bits <= 16, f"{fmt} is too wide to enumerate"
    return np.arange(1 << fmt.bits, dtype=np.uint32)


def float_bits(x: np.ndarray) -> np.ndarray:
    """The IEEE bit patterns of a float32/float64 array as unsigned integers."""
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint64)


def assert_same_floats(
    got: np.ndarray, want: np.ndarray, inputs: np.ndarray | None = None, *, nan_sign: bool = False
) -> None:
    """Bit-exact equality of two float arrays of one dtype (the sign of zero counts); NaN matches NaN.

    NaN payloads are not compared; their signs only with ``nan_sign``.
    """
    assert got.dtype == want.dtype and got.shape == want.shape
    got_nan, want_nan = np.isnan(got), np.isnan(want)
    bad = got_nan != want_nan
    both = ~got_nan & ~want_nan
    bad |= both & (float_bits(got) != float_bits(want))
    if nan_sign:
        bad |= got_nan & want_nan & (np.signbit(got) != np.signbit(want))
    if bad.any():
        where = np.flatnonzero(bad.reshape(-1))
        flat_in = None if inputs is None else inputs.reshape(-1)
        lines = []
        for i in where[:10]:
            x = "" if flat_in is None else f"x={flat_in[i]!r} ({float(flat_in[i]).hex()}): "
            lines.append(f"  [{i}] {x}got {got.reshape(-1)[i]!r}, want {want.reshape(-1)[i]!r}")
        raise AssertionError(f"{where.size} of {got.size} differ:\n" + "\n".join(lines))


def pytest_configure(config) -> None:
    # Hypothesis reports a failure through libcst, whose import trips a DeprecationWarning
    # from mypy_extensions; under filterwarnings=error that would hide the failure itself.
    config.addinivalue_line("filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")
