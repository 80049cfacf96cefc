"""``ROWSxCOLS``: the size of a MAC array as users write it (``--array`` of emit and cost, the NAS's array choices).

Its own module, importing nothing heavy: the command line checks sizes before Amaranth or Optuna load.
"""

from __future__ import annotations

__all__ = ["parse_array_size"]


def parse_array_size(text: str) -> tuple[int, int]:
    """``"4x8"`` as ``(4, 8)``; ``ValueError`` naming the text unless both sides are integers of at least 1."""
    rows, sep, cols = str(text).lower().partition("x")
    if not sep or not (rows.isdecimal() and cols.isdecimal()) or int(rows) < 1 or int(cols) < 1:
        raise ValueError(f"array size must be ROWSxCOLS with both at least 1, such as 4x4, not {text!r}")
    return int(rows), int(cols)
