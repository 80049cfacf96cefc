"""The shape of a MAC array as users write it: ``ROWSxCOLS`` (``--array`` of emit and cost, the NAS's array
choices), ``--interleave`` and ``--dsp``.

Its own module, importing nothing heavy: the command line checks its arguments before Amaranth, Numba or Optuna
load.
"""

from __future__ import annotations

import argparse

__all__ = ["DSP_BLOCKS", "interleave_arg", "parse_array_size"]

#: How a PE's significands are multiplied (:mod:`hls_gen.dsp`): ``a * b`` left to the synthesis tool, or an
#: ECP5 MULT18X18D instantiated with its input and output registers.
DSP_BLOCKS: tuple[str, ...] = ("inferred", "ecp5")


def parse_array_size(text: str) -> tuple[int, int]:
    """``"4x8"`` as ``(4, 8)``; ``ValueError`` naming the text unless both sides are integers of at least 1."""
    rows, sep, cols = str(text).lower().partition("x")
    if not sep or not (rows.isdecimal() and cols.isdecimal()) or int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"array size must be ROWSxCOLS with both at least 1, such as 4x4, not {text!r}")
    return int(rows), int(cols)


def interleave_arg(text: str) -> int:
    """``--interleave``'s value: a positive integer, or ``auto`` for :data:`hls_gen.spec.LOOP_DEPTH` (an argparse type).

    The range (``1..MAX_INTERLEAVE``) is the generator's to check, with its own message.
    """
    if text.strip().lower() == "auto":
        from hls_gen.spec import LOOP_DEPTH  # only then: the spec module loads mpsim's Numba kernels

        return LOOP_DEPTH
    value = int(text) if text.strip().isdecimal() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', not {text!r}")
    return value
