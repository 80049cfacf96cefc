"""Numba kernels for custom-precision matrix products (every product and sum rounded).

Pure numerics on NumPy arrays. Products of float32 inputs are exact in
float64. Every rounding is of the exact value of its sum, as hardware with a
wide enough adder does, and as the exact-rational reference in the tests does.

An addition step rounds ``x + y`` into the accumulator for a tile of outputs,
one vectorisable loop per kind (:mod:`mpsim.gemm` picks the kind per call and
proves the conditions that make it exact):

* ``STEP_GENERAL`` -- the sum as an unevaluated pair ``s + e`` (Knuth's
  TwoSum: ``s = fl(x + y)``, ``e`` the exact error), rounded by
  :func:`round_pair` (every mode, fixed point, exact stochastic): it scales
  the pair by the quantum and reads whole quanta and the fraction.
* ``STEP_PAIR`` -- the pair rounded to odd in float64 (:func:`round_to_odd`),
  then by an exact-value rounding below: a value rounded to odd keeps the
  result of any rounding to nearest at least 2 bits coarser, and of any
  truncation at least 1 bit coarser (Boldo and Melquiond), which the top
  ``k`` bits of the fraction of stochastic rounding are when ``man_bits + k <= 51``.
* ``STEP_NEAREST`` / ``STEP_STOCHASTIC`` -- where every sum is exact in
  float64 (``e == 0``), ``s`` itself is rounded, by :func:`round_exact_nearest`
  or :func:`round_exact_stochastic` (float formats with subnormals, any ``k``).
* ``STEP_F32`` -- IEEE binary32, nearest, float32-valued terms: the float32
  hardware sum is the correctly rounded exact sum.
* ``STEP_NEAREST_GUARDED`` / ``STEP_STOCHASTIC_GUARDED`` -- as the exact
  kinds, without range checks in the loop (:func:`round_nearest_guarded`,
  :func:`round_stochastic_guarded`): a sum that would need one (non-finite,
  or in the format's top binade, where rounding may overflow) becomes NaN,
  which every later sum keeps. A tile whose results are not all finite is
  computed again with the exact kinds (:func:`_checked`), so the guarded
  kinds give their bits; they cost about half as many instructions per step.
  ``STEP_NEAREST_ON_GRID`` / ``STEP_STOCHASTIC_ON_GRID``
  (:func:`round_nearest_on_grid`, :func:`round_stochastic_on_grid`) also
  drop the subnormal range, where every value summed is a multiple of the
  accumulator's smallest quantum (the stochastic one leaves Inf rather than
  NaN: any non-finite result sends the tile to the checked kinds; its
  values are held times ``2**(1024 - emax)`` from the terms on, so its
  guard is the float64 overflow itself, no multiply in the loop). On that
  grid no sum rounds to zero, so a sum is -0 only as -0 + -0, which a
  sequential sum starting from +0 never meets; a pairwise tree does, and
  takes ``STEP_NEAREST_ON_GRID_SIGNED``, which puts the sign back.

Products (``PROD_*``): exact, or rounded by the exact-value roundings
(``PROD_NEAREST_GUARDED``, ``PROD_STOCHASTIC_GUARDED``: guarded as the steps are) or by
:func:`mpsim.kernels.quantize_scalar`.

Random bits: the rounding of stage ``g`` (0: product, 1: sum consuming term or
tree node ``t``, 2: combining block ``t``) of output ``(b, i, j)`` with ``k``
random bits takes, from an explicit stream (an LFSR, an
:class:`~mpsim.randbits.LFSRGrid`), draw ``(((b*M + i)*N + j)*K + t)*3 + g``.
From a :class:`~mpsim.randbits.CounterRNG`, whose positions hold 64-bit words,
roundings with ``k <= 32`` share words: the ``t`` of a stage and output are
cut into runs of ``P = 64 // k``, and ``t`` takes the ``k`` bits below the top
``k * (t mod P)`` bits of the word at position ``(((b*M + i)*N + j)*K + t')*3 + g``,
``t' = t - t mod P`` (the word its run's first ``t`` takes: the top ``k``
bits, as a draw of :meth:`~mpsim.randbits.CounterRNG.draw`). With ``k > 32``
(``P = 1``) every rounding reads its own word. A call reserves ``B*M*N*K*3``
positions either way. Why: a SplitMix64 word costs two 64-bit multiplies,
three 32-bit ones each on AVX2, and hashing one per rounding bounded the
stochastic kernels at a third of the nearest ones' speed; a run hashes once
and each step shifts its bits out of the run's words.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
from numba.core import errors, types
from numba.extending import overload

from mpsim import jit_cache
from mpsim.gemm_config import OrderKind
from mpsim.kernels import finish_float, pow2, quantize_scalar
from mpsim.params import (
    DOWN,
    NEAREST,
    NEAREST_AWAY,
    SOURCE_COUNTER,
    TOWARD_ZERO,
    UP,
    ExactParams,
    KernelParams,
)
from mpsim.randbits import GOLDEN, splitmix64

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

STAGE_PRODUCT = 0
STAGE_SUM = 1
STAGE_COMBINE = 2
STAGES = 3


class ProductKind(enum.IntEnum):
    """How a GEMM kernel forms its terms."""

    EXACT = 0  # the float64 product, not rounded
    NEAREST = 1  # round_exact_nearest into the product format
    STOCHASTIC = 2  # round_exact_stochastic into the product format
    GENERAL = 3  # quantize_scalar: every mode and format
    # Guarded kinds (NaN or Inf where a range check is needed) are numbered apart from every step kind.
    NEAREST_GUARDED = 7  # round_nearest_guarded into the product format
    STOCHASTIC_GUARDED = 11  # round_stochastic_guarded into the product format


class StepKind(enum.IntEnum):
    """How a GEMM kernel rounds each addition into the accumulator (see the module doc)."""

    GENERAL = 0
    PAIR = 1
    NEAREST = 2
    STOCHASTIC = 3
    F32 = 4
    NEAREST_GUARDED = 5
    STOCHASTIC_GUARDED = 6
    NEAREST_ON_GRID = 8  # round_nearest_on_grid: sums on the accumulator's finest grid (-0 becomes +0)
    STOCHASTIC_ON_GRID = 9  # round_stochastic_on_grid: the same for stochastic rounding (-0 kept)
    NEAREST_ON_GRID_SIGNED = 10  # round_nearest_on_grid with the sign of zero kept (pairwise: -0 + -0)


# The kernels compare plain ints (Numba specialises on them as literals); these are the enums' values.
ORDER_SEQUENTIAL = int(OrderKind.SEQUENTIAL)
ORDER_PAIRWISE = int(OrderKind.PAIRWISE)
ORDER_BLOCKED = int(OrderKind.BLOCKED)
PROD_EXACT = int(ProductKind.EXACT)
PROD_NEAREST = int(ProductKind.NEAREST)
PROD_STOCHASTIC = int(ProductKind.STOCHASTIC)
PROD_GENERAL = int(ProductKind.GENERAL)
PROD_NEAREST_GUARDED = int(ProductKind.NEAREST_GUARDED)
PROD_STOCHASTIC_GUARDED = int(ProductKind.STOCHASTIC_GUARDED)
STEP_GENERAL = int(StepKind.GENERAL)
STEP_PAIR = int(StepKind.PAIR)
STEP_NEAREST = int(StepKind.NEAREST)
STEP_STOCHASTIC = int(StepKind.STOCHASTIC)
STEP_F32 = int(StepKind.F32)
STEP_NEAREST_GUARDED = int(StepKind.NEAREST_GUARDED)
STEP_STOCHASTIC_GUARDED = int(StepKind.STOCHASTIC_GUARDED)
STEP_NEAREST_ON_GRID = int(StepKind.NEAREST_ON_GRID)
STEP_STOCHASTIC_ON_GRID = int(StepKind.STOCHASTIC_ON_GRID)
STEP_NEAREST_ON_GRID_SIGNED = int(StepKind.NEAREST_ON_GRID_SIGNED)
PROD_ROUNDED = -1  # compile-time stand-in for every kind but PROD_EXACT (see _products)

MAX_TILE_ROWS = 16  # rows of a parallel work item: per-step overheads and each row of b serve them all

_M52 = np.int64((1 << 52) - 1)
# The exact-value roundings work on unsigned bits: their wrap-around is defined (int64 overflow is not).
_U_SIGN = np.uint64(0x8000000000000000)
_U_ABS = np.uint64(0x7FFFFFFFFFFFFFFF)
_U_EXP = np.uint64(0x7FF0000000000000)
_U_INF = np.uint64(0x7FF0000000000000)


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
    scale = pow2(-q)
    x = mag * scale
    y = err * scale
    if y == 0.0:
        y = 5e-324 if err > 0.0 else -5e-324  # underflowed: only its sign matters
    hi = np.floor(x)
    if hi == x and y < 0.0:
        hi -= 1.0
    frac = x - hi  # exact; the fraction of the exact value is frac + y, strictly inside (0, 1)
    mode = p.mode
    if mode == NEAREST or mode == NEAREST_AWAY:  # noqa: SIM109 - two int compares; Numba would build a tuple
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
        k_scale = pow2(p.rand_bits)
        t, t_err = two_sum(frac * k_scale, y * k_scale)
        top = np.int64(_floor_pair(t, t_err))
        up = ((top + r) >> p.rand_bits) != 0
    count = hi + (1.0 if up else 0.0)
    if p.is_fixed:
        return _fixed_from_count(p, count, neg)
    return finish_float(p, count * pow2(q), neg)


@numba.njit(inline="always")
def _fixed_from_count(p: KernelParams, count: float, neg: bool) -> float:
    """Fixed point from a whole number of quanta (a float64 integer, possibly huge)."""
    scale = pow2(-p.frac_bits)
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


@numba.njit(inline="always")
def round_to_odd(s: float, e: float) -> float:
    """The exact value ``s + e`` (a TwoSum pair) rounded to float64 with round-to-odd.

    Truncation toward zero, then the last bit set where anything was cut off:
    ``s`` itself, one ulp toward zero where it was rounded away from zero (``e``
    of the other sign), and its last bit set where ``e != 0``. A non-finite
    ``s`` (``e`` NaN) is kept.
    """
    es = e * s  # no underflow: both are multiples of 2**-298 (float32 products) or zero
    down = np.uint64(es < 0.0)
    sticky = np.uint64((es < 0.0) | (es > 0.0))
    return np.uint64((np.float64(s).view(np.uint64) - down) | sticky).view(np.float64)


@numba.njit(inline="always")
def round_exact_nearest(s: float, x: ExactParams) -> float:
    """Round-to-nearest-even of the float64 ``s`` (an exact value) into a float format with subnormals.

    ``(|s| + c) - c`` with ``c = 2**(E + 52 - man_bits)`` (``E`` the exponent
    of ``s``, at least ``emin``): the float64 addition rounds ``|s|`` to a
    multiple of ``c``'s ulp, the format's quantum at ``s``, ties to even, and
    the subtraction is exact. Infinities and NaNs pass through the
    arithmetic; ``c`` wraps to a harmless value for them. Overflow is resolved
    after (IEEE 754 semantics: the rounded magnitude decides). The sign of a
    zero is kept: formats without -0 clear it later (it changes no other bits).
    """
    bits = np.float64(s).view(np.uint64)
    c = np.uint64(max((bits & _U_EXP) + x.c_shift, x.c_small)).view(np.float64)
    mag = (np.uint64(bits & _U_ABS).view(np.float64) + c) - c
    mag = x.overflow if mag > x.max_value else mag
    return np.uint64(np.float64(mag).view(np.uint64) | (bits & _U_SIGN)).view(np.float64)


@numba.njit(inline="always")
def round_nearest_guarded(s: float, x: ExactParams) -> float:
    """:func:`round_exact_nearest` of ``|s| < 2**emax`` (an exact float64 value); NaN for any other ``s``.

    ``(s + c) - c`` with ``c = 1.5 * 2**(E + 52 - man_bits)`` (``E`` the
    exponent of ``s``, at least ``emin``): ``s + c`` stays in ``c``'s binade
    (``man_bits <= 49``), whose ulp is the format's quantum at ``s``, and the
    float64 addition rounds it there, ties to even, for either sign (``c`` is
    an even number of quanta). ``c`` is built as ``2**E * 2**(1024 - emax)``
    times the rest: Inf from ``2**emax`` up (and for Inf or NaN ``s``), so
    that the result is NaN exactly where a rounding might overflow. Below
    ``2**emax`` the rounded magnitude is at most ``2**emax <= max``. The sign
    is put back so that a value rounded to zero keeps it, as
    :func:`round_exact_nearest` does.
    """
    bits = np.float64(s).view(np.uint64)
    c = (max(np.uint64(bits & _U_EXP).view(np.float64), x.emin_value) * x.guard_scale) * x.magic_scale
    v = (s + c) - c
    return np.uint64(np.float64(v).view(np.uint64) | (bits & _U_SIGN)).view(np.float64)


@numba.njit(inline="always")
def round_nearest_on_grid(s: float, x: ExactParams) -> float:
    """:func:`round_nearest_guarded` of a multiple of the format's smallest quantum, but -0 becomes +0.

    Below ``2**emin`` such a value is a subnormal of the format, and the
    unclamped ``c`` (``2**E`` may be below ``2**emin``, or 0 for zero) leaves
    it unchanged as rounding must; no nonzero value rounds to zero.
    """
    c = (np.uint64(np.float64(s).view(np.uint64) & _U_EXP).view(np.float64) * x.guard_scale) * x.magic_scale
    return (s + c) - c


@numba.njit(inline="always")
def round_stochastic_on_grid(s: float, x: ExactParams, addend: np.uint64) -> float:
    """Stochastic rounding of ``s * 2**-guard`` (``guard = 1024 - emax``), ``s`` on the smallest quantum's grid scaled.

    Where :func:`round_stochastic_guarded` scales every sum by ``2**guard``
    to find the ones from ``2**emax`` up, the sums of this kind are kept
    scaled from their terms on (:func:`_blocked_tile`): a product scaled is
    the scaled product, exactly, and a sum of scaled values the scaled sum,
    until ``2**emax`` scaled is ``2**1024``, which is Inf. So the rounding is
    the addition of ``addend`` (:func:`stochastic_addend`) to the float64 bits
    with their sign (the magnitude is the low 63 bits, so -0 stays -0) and
    the truncation below the quantum, no range check and no scaling: a power
    of two keeps the significand's bits. An Inf stays Inf (its significand is
    zero: nothing carries), and so does a result that rounds up to
    ``2**emax`` (the carry reaches the exponent of Inf); either sends the
    tile to the checked kinds. Below ``2**emin`` such a value has no bits
    below its float64 exponent's ``man_bits`` (it is a subnormal of the
    format), so nothing changes, as rounding must. A NaN from an Inf and a
    -Inf has no low bits set, so nothing carries out of it either.
    """
    bits = np.float64(s).view(np.uint64)
    return np.uint64((bits + addend) & (x.trunc | _U_SIGN)).view(np.float64)


@numba.njit(inline="always")
def stochastic_addend(r: np.uint64, x: ExactParams) -> np.uint64:
    """The ``k`` random bits ``r`` of a rounding at the scale of the discarded float64 bits (top ``r_kept`` of them)."""
    return (r >> x.r_down) << x.r_up


@numba.njit(inline="always")
def _addend_placement(used: int, x: ExactParams) -> tuple[bool, np.uint64]:
    """``(left, shift)``: :func:`stochastic_addend` of :func:`_draw` ``(word, used, k)`` is :func:`_addend` of ``word``.

    Two shifts and a mask per rounding rather than four shifts: the top
    ``r_kept`` bits of the draw lie at bits ``64 - used - r_kept`` up of the
    word and go to bit ``r_up``.
    """
    right = 64 - used - np.int64(x.r_kept) - np.int64(x.r_up)
    return right < 0, np.uint64(-right if right < 0 else right)


@numba.njit(inline="always")
def _addend(word: np.uint64, left: bool, shift: np.uint64, x: ExactParams) -> np.uint64:
    """One rounding's addend out of its word (:func:`_addend_placement`); the step loops are unswitched on ``left``."""
    return ((word << shift) if left else (word >> shift)) & x.r_mask


