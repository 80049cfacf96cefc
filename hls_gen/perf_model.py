"""Analytical cost of a network on an R x C MAC array: cycles, utilisation, latency, memory traffic, energy.

The array (:class:`hls_gen.array.MACArray`, schedule in ``docs/hardware.md``)
computes one output tile of ``R * L`` rows (``L`` the interleave, the sums
each PE holds in turn) per job of ``K * L`` input beats. A layer is
``groups`` GEMMs ``(rows x K) @ (K x cols)`` (:meth:`NetworkSpec.gemms`),
cut into ``T = groups * ceil(rows/(R*L)) * ceil(cols/C)`` tiles (partial
tiles padded with zeros; their PEs still step), streamed back to back with
inputs always valid and outputs always taken. Beat ``t*L + l`` enters at
ring turn ``l`` (a free-running count modulo ``L``), so jobs start on a
multiple of ``L`` cycles. A finished tile stays in the PEs until the
output buffer is free; then ``L`` flush steps, on which the next job's
first beats ride, carry it out through the skewed array: the buffer is
taken from the first flush step for ``X = L + R + C + p + S - 2`` cycles (the
last flush step crosses ``R - 1 + C - 1`` PEs, ``p`` pipeline registers and
the ``S`` registers in front of the buffer, :data:`hls_gen.spec.BUFFER_STAGES`)
plus the ``R * L`` output beats, and no job's beats enter while its
predecessor's tile waits. Hence, from the first input beat to the last
output beat (inclusive)::

    cycles(layer) = K*L + X + R*L + (T - 1) * L * max(K, R + ceil(X / L))

(input-bound when ``K >= R + ceil(X/L)``, output-bound otherwise). Proved
cycle for cycle against the array in Amaranth's simulator
(``tests/hls_gen/test_perf_model.py``) and on Verilator
(``tests/sim/test_cost_cycles.py``).
Layers run one after another (each needs the previous one's output), so the
network's cycles are the sum. Latency is cycles / Fmax; utilisation is the
network's useful MACs over ``R * C * cycles``.

Memory: operands stream from an on-chip SRAM buffer with no reuse beyond the
tile (each tile reads its ``R x K`` slice of A and ``K x C`` slice of B, and
writes ``R x C`` accumulators); DRAM holds the weights, the network input and
output, and any activation that does not fit the buffer (written and read
back). Energy = PE steps (padding included) x MAC energy of the layer's
formats + SRAM and DRAM traffic, per :mod:`mpsim.energy` (Horowitz 45 nm).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hls_gen.network import NetworkSpec
from hls_gen.spec import array_latency
from mpsim.energy import HOROWITZ_45NM, HOROWITZ_45NM_MEMORY, EnergyModel, MemoryEnergy
from mpsim.formats import parse_format
from mpsim.mx import is_mx_spec, parse_mx_format

if TYPE_CHECKING:
    from hls_gen.emit import ArrayConfig

__all__ = ["LayerCost", "NetworkCost", "estimate", "run_cycles", "stream_cycles", "tile_cycles"]


def _flush_cycles(rows: int, cols: int, pipeline: int, interleave: int) -> int:
    """Cycles from a tile's first flush step to its output ``valid``: ``X`` of the module docstring."""
    return array_latency(rows, cols, interleave, pipeline) - 1


def _check_array(rows: int, cols: int, pipeline: int, interleave: int) -> None:
    if min(rows, cols, interleave) < 1 or pipeline < 0:
        raise ValueError(
            f"rows, cols and interleave must be >= 1 and pipeline >= 0, not {rows}, {cols}, {interleave}, {pipeline}"
        )


