"""The analytical cycle model against the array's cycle-exact behaviour in Amaranth's simulator, and its bookkeeping."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

import mpsim
from hls_gen.emit import ArrayConfig
from hls_gen.manifest import ArrayManifest
from hls_gen.network import LayerSpec, NetworkSpec
from hls_gen.perf_model import estimate, run_cycles, stream_cycles, tile_cycles
from hls_gen.spec import described
from mpsim.energy import HOROWITZ_45NM, HOROWITZ_45NM_MEMORY
from tests.hls_gen.test_array import input_beats, reference, signals, tiles


def stream(dut, design: ArrayManifest, beats: list[tuple[int, int]], out_beats: int) -> tuple[int, list[int]]:
    """Stream input beats (payload, last) back to back (inputs always valid, outputs always taken).

    Returns the cycles from the first accepted input beat to the last output
    beat, inclusive, and the output payloads in order.
    """
    out_rows: list[int] = []
    marks: dict[str, int] = {}
    sig = signals(dut)
    source, sink = design.stream("input"), design.stream("output")

    async def bench(ctx) -> None:
        cycle = beat = 0
        ctx.set(sig[sink.ready.name], 1)
        while len(out_rows) < out_beats:
            if beat < len(beats):
                ctx.set(sig[source.payload.name], beats[beat][0])
            ctx.set(sig[source.valid.name], int(beat < len(beats)))
            if beat < len(beats) and ctx.get(sig[source.ready.name]):
                marks.setdefault("first_in", cycle)
                beat += 1
            if ctx.get(sig[sink.valid.name]):
                out_rows.append(ctx.get(sig[sink.payload.name]))
                marks["last_out"] = cycle
            await ctx.tick()
            cycle += 1
            assert cycle < 10 * len(beats) + 100, "the array stopped"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return marks["last_out"] - marks["first_in"] + 1, out_rows


def simulated_cycles(config: ArrayConfig, a_codes: np.ndarray, b_codes: np.ndarray) -> tuple[int, np.ndarray]:
    """Stream every tile of ``a @ b`` through the array; the cycles and the result codes (the layer really ran)."""
    dut = config.build()
    design = config.manifest("dut", dut)
    jobs = tiles(design.to_json(), a_codes, b_codes)
    rows, cols = design.tile_rows, design.cols  # of a job's tile
    k_dim = a_codes.shape[2]
    cycles, out_rows = stream(dut, design, input_beats(design, jobs, k_dim), len(jobs) * rows)
    payload = design.stream("output").payload
    batch, m, _ = a_codes.shape
    n = b_codes.shape[2]
    out = np.zeros((batch, m, n), np.int64)
    for index, ((z, ti, tj), _, _) in enumerate(jobs):
        for r in range(rows):
            data = payload.read_array(out_rows[index * rows + r], "data")
            for c in range(cols):
                i, j = ti * rows + r, tj * cols + c
                if i < m and j < n:
                    out[z, i, j] = data[c]
    return cycles, out


def layer_operands(layer: torch.nn.Module, x: torch.Tensor, fmt) -> tuple[np.ndarray, np.ndarray]:
    """The layer's GEMM as (1, rows, K) activation codes and (1, K, cols) weight codes (Conv2d: im2col)."""
    if isinstance(layer, torch.nn.Conv2d):
        patches = torch.nn.functional.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)
        a = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        w = layer.weight.reshape(layer.out_channels, -1).T
    else:
        a, w = x, layer.weight.T
    a_codes = mpsim.encode(fmt, np.asarray(a.detach(), np.float32).clip(-fmt.max, fmt.max))
    w_codes = mpsim.encode(fmt, np.asarray(w.detach(), np.float32).clip(-fmt.max, fmt.max))
    return a_codes.astype(np.int64)[None], w_codes.astype(np.int64)[None]


