"""What every ``mpsim`` subcommand shares: its options, its one-line errors, what Ctrl-C says.

Every package that adds a subcommand (``continual``, ``hls_gen``, ``sim``)
builds it from these pieces, so an option means one thing everywhere:

- ``--out DIR``: the folder a command writes into (a fresh one under
  ``runs/`` by default; the committed ``results/`` only when named);
- ``--json PATH``: a report file (``-`` prints it);
- ``--quiet``: no progress; ``--cache-dir DIR``: the cache a command keeps;
- ``--seed N``: the seed of every random choice the command makes.

A command raises :class:`UserError` (or ``ValueError``/``OSError`` from
below) for bad input; :func:`mpsim.cli.main` prints it as one line
``mpsim CMD: error: ...`` and exits 2. A long command calls
:func:`resumable` once it knows its output folder, so that Ctrl-C prints
what was saved and the command that resumes. Nothing here imports NumPy,
Numba or torch: ``mpsim --help`` must start in well under a second.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CACHES",
    "DEBUG_ENV",
    "Resume",
    "UserError",
    "add_backend",
    "add_cache_dir",
    "add_json",
    "add_out",
    "add_quiet",
    "add_seed",
    "cache_dir",
    "command_line",
    "hardware_summary",
    "one_line",
    "positive_float",
    "positive_int",
    "resumable",
    "resume_note",
    "set_command",
]

#: Set to 1 to see the traceback behind a one-line error (as ``mpsim --debug``).
DEBUG_ENV = "MPSIM_DEBUG"


class UserError(Exception):
    """Bad input from the user: printed as one line naming the bad value, exit status 2."""


@dataclass(frozen=True)
class Resume:
    """What an interrupted command leaves: what is saved, and the command line that carries on."""

    saved: str
    command: str


_RESUME: list[Resume] = []
_ARGV: list[str] = []  # the arguments mpsim.cli.main runs (sys.argv[1:] from a shell)


def set_command(argv: list[str]) -> None:
    """Record the arguments of the command being run (:func:`mpsim.cli.main` does) and forget any resume note."""
    _ARGV[:] = argv
    _RESUME.clear()


def command_line(argv: list[str] | None = None, **set_options: object) -> str:
    """The ``mpsim`` command line being run, with ``--OPTION VALUE`` added for each ``set_options`` not given.

    ``command_line(out="runs/x")`` is the exact command that resumes a run
    whose output folder was a default: the rerun names the folder. A value
    ``True`` adds a flag (``force=True``: ``--force``).
    """
    args = list((_ARGV or sys.argv[1:]) if argv is None else argv)
    for name, value in set_options.items():
        option = "--" + name.replace("_", "-")
        if not any(a == option or a.startswith(option + "=") for a in args):
            args += [option] if value is True else [option, str(value)]
    return shlex.join(["mpsim", *args])


def resumable(saved: str, command: str | None = None) -> None:
    """Say what Ctrl-C leaves from here on: ``saved`` (e.g. "finished epochs in runs/x") and the resuming command."""
    _RESUME[:] = [Resume(saved, command or command_line())]


def resume_note() -> Resume | None:
    """What the running command said :func:`resumable` (None before it did)."""
    return _RESUME[0] if _RESUME else None


def one_line(error: BaseException) -> str:
    """An error's message on one line (YAML and argparse messages span several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def add_out(p: argparse.ArgumentParser, default: str, what: str = "output folder") -> None:
    """``--out DIR``: the folder the command writes into (``default`` says what it is when not given)."""
    p.add_argument("--out", metavar="DIR", default=None, help=f"{what} (default: {default})")


def add_json(p: argparse.ArgumentParser, what: str = "the report") -> None:
    """``--json PATH``: write ``what`` as JSON to PATH (``-``: print it instead of the table)."""
    p.add_argument("--json", metavar="PATH", default=None, help=f"write {what} as JSON to PATH (- prints it)")


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars or activity lines (results and errors still print)."""
    p.add_argument("--quiet", action="store_true", help="no progress (results and errors still print)")


def add_cache_dir(p: argparse.ArgumentParser, what: str, env: str, folder: str) -> None:
    """``--cache-dir DIR`` for the cache of ``what``: default ``$ENV`` or ``~/.cache/mpsim/FOLDER``."""
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help=f"{what} cache (default: ${env} or ~/.cache/mpsim/{folder}; see mpsim cache info)",
    )


def add_seed(p: argparse.ArgumentParser, what: str, default: int = 0) -> None:
    """``--seed N``: the seed of ``what`` (every random choice of the command); same seed, same bits."""
    p.add_argument("--seed", type=int, default=default, metavar="N", help=f"seed of {what} (default: {default})")


def add_backend(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--backend NAME`` and ``--hardware NAME.json``: what computes the GEMMs (checked by
    :func:`mpsim.backend_registry.check_backend`)."""
    p.add_argument(
        "--backend",
        default="emulator",
        help="what computes the GEMMs: emulator (mpsim), rtl (the array's Verilog on Verilator, --hardware) or "
        "array-emulator (mpsim on that array's modes and random stream, --hardware) (default: emulator)",
    )
    p.add_argument("--hardware", metavar="NAME.json", help="manifest of the array (mpsim emit --precision ... --out)")


#: mpsim's caches: name -> (environment variable that moves it, folder under ~/.cache/mpsim, what it holds).
CACHES: dict[str, tuple[str, str, str]] = {
    "cosim": ("MPSIM_COSIM_CACHE", "cosim", "Verilator and Icarus builds of co-simulated designs"),
    "synth": ("MPSIM_SYNTH_CACHE", "synth", "Yosys and nextpnr reports"),
}


def cache_dir(name: str, given: str | os.PathLike[str] | None = None) -> Path:
    """Cache ``name``'s folder: ``given`` (``--cache-dir``), else its variable, else ``$XDG_CACHE_HOME/mpsim/NAME``.

    ``$XDG_CACHE_HOME`` defaults to ``~/.cache``.
    """
    if given:
        return Path(given)
    env, folder, _ = CACHES[name]
    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mpsim" / folder


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, not {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, not {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


#: argparse ``type=`` for numbers that must be positive: the error names the option and the value.
positive_int = _positive(int)
positive_float = _positive(float)


def hardware_summary(report: dict[str, object]) -> str:
    """Lines of a hardware backend's report: cycles measured and modelled, per GEMM kind, utilisation, energy."""
    lines = [f"on {report['array']} ({report['rows']}x{report['cols']}, interleave {report['interleave']}):"]
    rows = [("total", report["total"])]
    rows += [(f"  {kind}", row) for kind, row in report["per_kind"].items()]  # type: ignore[attr-defined]
    rows += [(f"  mode {mode}", row) for mode, row in report["per_mode"].items()]  # type: ignore[attr-defined]
    for name, row in rows:
        measured = row["measured_cycles"]  # type: ignore[index]
        cycles = f"{measured:,} cycles measured, " if measured is not None else ""
        lines.append(
            f"{name}: {row['gemms']} GEMMs, {cycles}{row['modelled_cycles']:,} modelled, "  # type: ignore[index]
            f"utilisation {row['utilisation']:.3f}, {row['energy_uj']:.2f} uJ"  # type: ignore[index]
        )
    return "\n".join(lines)
