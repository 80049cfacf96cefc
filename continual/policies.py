"""Precision-switching policies: which :class:`~continual.precision.CLPrecision` to train in, and when to change.

A policy is plain Python, usable without Avalanche: it is told when an
experience starts (:meth:`PrecisionPolicy.on_experience`) and what each
training batch measured (:meth:`PrecisionPolicy.on_batch` with
:class:`BatchSignals`), and answers with a :class:`Switch` or ``None``.
:class:`~continual.PrecisionPlugin` applies the switch and logs it.

* :class:`FixedPolicy` -- one precision throughout.
* :class:`SchedulePolicy` -- a precision per experience (the last one repeats).
* :class:`AdaptivePolicy` -- task-aware: it measures the share of
  backpropagated errors that ``low``'s gradient format would lose
  (:class:`ErrorMonitor`) on each new experience's first batches and on
  every batch after, and trains in ``low`` while that share is small and the
  loss has no spike, in ``high`` otherwise (with a cool-down).

Policy specs (``mpsim cl --policy``): ``fixed``; ``schedule`` (the first
experience in bf16, the rest in the run's precision) or ``schedule:P0,P1,...``;
``adaptive`` (bf16 <-> the run's precision) or ``adaptive:HIGH``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mpsim  # its numerics load on first use (mpsim.__getattr__): the CLI's parsers stay light
from continual.precision import CLPrecision, parse_cl_precision
from mpsim.formats import parse_format
from mpsim.mx import is_mx_spec, parse_mx_format

if TYPE_CHECKING:
    import torch

__all__ = [
    "POLICY_KINDS",
    "AdaptivePolicy",
    "AdaptiveSettings",
    "BatchSignals",
    "ErrorMonitor",
    "FixedPolicy",
    "PrecisionPolicy",
    "SchedulePolicy",
    "Switch",
    "error_format",
    "make_policy",
]

POLICY_KINDS = ("fixed", "schedule", "adaptive")
DEFAULT_HIGH = "bf16"


@dataclass(frozen=True)
class BatchSignals:
    """What a training batch measured: its loss and the share of backpropagated errors lost to the monitored format."""

    loss: float
    error_underflow: float = 0.0  # nonzero errors that round to zero, as a fraction of nonzero errors
    error_overflow: float = 0.0  # errors beyond the format's max, same denominator

    @property
    def error_lost(self) -> float:
        return self.error_underflow + self.error_overflow


@dataclass(frozen=True)
class Switch:
    """A policy's decision: train in ``to`` from now on, because of ``reason``."""

    to: CLPrecision
    reason: str


def error_format(precision: CLPrecision) -> str | None:
    """The format a precision's backpropagated errors enter its GEMMs in: the ``grad`` tensor's, or for an MX
    precision (fp32 tensors) the MX format its input-gradient GEMM blocks them in; ``None``: fp32."""
    layer = precision.layers.default
    mx = layer.grad_input.mx_formats if layer.grad_input.emulate else None
    return str(mx[0]) if mx is not None and layer.grad.format is None else layer.grad.format


class ErrorMonitor:
    """Counts backpropagated errors (gradients w.r.t. layer outputs) that a format would flush to zero or overflow.

    Underflow: ``0 < |g| < smallest_subnormal / 2`` (round to nearest gives 0);
    overflow: ``|g| > max``. The denominator is the count of nonzero errors.
    An MX format (:func:`error_format`) scales each block of 32 errors by its
    largest: underflow is then a nonzero error that :func:`mpsim.quantize_mx`
    flushes to zero in its block, blocked as the input-gradient GEMM blocks
    it (along the output features: a linear layer's last axis, a
    convolution's channels), and nothing overflows (elements saturate;
    only an infinite error is counted).
    """

    def __init__(self, fmt: str | None) -> None:
        self.mx = fmt is not None and is_mx_spec(fmt)
        self.format = None if fmt is None else (parse_mx_format(fmt) if self.mx else parse_format(fmt))
        self.reset()

    def reset(self) -> None:
        self.nonzero = self.underflow = self.overflow = 0

    def observe(self, grad: torch.Tensor) -> None:
        """Count the errors of ``grad`` (detached: nothing here is differentiated)."""
        if self.format is None:
            return
        g = grad.detach()
        mag = g.abs()
        nonzero = mag > 0
        self.nonzero += int(nonzero.sum())
        if self.mx:
            axis = 1 if g.dim() == 4 else -1  # (B, C, H, W) errors of a convolution: blocked along C
            flushed = mpsim.quantize_mx(g.float().contiguous(), self.format, axis=axis) == 0
            self.underflow += int((nonzero & flushed).sum())
            self.overflow += int(g.isinf().sum())
            return
        self.underflow += int((nonzero & (mag < self.format.smallest_subnormal / 2)).sum())
        self.overflow += int((mag > self.format.max).sum())

    def rates(self) -> tuple[float, float]:
        if self.nonzero == 0:
            return 0.0, 0.0
        return self.underflow / self.nonzero, self.overflow / self.nonzero


