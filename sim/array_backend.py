"""GEMM backends that compute on a generated MAC array: ``rtl`` (its Verilog) and ``array-emulator`` (mpsim).

Both take the array's manifest (``mpsim emit ... --out DIR``: DIR/NAME.json)
and compute every GEMM of a quantized layer as the array does:

* **Mode.** A GEMM runs in the array's mode whose operand formats (A, B in
  the order multiplied), accumulator, product format and roundings are the
  GEMM's (:func:`place_call`). A GEMM only the swapped pair covers (a
  convolution multiplies weight-first, ``w^T @ dy`` where a linear layer
  multiplies ``dy @ w^T``) runs transposed, ``(B^T @ A^T)^T``: each output
  sums the same products in the same order, so only which PE rounds it
  changes, and both backends make the same choice.
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
  sum ``i % (rows*L) // rows``, the ``LFSRGrid`` layout. Given the same
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


def _arithmetic(a: object, b: object, config: GemmConfig) -> tuple[object, ...]:
    """What must be equal for a GEMM to run in a mode: operand formats, product format and rounding, accumulator
    format, rounding and overflow policy, and the order (the kernel parameters hold the saturation)."""
    plan = plan_of(config)
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
    """``e4m3 x e5m2 -> fp16 stochastic:8`` (``, products e5m6 nearest`` when not fused)."""
    text = f"{mode.a_format.label} x {mode.b_format.label} -> {mode.acc_format.label} {mode.rounding}"
    if mode.product_format is not None:
        text += f", products {mode.product_format.label} {mode.product_rounding}"
    return text


def describe_call(call: GemmCall) -> str:
    """The GEMM's arithmetic as :func:`describe_mode` spells a mode's."""
    config = call.config
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
    for side, quant in (("A", call.a), ("B", call.b)):
        if quant.format is None:
            raise ValueError(
                f"{layer}: operand {side} of its {kind} GEMM stays fp32; the array {design.top} multiplies operands "
                "in the formats of its modes"
            )
    if plan_of(call.config).mx is not None:
        raise ValueError(
            f"{layer}: its {kind} GEMM multiplies MX blocks (mul {call.config.mul!r}); the array {design.top} "
            "multiplies element by element (no MX mode yet)"
        )
    if call.config.order_kind.name != "SEQUENTIAL":
        raise ValueError(
            f"{layer}: its {kind} GEMM sums in order {call.config.order!r}; the array {design.top} sums each output "
            "sequentially"
        )
    want = _arithmetic(call.a.format, call.b.format, call.config)
    swapped = _arithmetic(call.b.format, call.a.format, call.config)
    keys = [_arithmetic(m.a_format, m.b_format, m.gemm_config) for m in design.modes]
    for transposed, key in ((False, want), (True, swapped)):
        for mode, have in zip(design.modes, keys):
            if have == key:
                return Placement(mode.code, transposed)
    modes = "; ".join(describe_mode(m) for m in design.modes)
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
        if design.modes[0].mx is not None:
            raise ValueError(
                f"{hardware} is an MX array ({design.modes[0].mx_label}): the {self.name} backend runs element-wise "
                "arrays only (MX GEMMs on the array are not supported yet)"
            )
        self.design = design
        self.log = HardwareLog(design)
        self._placements: dict[GemmCall, Placement] = {}
        # Cycles since reset: the array's turn counter runs free from it, and a GEMM's first beat waits for turn 0.
        self._cycle = 0

    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        for call in calls:
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
        what = f"{call.kind.value} GEMM operand"
        formats = (mode.b_format, mode.a_format) if place.transposed else (mode.a_format, mode.b_format)
        a_codes, b_codes = _codes(formats[0], a3, f"{what} A"), _codes(formats[1], b3, f"{what} B")
        if place.transposed:
            a_codes, b_codes = b_codes.transpose(0, 2, 1), a_codes.transpose(0, 2, 1)
        values, measured = self.product(a_codes, b_codes, mode)
        design = self.design
        _, m, k = a_codes.shape
        n = b_codes.shape[2]
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

    def report(self) -> dict[str, Any]:
        """:meth:`HardwareLog.report` of every GEMM so far."""
        return self.log.report()

    @property
    def cycles(self) -> int:
        """Cycles since the array's reset: measured on the RTL (a restored run's replay included), else modelled."""
        return self._cycle

    @property
    def lfsr_steps(self) -> int:
        """LFSR steps every PE has taken since reset (every PE steps on every beat)."""
        return self._lfsr_steps(self._beats_per_mode())

    def _lfsr_steps(self, beats: Counter[int]) -> int:
        return sum(n * self.design.modes[code].lfsr_steps for code, n in beats.items())

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps: the beats run in each mode (the PEs' LFSRs follow from them) and the log."""
        return {
            "array": self.design.top,
            "beats": {str(code): n for code, n in sorted(self._beats_per_mode().items())},
            "cycle": self._cycle,
            "log": self.log.to_json(),
        }

    def _beats_per_mode(self) -> Counter[int]:
        beats: Counter[int] = Counter()
        for r in self.log.records:
            beats[r.mode] += r.pe_steps // (self.design.rows * self.design.cols)
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
        design = self.design
        jobs = tile_jobs(a, b, design.tile_rows, design.cols)
        codes = [mode.code] * len(jobs)
        beats = pack_jobs(design, [at for _, at, _ in jobs], [bt for _, _, bt in jobs], codes)
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
            steps = count // design.interleave
            while steps:  # jobs of at most 2**16 steps: the beats of one run stay a few MB
                k = min(steps, 1 << 16)
                at = np.zeros((design.tile_rows, k), np.int64)
                bt = np.zeros((k, design.cols), np.int64)
                cycles += self.executor.run(pack_jobs(design, [at], [bt], [code])).cycles
                steps -= k
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
