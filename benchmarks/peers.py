"""mpsim beside the peer emulators QPyTorch (``qtorch``) and mptorch, in one run.

    python benchmarks/peers.py [--peers-path DIR[:DIR...]] [--size 16777216]
                               [--gemm 256] [--repeat 5] [--gemm-repeat 3]

Prints Markdown tables:

(a) element-wise quantization of ``--size`` float32 N(0,1) elements to e4m3
    (and e5m2), nearest and stochastic, in millions of elements per second;
(b) a ``--gemm`` cubed GEMM on e4m3 inputs with a low-precision accumulator
    (every multiply-accumulate rounded), in millions of MAC per second;
(c) agreement: the fraction of equal elements where the semantics should
    match, both against mpsim's OCP formats and against the mpsim format that
    spells out each peer's own semantics (extra data sets cover the full range
    and exact ties), and of the GEMM results;
(d) statistical checks of the stochastic roundings (which cannot agree bit
    for bit: each emulator draws its own random bits).

The peers are single-threaded C++ loops, so compare them with the mpsim
column pinned to 1 thread; timings are the best of ``--repeat`` runs.

The peers are not dependencies of mpsim. Install them beside it without
touching torch or numpy, e.g.::

    pip install --no-deps --target /tmp/peers qtorch unfoldNd
    git clone https://github.com/mptorch/mptorch /tmp/mptorch-src   # not on PyPI
    python benchmarks/peers.py --peers-path /tmp/peers:/tmp/mptorch-src

``mptorch`` must be used from a source checkout: a wheel built from it
(``pip install git+https://github.com/mptorch/mptorch``) leaves out the C++
sources that ``mptorch.quant`` compiles at import. Both peers JIT-compile a C++
extension (``torch.utils.cpp_extension.load``, needs ninja and a C++
compiler) on first import; both name it ``quant_cpu``, so each peer gets its
own ``TORCH_EXTENSIONS_DIR`` subfolder here to keep the builds apart. A peer
that cannot be imported or run is reported in the tables; the benchmark never
fails because of one.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

import mpsim
from mpsim.formats import FloatFormat

NA = "n/a"


@dataclass
class Peer:
    """One peer emulator: its quant module if importable, or why not."""

    label: str
    module_name: str
    install_hint: str
    quant: Any = None
    version: str = "?"
    origin: str = ""
    import_seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.quant is not None


@dataclass
class Notes:
    """Footnotes collected while filling the tables."""

    items: list[str] = field(default_factory=list)

    def mark(self, text: str) -> str:
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"

    def print(self) -> None:
        for i, text in enumerate(self.items, 1):
            print(f"[{i}] {text}")


# --------------------------------------------------------------------------- setup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--peers-path",
        default="",
        help=f"extra import path(s) for the peers, separated by {os.pathsep!r}, put first on sys.path "
        "(default: import them from the environment)",
    )
    parser.add_argument("--size", type=int, default=16 * 2**20, help="elements to quantize (default 16M)")
    parser.add_argument("--gemm", type=int, default=256, help="GEMM size N for an NxNxN product (default 256)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each quantization (best kept)")
    parser.add_argument("--gemm-repeat", type=int, default=3, help="timed repetitions of each GEMM (best kept)")
    parser.add_argument(
        "--extensions-dir",
        type=Path,
        default=Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions"))
        / "mpsim-peers",
        help="root of the per-peer TORCH_EXTENSIONS_DIR build folders (default ~/.cache/torch_extensions/mpsim-peers)",
    )
    return parser.parse_args(argv)


def add_peer_paths(spec: str) -> list[str]:
    """Put the ``--peers-path`` entries first on ``sys.path``; returns them."""
    paths = [str(Path(p).expanduser().resolve()) for p in spec.split(os.pathsep) if p]
    for path in reversed(paths):
        if path not in sys.path:
            sys.path.insert(0, path)
    return paths


def short_error(err: BaseException, lines: int = 6) -> str:
    """The exception's type and message, trimmed to its last ``lines`` lines (build logs are long)."""
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    kept = [line for line in text.splitlines() if line.strip()]
    if len(kept) > lines:
        kept = [*kept[:2], "...", *kept[-(lines - 2) :]]
    return " | ".join(kept)


def dist_version(module: Any, dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(module, "__version__", "?"))


