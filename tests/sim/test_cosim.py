"""The emitted Verilog on Verilator (and Icarus), driven by cocotb, against mpsim bit for bit.

Expected results come from mpsim alone (sim.vectors: mpsim.quantize, and
mpsim.qmatmul with the manifest's LFSRGrid); a flipped expected bit must be
reported, so the benches can fail.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hls_gen.emit import ArrayConfig, MultiplierConfig, emit
from hls_gen.regen import RTL_DIR
from mpsim.cli import main
from sim.runner import cosimulate, simulator_available
from sim.vectors import Stimulus
from tests.hls_gen.mode_sets import MODE_SETS

ICARUS = pytest.mark.skipif(
    not simulator_available("icarus"), reason="Icarus Verilog (iverilog) is not installed: apt-get install iverilog"
)


def multiplier(designs: Path, config: MultiplierConfig) -> Path:
    _, manifest = emit(config, designs / config.name)
    return manifest


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        # 16 lanes: 4,096 cycles of bench loop, a quarter of the 64-lane design's C++ to build
        MultiplierConfig(a_format="e4m3", lanes=16),
        MultiplierConfig(a_format="e4m3", b_format="e5m2", out_format="e5m6", rounding="stochastic:6", lanes=16),
    ],
    ids=lambda c: c.name,
)
def test_multiplier_every_pair(config: MultiplierConfig, designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """Every one of the 65,536 operand pairs: exact product, and product rounded stochastically from LFSR draws.

    The only exhaustive run of these two multipliers (tests/hls_gen/test_multiplier.py runs a sample).
    """
    report = cosimulate(
        multiplier(designs, config), stimulus=Stimulus(lfsr_seed=5), opt="O0", cache_dir=cosim_cache, run_dir=tmp_path
    )
    assert report.passed, report.format()
    assert (report.vectors_checked, report.mismatches, report.cycles) == (65_536, 0, 65_536 // config.lanes)


@pytest.mark.slow
@pytest.mark.parametrize("preset, backpressure", [("mac_e4m3_e5m6_rne_1x1", 0.0), ("mac_e4m3_e5m6_sr8_1x1", 0.1)])
def test_mac_sequences(preset: str, backpressure: float, cosim_cache: Path, tmp_path: Path) -> None:
    """20,000 MAC steps in sequences of 1..32, edge values and exact cancellations; SR from the PE's LFSR."""
    stimulus = Stimulus(seed=3, steps=20_000, backpressure=backpressure)
    report = cosimulate(
        RTL_DIR / f"{preset}.json", stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path
    )
    assert report.passed, report.format()
    assert report.macs_checked >= 20_000 and report.mismatches == 0
    assert report.latency == json.loads((RTL_DIR / f"{preset}.json").read_text())["latency"]["last_beat_to_out_valid"]


