"""Arithmetic cost of training: MACs per operand/accumulator format, bit-operations and an energy proxy.

Every emulated layer runs three GEMMs per training step (forward, input
gradient, weight gradient; see :mod:`mpsim.nn.functional`), each with its own
operand formats and accumulator. A :class:`CostCounter` adds up the
multiply-accumulates of each kind under the label ``"A*B->ACC"`` (operand
formats, accumulator format; ``fp32`` where a tensor is not quantized), per
phase (``train``: everything the strategy computes while training, replay,
GEM/AGEM reference gradients, EWC importances and the LwF teacher included;
``eval``: the test-set evaluations, reported apart since they measure the
learner rather than cost it).

Two cost measures come out of the counts:

* **bit-operations** (BOPs) ``= MACs * bits(A) * bits(B)``, the usual
  hardware-agnostic measure of quantized networks (van Baalen et al.,
  "Bayesian Bits", NeurIPS 2020);
* an **energy proxy** per MAC, multiplier plus adder, from the 45 nm
  energies of Horowitz, "Computing's energy problem", ISSCC 2014: float
  multiply 1.1 pJ (16 b) / 3.7 pJ (32 b), float add 0.4 / 0.9 pJ, integer
  multiply 0.2 pJ (8 b) / 3.1 pJ (32 b), integer add 0.03 / 0.1 pJ. A
  multiplier's energy is a power law in the product of the significand
  widths (the size of its array), ``E = E0 * (pa*pb / x0) ** k``, an adder's a
  power law in its width; each law passes through both of Horowitz's points
  (k = 0.78 float multiply, 1.17 float add, 0.99 integer multiply, 0.87
  integer add), so fp16 and fp32 MACs cost exactly his numbers and narrower
  ones are extrapolated, not measured: an e4m3 x e4m3 product comes out at
  0.23 pJ, next to his 0.2 pJ for an 8-bit integer one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mpsim.formats import FixedFormat, FloatFormat, parse_format

__all__ = ["EnergyModel", "HOROWITZ_45NM", "CostCounter", "gemm_labels", "reduction_length"]


def _power_law(x: float, points: tuple[tuple[int, float], tuple[int, float]]) -> float:
    """The power law through both points, at ``x``."""
    (x0, y0), (x1, y1) = points
    k = math.log(y1 / y0) / math.log(x1 / x0)
    return y0 * (x / x0) ** k


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation (pJ) at two widths each; every other width is interpolated (see module doc)."""

    fp_mul: tuple[tuple[int, float], tuple[int, float]] = ((11 * 11, 1.1), (24 * 24, 3.7))  # (p_a * p_b, pJ)
    fp_add: tuple[tuple[int, float], tuple[int, float]] = ((16, 0.4), (32, 0.9))  # (bits, pJ)
    int_mul: tuple[tuple[int, float], tuple[int, float]] = ((8 * 8, 0.2), (32 * 32, 3.1))
    int_add: tuple[tuple[int, float], tuple[int, float]] = ((8, 0.03), (32, 0.1))
    source: str = "Horowitz, ISSCC 2014, 45 nm"

    def multiply_pj(self, a: "str | FloatFormat | FixedFormat", b: "str | FloatFormat | FixedFormat") -> float:
        """One product of an ``a`` and a ``b`` operand."""
        fa, fb = parse_format(a), parse_format(b)
        if isinstance(fa, FixedFormat) and isinstance(fb, FixedFormat):
            return _power_law(fa.bits * fb.bits, self.int_mul)
        return _power_law(_significand(fa) * _significand(fb), self.fp_mul)

    def add_pj(self, acc: "str | FloatFormat | FixedFormat") -> float:
        """One addition into an ``acc`` accumulator."""
        fmt = parse_format(acc)
        return _power_law(fmt.bits, self.int_add if isinstance(fmt, FixedFormat) else self.fp_add)

    def mac_pj(self, a: str, b: str, acc: str) -> float:
        return self.multiply_pj(a, b) + self.add_pj(acc)


def _significand(fmt: FloatFormat | FixedFormat) -> int:
    return fmt.man_bits + 1 if isinstance(fmt, FloatFormat) else fmt.bits


HOROWITZ_45NM = EnergyModel()


def _split(label: str) -> tuple[str, str, str]:
    operands, acc = label.split("->")
    a, b = operands.split("*")
    return a, b, acc


def gemm_labels(precision: Any) -> dict[str, str]:
    """``"A*B->ACC"`` of a layer's forward, grad_input and grad_weight GEMMs (an mpsim ``LayerPrecision``)."""
    act = precision.activation.format or "fp32"
    weight = precision.weight.format or "fp32"
    grad = precision.grad.format or "fp32"

    def acc(gemm: Any) -> str:
        return gemm.acc if gemm.emulate else "fp32"

    return {
        "forward": f"{act}*{weight}->{acc(precision.forward)}",
        "grad_input": f"{grad}*{weight}->{acc(precision.grad_input)}",
        "grad_weight": f"{act}*{grad}->{acc(precision.grad_weight)}",
    }


def reduction_length(module: Any) -> int:
    """Products summed per output element: ``in_features``, or ``in_channels/groups * kh * kw``."""
    if hasattr(module, "in_features"):
        return int(module.in_features)
    kh, kw = module.kernel_size
    return int(module.in_channels // module.groups * kh * kw)


class CostCounter:
    """MACs per phase and GEMM label; :meth:`summary` turns them into BOPs and energy."""

    def __init__(self, energy: EnergyModel = HOROWITZ_45NM) -> None:
        self.energy = energy
        self.macs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.phase = "eval"  # set by the plugin: "train" inside strategy.train, "eval" inside strategy.eval

    def add(self, label: str, macs: int, phase: str | None = None) -> None:
        if macs < 0:
            raise ValueError(f"MAC count must be >= 0, not {macs!r}")
        self.macs[phase or self.phase][label] += int(macs)

    def phase_summary(self, phase: str) -> dict[str, Any]:
        by_label = dict(sorted(self.macs.get(phase, {}).items()))
        bops = energy = 0.0
        for label, count in by_label.items():
            a, b, acc = _split(label)
            bops += count * parse_format(a).bits * parse_format(b).bits
            energy += count * self.energy.mac_pj(a, b, acc)
        return {
            "macs": sum(by_label.values()),
            "macs_by_format": by_label,
            "bit_ops": bops,
            "energy_uj": energy * 1e-6,
        }

    def summary(self) -> dict[str, Any]:
        """Per phase: total MACs, MACs per label, BOPs and energy in microjoules."""
        return {
            "train": self.phase_summary("train"),
            "eval": self.phase_summary("eval"),
            "energy_model": self.energy.source,
        }
