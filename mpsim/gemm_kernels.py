"""Numba kernels for custom-precision matrix products (every product and sum rounded).

Pure numerics on NumPy arrays. Products of float32 inputs are exact in
float64; each sum ``acc + p`` is computed as an unevaluated pair ``s + e``
(Knuth's TwoSum: ``s = fl(acc + p)``, ``e`` the exact error), and the pair is
rounded into the accumulator format as if it were the exact sum. So every
rounding is of the exact mathematical value, as hardware with a wide enough
adder does, and as the exact-rational reference in the tests does.

Two roundings of a pair:

* :func:`round_pair` -- general (every mode, fixed point, exact stochastic):
  scales the pair by the quantum and reads whole quanta and the fraction.
* :func:`round_pair_fast` -- branch-free, for float formats with nearest or
  stochastic rounding with ``k <= 29`` random bits. It rounds ``s`` on its
  float64 bit pattern and corrects with the sign of ``e`` in the only cases
  where ``e`` can matter: ``s`` exactly on a tie (nearest) or on a boundary of
  the ``k``-bit fraction cells (stochastic). Those points are float64 numbers
  (the format has <= 24 significant bits and ``24 + 29 <= 53``), so the exact
  value and ``s`` are on the same side of every other such point.

Random bits: the rounding of stage ``g`` (0: product, 1: sum consuming term or
tree node ``t``, 2: combining block ``t``) of output ``(b, i, j)`` takes draw
``(((b*M + i)*N + j)*K + t)*3 + g`` of the stream.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from mpsim.kernels import (
    DOWN,
    NEAREST,
    NEAREST_AWAY,
    STOCHASTIC,
    TOWARD_ZERO,
    UP,
    KernelParams,
    _pow2,
    _random_bits,
    finish_float,
    quantize_scalar,
)

STAGE_PRODUCT = 0
STAGE_SUM = 1
STAGE_COMBINE = 2
STAGES = 3

ORDER_SEQUENTIAL = 0
ORDER_PAIRWISE = 1
ORDER_BLOCKED = 2

_SIGN = np.int64(-0x8000000000000000)
_ABS = np.int64(0x7FFFFFFFFFFFFFFF)
_INF_BITS = np.int64(0x7FF0000000000000)
_QUIET = np.int64(0x0008000000000000)
_M52 = np.int64((1 << 52) - 1)


class Float64Params(NamedTuple):
    """Numbers for :func:`round_pair_fast` (float format, nearest or stochastic k <= 29)."""

    shift: int  # 52 - man_bits
    emin_bits: int  # float64 bits of 2**emin
    max_bits: int  # float64 bits of max
    overflow_bits: int  # magnitude bits an overflowing rounding gives (Inf, NaN or max)
    inf_bits: int  # magnitude bits an infinite input gives
    to_quanta: float  # 2**-min_exponent
    quantum: float  # 2**min_exponent: spacing below the smallest normal


@numba.njit(inline="always")
def two_sum(a: float, b: float) -> tuple[float, float]:
    """``s = fl(a + b)`` and the exact error ``e``: ``a + b == s + e`` (Knuth)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@numba.njit(inline="always")
def _floor_pair(t: float, err: float) -> float:
    """floor(t + err) for a TwoSum pair (t = fl(t + err))."""
    f = np.floor(t)
    if f == t and err < 0.0:
        f -= 1.0
    return f


@numba.njit(cache=True)
def round_pair(s: float, e: float, p: KernelParams, r: int) -> float:
    """Round the exact value ``s + e`` (a TwoSum pair) into the format of ``p``."""
    if e == 0.0 or s != s or np.abs(s) == np.inf:
        return quantize_scalar(s, p, r)
    neg = s < 0.0
    mag = np.abs(s)
    err = -e if neg else e  # exact magnitude = mag + err, |err| <= ulp(mag) / 2
    bits = np.float64(mag).view(np.int64)
    exponent = (bits >> 52) - 1023  # mag is normal: float64 sums of float32 data stay far from underflow
    if (bits & _M52) == 0 and err < 0.0:
        exponent -= 1  # the exact value lies just below the power of two mag
    if p.is_fixed:
        q = -p.frac_bits
    elif exponent >= p.emin:
        q = exponent - p.man_bits
    elif p.subnormals:
        q = p.emin - p.man_bits
    else:
        q = p.emin
    scale = _pow2(-q)
    x = mag * scale
    y = err * scale
    if y == 0.0:
        y = 5e-324 if err > 0.0 else -5e-324  # underflowed: only its sign matters
    hi = np.floor(x)
    if hi == x and y < 0.0:
        hi -= 1.0
    frac = x - hi  # exact; the fraction of the exact value is frac + y, strictly inside (0, 1)
    mode = p.mode
    if mode == NEAREST or mode == NEAREST_AWAY:
        t, t_err = two_sum(frac, y)
        above_half = t > 0.5 or (t == 0.5 and t_err > 0.0)
        up = above_half  # an exact tie is impossible: s + e is not a float64
    elif mode == TOWARD_ZERO:
        up = False
    elif mode == UP:
        up = not neg
    elif mode == DOWN:
        up = neg
    else:
        k_scale = _pow2(p.rand_bits)
        t, t_err = two_sum(frac * k_scale, y * k_scale)
        top = np.int64(_floor_pair(t, t_err))
        up = ((top + r) >> p.rand_bits) != 0
    count = hi + (1.0 if up else 0.0)
    if p.is_fixed:
        return _fixed_from_count(p, count, neg)
    return finish_float(p, count * _pow2(q), neg)


