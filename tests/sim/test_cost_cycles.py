"""The cost model's cycle count against the Verilator-co-simulated array (issue 7's validation on the real Verilog)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hls_gen.perf_model import stream_cycles
from hls_gen.regen import RTL_DIR
from sim.manifest import read_manifest
from sim.runner import cosimulate
from sim.vectors import Stimulus, array_vectors


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, max_k, steps",
    [("mac_e4m3_e5m6_sr8_4x4", 32, 800), ("mac_e4m3_e5m6_rne_1x1", 7, 800), ("mac_e4m3_e5m6_sr8_4x4_il8", 9, 4000)],
)
def test_cycles_equal_the_cosimulated_array(
    preset: str, max_k: int, steps: int, cosim_cache: Path, tmp_path: Path
) -> None:
    """Random jobs of K = 1..max_k sent back to back (no back-pressure): both regimes and the waits between them."""
    manifest = RTL_DIR / f"{preset}.json"
    stimulus = Stimulus(seed=7, steps=steps, max_k=max_k, backpressure=0.0)
    design = read_manifest(manifest)
    jobs = array_vectors(design, stimulus).jobs
    # output- and input-bound jobs both: a job of K steps is input-bound from K = rows + the flush's turns on
    bound = design.rows + -(-(design.latency - 1) // design.interleave)
    assert min(job.k for job in jobs) < bound <= max(job.k for job in jobs)
    report = cosimulate(manifest, stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path)
    assert report.passed, report.format()
    pipeline = json.loads(manifest.read_text())["latency"]["pipeline_registers"]
    # the bench counts cycles from the first input beat (taken at once after reset) through the last output beat
    shape = dict(rows=design.rows, cols=design.cols, pipeline=pipeline, interleave=design.interleave)
    assert report.cycles == stream_cycles([job.k for job in jobs], **shape)
