"""Kernel parameters: a format and a rounding flattened, once, into the plain numbers the Numba kernels read.

The layer between the specs (:mod:`mpsim.formats`, :mod:`mpsim.rounding`,
:mod:`mpsim.randbits`) and the kernels (:mod:`mpsim.kernels`,
:mod:`mpsim.gemm_kernels`): the kernels see only these records, never a
format object, so they compile once per record type, not per format.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from mpsim.formats import FixedFormat, FloatFormat
from mpsim.rounding import Rounding, RoundingMode

__all__ = [
    "DOWN",
    "MAX_GUARDED_MAN_BITS",
    "NEAREST",
    "NEAREST_AWAY",
    "SOURCE_ARRAY",
    "SOURCE_COUNTER",
    "SOURCE_NONE",
    "STOCHASTIC",
    "TOWARD_ZERO",
    "UP",
    "ExactParams",
    "Float32Params",
    "KernelParams",
    "exact_params",
    "float32_params",
    "guardable",
    "kernel_params",
]

# The rounding modes as the kernels switch on them.
NEAREST = RoundingMode.NEAREST.code
NEAREST_AWAY = RoundingMode.NEAREST_AWAY.code
TOWARD_ZERO = RoundingMode.TOWARD_ZERO.code
UP = RoundingMode.UP.code
DOWN = RoundingMode.DOWN.code
STOCHASTIC = RoundingMode.STOCHASTIC.code

# Source of the random bits of stochastic rounding inside a kernel.
SOURCE_NONE = 0  # deterministic modes
SOURCE_COUNTER = 1  # CounterRNG(key) at position offset + flat index
SOURCE_ARRAY = 2  # explicit k-bit integers, one per element (LFSR, test benches)

#: round_nearest_guarded's magic constant keeps a sum in its binade up to this many mantissa bits.
MAX_GUARDED_MAN_BITS = 49


class KernelParams(NamedTuple):
    """A format and rounding flattened to plain numbers for the kernels."""

    is_fixed: bool
    man_bits: int  # float: stored mantissa bits
    emin: int  # float: exponent of the smallest normal
    subnormals: bool
    frac_bits: int  # fixed: fraction bits
    magnitude_bits: int  # fixed: int_bits + frac_bits
    signed: bool  # fixed: two's complement
    wrap: bool  # fixed: wrap instead of saturate
    max_value: float  # largest finite magnitude
    saturate: bool  # clamp overflow (and Inf input) to +-max
    has_inf: bool
    has_nan: bool
    unsigned_zero: bool  # no -0 (fnuz)
    mode: int  # RoundingMode.code
    rand_bits: int  # k (0 for deterministic modes)


class Float32Params(NamedTuple):
    """Extra numbers for the float32 fast path (normal range of the target format)."""

    shift: int  # 23 - man_bits: float32 mantissa bits dropped in the normal range
    emin_bits: int  # float32 bit pattern of 2**emin, the smallest normal
    half_emin_bits: int  # float32 bit pattern of 2**(emin-1)
    max_bits: int  # float32 bit pattern of max
    overflow_bits: int  # magnitude bits that an overflowing nearest/stochastic rounding gives
    inf_bits: int  # magnitude bits that an infinite input gives


class ExactParams(NamedTuple):
    """Numbers for rounding an exact float64 value into a float format with subnormals."""

    c_shift: np.uint64  # (52 - man_bits) << 52: 2**E -> 2**(E + 52 - man_bits), whose float64 ulp is the quantum
    c_small: np.uint64  # float64 bits of 2**(min_exponent + 52), the same below the smallest normal
    trunc: np.uint64  # clears the float64 mantissa bits below the quantum
    emin_bits: np.uint64  # float64 bits of 2**emin
    max_value: float  # largest finite magnitude
    overflow: float  # magnitude an overflow or an infinity gives (Inf, NaN or max)
    to_quanta: float  # 2**-min_exponent
    quantum: float  # 2**min_exponent
    k: np.uint64  # random bits of stochastic rounding (0: nearest)
    k_scale: float  # 2**k
    r_down: np.uint64  # r -> the random bits at the scale of the discarded bits: (r >> down) << up
    r_up: np.uint64
    r_kept: np.uint64  # bits of r that reach the discarded bits: min(k, 52 - man_bits)
    r_mask: np.uint64  # their place: ((1 << r_kept) - 1) << r_up
    zero: float  # +0.0 where the format has no -0 (adding it clears the sign of zero), else -0.0 (a no-op)
    emin_value: float  # 2**emin
    emax_bits: np.uint64  # float64 bits of 2**emax: from there up a rounding may overflow
    guard_scale: float  # 2**(1024 - emax): 2**E times it is Inf exactly when E >= emax
    magic_scale: float  # 1.5 * 2**(52 - man_bits) / guard_scale


def kernel_params(fmt: FloatFormat | FixedFormat, rounding: Rounding, saturate: bool | None = None) -> KernelParams:
    """Flatten a format and rounding into the kernels' parameters.

    ``saturate=None`` takes the format's own overflow policy.
    """
    if saturate is not None and not isinstance(saturate, bool):
        raise ValueError(f"saturate must be True, False or None, not {saturate!r}")
    if isinstance(fmt, FixedFormat):
        wrap = fmt.overflow == "wrap" if saturate is None else not saturate
        return KernelParams(
            is_fixed=True,
            man_bits=0,
            emin=0,
            subnormals=True,
            frac_bits=fmt.frac_bits,
            magnitude_bits=fmt.int_bits + fmt.frac_bits,
            signed=fmt.signed,
            wrap=wrap,
            max_value=fmt.max,
            saturate=not wrap,
            has_inf=False,
            has_nan=False,
            unsigned_zero=True,
            mode=rounding.mode.code,
            rand_bits=rounding.kernel_rand_bits,
        )
    sat = fmt.saturates if saturate is None else (saturate or not (fmt.has_inf or fmt.has_nan))
    return KernelParams(
        is_fixed=False,
        man_bits=fmt.man_bits,
        emin=fmt.emin,
        subnormals=fmt.subnormals,
        frac_bits=0,
        magnitude_bits=0,
        signed=True,
        wrap=False,
        max_value=fmt.max,
        saturate=sat,
        has_inf=fmt.has_inf,
        has_nan=fmt.has_nan,
        unsigned_zero=not fmt.has_negative_zero,
        mode=rounding.mode.code,
        rand_bits=rounding.kernel_rand_bits,
    )


def float32_params(fmt: FloatFormat | FixedFormat, p: KernelParams) -> Float32Params | None:
    """Parameters of the float32 fast path, or None where it does not apply (fixed point, emin < -126)."""
    if isinstance(fmt, FixedFormat) or fmt.emin < -126:
        return None
    max_bits = int(np.float32(fmt.max).view(np.uint32))
    if p.saturate or not (fmt.has_inf or fmt.has_nan):
        overflow_bits = max_bits
    else:
        overflow_bits = 0x7F800000 if fmt.has_inf else 0x7FC00000
    return Float32Params(
        shift=23 - fmt.man_bits,
        emin_bits=(fmt.emin + 127) << 23,
        half_emin_bits=int(np.float32(2.0 ** (fmt.emin - 1)).view(np.uint32)),
        max_bits=max_bits,
        overflow_bits=overflow_bits,
        inf_bits=max_bits if overflow_bits == max_bits else overflow_bits,
    )


def guardable(fmt: FloatFormat | FixedFormat | None) -> bool:
    """Whether the guarded roundings of :mod:`mpsim.gemm_kernels` take ``fmt``.

    Their constants must be normal float64 numbers (``2**(1024 - emax)``,
    ``2**(emax - 1024)``, ``1.5 * 2**(52 - man_bits - 1024 + emax)``; a large
    bias gives ``emax <= 0``), and the nearest one's sums stay in their binade
    up to ``MAX_GUARDED_MAN_BITS``.
    """
    return (
        isinstance(fmt, FloatFormat)
        and fmt.man_bits <= MAX_GUARDED_MAN_BITS
        and fmt.emax >= 2
        and fmt.emax - fmt.man_bits >= -50
    )


def exact_params(fmt: FloatFormat | FixedFormat | None, rule: Rounding, p: KernelParams) -> ExactParams | None:
    """Parameters of the exact-value roundings, or None where they do not apply.

    They take float formats with subnormals, nearest or stochastic rounding
    (any number of random bits).
    """
    if not isinstance(fmt, FloatFormat) or not fmt.subnormals:
        return None
    if rule.mode not in (RoundingMode.NEAREST, RoundingMode.STOCHASTIC):
        return None
    shift = 52 - fmt.man_bits
    k = rule.kernel_rand_bits if rule.stochastic else 0
    r_up, r_down = max(shift - k, 0), max(k - shift, 0)  # r to the scale of the discarded bits
    return ExactParams(
        c_shift=np.uint64(shift << 52),
        c_small=np.uint64((fmt.min_exponent + 52 + 1023) << 52),
        trunc=np.uint64(~((1 << shift) - 1) & (2**64 - 1)),
        emin_bits=np.uint64((fmt.emin + 1023) << 52),
        max_value=fmt.max,
        overflow=_overflow_value(fmt, p),
        to_quanta=2.0**-fmt.min_exponent,
        quantum=2.0**fmt.min_exponent,
        k=np.uint64(k),
        k_scale=2.0**k,
        r_down=np.uint64(r_down),
        r_up=np.uint64(r_up),
        r_kept=np.uint64(k - r_down),
        r_mask=np.uint64(((1 << (k - r_down)) - 1) << r_up),
        zero=0.0 if p.unsigned_zero else -0.0,
        emin_value=2.0**fmt.emin,
        emax_bits=np.uint64((fmt.emax + 1023) << 52),
        guard_scale=2.0 ** (1024 - fmt.emax) if guardable(fmt) else math.nan,
        magic_scale=1.5 * 2.0 ** (52 - fmt.man_bits - 1024 + fmt.emax) if guardable(fmt) else math.nan,
    )


def _overflow_value(fmt: FloatFormat, p: KernelParams) -> float:
    """Magnitude that nearest or stochastic rounding gives beyond max: Inf, NaN or max."""
    if p.saturate:
        return fmt.max
    return math.inf if fmt.has_inf else math.nan if fmt.has_nan else fmt.max
