"""Numba kernels of the MX block formats: each block's shared scale, then its elements, in one pass.

Pure numerics: NumPy arrays and integers in, arrays out; the rules are those
of :mod:`mpsim.mx` (``mode`` is :attr:`mpsim.mx.ScaleMode.code`). The elements
are rounded by :func:`mpsim.kernels.quantize_scalar`, the element kernel of
:func:`mpsim.quantize`, with the same random bits per element.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from mpsim import jit_cache
from mpsim.kernels import pow2, quantize_scalar, random_bits
from mpsim.params import KernelParams

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

__all__ = ["SCALE_CEIL", "SCALE_EVEN", "SCALE_FLOOR", "SCALE_RCEIL", "quantize_mx_blocks", "scale_code"]

# The scale rules as the kernel switches on them (the order of mpsim.mx.ScaleMode).
SCALE_FLOOR = 0
SCALE_CEIL = 1
SCALE_RCEIL = 2
SCALE_EVEN = 3

_BIAS = 127
_NAN_CODE = 255


@numba.njit(inline="always")
def scale_code(a: float, mode: int, emax: int, man_bits: int, max_value: float) -> int:
    """E8M0 code (``E + 127``; 255 for NaN) of a block whose largest magnitude is ``a`` (float64).

    ``emax``, ``man_bits``, ``max_value``: the element format's largest normal
    exponent, mantissa bits and largest value. Zero gives ``E = -127`` and Inf
    ``E = 127`` (both clamped ends); everything else follows the rule exactly,
    from ``a = 2m * 2**e`` with ``0.5 <= m < 1`` (``frexp``).
    """
    if a != a:
        return _NAN_CODE
    if a == 0.0:
        return 0
    if a == np.inf:
        return 2 * _BIAS
    m, ex = math.frexp(a)
    e = ex - 1  # floor(log2(a))
    e_shared = e - emax
    if mode == SCALE_CEIL:
        e_shared += 1 if m != 0.5 else 0
    elif mode == SCALE_RCEIL:
        e_shared += 1 if 2.0 * m * 2.0**emax > max_value else 0  # a / 2**(e - emax) > max
    elif mode == SCALE_EVEN:
        e_shared += 1 if m >= 1.0 - 2.0 ** -(man_bits + 2) else 0  # rounds up to 1.0 at man_bits bits, ties away
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
