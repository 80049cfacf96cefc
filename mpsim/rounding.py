"""Rounding modes and the one rule that turns random bits into a round-up.

The stochastic rounding rule (software and generated hardware share it)
-----------------------------------------------------------------------
Rounding a magnitude to a multiple of the quantum ``2**q`` leaves ``d``
discarded bits, the fraction ``f = rem / 2**d`` of one quantum (0 <= f < 1).
Stochastic rounding with ``k`` random bits takes the top ``k`` discarded bits,
``t = floor(f * 2**k)``, adds a uniform ``k``-bit random integer ``r``, and
rounds the magnitude up exactly when the addition carries out of ``k`` bits::

    round_up = (t + r) >> k        # i.e. t + r >= 2**k

so ``P(round up) = t / 2**k``: the distance in ulps truncated to ``k`` bits
(a downward bias of less than ``2**-k`` ulp). ``k=None`` is exact stochastic
rounding: ``t`` and ``r`` have :data:`EXACT_RAND_BITS` bits, so the probability
of rounding up equals the distance in ulps to within ``2**-62``. Rounding acts
on the magnitude (sign-magnitude, as floating-point hardware does), which for
exact stochastic rounding gives the same distribution as rounding ``x`` itself.
The bits ``r`` come from a seeded source in :mod:`mpsim.randbits`; element ``i``
(C order) of a call takes the ``i``-th draw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["EXACT_RAND_BITS", "MAX_RAND_BITS", "Rounding", "RoundingMode", "parse_rounding"]

#: Random bits used when stochastic rounding is exact (``rand_bits=None``).
EXACT_RAND_BITS = 62
#: Largest explicit number of random bits for stochastic rounding.
MAX_RAND_BITS = 62


class RoundingMode(enum.Enum):
    """How a value between two representable neighbours is rounded."""

    NEAREST = "nearest"  # to nearest, ties to even (IEEE 754 default)
    NEAREST_AWAY = "nearest_away"  # to nearest, ties away from zero
    TOWARD_ZERO = "toward_zero"  # truncate
    UP = "up"  # toward +Inf
    DOWN = "down"  # toward -Inf
    STOCHASTIC = "stochastic"  # up with probability = distance in ulps

    @property
    def code(self) -> int:
        """Small integer the Numba kernels switch on."""
        return _MODE_CODES[self]


_MODE_CODES = {mode: index for index, mode in enumerate(RoundingMode)}

_MODE_ALIASES = {
    "nearest": RoundingMode.NEAREST,
    "nearest_even": RoundingMode.NEAREST,
    "rne": RoundingMode.NEAREST,
    "nearest_away": RoundingMode.NEAREST_AWAY,
    "rna": RoundingMode.NEAREST_AWAY,
    "toward_zero": RoundingMode.TOWARD_ZERO,
    "truncate": RoundingMode.TOWARD_ZERO,
    "rz": RoundingMode.TOWARD_ZERO,
    "up": RoundingMode.UP,
    "ru": RoundingMode.UP,
    "down": RoundingMode.DOWN,
    "rd": RoundingMode.DOWN,
    "stochastic": RoundingMode.STOCHASTIC,
    "sr": RoundingMode.STOCHASTIC,
}


@dataclass(frozen=True)
class Rounding:
    """A rounding mode plus, for stochastic rounding, the number of random bits.

    ``rand_bits=None`` with stochastic rounding means exact (see module doc).
    Deterministic modes take no random bits.
    """

    mode: RoundingMode = RoundingMode.NEAREST
    rand_bits: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, RoundingMode):
            raise ValueError(f"rounding mode must be a RoundingMode, not {self.mode!r}")
        if self.rand_bits is None:
            return
        if self.mode is not RoundingMode.STOCHASTIC:
            raise ValueError(
                f"random bits only apply to stochastic rounding, not to {self.mode.value!r} "
                f"(got rand_bits={self.rand_bits!r})"
            )
        if isinstance(self.rand_bits, bool) or not isinstance(self.rand_bits, int):
            raise ValueError(f"random bits must be an integer or None, not {self.rand_bits!r}")
        if not 1 <= self.rand_bits <= MAX_RAND_BITS:
            raise ValueError(f"random bits must be 1..{MAX_RAND_BITS} or None, not {self.rand_bits!r}")

    @property
    def stochastic(self) -> bool:
        return self.mode is RoundingMode.STOCHASTIC

    @property
    def kernel_rand_bits(self) -> int:
        """Random bits per rounding as the kernels use them (0 for deterministic modes)."""
        if not self.stochastic:
            return 0
        return EXACT_RAND_BITS if self.rand_bits is None else self.rand_bits

    def __str__(self) -> str:
        if self.stochastic and self.rand_bits is not None:
            return f"stochastic:{self.rand_bits}"
        return self.mode.value


def parse_rounding(spec: str | Rounding | RoundingMode, rand_bits: int | None = None) -> Rounding:
    """Parse ``"nearest"``, ``"stochastic"``, ``"stochastic:8"`` (also ``"sr8"``), ``"toward_zero"``...

    ``rand_bits`` given separately must not contradict a count in the string.
    """
    if isinstance(spec, Rounding):
        if rand_bits is not None and rand_bits != spec.rand_bits:
            raise ValueError(f"rand_bits={rand_bits!r} contradicts rounding {str(spec)!r}")
        return spec
    if isinstance(spec, RoundingMode):
        return Rounding(spec, rand_bits)
    if not isinstance(spec, str):
        raise ValueError(f"rounding must be a string or a Rounding, not {spec!r}")
    key = spec.strip().lower()
    bits_in_spec: int | None = None
    name = key
    if ":" in key:
        name, _, count = key.partition(":")
        bits_in_spec = _parse_bit_count(count, spec)
    elif key.startswith("sr") and key[2:].isdigit():
        name, bits_in_spec = "stochastic", _parse_bit_count(key[2:], spec)
    mode = _MODE_ALIASES.get(name)
    if mode is None:
        known = ", ".join(m.value for m in RoundingMode)
        raise ValueError(f"unknown rounding {spec!r}: expected one of {known} (stochastic:K for K random bits)")
    if bits_in_spec is not None and rand_bits is not None and bits_in_spec != rand_bits:
        raise ValueError(f"rand_bits={rand_bits!r} contradicts rounding {spec!r}")
    return Rounding(mode, bits_in_spec if bits_in_spec is not None else rand_bits)


def _parse_bit_count(text: str, spec: str) -> int:
    if not (text.isascii() and text.isdecimal()):
        raise ValueError(f"unknown rounding {spec!r}: random-bit count must be a positive integer, not {text!r}")
    if not 1 <= int(text) <= MAX_RAND_BITS:
        raise ValueError(
            f"unknown rounding {spec!r}: random-bit count must be 1..{MAX_RAND_BITS} "
            f"('stochastic' alone rounds exactly), not {text!r}"
        )
    return int(text)
