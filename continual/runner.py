"""One continual-learning run: a benchmark, an Avalanche strategy, a precision policy and a seed, to a results dict.

The result (written by :mod:`continual.sweep` as JSON) holds the accuracy
matrix, the metrics of :mod:`continual.metrics`, wall time, the arithmetic
cost (:mod:`continual.cost`), the batches trained in each precision and every
precision switch. Given the seed the run is deterministic (data split,
initialisation, shuffling, replay sampling and stochastic-rounding bits);
only the timings differ between repetitions.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from continual.benchmarks import CLBenchmark, make_benchmark
from continual.config import STRATEGY_FAMILY, RunConfig, run_id
from continual.evaluation import AccuracyMatrixPlugin, quiet_evaluator
from continual.metrics import summarize
from continual.models import build_model
from continual.plugin import PrecisionPlugin
from continual.policies import make_policy
from continual.precision import parse_cl_precision
from mpsim.nn.backends import GemmBackend, load_backend

__all__ = ["RunConfig", "RunParts", "build_run", "run", "run_id"]


def _seed_everything(seed: int) -> None:
    random.seed(seed)  # AGEM samples its memory with `random`
    np.random.seed(seed)
    torch.manual_seed(seed)  # initialisation, DataLoader shuffling, reservoir sampling


def _make_strategy(config: RunConfig, model: torch.nn.Module, plugins: list[Any], n_experiences: int) -> Any:
    from avalanche.training import supervised as s

    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    common = dict(
        model=model,
        optimizer=optimizer,
        criterion=torch.nn.CrossEntropyLoss(),
        train_mb_size=config.batch_size,
        train_epochs=config.epochs,
        eval_mb_size=256,
        device="cpu",
        evaluator=quiet_evaluator(),
    )
    per_exp = max(1, config.mem_size // n_experiences)
    name = config.strategy
    if name == "naive":
        strategy = s.Naive(**common, plugins=plugins)
    elif name == "joint":
        strategy = s.JointTraining(**common, plugins=plugins)
    elif name == "replay":
        strategy = s.Replay(**common, plugins=plugins, mem_size=config.mem_size)
        _undeprecate_replay_buffer(strategy)
    elif name == "gem":
        strategy = s.GEM(**common, plugins=plugins, patterns_per_exp=per_exp, memory_strength=config.gem_strength)
    elif name == "agem":
        strategy = s.AGEM(**common, plugins=plugins, patterns_per_exp=per_exp, sample_size=config.agem_sample_size)
    elif name == "ewc":
        strategy = s.EWC(**common, plugins=plugins, ewc_lambda=config.ewc_lambda)
    elif name == "si":
        from avalanche.training.plugins import SynapticIntelligencePlugin

        from continual.si import CopyingSynapticIntelligencePlugin

        # Avalanche's own SI plugin keeps views of the live weights on CPU, so its penalty is zero
        # (continual/si.py): the strategy's plugin is replaced, in place, by one that copies them.
        strategy = s.SynapticIntelligence(**common, plugins=plugins, si_lambda=config.si_lambda)
        index = next(i for i, p in enumerate(strategy.plugins) if type(p) is SynapticIntelligencePlugin)
        upstream = strategy.plugins[index]
        strategy.plugins[index] = CopyingSynapticIntelligencePlugin(si_lambda=upstream.si_lambda, eps=upstream.eps)
    elif name == "lwf":
        strategy = s.LwF(**common, plugins=plugins, alpha=config.lwf_alpha, temperature=config.lwf_temperature)
    else:
        # Equal capacity per task: task t keeps 1/(T-t) of the weights still free.
        prune = [(n_experiences - t - 1) / (n_experiences - t) for t in range(n_experiences)]
        strategy = s.PackNet(
            **common, plugins=None, post_prune_epochs=config.packnet_post_prune_epochs, prune_proportion=prune
        )
        # Avalanche 0.6's PackNet passes `plugins=[plugins, PackNetPlugin(...)]`, a nested list whose
        # inner list no hook ever reaches; put the user plugins first, as the other strategies do.
        strategy.plugins = [*plugins, *(p for p in strategy.plugins if p is not None and not isinstance(p, list))]
    return strategy


def _undeprecate_replay_buffer(strategy: Any) -> None:
    """Give Replay's plugin the same buffer, minus the deprecated ``update`` its ``after_training_exp`` calls.

    Avalanche 0.6's own ReplayPlugin calls ``ExemplarsBuffer.update``, deprecated in
    favour of ``post_adapt``; its deprecation wrapper runs
    ``warnings.simplefilter("once", DeprecationWarning)``, which would turn off
    ``filterwarnings = error`` for every later DeprecationWarning of the process.
    """
    from avalanche.training.plugins import ReplayPlugin
    from avalanche.training.storage_policy import ExperienceBalancedBuffer

    class Buffer(ExperienceBalancedBuffer):
        def update(self, strategy: Any, **kwargs: Any) -> None:  # what the deprecated method does
            self.post_adapt(strategy, strategy.experience)

    for plugin in strategy.plugins:
        if isinstance(plugin, ReplayPlugin) and type(plugin.storage_policy) is ExperienceBalancedBuffer:
            plugin.storage_policy = Buffer(plugin.mem_size, adaptive_size=True)


@dataclass
class RunParts:
    """A run before training: the strategy with its plugins, and the benchmark (for tests and notebooks)."""

    config: RunConfig
    bench: CLBenchmark
    strategy: Any
    plugin: PrecisionPlugin
    accuracy: AccuracyMatrixPlugin


def build_run(config: RunConfig, backend: GemmBackend | None = None) -> RunParts:
    """Seed everything, then build the benchmark, the model and the strategy with its plugins.

    ``backend``: an opened backend of ``config.backend``'s name (one built with options of its own), instead of
    :func:`mpsim.nn.backends.load_backend`'s.
    """
    _seed_everything(config.seed)
    bench = make_benchmark(
        config.benchmark,
        config.scenario,
        n_experiences=config.n_experiences,
        seed=config.seed,
        data_root=config.data_root,
    )
    model = build_model(bench, config.strategy, config.hidden, config.layers)
    if backend is None:
        backend = load_backend(config.backend, config.hardware)
    elif backend.name != config.backend:
        raise ValueError(f"the backend given is {backend.name!r}, the configuration's {config.backend!r}")
    policy = make_policy(config.policy, parse_cl_precision(config.precision))
    plugin = PrecisionPlugin(policy, seed=config.seed, backend=backend)
    accuracy = AccuracyMatrixPlugin()
    strategy = _make_strategy(config, model, [plugin, accuracy], bench.n_experiences)
    return RunParts(config, bench, strategy, plugin, accuracy)


def run(config: RunConfig, *, progress: bool = True, parts: RunParts | None = None) -> dict[str, Any]:
    """Train and evaluate one configuration (built by :func:`build_run` unless ``parts`` is given); the results dict."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fp32 sums in torch can depend on the thread count; the models are tiny anyway
    try:
        start = time.perf_counter()
        return _execute(parts or build_run(config), start, progress)
    finally:
        torch.set_num_threads(threads)


