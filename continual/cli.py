"""``mpsim cl`` and ``mpsim cl-sweep``: registered through the ``mpsim.commands`` entry-point group.

Registering the commands and checking their arguments import neither torch
nor Avalanche (:mod:`continual.config`, :mod:`continual.precision` and
:mod:`continual.sweep` are free of both), so ``--help`` and every argument
error answer at once; every run of the grid is checked before the first one
starts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from continual.config import BENCHMARKS, SCENARIOS, STRATEGIES, RunConfig, check_data_root, run_id
from continual.policies import make_policy
from continual.precision import CL_PRESETS, parse_cl_precision
from mpsim import cli_kit
from mpsim.backend_registry import check_backend
from mpsim.cli_kit import UserError, positive_float, positive_int
from mpsim.extras import require
from mpsim.precision import GemmKind

__all__ = ["default_out", "register"]

#: The training options every run shares: RunConfig field -> command-line option.
_TRAINING = {
    "epochs": "epochs",
    "batch_size": "batch-size",
    "lr": "lr",
    "momentum": "momentum",
    "hidden": "hidden",
    "layers": "layers",
    "n_experiences": "experiences",
    "mem_size": "mem-size",
}


def _presets_help() -> str:
    lines = ["precision presets (layers: weight/activation/error formats, accumulator, GEMM rounding; then storage):"]
    for name, p in CL_PRESETS.items():
        layer = p.layers.default
        acc = f"{layer.forward.acc}/{layer.forward.rounding}" if layer.forward.emulate else "fp32"
        w, a, g = (q.format or "fp32" for q in (layer.weight, layer.activation, layer.grad))
        operands = f"w/a/g {w}/{a}/{g}"
        if layer.forward.mx_formats is not None:  # fp32 tensors, blocked by each GEMM itself
            gemms = (layer.forward, layer.grad_input, layer.grad_weight)
            operands = "MX GEMMs " + " | ".join(gemm.to_dict()["mul"] for gemm in gemms)
            if layer.grad_input.mul_rounding_rule.stochastic:
                operands += f" (backward elements {layer.grad_input.mul_rounding})"
        lines.append(
            f"  {name:<13} {operands}, acc {acc}; weights {p.weight or 'fp32'} ({p.update_rounding}), "
            f"grads/state {p.state or 'fp32'}, replay {p.buffer or 'fp32'}"
        )
    lines += [
        "",
        "policies: fixed | schedule (experience 0 in bf16, then PRECISION) | schedule:P0,P1,... (per experience) |",
        "          adaptive (bf16 <-> PRECISION, switched on measured error underflow and loss spikes) | adaptive:HIGH",
        f"strategies: {' '.join(STRATEGIES)} (packnet needs --scenario task)",
        f"benchmarks: {', '.join(BENCHMARKS)} (*-mnist read local files from --data-root; nothing is downloaded)",
        "",
        "Every run of the grid is checked before the first starts. Finished runs are kept in OUT/runs and never run "
        "again: the same command resumes after Ctrl-C or a kill; --force runs them again.",
    ]
    return "\n".join(lines)


def _add_common(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    g = p.add_argument_group("training (shared by every run)")
    g.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"epochs per experience (default: {d.epochs})")
    g.add_argument(
        "--batch-size", type=positive_int, default=d.batch_size, help=f"mini-batch size (default: {d.batch_size})"
    )
    g.add_argument("--lr", type=positive_float, default=d.lr, help=f"SGD learning rate (default: {d.lr})")
    g.add_argument("--momentum", type=float, default=d.momentum, help=f"SGD momentum (default: {d.momentum})")
    g.add_argument("--hidden", type=positive_int, default=d.hidden, help=f"MLP hidden width (default: {d.hidden})")
    g.add_argument("--layers", type=positive_int, default=d.layers, help=f"MLP hidden layers (default: {d.layers})")
    g.add_argument(
        "--experiences",
        type=positive_int,
        default=d.n_experiences,
        help=f"experiences; split benchmarks need a divisor of their 10 classes (default: {d.n_experiences})",
    )
    g.add_argument(
        "--mem-size",
        type=positive_int,
        default=d.mem_size,
        help=f"replay memory; GEM/AGEM keep mem-size/experiences per experience (default: {d.mem_size})",
    )
    g.add_argument(
        "--data-root", metavar="DIR", help="folder with the MNIST IDX files or mnist.npz (split-mnist, permuted-mnist)"
    )
    cli_kit.add_backend(g)
    g = p.add_argument_group("execution")
    g.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="parallel runs: 1 = in this process, N = local process pool (default: 1)",
    )
    g.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on Dask: 'local' (a LocalCluster of --workers processes) "
        "or a scheduler address tcp://host:8786 (needs mpsim[dask])",
    )
    g.add_argument(
        "--force", action="store_true", help="run the grid's finished runs again (their files in --out are replaced)"
    )
    cli_kit.add_quiet(g)


def _add_seeds(p: argparse.ArgumentParser, count: int) -> None:
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the first run: data split, initial weights, shuffling, replay sampling and rounding bits "
        "(default: 0)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=count,
        metavar="K",
        help=f"runs per setting, seeds N..N+K-1 (default: {count})",
    )


def _base(args: argparse.Namespace, benchmark: str) -> RunConfig:
    """The settings every run shares, checked with ``benchmark`` (the grid's first; each run checks its own)."""
    options = {name: getattr(args, option.replace("-", "_")) for name, option in _TRAINING.items()}
    check_backend(args.backend, args.hardware)
    return RunConfig(
        benchmark=benchmark, **options, data_root=args.data_root, backend=args.backend, hardware=args.hardware
    )


def _check_hardware(configs: list[RunConfig]) -> None:
    """Each hardware backend's array runs every GEMM of each precision its runs' policies may choose (a linear
    layer's, of the precision's default): else one line naming the GEMM, before any run starts (a run checks its
    own layers again as it converts them)."""
    seen = set()
    for config in configs:
        key = (config.backend, config.hardware, config.precision, config.policy)
        if config.backend == "emulator" or key in seen:
            continue
        seen.add(key)
        from mpsim.nn.backends import load_backend  # torch only now, when the runs are about to start

        backend = load_backend(config.backend, config.hardware)
        for precision in make_policy(config.policy, config.precision).precisions():
            layer = precision.layers.default  # a linear layer's calls: GemmKind's operand order
            backend.check(f"precision {precision.name}", [layer.call(kind) for kind in GemmKind])


def _settings(base: RunConfig) -> str:
    """The training options that differ from the defaults, as ``epochs=1,hidden=8`` ('' when none do)."""
    default = RunConfig()
    changed = [
        (option, getattr(base, name))
        for name, option in _TRAINING.items()
        if getattr(base, name) != getattr(default, name)
    ]
    return ",".join(f"{option}={value:g}" for option, value in changed)


def default_out(command: str, base: RunConfig, grid: str = "") -> Path:
    """The folder a run goes to without ``--out``: under ``runs/``, named from ``grid`` and the training settings.

    The same command finds the same folder again (and resumes there); other
    training settings get another folder, so they never collide.
    """
    name = "_".join(part for part in (grid, _settings(base)) if part) or "defaults"
    return Path("runs") / command / name


def _check_precision(spec: str, option: str) -> None:
    """A preset, or a precision file that loads: else one line naming ``option`` (files name themselves)."""
    if not spec.endswith((".json", ".yaml", ".yml")):
        parse_cl_precision(spec)  # an unknown preset: a ValueError listing the presets
        return
    try:
        parse_cl_precision(spec)
    except (OSError, ValueError) as error:
        raise UserError(f"{option}: {cli_kit.one_line(error)}") from None


def _resume_command(out: Path) -> str:
    """The command line that resumes: this one (without --force: a rerun must keep what finished), naming --out."""
    return cli_kit.command_line([a for a in sys.argv[1:] if a != "--force"], out=out)


def _prepare(args: argparse.Namespace, spec: Any, out: Path) -> list[RunConfig]:
    """Every run of the grid, checked (settings, data, the output folder) before any starts; says what is done."""
    from continual.sweep import expand, finished_runs

    configs, skipped = expand(spec)
    for note in skipped:
        print(f"skipped {note}")
    if not configs:
        raise UserError("the grid holds no valid run (see the skipped combinations above)")
    for bench in sorted({c.benchmark for c in configs}):
        check_data_root(bench, spec.base.data_root)  # a missing MNIST file is named before any run starts
    _check_hardware(configs)
    if args.dask:
        require("dask")
        if args.dask != "local" and not re.fullmatch(r"([a-z]+://)?[^:/\s]+:\d+", args.dask):
            raise UserError(f"--dask takes 'local' or a scheduler address such as tcp://host:8786, not {args.dask!r}")
    if args.force and not getattr(args, "dry_run", False):
        for config in configs:
            (out / "runs" / f"{run_id(config)}.json").unlink(missing_ok=True)
    done = len(finished_runs(configs, out))  # a run of other settings there: one line, before any run
    if done == len(configs):
        print(
            f"{out} holds all {done} of these runs, finished: nothing to run; "
            f"to run them again: {cli_kit.command_line(force=True)}, or another --out"
        )
    elif done:
        print(
            f"{out} holds {done} of these {len(configs)} runs, finished: running the other {len(configs) - done}; "
            f"to start anew: --force, or another --out"
        )
    return configs


def _execute(args: argparse.Namespace, spec: Any, out: Path) -> list[dict[str, Any]]:
    configs = _prepare(args, spec, out)
    if getattr(args, "dry_run", False):
        for c in configs:
            print(c.benchmark, c.scenario, c.strategy, c.label, f"seed {c.seed}")
        print(f"{len(configs)} runs")
        return []
    from continual.report import aggregate, load_results
    from continual.sweep import run_sweep

    cli_kit.resumable(f"the finished runs are in {out}/runs", _resume_command(out))
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


def _spec(args: argparse.Namespace, **grid: tuple[str, ...]) -> Any:
    from continual.sweep import SweepSpec

    for precision in grid["precisions"]:
        _check_precision(precision, "--precision")
    return SweepSpec(**grid, seeds=args.seeds, first_seed=args.seed, base=_base(args, grid["benchmarks"][0]))


def cmd_cl(args: argparse.Namespace) -> int:
    require("cl")
    one = dict(
        benchmark=args.benchmark,
        scenario=args.scenario,
        strategy=args.strategy,
        precision=args.precision,
        policy=args.policy,
    )
    spec = _spec(
        args,
        benchmarks=(args.benchmark,),
        scenarios=(args.scenario,),
        strategies=(args.strategy,),
        precisions=(args.precision,),
        policies=(args.policy,),
    )
    example = replace(spec.base, **one, seed=args.seed)  # every check of the run, with its own message
    out = Path(args.out) if args.out else default_out("cl", example, run_id(example).rsplit("_s", 1)[0])
    for row in _execute(args, spec, out):
        f = row["forgetting_mean"]
        print(
            f"{row['benchmark']} ({row['scenario']}) {row['strategy']} @ {row['label']}, {row['seeds']} seeds: "
            f"average accuracy {row['average_accuracy_mean']:.3f} ± {row['average_accuracy_std']:.3f}, "
            f"forgetting {'-' if f is None else f'{f:.3f}'}, training {row['train_macs_mean']:.3g} MACs, "
            f"{row['train_energy_uj_mean']:.3g} µJ"
        )
    if args.backend != "emulator" and not getattr(args, "dry_run", False):
        for seed in range(args.seed, args.seed + args.seeds):
            path = out / "runs" / f"{run_id(replace(example, seed=seed))}.json"
            if path.is_file():
                result = json.loads(path.read_text())
                switches = ", ".join(f"{s['to']} at cycle {s['cycle']:,}" for s in result["switches"]) or "none"
                print(f"seed {seed} {cli_kit.hardware_summary(result['hardware'])}\n  switches: {switches}")
    return 1 if getattr(args, "failed", 0) else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    require("cl")
    spec = _spec(
        args,
        benchmarks=tuple(args.benchmarks),
        scenarios=tuple(args.scenarios),
        strategies=tuple(args.strategies),
        precisions=tuple(args.precisions),
        policies=tuple(args.policies),
    )
    out = Path(args.out) if args.out else default_out("cl-sweep", spec.base)
    rows = _execute(args, spec, out)
    if rows:
        print(f"wrote {out}/results.csv, results.md, heatmaps_*.png, pareto_*.png ({len(rows)} table rows)")
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
    _add_seeds(p, 1)
    cli_kit.add_out(p, "runs/cl/BENCHMARK_SCENARIO_STRATEGY_PRECISION[_SETTINGS], SETTINGS the training options given")
    _add_common(p)
    p.set_defaults(func=cmd_cl)

    q = subparsers.add_parser(
        "cl-sweep",
        help="grid of continual-learning runs, resumable, with a results table and plots",
        formatter_class=fmt,
        description="Run benchmarks x scenarios x strategies x precisions x policies x seeds. Each finished run is "
        "written atomically to OUT/runs/RUN.json; run the same command again after a kill and only the missing runs "
        "run. Then writes OUT/results.csv, results.md (mean ± std over seeds), heatmaps_*.png and pareto_*.png, "
        "from every run in OUT (grids with the same training options can share a folder).",
        epilog=_presets_help(),
    )
    q.add_argument("--benchmarks", nargs="+", default=["split-digits"], help="benchmarks (default: split-digits)")
    q.add_argument("--scenarios", nargs="+", default=["class"], help="class and/or task (default: class)")
    q.add_argument("--strategies", nargs="+", default=["naive"], help="strategies (default: naive)")
    q.add_argument(
        "--precisions", nargs="+", default=["fp32", "e4m3-sr"], help="presets or config files (default: fp32 e4m3-sr)"
    )
    q.add_argument("--policies", nargs="+", default=["fixed"], help="precision policies (default: fixed)")
    _add_seeds(q, 3)
    cli_kit.add_out(
        q,
        "runs/cl-sweep/SETTINGS, SETTINGS the training options given, or 'defaults'; the committed sweep is results/cl",
    )
    q.add_argument("--dry-run", action="store_true", help="list the runs of the grid and stop")
    _add_common(q)
    q.set_defaults(func=cmd_sweep)