@numba.njit(inline="always")
def round_stochastic_guarded(s: float, x: ExactParams, addend: np.uint64) -> float:
    """:func:`round_exact_stochastic` of ``|s| < 2**emax``; NaN for any other ``s``.

    ``addend`` is the draw's :func:`stochastic_addend`. ``s`` must be a
    multiple of ``2**(emin - 52)``. The normal range is the
    integer addition of :func:`round_exact_stochastic`; below the smallest
    normal, ``2**emin`` is added first (exactly, by that condition), which
    moves the magnitude into the binade whose quantum is the subnormal one,
    and subtracted after (exactly: both are multiples of that quantum), so
    one branch-free sequence serves both ranges. Below ``2**emax`` the result
    is at most ``2**emax <= max``.
    """
    bits = np.float64(s).view(np.uint64)
    a = bits & _U_ABS
    bias = x.emin_value if a < x.emin_bits else 0.0
    y = np.uint64(a).view(np.float64) + bias
    big = (np.float64(y).view(np.uint64) + addend) & x.trunc
    v = np.uint64(big).view(np.float64) - bias
    v = np.nan if a >= x.emax_bits else v
    return np.uint64(np.float64(v).view(np.uint64) | (bits & _U_SIGN)).view(np.float64)


@numba.njit(inline="always")
def round_exact_stochastic(s: float, x: ExactParams, r: np.uint64) -> float:
    """Stochastic rounding of the float64 ``s`` (an exact value) with the ``k`` random bits ``r``.

    The rule of :func:`mpsim.kernels.sr_round_up`, up when (top ``k``
    discarded bits) + ``r`` carries out of ``k`` bits. In the normal range it
    is one integer addition to the float64 bits: ``r`` brought to the scale of
    the ``d`` discarded bits, then truncation (where ``k > d``, the carry out
    of ``rem * 2**(k-d) + r`` is that of ``rem + floor(r / 2**(k-d))``). Below the smallest normal the quantum
    is fixed and the magnitude in quanta splits exactly into whole quanta and
    the fraction. The sign of a zero is kept (see :func:`round_exact_nearest`).
    """
    bits = np.float64(s).view(np.uint64)
    a = bits & _U_ABS
    big = (a + ((r >> x.r_down) << x.r_up)) & x.trunc
    # the small-range result, used only below the smallest normal (elsewhere it may be anything, even poison)
    y = np.uint64(a).view(np.float64) * x.to_quanta
    whole = np.floor(y)
    top = np.uint64((y - whole) * x.k_scale)
    up = np.float64((top + r) >> x.k)
    small = np.float64((whole + up) * x.quantum).view(np.uint64)
    v = np.uint64(small if a < x.emin_bits else big).view(np.float64)
    v = x.overflow if v > x.max_value else v
    res = a if a > _U_INF else np.float64(v).view(np.uint64)  # NaN: the addition may have carried out of it
    return np.uint64(res | (bits & _U_SIGN)).view(np.float64)


