"""ArrayConfig names and manifests; emit writes Verilog whose ports are the manifest's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hls_gen.emit import MANIFEST_VERSION, ArrayConfig, emit, load_manifest
from hls_gen.modes import ArithMode
from mpsim.randbits import LFSRGrid


@pytest.mark.parametrize(
    "config, name",
    [
        (
            ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:8", rows=4, cols=4),
            "mac_e4m3_e5m6_sr8_4x4",
        ),
        (ArrayConfig(a_format="e4m3", acc_format="fp16"), "mac_e4m3_fp16_rne_1x1"),
        (
            ArrayConfig(
                a_format="e4m3",
                b_format="e5m2",
                acc_format="bf16",
                product_format="e5m6",
                product_rounding="stochastic:4",
                rows=2,
                cols=8,
                pipeline=2,
            ),
            "mac_e4m3xe5m2_bf16_pe5m6sr4_rne_2x8_pl2",
        ),
        (
            ArrayConfig(a_format="e5m2", acc_format="e6m9", rounding="stochastic:6", lfsr_width=16, lfsr_seed=7),
            "mac_e5m2_e6m9_sr6_1x1_lfsr16s7",
        ),
        (ArrayConfig(a_format="e5m2", acc_format="e6m9", lfsr_width=16, lfsr_seed=7), "mac_e5m2_e6m9_rne_1x1"),
    ],
)
def test_names_carry_the_parameters(config: ArrayConfig, name: str) -> None:
    assert config.name == name


def test_a_long_arithmetic_gives_way_to_its_digest() -> None:
    """Names stay under Verilator's hashing length: a many-mode array's modes become a SHA-256 prefix of them."""
    arithmetic = [("e4m3", "fp16", "stochastic:8"), ("e5m2", "fp16", "stochastic:8"), ("bf16", "fp32", "nearest")]
    arithmetic.append(("e4m3", "e5m6", "stochastic:4"))
    modes = tuple(ArithMode(a_format=a, acc_format=acc, rounding=r) for a, acc, r in arithmetic)
    config = ArrayConfig(modes=modes, rows=2, cols=2, interleave=2)
    assert re.fullmatch(r"mac_modes_h[0-9a-f]{12}_2x2_il2", config.name), config.name
    assert ArrayConfig(modes=modes, rows=2, cols=2, interleave=2).name == config.name  # the same every time
    assert ArrayConfig(modes=modes[:2], rows=2, cols=2, interleave=2).name != config.name
    assert ArrayConfig(modes=modes[::-1], rows=2, cols=2, interleave=2).name != config.name  # mode codes differ
    # a name up to 64 characters is kept whole
    assert ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=2, interleave=8).name == "mac_e4m3_sr_bf16_2x2_il8"


def test_manifest_describes_the_design() -> None:
    config = ArrayConfig(
        a_format="e4m3",
        b_format="e5m2",
        acc_format="e5m6",
        product_format="e5m6",
        rounding="stochastic:8",
        product_rounding="stochastic:3",
        rows=2,
        cols=3,
        pipeline=2,
    )
    m = config.manifest("top").to_json()
    (mode,) = m["modes"]
    assert m["manifest_version"] == MANIFEST_VERSION and m["top"] == "top" and m["verilog"] == "top.v"
    ports = {p["name"]: p for p in m["ports"]}
    fields = {
        name: [(f["name"], f["offset"], f["width"], f["signed"]) for f in ports[name]["fields"]]
        for name in ("inp__payload", "out__payload")
    }
    # a[r] (e4m3), b[c] (e5m2), then last; data[c] (e5m6), row (one bit: two rows), last: LSB first, back to back
    a_fields = [(f"a[{r}]", 8 * r, 8, False) for r in range(2)]
    b_fields = [(f"b[{c}]", 16 + 8 * c, 8, False) for c in range(3)]
    assert fields["inp__payload"] == a_fields + b_fields + [("last", 40, 1, False)]
    assert fields["out__payload"] == [(f"data[{c}]", 12 * c, 12, False) for c in range(3)] + [
        ("row", 36, 1, False),
        ("last", 37, 1, False),
    ]
    assert (ports["inp__payload"]["width"], ports["out__payload"]["width"]) == (41, 38)
    assert {p["name"] for p in m["ports"] if p["direction"] == "input"} == {
        "clk",
        "rst",
        "inp__valid",
        "inp__payload",
        "out__ready",
    }
    assert {p["name"] for p in m["ports"] if p["direction"] == "output"} == {"inp__ready", "out__valid", "out__payload"}
    assert m["streams"]["input"] == {"valid": "inp__valid", "ready": "inp__ready", "payload": "inp__payload"}
    assert m["streams"]["output"] == {"valid": "out__valid", "ready": "out__ready", "payload": "out__payload"}
    assert m["mode_field"] is None
    assert mode["formats"]["acc"] | {} == {
        "name": "e5m6",
        "bits": 12,
        "exp_bits": 5,
        "man_bits": 6,
        "bias": 15,
        "subnormals": True,
        "specials": "ieee",
        "overflow": "inf",
        "max_code": 0x7BF,
        "nan_code": 0x7E0,
        "inf_code": 0x7C0,
    }
    random = m["random"]
    assert (mode["random"]["product_bits"], mode["random"]["sum_bits"], random["steps_per_beat"]) == (3, 8, 11)
    assert random["pe_seeds"] == LFSRGrid(32, 1, rows=2, cols=3).seeds.tolist()
    assert random["lfsr"]["mask"] == sum(1 << (t - 1) for t in random["lfsr"]["taps"])
    # pipeline 2, one sum per PE, the flush step crossing (2 - 1) + (3 - 1) PEs, the PE's two load registers, a
    # cycle into the buffer
    assert m["latency"]["last_beat_to_out_valid"] == 2 + 1 + (2 - 1) + (3 - 1) + 2 + 1
    assert mode["arithmetic"] == {
        "fused": False,
        "order": "sequential",
        "accumulator_start": "+0",
        "product_rounding": "stochastic:3",
        "accumulator_rounding": "stochastic:8",
        "nan_output": "the format's nan_code (canonical; NaN sign and payload are not meaningful)",
    }
    assert ArrayConfig.from_manifest(json.loads(json.dumps(m))) == config


def test_emit_writes_verilog_and_manifest(tmp_path: Path) -> None:
    config = ArrayConfig(a_format="e4m3", acc_format="e5m6", rounding="stochastic:4", rows=2, cols=2)
    v_path, j_path = emit(config, tmp_path / "sub" / "my_mac.v")
    assert (v_path.name, j_path.name) == ("my_mac.v", "my_mac.json")
    text = v_path.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("// Generated by hls_gen")
    assert lines[1].strip() == f"//   {config.command(str(tmp_path / 'sub'))}"  # the folder; the CLI names files
    assert "(* src" not in text
    manifest = load_manifest(j_path)
    header = re.search(r"^module my_mac\((.*?)\);", text, re.M)
    assert header is not None
    assert set(header.group(1).replace(" ", "").split(",")) == {p["name"] for p in manifest["ports"]}
    for p in manifest["ports"]:
        decl = re.search(rf"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?{p['name']};", text, re.M)
        assert decl is not None, p["name"]
        assert decl.group(1) == p["direction"]
        assert (int(decl.group(2)) + 1 if decl.group(2) else 1) == p["width"]


def test_bad_output_name(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"^output name must start with a letter \(it names the Verilog module\), not '4x4'$"
    ):
        emit(ArrayConfig(a_format="e4m3", acc_format="e5m6"), tmp_path / "4x4")


def test_manifest_version_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"manifest_version": 0}))
    with pytest.raises(ValueError, match=rf"^manifest version must be {MANIFEST_VERSION}, not 0 in .*m\.json$"):
        load_manifest(path)
