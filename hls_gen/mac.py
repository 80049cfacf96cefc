"""Multiply-accumulate unit: one processing element of a MAC array."""

from __future__ import annotations

from amaranth.hdl import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hls_gen.accumulator import accumulate
from hls_gen.arith import from_view, multiply, normalize_product, registered, round_pack, unpack, unpacked_layout
from hls_gen.lfsr import LFSR
from hls_gen.spec import (
    LOOP_CUTS,
    MAX_INTERLEAVE,
    MAX_PIPELINE,
    check_int,
    check_nan_capable,
    checking,
    float_format,
    hw_rounding,
    lfsr_spec,
    operand_format,
)
from hls_gen.step import STEP_CONTROL
from mpsim.formats import FloatFormat
from mpsim.randbits import LFSRSpec

__all__ = ["MAC"]


class MAC(wiring.Component):
    """Floating-point multiply-accumulate: ``acc = round_acc(acc + p)`` per step, ``p`` the product.

    Fused (``product_format=None``): ``p`` is the exact product ``a * b`` and
    each step rounds once. Unfused: ``p = round_product(a * b)`` into
    ``product_format`` first. Every rounding is of the exact value, nearest-even
    or stochastic, so a sum of steps ``0..K-1`` starting from +0 is bit for bit
    ``mpsim.qmatmul(a_row, b_col, mul=product_format, acc=acc_format,
    rounding=..., mul_rounding=..., order="sequential")``.

    Random bits come from an internal :class:`~hls_gen.lfsr.LFSR` that takes
    ``kp + ks`` steps per accepted beat (``step.valid`` and ``en`` high) and never
    otherwise: the first ``kp`` bits (MSB first) round the product, the next
    ``ks`` the sum (``kp``/``ks``: the random bits of each stochastic rounding,
    0 for nearest or exact). The bits travel down the pipeline with their step.
    This is PE ``(0, 0)`` of ``mpsim.randbits.LFSRGrid(width, seed, rows=1,
    cols=1)``; an array seeds each PE as :class:`~mpsim.randbits.LFSRGrid` says.

    Parameters
    ----------
    a_format, b_format : str or mpsim.FloatFormat
        Operand formats (at most 16 bits each; they may differ).
    acc_format : str or mpsim.FloatFormat
        Accumulator format.
    product_format : str, mpsim.FloatFormat or None
        Format the product is rounded to (unfused MAC); None for a fused MAC.
    rounding : str
        Accumulation rounding: ``"nearest"`` or ``"stochastic:K"``.
    product_rounding : str
        Product rounding (unfused only): ``"nearest"`` or ``"stochastic:K"``.
    lfsr_width, lfsr_seed : int
        Width and reset state of the LFSR (used by stochastic roundings).
    lfsr_taps : tuple of int or None
        LFSR taps; None for :data:`mpsim.randbits.LFSR_TAPS`.
    pipeline : int
        Pipeline registers before the accumulator: 0 (multiply and add in one
        cycle), 1 (product register), 2 (operand and product registers). They
        sit where a multiplier block's registers do: the operand registers
        hold the unpacked operands at the multiplier's inputs, a fused MAC's
        product register the multiplier's output (its one bit of
        normalization follows); an unfused MAC registers the rounded product.
    interleave : int
        Sums held in turn, 1..16: the accumulate loop cut into
        ``min(interleave, 8)`` register stages (see
        :func:`hls_gen.accumulator.accumulate` for the order of steps).
    decoded : bool
        ``a`` and ``b`` arrive unpacked (:func:`hls_gen.arith.unpacked_layout`
        of their formats) instead of as bit patterns: an array decodes each
        operand once at its edge, so nothing but the multiplier lies between
        a PE's operand wires (registers of its neighbours) and its product.

    Members
    -------
    en : In(1)
        Clock enable of the whole unit (pipeline, LFSR, accumulator); tie high
        when there is nothing to stall (an array does: its PEs never stall).
    step : In(hls_gen.step.STEP_CONTROL)
        The step's control, registered down the pipeline with its operands:
        ``valid`` (``a`` and ``b`` carry a beat, accepted when ``en`` is
        high), ``last`` (the beat ends a sum; the slot's next beat starts a
        new sum from +0), ``flush`` (hand out the sum the step meets at the
        accumulate loop's entry: ``flush`` and ``flush_sum`` below).
    a : In(a_format.bits)
        Bit pattern of the first operand (``decoded``: its unpacked fields).
    b : In(b_format.bits)
        Bit pattern of the second operand (``decoded``: its unpacked fields).
    acc : Out(acc_format.bits)
        The accumulator register; the finished sum while ``done`` is high.
    done : Out(1)
        The accumulator holds a finished sum: high from ``latency`` enabled
        cycles after the beat marked ``last`` was accepted until the next
        enabled cycle.
    flush : Out(1)
        The step at the accumulate loop's entry (``pipeline`` enabled cycles
        after the unit took it) carries ``flush``: ``flush_sum`` is its
        slot's sum so far, finished when the step comes after the slot's
        last beat (``interleave`` or more enabled cycles after it).
    flush_sum : Out(acc_format.bits)
        The sum that the step at the loop's entry meets (a finished sum
        stays there, through bubbles, until its slot's next beat).
    """

    def __init__(
        self,
        *,
        a_format: str | FloatFormat,
        b_format: str | FloatFormat,
        acc_format: str | FloatFormat,
        product_format: str | FloatFormat | None = None,
        rounding: str = "nearest",
        product_rounding: str = "nearest",
        lfsr_width: int = 32,
        lfsr_seed: int = 1,
        lfsr_taps: tuple[int, ...] | None = None,
        pipeline: int = 0,
        interleave: int = 1,
        decoded: bool = False,
    ) -> None:
        with checking(self):
            self._a_format = operand_format(a_format, "multiplier operand format a")
            self._b_format = operand_format(b_format, "multiplier operand format b")
            self._acc_format = float_format(acc_format, "accumulator format")
            self._product_format = None if product_format is None else float_format(product_format, "product format")
            self._lfsr = lfsr_spec(lfsr_width, lfsr_seed, lfsr_taps)
            self._rand_bits = hw_rounding(rounding, "accumulator rounding", self._lfsr.width)
            self._product_rand_bits = hw_rounding(product_rounding, "product rounding", self._lfsr.width)
            if self._product_format is None and self._product_rand_bits is not None:
                raise ValueError(
                    f"product rounding {product_rounding!r} needs a product format; a fused MAC does not round products"
                )
            self._pipeline = check_int(pipeline, "MAC pipeline registers", 0, MAX_PIPELINE)
            self._interleave = check_int(interleave, "MAC interleave", 1, MAX_INTERLEAVE)
            if not isinstance(decoded, bool):
                raise TypeError(f"MAC decoded must be a bool, not {decoded!r}")
            self._decoded = decoded
            operand = unpacked_layout if decoded else (lambda fmt: fmt.bits)
            operands = (self._a_format, self._b_format)
            if self._product_format is not None:
                check_nan_capable(self._product_format, "product format", operands)
            check_nan_capable(self._acc_format, "accumulator format", operands)
            super().__init__(
                {
                    "en": In(1),
                    "step": In(STEP_CONTROL),
                    "a": In(operand(self._a_format)),
                    "b": In(operand(self._b_format)),
                    "acc": Out(self._acc_format.bits),
                    "done": Out(1),
                    "flush": Out(1),
                    "flush_sum": Out(self._acc_format.bits),
                }
            )

    @property
    def a_format(self) -> FloatFormat:
        return self._a_format

    @property
    def b_format(self) -> FloatFormat:
        return self._b_format

    @property
    def acc_format(self) -> FloatFormat:
        return self._acc_format

    @property
    def product_format(self) -> FloatFormat | None:
        return self._product_format

    @property
    def rand_bits(self) -> int | None:
        """Random bits of the accumulation rounding (None: nearest)."""
        return self._rand_bits

    @property
    def product_rand_bits(self) -> int | None:
        """Random bits of the product rounding (None: nearest, or a fused MAC)."""
        return self._product_rand_bits

    @property
    def lfsr(self) -> LFSRSpec:
        return self._lfsr

    @property
    def lfsr_steps(self) -> int:
        """LFSR steps per accepted step (0: no LFSR)."""
        return (self._product_rand_bits or 0) + (self._rand_bits or 0)

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def decoded(self) -> bool:
        """Operands arrive unpacked."""
        return self._decoded

    @property
    def interleave(self) -> int:
        """Sums the unit holds in turn."""
        return self._interleave

    @property
    def latency(self) -> int:
        """Enabled cycles from accepting the step marked ``last`` to ``done``."""
        return self._pipeline + 1 + len(LOOP_CUTS[min(self._interleave, len(LOOP_CUTS))])

    def elaborate(self, platform: object) -> Module:
        m = Module()
        kp, ks = self._product_rand_bits, self._rand_bits
        steps = self.lfsr_steps
        rand: Value | None = None
        if steps:
            m.submodules.lfsr = lfsr = LFSR(
                width=self._lfsr.width, seed=self._lfsr.seed, steps=steps, taps=self._lfsr.taps
            )
            m.d.comb += lfsr.en.eq(self.en & self.step.valid)
            rand = lfsr.bits
        step = self.step
        if self._decoded:
            a, b = from_view(self.a, self._a_format), from_view(self.b, self._b_format)
        else:
            a, b = unpack(m, self.a, self._a_format, "a"), unpack(m, self.b, self._b_format, "b")
        if self._pipeline >= 2:  # at the multiplier's inputs (a multiplier block's input registers)
            step, a, b, rand = registered(m, self.en, (step, a, b, rand), "operands")
        rand_product = rand[steps - kp :] if (rand is not None and kp) else None
        rand_sum = rand[:ks] if (rand is not None and ks) else None
        product = multiply(m, a, b, "p")
        if self._product_format is None:
            if self._pipeline >= 1:  # at the multiplier's output (a multiplier block's output register)
                step, product, rand_sum = registered(m, self.en, (step, product, rand_sum), "product")
            term = normalize_product(m, product, "p")
        else:
            code = round_pack(
                m, normalize_product(m, product, "p"), 0, self._product_format, kp, rand_product, "p_round"
            )
            if self._pipeline >= 1:
                step, code, rand_sum = registered(m, self.en, (step, code, rand_sum), "product")
            term = unpack(m, code, self._product_format, "term")
        loop = accumulate(
            m,
            en=self.en,
            step=step,
            term=term,
            acc_format=self._acc_format,
            rand_bits=ks,
            rand=rand_sum,
            interleave=self._interleave,
        )
        m.d.comb += [
            self.acc.eq(loop.result),
            self.done.eq(loop.done),
            self.flush.eq(loop.flush),
            self.flush_sum.eq(loop.entry),
        ]
        return m