@numba.njit(cache=True)
def _fill_explicit(
    rand: np.ndarray,
    first: int,
    row_stride: int,
    stride: int,
    k: int,
    bits: np.ndarray,
) -> None:
    """``bits[r, j]`` = explicit ``k``-bit draw ``rand[first + r*row_stride + j*stride]``, as the top bits of a word."""
    up = np.uint64(64 - k)
    for r in range(bits.shape[0]):
        base = first + r * row_stride
        for j in range(bits.shape[1]):
            bits[r, j] = np.uint64(rand[base + j * stride]) << up


@numba.njit(cache=True)
def _fill_words(key: np.uint64, first: np.uint64, row_stride: int, stride: int, words: np.ndarray) -> None:
    """``words[r, j]`` = the counter stream's 64-bit word at ``first + r*row_stride + j*stride``."""
    step = np.uint64(stride) * GOLDEN
    for r in range(words.shape[0]):
        # counter_word(key, first + r*row_stride + j*stride), its Weyl sequence stepped by addition
        weyl = key + (first + np.uint64(r * row_stride)) * GOLDEN
        for j in range(words.shape[1]):
            words[r, j] = splitmix64(weyl)
            weyl += step


@numba.njit(inline="always")
def _draw(word: np.uint64, used: int, k: int) -> np.uint64:
    """The ``1 <= k <= 64 - used`` bits of ``word`` below its top ``used`` bits: one rounding's random bits."""
    return (word << np.uint64(used)) >> np.uint64(64 - k)


@numba.njit(inline="always")
def _draw_any(word: np.uint64, used: int, k: int) -> np.int64:
    """:func:`_draw` as the general roundings take it; 0 for ``k = 0`` (they draw nothing then)."""
    return np.int64(_draw(word, used, k)) if k > 0 else np.int64(0)


class Rounder(enum.IntEnum):
    """The per-element roundings that the step and product loops are generated from (see :func:`_rounded`)."""

    NEAREST = 0  # round_exact_nearest
    NEAREST_GUARDED = 1  # round_nearest_guarded
    NEAREST_ON_GRID = 2  # round_nearest_on_grid
    NEAREST_ON_GRID_SIGNED = 3  # round_nearest_on_grid, the sign of a zero put back
    STOCHASTIC = 4  # round_exact_stochastic
    STOCHASTIC_GUARDED = 5  # round_stochastic_guarded
    STOCHASTIC_ON_GRID = 6  # round_stochastic_on_grid
    GENERAL = 7  # quantize_scalar: every mode and format
    # sums only: the sum x + term is not always exact in float64
    F32 = 8  # float32 hardware addition
    PAIR_NEAREST = 9  # TwoSum, rounded to odd, then round_exact_nearest
    PAIR_STOCHASTIC = 10  # TwoSum, rounded to odd, then round_exact_stochastic
    PAIR_GENERAL = 11  # TwoSum, then round_pair


