"""The ``mpsim`` command: every subcommand has --help, tables and JSON agree with the library."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import time

import ml_dtypes
import numpy as np
import pytest

import mpsim
import mpsim.extras
from mpsim.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_known_subcommands_exist():
    assert {"formats", "quantize", "train"} <= set(_subcommands())


@pytest.mark.parametrize("command", [None, *_subcommands()])
def test_every_subcommand_has_help(command, capsys):
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mpsim") and (command is None or command in out.splitlines()[0])


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_formats_table_lists_every_preset(capsys):
    assert main(["formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["name", "bits"]
    names = {line.split()[0] for line in lines[2:]}
    assert names == {str(mpsim.parse_format(n)) for n in mpsim.formats.PRESETS}


def test_formats_json_matches_ml_dtypes(capsys):
    assert main(["formats", "e4m3", "e5m2", "--json", "-"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, dtype in [("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2)]:
        row, info = rows[str(mpsim.parse_format(name))], ml_dtypes.finfo(dtype)
        assert row["max"] == float(info.max)
        assert row["smallest_normal"] == float(info.smallest_normal)
        assert row["smallest_subnormal"] == float(info.smallest_subnormal)
        assert row["eps"] == float(info.eps)
        assert row["bits"] == 8


def test_formats_lists_mx_formats_with_the_scales_share(capsys):
    gfloat_formats = pytest.importorskip("gfloat.formats")
    assert main(["formats", "mxfp8_e4m3", "mxfp4_e2m1", "mx:e3m4:b16", "e4m3", "--json", "-"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, info in (
        ("mxfp8_e4m3", gfloat_formats.format_info_mxfp8_e4m3),
        ("mxfp4_e2m1", gfloat_formats.format_info_mxfp4_e2m1),
    ):
        assert rows[name]["bits_per_element"] == info.block_size_bytes * 8 / info.k  # 8 + 8/32, 4 + 8/32
        assert rows[name]["block_size"] == info.k and rows[name]["element_max"] == info.etype.max
    assert rows["mx:e3m4:b16"]["bits_per_element"] == 8 + 8 / 16
    assert rows["e4m3"]["bits"] == 8


def test_quantize_refuses_an_mx_format_in_one_line(capsys):
    assert main(["quantize", "mxfp8_e4m3", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mpsim quantize: error: unknown format 'mxfp8_e4m3': "
        "MX block formats (mxfp8_e4m3, ...) are for mpsim.quantize_mx"
    )


def test_unknown_format_is_a_clear_error(capsys):
    assert main(["formats", "e4m3x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpsim formats: error:") and "'e4m3x'" in err


def test_quantize_prints_bits_that_ml_dtypes_agrees_with(capsys):
    values = ["0.3", "-1.7", "400", "1e-9", "-0.0"]
    assert main(["quantize", "e4m3", *values, "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)["values"]
    want = np.array([float(v) for v in values]).astype(ml_dtypes.float8_e4m3fn)
    assert [int(r["bits"], 16) for r in rows] == want.view(np.uint8).tolist()
    assert [r["quantized"] for r in rows] == want.astype(np.float64).tolist()


def test_quantize_npy_round_trip(tmp_path, capsys):
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    argv = [
        "quantize",
        "e5m2",
        "-i",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "q.npy"),
        "-r",
        "stochastic:8",
        "--seed",
        "4",
    ]
    assert main(argv) == 0
    got = np.load(tmp_path / "q.npy")
    np.testing.assert_array_equal(got, mpsim.quantize(x, "e5m2", "stochastic:8", seed=4))


def test_quantize_without_values_is_an_error(capsys):
    assert main(["quantize", "e4m3"]) == 2
    assert (
        capsys.readouterr().err
        == "mpsim quantize: error: no values: mpsim quantize FORMAT VALUE... (or --input FILE.npy)\n"
    )


def test_train_writes_metrics_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--epochs", "2", "--hidden", "16", "--precision", "e5m2-sr", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["config"]["precision"] == "e5m2-sr"
    assert metrics["final_test_accuracy"] > 0.5  # two epochs of digits: far above chance (0.1)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test accuracy" in capsys.readouterr().out


def test_train_bad_precision_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--precision", "e9m9-sr", "--out", str(tmp_path), "--quiet"]) == 2
    assert "'e9m9-sr'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any work


def test_formats_json_to_a_file(tmp_path, capsys):
    path = tmp_path / "sub" / "formats.json"
    assert main(["formats", "fp16", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("name  bits") and out.endswith(f"\nwrote {path}\n")
    assert json.loads(path.read_text())[0]["name"] == str(mpsim.parse_format("fp16"))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"mpsim {mpsim.__version__}\n"


def _one_error(capsys, argv: list[str], status: int = 2) -> str:
    """The single line a user error prints (stderr), with nothing on stdout."""
    with pytest.raises(SystemExit) if argv and argv[0] == "--parse" else _no_raise() as info:
        code = main(argv[1:] if argv and argv[0] == "--parse" else argv)
    if info is not None:
        code = info.value.code
    assert code == status
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    return err.rstrip("\n")


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["--parse", "quantize"],
            "mpsim quantize: error: the following arguments are required: format (see mpsim quantize --help)",
        ),
        (
            ["quantize", "e4m3", "abc"],
            "mpsim quantize: error: not a number: 'abc' (usage: mpsim quantize FORMAT VALUE...)",
        ),
        (
            ["quantize", "e9m9", "1"],
            "mpsim quantize: error: impossible format 'e9m9': exponent bits must be 1..8, not 9",
        ),
        (
            ["quantize", "e4m3", "1", "-r", "stochastic:0"],
            "mpsim quantize: error: unknown rounding 'stochastic:0': random-bit count must be 1..62 "
            "('stochastic' alone rounds exactly), not '0'",
        ),
        (
            ["--parse", "train", "--epochs", "0"],
            "mpsim train: error: argument --epochs: expected a positive int, not '0' (see mpsim train --help)",
        ),
        (
            ["--parse", "train", "--lr", "-1"],
            "mpsim train: error: argument --lr: expected a positive float, not '-1' (see mpsim train --help)",
        ),
        (
            ["train", "--dataset", "mnist"],
            "mpsim train: error: dataset 'mnist' reads local files, nothing is downloaded: give the folder with the "
            "four IDX files or mnist.npz (--data-root DIR on the command line, root= in Python)",
        ),
        (
            ["train", "--weight-format", "e4m3x"],
            "mpsim train: error: unknown format 'e4m3x'",
        ),
    ],
)
def test_user_errors_are_one_line(capsys, argv, line):
    got = _one_error(capsys, argv)
    assert got == line or (line.endswith("'e4m3x'") and got.startswith(line))


def test_bad_input_files_are_one_line(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros(0))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    (tmp_path / "junk.npy").write_text("not an array")
    empty, text, junk = (str(tmp_path / n) for n in ("empty.npy", "text.npy", "junk.npy"))
    assert (
        _one_error(capsys, ["quantize", "e4m3", "-i", empty])
        == f"mpsim quantize: error: --input {empty!r} holds no values"
    )
    assert _one_error(capsys, ["quantize", "e4m3", "-i", text]) == (
        f"mpsim quantize: error: --input {text!r} holds <U1 values, not numbers"
    )
    assert _one_error(capsys, ["quantize", "e4m3", "-i", junk]).startswith(
        f"mpsim quantize: error: --input {junk!r} is not a .npy array of numbers ("
    )
    missing = str(tmp_path / "missing.npy")
    assert (
        _one_error(capsys, ["quantize", "e4m3", "-i", missing])
        == f"mpsim quantize: error: --input {missing!r} not found"
    )
    bad_yaml = tmp_path / "p.yaml"
    bad_yaml.write_text("layers: [unclosed\n")
    line = _one_error(capsys, ["train", "--precision", str(bad_yaml), "--out", str(tmp_path / "run")])
    problem = "expected ',' or ']', but got '<stream end>'"
    assert line == f"mpsim train: error: precision config {str(bad_yaml)!r}, line 2, column 1: {problem}"
    bad_json = tmp_path / "p.json"
    bad_json.write_text('{"layers": \n  [1,}')
    line = _one_error(capsys, ["train", "--precision", str(bad_json)])
    assert line == f"mpsim train: error: precision config {str(bad_json)!r}, line 2, column 6: Expecting value"
    line = _one_error(capsys, ["train", "--precision", str(tmp_path / "none.yaml")])
    assert line == f"mpsim train: error: precision config {str(tmp_path / 'none.yaml')!r} not found"


def test_debug_shows_the_traceback(capsys, monkeypatch):
    assert main(["--debug", "quantize", "e4m3", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.endswith(
        "mpsim quantize: error: not a number: 'abc' (usage: mpsim quantize FORMAT VALUE...)\n"
    )
    monkeypatch.setenv("MPSIM_DEBUG", "1")
    assert main(["quantize", "e4m3", "abc"]) == 2
    assert capsys.readouterr().err.startswith("Traceback")


def test_a_dash_value_reaches_the_options_own_check():
    from mpsim.cli import attach_dash_values, build_parser

    parser = build_parser()
    argv = ["emit", "--mul", "e4m3", "--array", "-2x3", "--quiet"]
    assert attach_dash_values(parser, argv) == ["emit", "--mul", "e4m3", "--array=-2x3", "--quiet"]
    # a real option after an option is left alone (argparse then says the value is missing)
    assert attach_dash_values(parser, ["train", "--out", "--quiet"]) == ["train", "--out", "--quiet"]
    assert attach_dash_values(parser, ["quantize", "e4m3", "-1", "-2.5"]) == ["quantize", "e4m3", "-1", "-2.5"]


def test_quantize_takes_negative_values(capsys):
    assert main(["quantize", "e4m3", "-1", "-2.5", "--json", "-"]) == 0
    assert [r["quantized"] for r in json.loads(capsys.readouterr().out)["values"]] == [-1.0, -2.5]


def test_a_finished_run_says_so_and_force_trains_again(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--epochs", "1", "--hidden", "8", "--precision", "fp32", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    first = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(argv) == 0
    acc = first["history"][-1]["test_accuracy"]
    assert capsys.readouterr().out == (
        f"{out} holds this run, finished: test accuracy {acc:.4f} after 1 epochs; to train again: "
        f"mpsim train --epochs 1 --hidden 8 --precision fp32 --out {out} --quiet --force, or another --out\n"
    )
    (out / "metrics.json").write_text("{}")  # stands for a different run: retrained only with --force
    assert main([*argv, "--force"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert [r["test_accuracy"] for r in again["history"]] == [r["test_accuracy"] for r in first["history"]]


def test_doctor_lists_every_extra_and_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MPSIM_COSIM_CACHE", str(tmp_path / "cosim"))
    (tmp_path / "cosim" / "build").mkdir(parents=True)
    (tmp_path / "cosim" / "build" / "model.o").write_bytes(b"x" * 2500)
    assert main(["doctor", "--json", "-"]) in (0, 1)
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert {f"extra [{e}]" for e in mpsim.extras.EXTRA_MODULES} <= set(rows)
    assert rows["cache cosim"]["found"] == f"2.5 kB in {tmp_path / 'cosim'}"
    assert all(r["fix"] for r in rows.values() if r["status"] == "missing")


def test_cache_info_and_clear(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MPSIM_SYNTH_CACHE", str(tmp_path / "synth"))
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "a.json").write_text("{}" * 100)
    assert main(["cache", "info", "synth"]) == 0
    assert capsys.readouterr().out == f"synth      200 B  {tmp_path / 'synth'}\n"
    assert main(["cache", "clear", "synth"]) == 0
    assert capsys.readouterr().out == "synth  removed 1 files, 200 B\n"
    assert not (tmp_path / "synth").exists()


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path):
    """SIGINT to a real ``mpsim train`` after its first epoch: one line, exit 130, and the command resumes."""
    out = tmp_path / "run"
    argv = ["train", "--epochs", "100000", "--hidden", "8", "--precision", "fp32", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpsim.cli", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    command = shlex.join(["mpsim", *argv])
    assert (stdout, stderr) == (
        "",
        f"\nmpsim train: interrupted; the finished epochs are in {out}/checkpoint.pt; to resume: {command}\n",
    )
