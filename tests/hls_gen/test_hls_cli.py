"""``mpsim emit``: found through the mpsim.commands entry point, writes DIR/NAME.v and DIR/NAME.json."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from mpsim.cli import main


def strip_header(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.startswith("//"))


def test_emit_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "designs"
    args = ["emit", "--mul", "e4m3", "--acc", "e5m6", "--rounding", "stochastic:8", "--array", "2x2", "--out", str(out)]
    assert main(args) == 0
    name = out / "mac_e4m3_e5m6_sr8_2x2"
    assert capsys.readouterr().out.strip() == f"wrote {name}.v and {name}.json"
    manifest = json.loads(name.with_suffix(".json").read_text())
    assert manifest["config"]["rows"] == 2 and manifest["modes"][0]["formats"]["acc"]["name"] == "e5m6"
    assert manifest["command"] == (
        "mpsim emit --mul e4m3 --acc e5m6 --rounding stochastic:8 --array 2x2 --pipeline 1 --lfsr-width 32 "
        "--lfsr-seed 1"
    )
    # The command in the Verilog header writes the same design again.
    header = name.with_suffix(".v").read_text().splitlines()[1].removeprefix("//").strip()
    assert header == f"{manifest['command']} --out {out}"
    first = strip_header(name.with_suffix(".v"))
    name.with_suffix(".v").unlink()
    assert main(shlex.split(header)[1:]) == 0
    assert strip_header(name.with_suffix(".v")) == first


def test_emit_default_folder_and_mixed_operands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["emit", "--mul", "e4m3,e5m2", "--acc", "fp16", "--product", "e5m6", "--product-rounding", "stochastic:4"]
    assert main([*args, "--pipeline", "2"]) == 0
    name = tmp_path / "runs" / "emit" / "mac_e4m3xe5m2_fp16_pe5m6sr4_rne_1x1_pl2"
    assert name.with_suffix(".v").is_file() and name.with_suffix(".json").is_file()


def test_lfsr_seed(tmp_path: Path) -> None:
    args = ["emit", "--mul", "e4m3", "--acc", "e5m6", "--rounding", "stochastic:8", "--lfsr-seed", "7"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    (manifest,) = tmp_path.glob("*.json")
    assert manifest.name == "mac_e4m3_e5m6_sr8_1x1_lfsr32s7.json"
    assert json.loads(manifest.read_text())["config"]["lfsr_seed"] == 7


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


def test_emit_precisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two training precisions: one array with a mode per distinct GEMM arithmetic, listed in the manifest."""
    args = ["emit", "--precision", "e4m3-sr", "--precision", "bf16", "--array", "2x2", "--interleave", "4"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    name = tmp_path / "mac_e4m3_sr_bf16_2x2_il4"
    assert capsys.readouterr().out.strip() == f"wrote {name}.v and {name}.json"
    manifest = json.loads(name.with_suffix(".json").read_text())
    assert [
        (m["formats"]["a"]["name"], m["formats"]["b"]["name"], m["formats"]["acc"]["name"]) for m in manifest["modes"]
    ] == [("e4m3", "e4m3", "fp16"), ("e5m2", "e4m3", "fp16"), ("e4m3", "e5m2", "fp16"), ("bf16", "bf16", "bf16")]
    assert manifest["command"].startswith("mpsim emit --precision e4m3-sr --precision bf16 --array 2x2 ")
    # The recorded command writes the same design again.
    again = tmp_path / "again"
    assert main([*shlex.split(manifest["command"])[1:], "--out", str(again)]) == 0
    assert strip_header(again / f"{name.name}.v") == strip_header(name.with_suffix(".v"))


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--precision", "e4m3-sr", "--mul", "e4m3"],
            "--precision names the modes' formats and roundings; drop --mul e4m3",
        ),
        (
            ["--precision", "e4m3-sr", "--rounding", "nearest"],
            "--precision names the modes' formats and roundings; drop --rounding nearest",
        ),
        (
            ["--precision", "fp32"],
            "precision 'fp32': its forward GEMM is left to torch in fp32 (emulate=False); "
            "the hardware needs an accumulator format and a rounding",
        ),
        (["--precision", "bf16", "--precision", "bf16"], "--precision bf16 is given twice"),
        (["--precision", "missing.yaml"], "--precision missing.yaml: "),
        (
            ["--precision", "bf16", "--unit", "multiplier"],
            "--precision is for a MAC or an array, not --unit multiplier",
        ),
        (
            ["--precision", "e4m3-sr", "--precision", "bf16", "--interleave", "17"],
            "MAC interleave must be 1..16, not 17",
        ),
    ],
)
def test_emit_precision_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emit", *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mpsim emit: error: {message}") and "\n" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("size", ["4by4", "0x4", "-2x3"])
@pytest.mark.parametrize("spaced", [False, True])
def test_bad_array_size(size: str, spaced: bool, capsys: pytest.CaptureFixture[str]) -> None:
    array = ["--array", size] if spaced else [f"--array={size}"]  # mpsim.cli.main joins a value that starts with -
    with pytest.raises(SystemExit) as info:
        main(["emit", "--mul", "e4m3", "--acc", "fp16", *array])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"mpsim emit: error: argument --array: array size must be ROWSxCOLS with both at least 1, such as 4x4, "
        f"not {size!r} (see mpsim emit --help)"
    )


def test_seed_is_now_lfsr_seed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["emit", "--mul", "e4m3", "--acc", "fp16", "--seed", "3"])
    assert capsys.readouterr().err.strip() == (
        "mpsim emit: error: unrecognized arguments: --seed 3 (see mpsim emit --help)"
    )


def test_interleave_auto_is_the_loop_depth(tmp_path: Path) -> None:
    """``--interleave auto``: one register per logic stage of the accumulate loop, as many sums as stages."""
    from hls_gen.spec import LOOP_CUTS, LOOP_DEPTH

    assert len(LOOP_CUTS[LOOP_DEPTH]) + 1 == LOOP_DEPTH  # the cuts plus the result register close the loop
    assert all(len(cuts) == sums - 1 for sums, cuts in LOOP_CUTS.items())  # below it, every sum a stage
    assert main(["emit", "--mul", "e4m3", "--acc", "e5m6", "--interleave", "auto", "--out", str(tmp_path)]) == 0
    (manifest,) = tmp_path.glob("*.json")
    assert json.loads(manifest.read_text())["config"]["interleave"] == LOOP_DEPTH


@pytest.mark.parametrize("value", ["0", "eight", "-1"])
def test_bad_interleave(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["emit", "--mul", "e4m3", "--acc", "fp16", f"--interleave={value}"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"mpsim emit: error: argument --interleave: expected a positive integer or 'auto', not {value!r} "
        "(see mpsim emit --help)"
    )
