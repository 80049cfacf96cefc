"""GEMM backends that compute on a generated MAC array: ``rtl`` (its Verilog) and ``array-emulator`` (mpsim).

Both take the array's manifest (``mpsim emit ... --out DIR``: DIR/NAME.json)
and compute every GEMM of a quantized layer as the array does:

* **Mode.** A GEMM runs in the array's mode whose operand formats (A, B in
  the order multiplied), accumulator, product format and roundings are the
  GEMM's (:func:`place_call`). A GEMM only the swapped pair covers (a
  convolution multiplies weight-first, ``w^T @ dy`` where a linear layer
  multiplies ``dy @ w^T``) runs transposed, ``(B^T @ A^T)^T``: each output
  sums the same products in the same order, so only which PE rounds it
  changes, and both backends make the same choice. An MX GEMM (``mul`` MX:
  the MX presets, whose tensors stay fp32) runs in the MX mode of its MX
  formats, accumulator and rounding: its fp32 operands are blocked along K
  as :mod:`mpsim.mx_gemm` blocks them (``rtl``: the element and E8M0 scale
  codes of :func:`sim.mx_vectors.mx_codes` streamed through the array;
  ``array-emulator``: :func:`mpsim.qmatmul` of the fp32 operands), and a
  transposed one blocks the same K. MX GEMMs run only on MX arrays and
  element-wise GEMMs only on element-wise arrays; MX elements rounded
  stochastically (``mxfp4``'s backward GEMMs) are refused: the array takes
  its operands quantized and its LFSRs round the accumulator only.
* **Tiling.** The product is cut into the array's jobs in its documented
  order (:func:`sim.vectors.tile_jobs`: batch, row tile of ``rows *
  interleave``, column tile of ``cols``; partial tiles padded with zero
  codes), each job one tile of the output.
* **Random stream.** The array's PEs draw their rounding bits from their own
  LFSRs, which carry on from job to job and from GEMM to GEMM for the whole
  run. ``rtl`` streams the jobs through :class:`sim.rtl_exec.RtlExecutor`;
  ``array-emulator`` computes each GEMM with :func:`mpsim.qmatmul` on one
  :class:`mpsim.randbits.LFSRGrid` in the array's reset state, carried on
  the same way: PE ``(r, c)`` rounds output ``(z, i, j)`` of job
  ``(z, i // (rows*L), j // cols)`` with the draws of its step ``t`` at
  sum ``i % (rows*L) // rows``, the ``LFSRGrid`` layout (an MX PE draws
  once per block, at its end). Given the same
  calls in the same order the two give the same bits, which is what the
  tests prove. The layers' own random sources (quantizing activations and
  gradients) are untouched.

Each backend keeps a :class:`HardwareLog`: every GEMM's kind, mode, shape,
jobs and PE steps, its cycles from the cost model
(:func:`hls_gen.perf_model.run_cycles`) and, on the RTL, the cycles the
array took; :meth:`HardwareLog.report` sums them per GEMM kind and per mode
with utilisation and energy. :meth:`ArrayBackend.state` and
:meth:`ArrayBackend.restore` carry the random stream through a checkpoint.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hls_gen.manifest import ModeEntry
from hls_gen.perf_model import run_cycles
from mpsim.codec import decode, encode
from mpsim.energy import HOROWITZ_45NM
from mpsim.formats import FloatFormat, parse_format
from mpsim.gemm import plan_of, qmatmul_array
from mpsim.gemm_config import GemmConfig
from mpsim.nn.backends import GemmBackend
from mpsim.precision import GemmCall
from mpsim.randbits import CounterRNG
from sim.manifest import ArrayDesign, read_manifest
from sim.mx_vectors import mx_codes
from sim.rtl_exec import RtlExecutor
from sim.rtl_vectors import pack_jobs, unpack_tiles
from sim.vectors import tile_jobs

__all__ = [
    "ArrayBackend",
    "ArrayEmulatorBackend",
    "GemmRecord",
    "HardwareLog",
    "Placement",
    "RtlBackend",
    "describe_call",
    "describe_mode",
    "place_call",
]


def _arithmetic(a: object, b: object, config: GemmConfig, swap: bool = False) -> tuple[object, ...]:
    """What must be equal for a GEMM to run in a mode: operand formats, product format and rounding, accumulator
    format, rounding and overflow policy, and the order (the kernel parameters hold the saturation). An MX GEMM's
    operand formats are its MX formats (``a`` and ``b`` unused; ``swap``: B's first)."""
    plan = plan_of(config)
    if plan.mx is not None:
        mx = plan.mx[::-1] if swap else plan.mx
        return ("mx", *mx, plan.acc, plan.rounding, plan.acc_params, plan.order, plan.mul_rounding)
    if swap:
        a, b = b, a
    fused = plan.mul is None
    return (
        parse_format(a),
        parse_format(b),
        plan.mul,
        plan.acc,
        plan.rounding,
        plan.acc_params,
        plan.order,
        None if fused else plan.mul_rounding,
        None if fused else plan.mul_params,
    )


def describe_mode(mode: ModeEntry) -> str:
    """``e4m3 x e5m2 -> fp16 stochastic:8`` (``, products e5m6 nearest`` when not fused; an MX mode's MX formats:
    ``mxfp8_e5m2 x mxfp8_e4m3 -> fp16 nearest``)."""
    a, b = (mode.a_format.label, mode.b_format.label) if mode.mx is None else (f.label for f in mode.mx)
    text = f"{a} x {b} -> {mode.acc_format.label} {mode.rounding}"
    if mode.product_format is not None:
        text += f", products {mode.product_format.label} {mode.product_rounding}"
    return text


def describe_call(call: GemmCall) -> str:
    """The GEMM's arithmetic as :func:`describe_mode` spells a mode's."""
    config = call.config
    mx = config.mx_formats
    if mx is not None:
        text = f"{mx[0].label} x {mx[1].label} -> {config.acc} {config.rounding}"
        return text if not config.mul_rounding_rule.stochastic else f"{text}, elements {config.mul_rounding}"
    text = f"{call.a.format} x {call.b.format} -> {config.acc} {config.rounding}"
    if config.mul is not None:
        text += f", products {config.mul} {config.mul_rounding}"
    return text


@dataclass(frozen=True)
class Placement:
    """How a GEMM runs on the array: in mode ``code``, transposed (``(B^T @ A^T)^T``) or not."""

    code: int
    transposed: bool


def place_call(design: ArrayDesign, call: GemmCall, layer: str = "layer") -> Placement:
    """The mode of ``design`` that computes ``call``, or its swapped operand pair's (then transposed).

    Raises ``ValueError``, one line naming the layer, the GEMM's kind and arithmetic and the array's modes, when
    none does (or the GEMM cannot run on an array at all: fp32 operands, no accumulator format, another order).
    """
    kind = call.kind.value
    if not call.config.emulate:
        raise ValueError(
            f"{layer}: its {kind} GEMM is left to torch in fp32 (emulate=False); the array {design.top} computes "
            "only GEMMs with an accumulator format and a rounding"
        )
    mx = plan_of(call.config).mx is not None  # an MX GEMM blocks its fp32 operands itself (mpsim.mx_gemm)
    modes = "; ".join(describe_mode(m) for m in design.modes)
    if mx and design.modes[0].mx is None:
        raise ValueError(
            f"{layer}: its {kind} GEMM multiplies MX blocks (mul {call.config.mul!r}); the array {design.top} "
            f"multiplies element by element (its modes: {modes}); emit an MX array with --precision for this precision"
        )
    if not mx and design.modes[0].mx is not None:
        raise ValueError(
            f"{layer}: its {kind} GEMM multiplies element formats ({describe_call(call)}); the array {design.top} "
            f"multiplies MX blocks (its modes: {modes})"
        )
    if mx and call.config.mul_rounding_rule.stochastic:
        raise ValueError(
            f"{layer}: its {kind} GEMM rounds its MX elements {call.config.mul_rounding}; the array {design.top} "
            "takes its operands quantized (its LFSRs round the accumulator only)"
        )
    for side, quant in (("A", call.a), ("B", call.b)):
        if quant.format is None and not mx:
            raise ValueError(
                f"{layer}: operand {side} of its {kind} GEMM stays fp32; the array {design.top} multiplies operands "
                "in the formats of its modes"
            )
    if call.config.order_kind.name != "SEQUENTIAL":
        raise ValueError(
            f"{layer}: its {kind} GEMM sums in order {call.config.order!r}; the array {design.top} sums each output "
            "sequentially"
        )
    want = _arithmetic(call.a.format, call.b.format, call.config)
    swapped = _arithmetic(call.a.format, call.b.format, call.config, swap=True)
    keys = [_arithmetic(m.a_format, m.b_format, m.gemm_config) for m in design.modes]
    for transposed, key in ((False, want), (True, swapped)):
        for mode, have in zip(design.modes, keys):
            if have == key:
                return Placement(mode.code, transposed)
    raise ValueError(
        f"{layer}: the array {design.top} has no mode for its {kind} GEMM, {describe_call(call)} "
        f"(its modes: {modes}); emit one with --precision for this precision"
    )


@dataclass(frozen=True)
class GemmRecord:
    """One GEMM on the array: what ran, in which mode, and its cycles (``measured`` is None off the RTL)."""

    kind: str
    mode: int
    shape: tuple[int, int, int, int]  # batch, M, K, N as the array computed it (after any transpose)
    transposed: bool
    jobs: int
    macs: int
    pe_steps: int
    modelled: int
    measured: int | None


@dataclass
class HardwareLog:
    """Every GEMM a backend computed, in order, and the sums a run reports (:meth:`report`)."""

    design: ArrayDesign
    records: list[GemmRecord] = field(default_factory=list)

    def report(self, fmax_mhz: float | None = None) -> dict[str, Any]:
        """Totals, per GEMM kind and per mode: GEMMs, jobs, useful MACs, PE steps, modelled and measured cycles
        (measured only on the RTL), utilisation (useful MACs over PE slots of the cycles), energy of the PE steps
        (:data:`mpsim.energy.HOROWITZ_45NM`, pJ per MAC of the mode's formats), and time at ``fmax_mhz``."""
        design = self.design
        slots = design.rows * design.cols

        def totals(records: Sequence[GemmRecord]) -> dict[str, Any]:
            modelled = sum(r.modelled for r in records)
            measured = None if any(r.measured is None for r in records) else sum(r.measured or 0 for r in records)
            cycles = modelled if measured is None else measured
            energy_pj = sum(r.pe_steps * _mac_pj(design.modes[r.mode]) for r in records)
            row: dict[str, Any] = {
                "gemms": len(records),
                "jobs": sum(r.jobs for r in records),
                "macs": sum(r.macs for r in records),
                "pe_steps": sum(r.pe_steps for r in records),
                "modelled_cycles": modelled,
                "measured_cycles": measured,
                "utilisation": sum(r.macs for r in records) / (slots * cycles) if cycles else 0.0,
                "energy_uj": energy_pj * 1e-6,
            }
            if fmax_mhz:
                row["seconds_at_fmax"] = cycles / (fmax_mhz * 1e6)
            return row

        kinds = sorted({r.kind for r in self.records})
        return {
            "array": design.top,
            "rows": design.rows,
            "cols": design.cols,
            "interleave": design.interleave,
            "total": totals(self.records),
            "per_kind": {k: totals([r for r in self.records if r.kind == k]) for k in kinds},
            "per_mode": {
                f"{m.code}: {describe_mode(m)}": totals([r for r in self.records if r.mode == m.code])
                for m in design.modes
                if any(r.mode == m.code for r in self.records)
            },
            "transposed_gemms": sum(r.transposed for r in self.records),
        }

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.records]


