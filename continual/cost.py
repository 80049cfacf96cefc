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
* an **energy proxy** per MAC, multiplier plus adder (:mod:`mpsim.energy`), from the 45 nm
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

An MX GEMM (``mul`` an MX format, :mod:`mpsim.mx_gemm`) is labelled with its
operands' MX formats (``"mxfp8_e4m3*mxfp8_e4m3->fp16"``) and counts the scale
work: per element pair ``bits(a) * bits(b)`` BOPs of the elements plus, once
per block, 8 for the addition of the two E8M0 exponents (the scales'
product); its energy is :meth:`mpsim.energy.EnergyModel.mx_mac_pj` (the
element product, its addition into the block's exact fixed-point sum, and per
block the exponent addition and one accumulator addition).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mpsim.energy import HOROWITZ_45NM, EnergyModel  # re-exported: the energy table lives in mpsim
from mpsim.formats import parse_format
from mpsim.mx import SCALE_BITS, is_mx_spec, parse_mx_format

__all__ = ["HOROWITZ_45NM", "CostCounter", "EnergyModel", "gemm_labels", "reduction_length"]


def _split(label: str) -> tuple[str, str, str]:
    operands, acc = label.split("->")
    a, b = operands.split("*")
    return a, b, acc


def gemm_labels(precision: Any) -> dict[str, str]:
    """``"A*B->ACC"`` of a layer's forward, grad_input and grad_weight GEMMs (an mpsim ``LayerPrecision``)."""
    act = precision.activation.format or "fp32"
    weight = precision.weight.format or "fp32"
    grad = precision.grad.format or "fp32"

    def label(gemm: Any, a: str, b: str) -> str:
        if not gemm.emulate:
            return f"{a}*{b}->fp32"
        mx = gemm.mx_formats
        if mx is not None:  # the GEMM blocks its operands itself, in A's and B's order (a Linear's)
            a, b = str(mx[0]), str(mx[1])
        return f"{a}*{b}->{gemm.acc}"

    return {
        "forward": label(precision.forward, act, weight),
        "grad_input": label(precision.grad_input, grad, weight),
        "grad_weight": label(precision.grad_weight, act, grad),
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
            if is_mx_spec(a):
                fa, fb = parse_mx_format(a), parse_mx_format(b)
                bops += count * (fa.element.bits * fb.element.bits + SCALE_BITS / fa.block_size)
                energy += count * self.energy.mx_mac_pj(fa, fb, acc)
            else:
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
