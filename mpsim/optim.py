"""Low-precision optimizers: SGD and Adam(W) with weights, gradients and states in mpsim formats.

Thin torch glue over :func:`mpsim.quantize`. With the default
:class:`OptimPrecision` (everything fp32, round to nearest) :class:`QSGD`,
:class:`QAdam` and :class:`QAdamW` perform exactly the float32 operations of
``torch.optim.SGD`` / ``Adam`` / ``AdamW`` with ``foreach=False``, in the same
order, so their results are bit-identical.

One step, per parameter ``p`` (in ``param_groups`` order):

1. ``g = quantize(p.grad, grad)`` (round to nearest) when ``grad`` is set;
2. the update is computed in float32 as torch computes it, reading the
   float32 master copy when ``master_weights`` is on, else ``p`` itself;
3. each state (momentum buffer, Adam moments) is rounded into ``state`` with
   ``state_rounding`` as soon as it is updated, and the update reads the
   rounded state (what a low-precision store would hold);
4. the new weight is rounded into ``weight`` with ``update_rounding``:
   plain (``p = quantize(w_new)``), master (``master = w_new``,
   ``p = quantize(master)``) or Kahan (``y = -lr*update - c``,
   ``t = quantize(p + y)``, ``c = (t - p) - y``, ``p = t``).

Stochastic roundings take their bits from the optimizer's one
:class:`~mpsim.randbits.CounterRNG` (``optimizer.rng``), which advances with
every stochastic call: the same seed gives the same bits, and
``state_dict()`` records its seed and offset so that save, load and continue
equals uninterrupted training bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.randbits import CounterRNG, make_source
from mpsim.rounding import parse_rounding
from mpsim.torch_glue import quantize_tensor

__all__ = ["QSGD", "OptimPrecision", "QAdam", "QAdamW"]


def _check_format(value: Any, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, (str, FloatFormat, FixedFormat)):
        raise ValueError(f"{what} format must be a format string, a format spec or None, not {value!r}")
    try:
        parse_format(value)
    except ValueError as err:
        raise ValueError(f"{what} format: {err}") from None


def _check_rounding(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a rounding string such as 'nearest' or 'stochastic:8', not {value!r}")
    try:
        parse_rounding(value)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


def _format_str(fmt: str | FloatFormat | FixedFormat | None, what: str) -> str | None:
    """The canonical string of a format (aliases resolved), or None."""
    if fmt is None:
        return None
    fmt = parse_format(fmt)
    label = fmt.label
    try:
        same = parse_format(label) == fmt
    except ValueError:
        same = False
    if not same:
        raise ValueError(f"{what} format {fmt.describe()} has no string form that parse_format reads back")
    return label


@dataclass(frozen=True)
class OptimPrecision:
    """Where an optimizer step rounds, and how.

    Parameters
    ----------
    weight : str, format or None
        Format the parameters are stored in; ``None`` leaves them float32.
    grad : str, format or None
        Format the gradient is rounded into (to nearest) before use; ``None``: as is.
    state : str, format or None
        Format of the momentum buffer / Adam moments; ``None``: float32.
    update_rounding : str
        Rounding of the new weight into ``weight``: ``"nearest"``,
        ``"stochastic"`` or ``"stochastic:K"`` (any :func:`mpsim.parse_rounding` string).
    state_rounding : str
        Rounding of the states into ``state``.
    master_weights : bool
        Keep a float32 master copy; the parameter holds ``quantize(master)``.
    kahan : bool
        Kahan-compensated weight update with a float32 compensation buffer.
        Exclusive with ``master_weights``.
    seed : int or None
        Seed of the optimizer's :class:`~mpsim.randbits.CounterRNG` (default 0:
        reproducible); ``None`` draws one from the operating system.
    """

    weight: str | FloatFormat | FixedFormat | None = None
    grad: str | FloatFormat | FixedFormat | None = None
    state: str | FloatFormat | FixedFormat | None = None
    update_rounding: str = "nearest"
    state_rounding: str = "nearest"
    master_weights: bool = False
    kahan: bool = False
    seed: int | None = 0

    def __post_init__(self) -> None:
        _check_format(self.weight, "weight")
        _check_format(self.grad, "grad")
        _check_format(self.state, "state")
        _check_rounding(self.update_rounding, "update_rounding")
        _check_rounding(self.state_rounding, "state_rounding")
        if not isinstance(self.master_weights, bool):
            raise ValueError(f"master_weights must be True or False, not {self.master_weights!r}")
        if not isinstance(self.kahan, bool):
            raise ValueError(f"kahan must be True or False, not {self.kahan!r}")
        if self.kahan and self.master_weights:
            raise ValueError(
                "kahan and master_weights cannot be combined: both keep the bits the "
                "weight format drops (a compensation buffer or a float32 master copy); choose one"
            )
        if self.seed is not None:
            if isinstance(self.seed, bool) or not isinstance(self.seed, int):
                raise ValueError(f"seed must be an integer or None, not {self.seed!r}")
            if not 0 <= self.seed < 2**64:
                raise ValueError(f"seed must be in 0..2**64-1 or None, not {self.seed!r}")

    @property
    def weight_format(self) -> FloatFormat | FixedFormat | None:
        return None if self.weight is None else parse_format(self.weight)

    @property
    def grad_format(self) -> FloatFormat | FixedFormat | None:
        return None if self.grad is None else parse_format(self.grad)

    @property
    def state_format(self) -> FloatFormat | FixedFormat | None:
        return None if self.state is None else parse_format(self.state)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimPrecision:
        """From a JSON/YAML mapping; missing keys take their defaults, unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ValueError(f"OptimPrecision takes a mapping, not {data!r}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown OptimPrecision keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML data, canonical (``"bfloat16"`` becomes ``"bf16"``, ``"sr8"`` ``"stochastic:8"``).

        :meth:`from_dict` reads it back to a spec that rounds identically.
        """
        return {
            "weight": _format_str(self.weight, "weight"),
            "grad": _format_str(self.grad, "grad"),
            "state": _format_str(self.state, "state"),
            "update_rounding": str(parse_rounding(self.update_rounding)),
            "state_rounding": str(parse_rounding(self.state_rounding)),
            "master_weights": self.master_weights,
            "kahan": self.kahan,
            "seed": self.seed,
        }


def _check_hyper(value: Any, what: str, low: float = 0.0, high: float | None = None) -> None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{what} must be a number, not a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if not value >= low or (high is not None and not value < high):
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{what} must be {bound}, not {value!r}")


class _QOptimizer(torch.optim.Optimizer):
    """Shared rounding machinery: gradient, states and weight write-back, and the RNG in state_dict."""

    precision: OptimPrecision
    rng: CounterRNG

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], precision: OptimPrecision) -> None:
        if not isinstance(precision, OptimPrecision):
            raise ValueError(f"precision must be an OptimPrecision, not {precision!r}")
        super().__init__(params, defaults)
        self.precision = precision
        source = make_source(precision.seed)
        assert isinstance(source, CounterRNG)  # an int or None always makes a CounterRNG
        self.rng = source

    # --- per-parameter helpers -------------------------------------------------

    def _grad(self, p: torch.Tensor) -> torch.Tensor:
        """``p.grad``, rounded to nearest into the grad format when one is set."""
        grad = p.grad
        assert grad is not None
        if grad.is_sparse:
            raise ValueError(f"{type(self).__name__} does not support sparse gradients")
        if p.dtype != torch.float32 or p.device.type != "cpu":
            raise ValueError(f"{type(self).__name__} takes float32 CPU parameters, not {p.dtype} on {p.device}")
        fmt = self.precision.grad_format
        return grad if fmt is None else quantize_tensor(grad, fmt, "nearest")

    def _weight(self, p: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """The float32 weight the update reads: the master copy (made at the first step) or ``p``."""
        if self.precision.master_weights:
            if "master" not in state:
                state["master"] = p.detach().clone(memory_format=torch.preserve_format)
            return state["master"]
        return p

    def _store_state(self, buf: torch.Tensor) -> None:
        """Round a state tensor in place into the state format (no-op without one)."""
        fmt = self.precision.state_format
        if fmt is not None:
            buf.copy_(quantize_tensor(buf, fmt, self.precision.state_rounding, seed=self.rng))

    def _write(
        self,
        p: torch.Tensor,
        state: dict[str, Any],
        apply: Callable[[torch.Tensor], None],
        increment: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        """Write the new weight back.

        ``apply(w)`` performs torch's own in-place update on ``w``;
        ``increment(w)`` returns the same update as a new tensor ``w_new - w``
        (Kahan reads it, so that small increments are not lost to ``w + inc``).
        """
        prec = self.precision
        fmt = prec.weight_format
        rounding = prec.update_rounding
        if prec.kahan:
            if "kahan_comp" not in state:
                state["kahan_comp"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            comp = state["kahan_comp"]
            y = increment(p).sub_(comp)
            t = p + y
            if fmt is not None:
                t = quantize_tensor(t, fmt, rounding, seed=self.rng)
            comp.copy_((t - p) - y)
            p.copy_(t)
        elif prec.master_weights:
            master = state["master"]
            apply(master)
            p.copy_(master if fmt is None else quantize_tensor(master, fmt, rounding, seed=self.rng))
        elif fmt is None:
            apply(p)
        else:
            w = p.detach().clone(memory_format=torch.preserve_format)
            apply(w)
            p.copy_(quantize_tensor(w, fmt, rounding, seed=self.rng))

    # --- state_dict with the random-number state ---------------------------------

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict plus ``"mpsim"``: the precision and the RNG's seed and offset."""
        sd = super().state_dict()
        sd["mpsim"] = {
            "precision": self.precision.to_dict(),
            "rng_seed": self.rng.seed,
            "rng_offset": self.rng.offset,
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load torch's state and the RNG position; the precision must equal this optimizer's."""
        sd = dict(state_dict)
        extra = sd.pop("mpsim", None)
        if not isinstance(extra, Mapping):
            raise ValueError(
                f"state_dict has no 'mpsim' entry (precision and random-number state); "
                f"it was not saved by a {type(self).__name__}"
            )
        saved = OptimPrecision.from_dict(extra["precision"])
        if saved.to_dict() != self.precision.to_dict():  # canonical: aliases compare equal
            raise ValueError(f"state_dict was saved with precision {saved}, not this optimizer's {self.precision}")
        super().load_state_dict(sd)
        self.rng = CounterRNG(int(extra["rng_seed"]), int(extra["rng_offset"]))


def _evaluate_closure(closure: Callable[[], float] | None) -> float | None:
    """The loss of ``closure`` computed with gradients on, as ``torch.optim`` optimizers do."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class QSGD(_QOptimizer):
    """``torch.optim.SGD`` (momentum, dampening, weight decay, Nesterov) with an :class:`OptimPrecision`.

    State per parameter: ``momentum_buffer`` (in the state format), and
    ``master`` or ``kahan_comp`` (float32) when those are on.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        precision: OptimPrecision | None = None,
    ) -> None:
        _check_hyper(lr, "learning rate")
        _check_hyper(momentum, "momentum")
        _check_hyper(dampening, "dampening")
        _check_hyper(weight_decay, "weight decay")
        if not isinstance(nesterov, bool):
            raise ValueError(f"nesterov must be True or False, not {nesterov!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                "nesterov momentum needs momentum > 0 and dampening 0, "
                f"not momentum={momentum!r}, dampening={dampening!r}"
            )
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults, OptimPrecision() if precision is None else precision)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = _evaluate_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum, dampening = group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad = self._grad(p)
                w = self._weight(p, state)
                # The same float32 operations, in the same order, as torch's _single_tensor_sgd.
                if weight_decay != 0:
                    grad = grad.add(w, alpha=weight_decay)
                if momentum != 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = grad.detach().clone()
                        state["momentum_buffer"] = buf
                    else:
                        buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    self._store_state(buf)
                    grad = grad.add(buf, alpha=momentum) if nesterov else buf
                d = grad
                self._write(p, state, lambda t: t.add_(d, alpha=-lr), lambda t: torch.mul(d, -lr))
        return loss


class QAdam(_QOptimizer):
    """``torch.optim.Adam`` (bias correction, eps, L2 weight decay) with an :class:`OptimPrecision`.

    State per parameter: ``step`` (float32 scalar tensor, as torch), ``exp_avg``
    and ``exp_avg_sq`` (in the state format), and ``master`` or ``kahan_comp``.
    """

    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        precision: OptimPrecision | None = None,
    ) -> None:
        _check_hyper(lr, "learning rate")
        _check_hyper(eps, "epsilon")
        _check_hyper(weight_decay, "weight decay")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers, not {betas!r}")
        _check_hyper(betas[0], "beta1", 0.0, 1.0)
        _check_hyper(betas[1], "beta2", 0.0, 1.0)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults, OptimPrecision() if precision is None else precision)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = _evaluate_closure(closure)
        decoupled = self.decoupled_weight_decay
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad = self._grad(p)
                w = self._weight(p, state)
                if "exp_avg" not in state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                # The same float32 operations, in the same order, as torch's _single_tensor_adam.
                step_t += 1
                if weight_decay != 0 and not decoupled:
                    grad = grad.add(w, alpha=weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                self._store_state(exp_avg)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                self._store_state(exp_avg_sq)
                step = step_t.item()
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
                decay = 1 - lr * weight_decay if decoupled and weight_decay != 0 else None

                # Both closures are called at once by _write, inside this iteration.
                def apply(t: torch.Tensor) -> None:
                    if decay is not None:
                        t.mul_(decay)
                    t.addcdiv_(exp_avg, denom, value=-step_size)

                def increment(t: torch.Tensor) -> torch.Tensor:
                    inc = torch.zeros_like(t).addcdiv_(exp_avg, denom, value=-step_size)
                    if decay is not None:
                        inc.add_(t, alpha=-lr * weight_decay)
                    return inc

                self._write(p, state, apply, increment)
        return loss


class QAdamW(QAdam):
    """``torch.optim.AdamW``: :class:`QAdam` with decoupled weight decay (default 1e-2)."""

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        precision: OptimPrecision | None = None,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, precision=precision)
