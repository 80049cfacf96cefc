"""Training data for the hardware-cost surrogate: a designed sample of small MAC arrays, synthesized into the cache.

    nice -n 19 python benchmarks/synth_dataset.py [--designs 400] [--seed 0] [--pipelined 0.5] [--mx] [--shapes 3x3,4x4]
                                                  [--timeout 900] [--cache DIR]
                                                  [--list] [--log results/hw/synth_dataset.jsonl]

The grid crosses operand formats (e2m1 .. e5m2, e4m3, e3m4, fp16, bf16),
accumulators (e5m6 .. fp16, bf16, fp32), accumulation rounding (nearest,
stochastic:K), pipeline 1 or 2, with ``--pipelined`` a share of the pipelined
PE of the synthesis table, and array shapes 1x1, 1x2, 2x1, 2x2 (shapes
with different ``rows * cols`` and ``rows + cols``, so that a per-PE and a
per-edge cost can be told apart; ``--shapes 3x3,4x4`` draws other shapes). ``--mx`` draws MX arrays instead: element
formats e2m1 .. e3m4 in blocks of 8, 16 or 32 (``mx:eXmY:bN``), the same
accumulators and roundings, the MX PE's pipeline 1, 3 or 5 and interleave 1
or 8. It is too large to synthesize whole, so the
designs are drawn from it in a fixed seeded order: every prefix of the list is
a spread-out sample, and a run that is stopped early still covers the space.

Every design goes through :func:`hls_gen.synth.synthesize` with the cache
(ECP5 85k, place and route for Fmax), so a stopped run loses at most the
design in progress and a rerun skips what is cached. A design whose tool
fails or times out is logged and skipped. One JSON line per design goes to
``--log``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from hls_gen.emit import ArrayConfig
from hls_gen.spec import described
from hls_gen.synth import SynthCache, SynthOptions, ToolError, synthesize

#: Operand formats, from 4-bit to 16-bit.
OPERANDS = ("e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4", "e4m4", "fp16", "bf16")
#: Accumulator formats.
ACCUMULATORS = ("e5m6", "e5m7", "e6m9", "fp16", "bf16", "e8m10", "fp32")
#: Accumulation roundings.
ROUNDINGS = ("nearest", "stochastic:4", "stochastic:8", "stochastic:12")
#: Pipeline registers per PE.
PIPELINES = (1, 2)
#: (rows, cols) and how often each is drawn: larger arrays take longer, so they are drawn less.
SHAPES = (((1, 1), 5), ((1, 2), 1), ((2, 1), 1), ((2, 2), 2))


#: MX arrays (``--mx``): element formats, block sizes, and the MX PE's pipeline registers (0..6) and interleave.
MX_ELEMENTS = ("e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4")
MX_BLOCKS = (8, 16, 32)
MX_ACCUMULATORS = ("e5m7", "e6m9", "fp16", "bf16", "fp32")
MX_PIPELINES = (1, 3, 5)
MX_INTERLEAVES = (1, 8)
#: MX shapes: an MX PE takes two to three times a float PE's tool time, so the 2x2 is drawn less.
MX_SHAPES = (((1, 1), 6), ((1, 2), 1), ((2, 1), 1), ((2, 2), 1))


#: The pipelined PE of the synthesis table (benchmarks/synth_table.py): L = 8 interleaved sums, pipeline 2, the
#: ECP5 DSP block instantiated.
PIPELINED = {"interleave": 8, "pipeline": 2, "dsp": "ecp5"}


Shapes = tuple[tuple[tuple[int, int], int], ...]


def parse_shapes(text: str) -> Shapes:
    """``"3x3,4x4"`` -> each shape drawn alike (a one-line ``ValueError`` naming a bad one)."""
    out = []
    for item in text.split(","):
        rows, sep, cols = item.strip().partition("x")
        if not (sep and rows.isdigit() and cols.isdigit() and int(rows) > 0 and int(cols) > 0):
            raise ValueError(f"--shapes: not ROWSxCOLS: {item!r}")
        out.append(((int(rows), int(cols)), 1))
    return tuple(out)


def _distinct(
    designs: int,
    seed: int,
    shapes_drawn: Shapes,
    grid: int,
    what: str,
    draw: Callable[[random.Random, int, int], ArrayConfig],
) -> list[ArrayConfig]:
    """``designs`` distinct configurations, each ``draw(rng, rows, cols)`` after a weighted shape, in a fixed order."""
    if designs > grid:
        raise ValueError(f"designs must be at most {what} {grid} configurations, not {designs}")
    rng = random.Random(seed)
    shapes = [shape for shape, weight in shapes_drawn for _ in range(weight)]
    out: dict[ArrayConfig, None] = {}
    while len(out) < designs:
        out.setdefault(draw(rng, *rng.choice(shapes)), None)
    return list(out)


def sample(designs: int, seed: int = 0, pipelined: float = 0.0, shapes_drawn: Shapes = SHAPES) -> list[ArrayConfig]:
    """``designs`` distinct configurations drawn from the grid in a fixed order (the same for a seed and share).

    A share ``pipelined`` of them (drawn at random) has the :data:`PIPELINED` PE instead of the one-cycle PE
    (``interleave=1``, inferred multiplier); with 0 no draw is spent on it.
    """
    if not 0.0 <= pipelined <= 1.0:
        raise ValueError(f"the pipelined share must be 0..1, not {pipelined!r}")

    def draw(rng: random.Random, rows: int, cols: int) -> ArrayConfig:
        config = ArrayConfig(
            a_format=rng.choice(OPERANDS),
            acc_format=rng.choice(ACCUMULATORS),
            rounding=rng.choice(ROUNDINGS),
            pipeline=rng.choice(PIPELINES),
            rows=rows,
            cols=cols,
        )
        return replace(config, **PIPELINED) if pipelined and rng.random() < pipelined else config

    grid = len(OPERANDS) * len(ACCUMULATORS) * len(ROUNDINGS) * len(PIPELINES) * len(shapes_drawn)
    return _distinct(designs, seed, shapes_drawn, grid, "the grid's", draw)


def sample_mx(designs: int, seed: int = 0, shapes_drawn: Shapes = MX_SHAPES) -> list[ArrayConfig]:
    """``designs`` distinct MX configurations (``mx:eXmY:bN`` operands) drawn in a fixed order for a seed."""

    def draw(rng: random.Random, rows: int, cols: int) -> ArrayConfig:
        return ArrayConfig(
            a_format=f"mx:{rng.choice(MX_ELEMENTS)}:b{rng.choice(MX_BLOCKS)}",
            acc_format=rng.choice(MX_ACCUMULATORS),
            rounding=rng.choice(ROUNDINGS),
            pipeline=rng.choice(MX_PIPELINES),
            interleave=rng.choice(MX_INTERLEAVES),
            rows=rows,
            cols=cols,
        )

    grid = len(MX_ELEMENTS) * len(MX_BLOCKS) * len(MX_ACCUMULATORS) * len(ROUNDINGS) * len(MX_PIPELINES)
    return _distinct(designs, seed, shapes_drawn, grid * len(MX_INTERLEAVES) * len(shapes_drawn), "the MX grid's", draw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", type=int, default=400, help="how many configurations to draw (default: 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawing order (default: 0)")
    parser.add_argument(
        "--pipelined",
        type=float,
        default=0.0,
        help="share of designs with the synthesis table's pipelined PE: --interleave 8 --pipeline 2 --dsp ecp5 "
        "(default: 0)",
    )
    parser.add_argument(
        "--mx",
        action="store_true",
        help="draw MX arrays instead (element formats, block sizes 8-32, pipeline 1/3/5, interleave 1/8)",
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help="array shapes drawn alike, e.g. 3x3,4x4 (default: 1x1, 1x2, 2x1, 2x2, the 1x1 most often)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run (default: 900)")
    parser.add_argument(
        "--cache", default=None, help="synthesis cache folder (default: $MPSIM_SYNTH_CACHE or ~/.cache/mpsim/synth)"
    )
    parser.add_argument(
        "--log", default="results/hw/synth_dataset.jsonl", help="one JSON line per design (default: %(default)s)"
    )
    parser.add_argument("--list", action="store_true", help="print the configurations' names and stop")
    args = parser.parse_args(argv)
    try:
        shapes = None if args.shapes is None else parse_shapes(args.shapes)
    except ValueError as error:
        parser.error(str(error))
    if args.mx:
        configs = sample_mx(args.designs, args.seed, shapes or MX_SHAPES)
    else:
        configs = sample(args.designs, args.seed, args.pipelined, shapes or SHAPES)
    for config in configs:
        described(config.build())  # every configuration checked before the first tool runs
    if args.list:
        print("\n".join(config.name for config in configs))
        return 0
    cache = SynthCache(args.cache)
    options = SynthOptions(pnr=True, timeout_s=args.timeout)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = failed = 0
    with open(log, "a") as handle, tqdm(configs, desc="surrogate data", unit="design") as bar:
        for config in bar:
            start = time.perf_counter()
            entry: dict[str, object] = {"name": config.name}
            try:
                report = synthesize(config, options, cache=cache)
            except ToolError as error:
                failed += 1
                entry["error"] = error.summary
            else:
                done += 1
                entry.update(
                    luts=report.luts,
                    ffs=report.ffs,
                    dsps=report.dsps,
                    carry=report.carry,
                    fmax_mhz=report.fmax_mhz,
                    cached=report.cached,
                )
            entry["seconds"] = round(time.perf_counter() - start, 1)
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            bar.set_postfix(done=done, failed=failed)
    print(f"{done} designs in the cache, {failed} failed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
