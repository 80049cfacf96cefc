"""Seeded sources of random bits for stochastic rounding.

Two sources, both deterministic given their seed:

* :class:`CounterRNG` -- a counter-based generator for training: draw ``i``
  is ``splitmix64(key + (offset + i) * golden)``, so any element's bits are
  computable on their own (parallel kernels, no shared state) and a call of
  ``n`` draws advances the counter by ``n``. ``k``-bit draws take the top
  ``k`` bits of the 64-bit word.
* :class:`LFSR` -- the hardware model: a Galois linear-feedback shift
  register that the generated RTL implements bit for bit (see its doc).

Both offer ``draw(n, k)``: the next ``n`` random ``k``-bit integers, and
:func:`mpsim.quantize` takes either as ``seed=``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["CounterRNG", "LFSR", "LFSR_TAPS", "RandomSource", "make_source"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
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
    return splitmix64(key + index * _GOLDEN)


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
    3: (3, 2), 4: (4, 3), 5: (5, 3), 6: (6, 5), 7: (7, 6), 8: (8, 6, 5, 4),
    9: (9, 5), 10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1), 13: (13, 4, 3, 1),
    14: (14, 5, 3, 1), 15: (15, 14), 16: (16, 15, 13, 4), 17: (17, 14),
    18: (18, 11), 19: (19, 6, 2, 1), 20: (20, 17), 21: (21, 19), 22: (22, 21),
    23: (23, 18), 24: (24, 23, 22, 17), 25: (25, 22), 26: (26, 6, 2, 1),
    27: (27, 5, 2, 1), 28: (28, 25), 29: (29, 27), 30: (30, 6, 4, 1),
    31: (31, 28), 32: (32, 22, 2, 1),
}  # fmt: skip


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
        if self.taps is not None:
            if not self.taps or max(self.taps) != self.width or min(self.taps) < 1:
                raise ValueError(
                    f"LFSR taps must be positions 1..{self.width} including {self.width}, not {self.taps!r}"
                )
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


RandomSource = CounterRNG | LFSR


def make_source(seed: "int | RandomSource | None") -> RandomSource:
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
