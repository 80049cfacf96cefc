"""CI's Numba cache (tests/numba_cache.py): reused by identical sources in any clone, never stale after an edit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.numba_cache import PACKAGES, ROOT, cache_key, package_subpath

KERNEL = (
    "import numba\nfrom kpkg.helper import offset\n\n\n@numba.njit(cache=True)\ndef f(x):\n    return x + offset()\n"
)
HELPER = "import numba\n\n\n@numba.njit\ndef offset():\n    return 1\n"
PROBE = (
    "from kpkg.kernel import f\n"
    "print(f(1), sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()), f.stats.cache_path)\n"
)


def clone(folder: Path) -> Path:
    """A package whose cached kernel compiles in a function of another module (as mpsim.gemm_kernels does)."""
    (folder / "kpkg").mkdir(parents=True)
    for name, text in (("__init__.py", ""), ("kernel.py", KERNEL), ("helper.py", HELPER)):
        (folder / "kpkg" / name).write_text(text)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) and put the old mtime back: only the bytes say it changed."""
    assert len(old) == len(new)
    stat = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def run(folder: Path, cache: Path) -> tuple[int, int, int, str]:
    """(f(1), cache hits, cache misses, cache folder) from a fresh interpreter in ``folder``, as CI configures it."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(folder), str(ROOT)]),
        NUMBA_CACHE_DIR=str(cache),
        NUMBA_CACHE_LOCATOR_CLASSES="tests.numba_cache.CloneIndependentLocator",
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=folder, env=env, capture_output=True, text=True, check=True
    ).stdout
    value, hits, misses, path = out.split()
    return int(value), int(hits), int(misses), path


def test_identical_sources_hit_in_another_clone_and_edits_recompile(tmp_path: Path) -> None:
    one = clone(tmp_path / "one")
    key = cache_key(one, ("kpkg",))
    cache = tmp_path / "cache"
    assert run(one, cache / key) == (2, 0, 1, str(cache / key / "kpkg"))  # cold: compiled
    assert run(one, cache / key)[:3] == (2, 1, 0)
    two = shutil.copytree(one, tmp_path / "two")  # another folder, new mtimes, the same bytes
    assert cache_key(two, ("kpkg",)) == key and run(two, cache / key)[:3] == (2, 1, 0)

    # an edit of the kernel's own file, same size and mtime: Numba's stamp (a hash of the bytes) sees it
    edit(two / "kpkg" / "kernel.py", "x + offset()", "x - offset()")
    assert cache_key(two, ("kpkg",)) != key
    assert run(two, cache / key)[:3] == (0, 0, 1)

    # an edit of another module: Numba's per-file stamp alone serves the stale kernel; the key's new folder does not
    three = shutil.copytree(one, tmp_path / "three")
    edit(three / "kpkg" / "helper.py", "return 1", "return 5")
    assert run(one, tmp_path / "one-folder")[:3] == (2, 0, 1)
    assert run(three, tmp_path / "one-folder")[:3] == (2, 1, 0)  # stale: why the folder is keyed by every source
    new_key = cache_key(three, ("kpkg",))
    assert new_key != key and run(three, cache / new_key)[:3] == (6, 0, 1)


def test_key_covers_every_cached_function() -> None:
    """Only the packages in the key hold cache=True functions, so no cached kernel compiles in an unkeyed source."""
    cached = {
        path.relative_to(ROOT).parts[0]
        for package in ("mpsim", "continual", "hls_gen", "sim", "benchmarks")
        for path in (ROOT / package).rglob("*.py")
        if re.search(r"cache\s*=\s*True", path.read_text())
    }
    assert cached == set(PACKAGES)


def test_package_subpath(tmp_path: Path) -> None:
    assert package_subpath(str(ROOT / "mpsim" / "gemm_kernels.py")) == "mpsim"
    assert package_subpath(str(tmp_path / "loose.py")) is None
