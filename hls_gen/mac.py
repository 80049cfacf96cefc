"""Multiply-accumulate unit: one processing element of a MAC array."""

from __future__ import annotations

from dataclasses import replace

from amaranth.hdl import Const, Module, Value

from hls_gen.accumulator import accumulate
from hls_gen.arith import (
    Unpacked,
    from_view,
    multiply,
    normalize_product,
    registered,
    round_pack,
    select_unpacked,
    select_value,
    unpack,
)
from hls_gen.dsp import check_dsp, mult18x18d
from hls_gen.lfsr import LFSR
from hls_gen.modes import ArithMode, check_mode, check_modes
from hls_gen.pe import PE
from hls_gen.spec import MAX_INTERLEAVE, MAX_PIPELINE, check_int, checking, lfsr_spec, rounding_token
from mpsim.formats import FloatFormat

__all__ = ["MAC"]


class MAC(PE):
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
    dsp : str
        How the significands are multiplied (:mod:`hls_gen.dsp`): ``"inferred"``
        (``a * b``, mapped by the synthesis tool) or ``"ecp5"`` (a MULT18X18D
        instance whose input and output registers are pipeline 2's operand
        and product registers: needs ``pipeline=2`` and a fused MAC).
    interleave : int
        Sums held in turn, 1..16: the accumulate loop cut into
        ``min(interleave, 8)`` register stages (see
        :func:`hls_gen.accumulator.accumulate` for the order of steps).
    modes : sequence of hls_gen.modes.ArithMode or None
        Instead of the formats and roundings above: 2..16 arithmetic modes,
        chosen per step by ``step.mode`` (the code is the index). Operands and
        the accumulator are as wide as the widest mode's, each value in the
        low bits; the multiplier, aligner, adder and normalizer are shared,
        each distinct product or accumulator (format, rounding) has its
        rounder, and the LFSR steps the step's mode's random bits.
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
    flush_mode : Out(mode_bits)
        The mode code of ``flush_sum`` (only with ``modes``).
    flush_sum : Out(acc_format.bits)
        The sum that the step at the loop's entry meets (a finished sum
        stays there, through bubbles, until its slot's next beat).
    """

    kind = "MAC"

    def __init__(
        self,
        *,
        a_format: str | FloatFormat | None = None,
        b_format: str | FloatFormat | None = None,
        acc_format: str | FloatFormat | None = None,
        product_format: str | FloatFormat | None = None,
        rounding: str = "nearest",
        product_rounding: str = "nearest",
        lfsr_width: int = 32,
        lfsr_seed: int = 1,
        lfsr_taps: tuple[int, ...] | None = None,
        pipeline: int = 0,
        interleave: int = 1,
        decoded: bool = False,
        modes: tuple[ArithMode, ...] | None = None,
        dsp: str = "inferred",
    ) -> None:
        with checking(self):
            self._lfsr = lfsr_spec(lfsr_width, lfsr_seed, lfsr_taps)
            if modes is None:
                if a_format is None or b_format is None or acc_format is None:
                    raise TypeError("a MAC needs a_format, b_format and acc_format (or modes)")
                self._modes = (
                    check_mode(
                        a_format=a_format,
                        b_format=b_format,
                        acc_format=acc_format,
                        product_format=product_format,
                        rounding=rounding,
                        product_rounding=product_rounding,
                        lfsr_width=self._lfsr.width,
                    ),
                )
            else:
                given = [
                    n
                    for n, v in (
                        ("a_format", a_format),
                        ("b_format", b_format),
                        ("acc_format", acc_format),
                        ("product_format", product_format),
                    )
                    if v is not None
                ]
                if given or (rounding, product_rounding) != ("nearest", "nearest"):
                    raise TypeError(f"a MAC takes modes or one mode's formats and roundings, not both ({given})")
                self._modes = check_modes(modes, self._lfsr.width)
            if self._modes[0].mx is not None:  # check_modes: all MX or none
                raise ValueError(
                    f"a MAC multiplies element formats, not MX blocks ({self._modes[0].label}); MX modes are "
                    "hls_gen.mx_mac.MXMAC's"
                )
            pipeline = check_int(pipeline, "MAC pipeline registers", 0, MAX_PIPELINE)
            interleave = check_int(interleave, "MAC interleave", 1, MAX_INTERLEAVE)
            self._dsp = check_dsp(dsp, pipeline, all(x.product_format is None for x in self._modes))
            super().__init__(self._modes, self._lfsr, pipeline=pipeline, interleave=interleave, decoded=decoded)

    @property
    def product_format(self) -> FloatFormat | None:
        return self._single().product_format

    @property
    def product_rand_bits(self) -> int | None:
        """Random bits of the product rounding (None: nearest, or a fused MAC)."""
        return self._single().product_rand_bits

    @property
    def dsp(self) -> str:
        """How the significands are multiplied: ``"inferred"`` or ``"ecp5"`` (:mod:`hls_gen.dsp`)."""
        return self._dsp

    def elaborate(self, platform: object) -> Module:
        m = Module()
        modes = self._modes
        multi = len(modes) > 1
        steps = self.lfsr_steps
        step = self.step
        code = step.mode if multi else None
        rand: Value | None = None
        if steps:
            # Each mode steps its own count; its draws are the top bits of the window: the product's, then the sum's.
            m.submodules.lfsr = lfsr = LFSR(
                width=self._lfsr.width,
                seed=self._lfsr.seed,
                steps=steps,
                taps=self._lfsr.taps,
                choices=tuple(x.lfsr_steps for x in modes) if multi else None,
            )
            m.d.comb += lfsr.en.eq(self.en & step.valid)
            if multi:
                m.d.comb += lfsr.choice.eq(code)
            rand = lfsr.bits
        if self._decoded:
            a, b = from_view(self.a, self.operand_formats("a")), from_view(self.b, self.operand_formats("b"))
        else:
            a, b = self.decode(m, "a", self.a, code, "a"), self.decode(m, "b", self.b, code, "b")
        block_product = None
        if self._dsp == "ecp5":  # the block's input registers take the significands, its output register the product
            block_product = mult18x18d(m, a.sig, b.sig, self.en, "p")
            a, b = replace(a, sig=Const(0, a.width)), replace(b, sig=Const(0, b.width))
        if self._pipeline >= 2:  # at the multiplier's inputs (a multiplier block's input registers)
            step = registered(m, self.en, step, "operands_step", keep=True)
            a, b, rand = registered(m, self.en, (a, b, rand), "operands")
            code = step.mode if multi else None

        def draws(first: int, count: int) -> Value | None:
            """Bits ``first .. first+count-1`` of the step's window (first out most significant), as a value."""
            if rand is None or not count:
                return None
            return rand[steps - first - count : steps - first]

        def by_mode(parts: list[Value | None], name: str) -> Value | None:
            if all(p is None for p in parts):
                return None
            return select_value(m, code, [Const(0, 1) if p is None else p for p in parts], name) if multi else parts[0]

        rand_product = by_mode([draws(0, x.product_rand_bits or 0) for x in modes], "rand_product")
        rand_sum = by_mode([draws(x.product_rand_bits or 0, x.rand_bits or 0) for x in modes], "rand_sum")
        product = multiply(m, a, b, "p")
        if all(x.product_format is None for x in modes):
            if self._pipeline >= 1:  # at the multiplier's output (a multiplier block's output register)
                step = registered(m, self.en, step, "product_step", keep=True)
                product, rand_sum = registered(m, self.en, (product, rand_sum), "product")
                code = step.mode if multi else None
            if block_product is not None:
                product = replace(product, full=block_product)
            term = normalize_product(m, product, "p")
        else:
            exact = normalize_product(m, product, "p")
            terms: dict[tuple[FloatFormat, int | None] | None, Unpacked] = {None: exact}
            codes: dict[tuple[FloatFormat, int | None], Value] = {}
            for x in modes:
                key = None if x.product_format is None else (x.product_format, x.product_rand_bits)
                if key is not None and key not in codes:
                    fmt, kp = key
                    name = "p_round" if not multi else f"p_{fmt.label}_{rounding_token(kp)}"
                    draw = None if kp is None else (rand_product[:kp] if multi else rand_product)
                    codes[key] = round_pack(m, exact, 0, fmt, kp, draw, name)
            keys = [None if x.product_format is None else (x.product_format, x.product_rand_bits) for x in modes]
            if self._pipeline >= 1:  # the rounded products (and a fused mode's exact one) registered
                step = registered(m, self.en, step, "product_step", keep=True)
                rounded_codes, exact, rand_sum = registered(
                    m, self.en, (tuple(codes.values()), exact, rand_sum), "product"
                )
                codes = dict(zip(codes, rounded_codes))
                code = step.mode if multi else None
                terms[None] = exact
            for key, rounded in codes.items():
                terms[key] = unpack(m, rounded, key[0], "term" if not multi else f"term_{key[0].label}")
            term = select_unpacked(m, code, [terms[k] for k in keys], "term")
        loop = accumulate(
            m,
            en=self.en,
            step=step,
            term=term,
            rand=rand_sum,
            interleave=self._interleave,
            modes=tuple((x.acc_format, x.rand_bits) for x in modes),
            term_bits=tuple(x.term_bits for x in modes),
        )
        m.d.comb += [
            self.acc.eq(loop.result),
            self.done.eq(loop.done),
            self.flush.eq(loop.flush),
            self.flush_sum.eq(loop.entry),
        ]
        if multi:
            m.d.comb += self.flush_mode.eq(loop.entry_mode)
        return m
