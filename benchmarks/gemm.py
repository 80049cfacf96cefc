"""Emulated GEMM throughput beside fp32 torch.matmul, and one training epoch emulated vs fp32.

    python benchmarks/gemm.py [--size 512] [--repeat 3]

Prints multiply-accumulates per second for an NxNxN product in several
configurations, with torch.matmul (fp32, BLAS) measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numba
import numpy as np
import torch

import mpsim

TARGET_RATIO = 25.0  # issue "Custom-precision training": FMA-level emulation within 25x of fp32 torch.matmul


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def epoch_seconds(precision: str) -> float:
    """One epoch of the default `mpsim train` job (digits MLP) at ``precision``."""
    from mpsim.data import load_dataset
    from mpsim.nn import quantize_model
    from mpsim.train import TrainConfig, build_model

    config = TrainConfig(precision=precision)
    data = load_dataset("digits")
    torch.manual_seed(0)
    model, _ = quantize_model(build_model(config, data), precision)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)

    def epoch() -> None:
        for first in range(0, len(x), 32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[first : first + 32]), y[first : first + 32]).backward()
            opt.step()

    return best_seconds(epoch, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.size
    rng = np.random.default_rng(0)
    a = mpsim.quantize(rng.standard_normal((n, n)).astype(np.float32), "e4m3")
    b = mpsim.quantize(rng.standard_normal((n, n)).astype(np.float32), "e4m3")
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    macs = n**3
    torch_s = best_seconds(lambda: ta @ tb, args.repeat * 5)
    configs = [
        ("e4m3 x e4m3, exact products, fp32 acc, nearest (FMA)", dict(acc="fp32", fma=True)),
        ("e4m3 x e4m3 -> e5m6 (fp12) acc, nearest (FMA)", dict(acc="e5m6", fma=True)),
        ("e4m3 x e4m3 -> fp16 acc, stochastic:8 (FMA)", dict(acc="fp16", fma=True, rounding="stochastic:8", seed=1)),
        ("e4m3 x e4m3 -> bf16 acc, stochastic:16 (FMA)", dict(acc="bf16", fma=True, rounding="stochastic:16", seed=1)),
        ("e4m3 x e4m3 -> e4m3 mul, bf16 acc, nearest", dict(mul="e4m3", acc="bf16")),
        (
            "e4m3 x e4m3 -> e4m3 mul stochastic:8, bf16 acc stochastic:8",
            dict(mul="e4m3", mul_rounding="stochastic:8", acc="bf16", rounding="stochastic:8", seed=1),
        ),
        ("e4m3 x e4m3 -> bf16 mul, bf16 acc, nearest", dict(mul="bf16", acc="bf16")),
        ("e4m3 x e4m3 -> fp16 acc, stochastic:32 (FMA)", dict(acc="fp16", fma=True, rounding="stochastic:32", seed=1)),
        ("e4m3 x e4m3 -> fp16 acc, exact stochastic (FMA)", dict(acc="fp16", fma=True, rounding="stochastic", seed=1)),
        ("e4m3 x e4m3 -> e5m6 acc, nearest, pairwise", dict(acc="e5m6", fma=True, order="pairwise")),
        ("e4m3 x e4m3 -> e5m6 acc, nearest, blocked 32", dict(acc="e5m6", fma=True, order=32)),
        (
            "e4m3 x e4m3 -> fp16 acc, stochastic:8, pairwise",
            dict(acc="fp16", rounding="stochastic:8", order="pairwise", seed=1),
        ),
    ]
    print(f"{n}x{n}x{n} products, {numba.get_num_threads()} Numba threads, torch {torch.get_num_threads()} threads\n")
    print(f"| {'configuration':60} | {'G MAC/s':>8} | {'x slower than torch fp32':>24} |")
    print(f"|{'-' * 62}|{'-' * 10}|{'-' * 26}|")
    print(f"| {'torch.matmul fp32 (BLAS, baseline)':60} | {macs / torch_s / 1e9:8.3f} | {1.0:24.1f} |")
    ratios = {}
    for name, kwargs in configs:
        seconds = best_seconds(lambda kwargs=kwargs: mpsim.qmatmul(a, b, **kwargs), args.repeat)
        ratios[name] = seconds / torch_s
        print(f"| {name:60} | {macs / seconds / 1e9:8.3f} | {ratios[name]:24.1f} |", flush=True)
    print(f"\nTarget: within {TARGET_RATIO}x of torch.matmul fp32 (measured in this run):")
    for name, ratio in ratios.items():
        print(f"  {'met    ' if ratio <= TARGET_RATIO else 'not met'}  {ratio:5.1f}x  {name}")
    print("\nOne epoch of `mpsim train` (digits MLP 64-64-10, batch 32):")
    fp32 = epoch_seconds("fp32")
    for precision in ("fp32", "e4m3", "e4m3-sr", "bf16-sr"):
        seconds = fp32 if precision == "fp32" else epoch_seconds(precision)
        print(f"  {precision:8} {seconds:7.3f} s  ({seconds / fp32:5.1f}x fp32)")


if __name__ == "__main__":
    main()
