"""MX block quantization: mpsim beside torchao's ``to_mx`` on CPU, bits and speed, in one run.

    python benchmarks/mx_quantize.py [--rows 4096] [--cols 4096] [--repeat 5] [--threads N]
                                     [--formats mxfp8_e4m3,...] [--modes floor,ceil,rceil,even]
                                     [--json PATH]

Prints Markdown tables, for every OCP preset torchao implements (MXFP8 E4M3 and
E5M2, MXFP6 E3M2 and E2M3, MXFP4 E2M1; torchao has no MXINT8) and every scale
rule both implement (floor, ceil, rceil, even):

(a) bit identity: E8M0 scale codes and element codes of ``mpsim.encode_mx``
    against ``torchao.prototype.mx_formats.mx_tensor.to_mx`` (FP4 unpacked from
    its two-per-byte layout, which both share) over wide-range random data and
    edge blocks (zero, NaN and Inf blocks, amax at, beside and a few ulps above
    every binade and max edge, float32-subnormal amax, subnormal elements,
    saturation ties); the mismatching blocks are sorted into torchao's known
    departures (see the notes the script prints, and ``tests/test_mx_torchao.py``,
    which asserts each one), anything else is counted as unexplained;
(b) speed: the median of ``--repeat`` timed calls (after one warm-up) quantizing
    a ``--rows`` x ``--cols`` float32 N(0, 1) array, blocks of 32 along the last
    axis: torchao's ``to_mx`` (eager, CPU) against ``mpsim.encode_mx`` (the same
    output: scale codes and element codes) and ``mpsim.quantize_mx`` (float32
    values), Numba and torch on the same number of threads; the speedup is
    torchao's median time over ``encode_mx``'s, and beside it the ratio of the
    best times (steadier on shared cores). The bits of this large tensor are
    compared as well.

torchao is not a dependency of mpsim (it is in the ``dev`` extra): ``pip install
torchao`` (0.18 works with torch 2.14; it has no dependencies of its own).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

import mpsim
from mpsim.mx import MX_PRESETS
from mpsim.mx_edges import edge_rows, random_rows

F32 = np.float32
MODES = ["floor", "ceil", "rceil", "even"]
FORMATS = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1"]
KINDS = ["nan", "inf", "tiny", "rceil_log2", "unexplained"]

NOTES = {
    "nan": "NaN blocks: both give the NaN scale 0xFF; the element codes beside it are don't-care "
    "(OCP: every value of the block is NaN). torchao leaves x / Inf = 0, NaN, or (FP6/FP4) garbage codes; "
    "mpsim writes the element's NaN, else 0.",
    "inf": "Inf blocks, floor/ceil/even: torchao reads Inf's float32 exponent field as 2**128, "
    "E = 128 - emax (E4M3: code 247); mpsim, as gfloat, clamps log2(Inf) to E = 127 (code 254). "
    "Implementations differ here (Microsoft's microxcaling: a NaN scale); the element codes agree. "
    "RCEIL: both 254.",
    "tiny": "Blocks at scale code 0 (E = -127, amax below about 2**(emax - 126)): torchao stores 2**-127 "
    "but divides the elements by 2**-126 (floor/ceil/even: the float32 scale is clamped to the smallest "
    "normal) or by 1 (RCEIL: a reciprocal of 1.0 for code 0), so its elements decode to half of the block "
    "(or to zeros). mpsim divides by 2**-127, as the stored scale says. RCEIL also: a float32 quotient "
    "amax / max in the subnormal range rounds onto 2**-127, code 0 where the exact rule gives 1.",
    "rceil_log2": "RCEIL, amax a few ulps above max * 2**k: torchao's CPU/eager RCEIL computes "
    "ceil(log2(amax / max)) in float32, and log2 rounds a quotient just above a power of two onto it: "
    "E one too small, the top element saturates. NVIDIA's rule (cvt.rp.satfinite.ue8m0x2.f32 on the "
    "quotient, which torchao itself uses on sm100 under torch.compile) and mpsim's exact rule give the "
    "smallest E with amax / 2**E <= max.",
    "unexplained": "Mismatches outside the four known torchao departures: none expected.",
}


# --------------------------------------------------------------------------- the two implementations


class TorchAO:
    """torchao's ``to_mx`` and its element dtypes, or why it cannot be imported."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.version = "?"
        try:
            import torchao
            from torchao.prototype.mx_formats.config import ScaleCalculationMode
            from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
            from torchao.prototype.mx_formats.mx_tensor import to_mx
        except ImportError as err:
            self.error = f"{type(err).__name__}: {err}"
            return
        self.version = torchao.__version__
        self.to_mx = to_mx
        self.mode = ScaleCalculationMode
        self.dtypes = {
            "mxfp8_e4m3": torch.float8_e4m3fn,
            "mxfp8_e5m2": torch.float8_e5m2,
            "mxfp6_e3m2": DTYPE_FP6_E3M2,
            "mxfp6_e2m3": DTYPE_FP6_E2M3,
            "mxfp4_e2m1": torch.float4_e2m1fn_x2,
        }

    @property
    def ok(self) -> bool:
        return self.error is None

    def raw(self, name: str, t: torch.Tensor, mode: str) -> Any:
        return self.to_mx(t, self.dtypes[name], 32, self.mode(mode))

    def blocks(self, name: str, x: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """(scale codes per block, element codes one per element) of 2-D float32 ``x``."""
        scale, data = self.raw(name, torch.from_numpy(np.ascontiguousarray(x)), mode)
        codes = data.view(torch.uint8).numpy()
        return scale.view(torch.uint8).numpy().reshape(x.shape[0], -1), unpack(name, codes)


def unpack(name: str, codes: np.ndarray) -> np.ndarray:
    """FP4: two codes per byte, the earlier in the low nibble (torchao's ``pack_uint4`` and mpsim's layout)."""
    if MX_PRESETS[name].packed_per_byte == 1:
        return codes
    return np.stack([codes & 0xF, codes >> 4], axis=-1).reshape(*codes.shape[:-1], -1)


def mpsim_blocks(name: str, x: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    scales, codes = mpsim.encode_mx(x, name, scale_mode=mode)
    return scales, unpack(name, codes)


# --------------------------------------------------------------------------- (a) bit identity


def departure(name: str, block: np.ndarray, mode: str, mp_scale: int, tao_scale: int) -> str:
    """Which known torchao departure explains a mismatching block (``tests/test_mx_torchao.py`` asserts each)."""
    amax = float(np.abs(block).max()) if not np.isnan(block).any() else float("nan")
    if np.isnan(block).any():
        return "nan" if mp_scale == tao_scale == 0xFF else "unexplained"
    if np.isinf(block).any():
        emax = MX_PRESETS[name].element_emax
        return "inf" if mode != "rceil" and (mp_scale, tao_scale) == (254, 255 - emax) else "unexplained"
    if tao_scale == 0 and amax > 0 and mp_scale in ((0, 1) if mode == "rceil" else (0,)):
        return "tiny"
    if mode == "rceil" and tao_scale == mp_scale - 1:
        q = F32(amax) / F32(MX_PRESETS[name].element.max)
        if torch.log2(torch.tensor(q)).item() == tao_scale - 127:
            return "rceil_log2"
    return "unexplained"


def identity_row(tao: TorchAO, name: str, mode: str, x: np.ndarray) -> dict[str, Any]:
    """Mismatching blocks and elements of ``x`` (rows of 32-element blocks), sorted by known departure."""
    mp_s, mp_c = mpsim_blocks(name, x, mode)
    tao_s, tao_c = tao.blocks(name, x, mode)
    blocks = x.reshape(-1, 32)
    mp_s, tao_s = mp_s.reshape(-1), tao_s.reshape(-1)
    bad_elems = (mp_c != tao_c).reshape(-1, 32)
    bad = np.flatnonzero((mp_s != tao_s) | bad_elems.any(axis=1))
    row: dict[str, Any] = {
        "format": name,
        "mode": mode,
        "blocks": len(blocks),
        "scale_mismatch": int((mp_s != tao_s).sum()),
        "block_mismatch": len(bad),
        "element_mismatch": int(bad_elems.sum()),
    }
    row.update(dict.fromkeys(KINDS, 0))
    for b in bad:
        row[departure(name, blocks[b], mode, int(mp_s[b]), int(tao_s[b]))] += 1
    return row


# --------------------------------------------------------------------------- (b) speed


def timings(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median, best) wall time of ``fn`` over ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def speed_row(tao: TorchAO, name: str, mode: str, x: np.ndarray, repeat: int) -> dict[str, Any]:
    t = torch.from_numpy(x)
    row: dict[str, Any] = {"format": name, "mode": mode}
    row["mpsim_encode_s"], row["mpsim_encode_best_s"] = timings(
        lambda: mpsim.encode_mx(x, name, scale_mode=mode), repeat
    )
    row["mpsim_quantize_s"], _ = timings(lambda: mpsim.quantize_mx(x, name, scale_mode=mode), repeat)
    if tao.ok:
        row["torchao_s"], row["torchao_best_s"] = timings(lambda: tao.raw(name, t, mode), repeat)
        row["speedup"] = row["torchao_s"] / row["mpsim_encode_s"]
        row["speedup_best"] = row["torchao_best_s"] / row["mpsim_encode_best_s"]
        mp_s, mp_c = mpsim_blocks(name, x, mode)
        tao_s, tao_c = tao.blocks(name, x, mode)
        row["identical"] = bool(np.array_equal(mp_s, tao_s) and np.array_equal(mp_c, tao_c))
    return row


# --------------------------------------------------------------------------- output


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4096, help="rows of the timed array (default 4096)")
    parser.add_argument("--cols", type=int, default=4096, help="columns, a multiple of 32 (default 4096)")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per cell, the median kept (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="Numba and torch threads (default: Numba's)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated MX presets")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated scale rules")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables' numbers here")
    args = parser.parse_args(argv)
    if args.cols % 32:
        parser.error(f"--cols must be a multiple of 32 (torchao's to_mx needs whole blocks), not {args.cols}")
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for f in args.formats:
        if f not in FORMATS:
            parser.error(f"--formats: {f!r} is not one of {', '.join(FORMATS)} (torchao has no MXINT8)")
    for m in args.modes:
        if m not in MODES:
            parser.error(f"--modes: {m!r} is not one of {', '.join(MODES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        numba.set_num_threads(args.threads)
    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    tao = TorchAO()
    print(
        f"mpsim {mpsim.__file__}; torch {torch.__version__}; numba {numba.__version__}; "
        f"torchao {tao.version if tao.ok else 'not installed'}; {platform.processor() or platform.machine()}, "
        f"{threads} Numba threads, torch.get_num_threads() = {torch.get_num_threads()}\n"
    )
    if not tao.ok:
        print(f"torchao is not installed ({tao.error}): pip install torchao; timing mpsim alone.\n")
    result: dict[str, Any] = {"threads": threads, "torch": torch.__version__, "torchao": tao.version}

    if tao.ok:
        print("(a) bit identity, mpsim.encode_mx against torchao to_mx: mismatching blocks by cause")
        print("    (random: 64 x 1024 wide-range values, 2048 blocks; edge: the edge blocks of each format)\n")
        rows = []
        for name in args.formats:
            x_edge = edge_rows(name)
            for mode in args.modes:
                for data, x in (("random", random_rows(64, 1024, seed=5)), ("edge", x_edge)):
                    r = identity_row(tao, name, mode, x)
                    r["data"] = data
                    rows.append(r)
        headers = ["format", "mode", "data", "blocks", "scale diff", "blocks diff", "elements diff", *KINDS]
        print(
            md_table(
                headers,
                [
                    [
                        str(r[k])
                        for k in (
                            "format",
                            "mode",
                            "data",
                            "blocks",
                            "scale_mismatch",
                            "block_mismatch",
                            "element_mismatch",
                            *KINDS,
                        )
                    ]
                    for r in rows
                ],
            )
        )
        print()
        for i, kind in enumerate(KINDS, 1):
            print(f"[{i}] {kind}: {NOTES[kind]}")
        print()
        result["identity"] = rows

    x = np.random.default_rng(0).standard_normal((args.rows, args.cols)).astype(F32)
    print(
        f"(b) speed: {args.rows} x {args.cols} float32 N(0,1), blocks of 32 along the last axis, "
        f"median of {args.repeat} (ms)\n"
    )
    rows = []
    table = []
    for name in args.formats:
        for mode in args.modes:
            r = speed_row(tao, name, mode, x, args.repeat)
            rows.append(r)
            na = "n/a"
            table.append(
                [
                    name,
                    mode,
                    f"{r['torchao_s'] * 1e3:.0f}" if "torchao_s" in r else na,
                    f"{r['mpsim_encode_s'] * 1e3:.0f}",
                    f"{r['mpsim_quantize_s'] * 1e3:.0f}",
                    f"{r['speedup']:.1f}x" if "speedup" in r else na,
                    f"{r['speedup_best']:.1f}x" if "speedup_best" in r else na,
                    ("yes" if r["identical"] else "NO") if "identical" in r else na,
                ]
            )
            print(" ", " | ".join(table[-1]), flush=True)
    print()
    headers = [
        "format",
        "mode",
        "torchao to_mx",
        "mpsim encode_mx",
        "mpsim quantize_mx",
        "speedup",
        "speedup, best times",
        "same bits",
    ]
    print(md_table(headers, table))
    result["speed"] = rows
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
