"""Continual learning at chosen precisions, on Avalanche.

:class:`PrecisionPlugin` runs any Avalanche supervised strategy with mpsim's
quantized layers, quantized weight updates and quantized stored state,
under a fixed, scheduled or adaptive precision policy, and counts the
arithmetic it costs. The numerics (metrics, cost, policies) live in plain
modules usable without Avalanche; :mod:`continual.runner` and
:mod:`continual.sweep` run benchmarks and grids (``mpsim cl``, ``mpsim cl-sweep``).
"""

from continual.cost import HOROWITZ_45NM, CostCounter, EnergyModel
from continual.policies import (
    AdaptivePolicy,
    AdaptiveSettings,
    BatchSignals,
    FixedPolicy,
    PrecisionPolicy,
    SchedulePolicy,
    make_policy,
)
from continual.precision import CL_PRESETS, CLPrecision, parse_cl_precision

__all__ = [
    "CL_PRESETS",
    "HOROWITZ_45NM",
    "AdaptivePolicy",
    "AdaptiveSettings",
    "BatchSignals",
    "CLPrecision",
    "CostCounter",
    "EnergyModel",
    "FixedPolicy",
    "PrecisionPlugin",
    "PrecisionPolicy",
    "SchedulePolicy",
    "make_policy",
    "parse_cl_precision",
]


def __getattr__(name: str) -> object:  # Avalanche (slow to import) only when its glue is used
    if name == "PrecisionPlugin":
        from continual.plugin import PrecisionPlugin

        return PrecisionPlugin
    raise AttributeError(f"module 'continual' has no attribute {name!r}")
