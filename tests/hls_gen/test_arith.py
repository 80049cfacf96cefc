"""Datapath pieces checked on every input against plain integer arithmetic and mpsim's decoding."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

import mpsim
from hls_gen.arith import shift_out_leading_zeros, unpack_modes, unpacked_layout
from hls_gen.modes import mode_bits
from mpsim.formats import FloatFormat
from tests.hls_gen.harness import stream


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


class _Decoder(Elaboratable):
    """:func:`unpack_modes` behind plain signals (test only)."""

    def __init__(self, formats: list[FloatFormat]) -> None:
        self.formats = formats
        self.code = Signal(max(f.bits for f in formats))
        self.mode = Signal(mode_bits(len(formats)))
        layout = unpacked_layout(formats)  # the shapes of the decoded fields
        self.fields = [Signal(layout[name].shape, name=name) for name in ("sign", "zero", "inf", "nan", "exp", "sig")]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        u = unpack_modes(m, self.code, self.formats, self.mode, "x")
        m.d.comb += [out.eq(getattr(u, out.name)) for out in self.fields]
        return m


@pytest.mark.parametrize(
    "names",
    [["fp16", "bf16", "fp16"], ["e4m3", "e5m2", "e5m6ns", "e4m3fnuz", "e2m1", "bf16"]],
)
def test_decoding_in_the_mode_s_format_is_mpsim_s_value(names: list[str]) -> None:
    """Every code of every mode's format: the flags, and sig * 2**(exp - (W - 1)) is mpsim.decode's value."""
    formats = [mpsim.parse_format(n) for n in names]
    dut = _Decoder(formats)
    codes = [np.arange(1 << f.bits) for f in formats]
    modes = [np.full(len(c), i) for i, c in enumerate(codes)]
    sign, zero, inf, nan, exp, sig = stream(
        dut, [(dut.code, np.concatenate(codes)), (dut.mode, np.concatenate(modes))], dut.fields
    )
    start = 0
    width = len(dut.fields[-1])
    exp_bits = len(dut.fields[-2])
    for f, c in zip(formats, codes):
        part = slice(start, start + len(c))
        start += len(c)
        want = mpsim.decode(f, c).astype(np.float64)
        e = np.array(exp[part])
        e = np.where(e >= 1 << (exp_bits - 1), e - (1 << exp_bits), e)
        magnitude = np.array(sig[part], dtype=np.float64) * np.exp2(e - (width - 1))
        got = np.where(np.array(sign[part]) == 1, -magnitude, magnitude)
        assert (np.array(nan[part]) == np.isnan(want)).all(), f.label
        assert (np.array(inf[part]) == np.isinf(want)).all(), f.label
        number_or_zero = ~np.isnan(want)  # fnuz's NaN is the pattern of -0: its zero flag may be set too
        assert (np.array(zero[part])[number_or_zero] == (want == 0)[number_or_zero]).all(), f.label
        number = np.isfinite(want) & (want != 0)
        assert (got[number] == want[number]).all(), f.label
        assert (np.array(sig[part])[number] >> (width - 1) == 1).all(), f.label  # normalized
        assert (np.array(sign[part])[number_or_zero] == np.signbit(want[number_or_zero])).all(), f.label
