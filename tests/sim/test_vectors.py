"""Stimulus is a pure function of its seed; expected values are mpsim's, independent of any RTL."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import mpsim
from hls_gen.emit import MultiplierConfig, emit
from hls_gen.regen import RTL_DIR
from sim.manifest import read_manifest
from sim.vectors import Stimulus, array_vectors, multiplier_vectors


def test_same_seed_same_vectors() -> None:
    design = read_manifest(RTL_DIR / "mac_e4m3_e5m6_sr8_4x4.json")
    one, two = array_vectors(design, Stimulus(seed=4, steps=300)), array_vectors(design, Stimulus(seed=4, steps=300))
    other = array_vectors(design, Stimulus(seed=5, steps=300))
    assert one.beats == two.beats and np.array_equal(one.want, two.want)
    assert one.beats != other.beats
    # beat 0: step 0 of job 0 (batch 0, row and column tile 0), packed by the manifest's payload fields
    payload, a, b = design.stream("input").payload, one.a_codes[0], one.b_codes[0]
    column, row = np.zeros(4, np.int64), np.zeros(4, np.int64)
    column[: a.shape[1]], row[: b.shape[2]] = a[0, :4, 0], b[0, 0, :4]
    assert payload.read_array(one.beats[0], "a") == column.tolist()
    assert payload.read_array(one.beats[0], "b") == row.tolist()
    assert payload.read(one.beats[0], "last") == int(one.jobs[0].k == 1)


def test_array_reference_is_qmatmul_of_the_tiles() -> None:
    """Reassembled from its tiles, the expected output is one qmatmul over the product (fresh LFSRGrid)."""
    design = read_manifest(RTL_DIR / "mac_e4m3_e5m6_sr8_4x4.json")
    vectors = array_vectors(design, Stimulus(seed=1, steps=50, max_k=6))
    a, b = vectors.a_codes[0], vectors.b_codes[0]
    want = mpsim.qmatmul(
        mpsim.decode(design.modes[0].a_format, a),
        mpsim.decode(design.modes[0].b_format, b),
        acc="e5m6",
        rounding="stochastic:8",
        seed=mpsim.randbits.LFSRGrid(32, 1, rows=4, cols=4),
    )
    jobs = [j for j in vectors.jobs if j.product == 0]
    for index, job in enumerate(jobs):
        tile = vectors.want[index][vectors.valid[index]]
        block = want[job.batch, job.row_tile * 4 : job.row_tile * 4 + 4, job.col_tile * 4 : job.col_tile * 4 + 4]
        codes = mpsim.encode(design.modes[0].acc_format, np.asarray(block, np.float32)).reshape(-1)
        nan = np.isnan(block.reshape(-1))
        assert np.array_equal(np.where(nan, design.modes[0].acc_format.nan_code, codes), tile)


def test_multiplier_stochastic_reference_uses_lfsr_draws(tmp_path: Path) -> None:
    _, path = emit(
        MultiplierConfig(a_format="e4m3", out_format="e4m3", rounding="stochastic:4", lanes=2), tmp_path / "m"
    )
    design = read_manifest(path)
    vectors = multiplier_vectors(design, Stimulus(lfsr_seed=9, vectors=500))
    assert np.array_equal(vectors.rand, mpsim.randbits.LFSR(32, 9).draw(500, 4))
    exact = mpsim.decode(design.a_format, vectors.a).astype(np.float64) * mpsim.decode(design.b_format, vectors.b)
    want = mpsim.quantize(exact, "e4m3", "stochastic:4", seed=mpsim.randbits.LFSR(32, 9))
    finite = ~np.isnan(want)
    assert np.array_equal(mpsim.encode(design.out_format, want[finite].astype(np.float32)), vectors.want[finite])
