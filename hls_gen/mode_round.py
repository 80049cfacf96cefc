"""The rounding of a multi-mode accumulator: each mode's decision and code from one placement.

:func:`hls_gen.grid_place.place_modes` shifts a sum onto the grid of its
mode with the quantum on the same bit for every mode; :func:`decide_modes`
rounds it with the mode's random bits (nearest: none) and
:func:`encode_modes` writes it in the mode's format.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from amaranth.hdl import Module, Value

from hls_gen.arith import OnGrid, Rounding, round_decide, round_encode, select_value
from hls_gen.grid_place import Grid

__all__ = ["decide_modes", "encode_modes"]


def decide_modes(m: Module, g: OnGrid, modes: Sequence[Grid], select: Value, rand: Value | None) -> Rounding:
    """Whether ``g`` rounds up, by the rounding of mode ``select``: one decision per distinct number of random
    bits (the low ``k`` of ``rand``), the mode picking its own."""
    decisions = {k: round_decide(m, g, k, None if k is None else rand[:k]) for _, k in modes}  # type: ignore[index]
    first = next(iter(decisions.values()))
    if len(decisions) == 1:
        return first
    return dataclasses.replace(first, up=select_value(m, select, [decisions[k].up for _, k in modes], "sum_up"))


def encode_modes(m: Module, r: Rounding, modes: Sequence[Grid], select: Value, name: str) -> Value:
    """``r`` written in the format of mode ``select``: each format's code from the low bits of the count (its
    significand's), the mode picking its own (zero-extended to the widest format)."""
    formats = list(dict.fromkeys(f for f, _ in modes))
    codes = {
        f: round_encode(m, dataclasses.replace(r, count=r.count[: f.man_bits + 1]), f, f"{name}_{f.label}")
        for f in formats
    }
    return select_value(m, select, [codes[f] for f, _ in modes], f"{name}_code")
