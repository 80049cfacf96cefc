"""MX arrays (hls_gen.mx_mac PEs) on Verilator, driven by cocotb, against mpsim.qmatmul with mul MX, bit for bit.

The stimulus is float data with MX edge cases (sim.mx_vectors: zero blocks, NaN scales, Inf, scales near both ends
of E8M0, subnormal elements, partial last blocks), quantized on the host by mpsim.encode_mx; the expected tiles are
mpsim.qmatmul of the same data with the manifest's LFSRGrid (stochastic rounding: one draw per block).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hls_gen.emit import ArrayConfig, emit
from hls_gen.modes import ArithMode
from sim.runner import cosimulate
from sim.vectors import Stimulus

MX_ARRAYS = [
    # the synthesis table's MX PE: the block-sum ring and the accumulate loop interleaved, three registers before it
    ArrayConfig(
        a_format="mxfp8_e4m3:b8", acc_format="fp16", rounding="nearest", rows=2, cols=2, interleave=8, pipeline=3
    ),
    ArrayConfig(a_format="mxfp8_e4m3:b8", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2),
    ArrayConfig(
        a_format="mxfp6_e3m2:b4",
        b_format="mxfp4_e2m1:b4",
        acc_format="bf16",
        rounding="stochastic:8",
        rows=2,
        cols=1,
        pipeline=2,
    ),
    # MX modes of one array, jobs switching mode back to back: mxfp8-sr's three GEMMs (blocks of 8) and a bf16
    # nearest mode of other elements, two sums in turn
    ArrayConfig(
        modes=(
            ArithMode(a_format="mxfp8_e4m3:b8", acc_format="fp16", rounding="stochastic:8"),
            ArithMode(a_format="mxfp8_e5m2:b8", b_format="mxfp8_e4m3:b8", acc_format="fp16", rounding="stochastic:8"),
            ArithMode(a_format="mxfp8_e4m3:b8", b_format="mxfp8_e5m2:b8", acc_format="fp16", rounding="stochastic:8"),
            ArithMode(a_format="mxfp6_e2m3:b8", b_format="mxfp6_e3m2:b8", acc_format="bf16"),
        ),
        rows=2,
        cols=2,
        interleave=2,
    ),
    # the command: mpsim emit --mul mxfp8_e4m3 --acc fp16 --rounding stochastic:8 --array 4x4
    ArrayConfig(a_format="mxfp8_e4m3", acc_format="fp16", rounding="stochastic:8", rows=4, cols=4),
]


@pytest.mark.slow
@pytest.mark.parametrize("config", MX_ARRAYS, ids=lambda c: c.name)
def test_mx_arrays_match_qmatmul(config: ArrayConfig, designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """Random MX products (partial tiles, several blocks a job, partial last blocks), back-pressure on both streams."""
    _, manifest = emit(config, designs / config.name)  # the six-mode array's name is short: ArrayConfig.name
    block = int(json.loads(manifest.read_text())["modes"][0]["mx"]["block_size"])
    stimulus = Stimulus(seed=3, steps=2_000 if config.rows < 4 else 1_500, max_k=3 * block, backpressure=0.2)
    report = cosimulate(manifest, stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path)
    assert report.passed, report.format()
    assert report.vectors_checked > 50 and report.mismatches == 0
    assert report.latency == json.loads(manifest.read_text())["latency"]["last_beat_to_out_valid"]


@pytest.mark.slow
def test_mx_flipped_expectation_is_reported(designs: Path, cosim_cache: Path, tmp_path: Path) -> None:
    """One flipped bit in mpsim's expected MX tiles: exactly that mismatch (the bench can fail)."""
    config = MX_ARRAYS[1]
    _, manifest = emit(config, designs / config.name)
    stimulus = Stimulus(seed=4, steps=300, max_k=24, flip=(5, 3))
    report = cosimulate(
        manifest, stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path, waves_on_failure=False
    )
    assert not report.passed and report.mismatches == 1
    (m,) = report.first_mismatches
    assert m["index"] == 5 and int(m["got"]["bits"], 2) ^ int(m["want"]["bits"], 2) == 1 << 3


@pytest.mark.slow
def test_mx_array_on_the_fast_executor(designs: Path, cosim_cache: Path) -> None:
    """sim.rtl_exec runs an MX array's packed beats (scales included) and checks them as the cocotb bench does."""
    from sim.rtl_exec import RtlExecutor
    from sim.rtl_vectors import run_vectors
    from sim.vectors import array_vectors

    config = MX_ARRAYS[1]
    _, manifest = emit(config, designs / config.name)
    with RtlExecutor.open(manifest, opt="O0", cache_dir=cosim_cache) as executor:
        vectors = array_vectors(executor.design, Stimulus(seed=6, steps=3_000, max_k=24))
        checked = run_vectors(executor, vectors, backpressure=0.1, seed=2)
        assert checked.result.passed, checked.result.mismatches
        assert checked.result.checked == vectors.checked > 200
        unpacked = array_vectors(executor.design, Stimulus(seed=6, steps=3_000, max_k=24), pack=False)
        message = "an MX array's beats carry block scales: make its vectors with array_vectors(pack=True)"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            run_vectors(executor, unpacked)
