"""`mpsim nas` as a newcomer meets it: a default folder per search, one line on what a study holds, Ctrl-C."""

from __future__ import annotations

import ast
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hls_gen.cost_cli import _study_note
from hls_gen.nas import NASConfig, SearchSpace, run_name

TINY = ["--epochs", "1", "--batch-size", "128", "--archs", "mlp", "--accs", "e5m6", "--roundings", "nearest"]


def test_run_name_holds_what_differs_from_the_defaults():
    assert run_name(NASConfig()) == "digits_s0"
    assert run_name(NASConfig(trials=5, study_name="x")) == "digits_s0"  # more trials continue the same study
    config = NASConfig(seed=2, epochs=1, space=SearchSpace(archs=("mlp",), roundings=("stochastic:8",)))
    assert run_name(config) == "digits_s2_epochs=1,archs=mlp,roundings=stochastic-8"
    # the one-epoch stop is the full estimator's: the others' None is not named
    pruned = NASConfig(estimator="pruned", pruner="halving", proxy_threshold=None)
    assert run_name(pruned) == "digits_s0_estimator=pruned,pruner=halving"
    assert run_name(NASConfig(estimator="proxy", proxy_threshold=None)) == "digits_s0_estimator=proxy"


def test_what_a_study_holds_is_one_line():
    where = "runs/nas/digits_s0/study.db"
    assert _study_note(where, 0, 5) is None
    assert _study_note(where, 3, 5) == (
        f"{where} holds 3 finished trials of this study: running 2 more to reach --trials 5; "
        "another --out or --study-name starts anew"
    )
    assert _study_note(where, 50, 5) == (
        f"{where} holds 50 finished trials of this study, not fewer than --trials 5: running none; "
        "a larger --trials continues it, another --out or --study-name starts anew"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arrays", "0x2"], "array size must be ROWSxCOLS with both at least 1, such as 4x4, not '0x2'"),
        (["--benchmark", "cifar10"], "unknown NAS benchmark 'cifar10': expected one of digits"),
        (["--archs", "rnn"], "architectures must be among mlp, cnn, not ['rnn']"),
        (["--accs", "e5m6,e9m9"], "--accs e9m9: impossible format 'e9m9': exponent bits must be 1..8, not 9"),
        (
            ["--roundings", "nearest,sr0"],
            "--roundings sr0: unknown rounding 'sr0': random-bit count must be 1..62 ('stochastic' alone rounds "
            "exactly), not '0'",
        ),
        (
            ["--estimator", "grid"],
            "unknown estimator 'grid': expected one of full, pruned, proxy, curve, supernet, surrogate",
        ),
        (
            ["--estimator", "pruned", "--pruner", "asha"],
            "unknown pruner 'asha': expected one of hyperband, halving",
        ),
        (
            ["--pruner", "halving"],
            "--pruner halving stops trials of --estimator pruned, not full; drop --pruner or add --estimator pruned",
        ),
        (
            ["--estimator", "proxy", "--pruner", "hyperband"],
            "--pruner hyperband stops trials of --estimator pruned, not proxy; drop --pruner or add --estimator pruned",
        ),
        (["--estimator", "proxy", "--epochs", "2"], "--estimator proxy trains no epochs; drop --epochs 2"),
        (
            ["--estimator", "curve", "--epochs", "2"],
            "estimator 'curve' fits epochs 1..k and stops before the last, so it needs epochs >= 3, not 2",
        ),
        (
            ["--estimator", "pruned", "--no-proxy"],
            "--no-proxy sets the one-epoch stop of --estimator full, not pruned; drop --no-proxy",
        ),
        (
            ["--estimator", "proxy", "--proxy-threshold", "0.3"],
            "--proxy-threshold sets the one-epoch stop of --estimator full, not proxy; drop --proxy-threshold",
        ),
        # the surrogate estimator's options
        (
            ["--estimator", "surrogate", "--surrogate-warmup", "1"],
            "surrogate_warmup must be an integer >= 2 (the surrogate fits on the trials trained first), not 1",
        ),
        (
            ["--estimator", "surrogate", "--surrogate-kappa", "nan"],
            "surrogate_kappa must be a finite number >= 0, not nan",
        ),
        (
            ["--surrogate-kappa", "0.5"],
            "--surrogate-kappa 0.5 sets the optimism of --estimator surrogate, not full; drop --surrogate-kappa",
        ),
        (
            ["--estimator", "curve", "--surrogate-warmup", "4"],
            "--surrogate-warmup 4 sets the warm-up of --estimator surrogate, not curve; drop --surrogate-warmup",
        ),
        # the supernet estimator's options
        (
            ["--supernet-epochs", "2"],
            "--supernet-epochs 2 trains the supernets of --estimator supernet, not full; drop --supernet-epochs or "
            "add --estimator supernet",
        ),
        (
            ["--estimator", "supernet", "--epochs", "2"],
            "--estimator supernet trains no epochs per trial (its supernets train --supernet-epochs); drop --epochs 2",
        ),
        (
            ["--estimator", "supernet", "--no-proxy"],
            "--no-proxy sets the one-epoch stop of --estimator full, not supernet; drop --no-proxy",
        ),
    ],
)
def test_errors_are_one_line_before_any_work(argv, message, tmp_path):
    code = (
        "import sys; from mpsim.cli import main; "
        f"rc = main(['nas', *{argv!r}, '--out', {str(tmp_path / 'out')!r}]); "
        "print(rc, sorted(m for m in ('torch', 'optuna', 'numba', 'amaranth') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "2 []\n" and done.stderr == f"mpsim nas: error: {message}\n"
    assert not (tmp_path / "out").exists()


def _complete(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_ctrl_c_keeps_the_finished_trials_and_says_how_to_resume(tmp_path):
    """A real search, Ctrl-C after its first finished trial; then the printed command resumes it."""
    argv = ["nas", "--trials", "30", *TINY, "--arrays", "2x2", "--quiet"]
    out = Path("runs/nas") / "digits_s0_epochs=1,batch-size=128,archs=mlp,accs=e5m6,roundings=nearest,arrays=2x2"
    db = tmp_path / out / "study.db"
    command = [sys.executable, "-m", "mpsim.cli", *argv]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while _complete(db) < 1:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err == (
        f"\nmpsim nas: interrupted; the finished trials are in {out}/study.db; "
        f"to resume: mpsim {' '.join(argv)} --out {out}\n"
    )
    done = _complete(db)
    assert 1 <= done < 30 and (tmp_path / out / "pareto.json").exists()  # the results so far are written
    again = [sys.executable, "-m", "mpsim.cli", "nas", "--trials", str(done), *argv[3:], "--out", str(out)]
    resumed = subprocess.run(again, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert resumed.stdout.splitlines()[0] == (
        f"{out}/study.db holds {done} finished trials of this study, not fewer than --trials {done}: running none; "
        "a larger --trials continues it, another --out or --study-name starts anew"
    )


def test_pareto_png_is_readable(tmp_path):
    import matplotlib.image

    from hls_gen.nas import plot_pareto

    rows = [
        {"trial": i, "accuracy": 0.8 + 0.05 * i, "latency_us": 10.0 * (i + 1), "energy_uj": 1.0 + i, "array": "2x2"}
        for i in range(3)
    ]
    plot_pareto(rows, rows, tmp_path / "pareto.png")
    height, width, _ = matplotlib.image.imread(tmp_path / "pareto.png").shape
    assert width >= 1200 and height >= 520


def _main(argv: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``mpsim nas ARGV`` in a fresh interpreter: (the run, the heavy modules it loaded)."""
    code = (
        "import sys; from mpsim.cli import main; "
        f"rc = main(['nas', *{argv!r}]); "
        "print(rc, sorted(m for m in ('torch', 'optuna', 'numba', 'amaranth') if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    *lines, last = done.stderr.splitlines()
    rc, heavy = last.split(" ", 1)
    done.returncode, done.stderr = int(rc), "".join(line + "\n" for line in lines)
    return done, ast.literal_eval(heavy)


def test_print_space_is_a_template_that_reads_back(tmp_path):
    from hls_gen.nas_space import SearchSpace, load_space, space_yaml

    done, heavy = _main(["--print-space"], tmp_path)
    assert (done.returncode, done.stderr, heavy) == (0, "", [])
    assert done.stdout == space_yaml(SearchSpace())
    (tmp_path / "space.yaml").write_text(done.stdout)
    assert load_space(tmp_path / "space.yaml") == SearchSpace()
    example = Path(__file__).resolve().parents[2] / "examples" / "nas_space.yaml"
    done, _ = _main(["--print-space", "--space", str(example)], tmp_path)
    (tmp_path / "example.yaml").write_text(done.stdout)
    assert load_space(tmp_path / "example.yaml") == load_space(example)
    done, _ = _main(["--print-space", "--accs", "fp16", "--arrays", "2x2"], tmp_path)  # the options' space
    assert _read_printed(done.stdout, tmp_path) == SearchSpace(accs=("fp16",), arrays=("2x2",))


def _read_printed(text: str, folder: Path):
    from hls_gen.nas_space import load_space

    (folder / "printed.yaml").write_text(text)
    return load_space(folder / "printed.yaml")


@pytest.mark.parametrize(
    ("text", "extra", "message", "light"),
    [
        (
            "layer:\n  operands: [e4m3, e9m9]\n",
            [],
            "{file}: layer.operands: impossible format 'e9m9': exponent bits must be 1..8, not 9",
            True,
        ),
        (
            "array: {sizes: [2x2]}\n",
            ["--accs", "fp16"],
            "--space {file} declares the search space; drop --accs or set it in the file",
            True,
        ),
        (
            "layer: [e4m3\n",
            [],
            "space file '{file}', line 2, column 1: expected ',' or ']', but got '<stream end>'",
            True,
        ),
        (
            "layer:\n  roundings: [nearest, {stochastic: {min: 8, max: 40}}]\n",
            [],
            "{file}: layer.roundings stochastic:33: accumulator rounding takes 33 random bits, "
            "more than the 32-bit LFSR holds",
            False,  # the generator's checks load it (Amaranth for the MX PE's limits)
        ),
    ],
)
def test_space_file_errors_are_one_line_before_any_trial(text, extra, message, light, tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    done, heavy = _main(["--space", str(path), *extra, "--out", str(tmp_path / "out")], tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"mpsim nas: error: {message.format(file=path)}\n"
    assert not (tmp_path / "out").exists()
    if light:
        assert heavy == []


def test_a_missing_space_file_is_named(tmp_path):
    done, _ = _main(["--space", "nope.yaml"], tmp_path)
    assert (done.returncode, done.stderr) == (2, "mpsim nas: error: space file 'nope.yaml' not found\n")


def test_a_search_of_a_space_file_prints_and_writes_the_operands(tmp_path, capsys):
    import csv

    from mpsim.cli import main

    space = tmp_path / "space.yaml"
    space.write_text(
        "network: {families: [mlp], mlp: {depth: [0]}}\n"
        "layer: {operands: [e5m2, e3m2], accumulators: [fp16], roundings: [nearest]}\narray: {sizes: [2x2]}\n"
    )
    out = tmp_path / "out"
    argv = ["nas", "--space", str(space), "--trials", "1", "--epochs", "1", "--batch-size", "128", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    with open(out / "trials.csv") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["muls"] in ("e5m2", "e3m2") and row["array_config"] == f"mac_{row['muls']}_fp16_rne_2x2"
    front = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  trial")]
    assert len(front) == 1 and front[0].endswith(f", array 2x2, L10/fp16/rn, operands {row['muls']}")


def test_a_proxy_search_prints_scores_and_records_its_estimator(tmp_path, capsys):
    import csv

    from mpsim.cli import main

    out = tmp_path / "out"
    argv = ["nas", "--estimator", "proxy", "--trials", "2", "--batch-size", "128", "--archs", "mlp", "--quiet"]
    assert main([*argv, "--arrays", "2x2", "--out", str(out)]) == 0
    with open(out / "trials.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {(r["estimator"], r["epochs"], r["pruned"]) for r in rows} == {("proxy", "0", "False")}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("2 finished trials, ") and "(proxy score up, latency down, energy down):" in printed[0]
    assert all(line.startswith("  trial") and ": proxy score " in line for line in printed[1:-1])


def test_a_pruned_search_defaults_to_hyperband_and_records_it(tmp_path, capsys):
    import json

    from mpsim.cli import main

    out = tmp_path / "out"
    argv = ["nas", "--estimator", "pruned", "--trials", "1", *TINY[2:], "--epochs", "2", "--quiet"]
    assert main([*argv, "--arrays", "2x2", "--out", str(out)]) == 0
    config = json.loads((out / "pareto.json").read_text())["config"]
    assert (config["estimator"], config["pruner"], config["proxy_threshold"]) == ("pruned", "hyperband", None)
    assert capsys.readouterr().out.splitlines()[0].startswith("1 finished trials, 1 on the Pareto front (accuracy up")
