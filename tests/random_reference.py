"""The documented counter streams in Python integers (the tests' oracle for random bits).

Written from the documentation, not from the kernels: ``CounterRNG`` draw
``i`` is ``splitmix64(key + i * golden)``, ``key = splitmix64(seed)``; a
``qmatmul`` rounding with ``k <= 32`` random bits reads its own ``k`` bits of
the word that the first term of its run of ``64 // k`` terms takes (the
numbering in :mod:`mpsim.gemm_kernels`).
"""

from __future__ import annotations

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
STAGES = 3


def splitmix64(z: int) -> int:
    """SplitMix64 finaliser in Python integers (Steele, Lea, Flood 2014)."""
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def counter_word(seed: int, position: int) -> int:
    """The 64-bit word at ``position`` of the ``CounterRNG(seed)`` stream."""
    return splitmix64(splitmix64(seed) + (position & M64) * GOLDEN)


def counter_oracle(seed: int, offset: int, n: int, k: int) -> list[int]:
    """``CounterRNG(seed, offset).draw(n, k)``: the top ``k`` bits of each word."""
    return [counter_word(seed, offset + i) >> (64 - k) for i in range(n)]


def gemm_draw(seed: int, offset: int, output: int, k_dim: int, term: int, stage: int, k: int) -> int:
    """The ``k`` random bits of a ``qmatmul`` rounding from ``CounterRNG(seed, offset)``.

    ``output`` is the flat output index ``(b*M + i)*N + j``, ``term`` the term,
    tree node or block ``t``, ``stage`` 0 (product), 1 (sum) or 2 (combine).
    """
    per_word = 64 // k
    place = term % per_word  # the term's place in its run: bits from the top
    word = counter_word(seed, offset + (output * k_dim + term - place) * STAGES + stage)
    return (word >> (64 - k * (place + 1))) & ((1 << k) - 1)
