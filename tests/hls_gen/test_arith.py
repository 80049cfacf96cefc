"""Datapath pieces checked on every input against plain integer arithmetic."""

from __future__ import annotations

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hls_gen.arith import shift_out_leading_zeros


@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 11, 13])
def test_leading_zeros_and_normalizing_shift(width: int) -> None:
    """Every x of the width: the count is width - bit_length(x) (width for 0), the shift puts the leading one on top."""
    m = Module()
    x = Signal(width)
    shifted, count = shift_out_leading_zeros(m, x, "t")
    got: list[tuple[int, int, int]] = []

    async def bench(ctx) -> None:
        for value in range(1 << width):
            ctx.set(x, value)
            got.append((value, ctx.get(shifted), ctx.get(count)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for value, normalized, zeros in got:
        want = width - value.bit_length()
        assert (zeros, normalized) == (want, (value << want) & ((1 << width) - 1)), value
