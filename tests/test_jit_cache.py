"""Numba's disk cache with two processes saving overloads of one function at once: never the wrong machine code."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from numba.core import caching

from mpsim import jit_cache

KEY_A = (("float64",), ("x86_64", "znver2", ""), ("code", "closure a"))
KEY_B = (("float64",), ("x86_64", "znver2", ""), ("code", "closure b"))


def _interleaved(save: Callable[..., None], folder: Path) -> tuple[Any, Any]:
    """Process A reads the index, process B saves, and A's whole save lands between B's index and data writes."""

    def cache_file() -> caching.IndexDataCacheFile:
        return caching.IndexDataCacheFile(str(folder), "gemm_kernels.step_loop-600.py311", ("stamp", 1))

    a, b = cache_file(), cache_file()
    stale = a._load_index()  # A read the index before B wrote its entry
    a._load_index = lambda: dict(stale)
    b_save_data = b._save_data

    def b_data_after_a(name: str, data: Any) -> None:
        save(a, KEY_A, "code of A")
        b_save_data(name, data)

    b._save_data = b_data_after_a
    save(b, KEY_B, "code of B")
    fresh = cache_file()
    return fresh.load(KEY_A), fresh.load(KEY_B)


def test_numbas_own_save_can_map_an_overload_to_anothers_code(tmp_path: Path) -> None:
    """The race this module exists for: with Numba's numbering, A's entry ends up naming B's data file."""
    assert _interleaved(jit_cache.NUMBA_SAVE, tmp_path) == ("code of B", None)


def test_the_guarded_save_loads_the_right_code_or_none(tmp_path: Path) -> None:
    assert _interleaved(jit_cache._save, tmp_path) == ("code of A", None)  # B's entry lost: compiled again


def test_every_module_with_cached_kernels_installs_the_guard() -> None:
    """In a fresh process, importing any one module that holds cached kernels installs the guarded save."""
    for module in ("mpsim.randbits", "mpsim.kernels", "mpsim.codec", "mpsim.gemm_kernels"):
        source = inspect.getsource(importlib.import_module(module))
        assert "numba.njit(cache=True" in source or "@numba.njit(cache=True)" in source
        check = (
            f"import numba.core.caching as c, {module}, mpsim.jit_cache as j; "
            "assert c.IndexDataCacheFile.save is j._save"
        )
        subprocess.run([sys.executable, "-c", check], check=True)
    plain = "import numba.core.caching as c, mpsim.jit_cache as j; assert c.IndexDataCacheFile.save is j.NUMBA_SAVE"
    subprocess.run([sys.executable, "-c", plain], check=True)  # importing the module alone changes nothing


def test_installed_and_data_files_named_by_key(tmp_path: Path) -> None:
    jit_cache.install()
    assert caching.IndexDataCacheFile.save is jit_cache._save
    cache = caching.IndexDataCacheFile(str(tmp_path), "f-1.py311", ("stamp", 1))
    cache.save(KEY_A, "a")
    cache.save(KEY_B, "b")
    cache.save(KEY_A, "a again")  # the same key keeps its file
    names = sorted(p.name for p in tmp_path.glob("*.nbc"))
    assert names == sorted(f"f-1.py311.{jit_cache.key_number(k)}.nbc" for k in (KEY_A, KEY_B))
    assert (cache.load(KEY_A), cache.load(KEY_B)) == ("a again", "b")
    assert jit_cache.key_number(KEY_A) != jit_cache.key_number(KEY_B)


def test_every_variant_of_a_cached_closure_has_a_name_of_its_own() -> None:
    """Numba links callees by qualified name and a per-process counter: variants must differ in the name itself."""
    from mpsim import gemm_kernels as gk

    loops = {gk._step_loop(r).py_func.__qualname__ for r in gk.Rounder}
    assert len(loops) == len(gk.Rounder)
    products = {gk._product_loop(r).py_func.__qualname__ for r in gk.PRODUCT_ROUNDER.values()}
    assert len(products) == len(gk.PRODUCT_ROUNDER)
    kernels = {
        gk._gemm_of_kind(int(kind), tree, exact).py_func.__qualname__
        for kind in gk.StepKind
        for tree in (False, True)
        for exact in (False, True)
    }
    assert len(kernels) == len(gk.StepKind) * 4