def import_peer(peer: Peer, extensions_root: Path) -> Peer:
    """Import ``<module>.quant`` (which JIT-builds its C++ extension); record the error if it fails."""
    build_dir = extensions_root / peer.module_name
    build_dir.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get("TORCH_EXTENSIONS_DIR")
    os.environ["TORCH_EXTENSIONS_DIR"] = str(build_dir)
    start = time.perf_counter()
    try:
        top = importlib.import_module(peer.module_name)
    except ModuleNotFoundError as err:
        if err.name == peer.module_name:
            peer.error = f"not installed ({peer.install_hint})"
        else:
            peer.error = f"import failed: {short_error(err)}"
        return peer
    except Exception as err:  # noqa: BLE001 -- whatever a peer's import raises is reported in its table row
        peer.error = f"import failed: {short_error(err)}"
        return peer
    peer.version = dist_version(top, peer.module_name)
    peer.origin = str(Path(top.__file__).parent)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            peer.quant = importlib.import_module(f"{peer.module_name}.quant")
    except BaseException as err:  # noqa: BLE001 -- a failed import or C++ JIT build, whatever it raises, is reported
        peer.error = f"{peer.module_name}.quant import / C++ build failed: {short_error(err)}"
    finally:
        peer.import_seconds = time.perf_counter() - start
        if saved is None:
            os.environ.pop("TORCH_EXTENSIONS_DIR", None)
        else:
            os.environ["TORCH_EXTENSIONS_DIR"] = saved
    return peer


def load_peers(extensions_root: Path) -> tuple[Peer, Peer]:
    qtorch = Peer("QPyTorch", "qtorch", "pip install --no-deps --target DIR qtorch")
    mptorch = Peer(
        "mptorch",
        "mptorch",
        "not on PyPI: git clone https://github.com/mptorch/mptorch, pip install --no-deps --target DIR unfoldNd, "
        "pass --peers-path CLONE:DIR",
    )
    return import_peer(qtorch, extensions_root), import_peer(mptorch, extensions_root)


# --------------------------------------------------------------------------- timing


@contextlib.contextmanager
def numba_threads(n: int) -> Iterator[None]:
    saved = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(saved)


