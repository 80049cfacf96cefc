"""mpsim.randbits.LFSRGrid: the MAC array's random stream, and qmatmul reproducing it.

The oracle is a hand-written sequential MAC loop that rounds with
mpsim.quantize, each PE taking its bits from its own mpsim LFSR in the
documented order; the seeds come from stepping one LFSR.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import mpsim
from mpsim.randbits import LFSR, LFSRGrid, lfsr_jump
from mpsim.rounding import parse_rounding


@pytest.mark.parametrize("width, seed, steps", [(5, 3, 0), (5, 3, 7), (8, 1, 200), (12, 77, 4095), (16, 9, 40000)])
def test_jump_equals_stepping(width: int, seed: int, steps: int) -> None:
    model = LFSR(width, seed)
    if steps:
        model.draw(steps, 1)
    assert lfsr_jump(model.spec, seed, steps) == model.state


def test_pe_seeds_walk_one_sequence() -> None:
    grid = LFSRGrid(10, 5, rows=3, cols=2)
    assert grid.stride == (2**10 - 1) // 6
    walker = LFSR(10, 5)
    for p, s in enumerate(grid.seeds.reshape(-1)):
        assert s == walker.state, p
        walker.draw(grid.stride, 1)
    assert grid.seeds[0, 0] == 5
    assert len(set(grid.seeds.reshape(-1).tolist())) == 6


def sequential_reference(a, b, acc, rounding, mul, mul_rounding, width, seed, rows, cols, interleave=1):
    """The documented hardware stream, written out: tiles in (b, i//(R*L), j//C) order, every PE steps each beat.

    With interleave L, PE (r, c) holds L sums (tile rows l*R + r) and takes a job's steps in (t, l) order.
    """
    grid_seeds = LFSRGrid(width, seed, rows=rows, cols=cols).seeds
    pes = [[LFSR(width, int(grid_seeds[r, c])) for c in range(cols)] for r in range(rows)]
    kp = parse_rounding(mul_rounding).rand_bits if mul is not None and parse_rounding(mul_rounding).stochastic else 0
    ks = parse_rounding(rounding).rand_bits if parse_rounding(rounding).stochastic else 0
    batch, m, k_dim = a.shape
    n = b.shape[2]
    out = np.zeros((batch, m, n), np.float32)
    tile_rows = rows * interleave
    for bi in range(batch):
        for ti in range(-(-m // tile_rows)):
            for tj in range(-(-n // cols)):
                for r in range(rows):
                    for c in range(cols):
                        j = tj * cols + c
                        totals = [np.float64(0.0)] * interleave
                        for t in range(k_dim):
                            for sl in range(interleave):
                                i = ti * tile_rows + sl * rows + r
                                draw_p = pes[r][c].draw(1, kp) if kp else None
                                draw_s = pes[r][c].draw(1, ks) if ks else None
                                if i >= m or j >= n:
                                    continue  # padding: the PE steps all the same
                                prod = np.float64(a[bi, i, t]) * np.float64(b[bi, t, j])
                                if mul is not None:
                                    prod = np.float64(
                                        mpsim.quantize(
                                            np.array([prod]),
                                            mul,
                                            mul_rounding,
                                            seed=LFSR(width, 1) if not kp else _fixed(draw_p),
                                        )[0]
                                    )
                                totals[sl] = np.float64(
                                    mpsim.quantize(
                                        np.array([totals[sl] + prod]),
                                        acc,
                                        rounding,
                                        seed=LFSR(width, 1) if not ks else _fixed(draw_s),
                                    )[0]
                                )
                        for sl in range(interleave):
                            i = ti * tile_rows + sl * rows + r
                            if i < m and j < n:
                                out[bi, i, j] = totals[sl]
    return out


class _Fixed(LFSR):
    """An LFSR whose next draw is a given value (feeds quantize one known draw)."""

    def __init__(self, value: int) -> None:
        super().__init__(8, 1)
        self.value = int(value)

    def draw(self, n: int, k: int) -> np.ndarray:
        assert n == 1
        return np.array([self.value], dtype=np.int64)


def _fixed(draw: np.ndarray) -> _Fixed:
    return _Fixed(draw[0])


@pytest.mark.parametrize(
    "rows, cols, shape, mul, mul_rounding, rounding, interleave",
    [
        (1, 1, (3, 1, 4, 1), None, "nearest", "stochastic:8", 1),
        (2, 3, (2, 3, 5, 4), None, "nearest", "stochastic:5", 1),
        (2, 2, (1, 3, 4, 3), "e5m2", "stochastic:3", "stochastic:6", 1),
        (3, 1, (1, 4, 2, 2), "e4m3", "stochastic:4", "nearest", 1),
        (1, 1, (2, 5, 3, 1), None, "nearest", "stochastic:8", 4),
        (2, 3, (1, 7, 4, 4), "e5m2", "stochastic:3", "stochastic:6", 2),
        (3, 2, (2, 5, 3, 3), None, "nearest", "stochastic:5", 3),
    ],
)
def test_qmatmul_with_grid_is_the_sequential_loop(rows, cols, shape, mul, mul_rounding, rounding, interleave) -> None:
    batch, m, k_dim, n = shape
    rng = np.random.default_rng(rows * 10 + cols + 100 * interleave)
    a = mpsim.quantize(rng.standard_normal((batch, m, k_dim)).astype(np.float32), "e4m3")
    b = mpsim.quantize(rng.standard_normal((batch, k_dim, n)).astype(np.float32), "e4m3")
    grid = LFSRGrid(12, 7, rows=rows, cols=cols, interleave=interleave)
    got = mpsim.qmatmul(a, b, mul=mul, mul_rounding=mul_rounding, acc="e5m6", rounding=rounding, seed=grid)
    want = sequential_reference(a, b, "e5m6", rounding, mul, mul_rounding, 12, 7, rows, cols, interleave)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # the PEs carry on: a second call continues each PE's stream
    again = mpsim.qmatmul(a, b, mul=mul, mul_rounding=mul_rounding, acc="e5m6", rounding=rounding, seed=grid)
    fresh = LFSRGrid(12, 7, rows=rows, cols=cols)
    kp = parse_rounding(mul_rounding).rand_bits if mul is not None and mul_rounding != "nearest" else 0
    ks = parse_rounding(rounding).rand_bits if rounding != "nearest" else 0
    jobs = batch * -(-m // (rows * interleave)) * -(-n // cols)
    fresh.pe_bits(2 * jobs * k_dim * interleave * (kp + ks), 1)
    np.testing.assert_array_equal(grid.states, fresh.states)  # every PE stepped kp + ks per beat of each job, twice
    assert again.shape == got.shape


def test_gemm_draws_layout() -> None:
    """Draw (((b*M+i)*N+j)*K+t)*3+g is PE (i%R, j%C)'s t-th beat of its job; stage 2 is never used."""
    grid = LFSRGrid(16, 3, rows=2, cols=2)
    rounding = parse_rounding("stochastic:4")
    draws = grid.gemm_draws((1, 3, 2, 5), rounding, parse_rounding("stochastic:2")).reshape(1, 3, 2, 5, 3)
    pe = LFSRGrid(16, 3, rows=2, cols=2).seeds
    # output (2, 1) is PE (0, 1) in its second job (row tile 1)
    bits = LFSR(16, int(pe[0, 1])).draw(2 * 5 * 6, 1).reshape(2, 5, 6)[1]
    weights = 1 << np.arange(3, -1, -1)
    assert draws[0, 2, 1, :, 0].tolist() == (bits[:, :2] * weights[2:]).sum(axis=1).tolist()
    assert draws[0, 2, 1, :, 1].tolist() == (bits[:, 2:] * weights).sum(axis=1).tolist()
    assert (draws[..., 2] == 0).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda g: mpsim.qmatmul(
                np.ones((2, 2), np.float32),
                np.ones((2, 2), np.float32),
                acc="e5m6",
                rounding="stochastic:4",
                order="pairwise",
                seed=g,
            ),
            "an LFSRGrid models the MAC array's sequential order, not order 'pairwise'",
        ),
        (
            lambda g: mpsim.qmatmul(
                np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), acc="e5m6", rounding="stochastic", seed=g
            ),
            "an LFSRGrid needs a finite number of random bits (rounding 'stochastic:K'), not None",
        ),
        (
            lambda g: mpsim.quantize(np.ones(3, np.float32), "e4m3", "stochastic:4", seed=g),
            "seed must be an integer, a CounterRNG or an LFSR, not LFSRGrid(width=8, seed=1, rows=2, cols=2)",
        ),
    ],
)
def test_grid_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call(LFSRGrid(8, 1, rows=2, cols=2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rows=0, cols=1), "LFSRGrid rows must be a positive integer, not 0"),
        (dict(rows=2, cols=True), "LFSRGrid cols must be a positive integer, not True"),
        (dict(rows=2, cols=2, interleave=0), "LFSRGrid interleave must be a positive integer, not 0"),
        (dict(width=3, rows=4, cols=2), "an LFSRGrid of 4x2 PEs needs more than 7 LFSR states; use a wider LFSR"),
    ],
)
def test_grid_bad_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        LFSRGrid(**kwargs)


def test_nearest_takes_no_bits() -> None:
    grid = LFSRGrid(8, 1, rows=1, cols=1)
    before = grid.states.copy()
    mpsim.qmatmul(np.ones((1, 3), np.float32), np.ones((3, 1), np.float32), acc="e5m6", seed=grid)
    np.testing.assert_array_equal(grid.states, before)
