"""MX PE (hls_gen.mx_mac.MXMAC): dot products of MX blocks against mpsim.qmatmul with the hardware's LFSR stream."""

from __future__ import annotations

import re

import numpy as np
import pytest

import mpsim
from hls_gen.modes import ArithMode, HwMode, training_modes
from hls_gen.mx_mac import MXMAC
from hls_gen.spec import described, rounding_string
from mpsim.gemm import plan_of
from mpsim.gemm_config import GemmConfig
from mpsim.gemm_kernels import STAGES
from mpsim.mx import block_window, parse_mx_format
from mpsim.mx_gemm import block_split
from mpsim.mx_gemm_kernels import mx_gemm_sequential
from mpsim.randbits import LFSRGrid
from sim.mx_vectors import mx_codes, mx_values
from sim.vectors import operand_codes
from tests.hls_gen.harness import mismatches, stream


def run_jobs(
    dut: MXMAC,
    jobs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    rng: np.random.Generator | None,
    modes: list[int] | None = None,
) -> np.ndarray:
    """The sum of each job ``(a codes, b codes, a scales, b scales)``, job ``j`` in mode ``modes[j]`` (a multi-mode
    PE); bubbles and stalls between beats with ``rng`` (their modes random: a PE ignores them)."""
    bs = dut.block_size
    cols: dict[str, list[int]] = {k: [] for k in ("en", "valid", "last", "a", "b", "sa", "sb", "mode")}
    for j, (a, b, sa, sb) in enumerate(jobs):
        k = len(a)
        for t in range(k):
            while rng is not None and rng.random() < 0.15:  # a bubble (random operands) or a stall (en low)
                stall = rng.random() < 0.5
                row = dict(en=0 if stall else 1, valid=int(rng.integers(0, 2)) if stall else 0, last=0)
                row.update(a=int(rng.integers(0, 1 << dut.a_bits)), b=int(rng.integers(0, 1 << dut.b_bits)))
                row.update(sa=int(rng.integers(0, 256)), sb=int(rng.integers(0, 256)))
                row.update(mode=int(rng.integers(0, len(dut.modes))))
                for key, v in row.items():
                    cols[key].append(v)
            row = dict(en=1, valid=1, last=int(t == k - 1), a=int(a[t]), b=int(b[t]))
            row.update(sa=int(sa[t // bs]), sb=int(sb[t // bs]), mode=modes[j] if modes else 0)
            for key, v in row.items():
                cols[key].append(v)
    tail = dut.latency + 2
    for key in cols:
        cols[key] += [1 if key == "en" else 0] * tail
    signals = dict(
        en=dut.en,
        valid=dut.step.valid,
        last=dut.step.last,
        a=dut.a,
        b=dut.b,
        sa=dut.a_scale,
        sb=dut.b_scale,
    )
    if dut.mode_bits:
        signals["mode"] = dut.step.mode
    else:
        del cols["mode"]
    (acc,) = stream(
        dut,
        [(signals[k], np.array(v, dtype=np.int64)) for k, v in cols.items()],
        [dut.acc],
        capture=dut.done & dut.en,
        results=len(jobs),
    )
    return np.array(acc, dtype=np.int64)


def check(
    fmt_a: str,
    fmt_b: str,
    acc: str,
    rounding: str,
    lengths: list[int],
    seed: int,
    *,
    pipeline: int = 1,
    stalls: bool = False,
) -> None:
    """Jobs of each length in ``lengths`` (one per entry, in order) on one PE against qmatmul, one call per job."""
    dut = MXMAC(
        a_format=fmt_a,
        b_format=fmt_b,
        acc_format=acc,
        rounding=rounding,
        lfsr_width=24,
        lfsr_seed=seed + 1,
        pipeline=pipeline,
    )
    fa, fb = parse_mx_format(fmt_a), parse_mx_format(fmt_b)
    rng = np.random.default_rng(seed)
    grid = LFSRGrid(24, seed + 1, rows=1, cols=1)  # carries on from job to job, as the PE's LFSR does
    jobs, want = [], []
    mul = fmt_a if fmt_a == fmt_b else f"{fmt_a},{fmt_b}"
    for k in lengths:
        x = mx_values(rng, (1, k), 1, fa.block_size)
        y = mx_values(rng, (k, 1), 0, fb.block_size)
        sa, ca = mx_codes(x, fa, 1)
        sb, cb = mx_codes(y, fb, 0)
        jobs.append((ca[0], cb[:, 0], sa[0], sb[:, 0]))
        want.append(mpsim.qmatmul(x, y, mul=mul, acc=acc, rounding=rounding, order="sequential", seed=grid)[0, 0])
    got = run_jobs(dut, jobs, rng if stalls else None)
    report = mismatches(got, np.array(want), dut.acc_format, f"{fmt_a} x {fmt_b} -> {acc} {rounding}")
    assert not report, report


def lengths_for(block: int, jobs: int, rng_seed: int) -> list[int]:
    """Job lengths: whole blocks, partial last blocks, single beats."""
    rng = np.random.default_rng(rng_seed)
    base = [1, block, block + 1, 2 * block, 3 * block - 1]
    return base + [int(v) for v in rng.integers(1, 3 * block + 1, jobs - len(base))]


CASES = {
    # name: (A, B, accumulator, rounding, pipeline, jobs)
    "mxfp8_e4m3-fp16-rne": ("mxfp8_e4m3:b8", "mxfp8_e4m3:b8", "fp16", "nearest", 1, 120),
    "mxfp8_e4m3-fp16-sr8": ("mxfp8_e4m3:b8", "mxfp8_e4m3:b8", "fp16", "stochastic:8", 1, 120),
    "mxfp8_e4m3-bf16-sr8-b32": ("mxfp8_e4m3", "mxfp8_e4m3", "bf16", "stochastic:8", 0, 30),
    "mxfp8_e5m2-fp32-rne": ("mxfp8_e5m2:b4", "mxfp8_e5m2:b4", "fp32", "nearest", 2, 120),
    "mxfp8_e4m3xe5m2-e5m6-sr4": ("mxfp8_e4m3:b4", "mxfp8_e5m2:b4", "e5m6", "stochastic:4", 1, 120),
    "mxfp6_e3m2-fp16-sr8": ("mxfp6_e3m2:b8", "mxfp6_e3m2:b8", "fp16", "stochastic:8", 5, 120),
    "mxfp6_e2m3-bf16-rne": ("mxfp6_e2m3:b8", "mxfp6_e2m3:b8", "bf16", "nearest", 1, 120),
    "mxfp4_e2m1-e4m3-sr3": ("mxfp4_e2m1:b2", "mxfp4_e2m1:b2", "e4m3", "stochastic:3", 6, 120),
    "mx_e3m4_b16-fp16-rne": ("mx:e3m4:b16", "mx:e3m4:b16", "fp16", "nearest", 1, 60),
    "mxfp8_e4m3-b1-fp16-sr8": ("mxfp8_e4m3:b1", "mxfp8_e4m3:b1", "fp16", "stochastic:8", 3, 120),
}


@pytest.mark.parametrize("name", list(CASES))
def test_mx_mac_matches_qmatmul(name: str) -> None:
    fa, fb, acc, rounding, pipeline, jobs = CASES[name]
    seed = list(CASES).index(name)
    check(fa, fb, acc, rounding, lengths_for(parse_mx_format(fa).block_size, jobs, seed), seed, pipeline=pipeline)


def test_mx_mac_bubbles_and_stalls() -> None:
    """Idle beats and stalls (en low) between beats: the block sum and the LFSR move only on accepted beats."""
    for pipeline in (2, 4):
        check(
            "mxfp8_e4m3:b4",
            "mxfp8_e4m3:b4",
            "fp16",
            "stochastic:8",
            lengths_for(4, 60, 7),
            7,
            pipeline=pipeline,
            stalls=True,
        )


def run_interleaved(
    dut: MXMAC, jobs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], rng: np.random.Generator
) -> np.ndarray:
    """The L sums of each job ``(a codes (L, K), b codes (K,), a scales (L, nb), b scales (nb,))``, beats in
    (beat, sum) order as an interleaved array sends them: runs of L bubbles inside a job, any number between
    jobs, stalls anywhere."""
    bs, sums = dut.block_size, dut.interleave
    cols: dict[str, list[int]] = {k: [] for k in ("en", "valid", "last", "a", "b", "sa", "sb")}

    def cycle(**row: int) -> None:
        for key in cols:
            cols[key].append(row.get(key, 0))

    def junk() -> dict[str, int]:
        return dict(
            last=int(rng.integers(0, 2)),
            a=int(rng.integers(0, 1 << dut.a_bits)),
            b=int(rng.integers(0, 1 << dut.b_bits)),
            sa=int(rng.integers(0, 256)),
            sb=int(rng.integers(0, 256)),
        )

    for a, b, sa, sb in jobs:
        k = a.shape[1]
        for t in range(k):
            if t and rng.random() < 0.1:
                for _ in range(sums):
                    cycle(en=1, valid=0, **junk())
            for slot in range(sums):
                while rng.random() < 0.08:
                    cycle(en=0, valid=int(rng.integers(0, 2)), **junk())
                row = dict(a=int(a[slot, t]), b=int(b[t]), sa=int(sa[slot, t // bs]), sb=int(sb[t // bs]))
                cycle(en=1, valid=1, last=int(t == k - 1), **row)
        for _ in range(int(rng.integers(0, 2 * sums))):
            cycle(en=1, valid=0, **junk())
    for _ in range(dut.latency + 2):
        cycle(en=1)
    signals = dict(
        en=dut.en, valid=dut.step.valid, last=dut.step.last, a=dut.a, b=dut.b, sa=dut.a_scale, sb=dut.b_scale
    )
    (acc,) = stream(
        dut,
        [(signals[k], np.array(v, dtype=np.int64)) for k, v in cols.items()],
        [dut.acc],
        capture=dut.done & dut.en,
        results=len(jobs) * sums,
    )
    return np.array(acc, dtype=np.int64)


@pytest.mark.parametrize(
    ("fmt_a", "fmt_b", "acc", "rounding", "interleave", "pipeline"),
    [
        ("mxfp8_e4m3:b4", "mxfp8_e4m3:b4", "fp16", "stochastic:8", 8, 2),
        ("mxfp8_e5m2:b8", "mxfp8_e4m3:b8", "bf16", "nearest", 3, 5),
        ("mxfp4_e2m1:b2", "mxfp6_e3m2:b2", "e5m6", "stochastic:4", 5, 0),
    ],
)
def test_interleaved_mx_mac_is_qmatmul_with_the_interleaved_stream(
    fmt_a: str, fmt_b: str, acc: str, rounding: str, interleave: int, pipeline: int
) -> None:
    """L sums in turn, their block sums in the ring: each job's L rows against qmatmul with
    LFSRGrid(interleave=L), which draws in (block, sum) order; K from one beat to several blocks, short last
    blocks."""
    dut = MXMAC(
        a_format=fmt_a,
        b_format=fmt_b,
        acc_format=acc,
        rounding=rounding,
        lfsr_width=20,
        lfsr_seed=interleave,
        pipeline=pipeline,
        interleave=interleave,
    )
    fa, fb = parse_mx_format(fmt_a), parse_mx_format(fmt_b)
    rng = np.random.default_rng(interleave)
    grid = LFSRGrid(20, interleave, rows=1, cols=1, interleave=interleave)
    mul = fmt_a if fmt_a == fmt_b else f"{fmt_a},{fmt_b}"
    jobs, want = [], []
    for k in lengths_for(fa.block_size, 40, interleave):
        x = mx_values(rng, (interleave, k), 1, fa.block_size)
        y = mx_values(rng, (k, 1), 0, fb.block_size)
        (sa, ca), (sb, cb) = mx_codes(x, fa, 1), mx_codes(y, fb, 0)
        jobs.append((ca, cb[:, 0], sa, sb[:, 0]))
        want.append(mpsim.qmatmul(x, y, mul=mul, acc=acc, rounding=rounding, order="sequential", seed=grid)[:, 0])
    got = run_interleaved(dut, jobs, rng)
    report = mismatches(
        got, np.concatenate(want), dut.acc_format, f"{fmt_a} x {fmt_b} -> {acc} {rounding} L={interleave}"
    )
    assert not report, report


def kernel_reference(
    dut: MXMAC, a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray, grid: LFSRGrid
) -> np.ndarray:
    """What qmatmul's MX kernel (:func:`mpsim.mx_gemm_kernels.mx_gemm_sequential`, the one :func:`mpsim.qmatmul`
    runs after quantizing) gives each job of element codes ``a``, ``b`` (jobs x K) and any scale codes (jobs x nb):
    scale codes that no float32 data quantizes to (the top of E8M0 with finite elements), NaN or Inf elements in a
    block of a finite scale."""
    plan = plan_of(dut.gemm_config)
    jobs, k = a.shape
    bs = dut.block_size
    nb = -(-k // bs)
    ea = np.zeros((jobs, 1, nb * bs), np.float32)
    eb = np.zeros((jobs, 1, nb * bs), np.float32)
    ea[:, 0, :k], eb[:, 0, :k] = mpsim.decode(dut.a_format, a), mpsim.decode(dut.b_format, b)
    out = np.empty((jobs, 1, 1))
    source, key, offset, rand = plan.random_inputs(grid, out.size * nb * STAGES, (*out.shape, nb))
    split = block_split(dut.a_mx, dut.b_mx)
    scales = [np.ascontiguousarray(x[:, None, :].astype(np.uint8)) for x in (sa, sb)]
    mx_gemm_sequential(
        ea, scales[0], eb, scales[1], out, bs, split, plan.acc_params, source, key, offset, rand, False, plan.acc_params
    )
    return out[:, 0, 0]


@pytest.mark.parametrize(
    ("fmt_a", "fmt_b", "acc", "rounding"),
    [
        ("mxfp8_e4m3:b4", "mxfp8_e4m3:b4", "fp16", "stochastic:8"),
        ("mxfp8_e5m2:b4", "mxfp8_e4m3:b4", "fp32", "nearest"),
        ("mxfp4_e2m1:b4", "mxfp6_e2m3:b4", "bf16", "stochastic:6"),
    ],
)
def test_mx_mac_raw_codes_match_the_kernel(fmt_a: str, fmt_b: str, acc: str, rounding: str) -> None:
    """Every scale code (0..255, the ends weighted) with edge-biased element codes (NaN, Inf, max, subnormals)."""
    dut = MXMAC(a_format=fmt_a, b_format=fmt_b, acc_format=acc, rounding=rounding, lfsr_width=20, lfsr_seed=3)
    rng = np.random.default_rng(11)
    jobs, k = 300, 11  # three blocks of 4, the last one short
    a, b = operand_codes(rng, dut.a_format, (jobs, k)), operand_codes(rng, dut.b_format, (jobs, k))
    edges = np.array([0, 1, 2, 126, 127, 128, 252, 253, 254, 255])
    sa, sb = (
        np.where(rng.random((jobs, 3)) < 0.4, rng.choice(edges, (jobs, 3)), rng.integers(0, 256, (jobs, 3)))
        for _ in range(2)
    )
    want = kernel_reference(dut, a, b, sa, sb, LFSRGrid(20, 3, rows=1, cols=1))
    got = run_jobs(dut, list(zip(a, b, sa, sb)), None)
    report = mismatches(got, want, dut.acc_format, f"{fmt_a} x {fmt_b} -> {acc} {rounding}, raw codes")
    assert not report, report


#: MX modes of one block size, as a training precision's (mxfp8-sr: e4m3 forward, e5m2 x e4m3 and e4m3 x e5m2
#: backward) with modes of other element formats, accumulators and roundings beside them.
MX_MODES = (
    ArithMode(a_format="mxfp8_e4m3:b4", acc_format="fp16", rounding="stochastic:8"),
    ArithMode(a_format="mxfp8_e5m2:b4", b_format="mxfp8_e4m3:b4", acc_format="fp16", rounding="stochastic:8"),
    ArithMode(a_format="mxfp8_e4m3:b4", b_format="mxfp8_e5m2:b4", acc_format="fp16", rounding="stochastic:8"),
    ArithMode(a_format="mxfp6_e2m3:b4", b_format="mxfp6_e3m2:b4", acc_format="bf16", rounding="nearest"),
    ArithMode(a_format="mxfp4_e2m1:b4", acc_format="fp32", rounding="stochastic:5"),
)


def mode_config(mode: HwMode) -> GemmConfig:
    """A mode's MX GEMM as :func:`mpsim.qmatmul` takes it (the oracle)."""
    a, b = (f.label for f in mode.mx)  # type: ignore[union-attr]
    return GemmConfig(
        mul=a if a == b else f"{a},{b}",
        acc=mode.acc_format,
        rounding=rounding_string(mode.rand_bits),
        order="sequential",
    )


def check_modes_against_qmatmul(dut: MXMAC, jobs: int, seed: int, *, stalls: bool) -> None:
    """Jobs in random modes back to back (MX edge data: NaN scales, zero blocks, partial last blocks), one PE, one
    LFSR stream carried on from job to job, against qmatmul job by job in each job's mode."""
    rng = np.random.default_rng(seed)
    grid = LFSRGrid(dut.lfsr.width, dut.lfsr.seed, rows=1, cols=1)
    todo, want, codes = [], [], []
    for k in lengths_for(dut.block_size, jobs, seed):
        code = int(rng.integers(0, len(dut.modes)))
        mode = dut.modes[code]
        fa, fb = mode.mx  # type: ignore[misc]
        x, y = mx_values(rng, (1, k), 1, fa.block_size), mx_values(rng, (k, 1), 0, fb.block_size)
        (sa, ca), (sb, cb) = mx_codes(x, fa, 1), mx_codes(y, fb, 0)
        todo.append((ca[0], cb[:, 0], sa[0], sb[:, 0]))
        want.append(mpsim.qmatmul(x, y, config=mode_config(mode), seed=grid)[0, 0])
        codes.append(code)
    got = run_jobs(dut, todo, rng if stalls else None, codes)
    for code, mode in enumerate(dut.modes):
        pick = np.array(codes) == code
        assert pick.sum() > 5, "every mode runs"
        acc = mode.acc_format
        report = mismatches(got[pick] & ((1 << acc.bits) - 1), np.array(want)[pick], acc, f"mode {code} {mode.label}")
        assert not report, report


@pytest.mark.parametrize("pipeline", [1, 6])
def test_mx_mac_modes_match_qmatmul(pipeline: int) -> None:
    """Five MX modes in one PE (two accumulators, three roundings), jobs switching mode back to back."""
    dut = MXMAC(modes=MX_MODES, lfsr_width=24, lfsr_seed=5 + pipeline, pipeline=pipeline)
    assert dut.mode_bits == 3 and dut.lfsr_steps == 8
    check_modes_against_qmatmul(dut, 80, 20 + pipeline, stalls=pipeline == 6)


def test_mx_mac_training_modes_match_qmatmul() -> None:
    """The mxfp8-sr preset's three modes (blocks of 32), as `mpsim emit --precision mxfp8-sr` builds them."""
    dut = MXMAC(modes=training_modes(["mxfp8-sr"]), lfsr_width=24, lfsr_seed=9, pipeline=1)
    assert [m.label for m in dut.modes] == [
        "mxfp8_e4m3_fp16_sr8",
        "mxfp8_e5m2xmxfp8_e4m3_fp16_sr8",
        "mxfp8_e4m3xmxfp8_e5m2_fp16_sr8",
    ]
    check_modes_against_qmatmul(dut, 40, 31, stalls=False)


def test_mx_mac_modes_raw_codes_match_the_kernel() -> None:
    """Every scale code (0..255, the ends weighted, 0xFF NaN) with edge-biased element codes, modes in turn."""
    dut = MXMAC(modes=MX_MODES, lfsr_width=20, lfsr_seed=3)
    rng = np.random.default_rng(12)
    jobs, k = 80, 11  # three blocks of 4, the last one short
    codes = [int(c) for c in rng.integers(0, len(MX_MODES), jobs)]
    edges = np.array([0, 1, 2, 126, 127, 128, 252, 253, 254, 255])
    todo, want = [], []
    grid = LFSRGrid(20, 3, rows=1, cols=1)
    singles = [  # each mode as a one-mode PE: what kernel_reference reads its formats and rounding from
        described(
            MXMAC(a_format=m.mx[0], b_format=m.mx[1], acc_format=m.acc_format, rounding=rounding_string(m.rand_bits))
        )  # type: ignore[index]
        for m in dut.modes
    ]
    for code in codes:
        mode = dut.modes[code]
        a = operand_codes(rng, mode.a_format, (1, k))
        b = operand_codes(rng, mode.b_format, (1, k))
        sa, sb = (
            np.where(rng.random((1, 3)) < 0.4, rng.choice(edges, (1, 3)), rng.integers(0, 256, (1, 3))) for _ in "ab"
        )
        want.append(kernel_reference(singles[code], a, b, sa, sb, grid)[0])
        todo.append((a[0], b[0], sa[0], sb[0]))
    got = run_jobs(dut, todo, None, codes)
    for code, mode in enumerate(dut.modes):
        pick = np.array(codes) == code
        acc = mode.acc_format
        report = mismatches(got[pick] & ((1 << acc.bits) - 1), np.array(want)[pick], acc, f"mode {code}, raw codes")
        assert not report, report


def test_mx_window_holds_every_modes_window() -> None:
    """One block-sum register for every mode: from the lowest mode lsb to the highest top (e5m2 x e4m3 reaches
    both ends of mxfp8's modes)."""
    dut = described(MXMAC(modes=training_modes(["mxfp8"])))
    windows = [block_window(*m.mx) for m in dut.modes]  # type: ignore[misc]
    lsb, width = dut.window
    assert lsb == min(lo for lo, _ in windows) and lsb + width == max(lo + w for lo, w in windows)
    assert dut.window == windows[1]


def test_window_is_mpsim_block_window() -> None:
    dut = described(MXMAC(a_format="mxfp8_e4m3", acc_format="fp16"))
    assert dut.window == block_window(dut.a_mx, dut.b_mx) == (-18, 41)  # e4m3: 2**-9 .. 448 < 2**9, 32 = 2**5
    assert dut.latency == 1 and dut.label == "mxfp8_e4m3_fp16_rne"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            dict(a_format="mxint8", acc_format="fp16"),
            ValueError,
            "MX operand format a must have floating-point elements, not mxint8 (elements int8): the hardware generator "
            "has no fixed-point datapath",
        ),
        (
            dict(a_format="e4m3", acc_format="fp16"),
            ValueError,
            "unknown MX format 'e4m3': expected one of mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, "
            "mxint8 or mx:ELEMENT[:bN][:MODE]",
        ),
        (
            dict(a_format="mxfp8_e4m3", b_format="mxfp8_e4m3:b16", acc_format="fp16"),
            ValueError,
            "MX operands must share a block size: a's mxfp8_e4m3 has 32, b's mxfp8_e4m3:b16 has 16",
        ),
        (
            dict(a_format="mxfp8_e4m3", acc_format="e3m2"),
            ValueError,
            "accumulator format e3m2 has no NaN, but an MX block's NaN scale (0xFF) brings NaN; use a format with NaN",
        ),
        (
            dict(a_format="mxfp8_e4m3", acc_format="fp16", interleave=17),
            ValueError,
            "MX MAC interleave must be 1..16, not 17",
        ),
        (
            dict(a_format="mxfp8_e4m3", acc_format="fp16", pipeline=7),
            ValueError,
            "MX MAC pipeline registers must be 0..6, not 7",
        ),
        (
            dict(a_format="mxfp8_e4m3", acc_format="fp16", rounding="stochastic"),
            ValueError,
            "accumulator rounding must give its random bits, 'stochastic:K', not exact 'stochastic': "
            "the LFSR hands out K bits per rounding",
        ),
    ],
)
def test_unbuildable(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        MXMAC(**kwargs)


def test_each_pe_refuses_the_others_modes() -> None:
    """MX modes are MXMAC's, element-wise modes MAC's: one line each way."""
    from hls_gen.mac import MAC

    message = (
        "a MAC multiplies element formats, not MX blocks (mxfp8_e4m3_fp16_rne); MX modes are hls_gen.mx_mac.MXMAC's"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        MAC(modes=training_modes(["mxfp8"]))
    message = (
        "an MX MAC's modes multiply MX blocks, not element formats (mode 0 is e4m3_fp16_sr8); element-wise modes "
        "are hls_gen.mac.MAC's"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        MXMAC(modes=training_modes(["e4m3-sr"]))
