"""MACArray against mpsim.qmatmul on random matrices, driven from the manifest alone."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.lib.data import ArrayLayout, StructLayout
from amaranth.sim import Simulator

import mpsim
from hls_gen.array import MACArray
from hls_gen.emit import ArrayConfig
from hls_gen.manifest import ArrayManifest
from hls_gen.ports import input_layout, output_layout, verilog_name
from hls_gen.spec import BUFFER_STAGES, described
from mpsim.randbits import LFSRGrid
from sim.vectors import tile_jobs
from tests.hls_gen.harness import mismatches, operand_codes


def tiles(manifest: dict, a: np.ndarray, b: np.ndarray) -> list[tuple[tuple[int, int, int], np.ndarray, np.ndarray]]:
    """Jobs in the documented order (b, row tile, column tile) of rows x interleave rows; codes padded with zeros."""
    config = manifest["config"]
    return tile_jobs(a, b, config["rows"] * config["interleave"], config["cols"])


def signals(dut: MACArray) -> dict[str, Value]:
    """The Amaranth value behind each of the array's Verilog ports, by the name the manifest gives it."""
    return {verilog_name(*path): Value.cast(value) for path, _, value in dut.signature.flatten(dut)}


def input_beats(design: ArrayManifest, jobs: list, k_dim: int) -> list[tuple[int, int]]:
    """Each input beat's payload, packed by the manifest's fields, and its ``last``; (step t, sum l) order."""
    payload, pe_rows, sums = design.stream("input").payload, design.rows, design.interleave
    beats = []
    for _, at, bt in jobs:
        for t in range(k_dim):
            last = int(t == k_dim - 1)
            for sl in range(sums):
                beats.append(
                    (payload.pack_fields(a=at[sl * pe_rows : (sl + 1) * pe_rows, t], b=bt[t], last=last), last)
                )
    return beats


def run_array(
    dut: MACArray,
    manifest: dict,
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    *,
    in_rate: float,
    out_rate: float,
    hold: int = 1,
) -> tuple[np.ndarray, list[int]]:
    """Stream every job through ``dut`` using only the manifest's port description; returns C codes and latencies.

    The source offers a beat, and the sink is ready, with probabilities ``in_rate`` and ``out_rate``, each drawn
    anew every ``hold`` cycles (long runs of gaps and of back-pressure for ``hold > 1``).
    """
    design = ArrayManifest.from_json(manifest)  # the JSON, read as sim reads it
    source, sink = design.stream("input"), design.stream("output")
    cols, sums, rows = design.cols, design.interleave, design.tile_rows
    jobs = tiles(manifest, a, b)
    beats = input_beats(design, jobs, a.shape[2])
    rows_out: list[int] = []  # output payloads
    last_accepted: list[int] = []
    first_valid: list[int] = []
    sig = signals(dut)

    async def bench(ctx) -> None:
        cycle, beat, was_valid, source_on, ready = 0, 0, False, False, 0
        while len(rows_out) < len(jobs) * rows:
            if beat < len(beats) and cycle % hold == 0:
                source_on = rng.random() < in_rate
            offer = beat < len(beats) and source_on
            if offer:
                ctx.set(sig[source.payload.name], beats[beat][0])
            ctx.set(sig[source.valid.name], int(offer))
            if cycle % hold == 0:
                ready = int(rng.random() < out_rate)
            ctx.set(sig[sink.ready.name], ready)
            if offer and ctx.get(sig[source.ready.name]):
                if beats[beat][1] and beat % sums == sums - 1:  # the job's final beat
                    last_accepted.append(cycle)
                beat += 1
            valid = bool(ctx.get(sig[sink.valid.name]))
            if valid and not was_valid:
                first_valid.append(cycle)
            if valid and ready:
                rows_out.append(ctx.get(sig[sink.payload.name]))
                was_valid = not sink.payload.read(rows_out[-1], "last")
            else:
                was_valid = valid
            await ctx.tick()
            cycle += 1
            assert cycle < 100 * hold * len(beats) + 1000, "the array stopped"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    batch, m, _ = a.shape
    n = b.shape[2]
    out = np.zeros((batch, m, n), np.int64)
    for index, ((z, ti, tj), _, _) in enumerate(jobs):
        for r in range(rows):
            word = rows_out[index * rows + r]
            assert (sink.payload.read(word, "row"), sink.payload.read(word, "last")) == (r, int(r == rows - 1))
            data = sink.payload.read_array(word, "data")
            for c in range(cols):
                i, j = ti * rows + r, tj * cols + c
                if i < m and j < n:
                    out[z, i, j] = data[c]
    return out, [f - l for l, f in zip(last_accepted, first_valid)]


