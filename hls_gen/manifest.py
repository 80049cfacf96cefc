"""The manifest of a generated design, as one typed, schema-versioned record written by emit and read by sim.

:class:`ArrayManifest` is what a test bench or an FPGA project needs to
drive a MAC array without reading Python: ports and their packing, the
handshake and latency, the random stream (LFSR, per-PE seeds) and the
arithmetic modes (:class:`ModeEntry`: formats, roundings, random bits per
beat, the ``mpsim.qmatmul`` call each equals). :meth:`ArrayManifest.to_json`
is the file ``mpsim emit`` writes; :meth:`ArrayManifest.from_json` reads it
back, checking the schema version and that every format's fields are the
named format's, so a hand-edited manifest fails with one line naming the
value. :class:`MultiplierManifest` reads a multiplier top's manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from hls_gen.modes import HwMode, array_gemm_config
from hls_gen.ports import INPUT, OUTPUT, verilog_name
from hls_gen.spec import rounding_string
from mpsim.formats import FloatFormat, parse_format
from mpsim.gemm_config import GemmConfig
from mpsim.mx import SCALE_BIAS, SCALE_BITS, SCALE_NAN_CODE, block_window, parse_mx_format
from mpsim.randbits import LFSR_TAPS, LFSRGrid, LFSRSpec

__all__ = [
    "MANIFEST_VERSION",
    "ArrayManifest",
    "ManifestError",
    "ModeEntry",
    "MultiplierManifest",
    "Port",
    "StreamPorts",
    "format_entry",
    "read_format",
]

#: Version of the manifest layout; bumped when a field changes meaning. 3: arithmetic per mode (``modes``). 4: an
#: array's ports are two streams (``inp__valid``, ``inp__ready``, ``inp__payload``, ``out__...``) whose payload
#: ports list their struct fields. 5: a register between each PE and the output buffer (the latency and the cycles
#: of a job stream one more per tile than a version 4 array's).
MANIFEST_VERSION = 5


class ManifestError(ValueError):
    """A manifest that cannot be read: one line naming the file and the bad value."""


def format_entry(fmt: FloatFormat) -> dict[str, Any]:
    """Every field of a format, as the manifest spells it (the name is what reads it back)."""
    return {
        "name": fmt.label,
        "bits": fmt.bits,
        "exp_bits": fmt.exp_bits,
        "man_bits": fmt.man_bits,
        "bias": fmt.exponent_bias,
        "subnormals": fmt.subnormals,
        "specials": fmt.specials,
        "overflow": "saturate" if fmt.saturates else fmt.overflow,
        "max_code": fmt.max_code,
        "nan_code": fmt.nan_code,
        "inf_code": fmt.inf_code,
    }


def read_format(entry: object, where: str) -> FloatFormat | None:
    """The format a manifest entry names, checked field by field against it (None for ``null``)."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ManifestError(f"{where} must be a format entry with a name, not {entry!r}")
    try:
        fmt = parse_format(entry["name"])
    except ValueError as error:
        raise ManifestError(f"{where}: {error}") from None
    if not isinstance(fmt, FloatFormat):
        raise ManifestError(f"{where}: {entry['name']!r} is not a floating-point format")
    expected = format_entry(fmt)
    for key, value in entry.items():
        if key in expected and value != expected[key]:
            raise ManifestError(f"{where}.{key} is {value!r}, but format {fmt.label} has {expected[key]!r}")
    return fmt


def _deposit(out: np.ndarray, value: np.ndarray, offset: int, width: int) -> None:
    """OR ``value`` (uint64, ``width`` bits) into the uint64 word columns of ``out`` at bit ``offset``."""
    while width > 0:  # 32 bits or fewer at a time, so a shifted piece fits 64 bits
        piece = min(width, 32)
        word, shift = divmod(offset, 32)
        bits = (value & np.uint64((1 << piece) - 1)) << np.uint64(shift)
        out[:, word] |= bits & np.uint64(0xFFFFFFFF)
        if shift + piece > 32:
            out[:, word + 1] |= bits >> np.uint64(32)
        value, offset, width = value >> np.uint64(piece), offset + piece, width - piece