#: The rounding of each step kind (STEP_PAIR: one of two, by the mode) and of each rounded product kind.
STEP_ROUNDER = {
    StepKind.GENERAL: Rounder.PAIR_GENERAL,
    StepKind.NEAREST: Rounder.NEAREST,
    StepKind.STOCHASTIC: Rounder.STOCHASTIC,
    StepKind.F32: Rounder.F32,
    StepKind.NEAREST_GUARDED: Rounder.NEAREST_GUARDED,
    StepKind.STOCHASTIC_GUARDED: Rounder.STOCHASTIC_GUARDED,
    StepKind.NEAREST_ON_GRID: Rounder.NEAREST_ON_GRID,
    StepKind.STOCHASTIC_ON_GRID: Rounder.STOCHASTIC_ON_GRID,
    StepKind.NEAREST_ON_GRID_SIGNED: Rounder.NEAREST_ON_GRID_SIGNED,
}
PRODUCT_ROUNDER = {
    ProductKind.NEAREST: Rounder.NEAREST,
    ProductKind.STOCHASTIC: Rounder.STOCHASTIC,
    ProductKind.GENERAL: Rounder.GENERAL,
    ProductKind.NEAREST_GUARDED: Rounder.NEAREST_GUARDED,
    ProductKind.STOCHASTIC_GUARDED: Rounder.STOCHASTIC_GUARDED,
}


def _rounded(
    rounder: int,
    v: float,
    p: KernelParams,
    x: ExactParams,
    word: np.uint64,
    used: int,
    left: bool,
    shift: np.uint64,
) -> float:
    """The exact value ``v`` rounded by ``rounder`` (a compile-time :class:`Rounder`) into the format of ``p``/``x``.

    ``word`` and ``used`` hold its random bits (:func:`_draw`); ``left`` and
    ``shift`` place them where an addend is added (:func:`_addend_placement`).
    Each rounding is written here once, and the step and product loops are
    generated from it (:func:`_step_loop`, :func:`_product_loop`). Jitted code only.
    """
    raise NotImplementedError


@overload(_rounded, inline="always", prefer_literal=True)
def _rounded_by(rounder, v, p, x, word, used, left, shift):
    """:func:`_rounded` for one rounder: only its rounding is typed and compiled."""
    k = _literal(rounder, types.IntegerLiteral, "the rounder")
    if k == Rounder.NEAREST:
        return lambda rounder, v, p, x, word, used, left, shift: round_exact_nearest(v, x)
    if k == Rounder.NEAREST_GUARDED:
        return lambda rounder, v, p, x, word, used, left, shift: round_nearest_guarded(v, x)
    if k == Rounder.NEAREST_ON_GRID:
        return lambda rounder, v, p, x, word, used, left, shift: round_nearest_on_grid(v, x)
    if k == Rounder.NEAREST_ON_GRID_SIGNED:

        def signed(rounder, v, p, x, word, used, left, shift):
            rounded = np.float64(round_nearest_on_grid(v, x)).view(np.uint64)
            return np.uint64(rounded | (np.float64(v).view(np.uint64) & _U_SIGN)).view(np.float64)

        return signed
    if k == Rounder.STOCHASTIC:
        return lambda rounder, v, p, x, word, used, left, shift: round_exact_stochastic(
            v, x, _draw(word, used, np.int64(x.k))
        )
    if k == Rounder.STOCHASTIC_GUARDED:
        return lambda rounder, v, p, x, word, used, left, shift: round_stochastic_guarded(
            v, x, _addend(word, left, shift, x)
        )
    if k == Rounder.STOCHASTIC_ON_GRID:
        return lambda rounder, v, p, x, word, used, left, shift: round_stochastic_on_grid(
            v, x, _addend(word, left, shift, x)
        )
    if k == Rounder.GENERAL:
        return lambda rounder, v, p, x, word, used, left, shift: quantize_scalar(
            v, p, _draw_any(word, used, p.rand_bits)
        )
    raise errors.TypingError(f"rounder {k} rounds sums only (see _rounded_sum)")


def _rounded_sum(
    rounder: int,
    acc_value: float,
    term: float,
    p: KernelParams,
    x: ExactParams,
    word: np.uint64,
    used: int,
    left: bool,
    shift: np.uint64,
) -> float:
    """``acc_value + term`` rounded by ``rounder`` (a compile-time :class:`Rounder`); jitted code only."""
    raise NotImplementedError


@overload(_rounded_sum, inline="always", prefer_literal=True)
def _rounded_sum_by(rounder, acc_value, term, p, x, word, used, left, shift):
    """:func:`_rounded_sum`: where the sum is exact in float64 it is rounded itself (:func:`_rounded`)."""
    k = _literal(rounder, types.IntegerLiteral, "the rounder")
    if k == Rounder.F32:  # float32 terms into a float64 stack (a pairwise tree)
        return lambda rounder, acc_value, term, p, x, word, used, left, shift: np.float32(acc_value) + np.float32(term)
    if k == Rounder.PAIR_NEAREST:

        def pair_nearest(rounder, acc_value, term, p, x, word, used, left, shift):
            s, e = two_sum(acc_value, term)
            return round_exact_nearest(round_to_odd(s, e), x)

        return pair_nearest
    if k == Rounder.PAIR_STOCHASTIC:

        def pair_stochastic(rounder, acc_value, term, p, x, word, used, left, shift):
            s, e = two_sum(acc_value, term)
            return round_exact_stochastic(round_to_odd(s, e), x, _draw(word, used, np.int64(x.k)))

        return pair_stochastic
    if k == Rounder.PAIR_GENERAL:

        def pair_general(rounder, acc_value, term, p, x, word, used, left, shift):
            s, e = two_sum(acc_value, term)
            return round_pair(s, e, p, _draw_any(word, used, p.rand_bits))

        return pair_general
    return lambda rounder, acc_value, term, p, x, word, used, left, shift: _rounded(
        k, acc_value + term, p, x, word, used, left, shift
    )


# In place (x is read and written): with a separate destination that may be x,
# the vectoriser's overlap check would send the loop to its scalar version.
# Rows are indexed, not sliced: a slice costs reference counting.


def _cached_variant(function: Callable[..., None], variant: str, **options: bool) -> Callable[..., None]:
    """``function``, one variant of a closure, jitted with a disk cache under a name of its own.

    Numba names compiled code after the function's qualified name and a
    counter of the process (``step_loop$5``), and links a kernel's callees by
    those names. Every variant of a closure shares the qualified name, so a
    kernel cached by one process and a kernel cached by another could both
    carry a ``step_loop$5``, each a different rounding, and a third process
    that loads both would run one in place of the other. A name that says
    the variant (``step_loop_nearest``) keeps their code apart; it also gives
    each variant an index file of its own in the cache.
    """
    function.__qualname__ = f"{function.__qualname__}_{variant}"
    function.__name__ = f"{function.__name__}_{variant}"
    return numba.njit(cache=True, **options)(function)