def reference(manifest: dict, a_codes: np.ndarray, b_codes: np.ndarray) -> np.ndarray:
    """mpsim.qmatmul with the manifest's formats, roundings and random stream."""
    (mode,) = manifest["modes"]
    fmt = {k: None if v is None else mpsim.parse_format(v["name"]) for k, v in mode["formats"].items()}
    arith = mode["arithmetic"]
    lfsr = manifest["random"]["lfsr"]
    grid = LFSRGrid(
        lfsr["width"],
        lfsr["seed"],
        tuple(lfsr["taps"]),
        rows=manifest["config"]["rows"],
        cols=manifest["config"]["cols"],
        interleave=manifest["config"]["interleave"],
    )
    assert grid.seeds.tolist() == manifest["random"]["pe_seeds"]
    return mpsim.qmatmul(
        mpsim.decode(fmt["a"], a_codes),
        mpsim.decode(fmt["b"], b_codes),
        mul=fmt["product"],
        acc=fmt["acc"],
        rounding=arith["accumulator_rounding"],
        mul_rounding=arith["product_rounding"] or "nearest",
        order=arith["order"],
        seed=grid,
    )


ARRAYS = {
    "4x4-e4m3-e5m6-sr8": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8", rows=4, cols=4),
        (2, 7, 6, 6),
        0.9,
        0.7,
    ),
    "2x3-unfused-e4m3xe5m2-pe5m6sr4-fp16sr8-pl2": (
        ArrayConfig(
            a_format="e4m3",
            b_format="e5m2",
            acc_format="fp16",
            product_format="e5m6",
            rounding="stochastic:8",
            product_rounding="stochastic:4",
            rows=2,
            cols=3,
            pipeline=2,
            lfsr_width=20,
            lfsr_seed=99,
        ),
        (1, 5, 7, 5),
        0.8,
        0.8,
    ),
    "1x1-e4m3-fp16-rne-pl0": (ArrayConfig(a_format="e4m3", acc_format="fp16", pipeline=0), (3, 2, 9, 2), 1.0, 1.0),
    "3x2-e5m2-bf16-rne-backpressure": (
        ArrayConfig(a_format="e5m2", acc_format="bf16", rows=3, cols=2),
        (1, 6, 2, 4),
        1.0,
        0.15,
    ),
    "2x2-e4m3-fp16-sr8-il8": (
        ArrayConfig(a_format="e4m3", acc_format="fp16", rounding="stochastic:8", rows=2, cols=2, interleave=8),
        (2, 19, 5, 3),
        0.85,
        0.7,
    ),
    "3x2-unfused-e4m3xe5m2-pe5m6sr3-e6m9sr6-il3-pl2": (
        ArrayConfig(
            a_format="e4m3",
            b_format="e5m2",
            acc_format="e6m9",
            product_format="e5m6",
            rounding="stochastic:6",
            product_rounding="stochastic:3",
            rows=3,
            cols=2,
            pipeline=2,
            interleave=3,
        ),
        (1, 10, 4, 3),
        0.7,
        0.5,
    ),
    # five PE rows: the buffer's shift crosses three registers (hls_gen.array.SHIFT_STAGES) and lands just before
    # the row's next read
    "5x2-e4m3-e6m9-sr6-il3-backpressure": (
        ArrayConfig(a_format="e4m3", acc_format="e6m9", rounding="stochastic:6", rows=5, cols=2, interleave=3),
        (2, 17, 4, 3),
        0.9,
        0.35,
    ),
    "4x1-e4m3-fp16-rne-il2-full-rate": (
        ArrayConfig(a_format="e4m3", acc_format="fp16", rows=4, cols=1, interleave=2, pipeline=1),
        (2, 11, 3, 2),
        1.0,
        1.0,
    ),
    "1x1-e5m2-bf16-rne-il5-backpressure": (
        ArrayConfig(a_format="e5m2", acc_format="bf16", interleave=5),
        (2, 7, 6, 1),
        1.0,
        0.2,
    ),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_array_matches_qmatmul(name: str) -> None:
    config, (batch, m, k_dim, n), in_rate, out_rate = ARRAYS[name]
    dut = config.build()
    manifest = config.manifest("dut", dut).to_json()
    rng = np.random.default_rng(len(name))
    a = operand_codes(rng, dut.pe.a_format, (batch, m, k_dim), special_rate=0.005)
    b = operand_codes(rng, dut.pe.b_format, (batch, k_dim, n), special_rate=0.005)
    got, _ = run_array(dut, manifest, a, b, rng, in_rate=in_rate, out_rate=out_rate)
    want = reference(manifest, a, b)
    assert not (report := mismatches(got.reshape(-1), want.reshape(-1), dut.pe.acc_format, name)), report


