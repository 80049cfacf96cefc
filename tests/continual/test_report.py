"""Results table: mean and sample std over seeds, Markdown layout, CSV and plots written."""

from __future__ import annotations

import csv
from dataclasses import asdict

import pytest

from continual.config import RunConfig, run_id
from continual.plots import pareto_front
from continual.report import aggregate, markdown_tables, write_report
from continual.sweep import write_json_atomic


def _result(strategy: str, precision: str, seed: int, acc: float, energy: float, policy: str = "fixed") -> dict:
    config = RunConfig(strategy=strategy, precision=precision, seed=seed, policy=policy)
    matrix = [[acc, 0.0], [acc - 0.1, acc]]
    return {
        "run_id": run_id(config),
        "config": asdict(config),
        "label": config.label,
        "family": "x",
        "accuracy_matrix": matrix,
        "initial_accuracy": [0.5, 0.5],
        "average_accuracy": acc - 0.05,
        "learning_accuracy": acc,
        "forgetting": 0.1,
        "backward_transfer": -0.1,
        "forward_transfer": -0.5,
        "wall_seconds": 1.0,
        "cost": {"train": {"macs": 100, "macs_by_format": {}, "bit_ops": 6400.0, "energy_uj": energy}},
        "precision_batches": {precision: 30} if policy == "fixed" else {"bf16": 10, precision: 30},
        "switches": [],
    }


RESULTS = [
    _result("naive", "fp32", 0, 0.30, 10.0),
    _result("naive", "fp32", 1, 0.50, 10.0),
    _result("replay", "e4m3-sr", 0, 0.85, 2.0),
    _result("replay", "e4m3-sr", 1, 0.95, 2.0),
    _result("replay", "e4m3-sr", 2, 0.90, 2.0),
    _result("replay", "e4m3-sr", 0, 0.92, 3.0, policy="adaptive"),
]


def test_aggregate_mean_and_sample_std():
    rows = {(r["strategy"], r["label"]): r for r in aggregate(RESULTS)}
    naive = rows[("naive", "fp32")]
    assert naive["seeds"] == 2 and naive["average_accuracy_mean"] == pytest.approx(0.35)
    assert naive["average_accuracy_std"] == pytest.approx(0.1 * 2**0.5)  # sample std of 0.25, 0.45
    replay = rows[("replay", "e4m3-sr")]
    assert replay["average_accuracy_mean"] == pytest.approx(0.85) and replay["average_accuracy_std"] == pytest.approx(
        0.05
    )
    assert rows[("replay", "adaptive(e4m3-sr)")]["average_accuracy_std"] == 0.0  # one seed
    assert rows[("replay", "adaptive(e4m3-sr)")]["precision_share"] == pytest.approx(0.75)
    assert [r["strategy"] for r in aggregate(RESULTS)] == [
        "naive",
        "replay",
        "replay",
    ]  # strategy order, then precision


def test_markdown_table_layout():
    text = markdown_tables(aggregate(RESULTS))
    assert text.startswith("### split-digits, class-incremental (1/2/3 seeds, mean ± std)\n")
    assert "| strategy | fp32 | e4m3-sr | adaptive(e4m3-sr) |" in text
    assert "| naive | 0.350 ± 0.141 |  |  |" in text
    assert "| replay |  | 0.850 ± 0.050 | 0.870 ± 0.000 |" in text
    assert "| replay |  | 2 ± 0 | 3 ± 0 |" in text  # energy


def test_write_report_files(tmp_path):
    (tmp_path / "runs").mkdir()
    for r in RESULTS:
        write_json_atomic(tmp_path / "runs" / f"{r['run_id']}.json", r)
    rows = write_report(tmp_path)
    assert len(rows) == 3
    with open(tmp_path / "results.csv") as handle:
        assert [r["label"] for r in csv.DictReader(handle)] == ["fp32", "e4m3-sr", "adaptive(e4m3-sr)"]
    for name in ("results.md", "heatmaps_split-digits_class.png", "pareto_split-digits_class.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "pareto_split-digits_class.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front():
    points = [(1.0, 0.2), (2.0, 0.5), (3.0, 0.4), (4.0, 0.9), (4.0, 0.1), (0.5, 0.1)]
    assert pareto_front(points) == [5, 0, 1, 3]
