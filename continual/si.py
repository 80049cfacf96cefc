"""Synaptic Intelligence (Zenke et al., 2017) that works on CPU.

Avalanche 0.6's ``SynapticIntelligencePlugin.extract_weights`` stores
``param.detach().cpu().flatten()``. On a CUDA model ``.cpu()`` copies; on a
CPU model it returns the parameter itself, so the snapshots it keeps -- the
weights before each step (``syn_data["old_theta"]``) and the anchor of the
penalty (``ewc_data[0]``) -- are views of the live weights. The path length
``grad * (new - old)`` is then always zero, so are the importances, and the
penalty ``importance * (w - anchor)^2`` is zero twice over: SI trains exactly
as naive fine-tuning.

:class:`CopyingSynapticIntelligencePlugin` runs Avalanche's own hooks and
replaces those two snapshots with copies right after they are taken. Every
other step (importances, clipping, the penalty) is Avalanche's code,
unchanged. The same fix would be a one-word change upstream (``.clone()``).
"""

from __future__ import annotations

from typing import Any

from avalanche.training.plugins import SynapticIntelligencePlugin

__all__ = ["CopyingSynapticIntelligencePlugin", "copy_snapshots"]


def copy_snapshots(params: dict[str, Any]) -> None:
    """Give every ``ParamData`` in ``params`` its own storage (a copy of what it holds now)."""
    for param in params.values():
        param.data = param.data.clone()


class CopyingSynapticIntelligencePlugin(SynapticIntelligencePlugin):
    """Avalanche's SI plugin with its weight snapshots copied instead of aliasing the live weights."""

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)  # ewc_data[0] := the weights (the anchor)
        copy_snapshots(self.ewc_data[0])

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_iteration(strategy, **kwargs)  # old_theta := the weights before the step
        copy_snapshots(self.syn_data["old_theta"])
