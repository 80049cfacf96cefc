"""Kernel ridge regression with a Gaussian kernel on standardized features: a smooth correction learnt from residuals.

The cost surrogate's structural models (:mod:`hls_gen.cost_surrogate`) leave
residuals that are not noise: the technology mapper treats some
configurations of a PE better than the terms say, and neighbouring
configurations share that. A Gaussian-process posterior mean (equivalently,
kernel ridge regression) on those residuals moves a prediction towards what
similar configurations measured and, far from every training point, fades to
the residuals' mean: the structural model is what extrapolates.

    prior:      r ~ GP(mean(r), var(r) * exp(-|z - z'|^2 / (2 * length_scale^2)))
    posterior:  r(z) = mean(r) + var(r) * k(z)^T (var(r) * K + noise * I)^-1 (r - mean(r))

with ``z`` the features standardized by the training set's mean and standard
deviation (a feature constant over the training set is ignored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["KernelRidge", "fit_kernel_ridge"]


@dataclass(frozen=True)
class KernelRidge:
    """A fitted correction: ``predict(x)`` is the posterior mean of the residual at feature vector ``x``."""

    features: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]  # 0: constant over the training set, ignored
    points: tuple[tuple[float, ...], ...]  # the training set, standardized
    weights: tuple[float, ...]  # var(r) * (var(r) * K + noise * I)^-1 (r - mean(r))
    mean: float
    length_scale: float
    spread: float  # the residuals' standard deviation

    def _standardized(self, x: Sequence[float]) -> np.ndarray:
        scale = np.array(self.scale)
        safe = np.where(scale > 0, scale, 1.0)
        return np.where(scale > 0, (np.asarray(x, dtype=float) - np.array(self.center)) / safe, 0.0)

    def predict(self, x: Sequence[float]) -> float:
        if not self.points:
            return self.mean
        z = self._standardized(x)
        distance = ((np.array(self.points) - z) ** 2).sum(axis=1)
        return self.mean + float(np.exp(-distance / (2 * self.length_scale**2)) @ np.array(self.weights))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "center": list(self.center),
            "scale": list(self.scale),
            "points": [list(p) for p in self.points],
            "weights": list(self.weights),
            "mean": self.mean,
            "length_scale": self.length_scale,
            "spread": self.spread,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KernelRidge:
        return cls(
            tuple(data["features"]),
            tuple(float(v) for v in data["center"]),
            tuple(float(v) for v in data["scale"]),
            tuple(tuple(float(v) for v in p) for p in data["points"]),
            tuple(float(v) for v in data["weights"]),
            float(data["mean"]),
            float(data["length_scale"]),
            float(data["spread"]),
        )


def fit_kernel_ridge(
    features: Sequence[str],
    x: Sequence[Sequence[float]],
    r: Sequence[float],
    length_scale: float,
    noise: float,
) -> KernelRidge:
    """Fit the posterior mean of residuals ``r`` at feature vectors ``x`` (``noise``: the residuals' own variance
    that no neighbour explains, in the units of ``r`` squared)."""
    if length_scale <= 0 or noise <= 0:
        raise ValueError(f"length scale and noise must be positive, not {length_scale!r} and {noise!r}")
    xs = np.asarray(x, dtype=float).reshape(len(r), len(features))
    rs = np.asarray(r, dtype=float)
    if len(rs) == 0:
        return KernelRidge(
            tuple(features), (0.0,) * len(features), (0.0,) * len(features), (), (), 0.0, length_scale, 0.0
        )
    center = xs.mean(axis=0)
    scale = xs.std(axis=0)
    z = np.where(scale > 0, (xs - center) / np.where(scale > 0, scale, 1.0), 0.0)
    mean = float(rs.mean())
    variance = float(rs.var())
    if variance == 0.0:  # nothing to learn (an exact model, e.g. DSP tiles)
        weights = np.zeros(len(rs))
    else:
        gram = np.exp(-((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=-1) / (2 * length_scale**2))
        weights = variance * np.linalg.solve(variance * gram + noise * np.eye(len(rs)), rs - mean)
    return KernelRidge(
        tuple(features),
        tuple(float(v) for v in center),
        tuple(float(v) for v in scale),
        tuple(tuple(float(v) for v in row) for row in z),
        tuple(float(v) for v in weights),
        mean,
        length_scale,
        float(np.sqrt(variance)),
    )
