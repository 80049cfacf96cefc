"""`mpsim nas --estimator surrogate`: the candidate encoding, the ridge ensemble, the decision rule by construction,
seeded runs, bad settings, two worker processes on one study, and a resumed study refitting from its storage.
Tiny real runs on digits (MLPs, 1-2 epochs)."""

from __future__ import annotations

import csv
import json
import math
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from hls_gen.nas import NASConfig, SearchSpace, finished_trials, open_study, run_name, run_nas, sample
from hls_gen.nas_surrogate import (
    LAYER_FEATURES,
    AccuracySurrogate,
    Decision,
    NoData,
    Trained,
    decide,
    encode,
    feature_names,
)

SPACE = SearchSpace(
    archs=("mlp",), mlp_depths=(0, 1), mlp_widths=(16, 32), accs=("e5m6", "fp16"), arrays=("1x1", "4x4")
)
SURROGATE = dict(estimator="surrogate", proxy_threshold=None, batch_size=128, epochs=1, space=SPACE)
# a wide space: both families, two operand formats per layer, three roundings, an array range
WIDE = SearchSpace(
    mul=("e4m3", "e5m2"),
    roundings=("nearest", "stochastic:8", "stochastic:4"),
    arrays=(),
    array_rows=(1, 2, 4),
    array_cols=(1, 4),
    pipelines=(1, 2),
)
FIXED = [
    {"arch": "mlp", "mlp_depth": 0, "mul_0": "e5m2", "acc_0": "fp16", "rounding_0": "stochastic:8"},
    {"arch": "cnn", "cnn_depth": 1, "cnn_kernel_0": 3, "cnn_channels_0": 8, "mul_0": "e4m3", "acc_0": "e5m6"},
]


def _fixed(params: dict) -> optuna.trial.FixedTrial:
    rest = {"rounding_0": "nearest", "mul_1": "e4m3", "acc_1": "fp32", "rounding_1": "nearest"}
    return optuna.trial.FixedTrial({**rest, "array_rows": 2, "array_cols": 4, "pipeline": 2, **params})


def _shape(arch: str) -> tuple[int, ...]:
    return (64,) if arch == "mlp" else (1, 8, 8)


def test_the_encoding_is_injective_on_sampled_candidates() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    by_encoding: dict[tuple[float, ...], tuple] = {}
    for _ in range(300):
        trial = study.ask()
        arch = trial.suggest_categorical("arch", list(WIDE.archs))
        candidate = sample(trial, WIDE, _shape(arch), 10)
        encoding = encode(candidate, WIDE)
        assert len(encoding) == len(feature_names(WIDE)) and all(math.isfinite(v) for v in encoding)
        # what the candidate is, its network's name (which holds the trial number) aside
        key = (candidate.arch, candidate.network.layers, candidate.array, candidate.interleave, candidate.pipeline)
        assert by_encoding.setdefault(encoding, key) == key
    assert len(by_encoding) > 250  # the draw was wide enough to say something


