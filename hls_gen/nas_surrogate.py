"""The ``surrogate`` accuracy estimator of ``mpsim nas``: a regressor on the encoded candidate decides what trains.

A candidate is encoded (:func:`encode`) as a fixed-length vector that depends only on the
:class:`~hls_gen.nas_space.SearchSpace`: the architecture, depth, per layer its shape and its operand format,
accumulator and rounding, and the array. :class:`AccuracySurrogate`, a bootstrap ensemble of ridge regressions
(seeded), maps that vector to test accuracy with a spread across its members as its uncertainty.

:func:`decide` is the rule: while the study holds fewer than ``warmup`` trained trials, a candidate trains; after
that the surrogate is fitted on every trained trial in the storage (refitted at each decision, nothing kept in
memory, so workers sharing a study and a resumed study see the same trials) and the candidate is skipped, not
trained, when its optimistic accuracy ``mean + kappa * std`` at its latency and energy is dominated by a trained
trial. :func:`surrogate_training` wires the rule into a trial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hls_gen.nas_config import SURROGATE_KAPPA, SURROGATE_WARMUP, NASConfig
from hls_gen.nas_model import Candidate, train_accuracy
from hls_gen.nas_space import SearchSpace
from hls_gen.pareto import dominates

if TYPE_CHECKING:
    import numpy as np
    import optuna


__all__ = [
    "KAPPA",
    "MEMBERS",
    "RIDGE",
    "WARMUP",
    "AccuracySurrogate",
    "Decision",
    "NoData",
    "Trained",
    "decide",
    "encode",
    "feature_names",
    "prediction_error",
    "surrogate_training",
    "trained_trials",
]

WARMUP = SURROGATE_WARMUP  # trained trials before the surrogate decides (NASConfig.surrogate_warmup)
KAPPA = SURROGATE_KAPPA  # standard deviations of optimism (NASConfig.surrogate_kappa)
MEMBERS = 16  # ridge regressions in the bootstrap ensemble
RIDGE = 1.0  # their L2 penalty, on standardised features

#: The features of one layer slot, in order.
LAYER_FEATURES = (
    "present",
    "conv",
    "out",
    "kernel",
    "mul_exp",
    "mul_man",
    "mul_block",  # MX block size, 0 for an element format
    "mul_choice",  # the operand format's place in the space's list: tells apart formats of equal widths
    "acc_exp",
    "acc_man",
    "acc_choice",
    "rounding_bits",  # K of stochastic:K, 0 for nearest (and for exact stochastic rounding)
    "rounding_choice",
)


class NoData(ValueError):
    """The surrogate was asked to fit or predict without the trained trials it needs."""


def feature_names(space: SearchSpace) -> tuple[str, ...]:
    """The name of each entry of :func:`encode`'s vector for ``space``: hidden-layer slots ``0 ..
    max_layers - 2``, then the classifier's slot ``out``."""
    slots = [str(i) for i in range(space.max_layers - 1)] + ["out"]
    return (
        *(f"arch={a}" for a in space.archs),
        "depth",
        *(f"layer{s}.{f}" for s in slots for f in LAYER_FEATURES),
        "array_rows",
        "array_cols",
        "interleave",
        "pipeline",
    )


