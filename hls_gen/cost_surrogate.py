"""Hardware cost before synthesis: LUT, FF, DSP, carry and Fmax of a MAC array predicted from its configuration.

A :class:`Surrogate` is fitted on the synthesis cache (:mod:`hls_gen.synth`)
and answers for any configuration the generator accepts in microseconds.
Every quantity is a sum of named, physically motivated terms of the
configuration's :class:`Features`, each scaled by where it lives in the array:

* resources (``luts``, ``ffs``, ``dsps``, ``carry``)::

      cost = rows*cols * sum_j w_j * pe_j(features)     (one PE's datapath)
           + (rows+cols) * sum_j v_j * edge_j(features) (each row's and column's operand decoder)
           + skew * s(features) + cols * o(features)    (skew registers, the output row)
           + c                                          (array control)

  (:data:`SCOPES`, :data:`TERMS`),
  fitted by non-negative least squares on the relative error, so every
  coefficient reads as "cells per unit of that term" and none is negative;
* Fmax through the critical-path delay ``1000 / fmax_mhz`` (ns), a linear sum
  of delay terms of the accumulate loop, which is the critical path of these
  arrays (carry-chain length, shifter depth, exponent width,
  stochastic-rounding adder, array size), fitted the same way (no term may
  shorten the path).

Each model's prediction is then multiplied by ``exp(c)``, where ``c`` is a
smooth correction (:mod:`hls_gen.kernel_ridge`) of the log residuals the
terms left on similar PE configurations (formats, rounding, loop): the
technology mapper's way with a PE is not a sum of terms, and neighbours share
it. Far from every training design the correction fades to the residuals'
mean and the terms extrapolate alone (leave-one-out on the 120 designs of
``results/hw/surrogate``: LUT4 within 10 % for 76 % of them -> 90 %).

Only reports of the *current* generator are used: a report is training data
when it is the entry :func:`hls_gen.synth.lookup` would return today, i.e.
its key is the design key of the Verilog the cache remembers for the
configuration under today's generator sources
(:meth:`hls_gen.synth.SynthCache.known_verilog`). Reports of Verilog that an
older generator wrote are never mixed in. Configurations whose Verilog the
cache does not yet know under today's sources (after any edit to ``hls_gen``
or ``mpsim``) are skipped until ``--refresh`` elaborates them (seconds each).

    python -m hls_gen.cost_surrogate --evaluate [--folds 0] [--refresh [--refresh-max-pes N]] [--earlier]
                                     [--cache DIR] [--out results/hw/surrogate]
                                     [--import FILE] [--export FILE] [--fresh FILE]

prints the fitted terms and the held-out error per target
(leave-one-configuration-out, or ``--folds K``) and writes them as JSON and
CSV; ``--earlier`` adds a rough check against earlier generators' reports of
configurations the current data lack. ``--export`` writes the reports it
learnt from as JSON lines (committed: ``results/hw/surrogate/reports.jsonl``)
and ``--import`` puts such a file into another cache, so a fresh machine
predicts without synthesizing: ``--import FILE --refresh`` keeps the reports
whose Verilog today's generator still writes. ``--fresh FILE`` fits on only
the reports such a file lists and reports the error on every other one: the
check on designs synthesized after the surrogate's settings were chosen.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hls_gen.kernel_ridge import KernelRidge, fit_kernel_ridge

if TYPE_CHECKING:
    from hls_gen.emit import ArrayConfig
    from hls_gen.synth import SynthCache

__all__ = [
    "RESOURCES",
    "TARGETS",
    "THRESHOLDS",
    "Evaluation",
    "Features",
    "Model",
    "NoData",
    "Sample",
    "Surrogate",
    "Term",
    "compare",
    "earlier_samples",
    "evaluate",
    "export_reports",
    "features",
    "fit",
    "fresh_check",
    "import_reports",
    "load_samples",
    "nnls",
    "surrogate_for",
]

#: Resource counts the surrogate predicts (fields of :class:`hls_gen.synth.ResourceReport`).
RESOURCES = ("luts", "ffs", "dsps", "carry")
#: Everything it predicts.
TARGETS = (*RESOURCES, "fmax_mhz")
#: The relative error each target should stay within on configurations the fit did not see (issue 22).
THRESHOLDS = {"luts": 0.10, "ffs": 0.10, "dsps": 0.10, "carry": 0.10, "fmax_mhz": 0.15}
#: Bumped when the features, terms or fitting change: a stored surrogate of another version is refitted.
SURROGATE_VERSION = 4

#: Scramble seeds whose syntheses of a design (``SynthOptions.scramble_seed``, ``benchmarks/lut_scatter.py``) are
#: draws of its own: the surrogate learns the median of the draws a design has of each DRAWN target.
SCRAMBLES = tuple(range(1, 9))
#: The targets whose count moves with the names Yosys and ABC meet (flip-flops and DSP blocks do not).
DRAWN = ("luts", "carry")


class NoData(ValueError):
    """The cache holds no report the surrogate may learn from; the message says what to run."""


@dataclass(frozen=True)
class Features:
    """What a hardware engineer would name as the causes of a MAC array's cost.

    Widths are taken over the array's modes (the datapath is shared and as
    wide as its widest mode); significands count the hidden bit.
    """

    rows: int
    cols: int
    a_sig: int  # operand A significand bits (mantissa + 1)
    a_exp: int
    b_sig: int
    b_exp: int
    term_sig: int  # significand bits of an accumulated term: a_sig + b_sig fused, else the product format's
    product_sig: int  # 0: fused MAC (exact products)
    acc_sig: int
    acc_exp: int
    rand_bits: int  # stochastic-rounding bits K of the accumulation (0: nearest)
    product_rand_bits: int
    pipeline: int
    interleave: int
    modes: int
    dsp_block: int  # 1: ECP5 MULT18X18D instantiated (dsp="ecp5"), 0: inferred
    lfsr_width: int  # 0 when nothing draws random bits
    adder_sig: int  # significand bits of the shared adder: the widest a mode fills (accumulator's or term's)
    adder_guard: int  # its guard bits: K + 2 (K = 1 for nearest) beyond what the zeros below a narrower mode give
    block: int = 0  # MX block size (elements per E8M0 scale); 0: an element-format array
    window: int = 0  # MX: bits of the block-sum window (mpsim.mx.block_window), the significand of each block's term

    @property
    def mx(self) -> int:
        """1 for an MX array, else 0."""
        return int(self.block > 0)

    @property
    def mx_window_registers(self) -> int:
        """Window-wide pipeline registers of an MX PE (:class:`hls_gen.mx_mac.MXMAC`): the normalized term's
        (pipeline 1 and up), the block's total (3), its magnitude (4), the placed product (5)."""
        return self.mx * sum(self.pipeline >= n for n in (1, 3, 4, 5))

    @property
    def mx_operand_registers(self) -> int:
        """An MX PE's element-wide pipeline registers: the exact product's (pipeline 2 and up), the operands' (6)."""
        return self.mx * sum(self.pipeline >= n for n in (2, 6))

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def edges(self) -> int:
        return self.rows + self.cols

    @property
    def mult(self) -> int:
        """Partial products of one multiplier: the product of the significand widths."""
        return self.a_sig * self.b_sig

    @property
    def acc_bits(self) -> int:
        return self.acc_sig + self.acc_exp  # sign + exponent + mantissa

    @property
    def align(self) -> int:
        """W, the adder's window: both significands left-aligned in ``adder_sig`` bits, the guard bits and a sticky
        bit (:func:`hls_gen.spec.shared_adder_bits`, :func:`hls_gen.arith.add_exact`)."""
        return self.adder_sig + self.adder_guard + 1

    @property
    def dsp_tiles(self) -> int:
        """18x18 multiplier tiles one product needs."""
        return math.ceil(self.a_sig / 18) * math.ceil(self.b_sig / 18)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def features(config: ArrayConfig) -> Features:
    """The :class:`Features` of ``config`` as the generator builds it (``ValueError`` for one it cannot build)."""
    from hls_gen.spec import shared_adder_bits

    pe = _pe(config)
    modes = pe.modes
    # an MX PE accumulates each block's exact sum, normalized: a term as wide as the block-sum window
    block, window = (modes[0].mx[0].block_size, pe.window[1]) if config.mx else (0, 0)
    term_bits = [window if config.mx else m.term_bits for m in modes]
    adder_sig, adder_guard = shared_adder_bits([(m.acc_format, m.rand_bits) for m in modes], term_bits)

    def widest(values: Sequence[int]) -> int:
        return max(values)

    return Features(
        rows=config.rows,
        cols=config.cols,
        a_sig=widest([m.a_format.man_bits + 1 for m in modes]),
        a_exp=widest([m.a_format.exp_bits for m in modes]),
        b_sig=widest([m.b_format.man_bits + 1 for m in modes]),
        b_exp=widest([m.b_format.exp_bits for m in modes]),
        term_sig=widest(term_bits),
        product_sig=widest([0 if m.product_format is None else m.product_format.man_bits + 1 for m in modes]),
        acc_sig=widest([m.acc_format.man_bits + 1 for m in modes]),
        acc_exp=widest([m.acc_format.exp_bits for m in modes]),
        rand_bits=widest([m.rand_bits or 0 for m in modes]),
        product_rand_bits=widest([m.product_rand_bits or 0 for m in modes]),
        pipeline=pe.pipeline,
        interleave=pe.interleave,
        modes=len(modes),
        dsp_block=int(not config.mx and pe.dsp != "inferred"),  # an MX PE infers its element products
        lfsr_width=pe.lfsr.width if pe.lfsr_steps else 0,
        adder_sig=adder_sig,
        adder_guard=adder_guard,
        block=block,
        window=window,
    )


