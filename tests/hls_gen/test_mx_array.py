"""MX arrays from ``mpsim emit --mul MX``: names, manifest (formats, scales, block window, stream rule), bad input."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from hls_gen.emit import ArrayConfig, emit
from hls_gen.manifest import ArrayManifest, ManifestError
from hls_gen.modes import ArithMode
from hls_gen.mx_mac import MXMAC
from mpsim.cli import main
from mpsim.formats import parse_format
from mpsim.gemm_config import GemmConfig
from mpsim.mx import block_window, parse_mx_format
from mpsim.precision import PRECISION_PRESETS, GemmKind

#: Every MX format the generator builds (MXINT8's fixed-point elements are refused), with an accumulator.
FORMATS = [
    ("mxfp8_e4m3", "fp16", "stochastic:8", "mac_mxfp8_e4m3_fp16_sr8_4x4"),
    ("mxfp8_e5m2", "bf16", "nearest", "mac_mxfp8_e5m2_bf16_rne_4x4"),
    ("mxfp6_e3m2", "fp16", "stochastic:8", "mac_mxfp6_e3m2_fp16_sr8_4x4"),
    ("mxfp6_e2m3", "bf16", "stochastic:4", "mac_mxfp6_e2m3_bf16_sr4_4x4"),
    ("mxfp4_e2m1", "e5m6", "nearest", "mac_mxfp4_e2m1_e5m6_rne_4x4"),
    ("mx:e3m4:b16", "fp16", "nearest", "mac_mx_e3m4_b16_fp16_rne_4x4"),
    ("mxfp8_e4m3,mxfp8_e5m2", "fp32", "stochastic:16", "mac_mxfp8_e4m3xmxfp8_e5m2_fp32_sr16_4x4"),
]


@pytest.mark.parametrize(("mul", "acc", "rounding", "name"), FORMATS)
def test_mx_configurations(mul: str, acc: str, rounding: str, name: str) -> None:
    """Each format's array: its name, its manifest read back, its qmatmul config, its payload's scale fields."""
    a, _, b = mul.partition(",")
    config = ArrayConfig(a_format=a, b_format=b or None, acc_format=acc, rounding=rounding, rows=4, cols=4)
    assert config.name == name
    manifest = config.manifest(name)
    text = json.loads(json.dumps(manifest.to_json()))
    read = ArrayManifest.from_json(text)
    (mode,) = read.modes
    fa, fb = parse_mx_format(a), parse_mx_format(b or a)
    assert mode.mx == (fa, fb) and (mode.a_format, mode.b_format) == (fa.element, fb.element)
    want = GemmConfig(mul=mul, acc=parse_format(acc), rounding=rounding, order="sequential")
    assert mode.gemm_config == config.gemm_config == want
    entry = text["modes"][0]["mx"]
    lsb, width = block_window(fa, fb)
    assert entry["block_sum_window"] == {"lsb": lsb, "width": width, "register_bits": width + 1}
    assert entry["block_size"] == fa.block_size and entry["scale"]["nan_code"] == 0xFF
    assert text["modes"][0]["random"]["steps_per_block"] == (0 if rounding == "nearest" else int(rounding[11:]))
    fields = read.stream("input").payload.field_map
    assert [fields[f"a_scale[{r}]"][1] for r in range(4)] == [8] * 4 and f"b_scale[{3}]" in fields
    assert f"mul={mul!r}" in text["reference"] and ArrayConfig.from_manifest(read) == config


@pytest.mark.parametrize(
    "config",
    [
        ArrayConfig(a_format="mxfp6_e2m3:b4", acc_format="fp16", rounding="stochastic:8", cols=2),
        # three MX modes (a choice field with a code no mode has: the LFSR's case statement covers it), L = 2
        ArrayConfig(
            modes=(
                ArithMode(a_format="mxfp8_e4m3:b4", acc_format="fp16", rounding="stochastic:8"),
                ArithMode(a_format="mxfp8_e5m2:b4", b_format="mxfp8_e4m3:b4", acc_format="bf16"),
                ArithMode(a_format="mxfp4_e2m1:b4", acc_format="fp16", rounding="stochastic:3"),
            ),
            cols=2,
            interleave=2,
            pipeline=6,
        ),
    ],
    ids=["single", "modes"],
)
def test_mx_verilog_lints_clean(config: ArrayConfig, tmp_path: Path) -> None:
    """Verilator -Wall with the reviewed waivers (hls_gen.LINT_WAIVERS) reports nothing on an MX array."""
    from tests.hls_gen.test_rtl import lint

    v_path, _ = emit(config, tmp_path / "mx")
    result = lint(v_path)
    assert result.returncode == 0 and "%Warning" not in result.stderr, result.stderr


def test_emit_command_writes_an_mx_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mpsim emit --mul mxfp8_e4m3 ...`: the files, the command in the header writes the same Verilog again."""
    out = tmp_path / "designs"
    args = ["emit", "--mul", "mxfp4_e2m1:b4", "--acc", "fp16", "--rounding", "stochastic:8", "--array", "1x2"]
    assert main([*args, "--out", str(out)]) == 0
    name = out / "mac_mxfp4_e2m1_b4_fp16_sr8_1x2"
    assert capsys.readouterr().out.strip() == f"wrote {name}.v and {name}.json"
    manifest = json.loads(name.with_suffix(".json").read_text())
    assert manifest["command"] == " ".join(["mpsim", *args, "--pipeline 1 --lfsr-width 32 --lfsr-seed 1"])
    assert manifest["modes"][0]["mx"]["a"] == "mxfp4_e2m1:b4" and manifest["modes"][0]["formats"]["a"]["bits"] == 4
    verilog = name.with_suffix(".v").read_text()
    header = verilog.splitlines()[1].removeprefix("//").strip()
    name.with_suffix(".v").unlink()
    assert main(shlex.split(header)[1:]) == 0
    assert name.with_suffix(".v").read_text() == verilog


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--unit", "multiplier", "--mul", "mxfp8_e4m3"],
            "--unit multiplier multiplies element formats, not MX format mxfp8_e4m3; an MX design is --unit array "
            "or mac (its PEs take a block's elements and scales)",
        ),
        (
            ["--mul", "mxfp8_e4m3", "--acc", "fp16", "--product", "e5m6"],
            "an MX array sums each block's products exactly: it takes no product format, not e5m6",
        ),
        (
            ["--mul", "mxfp8_e4m3", "--acc", "fp16", "--interleave", "17"],
            "MX MAC interleave must be 1..16, not 17",
        ),
        (
            ["--mul", "mxfp8_e4m3", "--acc", "fp16", "--pipeline", "7"],
            "MX MAC pipeline registers must be 0..6, not 7",
        ),
        (
            ["--mul", "mxfp8_e4m3", "--acc", "fp16", "--pipeline", "2", "--dsp", "ecp5"],
            "an MX array's PEs use inferred multipliers ('inferred'), not dsp 'ecp5'",
        ),
        (
            ["--mul", "mxint8", "--acc", "fp16"],
            "MX operand format a must have floating-point elements, not mxint8 (elements int8): the hardware "
            "generator has no fixed-point datapath",
        ),
        (
            ["--mul", "mxfp8_e4m3", "--acc", "e3m2"],
            "accumulator format e3m2 has no NaN, but an MX block's NaN scale (0xFF) brings NaN; use a format with NaN",
        ),
        (
            ["--mul", "mxfp8_e4m3,mxfp8_e5m2:b16", "--acc", "fp16"],
            "MX operands must share a block size: a's mxfp8_e4m3 has 32, b's mxfp8_e5m2:b16 has 16",
        ),
        (
            ["--precision", "mxfp4"],
            "precision 'mxfp4': its grad_input GEMM rounds its MX elements stochastic:8; a MAC array's random "
            "stream rounds the accumulator only (its operands arrive quantized)",
        ),
        (
            ["--precision", "mxfp8", "--precision", "e4m3"],
            "modes 0 (mxfp8_e4m3_fp16_rne) and 3 (e4m3_fp16_rne): an array's modes must be all MX or all "
            "element-wise (its PEs are block dot-product units or element MACs)",
        ),
        (
            ["--mul", "mxfp8_e4m3,e4m3", "--acc", "fp16"],
            "unknown MX format 'e4m3': expected one of mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, "
            "mxint8 or mx:ELEMENT[:bN][:MODE]",
        ),
    ],
)
def test_emit_errors(args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emit", *args, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"mpsim emit: error: {message}"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("modes", "message"),
    [
        (
            (ArithMode(a_format="mxfp8_e4m3", acc_format="fp16"), ArithMode("bf16", "bf16")),
            "modes 0 (mxfp8_e4m3_fp16_rne) and 1 (bf16_bf16_rne): an array's modes must be all MX or all element-wise "
            "(its PEs are block dot-product units or element MACs)",
        ),
        (
            (ArithMode(a_format="mxfp8_e4m3", acc_format="fp16"), ArithMode("mxfp6_e2m3:b16", "fp16")),
            "modes 0 (mxfp8_e4m3_fp16_rne) and 1 (mxfp6_e2m3:b16_fp16_rne): an MX array's modes share one block size, "
            "not 32 and 16",
        ),
        (
            (
                ArithMode(a_format="mxfp8_e4m3", acc_format="fp16"),
                ArithMode("mxfp8_e5m2", "fp16", product_format="e5m6"),
            ),
            "mode 1 (mxfp8_e5m2): an MX mode sums each block's products exactly: it takes no product format, not e5m6",
        ),
        (
            (ArithMode(a_format="mxfp8_e4m3", acc_format="fp16"), ArithMode("mxfp8_e5m2", "e3m2")),
            "mode 1 (mxfp8_e5m2): accumulator format e3m2 has no NaN, but an MX block's NaN scale (0xFF) brings NaN; "
            "use a format with NaN",
        ),
        (
            (ArithMode(a_format="mxfp8_e4m3", acc_format="fp16"), ArithMode("mxfp8_e5m2", "fp16", b_format="e4m3")),
            "mode 1 (mxfp8_e5m2): unknown MX format 'e4m3': expected one of mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, "
            "mxfp6_e2m3, mxfp4_e2m1, mxint8 or mx:ELEMENT[:bN][:MODE]",
        ),
    ],
)
def test_bad_mx_modes_are_one_line(modes: tuple, message: str) -> None:
    """An array's modes are all MX of one block size (MXMAC PEs) or all element-wise: anything else is one line."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ArrayConfig(modes=modes).build()


def test_mx_precision_modes_make_a_multi_mode_mx_array() -> None:
    """`mpsim emit --precision mxfp8 --precision mxfp8-sr`: six MX modes (the two presets' three GEMMs, nearest and
    stochastic), each mode's MX formats and qmatmul config in the manifest read back, the mode field in the payload
    beside the scales."""
    config = ArrayConfig(precisions=("mxfp8", "mxfp8-sr"), rows=2, cols=2)
    assert config.mx and config.name == "mac_mxfp8_mxfp8_sr_2x2"
    read = ArrayManifest.from_json(json.loads(json.dumps(config.manifest(config.name).to_json())))
    assert ArrayConfig.from_manifest(read) == config
    want = []
    for precision in ("mxfp8", "mxfp8-sr"):
        layer = PRECISION_PRESETS[precision].default
        want += [(layer.gemm(kind), f"{precision}/{kind.value}") for kind in GemmKind]
    assert [(m.gemm_config.to_dict(), m.uses) for m in read.modes] == [(c.to_dict(), (u,)) for c, u in want]
    assert all(m.mx is not None and m.mx[0].block_size == 32 for m in read.modes)
    fields = read.stream("input").payload.field_map
    assert fields["mode"][1] == 3 and "a_scale[1]" in fields and read.mode_bits == 3


def test_mxfp4_on_an_array_is_one_line() -> None:
    message = (
        "precision 'mxfp4': its grad_input GEMM rounds its MX elements stochastic:8; a MAC array's random stream "
        "rounds the accumulator only (its operands arrive quantized)"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        ArrayConfig(precisions=("mxfp4",)).build()


def test_manifest_mx_must_match_its_element_formats() -> None:
    config = ArrayConfig(a_format="mxfp8_e4m3", acc_format="fp16", rows=1, cols=1)
    text = config.manifest("top").to_json()
    text["modes"][0]["mx"]["b"] = "mxfp8_e5m2"
    message = "manifest: modes[0].mx.b is mxfp8_e5m2, whose elements are e5m2, but formats.b is e4m3"
    with pytest.raises(ManifestError, match=f"^{re.escape(message)}$"):
        ArrayManifest.from_json(text)


def test_array_pe_is_the_mx_pe() -> None:
    array = ArrayConfig(a_format="mxfp8_e4m3", acc_format="fp16", rows=2, cols=3)._described()
    assert array.mx and isinstance(array.pe, MXMAC) and array.pe.window == (-18, 41)
    assert array.latency == 1 + 1 + 2 + 3 - 1 + 2  # the element-wise array's: pipeline + L + rows + cols - 1 + 2


@pytest.mark.parametrize(
    "config",
    [
        ArrayConfig(
            a_format="mxfp4_e2m1:b2", acc_format="fp16", rounding="stochastic:4", rows=2, cols=2, lfsr_width=16
        ),
        ArrayConfig(
            a_format="mxfp8_e4m3:b4",
            b_format="mxfp8_e5m2:b4",
            acc_format="fp16",
            rounding="stochastic:8",
            rows=2,
            cols=2,
            lfsr_width=16,
            interleave=3,
            pipeline=3,
        ),
        pytest.param(  # MX modes, jobs switching mode back to back (product i in mode i mod 4): about a minute
            ArrayConfig(
                modes=(
                    ArithMode(a_format="mxfp8_e4m3:b4", acc_format="fp16", rounding="stochastic:8"),
                    ArithMode(a_format="mxfp8_e5m2:b4", b_format="mxfp8_e4m3:b4", acc_format="fp16"),
                    ArithMode(
                        a_format="mxfp6_e2m3:b4", b_format="mxfp4_e2m1:b4", acc_format="bf16", rounding="stochastic:5"
                    ),
                    ArithMode(a_format="mxfp4_e2m1:b4", acc_format="fp16", rounding="stochastic:3"),
                ),
                rows=2,
                cols=2,
                lfsr_width=16,
                interleave=2,
                pipeline=4,
            ),
            marks=pytest.mark.slow,
        ),
    ],
    ids=lambda c: c.name,
)
def test_mx_array_in_amaranths_simulator(config: ArrayConfig) -> None:
    """A 2 x 2 MX array in Amaranth's simulator, driven from its manifest with the vectors sim.vectors makes (MX
    edge data, partial tiles, jobs of 1..7 beats: several blocks, short last blocks; interleaved sums), with input
    gaps and back-pressure: every tile equals qmatmul's, rows in order, the first tile after the manifest's
    latency."""
    from amaranth.hdl import Value
    from amaranth.sim import Simulator

    from hls_gen.ports import verilog_name
    from sim.vectors import Stimulus, array_vectors

    dut = config.build()
    design = ArrayManifest.from_json(json.loads(json.dumps(config.manifest("top", dut).to_json())))
    vectors = array_vectors(design, Stimulus(seed=2, steps=240, max_k=7))
    sig = {verilog_name(*path): Value.cast(value) for path, _, value in dut.signature.flatten(dut)}
    source, sink = design.stream("input"), design.stream("output")
    rng = np.random.default_rng(4)
    rows_out: list[int] = []
    marks: list[int] = []

    async def bench(ctx) -> None:
        beat, cycle = 0, 0
        first_last = vectors.jobs[0].k * design.interleave - 1  # its last beat, once per sum
        while len(rows_out) < len(vectors.jobs) * design.tile_rows:
            offer = beat < len(vectors.beats) and rng.random() < 0.8
            if offer:
                ctx.set(sig[source.payload.name], vectors.beats[beat])
            ctx.set(sig[source.valid.name], int(offer))
            ready = int(rng.random() < 0.7)
            ctx.set(sig[sink.ready.name], ready)
            if offer and ctx.get(sig[source.ready.name]):
                if beat == first_last:
                    marks.append(cycle)
                beat += 1
            if ctx.get(sig[sink.valid.name]):
                if len(marks) == 1:
                    marks.append(cycle)
                if ready:
                    rows_out.append(ctx.get(sig[sink.payload.name]))
            await ctx.tick()
            cycle += 1
            assert cycle < 50 * len(vectors.beats) + 1000, "the array stopped"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    got = np.zeros(vectors.want.shape, np.int64)
    payload = sink.payload
    for n, word in enumerate(rows_out):
        j, r = divmod(n, design.tile_rows)
        assert (payload.read(word, "row"), payload.read(word, "last")) == (r, int(r == design.tile_rows - 1))
        if design.mode_bits:
            assert payload.read(word, "mode") == vectors.jobs[j].mode
        got[j, r] = payload.read_array(word, "data")
    assert vectors.checked > 100
    bad = np.argwhere((got != vectors.want) & vectors.valid)
    assert not bad.size, f"{len(bad)} differ, first at job/row/col {bad[0].tolist()}"
    assert marks[1] - marks[0] == design.latency