# (array, layer, input, spec layer): input-bound (K > R), output-bound (K <= R) and a convolution
CASES = {
    "2x2-linear-k6-input-bound": (ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=2, cols=2), "linear", (3, 6), 5),
    "3x2-linear-k2-output-bound": (
        ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:4", rows=3, cols=2, pipeline=2),
        "linear",
        (4, 2),
        3,
    ),
    "2x3-conv2d-k4-pl0": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=2, cols=3, pipeline=0),
        "conv",
        (1, 1, 3, 3),
        4,
    ),
    "2x2-linear-il8-input-bound": (
        ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2, interleave=8),
        "linear",
        (37, 5),
        3,
    ),
    "3x2-linear-il3-pl2-output-bound": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=3, cols=2, pipeline=2, interleave=3),
        "linear",
        (20, 2),
        5,
    ),
    "1x1-linear-il10": (
        ArrayConfig(a_format="e5m2", acc_format="bf16", interleave=10),
        "linear",
        (23, 4),
        2,
    ),
    "1x4-linear-il8-k3-output-bound": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=1, cols=4, interleave=8),
        "linear",
        (17, 3),
        6,
    ),
    "3x1-linear-il3-k9-input-bound": (
        ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=3, cols=1, interleave=3),
        "linear",
        (10, 9),
        2,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_cycles_equal_the_simulated_array(name: str) -> None:
    config, kind, shape, out = CASES[name]
    torch.manual_seed(len(name))
    described_array = described(config.build())
    fmt = described_array.pe.a_format
    if kind == "linear":
        layer: torch.nn.Module = torch.nn.Linear(shape[1], out, bias=False)
        spec = NetworkSpec((shape[1],), (LayerSpec("Linear", out),))
        batch = shape[0]
    else:
        layer = torch.nn.Conv2d(shape[1], out, 2, bias=False)
        spec = NetworkSpec(shape[1:], (LayerSpec("Conv2d", out, kernel=(2, 2)),))
        batch = shape[0]
    x = torch.randn(shape)
    a, b = layer_operands(layer, x, fmt)
    got_cycles, got = simulated_cycles(config, a, b)
    want = reference(config.manifest("dut", described_array).to_json(), a, b)
    assert np.array_equal(mpsim.decode(described_array.pe.acc_format, got), want.astype(np.float32), equal_nan=True)
    cost = estimate(spec, config, fmax_mhz=100.0, batch=batch)
    assert cost.layers[0].gemm[:3] == (a.shape[1], a.shape[2], b.shape[2])  # the model's GEMM is the layer's
    assert cost.cycles == got_cycles


def test_cycle_formula_regimes() -> None:
    for rows, cols, pipeline, sums in ((4, 4, 1, 1), (2, 3, 0, 3), (3, 1, 2, 8), (1, 4, 1, 10)):
        shape = dict(rows=rows, cols=cols, pipeline=pipeline, interleave=sums)
        latency = described(
            ArrayConfig(
                a_format="e4m3", acc_format="e5m6", rows=rows, cols=cols, pipeline=pipeline, interleave=sums
            ).build()
        ).latency
        # one tile: K*L beats, the last one's out.valid the array's latency later, then R*L output beats
        assert tile_cycles(5, 1, **shape) == 5 * sums - 1 + latency + rows * sums
        # input-bound: a new tile every K*L cycles; output-bound: every R*L output beats plus the flush's
        # latency (the buffer is taken from the flush steps, which follow the last beat) rounded up to whole turns
        flush_turns = -(-(latency - 1) // sums)
        for k in (rows + flush_turns, rows + flush_turns + 3):
            assert tile_cycles(k, 4, **shape) - tile_cycles(k, 3, **shape) == k * sums
        assert tile_cycles(1, 4, **shape) - tile_cycles(1, 3, **shape) == (rows + flush_turns) * sums
        # the closed form solves the recurrence for equal jobs
        for k in range(1, 8):
            for jobs in (1, 2, 5):
                assert stream_cycles([k] * jobs, **shape) == tile_cycles(k, jobs, **shape)
        # a run that starts mid-turn waits for turn 0 (the RTL backend's tests hold it to the array's counts)
        for start in (0, 1, sums, 3 * sums + sums - 1):
            assert run_cycles(5, 3, start=start, **shape) == -start % sums + tile_cycles(5, 3, **shape)
    with pytest.raises(ValueError, match=r"^start must be >= 0 cycles after reset, not -1$"):
        run_cycles(1, 1, start=-1, rows=1, cols=1, pipeline=0)
    with pytest.raises(ValueError, match=r"^k and tiles must be >= 1, not 0, 1$"):
        tile_cycles(0, 1, rows=1, cols=1, pipeline=0)
    message = r"^rows, cols and interleave must be >= 1 and pipeline >= 0, not 1, 0, 1, 0$"
    with pytest.raises(ValueError, match=message):
        stream_cycles([1], rows=1, cols=0, pipeline=0)


@pytest.mark.parametrize(
    "config",
    [
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=3, cols=2),
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:4", rows=2, cols=3, interleave=3),
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=1, cols=4, pipeline=2, interleave=8),
    ],
    ids=lambda config: config.name,
)
def test_mixed_job_lengths_equal_the_simulated_array(config: ArrayConfig) -> None:
    """Jobs of lengths 1..7 back to back (both regimes, waits between them), each step once per sum."""
    dut = config.build()
    design = config.manifest("dut", dut)
    payload = design.stream("input").payload
    rng = np.random.default_rng(4)
    ks = [5, 1, 7, 2, 2, 6, 1, 3]
    a_bits, b_bits, sums = dut.pe.a_format.bits, dut.pe.b_format.bits, config.interleave
    beats = [
        (
            payload.pack_fields(
                a=rng.integers(0, 1 << a_bits, config.rows), b=rng.integers(0, 1 << b_bits, config.cols), last=last
            ),
            last,
        )
        for k in ks
        for t in range(k)
        for _ in range(sums)
        for last in [int(t == k - 1)]
    ]
    cycles, _ = stream(dut, design, beats, len(ks) * config.rows * sums)
    shape = dict(rows=config.rows, cols=config.cols, pipeline=config.pipeline, interleave=sums)
    assert cycles == stream_cycles(ks, **shape)


