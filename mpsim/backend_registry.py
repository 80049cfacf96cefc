"""The names of the installed GEMM backends, without importing torch (``--backend`` is checked before any work).

Packages register a backend factory under the entry-point group
:data:`BACKEND_GROUP` (``name = "package.module:factory"``, ``factory(hardware)``);
:func:`mpsim.nn.backends.load_backend` builds one by name.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

__all__ = [
    "BACKEND_GROUP",
    "EMULATOR_NAME",
    "backend_entry_points",
    "backend_names",
    "check_backend",
    "check_backend_name",
]

#: Entry-point group of backend factories.
BACKEND_GROUP = "mpsim.backends"
#: mpsim's own backend, :func:`mpsim.qmatmul` (:data:`mpsim.nn.backends.EMULATOR`).
EMULATOR_NAME = "emulator"


def backend_entry_points() -> dict[str, metadata.EntryPoint]:
    """The registered factories by name."""
    return {entry.name: entry for entry in metadata.entry_points(group=BACKEND_GROUP)}


def backend_names() -> list[str]:
    """``emulator`` and the names the installed packages register, sorted after it."""
    return [EMULATOR_NAME, *sorted(set(backend_entry_points()) - {EMULATOR_NAME})]


def check_backend_name(backend: str) -> None:
    """Raise ``ValueError`` (one line naming it and the known ones) for a backend no installed package registers."""
    if backend not in backend_names():
        raise ValueError(f"unknown GEMM backend {backend!r}: expected one of {', '.join(backend_names())}")


def check_backend(backend: str, hardware: str | None) -> None:
    """``--backend`` and ``--hardware`` checked before any work: a known backend, and a manifest that exists exactly
    where a backend needs one. Raises ``ValueError`` (one line)."""
    check_backend_name(backend)
    if backend == EMULATOR_NAME and hardware is not None:
        raise ValueError(f"the emulator backend runs no hardware; drop --hardware {hardware!r}")
    if backend != EMULATOR_NAME and hardware is None:
        raise ValueError(f"--backend {backend} needs --hardware DIR/NAME.json, the manifest of `mpsim emit ... --out`")
    if hardware is not None and not Path(hardware).is_file():
        raise ValueError(
            f"--hardware {hardware!r} not found; write one with `mpsim emit ... --out DIR` (DIR/NAME.json)"
        )
