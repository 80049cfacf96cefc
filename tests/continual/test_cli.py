"""`mpsim cl` and `mpsim cl-sweep` through the entry point: help, errors, checks before work, a real run, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from continual.cli import default_out
from continual.config import RunConfig, run_id
from continual.sweep import write_json_atomic
from mpsim.cli import main
from mpsim.precision import PRECISION_PRESETS
from tests.continual.test_sweep import _fake_result


def test_cl_help_lists_presets_policies_and_strategies(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["cl", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in PRECISION_PRESETS:
        assert f"\n  {name} " in text
    for word in ("adaptive", "schedule:P0,P1", "packnet", "split-mnist1d", "--seeds", "--dask"):
        assert word in text
    # an MX preset's tensors stay fp32: its line names the GEMMs' block formats instead
    mx_line = "  mxfp4         MX GEMMs mxfp4_e2m1 | mxfp4_e2m1 | mxfp4_e2m1 (backward elements stochastic:8), acc fp16"
    assert mx_line in text


def test_cl_sweep_help(capsys):
    with pytest.raises(SystemExit):
        main(["cl-sweep", "--help"])
    text = capsys.readouterr().out
    assert "--strategies" in text and "--policies" in text and "--dry-run" in text and "e4m3-fp12-sr" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["cl", "--precision", "e4m3x"],
            "unknown precision 'e4m3x': expected one of fp32, bf16, bf16-sr, fp16, e4m3, e4m3-sr, e5m2, e5m2-sr, "
            "e4m3-fp12, e4m3-fp12-sr, mxfp8, mxfp8-sr, mxfp6, mxfp4 or a .json/.yaml file",
        ),
        (
            ["cl", "--strategy", "icarl"],
            "unknown strategy 'icarl': expected one of naive, replay, gem, agem, ewc, si, lwf, packnet, joint",
        ),
        (
            ["cl", "--benchmark", "split-cifar"],
            "unknown benchmark 'split-cifar': expected one of split-digits, permuted-digits, split-mnist1d, "
            "permuted-mnist1d, split-mnist, permuted-mnist",
        ),
        (["cl", "--scenario", "domain"], "unknown scenario 'domain': expected one of class, task"),
        (
            ["cl-sweep", "--policies", "sometimes"],
            "unknown policy 'sometimes': expected fixed, schedule, schedule:P0,P1,..., adaptive or adaptive:HIGH",
        ),
        (
            ["cl", "--experiences", "3"],
            "split-digits has 10 classes, which 3 experiences do not divide: experiences must be one of 1, 2, 5, 10",
        ),
        (
            ["cl-sweep", "--benchmarks", "permuted-digits", "split-mnist1d", "--experiences", "4"],
            "split-mnist1d has 10 classes, which 4 experiences do not divide: experiences must be one of 1, 2, 5, 10",
        ),
        (
            ["cl", "--strategy", "packnet"],
            "strategy 'packnet' selects a sub-network per task and needs task labels: use scenario 'task'",
        ),
        (
            ["cl", "--benchmark", "split-mnist"],
            "benchmark 'split-mnist' reads local MNIST files, nothing is downloaded: give the folder with the four "
            "IDX files (train-images-idx3-ubyte, ... [.gz]) or mnist.npz with --data-root DIR",
        ),
        (["cl", "--epochs", "0"], "argument --epochs: expected a positive int, not '0' (see mpsim cl --help)"),
        (
            ["cl-sweep", "--dask", "nonsense"],
            "--dask takes 'local' or a scheduler address such as tcp://host:8786, not 'nonsense'",
        ),
    ],
)
def test_errors_are_one_line_naming_the_bad_value(argv, message, capsys, tmp_path):
    out = tmp_path / "out"
    try:
        status = main([*argv, "--out", str(out), "--quiet"])
    except SystemExit as exit_info:  # argparse's own checks
        status = exit_info.code
    assert status == 2
    assert capsys.readouterr().err == f"mpsim {argv[0]}: error: {message}\n"
    assert not out.exists()  # refused before any work


def test_precision_files_are_named_in_their_errors(capsys, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("default: [\n")
    missing = tmp_path / "missing.json"
    assert main(["cl", "--precision", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"mpsim cl: error: --precision: precision config {str(broken)!r}, line 2, column 1: expected the node content, "
        "but found '<stream end>'\n"
    )
    assert main(["cl-sweep", "--precisions", "fp32", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (
        f"mpsim cl-sweep: error: --precision: precision config {str(missing)!r} not found\n"
    )


def test_argument_checks_load_no_torch_avalanche_or_numba(tmp_path):
    """Every check of the grid runs before the slow libraries load: errors and --help answer at once."""
    code = (
        "import sys; from mpsim.cli import main; "
        f"rc = main(['cl-sweep', '--experiences', '3', '--out', {str(tmp_path)!r}]); "
        "print(rc, sorted(m for m in ('torch', 'avalanche', 'numba') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "2 []\n"
    assert done.stderr.startswith("mpsim cl-sweep: error: split-digits has 10 classes, which 3 experiences")


def test_default_out_is_under_runs_named_from_the_settings():
    base = RunConfig()
    assert default_out("cl-sweep", base) == Path("runs/cl-sweep/defaults")
    assert default_out("cl-sweep", replace(base, epochs=1, hidden=8, lr=0.1)) == Path(
        "runs/cl-sweep/epochs=1,lr=0.1,hidden=8"
    )
    assert default_out("cl", replace(base, n_experiences=2), "split-digits_class_naive_fp32") == Path(
        "runs/cl/split-digits_class_naive_fp32_experiences=2"
    )


def _finish(out: Path, config: RunConfig) -> None:
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "runs" / f"{run_id(config)}.json", _fake_result(config))


def test_a_folder_of_finished_runs_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = RunConfig(epochs=1, hidden=8, precision="fp32")
    out = Path("runs/cl/split-digits_class_naive_fp32_epochs=1,hidden=8")
    _finish(out, base)
    argv = ["cl", "--precision", "fp32", "--epochs", "1", "--hidden", "8", "--quiet"]
    monkeypatch.setattr(sys, "argv", ["mpsim", *argv])
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{out} holds all 1 of these runs, finished: nothing to run; "
        "to run them again: mpsim cl --precision fp32 --epochs 1 --hidden 8 --quiet --force, or another --out"
    )
    assert lines[1] == f"1 runs already finished, 0 run now; results in {out}"
    _finish(out, replace(base, seed=1))
    sweep = ["cl-sweep", "--precisions", "fp32", "--hidden", "8", "--seeds", "3", "--out", str(out), "--dry-run"]
    assert main([*sweep, "--epochs", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{out} holds 2 of these 3 runs, finished: running the other 1; to start anew: --force, or another --out"
    )
    assert main([*sweep, "--epochs", "2"]) == 2
    assert capsys.readouterr().err == (
        f"mpsim cl-sweep: error: {out} holds 2 of these runs with other settings (epochs 1 there, 2 here; "
        "e.g. runs/split-digits_class_naive_fp32_s0.json): give another --out, or delete those files to run them "
        "again\n"
    )


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
    assert capsys.readouterr().err == (
        f"mpsim cl: error: --data-root: MNIST file train-images-idx3-ubyte[.gz] not found in '{tmp_path}': put the "
        "four MNIST IDX files (or mnist.npz with x_train, y_train, x_test, y_test) there; nothing is downloaded\n"
    )
    assert not (tmp_path / "out").exists()


def _interrupt_after_first_run(argv: list[str], runs: Path) -> subprocess.CompletedProcess:
    """Start ``mpsim ARGV`` as a terminal would (its own process group), Ctrl-C it once a run finished."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpsim.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not (runs.exists() and any(p.suffix == ".json" for p in runs.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to every process of the group, workers too
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("command", ["cl", "cl-sweep"])
def test_ctrl_c_says_what_is_saved_and_how_to_resume(command, tmp_path, monkeypatch):
    """A real run, Ctrl-C after its first finished run: one line, no traceback (from pool workers neither)."""
    monkeypatch.chdir(tmp_path)
    grid = ["--precision", "fp32"] if command == "cl" else ["--precisions", "fp32", "--workers", "2"]
    argv = [command, *grid, "--seeds", "4", "--epochs", "1", "--hidden", "8", "--quiet"]
    out = default_out(
        command, RunConfig(epochs=1, hidden=8), "split-digits_class_naive_fp32" if command == "cl" else ""
    )
    done = _interrupt_after_first_run(argv, tmp_path / out / "runs")
    assert done.returncode == 130 and done.stdout == ""
    assert done.stderr == (
        f"\nmpsim {command}: interrupted; the finished runs are in {out}/runs; "
        f"to resume: mpsim {' '.join(argv)} --out {out}\n"
    )
    finished = [json.loads(p.read_text()) for p in (tmp_path / out / "runs").glob("*.json")]
    assert 1 <= len(finished) < 4 and not list((tmp_path / out / "runs").glob(".*.tmp"))


def test_an_unreachable_dask_scheduler_fails_at_once_naming_it(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once the socket closes
    argv = ["cl-sweep", "--dask", address, "--epochs", "1", "--out", str(tmp_path), "--quiet"]
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mpsim.cli", *argv], capture_output=True, text=True)
    assert time.monotonic() - start < 10
    assert done.returncode == 2 and done.stderr == (
        f"mpsim cl-sweep: error: no Dask scheduler answers at {address} within 5 s: "
        "start one (dask scheduler) or check --dask\n"
    )
