"""A tiny hardware-aware NAS: a non-dominated front, files written, resumed from its storage, seeded."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hls_gen.cost_surrogate import config_from_dict
from hls_gen.nas import (
    Candidate,
    NASConfig,
    SearchSpace,
    array_for,
    build_torch,
    hardware_cost,
    pareto_front,
    precision_config,
    run_nas,
    sample,
    train_accuracy,
)
from hls_gen.network import LayerSpec, NetworkSpec
from hls_gen.perf_model import estimate
from mpsim.data import load_dataset
from mpsim.nn import quantize_model

# small and quick: MLPs of at most one 16-wide hidden layer, one epoch
SPACE = SearchSpace(archs=("mlp",), mlp_depths=(0, 1), mlp_widths=(16,), accs=("e5m6", "fp16"), arrays=("1x1", "4x4"))
TINY = NASConfig(trials=2, epochs=1, batch_size=128, proxy_threshold=None, space=SPACE)


def dominated(a: dict, b: dict) -> bool:
    """``b`` is at least as good as ``a`` everywhere and better somewhere."""
    ge = b["accuracy"] >= a["accuracy"] and b["latency_us"] <= a["latency_us"] and b["energy_uj"] <= a["energy_uj"]
    return ge and (
        b["accuracy"] > a["accuracy"] or b["latency_us"] < a["latency_us"] or b["energy_uj"] < a["energy_uj"]
    )


def test_tiny_nas_front_files_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "nas"
    study = run_nas(TINY, out, progress=False)
    first = {t.number: (t.values, t.datetime_start) for t in study.trials}
    assert len(first) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    summary = json.loads((out / "pareto.json").read_text())
    with open(out / "trials.csv") as handle:
        rows = [
            {k: float(v) if k in ("accuracy", "latency_us", "energy_uj") else v for k, v in r.items()}
            for r in csv.DictReader(handle)
        ]
    front = summary["front"]
    assert summary["trials"] == len(rows) == 2 and front
    # the front is non-dominated, and every trial off it is dominated by one on it
    for r in front:
        assert not any(dominated(r, o) for o in rows)
    on_front = {r["trial"] for r in front}
    for r in rows:
        if int(r["trial"]) not in on_front:
            assert any(dominated(r, f) for f in front)
    assert on_front == {t.number for t in study.best_trials}  # Optuna's own front agrees
    assert (out / "pareto.png").stat().st_size > 10_000 and (out / "pareto.csv").read_text().startswith(
        "trial,accuracy,latency_us,energy_uj"
    )
    # each trial's objectives are what its network costs on its array, at the nominal clock
    t0 = study.trials[0]
    network = NetworkSpec.from_dict(t0.user_attrs["network"])
    candidate = Candidate(network, t0.params["arch"], tuple(int(v) for v in t0.params["array"].split("x")))
    cost = estimate(network, array_for(candidate, SPACE), fmax_mhz=TINY.fmax_mhz)
    assert t0.values[1:] == [pytest.approx(cost.latency_us), pytest.approx(cost.energy_uj)]

    # rerunning with more trials continues the stored study: the finished trials are not redone
    more = NASConfig(trials=3, epochs=1, batch_size=128, proxy_threshold=None, space=SPACE)
    resumed = run_nas(more, out, progress=False)
    assert len(resumed.trials) == 3
    assert {t.number: (t.values, t.datetime_start) for t in resumed.trials[:2]} == first
    assert len(run_nas(more, out, progress=False).trials) == 3  # nothing left to do
    with pytest.raises(
        ValueError,
        match=r"^study 'mpsim-nas' in sqlite:///.*study\.db was run with other settings \(epochs 1 there, 2 here\); "
        r"use another --out or --study-name$",
    ):
        run_nas(NASConfig(trials=4, epochs=2, batch_size=128, proxy_threshold=None, space=SPACE), out, progress=False)


def test_sampling_and_training_are_seeded() -> None:
    params = {
        "arch": "mlp",
        "mlp_depth": 1,
        "mlp_width_0": 16,
        "acc_0": "e5m6",
        "rounding_0": "stochastic:8",
        "acc_1": "fp16",
        "rounding_1": "nearest",
        "array": "4x4",
    }
    candidate = sample(optuna.trial.FixedTrial(params), SPACE, (64,), 10)
    assert [(l.kind, l.out, l.acc, l.rounding) for l in candidate.network.layers] == [
        ("Linear", 16, "e5m6", "stochastic:8"),
        ("Linear", 10, "fp16", "nearest"),
    ]
    array = array_for(candidate, SPACE)  # the widest accumulator; stochastic because one layer is
    assert (array.acc_format, array.rounding, array.rows, array.cols) == ("fp16", "stochastic:8", 4, 4)
    data = load_dataset("digits")
    config = NASConfig(epochs=1, batch_size=128, proxy_threshold=None, space=SPACE)
    first, second = train_accuracy(candidate.network, config, data), train_accuracy(candidate.network, config, data)
    assert first[0] == second[0] and first[0] > 0.5  # one epoch of emulated FP8 training learns digits
    cost, facts = hardware_cost(candidate, config)
    assert (facts["array_config"], facts["hw_source"]) == ("mac_e4m3_fp16_sr8_4x4", "nominal")
    assert cost.fmax_source == "nominal"
    assert config_from_dict(facts["array_spec"]) == array  # what --synth-front rebuilds the array from
    model = build_torch(candidate.network)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    # each layer trains at its own precision: one PrecisionConfig override per GEMM layer
    model, _ = quantize_model(model, precision_config(candidate.network, model, 0), strict=True)
    gemms = [
        (m.precision.forward.acc, m.precision.forward.rounding, m.precision.grad_weight.acc, m.precision.weight.format)
        for m in (model[0], model[2])
    ]
    assert gemms == [("e5m6", "stochastic:8", "e5m6", "e4m3"), ("fp16", "nearest", "fp16", "e4m3")]
    # the sampler is seeded: the same seed proposes the same parameters
    proposals = []
    for _ in range(2):
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=3))
        study.optimize(
            lambda t: (len(sample(t, SearchSpace(archs=("mlp",)), (64,), 10).network.layers), 0.0), n_trials=6
        )
        proposals.append([t.params for t in study.trials])
    assert proposals[0] == proposals[1]


def test_pareto_front_by_construction() -> None:
    rows = [
        {"trial": 0, "accuracy": 0.9, "latency_us": 10.0, "energy_uj": 1.0},  # front
        {"trial": 1, "accuracy": 0.8, "latency_us": 5.0, "energy_uj": 2.0},  # front (fastest)
        {"trial": 2, "accuracy": 0.8, "latency_us": 11.0, "energy_uj": 1.5},  # dominated by 0
        {"trial": 3, "accuracy": 0.7, "latency_us": 20.0, "energy_uj": 0.5},  # front (least energy)
        {"trial": 4, "accuracy": 0.9, "latency_us": 10.0, "energy_uj": 1.0},  # ties 0: neither dominates
    ]
    assert [r["trial"] for r in pareto_front(rows)] == [0, 1, 3, 4]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(benchmark="cifar10"), "unknown NAS benchmark 'cifar10': expected one of digits"),
        (dict(trials=0), "trials must be a positive integer, not 0"),
    ],
)
def test_bad_configuration(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        NASConfig(**kwargs)


def test_bad_search_space() -> None:
    with pytest.raises(
        ValueError, match=r"^array size must be ROWSxCOLS with both at least 1, such as 4x4, not '0x4'$"
    ):
        SearchSpace(arrays=("0x4",))
    with pytest.raises(ValueError, match=r"^architectures must be among mlp, cnn, not \['rnn'\]$"):
        SearchSpace(archs=("rnn",))
    with pytest.raises(ValueError, match=r"^impossible format 'e9m9': exponent bits must be 1\.\.8, not 9$"):
        SearchSpace(accs=("e9m9",))


def test_hls_gen_does_not_import_continual() -> None:
    code = (
        "import sys, hls_gen.nas, hls_gen.cost_cli, hls_gen.perf_model, hls_gen.synth, hls_gen.network; "
        "print(any(m.startswith('continual') for m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_conv_candidate_shapes() -> None:
    params = {
        "arch": "cnn",
        "cnn_depth": 2,
        "cnn_kernel_0": 5,
        "cnn_channels_0": 4,
        "cnn_kernel_1": 3,
        "cnn_channels_1": 8,
        "acc_0": "fp32",
        "rounding_0": "nearest",
        "acc_1": "e5m6",
        "rounding_1": "nearest",
        "acc_2": "fp16",
        "rounding_2": "nearest",
        "array": "8x8",
    }
    net = sample(optuna.trial.FixedTrial(params), SearchSpace(), (1, 8, 8), 10).network
    assert [s for _, s in net.shapes()] == [
        (4, 8, 8),
        (8, 4, 4),
        (10,),
    ]  # same-padding, then the last conv halves the map
    assert net.layers[0] == LayerSpec(
        "Conv2d", 4, kernel=(5, 5), padding=(2, 2), mul="e4m3", acc="fp32", rounding="nearest"
    )
