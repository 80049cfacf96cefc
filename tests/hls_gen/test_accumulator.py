"""FPAdder and Accumulator against mpsim: quantize of exact sums, qmatmul with the LFSR stream."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal

import mpsim
from hls_gen.accumulator import Accumulator, FPAdder, accumulate
from hls_gen.arith import select_unpacked, unpack
from hls_gen.modes import mode_bits
from hls_gen.spec import described, hw_rounding
from hls_gen.step import step_control
from mpsim.formats import FloatFormat
from mpsim.randbits import LFSR, LFSRGrid
from tests.hls_gen.harness import mismatches, operand_codes, stream


@pytest.mark.parametrize(
    "acc_name, term_name, rounding",
    [
        ("e5m6", "e4m3", "nearest"),
        ("fp16", "e5m2", "stochastic:8"),
        ("e5m6ns", "e5m2", "stochastic:5"),
        ("bf16sat", "fp16", "nearest"),
        ("e4m3", "e4m3", "stochastic:3"),
        ("e5m2fnuz", "e4m3fnuz", "nearest"),
    ],
)
def test_adder_rounds_the_exact_sum(acc_name: str, term_name: str, rounding: str) -> None:
    """round(acc + term): qmatmul of the two-step sum (0 + acc is exact), with the second step's draws."""
    dut = FPAdder(acc_format=acc_name, term_format=term_name, rounding=rounding)
    fa, ft = dut.acc_format, dut.term_format
    rng = np.random.default_rng(3)
    n = 4000
    acc = operand_codes(rng, fa, (n,))
    term = operand_codes(rng, ft, (n,))
    if fa.saturates and fa.has_inf:  # a saturating accumulator never holds Inf (qmatmul's 0 + Inf step would clamp it)
        acc = np.where(np.isinf(mpsim.decode(fa, acc)), acc - (1 << fa.man_bits), acc)
    if fa == ft:  # exact cancellations
        term[: n // 8] = acc[: n // 8] ^ (1 << (ft.bits - 1))
    inputs = [(dut.acc, acc), (dut.term, term)]
    if dut.rand_bits is not None:
        inputs.append((dut.rand, LFSR(16, 11).draw(2 * n, dut.rand_bits)[1::2]))
    (codes,) = stream(dut, inputs, [dut.sum])
    pairs = np.stack([mpsim.decode(fa, acc), mpsim.decode(ft, term)], axis=1)[:, None, :]
    want = mpsim.qmatmul(
        pairs, np.ones((n, 2, 1), np.float32), acc=fa, rounding=rounding, seed=LFSRGrid(16, 11, rows=1, cols=1)
    )[:, 0, 0]
    # qmatmul's sums start from +0; an adder keeps -0 + -0 = -0 (IEEE 754)
    both_negative_zero = (
        (pairs[:, 0, 0] == 0) & (pairs[:, 0, 1] == 0) & np.signbit(pairs[:, 0, 0]) & np.signbit(pairs[:, 0, 1])
    )
    want = np.where(both_negative_zero & fa.has_negative_zero, np.float32(-0.0), want)
    assert not (report := mismatches(np.array(codes), want, fa)), report


@pytest.mark.parametrize(
    "acc_name, term_name, rounding, pipeline",
    [("e5m6", "e4m3", "nearest", 0), ("e5m6", "e4m3", "stochastic:8", 1), ("fp16", "e5m2", "stochastic:6", 0)],
)
def test_accumulator_sums_like_qmatmul(acc_name: str, term_name: str, rounding: str, pipeline: int) -> None:
    """Sums of 5 terms: qmatmul of (terms) x (ones), the LFSR stepping K bits per term."""
    dut = Accumulator(
        acc_format=acc_name, term_format=term_name, rounding=rounding, lfsr_width=18, lfsr_seed=4, pipeline=pipeline
    )
    rng = np.random.default_rng(pipeline)
    seqs, steps = 3000, 5
    terms = operand_codes(rng, dut.term_format, (seqs, steps))
    n = seqs * steps
    last = (np.arange(n) % steps == steps - 1).astype(np.int64)
    pad = 4
    (codes,) = stream(
        dut,
        [
            (dut.en, np.ones(n + pad, np.int64)),
            (dut.valid, np.r_[np.ones(n, np.int64), np.zeros(pad, np.int64)]),
            (dut.last, np.r_[last, np.zeros(pad, np.int64)]),
            (dut.term, np.r_[terms.reshape(-1), np.zeros(pad, np.int64)]),
        ],
        [dut.acc],
        capture=dut.done,
        results=seqs,
    )
    values = mpsim.decode(dut.term_format, terms)[:, None, :]
    want = mpsim.qmatmul(
        values,
        np.ones((seqs, steps, 1), np.float32),
        acc=dut.acc_format,
        rounding=rounding,
        seed=LFSRGrid(18, 4, rows=1, cols=1),
    )[:, 0, 0]
    assert not (report := mismatches(np.array(codes), want, dut.acc_format)), report


def test_properties() -> None:
    acc = described(
        Accumulator(acc_format="e6m9", term_format="e4m3", rounding="stochastic:8", lfsr_width=16, pipeline=1)
    )
    assert (str(acc.acc_format), str(acc.term_format), acc.rand_bits, acc.lfsr.width, acc.pipeline) == (
        "e6m9",
        "e4m3",
        8,
        16,
        1,
    )
    assert (len(acc.term), len(acc.acc)) == (8, 16)
    adder = described(FPAdder(acc_format="bf16", term_format="e5m2"))
    assert adder.rand_bits is None and not hasattr(adder, "rand")


@pytest.mark.parametrize(
    "make, error, message",
    [
        (
            lambda: FPAdder(acc_format="e2m1", term_format="e5m2"),
            ValueError,
            "accumulator format e2m1 has no NaN, but operand format e5m2 brings NaN or Inf; "
            "use a format with NaN or finite operand formats",
        ),
        (
            lambda: FPAdder(acc_format="e5m6", term_format="e4m3", rounding="up"),
            ValueError,
            "accumulator rounding must be 'nearest' or 'stochastic:K', not 'up': the hardware implements only these",
        ),
        (
            lambda: Accumulator(acc_format="e5m6", term_format="e4m3", pipeline=2),
            ValueError,
            "accumulator pipeline registers must be 0..1, not 2",
        ),
        (
            lambda: Accumulator(acc_format="e5m6", term_format="e4m3", rounding="stochastic:9", lfsr_width=8),
            ValueError,
            "accumulator rounding takes 9 random bits, more than the 8-bit LFSR holds",
        ),
        (
            lambda: Accumulator(acc_format="e5m6", term_format="e4m3", lfsr_width="32"),
            TypeError,
            "LFSR width must be an integer, not '32'",
        ),
    ],
)
def test_unbuildable_configurations(make, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        make()


@pytest.mark.parametrize(
    "acc_name, term_name, rounding, interleave",
    [
        ("e5m6", "e4m3", "nearest", 2),
        ("fp16", "e5m2", "stochastic:8", 4),
        ("e5m6", "e4m3", "stochastic:6", 3),
        ("bf16", "e4m3", "stochastic:5", 7),
        ("e5m6", "e4m3", "stochastic:8", 8),
        ("fp16", "e4m3", "stochastic:4", 10),
        ("e4m3", "e4m3", "stochastic:3", 1),
        ("e5m2fnuz", "e4m3fnuz", "nearest", 5),
    ],
)
def test_interleaved_sums_are_qmatmul_with_the_interleaved_stream(
    acc_name: str, term_name: str, rounding: str, interleave: int
) -> None:
    """Jobs of L sums in (term, sum) order through the pipelined loop, with stalls and bubbles.

    Oracle: qmatmul of the terms (rows = sums) x ones with LFSRGrid(interleave=L), which draws each PE's bits
    in (term, sum) order; every sum starts from +0 and rounds every step.
    """
    dut = Accumulator(
        acc_format=acc_name, term_format=term_name, rounding=rounding, lfsr_width=18, lfsr_seed=5, interleave=interleave
    )
    rng = np.random.default_rng(interleave * 7 + len(acc_name))
    jobs, steps, sums = 60, 5, interleave
    terms = operand_codes(rng, dut.term_format, (jobs, sums, steps))
    if dut.term_format.bits == dut.acc_format.bits:  # some exact cancellations
        terms[:, :, 1] = np.where(
            rng.random((jobs, sums)) < 0.3, terms[:, :, 0] ^ (1 << (dut.term_format.bits - 1)), terms[:, :, 1]
        )
    en, valid, last, term = [], [], [], []

    def cycle(e: int, v: int, la: int, t: int) -> None:
        en.append(e), valid.append(v), last.append(la), term.append(t)

    for job in range(jobs):
        for t in range(steps):
            if t and rng.random() < 0.15:  # a gap inside a job: a run of L bubbles keeps every sum in its slot
                for _ in range(sums):
                    cycle(1, 0, int(rng.integers(0, 2)), int(rng.integers(0, 1 << len(dut.term))))
            for s in range(sums):
                while rng.random() < 0.1:  # stalls: nothing moves, inputs scrambled
                    cycle(0, int(rng.integers(0, 2)), int(rng.integers(0, 2)), int(rng.integers(0, 1 << len(dut.term))))
                cycle(1, 1, int(t == steps - 1), int(terms[job, s, t]))
        for _ in range(int(rng.integers(0, 2 * sums))):  # bubbles between jobs: any number
            cycle(1, 0, int(rng.integers(0, 2)), 0)
    for _ in range(dut.latency + 2):
        cycle(1, 0, 0, 0)
    (codes,) = stream(
        dut,
        [(dut.en, np.array(en)), (dut.valid, np.array(valid)), (dut.last, np.array(last)), (dut.term, np.array(term))],
        [dut.acc],
        capture=dut.done & dut.en,
        results=jobs * sums,
    )
    values = mpsim.decode(dut.term_format, terms.reshape(jobs * sums, steps))[None]
    want = mpsim.qmatmul(
        values,
        np.ones((1, steps, 1), np.float32),
        acc=dut.acc_format,
        rounding=rounding,
        seed=LFSRGrid(18, 5, rows=1, cols=1, interleave=interleave),
    )[0, :, 0]
    assert not (report := mismatches(np.array(codes), want, dut.acc_format)), report


class _ModeLoop(Elaboratable):
    """:func:`accumulate` with several modes behind plain signals (test only): each mode's terms are codes of
    its own format, its random bits come in ``rand`` (low bits) with the step."""

    def __init__(self, modes: list[tuple[str, str, str]], interleave: int) -> None:
        self.modes = [
            (mpsim.parse_format(acc), hw_rounding(r, "rounding"), mpsim.parse_format(t)) for acc, r, t in modes
        ]
        self.interleave = interleave
        self.en, self.valid, self.last, self.done = Signal(), Signal(), Signal(), Signal()
        self.mode = Signal(mode_bits(len(modes)))
        self.term = Signal(max(t.bits for _, _, t in self.modes))
        self.rand = Signal(max(k or 1 for _, k, _ in self.modes))
        self.acc = Signal(max(a.bits for a, _, _ in self.modes))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        step = Signal(step_control(len(self.mode)))
        m.d.comb += [step.valid.eq(self.valid), step.last.eq(self.last), step.mode.eq(self.mode)]
        formats = [t for _, _, t in self.modes]
        unpacked = {f: unpack(m, self.term[: f.bits], f, f"term_{f.label}") for f in dict.fromkeys(formats)}
        loop = accumulate(
            m,
            en=self.en,
            step=step,
            term=select_unpacked(m, self.mode, [unpacked[f] for f in formats], "term"),
            rand=self.rand,
            interleave=self.interleave,
            modes=tuple((a, k) for a, k, _ in self.modes),
            term_bits=tuple(t.man_bits + 1 for t in formats),
        )
        m.d.comb += [self.acc.eq(loop.result), self.done.eq(loop.done)]
        return m


#: (accumulator, rounding, term format) per mode: formats and roundings that one rounder serves together.
LOOP_MODE_SETS = {
    "fp16-sr+bf16": [("fp16", "stochastic:8", "fp16"), ("bf16", "nearest", "fp16"), ("fp16", "stochastic:8", "e5m2")],
    "grids": [
        ("e6m5ns", "stochastic:5", "e6m5ns"),
        ("e5m4fnuz", "nearest", "e5m4fnuz"),
        ("e8m7sat", "nearest", "fp16"),
        ("fp16", "stochastic:3", "e5m6"),
    ],
}


def _near_ties(
    rng: np.random.Generator, acc: FloatFormat, fmt: FloatFormat, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of terms (codes of ``fmt``) whose sum in ``acc`` lies half a quantum from the first term, plus or
    minus one bit ``j`` places under that (``j = 1 .. fmt.man_bits``): a round-to-nearest decision that hangs on
    one bit at every depth. Returns both codes and where the formats hold such a pair exactly."""
    first = mpsim.quantize(mpsim.decode(fmt, operand_codes(rng, fmt, (n,))), acc)
    finite = np.isfinite(first) & (first != 0)
    magnitude = np.where(finite, np.abs(first), 1)
    quantum = np.exp2(np.maximum(np.floor(np.log2(magnitude)), acc.emin) - acc.man_bits)
    depth = rng.integers(1, fmt.man_bits + 1, n)
    second = rng.choice([-1.0, 1.0], n) * quantum / 2 * (1 + rng.choice([-1.0, 1.0], n) * np.exp2(-depth))
    codes = [mpsim.encode(fmt, v.astype(np.float32)) for v in (first, second)]
    exact = finite & (mpsim.decode(fmt, codes[0]) == first) & (mpsim.decode(fmt, codes[1]) == second)
    return codes[0], codes[1], exact


@pytest.mark.parametrize("set_name, interleave", [("fp16-sr+bf16", 1), ("grids", 1), ("fp16-sr+bf16", 8), ("grids", 8)])
def test_loop_of_several_modes_sums_like_qmatmul(set_name: str, interleave: int) -> None:
    """Jobs of L sums, each job in a random mode, through one loop (one rounder for every mode).

    Oracle: each mode's jobs through qmatmul on their own, drawing from that mode's LFSR stream in the order the
    loop takes the steps, (job, step, sum); the loop gets the same draws in ``rand``.
    """
    dut = _ModeLoop(LOOP_MODE_SETS[set_name], interleave)
    rng = np.random.default_rng(len(set_name) * 31 + interleave)
    jobs, steps, sums = 1200 // interleave, 3, interleave
    job_modes = rng.integers(0, len(dut.modes), jobs)
    terms = np.zeros((jobs, sums, steps), np.int64)
    for j, mode in enumerate(job_modes):
        acc, _, fmt = dut.modes[mode]
        terms[j] = operand_codes(rng, fmt, (sums, steps))
        if fmt == acc:  # exact cancellations
            terms[j, :, 1] = np.where(rng.random(sums) < 0.2, terms[j, :, 0] ^ (1 << (fmt.bits - 1)), terms[j, :, 1])
        first, second, exact = _near_ties(rng, acc, fmt, sums)
        tie = exact & (rng.random(sums) < 0.6)
        terms[j, :, 0], terms[j, :, 1] = np.where(tie, first, terms[j, :, 0]), np.where(tie, second, terms[j, :, 1])
    draws = {
        i: iter(LFSR(16, 3 + i).draw(int((job_modes == i).sum()) * sums * steps, k)) if k else None
        for i, (_, k, _) in enumerate(dut.modes)
    }
    rows = []  # (en, valid, last, mode, term, rand) per cycle
    for j, mode in enumerate(job_modes):
        for t in range(steps):
            for s in range(sums):
                rand = int(next(draws[mode])) if draws[mode] is not None else int(rng.integers(0, 1 << len(dut.rand)))
                rows.append((1, 1, int(t == steps - 1), int(mode), int(terms[j, s, t]), rand))
        for _ in range(int(rng.integers(0, 3))):  # bubbles between jobs, their mode ignored
            rows.append((1, 0, 0, int(rng.integers(0, len(dut.modes))), 0, 0))
    rows += [(1, 0, 0, 0, 0, 0)] * (interleave + 3)
    signals = [dut.en, dut.valid, dut.last, dut.mode, dut.term, dut.rand]
    (codes,) = stream(
        dut,
        [(sig, np.array(col)) for sig, col in zip(signals, zip(*rows))],
        [dut.acc],
        capture=dut.done & dut.en,
        results=jobs * sums,
    )
    got = np.array(codes).reshape(jobs, sums)
    for i, (acc, k, fmt) in enumerate(dut.modes):
        mine = np.flatnonzero(job_modes == i)
        values = mpsim.decode(fmt, terms[mine].reshape(-1, steps))[None]
        want = mpsim.qmatmul(
            values,
            np.ones((1, steps, 1), np.float32),
            acc=acc,
            rounding="nearest" if k is None else f"stochastic:{k}",
            seed=LFSRGrid(16, 3 + i, rows=1, cols=1, interleave=interleave),
        )[0, :, 0]
        mask = (1 << acc.bits) - 1
        report = mismatches(got[mine].reshape(-1) & mask, want, acc, f"(mode {i}: {acc.label})")
        assert not report, report