def _pe(config: ArrayConfig) -> Any:
    """One PE of ``config`` as the generator checks it: the array's checks without seeding every PE's LFSR (which
    takes about a second for an 8x8 array)."""
    from hls_gen.array import MAX_ARRAY_SIDE
    from hls_gen.spec import check_int, described

    check_int(config.rows, "MAC array rows", 1, MAX_ARRAY_SIDE)
    check_int(config.cols, "MAC array columns", 1, MAX_ARRAY_SIDE)
    return described(replace(config, rows=1, cols=1).build()).pe


def array_name(config: ArrayConfig) -> str:
    """``config.name`` without building the whole array: the 1x1 array's name with the array's size."""
    head, _, tail = replace(config, rows=1, cols=1).name.rpartition("_1x1")
    return f"{head}_{config.rows}x{config.cols}{tail}"


@dataclass(frozen=True)
class Term:
    """One term of a model: ``scale(features) * value(features)``, with what it stands for."""

    name: str
    scope: str  # a key of SCOPES: how many times the term occurs in an array
    value: Callable[[Features], float]
    meaning: str

    def column(self, f: Features) -> float:
        return SCOPES[self.scope](f) * float(self.value(f))


#: How often a term occurs in a ``rows x cols`` array: per PE, per edge (each row's and each column's operand
#: decoder), per skew register (element ``i`` of a row or column is delayed by ``i`` registers), per column (the
#: output row), once, or once on the critical path.
SCOPES: dict[str, Callable[[Features], int]] = {
    "pe": lambda f: f.pes,
    "edge": lambda f: f.edges,
    "skew": lambda f: (f.rows * (f.rows - 1) + f.cols * (f.cols - 1)) // 2,
    "col": lambda f: f.cols,
    "array": lambda f: 1,
    "delay": lambda f: 1,
}


def _log2(x: float) -> float:
    return math.log2(max(x, 1.0))


def _one(f: Features) -> int:
    """1 for a PE whose accumulate loop is one cycle (L = 1), else 0."""
    return int(f.interleave == 1)


def _many(f: Features) -> int:
    """1 for a PE whose accumulate loop is interleaved (L > 1), else 0."""
    return int(f.interleave > 1)


