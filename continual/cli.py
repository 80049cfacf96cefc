"""``mpsim cl`` and ``mpsim cl-sweep``: registered through the ``mpsim.commands`` entry-point group."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from continual.benchmarks import BENCHMARKS, SCENARIOS
from continual.precision import CL_PRESETS
from mpsim.extras import require

__all__ = ["register"]

_STRATEGIES = "naive replay gem agem ewc si lwf packnet joint"


def _presets_help() -> str:
    lines = ["precision presets (layers: weight/activation/error formats, accumulator, GEMM rounding; then storage):"]
    for name, p in CL_PRESETS.items():
        layer = p.layers.default
        acc = f"{layer.forward.acc}/{layer.forward.rounding}" if layer.forward.emulate else "fp32"
        w, a, g = (q.format or "fp32" for q in (layer.weight, layer.activation, layer.grad))
        lines.append(
            f"  {name:<13} w/a/g {w}/{a}/{g}, acc {acc}; weights {p.weight or 'fp32'} ({p.update_rounding}), "
            f"grads/state {p.state or 'fp32'}, replay {p.buffer or 'fp32'}"
        )
    lines += [
        "",
        "policies: fixed | schedule (experience 0 in bf16, then PRECISION) | schedule:P0,P1,... (per experience) |",
        "          adaptive (bf16 <-> PRECISION, switched on measured error underflow and loss spikes) | adaptive:HIGH",
        f"strategies: {_STRATEGIES} (packnet needs --scenario task)",
        f"benchmarks: {', '.join(BENCHMARKS)} (*-mnist read local files from --data-root; nothing is downloaded)",
    ]
    return "\n".join(lines)


def _add_common(p: argparse.ArgumentParser) -> None:
    from continual.config import RunConfig

    d = RunConfig()
    g = p.add_argument_group("training (shared by every run)")
    g.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs per experience (default: {d.epochs})")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help=f"mini-batch size (default: {d.batch_size})")
    g.add_argument("--lr", type=float, default=d.lr, help=f"SGD learning rate (default: {d.lr})")
    g.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD momentum (default: {d.momentum})")
    g.add_argument("--hidden", type=int, default=d.hidden, help=f"MLP hidden width (default: {d.hidden})")
    g.add_argument("--layers", type=int, default=d.layers, help=f"MLP hidden layers (default: {d.layers})")
    g.add_argument("--experiences", type=int, default=d.n_experiences, help=f"experiences (default: {d.n_experiences})")
    g.add_argument(
        "--mem-size",
        type=int,
        default=d.mem_size,
        help=f"replay memory; GEM/AGEM keep mem-size/experiences per experience (default: {d.mem_size})",
    )
    g.add_argument("--data-root", help="folder with the MNIST IDX files or mnist.npz (split-mnist, permuted-mnist)")
    g = p.add_argument_group("execution")
    g.add_argument(
        "--workers", type=int, default=1, help="parallel runs: 1 = in this process, N = local process pool (default: 1)"
    )
    g.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on Dask: 'local' (a LocalCluster of --workers processes) "
        "or a scheduler address tcp://host:8786 (needs mpsim[dask])",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _base(args: argparse.Namespace) -> Any:
    from continual.config import RunConfig

    return RunConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        hidden=args.hidden,
        layers=args.layers,
        n_experiences=args.experiences,
        mem_size=args.mem_size,
        data_root=args.data_root,
    )


def _execute(args: argparse.Namespace, spec: Any, out: Path) -> list[dict[str, Any]]:
    from continual.report import aggregate, load_results
    from continual.sweep import expand, run_sweep

    configs, skipped = expand(spec)
    for note in skipped:
        print(f"skipped {note}")
    if not configs:
        raise ValueError("the grid holds no valid run (see the skipped combinations above)")
    from continual.benchmarks import BENCHMARKS, check_data

    for bench in {c.benchmark for c in configs if BENCHMARKS[c.benchmark][0] == "mnist"}:
        check_data(bench, spec.base.data_root)  # a missing MNIST file is named before any run starts
    if getattr(args, "dry_run", False):
        for c in configs:
            print(c.benchmark, c.scenario, c.strategy, c.label, f"seed {c.seed}")
        print(f"{len(configs)} runs")
        return []
    done = run_sweep(configs, out, workers=args.workers, dask=args.dask, progress=not args.quiet)
    print(f"{len(done['finished'])} runs already finished, {len(done['ran'])} run now; results in {out}")
    for name, error in done["failed"].items():
        print(f"FAILED {name}: {error}")
    args.failed = len(done["failed"])
    wanted = {(c.benchmark, c.scenario, c.strategy, c.label) for c in configs}
    results = [
        r
        for r in load_results(out)
        if (r["config"]["benchmark"], r["config"]["scenario"], r["config"]["strategy"], r["label"]) in wanted
    ]
    return aggregate(results)


def cmd_cl(args: argparse.Namespace) -> int:
    require("cl")
    from continual.config import run_id
    from continual.sweep import SweepSpec

    spec = SweepSpec(
        benchmarks=(args.benchmark,),
        scenarios=(args.scenario,),
        strategies=(args.strategy,),
        precisions=(args.precision,),
        policies=(args.policy,),
        seeds=args.seeds,
        base=_base(args),
    )
    example = replace(
        spec.base,
        benchmark=args.benchmark,
        scenario=args.scenario,
        strategy=args.strategy,
        precision=args.precision,
        policy=args.policy,
    )
    out = Path(args.out or f"runs/cl/{run_id(example).rsplit('_s', 1)[0]}")
    for row in _execute(args, spec, out):
        f = row["forgetting_mean"]
        print(
            f"{row['benchmark']} ({row['scenario']}) {row['strategy']} @ {row['label']}, {row['seeds']} seeds: "
            f"average accuracy {row['average_accuracy_mean']:.3f} ± {row['average_accuracy_std']:.3f}, "
            f"forgetting {'-' if f is None else f'{f:.3f}'}, training {row['train_macs_mean']:.3g} MACs, "
            f"{row['train_energy_uj_mean']:.3g} µJ"
        )
    return 1 if getattr(args, "failed", 0) else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    require("cl")
    if args.dask:
        require("dask")
    from continual.sweep import SweepSpec

    spec = SweepSpec(
        benchmarks=tuple(args.benchmarks),
        scenarios=tuple(args.scenarios),
        strategies=tuple(args.strategies),
        precisions=tuple(args.precisions),
        policies=tuple(args.policies),
        seeds=args.seeds,
        base=_base(args),
    )
    rows = _execute(args, spec, Path(args.out))
    if rows:
        print(f"wrote {args.out}/results.csv, results.md, heatmaps_*.png, pareto_*.png ({len(rows)} table rows)")
    return 1 if getattr(args, "failed", 0) else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cl`` and ``cl-sweep`` to the ``mpsim`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "cl",
        help="continual learning on Avalanche at a chosen precision (one setting, N seeds)",
        formatter_class=fmt,
        description="Train an Avalanche strategy on an offline continual benchmark with emulated low-precision "
        "arithmetic, weight updates and stored state. Writes OUT/runs/*.json per seed (accuracy matrix, average "
        "accuracy, forgetting, backward transfer, wall time, MACs per format, bit-operations, energy proxy, precision "
        "switches), results.csv/.md and plots; finished seeds are not run again.",
        epilog=_presets_help(),
    )
    p.add_argument("--benchmark", default="split-digits", help="benchmark (default: split-digits)")
    p.add_argument("--scenario", default="class", help=f"{' or '.join(SCENARIOS)}-incremental (default: class)")
    p.add_argument("--strategy", default="naive", help="strategy (default: naive)")
    p.add_argument("--precision", default="e4m3-sr", help="preset or a .json/.yaml precision config (default: e4m3-sr)")
    p.add_argument("--policy", default="fixed", help="precision policy (default: fixed)")
    p.add_argument("--seeds", type=int, default=1, help="run seeds 0..N-1 (default: 1)")
    p.add_argument("--out", help="output folder (default: runs/cl/BENCHMARK_SCENARIO_STRATEGY_PRECISION)")
    _add_common(p)
    p.set_defaults(func=cmd_cl)

    q = subparsers.add_parser(
        "cl-sweep",
        help="grid of continual-learning runs, resumable, with a results table and plots",
        formatter_class=fmt,
        description="Run benchmarks x scenarios x strategies x precisions x policies x seeds. Each finished run is "
        "written atomically to OUT/runs/RUN.json; run the same command again after a kill and only the missing runs "
        "run. Then writes OUT/results.csv, results.md (mean ± std over seeds), heatmaps_*.png and pareto_*.png.",
        epilog=_presets_help(),
    )
    q.add_argument("--benchmarks", nargs="+", default=["split-digits"], help="benchmarks (default: split-digits)")
    q.add_argument("--scenarios", nargs="+", default=["class"], help="class and/or task (default: class)")
    q.add_argument("--strategies", nargs="+", default=["naive"], help="strategies (default: naive)")
    q.add_argument(
        "--precisions", nargs="+", default=["fp32", "e4m3-sr"], help="presets or config files (default: fp32 e4m3-sr)"
    )
    q.add_argument("--policies", nargs="+", default=["fixed"], help="precision policies (default: fixed)")
    q.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per setting (default: 3)")
    q.add_argument("--out", default="results/cl", help="output folder (default: results/cl)")
    q.add_argument("--dry-run", action="store_true", help="list the runs of the grid and stop")
    _add_common(q)
    q.set_defaults(func=cmd_sweep)
