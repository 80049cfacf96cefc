"""Check an array's output tiles against mpsim's: shared by the cocotb bench and the fast RTL executor."""

from __future__ import annotations

import numpy as np

from sim.exchange import SHOWN_MISMATCHES, BenchResult, mismatch_record
from sim.manifest import ArrayDesign
from sim.vectors import ArrayVectors, same_codes

__all__ = ["check_tiles", "mode_counts"]


def _codes(codes: np.ndarray) -> str:
    """The first eight codes in hex, "..." after them if there are more."""
    return " ".join(f"{int(x):#x}" for x in codes[:8]) + (" ..." if codes.size > 8 else "")


def mode_counts(design: ArrayDesign, vectors: ArrayVectors, result: BenchResult) -> None:
    """Fill ``result``'s checked results per mode and its count of back-to-back mode switches."""
    modes = np.array([job.mode for job in vectors.jobs])
    per_job = vectors.valid.reshape(len(vectors.jobs), -1).sum(axis=1)
    result.mode_results = [int(per_job[modes == code].sum()) for code in range(len(design.modes))]
    result.mode_switches = int((modes[1:] != modes[:-1]).sum())


def check_tiles(design: ArrayDesign, vectors: ArrayVectors, got: np.ndarray, result: BenchResult) -> None:
    """Compare every real (not padding) element of ``got`` with mpsim's; count and describe the first mismatches."""
    ok = np.ones(vectors.want.shape, bool)
    modes = np.array([job.mode for job in vectors.jobs])
    for code, mode in enumerate(design.modes):  # one comparison per mode: its accumulator format
        jobs = modes == code
        ok[jobs] = same_codes(got[jobs], vectors.want[jobs], mode.acc_format)
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
                int(order[j, r, c]), where, acc, acc.bits, int(got[j, r, c]), int(vectors.want[j, r, c]), inputs
            )
        )