#: The terms of each target's model. Kept few: the data are a few hundred designs at most.
TERMS: dict[str, tuple[Term, ...]] = {
    "luts": (
        Term("pe", "pe", lambda f: 1, "fixed logic per PE (handshake, step control)"),
        Term("mult", "pe", lambda f: f.mult * (1 - f.dsp_block), "product logic beside the DSP, a_sig*b_sig"),
        # the one-cycle loop and the interleaved one (its stages registered, the DSP's registers) map the shifter,
        # normaliser and adder differently: a term each (leave-one-out LUT error 6.1 % -> 5.3 % median on the
        # 120 designs of results/hw/surrogate, max 24 % -> 18 %)
        Term("shift_1", "pe", lambda f: f.align * _log2(f.align) * _one(f), "alignment shifter, W*log2 W (L = 1)"),
        Term("shift_L", "pe", lambda f: f.align * _log2(f.align) * _many(f), "alignment shifter, W*log2 W (L > 1)"),
        Term("normalise_1", "pe", lambda f: f.acc_sig * f.align * _one(f), "normalising: acc_sig of W places (L = 1)"),
        Term("normalise_L", "pe", lambda f: f.acc_sig * f.align * _many(f), "normalising: acc_sig of W places (L > 1)"),
        Term("add_1", "pe", lambda f: f.align * _one(f), "adder, leading-zero count and rounding, W (L = 1)"),
        Term("add_L", "pe", lambda f: f.align * _many(f), "adder, leading-zero count and rounding, W (L > 1)"),
        Term("exp", "pe", lambda f: f.acc_exp + f.a_exp + f.b_exp, "exponent add, compare and clamp"),
        Term("sr", "pe", lambda f: f.rand_bits + f.product_rand_bits, "stochastic rounding: K random bits added"),
        Term("sums", "pe", lambda f: f.interleave * f.acc_bits, "reading the L sums and the output buffer"),
        Term("modes", "pe", lambda f: (f.modes - 1) * f.acc_bits, "muxes of the extra modes' formats"),
        Term("interleaved", "pe", lambda f: int(f.interleave > 1), "the interleaved loop's turn counters"),
        Term("decode", "edge", lambda f: f.a_sig + f.a_exp, "each row's and column's operand decoder"),
        # an MX PE adds each element product into a block-sum register (mpsim.mx.block_window) before the loop
        Term("mx", "pe", lambda f: f.mx, "MX: block counter, scale sum, NaN scales"),
        Term("mx_window", "pe", lambda f: f.window, "MX: block-sum adder and negation, window bits"),
        Term(
            "mx_shift",
            "pe",
            lambda f: f.window * _log2(f.window),
            "MX: placing a product in the window, the block sum's leading-zero shift",
        ),
        Term("array", "array", lambda f: 1, "array control"),
    ),
    "ffs": (
        Term("pe", "pe", lambda f: 1, "control flip-flops per PE"),
        Term("sums", "pe", lambda f: f.acc_bits * f.interleave, "accumulator and output-buffer registers, L sums"),
        Term("operands", "pe", lambda f: f.a_sig + f.a_exp + f.b_sig + f.b_exp, "operand registers"),
        Term(
            "pipe",
            "pe",
            lambda f: (1 - f.mx) * f.pipeline * (f.term_sig + f.a_exp + f.b_exp),
            "pipeline registers, product",
        ),
        Term("lfsr", "pe", lambda f: f.lfsr_width, "the PE's LFSR (stochastic rounding)"),
        Term("sr_pipe", "pe", lambda f: f.rand_bits * f.pipeline, "random bits carried down the pipeline"),
        Term("skew", "skew", lambda f: f.a_sig + f.a_exp + 2, "skew registers of the decoded operands"),
        Term("col", "col", lambda f: f.acc_bits, "the output row"),
        Term("mx", "pe", lambda f: f.mx, "MX: block counter and scale registers"),
        Term("mx_ring", "pe", lambda f: f.window * f.interleave, "MX: the block-sum registers, a ring of L"),
        Term(
            "mx_pipe",
            "pe",
            lambda f: (
                f.window * f.mx_window_registers + (f.a_sig + f.a_exp + f.b_sig + f.b_exp) * f.mx_operand_registers
            ),
            "MX: pipeline registers, window- and element-wide",
        ),
        Term("array", "array", lambda f: 1, "array control"),
    ),
    "dsps": (Term("tiles", "pe", lambda f: f.dsp_tiles, "18x18 multiplier tiles per product"),),
    "carry": (
        Term("pe", "pe", lambda f: 1, "counters per PE"),
        Term("add_1", "pe", lambda f: f.align * _one(f), "carry chains of the aligned sum, W (L = 1)"),
        Term("add_L", "pe", lambda f: f.align * _many(f), "carry chains of the aligned sum, W (L > 1)"),
        Term("acc_exp_1", "pe", lambda f: f.acc_exp * _one(f), "the accumulator's exponent arithmetic (L = 1)"),
        Term("acc_exp_L", "pe", lambda f: f.acc_exp * _many(f), "the accumulator's exponent arithmetic (L > 1)"),
        Term("product_exp", "pe", lambda f: f.a_exp + f.b_exp, "the product's exponent sum"),
        Term("sr", "pe", lambda f: f.rand_bits, "stochastic-rounding adder"),
        Term("interleaved", "pe", lambda f: int(f.interleave > 1), "the interleaved loop's turn counters"),
        Term("edge", "edge", lambda f: 1, "counters at the edges"),
        Term("mx", "pe", lambda f: f.mx, "MX: block counter, scale sum"),
        Term("mx_window", "pe", lambda f: f.window, "MX: block-sum adder and negation"),
        Term("array", "array", lambda f: 1, "array control"),
    ),
    "fmax_mhz": (
        # nextpnr's critical path is the accumulate loop (the sum register back to itself): pipeline registers
        # before the accumulator do not cut it; interleaving L sums spreads it over L cycles (hence the 1/L)
        Term("base", "delay", lambda f: 1, "clock-to-out, setup, the loop's fixed logic"),
        Term("interleaved", "delay", lambda f: int(f.interleave > 1), "a stage of the interleaved loop"),
        Term("chain", "delay", lambda f: f.align / f.interleave, "carry chain of the aligned sum, per 1/L"),
        Term("levels", "delay", lambda f: _log2(f.align) / f.interleave, "shifter and leading-zero levels, per 1/L"),
        Term("exp", "delay", lambda f: f.acc_exp / f.interleave, "exponent compare, per 1/L"),
        Term("sr", "delay", lambda f: _log2(f.rand_bits + 1) / f.interleave, "stochastic-rounding adder, per 1/L"),
        Term("size", "delay", lambda f: _log2(f.pes), "routing across a larger array"),
        # an MX PE has a second path, the block sum (a beat a cycle whatever L): once the accumulate loop is cut
        # L > 1 ways, it is the critical one (pipeline registers take the product and its placing out of it)
        Term("mx_L", "delay", lambda f: f.mx * _many(f), "MX, L > 1: the block sum's fixed logic"),
        Term("mx_chain_L", "delay", lambda f: f.window * _many(f), "MX, L > 1: carry chain of the block sum"),
        Term(
            "mx_place_L",
            "delay",
            lambda f: f.mx * _many(f) * _log2(f.window) * int(f.pipeline < 5),
            "MX, L > 1, pipeline < 5: placing the product in the window, log2 levels",
        ),
        Term(
            "mx_mult_L",
            "delay",
            lambda f: f.mx * _many(f) * (f.a_sig + f.b_sig) * int(f.pipeline < 2),
            "MX, L > 1, pipeline < 2: the element product",
        ),
    ),
}


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """``argmin ||a x - b||`` subject to ``x >= 0`` (Lawson and Hanson's active-set method)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    gradient = a.T @ (b - a @ x)
    tolerance = 10 * np.finfo(float).eps * np.linalg.norm(a, 1) * max(m, n)
    for _ in range(max_iter or 3 * n):
        if passive.all() or gradient[~passive].max(initial=-np.inf) <= tolerance:
            break
        j = int(np.argmax(np.where(passive, -np.inf, gradient)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tolerance).all():
                x = z
                break
            blocked = passive & (z <= tolerance)
            alpha = np.min(x[blocked] / (x[blocked] - z[blocked]))
            x = x + alpha * (z - x)
            passive &= x > tolerance
            x[~passive] = 0.0
        gradient = a.T @ (b - a @ x)
    return x


#: What the residual correction compares configurations by: one PE's formats, rounding and loop, not the array's
#: size (the technology mapper's way with a PE is the same in every PE, so the correction scales with the array
#: and the structural terms alone extrapolate to sizes the data lack).
CORRECTION_FEATURES: dict[str, Callable[[Features], float]] = {
    "a_sig": lambda f: f.a_sig,
    "a_exp": lambda f: f.a_exp,
    "acc_sig": lambda f: f.acc_sig,
    "acc_exp": lambda f: f.acc_exp,
    "rand_bits": lambda f: f.rand_bits,
    "pipeline": lambda f: f.pipeline,
    "interleaved": _many,
    "window": lambda f: f.window,
}
#: The correction's length scale in standard deviations of each feature, and the variance of the log residuals it
#: leaves to the tools' own scatter (0.005: about 7 %). Chosen once on the 120 designs of results/hw/surrogate
#: (leave-one-out over length scales 2-4 and two feature sets); checked on designs synthesized afterwards.
CORRECTION_LENGTH_SCALE = 2.0
CORRECTION_NOISE = 0.005
#: Fewer reports than this: no correction (the structural terms alone).
CORRECTION_MIN_REPORTS = 8


def correction_vector(f: Features) -> list[float]:
    return [float(value(f)) for value in CORRECTION_FEATURES.values()]


@dataclass(frozen=True)
class Model:
    """One target's fitted terms: ``target`` = sum of coefficient * term column (Fmax: ``1000 / delay_ns``), times
    ``exp(correction)``, a smooth correction of the log residuals that similar configurations left."""

    target: str
    terms: tuple[str, ...]
    coefficients: tuple[float, ...]
    correction: KernelRidge | None = None

    def _columns(self, f: Features) -> np.ndarray:
        by_name = {t.name: t for t in TERMS[self.target]}
        return np.array([by_name[name].column(f) for name in self.terms])

    def structural(self, f: Features) -> float:
        """The terms' prediction alone."""
        value = float(self._columns(f) @ np.array(self.coefficients))
        if self.target == "fmax_mhz":
            return 1000.0 / value if value > 0 else math.inf
        return max(value, 0.0)

    def predict(self, f: Features) -> float:
        value = self.structural(f)
        if self.correction is None or not math.isfinite(value):
            return value
        return value * math.exp(self.correction.predict(correction_vector(f)))

    def explain(self) -> list[str]:
        """One line per term with a non-zero coefficient: its weight, scope and meaning."""
        by_name = {t.name: t for t in TERMS[self.target]}
        unit = "ns" if self.target == "fmax_mhz" else self.target
        lines = []
        for name, c in zip(self.terms, self.coefficients):
            if c != 0:
                term = by_name[name]
                lines.append(f"{self.target} {name:<10} {c:+10.4g} {unit} x {term.scope}: {term.meaning}")
        if self.correction is not None:
            lines.append(
                f"{self.target} correction: x exp(kernel ridge on the log residuals of {len(self.correction.points)} "
                f"configurations, by {', '.join(self.correction.features)}; length scale "
                f"{self.correction.length_scale:g} sd, residual sd {self.correction.spread:.1%})"
            )
        return lines


