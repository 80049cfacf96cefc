"""Test data for MX block quantizers: wide-range random rows and the blocks at the rules' edges.

What :mod:`tests.test_mx` checks against gfloat, :mod:`tests.test_mx_torchao`
against torchao, and ``benchmarks/mx_quantize.py`` counts: the blocks where
implementations differ (zero, NaN and Inf blocks; amax at, beside and a few
ulps above every binade and ``max`` edge across float32's range; ties at the
saturation edge; the element's subnormals and their midpoints; the ``even``
rule's tie; float32-subnormal amax). Useful for checking any MX implementation
against mpsim.
"""

from __future__ import annotations

import numpy as np

from mpsim.formats import FloatFormat
from mpsim.mx import MXFormat, parse_mx_format

__all__ = ["edge_rows", "random_rows"]

F32 = np.float32
BLOCK = 32
#: Binades whose edges the blocks' amax visits: float32's ends, E8M0's ends, and between.
EDGE_EXPONENTS = (-140, -128, -127, -126, -125, -118, -100, -10, -1, 0, 1, 3, 60, 120, 126, 127)


def random_rows(rows: int, n: int, seed: int) -> np.ndarray:
    """Float32 normal values at row scales ``2**-40..2**40``, every third row heavy-tailed, signs mixed."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n)) * np.exp2(rng.integers(-40, 41, (rows, 1)))
    x[::3] *= np.exp2(rng.integers(-12, 13, (len(x[::3]), n)))
    return x.astype(F32)


def edge_rows(fmt: str | MXFormat, seed: int = 11) -> np.ndarray:
    """Float32 blocks of 32 (one per row) at the edges of ``fmt``'s scale rules and element rounding.

    Each block but the special ones holds its amax at a random place among
    values uniform in ``[-amax, amax]``; ``seed`` draws them.
    """
    fmt = parse_mx_format(fmt)
    e = fmt.element
    top, emax, m = e.max, fmt.element_emax, fmt.element_man_bits
    if isinstance(e, FloatFormat):
        tiny = e.smallest_subnormal
        step = top - float(np.nextafter(F32(top), F32(0)))  # an ulp of float32 below max
    else:  # MXINT8: fixed point, its quantum
        tiny = step = 2.0**-e.frac_bits
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []

    def block(amax: float, rest: np.ndarray | None = None) -> None:
        row = rng.uniform(-1, 1, BLOCK) * abs(amax) if rest is None else rest.copy()
        row[rng.integers(BLOCK)] = amax
        rows.append(row.astype(F32))

    rows.append(np.zeros(BLOCK, F32))
    rows.append(np.array([0.0, -0.0] * (BLOCK // 2), F32))
    for special in (np.nan, np.inf, -np.inf):
        block(1.0)
        rows[-1][5] = special
    block(np.inf, np.full(BLOCK, np.inf))
    for k in EDGE_EXPONENTS:
        for amax in (2.0**k, top * 2.0**k, top * 2.0 ** (k - emax)):
            if not 0 < amax <= float(np.finfo(F32).max) or F32(amax) == 0:
                continue
            f = F32(amax)
            for a in (f, np.nextafter(f, F32(0)), np.nextafter(f, F32(np.inf))):
                if np.isfinite(a) and a > 0:
                    block(float(a))
                    block(-float(a))
            above = f.view(np.uint32) + np.arange(2, 40, 3, dtype=np.uint32)  # a few ulps above the edge
            for a in above.view(F32):
                if np.isfinite(a):
                    block(float(a))
    for k in (-3, 0, 5):  # ties at the saturation edge, the element's subnormals and their midpoints
        block((top + step / 4) * 2.0**k)
        block((top + step / 2) * 2.0**k)
        sub = np.arange(BLOCK) * tiny / 2 * 2.0**k
        block(top * 2.0**k, sub)
        block(-(2.0**emax) * 2.0**k, -sub)
        block(top * 2.0**k, np.full(BLOCK, top * 2.0**k))
    for k in (-20, 0, 7):  # the even rule's tie: amax halfway between the top m-bit significand and 2
        tie = (2 - 2.0 ** -(m + 1)) * 2.0**k
        for a in (F32(tie), np.nextafter(F32(tie), F32(0)), np.nextafter(F32(tie), F32(np.inf))):
            block(float(a))
    block(float(np.finfo(F32).max))
    block(-float(np.finfo(F32).max))
    block(1e-40)  # float32-subnormal amax: the scale clamps at 2**-127
    block(2.0**-149)
    return np.stack(rows)
