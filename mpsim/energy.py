"""Energy per arithmetic operation and per memory access, by bit width (Horowitz, ISSCC 2014, 45 nm).

Format-independent numbers that both the continual-learning cost counter
(:mod:`continual.cost`) and the accelerator model (:mod:`hls_gen.perf_model`)
use, so that one table drives both.

Arithmetic (:class:`EnergyModel`), measured points from M. Horowitz,
"Computing's energy problem (and what we can do about it)", ISSCC 2014,
45 nm, 0.9 V: float multiply 1.1 pJ (16 b) / 3.7 pJ (32 b), float add 0.4 /
0.9 pJ, integer multiply 0.2 pJ (8 b) / 3.1 pJ (32 b), integer add 0.03 /
0.1 pJ. A multiplier's energy is a power law in the product of the
significand widths (the size of its array), ``E = E0 * (pa*pb / x0) ** k``, an
adder's a power law in its width; each law passes through both of Horowitz's
points (k = 0.78 float multiply, 1.17 float add, 0.99 integer multiply, 0.87
integer add), so fp16 and fp32 MACs cost exactly his numbers and narrower
ones are **extrapolated, not measured**: an e4m3 x e4m3 product comes out at
0.23 pJ, next to his 0.2 pJ for an 8-bit integer one.

Memory (:class:`MemoryEnergy`), same source, per 64-bit access: SRAM cache
of 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ (measured points); other sizes are
interpolated log-log between the neighbouring points and extrapolated with
the end segment's slope beyond them (not measured). DRAM 1.3-2.6 nJ per
64-bit access; the model takes the low end, 1.3 nJ (``dram_pj_per_64b``).
Narrower accesses are charged per bit (``pJ / 64`` per bit), which is
optimistic for sub-word reads.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.mx import SCALE_BITS, MXFormat, block_sum_bits, is_mx_spec, parse_mx_format

__all__ = ["HOROWITZ_45NM", "HOROWITZ_45NM_MEMORY", "EnergyModel", "MemoryEnergy", "power_law"]


def power_law(x: float, points: tuple[tuple[float, float], tuple[float, float]]) -> float:
    """The power law through both points, at ``x``."""
    (x0, y0), (x1, y1) = points
    k = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** k


def _significand(fmt: FloatFormat | FixedFormat) -> int:
    return fmt.man_bits + 1 if isinstance(fmt, FloatFormat) else fmt.bits


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation (pJ) at two widths each; every other width is interpolated (see module doc)."""

    fp_mul: tuple[tuple[int, float], tuple[int, float]] = ((11 * 11, 1.1), (24 * 24, 3.7))  # (p_a * p_b, pJ)
    fp_add: tuple[tuple[int, float], tuple[int, float]] = ((16, 0.4), (32, 0.9))  # (bits, pJ)
    int_mul: tuple[tuple[int, float], tuple[int, float]] = ((8 * 8, 0.2), (32 * 32, 3.1))
    int_add: tuple[tuple[int, float], tuple[int, float]] = ((8, 0.03), (32, 0.1))
    source: str = "Horowitz, ISSCC 2014, 45 nm"

    def multiply_pj(self, a: str | FloatFormat | FixedFormat, b: str | FloatFormat | FixedFormat) -> float:
        """One product of an ``a`` and a ``b`` operand."""
        fa, fb = parse_format(a), parse_format(b)
        if isinstance(fa, FixedFormat) and isinstance(fb, FixedFormat):
            return power_law(fa.bits * fb.bits, self.int_mul)
        return power_law(_significand(fa) * _significand(fb), self.fp_mul)

    def add_pj(self, acc: str | FloatFormat | FixedFormat) -> float:
        """One addition into an ``acc`` accumulator."""
        fmt = parse_format(acc)
        return power_law(fmt.bits, self.int_add if isinstance(fmt, FixedFormat) else self.fp_add)

    def mac_pj(self, a: str | MXFormat, b: str | MXFormat, acc: str) -> float:
        """One multiply-accumulate: the product plus the addition into the accumulator (MX operands:
        :meth:`mx_mac_pj`)."""
        if is_mx_spec(a) or is_mx_spec(b):
            return self.mx_mac_pj(a, b, acc)
        return self.multiply_pj(a, b) + self.add_pj(acc)

    def mx_mac_pj(self, a: str | MXFormat, b: str | MXFormat, acc: str) -> float:
        """One element product of an MX GEMM (:mod:`mpsim.mx_gemm`) with its share of the block's work.

        Per element pair: the elements' product and its addition into the
        block's exact fixed-point sum (an integer adder of
        :func:`~mpsim.mx.block_sum_bits`); per block, shared by its
        ``block_size`` pairs: the scales' product (an 8-bit integer addition of
        the E8M0 exponents) and the block sum's addition into ``acc``.
        """
        fa, fb = parse_mx_format(a), parse_mx_format(b)
        per_block = power_law(SCALE_BITS, self.int_add) + self.add_pj(acc)
        window = power_law(block_sum_bits(fa, fb), self.int_add)
        return self.multiply_pj(fa.element, fb.element) + window + per_block / fa.block_size


HOROWITZ_45NM = EnergyModel()


@dataclass(frozen=True)
class MemoryEnergy:
    """Energy of memory accesses (see module doc): SRAM by capacity, DRAM, per 64-bit access."""

    sram_points: tuple[tuple[int, float], ...] = (
        (8 * 1024, 10.0),
        (32 * 1024, 20.0),
        (1024 * 1024, 100.0),
    )  # (bytes, pJ / 64 b)
    dram_pj_per_64b: float = 1300.0
    source: str = "Horowitz, ISSCC 2014, 45 nm: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ, DRAM 1.3-2.6 nJ per 64 bits"

    def sram_pj_per_64b(self, capacity_bytes: int) -> float:
        """One 64-bit access to an SRAM of ``capacity_bytes``: log-log through the neighbouring points."""
        if isinstance(capacity_bytes, bool) or not isinstance(capacity_bytes, int) or capacity_bytes < 1:
            raise ValueError(f"SRAM capacity must be a positive number of bytes, not {capacity_bytes!r}")
        points = self.sram_points
        for lo, hi in itertools.pairwise(points):
            if capacity_bytes <= hi[0]:
                return power_law(capacity_bytes, (lo, hi))
        return power_law(capacity_bytes, (points[-2], points[-1]))

    def sram_pj(self, bits: float, capacity_bytes: int) -> float:
        """Moving ``bits`` to or from an SRAM of ``capacity_bytes``."""
        return bits / 64 * self.sram_pj_per_64b(capacity_bytes)

    def dram_pj(self, bits: float) -> float:
        """Moving ``bits`` to or from DRAM."""
        return bits / 64 * self.dram_pj_per_64b


HOROWITZ_45NM_MEMORY = MemoryEnergy()