class PrecisionPolicy(ABC):
    """Chooses the precision; :attr:`current` is the one in force."""

    current: CLPrecision

    @property
    @abstractmethod
    def label(self) -> str:
        """Short name for results tables."""

    def monitored(self) -> CLPrecision:
        """The precision whose gradient format the :class:`ErrorMonitor` measures against."""
        return self.current

    def precisions(self) -> tuple[CLPrecision, ...]:
        """Every precision the policy may put in force (a hardware backend checks it can run each up front)."""
        return (self.current,)

    def on_experience(self, index: int) -> Switch | None:
        """Experience ``index`` (0-based) starts training."""
        return None

    def on_batch(self, signals: BatchSignals) -> Switch | None:
        """A training batch finished (after the weight update)."""
        return None

    def _switch(self, to: CLPrecision, reason: str) -> Switch | None:
        if to == self.current:
            return None
        self.current = to
        return Switch(to, reason)


class FixedPolicy(PrecisionPolicy):
    """One precision throughout."""

    def __init__(self, precision: str | CLPrecision) -> None:
        self.current = parse_cl_precision(precision)

    @property
    def label(self) -> str:
        return self.current.name


class SchedulePolicy(PrecisionPolicy):
    """Precision ``schedule[i]`` for experience ``i``; the last entry repeats."""

    def __init__(self, schedule: Sequence[str | CLPrecision]) -> None:
        if isinstance(schedule, str) or not schedule:
            raise ValueError(f"schedule must be a non-empty sequence of precisions, not {schedule!r}")
        self.schedule = tuple(parse_cl_precision(p) for p in schedule)
        self.current = self.schedule[0]

    @property
    def label(self) -> str:
        return "schedule:" + ",".join(p.name for p in self.schedule)

    def precisions(self) -> tuple[CLPrecision, ...]:
        return tuple(dict.fromkeys(self.schedule))

    def on_experience(self, index: int) -> Switch | None:
        chosen = self.schedule[min(index, len(self.schedule) - 1)]
        return self._switch(chosen, f"schedule: experience {index} in {chosen.name}")


@dataclass(frozen=True)
class AdaptiveSettings:
    """Thresholds of :class:`AdaptivePolicy`."""

    warmup_batches: int = 5  # first batches of each experience in `high`, measuring the new data
    error_limit: float = 0.2  # share of errors lost in `low`'s grad format above which `low` is unsafe
    error_decay: float = 0.8  # running mean of that share (one batch is noisy)
    spike_factor: float = 2.0  # in `low`, loss > factor * running mean ...
    spike_min_delta: float = 0.1  # ... and above it by this much is a spike
    loss_decay: float = 0.9  # running mean of the loss
    cooldown_batches: int = 10  # batches in `high` after leaving `low`, before it may go back

    def __post_init__(self) -> None:
        for name in ("warmup_batches", "cooldown_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, not {value!r}")
        for name in ("error_limit",):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], not {value!r}")
        for name in ("error_decay", "loss_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), not {value!r}")
        if (
            isinstance(self.spike_factor, bool)
            or not isinstance(self.spike_factor, (int, float))
            or self.spike_factor < 1
        ):
            raise ValueError(f"spike_factor must be a number >= 1, not {self.spike_factor!r}")
        if (
            isinstance(self.spike_min_delta, bool)
            or not isinstance(self.spike_min_delta, (int, float))
            or self.spike_min_delta < 0
        ):
            raise ValueError(f"spike_min_delta must be a number >= 0, not {self.spike_min_delta!r}")