@numba.njit(inline="always")
def _fixed_from_count(p: KernelParams, count: float, neg: bool) -> float:
    """Fixed point from a whole number of quanta (a float64 integer, possibly huge)."""
    scale = _pow2(-p.frac_bits)
    top = np.float64(np.int64(1) << p.magnitude_bits)
    if p.wrap:
        width = p.magnitude_bits + (1 if p.signed else 0)
        modulus = np.float64(np.int64(1) << width)
        low = np.fmod(count, modulus)
        code = np.fmod(modulus - low, modulus) if neg else low
        if p.signed and code >= modulus / 2:
            code -= modulus
        return code * scale
    if not neg:
        return min(count, top - 1.0) * scale
    if not p.signed or count == 0.0:
        return 0.0
    return -min(count, top) * scale


@numba.njit(cache=True)
def round_pair_fast(s: float, e: float, p: KernelParams, f: Float64Params, r: int) -> float:
    """:func:`round_pair` for float formats, nearest or stochastic with k <= 29; branch-free."""
    bits = np.float64(s).view(np.int64)
    a = bits & _ABS
    sign = bits & _SIGN
    err = -e if bits < 0 else e  # error of the magnitude
    shift = f.shift
    low_mask = (np.int64(1) << shift) - 1
    trunc = a & ~low_mask
    rem = a & low_mask
    # fraction of the exact value below a magnitude grid point: borrow one quantum
    below = rem == 0 and err < 0.0
    if p.mode == NEAREST:
        half = np.int64(1) << (shift - 1)
        odd = (trunc >> shift) & 1
        up = rem > half or (rem == half and (err > 0.0 or (err == 0.0 and odd == 1)))
        big = trunc + (np.int64(1) << shift if up else np.int64(0))
    else:
        k = p.rand_bits
        cell = shift - k
        top = rem >> cell
        on_edge = (rem & ((np.int64(1) << cell) - 1)) == 0
        top = top - 1 if (on_edge and err < 0.0) else top
        base = trunc - (np.int64(1) << shift) if below else trunc
        top = (np.int64(1) << k) - 1 if below else top
        up = ((top + r) >> k) != 0
        big = base + (np.int64(1) << shift if up else np.int64(0))
    big = f.overflow_bits if big > f.max_bits else big
    # below the smallest normal: fixed quantum, exact float64 arithmetic in quanta
    y = np.int64(a).view(np.float64) * f.to_quanta
    whole = np.floor(y)
    frac = y - whole
    ey = err * f.to_quanta
    if p.mode == NEAREST:
        s_up = frac > 0.5 or (frac == 0.5 and (ey > 0.0 or (ey == 0.0 and np.fmod(whole, 2.0) == 1.0)))
        small_count = whole + (1.0 if s_up else 0.0)
    else:
        k_scale = _pow2(p.rand_bits)
        scaled = frac * k_scale
        top_s = np.floor(scaled)
        top_s = top_s - 1.0 if (top_s == scaled and ey < 0.0) else top_s
        whole = whole - 1.0 if top_s < 0.0 else whole
        top_s = k_scale - 1.0 if top_s < 0.0 else top_s
        s_up = ((np.int64(top_s) + r) >> p.rand_bits) != 0
        small_count = whole + (1.0 if s_up else 0.0)
    small = np.float64(small_count * f.quantum).view(np.int64)
    res = small if a < f.emin_bits else big
    special = a | _QUIET if a > _INF_BITS else f.inf_bits
    res = special if a >= _INF_BITS else res
    sign = np.int64(0) if (p.unsigned_zero and res == 0) else sign
    return np.int64(res | sign).view(np.float64)


@numba.njit(inline="always")
def _bits(acc: KernelParams, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray, index: int) -> int:
    return _random_bits(acc, source, key, offset, rand, index)


@numba.njit(parallel=True, cache=True)
def qgemm(
    a: np.ndarray, b: np.ndarray, out: np.ndarray,
    use_mul: bool, mul: KernelParams, mul_f: Float64Params, mul_fast: bool,
    acc: KernelParams, acc_f: Float64Params, acc_fast: bool,
    order: int, block: int, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray,
) -> None:  # fmt: skip
    """``out[z] = a[z] @ b[z]`` (3-D, batch z; a batch dimension of 1 broadcasts), every step rounded.

    Parallel over (batch, row); within a row the inner loop runs over output
    columns, each its own accumulator, so each output keeps its order.
    """
    m_rows = a.shape[1]
    for zi in prange(out.shape[0] * m_rows):
        _gemm_row(
            a, b, out, zi // m_rows, zi % m_rows, use_mul, mul, mul_f, mul_fast,
            acc, acc_f, acc_fast, order, block, source, key, offset, rand,
        )  # fmt: skip


