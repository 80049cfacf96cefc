"""Multi-mode MAC arrays: jobs of any mode back to back, each bit for bit mpsim.qmatmul in its mode."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

import mpsim
from hls_gen.array import MACArray
from hls_gen.modes import ArithMode, check_modes, training_modes
from hls_gen.ports import input_layout, output_layout
from hls_gen.spec import described
from mpsim.randbits import LFSRGrid
from sim.vectors import canonical_codes, operand_codes
from tests.conftest import stable_seed
from tests.hls_gen.mode_sets import E4M3_SR_BF16, MODE_SETS


def run_jobs(
    array: MACArray,
    jobs: list[tuple[int, np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    *,
    in_rate: float,
    out_rate: float,
) -> list[tuple[int, np.ndarray]]:
    """Stream ``(mode, A codes, B codes)`` jobs (A ``tile_rows x K``, B ``K x cols``); the (mode, C codes) per job."""
    rows, sums, tile_rows = array.rows, array.interleave, array.tile_rows
    inp, out = array.inp, array.out
    beats = []
    for mode, a, b in jobs:
        k_dim = a.shape[1]
        for t in range(k_dim):
            for sl in range(sums):
                beats.append((a[sl * rows : (sl + 1) * rows, t], b[t], mode, int(t == k_dim - 1)))
    got: list[tuple[int, int, list[int], int]] = []

    async def bench(ctx) -> None:
        beat, cycles = 0, 0
        while len(got) < len(jobs) * tile_rows:
            offer = beat < len(beats) and rng.random() < in_rate
            if offer:  # the payload's fields through its view
                a_col, b_row, mode, last = beats[beat]
                for r, code in enumerate(a_col):
                    ctx.set(inp.payload.a[r], int(code))
                for c, code in enumerate(b_row):
                    ctx.set(inp.payload.b[c], int(code))
                ctx.set(inp.payload.mode, mode)
                ctx.set(inp.payload.last, last)
            ctx.set(inp.valid, int(offer))
            ready = int(rng.random() < out_rate)
            ctx.set(out.ready, ready)
            if offer and ctx.get(inp.ready):
                beat += 1
            if ready and ctx.get(out.valid):
                row = ctx.get(out.payload)
                got.append((row.mode, row.row, [int(x) for x in row.data], row.last))
            await ctx.tick()
            cycles += 1
            assert cycles < 100 * len(beats) + 1000, "the array stopped"

    sim = Simulator(array)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    results = []
    for j, (mode, _, _) in enumerate(jobs):
        tile = np.zeros((tile_rows, array.cols), np.int64)
        for r in range(tile_rows):
            got_mode, row, data, last = got[j * tile_rows + r]
            assert (got_mode, row, last) == (mode, r, int(r == tile_rows - 1))
            tile[r] = data
        results.append((mode, tile))
    return results


def reference(array: MACArray, modes: tuple[ArithMode, ...], jobs: list) -> list[np.ndarray]:
    """Each job through mpsim.qmatmul in its mode, one LFSRGrid carrying on from job to job."""
    grid: LFSRGrid = array.random_source()
    out = []
    for mode, a, b in jobs:
        spec = modes[mode]
        a_fmt, b_fmt = mpsim.parse_format(spec.a_format), mpsim.parse_format(spec.b_format or spec.a_format)
        c = mpsim.qmatmul(mpsim.decode(a_fmt, a), mpsim.decode(b_fmt, b), config=spec.gemm_config, seed=grid)
        out.append(canonical_codes(c, mpsim.parse_format(spec.acc_format)))
    return out


def random_jobs(array: MACArray, modes: tuple[ArithMode, ...], n: int, rng: np.random.Generator) -> list:
    hw = check_modes(modes, 32)
    jobs = []
    for _ in range(n):
        mode = int(rng.integers(len(modes)))
        k_dim = int(rng.integers(1, 7))
        a = operand_codes(rng, hw[mode].a_format, (array.tile_rows, k_dim))
        b = operand_codes(rng, hw[mode].b_format, (k_dim, array.cols))
        jobs.append((mode, a, b))
    return jobs


@pytest.mark.parametrize(
    "modes_name, rows, cols, interleave, pipeline, in_rate, out_rate",
    [
        ("e4m3-sr+bf16", 2, 2, 1, 1, 0.9, 0.8),
        ("e4m3-sr+bf16", 1, 3, 4, 2, 0.8, 0.5),
        ("unfused-mixed", 2, 1, 1, 0, 1.0, 1.0),
        ("unfused-mixed", 3, 2, 8, 1, 0.85, 0.7),
        ("rounder-formats", 2, 2, 1, 0, 1.0, 1.0),
        ("rounder-formats", 2, 3, 8, 2, 0.9, 0.8),
    ],
)
def test_jobs_switching_modes_match_qmatmul(
    modes_name: str, rows: int, cols: int, interleave: int, pipeline: int, in_rate: float, out_rate: float
) -> None:
    modes = MODE_SETS[modes_name]
    rng = np.random.default_rng(stable_seed(modes_name, rows, cols, interleave, pipeline))
    array = MACArray(modes=modes, rows=rows, cols=cols, interleave=interleave, pipeline=pipeline, lfsr_seed=7)
    jobs = random_jobs(array, modes, 10, rng)
    got = run_jobs(array, jobs, rng, in_rate=in_rate, out_rate=out_rate)
    want = reference(array, modes, jobs)
    for j, ((mode, tile), expected) in enumerate(zip(got, want)):
        bad = np.argwhere(tile != expected)
        assert bad.size == 0, f"job {j} (mode {mode}): {len(bad)} outputs differ, first at {bad[0]}"


def test_training_modes_of_presets() -> None:
    """e4m3-sr needs three GEMM kinds (e5m2 gradients on either side), bf16 one arithmetic for all three."""
    modes = training_modes(["e4m3-sr", "bf16"])
    assert [(m.a_format, m.b_format, m.acc_format, m.rounding) for m in modes] == [
        ("e4m3", "e4m3", "fp16", "stochastic:8"),
        ("e5m2", "e4m3", "fp16", "stochastic:8"),
        ("e4m3", "e5m2", "fp16", "stochastic:8"),
        ("bf16", "bf16", "bf16", "nearest"),
    ]
    assert modes[3].uses == ("bf16/forward", "bf16/grad_input", "bf16/grad_weight")
    assert training_modes(["e4m3", "e4m3-sr"])[0].uses == ("e4m3/forward",)  # nearest and SR: different modes
    assert len(training_modes(["e4m3", "e4m3-sr"])) == 6


def test_training_modes_of_a_file_with_overrides(tmp_path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(
        "default:\n  weight: e4m3\n  activation: e4m3\n  grad: e5m2\n"
        "  forward: {acc: e5m6, rounding: 'stochastic:6'}\n"
        "  grad_input: {acc: fp16, rounding: 'stochastic:8'}\n"
        "  grad_weight: {acc: fp16, rounding: 'stochastic:8', mul: bf16}\n"
        "overrides:\n  head:\n    weight: bf16\n    activation: bf16\n    grad: bf16\n"
        "    forward: {acc: bf16}\n    grad_input: {acc: bf16}\n    grad_weight: {acc: bf16}\n"
    )
    modes = training_modes([str(path)])
    assert len(modes) == 4
    assert modes[2].product_format == "bf16" and modes[2].b_format == "e5m2"
    assert modes[3].uses == tuple(f"{path}[head]/{k}" for k in ("forward", "grad_input", "grad_weight"))


@pytest.mark.parametrize(
    "precisions, message",
    [
        (["fp32"], r"^precision 'fp32': its forward GEMM is left to torch in fp32 \(emulate=False\); "),
        (["nope"], r"^unknown precision 'nope': expected one of "),
        (
            ["e4m3", "mxfp4"],
            r"^precision 'mxfp4': its grad_input GEMM rounds its MX elements stochastic:8; a MAC array's random "
            r"stream rounds the accumulator only \(its operands arrive quantized\)$",
        ),
    ],
)
def test_training_modes_refuses(precisions: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        training_modes(precisions)


@pytest.mark.parametrize(
    "modes, error, message",
    [
        (
            (ArithMode("e4m3", "fp16"), ArithMode("e4m3", "fp16", b_format="e4m3")),
            ValueError,
            r"^modes 0 and 1 are the same arithmetic ",
        ),
        (
            (ArithMode("e4m3", "fp16"), ArithMode("fp32", "fp32")),
            ValueError,
            r"^mode 1 \(fp32\): multiplier operand format a must be at most 16 bits wide, not fp32 \(32 bits\)",
        ),
        (
            (ArithMode("e4m3", "fp16"), ArithMode("e4m3", "q8.8")),
            ValueError,
            r"^mode 1 \(e4m3\): accumulator format must be a floating-point format, not fixed-point",
        ),
        (
            (ArithMode("e4m3", "fp16"), ArithMode("e4m3", "bf16", rounding="stochastic")),
            ValueError,
            r"^mode 1 \(e4m3\): accumulator rounding must give its random bits, 'stochastic:K'",
        ),
        (
            (ArithMode("e4m3", "fp16"), ArithMode("e4m3", "bf16", rounding="stochastic:40")),
            ValueError,
            r"^mode 1 \(e4m3\): accumulator rounding takes 40 random bits, more than the 32-bit LFSR holds$",
        ),
        (
            tuple(ArithMode("e4m3", f"e5m{m}") for m in range(2, 20)),
            ValueError,
            r"^an array executes 1\.\.16 modes, not 18$",
        ),
        (("e4m3",), TypeError, r"^modes must be a sequence of hls_gen.modes.ArithMode"),
    ],
)
def test_unbuildable_modes_fail_before_elaboration(modes: tuple, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MACArray(modes=modes, rows=2, cols=2)


def test_modes_or_formats_not_both() -> None:
    with pytest.raises(TypeError, match=r"^a MAC takes modes or one mode's formats and roundings, not both"):
        MACArray(modes=E4M3_SR_BF16, a_format="e4m3", rows=1, cols=1)


def test_ports_are_sized_for_the_widest_mode() -> None:
    array = described(MACArray(modes=E4M3_SR_BF16, rows=2, cols=3, interleave=2))
    wide = dict(cols=3, mode_bits=2)  # 16-bit operands and accumulator, four modes
    assert array.inp.payload.shape() == input_layout(rows=2, a_bits=16, b_bits=16, **wide)
    assert array.out.payload.shape() == output_layout(tile_rows=4, acc_bits=16, **wide)
    assert array.inp.payload.shape()["mode"].shape == 2 and array.out.payload.shape()["mode"].shape == 2
    assert array.pe.lfsr_steps == 8 and [m.lfsr_steps for m in array.pe.modes] == [8, 8, 8, 0]
    with pytest.raises(ValueError, match=r"^this MAC has 4 modes; read its formats per mode from \.modes$"):
        _ = array.pe.acc_format
    single = described(MACArray(a_format="e4m3", b_format="e4m3", acc_format="fp16", rows=2, cols=3))
    assert "mode" not in dict(single.inp.payload.shape()) and "mode" not in dict(single.out.payload.shape())
    assert single.pe.mode_bits == 0