class AdaptivePolicy(PrecisionPolicy):
    """Task-aware switching between a ``high`` and a ``low`` precision, driven by what it measures.

    Low-precision backpropagation fails where the errors get small: once a
    task is learnt, e5m2 flushes most of them to zero (no loss scaling). So:

    * each experience starts with ``warmup_batches`` in ``high`` while the
      policy measures, on the new data, the share of errors ``low``'s gradient
      format would lose (:class:`ErrorMonitor`, measured in every precision);
    * it trains in ``low`` while the running mean of that share stays at or
      under ``error_limit`` and the loss shows no spike (a loss above
      ``spike_factor`` times its running mean, or not finite);
    * it goes back to ``high`` when either alarm fires, and stays there at
      least ``cooldown_batches`` before it may go low again.
    """

    def __init__(
        self,
        low: str | CLPrecision,
        high: str | CLPrecision = DEFAULT_HIGH,
        settings: AdaptiveSettings | None = None,
    ) -> None:
        self.low = parse_cl_precision(low)
        self.high = parse_cl_precision(high)
        if self.low == self.high:
            raise ValueError(f"adaptive policy needs two different precisions, not {self.low.name!r} twice")
        self.settings = settings or AdaptiveSettings()
        self.current = self.high
        self._reset()

    def _reset(self) -> None:
        self.batches = 0  # in this experience
        self.hold = 0
        self.loss_ema: float | None = None
        self.lost_ema: float | None = None

    @property
    def label(self) -> str:
        return f"adaptive:{self.high.name}" if self.high.name != DEFAULT_HIGH else "adaptive"

    def monitored(self) -> CLPrecision:
        return self.low  # what would be lost in `low`, measured also while training in `high`

    def precisions(self) -> tuple[CLPrecision, ...]:
        return (self.high, self.low)

    def on_experience(self, index: int) -> Switch | None:
        self._reset()
        return self._switch(
            self.high,
            f"experience {index} starts: {self.settings.warmup_batches} batches in {self.high.name} to measure it",
        )

    def on_batch(self, signals: BatchSignals) -> Switch | None:
        s = self.settings
        self.batches += 1
        loss, ema = signals.loss, self.loss_ema
        spike: str | None = None
        if not math.isfinite(loss):
            spike = f"non-finite loss {loss}"
        elif ema is not None and loss > s.spike_factor * ema and loss - ema > s.spike_min_delta:
            spike = f"loss spike: {loss:.4g} > {s.spike_factor} x running mean {ema:.4g}"
        if math.isfinite(loss):
            self.loss_ema = loss if ema is None else s.loss_decay * ema + (1 - s.loss_decay) * loss
        lost = (
            signals.error_lost
            if self.lost_ema is None
            else s.error_decay * self.lost_ema + (1 - s.error_decay) * signals.error_lost
        )
        self.lost_ema = lost
        grad_fmt = error_format(self.low) or "fp32"
        if self.current == self.low:
            if spike is not None:
                self.hold = s.cooldown_batches
                return self._switch(self.high, spike)
            if lost > s.error_limit:
                self.hold = s.cooldown_batches
                return self._switch(
                    self.high, f"errors lost in {grad_fmt}: {lost:.1%} > {s.error_limit:.1%} (running mean)"
                )
            return None
        if self.hold > 0:
            self.hold -= 1
            return None
        if self.batches >= s.warmup_batches and spike is None and lost <= s.error_limit:
            return self._switch(
                self.low,
                f"errors lost in {grad_fmt}: {lost:.1%} <= {s.error_limit:.1%} (running mean), loss {loss:.4g}",
            )
        return None


def make_policy(kind: str, precision: str | CLPrecision, settings: AdaptiveSettings | None = None) -> PrecisionPolicy:
    """A policy from a spec (see module doc) and the run's precision."""
    if not isinstance(kind, str):
        raise ValueError(f"policy must be a string, not {kind!r}")
    head, _, arg = kind.partition(":")
    if head == "fixed" and not arg:
        return FixedPolicy(precision)
    if head == "schedule":
        if not arg:
            return SchedulePolicy([DEFAULT_HIGH, precision])
        return SchedulePolicy([p.strip() for p in arg.split(",")])
    if head == "adaptive":
        return AdaptivePolicy(precision, arg or DEFAULT_HIGH, settings)
    raise ValueError(
        f"unknown policy {kind!r}: expected fixed, schedule, schedule:P0,P1,..., adaptive or adaptive:HIGH"
    )
