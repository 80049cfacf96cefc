"""Arrays whose PEs multiply in an instantiated MULT18X18D (``dsp="ecp5"``), simulated with the model appended to
their Verilog, against mpsim bit for bit; a model that computes something else must fail the same bench."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hls_gen.emit import ArrayConfig, emit
from sim.runner import cosimulate, simulator_available
from sim.vectors import Stimulus

ICARUS = pytest.mark.skipif(
    not simulator_available("icarus"), reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog"
)

DSP_ARRAYS = [
    (
        ArrayConfig(
            a_format="e4m3",
            acc_format="fp16",
            rounding="stochastic:8",
            rows=2,
            cols=2,
            interleave=4,
            pipeline=2,
            dsp="ecp5",
        ),
        "verilator",
    ),
    (ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=1, cols=2, interleave=2, pipeline=2, dsp="ecp5"), "icarus"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, simulator",
    [pytest.param(c, s, marks=ICARUS if s == "icarus" else (), id=f"{c.name}-{s}") for c, s in DSP_ARRAYS],
)
def test_dsp_arrays_match_mpsim(
    config: ArrayConfig, simulator: str, designs: Path, cosim_cache: Path, tmp_path: Path
) -> None:
    """Stochastic rounding, interleaved sums, back-pressure, and (two-mode array) jobs switching mode."""
    _, manifest = emit(config, designs / config.name)
    report = cosimulate(
        manifest,
        simulator=simulator,
        stimulus=Stimulus(seed=11, steps=1_500, backpressure=0.2),
        opt="O0",
        cache_dir=cosim_cache,
        run_dir=tmp_path,
    )
    assert report.passed, report.format()
    assert report.vectors_checked > 50 and report.mismatches == 0


@pytest.mark.slow
def test_a_wrong_block_model_is_caught(designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """The bench reads the block's product: a model one unit off in P gives mismatches."""
    config = DSP_ARRAYS[0][0]
    verilog, manifest = emit(config, designs / config.name)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    text = verilog.read_text()
    assert text.count("p_q <= a_q * b_q;") == 1
    (wrong / verilog.name).write_text(text.replace("p_q <= a_q * b_q;", "p_q <= a_q * b_q + 36'd1;"))
    shutil.copy(manifest, wrong / manifest.name)
    report = cosimulate(
        wrong / manifest.name,
        stimulus=Stimulus(seed=11, steps=400),
        opt="O0",
        cache_dir=cosim_cache,
        run_dir=tmp_path / "run",
        waves_on_failure=False,
    )
    assert not report.passed and report.mismatches > 0
