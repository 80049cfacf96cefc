"""Stimulus and expected results from mpsim: the independent reference of every bench.

Everything is a pure function of a :class:`Stimulus` (seeds and sizes) and a
design read from its manifest, so the same seed gives the same vectors in
the runner, in the simulator's Python and in a test. Expected values come
from ``mpsim`` alone (:func:`mpsim.quantize`, :func:`mpsim.qmatmul` with
:class:`mpsim.randbits.LFSRGrid`), never from the RTL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import mpsim
from mpsim.formats import FloatFormat
from mpsim.randbits import LFSR
from sim.manifest import ArrayDesign, MultiplierDesign
from sim.mx_vectors import mx_codes, mx_values

__all__ = [
    "EXHAUSTIVE_LIMIT",
    "ArrayVectors",
    "MultiplierVectors",
    "Stimulus",
    "array_vectors",
    "canonical_codes",
    "multiplier_vectors",
    "operand_codes",
    "same_codes",
    "tile_jobs",
]

#: Operand pairs up to which a multiplier is checked exhaustively by default (every e4m3 x e4m3 pair).
EXHAUSTIVE_LIMIT = 1 << 16


@dataclass(frozen=True)
class Stimulus:
    """What a run checks; every field is checked here so a bad value fails before any build.

    ``vectors``: multiplier operand pairs (None: every pair when there are at
    most :data:`EXHAUSTIVE_LIMIT`, else that many random pairs). ``steps``:
    MAC steps (input beats) for a MAC or an array. ``max_k``: longest
    reduction. ``backpressure``: probability per cycle that the bench holds
    the input's valid or the output's ready low. ``lfsr_seed``/``lfsr_width``:
    the LFSR whose draws feed a stochastic multiplier's ``rand_in`` port (an
    array has its own LFSRs, described by the manifest). ``flip``: (index, bit) of an
    expected value to corrupt, so that a run proves its checker can fail.
    """

    seed: int = 0
    vectors: int | None = None
    steps: int = 20_000
    max_k: int = 32
    backpressure: float = 0.0
    lfsr_seed: int = 1
    lfsr_width: int = 32
    flip: tuple[int, int] | None = field(default=None)

    def __post_init__(self) -> None:
        for name, lo in (("seed", 0), ("steps", 1), ("max_k", 1), ("lfsr_seed", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"stimulus {name} must be an integer >= {lo}, not {value!r}")
        if self.vectors is not None and (
            isinstance(self.vectors, bool) or not isinstance(self.vectors, int) or self.vectors < 1
        ):
            raise ValueError(f"stimulus vectors must be a positive integer or None, not {self.vectors!r}")
        if not (isinstance(self.backpressure, (int, float)) and 0.0 <= self.backpressure < 1.0):
            raise ValueError(f"backpressure must be a probability in [0, 1), not {self.backpressure!r}")
        if self.flip is not None and (len(self.flip) != 2 or min(self.flip) < 0):
            raise ValueError(f"flip must be (index, bit) with both >= 0, not {self.flip!r}")


def operand_codes(
    rng: np.random.Generator, fmt: FloatFormat, shape: tuple[int, ...], *, special_rate: float = 0.02
) -> np.ndarray:
    """Random bit patterns of ``fmt`` biased toward edge cases.

    Uniform codes plus, at fixed rates: the largest and smallest magnitudes
    (overflow, subnormals), zeros of both signs, small exponents, and NaN/Inf
    where the format has them.
    """
    sign = 1 << (fmt.bits - 1)
    codes = rng.integers(0, 1 << fmt.bits, shape)
    edges = [0, sign, fmt.max_code, fmt.max_code | sign, 1, 1 | sign, 1 << fmt.man_bits, fmt.max_code - 1]
    pick = rng.random(shape)
    codes = np.where(pick < 0.12, rng.choice(edges, shape), codes)
    small = rng.integers(0, 4 << fmt.man_bits, shape) | (rng.integers(0, 2, shape) * sign)
    codes = np.where((pick >= 0.12) & (pick < 0.24), small, codes)
    specials = [c for c in (fmt.nan_code, fmt.inf_code) if c is not None]
    for i, code in enumerate(specials):
        hit = (pick >= 0.24 + i * special_rate) & (pick < 0.24 + (i + 1) * special_rate)
        codes = np.where(hit, code | (rng.integers(0, 2, shape) * sign if code != fmt.nan_code else 0), codes)
    return codes.astype(np.int64)


def canonical_codes(values: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Bit patterns of mpsim's results, every NaN as the format's ``nan_code`` (what the hardware emits)."""
    values = np.asarray(values, dtype=np.float32)
    codes = mpsim.encode(fmt, values).astype(np.int64)
    if fmt.nan_code is not None:
        codes = np.where(np.isnan(values), fmt.nan_code, codes)
    return codes


