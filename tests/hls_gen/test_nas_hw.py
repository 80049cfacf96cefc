"""`mpsim nas --predict [--synth-front]`: trials costed by the cost surrogate, only the predicted front synthesized.

The synthesis cache holds reports of a known cost formula (``tests/hls_gen/test_cost_surrogate.py``), so the
surrogate's predictions are checked against that formula, not against the surrogate's own output; synthesis is
replaced by a tool that measures another, known, formula, so the front's measured figures are known too.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest

from hls_gen import nas, synth
from hls_gen.cost_surrogate import config_from_dict, features
from hls_gen.emit import ArrayConfig
from hls_gen.nas import NASConfig, SearchSpace, _rows, front_rows, run_nas
from hls_gen.nas_hw import MEASURED_PREFIX, Measured, synthesize_front, with_measurements
from hls_gen.synth import SynthCache, SynthOptions
from mpsim.cli import main
from tests.hls_gen.test_cost_surrogate import configs, fake_sha, known, known_report, mx_configs, put_report

SPACE = SearchSpace(
    archs=("mlp",), mlp_depths=(0, 1), mlp_widths=(16, 64), accs=("e5m6", "fp16"), arrays=("1x1", "2x2", "4x4")
)
PROXY = dict(estimator="proxy", proxy_threshold=None, batch_size=128, space=SPACE)
SLOWER = 0.6  # the fake place and route measures this share of the known formula's Fmax


@pytest.fixture
def cache(tmp_path: Path) -> SynthCache:
    """A cache of 30 reports of the known formula, of today's generator."""
    store = SynthCache(tmp_path / "cache")
    for config in configs(30):
        put_report(store, config, fake_sha(config))
    return store


def fake_synthesize(calls: list[str]) -> Any:
    """A stand-in for :func:`hls_gen.synth.synthesize`: the known formula's resources at ``SLOWER`` times its Fmax,
    put in the cache as a real run would be (so the surrogate refits on it); the names it was asked for in ``calls``.
    """

    def run(config: ArrayConfig, options: SynthOptions | None = None, *, cache: Any = None, **_: Any) -> Any:
        calls.append(config.name)
        store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
        store.remember_verilog(config, fake_sha(config))
        report = known_report(config, fake_sha(config), fmax_scale=SLOWER)
        store.put(report)
        return report

    return run


def test_predicted_trials_are_clocked_at_the_known_formulas_fmax(cache: SynthCache, tmp_path: Path) -> None:
    study = run_nas(NASConfig(trials=6, predict=True, **PROXY), tmp_path / "run", progress=False, cache=cache)
    rows = _rows(study)
    assert len(rows) == 6
    for row, trial in zip(rows, study.trials):
        f = features(config_from_dict(trial.user_attrs["array_spec"]))
        assert row["hw_source"] == "predicted"
        # the surrogate learnt the formula from whole-cell reports: it predicts it within rounding
        assert row["fmax_mhz"] == pytest.approx(known("fmax_mhz", f), rel=0.01)
        assert row["luts"] == pytest.approx(known("luts", f), rel=0.01, abs=2)
        assert row["latency_us"] == pytest.approx(row["cycles"] / row["fmax_mhz"])
        assert trial.user_attrs["surrogate_reports"] == 30
        assert trial.user_attrs["fmax_source"] == "cost surrogate (30 reports)"


def test_an_mx_space_is_costed_once_the_cache_holds_mx_reports(cache: SynthCache, tmp_path: Path) -> None:
    """MX trials costed by the MX terms, learnt from MX reports of the known formula: its figures within rounding."""
    for config in mx_configs(40):
        put_report(cache, config, fake_sha(config))
    space = SearchSpace(
        archs=("mlp",),
        mlp_depths=(0,),
        mlp_widths=(16,),
        mul=("mxfp8_e4m3", "mxfp4_e2m1"),
        mul_scope="network",
        accs=("fp16",),
        roundings=("nearest",),
        arrays=("1x1", "2x2"),
    )
    config = NASConfig(trials=4, predict=True, **{**PROXY, "space": space})
    study = run_nas(config, tmp_path / "run", progress=False, cache=cache)
    assert len(study.trials) == 4
    for row, trial in zip(_rows(study), study.trials):
        array = config_from_dict(trial.user_attrs["array_spec"])
        f = features(array)
        assert array.mx and f.mx and row["hw_source"] == "predicted"
        assert row["fmax_mhz"] == pytest.approx(known("fmax_mhz", f), rel=0.01)
        assert row["luts"] == pytest.approx(known("luts", f), rel=0.01, abs=2)
        assert trial.user_attrs["surrogate_reports"] == 70