def mlp() -> NetworkSpec:
    return NetworkSpec((64,), (LayerSpec("Linear", 32), LayerSpec("Linear", 10)), "mlp")


def test_bigger_array_fewer_cycles_lower_utilisation_bound() -> None:
    arrays = [ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=n, cols=n) for n in (1, 4, 8)]
    costs = [estimate(mlp(), array, fmax_mhz=50.0, batch=16) for array in arrays]
    assert costs[0].cycles > costs[1].cycles > costs[2].cycles
    for cost in costs:
        assert 0 < cost.utilisation <= 1
        assert cost.macs == 16 * (64 * 32 + 32 * 10)
        assert cost.latency_us == pytest.approx(cost.cycles / 50.0)
    # a 1x1 array, input-bound, is busy except for the drain of each layer
    one = costs[0]
    one_by_one = dict(rows=1, cols=1, pipeline=1)
    assert one.cycles == sum(tile_cycles(k, 16 * n, **one_by_one) for k, n in ((64, 32), (32, 10)))


def test_energy_adds_up_from_the_tables() -> None:
    array = ArrayConfig(a_format="e4m3", acc_format="fp16", rows=4, cols=4)
    cost = estimate(mlp(), array, fmax_mhz=100.0, batch=4, sram_bytes=8 * 1024)
    first = cost.layers[0]
    assert first.tiles == math.ceil(4 / 4) * math.ceil(32 / 4)
    assert first.pe_steps == first.tiles * 16 * 64
    assert first.compute_uj == pytest.approx(first.pe_steps * HOROWITZ_45NM.mac_pj("e4m3", "e4m3", "fp16") * 1e-6)
    sram = first.tiles * (64 * (4 * 8 + 4 * 8) + 16 * 16)
    assert first.sram_bits == sram
    assert first.sram_uj == pytest.approx(sram / 64 * 10.0 * 1e-6)  # 8 KB: Horowitz's 10 pJ per 64 bits
    dram = 64 * 32 * 8 + 4 * 64 * 8  # weights and the network input; the 4x32 hidden map stays on chip
    assert first.dram_bits == dram
    assert first.dram_uj == pytest.approx(dram / 64 * 1300.0 * 1e-6)
    assert cost.energy_uj == pytest.approx(sum(l.compute_uj + l.sram_uj + l.dram_uj for l in cost.layers))
    # a per-layer accumulator overrides the array's
    narrow = NetworkSpec((64,), (LayerSpec("Linear", 32, acc="e5m6"), LayerSpec("Linear", 10)), "mlp")
    assert (
        estimate(narrow, array, fmax_mhz=100.0).layers[0].mac_pj
        < estimate(mlp(), array, fmax_mhz=100.0).layers[0].mac_pj
    )


def test_memory_energy_points() -> None:
    mem = HOROWITZ_45NM_MEMORY
    for size, pj in ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0)):
        assert mem.sram_pj_per_64b(size) == pytest.approx(pj)
    assert 10.0 < mem.sram_pj_per_64b(16 * 1024) < 20.0
    assert mem.sram_pj_per_64b(4 * 1024) < 10.0 and mem.sram_pj_per_64b(4 << 20) > 100.0
    with pytest.raises(ValueError, match=r"^SRAM capacity must be a positive number of bytes, not 0$"):
        mem.sram_pj_per_64b(0)


def test_bad_inputs_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"^Fmax must be positive MHz, not 0$"):
        estimate(mlp(), ArrayConfig(a_format="e4m3", acc_format="e5m6"), fmax_mhz=0)
    with pytest.raises(ValueError, match=r"^array size must be at least 1x1, not 0x4$"):
        estimate(mlp(), ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=0, cols=4), fmax_mhz=10)
    with pytest.raises(
        ValueError, match=re.escape("Conv2d layer 0 needs a (channels, height, width) input, not (64,)")
    ):
        NetworkSpec((64,), (LayerSpec("Conv2d", 4, kernel=(3, 3)),))


def test_an_mx_array_costs_its_block_work_and_moves_its_scales() -> None:
    """MXFP8 operands: 8 bits per element plus a 32nd of the 8-bit scale; a MAC is mx_mac_pj (the block's share)."""
    mx = ArrayConfig(a_format="mxfp8_e4m3", acc_format="fp16", rows=4, cols=4)
    plain = ArrayConfig(a_format="e4m3", acc_format="fp16", rows=4, cols=4)
    first, same = (estimate(mlp(), a, fmax_mhz=100.0, batch=4).layers[0] for a in (mx, plain))
    assert first.mac_pj == pytest.approx(HOROWITZ_45NM.mx_mac_pj("mxfp8_e4m3", "mxfp8_e4m3", "fp16"))
    assert first.mac_pj < same.mac_pj
    assert first.sram_bits == first.tiles * (64 * (4 * 8.25 + 4 * 8.25) + 16 * 16)
