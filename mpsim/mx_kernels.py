"""Numba kernels of the MX block formats: each block's shared scale, then its elements, in one pass.

Pure numerics: NumPy arrays and integers in, arrays out; the rules are those
of :mod:`mpsim.mx` (``mode`` is :attr:`mpsim.mx.ScaleMode.code`). The elements
are rounded by :func:`mpsim.kernels.quantize_scalar`, the element kernel of
:func:`mpsim.quantize`, with the same random bits per element.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from mpsim import jit_cache
from mpsim.kernels import pow2, quantize_scalar, random_bits
from mpsim.params import Float32Params, KernelParams

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

__all__ = [
    "SCALE_CEIL",
    "SCALE_EVEN",
    "SCALE_FLOOR",
    "SCALE_RCEIL",
    "element_constants",
    "pack_nibble_rows",
    "quantize_mx_blocks",
    "quantize_mx_f32_nearest",
    "scale_code",
]

# The scale rules as the kernel switches on them (the order of mpsim.mx.ScaleMode).
SCALE_FLOOR = 0
SCALE_CEIL = 1
SCALE_RCEIL = 2
SCALE_EVEN = 3

_BIAS = 127
_NAN_CODE = 255
_ONE = np.uint64(1)
_F64_FRACTION = np.int64((1 << 52) - 1)
_F64_ONE = np.int64(1023 << 52)
_TWO = np.uint64(2)


@numba.njit(inline="always")
def scale_code(a: float, mode: int, emax: int, man_bits: int, max_value: float) -> int:
    """E8M0 code (``E + 127``; 255 for NaN) of a block whose largest magnitude is ``a`` (float64).

    ``emax``, ``man_bits``, ``max_value``: the element format's largest normal
    exponent, mantissa bits and largest value. Zero gives ``E = -127`` and Inf
    ``E = 127`` (both clamped ends); everything else follows the rule exactly,
    from ``a = 2m * 2**e`` with ``0.5 <= m < 1``.
    """
    if a != a:
        return _NAN_CODE
    if a == 0.0:
        return 0
    if a == np.inf:
        return 2 * _BIAS
    bits = np.float64(a).view(np.int64)
    if bits >> 52 == 0:  # a float64 subnormal: no float32 input comes here
        m, ex = math.frexp(a)
        e = ex - 1  # floor(log2(a))
        two_m = 2.0 * m
    else:  # read off the bits: frexp is a libm call, a third of the time of a float32 block of 32
        e = (bits >> 52) - 1023
        two_m = np.int64((bits & _F64_FRACTION) | _F64_ONE).view(np.float64)  # a / 2**e, in [1, 2)
    e_shared = e - emax
    if mode == SCALE_CEIL:
        e_shared += 1 if two_m != 1.0 else 0
    elif mode == SCALE_RCEIL:
        e_shared += 1 if two_m * pow2(emax) > max_value else 0  # a / 2**(e - emax) > max
    elif mode == SCALE_EVEN:
        e_shared += 1 if two_m >= 2.0 - pow2(-(man_bits + 1)) else 0  # rounds up to 2 at man_bits bits, ties away
    return min(max(e_shared, -_BIAS), _BIAS) + _BIAS


@numba.njit(parallel=True, cache=True)
def quantize_mx_blocks(
    x: np.ndarray,
    out: np.ndarray,
    codes: np.ndarray,
    pre: int,
    n: int,
    post: int,
    block: int,
    mode: int,
    emax: int,
    man_bits: int,
    p: KernelParams,
    source: int,
    key: np.uint64,
    offset: np.uint64,
    rand: np.ndarray,
    scale_back: bool,
    nan_element: float,
) -> None:
    """MX blocks of C-contiguous ``x`` seen as ``(pre, n, post)``, blocks of ``block`` along ``n``, in parallel.

    Writes the E8M0 codes (``codes``: ``(pre, n_blocks, post)``, flat) and, per
    element, its value ``q * 2**E`` (``scale_back``) or its element value ``q``
    (``nan_element`` in a NaN block), ``q`` being ``x / 2**E`` rounded by
    :func:`mpsim.kernels.quantize_scalar` under ``p`` with the random bits of
    the element's flat index, as :func:`mpsim.kernels.quantize_contiguous` draws them.
    """
    n_blocks = (n + block - 1) // block
    for t in prange(pre * n_blocks * post):
        a_index = t // (n_blocks * post)
        blk = (t // post) % n_blocks
        b_index = t % post
        start = blk * block
        stop = min(start + block, n)
        amax = 0.0
        for j in range(start, stop):
            v = abs(np.float64(x[(a_index * n + j) * post + b_index]))
            if v != v:
                amax = v
                break
            amax = max(amax, v)
        code = scale_code(amax, mode, emax, man_bits, p.max_value)
        codes[t] = code
        exponent = 0 if code == _NAN_CODE else code - _BIAS
        down = pow2(-exponent)
        up = pow2(exponent)
        for j in range(start, stop):
            i = (a_index * n + j) * post + b_index
            if code == _NAN_CODE:
                out[i] = np.nan if scale_back else nan_element
                continue
            q = quantize_scalar(np.float64(x[i]) * down, p, random_bits(p, source, key, offset, rand, i))
            out[i] = q * up if scale_back else q


@numba.njit
def _f32_value(bits: int) -> float:
    """The float32 with bits ``bits``, as float64."""
    return np.float64(np.uint32(bits).view(np.float32))


@numba.njit
def _f32_bits(x: np.float32) -> int:
    return np.int64(np.float32(x).view(np.uint32))


@numba.njit
def _f32_of(bits: int) -> np.float32:
    return np.uint32(bits).view(np.float32)


class _Element(NamedTuple):
    """Constants of :func:`_round_element`, from the element format (see :func:`quantize_mx_f32_nearest`)."""

    shift: int  # float32 mantissa bits dropped in the normal range
    low_mask: int
    half_minus_one: int
    emin_bits: int  # float32 bits of the smallest normal
    max_bits: int  # float32 bits of max
    magic: np.float32  # 2**(emin - man_bits + 23): its float32 ulp is the element's subnormal quantum
    magic_bits: int
    man_bits: int
    man_mask: int
    exp_offset: int  # element bias - 127
    sign_shift: int  # the sign's place in a code: bits - 1


@numba.njit(inline="always")
def _round_element(a: int, c: _Element) -> tuple[int, int]:
    """(magnitude code, float32 bits of the magnitude) of float32 magnitude bits ``a``, nearest even, saturating.

    Normal range: integer rounding of the bits, as :func:`mpsim.kernels.quantize_f32_nearest`
    does. Below the smallest normal: ``|x| + magic`` lands in the binade of ``magic``,
    whose float32 ulp is the element's subnormal quantum, so the float32
    addition rounds to nearest even there and its bits minus ``magic``'s count
    the quanta: the code (``2**man_bits``, the smallest normal's code, when it rounds up).
    Branch-free: both ranges computed, one kept.
    """
    odd = (a >> c.shift) & 1
    r = min((a + c.half_minus_one + odd) & ~c.low_mask, c.max_bits)  # Inf saturates too
    normal_code = (((r >> 23) + c.exp_offset) << c.man_bits) | ((r >> c.shift) & c.man_mask)
    small = np.float32(_f32_of(a) + c.magic)
    is_small = a < c.emin_bits
    small_code = _f32_bits(small) - c.magic_bits
    small_bits = _f32_bits(np.float32(small - c.magic))
    return (small_code if is_small else normal_code), (small_bits if is_small else r)


def element_constants(p: KernelParams, f: Float32Params, bias: int, bits: int) -> _Element:
    """The :class:`_Element` of a float element format (``p``, ``f``: its kernel and float32 parameters)."""
    s = f.shift
    return _Element(
        shift=s,
        low_mask=(1 << s) - 1,
        half_minus_one=(1 << (s - 1)) - 1,
        emin_bits=f.emin_bits,
        max_bits=f.max_bits,
        magic=np.float32(2.0 ** (p.emin - p.man_bits + 23)),
        magic_bits=int(np.float32(2.0 ** (p.emin - p.man_bits + 23)).view(np.uint32)),
        man_bits=p.man_bits,
        man_mask=(1 << p.man_bits) - 1,
        exp_offset=bias - 127,
        sign_shift=bits - 1,
    )


@numba.njit(parallel=True, cache=True)
def quantize_mx_f32_nearest(
    u: np.ndarray,
    values: np.ndarray,
    codes: np.ndarray,
    scales: np.ndarray,
    rows: int,
    n: int,
    block: int,
    mode: int,
    emax: int,
    man_bits_rule: int,
    max_value: float,
    c: _Element,
    nan_code: int,
    want_values: bool,
) -> None:
    """:func:`quantize_mx_blocks` for float32 input, nearest-even, float elements, blocks along rows.

    ``u``: the bits of C-contiguous ``(rows, n)`` float32 data, flat; blocks of
    ``block`` along each row (the last partial), scales ``(rows, n_blocks)``, flat.

    Same scales and elements, computed on float32 bits so that the element
    loop is a few integer operations: the block's largest magnitude is the
    largest of the magnitude bits (NaN bits are above Inf's); ``x / 2**E`` is
    a float32 product, exact but below ``2**-126``, where it may round but
    stays far below half the element's smallest subnormal (``2**-23`` or more,
    :class:`mpsim.mx.MXFormat`) and so rounds to the same signed zero; the
    element is rounded as :func:`mpsim.kernels.quantize_f32_nearest` rounds,
    saturating (:func:`_round_element`); its value times ``2**E`` is exact in
    float32 (:class:`mpsim.mx.MXFormat` again) or overflows to Inf, as float64
    would. Writes the E8M0 codes and the values (``want_values``, float32) or
    else the element codes (``nan_code`` in a NaN block). The
    element format has subnormals, a negative zero and ``man_bits >= 1``.
    """
    n_blocks = (n + block - 1) // block
    for t in prange(rows * n_blocks):
        row = t // n_blocks
        start = row * n + (t % n_blocks) * block
        # Unsigned indices: Numba wraps a negative signed index, a test per access
        # that keeps LLVM from vectorising these loops (3x slower on 4096 x 4096).
        lo = np.uint64(start)
        hi = np.uint64(min(start + block, (row + 1) * n))
        top = np.uint32(0)
        for i in range(lo, hi):
            top = max(top, u[i] & np.uint32(0x7FFFFFFF))
        amax = np.nan if top > 0x7F800000 else _f32_value(top)
        code = scale_code(amax, mode, emax, man_bits_rule, max_value)
        scales[t] = code
        if code == _NAN_CODE:
            if want_values:
                values[lo:hi] = np.nan
            else:
                codes[lo:hi] = nan_code
            continue
        down = np.float32(pow2(_BIAS - code))
        up = np.float32(pow2(code - _BIAS))
        if want_values:  # two loops, not a test per element: that keeps them vectorised
            for i in range(lo, hi):
                bits = np.int64(u[i])
                a = _f32_bits(np.float32(_f32_of(bits & 0x7FFFFFFF) * down))
                mag_bits = _round_element(a, c)[1]
                values[i] = _f32_of(_f32_bits(np.float32(_f32_of(mag_bits) * up)) | (bits & 0x80000000))
        else:
            for i in range(lo, hi):
                bits = np.int64(u[i])
                a = _f32_bits(np.float32(_f32_of(bits & 0x7FFFFFFF) * down))
                mag_code = _round_element(a, c)[0]
                codes[i] = mag_code | ((bits >> 31) << c.sign_shift)


@numba.njit(parallel=True, cache=True)
def pack_nibble_rows(codes: np.ndarray, out: np.ndarray, rows: int, n: int) -> None:
    """Two 4-bit codes per byte along each row of C-contiguous ``(rows, n)`` ``codes``, the earlier low.

    ``out``: ``(rows, (n + 1) // 2)`` flat; an odd row ends with a zero high nibble.
    """
    width = (n + 1) // 2
    for row in prange(rows):
        # Unsigned throughout, as in quantize_mx_f32_nearest (a signed literal would make the index signed again).
        src = np.uint64(row * n)
        dst = np.uint64(row * width)
        for k in range(np.uint64(n // 2)):
            out[dst + k] = codes[src + _TWO * k] | (codes[src + _TWO * k + _ONE] << np.uint8(4))
        if n % 2:
            out[dst + width - 1] = codes[src + n - 1]