def tile_cycles(k: int, tiles: int, *, rows: int, cols: int, pipeline: int, interleave: int = 1) -> int:
    """Cycles from the first input beat to the last output beat of ``tiles`` jobs of ``k`` steps sent back to back.

    The closed form of the module docstring (:func:`stream_cycles` for equal jobs).
    """
    if min(k, tiles) < 1:
        raise ValueError(f"k and tiles must be >= 1, not {k}, {tiles}")
    _check_array(rows, cols, pipeline, interleave)
    sums, flush = interleave, _flush_cycles(rows, cols, pipeline, interleave)
    return k * sums + flush + rows * sums + (tiles - 1) * sums * max(k, rows + -(-flush // sums))


def run_cycles(k: int, tiles: int, *, start: int, rows: int, cols: int, pipeline: int, interleave: int = 1) -> int:
    """:func:`tile_cycles` for jobs streamed from ``start`` cycles after reset, when the array has been idle since
    ``start``: the first beat waits for turn 0 of the free-running turn counter (``-start mod interleave`` cycles).

    What a GEMM backend's run of one GEMM takes (:mod:`sim.array_backend`), its start the cycles of the runs before.
    """
    if start < 0:
        raise ValueError(f"start must be >= 0 cycles after reset, not {start}")
    wait = -start % interleave
    return wait + tile_cycles(k, tiles, rows=rows, cols=cols, pipeline=pipeline, interleave=interleave)


def stream_cycles(ks: list[int], *, rows: int, cols: int, pipeline: int, interleave: int = 1) -> int:
    """The same count for jobs of any lengths ``ks`` (the recurrence :func:`tile_cycles` solves for equal ones).

    Cycle 0 takes job 0's first beat (turn 0). Job ``i``'s beats enter
    back to back from its start; its flush starts at the first turn 0 at or
    after its last beat's next cycle at which the buffer is free (the
    previous tile's last row left the cycle before), and the next job starts
    with it; the tile's ``L * rows`` rows leave from ``X`` cycles after its
    flush starts.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"jobs need k >= 1 (at least one job), not {list(ks)[:8]}")
    _check_array(rows, cols, pipeline, interleave)
    sums, flush = interleave, _flush_cycles(rows, cols, pipeline, interleave)
    start, free = 0, 0  # the job's first beat; the first cycle the buffer is free
    for k in ks:
        after = start + k * sums  # the cycle after its last beat: turn 0
        start = max(after, -(-free // sums) * sums)  # its flush, and the next job's first beat: a turn 0
        free = start + flush + rows * sums  # the tile's last row leaves the cycle before
    return free


@dataclass(frozen=True)
class LayerCost:
    """One layer on the array."""

    kind: str
    gemm: tuple[int, int, int, int]  # rows, k, cols, groups
    tiles: int
    cycles: int
    macs: int
    pe_steps: int
    utilisation: float
    mul: str
    acc: str
    rounding: str
    mac_pj: float
    sram_bits: int
    dram_bits: int
    compute_uj: float
    sram_uj: float
    dram_uj: float

    @property
    def energy_uj(self) -> float:
        return self.compute_uj + self.sram_uj + self.dram_uj


@dataclass(frozen=True)
class NetworkCost:
    """The network on the array: per-layer costs and totals (latency at ``fmax_mhz``)."""

    network: str
    array: str
    rows: int
    cols: int
    batch: int
    fmax_mhz: float
    fmax_source: str
    layers: tuple[LayerCost, ...]
    sram_bytes: int

    @property
    def cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def utilisation(self) -> float:
        return self.macs / (self.rows * self.cols * self.cycles)

    @property
    def latency_us(self) -> float:
        return self.cycles / self.fmax_mhz

    @property
    def energy_uj(self) -> float:
        return sum(layer.energy_uj for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        layers = [{**asdict(layer), "energy_uj": layer.energy_uj} for layer in self.layers]
        return {
            "network": self.network,
            "array": self.array,
            "rows": self.rows,
            "cols": self.cols,
            "batch": self.batch,
            "fmax_mhz": self.fmax_mhz,
            "fmax_source": self.fmax_source,
            "sram_bytes": self.sram_bytes,
            "cycles": self.cycles,
            "macs": self.macs,
            "utilisation": self.utilisation,
            "latency_us": self.latency_us,
            "energy_uj": self.energy_uj,
            "energy_breakdown_uj": {
                part: sum(layer[f"{part}_uj"] for layer in layers) for part in ("compute", "sram", "dram")
            },
            "sram_bits": sum(layer.sram_bits for layer in self.layers),
            "dram_bits": sum(layer.dram_bits for layer in self.layers),
            "layers": layers,
        }


def estimate(
    network: NetworkSpec,
    array: ArrayConfig,
    *,
    fmax_mhz: float,
    fmax_source: str = "given",
    batch: int = 1,
    sram_bytes: int = 32 * 1024,
    energy: EnergyModel = HOROWITZ_45NM,
    memory: MemoryEnergy = HOROWITZ_45NM_MEMORY,
) -> NetworkCost:
    """Inference of ``batch`` inputs through ``network`` on ``array`` (see the module doc for what is counted).

    A layer's ``mul``/``acc``/``rounding`` default to the array's (a
    multi-mode array's first mode: the first precision's forward GEMM); its
    operands (activations and weights) are ``mul``, its outputs leave the
    array in ``acc`` and are stored as ``mul`` for the next layer.
    """
    if not fmax_mhz > 0:
        raise ValueError(f"Fmax must be positive MHz, not {fmax_mhz!r}")
    R, C, L = array.rows, array.cols, array.interleave
    if isinstance(R, bool) or isinstance(C, bool) or not (isinstance(R, int) and isinstance(C, int)) or R < 1 or C < 1:
        raise ValueError(f"array size must be at least 1x1, not {R}x{C}")
    costs = []
    gemms = network.gemms(batch)
    shapes = network.shapes()
    forward = array.arith_modes[0]
    for index, (layer, gemm, (shape_in, shape_out)) in enumerate(zip(network.layers, gemms, shapes)):
        mul = layer.mul or forward.a_format
        acc = layer.acc or forward.acc_format
        rounding = layer.rounding or forward.rounding
        a_bits = b_bits = _operand_bits(mul)
        acc_bits = parse_format(acc).bits
        tiles = gemm.groups * math.ceil(gemm.rows / (R * L)) * math.ceil(gemm.cols / C)
        cycles = tile_cycles(gemm.k, tiles, rows=R, cols=C, pipeline=array.pipeline, interleave=L)
        pe_steps = tiles * R * L * C * gemm.k
        mac_pj = energy.mac_pj(mul, mul, acc)
        # on-chip stream: per tile, K * L beats of R A-elements and C B-elements in, R*L x C accumulators out
        sram_bits = tiles * (gemm.k * L * (R * a_bits + C * b_bits) + R * L * C * acc_bits)
        # DRAM: weights once; the network input and output; an activation that outgrows the buffer spills
        dram_bits = gemm.k * gemm.cols * gemm.groups * b_bits
        in_bits = batch * math.prod(shape_in) * a_bits
        out_bits = batch * math.prod(shape_out) * a_bits
        if index == 0 or in_bits > sram_bytes * 8:
            dram_bits += in_bits
        if index == len(network.layers) - 1 or out_bits > sram_bytes * 8:
            dram_bits += out_bits
        costs.append(
            LayerCost(
                kind=layer.kind,
                gemm=(gemm.rows, gemm.k, gemm.cols, gemm.groups),
                tiles=tiles,
                cycles=cycles,
                macs=gemm.macs,
                pe_steps=pe_steps,
                utilisation=gemm.macs / (R * C * cycles),
                mul=str(mul),
                acc=str(acc),
                rounding=str(rounding),
                mac_pj=mac_pj,
                sram_bits=sram_bits,
                dram_bits=dram_bits,
                compute_uj=pe_steps * mac_pj * 1e-6,
                sram_uj=memory.sram_pj(sram_bits, sram_bytes) * 1e-6,
                dram_uj=memory.dram_pj(dram_bits) * 1e-6,
            )
        )
    return NetworkCost(network.name, f"{R}x{C}", R, C, batch, float(fmax_mhz), fmax_source, tuple(costs), sram_bytes)


def _operand_bits(fmt: str) -> float:
    """Bits an operand moves: its format's, or an MX element's with its share of the block's 8-bit scale."""
    return parse_mx_format(fmt).bits_per_element if is_mx_spec(fmt) else parse_format(fmt).bits
