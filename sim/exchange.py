"""What the runner hands a bench (a request file) and what the bench hands back (a result file).

The simulator runs the bench in its own process; one environment variable,
``MPSIM_COSIM_REQUEST``, names a JSON request, and the bench writes its
JSON result where the request says, pass or fail, before it asserts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import mpsim
from mpsim.formats import FloatFormat
from sim.vectors import Stimulus

__all__ = ["REQUEST_ENV", "SHOWN_MISMATCHES", "BenchRequest", "BenchResult", "mismatch_record"]

#: Environment variable that names the request file inside the simulator.
REQUEST_ENV = "MPSIM_COSIM_REQUEST"
#: Mismatches described in a result (all are counted).
SHOWN_MISMATCHES = 8


@dataclass(frozen=True)
class BenchRequest:
    """A bench's inputs: the manifest, the stimulus and where to write the result."""

    manifest: str
    result: str
    stimulus: Stimulus

    def write(self, path: Path) -> None:
        data = {"manifest": self.manifest, "result": self.result, "stimulus": asdict(self.stimulus)}
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def from_env(cls) -> BenchRequest:
        """The request the runner wrote (``$MPSIM_COSIM_REQUEST``)."""
        path = os.environ.get(REQUEST_ENV)
        if not path:
            raise RuntimeError(
                f"{REQUEST_ENV} is not set: run the benches through sim.runner (mpsim cosim), not by hand"
            )
        data = json.loads(Path(path).read_text())
        stim = dict(data["stimulus"])
        if stim.get("flip") is not None:
            stim["flip"] = tuple(stim["flip"])
        return cls(manifest=data["manifest"], result=data["result"], stimulus=Stimulus(**stim))


@dataclass
class BenchResult:
    """What a bench found: counts, timing, the first mismatches and protocol errors."""

    checked: int = 0
    macs: int = 0
    cycles: int = 0
    sim_wall_s: float = 0.0
    mismatch_count: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)
    timeout: str | None = None
    latency: int | None = None
    mode_results: list[int] = field(default_factory=list)  # checked results per mode code (multi-mode arrays)
    mode_switches: int = 0  # jobs whose mode differs from the job before, back to back

    @property
    def passed(self) -> bool:
        return self.mismatch_count == 0 and not self.protocol_errors and self.timeout is None

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> BenchResult:
        return cls(**json.loads(Path(path).read_text()))


def _code(fmt: FloatFormat | None, code: int, width: int) -> dict[str, Any]:
    out: dict[str, Any] = {"hex": f"{code:#0{2 + -(-width // 4)}x}", "bits": format(code, f"0{width}b")}
    if fmt is not None:
        out["value"] = repr(float(mpsim.decode(fmt, np.array([code]))[0]))
    return out


def mismatch_record(
    index: int, where: str, fmt: FloatFormat | None, width: int, got: int, want: int | float, inputs: dict[str, str]
) -> dict[str, Any]:
    """One mismatch as bit patterns and decoded values (``want`` a float when only a value is expected)."""
    record: dict[str, Any] = {"index": index, "where": where, "inputs": inputs, "got": _code(fmt, got, width)}
    if isinstance(want, float):
        record["want"] = {"value": repr(want), "bits": format(int(np.float64(want).view(np.uint64)), "064b")}
    else:
        record["want"] = _code(fmt, int(want), width)
    return record
