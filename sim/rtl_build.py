"""Build an emitted array's Verilator model and the executor's C++ harness into one shared library (cached).

The library is what :class:`sim.rtl_exec.RtlExecutor` loads with ``ctypes``.
Builds share the co-simulation cache (:func:`sim.runner.default_cache_dir`),
under ``builds/exec-TOP-KEY``, keyed by the Verilog text (its header comment
excluded, as the runner's builds are), the Verilator version, the harness
source and every flag; a build is made in a scratch folder and renamed into
place once finished, so a killed build is never reused. Verilator's runtime
objects (the same for every design at these flags) are compiled once per
cache and copied into each new build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mpsim.progress import Activity
from sim.manifest import ArrayDesign
from sim.runner import BUILD_STAMP, BuildError, Log, build_estimate, default_cache_dir, design_body, seed_runtime
from sim.toolchain import check_simulator, simulator_version

__all__ = ["EXEC_OPT_LEVELS", "HARNESS", "ExecBuild", "build_exec", "verilator_name"]

#: The harness source, shipped as package data (pyproject's ``[tool.setuptools.package-data]``).
HARNESS = Path(__file__).with_name("harness") / "rtl_exec.cpp"
#: C++ optimization of the model's eval code: Os by default (an 8x8's per-cycle code is megabytes: smaller code runs
#: faster than O2 there, the same on a 4x4); O0 builds fastest (tests of tiny arrays).
EXEC_OPT_LEVELS = ("O0", "O1", "O2", "O3", "Os")
#: Bumped when a build's layout changes, so that old cache entries are not reused.
_LAYOUT = 1
_LIBRARY = "libmpsim_exec.so"
# Verilator: optimize fully, X's as whatever is fastest (every register the array uses is reset), no assertion
# code; Amaranth's Verilog trips width lints (reviewed in hls_gen), so lints are not fatal.
_VERILATOR_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal", "-Wno-lint")
# -Bsymbolic: each library keeps its own Vtop and Verilator runtime, so several designs load into one process.
_LDFLAGS = "-shared -Wl,-Bsymbolic"


@dataclass(frozen=True)
class ExecBuild:
    """A built executor library: its path, its build folder, how long it took (0 when cached)."""

    library: Path
    directory: Path
    seconds: float
    cached: bool


def verilator_name(name: str) -> str:
    """A Verilog port name as Verilator spells its C++ member (``inp__valid`` -> ``inp___05Fvalid``)."""
    out = []
    for i, char in enumerate(name):
        if char == "_" and i > 0 and name[i - 1] == "_":
            out.append("__05F")  # Verilator encodes every underscore that follows one
        elif char.isalnum() or char == "_":
            out.append(char)
        else:
            out.append(f"__0{ord(char):02X}")
    return "".join(out)


def _defines(design: ArrayDesign) -> list[str]:
    source, sink = design.stream("input"), design.stream("output")
    ports = {
        "CLK": "clk",
        "RST": "rst",
        "IN_VALID": source.valid.name,
        "IN_READY": source.ready.name,
        "IN_PAYLOAD": source.payload.name,
        "OUT_VALID": sink.valid.name,
        "OUT_READY": sink.ready.name,
        "OUT_PAYLOAD": sink.payload.name,
    }
    defines = [f"-DMPSIM_{macro}={verilator_name(port)}" for macro, port in ports.items()]
    if re.search(r"\bnegedge\b", design.verilog.read_text()):  # the harness then evaluates both clock edges
        defines.append("-DMPSIM_BOTH_EDGES=1")
    return defines


def _make_flags(opt: str) -> list[str]:
    # OPT_SLOW (constructors, reset) stays low: it runs once. The wheel's verilated.mk leaves the
    # precompiled-header include flag empty, which breaks designs split into several files.
    return [f"OPT_FAST=-{opt}", "OPT_SLOW=-O1", f"OPT_GLOBAL=-{opt}", "CFG_CXXFLAGS_PCH_I=-include"]


def _run(command: list[str], log_file: Path, cwd: Path | None = None) -> None:
    with log_file.open("a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, check=True)


def build_exec(
    design: ArrayDesign,
    *,
    opt: str = "Os",
    threads: int = 1,
    jobs: int = 2,
    cache_dir: Path | None = None,
    rebuild: bool = False,
    log: Log = lambda _: None,
    progress: bool = False,
) -> ExecBuild:
    """Build ``design``'s executor library into the cache, unless already there.

    ``threads`` > 1 builds a multithreaded model (Verilator's ``--threads``):
    one model's cycles spread over that many cores, worth it only on an
    array large enough and cores that are free. ``jobs``: parallel compiles.

    Raises :class:`~sim.toolchain.SimulatorMissing` (saying what to install)
    without Verilator or a C++ compiler, :class:`~sim.runner.BuildError`
    (naming the build log) when the build fails.
    """
    if opt not in EXEC_OPT_LEVELS:
        raise ValueError(f"optimization must be one of {', '.join(EXEC_OPT_LEVELS)}, not {opt!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"model threads must be a positive integer, not {threads!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"build jobs must be a positive integer, not {jobs!r}")
    verilog = design.verilog
    if not verilog.is_file():
        raise FileNotFoundError(f"Verilog {str(verilog)!r} named by manifest {str(design.path)!r} not found")
    check_simulator("verilator")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    version = simulator_version("verilator")
    harness = HARNESS.read_bytes()
    defines, make_flags = _defines(design), _make_flags(opt)
    cflags = ["-fPIC", *defines, f"-DMPSIM_THREADS={threads}"]
    verilator_flags = [*_VERILATOR_FLAGS, *(["--threads", str(threads)] if threads > 1 else [])]
    body = design_body(verilog)
    key = hashlib.sha256()
    for part in (body, version, harness.hex(), *verilator_flags, *cflags, _LDFLAGS, *make_flags, str(_LAYOUT)):
        key.update(part.encode())
        key.update(b"\0")
    directory = cache / "builds" / f"exec-{design.top}-{key.hexdigest()[:16]}"
    library = directory / _LIBRARY
    if (directory / BUILD_STAMP).is_file() and library.is_file() and not rebuild:
        log(f"build: cached {directory}")
        return ExecBuild(library, directory, 0.0, True)
    flags_key = hashlib.sha256("|".join([version, *make_flags, "-fPIC"]).encode()).hexdigest()[:16]
    runtime = cache / "exec-runtime" / flags_key
    staging = directory.with_name(f"{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_file = directory.parent / f"{directory.name}.build.log"
    log_file.unlink(missing_ok=True)
    log(f"build: Verilator executor -> {directory}")
    estimate = build_estimate(cache, "exec", len(body))
    activity = Activity(
        "Verilator executor build",
        estimate_s=estimate[0] if estimate else None,
        basis=estimate[1] if estimate else "",
        prefix="[exec] ",
        quiet=not progress,
    )
    obj = staging / "obj"
    verilate = [
        "verilator",
        "--cc",
        "--exe",
        "--prefix",
        "Vtop",
        "--top-module",
        design.top,
        *verilator_flags,
        "--Mdir",
        str(obj),
        "-CFLAGS",
        " ".join(cflags),
        "-LDFLAGS",
        _LDFLAGS,
        "-o",
        _LIBRARY,
        str(verilog.resolve()),
        str(HARNESS),
    ]
    make = ["make", "-C", str(obj), "-f", "Vtop.mk", f"-j{jobs}", *make_flags]
    try:
        with activity:
            _run(verilate, log_file)
            for f in runtime.glob("verilated*.[od]"):  # copied after verilating: newer than Vtop.mk, not rebuilt
                shutil.copy2(f, obj / f.name)
                os.utime(obj / f.name)
            _run(make, log_file)
    except (OSError, subprocess.CalledProcessError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        status = f"exit status {error.returncode}" if isinstance(error, subprocess.CalledProcessError) else str(error)
        raise BuildError(f"Verilator executor build of {verilog} failed ({status})", log_file) from None
    seconds = activity.elapsed
    if not any(runtime.glob("verilated*.o")):
        seed_runtime(runtime, obj)
    shutil.move(obj / _LIBRARY, staging / _LIBRARY)
    shutil.rmtree(obj)  # the objects are only the library's ingredients (tens of MB on an 8x8)
    done = {"verilog": str(verilog), "seconds": round(seconds, 2), "verilog_bytes": len(body)}
    (staging / BUILD_STAMP).write_text(json.dumps(done) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    if not progress:
        log(f"build: done in {seconds:.1f} s")
    return ExecBuild(directory / _LIBRARY, directory, seconds, False)
