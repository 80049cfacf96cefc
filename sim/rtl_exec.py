"""Run an emitted MAC array's Verilog at C++ speed: a whole job stream per call, through ``ctypes``.

:meth:`RtlExecutor.open` builds (or reuses, :mod:`sim.rtl_build`) the
Verilator model of the array a manifest describes together with the C++
harness ``sim/harness/rtl_exec.cpp``, and loads it. :meth:`RtlExecutor.run`
takes the input stream's payloads as a ``(beats, words)`` uint32 array
(:meth:`hls_gen.manifest.Port.pack_words` packs them, 32-bit words LSB
first, as Verilator stores ports wider than 64 bits), streams them through
the valid/ready handshake (with optional seeded back-pressure on both
streams), and returns every output payload and the cycle counts as an
:class:`ExecResult`. The model keeps its state between runs (the PEs'
LFSRs carry on from job to job, as the hardware's do); :meth:`RtlExecutor.reset`
starts again from reset. :mod:`sim.rtl_vectors` packs an
:class:`~sim.vectors.ArrayVectors` and checks the tiles that come back.

The C ABI (``MPSIM_EXEC_ABI`` in the harness): ``mpsim_exec_create()``,
``mpsim_exec_destroy(h)``, ``mpsim_exec_reset(h, cycles)``,
``mpsim_exec_words(&in, &out)`` and ``mpsim_exec_run(h, beats, n_beats,
out, n_out, seed, in_hold, out_hold, stall_limit, mark, stats)``.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from sim.manifest import ArrayDesign, read_manifest
from sim.rtl_build import ExecBuild, build_exec
from sim.runner import Log

__all__ = ["ABI_VERSION", "ExecHang", "ExecResult", "RtlExecutor", "default_stall_limit", "run_parallel"]

#: The harness ABI this module speaks (``MPSIM_EXEC_ABI`` in ``sim/harness/rtl_exec.cpp``).
ABI_VERSION = 1
_STATS = 7  # cycles, in taken, in stalls, out taken, out stalls, mark cycle, first valid cycle
_U32P = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")
_I64P = np.ctypeslib.ndpointer(np.int64, flags="C_CONTIGUOUS")


class ExecHang(RuntimeError):
    """Nothing moved on either stream for the stall limit: the message says where the run stood."""


@dataclass(frozen=True)
class ExecResult:
    """One run: the output payloads and where the cycles went.

    ``outputs`` is ``(beats, words)`` uint32, in arrival order. ``cycles``
    counts from the first cycle the harness drove through the one that took
    the last output beat (with no back-pressure, what
    :func:`hls_gen.perf_model.stream_cycles` predicts). ``in_stalls``: cycles
    with a beat offered and the array not ready; ``out_stalls``: cycles with
    an output beat offered and not taken. ``latency``: cycles from input beat
    ``mark`` to the first output valid (None without a mark). ``seconds``:
    wall time of the C++ call.
    """

    outputs: np.ndarray
    cycles: int
    in_beats: int
    in_stalls: int
    out_beats: int
    out_stalls: int
    latency: int | None
    seconds: float


def default_stall_limit(design: ArrayDesign, backpressure: float = 0.0) -> int:
    """Cycles without progress that mean a hang: the cocotb bench's bound, so both call the same runs hangs."""
    slack = int(40 / (1 - backpressure)) if backpressure else 0
    return 64 + 8 * design.latency + 4 * design.tile_rows + slack