def test_the_encoding_holds_the_formats_widths() -> None:
    names = feature_names(WIDE)
    mlp = dict(zip(names, encode(sample(_fixed(FIXED[0]), WIDE, (64,), 10), WIDE)))
    # the classifier of a linear model: e5m2 operands into fp16 (5 exponent, 10 mantissa bits), 8 random bits
    assert [mlp[f"layerout.{f}"] for f in ("out", "mul_exp", "mul_man", "mul_block", "acc_exp", "acc_man")] == [
        10,
        5,
        2,
        0,
        5,
        10,
    ]
    assert (mlp["layerout.rounding_bits"], mlp["depth"], mlp["arch=mlp"], mlp["arch=cnn"]) == (8, 0, 1, 0)
    assert all(mlp[f"layer{i}.{f}"] == 0 for i in (0, 1) for f in LAYER_FEATURES)  # no hidden layer
    assert (mlp["array_rows"], mlp["array_cols"], mlp["pipeline"], mlp["interleave"]) == (2, 4, 2, 1)
    cnn = dict(zip(names, encode(sample(_fixed(FIXED[1]), WIDE, (1, 8, 8), 10), WIDE)))
    assert [cnn[f"layer0.{f}"] for f in ("present", "conv", "out", "kernel", "mul_exp", "mul_man", "acc_man")] == [
        1,
        1,
        8,
        3,
        4,
        3,
        6,
    ]
    mx = SearchSpace(mul=("mxfp8_e4m3", "mxfp4_e2m1"), mul_scope="network", archs=("mlp",))
    params = {"arch": "mlp", "mlp_depth": 0, "mul": "mxfp4_e2m1", "acc_0": "fp32", "rounding_0": "nearest"}
    row = dict(
        zip(feature_names(mx), encode(sample(optuna.trial.FixedTrial({**params, "array": "1x1"}), mx, (64,), 10), mx))
    )
    # MX: the element's widths (e2m1) and the OCP block of 32
    assert [row[f"layerout.{f}"] for f in ("mul_exp", "mul_man", "mul_block", "mul_choice")] == [2, 1, 32, 2]


