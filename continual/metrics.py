"""Continual-learning metrics from an accuracy matrix, in plain NumPy.

``R[i, j]`` is the test accuracy on experience ``j`` after training on
experiences ``0..i`` (``T x T``). Definitions:

* average accuracy ``A = mean_j R[T-1, j]``;
* learning accuracy ``mean_j R[j, j]`` (plasticity: how well each task was learnt);
* forgetting (Chaudhry et al., ECCV 2018) ``F = mean_{j<T-1} max_{j<=l<T-1} R[l, j] - R[T-1, j]``;
* backward transfer (Lopez-Paz & Ranzato, NeurIPS 2017) ``BWT = mean_{j<T-1} R[T-1, j] - R[j, j]``;
* forward transfer ``FWT = mean_{j>0} R[j-1, j] - b[j]`` with ``b`` the accuracy
  of the untrained model (same paper).

A single-row matrix (joint training: one model after all the data) has only
an average accuracy; the other metrics are ``None`` there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["average_accuracy", "backward_transfer", "forgetting", "forward_transfer", "learning_accuracy", "summarize"]


def _matrix(r: Sequence[Sequence[float]] | np.ndarray, square: bool = True) -> np.ndarray:
    m = np.asarray(r, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"accuracy matrix must be 2-D and non-empty, not shape {m.shape}")
    if square and m.shape[0] != m.shape[1]:
        raise ValueError(f"accuracy matrix must be square (T x T), not shape {m.shape}")
    if np.isnan(m).any() or (m < 0).any() or (m > 1).any():
        raise ValueError("accuracy matrix entries must be accuracies in [0, 1]")
    return m


def average_accuracy(r: Sequence[Sequence[float]] | np.ndarray) -> float:
    return float(_matrix(r, square=False)[-1].mean())


def learning_accuracy(r: Sequence[Sequence[float]] | np.ndarray) -> float:
    return float(np.diag(_matrix(r)).mean())


def forgetting(r: Sequence[Sequence[float]] | np.ndarray) -> float:
    m = _matrix(r)
    t = m.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([m[j : t - 1, j].max() - m[t - 1, j] for j in range(t - 1)]))


def backward_transfer(r: Sequence[Sequence[float]] | np.ndarray) -> float:
    m = _matrix(r)
    t = m.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([m[t - 1, j] - m[j, j] for j in range(t - 1)]))


def forward_transfer(r: Sequence[Sequence[float]] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> float:
    m = _matrix(r)
    b = np.asarray(baseline, dtype=np.float64)
    if b.shape != (m.shape[0],):
        raise ValueError(f"baseline must hold one accuracy per experience ({m.shape[0]}), not shape {b.shape}")
    t = m.shape[0]
    if t < 2:
        return 0.0
    return float(np.mean([m[j - 1, j] - b[j] for j in range(1, t)]))


def summarize(
    r: Sequence[Sequence[float]] | np.ndarray, baseline: Sequence[float] | np.ndarray | None = None
) -> dict[str, Any]:
    """Every metric above (``None`` where the matrix has a single row, or no baseline for FWT)."""
    m = _matrix(r, square=False)
    out: dict[str, Any] = {"average_accuracy": average_accuracy(m)}
    square = m.shape[0] == m.shape[1] and m.shape[0] > 1
    out["learning_accuracy"] = learning_accuracy(m) if square else None
    out["forgetting"] = forgetting(m) if square else None
    out["backward_transfer"] = backward_transfer(m) if square else None
    out["forward_transfer"] = forward_transfer(m, baseline) if square and baseline is not None else None
    return out
