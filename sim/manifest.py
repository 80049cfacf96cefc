"""Read an ``mpsim emit`` manifest: :mod:`hls_gen.manifest`'s typed records, what a bench needs."""

from __future__ import annotations

import json
from pathlib import Path

from hls_gen.manifest import ArrayManifest, ManifestError, MultiplierManifest, Port

__all__ = ["UNITS", "ArrayDesign", "Design", "MultiplierDesign", "Port", "read_manifest"]

#: Units a bench exists for: ``mac`` is the 1x1 array and uses the array's bench.
UNITS = ("array", "mac", "multiplier")

#: A MAC array (a MAC unit is the 1x1 array): the manifest type hls_gen writes.
ArrayDesign = ArrayManifest
#: A multiplier top.
MultiplierDesign = MultiplierManifest
Design = ArrayManifest | MultiplierManifest


def read_manifest(path: str | Path, unit: str | None = None) -> Design:
    """The design a manifest describes; ``unit`` (``array``, ``mac``, ``multiplier``) is checked when given.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file and the bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"manifest {str(path)!r} not found; write one with `mpsim emit ... --out DIR` (DIR/NAME.json)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ManifestError(f"manifest {str(path)!r} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {str(path)!r} must be a JSON object")
    kind = data.get("unit", "array")
    if kind not in ("array", "multiplier"):
        raise ManifestError(f"manifest {path} describes unit {kind!r}, not one of {', '.join(UNITS)}")
    design: Design = (
        MultiplierManifest.from_json(data, path) if kind == "multiplier" else ArrayManifest.from_json(data, path)
    )
    if unit is not None and unit != design.unit and not (unit == "array" and design.unit == "mac"):
        raise ManifestError(f"manifest {path} describes unit {design.unit!r}, not {unit!r}")
    return design
