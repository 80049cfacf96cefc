"""``import mpsim`` stays light (no Numba, no torch) and its lazy names are the functions, whatever loaded first."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_import_mpsim_loads_neither_numba_nor_torch() -> None:
    code = "import sys, mpsim, mpsim.cli; print(sorted(m for m in ('numba', 'torch') if m in sys.modules))"
    assert _run(code) == "[]"


@pytest.mark.parametrize("first", ["mpsim.api", "mpsim.quantization", "mpsim.codec", "mpsim.nn", "mpsim.gemm"])
def test_the_front_names_are_the_functions_after_any_submodule_loads(first: str) -> None:
    """A submodule import binds its name in the package: ``mpsim.quantize`` must still be the function."""
    code = (
        f"import importlib, mpsim; importlib.import_module({first!r}); "
        "import mpsim.api as api, mpsim.codec as codec, mpsim.randbits as rb; "
        "print(mpsim.quantize is api.quantize, mpsim.qmatmul is api.qmatmul, mpsim.encode is codec.encode, "
        "mpsim.LFSR is rb.LFSR)"
    )
    assert _run(code) == "True True True True"


def test_an_unknown_name_is_an_attribute_error() -> None:
    import mpsim

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = mpsim.nothing  # type: ignore[attr-defined]
    assert {"quantize", "qmatmul", "quantize_model", "LFSR"} <= set(dir(mpsim))


HEAVY = ("torch", "numba", "avalanche", "amaranth", "cocotb", "optuna", "sklearn", "distributed", "matplotlib")


def test_help_and_argument_errors_load_no_heavy_library() -> None:
    """Every subcommand's parser (the installed plugins' too) and an argument error: none of the slow imports.

    What keeps ``mpsim --help`` and argument errors under a second (``benchmarks/cli_startup.py`` times them).
    """
    code = (
        "import sys, contextlib, io\n"
        "from mpsim.cli import build_parser, main\n"
        "build_parser()\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    assert main(['train', '--precision', 'nope']) == 2\n"
        "    assert main(['cl', '--experiences', '3']) == 2\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    assert _run(code) == "[]"
