"""cocotb bench for a MAC array (a MAC unit is the 1x1 array): streams jobs, checks every tile in order.

Driver and monitor share one loop that wakes on each falling clock edge:
the array's ``in_ready``, ``out_valid``, ``out_row``, ``out_last`` and
``out_data`` depend on registers only (the manifest's protocol), so their
mid-cycle values are the ones the next rising edge acts on, and one
trigger per cycle both samples and drives (cocotb's cost is per trigger).
"""

from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from sim.exchange import SHOWN_MISMATCHES, BenchRequest, BenchResult, mismatch_record
from sim.manifest import ArrayDesign, read_manifest
from sim.vectors import ArrayVectors, array_vectors, same_codes


def _codes(codes: np.ndarray) -> str:
    """The first eight codes in hex, "..." after them if there are more."""
    return " ".join(f"{int(x):#x}" for x in codes[:8]) + (" ..." if codes.size > 8 else "")


def _check(design: ArrayDesign, vectors: ArrayVectors, got: np.ndarray, result: BenchResult) -> None:
    """Compare every real (not padding) element with mpsim's; describe the first mismatches."""
    ok = vectors.valid.copy()
    for j, job in enumerate(vectors.jobs):
        acc = design.modes[job.mode].acc_format
        ok[j] = same_codes(got[j], vectors.want[j], acc)
    ok |= ~vectors.valid
    bad = np.argwhere(~ok)
    result.mismatch_count = len(bad)
    order = np.cumsum(vectors.valid.reshape(-1)).reshape(vectors.valid.shape) - 1  # index among checked elements
    for j, r, c in bad[:SHOWN_MISMATCHES]:
        job = vectors.jobs[j]
        i_row, j_col = job.row_tile * design.tile_rows + r, job.col_tile * design.cols + c
        a_row = vectors.a_codes[job.product][job.batch, i_row]
        b_col = vectors.b_codes[job.product][job.batch, :, j_col]
        inputs = {"A row": _codes(a_row), "B column": _codes(b_col)}
        pe = f"PE {r % design.rows},{c}" + (f", sum {r // design.rows}" if design.interleave > 1 else "")
        mode = f", mode {job.mode}" if len(design.modes) > 1 else ""
        where = f"job {j}: product {job.product}, batch {job.batch}, C[{i_row},{j_col}] ({pe}), K={job.k}{mode}"
        acc = design.modes[job.mode].acc_format
        result.mismatches.append(
            mismatch_record(
                int(order[j, r, c]),
                where,
                acc,
                acc.bits,
                int(got[j, r, c]),
                int(vectors.want[j, r, c]),
                inputs,
            )
        )


@cocotb.test()
async def array_matches_mpsim(dut) -> None:
    """Every element of every tile equals mpsim.qmatmul's, LFSR stream included; no hang, right row order."""
    request = BenchRequest.from_env()
    design = read_manifest(request.manifest, "array")
    assert isinstance(design, ArrayDesign)
    stim = request.stimulus
    vectors = array_vectors(design, stim)
    rows, beats = design.tile_rows, len(vectors.in_a)
    expected_rows = len(vectors.jobs) * rows
    pressure = random.Random(stim.seed)  # back-pressure pattern: seeded, independent of the data
    bp = stim.backpressure
    # No progress (no beat in, no row out) for this long means the design hangs.
    stall_limit = 64 + 8 * design.latency + 4 * rows + (int(40 / (1 - bp)) if bp else 0)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_last.value = 0
    dut.in_a.value = 0
    dut.in_b.value = 0
    if design.mode_bits:
        dut.in_mode.value = 0
    dut.out_ready.value = 0
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    fall = FallingEdge(dut.clk)
    out: list[tuple[int, int, int, int]] = []
    result = BenchResult(checked=vectors.checked, macs=vectors.macs)
    result.mode_results = [
        int(sum(vectors.valid[j].sum() for j, job in enumerate(vectors.jobs) if job.mode == code))
        for code in range(len(design.modes))
    ]
    result.mode_switches = sum(a.mode != b.mode for a, b in zip(vectors.jobs, vectors.jobs[1:]))
    beat, cycle, idle = 0, 0, 0
    last_in_cycle, first_out_cycle = None, None
    valid_now, ready_now = 0, 0
    start = time.perf_counter()
    while len(out) < expected_rows:
        in_ready = int(dut.in_ready.value)
        out_valid = int(dut.out_valid.value)
        offer = int(beat < beats and (not bp or pressure.random() >= bp))
        take = int(not bp or pressure.random() >= bp)
        if offer:
            dut.in_a.value = vectors.in_a[beat]
            dut.in_b.value = vectors.in_b[beat]
            dut.in_last.value = vectors.in_last[beat]
            if design.mode_bits:
                dut.in_mode.value = vectors.in_mode[beat]
        if offer != valid_now:
            dut.in_valid.value = valid_now = offer
        if take != ready_now:
            dut.out_ready.value = ready_now = take
        progress = False
        if out_valid and first_out_cycle is None:
            first_out_cycle = cycle
        if out_valid and take:
            out_mode = int(dut.out_mode.value) if design.mode_bits else 0
            out.append((int(dut.out_row.value), int(dut.out_data.value), int(dut.out_last.value), out_mode))
            progress = True
        if offer and in_ready:
            if beat == vectors.jobs[0].k * design.interleave - 1:  # the first job's final beat
                last_in_cycle = cycle
            beat += 1
            progress = True
        idle = 0 if progress else idle + 1
        if idle > stall_limit:
            result.timeout = (
                f"no progress for {idle} cycles at cycle {cycle}: {beat} of {beats} input beats taken, "
                f"{len(out)} of {expected_rows} output rows received (in_ready={in_ready}, out_valid={out_valid})"
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
                f"first tile: out_valid {result.latency} cycles after its last beat, manifest says {design.latency}"
            )

    width = design.ports["out_data"].element_width
    mask = (1 << width) - 1
    got = np.zeros(vectors.want.shape, dtype=np.int64)
    for n, (row, data, last, out_mode) in enumerate(out):
        j, r = divmod(n, rows)
        expected = (r, int(r == rows - 1), vectors.jobs[j].mode)
        if (row, last, out_mode) != expected and len(result.protocol_errors) < SHOWN_MISMATCHES:
            result.protocol_errors.append(
                f"output beat {n} (job {j}): out_row={row}, out_last={last}, out_mode={out_mode}; "
                f"expected row {r}, last={expected[1]}, mode {expected[2]}"
            )
        got[j, r] = [(data >> (c * width)) & mask for c in range(design.cols)]
    if result.timeout is None:
        _check(design, vectors, got, result)
    result.write(request.result)
    assert result.timeout is None, result.timeout
    assert not result.protocol_errors, "; ".join(result.protocol_errors)
    assert result.passed, f"{result.mismatch_count} of {result.checked} results differ from mpsim"
