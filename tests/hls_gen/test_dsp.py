"""``dsp="ecp5"``: the PE's multiplier as a MULT18X18D instance with its input and output registers.

What the instance computes is checked in simulation (tests/sim/test_cosim.py, against mpsim); here: the
one-line errors, what the Verilog and the manifest carry, and that Yosys keeps the block with its registers on
and drops the fabric registers it replaces.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hls_gen.emit import ArrayConfig, emit
from hls_gen.manifest import ArrayManifest
from hls_gen.synth import SynthOptions, synthesize
from mpsim.cli import main

DSP = dict(a_format="e4m3", acc_format="e5m6", pipeline=2, dsp="ecp5")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({**DSP, "pipeline": 1}, r"^dsp 'ecp5' uses the MULT18X18D's input and output registers, .*not 1$"),
        ({**DSP, "pipeline": 0}, r"give pipeline 2, not 0$"),
        ({**DSP, "product_format": "e5m6"}, r"^dsp 'ecp5' registers the exact product in the block; a rounded"),
        ({**DSP, "dsp": "dsp48"}, r"^dsp must be one of inferred, ecp5, not 'dsp48'$"),
        ({**DSP, "dsp": None}, r"^dsp must be one of inferred, ecp5, not None$"),
    ],
)
def test_unbuildable_dsp_is_one_line(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        ArrayConfig(**kwargs).build()
    assert "\n" not in str(error.value)


def test_cli_refuses_bad_dsp(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["emit", "--mul", "e4m3", "--acc", "e5m6", "--dsp", "ecp5", "--out", str(tmp_path)]
    assert main([*argv, "--pipeline", "1"]) == 2
    assert "give pipeline 2, not 1" in capsys.readouterr().err
    assert main(["emit", "--unit", "multiplier", "--mul", "e4m3", "--dsp", "ecp5", "--out", str(tmp_path)]) == 2
    assert "--dsp is for a MAC or an array" in capsys.readouterr().err
    with pytest.raises(SystemExit) as parse_error:  # argparse's choices: usage line and exit status 2
        main([*argv[:-2], "--dsp", "dsp48"])
    assert parse_error.value.code == 2 and "invalid choice: 'dsp48'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_verilog_has_one_block_per_pe_and_its_model_outside_synthesis(tmp_path: Path) -> None:
    config = ArrayConfig(**{**DSP, "rows": 2, "cols": 3, "interleave": 4})
    verilog, manifest_path = emit(config, tmp_path / config.name)
    text = verilog.read_text()
    assert config.name.endswith("_pl2_il4_dspecp5") and "--dsp ecp5" in config.command()
    assert len(re.findall(r"^\s*MULT18X18D\s*#", text, flags=re.M)) == 6  # instances, one per PE
    model = text.index("`ifndef SYNTHESIS\n")
    assert text.index("module MULT18X18D") > model and text.rindex("`endif") > text.index("module MULT18X18D")
    assert text.count("module MULT18X18D") == 1
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert len(re.findall(rf'\.REG_{register}_CLK\("CLK0"\)', text)) == 6
    manifest = ArrayManifest.from_json(json.loads(manifest_path.read_text()))
    assert ArrayConfig.from_manifest(manifest) == config
    assert manifest.pipeline == 2


def test_inferred_verilog_has_no_instance(tmp_path: Path) -> None:
    config = ArrayConfig(**{**DSP, "dsp": "inferred"})
    verilog, _ = emit(config, tmp_path / config.name)
    assert "MULT18X18D" not in verilog.read_text() and "dsp" not in config.name


@pytest.mark.slow  # two real Yosys runs
def test_yosys_keeps_the_block_with_its_registers(tmp_path: Path) -> None:
    """The instance survives synth_ecp5 with A, B and P registered in the block; the fabric registers it replaces
    (the operands' significands, 4 + 4 bits for e4m3, and the 8-bit product) are gone; nothing else changes."""
    options = SynthOptions(pnr=False, timeout_s=900)
    block = synthesize(ArrayConfig(**DSP), options, cache=tmp_path / "cache", workdir=tmp_path / "block")
    inferred = synthesize(ArrayConfig(**{**DSP, "dsp": "inferred"}), options, cache=tmp_path / "cache")
    assert block.dsps == inferred.dsps == 1
    assert inferred.ffs - block.ffs == 4 + 4 + 8
    netlist = json.loads((tmp_path / "block" / "netlist.json").read_text())
    (cells,) = [
        cell
        for module in netlist["modules"].values()
        for cell in module["cells"].values()
        if cell["type"] == "MULT18X18D"
    ]
    parameters = cells["parameters"]
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert parameters[f"REG_{register}_CLK"] == "CLK0"
    assert parameters["REG_PIPELINE_CLK"] == "NONE"