def _execute(parts: RunParts, start: float, progress: bool) -> dict[str, Any]:
    import avalanche

    config, bench, strategy, plugin, accuracy = parts.config, parts.bench, parts.strategy, parts.plugin, parts.accuracy
    test = bench.stream.test_stream
    joint = config.strategy == "joint"
    if not joint:  # (JointTraining adapts its model to no experience before training: multi-head eval would fail)
        strategy.eval(test)  # the untrained model: baseline of forward transfer
    steps = [list(bench.stream.train_stream)] if joint else list(bench.stream.train_stream)
    bar = tqdm(steps, desc=run_id(config), disable=not progress, leave=False)
    matrix = []
    for step in bar:
        strategy.train(step)
        strategy.eval(test)
        matrix.append([accuracy.rows[-1][j] for j in range(bench.n_experiences)])
        bar.set_postfix(acc=f"{np.mean(matrix[-1]):.3f}", precision=plugin.precision.name)
    baseline = None if joint else [accuracy.rows[0][j] for j in range(bench.n_experiences)]
    return {
        "run_id": run_id(config),
        "config": asdict(config),
        "label": config.label,
        "family": STRATEGY_FAMILY[config.strategy],
        "accuracy_matrix": matrix,
        "initial_accuracy": baseline,
        **summarize(matrix, baseline),
        "wall_seconds": time.perf_counter() - start,
        "cost": plugin.cost.summary(),
        "precision_batches": dict(plugin.batches),
        "switches": plugin.switches,
        "hardware": plugin.backend.report(),
        "versions": {"avalanche": avalanche.__version__, "torch": torch.__version__},
    }
