"""Quantization throughput: mpsim beside ml_dtypes, torch casts and a plain copy, in one run.

    python benchmarks/quantize.py [--size 16777216] [--repeat 5]

Prints millions of elements per second (best of ``--repeat``) on float32
standard-normal data, and the issue's targets against the measured baselines.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import ml_dtypes
import numba
import numpy as np
import torch

import mpsim


def best_rate(fn: Callable[[], object], size: int, repeat: int) -> float:
    """Elements per second of ``fn`` (best of ``repeat`` after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return size / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16 * 2**20, help="elements (default 16M)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (best is kept)")
    args = parser.parse_args()

    x = np.random.default_rng(0).standard_normal(args.size).astype(np.float32)
    t = torch.from_numpy(x)
    lfsr = mpsim.LFSR(width=32, seed=1)
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("baseline", "numpy copy", lambda: x.copy()),
        ("baseline", "ml_dtypes astype float8_e4m3fn", lambda: x.astype(ml_dtypes.float8_e4m3fn)),
        ("baseline", "ml_dtypes astype bfloat16", lambda: x.astype(ml_dtypes.bfloat16)),
        ("baseline", "torch .to(float8_e4m3fn)", lambda: t.to(torch.float8_e4m3fn)),
        ("baseline", "torch .to(float8_e5m2)", lambda: t.to(torch.float8_e5m2)),
        ("baseline", "torch .to(bfloat16)", lambda: t.to(torch.bfloat16)),
        ("mpsim", "quantize e4m3 nearest", lambda: mpsim.quantize(x, "e4m3")),
        ("mpsim", "quantize e5m2 nearest", lambda: mpsim.quantize(x, "e5m2")),
        ("mpsim", "quantize bf16 nearest", lambda: mpsim.quantize(x, "bf16")),
        ("mpsim", "quantize e4m3 stochastic:8", lambda: mpsim.quantize(x, "e4m3", "stochastic:8", seed=1)),
        ("mpsim", "quantize e4m3 stochastic (exact)", lambda: mpsim.quantize(x, "e4m3", "stochastic", seed=1)),
        ("mpsim", "quantize bf16 stochastic:16", lambda: mpsim.quantize(x, "bf16", "stochastic:16", seed=1)),
        ("mpsim", "quantize e4m3 toward_zero", lambda: mpsim.quantize(x, "e4m3", "toward_zero")),
        (
            "mpsim",
            "quantize e4m3 stochastic:8, LFSR bits",
            lambda: mpsim.quantize(x, "e4m3", "stochastic:8", seed=lfsr),
        ),
        ("mpsim", "quantize torch tensor e4m3 nearest", lambda: mpsim.quantize(t, "e4m3")),
    ]
    rates = {}
    print(f"{args.size:,} float32 elements, {numba.get_num_threads()} Numba threads, best of {args.repeat}\n")
    print(f"| {'kind':8} | {'operation':40} | {'M elements/s':>12} |")
    print(f"|{'-' * 10}|{'-' * 42}|{'-' * 14}|")
    for kind, name, fn in cases:
        rates[name] = best_rate(fn, args.size, args.repeat)
        print(f"| {kind:8} | {name:40} | {rates[name] / 1e6:12.0f} |", flush=True)

    astype = rates["ml_dtypes astype float8_e4m3fn"]
    copy = rates["numpy copy"]
    nearest = rates["quantize e4m3 nearest"]
    stochastic = rates["quantize e4m3 stochastic:8"]
    print("\nTargets (measured in this run):")
    print(f"  nearest e4m3 vs ml_dtypes astype: {nearest / astype:5.1f}x (target >= 4x)")
    print(f"  nearest e4m3 time / copy time:    {copy / nearest:5.1f}  (target <= 3)")
    print(f"  stochastic:8 e4m3 vs astype:      {stochastic / astype:5.1f}x (target >= 2x)")


if __name__ == "__main__":
    main()
