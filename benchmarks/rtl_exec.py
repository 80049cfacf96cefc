"""Fast RTL executor against the cocotb bench: checked MACs/s and build times on one emitted array, in one run.

    python benchmarks/rtl_exec.py [--steps 200000] [--cocotb-steps 3000] [--cache-dir DIR]

The array (default: 8x8, e4m3 x e4m3 -> fp16 stochastic:8, interleave 8,
pipeline 2, ECP5 DSP multipliers) is generated into a temporary folder and
built for both paths in a fresh cache (or ``--cache-dir``): the executor's
library twice (first, then cached) and the cocotb bench's Verilator model.
Each path checks every tile of its own ``Stimulus(seed=0)`` against mpsim.
The executor's time is split into mpsim's reference (``array_vectors``:
operands, ``mpsim.qmatmul``, the Python-int beats the cocotb bench drives),
NumPy packing, the C++ run and the check; its MACs/s is checked MACs over
packing + run + check, as the cocotb bench's is over its bench loop (both
exclude the reference).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hls_gen.emit import ArrayConfig, emit
from sim.rtl_exec import RtlExecutor
from sim.rtl_vectors import run_vectors
from sim.runner import cosimulate
from sim.vectors import Stimulus, array_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="rows and columns of the array (default: 8)")
    parser.add_argument("--steps", type=int, default=200_000, help="input beats through the executor (default: 200000)")
    parser.add_argument("--cocotb-steps", type=int, default=3_000, help="input beats through cocotb (default: 3000)")
    parser.add_argument("--opt", default="O2", help="the executor's C++ optimization (default: O2)")
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
    with tempfile.TemporaryDirectory(prefix="mpsim-exec-bench-") as tmp:
        cache = args.cache_dir or Path(tmp) / "cache"
        _, manifest = emit(config, Path(tmp) / config.name)
        executor = RtlExecutor.open(manifest, opt=args.opt, cache_dir=cache, progress=True)
        first_build = executor.build.seconds
        executor.close()
        start = time.perf_counter()
        executor = RtlExecutor.open(manifest, opt=args.opt, cache_dir=cache)
        cached_open = time.perf_counter() - start
        start = time.perf_counter()
        vectors = array_vectors(executor.design, Stimulus(seed=0, steps=args.steps))
        reference_s = time.perf_counter() - start
        run = run_vectors(executor, vectors)
        if not run.result.passed or run.run is None:
            raise SystemExit(f"executor run failed: {run.result}")
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
    ex = run.run
    print(f"\n{config.name}: Verilator {executor.build.directory.name}")
    print(f"executor build: first {first_build:.1f} s (-{args.opt}), cached open {cached_open:.2f} s")
    print(
        f"executor run: {args.steps:,} beats, {ex.cycles:,} cycles, {run.result.macs:,} checked MACs; "
        f"mpsim reference {reference_s:.2f} s, packing {run.pack_s:.3f} s, C++ run {ex.seconds:.3f} s "
        f"({ex.cycles / ex.seconds:,.0f} cycles/s), check {run.check_s:.3f} s"
    )
    print(f"\n{'path':<10} {'build s':>8} {'cycles':>10} {'cycles/s':>12} {'checked MACs/s':>15} {'incl. ref':>12}")
    with_ref = run.result.macs / (run.seconds + reference_s)
    print(
        f"{'executor':<10} {first_build:>8.1f} {ex.cycles:>10,} {ex.cycles / ex.seconds:>12,.0f} "
        f"{run.macs_per_s:>15,.0f} {with_ref:>12,.0f}"
    )
    if report is not None:
        print(
            f"{'cocotb':<10} {report.build_s:>8.1f} {report.cycles:>10,} {report.cycles_per_s:>12,.0f} "
            f"{report.macs_per_s:>15,.0f} {'':>12}"
        )
        print(f"speed-up (checked MACs/s): {run.macs_per_s / report.macs_per_s:,.0f}x")


if __name__ == "__main__":
    main()
