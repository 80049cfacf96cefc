"""Fast RTL executor against the cocotb bench: checked MACs/s and build times on one emitted array, in one run.

    python benchmarks/rtl_exec.py [--steps 200000] [--instances 2] [--cocotb-steps 3000] [--cache-dir DIR]

The array (default: 8x8, e4m3 x e4m3 -> fp16 stochastic:8, interleave 8,
pipeline 2, ECP5 DSP multipliers) is generated into a temporary folder and
built for both paths in a fresh cache (or ``--cache-dir``): the executor's
library twice (first, then cached) and the cocotb bench's Verilator model.
Each path checks every tile of its stimulus (``Stimulus(seed=...)``: random
products with partial tiles and K = 1..32) against mpsim. The executor's
time is split into mpsim's reference (``array_vectors``: operands and
``mpsim.qmatmul``), NumPy packing, the C++ run and the check; its MACs/s
is checked MACs over packing + run + check, as the cocotb bench's is over
its bench loop (both exclude the reference). CPU time is given beside wall
time: on a loaded machine a niced run gets a share of a core.
``--instances N`` also runs N models of the array at once on N job streams
(:func:`sim.rtl_exec.run_parallel`, one thread each).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import mpsim
from hls_gen.emit import ArrayConfig, emit
from sim.manifest import ArrayDesign
from sim.rtl_exec import RtlExecutor, run_parallel
from sim.rtl_vectors import check_run, pack_jobs, run_vectors, unpack_tiles, vectors_beats
from sim.runner import cosimulate
from sim.vectors import Stimulus, array_vectors, canonical_codes, operand_codes


def gemm_tiles(executor: RtlExecutor, tiles: int, k: int) -> tuple[str, int, float, float]:
    """Full tiles of one long reduction, as a GEMM backend sends them: (row, checked MACs, run s, reference s)."""
    design: ArrayDesign = executor.design
    mode = design.modes[0]
    rng = np.random.default_rng(0)
    a = operand_codes(rng, mode.a_format, (tiles, design.tile_rows, k), special_rate=0.005)
    b = operand_codes(rng, mode.b_format, (tiles, k, design.cols), special_rate=0.005)
    start = time.perf_counter()
    # one batch element per job, in the array's job order, the random stream carried on from reset
    want = mpsim.qmatmul(
        mpsim.decode(mode.a_format, a),
        mpsim.decode(mode.b_format, b),
        config=mode.gemm_config,
        seed=design.random_source(),
    )
    want = canonical_codes(want, mode.acc_format)
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    beats = pack_jobs(design, list(a), list(b))
    executor.reset()
    run = executor.run(beats)
    got, errors = unpack_tiles(design, run.outputs, [0] * tiles)
    seconds = time.perf_counter() - start
    if errors or not (got == want).all():
        raise SystemExit(f"GEMM tiles differ from mpsim: {int((got != want).sum())} elements, {errors[:2]}")
    macs = a.size * design.cols
    return _row(f"GEMM K={k}", "cached", run.cycles, seconds, None, macs, ""), macs, seconds, reference_s


def _row(path: str, build: str, cycles: int, wall: float, cpu: float | None, macs: int, with_ref: str) -> str:
    cpu_rate = f"{macs / cpu:,.0f}" if cpu else ""
    speed = f"{cycles / wall:>10,.0f} {macs / wall:>13,.0f} {cpu_rate:>13}"
    return f"{path:<14} {build:>9} {cycles:>10,} {speed} {with_ref:>11}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="rows and columns of the array (default: 8)")
    parser.add_argument("--steps", type=int, default=200_000, help="input beats through the executor (default: 200000)")
    parser.add_argument("--instances", type=int, default=2, help="models run at once in the parallel row (default: 2)")
    parser.add_argument("--cocotb-steps", type=int, default=3_000, help="input beats through cocotb (default: 3000)")
    parser.add_argument("--opt", default="Os", help="the executor's C++ optimization (default: Os)")
    parser.add_argument("--cocotb-opt", default="O1", help="the cocotb model's C++ optimization (default: O1)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="build cache (default: a fresh temporary one)")
    parser.add_argument("--no-cocotb", action="store_true", help="time the executor only")
    args = parser.parse_args()
    config = ArrayConfig(
        a_format="e4m3",
        acc_format="fp16",
        rounding="stochastic:8",
        rows=args.size,
        cols=args.size,
        interleave=8,
        pipeline=2,
        dsp="ecp5",
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="mpsim-exec-bench-") as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        _, manifest = emit(config, Path(tmp) / config.name)
        executor = RtlExecutor.open(manifest, opt=args.opt, cache_dir=cache, progress=True)
        first_build = executor.build.seconds
        executor.close()
        start = time.perf_counter()
        executor = RtlExecutor.open(manifest, opt=args.opt, cache_dir=cache)
        cached_open = time.perf_counter() - start
        design = executor.design

        # one model, one stream: reference, packing, run, check timed apart
        start = time.perf_counter()
        vectors = array_vectors(design, Stimulus(seed=0, steps=args.steps), pack=False)
        reference_s = time.perf_counter() - start
        cpu = time.thread_time()
        run = run_vectors(executor, vectors)
        cpu = time.thread_time() - cpu
        if not run.result.passed or run.run is None:
            raise SystemExit(f"executor run failed: {run.result}")
        ex = run.run
        with_ref = f"{run.result.macs / (run.seconds + reference_s):,.0f}"
        rows.append(_row("executor", f"{first_build:.1f}", ex.cycles, run.seconds, cpu, run.result.macs, with_ref))

        gemm, _, _, gemm_reference_s = gemm_tiles(executor, max(1, args.steps // (8 * 64)), 64)
        rows.append(gemm)

        # N models, N streams at once (the reference and packing done before, the check after)
        if args.instances > 1:
            executors = [executor] + [
                RtlExecutor.open(manifest, opt=args.opt, cache_dir=cache) for _ in range(args.instances - 1)
            ]
            streams = [
                array_vectors(design, Stimulus(seed=s, steps=args.steps), pack=False)
                for s in range(1, 1 + len(executors))
            ]
            start = time.perf_counter()
            beats = [vectors_beats(design, v) for v in streams]
            for e in executors:
                e.reset()
            runs = run_parallel(executors, beats)
            results = [check_run(design, v, r)[0] for v, r in zip(streams, runs)]
            wall = time.perf_counter() - start
            if not all(r.passed for r in results):
                raise SystemExit("a parallel executor run failed")
            macs = sum(r.macs for r in results)
            cycles = sum(r.cycles for r in runs)
            rows.append(_row(f"executor x{len(executors)}", "cached", cycles, wall, None, macs, ""))
            for e in executors:
                e.close()
        else:
            executor.close()

        report = None
        if not args.no_cocotb:
            report = cosimulate(
                manifest,
                stimulus=Stimulus(seed=0, steps=args.cocotb_steps),
                opt=args.cocotb_opt,
                cache_dir=cache,
                run_dir=Path(tmp) / "cocotb",
                waves_on_failure=False,
                progress=True,
            )
            if not report.passed:
                raise SystemExit(report.format())
            rows.append(
                _row("cocotb", f"{report.build_s:.1f}", report.cycles, report.sim_wall_s, None, report.macs_checked, "")
            )
    print(f"\n{config.name}, {design.rows}x{design.cols} PEs, Verilator -{args.opt} ({executor.build.directory.name})")
    print(f"executor build: first {first_build:.1f} s, cached open {cached_open:.2f} s")
    print(
        f"executor, one stream: {args.steps:,} beats, {ex.cycles:,} cycles, {run.result.macs:,} checked MACs; "
        f"mpsim reference {reference_s:.2f} s, NumPy packing {run.pack_s:.3f} s, C++ run {ex.seconds:.3f} s "
        f"({ex.seconds / ex.cycles * 1e6:.1f} us/cycle), check {run.check_s:.3f} s"
    )
    print(
        f"\n{'path':<14} {'build s':>9} {'cycles':>10} {'cycles/s':>10} {'MACs/s wall':>13} {'MACs/s CPU':>13} "
        f"{'incl. ref':>11}"
    )
    for line in rows:
        print(line)
    print(f"(GEMM K=64: full tiles back to back; its mpsim reference took {gemm_reference_s:.2f} s)")
    if report is not None:
        print(f"speed-up, one stream, wall clock: {run.macs_per_s / report.macs_per_s:,.0f}x")


if __name__ == "__main__":
    main()
