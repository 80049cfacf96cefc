"""Numba kernel of the MX GEMM: exact block sums, scaled, each added into the accumulator with one rounding.

Pure numerics on NumPy arrays (the semantics are in :mod:`mpsim.mx_gemm`).

Exact block sums: the element products are exact in float64 (float32 values)
and multiples of ``2**lsb`` (twice the element format's smallest exponent).
Each product ``p`` is cut at ``2**split`` into ``trunc(p / 2**split) * 2**split``
and the rest; the two parts are summed apart, each exactly in float64 (the
caller picks ``split`` so that both sums stay within 53 bits), and TwoSum
makes of the two sums a non-overlapping pair ``th + tl``: the exact block sum.
Times the scales' ``2**(Ea + Eb)`` (a power of two, exact) it is the term.

The step ``acc = R(acc + term)``: where ``tl == 0`` (the term is a float64,
as for every block of FP8 E4M3, FP6, FP4 and MXINT8), the exact pair
``TwoSum(acc, th)`` is rounded by :func:`mpsim.gemm_kernels.round_pair`, as
the general step of :func:`mpsim.qmatmul` rounds ``acc + p``. Otherwise the
three floats ``acc + th + tl`` are brought to a pair ``s + e`` whose value is
the exact sum rounded to odd at 100 bits or more (TwoSums, the last error
term rounded to odd by :func:`mpsim.gemm_kernels.round_to_odd`), and that
pair is rounded by ``round_pair``: a value rounded to odd keeps every
rounding at least 2 bits coarser (Boldo and Melquiond), and an accumulator's
mantissa bits (at most 23) and random bits (at most 62) come to 85. Every
value met is a multiple of ``2**-320`` at least (accumulators: ``2**-149``;
terms: ``2**-44`` times ``2**-254``) and below ``2**400``: no float64 underflow
or overflow in the TwoSums.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from mpsim import jit_cache
from mpsim.gemm_kernels import STAGE_SUM, STAGES, round_pair, round_to_odd, two_sum
from mpsim.kernels import pow2
from mpsim.params import SOURCE_COUNTER, KernelParams
from mpsim.randbits import counter_word

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

__all__ = ["mx_gemm_sequential", "mx_step"]

_NAN_CODE = 255
_BIAS2 = 254  # two E8M0 biases


@numba.njit(inline="always")
def mx_step(acc: float, th: float, tl: float, p: KernelParams, r: int) -> float:
    """``acc + th + tl`` (an exact term ``th + tl``, a non-overlapping pair) rounded under ``p`` with bits ``r``."""
    if tl == 0.0 or acc != acc or np.abs(acc) == np.inf or th != th:
        s, e = two_sum(acc, th)
        return round_pair(s, e, p, r)
    a1, a2 = two_sum(acc, th)
    b1, b2 = two_sum(a2, tl)
    c1, c2 = two_sum(a1, b1)  # acc + th + tl == c1 + c2 + b2, |c2 + b2| below 2**-50 |c1|
    d1, d2 = two_sum(c2, b2)
    s, e = two_sum(c1, round_to_odd(d1, d2))
    return round_pair(s, e, p, r)


@numba.njit(inline="always")
def _bits(
    p: KernelParams, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray, o: int, nb: int, t: int
) -> int:
    """The accumulator's random bits for block ``t`` of output ``o``: qmatmul's stage-1 draw of term ``t``, K = nb."""
    k = p.rand_bits
    if k == 0:
        return 0
    if source != SOURCE_COUNTER:
        return rand[(o * nb + t) * STAGES + STAGE_SUM]
    per_word = 64 // k
    place = t % per_word if per_word >= 2 else 0
    word = counter_word(key, offset + np.uint64((o * nb + t - place) * STAGES + STAGE_SUM))
    return np.int64((word << np.uint64(k * place)) >> np.uint64(64 - k))


@numba.njit(parallel=True, cache=True)
def mx_gemm_sequential(
    ea: np.ndarray,
    sa: np.ndarray,
    eb: np.ndarray,
    sb: np.ndarray,
    out: np.ndarray,
    block: int,
    split: int,
    p: KernelParams,
    source: int,
    key: np.uint64,
    offset: np.uint64,
    rand: np.ndarray,
    round_blocks: bool,
    bp: KernelParams,
) -> None:
    """``out[z, i, j]``: the blocks of row ``ea[z, i]`` and column ``eb[z, j]`` summed exactly, scaled, accumulated.

    ``ea``: (Ba, M, nb * block) float32 elements, ``sa``: (Ba, M, nb) E8M0
    codes; ``eb``, ``sb`` the same for B's columns (N for M); a batch of 1
    broadcasts. ``split``: see the module doc. ``out``: (B, M, N) float64.
    ``round_blocks``: each exact block sum is rounded under ``bp`` (no random
    bits) before it is scaled.
    """
    batch, m, n = out.shape
    nb = sa.shape[2]
    down = pow2(-split)
    up = pow2(split)
    for zi in prange(batch * m):
        z = zi // m
        i = zi % m
        za = z if ea.shape[0] > 1 else 0
        zb = z if eb.shape[0] > 1 else 0
        for j in range(n):
            o = zi * n + j
            acc = 0.0
            for t in range(nb):
                ca = np.int64(sa[za, i, t])
                cb = np.int64(sb[zb, j, t])
                if ca == _NAN_CODE or cb == _NAN_CODE:
                    th = np.nan
                    tl = 0.0
                else:
                    hi = 0.0
                    lo = 0.0
                    for u in range(t * block, (t + 1) * block):
                        prod = np.float64(ea[za, i, u]) * np.float64(eb[zb, j, u])
                        part = np.trunc(prod * down) * up
                        hi += part
                        lo += prod - part
                    th, tl = two_sum(hi, lo)
                    if round_blocks:
                        th = round_pair(th, tl, bp, 0)
                        tl = 0.0
                    scale = pow2(ca + cb - _BIAS2)
                    th *= scale
                    tl *= scale
                acc = mx_step(acc, th, tl, p, _bits(p, source, key, offset, rand, o, nb, t))
            out[z, i, j] = acc