def _extract(words: np.ndarray, offset: int, width: int) -> np.ndarray:
    """The ``width``-bit field at bit ``offset`` of each row of uint32 words, as uint64 (``width`` <= 64)."""
    if width > 64:
        raise ValueError(f"fields wider than 64 bits cannot be read as integers, not {width}")
    value, done = np.zeros(len(words), np.uint64), 0
    while done < width:
        piece = min(width - done, 32)
        word, shift = divmod(offset + done, 32)
        bits = words[:, word].astype(np.uint64) >> np.uint64(shift)
        if shift + piece > 32:
            bits |= words[:, word + 1].astype(np.uint64) << np.uint64(32 - shift)
        value |= (bits & np.uint64((1 << piece) - 1)) << np.uint64(done)
        done += piece
    return value


@dataclass(frozen=True)
class Port:
    """One port: name, direction, total width, and ``count`` elements of ``element_width`` bits (LSB first).

    ``fields`` describe a struct (a stream payload, or each element of a
    multiplier's exact product) as its leaf fields ``(name, offset, width,
    signed)``, element ``i`` of an array field ``NAME`` named ``NAME[i]``
    (:func:`hls_gen.ports.layout_fields`): :meth:`pack_fields`, :meth:`read`
    and :meth:`read_array` write and read a value by field name.
    """

    name: str
    direction: str
    width: int
    description: str = ""
    count: int = 1
    element_width: int = 0
    fields: tuple[tuple[str, int, int, bool], ...] = ()  # a struct element: (name, offset, width, signed)

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

    @cached_property
    def field_map(self) -> dict[str, tuple[int, int, bool]]:
        """The struct fields by name: ``(offset, width, signed)``."""
        return {name: (offset, width, signed) for name, offset, width, signed in self.fields}

    def _field(self, name: str) -> tuple[int, int, bool]:
        if name not in self.field_map:
            raise ValueError(f"{self.name} has no field {name!r}")
        return self.field_map[name]

    @cached_property
    def _arrays(self) -> dict[str, list[str]]:
        """Array fields by name: their element fields in index order (packing a beat looks them up per field)."""
        arrays: dict[str, list[str]] = {}
        for key in self.field_map:
            base = key.split("[")[0]
            if base not in arrays and f"{base}[0]" in self.field_map:
                names = arrays[base] = []
                while f"{base}[{len(names)}]" in self.field_map:
                    names.append(f"{base}[{len(names)}]")
        return arrays

    def elements(self, name: str) -> list[str]:
        """The fields ``NAME[0]``, ``NAME[1]``, ... of array field ``name``, in index order."""
        if name not in self._arrays:
            raise ValueError(f"{self.name} has no array field {name!r}")
        return list(self._arrays[name])

    def pack_fields(self, **values: int | Sequence[int]) -> int:
        """One port value from field values by name (fields not given are 0).

        A sequence fills an array field: ``pack_fields(a=[x, y], last=1)``
        sets ``a[0]``, ``a[1]`` and ``last``. ``ValueError`` for a name that
        is not a field or a value that does not fit its field.
        """
        word = 0
        for name, value in values.items():
            if isinstance(value, Integral):
                items: list[tuple[str, int]] = [(name, int(value))]
            else:
                names, elements = self.elements(name), [int(v) for v in value]
                if len(elements) != len(names):
                    raise ValueError(f"{self.name}.{name} takes {len(names)} values, not {len(elements)}")
                items = list(zip(names, elements, strict=True))
            for key, v in items:
                offset, width, signed = self._field(key)
                lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
                if not lo <= v < hi:
                    raise ValueError(f"{self.name}.{key} must be in {lo}..{hi - 1} ({width} bits), not {v}")
                word |= (v & ((1 << width) - 1)) << offset
        return word

    def read(self, word: int, name: str) -> int:
        """The value of field ``name`` in a port value (a signed field sign-extended)."""
        offset, width, signed = self._field(name)
        value = (word >> offset) & ((1 << width) - 1)
        return value - (1 << width) if signed and value >> (width - 1) else value

    def read_array(self, word: int, name: str) -> list[int]:
        """The elements of array field ``name`` in a port value, in index order."""
        return [self.read(word, element) for element in self.elements(name)]

    @property
    def words(self) -> int:
        """32-bit words of one port value (:meth:`pack_words`' columns; Verilator's ``VlWide`` word count)."""
        return -(-self.width // 32)

    def pack_words(self, count: int, **values: int | np.ndarray) -> np.ndarray:
        """``count`` port values at once as a ``(count, words)`` uint32 array, word 0 the low bits.

        :meth:`pack_fields` vectorized: a scalar fills a field in every row,
        a ``(count,)`` array one value per row, a ``(count, elements)`` array
        an array field (``a=...`` sets ``a[0]``, ``a[1]``, ...). ``ValueError``
        for a name that is not a field or a value that does not fit it.
        """
        out = np.zeros((count, self.words), np.uint64)
        for name, value in values.items():
            array = np.asarray(value, dtype=np.int64)
            if array.ndim == 2:
                names = self.elements(name)
                if array.shape != (count, len(names)):
                    raise ValueError(f"{self.name}.{name} takes ({count}, {len(names)}) values, not {array.shape}")
                items = [(key, array[:, i]) for i, key in enumerate(names)]
            else:
                items = [(name, np.broadcast_to(array, (count,)))]
            for key, v in items:
                offset, width, signed = self._field(key)
                lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
                bad = (v < lo) | (v >= hi)
                if bad.any():
                    raise ValueError(
                        f"{self.name}.{key} must be in {lo}..{hi - 1} ({width} bits), not {int(v[bad.argmax()])}"
                    )
                _deposit(out, (v & ((1 << width) - 1)).astype(np.uint64), offset, width)
        return out.astype(np.uint32)

    def read_words(self, words: np.ndarray, name: str) -> np.ndarray:
        """Field ``name`` of every row of a ``(count, words)`` array (:meth:`read` vectorized), as int64."""
        offset, width, signed = self._field(name)
        value = _extract(np.asarray(words, dtype=np.uint32), offset, width).astype(np.int64)
        return np.where(value >> (width - 1) == 1, value - (1 << width), value) if signed else value

    def read_array_words(self, words: np.ndarray, name: str) -> np.ndarray:
        """Array field ``name`` of every row: ``(count, elements)`` int64 (:meth:`read_array` vectorized)."""
        return np.stack([self.read_words(words, key) for key in self.elements(name)], axis=1)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "direction": self.direction,
            "width": self.width,
            "description": self.description,
        }
        if self.element_width:
            out["elements"] = {
                "count": self.count,
                "width": self.element_width,
                "order": "element 0 in the least significant bits",
            }
        if self.fields:
            out["fields"] = [{"name": n, "offset": o, "width": w, "signed": s} for n, o, w, s in self.fields]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Port:
        elements = data.get("elements") or {}
        return cls(
            name=str(data["name"]),
            direction=str(data["direction"]),
            width=int(data["width"]),
            description=str(data.get("description", "")),
            count=int(elements.get("count", 1)),
            element_width=int(elements.get("width", 0)),
            fields=tuple(
                (str(f["name"]), int(f["offset"]), int(f["width"]), bool(f["signed"])) for f in data.get("fields", [])
            ),
        )


