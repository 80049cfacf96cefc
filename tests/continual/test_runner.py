"""A run is deterministic given its seed, and its JSON carries what the issue asks for."""

from __future__ import annotations

import json

import numpy as np

from continual.config import RunConfig
from continual.runner import run


def _without_time(result):
    return {k: v for k, v in json.loads(json.dumps(result)).items() if k != "wall_seconds"}


def test_same_seed_same_run_and_another_seed_differs():
    config = RunConfig(strategy="replay", precision="e5m2-sr", policy="adaptive", epochs=1, hidden=16)
    a, b = run(config, progress=False), run(config, progress=False)
    assert _without_time(a) == _without_time(b)
    c = run(
        RunConfig(strategy="replay", precision="e5m2-sr", policy="adaptive", epochs=1, hidden=16, seed=1),
        progress=False,
    )
    assert c["accuracy_matrix"] != a["accuracy_matrix"]


def test_result_fields():
    result = run(RunConfig(strategy="naive", epochs=1, hidden=8, precision="bf16"), progress=False)
    matrix = np.array(result["accuracy_matrix"])
    assert matrix.shape == (5, 5) and len(result["initial_accuracy"]) == 5
    assert result["average_accuracy"] == np.mean(matrix[-1])
    for key in ("forgetting", "backward_transfer", "forward_transfer", "learning_accuracy"):
        assert isinstance(result[key], float)
    assert result["wall_seconds"] > 0
    train = result["cost"]["train"]
    assert train["macs"] == sum(train["macs_by_format"].values()) and train["bit_ops"] == train["macs"] * 16 * 16
    assert result["cost"]["energy_model"] == "Horowitz, ISSCC 2014, 45 nm"
    assert result["family"] == "lower bound" and result["label"] == "bf16"


def test_joint_has_one_row_and_no_transfer_metrics():
    result = run(RunConfig(strategy="joint", scenario="task", epochs=1, hidden=8, precision="fp32"), progress=False)
    assert len(result["accuracy_matrix"]) == 1 and result["initial_accuracy"] is None
    assert result["forgetting"] is None and result["average_accuracy"] > 0.5
