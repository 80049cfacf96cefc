"""How long ``mpsim`` takes to answer ``--help`` and argument errors, beside a bare Python start.

    python benchmarks/cli_startup.py [--repeat 5]

Each command runs in a fresh process (as a user's shell runs it); the table
shows the median and best wall time, next to ``python -c pass`` (the floor)
and ``python -c "import torch"`` (what a command that loads torch up front
would add). Target (issue 18): every ``--help`` and argument error under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_S = 1.0

BASELINES = [
    ("python -c pass (the floor)", [sys.executable, "-c", "pass"]),
    ('python -c "import torch" (what is avoided)', [sys.executable, "-c", "import torch"]),
]


def commands() -> list[tuple[str, list[str]]]:
    """Every ``--help`` and a few argument errors, each as the mpsim command line."""
    from mpsim.cli import _parsers, build_parser

    subcommands = [p.prog.split()[-1] for p in _parsers(build_parser())[1:]]
    rows = [("mpsim --help", ["--help"]), ("mpsim --version", ["--version"])]
    rows += [(f"mpsim {name} --help", [name, "--help"]) for name in subcommands]
    errors = [
        ["train", "--epochs", "0"],
        ["train", "--precision", "nope"],
        ["quantize", "e9m9", "1"],
        ["emit", "--mul", "e4m3", "--array", "-2x3"],
        ["cl", "--experiences", "3"],
        ["cost", "--model", "missing.yaml"],
        ["cosim", "--config", "no_such_preset"],
    ]
    return rows + [(f"mpsim {' '.join(argv)} (error)", argv) for argv in errors if argv[0] in subcommands]


def seconds(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    mpsim = [sys.executable, "-m", "mpsim.cli"]
    rows = [(name, argv) for name, argv in BASELINES] + [(name, [*mpsim, *argv]) for name, argv in commands()]
    print(f"| {'command':58} | {'median s':>8} | {'best s':>7} | {'under 1 s':>9} |")
    print(f"|{'-' * 60}|{'-' * 10}|{'-' * 9}|{'-' * 11}|")
    slow = []
    for name, argv in rows:
        times = seconds(argv, args.repeat)
        median = statistics.median(times)
        baseline = name in dict(BASELINES)
        verdict = "-" if baseline else ("yes" if median < TARGET_S else "NO")
        if verdict == "NO":
            slow.append(name)
        print(f"| {name[:58]:58} | {median:8.3f} | {min(times):7.3f} | {verdict:>9} |", flush=True)
    print(f"\n{len(rows) - len(BASELINES) - len(slow)} of {len(rows) - len(BASELINES)} commands under {TARGET_S} s")


if __name__ == "__main__":
    main()
