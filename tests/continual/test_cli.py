"""`mpsim cl` and `mpsim cl-sweep` through the entry point: help, errors, a real run."""

from __future__ import annotations

import json

import pytest

from mpsim.cli import main
from mpsim.nn import PRECISION_PRESETS


def test_cl_help_lists_presets_policies_and_strategies(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cl", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in PRECISION_PRESETS:
        assert f"\n  {name} " in text
    for word in ("adaptive", "schedule:P0,P1", "packnet", "split-mnist1d", "--seeds", "--dask"):
        assert word in text


def test_cl_sweep_help(capsys):
    with pytest.raises(SystemExit):
        main(["cl-sweep", "--help"])
    text = capsys.readouterr().out
    assert "--strategies" in text and "--policies" in text and "--dry-run" in text and "e4m3-fp12-sr" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cl", "--precision", "e4m3x"], "mpsim cl: error: unknown precision 'e4m3x'"),
        (["cl", "--strategy", "icarl"], "mpsim cl: error: unknown strategy 'icarl'"),
        (["cl-sweep", "--policies", "sometimes"], "mpsim cl-sweep: error: unknown policy 'sometimes'"),
        (["cl", "--benchmark", "split-mnist"], "mpsim cl: error: benchmark 'split-mnist' reads local MNIST files"),
    ],
)
def test_errors_name_the_bad_value(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_dry_run_lists_the_grid(capsys, tmp_path):
    argv = [
        "cl-sweep",
        "--strategies",
        "naive",
        "packnet",
        "--precisions",
        "fp32",
        "bf16",
        "--seeds",
        "2",
        "--dry-run",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped split-digits/class/packnet: packnet needs task labels (scenario task)" in out
    assert out.rstrip().endswith("4 runs") and not (tmp_path / "runs").exists()


def test_cl_runs_seeds_and_reports(capsys, tmp_path):
    argv = [
        "cl",
        "--strategy",
        "replay",
        "--precision",
        "bf16",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "0 runs already finished, 2 run now" in out
    assert "split-digits (class) replay @ bf16, 2 seeds: average accuracy" in out
    result = json.loads((tmp_path / "runs" / "split-digits_class_replay_bf16_s1.json").read_text())
    assert result["config"]["seed"] == 1 and len(result["accuracy_matrix"]) == 5
    assert main(argv) == 0 and "2 runs already finished, 0 run now" in capsys.readouterr().out


def test_missing_mnist_file_named_before_any_run(capsys, tmp_path):
    argv = [
        "cl",
        "--benchmark",
        "permuted-mnist",
        "--data-root",
        str(tmp_path),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(
        f"mpsim cl: error: MNIST file train-images-idx3-ubyte[.gz] not found in {tmp_path}"
    )
    assert not (tmp_path / "out").exists()
