"""Numba's on-disk cache for CI: one folder per content of the compiled sources, the same in every clone.

Numba (0.68) stamps each cached function with a SHA-256 of its own source
file and files it under ``NUMBA_CACHE_DIR/<dir>_<sha1 of the file's absolute
folder>``. Two gaps for CI: a fresh clone in another folder never finds the
cache, and an edit to *another* module (``mpsim.kernels`` and
``mpsim.randbits`` hold functions that ``mpsim.gemm_kernels`` compiles in) does
not change the stamp, so a cached kernel could run stale code.

``.ci/run`` closes both:

- ``NUMBA_CACHE_DIR`` is ``~/.cache/mpsim/numba/<key>``, where :func:`cache_key`
  hashes every ``.py`` file of the packages that hold cached functions
  (:data:`PACKAGES`; ``tests/test_numba_cache.py`` checks that no other
  package has one) with the Python, Numba, llvmlite and NumPy versions: any
  edit anywhere in them gives a new, empty folder;
- ``NUMBA_CACHE_LOCATOR_CLASSES`` names :class:`CloneIndependentLocator`,
  which files a function under its package path (``mpsim``) rather than a hash
  of the clone's absolute folder, so identical sources in another clone hit.

``python -m tests.numba_cache key`` prints the key for the repository root.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from numba.core import config
from numba.core.caching import UserProvidedCacheLocator

#: First-party packages that hold ``cache=True`` functions; their sources make the key.
PACKAGES = ("mpsim",)

ROOT = Path(__file__).resolve().parent.parent


def cache_key(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> str:
    """SHA-256 (hex, 16 digits) of every ``.py`` file under ``packages`` (path and bytes) and the tool versions."""
    import llvmlite
    import numba
    import numpy

    digest = hashlib.sha256()
    versions = (
        f"python {sys.version}; numba {numba.__version__}; llvmlite {llvmlite.__version__}; numpy {numpy.__version__}"
    )
    digest.update(versions.encode())
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            data = path.read_bytes()
            digest.update(f"\0{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
            digest.update(data)
    return digest.hexdigest()[:16]


def package_subpath(py_file: str) -> str | None:
    """``mpsim/sub`` for ``.../mpsim/sub/x.py``: the folders from the top package down; None outside a package."""
    folder = Path(os.path.abspath(py_file)).parent
    parts = []
    while (folder / "__init__.py").is_file():
        parts.append(folder.name)
        folder = folder.parent
    return "/".join(reversed(parts)) or None


class CloneIndependentLocator(UserProvidedCacheLocator):
    """Numba's ``NUMBA_CACHE_DIR`` locator, keyed by package path instead of the clone's absolute folder.

    The source stamp (a hash of the file's bytes) and everything else are
    Numba's; a file outside any package keeps Numba's own subpath.
    """

    def __init__(self, py_func, py_file) -> None:
        super().__init__(py_func, py_file)
        subpath = package_subpath(py_file)
        if subpath is not None:
            self._cache_path = os.path.join(config.CACHE_DIR, *subpath.split("/"))


if __name__ == "__main__":
    if sys.argv[1:] != ["key"]:
        raise SystemExit("usage: python -m tests.numba_cache key")
    print(cache_key())