class RtlExecutor:
    """A loaded Verilator model of one emitted array (one model per executor; close it, or use ``with``)."""

    def __init__(self, design: ArrayDesign, build: ExecBuild) -> None:
        self.design, self.build = design, build
        self._lib = ctypes.CDLL(str(build.library))
        lib = self._lib
        lib.mpsim_exec_abi.restype = ctypes.c_int
        if lib.mpsim_exec_abi() != ABI_VERSION:
            raise RuntimeError(
                f"executor library {build.library} speaks ABI {lib.mpsim_exec_abi()}, not {ABI_VERSION}: rebuild it"
            )
        lib.mpsim_exec_create.restype = ctypes.c_void_p
        lib.mpsim_exec_destroy.argtypes = [ctypes.c_void_p]
        lib.mpsim_exec_reset.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.mpsim_exec_words.argtypes = [ctypes.POINTER(ctypes.c_int)] * 2
        lib.mpsim_exec_run.restype = ctypes.c_int
        lib.mpsim_exec_run.argtypes = [
            ctypes.c_void_p,
            _U32P,
            ctypes.c_int64,
            _U32P,
            ctypes.c_int64,
            ctypes.c_uint64,
            ctypes.c_uint32,
            ctypes.c_uint32,
            ctypes.c_int64,
            ctypes.c_int64,
            _I64P,
        ]
        in_words, out_words = ctypes.c_int(), ctypes.c_int()
        lib.mpsim_exec_words(ctypes.byref(in_words), ctypes.byref(out_words))
        self.in_words, self.out_words = in_words.value, out_words.value
        expected = (design.stream("input").payload.words, design.stream("output").payload.words)
        if (self.in_words, self.out_words) != expected:
            raise RuntimeError(
                f"executor library {build.library} has payloads of {self.in_words} and {self.out_words} words, "
                f"the manifest {expected[0]} and {expected[1]}: the build does not match {design.path}"
            )
        self._handle: int | None = lib.mpsim_exec_create()
        self.reset()

    @classmethod
    def open(
        cls,
        manifest: str | Path,
        *,
        opt: str = "Os",
        threads: int = 1,
        cache_dir: str | Path | None = None,
        rebuild: bool = False,
        log: Log = lambda _: None,
        progress: bool = False,
    ) -> Self:
        """Build (or reuse) and load the executor of the array ``manifest`` describes, in its reset state.

        ``opt`` and ``threads``: :func:`sim.rtl_build.build_exec`'s.
        """
        design = read_manifest(manifest, "array")
        if not isinstance(design, ArrayDesign):  # read_manifest checked the unit; this narrows the type
            raise TypeError(f"manifest {manifest} does not describe an array")
        built = build_exec(
            design,
            opt=opt,
            threads=threads,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            rebuild=rebuild,
            log=log,
            progress=progress,
        )
        return cls(design, built)

    def _live(self) -> int:
        if self._handle is None:
            raise RuntimeError(f"executor of {self.design.top} is closed")
        return self._handle

    def reset(self, cycles: int = 2) -> None:
        """Hold ``rst`` high for ``cycles`` rising edges with both streams idle (the cocotb bench's reset)."""
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
            raise ValueError(f"reset cycles must be a positive integer, not {cycles!r}")
        self._lib.mpsim_exec_reset(self._live(), cycles)

    def run(
        self,
        beats: np.ndarray,
        *,
        out_beats: int | None = None,
        backpressure: float = 0.0,
        seed: int = 0,
        stall_limit: int | None = None,
        mark: int | None = None,
    ) -> ExecResult:
        """Stream ``beats`` (``(n, in_words)`` uint32 payloads) in and collect ``out_beats`` output payloads.

        ``out_beats`` defaults to one tile (``tile_rows`` beats) per job: per
        ``interleave`` input beats whose ``last`` is set. ``backpressure``: chance per cycle that the
        input's valid and, drawn apart, the output's ready are held low
        (seeded by ``seed``). Raises :class:`ExecHang` when nothing moves for
        ``stall_limit`` cycles (default :func:`default_stall_limit`).
        """
        design = self.design
        beats = np.ascontiguousarray(beats, dtype=np.uint32)
        if beats.ndim != 2 or beats.shape[1] != self.in_words:
            raise ValueError(f"beats must be an (n, {self.in_words}) array of uint32 words, not shape {beats.shape}")
        if not (isinstance(backpressure, (int, float)) and 0.0 <= backpressure < 1.0):
            raise ValueError(f"backpressure must be a probability in [0, 1), not {backpressure!r}")
        if out_beats is None:  # a job's last step carries last on each of its interleave beats
            out_beats = int(design.stream("input").payload.read_words(beats, "last").sum()) // design.interleave
            out_beats *= design.tile_rows
        if isinstance(out_beats, bool) or not isinstance(out_beats, int) or out_beats < 0:
            raise ValueError(f"out_beats must be a non-negative integer, not {out_beats!r}")
        limit = default_stall_limit(design, backpressure) if stall_limit is None else stall_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"stall limit must be a positive integer, not {limit!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 64:
            raise ValueError(f"seed must be an integer in 0..2**64-1, not {seed!r}")
        hold = min(int(backpressure * (1 << 32)), (1 << 32) - 1)
        outputs = np.zeros((out_beats, self.out_words), np.uint32)
        stats = np.zeros(_STATS, np.int64)
        start = time.perf_counter()
        status = self._lib.mpsim_exec_run(
            self._live(), beats, len(beats), outputs, out_beats, seed, hold, hold, limit, -1 if mark is None else mark,
            stats,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        cycles, in_taken, in_stalls, out_taken, out_stalls, mark_cycle, first_valid = (int(x) for x in stats)
        if status != 0:
            raise ExecHang(
                f"{design.top}: no progress for {limit} cycles at cycle {cycles}: {in_taken} of {len(beats)} input "
                f"beats taken, {out_taken} of {out_beats} output beats received"
            )
        latency = first_valid - mark_cycle if mark is not None and mark_cycle >= 0 and first_valid >= 0 else None
        return ExecResult(outputs, cycles, in_taken, in_stalls, out_taken, out_stalls, latency, seconds)

    def close(self) -> None:
        """Free the model (the library stays loaded: ctypes cannot unload it safely)."""
        if self._handle is not None:
            self._lib.mpsim_exec_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            self.close()


def run_parallel(executors: Sequence[RtlExecutor], beats: Sequence[np.ndarray], **options: object) -> list[ExecResult]:
    """Run ``beats[i]`` on ``executors[i]``, all at once, one thread each: N arrays' throughput on N cores.

    ctypes lets go of the GIL for the length of a run, and every executor
    has its own model and Verilator context, so the runs share nothing.
    ``options`` are :meth:`RtlExecutor.run`'s, the same for every stream.
    """
    if len(executors) != len(beats):
        raise ValueError(f"one job stream per executor: {len(executors)} executors, {len(beats)} streams")
    if len({id(e) for e in executors}) != len(executors):
        raise ValueError("each stream needs an executor of its own (one model runs one stream at a time)")
    with ThreadPoolExecutor(max_workers=max(1, len(executors))) as pool:
        return list(pool.map(lambda pair: pair[0].run(pair[1], **options), zip(executors, beats)))  # type: ignore[arg-type]
