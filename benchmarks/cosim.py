"""Co-simulation speed: build time, simulated cycles/s and checked MACs/s of 1x1, 4x4 and 8x8 MAC arrays.

    python benchmarks/cosim.py [--steps 5000] [--opt O1]

Each array (e4m3 operands, e5m6 accumulator, stochastic:8 rounding) is
generated, built in a fresh cache (Verilator's first build also compiles
its runtime library, later ones reuse it) and run through its cocotb bench
with ``--steps`` input beats, every result checked against mpsim; Icarus
runs beside Verilator when ``iverilog`` is installed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hls_gen.emit import ArrayConfig, emit
from sim.runner import cosimulate, simulator_available
from sim.vectors import Stimulus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="input beats per array (default: 5000)")
    parser.add_argument("--opt", default="O1", help="Verilator C++ optimization (default: O1)")
    args = parser.parse_args()
    simulators = [s for s in ("verilator", "icarus") if simulator_available(s)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mpsim-cosim-bench-") as tmp:
        for side in (1, 4, 8):
            config = ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8", rows=side, cols=side)
            _, manifest = emit(config, Path(tmp) / config.name)
            for simulator in simulators:
                report = cosimulate(
                    manifest,
                    simulator=simulator,
                    stimulus=Stimulus(seed=0, steps=args.steps),
                    opt=args.opt,
                    waves_on_failure=False,
                    cache_dir=Path(tmp) / "cache",
                    run_dir=Path(tmp) / "runs" / f"{side}_{simulator}",
                )
                if not report.passed:
                    raise SystemExit(report.format())
                rows.append(
                    (
                        f"{side}x{side}",
                        simulator,
                        report.build_s,
                        report.cycles,
                        report.cycles_per_s,
                        report.macs_per_s,
                        report.run_s,
                    )
                )
                print(f"  {side}x{side} on {simulator}: done", flush=True)
    print(f"\narray (e4m3 -> e5m6 sr8), {args.steps} beats, Verilator -{args.opt}")
    print(f"{'array':<6} {'simulator':<10} {'build s':>8} {'cycles':>8} {'cycles/s':>10} {'MACs/s':>11} {'run s':>7}")
    for name, sim, build, cycles, cps, mps, run in rows:
        print(f"{name:<6} {sim:<10} {build:>8.1f} {cycles:>8,} {cps:>10,.0f} {mps:>11,.0f} {run:>7.1f}")


if __name__ == "__main__":
    main()
