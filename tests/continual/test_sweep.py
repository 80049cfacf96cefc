"""Grids expand as documented; a killed sweep resumes without redoing or losing a finished run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest

from continual.config import RunConfig, run_id
from continual.report import load_results
from continual.sweep import SweepSpec, expand, run_sweep

BASE = RunConfig(epochs=1, hidden=8)


def _fake_result(config: RunConfig) -> dict:
    """What run() returns, without training (the sweep's bookkeeping is under test here)."""
    acc = 0.5 + 0.01 * config.seed
    return {
        "run_id": run_id(config),
        "config": asdict(config),
        "label": config.label,
        "family": "lower bound",
        "accuracy_matrix": [[acc]],
        "initial_accuracy": None,
        "average_accuracy": acc,
        "learning_accuracy": None,
        "forgetting": None,
        "backward_transfer": None,
        "forward_transfer": None,
        "wall_seconds": 0.1,
        "cost": {
            "train": {"macs": 10, "macs_by_format": {"fp32*fp32->fp32": 10}, "bit_ops": 10240, "energy_uj": 4.6e-5}
        },
        "precision_batches": {config.precision: 3},
        "switches": [],
    }


def _configs(n: int) -> list[RunConfig]:
    return [replace(BASE, seed=s) for s in range(n)]


def test_expand_skips_and_dedupes():
    spec = SweepSpec(
        scenarios=("class", "task"),
        strategies=("naive", "packnet"),
        precisions=("bf16", "e4m3"),
        policies=("fixed", "adaptive", "schedule:bf16,e5m2"),
        seeds=2,
        base=replace(BASE, epochs=2),
    )
    configs, skipped = expand(spec)
    # packnet only in task; adaptive(bf16) never switches; the explicit schedule once per strategy/scenario
    per_seed = {(c.scenario, c.strategy, c.label) for c in configs}
    assert per_seed == {
        ("class", "naive", "bf16"),
        ("class", "naive", "e4m3"),
        ("class", "naive", "adaptive(e4m3)"),
        ("class", "naive", "schedule:bf16,e5m2"),
        ("task", "naive", "bf16"),
        ("task", "naive", "e4m3"),
        ("task", "naive", "adaptive(e4m3)"),
        ("task", "naive", "schedule:bf16,e5m2"),
        ("task", "packnet", "bf16"),
        ("task", "packnet", "e4m3"),
        ("task", "packnet", "adaptive(e4m3)"),
        ("task", "packnet", "schedule:bf16,e5m2"),
    }
    assert len(configs) == 2 * len(per_seed) and len({run_id(c) for c in configs}) == len(configs)
    assert "split-digits/class/packnet: packnet needs task labels (scenario task)" in skipped
    assert "split-digits/class/naive/adaptive(bf16): would never switch" in skipped


def test_resume_after_a_simulated_kill_repeats_nothing(tmp_path):
    configs = _configs(5)
    calls: list[int] = []

    def killed_on_third(config, progress):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill: nothing after it runs, nothing half-written stays
        calls.append(config.seed)
        return _fake_result(config)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(configs, tmp_path, progress=False, run_fn=killed_on_third, report=False)
    runs = tmp_path / "runs"
    written = {p.name: p.read_bytes() for p in runs.iterdir()}
    assert sorted(written) == [f"{run_id(c)}.json" for c in configs[:2]]  # no temporary file left behind

    resumed: list[int] = []

    def counting(config, progress):
        resumed.append(config.seed)
        return _fake_result(config)

    done = run_sweep(configs, tmp_path, progress=False, run_fn=counting)
    assert resumed == [2, 3, 4] and done["finished"] == [run_id(c) for c in configs[:2]] and done["failed"] == {}
    assert all((runs / name).read_bytes() == data for name, data in written.items())  # finished runs untouched
    assert len(load_results(tmp_path)) == 5 and (tmp_path / "results.md").exists()
    again = run_sweep(configs, tmp_path, progress=False, run_fn=counting, report=False)
    assert again["ran"] == [] and resumed == [2, 3, 4]


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    def flaky(config, progress):
        if config.seed == 1:
            raise RuntimeError("diverged")
        return _fake_result(config)

    done = run_sweep(_configs(3), tmp_path, progress=False, run_fn=flaky, report=False)
    assert done["failed"] == {run_id(_configs(3)[1]): "RuntimeError: diverged"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        f"{run_id(c)}.json" for c in _configs(3) if c.seed != 1
    )


def test_a_file_of_other_settings_is_never_overwritten(tmp_path):
    config = _configs(1)[0]
    run_sweep([config], tmp_path, progress=False, run_fn=lambda c, progress: _fake_result(c), report=False)
    other = replace(config, lr=0.1)
    path = tmp_path / "runs" / f"{run_id(config)}.json"
    with pytest.raises(
        ValueError,
        match=rf"^{tmp_path} holds 1 of these runs with other settings \(lr 0\.05 there, 0\.1 here; "
        rf"e\.g\. runs/{run_id(config)}\.json\): give another --out, or delete those files to run them again$",
    ):
        run_sweep([other], tmp_path, progress=False, run_fn=lambda c, progress: _fake_result(c), report=False)
    assert path.exists()


def test_sigkill_then_resume_with_the_real_command(tmp_path):
    """The real thing: `mpsim cl-sweep` killed with SIGKILL mid-sweep, then run again."""
    args = [
        sys.executable,
        "-m",
        "mpsim.cli",
        "cl-sweep",
        "--precisions",
        "fp32",
        "--seeds",
        "6",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--out",
        str(tmp_path),
        "--quiet",
    ]
    runs = tmp_path / "runs"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (runs.exists() and any(p.suffix == ".json" for p in runs.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    survivors = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in runs.glob("*.json")}
    assert 1 <= len(survivors) < 6
    assert all(json.loads(data)["config"]["seed"] >= 0 for _, data in survivors.values())  # whole JSON, never half
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert f"{len(survivors)} runs already finished, {6 - len(survivors)} run now" in out
    assert all((runs / n).stat().st_mtime_ns == m and (runs / n).read_bytes() == d for n, (m, d) in survivors.items())
    assert len(list(runs.glob("*.json"))) == 6 and not list(runs.glob(".*.tmp"))


def test_first_seed_shifts_the_seeds():
    configs, _ = expand(SweepSpec(seeds=2, first_seed=3, base=BASE))
    assert [c.seed for c in configs] == [3, 4]
    with pytest.raises(ValueError, match=r"^first seed must be an integer >= 0, not -1$"):
        SweepSpec(first_seed=-1)


def test_checking_a_grid_loads_no_torch():
    code = (
        "import sys; from continual.sweep import SweepSpec, expand; expand(SweepSpec(seeds=2)); "
        "print(sorted(m for m in ('torch', 'avalanche', 'numba') if m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
