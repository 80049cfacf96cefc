"""The multiplier top (MultiplierConfig / MultiplierLanes) and `mpsim emit --unit`.

Names, manifests, and the lanes in Amaranth's simulator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import mpsim
from hls_gen.emit import ArrayConfig, MultiplierConfig, MultiplierLanes, emit, load_manifest
from hls_gen.manifest import MultiplierManifest
from hls_gen.spec import described
from mpsim.cli import main
from mpsim.randbits import LFSR
from tests.hls_gen.harness import stream


@pytest.mark.parametrize(
    "config, name",
    [
        (MultiplierConfig(a_format="e4m3", lanes=64), "mul_e4m3_exact_x64"),
        (
            MultiplierConfig(a_format="e4m3", b_format="e5m2", out_format="e5m6", rounding="stochastic:6"),
            "mul_e4m3xe5m2_e5m6_sr6_x1",
        ),
        (MultiplierConfig(a_format="e2m1", out_format="e2m3", lanes=3), "mul_e2m1_e2m3_rne_x3"),
    ],
)
def test_multiplier_names(config: MultiplierConfig, name: str) -> None:
    assert config.name == name


def test_multiplier_manifest(tmp_path: Path) -> None:
    config = MultiplierConfig(a_format="e4m3", b_format="e5m2", out_format="fp16", rounding="stochastic:5", lanes=3)
    v_path, j_path = emit(config, tmp_path / "mul")
    m = load_manifest(j_path)
    assert m["unit"] == "multiplier" and m["command"] == config.command()
    ports = {p["name"]: p for p in m["ports"]}
    assert {
        n: (p["direction"], p["width"], p["elements"]["count"], p["elements"]["width"]) for n, p in ports.items()
    } == {
        "a": ("input", 24, 3, 8),
        "b": ("input", 24, 3, 8),
        "rand_in": ("input", 15, 3, 5),
        "product": ("output", 48, 3, 16),
    }
    assert m["random"]["bits_per_lane"] == 5 and m["latency"] == {"combinational": True, "lanes": 3}
    assert MultiplierConfig.from_manifest(json.loads(json.dumps(m))) == config
    header = re.search(r"^module mul\((.*?)\);", v_path.read_text(), re.M)
    assert header is not None and set(header.group(1).replace(" ", "").split(",")) == set(ports)
    exact_manifest = MultiplierConfig(a_format="e4m3", lanes=2).manifest("x")
    assert MultiplierManifest.from_json(exact_manifest.to_json()) == exact_manifest  # one record, written and read
    exact = exact_manifest.to_json()
    product = exact["ports"][-1]
    widths = {f["name"]: f["width"] for f in product["fields"]}
    assert widths["sig"] == 2 * (3 + 1) and sum(widths.values()) == product["elements"]["width"]
    assert "rand_in" not in {p["name"] for p in exact["ports"]} and exact["random"] is None


def test_lanes_compute_independent_products() -> None:
    """Three lanes of a stochastic e4m3 x e5m2 -> e5m6 multiplier against mpsim.quantize with LFSR draws."""
    dut = MultiplierLanes(a_format="e4m3", b_format="e5m2", out_format="e5m6", rounding="stochastic:6", lanes=3)
    fa, fb, fo = (mpsim.parse_format(n) for n in ("e4m3", "e5m2", "e5m6"))
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 256, (400, 3)), rng.integers(0, 256, (400, 3))
    rand = LFSR(32, 7).draw(1200, 6).reshape(400, 3)

    def pack(x: np.ndarray, w: int) -> np.ndarray:
        return (x[:, 0] | (x[:, 1] << w) | (x[:, 2] << 2 * w)).astype(np.int64)

    (words,) = stream(dut, [(dut.a, pack(a, 8)), (dut.b, pack(b, 8)), (dut.rand_in, pack(rand, 6))], [dut.product])
    got = np.array([[(w >> (12 * i)) & 0xFFF for i in range(3)] for w in words]).reshape(-1)
    with np.errstate(invalid="ignore"):
        exact = mpsim.decode(fa, a.reshape(-1)).astype(np.float64) * mpsim.decode(fb, b.reshape(-1)).astype(np.float64)
    want = mpsim.quantize(exact, fo, "stochastic:6", seed=LFSR(32, 7))
    got_v = mpsim.decode(fo, got)
    same = (np.isnan(got_v) & np.isnan(want)) | ((got_v == want) & (np.signbit(got_v) == np.signbit(want)))
    assert same.all()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(lanes=0), ValueError, "multiplier lanes must be 1..1024, not 0"),
        (dict(lanes=2.0), TypeError, "multiplier lanes must be an integer, not 2.0"),
        (
            dict(rounding="stochastic:4"),
            ValueError,
            "an exact product takes no rounding, not 'stochastic:4'; give out_format to round it",
        ),
    ],
)
def test_unbuildable_multipliers(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        described(MultiplierLanes(**(dict(a_format="e4m3", b_format="e4m3") | kwargs)))


def test_emit_units_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emit", "--unit", "multiplier", "--mul", "e4m3", "--lanes", "4", "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "mul_e4m3_exact_x4.json").read_text())["config"]["lanes"] == 4
    assert main(["emit", "--unit", "mac", "--mul", "e4m3", "--acc", "fp16", "--out", str(tmp_path / "mac")]) == 0
    assert ArrayConfig.from_manifest(
        json.loads((tmp_path / "mac" / "mac_e4m3_fp16_rne_1x1.json").read_text())
    ) == ArrayConfig(a_format="e4m3", acc_format="fp16")
    capsys.readouterr()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--unit", "mac", "--mul", "e4m3", "--acc", "fp16", "--array", "2x2"],
            "a MAC unit is the 1x1 array, not --array 2x2; use --unit array",
        ),
        (
            ["--unit", "multiplier", "--mul", "e4m3", "--acc", "fp16"],
            "--acc is for a MAC or an array; a multiplier has no accumulator, not --acc fp16",
        ),
        (["--mul", "e4m3"], "--acc is required for --unit array"),
        (
            ["--mul", "e4m3", "--acc", "fp16", "--lanes", "4"],
            "--lanes is for --unit multiplier, not --unit array (use --array ROWSxCOLS)",
        ),
    ],
)
def test_emit_unit_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emit", *args, "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == f"mpsim emit: error: {message}"
