"""FPAdder and Accumulator against mpsim: quantize of exact sums, qmatmul with the LFSR stream."""

from __future__ import annotations

import re

import numpy as np
import pytest

import mpsim
from hls_gen.accumulator import Accumulator, FPAdder
from hls_gen.spec import described
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
