"""The typed manifest: what emit writes is what sim reads, and a bad file fails with one line naming the value."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import data

import sim.manifest
from hls_gen.emit import ArrayConfig, emit
from hls_gen.manifest import MANIFEST_VERSION, ArrayManifest, ManifestError
from hls_gen.regen import RTL_DIR
from hls_gen.spec import described
from sim.manifest import read_manifest

CONFIGS = [
    ArrayConfig(
        a_format="e4m3",
        b_format="e5m2",
        acc_format="fp16",
        product_format="e5m6",
        rounding="stochastic:8",
        product_rounding="stochastic:3",
        rows=2,
        cols=3,
        pipeline=2,
        lfsr_width=20,
        lfsr_seed=9,
    ),
    ArrayConfig(precisions=("e4m3-sr", "bf16"), rows=2, cols=2, interleave=8),
]


def test_sim_reads_the_type_hls_gen_writes() -> None:
    assert sim.manifest.ArrayDesign is ArrayManifest  # one type, one field list


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_round_trip(config: ArrayConfig, tmp_path: Path) -> None:
    _, path = emit(config, tmp_path / config.name)
    design = read_manifest(path)
    assert isinstance(design, ArrayManifest)
    assert design.to_json() == json.loads(path.read_text())
    assert design == config.manifest(config.name)
    assert ArrayConfig.from_manifest(design) == config
    array = described(config.build())
    assert [m.acc_format for m in design.modes] == [m.acc_format for m in array.pe.modes]
    assert design.random_source().seeds.tolist() == [list(r) for r in array.pe_seeds]
    assert design.verilog == path.with_suffix(".v")


def test_modes_in_the_manifest(tmp_path: Path) -> None:
    _, path = emit(CONFIGS[1], tmp_path / "m")
    data = json.loads(path.read_text())
    assert data["manifest_version"] == MANIFEST_VERSION
    assert [m["code"] for m in data["modes"]] == [0, 1, 2, 3]
    assert data["modes"][1]["uses"] == ["e4m3-sr/grad_input"]
    assert data["modes"][1]["formats"]["a"]["name"] == "e5m2" and data["modes"][1]["formats"]["b"]["name"] == "e4m3"
    assert data["modes"][3]["random"] == {
        "product_bits": 0,
        "sum_bits": 0,
        "steps_per_beat": 0,
        "draws_per_beat": "first product_bits bits round the product, the next sum_bits the sum",
    }
    assert data["mode_field"] | {} == {
        "port": "inp__payload",
        "field": "mode",
        "width": 2,
        "encoding": "the mode's code (its index in modes), the same on every beat of a job",
        "out_port": "out__payload's mode: the code of the tile in its data",
        "switch": "jobs of different modes follow each other with no idle cycle",
    }
    fields = {p["name"]: {f["name"]: f for f in p.get("fields", [])} for p in data["ports"]}
    # the mode after a[0..1], b[0..1] (16 bits each) and last; after data[0..1], the row (2 x 8 rows: 4 bits), last
    assert fields["inp__payload"]["mode"] == {"name": "mode", "offset": 65, "width": 2, "signed": False}
    assert fields["out__payload"]["mode"] == {"name": "mode", "offset": 32 + 4 + 1, "width": 2, "signed": False}
    assert fields["inp__payload"]["a[1]"] == {"name": "a[1]", "offset": 16, "width": 16, "signed": False}
    assert data["command"] == (
        "mpsim emit --precision e4m3-sr --precision bf16 --array 2x2 --pipeline 1 --interleave 8 --lfsr-width 32 "
        "--lfsr-seed 1"
    )


def _edit(data: dict, edit: str) -> dict:
    data = copy.deepcopy(data)
    if edit == "version":
        data["manifest_version"] = MANIFEST_VERSION - 1
    elif edit == "format":
        data["modes"][0]["formats"]["acc"]["bits"] = 13
    elif edit == "missing":
        del data["geometry"]
    elif edit == "codes":
        data["modes"][0]["code"] = 1
    elif edit == "rounding":
        data["modes"][0]["arithmetic"]["accumulator_rounding"] = "nearest"
    elif edit == "stream port":
        data["ports"] = [p for p in data["ports"] if p["name"] != "out__payload"]
    elif edit == "unknown format":
        data["modes"][0]["formats"]["a"]["name"] = "e9m9x"
    return data


@pytest.mark.parametrize(
    "edit, message",
    [
        ("version", r"^manifest version must be 5, not 4 in .*m\.json; regenerate it with the command in its "),
        ("format", r"^.*m\.json: modes\[0\]\.formats\.acc\.bits is 13, but format fp16 has 16$"),
        ("missing", r"^.*m\.json: missing field 'geometry'$"),
        ("codes", r"^.*m\.json: mode codes must be 0\.\.3 in order$"),
        ("rounding", r"^.*m\.json: modes\[0\]\.arithmetic\.accumulator_rounding is 'nearest', but its random bits "),
        ("unknown format", r"^.*m\.json: modes\[0\]\.formats\.a: "),
        ("stream port", r"^.*m\.json: missing field 'out__payload'$"),
    ],
)
def test_bad_manifest_is_one_line(edit: str, message: str, tmp_path: Path) -> None:
    _, path = emit(CONFIGS[1], tmp_path / "m")
    path.write_text(json.dumps(_edit(json.loads(path.read_text()), edit)))
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("path", sorted(RTL_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_checked_in_manifests_read_back_unchanged(path: Path) -> None:
    design = read_manifest(path)
    assert design.to_json() == json.loads(path.read_text())


def _through_layout(const: data.Const, name: str) -> int:
    """Field ``name`` (``last``, ``a[1]``) of a payload constant, read as a component reads its view."""
    value = const
    for attribute, index in re.findall(r"(\w+)|\[(\d+)\]", name):
        value = getattr(value, attribute) if attribute else value[int(index)]
    return int(value)


@pytest.mark.parametrize("direction", ["input", "output"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_payload_fields_round_trip_through_the_layout(config: ArrayConfig, direction: str) -> None:
    """A payload packed by the manifest's fields reads back, field by field, through the array's own layout, and
    one that the layout builds unpacks by the manifest: the manifest alone packs and unpacks a stream."""
    design = ArrayManifest.from_json(json.loads(json.dumps(config.manifest("top").to_json())))
    array = described(config.build())
    layout = (array.inp if direction == "input" else array.out).payload.shape()
    payload = design.stream(direction).payload
    assert payload.width == layout.size == sum(width for _, _, width, _ in payload.fields)
    top = list(dict.fromkeys(name.split("[")[0] for name, *_ in payload.fields))  # a, b, last(, mode) / data, ...
    assert top == [name for name, _ in layout]
    rng = random.Random(config.name + direction)
    for _ in range(50):
        values = {name: rng.getrandbits(width) for name, _, width, _ in payload.fields}
        word = payload.pack_fields(**values)
        const = data.Const(layout, word)
        assert {name: _through_layout(const, name) for name in values} == values
        fields = {
            name: payload.read_array(word, name) if f"{name}[0]" in values else payload.read(word, name) for name in top
        }
        assert payload.pack_fields(**fields) == word
        assert layout.const(fields).as_value().value == word


def test_packing_checks_the_fields() -> None:
    payload = CONFIGS[0].manifest("top").stream("input").payload
    with pytest.raises(ValueError, match=r"^inp__payload\.a\[1\] must be in 0\.\.255 \(8 bits\), not 256$"):
        payload.pack_fields(a=[0, 256])
    with pytest.raises(ValueError, match=r"^inp__payload\.b takes 3 values, not 2$"):
        payload.pack_fields(b=[1, 2])
    with pytest.raises(ValueError, match=r"^inp__payload has no field 'mode'$"):
        payload.pack_fields(mode=1)
    with pytest.raises(ValueError, match=r"^inp__payload has no array field 'last'$"):
        payload.read_array(0, "last")


@pytest.mark.parametrize("direction", ["input", "output"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_numpy_packing_equals_pack_fields(config: ArrayConfig, direction: str) -> None:
    """pack_words/read_words (the executor's NumPy path) against pack_fields/read, word for word, every field."""
    payload = config.manifest("top").stream(direction).payload
    rng = np.random.default_rng(len(config.name))
    rows = 200
    top = list(dict.fromkeys(name.split("[")[0] for name, *_ in payload.fields))
    arrays = {}
    for name in top:
        keys = payload.elements(name) if f"{name}[0]" in payload.field_map else [name]
        widths = [payload.field_map[key][1] for key in keys]
        values = np.stack([rng.integers(0, 1 << w, rows) for w in widths], axis=1)
        arrays[name] = values if f"{name}[0]" in payload.field_map else values[:, 0]
    words = payload.pack_words(rows, **arrays)
    assert words.shape == (rows, -(-payload.width // 32)) and words.dtype == np.uint32
    for i in range(rows):
        word = payload.pack_fields(**{name: v[i].tolist() if v.ndim == 2 else int(v[i]) for name, v in arrays.items()})
        assert sum(int(w) << (32 * n) for n, w in enumerate(words[i])) == word
    for name, values in arrays.items():
        read = payload.read_array_words(words, name) if values.ndim == 2 else payload.read_words(words, name)
        assert (read == values).all()


def test_numpy_packing_checks_the_fields() -> None:
    payload = CONFIGS[0].manifest("top").stream("input").payload
    with pytest.raises(ValueError, match=r"^inp__payload\.a\[1\] must be in 0\.\.255 \(8 bits\), not 256$"):
        payload.pack_words(1, a=np.array([[0, 256]]))
    with pytest.raises(ValueError, match=r"^inp__payload\.b takes \(2, 3\) values, not \(2, 2\)$"):
        payload.pack_words(2, b=np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"^inp__payload has no field 'mode'$"):
        payload.pack_words(1, mode=1)