# Non-square arrays and single rows/columns (a skew that confuses rows with columns, or drops a register,
# pairs the wrong operands or beats), interleaves 1, 3 and 8, jobs of one step (the next job's first beat rides
# on the flush of a job that finished the cycle before), gaps and long runs without out.ready (finished tiles
# wait in the PEs while the next job is offered).
SCHEDULES = {
    "2x3-e4m3-e5m6-sr8-il1-gaps": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8", rows=2, cols=3),
        (2, 5, 6, 7),
        0.6,
        0.8,
        1,
    ),
    "3x1-e5m2-fp16-rne-il3-pl0-out-held": (
        ArrayConfig(a_format="e5m2", acc_format="fp16", rows=3, cols=1, pipeline=0, interleave=3),
        (1, 10, 4, 3),
        1.0,
        0.4,
        30,
    ),
    "1x4-e4m3-bf16-sr4-il8-k1": (
        ArrayConfig(a_format="e4m3", acc_format="bf16", rounding="stochastic:4", rows=1, cols=4, interleave=8),
        (2, 9, 1, 7),
        0.9,
        0.6,
        5,
    ),
    "3x2-unfused-e4m3xe5m2-pe5m6sr3-e6m9sr6-il8-pl2-held": (
        ArrayConfig(
            a_format="e4m3",
            b_format="e5m2",
            acc_format="e6m9",
            product_format="e5m6",
            rounding="stochastic:6",
            product_rounding="stochastic:3",
            rows=3,
            cols=2,
            pipeline=2,
            interleave=8,
        ),
        (1, 30, 5, 4),
        0.5,
        0.5,
        20,
    ),
    "2x3-e4m3-e5m6-rne-il3-k2-back-to-back": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rows=2, cols=3, interleave=3),
        (3, 6, 2, 6),
        1.0,
        1.0,
        1,
    ),
    "4x1-e4m3-e5m6-sr8-il1-k1-out-held": (
        ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8", rows=4, cols=1, pipeline=2),
        (2, 8, 1, 3),
        0.8,
        0.3,
        12,
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_systolic_schedule_matches_qmatmul(name: str) -> None:
    config, (batch, m, k_dim, n), in_rate, out_rate, hold = SCHEDULES[name]
    dut = config.build()
    manifest = config.manifest("dut", dut).to_json()
    rng = np.random.default_rng(len(name))
    a = operand_codes(rng, dut.pe.a_format, (batch, m, k_dim), special_rate=0.005)
    b = operand_codes(rng, dut.pe.b_format, (batch, k_dim, n), special_rate=0.005)
    got, _ = run_array(dut, manifest, a, b, rng, in_rate=in_rate, out_rate=out_rate, hold=hold)
    want = reference(manifest, a, b)
    assert not (report := mismatches(got.reshape(-1), want.reshape(-1), dut.pe.acc_format, name)), report


@pytest.mark.parametrize(
    ("rows", "cols", "pipeline", "interleave"),
    [(2, 2, 0, 1), (2, 2, 1, 1), (2, 3, 2, 1), (3, 1, 1, 4), (1, 4, 2, 8), (2, 2, 1, 10)],
)
def test_latency_is_the_manifests(rows: int, cols: int, pipeline: int, interleave: int) -> None:
    config = ArrayConfig(
        a_format="e4m3",
        acc_format="e5m6",
        rounding="stochastic:4",
        rows=rows,
        cols=cols,
        pipeline=pipeline,
        interleave=interleave,
    )
    dut = config.build()
    manifest = config.manifest("dut", dut).to_json()
    rng = np.random.default_rng(0)
    a = operand_codes(rng, dut.pe.a_format, (1, rows * interleave, 3))
    b = operand_codes(rng, dut.pe.b_format, (1, 3, cols))
    got, latencies = run_array(dut, manifest, a, b, rng, in_rate=1.0, out_rate=1.0)
    # after the job's last beat: one flush step per sum (interleave cycles), the last of which crosses the skew
    # (rows - 1 + cols - 1 PEs), the PE's pipeline registers and its BUFFER_STAGES load registers, and lands in the
    # buffer a cycle later
    want = interleave + (rows - 1) + (cols - 1) + pipeline + BUFFER_STAGES + 1
    assert latencies[0] == manifest["latency"]["last_beat_to_out_valid"] == want
    assert not mismatches(got.reshape(-1), reference(manifest, a, b).reshape(-1), dut.pe.acc_format)


@pytest.mark.parametrize(("rows", "cols", "interleave"), [(2, 1, 2), (3, 2, 4)])
def test_each_buffer_slot_has_a_kept_enable_of_its_own(rows: int, cols: int, interleave: int) -> None:
    """With PE rows and several sums, no register drives a whole PE's buffer chain: slot ``l`` of PE ``(r, c)``
    loads only under ``buffer_enable_{r}_{c}_{l}``, a kept register (nextpnr stretches a chain from its PE to the
    output multiplexer; one enable per chain crossed the device on the 8 x 8 arrays)."""
    from amaranth.back import verilog

    config = ArrayConfig(a_format="e4m3", acc_format="fp16", rows=rows, cols=cols, pipeline=1, interleave=interleave)
    text = verilog.convert(config.build(), name="top", emit_src=False)
    kept = set(re.findall(r"\(\* keep = 32'd1 \*\)\s*reg (?:\[\d+:0\] )?(buffer_enable_\d+_\d+_\d+)\b", text))
    slots = [(r, c, l) for r in range(rows) for c in range(cols) for l in range(interleave)]
    assert kept == {f"buffer_enable_{r}_{c}_{l}" for r, c, l in slots}
    # Yosys writes each register's next value as an always @* block: a default (the register itself), then its
    # enable's branch
    blocks = [b.split("end\n  end")[0] for b in text.split("always @*")]
    defaults = [first[1] if (first := re.search(r"=\s+(\w+);", b)) else None for b in blocks]
    for r, c, l in slots:
        own = [b for b, default in zip(blocks, defaults) if default == f"buffer_{r}_{c}_{l}"]
        assert len(own) == 1, (r, c, l)
        guards = set(re.findall(r"if \((\w+)\) begin", own[0])) - {"rst"}
        assert guards == {f"buffer_enable_{r}_{c}_{l}"}, (r, c, l, guards)


def test_properties() -> None:
    dut = described(MACArray(a_format="e4m3", b_format="e5m2", acc_format="e6m9", rows=3, cols=5, lfsr_seed=7))
    assert (dut.rows, dut.cols) == (3, 5)
    assert dut.inp.payload.shape() == StructLayout({"a": ArrayLayout(8, 3), "b": ArrayLayout(8, 5), "last": 1})
    assert dut.out.payload.shape() == StructLayout({"data": ArrayLayout(16, 5), "row": range(3), "last": 1})
    assert dut.inp.payload.shape() == input_layout(rows=3, cols=5, a_bits=8, b_bits=8)
    assert dut.out.payload.shape() == output_layout(cols=5, tile_rows=3, acc_bits=16)
    assert dut.pe_seeds == LFSRGrid(32, 7, rows=3, cols=5).seeds.tolist()
    assert dut.latency == dut.pe.pipeline + dut.interleave + 3 + 5 - 1 + BUFFER_STAGES
    single = described(MACArray(a_format="e4m3", b_format="e4m3", acc_format="e5m6", rows=1, cols=1))
    assert len(single.out.payload.row) == 1


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(rows=0), ValueError, "MAC array rows must be 1..64, not 0"),
        (dict(cols=65), ValueError, "MAC array columns must be 1..64, not 65"),
        (dict(rows=2.0), TypeError, "MAC array rows must be an integer, not 2.0"),
        (dict(acc_format="fp64"), ValueError, "unknown format 'fp64'.*"),
        (
            dict(rounding="stochastic:8", lfsr_width=4, rows=4, cols=4),
            ValueError,
            "accumulator rounding takes 8 random bits, more than the 4-bit LFSR holds",
        ),
        (
            dict(lfsr_width=3, rows=4, cols=2),
            ValueError,
            "an LFSRGrid of 4x2 PEs needs more than 7 LFSR states; use a wider LFSR",
        ),
    ],
)
def test_unbuildable_configurations(kwargs: dict, error: type, message: str) -> None:
    args = dict(a_format="e4m3", b_format="e4m3", acc_format="e5m6") | kwargs
    pattern = message if message.endswith(".*") else re.escape(message)
    with pytest.raises(error, match=f"^{pattern}$"):
        MACArray(**args)