def test_the_encoding_is_the_same_in_a_fresh_process() -> None:
    code = (
        "import json, optuna; from hls_gen.nas import sample; from hls_gen.nas_surrogate import encode; "
        "from tests.hls_gen.test_nas_surrogate import WIDE, FIXED, _fixed, _shape; "
        "print(json.dumps([encode(sample(_fixed(p), WIDE, _shape(p['arch']), 10), WIDE) for p in FIXED]))"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    here = [list(encode(sample(_fixed(p), WIDE, _shape(p["arch"]), 10), WIDE)) for p in FIXED]
    assert json.loads(done.stdout) == here


def test_the_ensemble_recovers_a_linear_function_and_is_unsure_away_from_its_data() -> None:
    rng = np.random.default_rng(0)
    slope, offset = np.array([0.3, -0.2, 0.1, 0.05, 0.0]), 0.4
    x = rng.uniform(0, 1, (200, 5))
    surrogate = AccuracySurrogate.fit(x, x @ slope + offset, seed=3)
    fresh = rng.uniform(0, 1, (50, 5))
    mean, _ = surrogate.predict(fresh)
    np.testing.assert_allclose(mean, fresh @ slope + offset, atol=0.01)

    noisy = AccuracySurrogate.fit(x, x @ slope + offset + rng.normal(0, 0.02, 200), seed=3)
    centre, far = x.mean(axis=0), x.mean(axis=0) + 10 * x.std(axis=0)
    _, (near_std, far_std) = noisy.predict([centre, far])
    assert far_std > 5 * near_std > 0
    again = AccuracySurrogate.fit(x, x @ slope + offset + 0, seed=3).predict(fresh)
    assert [a.tolist() for a in again] == [a.tolist() for a in surrogate.predict(fresh)]  # seeded


@pytest.mark.parametrize("trials", [0, 1])
def test_fitting_without_data_is_one_line(trials: int) -> None:
    message = f"accuracy surrogate has no trained trials to fit (need >= 2, got {trials})"
    with pytest.raises(NoData, match=f"^{re.escape(message)}$"):
        AccuracySurrogate.fit([[1.0, 2.0]] * trials, [0.5] * trials)


def test_the_decision_rule_on_a_hand_built_front() -> None:
    """Trained trials all of accuracy 0.5: the surrogate predicts 0.5 with no spread everywhere, so a candidate is
    skipped exactly when a trained trial is no costlier anywhere and cheaper somewhere."""
    rng = np.random.default_rng(0)
    costs = [(10.0, 1.0), (20.0, 0.5), (5.0, 3.0)]
    trained = [Trained(i, tuple(rng.uniform(0, 1, 4)), (0.5, *c)) for i, c in enumerate(costs)]
    point = (0.3, 0.3, 0.3, 0.3)
    assert decide(point, (99.0, 99.0), trained, warmup=4) == Decision(train=True, fitted_on=0)  # the warm-up
    costlier = decide(point, (25.0, 3.0), trained, warmup=3)
    assert costlier == Decision(train=False, fitted_on=3, predicted=0.5, std=0.0, dominated_by=0)  # all 3 dominate
    assert decide(point, (15.0, 1.0), trained, warmup=3).dominated_by == 0  # only trial 0: 10 < 15, 1 <= 1
    for cheaper in ((4.0, 0.4), (10.0, 0.9), (10.0, 1.0)):  # below all; cheaper in energy; equal to trial 0
        assert decide(point, cheaper, trained, warmup=3).train

    # accuracies that differ: kappa standard deviations of optimism make a skipped candidate train
    best = Trained(9, (0.5, 0.5, 0.5, 0.5), (1.0, 1.0, 1.0))
    varied = [Trained(i, tuple(rng.uniform(0, 1, 4)), (float(rng.uniform(0.4, 0.8)), 9.0, 9.0)) for i in range(8)]
    far = (1.0, 1.0, 1.0, 1.0)
    sceptic = decide(far, (50.0, 50.0), [*varied, best], warmup=2, kappa=0.0)
    assert not sceptic.train and 0 < sceptic.predicted < 1 and sceptic.std > 0
    by = {t.number: t for t in [*varied, best]}[sceptic.dominated_by]
    assert by.objectives[0] >= sceptic.predicted  # costs 9 or 1, below 50: it dominates the prediction
    hopeful = (1.0 - sceptic.predicted) / sceptic.std + 1
    assert decide(far, (50.0, 50.0), [*varied, best], warmup=2, kappa=hopeful).train


def _attrs(study: optuna.Study) -> list[tuple]:
    run_specific = ("train_seconds", "worker")
    return [
        (t.number, t.state, t.values, {k: v for k, v in t.user_attrs.items() if k not in run_specific})
        for t in study.trials
    ]


def test_a_seeded_search_decides_alike_and_records_its_decisions(tmp_path: Path) -> None:
    config = NASConfig(trials=6, surrogate_warmup=2, surrogate_kappa=0.0, **SURROGATE)
    first = run_nas(config, tmp_path / "a", progress=False)
    assert _attrs(first) == _attrs(run_nas(config, tmp_path / "b", progress=False))

    trials = first.trials
    trained = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    skipped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert skipped and len(trained) > 2  # the case says something: the surrogate skipped some, trained others
    for t in trials:
        # the fit used every trial trained before this one began (one worker: all earlier complete trials)
        before = sum(1 for o in trained if o.number < t.number)
        assert t.user_attrs["surrogate_fitted_on"] == (before if before >= 2 else 0)
    for t in skipped:
        assert (t.user_attrs["pruned"], t.user_attrs["epochs"]) == (True, 0)
        assert t.user_attrs["accuracy"] == t.user_attrs["predicted_accuracy"]
        by = trials[t.user_attrs["dominated_by"]]
        assert by.state == optuna.trial.TrialState.COMPLETE
        mine = (t.user_attrs["predicted_accuracy"], t.user_attrs["latency_us"], t.user_attrs["energy_uj"])
        assert by.values[0] >= mine[0] and by.values[1] <= mine[1] and by.values[2] <= mine[2]
    with open(tmp_path / "a" / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["pruned"] == "True" for r in rows] == [t.state == optuna.trial.TrialState.PRUNED for t in trials]
    summary = json.loads((tmp_path / "a" / "pareto.json").read_text())
    after = [t for t in trained if "predicted_accuracy" in t.user_attrs]
    errors = [abs(t.user_attrs["predicted_accuracy"] - t.values[0]) for t in after]
    assert summary["prediction_error"]["trials"] == len(after)
    assert summary["prediction_error"]["mean_absolute"] == pytest.approx(sum(errors) / len(errors))
    assert summary["epochs_spent"] == len(trained) and summary["pruned"] == len(skipped)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(surrogate_warmup=1),
            "surrogate_warmup must be an integer >= 2 (the surrogate fits on the trials trained first), not 1",
        ),
        (dict(surrogate_kappa=math.nan), "surrogate_kappa must be a finite number >= 0, not nan"),
        (dict(surrogate_kappa=-0.5), "surrogate_kappa must be a finite number >= 0, not -0.5"),
        (
            dict(estimator="full", proxy_threshold=0.5, surrogate_kappa=2.0),
            "surrogate_kappa 2.0 is a setting of estimator 'surrogate', not of 'full'",
        ),
    ],
)
def test_bad_surrogate_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        NASConfig(**{**SURROGATE, **kwargs})


