"""Sweep plots: accuracy-matrix heatmaps and the accuracy-versus-energy Pareto plot (matplotlib, Agg)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from continual.config import STRATEGIES
from continual.precision import label_order

__all__ = ["pareto_front", "plot_heatmaps", "plot_pareto"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_heatmaps(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """A grid, strategies x precision labels, of mean accuracy matrices (rows: after training on experience i)."""
    plt = _pyplot()
    mats: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for r in results:
        mats[(r["config"]["strategy"], r["label"])].append(np.asarray(r["accuracy_matrix"]))
    strategies = [s for s in STRATEGIES if any(k[0] == s for k in mats)]
    labels = sorted({k[1] for k in mats}, key=label_order)
    fig, axes = plt.subplots(
        len(strategies), len(labels), figsize=(1.5 * len(labels) + 0.8, 1.5 * len(strategies) + 0.6), squeeze=False
    )
    image = None
    for i, strategy in enumerate(strategies):
        for j, label in enumerate(labels):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (strategy, label) not in mats:
                ax.axis("off")
                continue
            mean = np.mean(mats[(strategy, label)], axis=0)
            image = ax.imshow(mean, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_title((f"{label}\n" if i == 0 else "") + f"A={mean[-1].mean():.2f}", fontsize=7)
            if j == 0:
                ax.set_ylabel(strategy, fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="accuracy")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=70, bbox_inches="tight")
    plt.close(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Average accuracy against training energy per (strategy, precision), mean ± std over seeds."""
    plt = _pyplot()
    strategies = [s for s in STRATEGIES if any(r["strategy"] == s for r in rows)]
    labels = sorted({r["label"] for r in rows}, key=label_order)
    colors = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    markers = {lab: "osD^v<>phX*"[i % 11] for i, lab in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        ax.errorbar(
            r["train_energy_uj_mean"],
            r["average_accuracy_mean"],
            yerr=r["average_accuracy_std"] or 0,
            color=colors[r["strategy"]],
            marker=markers[r["label"]],
            markersize=6,
            linestyle="none",
            alpha=0.85,
        )
    learners = [
        r for r in rows if r["strategy"] != "joint"
    ]  # joint training is the offline upper bound, not a contender
    points = [(r["train_energy_uj_mean"], r["average_accuracy_mean"]) for r in learners]
    front = pareto_front(points)
    ax.plot(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        "k--",
        linewidth=1,
        label="Pareto front (without joint)",
    )
    for s in strategies:
        ax.plot([], [], color=colors[s], marker="o", linestyle="none", label=s)
    for lab in labels:
        ax.plot([], [], color="black", marker=markers[lab], markerfacecolor="none", linestyle="none", label=lab)
    ax.set_xscale("log")
    ax.set(
        xlabel="training energy, µJ (Horowitz 45 nm proxy, log scale)",
        ylabel="average accuracy",
        title=title,
        ylim=(0, 1),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