@functools.cache
def _step_loop(rounder: int) -> Callable[..., None]:
    """The step loop of one rounder: ``x[r] = R(x[r] + scales[r] * src[r*src_step])``.

    Generated from :func:`_rounded_sum`, compiled on first use and cached on
    disk like the kernels (the closure holds only ``rounder``, an int). A
    function per rounding: one holding every rounding's loop spends as long
    again setting them up.
    """
    rounder = int(rounder)

    def step_loop(
        x: np.ndarray,
        scales: np.ndarray,
        src: np.ndarray,
        src_step: int,
        acc: KernelParams,
        acc_x: ExactParams,
        bits: np.ndarray,
        used: int,
    ) -> None:
        left, shift = _addend_placement(used, acc_x)  # (only the addend kinds read them)
        for r in range(x.shape[0]):
            scale, sr = scales[r], r * src_step
            for j in range(x.shape[1]):
                term = scale * np.float64(src[sr, j])  # exact: a float32 value times a power of two or float32
                x[r, j] = _rounded_sum(rounder, x[r, j], term, acc, acc_x, bits[r, j], used, left, shift)

    return _cached_variant(step_loop, Rounder(rounder).name.lower())


@numba.njit(cache=True)
def _step_f32(x: np.ndarray, scales: np.ndarray, src: np.ndarray, src_step: int) -> None:
    """Float32 accumulators: the float32 hardware sum, no conversion (the product is exact in float32)."""
    for r in range(x.shape[0]):
        scale, sr = scales[r], r * src_step
        for j in range(x.shape[1]):
            x[r, j] = np.float32(x[r, j]) + np.float32(scale) * np.float32(src[sr, j])


def _step(
    kind: int,
    x: np.ndarray,
    scales: np.ndarray,
    src: np.ndarray,
    src_step: int,
    acc: KernelParams,
    acc_x: ExactParams,
    bits: np.ndarray,
    used: int,
) -> None:
    """One rounded addition over the rows of a tile: ``x[r] = R_acc(x[r] + scales[r] * src[r*src_step])``.

    The products ``scales[r] * src[...]`` are exact. A whole tile per call: a
    call per row costs as much as a row of work. Jitted code only, with
    ``kind`` a compile-time constant (:func:`_step_for_types`).
    """
    raise NotImplementedError


@overload(_step, prefer_literal=True)
def _step_for_types(kind, x, scales, src, src_step, acc, acc_x, bits, used):
    """:func:`_step` for the types at hand: one kind's loop, and float32 accumulators only ever take ``STEP_F32``.

    The other kinds' loops are never typed (``k`` is a constant of the
    closure), so a product compiles only the loops it runs: every kind
    compiled into every product took most of a minute and a half on the
    first run.
    """
    if x.dtype == numba.types.float32:

        def float32_sums(kind, x, scales, src, src_step, acc, acc_x, bits, used):
            _step_f32(x, scales, src, src_step)

        return float32_sums

    k = _literal(kind, types.IntegerLiteral, "the step kind")
    if k == STEP_PAIR:  # its rounding follows the mode: decided once per call, outside the loop
        nearest, stochastic = _step_loop(Rounder.PAIR_NEAREST), _step_loop(Rounder.PAIR_STOCHASTIC)

        def pair(kind, x, scales, src, src_step, acc, acc_x, bits, used):
            if acc.mode == NEAREST:
                nearest(x, scales, src, src_step, acc, acc_x, bits, used)
            else:
                stochastic(x, scales, src, src_step, acc, acc_x, bits, used)

        return pair
    loop = _step_loop(STEP_ROUNDER[StepKind(k)])

    def one_kind(kind, x, scales, src, src_step, acc, acc_x, bits, used):
        loop(x, scales, src, src_step, acc, acc_x, bits, used)

    return one_kind


@functools.cache
def _product_loop(rounder: int) -> Callable[..., None]:
    """The loop of one product rounding: ``dst[r, j] = R_mul(scales[r] * src[0, j])``, from :func:`_rounded`."""
    rounder = int(rounder)
    # The exact-value roundings keep the sign of a zero; a format without -0 clears it (adding +0 does).
    clears_zero = rounder != Rounder.GENERAL

    def product_loop(
        scales: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
        mul: KernelParams,
        mul_x: ExactParams,
        bits: np.ndarray,
        used: int,
    ) -> None:
        left, shift = _addend_placement(used, mul_x)
        for r in range(dst.shape[0]):
            for j in range(dst.shape[1]):
                v = _rounded(rounder, scales[r] * np.float64(src[0, j]), mul, mul_x, bits[r, j], used, left, shift)
                dst[r, j] = v + mul_x.zero if clears_zero else v

    return _cached_variant(product_loop, Rounder(rounder).name.lower())


