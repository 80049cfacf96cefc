"""Numba kernels of the MX block formats: the shared scale of each block from its largest magnitude.

Pure numerics: NumPy arrays and integers in, arrays out; the rules are those
of :mod:`mpsim.mx` (``mode`` is :attr:`mpsim.mx.ScaleMode.code`). The elements
are rounded by the element kernels of :mod:`mpsim.kernels`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mpsim import jit_cache

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

__all__ = ["SCALE_CEIL", "SCALE_EVEN", "SCALE_FLOOR", "SCALE_RCEIL", "block_scale_codes"]

# The scale rules as the kernel switches on them (the order of mpsim.mx.ScaleMode).
SCALE_FLOOR = 0
SCALE_CEIL = 1
SCALE_RCEIL = 2
SCALE_EVEN = 3

_BIAS = 127
_NAN_CODE = 255


@numba.njit(cache=True)
def block_scale_codes(amax: np.ndarray, out: np.ndarray, mode: int, emax: int, man_bits: int, max_value: float) -> None:
    """E8M0 codes (``E + 127``; 255 for NaN) of blocks with largest magnitudes ``amax`` (float64, 1-D).

    ``emax``, ``man_bits``, ``max_value``: the element format's largest normal
    exponent, mantissa bits and largest value. Zero gives ``E = -127`` and Inf
    ``E = 127`` (both clamped ends); everything else follows the rule exactly,
    from ``amax = 2m * 2**e`` with ``0.5 <= m < 1`` (``frexp``).
    """
    half_ulp_below_two = 1.0 - 2.0 ** -(man_bits + 2)  # m at or above this rounds up to 1.0 (ties away)
    for i in range(amax.size):
        a = amax[i]
        if a != a:
            out[i] = _NAN_CODE
            continue
        if a == 0.0:
            e_shared = -_BIAS
        elif a == np.inf:
            e_shared = _BIAS
        else:
            m, ex = math.frexp(a)
            e = ex - 1  # floor(log2(a))
            e_shared = e - emax
            if mode == SCALE_CEIL:
                e_shared += 1 if m != 0.5 else 0
            elif mode == SCALE_RCEIL:
                e_shared += 1 if 2.0 * m * 2.0**emax > max_value else 0  # a / 2**(e - emax) > max
            elif mode == SCALE_EVEN:
                e_shared += 1 if m >= half_ulp_below_two else 0
        out[i] = min(max(e_shared, -_BIAS), _BIAS) + _BIAS