@numba.njit(cache=True)
def _gemm_row(
    a: np.ndarray, b: np.ndarray, out: np.ndarray, z: int, i: int,
    use_mul: bool, mul: KernelParams, mul_f: Float64Params, mul_fast: bool,
    acc: KernelParams, acc_f: Float64Params, acc_fast: bool,
    order: int, block: int, source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray,
) -> None:  # fmt: skip
    """One output row, in the order asked for."""
    m_rows, k_dim = a.shape[1], a.shape[2]
    n_cols = b.shape[2]
    za = z if a.shape[0] > 1 else 0
    zb = z if b.shape[0] > 1 else 0
    row_base = (z * m_rows + i) * n_cols
    # Products (rounded to the mul format when asked), one row of terms per k.
    terms = np.empty((k_dim, n_cols))
    for k in range(k_dim):
        aik = np.float64(a[za, i, k])
        for j in range(n_cols):
            prod = aik * np.float64(b[zb, k, j])
            if use_mul:
                r = _bits(mul, source, key, offset, rand, ((row_base + j) * k_dim + k) * STAGES)
                prod = round_pair_fast(prod, 0.0, mul, mul_f, r) if mul_fast else quantize_scalar(prod, mul, r)
            terms[k, j] = prod
    if order == ORDER_PAIRWISE:
        _pairwise(terms, out, z, i, row_base, acc, acc_f, acc_fast, source, key, offset, rand)
        return
    size = block if order == ORDER_BLOCKED else max(k_dim, 1)
    total = np.zeros(n_cols)
    partial = np.zeros(n_cols)
    for k in range(k_dim):
        fresh = k % size == 0
        for j in range(n_cols):
            r = _bits(acc, source, key, offset, rand, ((row_base + j) * k_dim + k) * STAGES + STAGE_SUM)
            s, e = two_sum(0.0 if fresh else partial[j], terms[k, j])
            partial[j] = round_pair_fast(s, e, acc, acc_f, r) if acc_fast else round_pair(s, e, acc, r)
        if order == ORDER_BLOCKED and ((k + 1) % size == 0 or k == k_dim - 1):
            t = k // size
            for j in range(n_cols):
                r = _bits(acc, source, key, offset, rand, ((row_base + j) * k_dim + t) * STAGES + STAGE_COMBINE)
                s, e = two_sum(total[j], partial[j])
                total[j] = round_pair_fast(s, e, acc, acc_f, r) if acc_fast else round_pair(s, e, acc, r)
    result = total if order == ORDER_BLOCKED else partial
    for j in range(n_cols):
        out[z, i, j] = result[j]


@numba.njit(cache=True)
def _pairwise(
    vals: np.ndarray, out: np.ndarray, z: int, i: int, row_base: int,
    acc: KernelParams, acc_f: Float64Params, acc_fast: bool,
    source: int, key: np.uint64, offset: np.uint64, rand: np.ndarray,
) -> None:  # fmt: skip
    """Pairwise tree per output: level by level, neighbours (2w, 2w+1) summed; an odd last one moves up.

    Tree additions are numbered level by level, left to right (``t`` in the
    random-bit index). A single term is still rounded into the accumulator
    (``0 + p``); no term gives +0.
    """
    k_dim, n_cols = vals.shape
    if k_dim == 0:
        for j in range(n_cols):
            out[z, i, j] = 0.0
        return
    if k_dim == 1:
        for j in range(n_cols):
            r = _bits(acc, source, key, offset, rand, (row_base + j) * STAGES + STAGE_SUM)
            s, e = two_sum(0.0, vals[0, j])
            out[z, i, j] = round_pair_fast(s, e, acc, acc_f, r) if acc_fast else round_pair(s, e, acc, r)
        return
    width = k_dim
    node = 0
    while width > 1:
        half = width // 2
        for w in range(half):
            for j in range(n_cols):
                r = _bits(acc, source, key, offset, rand, ((row_base + j) * k_dim + node) * STAGES + STAGE_SUM)
                s, e = two_sum(vals[2 * w, j], vals[2 * w + 1, j])
                vals[w, j] = round_pair_fast(s, e, acc, acc_f, r) if acc_fast else round_pair(s, e, acc, r)
            node += 1
        if width % 2 == 1:
            for j in range(n_cols):
                vals[half, j] = vals[width - 1, j]
            width = half + 1
        else:
            width = half
    for j in range(n_cols):
        out[z, i, j] = vals[0, j]