def _mac_pj(mode: ModeEntry) -> float:
    if mode.mx is not None:
        return HOROWITZ_45NM.mx_mac_pj(mode.mx[0], mode.mx[1], mode.acc_format.label)
    return HOROWITZ_45NM.mac_pj(mode.a_format.label, mode.b_format.label, mode.acc_format.label)


def _as_3d(x: torch.Tensor, name: str) -> np.ndarray:
    values = x.detach().to(torch.float32).cpu().numpy()
    if values.ndim == 2:
        return values[None]
    if values.ndim != 3:
        raise ValueError(f"the array multiplies 2-D or batched (3-D) operands, not {name} of shape {tuple(x.shape)}")
    return values


def _codes(fmt: FloatFormat, values: np.ndarray, what: str) -> np.ndarray:
    """The codes of ``values``, which must be ``fmt``'s values already (a layer quantized them)."""
    codes = encode(fmt, values)
    back = decode(fmt, codes, np.float32)
    exact = (back == values) | (np.isnan(back) & np.isnan(values))
    if not exact.all():
        bad = values.reshape(-1)[np.flatnonzero(~exact.reshape(-1))[0]]
        raise ValueError(
            f"{what}: {float(bad):.8g} is not a value of {fmt.label}; the layer must quantize its operands"
        )
    return codes.astype(np.int64)