def _value(target: str, y: float) -> float:
    """What a target's model is linear in: counts as they are, Fmax as its period in ns."""
    return 1000.0 / y if target == "fmax_mhz" else y


def fit_model(target: str, data: Sequence[Features], values: Sequence[float]) -> Model:
    """Fit ``target`` on (features, measured value) pairs by non-negative least squares on the relative error."""
    terms = TERMS[target]
    y = np.array([_value(target, v) for v in values], dtype=float)
    x = np.array([[t.column(f) for t in terms] for f in data], dtype=float)
    weight = 1.0 / np.maximum(np.abs(y), 1e-9)  # relative error: every design counts alike
    coefficients = nnls(x * weight[:, None], y * weight)  # no term may subtract cells or delay
    model = Model(target, tuple(t.name for t in terms), tuple(float(c) for c in coefficients))
    # the residual correction learns from the designs both the terms and the tools give a positive figure for
    pairs = [(f, v, model.structural(f)) for f, v in zip(data, values)]
    pairs = [(f, v, p) for f, v, p in pairs if v > 0 and 0 < p < math.inf]
    if len(pairs) < CORRECTION_MIN_REPORTS:
        return model
    correction = fit_kernel_ridge(
        tuple(CORRECTION_FEATURES),
        [correction_vector(f) for f, _, _ in pairs],
        [math.log(v / p) for _, v, p in pairs],
        CORRECTION_LENGTH_SCALE,
        CORRECTION_NOISE,
    )
    return replace(model, correction=correction)


