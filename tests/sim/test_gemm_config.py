"""One GemmConfig for a generated array: the generator's, the manifest's and the arithmetic it documents agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mpsim
from hls_gen.emit import ArrayConfig, load_manifest
from hls_gen.regen import RTL_DIR
from sim.manifest import read_manifest

MANIFESTS = sorted(RTL_DIR.glob("*.json"))


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_manifest_and_generator_give_one_gemm_config(path: Path) -> None:
    manifest = load_manifest(path)
    design = read_manifest(path)
    generator = ArrayConfig.from_manifest(manifest).arith_modes
    assert len(design.modes) == len(generator)
    for mode, generated, documented in zip(design.modes, generator, manifest["modes"]):
        config = mode.gemm_config
        assert config.to_dict() == generated.gemm_config.to_dict()
        arithmetic = documented["arithmetic"]  # what the manifest documents for a reader of the JSON alone
        assert config.to_dict()["order"] == arithmetic["order"]
        assert config.to_dict()["rounding"] == arithmetic["accumulator_rounding"]
        assert (config.mul is None) == arithmetic["fused"]


def test_qmatmul_takes_the_manifest_config() -> None:
    design = read_manifest(RTL_DIR / "mac_e4m3_e5m6_sr8_4x4.json")
    a = mpsim.quantize(np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6), "e4m3")
    b = mpsim.quantize(np.linspace(2, -2, 18, dtype=np.float32).reshape(6, 3), "e4m3")
    got = mpsim.qmatmul(a, b, config=design.modes[0].gemm_config, seed=design.random_source())
    want = mpsim.qmatmul(a, b, acc="e5m6", rounding="stochastic:8", seed=mpsim.randbits.LFSRGrid(32, 1, rows=4, cols=4))
    np.testing.assert_array_equal(got, want)
