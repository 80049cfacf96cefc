"""Sweep report: a results table (CSV and Markdown, mean and spread over seeds) and plots.

From every run under ``OUT/runs``: ``results.csv`` (one row per benchmark,
scenario, strategy and precision label), ``results.md`` (per benchmark and
scenario: average accuracy, forgetting and training energy, strategies x
precisions, ``mean ± std`` over seeds), and per benchmark and scenario
``heatmaps_*.png`` (mean accuracy matrix of every cell) and ``pareto_*.png``
(average accuracy against training energy, the non-dominated points joined).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from continual.config import STRATEGIES, STRATEGY_FAMILY
from continual.plots import plot_heatmaps, plot_pareto
from continual.precision import label_order

__all__ = ["aggregate", "load_results", "markdown_tables", "write_report"]

_METRICS = ("average_accuracy", "forgetting", "backward_transfer", "forward_transfer", "learning_accuracy")


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def load_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run under ``out_dir/runs``, in file-name order."""
    runs = Path(out_dir) / "runs"
    results = []
    for path in sorted(runs.glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            continue
    return results


def aggregate(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (benchmark, scenario, strategy, label): mean and sample std over seeds."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        c = r["config"]
        groups[(c["benchmark"], c["scenario"], c["strategy"], r["label"])].append(r)
    rows = []
    for (bench, scenario, strategy, label), runs in groups.items():
        row: dict[str, Any] = {
            "benchmark": bench,
            "scenario": scenario,
            "strategy": strategy,
            "family": STRATEGY_FAMILY[strategy],
            "label": label,
            "precision": runs[0]["config"]["precision"],
            "policy": runs[0]["config"]["policy"],
            "seeds": len(runs),
        }
        for metric in _METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std([r[metric] for r in runs])
        for key in ("macs", "bit_ops", "energy_uj"):
            row[f"train_{key}_mean"], row[f"train_{key}_std"] = _mean_std([r["cost"]["train"][key] for r in runs])
        # share of training batches in the run's own precision (1 for fixed policies; the low share for adaptive ones)
        shares = [
            r["precision_batches"].get(r["config"]["precision"], 0) / max(1, sum(r["precision_batches"].values()))
            for r in runs
        ]
        row["precision_share"] = float(np.mean(shares))
        row["switches_mean"] = float(np.mean([len(r["switches"]) for r in runs]))
        row["wall_seconds_mean"], _ = _mean_std([r["wall_seconds"] for r in runs])
        rows.append(row)
    order = {s: i for i, s in enumerate(STRATEGIES)}
    rows.sort(key=lambda r: (r["benchmark"], r["scenario"], order[r["strategy"]], label_order(r["label"])))
    return rows


def _cell(mean: float | None, std: float | None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_tables(rows: list[dict[str, Any]]) -> str:
    """Per benchmark and scenario: accuracy, forgetting and energy tables, strategies x precision labels."""
    out = io.StringIO()
    by_bench: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_bench[(row["benchmark"], row["scenario"])].append(row)
    for (bench, scenario), group in by_bench.items():
        labels = sorted({r["label"] for r in group}, key=label_order)
        strategies = [s for s in STRATEGIES if any(r["strategy"] == s for r in group)]
        cells = {(r["strategy"], r["label"]): r for r in group}
        seeds = sorted({r["seeds"] for r in group})
        kind = "task" if scenario == "task" else "domain" if bench.startswith("permuted") else "class"
        out.write(f"### {bench}, {kind}-incremental ({'/'.join(map(str, seeds))} seeds, mean ± std)\n\n")
        for title, key, digits in (
            ("Average accuracy", "average_accuracy", 3),
            ("Forgetting", "forgetting", 3),
            ("Training energy, µJ (Horowitz 45 nm proxy)", "train_energy_uj", 0),
        ):
            out.write(f"{title}:\n\n| strategy | " + " | ".join(labels) + " |\n")
            out.write("|---|" + "---|" * len(labels) + "\n")
            for strategy in strategies:
                values = []
                for label in labels:
                    r = cells.get((strategy, label))
                    values.append(_cell(r[f"{key}_mean"], r[f"{key}_std"], digits) if r else "")
                out.write(f"| {strategy} | " + " | ".join(values) + " |\n")
            out.write("\n")
    return out.getvalue()


def write_report(out_dir: Path) -> list[dict[str, Any]]:
    """Write results.csv, results.md and the plots for every run under ``out_dir/runs``."""
    results = load_results(out_dir)
    rows = aggregate(results)
    if not rows:
        return rows
    with open(out_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "results.md").write_text(markdown_tables(rows))
    by_bench: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_bench[(r["config"]["benchmark"], r["config"]["scenario"])].append(r)
    for (bench, scenario), group in by_bench.items():
        plot_heatmaps(
            group,
            out_dir / f"heatmaps_{bench}_{scenario}.png",
            title=f"{bench} ({scenario}-incremental): mean accuracy matrices",
        )
        plot_pareto(
            aggregate(group),
            out_dir / f"pareto_{bench}_{scenario}.png",
            title=f"{bench} ({scenario}-incremental): accuracy vs training energy",
        )
    return rows