def same_codes(got: np.ndarray, want: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """Element-wise equal bit patterns.

    Expected NaNs are canonical (:func:`canonical_codes`), as the manifest promises.
    """
    return got == want


def _flip(values: np.ndarray, flip: tuple[int, int] | None) -> np.ndarray:
    if flip is None:
        return values
    index, bit = flip
    if index >= values.size:
        raise ValueError(f"flip index must be below the {values.size} expected values, not {index}")
    out = values.copy()
    if out.dtype == np.float64:
        bits = out.view(np.uint64)
        bits[index] ^= np.uint64(1) << np.uint64(bit)
    else:
        out[index] ^= 1 << bit
    return out


# --- multiplier --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiplierVectors:
    """Operand codes (and random draws) per pair, with the expected product.

    ``want`` is the rounded product's code (int64) or, for an exact product,
    its value (float64; NaN for NaN).
    """

    a: np.ndarray
    b: np.ndarray
    rand: np.ndarray | None
    want: np.ndarray


def multiplier_vectors(design: MultiplierDesign, stimulus: Stimulus) -> MultiplierVectors:
    """Every operand pair (or ``stimulus.vectors`` random ones) and mpsim's product of each."""
    fa, fb = design.a_format, design.b_format
    pairs = 1 << (fa.bits + fb.bits)
    count = stimulus.vectors if stimulus.vectors is not None else min(pairs, EXHAUSTIVE_LIMIT)
    if count == pairs:  # exhaustive, in order: a major, b minor
        a, b = (
            x.reshape(-1).astype(np.int64)
            for x in np.meshgrid(np.arange(1 << fa.bits), np.arange(1 << fb.bits), indexing="ij")
        )
    else:
        rng = np.random.default_rng(stimulus.seed)
        a, b = operand_codes(rng, fa, (count,)), operand_codes(rng, fb, (count,))
    with np.errstate(invalid="ignore"):  # 0 x Inf is NaN, as intended
        exact = mpsim.decode(fa, a).astype(np.float64) * mpsim.decode(fb, b).astype(np.float64)
    rand = None
    if design.out_format is None:
        want = exact
    else:
        seed = None
        if design.rand_bits is not None:
            # Pair i takes draw i of this LFSR; mpsim.quantize takes the same draws in element order.
            rand = LFSR(stimulus.lfsr_width, stimulus.lfsr_seed).draw(count, design.rand_bits).astype(np.int64)
            seed = LFSR(stimulus.lfsr_width, stimulus.lfsr_seed)
        # Products of two operands of at most 16 bits are exact in float32 only when narrow enough;
        # quantize takes float64 too, so pass the exact float64 product.
        rounded = mpsim.quantize(exact, design.out_format, design.rounding, seed=seed)
        want = canonical_codes(rounded, design.out_format)
    return MultiplierVectors(a=a, b=b, rand=rand, want=_flip(want, stimulus.flip))


def exact_values(design: MultiplierDesign, words: np.ndarray) -> np.ndarray:
    """float64 values of exact-product structs (one element of the ``product`` port each)."""
    words = np.asarray(words, dtype=np.int64)
    field = {}
    for name, (offset, width, signed) in design.fields.items():
        v = (words >> offset) & ((1 << width) - 1)
        if signed:
            v = np.where(v >= 1 << (width - 1), v - (1 << width), v)
        field[name] = v
    sig_width = design.fields["sig"][1]
    mag = np.ldexp(field["sig"].astype(np.float64), (field["exp"] - (sig_width - 1)).astype(np.int32))
    mag = np.where(field["zero"] == 1, 0.0, mag)
    mag = np.where(field["inf"] == 1, np.inf, mag)
    mag = np.where(field["nan"] == 1, np.nan, mag)
    return np.where(field["sign"] == 1, -mag, mag)


def same_values(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Element-wise equal values with the sign of zero; NaN equals NaN."""
    return (np.isnan(got) & np.isnan(want)) | ((got == want) & (np.signbit(got) == np.signbit(want)))


# --- MAC unit and array ------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One output tile: which product, batch and tile it is, and its reduction length."""

    product: int
    batch: int
    row_tile: int
    col_tile: int
    k: int
    mode: int = 0


@dataclass(frozen=True)
class ArrayVectors:
    """Input beats (input stream payloads, packed by the manifest's fields) and, per job, the expected tile.

    ``want[j, r, c]`` is the accumulator code of row ``r``, column ``c`` of
    job ``j``; ``valid`` is False where a tile is padding (not checked).
    """

    beats: list[int]
    jobs: list[Job]
    want: np.ndarray
    valid: np.ndarray
    a_codes: list[np.ndarray]
    b_codes: list[np.ndarray]

    @property
    def checked(self) -> int:
        return int(self.valid.sum())

    @property
    def macs(self) -> int:
        """Multiply-accumulate steps behind the checked elements."""
        return int(sum(job.k * int(self.valid[j].sum()) for j, job in enumerate(self.jobs)))


def _shapes(design: ArrayDesign, stimulus: Stimulus, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """(batch, M, K, N) of each product until ``stimulus.steps`` beats: single MAC sequences for a 1x1 design."""
    shapes, beats = [], 0
    while beats < stimulus.steps:
        k = int(rng.integers(1, stimulus.max_k + 1))
        if design.rows == design.cols == 1:  # a MAC unit: blocks of sequences (batch) of one length
            shape = (int(rng.integers(1, 17)), design.interleave, k, 1)  # a job: one sequence per sum
        else:  # matrices that leave partial tiles as often as full ones
            shape = (
                int(rng.integers(1, 3)),
                int(rng.integers(1, 2 * design.tile_rows + 1)),
                k,
                int(rng.integers(1, 2 * design.cols + 1)),
            )
        batch, m, _, n = shape
        beats += batch * -(-m // design.tile_rows) * -(-n // design.cols) * k * design.interleave
        shapes.append(shape)
    return shapes


def tile_jobs(
    a: np.ndarray, b: np.ndarray, rows: int, cols: int
) -> list[tuple[tuple[int, int, int], np.ndarray, np.ndarray]]:
    """The array's jobs for ``a @ b`` (codes, shapes (batch, M, K) and (batch, K, N)) in its documented order.

    One job per (batch, row tile, column tile), each ``(index, a_tile, b_tile)``
    with the ``rows x K`` and ``K x cols`` operand tiles, partial tiles padded
    with zero codes.
    """
    batch, m, k = a.shape
    n = b.shape[2]
    jobs = []
    for z in range(batch):
        for ti in range(-(-m // rows)):
            for tj in range(-(-n // cols)):
                at = np.zeros((rows, k), np.int64)
                bt = np.zeros((k, cols), np.int64)
                block_a = a[z, ti * rows : (ti + 1) * rows]
                block_b = b[z, :, tj * cols : (tj + 1) * cols]
                at[: block_a.shape[0]] = block_a
                bt[:, : block_b.shape[1]] = block_b
                jobs.append(((z, ti, tj), at, bt))
    return jobs


def _tile_expectation(
    codes: np.ndarray, z: int, ti: int, tj: int, rows: int, cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """(expected codes, valid) of tile (ti, tj) of product ``z``: rows x cols, edge tiles' padding invalid."""
    want = np.zeros((rows, cols), np.int64)
    valid = np.zeros((rows, cols), bool)
    block = codes[z, ti * rows : (ti + 1) * rows, tj * cols : (tj + 1) * cols]
    want[: block.shape[0], : block.shape[1]] = block
    valid[: block.shape[0], : block.shape[1]] = True
    return want, valid


def array_vectors(design: ArrayDesign, stimulus: Stimulus, *, pack: bool = True) -> ArrayVectors:
    """Random products (edge values, exact cancellations) tiled into jobs, with ``mpsim.qmatmul``'s tiles.

    A multi-mode array's products take the modes in turn (product ``i`` in
    mode ``i mod modes``), so every product boundary switches mode back to
    back; the random source carries on across them, as the hardware's does.
    ``pack=False`` leaves ``beats`` empty (the fast RTL executor packs them
    from the operands in NumPy, :func:`sim.rtl_vectors.vectors_beats`).
    """
    rng = np.random.default_rng(stimulus.seed)
    grid = design.random_source()  # carries on from product to product, as the hardware does
    rows, cols, sums = design.tile_rows, design.cols, design.interleave
    payload = design.stream("input").payload
    beats: list[int] = []
    jobs: list[Job] = []
    tiles_want: list[np.ndarray] = []
    tiles_valid: list[np.ndarray] = []
    a_list, b_list = [], []
    for index, (batch, m, k, n) in enumerate(_shapes(design, stimulus, rng)):
        code = index % len(design.modes)
        mode = design.modes[code]
        if mode.mx is not None:  # MX: float data quantized on the host, element and scale codes to the array
            fa, fb = mode.mx
            x, y = mx_values(rng, (batch, m, k), 2, fa.block_size), mx_values(rng, (batch, k, n), 1, fb.block_size)
            (sa, a), (sb, b) = mx_codes(x, fa, 2), mx_codes(y, fb, 1)
            c = mpsim.qmatmul(x, y, config=mode.gemm_config, seed=grid)
            codes = canonical_codes(c, mode.acc_format).reshape(batch, m, n)
            a_list.append(a)
            b_list.append(b)
            scale_tiles = tile_jobs(sa, sb, rows, cols)
            for ((z, ti, tj), at, bt), (_, ast, bst) in zip(tile_jobs(a, b, rows, cols), scale_tiles):
                for t in range(k if pack else 0):  # with interleave L, as below: each beat once per sum l
                    blk = t // fa.block_size
                    for sl in range(sums):
                        part = slice(sl * design.rows, (sl + 1) * design.rows)
                        beats.append(
                            payload.pack_fields(
                                a=at[part, t].tolist(),
                                b=bt[t, :].tolist(),
                                last=int(t == k - 1),
                                a_scale=ast[part, blk].tolist(),
                                b_scale=bst[blk, :].tolist(),
                                **({"mode": code} if design.mode_bits else {}),
                            )
                        )
                want, valid = _tile_expectation(codes, z, ti, tj, rows, cols)
                tiles_want.append(want)
                tiles_valid.append(valid)
                jobs.append(Job(index, z, ti, tj, k, code))
            continue
        a = operand_codes(rng, mode.a_format, (batch, m, k), special_rate=0.005)
        b = operand_codes(rng, mode.b_format, (batch, k, n), special_rate=0.005)
        if k > 1:  # a fifth of the steps cancel the step before exactly (acc + p - p)
            cancel = rng.random((batch, k - 1)) < 0.2
            if m == 1 and n == 1:
                a[:, 0, 1:] = np.where(cancel, a[:, 0, :-1], a[:, 0, 1:])
                b[:, 1:, 0] = np.where(cancel, b[:, :-1, 0] ^ (1 << (mode.b_format.bits - 1)), b[:, 1:, 0])
        c = mpsim.qmatmul(
            mpsim.decode(mode.a_format, a),
            mpsim.decode(mode.b_format, b),
            config=mode.gemm_config,
            seed=grid,
        )
        codes = canonical_codes(c, mode.acc_format).reshape(batch, m, n)
        a_list.append(a)
        b_list.append(b)
        for (z, ti, tj), at, bt in tile_jobs(a, b, rows, cols):
            for t in range(k if pack else 0):  # with interleave L, each step once per sum l: A rows l*R .. (l+1)*R - 1
                for sl in range(sums):
                    beats.append(
                        payload.pack_fields(
                            a=at[sl * design.rows : (sl + 1) * design.rows, t].tolist(),
                            b=bt[t, :].tolist(),
                            last=int(t == k - 1),
                            **({"mode": code} if design.mode_bits else {}),
                        )
                    )
            want, valid = _tile_expectation(codes, z, ti, tj, rows, cols)
            tiles_want.append(want)
            tiles_valid.append(valid)
            jobs.append(Job(index, z, ti, tj, k, code))
    want = np.stack(tiles_want)
    valid = np.stack(tiles_valid)
    flat = want[valid]
    want[valid] = _flip(flat, stimulus.flip)
    return ArrayVectors(beats, jobs, want, valid, a_list, b_list)
