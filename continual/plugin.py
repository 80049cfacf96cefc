"""Avalanche glue: :class:`PrecisionPlugin` runs any supervised strategy at a chosen, switchable precision."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import torch
from avalanche.core import SupervisedPlugin

from continual.convert import quantize_in_place, round_tensors_, set_precision
from continual.cost import CostCounter, gemm_labels, reduction_length
from continual.policies import BatchSignals, ErrorMonitor, FixedPolicy, PrecisionPolicy, Switch, error_format
from continual.precision import CLPrecision
from continual.state import round_strategy_state, switch_stored_models
from mpsim.nn import PrecisionConfig, gemm_calls
from mpsim.nn.backends import EMULATOR, GemmBackend
from mpsim.randbits import CounterRNG

__all__ = ["PrecisionPlugin"]

log = logging.getLogger("continual")


class PrecisionPlugin(SupervisedPlugin):
    """Quantized arithmetic, weight updates and stored state for an unmodified Avalanche strategy.

    ``precision`` is a preset name (``"e4m3-sr"``), an mpsim
    ``PrecisionConfig``, a :class:`~continual.CLPrecision` or a
    :class:`~continual.policies.PrecisionPolicy` that switches during training.

    Hooks, and why there (the strategy's own plugins run after this one):

    * ``before_training_exp``/``before_eval_exp``: convert new Linear/Conv2d
      modules (heads added by model adaptation) in place, keeping their
      Parameter objects, so ``make_optimizer`` still finds them; ask the
      policy about the new experience; round strategy state kept since the
      last experience (replay buffers, EWC/SI importances, GEM memories)
      before the strategy reads it.
    * ``before_update``: round ``p.grad`` into the gradient format. It runs
      after every ``after_backward``, so GEM/AGEM projections and the
      EWC/SI/LwF penalties (added in ``before_backward``) are included.
    * ``after_update``: round the weights (stochastically for ``*-sr``) and
      the optimizer state into their formats, whatever optimizer the strategy
      holds now (PackNet builds a new one per experience); then give the
      policy the batch's loss and lost-error rate.
    * ``after_training``: round the state the strategy stored in its own
      ``after_training_exp`` hooks (which run after this plugin's).

    Reads ``strategy.model``, ``optimizer``, ``loss``, ``clock``, ``plugins``;
    writes weights, gradients, optimizer state and plugin state in place.
    Every switch is in :attr:`switches` and logged to ``logging.getLogger("continual")``.
    """

    def __init__(
        self,
        precision: str | PrecisionConfig | CLPrecision | PrecisionPolicy = "fp32",
        *,
        seed: int = 0,
        cost: CostCounter | None = None,
        backend: GemmBackend | None = None,
    ) -> None:
        """``backend`` computes every quantized layer's GEMMs (default: the emulator); a hardware backend
        (:func:`mpsim.nn.backends.load_backend`) is asked, for each layer as it is converted, whether it can run
        that layer in every precision the policy may choose, before the layer computes anything."""
        super().__init__()
        self.backend = backend if backend is not None else EMULATOR
        self.policy = precision if isinstance(precision, PrecisionPolicy) else FixedPolicy(precision)  # type: ignore[arg-type]
        self.seed = seed
        self.rng = CounterRNG(seed)
        self.cost = cost if cost is not None else CostCounter()
        self.monitor = ErrorMonitor(error_format(self.policy.monitored()))
        self.switches: list[dict[str, Any]] = []
        self.batches: Counter[str] = Counter()
        self._phases: list[str] = []
        self._active = self.policy.current.name

    @property
    def precision(self) -> CLPrecision:
        return self.policy.current

    # --- phases, for the cost counter -------------------------------------------------
    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        self.cost.phase = "train"
        self._prepare(strategy)

    def after_training(self, strategy: Any, **kwargs: Any) -> None:
        self.cost.phase = "eval"
        round_strategy_state(strategy.plugins, self.precision, self.rng)  # what the strategy stored last

    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._phases.append(self.cost.phase)
        self.cost.phase = "eval"

    def after_eval(self, strategy: Any, **kwargs: Any) -> None:
        self.cost.phase = self._phases.pop() if self._phases else "eval"

    # --- experiences ------------------------------------------------------------------
    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._prepare(strategy)
        self._apply(strategy, self.policy.on_experience(strategy.clock.train_exp_counter))
        round_strategy_state(strategy.plugins, self.precision, self.rng)

    def before_eval_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._prepare(strategy)

    # --- steps ------------------------------------------------------------------------
    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self.monitor.reset()

    def before_update(self, strategy: Any, **kwargs: Any) -> None:
        grads = [p.grad for p in strategy.model.parameters() if p.grad is not None]
        round_tensors_(grads, self.precision.grad, "nearest", self.rng)

    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        p = self.precision
        round_tensors_(strategy.model.parameters(), p.weight, p.update_rounding, self.rng)
        state = [
            t
            for s in strategy.optimizer.state.values()
            for t in s.values()
            if isinstance(t, torch.Tensor) and t.dim() > 0
        ]
        round_tensors_(state, p.state, "nearest", self.rng)
        self.batches[p.name] += 1
        underflow, overflow = self.monitor.rates()
        self._apply(strategy, self.policy.on_batch(BatchSignals(float(strategy.loss.detach()), underflow, overflow)))

    # --- machinery --------------------------------------------------------------------
    def _prepare(self, strategy: Any) -> None:
        """Quantize modules that are still plain (all of them the first time), and their weights."""
        _, new = quantize_in_place(strategy.model, self.precision.layers.with_seed(self.seed))
        names = {id(module): name for name, module in strategy.model.named_modules()}
        for module in new:
            name = names.get(id(module), "layer")
            for precision in self.policy.precisions():
                self.backend.check(name, gemm_calls(module, precision.layers.for_module(name)))
            module.backend = self.backend
            module.register_forward_hook(_forward_hook(self))
        if new:
            round_tensors_(strategy.model.parameters(), self.precision.weight, "nearest", self.rng)

    def _apply(self, strategy: Any, switch: Switch | None) -> None:
        if switch is None:
            return
        record = {
            "experience": int(strategy.clock.train_exp_counter),
            "epoch": int(strategy.clock.train_exp_epochs),
            "iteration": int(strategy.clock.train_iterations),
            "from": self._active,
            "to": switch.to.name,
            "reason": switch.reason,
        }
        if self.backend.cycles is not None:  # the hardware's clock when the switch takes effect
            record["cycle"] = self.backend.cycles
        self._active = switch.to.name
        self.switches.append(record)
        log.info("precision switch at experience %(experience)s iteration %(iteration)s -> %(to)s: %(reason)s", record)
        set_precision(strategy.model, switch.to.layers)
        switch_stored_models(strategy.plugins, switch.to)
        round_tensors_(strategy.model.parameters(), switch.to.weight, switch.to.update_rounding, self.rng)
        self.monitor = ErrorMonitor(error_format(self.policy.monitored()))


def _forward_hook(plugin: PrecisionPlugin) -> Any:
    """A plain closure, not a bound method: LwF deep-copies the model, and a copied hook must count into this plugin."""

    def hook(module: torch.nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        labels = gemm_labels(module.precision)
        macs = output.numel() * reduction_length(module)
        plugin.cost.add(labels["forward"], macs)
        if not (torch.is_grad_enabled() and output.requires_grad):
            return
        phase, need_input, need_weight = plugin.cost.phase, inputs[0].requires_grad, module.weight.requires_grad

        def on_error(grad: torch.Tensor) -> None:
            plugin.monitor.observe(grad)
            if need_input:
                plugin.cost.add(labels["grad_input"], macs, phase)
            if need_weight:
                plugin.cost.add(labels["grad_weight"], macs, phase)

        output.register_hook(on_error)

    return hook
