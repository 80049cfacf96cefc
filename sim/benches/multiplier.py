"""cocotb bench for a multiplier top: ``lanes`` operand pairs per evaluation, every result checked.

The top is combinational (no clock), so one evaluation is: write ``a``,
``b`` (and ``rand``), let the simulator settle, read ``product``.
"""

from __future__ import annotations

import time

import cocotb
import numpy as np
from cocotb.triggers import Timer

import mpsim
from sim.exchange import SHOWN_MISMATCHES, BenchRequest, BenchResult, mismatch_record
from sim.manifest import MultiplierDesign, read_manifest
from sim.vectors import exact_values, multiplier_vectors, same_codes, same_values


def _words(values: np.ndarray, lanes: int, width: int) -> list[int]:
    """Packed port values, ``lanes`` elements each (the last padded with zeros)."""
    steps = -(-values.size // lanes)
    padded = np.zeros(steps * lanes, dtype=np.int64)
    padded[: values.size] = values
    rows = padded.reshape(steps, lanes).tolist()
    return [sum(int(v) << (i * width) for i, v in enumerate(row)) for row in rows]


def _check(design: MultiplierDesign, got: np.ndarray, vectors, result: BenchResult) -> None:
    """Compare every product with mpsim's and record the first mismatches."""
    if design.out_format is None:
        values = exact_values(design, got)
        bad = np.flatnonzero(~same_values(values, vectors.want))
    else:
        bad = np.flatnonzero(~same_codes(got, vectors.want, design.out_format))
    result.mismatch_count = int(bad.size)
    width = design.ports["product"].element_width
    for i in bad[:SHOWN_MISMATCHES]:
        inputs = {
            "a": f"{int(vectors.a[i]):#x} ({float(mpsim.decode(design.a_format, vectors.a[i : i + 1])[0])!r})",
            "b": f"{int(vectors.b[i]):#x} ({float(mpsim.decode(design.b_format, vectors.b[i : i + 1])[0])!r})",
        }
        if vectors.rand is not None:
            inputs["rand"] = f"{int(vectors.rand[i]):#x}"
        want = float(vectors.want[i]) if design.out_format is None else int(vectors.want[i])
        record = mismatch_record(
            int(i), f"pair {i}, lane {i % design.lanes}", design.out_format, width, int(got[i]), want, inputs
        )
        if design.out_format is None:
            record["got"]["value"] = repr(float(exact_values(design, got[i : i + 1])[0]))
        result.mismatches.append(record)


@cocotb.test()
async def multiplier_matches_mpsim(dut) -> None:
    """Every requested operand pair: the product's bits equal mpsim's."""
    request = BenchRequest.from_env()
    design = read_manifest(request.manifest, "multiplier")
    assert isinstance(design, MultiplierDesign)
    vectors = multiplier_vectors(design, request.stimulus)
    lanes, ports = design.lanes, design.ports
    a_words = _words(vectors.a, lanes, ports["a"].element_width)
    b_words = _words(vectors.b, lanes, ports["b"].element_width)
    r_words = None if vectors.rand is None else _words(vectors.rand, lanes, ports["rand_in"].element_width)
    product_words: list[int] = []
    start = time.perf_counter()
    for step in range(len(a_words)):
        dut.a.value = a_words[step]
        dut.b.value = b_words[step]
        if r_words is not None:
            dut.rand_in.value = r_words[step]
        await Timer(1, unit="ns")  # combinational: settle, then read
        product_words.append(int(dut.product.value))
    result = BenchResult(
        checked=int(vectors.a.size),
        macs=int(vectors.a.size),
        cycles=len(a_words),
        sim_wall_s=time.perf_counter() - start,
    )
    width = ports["product"].element_width
    mask = (1 << width) - 1
    got = np.array(
        [(w >> (i * width)) & mask for w in product_words for i in range(lanes)][: vectors.a.size], dtype=np.int64
    )
    _check(design, got, vectors, result)
    result.write(request.result)
    assert result.passed, f"{result.mismatch_count} of {result.checked} products differ from mpsim"
