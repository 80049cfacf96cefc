"""``mpsim emit``: found through the mpsim.commands entry point, writes .v and .json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpsim.cli import main


def test_emit_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mac_e4m3_e5m6_sr8_2x2"
    assert (
        main(
            [
                "emit",
                "--mul",
                "e4m3",
                "--acc",
                "e5m6",
                "--rounding",
                "stochastic:8",
                "--array",
                "2x2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == f"wrote {out}.v and {out}.json"
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["config"]["rows"] == 2 and manifest["formats"]["acc"]["name"] == "e5m6"
    assert manifest["command"].startswith("mpsim emit --mul e4m3 --acc e5m6 --rounding stochastic:8 --array 2x2")


def test_emit_default_name_and_mixed_operands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [
        "emit",
        "--mul",
        "e4m3,e5m2",
        "--acc",
        "fp16",
        "--product",
        "e5m6",
        "--product-rounding",
        "stochastic:4",
        "--pipeline",
        "2",
    ]
    assert main(args) == 0
    assert (tmp_path / "mac_e4m3xe5m2_fp16_pe5m6sr4_rne_1x1_pl2.v").is_file()
    assert (tmp_path / "mac_e4m3xe5m2_fp16_pe5m6sr4_rne_1x1_pl2.json").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--mul", "e4m3", "--acc", "q8.8"],
            "mpsim emit: error: accumulator format must be a floating-point format, not fixed-point q8.8: "
            "the hardware generator has no fixed-point datapath",
        ),
        (
            ["--mul", "fp32", "--acc", "fp32"],
            "mpsim emit: error: multiplier operand format a must be at most 16 bits wide, not fp32 (32 bits): "
            "the multiplier supports FP4..FP16/bf16 operands",
        ),
        (
            ["--mul", "e4m3,e5m2,e3m2", "--acc", "fp16"],
            "mpsim emit: error: --mul must be one format or two separated by a comma (A,B), not 'e4m3,e5m2,e3m2'",
        ),
        (
            ["--mul", "e4m3", "--acc", "fp16", "--rounding", "stochastic"],
            "mpsim emit: error: accumulator rounding must give its random bits, 'stochastic:K', not exact "
            "'stochastic': the LFSR hands out K bits per rounding",
        ),
    ],
)
def test_emit_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emit", *args, "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not list(tmp_path.iterdir())


def test_bad_array_size(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emit", "--mul", "e4m3", "--acc", "fp16", "--array", "4by4"])
    assert "array size must be ROWSxCOLS such as 4x4, not '4by4'" in capsys.readouterr().err
