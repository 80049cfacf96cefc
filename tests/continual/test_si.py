"""Synaptic Intelligence on CPU: the snapshots are copies, and the path integral, the importances and
the penalty equal what an independent recorder of the same training computes."""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import SynapticIntelligencePlugin

from continual.config import RunConfig
from continual.runner import build_run
from continual.si import CopyingSynapticIntelligencePlugin


class PathRecorder(SupervisedPlugin):
    """Sum of grad * (weights after - weights before) over the steps of each experience, from its own copies."""

    def __init__(self) -> None:
        super().__init__()
        self.path: list[dict[str, torch.Tensor]] = []
        self.start: list[dict[str, torch.Tensor]] = []
        self.end: list[dict[str, torch.Tensor]] = []
        self.probe: Any = None  # called before every step, to look at the strategy mid-experience

    def _weights(self, strategy: Any) -> dict[str, torch.Tensor]:
        return {n: p.detach().flatten().clone() for n, p in strategy.model.named_parameters()}

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.start.append(self._weights(strategy))
        self.path.append({n: torch.zeros_like(w) for n, w in self.start[-1].items()})

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self._before = self._weights(strategy)
        if self.probe is not None:
            self.probe(strategy)

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        after = self._weights(strategy)
        for n, p in strategy.model.named_parameters():
            self.path[-1][n] += p.grad.detach().flatten() * (after[n] - self._before[n])

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.end.append(self._weights(strategy))


def _si_run(plugin_type: type) -> tuple[Any, PathRecorder, Any]:
    parts = build_run(RunConfig(strategy="si", precision="fp32", epochs=1, n_experiences=2, hidden=16, si_lambda=1.0))
    strategy = parts.strategy
    index = next(i for i, p in enumerate(strategy.plugins) if isinstance(p, SynapticIntelligencePlugin))
    si = strategy.plugins[index]
    assert type(si) is CopyingSynapticIntelligencePlugin  # what mpsim cl builds
    if plugin_type is not CopyingSynapticIntelligencePlugin:
        si = strategy.plugins[index] = plugin_type(si_lambda=1.0)
    recorder = PathRecorder()
    strategy.plugins.append(recorder)  # after SI: it sees the same weights and gradients
    return parts, recorder, si


def _penalty(si: SynapticIntelligencePlugin, model: torch.nn.Module) -> float:
    loss = SynapticIntelligencePlugin.compute_ewc_loss(
        model, si.ewc_data, si.excluded_parameters, device="cpu", lambd=1.0
    )
    return float(loss.detach())


def test_si_importances_and_penalty_equal_an_independent_recording() -> None:
    torch.set_num_threads(1)
    parts, recorder, si = _si_run(CopyingSynapticIntelligencePlugin)
    stream = list(parts.bench.stream.train_stream)
    parts.strategy.train(stream[0])
    # the path integral of the first experience, and Zenke et al.'s importance from it (c = 1, clipped at 0.001)
    for name, path in recorder.path[0].items():
        assert torch.equal(si.syn_data["trajectory"][name].data, path), name
        moved = recorder.end[0][name] - recorder.start[0][name]
        importance = torch.clamp(-path / (moved**2 + si.eps), max=0.001)
        assert torch.allclose(si.ewc_data[1][name].data, importance, rtol=1e-6, atol=0), name
        assert torch.equal(si.ewc_data[0][name].data, recorder.end[0][name]), name  # the anchor: the weights now
    assert sum(float(v.data.abs().sum()) for v in si.ewc_data[1].values()) > 0
    # second experience: the penalty at every step is lambda/2 * sum(importance * (w - anchor)^2) with the
    # first experience's importances and end weights, positive once the weights have moved
    importance = {n: v.data.clone() for n, v in si.ewc_data[1].items()}
    anchor = recorder.end[0]
    seen: list[tuple[float, float]] = []

    def probe(strategy: Any) -> None:
        weights = {n: p.detach().flatten() for n, p in strategy.model.named_parameters()}
        want = sum(torch.dot(importance[n], (w - anchor[n]) ** 2) for n, w in weights.items()) * 0.5
        seen.append((_penalty(si, strategy.model), float(want)))

    recorder.probe = probe
    parts.strategy.train(stream[1])
    got, want = (list(v) for v in zip(*seen))
    assert len(got) > 10 and got[0] == 0.0 and max(got) > 0
    assert all(abs(g - w) <= 1e-6 * abs(w) for g, w in zip(got, want)), (got[:5], want[:5])
    for name in anchor:
        assert torch.equal(si.ewc_data[0][name].data, recorder.end[1][name]), name  # moved on after the experience


def test_avalanche_si_alone_has_zero_penalty_on_cpu() -> None:
    """Why continual/si.py exists: upstream's snapshots alias the weights, so nothing is learnt to protect."""
    torch.set_num_threads(1)
    parts, recorder, si = _si_run(SynapticIntelligencePlugin)
    stream = list(parts.bench.stream.train_stream)
    parts.strategy.train(stream[0])
    assert any(float(p.abs().sum()) > 0 for p in recorder.path[0].values())  # the recorder saw a real path
    assert all(float(v.data.abs().sum()) == 0 for v in si.syn_data["trajectory"].values())
    assert all(float(v.data.abs().sum()) == 0 for v in si.ewc_data[1].values())
    parts.strategy.train(stream[1])
    assert _penalty(si, parts.strategy.model) == 0.0


def test_copying_plugin_penalty_is_positive_during_the_second_experience() -> None:
    torch.set_num_threads(1)
    parts, _, si = _si_run(CopyingSynapticIntelligencePlugin)
    stream = list(parts.bench.stream.train_stream)
    parts.strategy.train(stream[0])
    parts.strategy.train(stream[1])
    # the anchor is the end of the second experience now; move the weights off it and the penalty grows
    with torch.no_grad():
        for p in parts.strategy.model.parameters():
            p.add_(0.1)
    assert _penalty(si, parts.strategy.model) > 0
