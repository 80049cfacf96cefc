"""Record the Yosys/nextpnr output that tests/hls_gen/test_synth.py parses: ``python -m tests.hls_gen.record_synth``.

Synthesizes the designs of :data:`DESIGNS` for real and keeps each one's
``stat.json`` (Yosys ``stat -json``) and, with place and route, ``pnr.json``
(nextpnr ``--report``, its ``critical_paths`` included: the reports keep the worst) in
``tests/hls_gen/data/synth/`` as ``TARGET-TOP.stat.json`` / ``.pnr.json``.
Re-record when ``test_real_synthesis_matches_the_recording`` says so.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hls_gen.emit import ArrayConfig
from hls_gen.synth import SynthOptions, synthesize

RECORDED = Path(__file__).parent / "data" / "synth"

#: (configuration, options) of every recorded run: the 1x1 and 2x2 e4m3/e5m6 arrays, the 1x1 on every target.
DESIGNS = [
    (ArrayConfig(a_format="e4m3", acc_format="e5m6"), SynthOptions(pnr=True)),
    (ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=2, cols=2), SynthOptions(pnr=False)),
    (ArrayConfig(a_format="e4m3", acc_format="e5m6"), SynthOptions(target="ice40", pnr=False)),
    (ArrayConfig(a_format="e4m3", acc_format="e5m6"), SynthOptions(target="xilinx", pnr=False)),
]


def record(config: ArrayConfig, options: SynthOptions, work: Path) -> None:
    synthesize(config, options, cache=work / "cache", workdir=work)
    stem = f"{options.target}-{config.name}"
    (RECORDED / f"{stem}.stat.json").write_text((work / "stat.json").read_text())
    if options.pnr:
        report = json.loads((work / "pnr.json").read_text())
        (RECORDED / f"{stem}.pnr.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    RECORDED.mkdir(parents=True, exist_ok=True)
    for config, options in DESIGNS:
        with tempfile.TemporaryDirectory() as tmp:
            record(config, options, Path(tmp))
            print(f"recorded {options.target} {config.name}")
