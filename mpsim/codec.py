"""Bit patterns: :func:`encode` (values to codes, rounding to nearest even) and :func:`decode` (codes to values).

The hardware speaks bit patterns; these are the NumPy API's bridge to them.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from mpsim import jit_cache
from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.quantization import quantize_numpy

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

__all__ = ["code_dtype", "decode", "encode"]


def code_dtype(bits: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds ``bits``-bit codes."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if bits <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    raise ValueError(f"codes wider than 32 bits are not supported, not {bits!r}")


@numba.njit(cache=True)
def _encode_float(
    v: np.ndarray,
    out: np.ndarray,
    man_bits: int,
    emin: int,
    bias: int,
    sign_shift: int,
    nan_code: int,
    inf_code: int,
    nan_keeps_sign: bool,
    unsigned_zero: bool,
) -> int:
    """Codes of representable float64 values ``v``; returns the index of a bad value or -1."""
    for i in range(v.size):
        x = v[i]
        bits = np.float64(x).view(np.int64)
        sign = np.int64(1) << sign_shift if bits < 0 else 0
        if x != x:
            if nan_code < 0:
                return i
            out[i] = nan_code | (sign if nan_keeps_sign else 0)
            continue
        a = abs(x)
        if a == np.inf:
            if inf_code < 0:
                return i
            out[i] = inf_code | sign
            continue
        if a == 0.0:
            out[i] = 0 if unsigned_zero else sign
            continue
        e = ((np.float64(a).view(np.int64) >> 52) & 0x7FF) - 1023
        if e < emin:  # subnormal: integer multiple of 2**(emin - man_bits)
            code = np.int64(a * 2.0 ** (man_bits - emin))
        else:
            code = ((e + bias) << man_bits) | (np.int64(a * 2.0 ** (man_bits - e)) - (np.int64(1) << man_bits))
        out[i] = code | sign
    return -1


def encode(fmt: str | FloatFormat | FixedFormat, x: npt.ArrayLike) -> np.ndarray:
    """Round ``x`` to nearest even in ``fmt`` (its overflow policy) and return the unsigned codes.

    NaN or Inf that the format cannot encode raise ``ValueError``.
    """
    fmt = parse_format(fmt)
    values = np.asarray(x, dtype=np.float64)
    q = quantize_numpy(values, fmt, "nearest")
    out = np.empty(q.shape, dtype=np.int64)
    flat = q.reshape(-1)
    if isinstance(fmt, FixedFormat):
        if np.isnan(flat).any():
            bad = float(values.reshape(-1)[np.flatnonzero(np.isnan(flat))[0]])
            raise ValueError(f"cannot encode {bad!r} in fixed-point {fmt}: it has no NaN or Inf")
        codes = np.rint(flat * 2.0**fmt.frac_bits).astype(np.int64) & ((1 << fmt.bits) - 1)
        return codes.reshape(q.shape).astype(code_dtype(fmt.bits))
    nan_code = -1 if fmt.nan_code is None else fmt.nan_code
    inf_code = -1 if fmt.inf_code is None else fmt.inf_code
    bad = _encode_float(
        flat,
        out.reshape(-1),
        fmt.man_bits,
        fmt.emin,
        fmt.exponent_bias,
        fmt.bits - 1,
        nan_code,
        inf_code,
        fmt.specials in ("ieee", "fn"),
        not fmt.has_negative_zero,
    )
    if bad >= 0:
        value = float(values.reshape(-1)[bad])
        raise ValueError(f"cannot encode {value!r} in {fmt}: the format has no NaN or Inf")
    return out.astype(code_dtype(fmt.bits))


def decode(fmt: str | FloatFormat | FixedFormat, bits: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Values of the codes ``bits`` (unsigned integers below ``2**fmt.bits``); float32 holds every one exactly."""
    fmt = parse_format(fmt)
    codes = np.asarray(bits)
    if codes.dtype.kind not in "ui":
        raise ValueError(f"bit patterns must be integers, not dtype {codes.dtype}")
    codes = codes.astype(np.int64)
    out_of_range = (codes < 0) | (codes >= (1 << fmt.bits))
    if out_of_range.any():
        bad = int(codes.reshape(-1)[np.flatnonzero(out_of_range.reshape(-1))[0]])
        raise ValueError(f"bit pattern {bad!r} is not a {fmt.bits}-bit code of {fmt}")
    if isinstance(fmt, FixedFormat):
        if fmt.signed:
            codes = np.where(codes >= 1 << (fmt.bits - 1), codes - (1 << fmt.bits), codes)
        return np.ldexp(codes.astype(np.float64), -fmt.frac_bits).astype(dtype)
    m = fmt.man_bits
    magnitude = codes & ((1 << (fmt.exp_bits + m)) - 1)
    negative = (codes >> (fmt.bits - 1)) == 1
    exp_field = magnitude >> m
    frac = magnitude & ((1 << m) - 1)
    subnormal = frac * float(fmt.subnormals)
    values = np.where(
        exp_field == 0,
        np.ldexp(subnormal, fmt.emin - m),
        np.ldexp((frac + (1 << m)).astype(np.float64), exp_field - fmt.exponent_bias - m),
    )
    values = np.where(negative, -values, values)
    if fmt.specials == "ieee":
        top = exp_field == (1 << fmt.exp_bits) - 1
        values = np.where(top & (frac == 0), np.where(negative, -np.inf, np.inf), values)
        values = np.where(top & (frac != 0), np.nan, values)
    elif fmt.specials == "fn":
        values = np.where(magnitude == (1 << (fmt.exp_bits + m)) - 1, np.nan, values)
    elif fmt.specials == "fnuz":
        values = np.where(codes == 1 << (fmt.bits - 1), np.nan, values)
    return values.astype(dtype)
