"""Seeded sources of random bits for stochastic rounding.

Two sources, both deterministic given their seed:

* :class:`CounterRNG` -- a counter-based generator for training: draw ``i``
  is ``splitmix64(key + (offset + i) * golden)``, so any element's bits are
  computable on their own (parallel kernels, no shared state) and a call of
  ``n`` draws advances the counter by ``n``. ``k``-bit draws take the top
  ``k`` bits of the 64-bit word. (:func:`mpsim.qmatmul` reads ``k <= 32``
  bit roundings from shared words: :mod:`mpsim.gemm_kernels`.)
* :class:`LFSR` -- the hardware model: a Galois linear-feedback shift
  register that the generated RTL implements bit for bit (see its doc).

Both offer ``draw(n, k)``: the next ``n`` random ``k``-bit integers, and
:func:`mpsim.quantize` takes either as ``seed=``.

The random stream of a generated MAC array
------------------------------------------
A single LFSR hands its draws out in one sequence, which a parallel array
cannot follow. The arrays that :mod:`hls_gen` generates use
:class:`LFSRGrid`, and :func:`mpsim.qmatmul` takes the same object as
``seed=`` to reproduce them bit for bit:

* processing element ``(r, c)`` of an ``R x C`` array (index ``p = r*C + c``)
  has its own LFSR (same width and taps), reset to the state that the base
  LFSR (``width``, ``taps``, ``seed``) reaches after ``p * stride`` steps,
  ``stride = (2**width - 1) // (R*C)``: PE 0 starts at ``seed`` and the PEs
  walk disjoint stretches of one maximal-length sequence until one has taken
  ``stride`` steps;
* per accepted operand pair (one step of the sequential accumulation) every
  PE's LFSR takes ``kp + ks`` steps and never steps otherwise: the first
  ``kp`` bits shifted out (MSB first) are the product rounding's draw (``kp``
  = its random bits if the product is rounded stochastically, else 0), the
  next ``ks`` the accumulation rounding's (``ks`` likewise);
* an ``(B, M, N, K)`` product is computed tile by tile, tiles ordered
  ``(b, i // R, j // C)`` in C order, each tile a job of ``K`` steps in which
  every PE steps (PEs outside a partial tile work on padding), so output
  ``(b, i, j)`` is computed by PE ``(i % R, j % C)`` and its draws are that
  PE's stream during its job; the LFSRs carry on from job to job and from
  call to call (they reset only with the hardware).

:meth:`LFSRGrid.gemm_draws` writes those draws into ``qmatmul``'s draw-index
layout (``(((b*M + i)*N + j)*K + t)*3 + g``; stage 0 product, 1 sum).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np

from mpsim import jit_cache
from mpsim.rounding import Rounding

jit_cache.install()  # before this module's kernels compile or load from disk: see mpsim.jit_cache

__all__ = [
    "GOLDEN",
    "LFSR",
    "LFSR_TAPS",
    "CounterRNG",
    "LFSRGrid",
    "RandomSource",
    "counter_word",
    "lfsr_jump",
    "make_source",
    "splitmix64",
]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@numba.njit(inline="always")
def splitmix64(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(inline="always")
def counter_word(key: np.uint64, index: np.uint64) -> np.uint64:
    """The 64-bit random word at position ``index`` of the stream ``key``."""
    return splitmix64(key + index * GOLDEN)


@numba.njit(cache=True)
def _counter_draw(key: np.uint64, offset: np.uint64, k: int, out: np.ndarray) -> None:
    shift = np.uint64(64 - k)
    for i in range(out.size):
        out[i] = np.int64(counter_word(key, offset + np.uint64(i)) >> shift)


class CounterRNG:
    """Counter-based random bits (SplitMix64 over a Weyl sequence), seeded.

    Draw ``i`` of the stream is ``splitmix64(key + i * 0x9E3779B97F4A7C15)``
    with ``key = splitmix64(seed)``; ``offset`` is the next position.
    """

    def __init__(self, seed: int, offset: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        if not 0 <= int(seed) < 2**64:
            raise ValueError(f"seed must be in 0..2**64-1, not {seed!r}")
        self.seed = int(seed)
        self.key = int(splitmix64(np.uint64(self.seed)))
        if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
            raise ValueError(f"offset must be an integer, not {offset!r}")
        if not 0 <= int(offset) < 2**64:
            raise ValueError(f"offset must be in 0..2**64-1, not {offset!r}")
        self.offset = int(offset)

    def reserve(self, n: int) -> int:
        """Claim the next ``n`` positions; returns the first."""
        start = self.offset
        self.offset = (self.offset + int(n)) % 2**64
        return start

    def draw(self, n: int, k: int) -> np.ndarray:
        """The next ``n`` random ``k``-bit integers (int64), 1 <= k <= 63."""
        _check_k(k, 63)
        out = np.empty(int(n), dtype=np.int64)
        _counter_draw(np.uint64(self.key), np.uint64(self.reserve(n)), k, out)
        return out

    def __repr__(self) -> str:
        return f"CounterRNG(seed={self.seed}, offset={self.offset})"


#: Maximal-length taps (1-indexed, Xilinx XAPP052, table 3), width -> taps.
#: Each is a primitive polynomial x^w + sum x^t + 1; tests prove the period.
LFSR_TAPS: dict[int, tuple[int, ...]] = {
    3: (3, 2),
    4: (4, 3),
    5: (5, 3),
    6: (6, 5),
    7: (7, 6),
    8: (8, 6, 5, 4),
    9: (9, 5),
    10: (10, 7),
    11: (11, 9),
    12: (12, 6, 4, 1),
    13: (13, 4, 3, 1),
    14: (14, 5, 3, 1),
    15: (15, 14),
    16: (16, 15, 13, 4),
    17: (17, 14),
    18: (18, 11),
    19: (19, 6, 2, 1),
    20: (20, 17),
    21: (21, 19),
    22: (22, 21),
    23: (23, 18),
    24: (24, 23, 22, 17),
    25: (25, 22),
    26: (26, 6, 2, 1),
    27: (27, 5, 2, 1),
    28: (28, 25),
    29: (29, 27),
    30: (30, 6, 4, 1),
    31: (31, 28),
    32: (32, 22, 2, 1),
}


@numba.njit(cache=True)
def _lfsr_draw(state: int, mask: int, k: int, out: np.ndarray) -> int:
    for i in range(out.size):
        r = 0
        for _ in range(k):
            bit = state & 1
            state >>= 1
            if bit:
                state ^= mask
            r = (r << 1) | bit
        out[i] = r
    return state


@numba.njit(cache=True)
def _lfsr_period(state: int, mask: int, limit: int) -> int:
    start = state
    for step in range(1, limit + 1):
        bit = state & 1
        state >>= 1
        if bit:
            state ^= mask
        if state == start:
            return step
    return -1


@dataclass(frozen=True)
class LFSRSpec:
    """The LFSR as hardware sees it: width, taps, seed. ``mask`` is derived."""

    width: int = 32
    seed: int = 1
    taps: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, int):
            raise ValueError(f"LFSR width must be an integer, not {self.width!r}")
        if self.taps is None and self.width not in LFSR_TAPS:
            raise ValueError(f"LFSR width must be {min(LFSR_TAPS)}..{max(LFSR_TAPS)}, not {self.width!r}")
        if self.taps is not None and (not self.taps or max(self.taps) != self.width or min(self.taps) < 1):
            raise ValueError(f"LFSR taps must be positions 1..{self.width} including {self.width}, not {self.taps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"LFSR seed must be an integer, not {self.seed!r}")
        if not 1 <= self.seed < 2**self.width:
            raise ValueError(f"LFSR seed must be 1..2**{self.width}-1 (nonzero), not {self.seed!r}")

    @property
    def tap_positions(self) -> tuple[int, ...]:
        return self.taps if self.taps is not None else LFSR_TAPS[self.width]

    @property
    def mask(self) -> int:
        """Galois toggle mask: bit ``t-1`` set for each tap ``t``."""
        mask = 0
        for tap in self.tap_positions:
            mask |= 1 << (tap - 1)
        return mask


class LFSR:
    """Hardware model of the random-bit source: a Galois LFSR, right-shifting.

    One step: ``out = s & 1; s >>= 1; if out: s ^= mask`` with ``mask`` from
    the taps (bit ``t-1`` per tap ``t``; :data:`LFSR_TAPS` by default, period
    ``2**width - 1``). One stochastic rounding with ``k`` random bits takes
    ``k`` steps and uses the ``k`` bits shifted out, the first one as the most
    significant: ``r = (r << 1) | out``. The generated hardware does the ``k``
    steps in one cycle (an unrolled XOR network) and resets to ``seed``.
    """

    def __init__(self, width: int = 32, seed: int = 1, taps: tuple[int, ...] | None = None) -> None:
        self.spec = LFSRSpec(width=width, seed=seed, taps=taps)
        self.state = self.spec.seed

    @property
    def width(self) -> int:
        return self.spec.width

    @property
    def mask(self) -> int:
        return self.spec.mask

    def draw(self, n: int, k: int) -> np.ndarray:
        """The next ``n`` random ``k``-bit integers (int64); advances ``k*n`` steps."""
        _check_k(k, 62)
        out = np.empty(int(n), dtype=np.int64)
        self.state = int(_lfsr_draw(self.state, self.mask, k, out))
        return out

    def period(self, limit: int | None = None) -> int:
        """Steps until the state repeats (-1 if more than ``limit``); does not advance."""
        limit = 2**self.width if limit is None else limit
        return int(_lfsr_period(self.state, self.mask, limit))

    def __repr__(self) -> str:
        return f"LFSR(width={self.width}, seed={self.spec.seed}, state={self.state:#x})"


def _lfsr_apply(columns: list[int], state: int) -> int:
    out = 0
    bit = 0
    while state:
        if state & 1:
            out ^= columns[bit]
        state >>= 1
        bit += 1
    return out


def lfsr_jump(spec: LFSRSpec, state: int, steps: int) -> int:
    """The LFSR state ``steps`` steps after ``state`` (GF(2) matrix power; no stepping)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"LFSR jump must be a non-negative integer of steps, not {steps!r}")
    mask = spec.mask
    # columns of the one-step transition matrix: the image of each basis state
    step = [(1 << i >> 1) ^ (mask if i == 0 else 0) for i in range(spec.width)]
    result = [1 << i for i in range(spec.width)]  # identity
    while steps:
        if steps & 1:
            result = [_lfsr_apply(step, col) for col in result]
        step = [_lfsr_apply(step, col) for col in step]
        steps >>= 1
    return _lfsr_apply(result, state)