def test_run_name_and_a_study_of_other_surrogate_settings(tmp_path: Path) -> None:
    base = dict(estimator="surrogate", proxy_threshold=None)
    assert run_name(NASConfig(**base)) == "digits_s0_estimator=surrogate"
    assert run_name(NASConfig(**base, surrogate_kappa=0.5)) == "digits_s0_estimator=surrogate,surrogate-kappa=0.5"
    open_study(NASConfig(**SURROGATE), tmp_path)
    with pytest.raises(
        ValueError,
        match=r"^study 'mpsim-nas' in sqlite:///.*study\.db was run with other settings \(surrogate_warmup 8 there, "
        r"3 here\); use another --out or --study-name$",
    ):
        open_study(NASConfig(**SURROGATE, surrogate_warmup=3), tmp_path)
    # a study stored before the surrogate's settings existed held their defaults
    study = open_study(NASConfig(**SURROGATE, study_name="old"), tmp_path)
    stored = {k: v for k, v in study.user_attrs["nas_config"].items() if not k.startswith("surrogate_")}
    study.set_user_attr("nas_config", stored)
    open_study(NASConfig(**SURROGATE, study_name="old"), tmp_path)


def _cli(tmp_path: Path, trials: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mpsim.cli",
        "nas",
        *("--estimator", "surrogate", "--surrogate-warmup", "3", "--trials", str(trials)),
        *("--epochs", "1", "--batch-size", "128", "--archs", "mlp", "--accs", "e5m6,fp16", "--arrays", "1x1,4x4"),
        *("--storage", f"sqlite:///{tmp_path / 'study.db'}", "--out", str(tmp_path / "out"), "--quiet"),
    ]


def test_two_workers_share_one_study(tmp_path: Path) -> None:
    """Two worker processes, one storage, the same --trials: each stops once the study holds that many finished
    trials, so at most one trial in flight in the other worker finishes beyond it."""
    trials = 8
    command = _cli(tmp_path, trials)
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    try:
        for worker in workers:
            _, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    study = optuna.load_study(study_name="mpsim-nas", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert trials <= finished_trials(study) <= trials + 1
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    host = socket.gethostname()
    finished = [t for t in study.trials if t.state != optuna.trial.TrialState.RUNNING]
    assert {t.user_attrs["worker"] for t in finished} == {f"{host}:{w.pid}" for w in workers}  # both ran trials
    with open(tmp_path / "out" / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["trial"]) for r in rows) == sorted(t.number for t in finished)
    assert json.loads((tmp_path / "out" / "pareto.json").read_text())["trials"] == len(rows)


def test_a_resumed_study_refits_from_its_stored_trials(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Rerun with a larger --trials: the first new decision fits on every trained trial the storage holds."""
    from mpsim.cli import main

    assert main(_cli(tmp_path, 5)[3:]) == 0
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    stored = optuna.load_study(study_name="mpsim-nas", storage=storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,)
    )
    assert len(stored) >= 3  # past the warm-up of 3: the next trial is decided by the surrogate
    assert main(_cli(tmp_path, 6)[3:]) == 0
    study = optuna.load_study(study_name="mpsim-nas", storage=storage)
    resumed = study.trials[-1]
    assert resumed.number == 5 and resumed.user_attrs["surrogate_fitted_on"] == len(stored)
    skipped = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("surrogate: ")]
    assert printed[-1].startswith(f"surrogate: {skipped} of 6 trials skipped untrained")