@dataclass(frozen=True)
class StreamPorts:
    """The three ports of one of an array's streams (``amaranth.lib.stream``): a beat moves when both valid and
    ready are high."""

    valid: Port
    ready: Port
    payload: Port

    def to_json(self) -> dict[str, str]:
        return {"valid": self.valid.name, "ready": self.ready.name, "payload": self.payload.name}


@dataclass(frozen=True)
class ModeEntry(HwMode):
    """One arithmetic mode of an array (a checked :class:`~hls_gen.modes.HwMode`), selected by ``code`` in the
    input payload's ``mode`` (always 0 for a single-mode array); ``uses`` names the GEMMs that run in it.

    ``mx`` (from :class:`~hls_gen.modes.HwMode`): the MX formats of A and B of an MX mode
    (:class:`hls_gen.mx_mac.MXMAC`; ``a_format`` and ``b_format`` are then their element formats, what the
    payload's ``a`` and ``b`` carry), else None.
    """

    code: int = 0
    uses: tuple[str, ...] = ()

    @property
    def mx_label(self) -> str | None:
        """``mul`` of the MX GEMM: ``"A"`` or ``"A,B"`` (None: not MX)."""
        if self.mx is None:
            return None
        a, b = (f.label for f in self.mx)
        return a if a == b else f"{a},{b}"

    @property
    def rounding(self) -> str:
        """The accumulation's rounding as mpsim spells it."""
        return rounding_string(self.rand_bits)

    @property
    def product_rounding(self) -> str:
        """The products' rounding (``"nearest"`` for a fused mode, where it is unused)."""
        return rounding_string(self.product_rand_bits)

    @property
    def gemm_config(self) -> GemmConfig:
        """The mode's arithmetic as :func:`mpsim.qmatmul` takes it (``config=``): the same bits per output."""
        if self.mx is not None:
            return GemmConfig(mul=self.mx_label, acc=self.acc_format, rounding=self.rounding, order="sequential")
        return array_gemm_config(self.product_format, self.acc_format, self.rounding, self.product_rounding)

    def reference(self, grid: str) -> str:
        """The ``mpsim.qmatmul`` call that equals a job of this mode (``grid``: the random source's expression)."""
        if self.mx is not None:
            return (
                f"mpsim.qmatmul(A, B, mul={self.mx_label!r}, acc={self.acc_format.label!r}, "
                f"rounding={self.rounding!r}, order='sequential', seed={grid}) with A, B the values whose "
                "mpsim.encode_mx codes (A along its rows, B along its columns) the beats carry"
            )
        mul = "None" if self.product_format is None else repr(self.product_format.label)
        return (
            f"mpsim.qmatmul(A, B, mul={mul}, acc={self.acc_format.label!r}, rounding={self.rounding!r}, "
            f"mul_rounding={self.product_rounding!r}, order='sequential', seed={grid})"
        )

    def to_json(self, grid: str) -> dict[str, Any]:
        entry = self._json(grid)
        if self.mx is None:
            return entry
        fa, fb = self.mx
        lsb, width = block_window(fa, fb)
        entry["mx"] = {
            "a": fa.label,
            "b": fb.label,
            "block_size": fa.block_size,
            "scale": {"format": "e8m0", "bits": SCALE_BITS, "bias": SCALE_BIAS, "nan_code": SCALE_NAN_CODE},
            "payload": "a_scale[r] and b_scale[c]: the E8M0 scale codes of the blocks of a[r] and b[c], on each "
            "beat of the block; a block is block_size beats from the job's first, the job's last beat ends its "
            "last block (a shorter one: zero padding)",
            "block_sum_window": {"lsb": lsb, "width": width, "register_bits": width + 1},
            "term": "per block: the exact sum of its element products times 2**(Ea + Eb) (NaN when a scale is "
            "nan_code), added into the accumulator with one rounding",
        }
        entry["random"]["steps_per_beat"] = 0
        entry["random"]["steps_per_block"] = self.lfsr_steps
        entry["random"]["draws_per_beat"] = "none; sum_bits on the last beat of each block (one draw per block)"
        return entry

    def _json(self, grid: str) -> dict[str, Any]:
        return {
            "code": self.code,
            "uses": list(self.uses),
            "formats": {
                "a": format_entry(self.a_format),
                "b": format_entry(self.b_format),
                "acc": format_entry(self.acc_format),
                "product": None if self.product_format is None else format_entry(self.product_format),
            },
            "arithmetic": {
                "fused": self.product_format is None,
                "order": "sequential",
                "accumulator_start": "+0",
                "product_rounding": None if self.product_format is None else self.product_rounding,
                "accumulator_rounding": self.rounding,
                "nan_output": "the format's nan_code (canonical; NaN sign and payload are not meaningful)",
            },
            "random": {
                "product_bits": self.product_rand_bits or 0,
                "sum_bits": self.rand_bits or 0,
                "steps_per_beat": self.lfsr_steps,
                "draws_per_beat": "first product_bits bits round the product, the next sum_bits the sum",
            },
            "reference": self.reference(grid),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> ModeEntry:
        formats, arith, random = data["formats"], data["arithmetic"], data["random"]
        fmt = {k: read_format(formats.get(k), f"{where}.formats.{k}") for k in ("a", "b", "acc", "product")}
        for key in ("a", "b", "acc"):
            if fmt[key] is None:
                raise ManifestError(f"{where}.formats.{key} must name a format, not null")

        def bits(name: str, value: object) -> int | None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ManifestError(f"{where}.random.{name} must be a non-negative integer, not {value!r}")
            return value or None

        product_bits, sum_bits = bits("product_bits", random["product_bits"]), bits("sum_bits", random["sum_bits"])
        for name, k, rounding in (
            ("accumulator_rounding", sum_bits, arith["accumulator_rounding"]),
            ("product_rounding", product_bits, arith["product_rounding"] or "nearest"),
        ):
            if rounding != rounding_string(k):
                raise ManifestError(f"{where}.arithmetic.{name} is {rounding!r}, but its random bits say {k}")
        mx = None
        if data.get("mx") is not None:
            entry = data["mx"]
            mx = (parse_mx_format(entry["a"]), parse_mx_format(entry["b"]))
            for key, f in zip(("a", "b"), mx):
                if f.element != fmt[key]:
                    raise ManifestError(
                        f"{where}.mx.{key} is {f}, whose elements are {f.element}, but formats.{key} is {fmt[key]}"
                    )
        return cls(
            code=int(data["code"]),
            uses=tuple(str(u) for u in data.get("uses", [])),
            mx=mx,
            a_format=fmt["a"],  # type: ignore[arg-type]
            b_format=fmt["b"],  # type: ignore[arg-type]
            acc_format=fmt["acc"],  # type: ignore[arg-type]
            product_format=fmt["product"],
            rand_bits=sum_bits,
            product_rand_bits=product_bits,
        )


@dataclass(frozen=True)
class ArrayManifest:
    """A generated MAC array (a MAC unit is the 1x1 array): how to drive it and what it computes.

    ``modes`` are indexed by their code; a single-mode array has one mode and
    no ``mode`` field in its payloads. ``ports`` are ``clk``, ``rst`` and the
    two streams' ports (:meth:`stream`). ``config`` is the generator's input
    (:meth:`hls_gen.emit.ArrayConfig.from_manifest` reads it back). ``path``
    is where the manifest was read from (None when built).
    """

    top: str
    verilog_file: str
    command: str
    rows: int
    cols: int
    interleave: int
    pipeline: int
    latency: int
    lfsr: LFSRSpec
    pe_seeds: tuple[tuple[int, ...], ...]
    stride: int
    modes: tuple[ModeEntry, ...]
    ports: dict[str, Port]
    protocol: dict[str, str]
    config: dict[str, Any]
    path: Path | None = field(default=None, compare=False)

    @property
    def unit(self) -> str:
        """``"mac"`` for the 1x1 array, else ``"array"``."""
        return "mac" if self.rows == self.cols == 1 else "array"

    @property
    def verilog(self) -> Path:
        """The Verilog file beside the manifest."""
        return (self.path.parent if self.path is not None else Path(".")) / self.verilog_file

    @property
    def tile_rows(self) -> int:
        """Rows of a job's output tile: ``rows * interleave`` (each PE holds ``interleave`` sums)."""
        return self.rows * self.interleave

    @property
    def mode_bits(self) -> int:
        """Width of the payloads' ``mode`` field (0: one mode, no such field)."""
        return (len(self.modes) - 1).bit_length()

    def stream(self, direction: str) -> StreamPorts:
        """The ``"input"`` or ``"output"`` stream's ports (:mod:`hls_gen.ports` names them)."""
        if direction not in ("input", "output"):
            raise ValueError(f"stream direction must be 'input' or 'output', not {direction!r}")
        member = INPUT if direction == "input" else OUTPUT
        return StreamPorts(*(self.ports[verilog_name(member, part)] for part in ("valid", "ready", "payload")))

    def grid_expression(self) -> str:
        """The :class:`mpsim.randbits.LFSRGrid` expression of the array's random stream."""
        taps = None if self.lfsr.taps is None else tuple(self.lfsr.taps)
        return (
            f"mpsim.randbits.LFSRGrid({self.lfsr.width}, {self.lfsr.seed}, {taps}, rows={self.rows}, cols={self.cols}"
            + (f", interleave={self.interleave}" if self.interleave != 1 else "")
            + ")"
        )

    def random_source(self) -> LFSRGrid:
        """The array's random stream in its reset state, checked against the manifest's PE seeds."""
        grid = LFSRGrid(
            self.lfsr.width, self.lfsr.seed, self.lfsr.taps, rows=self.rows, cols=self.cols, interleave=self.interleave
        )
        if tuple(map(tuple, grid.seeds.tolist())) != self.pe_seeds:
            raise ManifestError(
                f"manifest {self.path}: pe_seeds differ from mpsim.randbits.LFSRGrid's; the manifest is inconsistent"
            )
        return grid

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content."""
        grid = self.grid_expression()
        steps = sorted({mode.lfsr_steps for mode in self.modes})
        inp, out = self.stream("input"), self.stream("output")
        return {
            "manifest_version": MANIFEST_VERSION,
            "generator": "hls_gen.emit",
            "unit": "array",
            "top": self.top,
            "verilog": self.verilog_file,
            "command": self.command,
            "config": self.config,
            "geometry": {"rows": self.rows, "cols": self.cols, "interleave": self.interleave},
            "modes": [mode.to_json(grid) for mode in self.modes],
            "mode_field": None
            if len(self.modes) == 1
            else {
                "port": inp.payload.name,
                "field": "mode",
                "width": self.mode_bits,
                "encoding": "the mode's code (its index in modes), the same on every beat of a job",
                "out_port": f"{out.payload.name}'s mode: the code of the tile in its data",
                "switch": "jobs of different modes follow each other with no idle cycle",
            },
            "streams": {
                "kind": "amaranth.lib.stream: a beat moves in a cycle where valid and ready are both high",
                "input": inp.to_json(),
                "output": out.to_json(),
                "payload_fields": "each payload port's fields: (name, offset from bit 0, width, signed); element i "
                "of an array field NAME is NAME[i]",
            },
            "clock": {"name": "clk", "edge": "rising"},
            "reset": {"name": "rst", "polarity": "high", "synchronous": True},
            "ports": [port.to_json() for port in self.ports.values()],
            "protocol": self.protocol,
            "latency": {
                "last_beat_to_out_valid": self.latency,
                "pipeline_registers": self.pipeline,
                "interleave": self.interleave,
                "beats_per_job": "K (one per reduction step), back to back"
                if self.interleave == 1
                else f"K * {self.interleave} (each step once per sum), back to back",
                "output_beats_per_job": self.tile_rows,
            },
            "random": {
                "kind": "mpsim.randbits.LFSRGrid",
                "lfsr": {
                    "width": self.lfsr.width,
                    "seed": self.lfsr.seed,
                    "taps": list(self.lfsr.tap_positions),
                    "mask": self.lfsr.mask,
                    "step": "out = s & 1; s >>= 1; if out: s ^= mask",
                    "bit_order": "first bit shifted out is the most significant bit of a draw",
                },
                "pe_seeds": [list(row) for row in self.pe_seeds],
                "pe_seed_rule": "PE (r, c) starts where the base LFSR is after (r*cols + c) * stride steps",
                "stride": self.stride,
                "steps_per_beat": (steps[0] if self.modes[0].mx is None else 0)
                if len(steps) == 1
                else "per mode (modes[i].random.steps_per_beat)"
                if self.modes[0].mx is None
                else "0; per block, per mode (modes[i].random.steps_per_block)",
                "rule": "every PE steps its beat's mode's bits on every accepted beat and never otherwise; the "
                "PEs' LFSRs carry on from job to job"
                if self.modes[0].mx is None
                else "every PE steps its block's mode's sum_bits on the last beat of each block (modes[i].mx) and "
                "never otherwise, "
                "so a job of K beats takes ceil(K / block_size) draws, LFSRGrid's for a reduction of that many "
                "terms; the PEs' LFSRs carry on from job to job",
            },
            "reference": "job by job, one random source carried on: "
            + (
                "; ".join(f"mode {m.code}: {m.reference('grid')}" for m in self.modes)
                if len(self.modes) > 1
                else self.modes[0].reference("grid")
            )
            + f", grid = {grid}",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> ArrayManifest:
        """Read a manifest file's content; :class:`ManifestError` names the file and the bad value."""
        where = str(path) if path is not None else "manifest"
        version = data.get("manifest_version") if isinstance(data, dict) else None
        if version != MANIFEST_VERSION:
            raise ManifestError(
                f"manifest version must be {MANIFEST_VERSION}, not {version!r} in {where}; regenerate it with the "
                "command in its 'command' field"
            )
        try:
            geometry, random, latency = data["geometry"], data["random"], data["latency"]
            lfsr = random["lfsr"]
            modes = tuple(ModeEntry.from_json(m, f"{where}: modes[{i}]") for i, m in enumerate(data["modes"]))
            if [m.code for m in modes] != list(range(len(modes))) or not modes:
                raise ManifestError(f"{where}: mode codes must be 0..{len(modes) - 1} in order")
            taps: tuple[int, ...] | None = tuple(int(t) for t in lfsr["taps"])
            if taps == LFSR_TAPS.get(int(lfsr["width"])):
                taps = None  # the default table's taps, as the generator was given them
            manifest = cls(
                top=str(data["top"]),
                verilog_file=str(data["verilog"]),
                command=str(data.get("command", "")),
                rows=int(geometry["rows"]),
                cols=int(geometry["cols"]),
                interleave=int(geometry["interleave"]),
                pipeline=int(latency["pipeline_registers"]),
                latency=int(latency["last_beat_to_out_valid"]),
                lfsr=LFSRSpec(width=int(lfsr["width"]), seed=int(lfsr["seed"]), taps=taps),
                pe_seeds=tuple(tuple(int(s) for s in row) for row in random["pe_seeds"]),
                stride=int(random["stride"]),
                modes=modes,
                ports={p["name"]: Port.from_json(p) for p in data["ports"]},
                protocol={str(k): str(v) for k, v in data.get("protocol", {}).items()},
                config=dict(data.get("config", {})),
                path=path,
            )
            for direction in ("input", "output"):
                manifest.stream(direction)  # its three ports are there (KeyError: the missing one)
            return manifest
        except KeyError as error:
            raise ManifestError(f"{where}: missing field {error.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            if isinstance(error, ManifestError):
                raise
            raise ManifestError(f"{where}: {error}") from None


@dataclass(frozen=True)
class MultiplierManifest:
    """A multiplier top: ``lanes`` combinational multipliers, exact or rounded products."""

    top: str
    verilog_file: str
    lanes: int
    a_format: FloatFormat
    b_format: FloatFormat
    out_format: FloatFormat | None
    rounding: str | None
    rand_bits: int | None
    ports: dict[str, Port]
    command: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    unit = "multiplier"

    def reference(self) -> str:
        """What a lane computes, as mpsim spells it."""
        a, b = self.a_format.label, self.b_format.label
        if self.out_format is None:
            return f"decode(A, {a!r}) * decode(B, {b!r}) in float64 (exact)"
        seed = "" if self.rand_bits is None else ", seed=mpsim.randbits.LFSR(...)  # lane draws in vector order"
        return (
            f"mpsim.quantize(decode(A, {a!r}) * decode(B, {b!r}), {self.out_format.label!r}, {self.rounding!r}{seed})"
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content."""
        ports = []
        for port in self.ports.values():
            entry = port.to_json()
            if port.fields:
                entry["value"] = "(-1)**sign * sig * 2**(exp - (sig_width - 1)); zero, inf, nan flags override"
            ports.append(entry)
        k = self.rand_bits
        return {
            "manifest_version": MANIFEST_VERSION,
            "generator": "hls_gen.emit",
            "unit": "multiplier",
            "top": self.top,
            "verilog": self.verilog_file,
            "command": self.command,
            "config": self.config,
            "formats": {
                "a": format_entry(self.a_format),
                "b": format_entry(self.b_format),
                "product": None if self.out_format is None else format_entry(self.out_format),
            },
            "arithmetic": {
                "exact": self.out_format is None,
                "product_rounding": self.rounding,
                "nan_output": "the format's nan_code (canonical); exact products flag nan",
            },
            "clock": None,
            "reset": None,
            "ports": ports,
            "protocol": {"timing": "combinational: product follows a, b (and rand) with no clock and no state"},
            "latency": {"combinational": True, "lanes": self.lanes},
            "random": None
            if k is None
            else {
                "kind": "input port",
                "port": "rand_in",
                "bits_per_lane": k,
                "rule": "round the magnitude up iff (t + r) >> k, t the top k discarded bits, r the lane's draw",
            },
            "reference": self.reference(),
        }

    @property
    def verilog(self) -> Path:
        return (self.path.parent if self.path is not None else Path(".")) / self.verilog_file

    @property
    def fields(self) -> dict[str, tuple[int, int, bool]]:
        """Fields of an exact product element: name -> (offset, width, signed); empty for rounded products."""
        return self.ports["product"].field_map

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> MultiplierManifest:
        where = str(path) if path is not None else "manifest"
        version = data.get("manifest_version") if isinstance(data, dict) else None
        if version != MANIFEST_VERSION:
            raise ManifestError(f"manifest version must be {MANIFEST_VERSION}, not {version!r} in {where}")
        try:
            formats, arith, random = data["formats"], data["arithmetic"], data.get("random")
            a, b = read_format(formats["a"], f"{where}: formats.a"), read_format(formats["b"], f"{where}: formats.b")
            if a is None or b is None:
                raise ManifestError(f"{where}: formats.a and formats.b must name formats")
            return cls(
                top=str(data["top"]),
                verilog_file=str(data["verilog"]),
                lanes=int(data["latency"]["lanes"]),
                a_format=a,
                b_format=b,
                out_format=read_format(formats.get("product"), f"{where}: formats.product"),
                rounding=arith["product_rounding"],
                rand_bits=None if random is None else int(random["bits_per_lane"]),
                ports={p["name"]: Port.from_json(p) for p in data["ports"]},
                command=str(data.get("command", "")),
                config=dict(data.get("config", {})),
                path=path,
            )
        except KeyError as error:
            raise ManifestError(f"{where}: missing field {error.args[0]!r}") from None
