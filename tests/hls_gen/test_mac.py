"""MAC: random sequences against mpsim.qmatmul with the hardware's LFSR stream (LFSRGrid), bit for bit."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import Value

import mpsim
from hls_gen.mac import MAC
from hls_gen.spec import described
from mpsim.randbits import LFSRGrid
from tests.hls_gen.harness import mac_sequences, mismatches, run_mac


def reference(
    dut: MAC, a: np.ndarray, b: np.ndarray, grid: LFSRGrid, rounding: str, product_rounding: str
) -> np.ndarray:
    """qmatmul of each sequence (a batch of 1 x K by K x 1 products, in order), as the MAC computes it."""
    av = mpsim.decode(dut.a_format, a)[:, None, :]
    bv = mpsim.decode(dut.b_format, b)[:, :, None]
    return mpsim.qmatmul(
        av,
        bv,
        mul=dut.product_format,
        acc=dut.acc_format,
        rounding=rounding,
        mul_rounding=product_rounding,
        order="sequential",
        seed=grid,
    )[:, 0, 0]


CONFIGS = {
    # name: (a, b, acc, product, rounding, product rounding, pipeline, sequences, steps)
    "e4m3-e5m6-rne": ("e4m3", "e4m3", "e5m6", None, "nearest", "nearest", 1, 20_000, 2),
    "e4m3-e5m6-sr8": ("e4m3", "e4m3", "e5m6", None, "stochastic:8", "nearest", 1, 20_000, 2),
    "e4m3-fp16-rne": ("e4m3", "e4m3", "fp16", None, "nearest", "nearest", 0, 20_000, 2),
    "e4m3-fp16-sr8": ("e4m3", "e4m3", "fp16", None, "stochastic:8", "nearest", 2, 20_000, 2),
    "unfused-e4m3-pe5m6sr4-fp16sr8": ("e4m3", "e4m3", "fp16", "e5m6", "stochastic:8", "stochastic:4", 1, 10_000, 3),
}
VARIANTS = {
    "e5m2-bf16-sr8": ("e5m2", "e5m2", "bf16", None, "stochastic:8", "nearest", 0, 2_000, 4),
    "e4m3xe5m2-e6m9-rne": ("e4m3", "e5m2", "e6m9", None, "nearest", "nearest", 2, 2_000, 4),
    "e4m3-fp32-sr16": ("e4m3", "e4m3", "fp32", None, "stochastic:16", "nearest", 1, 2_000, 4),
    "e4m3-e5m6ns-sr8": ("e4m3", "e4m3", "e5m6ns", None, "stochastic:8", "nearest", 1, 2_000, 4),
    "e4m3-e5m6ns-rne": ("e4m3", "e4m3", "e5m6ns", None, "nearest", "nearest", 1, 2_000, 4),
    "e5m2-e5m6sat-rne": ("e5m2", "e5m2", "e5m6sat", None, "nearest", "nearest", 1, 2_000, 4),
    "e5m2-e5m6sat-sr3": ("e5m2", "e5m2", "e5m6sat", None, "stochastic:3", "nearest", 0, 2_000, 4),
    "e4m3fnuz-e5m2fnuz-rne": ("e4m3fnuz", "e4m3fnuz", "e5m2fnuz", None, "nearest", "nearest", 1, 2_000, 4),
    "e4m3-e4m3-sr4": ("e4m3", "e4m3", "e4m3", None, "stochastic:4", "nearest", 1, 2_000, 4),
    "e2m1xe3m2-e3m2-sr2": ("e2m1", "e3m2", "e3m2", None, "stochastic:2", "nearest", 1, 2_000, 4),
    "unfused-e5m2-pe5m2-e5m6-rne": ("e5m2", "e5m2", "e5m6", "e5m2", "nearest", "nearest", 0, 2_000, 4),
    "unfused-bf16-pbf16sr5-fp32-rne": ("bf16", "bf16", "fp32", "bf16", "nearest", "stochastic:5", 2, 2_000, 4),
    "fp16-fp32-sr12": ("fp16", "fp16", "fp32", None, "stochastic:12", "nearest", 1, 2_000, 4),
    "single-step-e4m3-e5m6-sr8": ("e4m3", "e4m3", "e5m6", None, "stochastic:8", "nearest", 1, 2_000, 1),
}


def check(name: str, config: tuple, seed: int) -> None:
    fa, fb, facc, fprod, rounding, prounding, pipeline, sequences, steps = config
    dut = MAC(
        a_format=fa,
        b_format=fb,
        acc_format=facc,
        product_format=fprod,
        rounding=rounding,
        product_rounding=prounding,
        lfsr_width=24,
        lfsr_seed=seed + 1,
        pipeline=pipeline,
    )
    rng = np.random.default_rng(seed)
    a, b = mac_sequences(rng, dut.a_format, dut.b_format, sequences, steps)
    want = reference(dut, a, b, LFSRGrid(24, seed + 1, rows=1, cols=1), rounding, prounding)
    got = run_mac(dut, a, b)
    assert not (report := mismatches(got, want, dut.acc_format, name)), report


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_mac_matches_qmatmul(name: str) -> None:
    check(name, CONFIGS[name], seed=list(CONFIGS).index(name))


# the slowest variants to simulate; the everyday loop keeps a faster one of each kind (stochastic sums into a wide
# format: e4m3-fp32-sr16, fp16-fp32-sr12; saturation: e5m2-e5m6sat-rne; unfused: unfused-bf16-pbf16sr5-fp32-rne)
SLOW_VARIANTS = {"e5m2-bf16-sr8", "e5m2-e5m6sat-sr3", "unfused-e5m2-pe5m2-e5m6-rne"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW_VARIANTS else []) for n in VARIANTS]
)
def test_mac_variants_match_qmatmul(name: str) -> None:
    check(name, VARIANTS[name], seed=100 + list(VARIANTS).index(name))


def test_variable_lengths_bubbles_and_stalls() -> None:
    """Sums of 1..8 steps, idle cycles and stalls (en low) between steps: the LFSR steps only on accepted steps."""
    dut = MAC(
        a_format="e4m3",
        b_format="e4m3",
        acc_format="e5m6",
        rounding="stochastic:8",
        lfsr_width=20,
        lfsr_seed=9,
        pipeline=2,
    )
    rng = np.random.default_rng(5)
    a, b = mac_sequences(rng, dut.a_format, dut.b_format, 1500, 8)
    lengths = rng.integers(1, 9, 1500)
    got = run_mac(dut, a, b, lengths, rng=rng)
    grid = LFSRGrid(20, 9, rows=1, cols=1)  # carries on from one sequence to the next, as the hardware
    want = np.array(
        [
            reference(dut, a[i : i + 1, :n], b[i : i + 1, :n], grid, "stochastic:8", "nearest")[0]
            for i, n in enumerate(lengths)
        ]
    )
    assert not (report := mismatches(got, want, dut.acc_format)), report


def test_latency_and_properties() -> None:
    dut = described(
        MAC(
            a_format="e4m3",
            b_format="e5m2",
            acc_format="fp16",
            product_format="e5m6",
            rounding="stochastic:8",
            product_rounding="stochastic:3",
            pipeline=2,
        )
    )
    assert (dut.latency, dut.lfsr_steps, dut.rand_bits, dut.product_rand_bits) == (3, 11, 8, 3)
    assert (len(dut.a), len(dut.b), len(dut.acc)) == (8, 8, 16)
    assert dut.lfsr.width == 32 and dut.lfsr.seed == 1
    fused = described(MAC(a_format="e4m3", b_format="e4m3", acc_format="e5m6"))
    assert (fused.latency, fused.lfsr_steps, fused.product_format) == (1, 0, None)
    # decoded operands: sig (man_bits + 1), the exponent (5 bits signed: -9..8 for e4m3, -16..15 for e5m2), 4 flags
    decoded = described(MAC(a_format="e4m3", b_format="e5m2", acc_format="fp16", decoded=True))
    assert decoded.decoded and (len(Value.cast(decoded.a)), len(Value.cast(decoded.b))) == (4 + 5 + 4, 3 + 5 + 4)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(product_rounding="stochastic:4"),
            ValueError,
            "product rounding 'stochastic:4' needs a product format; a fused MAC does not round products",
        ),
        (dict(pipeline=3), ValueError, "MAC pipeline registers must be 0..2, not 3"),
        (dict(pipeline=True), TypeError, "MAC pipeline registers must be an integer, not True"),
        (
            dict(rounding="stochastic:12", lfsr_width=10),
            ValueError,
            "accumulator rounding takes 12 random bits, more than the 10-bit LFSR holds",
        ),
        (dict(decoded=1), TypeError, "MAC decoded must be a bool, not 1"),
        (dict(lfsr_width=40), ValueError, "LFSR width must be 3..32, not 40"),
        (dict(lfsr_seed=0), ValueError, "LFSR seed must be 1..2**32-1 (nonzero), not 0"),
        (
            dict(acc_format="e3m2"),
            ValueError,
            "accumulator format e3m2 has no NaN, but operand format e4m3 brings NaN or Inf; "
            "use a format with NaN or finite operand formats",
        ),
        (
            dict(acc_format="q8.8"),
            ValueError,
            "accumulator format must be a floating-point format, not fixed-point q8.8: "
            "the hardware generator has no fixed-point datapath",
        ),
        (
            dict(a_format="fp32"),
            ValueError,
            "multiplier operand format a must be at most 16 bits wide, not fp32 (32 bits): "
            "the multiplier supports FP4..FP16/bf16 operands",
        ),
    ],
)
def test_unbuildable_configurations(kwargs: dict, error: type, message: str) -> None:
    args = dict(a_format="e4m3", b_format="e4m3", acc_format="e5m6") | kwargs
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        MAC(**args)
