"""The ``mpsim`` command: every subcommand has --help, tables and JSON agree with the library."""

from __future__ import annotations

import argparse
import json

import ml_dtypes
import numpy as np
import pytest

import mpsim
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
    assert main(["formats", "e4m3", "e5m2", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, dtype in [("e4m3", ml_dtypes.float8_e4m3fn), ("e5m2", ml_dtypes.float8_e5m2)]:
        row, info = rows[str(mpsim.parse_format(name))], ml_dtypes.finfo(dtype)
        assert row["max"] == float(info.max)
        assert row["smallest_normal"] == float(info.smallest_normal)
        assert row["smallest_subnormal"] == float(info.smallest_subnormal)
        assert row["eps"] == float(info.eps)
        assert row["bits"] == 8


def test_unknown_format_is_a_clear_error(capsys):
    assert main(["formats", "e4m3x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpsim formats: error:") and "'e4m3x'" in err


def test_quantize_prints_bits_that_ml_dtypes_agrees_with(capsys):
    values = ["0.3", "-1.7", "400", "1e-9", "-0.0"]
    assert main(["quantize", *values, "-f", "e4m3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["values"]
    want = np.array([float(v) for v in values]).astype(ml_dtypes.float8_e4m3fn)
    assert [int(r["bits"], 16) for r in rows] == want.view(np.uint8).tolist()
    assert [r["quantized"] for r in rows] == want.astype(np.float64).tolist()


def test_quantize_npy_round_trip(tmp_path, capsys):
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    argv = [
        "quantize",
        "-i",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "q.npy"),
        "-f",
        "e5m2",
        "-r",
        "stochastic:8",
        "--seed",
        "4",
    ]
    assert main(argv) == 0
    got = np.load(tmp_path / "q.npy")
    np.testing.assert_array_equal(got, mpsim.quantize(x, "e5m2", "stochastic:8", seed=4))


def test_quantize_without_values_is_an_error(capsys):
    assert main(["quantize"]) == 2
    assert "give values to quantize" in capsys.readouterr().err


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
