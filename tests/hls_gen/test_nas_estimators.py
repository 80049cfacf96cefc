"""`mpsim nas --estimator`: full training as before, pruned training through a single-objective twin study, the
gradient-norm proxy, and Kendall's tau to compare them. Tiny real runs on digits (MLPs, 1-2 epochs)."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from hls_gen.array_size import parse_array_size
from hls_gen.nas import (
    Candidate,
    Estimator,
    NASConfig,
    Pruner,
    SearchSpace,
    _objective,
    datasets,
    dominates,
    extrapolate,
    finished_trials,
    gradient_norm,
    hardware_cost,
    kendall_tau,
    open_fidelity_study,
    open_study,
    run_nas,
    sample,
    train_accuracy,
)
from hls_gen.network import NetworkSpec
from mpsim.data import load_dataset

STORED = Path(__file__).resolve().parents[2] / "results" / "nas" / "study.db"
SPACE = SearchSpace(archs=("mlp",), mlp_depths=(0, 1), mlp_widths=(16,), accs=("e5m6", "fp16"), arrays=("1x1", "4x4"))
TINY = dict(batch_size=128, proxy_threshold=None, space=SPACE)
# two candidates of the space above: a linear classifier and one with a 16-wide hidden layer
LINEAR = {"arch": "mlp", "mlp_depth": 0, "acc_0": "e5m6", "rounding_0": "nearest", "array": "1x1"}
HIDDEN = {
    "arch": "mlp",
    "mlp_depth": 1,
    "mlp_width_0": 16,
    "acc_0": "e5m6",
    "rounding_0": "nearest",
    "acc_1": "fp16",
    "rounding_1": "nearest",
    "array": "1x1",
}


def _network(params: dict) -> NetworkSpec:
    return sample(optuna.trial.FixedTrial(params), SPACE, (64,), 10).network


def _trials_csv(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def test_full_is_the_default_and_its_accuracy_is_the_training_s(tmp_path: Path) -> None:
    """The default estimator is today's training: the trial's accuracy is what ``train_accuracy`` (no pruner)
    gives its network, and the study and its files say ``full``."""
    config = NASConfig(trials=1, epochs=1, **TINY)
    assert (config.estimator, config.pruner) == (Estimator.FULL, None)
    study = run_nas(config, tmp_path, progress=False)
    (trial,) = study.trials
    network = NetworkSpec.from_dict(trial.user_attrs["network"])
    accuracy, epochs, _ = train_accuracy(network, config, load_dataset("digits", seed=0))
    assert trial.values[0] == accuracy and trial.user_attrs["epochs"] == epochs == 1
    assert study.user_attrs["nas_config"]["estimator"] == "full" and study.user_attrs["nas_config"]["pruner"] is None
    assert "mpsim-nas/fidelity" not in optuna.get_all_study_names(f"sqlite:///{tmp_path / 'study.db'}")
    (row,) = _trials_csv(tmp_path)
    assert (row["estimator"], row["epochs"], row["pruned"]) == ("full", "1", "False")


def test_full_reproduces_the_committed_study() -> None:
    """The default estimator's objective, on the committed study's quickest trial, gives the accuracy that study
    stored (the code before estimators existed), exactly; latency and energy are today's cost model's (the model
    has changed since that study was run, so its stored costs are not today's)."""
    stored = optuna.load_study(study_name="mpsim-nas", storage=f"sqlite:///{STORED}")
    complete = [t for t in stored.trials if t.state == optuna.trial.TrialState.COMPLETE]
    trial = min(complete, key=lambda t: t.user_attrs["train_seconds"])
    config = NASConfig(trials=50)  # the committed study's settings: all defaults
    fixed = optuna.trial.FixedTrial(trial.params)
    accuracy, latency, energy = _objective(config, datasets(config), None, None)(fixed)
    assert accuracy == trial.values[0] and fixed.user_attrs["epochs"] == trial.user_attrs["epochs"]
    network = NetworkSpec.from_dict(trial.user_attrs["network"])
    cost, _ = hardware_cost(Candidate(network, trial.params["arch"], parse_array_size(trial.params["array"])), config)
    assert (latency, energy) == (cost.latency_us, cost.energy_uj)


def test_halving_prunes_a_second_trial_worse_after_the_first_epoch(tmp_path: Path) -> None:
    """Two enqueued candidates, the better one (after one epoch, measured here) first: successive halving
    (reduction factor 4, rung 0 at epoch 1) keeps a trial at rung 0 only if it is the best of fewer than 4, so the
    second is pruned after one epoch and the first trains both epochs."""
    data = load_dataset("digits", seed=0)
    one_epoch = NASConfig(epochs=1, **TINY)
    first_epoch = {name: train_accuracy(_network(p), one_epoch, data)[0] for name, p in (("l", LINEAR), ("h", HIDDEN))}
    assert first_epoch["l"] != first_epoch["h"]  # else the case would not be constructed
    better, worse = sorted((LINEAR, HIDDEN), key=lambda p: -first_epoch["l" if p is LINEAR else "h"])
    config = NASConfig(trials=2, epochs=2, estimator=Estimator.PRUNED, pruner=Pruner.HALVING, **TINY)
    study = open_study(config, tmp_path)
    study.enqueue_trial(better)
    study.enqueue_trial(worse)
    study = run_nas(config, tmp_path, progress=False, study=study)

    kept, pruned = study.trials
    assert (kept.state, pruned.state) == (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert (kept.user_attrs["epochs"], pruned.user_attrs["epochs"]) == (2, 1)
    assert kept.values[0] == train_accuracy(_network(better), config, data)[0]  # pruning is a stop, not a change
    assert pruned.user_attrs["accuracy"] == min(first_epoch.values())
    assert pruned.user_attrs["pruned"] and not kept.user_attrs["pruned"]
    assert finished_trials(study) == 2  # a pruned trial is a finished one: --trials counts it
    # the twins hold the learning curves, one report per epoch trained
    twins = open_fidelity_study(config, tmp_path).trials
    assert [t.state for t in twins] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]
    assert [t.user_attrs["nas_trial"] for t in twins] == [0, 1]
    assert twins[0].intermediate_values == {1: max(first_epoch.values()), 2: kept.values[0]}
    assert twins[1].intermediate_values == {1: pruned.user_attrs["accuracy"]}

    rows = _trials_csv(tmp_path)
    assert [(r["estimator"], r["epochs"], r["pruned"]) for r in rows] == [
        ("pruned", "2", "False"),
        ("pruned", "1", "True"),
    ]
    summary = json.loads((tmp_path / "pareto.json").read_text())
    assert [r["trial"] for r in summary["front"]] == [0]  # the pruned trial is off the front
    assert (summary["epochs_spent"], summary["pruned"]) == (3, 1)
    assert summary["config"]["estimator"] == "pruned" and summary["config"]["pruner"] == "halving"


def test_hyperband_runs_seeded_and_its_records_agree(tmp_path: Path) -> None:
    """Hyperband over 2 trials of 2 epochs, twice: the same trials, values and pruning; every trial's epochs are
    its twin's reports, a complete trial's accuracy is its last report."""
    config = NASConfig(trials=2, epochs=2, estimator=Estimator.PRUNED, pruner=Pruner.HYPERBAND, **TINY)
    runs = []
    for out in (tmp_path / "a", tmp_path / "b"):
        study = run_nas(config, out, progress=False)
        assert isinstance(open_fidelity_study(config, out).pruner, optuna.pruners.HyperbandPruner)
        attrs = [{k: v for k, v in t.user_attrs.items() if k != "train_seconds"} for t in study.trials]
        runs.append([(t.params, t.state, t.values, a) for t, a in zip(study.trials, attrs)])
        twins = {t.user_attrs["nas_trial"]: t for t in open_fidelity_study(config, out).trials}
        for trial in study.trials:
            curve = twins[trial.number].intermediate_values
            assert sorted(curve) == list(range(1, trial.user_attrs["epochs"] + 1))
            accuracy = trial.values[0] if trial.values else trial.user_attrs["accuracy"]
            assert accuracy == curve[max(curve)]
            assert trial.user_attrs["pruned"] == (trial.state == optuna.trial.TrialState.PRUNED)
    assert runs[0] == runs[1]


def test_proxy_is_seeded_sees_the_arithmetic_and_trains_nothing(tmp_path: Path) -> None:
    config = NASConfig(trials=2, estimator=Estimator.PROXY, **TINY)
    data = load_dataset("digits", seed=0)
    network = _network(HIDDEN)
    score, _ = gradient_norm(network, config, data)
    assert score > 0 and gradient_norm(network, config, data)[0] == score
    # the same network and initial weights, every GEMM accumulating in e5m2 (3 significand bits)
    coarse = replace(network, layers=tuple(replace(layer, acc="e5m2") for layer in network.layers))
    assert gradient_norm(coarse, config, data)[0] != score

    values = []
    for out in (tmp_path / "a", tmp_path / "b"):
        study = run_nas(config, out, progress=False)
        values.append([t.values for t in study.trials])
        for trial in study.trials:
            network = NetworkSpec.from_dict(trial.user_attrs["network"])
            assert trial.values[0] == gradient_norm(network, config, data)[0]
        rows = _trials_csv(out)
        assert {(r["estimator"], r["epochs"], r["pruned"]) for r in rows} == {("proxy", "0", "False")}
    assert values[0] == values[1]


def test_extrapolate_recovers_a_power_law_curve() -> None:
    a, b = 0.95, 0.4
    exact = [a - b / e for e in (1, 2, 3)]
    assert extrapolate(exact[:2], 10) == pytest.approx(a - b / 10)  # two points fix the line in 1 / e
    assert extrapolate(exact, 6) == pytest.approx(a - b / 6)
    assert extrapolate([0.5, 0.5, 0.5], 8) == pytest.approx(0.5)
    assert extrapolate([0.2, 0.9], 4) == 1.0  # a - b / e past 1 is clipped: accuracy is a fraction
    with pytest.raises(ValueError, match=r"^extrapolating a learning curve needs 2 epochs or more, not 1$"):
        extrapolate([0.5], 4)


def test_curve_stops_a_candidate_its_extrapolation_leaves_dominated(tmp_path: Path) -> None:
    """A linear classifier, then a costlier network with a hidden layer, both enqueued, 3 epochs: the first has no
    trial to be dominated by and trains 3 epochs; the second stops after epoch 2 exactly when the accuracy its first
    two epochs extrapolate to at epoch 3, at its latency and energy, is dominated by the first trial."""
    config = NASConfig(trials=2, epochs=3, estimator=Estimator.CURVE, **TINY)
    study = open_study(config, tmp_path)
    study.enqueue_trial(LINEAR)
    study.enqueue_trial(HIDDEN)
    study = run_nas(config, tmp_path, progress=False, study=study)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.COMPLETE and first.user_attrs["epochs"] == 3
    assert first.values[0] == first.user_attrs["curve"][-1]
    curve = second.user_attrs["curve"]
    predicted = extrapolate(curve[:2], 3)
    latency, energy = (
        second.values[1:] if second.values else (second.user_attrs[k] for k in ("latency_us", "energy_uj"))
    )
    expected_stop = dominates(first.values, (predicted, latency, energy))
    assert expected_stop  # the construction: the hidden layer costs more and learns slower in 2 epochs
    assert second.state == optuna.trial.TrialState.PRUNED and second.user_attrs["pruned"]
    assert (second.user_attrs["epochs"], len(curve)) == (2, 2)
    assert second.user_attrs["predicted_accuracy"] == predicted and second.user_attrs["accuracy"] == curve[-1]
    assert [r["pruned"] for r in _trials_csv(tmp_path)] == ["False", "True"]


def test_kendall_tau_by_hand() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # six pairs, one of them (2, 3) swapped: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b: pair (0, 1) tied in x only; both other pairs concordant: 2 / sqrt(2 * 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match=r"^kendall_tau needs two scorings of the same items, not 2 and 3 values$"):
        kendall_tau([1, 2], [1, 2, 3])


def test_kendall_tau_is_scipys() -> None:
    stats = pytest.importorskip("scipy.stats")
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 5, 12).tolist(), rng.integers(0, 5, 12).tolist()  # small integers: many ties
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_tau_between_the_proxy_and_training_on_a_handful_of_candidates() -> None:
    """The comparison the estimators are for, on three candidates: a number in [-1, 1] (its value is not the
    point; three networks and one epoch say nothing about the proxy)."""
    data = load_dataset("digits", seed=0)
    full, proxy = NASConfig(epochs=1, **TINY), NASConfig(estimator=Estimator.PROXY, **TINY)
    candidates = [LINEAR, HIDDEN, {**HIDDEN, "acc_0": "fp16", "rounding_0": "stochastic:8"}]
    accuracies = [train_accuracy(_network(p), full, data)[0] for p in candidates]
    scores = [gradient_norm(_network(p), proxy, data)[0] for p in candidates]
    tau = kendall_tau(scores, accuracies)
    assert -1.0 <= tau <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(estimator="grid"),
            "unknown estimator 'grid': expected one of full, pruned, proxy, curve, supernet, surrogate",
        ),
        (
            dict(estimator="pruned", pruner="asha", proxy_threshold=None),
            "unknown pruner 'asha': expected one of hyperband, halving",
        ),
        (
            dict(estimator="pruned", proxy_threshold=None),
            "estimator 'pruned' needs a pruner: one of hyperband, halving",
        ),
        (dict(pruner="halving"), "pruner 'halving' stops trials of estimator 'pruned', not of 'full'"),
        (
            dict(estimator="pruned", pruner="hyperband", epochs=1, proxy_threshold=None),
            "estimator 'pruned' stops a trial before its last epoch, so it needs epochs >= 2, not 1",
        ),
        (
            dict(estimator="curve", epochs=2, proxy_threshold=None),
            "estimator 'curve' fits epochs 1..k and stops before the last, so it needs epochs >= 3, not 2",
        ),
        (
            dict(estimator="proxy"),
            "proxy_threshold is the one-epoch stop of estimator 'full'; estimator 'proxy' needs None, not 0.5",
        ),
    ],
)
def test_bad_estimator_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        NASConfig(**kwargs)


def test_a_study_refuses_another_estimator_in_one_line(tmp_path: Path) -> None:
    open_study(NASConfig(**TINY), tmp_path)
    with pytest.raises(
        ValueError,
        match=r"^study 'mpsim-nas' in sqlite:///.*study\.db was run with other settings \(estimator 'full' there, "
        r"'pruned' here; pruner None there, 'halving' here\); use another --out or --study-name$",
    ):
        open_study(NASConfig(**{**TINY, "estimator": "pruned", "pruner": "halving"}), tmp_path)
