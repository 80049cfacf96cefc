"""The settings of a hardware-aware search (``mpsim nas``): benchmark, budget, accuracy estimator, hardware cost.

Values only (no torch, Optuna or Amaranth): the command line builds and checks a :class:`NASConfig` before
anything heavy loads. :func:`config_dict` is the JSON form a study stores and compares on resume.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hls_gen.nas_space import SearchSpace, check_supernet_space

__all__ = [
    "BENCHMARKS",
    "DIRECTIONS",
    "OBJECTIVES",
    "SURROGATE_KAPPA",
    "SURROGATE_WARMUP",
    "Estimator",
    "NASConfig",
    "Pruner",
    "check_choice",
    "config_dict",
    "population_size",
]

BENCHMARKS = ("digits",)
OBJECTIVES = ("accuracy", "latency_us", "energy_uj")
DIRECTIONS = ("maximize", "minimize", "minimize")


SURROGATE_WARMUP = 8  # the surrogate estimator's defaults: trained trials before it decides,
SURROGATE_KAPPA = 1.0  # and its optimism in standard deviations of its prediction


class Estimator(enum.StrEnum):
    """How a trial's accuracy objective is estimated (``mpsim nas --estimator``)."""

    FULL = "full"  # short training for every epoch (the one-epoch hopeless stop aside): test accuracy
    PRUNED = "pruned"  # the same training, stopped after an epoch when the pruner says so
    PROXY = "proxy"  # no training: the gradient norm of the initialised network at its precision
    CURVE = "curve"  # the same training, stopped when its extrapolated final accuracy leaves it dominated
    SUPERNET = "supernet"  # no training per trial: its subnetwork of a weight-sharing supernet trained once
    SURROGATE = "surrogate"  # full training, or none when a regressor on the encoded candidate predicts it dominated


class Pruner(enum.StrEnum):
    """Optuna's pruner of :attr:`Estimator.PRUNED` (``mpsim nas --pruner``)."""

    HYPERBAND = "hyperband"
    HALVING = "halving"  # asynchronous successive halving


def check_choice(value: Any, kind: type[enum.StrEnum], what: str) -> None:
    """A ``ValueError`` naming ``value`` unless it is one of ``kind``'s values (a plain string of one is fine)."""
    if not isinstance(value, str) or value not in {m.value for m in kind}:
        raise ValueError(f"unknown {what} {value!r}: expected one of {', '.join(m.value for m in kind)}")


@dataclass(frozen=True)
class NASConfig:
    """A search: benchmark, trials, training budget and accuracy estimator, clock, storage, seed."""

    benchmark: str = "digits"
    trials: int = 50
    epochs: int = 4
    batch_size: int = 32
    lr: float = 0.05
    proxy_threshold: float | None = 0.5  # after one epoch, stop a trial below this test accuracy
    batch: int = 1  # inference batch the hardware cost is for
    fmax_mhz: float = 25.0  # nominal clock when not synthesizing
    synth: bool = False
    predict: bool = False  # Fmax and resources from the cost surrogate (hls_gen.nas_hw)
    synth_front: bool = False  # with predict: synthesize the arrays of the front after each generation
    sram_bytes: int = 32 * 1024
    seed: int = 0
    storage: str | None = None  # default: sqlite:///OUT/study.db
    study_name: str = "mpsim-nas"
    space: SearchSpace = field(default_factory=SearchSpace)
    estimator: Estimator = Estimator.FULL
    pruner: Pruner | None = None  # the pruned estimator's, and only its
    supernet_epochs: int | None = None  # the supernet estimator's training of its supernets, and only its
    surrogate_warmup: int = SURROGATE_WARMUP  # the surrogate estimator's: trained trials before it decides
    surrogate_kappa: float = SURROGATE_KAPPA  # the surrogate estimator's: optimism, in standard deviations

    def __post_init__(self) -> None:
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"unknown NAS benchmark {self.benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
        check_choice(self.estimator, Estimator, "estimator")
        if self.pruner is not None:
            check_choice(self.pruner, Pruner, "pruner")
        estimator = str(self.estimator)
        if estimator == Estimator.PRUNED and self.pruner is None:
            raise ValueError("estimator 'pruned' needs a pruner: one of hyperband, halving")
        if estimator != Estimator.PRUNED and self.pruner is not None:
            raise ValueError(f"pruner '{self.pruner}' stops trials of estimator 'pruned', not of '{estimator}'")
        if estimator == Estimator.PRUNED and self.epochs < 2:
            raise ValueError(
                f"estimator 'pruned' stops a trial before its last epoch, so it needs epochs >= 2, not {self.epochs}"
            )
        if estimator == Estimator.CURVE and self.epochs < 3:
            raise ValueError(
                f"estimator 'curve' fits epochs 1..k and stops before the last, so it needs epochs >= 3, "
                f"not {self.epochs}"
            )
        if estimator != Estimator.FULL and self.proxy_threshold is not None:
            # the one-epoch stop would be a second early stop beside the pruner's, and the proxy trains no epoch
            raise ValueError(
                f"proxy_threshold is the one-epoch stop of estimator 'full'; estimator '{estimator}' needs None, "
                f"not {self.proxy_threshold!r}"
            )
        if estimator == Estimator.SUPERNET and self.supernet_epochs is None:
            raise ValueError("estimator 'supernet' needs supernet_epochs: the epochs that train its supernets")
        if estimator != Estimator.SUPERNET and self.supernet_epochs is not None:
            raise ValueError(f"supernet_epochs train the supernets of estimator 'supernet', not of '{estimator}'")
        if estimator == Estimator.SUPERNET:
            check_supernet_space(self.space)
        _check_surrogate(self.surrogate_warmup, self.surrogate_kappa, estimator)
        supernet = ("supernet_epochs",) if self.supernet_epochs is not None else ()
        for name in ("trials", "epochs", "batch_size", "batch", *supernet):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.fmax_mhz > 0:
            raise ValueError(f"fmax_mhz must be positive, not {self.fmax_mhz!r}")
        if self.synth and self.predict:
            raise ValueError("synth synthesizes every trial's array and predict predicts it: choose one")
        if self.synth_front and not self.predict:
            raise ValueError("synth_front synthesizes the front the cost surrogate predicts: it needs predict")


def _check_surrogate(warmup: Any, kappa: Any, estimator: str) -> None:
    """The surrogate estimator's settings: valid values, and the defaults for another estimator."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 2:
        raise ValueError(
            f"surrogate_warmup must be an integer >= 2 (the surrogate fits on the trials trained first), not {warmup!r}"
        )
    if isinstance(kappa, bool) or not isinstance(kappa, int | float) or not (math.isfinite(kappa) and kappa >= 0):
        raise ValueError(f"surrogate_kappa must be a finite number >= 0, not {kappa!r}")
    if estimator != Estimator.SURROGATE:
        defaults = (("surrogate_warmup", warmup, SURROGATE_WARMUP), ("surrogate_kappa", kappa, SURROGATE_KAPPA))
        for name, value, default in defaults:
            if value != default:
                raise ValueError(f"{name} {value!r} is a setting of estimator 'surrogate', not of '{estimator}'")


def config_dict(config: NASConfig) -> dict[str, Any]:
    data = asdict(config)
    data["space"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["space"].items()}
    return json.loads(json.dumps(data))


def population_size(config: NASConfig) -> int:
    """The NSGA-II sampler's generation: a fifth to a third of the trials, 4 to 20."""
    return min(20, max(4, config.trials // 3))
