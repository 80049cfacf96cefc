"""What the NAS benchmarks share: the scaled hypervolume of every run's fronts, a Markdown table, the mean-and-band
plot of hypervolume against trials.

The benchmarks run as scripts (``python benchmarks/NAME.py``), whose folder is then first on ``sys.path``, so they
import this module by its name.
"""

from __future__ import annotations

import statistics
from typing import Any

from hls_gen.hypervolume import hypervolume

__all__ = ["md_table", "plot_mean_band", "score_hypervolumes"]


def score_hypervolumes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Set ``hypervolume`` in every checkpoint of ``runs`` (each with ``points``, all objectives minimised).

    Each objective is scaled to [0, 1] over every front point of every run (the ideal 0, the worst 1), so that no
    objective's units weigh more than another's; the reference is 1.1 in each and the volume a fraction of
    ``1.1 ** d``. Returns the scaling (ideal, worst, reference).
    """
    every_point = [p for r in runs for c in r["checkpoints"] for p in c["points"]]
    dims = len(every_point[0])
    low = [min(p[i] for p in every_point) for i in range(dims)]
    high = [max(p[i] for p in every_point) for i in range(dims)]

    def scaled(point: list[float]) -> list[float]:
        return [(v - lo) / (hi - lo) if hi > lo else 0.0 for v, lo, hi in zip(point, low, high)]

    for run in runs:
        for c in run["checkpoints"]:
            c["hypervolume"] = hypervolume([scaled(p) for p in c["points"]], [1.1] * dims) / 1.1**dims
    return {"ideal": low, "worst": high, "reference": 1.1}


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def plot_mean_band(ax: Any, runs: list[dict[str, Any]], key: str, colours: dict[str, Any]) -> None:
    """Hypervolume against trials per ``run[key]``: the mean over its runs, the band from lowest to highest."""
    for name in dict.fromkeys(r[key] for r in runs):
        mine = [r["checkpoints"] for r in runs if r[key] == name]
        trials = [c["trials"] for c in mine[0]]
        volumes = [[cps[i]["hypervolume"] for cps in mine] for i in range(min(map(len, mine)))]
        ax.plot(trials[: len(volumes)], [statistics.mean(v) for v in volumes], color=colours[name], marker="o",
                label=name)  # fmt: skip
        ax.fill_between(trials[: len(volumes)], [min(v) for v in volumes], [max(v) for v in volumes],
                        color=colours[name], alpha=0.12)  # fmt: skip