@pytest.mark.parametrize("where", ["storing", "training"])
def test_ctrl_c_stops_the_search_cleanly_wherever_it_lands(
    where: str, cache: SynthCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while Optuna stores the second trial's values (a ``KeyboardInterrupt`` there broke Optuna's own
    bookkeeping: an ``UnboundLocalError``, a traceback): that trial is stored whole and the search stops. Ctrl-C
    inside the second trial: it is left unfinished (to run again), the first kept."""
    assert threading.current_thread() is threading.main_thread()  # Python delivers signals to the main thread
    calls = [0]
    if where == "storing":
        store = optuna.storages.RDBStorage.set_trial_state_values

        def patched(self: Any, trial_id: int, state: Any, values: Any = None) -> bool:
            calls[0] += 1
            if calls[0] == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return store(self, trial_id, state, values)

        monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_state_values", patched)
    else:
        estimate = nas.gradient_norm

        def patched(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return estimate(*args, **kwargs)

        monkeypatch.setattr(nas, "gradient_norm", patched)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_nas(NASConfig(trials=6, predict=True, **PROXY), out, progress=False, cache=cache)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back
    states = [t.state for t in optuna.load_study(study_name=None, storage=f"sqlite:///{out / 'study.db'}").trials]
    State = optuna.trial.TrialState
    assert states == ([State.COMPLETE, State.COMPLETE] if where == "storing" else [State.COMPLETE, State.PRUNED])
    summary = json.loads((out / "pareto.json").read_text())
    assert summary["trials"] == (2 if where == "storing" else 1)


def test_the_front_is_synthesized_until_every_trial_on_it_is_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-built trials A, B, C of equal accuracy and energy, predicted (at the known formula's Fmax) 1.0, 1.5 and
    3.0 us. Measured, each is 1 / SLOWER = 1.67x slower: A (1.67 us) falls behind B, so B is synthesized next
    (2.5 us), after which measured A leads again; C, behind both all along, is never synthesized."""
    calls: list[str] = []
    monkeypatch.setattr(synth, "synthesize", fake_synthesize(calls))
    arrays = {
        "A": ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=1, cols=1),
        "B": ArrayConfig(a_format="e4m3", acc_format="fp16", rows=1, cols=1),
        "C": ArrayConfig(a_format="e4m3", acc_format="fp32", rows=1, cols=1),
    }
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for name, latency in (("A", 1.0), ("B", 1.5), ("C", 3.0)):
        fmax = known("fmax_mhz", features(arrays[name]))
        attrs = {"array_config": arrays[name].name, "cycles": latency * fmax, "fmax_mhz": fmax}
        study.add_trial(optuna.trial.create_trial(values=[0.9, latency, 1.0], user_attrs=attrs))

    def rows_of(s: optuna.Study) -> list[dict[str, Any]]:
        return [
            {"trial": t.number, "accuracy": t.values[0], "latency_us": t.values[1], "energy_uj": t.values[2]}
            | {k: t.user_attrs[k] for k in ("array_config", "cycles", "fmax_mhz")}
            | {"hw_source": "predicted"}
            for t in s.trials
        ]

    def arrays_of(numbers: Any) -> dict[str, ArrayConfig]:
        return {arrays["ABC"[n]].name: arrays["ABC"[n]] for n in numbers}

    done = synthesize_front(study, rows_of, front_rows, arrays_of, SynthCache(tmp_path))
    assert done == calls == [arrays["A"].name, arrays["B"].name]
    stored = {k[len(MEASURED_PREFIX) :]: v for k, v in study.user_attrs.items() if k.startswith(MEASURED_PREFIX)}
    want = SLOWER * known("fmax_mhz", features(arrays["A"]))
    assert stored[arrays["A"].name]["fmax_mhz"] == pytest.approx(want, abs=0.005)  # a report's Fmax: 0.01 MHz
    final = front_rows(with_measurements(rows_of(study), {n: Measured(**v) for n, v in stored.items()}))
    assert [r["trial"] for r in final] == [0] and final[0]["latency_us"] == pytest.approx(1.0 / SLOWER, rel=1e-3)
    assert synthesize_front(study, rows_of, front_rows, arrays_of, SynthCache(tmp_path)) == []  # nothing left to do