def encode(candidate: Candidate, space: SearchSpace) -> tuple[float, ...]:
    """The candidate as :func:`feature_names`' numbers: the same candidate the same vector in any process,
    distinct candidates of ``space`` distinct vectors (a layer's stride and padding follow from its kernel and
    place, its operand, accumulator and rounding from their place in the space's lists)."""
    from mpsim.formats import parse_format
    from mpsim.mx import is_mx_spec, parse_mx_format
    from mpsim.rounding import parse_rounding

    layers = candidate.network.layers
    hidden, classifier = layers[:-1], layers[-1]
    slots: list[Any] = [None] * (space.max_layers - 1)
    slots[: len(hidden)] = hidden
    values: list[float] = [float(candidate.arch == a) for a in space.archs]
    values.append(float(len(hidden)))
    for layer in (*slots, classifier):
        if layer is None:
            values += [0.0] * len(LAYER_FEATURES)
            continue
        mul, acc, rounding = layer.mul or "e4m3", layer.acc or "fp32", layer.rounding or "nearest"
        if is_mx_spec(mul):
            mx = parse_mx_format(mul)
            element, block = mx.element, mx.block_size
        else:
            element, block = parse_format(mul), 0
        mul_exp = getattr(element, "exp_bits", 0)
        mul_man = getattr(element, "man_bits", getattr(element, "frac_bits", 0))
        acc_format = parse_format(acc)
        bits = parse_rounding(rounding).rand_bits or 0
        values += [
            1.0,
            float(layer.kind == "Conv2d"),
            float(layer.out),
            float(layer.kernel[0]) if layer.kind == "Conv2d" else 0.0,
            float(mul_exp),
            float(mul_man),
            float(block),
            float(_place(mul, space.mul)),
            float(acc_format.exp_bits),
            float(acc_format.man_bits),
            float(_place(acc, space.accs)),
            float(bits),
            float(_place(rounding, space.roundings)),
        ]
    values += [float(candidate.array[0]), float(candidate.array[1])]
    values += [float(candidate.interleave), float(candidate.pipeline)]
    return tuple(values)


def _place(value: str, options: tuple[str, ...]) -> int:
    """1-based place of ``value`` in ``options`` (0 when it is not there: the network's default)."""
    return options.index(value) + 1 if value in options else 0


@dataclass(frozen=True)
class AccuracySurrogate:
    """A bootstrap ensemble of ridge regressions from encoded candidates to accuracy.

    Features are standardised by the training set's mean and spread (a constant feature is left out: its
    spread is 0); each member is ridge regression with penalty ``alpha`` on a bootstrap resample of the trials,
    drawn from ``numpy.random.default_rng(seed)``. :meth:`predict` gives the members' mean and their standard
    deviation, which grows away from the data, where the members' slopes disagree most.
    """

    mean: Any  # feature means
    scale: Any  # feature spreads (1 where constant)
    weights: Any  # (members, features)
    intercepts: Any  # (members,)
    fitted_on: int

    @classmethod
    def fit(
        cls,
        x: Sequence[Sequence[float]],
        y: Sequence[float],
        *,
        seed: int | Sequence[int] = 0,
        members: int = MEMBERS,
        alpha: float = RIDGE,
    ) -> AccuracySurrogate:
        import numpy as np

        if len(y) < 2:
            raise NoData(f"accuracy surrogate has no trained trials to fit (need >= 2, got {len(y)})")
        xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if xs.ndim != 2 or len(xs) != len(ys):
            raise ValueError(f"accuracy surrogate needs one feature row per accuracy, not {xs.shape} for {len(ys)}")
        mean, scale = xs.mean(axis=0), xs.std(axis=0)
        scale[scale == 0] = 1.0
        z = (xs - mean) / scale
        rng = np.random.default_rng(seed)
        weights, intercepts = [], []
        for _ in range(members):
            pick = rng.integers(0, len(ys), len(ys))
            zb, yb = z[pick], ys[pick]
            centre_z, centre_y = zb.mean(axis=0), yb.mean()
            zc = zb - centre_z
            w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ (yb - centre_y))
            weights.append(w)
            intercepts.append(centre_y - centre_z @ w)
        return cls(mean, scale, np.array(weights), np.array(intercepts), len(ys))

    def predict(self, x: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) over the members of the predicted accuracy of each row of ``x``."""
        import numpy as np

        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        each = z @ self.weights.T + self.intercepts  # (rows, members)
        return each.mean(axis=1), each.std(axis=1)


@dataclass(frozen=True)
class Trained:
    """A trained trial as the surrogate reads it: its encoding and objectives."""

    number: int
    encoding: tuple[float, ...]
    objectives: tuple[float, float, float]  # accuracy, latency, energy


@dataclass(frozen=True)
class Decision:
    """Whether a candidate trains: ``fitted_on`` trained trials fitted (0 in the warm-up, no prediction then);
    the prediction (accuracy clipped to [0, 1], std) and the trained trial whose objectives dominate its
    optimistic point when it is skipped."""

    train: bool
    fitted_on: int
    predicted: float | None = None
    std: float | None = None
    dominated_by: int | None = None


def decide(
    encoding: Sequence[float],
    cost: tuple[float, float],
    trained: Sequence[Trained],
    *,
    warmup: int = WARMUP,
    kappa: float = KAPPA,
    seed: int | Sequence[int] = 0,
) -> Decision:
    """Train while fewer than ``warmup`` trials are trained; then skip the candidate (latency and energy ``cost``)
    when some trained trial dominates (``mean + kappa * std``, *cost) of the surrogate fitted on all of them."""
    if len(trained) < warmup:
        return Decision(train=True, fitted_on=0)
    surrogate = AccuracySurrogate.fit([t.encoding for t in trained], [t.objectives[0] for t in trained], seed=seed)
    means, stds = surrogate.predict([encoding])
    mean, std = float(means[0]), float(stds[0])
    optimistic = (mean + kappa * std, *cost)
    by = [t.number for t in trained if dominates(t.objectives, optimistic)]
    predicted = min(1.0, max(0.0, mean))
    return Decision(
        train=not by, fitted_on=len(trained), predicted=predicted, std=std, dominated_by=min(by, default=None)
    )


def trained_trials(study: optuna.Study) -> list[Trained]:
    """The study's complete trials that carry an encoding (the surrogate estimator's trained ones), read from its
    storage now: another worker's trial counts as soon as it is complete."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [
        Trained(t.number, tuple(t.user_attrs["encoding"]), tuple(t.values))  # type: ignore[arg-type]
        for t in complete
        if "encoding" in t.user_attrs
    ]


