"""Multi-mode MAC arrays: jobs of any mode back to back, each bit for bit mpsim.qmatmul in its mode."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

import mpsim
from hls_gen.array import MACArray
from hls_gen.modes import ArithMode, check_modes, training_modes
from mpsim.randbits import LFSRGrid
from sim.vectors import canonical_codes, operand_codes
from tests.conftest import stable_seed

E4M3_SR_BF16 = training_modes(["e4m3-sr", "bf16"])


def _pack(values: list[int], width: int) -> int:
    return sum(int(v) << (width * i) for i, v in enumerate(values))


def run_jobs(
    array: MACArray,
    jobs: list[tuple[int, np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    *,
    in_rate: float,
    out_rate: float,
) -> list[tuple[int, np.ndarray]]:
    """Stream ``(mode, A codes, B codes)`` jobs (A ``tile_rows x K``, B ``K x cols``); the (mode, C codes) per job."""
    pe = array.pe
    rows, cols, sums = array.rows, array.cols, array.interleave
    tile_rows = array.tile_rows
    beats = []
    for mode, a, b in jobs:
        k_dim = a.shape[1]
        for t in range(k_dim):
            for sl in range(sums):
                beats.append(
                    (mode, _pack(a[sl * rows : (sl + 1) * rows, t], pe.a_bits), _pack(b[t], pe.b_bits), t == k_dim - 1)
                )
    out: list[tuple[int, int, int, int]] = []

    async def bench(ctx) -> None:
        beat, cycles = 0, 0
        while len(out) < len(jobs) * tile_rows:
            offer = beat < len(beats) and rng.random() < in_rate
            if offer:
                mode, in_a, in_b, last = beats[beat]
                ctx.set(array.in_mode, mode)
                ctx.set(array.in_a, in_a)
                ctx.set(array.in_b, in_b)
                ctx.set(array.in_last, int(last))
            ctx.set(array.in_valid, int(offer))
            ready = int(rng.random() < out_rate)
            ctx.set(array.out_ready, ready)
            if offer and ctx.get(array.in_ready):
                beat += 1
            if ready and ctx.get(array.out_valid):
                out.append(
                    (ctx.get(array.out_mode), ctx.get(array.out_row), ctx.get(array.out_data), ctx.get(array.out_last))
                )
            await ctx.tick()
            cycles += 1
            assert cycles < 100 * len(beats) + 1000, "the array stopped"

    sim = Simulator(array)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    results = []
    mask = (1 << pe.acc_bits) - 1
    for j, (mode, _, _) in enumerate(jobs):
        tile = np.zeros((tile_rows, cols), np.int64)
        for r in range(tile_rows):
            got_mode, row, data, last = out[j * tile_rows + r]
            assert (got_mode, row, last) == (mode, r, int(r == tile_rows - 1))
            tile[r] = [(data >> (pe.acc_bits * c)) & mask for c in range(cols)]
        results.append((mode, tile))
    return results


def reference(array: MACArray, modes: tuple[ArithMode, ...], jobs: list) -> list[np.ndarray]:
    """Each job through mpsim.qmatmul in its mode, one LFSRGrid carrying on from job to job."""
    grid: LFSRGrid = array.random_source()
    out = []
    for mode, a, b in jobs:
        spec = modes[mode]
        a_fmt, b_fmt = mpsim.parse_format(spec.a_format), mpsim.parse_format(spec.b_format or spec.a_format)
        c = mpsim.qmatmul(mpsim.decode(a_fmt, a), mpsim.decode(b_fmt, b), config=spec.gemm_config, seed=grid)
        out.append(canonical_codes(c, mpsim.parse_format(spec.acc_format)))
    return out


def random_jobs(array: MACArray, modes: tuple[ArithMode, ...], n: int, rng: np.random.Generator) -> list:
    hw = check_modes(modes, 32)
    jobs = []
    for _ in range(n):
        mode = int(rng.integers(len(modes)))
        k_dim = int(rng.integers(1, 7))
        a = operand_codes(rng, hw[mode].a_format, (array.tile_rows, k_dim))
        b = operand_codes(rng, hw[mode].b_format, (k_dim, array.cols))
        jobs.append((mode, a, b))
    return jobs


MODE_SETS = {
    "e4m3-sr+bf16": E4M3_SR_BF16,
    "unfused-mixed": (
        ArithMode(
            "e4m3",
            "e5m6",
            b_format="e5m2",
            product_format="e5m6",
            rounding="stochastic:6",
            product_rounding="stochastic:3",
        ),
        ArithMode("fp16", "fp16", product_format="bf16", rounding="nearest"),
        ArithMode("e2m1", "e6m9", rounding="stochastic:4"),
    ),
}


@pytest.mark.parametrize(
    "modes_name, rows, cols, interleave, pipeline, in_rate, out_rate",
    [
        ("e4m3-sr+bf16", 2, 2, 1, 1, 0.9, 0.8),
        ("e4m3-sr+bf16", 1, 3, 4, 2, 0.8, 0.5),
        ("unfused-mixed", 2, 1, 1, 0, 1.0, 1.0),
        ("unfused-mixed", 3, 2, 8, 1, 0.85, 0.7),
    ],
)
def test_jobs_switching_modes_match_qmatmul(
    modes_name: str, rows: int, cols: int, interleave: int, pipeline: int, in_rate: float, out_rate: float
) -> None:
    modes = MODE_SETS[modes_name]
    rng = np.random.default_rng(stable_seed(modes_name, rows, cols, interleave, pipeline))
    array = MACArray(modes=modes, rows=rows, cols=cols, interleave=interleave, pipeline=pipeline, lfsr_seed=7)
    jobs = random_jobs(array, modes, 10, rng)
    got = run_jobs(array, jobs, rng, in_rate=in_rate, out_rate=out_rate)
    want = reference(array, modes, jobs)
    for j, ((mode, tile), expected) in enumerate(zip(got, want)):
        bad = np.argwhere(tile != expected)
        assert bad.size == 0, f"job {j} (mode {mode}): {len(bad)} outputs differ, first at {bad[0]}"