@pytest.mark.slow
def test_array_4x4_random_matrices(cosim_cache: Path, tmp_path: Path) -> None:
    """Random products with partial tiles, edge values, back-pressure on both streams; 16 LFSRs."""
    stimulus = Stimulus(seed=11, steps=3_000, backpressure=0.3)
    report = cosimulate(
        RTL_DIR / "mac_e4m3_e5m6_sr8_4x4.json", stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path
    )
    assert report.passed, report.format()
    assert report.vectors_checked > 1_000 and report.mismatches == 0 and report.cycles > 3_000


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2, interleave=8),
        # the multiplier a MULT18X18D instance, simulated with the model the Verilog carries (hls_gen.dsp)
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
        ArrayConfig(
            a_format="e4m3",
            b_format="e5m2",
            acc_format="bf16",
            product_format="e5m6",
            product_rounding="stochastic:4",
            pipeline=2,
            interleave=3,
        ),
    ],
    ids=lambda c: c.name,
)
def test_interleaved_arrays(config: ArrayConfig, designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """Pipelined PEs holding L sums in turn: random products, back-pressure on both streams, the manifest's latency."""
    _, manifest = emit(config, designs / config.name)
    report = cosimulate(
        manifest,
        stimulus=Stimulus(seed=5, steps=2_000, backpressure=0.2),
        opt="O0",
        cache_dir=cosim_cache,
        run_dir=tmp_path,
    )
    assert report.passed, report.format()
    assert report.vectors_checked > 100 and report.mismatches == 0
    assert report.latency == json.loads(manifest.read_text())["latency"]["last_beat_to_out_valid"]


MODE_ARRAYS = [
    (ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=2, interleave=4), "verilator"),
    (ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=2, interleave=4), "icarus"),
    (
        ArrayConfig(
            modes=MODE_SETS["unfused-mixed"],
            rows=1,
            cols=3,
            pipeline=2,
            lfsr_width=24,
            lfsr_seed=5,
        ),
        "verilator",
    ),
    (ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=1, cols=2, interleave=2, pipeline=2, dsp="ecp5"), "icarus"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, simulator",
    [pytest.param(c, s, marks=ICARUS if s == "icarus" else (), id=f"{c.name}-{s}") for c, s in MODE_ARRAYS],
)
def test_modes_switching_job_by_job(
    config: ArrayConfig, simulator: str, designs: Path, cosim_cache: Path, tmp_path: Path
) -> None:
    """A multi-mode array: products take the modes in turn, so jobs switch mode back to back; every mode checked."""
    _, manifest = emit(config, designs / config.name)
    report = cosimulate(
        manifest,
        simulator=simulator,
        stimulus=Stimulus(seed=9, steps=2_500, backpressure=0.2),
        opt="O0",
        cache_dir=cosim_cache,
        run_dir=tmp_path,
    )
    assert report.passed, report.format()
    modes = len(json.loads(manifest.read_text())["modes"])
    assert len(report.mode_results) == modes and min(report.mode_results) > 20, report.format()
    assert report.mode_switches >= modes, report.format()
    assert "jobs switch mode back to back" in report.format()


@pytest.mark.slow
def test_a_wrong_block_model_is_caught(designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """The bench reads the MULT18X18D model's product: a model one unit off in P gives mismatches."""
    config = ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=1, cols=2, interleave=2, pipeline=2, dsp="ecp5")
    verilog, manifest = emit(config, designs / config.name)
    text = verilog.read_text()
    assert text.count("p_q <= a_q * b_q;") == 1
    wrong = tmp_path / "wrong"
    wrong.mkdir()
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


@pytest.mark.slow
def test_flipped_expectation_is_reported(cosim_cache: Path, tmp_path: Path) -> None:
    """One flipped bit in mpsim's expected results: exactly that mismatch, shown as bits, with a waveform."""
    stimulus = Stimulus(seed=3, steps=400, flip=(7, 2))
    report = cosimulate(
        RTL_DIR / "mac_e4m3_e5m6_rne_1x1.json", stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path
    )
    assert not report.passed and report.mismatches == 1
    (m,) = report.first_mismatches
    assert m["index"] == 7
    assert int(m["got"]["bits"], 2) ^ int(m["want"]["bits"], 2) == 1 << 2
    assert report.waveform is not None and Path(report.waveform).stat().st_size > 0
    assert "FAIL" in report.format() and "mismatch #7" in report.format()


