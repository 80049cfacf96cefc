"""How `mpsim nas` gets each trial's hardware cost, compared on one budget and seeds (issue 22, item 4), in one run.

    nice python benchmarks/nas_hardware.py [--strategies synth,front,predict] [--trials 40] [--seeds 0,1,2]
                                           [--arrays 1x1,2x2] [--every 10] [--cache-dir DIR]
                                           [--out results/nas/hardware]

Three ways to cost a trial's array, each a search of ``--trials`` trials (``--estimator full``, 4 epochs, on
digits in the default space with the arrays ``--arrays``; resumable, each run's study in
``OUT/runs/STRATEGY_sSEED``):

* ``synth``: synthesize every trial's array (``mpsim nas --synth``);
* ``front``: predict every one with the cost surrogate and synthesize only the predicted front, after each
  NSGA-II generation and at the end (``--predict --synth-front``);
* ``predict``: the cost surrogate alone (``--predict``).

Every run's found front (by its own objectives) is then **scored at the truth**: each member's accuracy (its
full training, the search's own) and its array's *measured* Fmax and LUT4 (latency = cycles / measured Fmax;
energy does not depend on the clock). The **hypervolume** in (1 - accuracy, latency, energy, LUT4), each objective
scaled to [0, 1] over every front point of every run and the reference 1.1 in each (as in
``benchmarks/nas_estimators.py``), stands beside the **synthesis seconds** the strategy needed: the tool
seconds (Yosys and nextpnr) of the reports of the distinct arrays it synthesized.

So that the surrogate has not already seen the space's arrays, the searches use a cache of their own: a copy of
``--cache-dir`` without any report of an array of the space. Their synthesis is *replayed*: an array a search
asks to synthesize gets the report ``--cache-dir`` holds for it (synthesized there first, once, by this script),
put into the search's cache, where the surrogate learns from it as after a real run; the charged seconds are the
report's. The replay saves the tools' wall time, not their cost; every figure is a real measurement.

Writes ``hardware.json``, ``hardware.csv`` (a row per run and checkpoint), ``hardware.md`` and ``hardware.png``
(hypervolume against trials, and the final hypervolume against synthesis seconds).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench_kit import md_table, plot_runs, score_hypervolumes, tool_seconds
from tqdm import tqdm

import hls_gen.synth as synth
from hls_gen.array_size import parse_array_size
from hls_gen.emit import ArrayConfig
from hls_gen.nas import NASConfig, SearchSpace, _rows, front_rows, run_nas
from hls_gen.synth import ADOPTION_INDEX, ResourceReport, SynthCache, SynthOptions, lookup, synthesize

FULL_EPOCHS = 4
#: The strategies: NASConfig settings of each.
STRATEGIES: dict[str, dict[str, bool]] = {
    "synth": {"synth": True},
    "front": {"predict": True, "synth_front": True},
    "predict": {"predict": True},
}


def space_arrays(space: SearchSpace) -> list[ArrayConfig]:
    """Every array a candidate of ``space`` can run on (one operand format: one mode, the widest accumulator)."""
    grid = itertools.product(space.mul, space.accs, space.roundings, space.arrays, space.interleaves, space.pipelines)
    out = []
    for mul, acc, rounding, size, interleave, pipeline in grid:
        rows, cols = parse_array_size(size)
        geometry = dict(rows=rows, cols=cols, interleave=interleave, pipeline=pipeline)
        out.append(ArrayConfig(a_format=mul, acc_format=acc, rounding=rounding, **geometry))
    return out


def measured(arrays: list[ArrayConfig], truth: SynthCache) -> dict[str, ResourceReport]:
    """The placed-and-routed report of each array, by name, from the truth cache (synthesized there when missing,
    in order: a stopped run keeps what it synthesized)."""
    out = {}
    for array in tqdm(arrays, desc="the space's arrays, measured", unit="array"):
        report = lookup(array, SynthOptions(pnr=True), cache=truth)
        out[array.name] = report or synthesize(array, SynthOptions(pnr=True), cache=truth)
    return out


def search_cache(truth: SynthCache, space: list[ArrayConfig], root: Path) -> SynthCache:
    """A copy of the truth cache's reports and Verilog memos without any report of an array of ``space``."""
    names = {array.name for array in space}
    if root.exists():
        return SynthCache(root)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "designs").mkdir(parents=True)
    for path in truth.root.glob("*.json"):
        if path.name == ADOPTION_INDEX:
            continue
        data = json.loads(path.read_text())
        if data.get("top") not in names:
            shutil.copy2(path, tmp / path.name)
    for memo in (truth.root / "designs").glob("*.sha256"):
        shutil.copy2(memo, tmp / "designs" / memo.name)
    tmp.replace(root)
    return SynthCache(root)


def replay(truths: dict[str, ResourceReport]) -> Any:
    """A stand-in for :func:`hls_gen.synth.synthesize`: the truth's report of the array, put into the search's
    cache."""

    def run(config: ArrayConfig, options: SynthOptions | None = None, *, cache: Any = None, **_: Any) -> Any:
        report = truths[config.name]
        store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
        store.remember_verilog(config, report.verilog_sha256)
        store.put(report)
        return report

    return run


