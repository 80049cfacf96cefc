"""Read and check an ``mpsim emit`` manifest into frozen dataclasses (what a bench needs, nothing else)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hls_gen.emit import MANIFEST_VERSION, array_gemm_config
from mpsim.formats import FloatFormat, parse_format
from mpsim.gemm_config import GemmConfig
from mpsim.randbits import LFSRGrid

__all__ = ["UNITS", "ArrayDesign", "Design", "MultiplierDesign", "Port", "read_manifest"]

#: Units a bench exists for: ``mac`` is the 1x1 array and uses the array's bench.
UNITS = ("array", "mac", "multiplier")


@dataclass(frozen=True)
class Port:
    """One port: name, direction, total width, and ``count`` elements of ``element_width`` bits (LSB first)."""

    name: str
    direction: str
    width: int
    count: int = 1
    element_width: int = 0

    def pack(self, values: list[int]) -> int:
        """One port value from ``count`` element values (element 0 in the low bits)."""
        word = 0
        for i, v in enumerate(values):
            word |= int(v) << (i * self.element_width)
        return word

    def unpack(self, word: int) -> list[int]:
        """The ``count`` element values of a port value."""
        mask = (1 << self.element_width) - 1
        return [(word >> (i * self.element_width)) & mask for i in range(self.count)]


@dataclass(frozen=True)
class ArrayDesign:
    """A MAC array (a MAC unit is the 1x1 array): what drives it and what ``mpsim.qmatmul`` call it equals."""

    path: Path
    top: str
    verilog: Path
    unit: str  # "array" or "mac" (1x1)
    rows: int
    cols: int
    a_format: FloatFormat
    b_format: FloatFormat
    acc_format: FloatFormat
    product_format: FloatFormat | None
    rounding: str
    product_rounding: str
    latency: int
    lfsr_width: int
    lfsr_seed: int
    lfsr_taps: tuple[int, ...]
    pe_seeds: tuple[tuple[int, ...], ...]
    ports: dict[str, Port]
    interleave: int = 1

    @property
    def tile_rows(self) -> int:
        """Rows of a job's output tile: ``rows * interleave`` (each PE holds ``interleave`` sums)."""
        return self.rows * self.interleave

    @property
    def gemm_config(self) -> GemmConfig:
        """The array's arithmetic as :func:`mpsim.qmatmul` takes it (``config=``), with :meth:`random_source`."""
        return array_gemm_config(self.product_format, self.acc_format, self.rounding, self.product_rounding)

    def random_source(self) -> LFSRGrid:
        """The array's random stream in its reset state, checked against the manifest's PE seeds."""
        grid = LFSRGrid(
            self.lfsr_width, self.lfsr_seed, self.lfsr_taps, rows=self.rows, cols=self.cols, interleave=self.interleave
        )
        if tuple(map(tuple, grid.seeds.tolist())) != self.pe_seeds:
            raise ValueError(
                f"manifest {self.path}: pe_seeds differ from mpsim.randbits.LFSRGrid's; the manifest is inconsistent"
            )
        return grid


@dataclass(frozen=True)
class MultiplierDesign:
    """A multiplier top: ``lanes`` combinational multipliers, exact or rounded products."""

    path: Path
    top: str
    verilog: Path
    unit: str  # "multiplier"
    lanes: int
    a_format: FloatFormat
    b_format: FloatFormat
    out_format: FloatFormat | None
    rounding: str | None
    rand_bits: int | None
    fields: dict[str, tuple[int, int, bool]]  # exact product: name -> (offset, width, signed)
    ports: dict[str, Port]


Design = ArrayDesign | MultiplierDesign


def _ports(manifest: dict[str, Any]) -> dict[str, Port]:
    ports = {}
    for p in manifest["ports"]:
        elements = p.get("elements") or {}
        ports[p["name"]] = Port(
            p["name"],
            p["direction"],
            int(p["width"]),
            int(elements.get("count", 1)),
            int(elements.get("width", p["width"])),
        )
    return ports


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
        raise ValueError(f"manifest {str(path)!r} is not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("manifest_version") != MANIFEST_VERSION:
        version = data.get("manifest_version") if isinstance(data, dict) else None
        raise ValueError(f"manifest version must be {MANIFEST_VERSION}, not {version!r} in {path}")
    kind = data.get("unit", "array")  # array manifests predate the field
    if kind == "array" and data["config"]["rows"] == data["config"]["cols"] == 1:
        kind = "mac"
    if kind not in UNITS:
        raise ValueError(f"manifest {path} describes unit {kind!r}, not one of {', '.join(UNITS)}")
    if unit is not None and unit != kind and not (unit == "array" and kind == "mac"):
        raise ValueError(f"manifest {path} describes unit {kind!r}, not {unit!r}")
    verilog = path.with_name(data["verilog"])
    ports = _ports(data)
    fmt = {k: None if v is None else parse_format(v["name"]) for k, v in data["formats"].items()}
    if kind == "multiplier":
        arith = data["arithmetic"]
        random = data.get("random")
        product = next(p for p in data["ports"] if p["name"] == "product")
        fields = {f["name"]: (int(f["offset"]), int(f["width"]), bool(f["signed"])) for f in product.get("fields", [])}
        return MultiplierDesign(
            path=path,
            top=data["top"],
            verilog=verilog,
            unit=kind,
            lanes=int(data["latency"]["lanes"]),
            a_format=fmt["a"],
            b_format=fmt["b"],
            out_format=fmt["product"],
            rounding=arith["product_rounding"],
            rand_bits=None if random is None else int(random["bits_per_lane"]),
            fields=fields,
            ports=ports,
        )
    config, arith, random = data["config"], data["arithmetic"], data["random"]
    return ArrayDesign(
        path=path,
        top=data["top"],
        verilog=verilog,
        unit=kind,
        rows=int(config["rows"]),
        cols=int(config["cols"]),
        a_format=fmt["a"],
        b_format=fmt["b"],
        acc_format=fmt["acc"],
        product_format=fmt["product"],
        rounding=arith["accumulator_rounding"],
        product_rounding=arith["product_rounding"] or "nearest",
        latency=int(data["latency"]["last_beat_to_out_valid"]),
        lfsr_width=int(random["lfsr"]["width"]),
        lfsr_seed=int(random["lfsr"]["seed"]),
        lfsr_taps=tuple(random["lfsr"]["taps"]),
        pe_seeds=tuple(tuple(int(s) for s in row) for row in random["pe_seeds"]),
        ports=ports,
        interleave=int(config["interleave"]),
    )