@pytest.mark.slow
def test_cli_reports_and_exit_status(
    cosim_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mpsim cosim --config PRESET` (a cached build) writes a JSON report; a flipped bit exits 1."""
    args = [
        "cosim",
        "--config",
        "mac_e4m3_e5m6_rne_1x1",
        "--steps",
        "300",
        "--opt",
        "O0",
        "--cache-dir",
        str(cosim_cache),
        "--quiet",
    ]
    monkeypatch.chdir(tmp_path)  # the default run folder, runs/cosim/..., is relative to where the user stands
    assert main([*args, "--json", "ok.json"]) == 0
    data = json.loads((tmp_path / "ok.json").read_text())
    assert Path(data["run_dir"]).resolve() == (tmp_path / "runs" / "cosim" / "mac_e4m3_e5m6_rne_1x1_verilator")
    assert data["passed"] and data["mismatches"] == 0 and data["vectors_checked"] > 0
    assert data["cycles_per_s"] > 0
    assert (
        main(
            [
                *args,
                "--out",
                str(tmp_path / "bad"),
                "--flip-expected",
                "0:0",
                "--no-waves-on-failure",
                "--json",
                "bad.json",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "FAIL" in out and "1 mismatches" in out
    bad = json.loads((tmp_path / "bad.json").read_text())
    assert bad["build_cached"] and not bad["passed"] and bad["mismatches"] == 1  # the same design: no rebuild


@pytest.mark.slow
@ICARUS
def test_icarus_mac_and_multiplier(designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """The same benches on Icarus Verilog: a stochastic MAC (with its VCD) and random multiplier pairs."""
    report = cosimulate(
        RTL_DIR / "mac_e4m3_e5m6_sr8_1x1.json",
        simulator="icarus",
        stimulus=Stimulus(seed=5, steps=2_000),
        waves=True,
        cache_dir=cosim_cache,
        run_dir=tmp_path / "mac",
    )
    assert report.passed, report.format()
    assert report.waveform is not None and report.waveform.endswith(".vcd") and Path(report.waveform).stat().st_size > 0
    config = MultiplierConfig(a_format="e5m2", b_format="e4m3", out_format="e5m2", rounding="stochastic:3", lanes=16)
    report = cosimulate(
        multiplier(designs, config),
        simulator="icarus",
        stimulus=Stimulus(vectors=4_096),
        cache_dir=cosim_cache,
        run_dir=tmp_path / "mul",
    )
    assert report.passed and report.vectors_checked == 4_096, report.format()


def test_missing_manifest_and_wrong_unit(tmp_path: Path, designs: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"^manifest '.*nothing\.json' not found; "
        r"write one with `mpsim emit \.\.\. --out DIR` \(DIR/NAME\.json\)$",
    ):
        cosimulate(tmp_path / "nothing.json")
    from sim.manifest import read_manifest

    with pytest.raises(
        ValueError, match=r"^manifest .*mac_e4m3_e5m6_rne_1x1\.json describes unit 'mac', not 'multiplier'$"
    ):
        read_manifest(RTL_DIR / "mac_e4m3_e5m6_rne_1x1.json", "multiplier")
    manifest = multiplier(designs, MultiplierConfig(a_format="e2m1", lanes=2))
    with pytest.raises(
        ValueError, match=r"^manifest .*mul_e2m1_exact_x2\.json describes unit 'multiplier', not 'array'$"
    ):
        read_manifest(manifest, "array")


def test_unknown_and_missing_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"^unknown simulator 'modelsim': choose one of verilator, icarus$"):
        cosimulate(RTL_DIR / "mac_e4m3_e5m6_rne_1x1.json", simulator="modelsim")
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name in ("iverilog", "vvp") else real_which(name, *a, **k)
    )
    with pytest.raises(
        RuntimeError, match=r"^Icarus Verilog \(iverilog, vvp\) not found: install it with apt-get install iverilog"
    ):
        cosimulate(RTL_DIR / "mac_e4m3_e5m6_rne_1x1.json", simulator="icarus")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=0), "stimulus steps must be an integer >= 1, not 0"),
        (dict(backpressure=1.0), "backpressure must be a probability in [0, 1), not 1.0"),
        (dict(vectors=-3), "stimulus vectors must be a positive integer or None, not -3"),
        (dict(flip=(1, -1)), "flip must be (index, bit) with both >= 0, not (1, -1)"),
    ],
)
def test_bad_stimulus(kwargs: dict, message: str) -> None:
    import re

    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Stimulus(**kwargs)