def synthesized_arrays(study: Any, strategy: str) -> set[str]:
    """The names of the distinct arrays a run synthesized: every trial's (synth), the measured front's (front),
    none."""
    if strategy == "synth":
        return {name for t in study.trials if (name := t.user_attrs.get("array_config"))}
    if strategy == "front":
        return {k.split(":", 1)[1] for k in study.user_attrs if k.startswith("measured:")}
    return set()


def checkpoints(study: Any, strategy: str, every: int, truths: dict[str, ResourceReport]) -> list[dict[str, Any]]:
    """Per ``every`` finished trials: the front so far (by the search's objectives) scored at measured hardware."""
    rows = sorted(_rows(study), key=lambda r: r["trial"])
    arrays = synthesized_arrays(study, strategy)
    seconds = sum(tool_seconds(truths[name]) for name in arrays)
    out = []
    for mark in sorted({*range(every, len(rows) + 1, every), len(rows)} - {0}):
        front = front_rows(rows[:mark])
        points = []
        for r in front:
            report = truths[r["array_config"]]
            points.append([1.0 - r["accuracy"], r["cycles"] / report.fmax_mhz, r["energy_uj"], float(report.luts)])
        out.append(
            {
                "trials": mark,
                "front": len(front),
                "points": points,
                "synth_seconds": round(seconds, 1) if mark == len(rows) else None,
                "synthesized": len(arrays) if mark == len(rows) else None,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default="synth,front,predict")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arrays", default="1x1,2x2", help="the space's array sizes (default: %(default)s)")
    parser.add_argument("--every", type=int, default=10, help="trials between checkpoints (default: 10)")
    parser.add_argument("--cache-dir", default=None, help="the truth: a synthesis cache (default: mpsim's)")
    parser.add_argument("--out", type=Path, default=Path("results/nas/hardware"))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    for name in names:
        if name not in STRATEGIES:
            parser.error(f"unknown strategy {name!r}: expected some of {', '.join(STRATEGIES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    space = SearchSpace(arrays=tuple(a.strip() for a in args.arrays.split(",")))
    truth = SynthCache(args.cache_dir)
    arrays = space_arrays(space)
    truths = measured(arrays, truth)  # every truth first
    args.out.mkdir(parents=True, exist_ok=True)
    synth.synthesize = replay(truths)  # the searches' synthesis replays the truth's reports (see the docstring)
    runs = []
    for seed in seeds:
        for name in names:
            out = args.out / "runs" / f"{name}_s{seed}"
            cache = search_cache(truth, arrays, out / "cache")
            config = NASConfig(
                trials=args.trials, seed=seed, epochs=FULL_EPOCHS, proxy_threshold=None, space=space,
                **STRATEGIES[name],
            )  # fmt: skip
            print(f"[{name}, seed {seed}] {args.trials} trials into {out}", flush=True)
            study = run_nas(config, out, progress=True, cache=cache)
            runs.append({"strategy": name, "seed": seed, "checkpoints": checkpoints(study, name, args.every, truths)})
    scaling = score_hypervolumes(runs)
    summary = {
        "objectives": ["1 - accuracy", "latency_us (measured Fmax)", "energy_uj", "luts (measured)"],
        "scaling": scaling,
        "space_arrays": [a.name for a in arrays],
        "space_synth_seconds": round(sum(map(tool_seconds, truths.values())), 1),
        "trials": args.trials,
        "seeds": seeds,
        "runs": runs,
    }
    (args.out / "hardware.json").write_text(json.dumps(summary, indent=1) + "\n")
    with open(args.out / "hardware.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["strategy", "seed", "trials", "front", "synthesized", "synth_seconds", "hypervolume"])
        for run in runs:
            for c in run["checkpoints"]:
                writer.writerow(
                    [run["strategy"], run["seed"], c["trials"], c["front"], c["synthesized"], c["synth_seconds"],
                     round(c["hypervolume"], 6)]
                )  # fmt: skip
    per = {n: [r["checkpoints"][-1] for r in runs if r["strategy"] == n] for n in names}

    def spread(values: list[float], digits: str) -> str:
        if len(values) == 1:
            return f"{values[0]:{digits}}"
        return f"{statistics.mean(values):{digits}} ± {statistics.stdev(values):{digits}}"

    rows = [
        [
            n,
            spread([float(c["synthesized"]) for c in cs], ".1f"),
            spread([c["synth_seconds"] for c in cs], ".0f"),
            spread([c["hypervolume"] for c in cs], ".3f"),
        ]
        for n, cs in per.items()
    ]
    text = md_table(["strategy", "arrays synthesized", "synthesis s", "hypervolume (measured)"], rows)
    text += (
        f"\n\n{len(seeds)} seed(s), {args.trials} trials each; the space's {len(arrays)} arrays take "
        f"{summary['space_synth_seconds']:.0f} s of synthesis in all."
    )
    (args.out / "hardware.md").write_text(text + "\n")
    print(text)
    plot_runs(
        runs,
        "strategy",
        "synth_seconds",
        args.out / "hardware.png",
        measure="measured hardware",
        spent="synthesis seconds needed (Yosys + nextpnr)",
        note="each run",
        title="mpsim nas: synthesize every trial, the predicted front, or nothing",
    )
    print(f"wrote {args.out}/hardware.json, hardware.csv, hardware.md, hardware.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
