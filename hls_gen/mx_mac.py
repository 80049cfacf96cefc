"""MX processing element: a block dot-product unit feeding the accumulator (``mpsim.qmatmul`` with ``mul`` MX).

The semantics are :mod:`mpsim.mx_gemm`'s: for every block ``k`` of a job's
``K`` beats, ``term_k`` is the exact sum of the block's element products times
``2**(Ea + Eb)`` (the two E8M0 scales; NaN when either is 0xFF), and the
accumulator adds it with one rounding, ``acc = R(acc + term_k)`` from +0. The
hardware: each beat's element product (exact, :func:`hls_gen.arith.multiply`)
is placed in a signed fixed-point *block-sum register*, the window
:func:`mpsim.mx.block_window` derives (every product a multiple of
``2**lsb``, a block's sum below ``2**(lsb + width)``), and added exactly; at a
block's last beat that sum, normalized and given the exponent of the scales,
is the term of the same accumulate loop a float PE uses
(:func:`hls_gen.accumulator.accumulate`: one rounder, nearest or stochastic).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed
from amaranth.lib.wiring import In

from hls_gen.accumulator import accumulate
from hls_gen.arith import (
    Unpacked,
    exp_shape,
    from_view,
    multiply,
    registered,
    select_value,
    shift_out_leading_zeros,
)
from hls_gen.lfsr import LFSR
from hls_gen.modes import ArithMode, check_modes, check_mx_mode, mx_formats, window
from hls_gen.pe import PE
from hls_gen.spec import MAX_INTERLEAVE, check_int, checking, lfsr_spec, rounding_string
from hls_gen.step import step_control
from mpsim.formats import FloatFormat
from mpsim.gemm_config import GemmConfig
from mpsim.mx import SCALE_BIAS, SCALE_BITS, SCALE_NAN_CODE, MXFormat

__all__ = ["MXMAC", "MX_MAX_PIPELINE", "mx_formats"]

#: Most pipeline registers an MX PE inserts before its accumulator (see :class:`MXMAC`).
MX_MAX_PIPELINE = 6


class MXMAC(PE):
    """One MX processing element: block dot products of element pairs, each block's sum accumulated with one rounding.

    A *job* is ``K`` beats (``step.valid``); beat ``t`` carries element
    ``A[t]`` (``a``) and ``B[t]`` (``b``) and the scale codes of their block
    (``a_scale``, ``b_scale``: E8M0, the same on each beat of a block; the
    block's last beat's are used). Blocks are ``block_size`` beats from the
    job's first; the beat marked ``last`` ends the job and its block (a short
    last block is the zero-padded one of :mod:`mpsim.mx_gemm`). So the sum of
    a job is bit for bit ``mpsim.qmatmul(A, B, mul=a_format[,b_format],
    acc=acc_format, rounding=rounding, seed=LFSRGrid(width, seed, rows=1,
    cols=1))`` of the values the codes encode.

    Per block the accumulator takes one step: its LFSR steps ``K_s`` times on
    a block's last beat and never otherwise, which is the stream
    :meth:`mpsim.randbits.LFSRGrid.gemm_draws` lays out for a reduction of
    ``ceil(K / block_size)`` terms (what :func:`mpsim.mx_gemm.run_mx` asks of
    it).

    Parameters
    ----------
    a_format, b_format : str or mpsim.MXFormat
        MX formats of A and B (``b_format`` None: A's), floating-point
        elements of at most 16 bits, one block size.
    acc_format : str or mpsim.FloatFormat
        Accumulator format; it must have NaN (a NaN scale, 0xFF, makes a NaN term).
    rounding : str
        ``"nearest"`` or ``"stochastic:K"``.
    lfsr_width, lfsr_seed, lfsr_taps
        As :class:`hls_gen.mac.MAC`.
    pipeline : int
        0..:data:`MX_MAX_PIPELINE` registers on a beat's way to the
        accumulator, added in the order they shorten the longest path: the
        normalized block term's (1 and up), the exact product's (2 and up),
        the block's exact total's, between the block sum and its
        normalization (3 and up), the total's magnitude, between its
        negation and the leading-zero shift (4 and up), the product placed
        in the block-sum window, between the placing shift and the block add
        (5 and up), the operands' (6). As for
        :class:`hls_gen.mac.MAC`, the count is the latency before the
        accumulate loop.
    interleave : int
        ``L``, 1..16: sums held in turn, as :class:`hls_gen.mac.MAC` (the
        accumulate loop cut into registers, C-slow). The block-sum register
        is a ring of ``L`` entries turning with the loop, so the beat of
        enabled cycle ``t`` adds to sum ``t mod L``'s block; a job's beats
        arrive in (beat, sum) order and the LFSR draws at block ends in
        (block, sum) order, the :class:`mpsim.randbits.LFSRGrid` stream
        with ``interleave=L``.
    decoded : bool
        ``a`` and ``b`` arrive unpacked (:func:`hls_gen.arith.unpacked_layout`
        of the element formats), as an array's edge decodes them.
    modes : sequence of hls_gen.modes.ArithMode or None
        Instead of the formats and rounding above: 2..16 MX modes of one
        block size, chosen per job by ``step.mode`` (the code is the index),
        as :class:`hls_gen.mac.MAC` s modes: operands decoded in the mode's
        element formats, one block-sum register whose window holds every
        mode's (:func:`hls_gen.modes.window`), a rounder per distinct
        accumulator (format, rounding), and the LFSR stepping the block's
        mode's random bits at each block's end.

    Members
    -------
    en : In(1)
        Clock enable of the whole unit.
    step : In(hls_gen.step.step_control(mode_bits))
        ``valid`` (a beat), ``last`` (the job's last beat), ``flush`` (hand
        out the sum at the accumulate loop's entry) and, with ``modes``,
        ``mode``, as :class:`hls_gen.mac.MAC`.
    a, b : In(element bits), or the unpacked layout with ``decoded``
        The beat's elements.
    a_scale, b_scale : In(8)
        E8M0 scale codes of the beat's A and B blocks.
    acc, done, flush, flush_mode, flush_sum : Out
        As :class:`hls_gen.mac.MAC` (``flush_mode`` only with ``modes``).
    """

    kind = "MX MAC"

    def __init__(
        self,
        *,
        a_format: str | MXFormat | None = None,
        b_format: str | MXFormat | None = None,
        acc_format: str | FloatFormat | None = None,
        rounding: str = "nearest",
        lfsr_width: int = 32,
        lfsr_seed: int = 1,
        lfsr_taps: tuple[int, ...] | None = None,
        pipeline: int = 0,
        interleave: int = 1,
        decoded: bool = False,
        modes: tuple[ArithMode, ...] | None = None,
    ) -> None:
        with checking(self):
            self._lfsr = lfsr_spec(lfsr_width, lfsr_seed, lfsr_taps)
            if modes is None:
                if a_format is None or acc_format is None:
                    raise TypeError("an MX MAC needs a_format and acc_format (or modes)")
                self._modes = (
                    check_mx_mode(a_format, b_format, acc_format, None, rounding, "nearest", self._lfsr.width),
                )
            else:
                formats = (("a_format", a_format), ("b_format", b_format), ("acc_format", acc_format))
                given = [n for n, v in formats if v is not None]
                if given or rounding != "nearest":
                    raise TypeError(f"an MX MAC takes modes or one mode's formats and rounding, not both ({given})")
                self._modes = check_modes(modes, self._lfsr.width)
                if self._modes[0].mx is None:
                    raise ValueError(
                        f"an MX MAC's modes multiply MX blocks, not element formats (mode 0 is "
                        f"{self._modes[0].label}); element-wise modes are hls_gen.mac.MAC's"
                    )
            pipeline = check_int(pipeline, "MX MAC pipeline registers", 0, MX_MAX_PIPELINE)
            interleave = check_int(interleave, "MX MAC interleave", 1, MAX_INTERLEAVE)
            scales = {"a_scale": In(SCALE_BITS), "b_scale": In(SCALE_BITS)}
            super().__init__(
                self._modes, self._lfsr, pipeline=pipeline, interleave=interleave, decoded=decoded, inputs=scales
            )

    @property
    def a_mx(self) -> MXFormat:
        """A's MX format."""
        return self._single().mx[0]  # type: ignore[index]

    @property
    def b_mx(self) -> MXFormat:
        """B's MX format."""
        return self._single().mx[1]  # type: ignore[index]

    @property
    def block_size(self) -> int:
        """Elements per block (every mode's)."""
        return self._modes[0].mx[0].block_size  # type: ignore[index]

    @property
    def window(self) -> tuple[int, int]:
        """``(lsb, width)`` of the block-sum register's magnitude, plus a sign: one mode's
        :func:`mpsim.mx.block_window`, or the window that holds every mode's (:func:`hls_gen.modes.window`)."""
        return window(self._modes)

    @property
    def label(self) -> str:
        """A short name: ``mxfp8_e4m3_fp16_sr8``, ``mxfp8_e4m3xmxfp8_e5m2_fp16_rne``, ``mx_e3m4_b16_bf16_rne``
        (several modes: their labels joined by ``+``)."""
        return "+".join(mode.label for mode in self._modes)

    @property
    def gemm_config(self) -> GemmConfig:
        """The arithmetic as :func:`mpsim.qmatmul` takes it (``config=``)."""
        a, b = self.a_mx.label, self.b_mx.label
        return GemmConfig(
            mul=a if a == b else f"{a},{b}",
            acc=self.acc_format,
            rounding=rounding_string(self.rand_bits),
            order="sequential",
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        en = self.en
        modes = self._modes
        multi = len(modes) > 1
        step: Value = self.step
        code = step.mode if multi else None
        a_formats, b_formats = self.operand_formats("a"), self.operand_formats("b")
        if self._decoded:
            a = from_view(self.a, a_formats if multi else a_formats[0])
            b = from_view(self.b, b_formats if multi else b_formats[0])
        else:
            a, b = self.decode(m, "a", self.a, code, "a"), self.decode(m, "b", self.b, code, "b")
        scales = (self.a_scale, self.b_scale)
        if self._pipeline >= 6:  # the operand registers
            step = registered(m, en, step, "operands_step", keep=True)
            a, b, scales = registered(m, en, (a, b, scales), "operands")
        product = multiply(m, a, b, "p")
        if self._pipeline >= 2:  # the exact product's register
            step = registered(m, en, step, "product_step", keep=True)
            product, scales = registered(m, en, (product, scales), "product")

        # The product in the block-sum window: full * 2**(exp - (W - 2)) is a multiple of 2**lsb (subnormals are
        # normalized, so their low significand bits are zeros), below 2**top: full << (exp - lsb) >> (W - 2).
        # Several modes share one window from the lowest lsb to the highest top (hls_gen.modes.window): a training
        # precision's modes nest (mxfp8's e5m2 x e4m3 window holds the e4m3 x e4m3 one), so per-mode placement
        # would save no register bit, only add a shifter per mode. A narrower mode's significands are
        # left-aligned in the shared operand fields, so the same placement holds for every mode.
        lsb, width = self.window
        w = len(product.full)
        magnitude_bits = product.exp_hi + 2 - lsb  # a product is below 2**(exp_hi + 2)
        shift = Signal(range(product.exp_hi - lsb + 1), name="p_place")
        m.d.comb += shift.eq(product.exp - lsb)  # a zero's exponent may lie below lsb: its bits are masked below
        placed = Signal(magnitude_bits, name="p_fixed")
        m.d.comb += placed.eq(Mux(product.zero | product.nan | product.inf, 0, (product.full << shift) >> (w - 2)))
        signed_product = Signal(signed(magnitude_bits + 1), name="p_signed")
        special = Signal(name="p_special")  # a NaN or Inf product: the block's sum is NaN
        m.d.comb += [signed_product.eq(Mux(product.sign, -placed, placed)), special.eq(product.nan | product.inf)]
        if self._pipeline >= 5:  # the placed product: the placing shift apart from the block add
            step = registered(m, en, step, "placed_step", keep=True)
            signed_product, special, scales = registered(m, en, (signed_product, special, scales), "placed")
        code = step.mode if multi else None  # the mode travels with its step to the block sum and the loop

        # The block-sum register: this beat's product adds to it, or begins it after a block's end. With L sums
        # it is a ring of L entries turning on every enabled cycle (as the accumulate loop's slots do): the entry
        # leaving the ring is the sum of this cycle's slot, and its update enters the ring's other end.
        block = self.block_size
        ring = self._interleave
        entry = {"sum": signed(width + 1), "nan": 1, "open": 1}  # sum, a NaN/Inf product in it, part of a block
        if block > 1:
            entry["count"] = range(block)  # the block's beats so far
        stages = [
            {
                key: Signal(shape, name=f"block_{key}" if ring == 1 else f"block_{key}_{i}")
                for key, shape in entry.items()
            }
            for i in range(ring)
        ]
        state = stages[-1]  # this slot's entry
        total = Signal(signed(width + 1), name="block_total")
        total_nan = Signal(name="block_total_nan")
        m.d.comb += [
            total.eq(Mux(state["open"], state["sum"], 0) + signed_product),
            total_nan.eq((state["open"] & state["nan"]) | special),
        ]
        valid, last = step.valid, step.last
        block_end = Signal(name="block_end")
        if block > 1:
            m.d.comb += block_end.eq(valid & (last | (state["count"] == block - 1)))
        else:
            m.d.comb += block_end.eq(valid)
        updated = {"sum": total, "nan": total_nan, "open": ~block_end}
        if block > 1:
            updated["count"] = Mux(block_end, 0, state["count"] + 1)
        with m.If(en):
            for key in entry:  # a bubble keeps its slot's entry; the ring turns
                m.d.sync += stages[0][key].eq(Mux(valid, updated[key], state[key]))
                for i in range(1, ring):
                    m.d.sync += stages[i][key].eq(stages[i - 1][key])

        # One accumulation per block: its step is a beat only at the block's end (other beats are bubbles, which
        # keep the sum).
        acc_step = Signal(step_control(self.mode_bits), name="acc_step")
        m.d.comb += [acc_step.valid.eq(block_end), acc_step.last.eq(last), acc_step.flush.eq(step.flush)]
        if multi:
            m.d.comb += acc_step.mode.eq(code)
        if self._pipeline >= 3:  # the block's exact total: the block add apart from its normalization
            acc_step = registered(m, en, acc_step, "total_step", keep=True)
            total, total_nan, scales = registered(m, en, (total, total_nan, scales), "total")

        # The term: the block's exact sum, normalized, times 2**(Ea + Eb - 254).
        a_scale, b_scale = scales
        negative = total[-1]
        mag = Signal(width, name="block_mag")
        m.d.comb += mag.eq(Mux(negative, -total, total))
        if self._pipeline >= 4:  # the magnitude: the negation apart from the leading-zero shift
            acc_step = registered(m, en, acc_step, "magnitude_step", keep=True)
            negative, mag, total_nan, scales = registered(m, en, (negative, mag, total_nan, scales), "magnitude")
            a_scale, b_scale = scales
        sig, lz = shift_out_leading_zeros(m, mag, "block")
        exp_lo, exp_hi = lsb - 2 * SCALE_BIAS, lsb + width - 1 + (SCALE_NAN_CODE - 1) * 2 - 2 * SCALE_BIAS
        exp = Signal(exp_shape(exp_lo, exp_hi), name="block_exp")
        zero = Signal(name="block_zero")
        m.d.comb += [
            zero.eq(mag == 0),
            exp.eq(Mux(zero, exp_lo, lsb + width - 1 - 2 * SCALE_BIAS - lz + a_scale + b_scale)),
        ]
        nan = total_nan | (a_scale == SCALE_NAN_CODE) | (b_scale == SCALE_NAN_CODE)
        term = Unpacked(negative, zero & ~nan, Const(0, 1), nan, exp, sig, exp_lo, exp_hi)
        if self._pipeline >= 1:  # the term's register: the normalization apart from the accumulate loop
            acc_step = registered(m, en, acc_step, "term_step", keep=True)
            term = registered(m, en, term, "term")

        # The LFSR steps only when the accumulator takes a block's term, by the block's mode's random bits.
        rand: Value | None = None
        steps = self.lfsr_steps
        if steps:
            m.submodules.lfsr = lfsr = LFSR(
                width=self._lfsr.width,
                seed=self._lfsr.seed,
                steps=steps,
                taps=self._lfsr.taps,
                choices=tuple(x.lfsr_steps for x in modes) if multi else None,
            )
            m.d.comb += lfsr.en.eq(en & acc_step.valid)
            rand = lfsr.bits
            if multi:  # each mode's draw is the top of the window (LFSR.bits), handed over in the low bits
                code = acc_step.mode  # the mode of the block the accumulator takes
                m.d.comb += lfsr.choice.eq(code)
                draws = [rand[steps - x.lfsr_steps :] if x.lfsr_steps else Const(0, 1) for x in modes]
                rand = select_value(m, code, draws, "rand_sum")  # type: ignore[arg-type]
        loop = accumulate(
            m,
            en=en,
            step=acc_step,
            term=term,
            rand=rand,
            interleave=self._interleave,
            modes=tuple((x.acc_format, x.rand_bits) for x in modes),
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
