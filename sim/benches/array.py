"""cocotb bench for a MAC array (a MAC unit is the 1x1 array): streams jobs, checks every tile in order.

The array has two streams (the manifest's ``streams``): beats go in as
input payloads packed by the manifest's fields (:mod:`sim.vectors`), rows
come out as output payloads read back by field name. Driver and monitor
share one loop that wakes on each falling clock edge: the input's ready and
the output's valid and payload depend on registers only (the manifest's
protocol), so their mid-cycle values are the ones the next rising edge acts
on, and one trigger per cycle both samples and drives (cocotb's cost is per
trigger).
"""

from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from sim.array_check import check_tiles, mode_counts
from sim.exchange import SHOWN_MISMATCHES, BenchRequest, BenchResult
from sim.manifest import ArrayDesign, read_manifest
from sim.vectors import array_vectors


@cocotb.test()
async def array_matches_mpsim(dut) -> None:
    """Every element of every tile equals mpsim.qmatmul's, LFSR stream included; no hang, right row order."""
    request = BenchRequest.from_env()
    design = read_manifest(request.manifest, "array")
    assert isinstance(design, ArrayDesign)
    stim = request.stimulus
    vectors = array_vectors(design, stim)
    rows, beats = design.tile_rows, len(vectors.beats)
    source, sink = design.stream("input"), design.stream("output")  # the array's ports, named by the manifest
    in_valid, in_ready, in_payload = (getattr(dut, p.name) for p in (source.valid, source.ready, source.payload))
    out_valid, out_ready, out_payload = (getattr(dut, p.name) for p in (sink.valid, sink.ready, sink.payload))
    expected_rows = len(vectors.jobs) * rows
    pressure = random.Random(stim.seed)  # back-pressure pattern: seeded, independent of the data
    bp = stim.backpressure
    # No progress (no beat in, no row out) for this long means the design hangs.
    stall_limit = 64 + 8 * design.latency + 4 * rows + (int(40 / (1 - bp)) if bp else 0)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    in_valid.value = 0
    in_payload.value = 0
    out_ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    fall = FallingEdge(dut.clk)
    out: list[int] = []  # output payloads
    result = BenchResult(checked=vectors.checked, macs=vectors.macs)
    mode_counts(design, vectors, result)
    beat, cycle, idle = 0, 0, 0
    last_in_cycle, first_out_cycle = None, None
    valid_now, ready_now = 0, 0
    start = time.perf_counter()
    while len(out) < expected_rows:
        taking = int(in_ready.value)  # the array takes an offered beat this cycle
        giving = int(out_valid.value)  # the array offers a row this cycle
        offer = int(beat < beats and (not bp or pressure.random() >= bp))
        take = int(not bp or pressure.random() >= bp)
        if offer:
            in_payload.value = vectors.beats[beat]
        if offer != valid_now:
            in_valid.value = valid_now = offer
        if take != ready_now:
            out_ready.value = ready_now = take
        progress = False
        if giving and first_out_cycle is None:
            first_out_cycle = cycle
        if giving and take:
            out.append(int(out_payload.value))
            progress = True
        if offer and taking:
            if beat == vectors.jobs[0].k * design.interleave - 1:  # the first job's final beat
                last_in_cycle = cycle
            beat += 1
            progress = True
        idle = 0 if progress else idle + 1
        if idle > stall_limit:
            result.timeout = (
                f"no progress for {idle} cycles at cycle {cycle}: {beat} of {beats} input beats taken, "
                f"{len(out)} of {expected_rows} output rows received ({source.ready.name}={taking}, "
                f"{sink.valid.name}={giving})"
            )
            break
        await fall
        cycle += 1
    result.cycles = cycle
    result.sim_wall_s = time.perf_counter() - start
    if last_in_cycle is not None and first_out_cycle is not None:
        result.latency = first_out_cycle - last_in_cycle
        if result.latency != design.latency:
            result.protocol_errors.append(
                f"first tile: {sink.valid.name} {result.latency} cycles after its last beat, manifest says "
                f"{design.latency}"
            )

    payload = sink.payload
    got = np.zeros(vectors.want.shape, dtype=np.int64)
    for n, word in enumerate(out):
        j, r = divmod(n, rows)
        row, last = payload.read(word, "row"), payload.read(word, "last")
        out_mode = payload.read(word, "mode") if design.mode_bits else 0
        expected = (r, int(r == rows - 1), vectors.jobs[j].mode)
        if (row, last, out_mode) != expected and len(result.protocol_errors) < SHOWN_MISMATCHES:
            result.protocol_errors.append(
                f"output beat {n} (job {j}): row={row}, last={last}, mode={out_mode}; "
                f"expected row {r}, last={expected[1]}, mode {expected[2]}"
            )
        got[j, r] = payload.read_array(word, "data")
    if result.timeout is None:
        check_tiles(design, vectors, got, result)
    result.write(request.result)
    assert result.timeout is None, result.timeout
    assert not result.protocol_errors, "; ".join(result.protocol_errors)
    assert result.passed, f"{result.mismatch_count} of {result.checked} results differ from mpsim"
