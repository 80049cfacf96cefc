"""Small models for the offline benchmarks: an MLP, its multi-head version (task labels) and PackNet's wrapping."""

from __future__ import annotations

import torch
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from avalanche.models.packnet import PackNetModel
from torch import nn

from continual.benchmarks import CLBenchmark

__all__ = ["MultiHeadMLP", "build_model", "mlp"]


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 1) -> nn.Sequential:
    """Flatten, then ``layers`` hidden ReLU layers of width ``hidden``, then a linear head."""
    modules: list[nn.Module] = [nn.Flatten()]
    width = inputs
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


class MultiHeadMLP(MultiTaskModule):
    """Shared hidden layers and Avalanche's ``MultiHeadClassifier`` (a head per task, added as tasks appear)."""

    def __init__(self, inputs: int, hidden: int, head_size: int, layers: int = 1) -> None:
        super().__init__()
        self.features = (
            mlp(inputs, hidden, hidden, layers - 1)
            if layers > 1
            else nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden))
        )
        self.relu = nn.ReLU()
        self.classifier = MultiHeadClassifier(hidden, initial_out_features=head_size)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.classifier.forward_single_task(self.relu(self.features(x)), task_label)


def build_model(benchmark: CLBenchmark, strategy: str, hidden: int = 64, layers: int = 1) -> nn.Module:
    """fp32 model for ``benchmark``; PackNet wraps a single-head MLP and needs task labels."""
    if strategy == "packnet":
        if not benchmark.task_labels:
            raise ValueError(
                "strategy 'packnet' selects a sub-network per task and needs task labels: use scenario 'task'"
            )
        return PackNetModel(mlp(benchmark.input_size, hidden, benchmark.head_size, layers))
    if benchmark.task_labels:
        return MultiHeadMLP(benchmark.input_size, hidden, benchmark.head_size, layers)
    return mlp(benchmark.input_size, hidden, benchmark.head_size, layers)
