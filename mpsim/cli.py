"""The ``mpsim`` command: one subcommand per job, each with ``--help``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from mpsim.codec import encode
from mpsim.extras import MissingExtraError, extra_of_module
from mpsim.formats import PRESETS, FixedFormat, FloatFormat, parse_format
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


def cmd_formats(args: argparse.Namespace) -> int:
    names = args.names or list(PRESETS)
    rows = [_format_row(parse_format(name)) for name in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from mpsim.api import quantize

    fmt = parse_format(args.format)
    if args.input is not None:
        values = np.load(args.input)
        if values.dtype not in (np.float32, np.float64):
            values = values.astype(np.float64)
    elif args.values:
        values = np.array([float(v) for v in args.values], dtype=np.float64)
    else:
        raise ValueError("give values to quantize, or --input FILE.npy")
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
    if args.json:
        print(json.dumps({"format": str(fmt), "rounding": args.rounding, "values": rows}, indent=2))
    else:
        print(f"format {fmt} ({fmt.bits} bits), rounding {args.rounding}")
        _print_table(rows)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
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
    )
    out = args.out or f"runs/{args.dataset}-{args.model}-{args.precision.replace('/', '_')}-s{args.seed}"
    metrics = train(config, out, progress=not args.quiet)
    last = metrics["history"][-1]
    print(
        f"{args.dataset}/{args.model} @ {args.precision}: test accuracy {last['test_accuracy']:.4f} "
        f"after {last['epoch']} epochs ({metrics['train_seconds']:.1f} s); wrote {out}/metrics.json, {out}/curves.png"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpsim",
        description="Low-precision training emulation and accelerator co-design: "
        "one format and rounding spec for the emulator and the hardware.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "formats",
        help="list formats with their key numbers",
        description="List number formats (all presets, or the ones named) with bits, bias, max, "
        "smallest normal/subnormal, epsilon and count of finite values.",
    )
    p.add_argument("names", nargs="*", help="format strings (default: every preset), e.g. e4m3 e6m9 q4.11")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_formats)

    modes = ", ".join(m.value for m in RoundingMode)
    p = sub.add_parser(
        "quantize",
        help="quantize numbers and show their bit patterns",
        description="Quantize numbers (from the command line or a .npy file) into a format and show the result, "
        "its bit pattern and the rounding error.",
    )
    p.add_argument("values", nargs="*", help="numbers to quantize")
    p.add_argument("-f", "--format", default="e4m3", help="target format (default: e4m3)")
    p.add_argument(
        "-r",
        "--rounding",
        default="nearest",
        help=f"rounding: {modes}; stochastic:K for K random bits (default: nearest)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic rounding bits (default: 0)")
    p.add_argument(
        "--saturate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clamp overflow to +-max (default: the format's policy)",
    )
    p.add_argument("-i", "--input", help="read values from a .npy file")
    p.add_argument("-o", "--output", help="write the quantized array to a .npy file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_quantize)

    from mpsim.nn.config import PRECISION_PRESETS

    presets = ", ".join(PRECISION_PRESETS)
    p = sub.add_parser(
        "train",
        help="train a small model on built-in data at a chosen precision",
        description="Train an MLP or CNN on built-in data (scikit-learn digits, mnist1d generated offline, or local "
        "MNIST files) with emulated low-precision arithmetic. Writes metrics.json and curves.png, checkpoints every "
        "epoch and resumes.",
    )
    p.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "digits-image", "mnist1d", "mnist"],
        help="data (default: digits)",
    )
    p.add_argument("--data-root", help="folder with MNIST IDX files or mnist.npz (dataset mnist)")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"], help="model (default: mlp)")
    p.add_argument("--hidden", type=int, default=64, help="MLP hidden width (default: 64)")
    p.add_argument(
        "--precision",
        default="e4m3-sr",
        help=f"preset ({presets}) or a .json/.yaml precision config (default: e4m3-sr)",
    )
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"], help="optimizer (default: sgd)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default: 0.05)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-format", help="format the optimizer stores weights in (default: fp32)")
    p.add_argument("--update-rounding", help="rounding of the weight update: nearest, stochastic, stochastic:K")
    p.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, init and rounding bits (default: 0)")
    p.add_argument("--out", help="output folder (default: runs/DATASET-MODEL-PRECISION-sSEED)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except MissingExtraError as err:
        print(f"mpsim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an extra's module imported without require(): still one line
        extra = extra_of_module(err.name or "")
        if extra is None:
            raise
        print(f"mpsim {args.command}: error: {MissingExtraError(extra, err.name or '')}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"mpsim {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