class LFSRGrid:
    """The random bits of an ``rows x cols`` MAC array from :mod:`hls_gen`: one LFSR per PE.

    The stream is defined in the module docstring; pass the object to
    :func:`mpsim.qmatmul` as ``seed=`` (sequential order only) to compute what
    the array computes. Like the hardware, the PEs' LFSRs carry on from one
    call to the next.

    ``interleave`` L: each PE holds L sums in turn (a pipelined accumulator,
    :func:`hls_gen.accumulator.accumulate`), so an output tile has ``rows *
    L`` rows: tile row ``l * rows + r`` is sum ``l`` of PE row ``r``, and a
    job's steps reach a PE in the order (step t, sum l), ``t`` major. The PE
    draws its bits in that order.
    """

    def __init__(
        self,
        width: int = 32,
        seed: int = 1,
        taps: tuple[int, ...] | None = None,
        *,
        rows: int,
        cols: int,
        interleave: int = 1,
    ) -> None:
        self.spec = LFSRSpec(width=width, seed=seed, taps=taps)
        for what, value in (("rows", rows), ("cols", cols), ("interleave", interleave)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LFSRGrid {what} must be a positive integer, not {value!r}")
        if rows * cols > 2**width - 1:
            raise ValueError(
                f"an LFSRGrid of {rows}x{cols} PEs needs more than {2**width - 1} LFSR states; use a wider LFSR"
            )
        self.rows = rows
        self.cols = cols
        self.interleave = interleave
        self.stride = (2**width - 1) // (rows * cols)
        seeds = []
        state = self.spec.seed
        for _ in range(rows * cols):
            seeds.append(state)
            state = lfsr_jump(self.spec, state, self.stride)
        self._seeds = seeds
        self._pes = [LFSR(width, seed=s, taps=taps) for s in seeds]

    @property
    def seeds(self) -> np.ndarray:
        """Reset state of each PE's LFSR, shape ``(rows, cols)``."""
        return np.array(self._seeds, dtype=np.int64).reshape(self.rows, self.cols)

    @property
    def states(self) -> np.ndarray:
        """Current state of each PE's LFSR, shape ``(rows, cols)``."""
        return np.array([pe.state for pe in self._pes], dtype=np.int64).reshape(self.rows, self.cols)

    def advance(self, steps: int) -> None:
        """Step every PE's LFSR ``steps`` times, as ``steps`` one-bit draws would (a jump: no stepping)."""
        for pe in self._pes:
            pe.state = lfsr_jump(self.spec, pe.state, steps)

    def pe_bits(self, n: int, k: int) -> np.ndarray:
        """The next ``n`` ``k``-bit draws of every PE, shape ``(rows, cols, n)``; advances them."""
        return np.stack([pe.draw(n, k) for pe in self._pes]).reshape(self.rows, self.cols, int(n))

    def gemm_draws(
        self,
        shape: tuple[int, int, int, int],
        rounding: Rounding,
        mul_rounding: Rounding | None,
        order: str | int = "sequential",
    ) -> np.ndarray:
        """Draws of a ``(B, M, N, K)`` product in ``qmatmul``'s draw-index layout; advances the PEs.

        ``rounding`` is the accumulation's rounding; ``mul_rounding`` the
        product's (None when products are not rounded). Stochastic ones need
        a finite number of random bits.
        """
        if str(order).strip().lower() != "sequential":
            raise ValueError(f"an LFSRGrid models the MAC array's sequential order, not order {order!r}")
        batch, m, n, k_dim = (int(v) for v in shape)
        widths = []
        for rule in (mul_rounding, rounding):
            if rule is None or not rule.stochastic:
                widths.append(0)
            elif rule.rand_bits is None:
                raise ValueError("an LFSRGrid needs a finite number of random bits (rounding 'stochastic:K'), not None")
            else:
                widths.append(rule.rand_bits)
        kp, ks = widths
        out = np.zeros((batch, m, n, max(k_dim, 1), 3), dtype=np.int64)
        if out.size == 0 or k_dim == 0 or kp + ks == 0:
            return out.reshape(-1)
        sums = self.interleave
        tile_rows = self.rows * sums
        tiles_m = -(-m // tile_rows)
        tiles_n = -(-n // self.cols)
        jobs = batch * tiles_m * tiles_n
        bits = self.pe_bits(jobs * k_dim * sums * (kp + ks), 1).reshape(
            self.rows, self.cols, jobs, k_dim, sums, kp + ks
        )
        weights = np.int64(1) << np.arange(max(kp, ks) - 1, -1, -1, dtype=np.int64)  # first bit most significant
        b_ix, i_ix, j_ix = np.meshgrid(np.arange(batch), np.arange(m), np.arange(n), indexing="ij")
        job = (b_ix * tiles_m + i_ix // tile_rows) * tiles_n + j_ix // self.cols
        pe_r, pe_c, slot = i_ix % self.rows, j_ix % self.cols, i_ix % tile_rows // self.rows
        for stage, part in ((0, bits[..., :kp]), (1, bits[..., kp:])):
            if part.shape[-1]:
                draws = (part * weights[-part.shape[-1] :]).sum(axis=-1)  # (rows, cols, jobs, K, sums)
                out[..., stage] = draws[pe_r, pe_c, job, :, slot]  # (B, M, N, K): the indexed axes first
        return out.reshape(-1)

    def __repr__(self) -> str:
        sums = f", interleave={self.interleave}" if self.interleave != 1 else ""
        return f"LFSRGrid(width={self.spec.width}, seed={self.spec.seed}, rows={self.rows}, cols={self.cols}{sums})"


RandomSource = CounterRNG | LFSR


def make_source(seed: int | RandomSource | None) -> RandomSource:
    """A random source from ``seed``: an int seeds a :class:`CounterRNG`; a source is used as is.

    ``None`` seeds from the operating system's entropy (not reproducible).
    """
    if isinstance(seed, (CounterRNG, LFSR)):
        return seed
    if seed is None:
        return CounterRNG(int.from_bytes(os.urandom(8), "little"))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, a CounterRNG or an LFSR, not {seed!r}")
    return CounterRNG(int(seed))


def _check_k(k: int, limit: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limit:
        raise ValueError(f"random bits per draw must be 1..{limit}, not {k!r}")
