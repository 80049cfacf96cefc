"""The result of a co-simulation run, as text for people and JSON for tools."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Report"]


@dataclass
class Report:
    """One run: the design, the simulator, what was checked, what differed, how long it took."""

    design: str
    unit: str
    simulator: str
    simulator_version: str
    manifest: str
    passed: bool
    vectors_checked: int
    macs_checked: int
    mismatches: int
    first_mismatches: list[dict[str, Any]]
    protocol_errors: list[str]
    timeout: str | None
    cycles: int
    sim_wall_s: float
    build_s: float
    build_cached: bool
    run_s: float
    latency: int | None
    waveform: str | None
    build_dir: str
    run_dir: str
    log: str
    stimulus: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    mode_results: list[int] = field(default_factory=list)
    mode_switches: int = 0

    @property
    def cycles_per_s(self) -> float:
        """Simulated clock cycles (multiplier: evaluations) per wall-clock second of the bench's loop."""
        return self.cycles / self.sim_wall_s if self.sim_wall_s > 0 else 0.0

    @property
    def macs_per_s(self) -> float:
        """Checked multiply(-accumulate)s per wall-clock second of the bench's loop."""
        return self.macs_checked / self.sim_wall_s if self.sim_wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"cycles_per_s": self.cycles_per_s, "macs_per_s": self.macs_per_s}

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def format(self) -> str:
        """A few lines: verdict, counts, speed, times, mismatches as bits and values, where the waveform is."""
        verdict = "PASS" if self.passed else "FAIL"
        build = "cached" if self.build_cached else f"{self.build_s:.1f} s"
        lines = [
            f"{verdict}  {self.design} ({self.unit}) on {self.simulator} {self.simulator_version}",
            f"  checked      {self.vectors_checked:,} results ({self.macs_checked:,} MACs), "
            f"{self.mismatches:,} mismatches",
            f"  simulated    {self.cycles:,} cycles in {self.sim_wall_s:.2f} s: "
            f"{self.cycles_per_s:,.0f} cycles/s, {self.macs_per_s:,.0f} MACs/s",
            f"  build        {build}; run {self.run_s:.1f} s (simulator start, vectors, reference, bench)",
        ]
        if len(self.mode_results) > 1:
            per_mode = ", ".join(f"mode {i}: {n:,}" for i, n in enumerate(self.mode_results))
            lines.append(f"  modes        {per_mode} results; {self.mode_switches:,} jobs switch mode back to back")
        if self.latency is not None:
            lines.append(f"  latency      {self.latency} cycles (last beat to out__valid)")
        if self.error:
            lines.append(f"  error        {self.error}")
        if self.timeout:
            lines.append(f"  timeout      {self.timeout}")
        for problem in self.protocol_errors:
            lines.append(f"  protocol     {problem}")
        for m in self.first_mismatches:
            lines.append(f"  mismatch #{m['index']} at {m['where']}")
            lines.append("    inputs " + ", ".join(f"{k} {v}" for k, v in m["inputs"].items()))
            for side in ("got", "want"):
                entry = m[side]
                shown = " ".join(f"{k}={entry[k]}" for k in ("hex", "bits", "value") if k in entry)
                lines.append(f"    {side:<6} {shown}")
        if self.mismatches > len(self.first_mismatches):
            lines.append(f"  ... {self.mismatches - len(self.first_mismatches):,} more mismatches")
        if self.waveform:
            lines.append(f"  waveform     {self.waveform}  (open with gtkwave or surfer)")
        lines.append(f"  log          {self.log}")
        return "\n".join(lines)