@dataclass(frozen=True)
class Sample:
    """One synthesized configuration: its features and what the tools measured (Fmax None without P&R)."""

    name: str
    features: Features
    measured: dict[str, float | None]
    key: str
    #: per target of DRAWN, its count in every synthesis of the circuit: as written first, then under scrambled
    #: names (``measured`` holds their median: the tools' heuristics give each draw its own count, see
    #: ``SynthOptions.scramble_seed``); empty without scrambled syntheses
    draws: dict[str, tuple[float, ...]] = field(default_factory=dict)
    draw_keys: tuple[str, ...] = ()  # the scrambled syntheses' cache entries


@dataclass(frozen=True)
class Surrogate:
    """A model per target, the number of reports it learnt from and its held-out error (None: not evaluated)."""

    models: dict[str, Model]
    reports: int
    evaluation: Evaluation | None = None
    largest_pes: int = 0  # the most processing elements of a training design: beyond it the surrogate extrapolates
    mx_reports: int = 0  # reports of MX arrays: without any, the MX terms are unknown and an MX array is refused

    def can_cost(self, f: Features) -> bool:
        """Whether its terms are known for ``f``: an MX array needs MX arrays among the reports."""
        return not f.mx or self.mx_reports > 0

    def predict(self, config: ArrayConfig | Features) -> dict[str, float]:
        """Predicted ``luts``, ``ffs``, ``dsps``, ``carry`` (rounded to cells) and ``fmax_mhz``."""
        f = config if isinstance(config, Features) else features(config)
        if not self.can_cost(f):
            raise NoData(
                f"the cost surrogate has learnt from no MX array ({self.reports} reports, none MX), so it cannot "
                "cost one: synthesize some into the cache (benchmarks/synth_dataset.py --mx), or this one "
                "(mpsim cost without --predict)"
            )
        out = {}
        for target, model in self.models.items():
            value = model.predict(f)
            out[target] = round(value, 2) if target == "fmax_mhz" else float(round(value))
        return out

    def explain(self) -> list[str]:
        return [line for model in self.models.values() for line in model.explain()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SURROGATE_VERSION,
            "reports": self.reports,
            "models": {
                t: {
                    "terms": list(m.terms),
                    "coefficients": list(m.coefficients),
                    "correction": None if m.correction is None else m.correction.to_dict(),
                }
                for t, m in self.models.items()
            },
            "evaluation": None if self.evaluation is None else self.evaluation.to_dict(),
            "largest_pes": self.largest_pes,
            "mx_reports": self.mx_reports,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Surrogate:
        models = {
            t: Model(
                t,
                tuple(m["terms"]),
                tuple(float(c) for c in m["coefficients"]),
                None if m.get("correction") is None else KernelRidge.from_dict(m["correction"]),
            )
            for t, m in data["models"].items()
        }
        evaluation = None if data.get("evaluation") is None else Evaluation.from_dict(data["evaluation"])
        return cls(
            models, int(data["reports"]), evaluation, int(data.get("largest_pes", 0)), int(data.get("mx_reports", 0))
        )


def fit(samples: Sequence[Sample]) -> Surrogate:
    """A :class:`Surrogate` fitted on ``samples`` (each target on the samples that measured it)."""
    if not samples:
        raise NoData("a surrogate needs at least one synthesis report to fit, not 0")
    models = {}
    for target in TARGETS:
        have = [s for s in samples if s.measured.get(target) is not None]
        if have:
            models[target] = fit_model(target, [s.features for s in have], [float(s.measured[target]) for s in have])  # type: ignore[arg-type]
    return Surrogate(
        models,
        len(samples),
        largest_pes=max(s.features.pes for s in samples),
        mx_reports=sum(s.features.mx for s in samples),
    )


#: The suffix of the error rows of DRAWN targets against the synthesis as written (one draw), on the designs that
#: have scrambled draws (``luts_as_written``); the ``luts`` row is against the median of the draws.
AS_WRITTEN = "_as_written"


@dataclass(frozen=True)
class TargetError:
    """Held-out relative errors of one target: ``|predicted - measured| / measured`` over the held-out designs."""

    target: str
    count: int
    median: float
    max: float
    within: float  # share within THRESHOLDS[target]
    threshold: float


@dataclass(frozen=True)
class Evaluation:
    """Held-out error per target, how it was split, and each held-out prediction."""

    method: str
    reports: int
    errors: tuple[TargetError, ...]
    predictions: tuple[dict[str, Any], ...] = ()

    def table(self) -> str:
        lines = [
            f"held-out error ({self.method}, {self.reports} reports):",
            f"{'target':<16}{'designs':>8}{'median':>9}{'max':>9}{'within':>9}  threshold",
        ]
        for e in self.errors:
            lines.append(f"{e.target:<16}{e.count:>8}{e.median:>9.1%}{e.max:>9.1%}{e.within:>9.0%}  {e.threshold:.0%}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "reports": self.reports,
            "errors": [asdict(e) for e in self.errors],
            "predictions": list(self.predictions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        return cls(
            data["method"],
            int(data["reports"]),
            tuple(TargetError(**e) for e in data["errors"]),
            tuple(data.get("predictions", ())),
        )


def evaluate(samples: Sequence[Sample], folds: int = 0, seed: int = 0) -> Evaluation:
    """Held-out error: leave one configuration out (``folds=0``) or ``folds``-fold cross-validation (seeded)."""
    n = len(samples)
    if n < 2:
        raise NoData(f"a held-out evaluation needs at least 2 synthesis reports, not {n}")
    if folds == 0 or folds >= n:
        groups = [[i] for i in range(n)]
        method = "leave one configuration out"
    else:
        if folds < 2:
            raise ValueError(f"folds must be 0 (leave one out) or at least 2, not {folds}")
        order = list(range(n))
        random.Random(seed).shuffle(order)
        groups = [order[k::folds] for k in range(folds)]
        method = f"{folds}-fold cross-validation, seed {seed}"
    predictions: list[dict[str, Any]] = [{} for _ in range(n)]
    for held in groups:
        keep = set(held)
        surrogate = fit([s for i, s in enumerate(samples) if i not in keep])
        for i in held:  # the only MX report(s) held out: no error to count
            if surrogate.can_cost(samples[i].features):
                predictions[i] = surrogate.predict(samples[i].features)
    return _evaluation(method, samples, predictions)


def compare(surrogate: Surrogate, samples: Sequence[Sample], method: str) -> Evaluation:
    """The errors of ``surrogate`` on ``samples`` it may or may not have learnt from (``method`` says which); an MX
    design is left out when the surrogate learnt from no MX array."""
    costed = [s for s in samples if surrogate.can_cost(s.features)]
    if len(costed) < len(samples):
        method = f"{method}; {len(samples) - len(costed)} MX designs left out (no MX array among its reports)"
    return _evaluation(method, costed, [surrogate.predict(s.features) for s in costed])


def _evaluation(method: str, samples: Sequence[Sample], predictions: Sequence[dict[str, Any]]) -> Evaluation:
    """Relative errors per target of ``predictions`` against what ``samples`` measured."""
    n = len(samples)
    errors = []
    rows = []
    for i, s in enumerate(samples):
        row: dict[str, Any] = {"name": s.name}
        for target in TARGETS:
            row[target] = s.measured.get(target)
            row[f"{target}_predicted"] = predictions[i].get(target)
        for target in DRAWN:
            row[f"{target}{AS_WRITTEN}"] = s.draws[target][0] if s.draws else s.measured.get(target)
        rows.append(row)
    for target in (*TARGETS, *(f"{t}{AS_WRITTEN}" for t in DRAWN)):
        source = target.removesuffix(AS_WRITTEN)
        if source != target:  # the designs with scrambled draws: the error against the synthesis as written
            truth = [s.draws[source][0] if s.draws else None for s in samples]
        else:
            truth = [s.measured.get(target) for s in samples]
        pairs = [
            (float(m), predictions[i][source])
            for i, m in enumerate(truth)
            if m is not None and source in predictions[i]
        ]
        if not pairs:
            continue
        rel = np.array([abs(p - m) / m if m else (0.0 if p == m else math.inf) for m, p in pairs])
        threshold = THRESHOLDS[source]
        errors.append(
            TargetError(
                target,
                len(rel),
                float(np.median(rel)),
                float(rel.max()),
                float(np.mean(rel <= threshold + 1e-12)),
                threshold,
            )
        )
    return Evaluation(method, n, tuple(errors), tuple(rows))


def config_from_dict(data: dict[str, Any]) -> ArrayConfig:
    """The :class:`~hls_gen.emit.ArrayConfig` a report records (``TypeError`` for a field it does not know)."""
    from hls_gen.emit import ArrayConfig
    from hls_gen.modes import ArithMode

    known = {f.name for f in fields(ArrayConfig)}
    unknown = set(data) - known
    if unknown:
        raise TypeError(f"report config has fields ArrayConfig does not: {sorted(unknown)}")
    values = dict(data)
    values["precisions"] = tuple(values.get("precisions", ()))
    values["modes"] = tuple(ArithMode(**{**m, "uses": tuple(m.get("uses", ()))}) for m in values.get("modes", ()))
    if values.get("lfsr_taps") is not None:
        values["lfsr_taps"] = tuple(values["lfsr_taps"])
    return ArrayConfig(**values)


def load_samples(
    cache: SynthCache, *, refresh: bool = False, refresh_max_pes: int | None = None, progress: bool = False
) -> list[Sample]:
    """Every configuration the cache holds a current-generator report of, with its measurements.

    A configuration counts when the cache remembers its Verilog under today's
    generator sources and holds the ECP5 85k report of that Verilog (with
    place and route for Fmax; resources also from the synthesis-only report).
    ``refresh`` elaborates the configurations whose Verilog is not yet
    remembered (seconds each; about a minute for an 8x8 array at L = 8)
    instead of skipping them, those of at most ``refresh_max_pes`` PEs when
    given.
    """
    from hls_gen.synth import ADOPTION_INDEX, SynthOptions, design_key, verilog_digest

    if not cache.root.exists():
        return []
    reports: dict[str, dict[str, Any]] = {}  # by key
    configs: dict[str, tuple[str, dict[str, Any]]] = {}  # (top, config) by configuration
    for path in sorted(cache.root.glob("*.json")):
        if path.name == ADOPTION_INDEX:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and data.get("top"):
            reports[path.stem] = data
            configs.setdefault(json.dumps(data["config"], sort_keys=True), (data["top"], data["config"]))
    pnr, synth_only = SynthOptions(pnr=True), SynthOptions(pnr=False)
    samples = []
    for _text, (top, raw) in sorted(configs.items()):
        try:
            config = config_from_dict(raw)
            f = features(config)
        except (TypeError, ValueError):
            continue  # a configuration today's generator no longer accepts
        sha = cache.known_verilog(config)
        if sha is None and refresh and (refresh_max_pes is None or f.pes <= refresh_max_pes):
            sha = verilog_digest(config, cache)
            if progress:
                print(f"[surrogate] {top}: Verilog {sha[:8]}", file=sys.stderr)
        if sha is None:
            continue
        # the entries lookup() would return today (read directly: a miss here need not adopt older keys)
        routed = reports.get(design_key(top, sha, pnr))
        synthesized = reports.get(design_key(top, sha, synth_only)) or routed
        if synthesized is None:
            continue
        measured: dict[str, float | None] = {t: float(synthesized[t]) for t in RESOURCES}
        measured["fmax_mhz"] = None if routed is None else routed.get("fmax_mhz")
        scrambled = [
            reports[k]
            for k in (design_key(top, sha, replace(synth_only, scramble_seed=seed)) for seed in SCRAMBLES)
            if k in reports
        ]
        draws = {t: (float(synthesized[t]), *(float(r[t]) for r in scrambled)) for t in DRAWN} if scrambled else {}
        measured |= {t: float(np.median(d)) for t, d in draws.items()}
        keys = tuple(r["key"] for r in scrambled)
        samples.append(Sample(top, f, measured, (routed or synthesized)["key"], draws, keys))
    return samples


def export_reports(cache: SynthCache, path: Path) -> int:
    """Write the report of every configuration :func:`load_samples` learns from (place and route's where there is
    one) to ``path``, a JSON line each, sorted by name: data to commit, for :func:`import_reports` on another
    machine. The number written."""
    from hls_gen.synth import ResourceReport

    lines = []
    for sample in sorted(load_samples(cache), key=lambda s: s.name):
        for key in (sample.key, *sample.draw_keys):
            report = ResourceReport.from_dict(json.loads(cache.path(key).read_text()))
            lines.append(json.dumps({**report.to_dict(), "cached": False}, sort_keys=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return len(lines)


def import_reports(cache: SynthCache, path: Path) -> int:
    """Put the reports of an :func:`export_reports` file into ``cache`` (those it lacks); the number added.

    They are learnt from once the cache knows that today's generator writes the Verilog they measured: ``--refresh``
    elaborates each configuration (seconds) and keeps the reports whose Verilog digest is today's, as for any
    cache entry; a report of Verilog the generator no longer writes is never learnt from.
    """
    from hls_gen.synth import ResourceReport

    added = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            report = ResourceReport.from_dict(json.loads(line))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a synthesis report ({error})") from None
        if not report.key or not report.verilog_sha256:
            raise ValueError(f"{path}:{number}: a report without its design key or Verilog digest")
        if not cache.path(report.key).exists():
            cache.put(replace(report, cached=False))
            added += 1
    return added


def fresh_check(cache: SynthCache, path: Path) -> tuple[Surrogate, Evaluation, Evaluation | None]:
    """The errors on designs none of whose reports the fit or the choice of its settings saw: a surrogate fitted on
    the current reports an :func:`export_reports` file lists, its errors on every other current report, and the
    same on those of them larger than any it learnt from (None: there are none)."""
    keys = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                keys.add(str(json.loads(line)["key"]))
            except (ValueError, TypeError, KeyError) as error:
                raise ValueError(f"line {number}: not a synthesis report ({error})") from None
    samples = load_samples(cache)
    train = [s for s in samples if s.key in keys]
    test = [s for s in samples if s.key not in keys]
    if not train:
        raise NoData(f"none of its {len(keys)} reports is a current report of the cache (--import it, --refresh)")
    if not test:
        raise NoData(
            "the cache holds no current report beyond the file's (benchmarks/synth_dataset.py synthesizes more)"
        )
    surrogate = fit(train)
    check = compare(surrogate, test, f"fitted on the file's {len(train)} reports, tested on {len(test)} others")
    larger = [s for s in test if s.features.pes > surrogate.largest_pes and surrogate.can_cost(s.features)]
    method = f"{check.method}: the {len(larger)} larger than it learnt from"
    return surrogate, check, compare(surrogate, larger, method) if larger else None


def earlier_samples(cache: SynthCache) -> list[Sample]:
    """Per configuration without a current report, its newest (by when it was written) ECP5 85k routed report of an
    earlier generator's Verilog: not training data, only a rough check of configurations the data lack (larger
    arrays), since the Verilog it measured is not today's."""
    from hls_gen.synth import ADOPTION_INDEX, SynthOptions

    current = {s.name for s in load_samples(cache)}
    want = {**SynthOptions(pnr=True).key_fields(), "part": SynthOptions().part}
    newest: dict[str, tuple[float, dict[str, Any]]] = {}
    for path in cache.root.glob("*.json") if cache.root.exists() else []:
        if path.name == ADOPTION_INDEX:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("options") != want or data.get("top") in current:
            continue
        when = path.stat().st_mtime
        if data.get("fmax_mhz") is not None and when > newest.get(data["top"], (-math.inf, {}))[0]:
            newest[data["top"]] = (when, data)
    samples = []
    for top, (_, data) in sorted(newest.items()):
        try:
            f = features(config_from_dict(data["config"]))
        except (TypeError, ValueError):
            continue
        measured: dict[str, float | None] = {t: float(data[t]) for t in RESOURCES}
        measured["fmax_mhz"] = data["fmax_mhz"]
        samples.append(Sample(top, f, measured, data["key"]))
    return samples


def _stored_path(cache: SynthCache) -> Path:
    return cache.root / "surrogate" / "surrogate.json"


def _fingerprint(cache: SynthCache) -> str:
    """What decides the stored surrogate: its version, today's generator sources and the cache's entries."""
    from hls_gen.synth import ADOPTION_INDEX, _generator_digest

    names = sorted(p.name for p in cache.root.glob("*.json") if p.name != ADOPTION_INDEX)
    memos = sorted(p.name for p in (cache.root / "designs").glob("*.sha256"))
    payload = {"version": SURROGATE_VERSION, "sources": _generator_digest(), "entries": names, "memos": memos}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


#: The committed reports (``python -m hls_gen.cost_surrogate --export``), for a cache that has none.
COMMITTED_REPORTS = "results/hw/surrogate/reports.jsonl"


def no_data_message(cache: SynthCache) -> str:
    return (
        f"no synthesis reports of the current generator in {cache.root}: import the committed ones with "
        f"'python -m hls_gen.cost_surrogate --import {COMMITTED_REPORTS} --refresh' (a repository checkout), run "
        "'python benchmarks/synth_dataset.py' (or mpsim cost --synth) to synthesize some, or "
        "'python -m hls_gen.cost_surrogate --refresh' if the cache has reports of configurations whose Verilog "
        "it has not checked since hls_gen or mpsim changed"
    )


def surrogate_for(
    cache: SynthCache, *, refresh: bool = False, refresh_max_pes: int | None = None, folds: int = 0
) -> Surrogate:
    """The surrogate of ``cache`` with its held-out error: stored beside the entries, refitted when they change.

    Raises :class:`NoData` (one line naming the cache and what to run) when no
    report of the current generator is there.
    """
    stored = _stored_path(cache)
    fingerprint = _fingerprint(cache) if cache.root.exists() else ""
    if not refresh and stored.exists():
        try:
            data = json.loads(stored.read_text())
            if data.get("fingerprint") == fingerprint and data.get("folds") == folds:
                return Surrogate.from_dict(data["surrogate"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    samples = load_samples(cache, refresh=refresh, refresh_max_pes=refresh_max_pes, progress=refresh)
    if not samples:
        raise NoData(no_data_message(cache))
    evaluation = evaluate(samples, folds) if len(samples) >= 2 else None
    surrogate = replace(fit(samples), evaluation=evaluation)
    fingerprint = _fingerprint(cache)  # refresh may have remembered Verilog digests
    stored.parent.mkdir(parents=True, exist_ok=True)
    tmp = stored.with_name(f"{stored.name}.tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint, "folds": folds, "surrogate": surrogate.to_dict()}) + "\n")
    tmp.replace(stored)
    return surrogate


def write_evaluation(evaluation: Evaluation, out: Path, surrogate: Surrogate, name: str = "surrogate") -> list[Path]:
    """The evaluation as ``NAME.json`` (errors, coefficients) and ``NAME.csv`` (each predicted design)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {**evaluation.to_dict(), "models": surrogate.to_dict()["models"], "explain": surrogate.explain()}
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = list(evaluation.predictions)
    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["name"])
        writer.writeheader()
        writer.writerows(rows)
    return [out / f"{name}.json", out / f"{name}.csv"]


def main(argv: list[str] | None = None) -> int:
    from hls_gen.synth import SynthCache

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluate", action="store_true", help="print the held-out error table and write it")
    parser.add_argument("--refresh", action="store_true", help="elaborate cached configurations not yet checked")
    parser.add_argument(
        "--refresh-max-pes", type=int, default=None, help="with --refresh: only arrays of at most this many PEs"
    )
    parser.add_argument("--folds", type=int, default=0, help="0: leave one configuration out (default), else K-fold")
    parser.add_argument(
        "--earlier",
        action="store_true",
        help="also compare with the newest earlier-generator report of each configuration the current data lack "
        "(a rough check of larger arrays; never learnt from)",
    )
    parser.add_argument(
        "--fresh",
        metavar="FILE",
        default=None,
        help="also fit on only the reports of an --export file (e.g. the committed one) and compare on every other "
        "current report: designs synthesized after the surrogate's settings were chosen",
    )
    parser.add_argument(
        "--cache", default=None, help="synthesis cache folder (default: $MPSIM_SYNTH_CACHE or ~/.cache/mpsim/synth)"
    )
    parser.add_argument(
        "--out", default="results/hw/surrogate", help="folder for the evaluation (default: %(default)s)"
    )
    parser.add_argument(
        "--import",
        dest="import_from",
        metavar="FILE",
        default=None,
        help=f"first put the reports of an --export file into the cache (e.g. {COMMITTED_REPORTS}); with --refresh "
        "they are learnt from where today's generator writes the Verilog they measured",
    )
    parser.add_argument(
        "--export",
        metavar="FILE",
        default=None,
        help="write the reports the surrogate learns from, a JSON line each (to commit, or to --import elsewhere)",
    )
    args = parser.parse_args(argv)
    cache = SynthCache(args.cache)
    if args.import_from is not None:
        try:
            added = import_reports(cache, Path(args.import_from))
        except (OSError, ValueError) as error:
            print(f"error: --import {args.import_from}: {error}", file=sys.stderr)
            return 1
        print(f"imported {added} reports into {cache.root}")
    try:
        surrogate = surrogate_for(cache, refresh=args.refresh, refresh_max_pes=args.refresh_max_pes, folds=args.folds)
    except NoData as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"surrogate fitted on {surrogate.reports} reports of the current generator in {cache.root}")
    if args.export is not None:
        print(f"wrote {export_reports(cache, Path(args.export))} reports to {args.export}")
    print("\n".join(surrogate.explain()))
    if surrogate.evaluation is not None:
        print(surrogate.evaluation.table())
        if args.evaluate:
            written = write_evaluation(surrogate.evaluation, Path(args.out), surrogate)
            print(f"wrote {' and '.join(map(str, written))}")
    if args.fresh is not None:
        try:
            fitted, check, larger = fresh_check(cache, Path(args.fresh))
        except (OSError, ValueError) as error:
            print(f"error: --fresh {args.fresh}: {error}", file=sys.stderr)
            return 1
        print(check.table())
        written = write_evaluation(check, Path(args.out), fitted, "surrogate_fresh")
        if larger is not None:
            print(larger.table())
        print(f"wrote {' and '.join(map(str, written))}")
    if args.earlier:
        earlier = earlier_samples(cache)
        if earlier:
            check = compare(surrogate, earlier, "against earlier generators' reports, not held-out Verilog")
            print(check.table())
            written = write_evaluation(check, Path(args.out), surrogate, "surrogate_earlier")
            print(f"wrote {' and '.join(map(str, written))}")
        else:
            print("no earlier-generator reports of configurations the current data lack")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
