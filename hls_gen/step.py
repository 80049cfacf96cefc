"""The control that travels with every step of a MAC array: one bundle, registered wherever the step's operands are."""

from __future__ import annotations

from amaranth.lib import data

__all__ = ["STEP_CONTROL", "step_control"]

#: What a step (one cycle's worth of input to a processing element) carries besides its operands and random
#: bits. It moves as one value: through the array's skew registers, from PE to PE with the operands, down a
#: PE's pipeline registers and round its accumulate loop, so a field added here arrives, registered in
#: step, at every stage that may read it.
#:
#: ``valid``
#:     The step is a beat: its product is added to its sum (a step without it, a bubble, adds -0).
#: ``last``
#:     With ``valid``: the beat is its sum's last; the sum is finished and its next beat starts from +0.
#: ``flush``
#:     The sum this step meets at the accumulate loop's entry is finished: hand it out (the array's output
#:     buffer takes it). A beat may carry it: the beat then starts the slot's next sum from +0.
STEP_CONTROL = data.StructLayout({"valid": 1, "last": 1, "flush": 1})


def step_control(mode_bits: int = 0) -> data.StructLayout:
    """:data:`STEP_CONTROL`, plus ``mode`` (the step's mode code, ``mode_bits`` wide) for a multi-mode array.

    ``mode``
        The arithmetic mode of the beat's job (:mod:`hls_gen.modes`): which operand formats, rounders and random
        bits its step uses. A bubble's mode is ignored: the loop gives it the mode of the sum in its slot.
    """
    if mode_bits == 0:
        return STEP_CONTROL
    return data.StructLayout({**{name: field.shape for name, field in STEP_CONTROL}, "mode": mode_bits})