def surrogate_training(
    candidate: Candidate, config: NASConfig, data: Any, trial: optuna.trial.Trial, cost: tuple[float, float]
) -> tuple[float, int, float, bool]:
    """:func:`decide` for the trial's candidate, then full training or none: (accuracy, epochs, seconds, skipped).

    A skipped trial's accuracy is the surrogate's prediction (it is stored as pruned, off the front). The
    trial's ``encoding``, ``surrogate_fitted_on`` and, once the surrogate predicts, ``predicted_accuracy``,
    ``predicted_std`` (and ``dominated_by`` when skipped) go in its attributes. The ensemble's seed is
    ``(config.seed, trial.number)``.
    """
    encoding = encode(candidate, config.space)
    trial.set_user_attr("encoding", list(encoding))
    decision = decide(
        encoding,
        cost,
        trained_trials(trial.study),
        warmup=config.surrogate_warmup,
        kappa=config.surrogate_kappa,
        seed=(config.seed, trial.number),
    )
    trial.set_user_attr("surrogate_fitted_on", decision.fitted_on)
    if decision.predicted is not None:
        trial.set_user_attr("predicted_accuracy", decision.predicted)
        trial.set_user_attr("predicted_std", decision.std)
    if not decision.train:
        trial.set_user_attr("dominated_by", decision.dominated_by)
        return decision.predicted, 0, 0.0, True  # type: ignore[return-value]
    accuracy, epochs, seconds = train_accuracy(candidate.network, config, data)
    return accuracy, epochs, seconds, False


def prediction_error(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The surrogate's error on the trials it predicted and that then trained: their count, the mean and the
    largest absolute difference between predicted and trained accuracy (None when there are none)."""
    pairs = [
        (r["predicted_accuracy"], r["accuracy"])
        for r in rows
        if not r["pruned"] and _number(r.get("predicted_accuracy"))
    ]
    if not pairs:
        return None
    errors = [abs(p - a) for p, a in pairs]
    return {"trials": len(errors), "mean_absolute": sum(errors) / len(errors), "max_absolute": max(errors)}


def _number(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value)
