"""Round what Avalanche's own strategy plugins keep between experiences into the storage formats.

Each handler knows where one plugin keeps its state and rounds it in
place (or, for replay datasets, swaps in a rounded copy with the same
samples in the same order):

========================  =============================================  ==========
plugin                    state                                          format
========================  =============================================  ==========
ReplayPlugin              samples of every buffer group                  ``buffer``
GEMPlugin                 ``memory_x`` (samples per experience)          ``buffer``
AGEMPlugin                ``buffers`` (sample datasets per experience)   ``buffer``
EWCPlugin                 ``saved_params``, ``importances``              ``state``
SynapticIntelligence      ``ewc_data`` (anchors, importances)            ``state``
LwFPlugin                 ``prev_model`` (teacher): arithmetic switched  layers
========================  =============================================  ==========

Rounding to nearest is idempotent and a dataset already rounded is kept as
it is, so handlers may run more than once on the same state: the precision
plugin calls them after each ``train`` call (when every plugin has stored
its state) and again before the next experience (before any reads it),
whatever the plugin order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from continual.convert import quantize_samples, round_tensors_, set_precision
from continual.precision import CLPrecision
from mpsim.randbits import CounterRNG

__all__ = ["round_strategy_state", "stored_models"]


def _round_dataset(dataset: Any, fmt: str) -> Any:
    """``dataset`` itself when its inputs are ``fmt`` numbers already; else a classification dataset with
    the same samples, targets and task labels in the same order, inputs rounded to ``fmt``."""
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

    if len(dataset) == 0:
        return dataset
    xs, ys, ts = [], [], []
    for i in range(len(dataset)):
        x, y, t = dataset[i][:3]
        xs.append(torch.as_tensor(x))
        ys.append(int(y))
        ts.append(int(t))
    x = torch.stack(xs).float().contiguous()
    rounded = quantize_samples(x, fmt)
    if torch.equal(rounded, x):
        return dataset
    return _make_taskaware_tensor_classification_dataset(rounded, torch.tensor(ys), targets=ys, task_labels=ts)


def _replay(plugin: Any, p: CLPrecision, rng: CounterRNG) -> None:
    if p.buffer is None:
        return
    policy = plugin.storage_policy
    groups = getattr(policy, "buffer_groups", None)
    holders = list(groups.values()) if groups else [policy]
    for holder in holders:
        holder.buffer = _round_dataset(holder.buffer, p.buffer)


def _gem(plugin: Any, p: CLPrecision, rng: CounterRNG) -> None:
    if p.buffer is None:
        return
    for x in plugin.memory_x.values():
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
            x.copy_(quantize_samples(x.detach(), p.buffer, rng))


def _agem(plugin: Any, p: CLPrecision, rng: CounterRNG) -> None:
    if p.buffer is None or not plugin.buffers:
        return
    from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader

    rounded = [_round_dataset(b, p.buffer) for b in plugin.buffers]
    if all(r is b for r, b in zip(rounded, plugin.buffers)):
        return  # nothing new: keep AGEM's sampler where it is
    plugin.buffers = rounded
    # AGEM samples through an infinite loader built on the buffer list: rebuild it on the rounded copies
    plugin.buffer_dataloader = GroupBalancedInfiniteDataLoader(
        plugin.buffers,
        batch_size=plugin.sample_size // len(plugin.buffers),
        num_workers=0,
        pin_memory=False,
        persistent_workers=False,
    )
    plugin.buffer_dliter = iter(plugin.buffer_dataloader)


def _param_data(groups: Any) -> Iterator[torch.Tensor]:
    for group in groups:
        for entries in group.values():
            values = entries.values() if isinstance(entries, dict) else [entries]
            for pd in values:
                yield pd.data


def _ewc(plugin: Any, p: CLPrecision, rng: CounterRNG) -> None:
    round_tensors_(_param_data([plugin.saved_params, plugin.importances]), p.state, "nearest", rng)


def _si(plugin: Any, p: CLPrecision, rng: CounterRNG) -> None:
    round_tensors_(_param_data([plugin.ewc_data[0], plugin.ewc_data[1]]), p.state, "nearest", rng)


def _handlers() -> dict[type, Callable[[Any, CLPrecision, CounterRNG], None]]:
    from avalanche.training.plugins import AGEMPlugin, EWCPlugin, GEMPlugin, ReplayPlugin, SynapticIntelligencePlugin

    return {ReplayPlugin: _replay, GEMPlugin: _gem, AGEMPlugin: _agem, EWCPlugin: _ewc, SynapticIntelligencePlugin: _si}


def round_strategy_state(plugins: list[Any], precision: CLPrecision, rng: CounterRNG) -> list[str]:
    """Round the stored state of every known plugin in ``plugins``; returns the names of those handled."""
    handled = []
    handlers = _handlers()
    for plugin in plugins:
        for kind, handler in handlers.items():
            if isinstance(plugin, kind):
                handler(plugin, precision, rng)
                handled.append(type(plugin).__name__)
    return handled


def stored_models(plugins: list[Any]) -> list[torch.nn.Module]:
    """Models a strategy keeps besides its own (the LwF teacher), which compute in the current precision too."""
    from avalanche.training.plugins import LwFPlugin

    models = []
    for plugin in plugins:
        if isinstance(plugin, LwFPlugin) and plugin.lwf.prev_model is not None:
            models.append(plugin.lwf.prev_model)
    return models


def switch_stored_models(plugins: list[Any], precision: CLPrecision) -> None:
    for model in stored_models(plugins):
        set_precision(model, precision.layers)
