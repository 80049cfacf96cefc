"""``mpsim doctor`` and ``mpsim cache``: what this installation can do, and the caches it keeps.

The hardware packages know their own tools: each registers a function in
the entry-point group ``mpsim.checks`` that returns :class:`Check` rows
(``sim``: Verilator, Icarus, cocotb; ``hls_gen``: Amaranth, Yosys,
nextpnr), so this module imports none of them. Caches are named in
:data:`mpsim.cli_kit.CACHES`, plus Numba's, which lives where Numba puts it.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mpsim import __version__, cli_kit
from mpsim.extras import EXTRA_MODULES

__all__ = [
    "CHECK_GROUP",
    "Check",
    "Status",
    "cache_folders",
    "checks",
    "clear_cache",
    "distribution_version",
    "folder_size",
    "human_size",
]

#: Entry-point group of functions ``() -> list[Check]`` that ``mpsim doctor`` runs.
CHECK_GROUP = "mpsim.checks"


class Status:
    OK = "ok"
    MISSING = "missing"  # a command that needs it fails until it is installed
    NOTE = "note"  # works, with something worth knowing


@dataclass(frozen=True)
class Check:
    """One line of ``mpsim doctor``: what was checked, what was found, and how to fix it when not ``ok``."""

    name: str
    status: str
    found: str
    fix: str = ""


def distribution_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cuda_library(name: str) -> bool:
    """Whether distribution ``name`` is one of the CUDA libraries pip brings with torch's default build."""
    return name.lower().startswith(("nvidia-", "triton", "cuda-"))


def core_checks() -> list[Check]:
    """Python, mpsim, the core libraries, torch's build, and each extra."""
    rows = [
        Check("python", Status.OK, f"{platform.python_version()} ({sys.executable})"),
        Check("mpsim", Status.OK, f"{__version__} ({Path(__file__).parent})"),
    ]
    for name in ("numpy", "numba", "torch", "tqdm", "matplotlib", "pyyaml"):
        version = distribution_version(name)
        fix = "" if version else f"pip install {name} (a core dependency: reinstall mpsim)"
        rows.append(Check(name, Status.OK if version else Status.MISSING, version or "not installed", fix))
    cuda = sorted(d.metadata["Name"] for d in metadata.distributions() if _cuda_library(d.metadata["Name"] or ""))
    if cuda:
        rows.append(
            Check(
                "torch build",
                Status.NOTE,
                f"CUDA libraries installed with torch ({len(cuda)}: {', '.join(cuda[:3])}, ...); mpsim runs on the CPU",
                "a CPU-only torch saves about 4 GB: see the README, 'Install size'",
            )
        )
    for extra, modules in EXTRA_MODULES.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        found = "installed" if not missing else f"missing {', '.join(missing)}"
        fix = "" if not missing else f"pip install 'mpsim[{extra}]'"
        rows.append(Check(f"extra [{extra}]", Status.MISSING if missing else Status.OK, found, fix))
    return rows


def cache_checks() -> list[Check]:
    """Each cache folder with its size (``mpsim cache clear NAME`` empties one)."""
    return [
        Check(f"cache {name}", Status.OK, f"{human_size(folder_size(folders, name))} in {', '.join(map(str, folders))}")
        for name, folders in cache_folders().items()
    ]


def checks(plugins: bool = True) -> list[Check]:
    """Every check: mpsim's, then each ``mpsim.checks`` entry point's, then the caches."""
    rows = core_checks()
    if plugins:
        for entry in sorted(metadata.entry_points(group=CHECK_GROUP), key=lambda e: e.name):
            plugin: Callable[[], Iterable[Check]] = entry.load()
            rows += list(plugin())
    return rows + cache_checks()


def _numba_cache_folders() -> list[Path]:
    """Where Numba keeps mpsim's compiled kernels: ``$NUMBA_CACHE_DIR``, or ``__pycache__`` beside the sources."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return [Path(os.environ["NUMBA_CACHE_DIR"])]
    return [Path(__file__).parent / "__pycache__"]


def cache_folders() -> dict[str, list[Path]]:
    """Cache name -> its folders: ``numba`` and each of :data:`mpsim.cli_kit.CACHES`."""
    folders = {"numba": _numba_cache_folders()}
    folders.update({name: [cli_kit.cache_dir(name)] for name in cli_kit.CACHES})
    return folders


def _cache_files(name: str, folder: Path) -> Iterable[Path]:
    """The files of cache ``name`` in ``folder``: only Numba's own files where it shares ``__pycache__``."""
    if not folder.is_dir():
        return []
    if name == "numba" and folder.name == "__pycache__":
        return (p for p in folder.iterdir() if p.suffix in (".nbi", ".nbc"))
    return (p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def folder_size(folders: Iterable[Path], name: str = "") -> int:
    """Bytes in the cache files under ``folders``."""
    return sum(p.stat().st_size for folder in folders for p in _cache_files(name, folder))


def clear_cache(name: str) -> tuple[int, int]:
    """Delete cache ``name``'s files; returns (files, bytes) removed."""
    files = size = 0
    for folder in cache_folders()[name]:
        if name == "numba" and folder.name == "__pycache__":
            for path in list(_cache_files(name, folder)):
                size += path.stat().st_size
                path.unlink()
                files += 1
        elif folder.is_dir():
            for path in _cache_files(name, folder):
                files += 1
                size += path.stat().st_size
            shutil.rmtree(folder)
    return files, size


def human_size(size: int) -> str:
    """``size`` bytes as B, kB, MB or GB (powers of 1000, as du -h --si)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