def test_synth_front_measures_the_front_after_each_generation(
    cache: SynthCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(synth, "synthesize", fake_synthesize(calls))
    config = NASConfig(trials=8, predict=True, synth_front=True, **PROXY)  # generations of 4 trials
    study = run_nas(config, tmp_path / "run", progress=False, cache=cache)
    rows = _rows(study)
    front = front_rows(rows)
    assert front and all(r["hw_source"] == "synthesized" for r in front)
    assert len(calls) == len(set(calls))  # no array twice
    synthesized = {r["array_config"] for r in rows if r["hw_source"] == "synthesized"}
    assert synthesized == set(calls)
    for r, trial in zip(rows, study.trials):
        if r["hw_source"] == "synthesized":  # measured figures replace the predicted ones, which stay beside them
            f = features(config_from_dict(trial.user_attrs["array_spec"]))
            assert r["fmax_mhz"] == pytest.approx(SLOWER * known("fmax_mhz", f), abs=0.005)
            assert r["fmax_mhz_predicted"] == trial.user_attrs["fmax_mhz"]
            assert r["latency_us"] == pytest.approx(r["cycles"] / r["fmax_mhz"])
    # the first generation's front was measured before trial 4: later trials ranked with the refitted surrogate
    reports = [t.user_attrs["surrogate_reports"] for t in study.trials]
    assert reports[:4] == [30] * 4 and min(reports[4:]) > 30
    summary = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert {r["trial"] for r in summary["front"]} == {r["trial"] for r in front}


def test_predict_without_reports_is_one_line_before_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["nas", "--predict", "--trials", "2", "--estimator", "proxy", "--archs", "mlp", "--arrays", "1x1"]
    assert main([*args, "--cache-dir", str(tmp_path / "empty"), "--out", str(out), "--quiet"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no synthesis reports of the current generator in" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--synth", "--predict"], "--synth synthesizes every trial's array and --predict predicts it: choose one"),
        (["--synth-front"], "--synth-front synthesizes the front that --predict ranks: add --predict"),
        (
            ["--predict", "--space", "MX_SPACE"],
            "--predict: the cost surrogate has learnt from no MX array (30 reports, none MX), and the space holds "
            "mxfp8_e4m3",
        ),
    ],
)
def test_bad_hardware_options_are_one_line(
    extra: list[str], message: str, cache: SynthCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "mx.yaml"
    space.write_text("network:\n  families: [mlp]\n  operands: [e4m3, mxfp8_e4m3]\narray:\n  sizes: [1x1]\n")
    extra = [str(space) if e == "MX_SPACE" else e for e in extra]
    common = [] if "--space" in extra else ["--archs", "mlp", "--arrays", "1x1"]
    args = ["nas", "--trials", "2", "--estimator", "proxy", *common, *extra]
    assert main([*args, "--cache-dir", str(cache.root), "--out", str(tmp_path / "run"), "--quiet"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_config_refuses_contradictory_hardware_settings() -> None:
    with pytest.raises(ValueError, match=r"^synth synthesizes every trial's array and predict predicts it"):
        NASConfig(synth=True, predict=True)
    with pytest.raises(ValueError, match=r"^synth_front synthesizes the front the cost surrogate predicts"):
        NASConfig(synth_front=True)