def best_seconds(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``fn`` over ``repeat`` calls after one warm-up call, and its last result."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def as_numpy(x: Any) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@dataclass
class Cell:
    """One timed (or unavailable) table cell, with the result for the agreement checks."""

    text: str
    result: np.ndarray | None = None


def timed_cell(fn: Callable[[], Any], work: int, repeat: int, notes: Notes) -> Cell:
    """Millions of ``work`` units per second, or the error as a footnote."""
    try:
        seconds, out = best_seconds(fn, repeat)
    except Exception as err:  # noqa: BLE001 -- a peer's failure on one case becomes that cell's footnote
        return Cell(f"error {notes.mark(short_error(err))}")
    return Cell(f"{work / seconds / 1e6:,.1f}", as_numpy(out))


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def peer_header(peer: Peer) -> str:
    return f"{peer.label} {peer.version} (1 thread)" if peer.ok else peer.label


# --------------------------------------------------------------------------- formats and semantics


def qtorch_format(exp: int, man: int) -> FloatFormat:
    """QPyTorch's ``float_quantize(exp, man)`` in mpsim terms: every exponent code finite, saturating."""
    return FloatFormat(exp, man, specials="finite", overflow="saturate", name=f"e{exp}m{man}fsat")


def mptorch_format(exp: int, man: int) -> FloatFormat:
    """mptorch's default ``float_quantize(exp, man)``: IEEE-style (top exponent reserved), saturating."""
    return FloatFormat(exp, man, specials="ieee", overflow="saturate", name=f"e{exp}m{man} ieee sat")


# Rounding of each peer's "nearest" in mpsim terms.
QTORCH_NEAREST = "nearest_away"
MPTORCH_NEAREST = "nearest"


def semantics_notes() -> list[str]:
    return [
        "mpsim `e4m3` is OCP E4M3FN: max 448, NaN at S.1111.111, no Inf; `e5m2` is OCP E5M2 (IEEE-style, "
        "max 57344, Inf/NaN); nearest = ties to even; overflow -> NaN/Inf unless saturate.",
        "QPyTorch `float_quantize(x, exp, man)` has no Inf/NaN and does not reserve the top exponent: e4m3 max "
        "2^8*1.875 = 480 (not 448), e5m2 max 114688; overflow saturates; nearest is ties AWAY from zero "
        "(add half an ulp, truncate); subnormals via an fp32 add of 2^emin; stochastic draws from one "
        "global std::mt19937 seeded by std::random_device (not seedable from Python). mpsim spelling: "
        "FloatFormat(e, m, specials='finite', overflow='saturate') with rounding 'nearest_away'.",
        "mptorch `float_quantize(x, exp, man, subnormals=True, saturate=True)` is IEEE-style: the top exponent "
        "is reserved, so e4m3 max is 2^7*1.875 = 240 (not OCP's 448), e5m2 max 57344 (= OCP); ties to even; "
        "overflow saturates (saturate=False gives Inf). mpsim spelling: FloatFormat(e, m, overflow='saturate').",
        "Peers run plain single-threaded C++ loops on CPU; mpsim runs Numba kernels (parallel over elements / "
        "output rows), shown with all threads and pinned to 1 thread.",
    ]


# --------------------------------------------------------------------------- (a) quantization


@dataclass
class QuantCase:
    label: str
    mpsim: Callable[[], Any] | None
    qtorch: Callable[[], Any] | None
    mptorch: Callable[[], Any] | None
    qtorch_na: str = ""
    mptorch_na: str = ""
    note: str = ""


MPTORCH_PRNG_NOTE = (
    "mptorch's random-bit count does not do what it says: cast_fp_stochastic (quant_cpu/quant.cpp) masks the "
    "random word with `rand_prob & ~(1 << (23 - man_bits - rand_bits) - 1)`, which by C++ precedence clears the "
    "single bit 22-man-rand_bits instead of keeping the top rand_bits bits, so prng=8 (and float_mm's rbits_add=8) "
    "still uses the other 23-man-1 bits (measured: x = 1 + 3*2^-10 ulp, e4m3, prng=8: P(up) = 2^-9; "
    "8-bit truncation gives 0, exact stochastic rounding 0.00293)."
)


def quant_cases(x: np.ndarray, t: torch.Tensor, qt: Peer, mp: Peer) -> list[QuantCase]:
    qq, mq = qt.quant, mp.quant
    return [
        QuantCase(
            "e4m3 nearest",
            lambda: mpsim.quantize(x, "e4m3"),
            lambda: qq.float_quantize(t, exp=4, man=3, rounding="nearest"),
            lambda: mq.float_quantize(t, exp=4, man=3, rounding="nearest"),
        ),
        QuantCase(
            "e4m3 stochastic, exact (all remainder bits)",
            lambda: mpsim.quantize(x, "e4m3", "stochastic", seed=1),
            lambda: qq.float_quantize(t, exp=4, man=3, rounding="stochastic"),
            lambda: mq.float_quantize(t, exp=4, man=3, rounding="stochastic"),  # prng = 23 - man = 20 bits
        ),
        QuantCase(
            "e4m3 stochastic, 8 random bits",
            lambda: mpsim.quantize(x, "e4m3", "stochastic:8", seed=1),
            None,
            lambda: mq.float_quantize(t, exp=4, man=3, rounding="stochastic", prng=8),
            qtorch_na="QPyTorch has no random-bit count: "
            "its stochastic rounding always uses all 23-man remainder bits.",
            note=MPTORCH_PRNG_NOTE if mp.ok else "",
        ),
        QuantCase(
            "e5m2 nearest",
            lambda: mpsim.quantize(x, "e5m2"),
            lambda: qq.float_quantize(t, exp=5, man=2, rounding="nearest"),
            lambda: mq.float_quantize(t, exp=5, man=2, rounding="nearest"),
        ),
    ]


def run_quant_table(x: np.ndarray, qt: Peer, mp: Peer, repeat: int, notes: Notes) -> dict[tuple[str, str], np.ndarray]:
    """Print table (a); return each implementation's last result by (case, implementation)."""
    t = torch.from_numpy(x)
    threads = numba.get_num_threads()
    headers = [
        "operation (M elements/s)",
        f"mpsim ({threads} threads)",
        "mpsim (1 thread)",
        peer_header(qt),
        peer_header(mp),
    ]
    rows: list[list[str]] = []
    results: dict[tuple[str, str], np.ndarray] = {}
    for case in quant_cases(x, t, qt, mp):
        row = [f"{case.label} {notes.mark(case.note)}" if case.note else case.label]
        cell = timed_cell(case.mpsim, x.size, repeat, notes)
        results[(case.label, "mpsim")] = cell.result
        row.append(cell.text)
        with numba_threads(1):
            row.append(timed_cell(case.mpsim, x.size, repeat, notes).text)
        for peer, fn, na in ((qt, case.qtorch, case.qtorch_na), (mp, case.mptorch, case.mptorch_na)):
            if not peer.ok:
                row.append(f"{NA} {notes.mark(f'{peer.label}: {peer.error}')}")
            elif fn is None:
                row.append(f"{NA} {notes.mark(na)}")
            else:
                cell = timed_cell(fn, x.size, repeat, notes)
                results[(case.label, peer.module_name)] = cell.result
                row.append(cell.text)
        rows.append(row)
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(md_table(headers, rows))
    return results


# --------------------------------------------------------------------------- (b) GEMM


@dataclass
class GemmCase:
    label: str
    mpsim_kwargs: dict[str, Any]
    mptorch_kwargs: dict[str, Any] | None
    exact_match_expected: bool


GEMM_CASES = [
    GemmCase(
        "FMA, e5m6 accumulator, nearest",
        dict(acc="e5m6", fma=True, rounding="nearest"),
        dict(man_add=6, exp_add=5, fma=True, rounding="nearest", saturate=False),
        True,
    ),
    GemmCase(
        "bf16 product, bf16 accumulator (no FMA), nearest",
        dict(mul="bf16", acc="bf16", fma=False, rounding="nearest"),
        dict(man_add=7, exp_add=8, man_mul=7, exp_mul=8, fma=False, rounding="nearest", saturate=False),
        True,
    ),
    GemmCase(
        "FMA, fp16 accumulator, stochastic 8 random bits",
        dict(acc="fp16", fma=True, rounding="stochastic:8", seed=1),
        dict(man_add=10, exp_add=5, fma=True, rounding="stochastic", rbits_add=8, saturate=False),
        False,
    ),
]


def format_kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def gemm_inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    a = mpsim.quantize(rng.standard_normal((n, n)).astype(np.float32), "e4m3")
    b = mpsim.quantize(rng.standard_normal((n, n)).astype(np.float32), "e4m3")
    return a, b


def relative_error(c: np.ndarray | None, exact: np.ndarray) -> str:
    if c is None:
        return NA
    return f"{np.abs(c.astype(np.float64) - exact).sum() / np.abs(exact).sum():.2e}"


def equal_fraction(u: np.ndarray, v: np.ndarray) -> float:
    """Fraction of equal elements (NaN equals NaN; +0 equals -0)."""
    same = (u == v) | (np.isnan(u) & np.isnan(v))
    return float(same.mean())


def run_gemm_table(n: int, qt: Peer, mp: Peer, repeat: int, notes: Notes) -> list[list[str]]:
    """Print table (b); return agreement rows for table (c)."""
    a, b = gemm_inputs(n)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    macs = n**3
    threads = numba.get_num_threads()
    qt_gemm = (
        "QPyTorch has no GEMM with rounded multiply-accumulate steps: it quantizes only the inputs/outputs "
        "(and gradients) of layers, the products and sums run in fp32."
    )
    qt_cell = f"{NA} {notes.mark(qt_gemm)}"
    headers = [
        f"{n}x{n}x{n} GEMM on e4m3 inputs (M MAC/s)",
        f"mpsim ({threads} threads)",
        "mpsim (1 thread)",
        peer_header(qt) if qt.ok else "QPyTorch",
        peer_header(mp),
        "rel. error vs fp64: mpsim / mptorch",
    ]
    rows, agreement = [], []
    for case in GEMM_CASES:

        def run_mpsim(kw: dict[str, Any] = case.mpsim_kwargs) -> np.ndarray:
            return mpsim.qmatmul(a, b, **kw)

        cell = timed_cell(run_mpsim, macs, repeat, notes)
        with numba_threads(1):
            cell1 = timed_cell(run_mpsim, macs, repeat, notes)
        if mp.ok:
            mp_cell = timed_cell(lambda kw=case.mptorch_kwargs: mp.quant.float_mm(ta, tb, **kw), macs, repeat, notes)
        else:
            mp_cell = Cell(f"{NA} {notes.mark(f'{mp.label}: {mp.error}')}")
        errors = f"{relative_error(cell.result, exact)} / {relative_error(mp_cell.result, exact)}"
        label = (
            f"{case.label} {notes.mark(MPTORCH_PRNG_NOTE)}"
            if mp.ok and "stochastic" in case.mpsim_kwargs["rounding"]
            else case.label
        )
        rows.append([label, cell.text, cell1.text, qt_cell, mp_cell.text, errors])
        if cell.result is not None and mp_cell.result is not None:
            what = (
                f"{equal_fraction(cell.result, mp_cell.result):.6f}"
                if case.exact_match_expected
                else NA + " (different random bits)"
            )
            agreement.append(
                [f"GEMM: {case.label}", f"{n}x{n}x{n} e4m3 N(0,1)", "mptorch float_mm", "mpsim qmatmul", what]
            )
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    torch_s, _ = best_seconds(lambda: ta @ tb, repeat * 5)
    print(md_table(headers, rows))
    print(
        f"\nReference: torch.matmul fp32 (BLAS, {torch.get_num_threads()} threads): "
        f"{macs / torch_s / 1e6:,.0f} M MAC/s."
    )
    print("Calls (both accumulate sequentially over k from 0; mptorch rounds fmaf(a, b, c), an fp32 result, to the")
    print("accumulator format, mpsim rounds the exact value: the same unless the fp32 step is inexact):")
    for c in GEMM_CASES:
        print(
            f"- {c.label}: mpsim.qmatmul(a, b, {format_kwargs(c.mpsim_kwargs)}); "
            f"mptorch float_mm(a, b, {format_kwargs(c.mptorch_kwargs)})"
        )
    return agreement


# --------------------------------------------------------------------------- (c) agreement


def wide_data(size: int) -> np.ndarray:
    """Random signs, magnitudes log-uniform over 2^-20..2^20: underflow, subnormals, normals, overflow."""
    rng = np.random.default_rng(2)
    mags = np.exp2(rng.uniform(-20.0, 20.0, size))
    return (mags * rng.choice([-1.0, 1.0], size)).astype(np.float32)


def tie_data(fmt: FloatFormat) -> np.ndarray:
    """Exact midpoints between neighbouring finite values of ``fmt`` (both signs): every one a tie."""
    values = mpsim.decode(fmt, np.arange(2**fmt.bits)).astype(np.float64)
    values = np.unique(values[np.isfinite(values) & (values >= 0)])
    mids = ((values[:-1] + values[1:]) / 2).astype(np.float32)
    return np.concatenate([mids, -mids])


def agreement_row(
    check: str, data_name: str, peer_label: str, reference: str, peer_out: Any, ref_out: np.ndarray
) -> list[str]:
    return [check, data_name, peer_label, reference, f"{equal_fraction(as_numpy(peer_out), ref_out):.6f}"]


def nearest_agreement(x: np.ndarray, results: dict[tuple[str, str], np.ndarray], qt: Peer, mp: Peer) -> list[list[str]]:
    """Nearest rounding: against mpsim's OCP formats and against mpsim spelling each peer's semantics."""
    rows: list[list[str]] = []
    wide = wide_data(2**20)
    for exp, man in ((4, 3), (5, 2)):
        ocp = f"e{exp}m{man}"
        case = f"{ocp} nearest"
        for peer, fmt, rounding in (
            (qt, qtorch_format(exp, man), QTORCH_NEAREST),
            (mp, mptorch_format(exp, man), MPTORCH_NEAREST),
        ):
            if not peer.ok:
                continue
            label = f"{peer.label} float_quantize"
            try:
                peer_n01 = results.get((case, peer.module_name))
                if peer_n01 is not None:
                    rows.append(
                        agreement_row(
                            case,
                            f"N(0,1), {x.size:,}",
                            label,
                            f"mpsim {ocp} nearest (OCP)",
                            peer_n01,
                            results[(case, "mpsim")],
                        )
                    )
                    rows.append(
                        agreement_row(
                            case,
                            f"N(0,1), {x.size:,}",
                            label,
                            f"mpsim {fmt.name} {rounding}",
                            peer_n01,
                            mpsim.quantize(x, fmt, rounding),
                        )
                    )
                ties = tie_data(fmt)
                for name, data in ((f"wide 2^+-20, {wide.size:,}", wide), (f"ties of {fmt.name}, {ties.size:,}", ties)):
                    out = peer.quant.float_quantize(torch.from_numpy(data), exp=exp, man=man, rounding="nearest")
                    rows.append(
                        agreement_row(case, name, label, f"mpsim {ocp} nearest (OCP)", out, mpsim.quantize(data, ocp))
                    )
                    rows.append(
                        agreement_row(
                            case, name, label, f"mpsim {fmt.name} {rounding}", out, mpsim.quantize(data, fmt, rounding)
                        )
                    )
            except Exception as err:  # noqa: BLE001 -- a peer's failure on one case becomes that row's error
                rows.append([case, "-", label, "-", f"error: {short_error(err)}"])
    return rows


def stochastic_checks(x: np.ndarray, results: dict[tuple[str, str], np.ndarray], qt: Peer, mp: Peer) -> list[list[str]]:
    """Stochastic rounding cannot match bit for bit (different random bits); check it statistically instead.

    All three round the magnitude (sign-magnitude), so the checks use ``m = |x|`` and ``|q|``: the
    fraction of ``|q|`` in {down(m), up(m)} of the implementation's own format, the mean of
    ``(|q| - m) / (up - down)`` over inexact elements (0 when unbiased; truncating the distance to
    ``k`` random bits gives about ``-2^-(k+1)`` ulp), and P(round away from zero) beside the mean
    distance in ulps that exact stochastic rounding would give.
    """
    fmt_of = {"mpsim": mpsim.parse_format("e4m3"), "qtorch": qtorch_format(4, 3), "mptorch": mptorch_format(4, 3)}
    label_of = {"mpsim": "mpsim", "qtorch": qt.label, "mptorch": mp.label}
    m = np.abs(x)
    brackets = {name: (mpsim.quantize(m, fmt, "down"), mpsim.quantize(m, fmt, "up")) for name, fmt in fmt_of.items()}
    rows = []
    for case in ("e4m3 stochastic, exact (all remainder bits)", "e4m3 stochastic, 8 random bits"):
        for impl in ("mpsim", "qtorch", "mptorch"):
            q = results.get((case, impl))
            if q is None:
                continue
            q = np.abs(q)
            lo, hi = brackets[impl]
            inside = float(((q == lo) | (q == hi)).mean())
            gap = hi.astype(np.float64) - lo
            inexact = gap > 0
            bias = float(((q[inexact] - m[inexact].astype(np.float64)) / gap[inexact]).mean())
            away = float((q[inexact] == hi[inexact]).mean())
            expected = float(((m[inexact] - lo[inexact].astype(np.float64)) / gap[inexact]).mean())
            rows.append([case, label_of[impl], f"{inside:.6f}", f"{bias:+.5f}", f"{away:.5f} / {expected:.5f}"])
    return rows


# --------------------------------------------------------------------------- main


def print_peer_status(qt: Peer, mp: Peer, paths: list[str]) -> None:
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, mpsim {mpsim.__version__}, Python {sys.version.split()[0]}"
    )
    print(f"--peers-path: {os.pathsep.join(paths) or '(none)'}\n")
    rows = []
    for peer in (qt, mp):
        if peer.ok:
            status = (
                f"ok, {peer.module_name}.quant imported in {peer.import_seconds:.1f} s "
                "(incl. C++ JIT build if not cached)"
            )
            rows.append([peer.label, peer.version, status, peer.origin])
        else:
            rows.append([peer.label, peer.version if peer.origin else "-", peer.error or "", peer.origin or "-"])
    print(md_table(["peer", "version", "status", "imported from"], rows))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    paths = add_peer_paths(args.peers_path)
    qt, mp = load_peers(args.extensions_dir)
    print_peer_status(qt, mp, paths)

    notes = Notes()
    for text in semantics_notes():
        notes.mark(text)
    x = np.random.default_rng(0).standard_normal(args.size).astype(np.float32)

    print(f"\n## (a) Quantization: {args.size:,} float32 N(0,1) elements, best of {args.repeat} [1][2][3][4]\n")
    results = run_quant_table(x, qt, mp, args.repeat, notes)

    print(f"\n## (b) Emulated GEMM: {args.gemm}x{args.gemm}x{args.gemm}, best of {args.gemm_repeat}\n")
    gemm_agreement = run_gemm_table(args.gemm, qt, mp, args.gemm_repeat, notes)

    print("\n## (c) Agreement of nearest rounding and GEMM results (fraction of equal elements)\n")
    rows = nearest_agreement(x, results, qt, mp) + gemm_agreement
    if rows:
        print(md_table(["check", "data", "peer", "compared with", "equal fraction"], rows))
    else:
        print("No peer ran: nothing to compare.")

    print(f"\n## (d) Stochastic rounding checks on the {args.size:,} N(0,1) elements (e4m3)\n")
    stoch = stochastic_checks(x, results, qt, mp)
    headers = [
        "case",
        "implementation",
        "abs(q) in {down, up}",
        "mean abs(q)-abs(x) (ulps)",
        "P(away from 0) / exact SR",
    ]
    print(md_table(headers, stoch))

    print("\nNotes:")
    notes.print()


if __name__ == "__main__":
    main()
