"""Fast simulation of a unit on many vectors with Amaranth's simulator (test helper).

The Python simulator spends most of its time in testbench calls, so the
stimulus sits in a ROM that a counter walks one row per cycle, and the
results go into a RAM written whenever ``capture`` is high; the testbench
only advances the clock and reads the RAM at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

import mpsim
from sim.vectors import operand_codes  # the co-simulation's edge-biased stimulus, shared


class _Harness(Elaboratable):
    def __init__(
        self,
        dut: Elaboratable,
        inputs: Sequence[Value],
        rows: list[int],
        outputs: Sequence[Value],
        capture: Value | None,
        depth: int,
    ) -> None:
        self.dut = dut
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.capture = capture
        self.stim = Memory(shape=max(sum(len(s) for s in self.inputs), 1), depth=len(rows), init=rows)
        self.resp = Memory(shape=sum(len(s) for s in self.outputs), depth=max(depth, 1), init=[])
        self.rows = len(rows)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = self.dut
        m.submodules.stim = self.stim
        m.submodules.resp = self.resp
        addr = Signal(range(self.rows + 1))
        count = Signal(range(self.resp.depth + 1))
        read = self.stim.read_port(domain="comb")
        write = self.resp.write_port()
        capture = self.capture if self.capture is not None else addr < self.rows
        m.d.comb += read.addr.eq(addr)
        with m.If(addr < self.rows):
            m.d.sync += addr.eq(addr + 1)
        pos = 0
        for s in self.inputs:
            m.d.comb += s.eq(Cat(read.data[pos : pos + len(s)]))
            pos += len(s)
        m.d.comb += [
            write.addr.eq(count),
            write.data.eq(Cat(*self.outputs)),
            write.en.eq(capture & (count < self.resp.depth)),
        ]
        with m.If(capture & (count < self.resp.depth)):
            m.d.sync += count.eq(count + 1)
        return m


def pack_rows(columns: Sequence[tuple[int, np.ndarray]]) -> list[int]:
    """Rows of a stimulus ROM from (width, values) columns, the first column in the low bits."""
    n = len(columns[0][1])
    total = np.zeros(n, dtype=object)
    shift = 0
    for width, values in columns:
        values = np.asarray(values).astype(np.int64)
        assert values.shape == (n,) and (values >= 0).all() and (values < (1 << width)).all()
        total = total + (values.astype(object) << shift)
        shift += width
    return [int(v) for v in total]


def stream(
    dut: Elaboratable,
    inputs: Sequence[tuple[Value, np.ndarray]],
    outputs: Sequence[Value],
    *,
    capture: Value | None = None,
    results: int | None = None,
) -> list[list[int]]:
    """Drive ``inputs`` (signal, one value per cycle), collect ``outputs`` per capture.

    Without ``capture`` every stimulus cycle is captured (combinational
    units); a pipelined unit's caller appends idle rows so that it drains.
    Returns one list of values per output signal.
    """
    cols = [(len(sig), np.asarray(vals)) for sig, vals in inputs]
    rows = pack_rows(cols)
    depth = results if results is not None else len(rows)
    harness = _Harness(dut, [sig for sig, _ in inputs], rows, outputs, capture, depth)
    words: list[int] = []

    async def bench(ctx) -> None:
        await ctx.tick().repeat(len(rows) + 2)
        words.extend(ctx.get(harness.resp.data[i]) for i in range(depth))

    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    out: list[list[int]] = []
    shift = 0
    for sig in outputs:
        mask = (1 << len(sig)) - 1
        out.append([(w >> shift) & mask for w in words])
        shift += len(sig)
    return out


def mac_sequences(rng: np.random.Generator, fa, fb, sequences: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) codes, shape (sequences, steps); a fifth of the steps cancel the step before exactly."""
    a = operand_codes(rng, fa, (sequences, steps))
    b = operand_codes(rng, fb, (sequences, steps))
    if steps > 1:
        cancel = rng.random((sequences, steps - 1)) < 0.2
        a[:, 1:] = np.where(cancel, a[:, :-1], a[:, 1:])
        b[:, 1:] = np.where(cancel, b[:, :-1] ^ (1 << (fb.bits - 1)), b[:, 1:])
    return a, b


def run_mac(
    dut, a: np.ndarray, b: np.ndarray, lengths: np.ndarray | None = None, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Accumulator codes of ``dut`` (a :class:`hls_gen.mac.MAC`) for each sequence (row of ``a``, ``b``).

    ``lengths`` (default: every column) gives each sequence's steps. With
    ``rng``, idle cycles (``valid`` low) and stalls (``en`` low, inputs
    scrambled) are mixed in.
    """
    seqs, width = a.shape
    lengths = np.full(seqs, width) if lengths is None else lengths
    mask = np.arange(width)[None, :] < lengths[:, None]
    a_steps, b_steps = a[mask], b[mask]
    last = (np.cumsum(mask, axis=1) == lengths[:, None])[mask].astype(np.int64)
    n = a_steps.size
    en = np.ones(n, dtype=np.int64)
    valid = np.ones(n, dtype=np.int64)
    if rng is not None:  # insert bubbles and stalls before steps
        extra = rng.random(n) < 0.2
        k = int(extra.sum())
        at = np.flatnonzero(extra)
        a_steps = np.insert(a_steps, at, rng.integers(0, 1 << len(dut.a), k))
        b_steps = np.insert(b_steps, at, rng.integers(0, 1 << len(dut.b), k))
        last = np.insert(last, at, rng.integers(0, 2, k))
        stall = rng.random(k) < 0.5
        en = np.insert(en, at, np.where(stall, 0, 1))
        valid = np.insert(valid, at, np.where(stall, rng.integers(0, 2, k), 0))
    tail = dut.latency + 2

    def pad(x: np.ndarray, v: int) -> np.ndarray:
        return np.concatenate([x, np.full(tail, v, dtype=np.int64)])

    (acc,) = stream(
        dut,
        [
            (dut.en, pad(en, 1)),
            (dut.step.valid, pad(valid, 0)),
            (dut.step.last, pad(last, 0)),
            (dut.a, pad(a_steps, 0)),
            (dut.b, pad(b_steps, 0)),
        ],
        [dut.acc],
        capture=dut.done & dut.en,
        results=seqs,
    )
    return np.array(acc, dtype=np.int64)


def same_values(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Equal as values with the sign of zero; NaN equals NaN (NaN sign and payload are not compared)."""
    nan = np.isnan(got) & np.isnan(want)
    return nan | ((got == want) & (np.signbit(got) == np.signbit(want)))


def mismatches(got_codes: np.ndarray, want: np.ndarray, fmt, context: str = "") -> str:
    """Empty when the codes decode to ``want``; else the first differences, as bits and values."""
    got = mpsim.decode(fmt, got_codes)
    bad = np.flatnonzero(~same_values(got, want.astype(np.float32)))
    if bad.size == 0:
        return ""
    lines = [f"{bad.size} of {got.size} differ {context}"]
    for i in bad[:8]:
        want_code = "NaN" if np.isnan(want[i]) else f"{int(mpsim.encode(fmt, np.float32(want[i]))):#x}"
        lines.append(f"  [{i}] got {int(got_codes[i]):#x} ({got[i]!r}), want {want_code} ({want[i]!r})")
    return "\n".join(lines)