class ArrayBackend(GemmBackend):
    """What :class:`RtlBackend` and :class:`ArrayEmulatorBackend` share: the manifest, the modes, the tiling and
    the log; subclasses compute a placed product (:meth:`product`)."""

    name: ClassVar[str]

    def __init__(self, hardware: str | Path | None) -> None:
        if hardware is None:
            raise ValueError(f"the {self.name} backend needs --hardware DIR/NAME.json, a manifest of mpsim emit")
        design = read_manifest(hardware, "array")
        if not isinstance(design, ArrayDesign):  # read_manifest checked the unit; this narrows the type
            raise ValueError(f"{hardware} does not describe a MAC array")
        self.design = design
        self.log = HardwareLog(design)
        self._placements: dict[GemmCall, Placement] = {}
        # Cycles since reset: the array's turn counter runs free from it, and a GEMM's first beat waits for turn 0.
        self._cycle = 0

    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        # A GEMM no array can run (MX elements rounded stochastically: mxfp4's backward GEMMs) is named first, not
        # a sibling GEMM's missing mode, for which emitting another array would be the remedy.
        unbuildable = [c for c in calls if c.config.mx_formats is not None and c.config.mul_rounding_rule.stochastic]
        for call in [*unbuildable, *calls]:
            self._placements[call] = place_call(self.design, call, layer)

    def placement(self, call: GemmCall) -> Placement:
        if call not in self._placements:
            self._placements[call] = place_call(self.design, call)
        return self._placements[call]

    def matmul(self, a: torch.Tensor, b: torch.Tensor, call: GemmCall, rng: CounterRNG) -> torch.Tensor:
        """``a @ b`` on the array in ``call``'s mode (``rng`` unused: the array draws from its LFSRs)."""
        place = self.placement(call)
        mode = self.design.modes[place.code]
        a3, b3 = _as_3d(a, "A"), _as_3d(b, "B")
        if a3.shape[2] != b3.shape[1] or (a3.shape[0] != b3.shape[0] and 1 not in (a3.shape[0], b3.shape[0])):
            raise ValueError(f"the array cannot multiply shapes {tuple(a.shape)} and {tuple(b.shape)}")
        batch = max(a3.shape[0], b3.shape[0])
        a3 = np.broadcast_to(a3, (batch, *a3.shape[1:]))
        b3 = np.broadcast_to(b3, (batch, *b3.shape[1:]))
        if mode.mx is not None:  # fp32 operands, blocked along K by the mode's MX formats (as mpsim.mx_gemm does)
            if place.transposed:  # B^T's blocks along its rows are B's along its columns: the same blocks
                a3, b3 = b3.transpose(0, 2, 1), a3.transpose(0, 2, 1)
            a_in, b_in = np.ascontiguousarray(a3), np.ascontiguousarray(b3)
            values, measured = self.mx_product(a_in, b_in, mode)
        else:
            what = f"{call.kind.value} GEMM operand"
            formats = (mode.b_format, mode.a_format) if place.transposed else (mode.a_format, mode.b_format)
            a_in, b_in = _codes(formats[0], a3, f"{what} A"), _codes(formats[1], b3, f"{what} B")
            if place.transposed:
                a_in, b_in = b_in.transpose(0, 2, 1), a_in.transpose(0, 2, 1)
            values, measured = self.product(a_in, b_in, mode)
        design = self.design
        _, m, k = a_in.shape
        n = b_in.shape[2]
        jobs = batch * -(-m // design.tile_rows) * -(-n // design.cols)
        beats = jobs * k * design.interleave
        shape = dict(rows=design.rows, cols=design.cols, pipeline=design.pipeline, interleave=design.interleave)
        modelled = run_cycles(k, jobs, start=self._cycle, **shape)
        self._cycle += modelled if measured is None else measured
        self.log.records.append(
            GemmRecord(
                kind=call.kind.value,
                mode=mode.code,
                shape=(batch, m, k, n),
                transposed=place.transposed,
                jobs=jobs,
                macs=batch * m * k * n,
                pe_steps=beats * design.rows * design.cols,
                modelled=modelled,
                measured=measured,
            )
        )
        if place.transposed:
            values = values.transpose(0, 2, 1)
        out = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        return out[0] if a.ndim == 2 and b.ndim == 2 else out

    @abc.abstractmethod
    def product(self, a: np.ndarray, b: np.ndarray, mode: ModeEntry) -> tuple[np.ndarray, int | None]:
        """``a @ b`` of ``(batch, M, K)`` and ``(batch, K, N)`` operand codes in ``mode``, as float32 values, and
        the cycles it took (None where nothing is simulated); the random stream carries on."""

    @abc.abstractmethod
    def mx_product(self, a: np.ndarray, b: np.ndarray, mode: ModeEntry) -> tuple[np.ndarray, int | None]:
        """``a @ b`` of ``(batch, M, K)`` and ``(batch, K, N)`` float32 operands in MX ``mode`` (A blocked along its
        rows, B along its columns), as :meth:`product`."""

    def report(self) -> dict[str, Any]:
        """:meth:`HardwareLog.report` of every GEMM so far."""
        return self.log.report()

    @property
    def cycles(self) -> int:
        """Cycles since the array's reset: measured on the RTL (a restored run's replay included), else modelled."""
        return self._cycle

    @property
    def lfsr_steps(self) -> int:
        """LFSR steps every PE has taken since reset (every PE steps on every beat, an MX PE at every block's
        end)."""
        return self._lfsr_steps(self._beats_per_mode())

    def _lfsr_steps(self, beats: Counter[int]) -> int:
        return sum(n * self.design.modes[code].lfsr_steps for code, n in beats.items())

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the beats run in each mode (an MX mode's: its blocks; the PEs' LFSRs follow
        from them) and the log."""
        return {
            "array": self.design.top,
            "beats": {str(code): n for code, n in sorted(self._beats_per_mode().items())},
            "cycle": self._cycle,
            "log": self.log.to_json(),
        }

    def _beats_per_mode(self) -> Counter[int]:
        """Each PE's draws per mode: its beats, or (MX) its blocks, ``ceil(K / block_size)`` per job and sum."""
        beats: Counter[int] = Counter()
        design = self.design
        for r in self.log.records:
            mx = design.modes[r.mode].mx
            if mx is None:
                beats[r.mode] += r.pe_steps // (design.rows * design.cols)
            else:
                beats[r.mode] += r.jobs * -(-r.shape[2] // mx[0].block_size) * design.interleave
        return beats

    def restore(self, state: dict[str, Any]) -> None:
        """Back to the random stream (and log) of ``state``: after reset, each PE's LFSR stepped as there."""
        if state.get("array") != self.design.top:
            raise ValueError(f"the checkpoint ran on array {state.get('array')!r}, not {self.design.top!r}")
        self.log.records = [GemmRecord(**{**r, "shape": tuple(r["shape"])}) for r in state["log"]]
        beats = Counter({int(code): int(n) for code, n in state["beats"].items()})
        if beats != self._beats_per_mode():
            raise ValueError("the checkpoint's beats per mode do not match its log of GEMMs")
        self._cycle = self.replay(beats, int(state["cycle"]))

    @abc.abstractmethod
    def replay(self, beats: Counter[int], cycle: int) -> int:
        """From reset, step the random stream as ``beats[code]`` beats of each mode do; return the cycles since
        reset that the array's turn counter then stands at (``cycle`` where nothing is simulated)."""


class ArrayEmulatorBackend(ArrayBackend):
    """The array's arithmetic and random stream in mpsim: :func:`mpsim.qmatmul` per mode on the array's
    :class:`~mpsim.randbits.LFSRGrid`, carried on from GEMM to GEMM (the reference :class:`RtlBackend` is proved
    against; needs no simulator)."""

    name = "array-emulator"

    def __init__(self, hardware: str | Path | None) -> None:
        super().__init__(hardware)
        self.grid = self.design.random_source()

    def product(self, a: np.ndarray, b: np.ndarray, mode: ModeEntry) -> tuple[np.ndarray, None]:
        values = qmatmul_array(decode(mode.a_format, a), decode(mode.b_format, b), plan_of(mode.gemm_config), self.grid)
        return values, None

    def mx_product(self, a: np.ndarray, b: np.ndarray, mode: ModeEntry) -> tuple[np.ndarray, None]:
        return qmatmul_array(a, b, plan_of(mode.gemm_config), self.grid), None

    def replay(self, beats: Counter[int], cycle: int) -> int:
        self.grid = self.design.random_source()
        self.grid.advance(self._lfsr_steps(beats))
        return cycle


class RtlBackend(ArrayBackend):
    """The array's Verilog on Verilator (:class:`sim.rtl_exec.RtlExecutor`, built once per design and cached):
    each GEMM's jobs streamed through the array, its output tiles read back, its cycles counted."""

    name = "rtl"

    def __init__(
        self,
        hardware: str | Path | None,
        *,
        opt: str = "Os",
        cache_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        """``opt``, ``cache_dir``: the executor build's (:func:`sim.rtl_build.build_exec`); ``progress``: show the
        build's progress (a first build of a design takes a minute or more)."""
        super().__init__(hardware)
        self._build = dict(opt=opt, cache_dir=cache_dir, progress=progress)
        self._executor: RtlExecutor | None = None

    @property
    def executor(self) -> RtlExecutor:
        """The array's executor, built (or found in the cache) at the first GEMM: after every layer's check."""
        if self._executor is None:
            assert self.design.path is not None  # read from a file
            self._executor = RtlExecutor.open(self.design.path, **self._build)  # type: ignore[arg-type]
        return self._executor

    def product(self, a: np.ndarray, b: np.ndarray, mode: ModeEntry) -> tuple[np.ndarray, int]:
        return self._run(a, b, mode, None)

    def mx_product(self, a: np.ndarray, b: np.ndarray, mode: ModeEntry) -> tuple[np.ndarray, int]:
        """The operands' element and scale codes (:func:`sim.mx_vectors.mx_codes`, what mpsim.mx_gemm quantizes
        to) streamed through the array."""
        (fa, fb), design = mode.mx, self.design  # type: ignore[misc]
        (sa, ca), (sb, cb) = mx_codes(a, fa, 2), mx_codes(b, fb, 1)
        scales = [(st_a, st_b) for _, st_a, st_b in tile_jobs(sa, sb, design.tile_rows, design.cols)]
        return self._run(ca, cb, mode, scales)

    def _run(
        self, a: np.ndarray, b: np.ndarray, mode: ModeEntry, scales: list[tuple[np.ndarray, np.ndarray]] | None
    ) -> tuple[np.ndarray, int]:
        design = self.design
        jobs = tile_jobs(a, b, design.tile_rows, design.cols)
        codes = [mode.code] * len(jobs)
        beats = pack_jobs(design, [at for _, at, _ in jobs], [bt for _, _, bt in jobs], codes, scales or ())
        run = self.executor.run(beats)
        tiles, errors = unpack_tiles(design, run.outputs, codes)
        if errors:
            raise RuntimeError(f"{design.top} broke its output protocol: {errors[0]}")
        batch, m, _ = a.shape
        n = b.shape[2]
        tiles_m, tiles_n = -(-m // design.tile_rows), -(-n // design.cols)
        grid = tiles.reshape(batch, tiles_m, tiles_n, design.tile_rows, design.cols).transpose(0, 1, 3, 2, 4)
        acc = grid.reshape(batch, tiles_m * design.tile_rows, tiles_n * design.cols)[:, :m, :n]
        return decode(mode.acc_format, acc), run.cycles

    def replay(self, beats: Counter[int], cycle: int) -> int:
        """Reset the array, then run jobs of zero operands with each mode's beats (its PEs step their LFSRs on
        every beat, whatever the operands); the replay's own cycles, not ``cycle``, set the turn counter."""
        design = self.design
        self.executor.reset()
        cycles = 0
        for code, count in sorted(beats.items()):
            mx = design.modes[code].mx
            block = 1 if mx is None else mx[0].block_size  # an MX mode counts blocks: a job of n draws is n blocks
            steps = count // design.interleave
            while steps:  # jobs of at most 2**16 steps: the beats of one run stay a few MB
                n = min(steps, max((1 << 16) // block, 1))
                k = n * block
                at = np.zeros((design.tile_rows, k), np.int64)
                bt = np.zeros((k, design.cols), np.int64)
                scales = (
                    ()
                    if mx is None
                    else [(np.zeros((design.tile_rows, n), np.int64), np.zeros((n, design.cols), np.int64))]
                )
                cycles += self.executor.run(pack_jobs(design, [at], [bt], [code], scales)).cycles
                steps -= n
        return cycles

    def close(self) -> None:
        """Free the Verilator model (if one was opened)."""
        if self._executor is not None:
            self._executor.close()


def rtl_backend(hardware: str | Path | None) -> RtlBackend:
    """Entry point ``rtl`` (group ``mpsim.backends``): the executor built with progress shown."""
    return RtlBackend(hardware, progress=True)


def array_emulator_backend(hardware: str | Path | None) -> ArrayEmulatorBackend:
    """Entry point ``array-emulator`` (group ``mpsim.backends``)."""
    return ArrayEmulatorBackend(hardware)
