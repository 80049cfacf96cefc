"""Jobs to the executor's input words and its output words back to tiles, in NumPy; one checked run of vectors.

:func:`pack_jobs` lays operand tiles out as the array's beats (the order of
:func:`sim.vectors.tile_jobs` and ``docs/hardware.md``: job by job, step
``t`` once per sum ``l``, ``A`` rows ``l*R .. (l+1)*R - 1``), the form a
GEMM backend tiles onto the array; :func:`unpack_tiles` reads the
``(jobs, rows, cols)`` accumulator codes back, checking each beat's
``row``, ``last`` and ``mode``. :func:`run_vectors` runs a whole
:class:`~sim.vectors.ArrayVectors` and checks it against mpsim's tiles,
filling the same :class:`~sim.exchange.BenchResult` the cocotb bench does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.array_check import check_tiles, mode_counts
from sim.exchange import SHOWN_MISMATCHES, BenchResult
from sim.manifest import ArrayDesign
from sim.rtl_exec import ExecHang, ExecResult, RtlExecutor
from sim.vectors import ArrayVectors

__all__ = [
    "VectorsRun",
    "check_run",
    "first_job_mark",
    "pack_jobs",
    "run_vectors",
    "unpack_tiles",
    "vectors_beats",
    "words_of",
]


def pack_jobs(
    design: ArrayDesign,
    a_tiles: Sequence[np.ndarray],
    b_tiles: Sequence[np.ndarray],
    modes: Sequence[int] = (),
    scales: Sequence[tuple[np.ndarray, np.ndarray]] = (),
) -> np.ndarray:
    """The input beats of jobs ``(a_tiles[j] @ b_tiles[j])`` as ``(beats, words)`` uint32 payloads.

    ``a_tiles[j]`` is ``tile_rows x K`` and ``b_tiles[j]`` ``K x cols``
    operand codes (partial tiles padded with zero codes, as
    :func:`sim.vectors.tile_jobs` pads them); ``modes[j]`` is job ``j``'s
    mode code (default 0; only a multi-mode array takes one). An MX array's
    jobs need ``scales[j]``: the E8M0 scale codes of A's blocks
    (``tile_rows x ceil(K / block_size)``) and of B's (``ceil(K /
    block_size) x cols``); beat ``t`` carries those of block ``t //
    block_size``.
    """
    rows, cols, sums = design.rows, design.cols, design.interleave
    if len(a_tiles) != len(b_tiles) or (modes and len(modes) != len(a_tiles)):
        raise ValueError(f"jobs need one A tile, B tile (and mode) each, not {len(a_tiles)}, {len(b_tiles)}, "
                         f"{len(modes)}")  # fmt: skip
    mx = design.modes[0].mx
    if (mx is not None) != bool(scales) or (scales and len(scales) != len(a_tiles)):
        raise ValueError(
            f"{design.top}: an MX array's jobs need one pair of scale tiles each, an element-wise array's none; "
            f"not {len(scales)} for {len(a_tiles)} jobs"
        )
    a_parts, b_parts, last_parts, mode_parts, sa_parts, sb_parts = [], [], [], [], [], []
    for j, (at, bt) in enumerate(zip(a_tiles, b_tiles)):
        k = at.shape[1] if at.ndim == 2 else 0
        if at.shape != (rows * sums, k) or bt.shape != (k, cols) or k < 1:
            raise ValueError(
                f"job {j}: tiles must be {rows * sums} x K and K x {cols} with K >= 1, not {at.shape} and {bt.shape}"
            )
        # beat t*L + l: column t of sum l's rows of A, row t of B
        a_parts.append(at.reshape(sums, rows, k).transpose(2, 0, 1).reshape(k * sums, rows))
        b_parts.append(np.repeat(bt, sums, axis=0))
        last = np.zeros(k * sums, np.int64)
        last[-sums:] = 1
        last_parts.append(last)
        mode_parts.append(np.full(k * sums, modes[j] if modes else 0, np.int64))
        if mx is not None:  # step t's block scales, once per sum l as its operands
            block = np.arange(k) // mx[0].block_size
            sa, sb = scales[j][0][:, block], scales[j][1][block, :]
            sa_parts.append(sa.reshape(sums, rows, k).transpose(2, 0, 1).reshape(k * sums, rows))
            sb_parts.append(np.repeat(sb, sums, axis=0))
    payload = design.stream("input").payload
    count = sum(len(x) for x in last_parts)
    fields = {"a": np.concatenate(a_parts), "b": np.concatenate(b_parts), "last": np.concatenate(last_parts)}
    if mx is not None:
        fields.update(a_scale=np.concatenate(sa_parts), b_scale=np.concatenate(sb_parts))
    if design.mode_bits:
        fields["mode"] = np.concatenate(mode_parts)
    elif any(modes):
        raise ValueError(f"{design.top} has one mode (code 0), not codes {sorted(set(modes))}")
    return payload.pack_words(count, **fields)


def vectors_beats(design: ArrayDesign, vectors: ArrayVectors) -> np.ndarray:
    """``vectors``' input beats as ``(beats, words)`` uint32, packed in NumPy from its operands and jobs.

    An MX array's beats carry block scales beside the operands: they are taken as :func:`sim.vectors.array_vectors`
    packed them (``pack=True``).
    """
    if design.modes[0].mx is not None:
        if not vectors.beats:
            raise ValueError("an MX array's beats carry block scales: make its vectors with array_vectors(pack=True)")
        return words_of(vectors.beats, design.stream("input").payload.words)
    R, C = design.tile_rows, design.cols
    a_tiles, b_tiles = [], []
    for job in vectors.jobs:
        a = vectors.a_codes[job.product][job.batch, job.row_tile * R : (job.row_tile + 1) * R]
        b = vectors.b_codes[job.product][job.batch, :, job.col_tile * C : (job.col_tile + 1) * C]
        at = np.zeros((R, job.k), np.int64)
        bt = np.zeros((job.k, C), np.int64)
        at[: a.shape[0]] = a
        bt[:, : b.shape[1]] = b
        a_tiles.append(at)
        b_tiles.append(bt)
    return pack_jobs(design, a_tiles, b_tiles, [job.mode for job in vectors.jobs])


def words_of(values: Sequence[int], words: int) -> np.ndarray:
    """Port values as Python ints (``ArrayVectors.beats``) to ``(n, words)`` uint32, word 0 the low bits."""
    data = b"".join(int(v).to_bytes(4 * words, "little") for v in values)
    return np.frombuffer(data, dtype="<u4").reshape(len(values), words).astype(np.uint32)


def unpack_tiles(design: ArrayDesign, outputs: np.ndarray, modes: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """``(jobs, tile_rows, cols)`` accumulator codes from the output beats, and the beats' protocol errors.

    Job ``j``'s ``tile_rows`` beats must carry ``row`` = 0, 1, ..., ``last``
    on the final one and ``mode`` = ``modes[j]``; the first few that do
    not are described (as the cocotb bench describes them).
    """
    rows, jobs = design.tile_rows, len(modes)
    if outputs.shape[0] != jobs * rows:
        raise ValueError(f"{jobs} jobs leave {jobs * rows} output beats, not {outputs.shape[0]}")
    payload = design.stream("output").payload
    got = payload.read_array_words(outputs, "data").reshape(jobs, rows, design.cols)
    want_row = np.tile(np.arange(rows), jobs)
    row, last = payload.read_words(outputs, "row"), payload.read_words(outputs, "last")
    mode = payload.read_words(outputs, "mode") if design.mode_bits else np.zeros(len(outputs), np.int64)
    want_mode = np.repeat(np.asarray(modes, np.int64), rows)
    want_last = (want_row == rows - 1).astype(np.int64)
    errors = []
    for n in np.flatnonzero((row != want_row) | (last != want_last) | (mode != want_mode))[:SHOWN_MISMATCHES]:
        errors.append(
            f"output beat {n} (job {n // rows}): row={row[n]}, last={last[n]}, mode={mode[n]}; "
            f"expected row {want_row[n]}, last={want_last[n]}, mode {want_mode[n]}"
        )
    return got, errors


@dataclass(frozen=True)
class VectorsRun:
    """A checked run: the bench-shaped result, the executor's, the tiles, and the time of each part (s)."""

    result: BenchResult
    run: ExecResult | None
    got: np.ndarray | None
    pack_s: float
    check_s: float

    @property
    def seconds(self) -> float:
        """Packing, simulation and checking: what a checked MAC costs once mpsim's tiles exist."""
        return self.pack_s + (self.run.seconds if self.run else 0.0) + self.check_s

    @property
    def macs_per_s(self) -> float:
        """Checked MACs per second of :attr:`seconds`."""
        return self.result.macs / self.seconds if self.seconds > 0 else 0.0


