"""Sweep plots: accuracy-matrix heatmaps and the accuracy-versus-energy Pareto plot (matplotlib, Agg)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from continual.config import STRATEGIES
from continual.precision import label_order

__all__ = ["heatmap_figure", "pareto_figure", "pareto_front", "plot_heatmaps", "plot_pareto"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: The smallest figure, in inches (at :data:`DPI`: 640 x 480 pixels), whatever the sweep's size.
MIN_SIZE = (6.4, 4.8)
DPI = 100


def heatmap_figure(results: list[dict[str, Any]], title: str) -> Any:
    """A grid, strategies x precision labels, of mean accuracy matrices.

    In each cell, row ``i`` is the model after training up to experience
    ``i`` and column ``j`` its accuracy on experience ``j``; the cell's title
    gives the final average accuracy ``A``. Constrained layout keeps the
    title, labels and colour bar apart at any grid size.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    mats: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for r in results:
        mats[(r["config"]["strategy"], r["label"])].append(np.asarray(r["accuracy_matrix"]))
    strategies = [s for s in STRATEGIES if any(k[0] == s for k in mats)]
    labels = sorted({k[1] for k in mats}, key=label_order)
    size = (max(MIN_SIZE[0], 2.3 * len(labels) + 2.0), max(MIN_SIZE[1], 2.0 * len(strategies) + 1.4))
    fig, axes = plt.subplots(len(strategies), len(labels), figsize=size, squeeze=False, layout="constrained")
    image = None
    for i, strategy in enumerate(strategies):
        for j, label in enumerate(labels):
            ax = axes[i][j]
            if (strategy, label) not in mats:
                ax.axis("off")
                continue
            mean = np.mean(mats[(strategy, label)], axis=0)
            image = ax.imshow(mean, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.tick_params(labelsize=8)
            ax.set_title((f"{label}\n" if i == 0 else "") + f"A = {mean[-1].mean():.2f}", fontsize=9)
            if i == len(strategies) - 1:
                ax.set_xlabel("evaluated on experience", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{strategy}\ntrained up to experience", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="accuracy (fraction correct)")
    fig.suptitle(title, fontsize=11)
    return fig


def plot_heatmaps(results: list[dict[str, Any]], path: Path, title: str) -> None:
    """:func:`heatmap_figure` as a PNG."""
    plt = _pyplot()
    fig = heatmap_figure(results, title)
    fig.savefig(path, dpi=DPI)
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
    """:func:`pareto_figure` as a PNG."""
    plt = _pyplot()
    fig = pareto_figure(rows, title)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def pareto_figure(rows: list[dict[str, Any]], title: str) -> Any:
    """Average accuracy against training energy per (strategy, precision), mean ± std over seeds; the front dashed."""
    plt = _pyplot()
    strategies = [s for s in STRATEGIES if any(r["strategy"] == s for r in rows)]
    labels = sorted({r["label"] for r in rows}, key=label_order)
    colors = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    markers = {lab: "osD^v<>phX*"[i % 11] for i, lab in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(max(MIN_SIZE[0], 8.0), max(MIN_SIZE[1], 5.0)), layout="constrained")
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
    learners = [r for r in rows if r["strategy"] != "joint"]  # joint training is the offline upper bound
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
        ylabel="average accuracy (fraction correct)",
        title=title,
        ylim=(0, 1),
    )
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside right center")
    return fig
