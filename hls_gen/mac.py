"""Multiply-accumulate unit: one processing element of a MAC array."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hls_gen.accumulator import accumulate
from hls_gen.arith import Unpacked, multiply_exact, registered, round_pack, select_unpacked, select_value, unpack
from hls_gen.lfsr import LFSR
from hls_gen.modes import ArithMode, HwMode, check_mode, check_modes, mode_bits
from hls_gen.spec import LOOP_CUTS, MAX_INTERLEAVE, MAX_PIPELINE, check_int, checking, lfsr_spec
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
    ``kp + ks`` steps per accepted step (``valid`` and ``en`` high) and never
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
        cycle), 1 (product register), 2 (operand and product registers).
    interleave : int
        Sums held in turn, 1..16: the accumulate loop cut into
        ``min(interleave, 8)`` register stages (see
        :func:`hls_gen.accumulator.accumulate` for the order of steps).
    modes : sequence of hls_gen.modes.ArithMode or None
        Instead of the formats and roundings above: 2..16 arithmetic modes,
        chosen per step by ``mode`` (the code is the index). Operands and the
        accumulator are as wide as the widest mode's, each value in the low
        bits; the multiplier, aligner, adder and normalizer are shared, each
        distinct product or accumulator (format, rounding) has its rounder,
        and the LFSR steps the step's mode's random bits.

    Members
    -------
    en : In(1)
        Clock enable of the whole unit (pipeline, LFSR, accumulator); tie high
        when there is nothing to stall.
    valid : In(1)
        ``a`` and ``b`` carry a step (accepted when ``en`` is high).
    last : In(1)
        The step ends a sum; the next step starts a new sum from +0.
    mode : In(mode_bits)
        The step's mode code (only with ``modes``).
    a : In(a_format.bits)
        Bit pattern of the first operand.
    b : In(b_format.bits)
        Bit pattern of the second operand.
    acc : Out(acc_format.bits)
        The accumulator register; the finished sum while ``done`` is high.
    acc_mode : Out(mode_bits)
        The finished sum's mode code (only with ``modes``).
    done : Out(1)
        The accumulator holds a finished sum: high from ``latency`` enabled
        cycles after the step marked ``last`` was accepted until the next
        enabled cycle.
    """

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
        modes: tuple[ArithMode, ...] | None = None,
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
            self._pipeline = check_int(pipeline, "MAC pipeline registers", 0, MAX_PIPELINE)
            self._interleave = check_int(interleave, "MAC interleave", 1, MAX_INTERLEAVE)
            members: dict[str, wiring.Member] = {"en": In(1), "valid": In(1), "last": In(1)}
            if self.mode_bits:
                members["mode"] = In(self.mode_bits)
            members.update({"a": In(self.a_bits), "b": In(self.b_bits), "acc": Out(self.acc_bits)})
            if self.mode_bits:
                members["acc_mode"] = Out(self.mode_bits)
            members["done"] = Out(1)
            super().__init__(members)

    @property
    def modes(self) -> tuple[HwMode, ...]:
        """The arithmetic modes, by code (one for a single-mode MAC)."""
        return self._modes

    @property
    def mode_bits(self) -> int:
        """Width of the mode field (0: a single mode, no ``mode`` port)."""
        return mode_bits(len(self._modes))

    @property
    def a_bits(self) -> int:
        """Width of operand ``a`` (the widest mode's)."""
        return max(x.a_format.bits for x in self._modes)

    @property
    def b_bits(self) -> int:
        """Width of operand ``b`` (the widest mode's)."""
        return max(x.b_format.bits for x in self._modes)

    @property
    def acc_bits(self) -> int:
        """Width of the accumulator (the widest mode's)."""
        return max(x.acc_format.bits for x in self._modes)

    def _single(self) -> HwMode:
        if len(self._modes) != 1:
            raise ValueError(f"this MAC has {len(self._modes)} modes; read its formats per mode from .modes")
        return self._modes[0]

    @property
    def a_format(self) -> FloatFormat:
        return self._single().a_format

    @property
    def b_format(self) -> FloatFormat:
        return self._single().b_format

    @property
    def acc_format(self) -> FloatFormat:
        return self._single().acc_format

    @property
    def product_format(self) -> FloatFormat | None:
        return self._single().product_format

    @property
    def rand_bits(self) -> int | None:
        """Random bits of the accumulation rounding (None: nearest)."""
        return self._single().rand_bits

    @property
    def product_rand_bits(self) -> int | None:
        """Random bits of the product rounding (None: nearest, or a fused MAC)."""
        return self._single().product_rand_bits

    @property
    def lfsr(self) -> LFSRSpec:
        return self._lfsr

    @property
    def lfsr_steps(self) -> int:
        """LFSR steps per accepted step, the most of any mode (0: no LFSR)."""
        return max(x.lfsr_steps for x in self._modes)

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def interleave(self) -> int:
        """Sums the unit holds in turn."""
        return self._interleave

    @property
    def latency(self) -> int:
        """Enabled cycles from accepting the step marked ``last`` to ``done``."""
        return self._pipeline + 1 + len(LOOP_CUTS[min(self._interleave, len(LOOP_CUTS))])

    def elaborate(self, platform: object) -> Module:
        if len(self._modes) > 1:
            return self._elaborate_modes()
        m = Module()
        mode = self._modes[0]
        kp, ks = mode.product_rand_bits, mode.rand_bits
        a_format, b_format, acc_format, product_format = (
            mode.a_format,
            mode.b_format,
            mode.acc_format,
            mode.product_format,
        )
        steps = self.lfsr_steps
        rand: Value | None = None
        if steps:
            m.submodules.lfsr = lfsr = LFSR(
                width=self._lfsr.width, seed=self._lfsr.seed, steps=steps, taps=self._lfsr.taps
            )
            m.d.comb += lfsr.en.eq(self.en & self.valid)
            rand = lfsr.bits

        def register(values: list[Value], names: list[str]) -> list[Signal]:
            regs = [Signal(len(v), name=n) for v, n in zip(values, names)]
            with m.If(self.en):
                m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
            return regs

        valid, last, a, b = self.valid, self.last, self.a, self.b
        if self._pipeline >= 2:
            stage = [valid, last, a, b] + ([rand] if rand is not None else [])
            regs = register(stage, ["valid_in", "last_in", "a_in", "b_in", "rand_in"][: len(stage)])
            valid, last, a, b = regs[:4]
            rand = regs[4] if rand is not None else None
        rand_product = rand[steps - kp :] if (rand is not None and kp) else None
        rand_sum = rand[:ks] if (rand is not None and ks) else None
        product = multiply_exact(m, unpack(m, a, a_format, "a"), unpack(m, b, b_format, "b"), "p")
        if product_format is not None:
            code = round_pack(m, product, 0, product_format, kp, rand_product, "p_round")
            if self._pipeline >= 1:
                stage = [valid, last, code] + ([rand_sum] if rand_sum is not None else [])
                regs = register(stage, ["valid_p", "last_p", "product", "rand_p"][: len(stage)])
                valid, last, code = regs[:3]
                rand_sum = regs[3] if rand_sum is not None else None
            term = unpack(m, code, product_format, "term")
        else:
            term = product
            if self._pipeline >= 1:
                fields = [term.sig, term.exp, term.sign, term.zero, term.inf, term.nan]
                stage = [valid, last, Cat(*fields)] + ([rand_sum] if rand_sum is not None else [])
                regs = register(stage, ["valid_p", "last_p", "product", "rand_p"][: len(stage)])
                valid, last, packed = regs[:3]
                rand_sum = regs[3] if rand_sum is not None else None
                pos = 0
                parts = []
                for f in fields:
                    parts.append(packed[pos : pos + len(f)])
                    pos += len(f)
                term = Unpacked(
                    parts[2], parts[3], parts[4], parts[5], parts[1].as_signed(), parts[0], term.exp_lo, term.exp_hi
                )
        acc, done, _ = accumulate(
            m,
            en=self.en,
            valid=valid,
            last=last,
            term=term,
            acc_format=acc_format,
            rand_bits=ks,
            rand=rand_sum,
            interleave=self._interleave,
        )
        m.d.comb += [self.acc.eq(acc), self.done.eq(done)]
        return m

    def _elaborate_modes(self) -> Module:
        """The datapath of several modes: per-format unpacking and rounding, the rest shared."""
        m = Module()
        modes = self._modes
        steps = self.lfsr_steps
        code = self.mode
        rand_product: Value | None = None
        rand_sum: Value | None = None
        if steps:
            # Each mode steps its own count; its draws are the top bits of the window: the product's, then the sum's.
            m.submodules.lfsr = lfsr = LFSR(
                width=self._lfsr.width,
                seed=self._lfsr.seed,
                steps=steps,
                taps=self._lfsr.taps,
                choices=tuple(x.lfsr_steps for x in modes),
            )
            m.d.comb += [lfsr.en.eq(self.en & self.valid), lfsr.choice.eq(code)]
            bits = lfsr.bits

            def draws(first: int, count: int) -> Value:
                return bits[steps - first - count : steps - first] if count else Const(0, 1)

            if any(x.product_rand_bits for x in modes):
                rand_product = select_value(
                    m, code, [draws(0, x.product_rand_bits or 0) for x in modes], "rand_product"
                )
            if any(x.rand_bits for x in modes):
                rand_sum = select_value(
                    m, code, [draws(x.product_rand_bits or 0, x.rand_bits or 0) for x in modes], "rand_sum"
                )
        valid, last, a, b = self.valid, self.last, self.a, self.b
        if self._pipeline >= 2:
            valid, last, code, a, b, rand_product, rand_sum = registered(
                m, self.en, (valid, last, code, a, b, rand_product, rand_sum), "in"
            )

        def per_format(value: Value, formats: list[FloatFormat], name: str) -> list[Unpacked]:
            unpacked = {f: unpack(m, value[: f.bits], f, f"{name}_{f.label}") for f in dict.fromkeys(formats)}
            return [unpacked[f] for f in formats]

        ua = select_unpacked(m, code, per_format(a, [x.a_format for x in modes], "a"), "a")
        ub = select_unpacked(m, code, per_format(b, [x.b_format for x in modes], "b"), "b")
        product = multiply_exact(m, ua, ub, "p")
        terms: dict[tuple[FloatFormat, int | None] | None, Unpacked] = {None: product}
        for x in modes:
            key = None if x.product_format is None else (x.product_format, x.product_rand_bits)
            if key is not None and key not in terms:
                fmt, kp = key
                name = f"p_{fmt.label}_{'rne' if kp is None else f'sr{kp}'}"
                rounded = round_pack(m, product, 0, fmt, kp, None if kp is None else rand_product[:kp], name)
                terms[key] = unpack(m, rounded, fmt, f"{name}_term")
        keys = [None if x.product_format is None else (x.product_format, x.product_rand_bits) for x in modes]
        term = select_unpacked(m, code, [terms[k] for k in keys], "term")
        if self._pipeline >= 1:
            valid, last, code, term, rand_sum = registered(m, self.en, (valid, last, code, term, rand_sum), "p")
        acc, done, acc_mode = accumulate(
            m,
            en=self.en,
            valid=valid,
            last=last,
            term=term,
            rand=rand_sum,
            interleave=self._interleave,
            modes=tuple((x.acc_format, x.rand_bits) for x in modes),
            mode=code,
        )
        m.d.comb += [self.acc.eq(acc), self.done.eq(done), self.acc_mode.eq(acc_mode)]
        return m
