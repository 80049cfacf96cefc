"""Numba kernels: quantization by bit manipulation on NumPy float arrays.

Pure numerics: NumPy arrays and integer/float parameters in, arrays out; no
torch, no format objects (:mod:`mpsim.quantization` flattens a format into
:class:`KernelParams`). Every input is widened to float64 (exact for float32),
rounded on its IEEE bit pattern, and written back in the input dtype; every
format value is a float32, so nothing is rounded twice.

How one value is rounded (sign-magnitude, as FP hardware does):
``|x| = sig * 2**e_lsb`` with ``sig`` the 53-bit significand; the quantum is
``2**q`` with ``q = E - man_bits`` in the normal range, ``emin - man_bits`` in
the subnormal range (``emin`` without subnormals) and ``-frac_bits`` for fixed
point; ``d = q - e_lsb`` bits are discarded and the rounding mode decides on
``rem`` (the discarded bits) whether to add one quantum. The exponent is not
bounded while rounding (IEEE 754 overflow semantics); overflow is resolved
after, per mode and policy. The stochastic rule is in :mod:`mpsim.rounding`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from mpsim import jit_cache
from mpsim.params import (
    DOWN,
    NEAREST,
    NEAREST_AWAY,
    SOURCE_COUNTER,
    TOWARD_ZERO,
    UP,
    Float32Params,
    KernelParams,
)
from mpsim.randbits import counter_word

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

_M52 = (1 << 52) - 1
_IMPLICIT = 1 << 52


@numba.njit(inline="always")
def pow2(exponent: int) -> float:
    """2.0**exponent for -1022 <= exponent <= 1023, built from its bits."""
    return np.int64((exponent + 1023) << 52).view(np.float64)


@numba.njit(inline="always")
def sr_round_up(rem: int, d: int, r: int, k: int) -> bool:
    """The stochastic rounding rule: carry out of (top k discarded bits + k random bits)."""
    if d >= k:
        top = rem >> (d - k) if d - k < 63 else 0
    else:
        top = rem << (k - d)
    return ((top + r) >> k) != 0


@numba.njit(inline="always")
def quantize_scalar(x: float, p: KernelParams, r: int) -> float:
    """Round one float64 ``x`` into the format of ``p``; ``r`` = random bits (stochastic only)."""
    if x != x:
        return x  # NaN propagates, whatever the format (encode refuses it where there is none)
    bits = np.float64(x).view(np.int64)
    neg = bits < 0
    abits = bits & 0x7FFFFFFFFFFFFFFF
    if abits == 0x7FF0000000000000:  # +-Inf
        if p.is_fixed:
            if p.wrap:
                return np.nan  # no two's complement value is right
            top = np.int64(1) << p.magnitude_bits
            return _fixed_clamp(p, top + 1, neg, top, pow2(-p.frac_bits))
        if p.saturate:
            mag = p.max_value
        elif p.has_inf:
            return x
        elif p.has_nan:
            mag = np.nan
        else:
            mag = p.max_value
        return -mag if neg else mag
    if abits == 0:
        if p.is_fixed or p.unsigned_zero:
            return 0.0
        return x
    exp_field = abits >> 52
    if exp_field == 0:
        sig = abits
        e_lsb = -1074
        exponent = -1022
    else:
        sig = (abits & _M52) | _IMPLICIT
        e_lsb = exp_field - 1075
        exponent = exp_field - 1023

    if p.is_fixed:
        q = -p.frac_bits
    elif exponent >= p.emin:
        q = exponent - p.man_bits
    elif p.subnormals:
        q = p.emin - p.man_bits
    else:
        q = p.emin

    d = q - e_lsb
    up = False
    if d <= 0:
        hi = 0  # unused: the value is already a multiple of the quantum
    else:
        if d >= 63:
            hi = 0
            rem = sig
            half_cmp = -1  # rem < half: sig < 2**53 <= 2**(d-1)
        else:
            hi = sig >> d
            rem = sig & ((np.int64(1) << d) - 1)
            half = np.int64(1) << (d - 1)
            half_cmp = 1 if rem > half else (0 if rem == half else -1)
        mode = p.mode
        if mode == NEAREST:
            up = half_cmp > 0 or (half_cmp == 0 and (hi & 1) == 1)
        elif mode == NEAREST_AWAY:
            up = half_cmp >= 0
        elif mode == TOWARD_ZERO:
            up = False
        elif mode == UP:
            up = rem != 0 and not neg
        elif mode == DOWN:
            up = rem != 0 and neg
        else:
            up = sr_round_up(rem, d, r, p.rand_bits)

    if p.is_fixed:
        return _fixed_result(p, sig, d, hi + up, neg)

    if d <= 0:
        return finish_float(p, np.abs(x), neg)
    return finish_float(p, np.float64(hi + up) * pow2(q), neg)


@numba.njit(inline="always")
def finish_float(p: KernelParams, mag: float, neg: bool) -> float:
    """Signed result from a rounded magnitude (exponent unbounded): overflow per mode and policy."""
    if mag > p.max_value:
        mode = p.mode
        if p.saturate:
            mag = p.max_value
        elif mode == TOWARD_ZERO or (mode == UP and neg) or (mode == DOWN and not neg):
            mag = p.max_value  # IEEE 754: directed roundings toward zero stop at max
        elif p.has_inf:
            mag = np.inf
        elif p.has_nan:
            mag = np.nan  # carries the input's sign, as ml_dtypes' casts do
        else:
            mag = p.max_value
    if mag == 0.0 and p.unsigned_zero:
        return 0.0
    return -mag if neg else mag


@numba.njit(inline="always")
def _fixed_result(p: KernelParams, sig: int, d: int, n: int, neg: bool) -> float:
    """Fixed point: ``|x|`` rounded to ``n`` quanta (or ``sig << -d`` if exact), saturated or wrapped."""
    scale = pow2(-p.frac_bits)
    top = np.int64(1) << p.magnitude_bits  # magnitudes reach top - 1 (and top when negative)
    if p.wrap:
        width = p.magnitude_bits + (1 if p.signed else 0)
        mask = (np.int64(1) << width) - 1
        if d <= 0:
            shift = -d
            low = 0 if shift >= width else (sig & ((np.int64(1) << (width - shift)) - 1)) << shift
        else:
            low = n & mask
        code = (-low) & mask if neg else low
        if p.signed and code >= (np.int64(1) << (width - 1)):
            code -= np.int64(1) << width
        return np.float64(code) * scale
    # Saturate. Bring n to at most top + 1 (meaning "beyond top") without overflowing int64.
    if d <= 0:
        shift = -d
        if shift > p.magnitude_bits or sig > (top >> shift):
            n = top + 1
        else:
            n = sig << shift
    elif n > top + 1:
        n = top + 1
    return _fixed_clamp(p, n, neg, top, scale)


@numba.njit(inline="always")
def _fixed_clamp(p: KernelParams, n: int, neg: bool, top: int, scale: float) -> float:
    if not neg:
        return np.float64(min(n, top - 1)) * scale
    if not p.signed or n == 0:
        return 0.0
    return -np.float64(min(n, top)) * scale


@numba.njit(inline="always")
def random_bits(p: KernelParams, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray, i: int) -> int:
    """The k random bits of element ``i`` (0 when the rounding is deterministic)."""
    if p.rand_bits == 0:
        return 0
    if source == SOURCE_COUNTER:
        return np.int64(counter_word(key, offset + np.uint64(i)) >> np.uint64(64 - p.rand_bits))
    return rand[i]


@numba.njit(parallel=True, cache=True)
def quantize_contiguous(
    x: np.ndarray, out: np.ndarray, p: KernelParams, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray
) -> None:
    """Quantize contiguous 1-D ``x`` into ``out`` (same length), in parallel."""
    for i in prange(x.size):
        out[i] = quantize_scalar(np.float64(x[i]), p, random_bits(p, source, key, offset, rand, i))


@numba.njit(cache=True)
def quantize_strided(
    x: np.ndarray, out: np.ndarray, p: KernelParams, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray
) -> None:
    """Quantize any-layout ``x`` into contiguous 1-D ``out``, elements in C order.

    ``np.ndindex`` walks logical C order whatever the strides; ``np.nditer`` would follow
    memory order and scramble transposed inputs (and their random draws).
    """
    i = 0
    for index in np.ndindex(x.shape):
        out[i] = quantize_scalar(np.float64(x[index]), p, random_bits(p, source, key, offset, rand, i))
        i += 1  # noqa: SIM113 - Numba does not type enumerate over np.ndindex


@numba.njit
def _f32_add_sub(a: int, magic: np.float32) -> int:
    """float32 bits of ``(x + magic) - magic`` for the float32 with bits ``a``, in float32 arithmetic."""
    x = np.uint32(a).view(np.float32)
    t = np.float32(x + magic)
    t = np.float32(t - magic)
    return np.int64(t.view(np.uint32))


@numba.njit(parallel=True, cache=True)
def quantize_f32_nearest(u: np.ndarray, o: np.ndarray, p: KernelParams, f: Float32Params) -> None:
    """Round-to-nearest-even of contiguous float32 into a float format, branch-free.

    Same results as :func:`quantize_scalar`, computed on the float32 encoding
    so that the loop vectorises: in the target's normal range, integer
    rounding of the bits (a carry out of the mantissa bumps the exponent, as
    it should); in its subnormal range, the float32 addition ``(|x| + C) - C``
    with ``C = 2**(emin - man_bits + 23)``, whose hardware round-to-nearest-even
    lands exactly on multiples of the subnormal quantum. ``u`` and ``o`` are
    the arrays viewed as uint32 by the caller (Numba miscompiles views taken
    inside a parallel kernel).
    """
    s = f.shift
    low_mask = (np.int64(1) << s) - 1
    half_minus_one = (np.int64(1) << (s - 1)) - 1 if s > 0 else np.int64(0)
    magic = np.float32(pow2(p.emin - p.man_bits + 23))
    quiet = np.int64(0x00400000)
    for i in prange(u.size):
        bits = np.int64(u[i])
        a = bits & 0x7FFFFFFF
        sign = bits & 0x80000000
        # The target significand's last bit decides ties. With no mantissa bits it is the
        # implicit 1 (not float32's exponent bit at position 23), so normal ties round up.
        odd = ((a >> s) & 1 if s > 0 else np.int64(0)) if s < 23 else np.int64(1)
        r = (a + half_minus_one + odd) & ~low_mask
        r = f.overflow_bits if r > f.max_bits else r
        if p.subnormals:
            small = _f32_add_sub(a, magic)
        else:
            small = f.emin_bits if a > f.half_emin_bits else np.int64(0)  # tie goes to 0 (even)
        r = small if a < f.emin_bits else r
        special = a | quiet if a > 0x7F800000 else f.inf_bits
        r = special if a >= 0x7F800000 else r
        sign = 0 if (p.unsigned_zero and r == 0) else sign
        o[i] = np.uint32(r | sign)


@numba.njit(parallel=True, cache=True)
def quantize_f32_stochastic(
    u: np.ndarray,
    o: np.ndarray,
    p: KernelParams,
    f: Float32Params,
    source: int,
    key: np.uint64,
    offset: np.uint64,
    rand: np.ndarray,
) -> None:
    """Stochastic rounding of contiguous float32 (as uint32 ``u``, ``o``) into a float format, branch-free.

    Same bits as :func:`quantize_scalar` with the same random stream. Normal
    range: the rule of :func:`sr_round_up` on the float32 mantissa bits. Below
    the smallest normal the quantum is fixed, ``2**min_exponent``: the
    magnitude in quanta ``y = |x| / quantum`` splits exactly (float64) into
    whole quanta and the fraction whose top ``k`` bits meet the random bits.
    """
    s = f.shift
    k = p.rand_bits
    low_mask = (np.int64(1) << s) - 1
    min_exponent = p.emin - p.man_bits if p.subnormals else p.emin
    to_quanta = pow2(-min_exponent)
    quantum = pow2(min_exponent)
    scale_k = pow2(k)
    quiet = np.int64(0x00400000)
    for i in prange(u.size):
        r = random_bits(p, source, key, offset, rand, i)
        bits = np.int64(u[i])
        a = bits & 0x7FFFFFFF
        sign = bits & 0x80000000
        rem = a & low_mask
        top = rem >> (s - k) if s >= k else rem << (k - s)
        up = (top + r) >> k
        big = (a & ~low_mask) + (up << s)
        big = f.overflow_bits if big > f.max_bits else big
        y = np.float64(np.uint32(a).view(np.float32)) * to_quanta
        whole = np.floor(y)
        small_up = (np.int64((y - whole) * scale_k) + r) >> k
        small = _f32_bits((whole + np.float64(small_up)) * quantum)
        res = small if a < f.emin_bits else big
        special = a | quiet if a > 0x7F800000 else f.inf_bits
        res = special if a >= 0x7F800000 else res
        sign = 0 if (p.unsigned_zero and res == 0) else sign
        o[i] = np.uint32(res | sign)


@numba.njit
def _f32_bits(value: float) -> int:
    """Bits of ``value`` (exactly a float32) as float32."""
    return np.int64(np.float32(value).view(np.uint32))
