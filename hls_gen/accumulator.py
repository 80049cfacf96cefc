"""Floating-point adder and accumulator in a chosen accumulator format."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hls_gen.arith import (
    Unpacked,
    add_aligned,
    add_exact,
    grid_layout,
    order,
    place,
    registered,
    round_decide,
    round_encode,
    round_pack,
    unpack,
    unpack_modes,
)
from hls_gen.grid_place import count, headroom, headroom_modes, mode_layout, place_counted, place_modes, plan
from hls_gen.lfsr import LFSR
from hls_gen.mode_round import decide_modes, encode_modes
from hls_gen.spec import (
    LOOP_CUTS,
    MAX_INTERLEAVE,
    check_int,
    check_nan_capable,
    checking,
    float_format,
    guard_bits,
    hw_rounding,
    lfsr_spec,
    loop_latency,
    shared_adder_bits,
)
from hls_gen.step import STEP_CONTROL
from mpsim.formats import FloatFormat
from mpsim.randbits import LFSRSpec

__all__ = ["Accumulator", "FPAdder", "Loop", "accumulate"]


def _trimmed(
    base: Unpacked, term: Unpacked, modes: tuple[tuple[FloatFormat, int | None], ...], term_bits: tuple[int, ...]
) -> tuple[Unpacked, Unpacked, int]:
    """The sum's operands cut to the significand bits some mode fills, and the adder's guard bits for them.

    Every mode's significands are left-aligned in the shared ones with zeros
    below, so the bits no mode fills are dropped, and a mode that fills
    fewer than the rest has the zeros below its own as guard bits: what
    :func:`hls_gen.arith.add_exact` needs is ``k + 2`` window bits below the
    mode's significand, wherever they come from.
    """
    width, guard = shared_adder_bits(modes, term_bits)

    def top(x: Unpacked) -> Unpacked:
        return dataclasses.replace(x, sig=x.sig[x.width - width :]) if x.width > width else x

    return top(base), top(term), guard


@dataclass(frozen=True)
class Loop:
    """What :func:`accumulate` hands its caller: the rounder's register, and what the loop's entry sees."""

    #: The sum just rounded (the loop's last logic register).
    result: Signal
    #: ``result`` is a finished sum (its step was a beat marked ``last``).
    done: Signal
    #: The sum that the step at the loop's entry meets (its slot's value so far; ``result`` up to interleave 8,
    #: after the ring's delay registers beyond).
    entry: Value
    #: The step at the loop's entry carries ``flush``: ``entry`` is a finished sum to hand out.
    flush: Value
    #: The mode code of ``entry``'s sum (None with one format).
    entry_mode: Value | None = None


def accumulate(
    m: Module,
    *,
    en: Value,
    step: data.View,
    term: Unpacked,
    acc_format: FloatFormat | None = None,
    rand_bits: int | None = None,
    rand: Value | None,
    interleave: int = 1,
    modes: tuple[tuple[FloatFormat, int | None], ...] | None = None,
    term_bits: tuple[int, ...] | None = None,
) -> Loop:
    """``interleave`` sums in round robin, each ``acc = round(acc + term)`` per beat; see :class:`Loop`.

    ``step`` is the step's control (:func:`hls_gen.step.step_control`). The
    loop (unpack the sum so far, align, add, normalize, round, pack) is cut
    by ``interleave`` registers (:data:`hls_gen.spec.LOOP_CUTS`), so the sums
    take turns: the step that enters in cycle ``t`` belongs to sum ``t mod
    interleave`` (counting enabled cycles), which sees its next step
    ``interleave`` enabled cycles later, as C-slow retiming has it. Each sum
    still adds its terms in its own order and rounds every step exactly as
    :mod:`mpsim` does; with ``interleave=1`` this is the single-cycle
    accumulator. A sum starts from +0 after reset and after a beat marked
    ``last``. Nothing moves while ``en`` is low. An enabled cycle without a
    beat (a bubble) adds -0 to the sum of its slot, which keeps it, a
    finished sum included (it goes round until the slot's next beat): but
    the bubble takes that slot's turn, so inside a job bubbles come in runs
    of ``interleave``. ``done`` is high while the result register holds a
    sum just finished (a beat marked ``last`` left the rounder), until the
    next enabled cycle.

    One format (``acc_format``, ``rand_bits``), or ``modes``: ``(format,
    random bits)`` per mode code, the beat's code in ``step.mode``. Then the
    sum register is as wide as the widest format and holds each sum in its
    own mode's format; the unpacking is a multiplexer, the aligner, adder
    and normalizer are shared (sized for the widest), and each distinct
    (format, rounding) has its rounder. The mode travels round the ring with
    its sum (a bubble takes its slot's mode). ``rand`` holds the step's
    draw in its low bits. ``term_bits`` (per mode, None: all) are the
    significand bits a mode's terms fill, left-aligned in ``term.sig`` with
    zeros below: the adder is only as wide as the widest mode needs.
    """
    multi = modes is not None and len(modes) > 1
    if modes is None:
        if acc_format is None:
            raise TypeError("accumulate needs acc_format or modes")
        modes = ((acc_format, rand_bits),)
    fmt, rand_bits = modes[0]  # the format and rounding of a single mode
    formats = [f for f, _ in modes]
    widest = max(f.bits for f in formats)
    cuts = LOOP_CUTS[min(interleave, len(LOOP_CUTS))]
    delays = interleave - 1 - len(cuts)  # plain registers after the rounding, for interleave > 8
    acc = Signal(widest, name="acc")  # the loop's last register: the sum of the slot at the entry
    fresh = Signal(name="fresh")  # that slot's sum is finished (or never begun): its next beat starts from +0
    valid = step.valid

    def cut(stage: str, x: object, travel: tuple) -> tuple[object, tuple]:
        """``x`` and the step's control cut by a register stage when ``stage`` is one (the control kept apart)."""
        if stage not in cuts:
            return x, travel
        return registered(m, en, x, f"{stage}_q"), registered(m, en, travel, f"{stage}_control", keep=True)

    # A bubble adds -0: x + (-0) is x for every x, -0 and +0 included, and rounds to itself whatever the random
    # bits; so a slot keeps its sum through any bubble, a finished one too, and the loop never has to wait.
    term = dataclasses.replace(
        term, sign=Mux(valid, term.sign, 1), zero=term.zero | ~valid, inf=term.inf & valid, nan=term.nan & valid
    )
    code: Value | None = None
    ring_mode: Signal | None = None
    if multi:
        ring_mode = Signal(len(step.mode), name="acc_mode")  # the mode of the slot's sum
        code = Signal(len(step.mode), name="step_mode")
        m.d.comb += code.eq(Mux(valid, step.mode, ring_mode))  # a bubble keeps its slot's sum in the sum's format
        base = unpack_modes(m, acc, formats, code, "base")
    else:
        base = unpack(m, acc, fmt, "base")
    # A fresh slot starts from +0: its flags say so after the unpacking (the zero flag hides the significand, as
    # for a bubble's term), so ``fresh`` is one gate before the unpack register, not a multiplexer on every code
    # bit in front of the unpacking (the 8x8 array's critical path when it was). The exponent is set to the
    # format's smallest as well: the operands' exponent difference is computed whatever the flags, and a sum
    # left unknown in the ring (pipeline registers have no reset) must not reach it (4-state simulators).
    restart = fresh & valid
    base = dataclasses.replace(
        base,
        sign=base.sign & ~restart,
        zero=base.zero | restart,
        inf=base.inf & ~restart,
        nan=base.nan & ~restart,
        exp=Mux(restart, base.exp_lo, base.exp),
    )
    guard = max(guard_bits(k) for _, k in modes)
    if multi and term_bits is not None:
        base, term, guard = _trimmed(base, term, modes, term_bits)
    travel = (step, ~fresh, rand, code)  # what goes with the step to the rounder (registers reset to 0: fresh)
    (base, term), travel = cut("unpack", (base, term), travel)
    ordered, travel = cut("order", order(m, base, term, guard, "add"), travel)
    aligned, travel = cut("align", place(m, ordered, "add"), travel)
    # What the placement needs of the larger operand's exponent is ready with the adder's operands; the normalize
    # stage counts leading zeros and picks the shift, the place stage shifts the window once (hls_gen.grid_place:
    # the normalizing shift and the shift onto the grid together). With several modes one rounder serves them
    # all: the mode picks its format's placement before the add stage, and its rounding and code at the end.
    width = aligned.width
    if multi:
        below = mode_layout(width, modes)[3]
        room = headroom_modes(m, aligned.flags, width, formats, below, travel[3], "sum")
    else:
        room = headroom(m, aligned.flags, width, fmt, grid_layout(width, modes)[3], "sum")
    (summed, room), travel = cut("add", (add_aligned(m, aligned, "add"), room), travel)
    counted = count(m, summed, "add")
    shift = plan(m, counted, room, "sum")
    (counted, shift, room), travel = cut("normalize", (counted, shift, room), travel)
    if multi:
        on_grid = place_modes(m, counted, shift, room, modes, travel[3], "sum")
    else:
        on_grid = place_counted(m, counted, shift, room, fmt, rand_bits, "sum")
    on_grid, travel = cut("place", on_grid, travel)
    draw = travel[2]
    if multi:
        decided = decide_modes(m, on_grid, modes, travel[3], draw)
    else:
        decided = round_decide(m, on_grid, rand_bits, draw)
    decided, travel = cut("round", decided, travel)
    done_step, done_stale, _, done_code = travel
    result = Signal(widest, name="result")
    keep = {"keep": 1}  # control registers (see hls_gen.arith.registered)
    done = Signal(name="done", attrs=keep)
    result_fresh = Signal(init=1, name="result_fresh", attrs=keep)
    result_mode = Signal(len(step.mode), name="result_mode", attrs=keep) if multi else None
    with m.If(en):
        m.d.sync += [
            result.eq(
                encode_modes(m, decided, modes, done_code, "sum") if multi else round_encode(m, decided, fmt, "sum")
            ),
            done.eq(done_step.valid & done_step.last),
            result_fresh.eq(Mux(done_step.valid, done_step.last, ~done_stale)),
        ]
        if multi:
            m.d.sync += result_mode.eq(done_code)
    ring, ring_fresh, ring_code = result, result_fresh, result_mode
    for i in range(delays):
        ring, ring_fresh = (
            registered(m, en, ring, f"ring_{i}"),
            registered(m, en, ring_fresh, f"ring_fresh_{i}", 1, keep=True),
        )
        if multi:
            ring_code = registered(m, en, ring_code, f"ring_mode_{i}", keep=True)
    m.d.comb += [acc.eq(ring), fresh.eq(ring_fresh)]
    if multi:
        m.d.comb += ring_mode.eq(ring_code)
    return Loop(result=result, done=done, entry=acc, flush=step.flush, entry_mode=ring_mode)


class FPAdder(wiring.Component):
    """Combinational ``round(acc + term)`` into the accumulator format, nearest or stochastic.

    The sum is of the exact values (no intermediate rounding) and is rounded
    once, as ``mpsim.qmatmul`` rounds each accumulation step. Inf/NaN follow
    IEEE 754 (Inf - Inf is NaN); the result's overflow goes to Inf, NaN or
    ``max`` as the accumulator format says; an exact zero from cancellation
    is +0.

    Parameters
    ----------
    acc_format : str or mpsim.FloatFormat
        Accumulator (and result) format.
    term_format : str or mpsim.FloatFormat
        Format of the added term.
    rounding : str
        ``"nearest"`` or ``"stochastic:K"``.

    Members
    -------
    acc : In(acc_format.bits)
        Bit pattern of the accumulator operand.
    term : In(term_format.bits)
        Bit pattern of the term.
    rand : In(K)
        Random draw of the stochastic rounding (only with ``stochastic:K``).
    sum : Out(acc_format.bits)
        Bit pattern of the rounded sum.
    """

    def __init__(
        self, *, acc_format: str | FloatFormat, term_format: str | FloatFormat, rounding: str = "nearest"
    ) -> None:
        with checking(self):
            self._acc_format = float_format(acc_format, "accumulator format")
            self._term_format = float_format(term_format, "term format")
            self._rand_bits = hw_rounding(rounding, "accumulator rounding")
            check_nan_capable(self._acc_format, "accumulator format", (self._term_format,))
            members: dict[str, wiring.Member] = {"acc": In(self._acc_format.bits), "term": In(self._term_format.bits)}
            if self._rand_bits is not None:
                members["rand"] = In(self._rand_bits)
            members["sum"] = Out(self._acc_format.bits)
            super().__init__(members)

    @property
    def acc_format(self) -> FloatFormat:
        return self._acc_format

    @property
    def term_format(self) -> FloatFormat:
        return self._term_format

    @property
    def rand_bits(self) -> int | None:
        return self._rand_bits

    def elaborate(self, platform: object) -> Module:
        m = Module()
        acc = unpack(m, self.acc, self._acc_format, "acc")
        term = unpack(m, self.term, self._term_format, "term")
        total, sticky = add_exact(m, acc, term, guard_bits(self._rand_bits), "add")
        rand = self.rand if self._rand_bits is not None else None
        m.d.comb += self.sum.eq(round_pack(m, total, sticky, self._acc_format, self._rand_bits, rand, "sum"))
        return m


class Accumulator(wiring.Component):
    """Sums a stream of terms into an accumulator register, rounding every step.

    ``acc = round(acc + term)`` for each valid term, starting from +0 after
    reset and after each term marked ``last`` (``mpsim.qmatmul``'s sequential
    order with products equal to the terms). Stochastic rounding takes its
    ``K`` bits from an internal :class:`~hls_gen.lfsr.LFSR` that steps ``K``
    times per accepted term (``valid & en``) and never otherwise, so the bits
    are those of ``mpsim.randbits.LFSR(width, seed).draw(n, K)``.

    Parameters
    ----------
    acc_format : str or mpsim.FloatFormat
        Accumulator format.
    term_format : str or mpsim.FloatFormat
        Format of the terms.
    rounding : str
        ``"nearest"`` or ``"stochastic:K"``.
    lfsr_width, lfsr_seed : int
        The LFSR's width and reset state (stochastic rounding only).
    lfsr_taps : tuple of int or None
        LFSR taps; None for :data:`mpsim.randbits.LFSR_TAPS`.
    pipeline : int
        0: the term is added in the cycle it is accepted; 1: it is registered first.
    interleave : int
        Sums held in turn, 1..16 (:func:`accumulate`): the adder is cut into
        ``min(interleave, 8)`` register stages, and step ``s`` of the stream
        (counting enabled cycles) belongs to sum ``s mod interleave``. A job
        of ``interleave`` sums of K terms streams its steps in (term, sum)
        order; a gap inside a job is a stall (``en`` low) or a run of
        ``interleave`` bubbles; between jobs any number of bubbles.

    Members
    -------
    en : In(1)
        Clock enable: nothing moves (terms, LFSR, accumulator) while it is low.
    valid : In(1)
        ``term`` carries a term (taken when ``en`` is high).
    last : In(1)
        The term ends a sum; the next one starts a new sum from +0.
    term : In(term_format.bits)
        Bit pattern of the term.
    acc : Out(acc_format.bits)
        The accumulator: after ``done``, the finished sum.
    done : Out(1)
        The accumulator holds a finished sum (``latency`` enabled cycles
        after its term marked ``last`` was accepted, until the next enabled
        cycle).
    """

    def __init__(
        self,
        *,
        acc_format: str | FloatFormat,
        term_format: str | FloatFormat,
        rounding: str = "nearest",
        lfsr_width: int = 32,
        lfsr_seed: int = 1,
        lfsr_taps: tuple[int, ...] | None = None,
        pipeline: int = 0,
        interleave: int = 1,
    ) -> None:
        with checking(self):
            self._acc_format = float_format(acc_format, "accumulator format")
            self._term_format = float_format(term_format, "term format")
            self._lfsr = lfsr_spec(lfsr_width, lfsr_seed, lfsr_taps)
            self._rand_bits = hw_rounding(rounding, "accumulator rounding", self._lfsr.width)
            self._pipeline = check_int(pipeline, "accumulator pipeline registers", 0, 1)
            self._interleave = check_int(interleave, "accumulator interleave", 1, MAX_INTERLEAVE)
            check_nan_capable(self._acc_format, "accumulator format", (self._term_format,))
            super().__init__(
                {
                    "en": In(1),
                    "valid": In(1),
                    "last": In(1),
                    "term": In(self._term_format.bits),
                    "acc": Out(self._acc_format.bits),
                    "done": Out(1),
                }
            )

    @property
    def acc_format(self) -> FloatFormat:
        return self._acc_format

    @property
    def term_format(self) -> FloatFormat:
        return self._term_format

    @property
    def rand_bits(self) -> int | None:
        return self._rand_bits

    @property
    def lfsr(self) -> LFSRSpec:
        return self._lfsr

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def interleave(self) -> int:
        return self._interleave

    @property
    def latency(self) -> int:
        """Enabled cycles from accepting a term marked ``last`` to ``done``."""
        return loop_latency(self._pipeline, self._interleave)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        step = Signal(STEP_CONTROL, name="step")  # flush stays 0: this unit hands its sums out on done
        m.d.comb += [step.valid.eq(self.valid), step.last.eq(self.last)]
        term, rand = self.term, None
        if self._rand_bits is not None:
            m.submodules.lfsr = lfsr = LFSR(
                width=self._lfsr.width, seed=self._lfsr.seed, steps=self._rand_bits, taps=self._lfsr.taps
            )
            m.d.comb += lfsr.en.eq(self.en & self.valid)
            rand = lfsr.bits
        if self._pipeline:
            step, term, rand = registered(m, self.en, (step, term, rand), "in_q")
        loop = accumulate(
            m,
            en=self.en,
            step=step,
            term=unpack(m, term, self._term_format, "term"),
            acc_format=self._acc_format,
            rand_bits=self._rand_bits,
            rand=rand,
            interleave=self._interleave,
        )
        m.d.comb += [self.acc.eq(loop.result), self.done.eq(loop.done)]
        return m