@numba.njit(cache=True)
def _products_exact(scales: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    for r in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[r, j] = scales[r] * np.float64(src[0, j])


def _products(
    kind: int,
    rounded_kind: int,
    scales: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    mul: KernelParams,
    mul_x: ExactParams,
    bits: np.ndarray,
    used: int,
) -> None:
    """``dst[r, j] = R_mul(scales[r] * src[0, j])`` for the rows of a tile: each product exact, then rounded once.

    ``kind``, a compile-time constant, is ``PROD_EXACT`` or ``PROD_ROUNDED``:
    then ``rounded_kind`` picks the rounding at run time (kernels per product
    kind as well as per step kind would multiply the kernels to compile).
    Random bits as :func:`_draw` reads them. Jitted code only
    (:func:`_products_for_kind`).
    """
    raise NotImplementedError


@overload(_products, inline="always", prefer_literal=True)
def _products_for_kind(kind, rounded_kind, scales, src, dst, mul, mul_x, bits, used):
    """:func:`_products`: exact products compile one loop; rounded ones every rounding's."""
    if _literal(kind, types.IntegerLiteral, "the product kind") == PROD_EXACT:

        def exact(kind, rounded_kind, scales, src, dst, mul, mul_x, bits, used):
            _products_exact(scales, src, dst)

        return exact

    loops = {kind: _product_loop(rounder) for kind, rounder in PRODUCT_ROUNDER.items()}
    nearest, stochastic, general = loops[ProductKind.NEAREST], loops[ProductKind.STOCHASTIC], loops[ProductKind.GENERAL]
    nearest_guarded, stochastic_guarded = loops[ProductKind.NEAREST_GUARDED], loops[ProductKind.STOCHASTIC_GUARDED]

    def rounded(kind, rounded_kind, scales, src, dst, mul, mul_x, bits, used):
        if rounded_kind == PROD_NEAREST:
            nearest(scales, src, dst, mul, mul_x, bits, used)
        elif rounded_kind == PROD_STOCHASTIC:
            stochastic(scales, src, dst, mul, mul_x, bits, used)
        elif rounded_kind == PROD_NEAREST_GUARDED:
            nearest_guarded(scales, src, dst, mul, mul_x, bits, used)
        elif rounded_kind == PROD_STOCHASTIC_GUARDED:
            stochastic_guarded(scales, src, dst, mul, mul_x, bits, used)
        else:
            general(scales, src, dst, mul, mul_x, bits, used)

    return rounded


def _literal(value: types.Type, literal_type: type[types.Literal], what: str) -> object:
    """The value of an argument typed as a literal; a typing error otherwise (every branch would compile)."""
    if not isinstance(value, literal_type):
        raise errors.TypingError(f"{what} must be a compile-time constant (see _gemm_of_kind), got {value}")
    return value.literal_value


class GemmArgs(NamedTuple):
    """A product's setup: product kind, formats, order, random source (the step kind is a compile-time constant).

    The random source is ``SOURCE_COUNTER`` (the counter stream of ``key``
    from draw ``offset`` on) or ``SOURCE_ARRAY`` (the bits of ``rand``, one
    entry per draw; empty for the counter).
    """

    prod_kind: int
    mul: KernelParams
    mul_x: ExactParams
    acc: KernelParams
    acc_x: ExactParams
    order: int
    block: int
    source: int
    key: np.uint64
    offset: np.uint64
    rand: np.ndarray


class _Tile(NamedTuple):
    """A tile's work: operands, outputs ``(z, i0..i1, j0..j1)``, and the buffers its random bits go through.

    ``bits`` holds a word per output for one draw; ``words[slot]`` the words
    of the counter run that ``runs[slot]`` begins (:func:`_tile_bits`).
    """

    a: np.ndarray
    b: np.ndarray
    z: int
    i0: int
    i1: int
    j0: int
    j1: int
    bits: np.ndarray
    words: np.ndarray
    runs: np.ndarray


class _Draw(NamedTuple):
    """Which rounding's bits to draw: of term or tree node ``term`` in stage ``stage``, through run slot ``slot``."""

    term: int
    stage: int
    slot: int


PROD_KINDS = tuple(int(kind) for kind in ProductKind)
STEP_KINDS = tuple(int(kind) for kind in StepKind)
ORDERS = tuple(int(order) for order in OrderKind)


def qgemm(
    a: np.ndarray,
    b: np.ndarray,
    out: np.ndarray,
    g: GemmArgs,
    step_kind: int,
    tile_rows: int,
    tile_cols: int,
) -> None:
    """``out[z] = a[z] @ b[z]`` (3-D, batch z; a batch dimension of 1 broadcasts), every step rounded.

    Work items are (batch, tile of ``tile_rows`` x ``tile_cols`` outputs),
    split in contiguous shares over ``numba.get_num_threads()`` threads
    (this one included), each running the kernel compiled for this step
    kind and order without the GIL (:func:`_gemm_of_kind`). Within a tile the
    inner loops run over output columns, each its own accumulator, so each
    output keeps its order; no output depends on the thread count. Where a
    guarded kind leaves a tile's results not all finite, the tile is computed
    again with the checked kinds (:func:`_checked`), whose kernel is compiled
    only when some product first needs it.
    """
    for name, kind, kinds in (
        ("product", g.prod_kind, PROD_KINDS),
        ("step", step_kind, STEP_KINDS),
        ("order", g.order, ORDERS),
    ):
        if kind not in kinds:
            raise ValueError(f"unknown {name} kind {kind!r}; known: {kinds}")
    prod_kind, step_kind = int(g.prod_kind), int(step_kind)
    tree = bool(g.order == ORDER_PAIRWISE and a.shape[2] > 1)  # a tree over one term is a sum
    guarded = (_checked(prod_kind), _checked(step_kind)) != (prod_kind, step_kind)
    items = out.shape[0] * -(-a.shape[1] // tile_rows) * -(-b.shape[2] // tile_cols)
    exact = prod_kind == PROD_EXACT
    redo = np.zeros(items, dtype=np.bool_)
    setup = (a, b, out, g._replace(prod_kind=prod_kind), tile_rows, tile_cols)
    _run_items(_gemm_of_kind(step_kind, tree, exact), np.arange(items), redo, (guarded, *setup))
    if redo.any():
        again = (False, a, b, out, g._replace(prod_kind=_checked(prod_kind)), tile_rows, tile_cols)
        _run_items(_gemm_of_kind(_checked(step_kind), tree, exact), np.flatnonzero(redo), redo, again)


def _run_items(kernel: Callable[..., None], items: np.ndarray, redo: np.ndarray, setup: tuple[object, ...]) -> None:
    """``kernel`` over ``items``, in contiguous shares over ``numba.get_num_threads()`` threads, this one included."""
    workers = max(1, min(numba.get_num_threads(), items.size))
    share = -(-items.size // workers)
    others = [_pool().submit(kernel, items[w * share : (w + 1) * share], redo, *setup) for w in range(1, workers)]
    kernel(items[:share], redo, *setup)
    for done in others:
        done.result()  # (raises what the kernel raised)


_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The threads :func:`qgemm` shares work with (made on first use; a forked child makes its own)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1), thread_name_prefix="qgemm"))
    return _POOL[0]


os.register_at_fork(after_in_child=_POOL.clear)  # the parent's threads do not exist in a forked child


