"""LFSR component: the bits mpsim.randbits.LFSR draws, k per enabled cycle, seeded at reset."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hls_gen.lfsr import LFSR
from hls_gen.spec import described
from mpsim.randbits import LFSR as ModelLFSR
from tests.hls_gen.harness import stream


@pytest.mark.parametrize(
    "width, seed, steps", [(3, 5, 1), (8, 1, 8), (16, 0xACE1, 5), (24, 77, 24), (32, 1, 8), (32, 0xDEADBEEF, 40)]
)
def test_bits_are_the_model_draws(width: int, seed: int, steps: int) -> None:
    dut = LFSR(width=width, seed=seed, steps=steps)
    rng = np.random.default_rng(width)
    en = (rng.random(600) < 0.7).astype(np.int64)
    bits, state = stream(dut, [(dut.en, en)], [dut.bits, dut.state])
    model = ModelLFSR(width, seed)
    want_bits, want_state = [], []
    for e in en:  # bits show the next draw; a cycle with en takes it
        want_state.append(model.state)
        want_bits.append(int(ModelLFSR(width, seed=model.state).draw(1, steps)[0]))
        if e:
            model.draw(1, steps)
    assert state == want_state
    assert bits == want_bits


def test_enabled_cycles_give_consecutive_draws() -> None:
    dut = LFSR(width=16, seed=3, steps=6)
    (bits,) = stream(dut, [(dut.en, np.ones(300, np.int64))], [dut.bits])
    assert bits == ModelLFSR(16, 3).draw(300, 6).tolist()


def test_custom_taps() -> None:
    taps = (16, 14, 13, 11)
    dut = LFSR(width=16, seed=9, steps=3, taps=taps)
    (bits,) = stream(dut, [(dut.en, np.ones(100, np.int64))], [dut.bits])
    assert bits == ModelLFSR(16, 9, taps).draw(100, 3).tolist()
    assert dut.spec.tap_positions == taps


def test_properties() -> None:
    dut = described(LFSR(width=20, seed=5, steps=7))
    assert (dut.width, dut.seed, dut.steps, len(dut.bits), len(dut.state)) == (20, 5, 7, 7, 20)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(width=2), ValueError, "LFSR width must be 3..32, not 2"),
        (dict(width=8, seed=256), ValueError, "LFSR seed must be 1..2**8-1 (nonzero), not 256"),
        (dict(seed=1.5), TypeError, "LFSR seed must be an integer, not 1.5"),
        (dict(steps=0), ValueError, "LFSR steps per cycle must be 1..256, not 0"),
        (dict(width=8, taps=(7, 3)), ValueError, "LFSR taps must be positions 1..8 including 8, not (7, 3)"),
    ],
)
def test_bad_parameters(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        LFSR(**kwargs)
