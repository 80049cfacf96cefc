"""What the NAS benchmarks share: the scaled hypervolume of every run's fronts, a Markdown table, the plot of each
run's hypervolume against trials and against what it spent, a report's tool seconds.

The benchmarks run as scripts (``python benchmarks/NAME.py``), whose folder is then first on ``sys.path``, so they
import this module by its name.
"""

from __future__ import annotations

import statistics
from typing import Any

from hls_gen.hypervolume import hypervolume

__all__ = ["md_table", "plot_runs", "score_hypervolumes", "tool_seconds"]


def tool_seconds(report: Any) -> float:
    """Seconds the tools took for a :class:`hls_gen.synth.ResourceReport`: synthesis and place and route."""
    return report.synth_seconds + (report.pnr_seconds or 0.0)


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


def plot_runs(
    runs: list[dict[str, Any]], key: str, spent_key: str, path: Any, *, measure: str, spent: str, note: str, title: str
) -> None:
    """Left: hypervolume against trials per ``run[key]`` (the mean over its runs, the band lowest to highest).
    Right: each run's final hypervolume against what it spent (its last checkpoint's ``spent_key``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r[key] for r in runs))
    seeds = list(dict.fromkeys(r["seed"] for r in runs))
    colours = {n: plt.get_cmap("tab10")(i) for i, n in enumerate(names)}
    markers = dict(zip(seeds, "osD^vP*X"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13.5, 4.8), layout="constrained")
    for name in names:
        mine = [r["checkpoints"] for r in runs if r[key] == name]
        trials = [c["trials"] for c in mine[0]]
        volumes = [[cps[i]["hypervolume"] for cps in mine] for i in range(min(map(len, mine)))]
        left.plot(trials[: len(volumes)], [statistics.mean(v) for v in volumes], color=colours[name], marker="o",
                  label=name)  # fmt: skip
        left.fill_between(trials[: len(volumes)], [min(v) for v in volumes], [max(v) for v in volumes],
                          color=colours[name], alpha=0.12)  # fmt: skip
    for run in runs:
        last = run["checkpoints"][-1]
        right.scatter(last[spent_key], last["hypervolume"], color=colours[run[key]], marker=markers[run["seed"]],
                      s=60, label=f"{run[key]}, seed {run['seed']}")  # fmt: skip
    left.set(xlabel="trials", ylabel=f"hypervolume of the found front ({measure})")
    left.set_title(f"mean over {len(seeds)} seed(s); band: lowest to highest", fontsize=9)
    right.set(xlabel=spent, ylabel="final hypervolume")
    right.set_title(note, fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