def check_run(design: ArrayDesign, vectors: ArrayVectors, run: ExecResult) -> tuple[BenchResult, np.ndarray]:
    """The bench-shaped verdict on a run of ``vectors`` (from reset), and the tiles it returned."""
    result = BenchResult(checked=vectors.checked, macs=vectors.macs)
    mode_counts(design, vectors, result)
    result.cycles, result.sim_wall_s, result.latency = run.cycles, run.seconds, run.latency
    got, result.protocol_errors = unpack_tiles(design, run.outputs, [job.mode for job in vectors.jobs])
    if run.latency is not None and run.latency != design.latency:
        result.protocol_errors.append(
            f"first tile: output valid {run.latency} cycles after its last beat, manifest says {design.latency}"
        )
    check_tiles(design, vectors, got, result)
    return result, got


def first_job_mark(design: ArrayDesign, vectors: ArrayVectors) -> int:
    """The input beat that ends the first job: its tile's output valid follows it by the manifest's latency."""
    return vectors.jobs[0].k * design.interleave - 1


def run_vectors(
    executor: RtlExecutor, vectors: ArrayVectors, *, backpressure: float = 0.0, seed: int = 0, reset: bool = True
) -> VectorsRun:
    """Stream ``vectors`` through the executor (from reset) and check every tile against mpsim's.

    A hang is reported in ``result.timeout``, as the cocotb bench reports it.
    """
    design = executor.design
    start = time.perf_counter()
    beats = vectors_beats(design, vectors)
    pack_s = time.perf_counter() - start
    if reset:
        executor.reset()
    try:
        run = executor.run(beats, backpressure=backpressure, seed=seed, mark=first_job_mark(design, vectors))
    except ExecHang as hang:
        result = BenchResult(checked=vectors.checked, macs=vectors.macs, timeout=str(hang))
        return VectorsRun(result, None, None, pack_s, 0.0)
    start = time.perf_counter()
    result, got = check_run(design, vectors, run)
    return VectorsRun(result, run, got, pack_s, time.perf_counter() - start)