@functools.cache
def _gemm_of_kind(step_kind: int, tree: bool, exact: bool) -> Callable[..., None]:
    """The kernel of :func:`qgemm` for one step kind, tree or not, exact products or not; compiled on first use.

    It computes the work items ``items``; where a guarded kind (``guarded``)
    leaves a result that is not finite, it marks the item in ``redo``
    instead. Why a kernel per step kind: the kind is a constant of this
    closure, so :func:`_step` sees it as a literal and compiles only its own
    loop. One kernel holding every kind took 90 s to compile on a fresh
    install (2 cores); a training run needs two or three, each compiled in
    10-25 s. Of the product kinds only exact or rounded is a constant
    (:func:`_products`): kernels per product kind as well would multiply
    the kernels a test suite compiles. The disk cache keeps them. Why threads
    rather than a ``prange`` loop: a parallel loop links and optimises every
    function below it once more. (Numba keys the disk cache of a closure on
    the values it closes over.)
    """
    # float32 accumulators sum without conversions, except in a pairwise tree, whose stack is float64
    acc_dtype = np.float32 if step_kind == STEP_F32 and not tree else np.float64
    products = PROD_EXACT if exact else PROD_ROUNDED
    # Only ints, bools and a NumPy type here: the disk cache's key pickles them, and a dispatcher pickles anew
    # in each process.

    def gemm_tiles_of_kind(
        items: np.ndarray,
        redo: np.ndarray,
        guarded: bool,
        a: np.ndarray,
        b: np.ndarray,
        out: np.ndarray,
        g: GemmArgs,
        tile_rows: int,
        tile_cols: int,
    ) -> None:
        m_rows, n_cols = a.shape[1], b.shape[2]
        row_tiles = (m_rows + tile_rows - 1) // tile_rows
        col_tiles = (n_cols + tile_cols - 1) // tile_cols
        # run slots: one per stage, or products and one per level of the tree
        slots = 1 + _tree_levels(a.shape[2])[0].size if tree else STAGES
        for item in items:
            i0 = (item // col_tiles % row_tiles) * tile_rows
            j0 = (item % col_tiles) * tile_cols
            i1, j1 = min(m_rows, i0 + tile_rows), min(n_cols, j0 + tile_cols)
            words, runs = _run_words(g, slots, i1 - i0, j1 - j0)
            bits = np.zeros((i1 - i0, j1 - j0), dtype=np.uint64)
            t = _Tile(a, b, item // (row_tiles * col_tiles), i0, i1, j0, j1, bits, words, runs)
            partial = np.zeros((i1 - i0, j1 - j0), dtype=acc_dtype)
            result = _tile_results(tree, t, g, products, step_kind, partial)
            # a guarded kind that met a value needing its range checked left a NaN or Inf (as such inputs do)
            if guarded and not np.isfinite(result).all():
                redo[item] = True
            else:
                _store(out, t, g.acc, result)

    variant = f"{StepKind(step_kind).name.lower()}_{'tree' if tree else 'blocks'}_{'exact' if exact else 'rounded'}"
    return _cached_variant(gemm_tiles_of_kind, variant, nogil=True)


def _tile_results(tree: bool, t: _Tile, g: GemmArgs, prod_kind: int, step_kind: int, partial: np.ndarray) -> np.ndarray:
    """The tile's results: :func:`_pairwise_tile` or :func:`_blocked_tile` (``tree`` a compile-time constant)."""
    raise NotImplementedError


@overload(_tile_results, prefer_literal=True)
def _tile_results_in_order(tree, t, g, prod_kind, step_kind, partial):
    """:func:`_tile_results`: the choice made when compiling (a branch in the kernel would compile both tiles)."""
    tile = _pairwise_tile if _literal(tree, types.BooleanLiteral, "tree") else _blocked_tile
    return lambda tree, t, g, prod_kind, step_kind, partial: tile(t, g, prod_kind, step_kind, partial)


def _checked(kind: int) -> int:
    """The exact kind a guarded product or step kind stands for; other kinds: themselves."""
    if kind in (STEP_NEAREST_GUARDED, STEP_NEAREST_ON_GRID, STEP_NEAREST_ON_GRID_SIGNED):
        return STEP_NEAREST
    if kind in (STEP_STOCHASTIC_GUARDED, STEP_STOCHASTIC_ON_GRID):
        return STEP_STOCHASTIC
    if kind == PROD_NEAREST_GUARDED:
        return PROD_NEAREST
    if kind == PROD_STOCHASTIC_GUARDED:
        return PROD_STOCHASTIC
    return kind


@numba.njit(cache=True)
def _store(out: np.ndarray, t: _Tile, acc: KernelParams, result: np.ndarray) -> None:
    """The tile's results into ``out``; formats without -0 get its sign cleared here.

    The exact steps leave it to here: the sign of a zero sum changes no other bit of later sums.
    """
    for r in range(t.i1 - t.i0):
        for j in range(t.j1 - t.j0):
            v = np.float64(result[r, j])
            out[t.z, t.i0 + r, t.j0 + j] = v + 0.0 if acc.unsigned_zero else v


@numba.njit(inline="always")
def _shares_words(k: int) -> bool:
    """Whether roundings of ``k`` random bits share counter words (runs of ``64 // k >= 2``); k = 0 draws nothing."""
    return k > 0 and 64 // k >= 2


@numba.njit(inline="always")
def _tile_bits(t: _Tile, k: int, at: _Draw, g: GemmArgs) -> tuple[np.ndarray, int]:
    """The ``k`` random bits of draw ``at`` for each output of the tile, as ``(w, used)``.

    Output ``(i0 + r, j0 + j)`` takes :func:`_draw` ``(w[r, j], used, k)``.
    From the counter stream with ``k <= 32``, the run of ``64 // k`` terms
    that ``at.term`` is in shares one word per output (module docstring):
    ``t.words[at.slot]`` keeps the words of the run that ``t.runs[at.slot]``
    begins, so terms drawn in order from one slot hash once per run (a slot
    per stage, or per tree level: a pairwise tree visits its levels' nodes
    interleaved), and each step reads its own bits of them. Otherwise
    ``t.bits`` is filled with one word per draw (``used = 0``).
    """
    term, stage, slot, bits, words, runs = at.term, at.stage, at.slot, t.bits, t.words, t.runs
    m_rows, k_dim, n_cols = t.a.shape[1], t.a.shape[2], t.b.shape[2]
    stride = STAGES * k_dim  # next column
    per_word = 64 // k
    run_first = term - term % per_word
    first = (((t.z * m_rows + t.i0) * n_cols + t.j0) * k_dim + run_first) * STAGES + stage  # output (z, i0, j0)
    if g.source != SOURCE_COUNTER:
        _fill_explicit(g.rand, first + (term - run_first) * STAGES, n_cols * stride, stride, k, bits)
        return bits, 0
    if not _shares_words(k):
        _fill_words(g.key, g.offset + np.uint64(first), n_cols * stride, stride, bits)
        return bits, 0
    if runs[slot] != run_first:
        _fill_words(g.key, g.offset + np.uint64(first), n_cols * stride, stride, words[slot])
        runs[slot] = run_first
    return words[slot], k * (term - run_first)


@numba.njit(inline="always")
def _run_words(g: GemmArgs, slots: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty ``words`` and ``runs`` of :func:`_tile_bits` (no room where no run shares a counter word)."""
    shared = g.source == SOURCE_COUNTER and (_shares_words(g.acc.rand_bits) or _shares_words(g.mul.rand_bits))
    words = np.empty((slots, rows if shared else 0, cols if shared else 0), dtype=np.uint64)
    return words, np.full(slots, -1, dtype=np.int64)


@numba.njit(inline="always")
def _add(
    t: _Tile, kind: int, at: _Draw, x: np.ndarray, scales: np.ndarray, src: np.ndarray, src_step: int, g: GemmArgs
) -> None:
    """``x[r] = R_acc(x[r] + scales[r] * src[r*src_step])``, with the bits of draw ``at``."""
    w, used = t.bits, 0
    if g.acc.rand_bits != 0:
        w, used = _tile_bits(t, g.acc.rand_bits, at, g)
    _step(kind, x, scales, src, src_step, g.acc, g.acc_x, w, used)


@numba.njit(inline="always")
def _terms(t: _Tile, kind: int, k: int, scales: np.ndarray, b_row: np.ndarray, dst: np.ndarray, g: GemmArgs) -> None:
    """``dst[r]`` = the terms ``R_mul(a[i0 + r, k] * b[k, j0:j1])`` (``scales``, ``b_row``: those a and b)."""
    w, used = t.bits, 0
    if g.mul.rand_bits != 0:
        w, used = _tile_bits(t, g.mul.rand_bits, _Draw(k, STAGE_PRODUCT, STAGE_PRODUCT), g)
    _products(kind, g.prod_kind, scales, b_row, dst, g.mul, g.mul_x, w, used)


@numba.njit(inline="always")
def _convert_row(t: _Tile, k: int, dst: np.ndarray) -> None:
    """``dst[0] = b[k, j0:j1]`` in ``dst``'s dtype (converted once, it serves every row of the tile)."""
    zb = t.z if t.b.shape[0] > 1 else 0
    for j in range(dst.shape[1]):
        dst[0, j] = t.b[zb, k, t.j0 + j]


@numba.njit(inline="always")
def _column(t: _Tile, k: int, scales: np.ndarray, factor: float) -> None:
    """``scales[r] = a[i0 + r, k] * factor`` (a power of two: :func:`_held_scale`)."""
    za = t.z if t.a.shape[0] > 1 else 0
    for r in range(scales.size):
        scales[r] = t.a[za, t.i0 + r, k] * factor


@numba.njit(inline="always")
def _held_scale(g: GemmArgs, step_kind: int) -> float:
    """What the values of an accumulation are held times: ``2**guard`` for ``STEP_STOCHASTIC_ON_GRID``, else 1.

    See :func:`round_stochastic_on_grid`: its terms enter scaled (exact
    products through the column of ``a``, rounded ones after their
    rounding, which must see them as they are) and its results leave
    unscaled (:func:`_scale`), both exactly; a value that overflows in the
    scaled domain is one the guard had to stop.
    """
    return g.acc_x.guard_scale if step_kind == STEP_STOCHASTIC_ON_GRID else 1.0


@numba.njit(inline="always")
def _scale(x: np.ndarray, factor: float) -> None:
    """``x *= factor`` for a tile's rows (a no-op for 1)."""
    if factor != 1.0:
        for r in range(x.shape[0]):
            for j in range(x.shape[1]):
                x[r, j] = x[r, j] * factor


@numba.njit(cache=True)
def _blocked_tile(t: _Tile, g: GemmArgs, prod_kind: int, step_kind: int, partial: np.ndarray) -> np.ndarray:
    """Sequential (one block of K) or blocked accumulation of the tile's rows; returns their results.

    Loop order k, row, column: a row of ``b``, converted once to the
    accumulators' dtype (that of ``partial``, zeros of the tile's shape),
    serves the whole tile. Exact products go straight into the step; rounded
    ones through a tile of terms. Random-bit run slots: one per stage.
    """
    k_dim, n = t.a.shape[2], t.j1 - t.j0
    rows = t.i1 - t.i0
    blocked = g.order == ORDER_BLOCKED
    size = g.block if blocked else max(k_dim, 1)
    total = np.zeros_like(partial)
    b_row = np.empty_like(partial[:1])  # the step's operand
    b_row64 = np.empty((1, n))  # the products' operand
    terms = np.empty((rows, n))
    scales = np.empty(rows)
    ones = np.ones(rows)
    held = _held_scale(g, step_kind)
    terms_held = np.full(rows, held)  # rounded products enter the sum scaled
    for k in range(k_dim):
        if k % size == 0:
            partial[:] = 0.0  # a block starts from +0
        _column(t, k, scales, held if prod_kind == PROD_EXACT else 1.0)  # (a product is rounded as it is)
        if prod_kind == PROD_EXACT:
            _convert_row(t, k, b_row)
            _add(t, step_kind, _Draw(k, STAGE_SUM, STAGE_SUM), partial, scales, b_row, 0, g)
        else:
            _convert_row(t, k, b_row64)
            _terms(t, prod_kind, k, scales, b_row64, terms, g)
            _add(t, step_kind, _Draw(k, STAGE_SUM, STAGE_SUM), partial, terms_held, terms, 1, g)
        if blocked and ((k + 1) % size == 0 or k == k_dim - 1):
            _add(t, step_kind, _Draw(k // size, STAGE_COMBINE, STAGE_COMBINE), total, ones, partial, 1, g)
    result = total if blocked else partial
    _scale(result, 1.0 / held)
    return result


@numba.njit(cache=True)
def _tree_levels(k_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Width of each level of the pairwise tree over ``k_dim >= 1`` terms, and the number of its first addition."""
    levels = 1
    width = k_dim
    while width > 1:
        width = (width + 1) // 2
        levels += 1
    widths = np.empty(levels, dtype=np.int64)
    firsts = np.empty(levels, dtype=np.int64)
    widths[0], firsts[0] = k_dim, 0
    for level in range(1, levels):
        widths[level] = (widths[level - 1] + 1) // 2
        firsts[level] = firsts[level - 1] + widths[level - 1] // 2
    return widths, firsts


@numba.njit(cache=True)
def _pairwise_tile(t: _Tile, g: GemmArgs, prod_kind: int, step_kind: int, partial: np.ndarray) -> np.ndarray:
    """Pairwise tree per output over ``K >= 2`` terms, for the tile's rows; returns their results.

    The tree: level by level, neighbours (2w, 2w+1) summed; an odd last one
    moves up. Additions are numbered level by level, left to right (``t`` in
    the random-bit index). They are evaluated depth first, as a stack of
    finished nodes waiting for their sibling: each rounding depends only on
    its two operands and its number, so the order of evaluation changes no
    bit, and the stack needs only one tile of values per level. Random-bit
    run slots: the products', then one per level. ``partial`` is not used:
    it makes the signature :func:`_blocked_tile`'s.
    """
    k_dim, n = t.a.shape[2], t.j1 - t.j0
    rows = t.i1 - t.i0
    widths, firsts = _tree_levels(k_dim)
    depth = widths.size + 1
    vals = np.empty((depth, rows, n))
    level = np.empty(depth, dtype=np.int64)
    index = np.empty(depth, dtype=np.int64)
    scales = np.empty(rows)
    ones = np.ones(rows)
    b_row = np.empty((1, n))
    held = _held_scale(g, step_kind)  # every node held times it, leaves included
    top = 0
    for k in range(k_dim):
        _column(t, k, scales, held if prod_kind == PROD_EXACT else 1.0)
        _convert_row(t, k, b_row)
        if k % 2 == 1 and prod_kind == PROD_EXACT:
            # a right-hand term meets its left sibling, on top of the stack, in the step
            last = vals[top - 1]
            _add(t, step_kind, _Draw(k // 2, STAGE_SUM, 1 + 0), last, scales, b_row, 0, g)  # level 0
            level[top - 1], index[top - 1] = 1, k // 2
        else:
            _terms(t, prod_kind, k, scales, b_row, vals[top], g)
            if prod_kind != PROD_EXACT:
                _scale(vals[top], held)
            level[top], index[top] = 0, k
            top += 1
        while True:
            lv, w = level[top - 1], index[top - 1]
            if w == widths[lv] - 1 and widths[lv] % 2 == 1 and widths[lv] > 1:
                level[top - 1], index[top - 1] = lv + 1, w // 2  # the odd last one moves up
            elif w % 2 == 1:  # its left sibling (lv, w - 1) is next on the stack
                node = firsts[lv] + w // 2
                left, right = vals[top - 2], vals[top - 1]
                _add(t, step_kind, _Draw(node, STAGE_SUM, 1 + lv), left, ones, right, 1, g)
                top -= 1
                level[top - 1], index[top - 1] = lv + 1, w // 2
            else:
                break
    _scale(vals[0], 1.0 / held)
    return vals[0]


LSB_NONE = 1 << 20  # operand_stats' lowest set bit where no value is nonzero and finite


@numba.njit(cache=True)
def operand_stats(u: np.ndarray) -> tuple[int, int, int, bool, bool]:
    """Ranges of float32 values (given as their uint32 bits ``u``), for proofs that a path is exact.

    Returns the bits of the largest finite magnitude, the smallest exponent of
    a lowest set bit and the most significant bits (lowest set bit to highest)
    among nonzero finite values (``LSB_NONE`` and 0 where there are none),
    whether any value is infinite, and whether any is a NaN.
    """
    amax = np.int64(0)
    lsb = np.int64(LSB_NONE)
    sig = np.int64(0)
    inf = np.int64(0)
    nan = np.int64(0)
    for i in range(u.size):
        a = np.int64(u[i]) & 0x7FFFFFFF
        ok = a != 0 and a < 0x7F800000
        field = a >> 23
        significand = (a & 0x7FFFFF) | (np.int64(0x800000) if field > 0 else np.int64(0))
        lowest = significand & -significand
        # biased exponents of the highest and lowest set bits: the integers are exact in float32
        high_e = np.int64(np.float32(significand).view(np.uint32)) >> 23
        low_e = np.int64(np.float32(lowest).view(np.uint32)) >> 23
        lsb = min(lsb, max(field, 1) - 150 + low_e - 127 if ok else np.int64(LSB_NONE))
        sig = max(sig, high_e - low_e + 1 if ok else np.int64(0))
        amax = max(amax, a if a < 0x7F800000 else np.int64(0))
        inf = max(inf, np.int64(a == 0x7F800000))
        nan = max(nan, np.int64(a > 0x7F800000))
    return amax, lsb, sig, inf != 0, nan != 0
