"""Output-stationary MAC array with valid/ready streams in and out."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hls_gen.arith import registered, select_value, unpacked_view
from hls_gen.mac import MAC
from hls_gen.modes import ArithMode
from hls_gen.mx_mac import MXMAC
from hls_gen.ports import INPUT, OUTPUT, input_signature, output_signature
from hls_gen.spec import BUFFER_STAGES, MAX_ARRAY_SIDE, array_latency, check_int, checking, described, lfsr_spec
from hls_gen.step import step_control
from mpsim.formats import FloatFormat
from mpsim.mx import SCALE_BITS, MXFormat, is_mx_spec
from mpsim.randbits import LFSRGrid, LFSRSpec

__all__ = ["MACArray"]


#: Registers from a PE row's read to its buffers' shift (the last is each slot's enable), where the rows leave time.
SHIFT_STAGES = 3


def _next(counter: Signal, n: int) -> Value:
    """``counter + 1`` modulo ``n``."""
    return Mux(counter == n - 1, 0, counter + 1)


def _row_reads(m: Module, rows: int, sums: int, tile_in: Value, ready: Value) -> list[Value]:
    """Per PE row ``r``: ``take & (part == r)`` (the output takes tile row ``l * rows + r``), from a copy of the read
    state that row keeps for itself: whether it is next (a one-hot turn passed from row to row, row 0 after the
    last) and how many of its ``sums`` rows the tile still holds (``sums`` when the tile comes in, one less per
    read). While the buffer is full exactly the next row has reads left; between tiles none has."""
    keep = {"keep": 1}
    turns = [Signal(name=f"buffer_turn_{r}", init=int(r == 0), attrs=keep) for r in range(rows)]
    lefts = [Signal(range(sums + 1), name=f"buffer_left_{r}", attrs=keep) for r in range(rows)]
    reads = [Signal(name=f"buffer_read_{r}") for r in range(rows)]
    for r in range(rows):
        m.d.comb += reads[r].eq(turns[r] & (lefts[r] != 0) & ready)
        with m.If(reads[r - 1]):  # the row before was read (row 0 follows the last row)
            m.d.sync += turns[r].eq(1)
        with m.Elif(reads[r]):
            m.d.sync += turns[r].eq(0)
        with m.If(tile_in):
            m.d.sync += lefts[r].eq(sums)
        with m.Elif(reads[r]):
            m.d.sync += lefts[r].eq(lefts[r] - 1)
    return reads


class MACArray(wiring.Component):
    """``rows x cols`` processing elements computing one output tile ``C = A @ B``, output-stationary, systolic.

    A *job* is a tile product: ``A`` is ``rows x K``, ``B`` is ``K x cols``,
    ``K >= 1``. Beat ``t`` of the input stream ``inp`` carries column ``t``
    of ``A`` (``inp.payload.a[r]`` for PE row ``r``) and row ``t`` of ``B``
    (``inp.payload.b[c]``); ``inp.payload.last`` marks beat ``K-1``. PE
    ``(r, c)`` is a :class:`~hls_gen.mac.MAC` that accumulates ``A[r, t] *
    B[t, c]`` in beat order starting from +0 (``mpsim.qmatmul``'s
    ``"sequential"`` order), so the tile is bit for bit ``mpsim.qmatmul(A, B,
    mul=product_format, acc=acc_format, rounding=..., mul_rounding=...,
    seed=LFSRGrid(lfsr_width, lfsr_seed, lfsr_taps, rows=rows, cols=cols))``
    (a larger product tiled ``(batch, row tile, column tile)`` in C order,
    padded with zeros, gives that ``qmatmul`` of the whole product).

    Operands move systolically, neighbour to neighbour through registers:
    ``A``'s element ``r`` enters PE ``(r, 0)`` ``r`` cycles late and moves
    right, ``B``'s element ``c`` enters PE ``(0, c)`` ``c`` cycles late and
    moves down, and each step's control (:data:`hls_gen.step.STEP_CONTROL`)
    moves with ``A``, so PE ``(r, c)`` takes beat ``n`` at cycle ``n + r +
    c`` and sees exactly the beats, and steps its LFSR exactly on the beats,
    that it would see in lockstep. Nothing stalls the PEs (they have no
    enable): the input decides. A job's finished tile stays in the PEs'
    loops (a cycle without a beat keeps every sum) until the output buffer
    is free; then flush steps, one per sum, carry each PE's sums into its
    own place in the buffer through the same skew, and the next job's first
    beats ride on them. The buffer's tile then leaves on the output stream
    ``out`` as ``rows`` beats, row ``r`` of ``C`` in beat ``r``
    (``out.payload.data[c]``, ``out.payload.row = r``), ``out.payload.last``
    on the last row, while the next job streams in. ``inp.ready`` depends on
    registers only; it is low from the cycle after a job's last beat while that job's tile waits
    for the buffer. Both streams follow the usual rule: a beat moves in a
    cycle where ``valid`` and ``ready`` are both high. Reset (``rst``,
    synchronous) clears the accumulators, the buffer and the LFSRs (to their
    seeds).

    An MX array (``a_format`` an MX format, ``"mxfp8_e4m3"``, or MX
    ``modes``): its PEs are :class:`~hls_gen.mx_mac.MXMAC` s, block
    dot-product units, and the input payload carries each element's block
    scale (``a_scale[r]``, ``b_scale[c]``, E8M0) beside it; the scales travel
    with their elements. A job's tile is then ``mpsim.qmatmul`` with ``mul``
    the (job's mode's) MX format(s), the operands' element and scale codes as
    :func:`mpsim.encode_mx` gives them (A's blocks along its rows, B's along
    its columns).

    Parameters
    ----------
    a_format, b_format, acc_format, product_format, rounding, product_rounding, lfsr_width, lfsr_taps, pipeline, dsp
        As :class:`~hls_gen.mac.MAC`; ``a_format`` and ``b_format`` may be
        MX formats (:class:`~hls_gen.mx_mac.MXMAC`: no product format,
        inferred multipliers, interleave 1).
    lfsr_seed : int
        Seed of the array's random stream; PE ``(r, c)`` starts from
        ``LFSRGrid(...).seeds[r, c]`` (see :mod:`mpsim.randbits`).
    rows, cols : int
        Array size, 1..64 each.
    modes : sequence of hls_gen.modes.ArithMode or None
        Instead of one set of formats and roundings: 2..16 modes (as
        :class:`~hls_gen.mac.MAC`), the job's chosen by ``inp.payload.mode``. Jobs of
        different modes follow each other with no idle cycle; each job's
        tile is ``mpsim.qmatmul`` with its mode's arithmetic, the PEs'
        LFSRs carrying on from job to job (each steps its beat's mode's
        random bits).
    interleave : int
        Sums each PE holds in turn (its accumulate loop cut into that many
        register stages, up to 8; :func:`hls_gen.accumulator.accumulate`).
        A job's tile of ``C`` then has ``rows * interleave`` rows: beat
        ``t * interleave + l`` carries rows ``l*rows .. (l+1)*rows - 1`` of
        column ``t`` of ``A`` and row ``t`` of ``B``, ``last`` marks the
        ``interleave`` beats of step ``K-1``, and PE ``(r, c)`` computes row
        ``l*rows + r`` from the beats ``l``. Beat ``t * interleave + l``
        moves only in a cycle that is ``l`` modulo ``interleave`` (counted
        from reset; a free-running turn counter): after a cycle without a
        beat, ``inp.ready`` stays low until that beat's turn comes round (at
        most ``interleave - 1`` cycles).

    Members
    -------
    inp : In(stream.Signature(hls_gen.ports.input_layout(...)))
        Input beats (``valid``, ``ready``, ``payload``; Verilog ports
        ``inp__valid``, ``inp__ready``, ``inp__payload``). ``ready`` is a
        function of registers only. The payload: ``a`` (``rows`` operand
        words of ``a_bits``: column ``t`` of ``A``), ``b`` (``cols`` words
        of ``b_bits``: row ``t`` of ``B``), ``last`` (the beat is the last,
        ``K-1``, of its job) and, only with ``modes``, ``mode`` (the job's
        mode code, the same on each of its beats).
    out : Out(stream.Signature(hls_gen.ports.output_layout(...)))
        Rows of finished tiles (``out__valid``, ``out__ready``,
        ``out__payload``). The payload: ``data`` (``cols`` accumulator
        words: row ``row`` of the tile), ``row`` (``range(max(tile_rows,
        2))``: one bit wide for a single row), ``last`` (the tile's last
        row) and, only with ``modes``, ``mode`` (the tile's mode code).
    """

    def __init__(
        self,
        *,
        a_format: str | FloatFormat | MXFormat | None = None,
        b_format: str | FloatFormat | MXFormat | None = None,
        acc_format: str | FloatFormat | None = None,
        product_format: str | FloatFormat | None = None,
        rounding: str = "nearest",
        product_rounding: str = "nearest",
        lfsr_width: int = 32,
        lfsr_seed: int = 1,
        lfsr_taps: tuple[int, ...] | None = None,
        rows: int = 4,
        cols: int = 4,
        pipeline: int = 0,
        interleave: int = 1,
        modes: tuple[ArithMode, ...] | None = None,
        dsp: str = "inferred",
    ) -> None:
        with checking(self):
            self._rows = check_int(rows, "MAC array rows", 1, MAX_ARRAY_SIDE)
            self._cols = check_int(cols, "MAC array columns", 1, MAX_ARRAY_SIDE)
            self._lfsr = lfsr_spec(lfsr_width, lfsr_seed, lfsr_taps)
            # One MAC checks every remaining parameter; the PEs differ only in their seeds.
            mx_modes = isinstance(modes, (tuple, list)) and any(  # the PE checks the modes themselves
                isinstance(x, ArithMode) and (is_mx_spec(x.a_format) or is_mx_spec(x.b_format)) for x in modes
            )
            self._mx = mx_modes or any(f is not None and is_mx_spec(f) for f in (a_format, b_format))
            self._pe_class: type[MAC] | type[MXMAC] = MAC
            self._pe_args = dict(
                a_format=a_format,
                b_format=b_format,
                acc_format=acc_format,
                product_format=product_format,
                rounding=rounding,
                product_rounding=product_rounding,
                lfsr_width=lfsr_width,
                lfsr_taps=lfsr_taps,
                pipeline=pipeline,
                interleave=interleave,
                modes=modes,
                dsp=dsp,
            )
            if self._mx:
                self._pe_class, self._pe_args = MXMAC, self._mx_pe_args(self._pe_args)
            self._model = self._pe_class(**self._pe_args, lfsr_seed=lfsr_seed)
            described(self._model)  # of the PEs, never elaborated itself
            self._grid = self.random_source()
            self._seeds = [[int(s) for s in row] for row in self._grid.seeds]
            mac = self._model
            shapes = dict(cols=self._cols, mode_bits=mac.mode_bits)
            scales = {"scale_bits": SCALE_BITS} if self._mx else {}
            super().__init__(
                {
                    INPUT: In(
                        input_signature(rows=self._rows, a_bits=mac.a_bits, b_bits=mac.b_bits, **shapes, **scales)
                    ),
                    OUTPUT: Out(output_signature(tile_rows=self.tile_rows, acc_bits=mac.acc_bits, **shapes)),
                }
            )

    @staticmethod
    def _mx_pe_args(args: dict) -> dict:
        """An MX array's PE parameters (:class:`~hls_gen.mx_mac.MXMAC`), what it does not take refused in a line."""
        if args["product_format"] is not None:
            product = args["product_format"]
            raise ValueError(
                f"an MX array sums each block's products exactly: it takes no product format, not {product}"
            )
        if args["dsp"] != "inferred":
            raise ValueError(f"an MX array's PEs use inferred multipliers ('inferred'), not dsp {args['dsp']!r}")
        if args["product_rounding"] != "nearest":
            raise ValueError(
                f"an MX array rounds no products (its elements come quantized), not product rounding "
                f"{args['product_rounding']!r}"
            )
        drop = ("product_format", "product_rounding", "dsp")
        return {k: v for k, v in args.items() if k not in drop}

    @property
    def mx(self) -> bool:
        """The PEs are MX block dot-product units (:class:`~hls_gen.mx_mac.MXMAC`)."""
        return self._mx

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def interleave(self) -> int:
        """Sums each PE holds in turn."""
        return self._model.interleave

    @property
    def tile_rows(self) -> int:
        """Rows of a job's output tile: ``rows * interleave``."""
        return self._rows * self._model.interleave

    @property
    def pe(self) -> MAC | MXMAC:
        """A processing element with the array's parameters (PE (0, 0)): formats, roundings, pipeline."""
        return self._model

    @property
    def lfsr(self) -> LFSRSpec:
        """The base LFSR (width, seed, taps) of the array's random stream."""
        return self._lfsr

    @property
    def pe_seeds(self) -> list[list[int]]:
        """Reset state of PE ``(r, c)``'s LFSR, ``pe_seeds[r][c]``."""
        return [list(row) for row in self._seeds]

    @property
    def latency(self) -> int:
        """Cycles from accepting a job's last beat to ``out.valid`` (when the buffer is free).

        The ``interleave`` flush steps follow the last beat, the last of them
        crosses ``rows - 1 + cols - 1`` PEs and the PE's ``pipeline``
        registers, then the PE's :data:`~hls_gen.spec.BUFFER_STAGES` load
        registers, and the buffer takes it a cycle later.
        """
        return array_latency(self._rows, self._cols, self._model.interleave, self._model.pipeline)

    def random_source(self) -> LFSRGrid:
        """A fresh :class:`mpsim.randbits.LFSRGrid` in the array's reset state (``seed=`` for ``qmatmul``)."""
        return LFSRGrid(
            self._lfsr.width,
            self._lfsr.seed,
            self._lfsr.taps,
            rows=self._rows,
            cols=self._cols,
            interleave=self._model.interleave,
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        mac = self._model
        rows, cols, sums, tile_rows = self._rows, self._cols, mac.interleave, self.tile_rows
        inp, out = getattr(self, INPUT), getattr(self, OUTPUT)  # the streams (hls_gen.ports)

        def ring(name: str) -> Signal | None:
            """A count modulo ``interleave``; None for interleave 1 (one state: no bits, no register)."""
            return Signal(range(sums), name=name) if sums > 1 else None

        def at(counter: Signal | None, value: int) -> Value:
            """``counter == value`` (always true for a count of one state)."""
            return C(1) if counter is None else counter == value

        def advance(counter: Signal | None) -> None:
            if counter is not None:
                m.d.sync += counter.eq(_next(counter, sums))

        def forward(value: Value, name: str) -> Signal:
            """A register that passes operand bits on to the next PE (no reset: without a beat they are ignored)."""
            reg = Signal(len(value), name=name, reset_less=True)
            m.d.sync += reg.eq(value)
            return reg

        # The input: beat t*L + l (sum l of step t) enters at ring turn l. A job's tile stays in the PEs' loops
        # after its last beat (bubbles keep finished sums) until the output buffer is free; then L flush steps,
        # one per sum in turn order, carry it out. The next job's beats ride on those flush steps (a flush reads
        # the sum its step meets before the beat begins the slot's next sum) and may not enter before them.
        turn = ring("turn")  # the ring turn entering PE (0, 0) this cycle
        due = ring("due")  # the sum index of the next beat: it enters at that turn
        pending = Signal(name="pending")  # a finished job's tile waits in the PEs for its flush
        flushing = Signal(name="flushing")  # its flush steps are entering, one per turn from turn 0
        reserved = Signal(name="buffer_reserved")  # from a tile's first flush step until its last row leaves
        flush = Signal(name="flush")
        m.d.comb += [
            flush.eq(pending & (flushing | (at(turn, 0) & ~reserved))),
            inp.ready.eq((C(1) if turn is None else turn == due) & (~pending | flush)),
        ]
        beat = inp.valid & inp.ready
        control = Signal(step_control(mac.mode_bits), name="control")  # what enters PE (0, 0) with the step
        m.d.comb += [control.valid.eq(beat), control.last.eq(inp.payload.last), control.flush.eq(flush)]
        if mac.mode_bits:
            m.d.comb += control.mode.eq(inp.payload.mode)
        advance(turn)
        with m.If(beat):
            advance(due)
        with m.If(flush):
            m.d.sync += reserved.eq(1)
            if sums > 1:
                m.d.sync += flushing.eq(~at(turn, sums - 1))
            with m.If(at(turn, sums - 1)):
                m.d.sync += pending.eq(0)
        with m.If(beat & inp.payload.last & at(due, sums - 1)):  # a job's final beat (it may ride on the last flush)
            m.d.sync += pending.eq(1)

        # Skew: row r's A element and control enter column 0 r cycles late, column c's B element c cycles late;
        # A and the control move right, B down, one register per PE: PE (r, c) sees step n at cycle n + r + c.
        controls = [control]
        for r in range(1, rows):
            controls.append(registered(m, None, controls[-1], f"control_skew_{r}", keep=True))
        # Each operand is decoded once, where it enters (not in every PE it passes): the registers carry its
        # unpacked fields, and only the multiplier lies between a PE's operand registers and its product.
        # A multi-mode array decodes each operand in its job's format (the payload's mode) into one layout wide
        # enough for every mode.
        mode = inp.payload.mode if mac.mode_bits else None

        def edge(which: str) -> list[Value]:
            """Element ``i`` of the payload's ``a`` or ``b`` decoded and delayed by ``i`` skew registers (an MX
            array's with its block scale above it)."""
            formats = mac.operand_formats(which)
            scales = getattr(inp.payload, f"{which}_scale") if self._mx else None
            skewed: list[Value] = []
            for i, element in enumerate(getattr(inp.payload, which)):
                name = f"{which}_{i}"
                decoded = mac.decode(m, which, element, mode, name)
                value = Value.cast(unpacked_view(m, decoded, formats, name))
                if scales is not None:
                    value = Cat(value, scales[i])
                for k in range(i):
                    value = forward(value, f"{which}_skew_{i}_{k}")
                skewed.append(value)
            return skewed

        a_in, b_in = edge("a"), edge("b")
        # With several sums and several PE rows, each slot of a PE's buffer chain loads under a clock enable of its
        # own (below).
        slot_enables = sums > 1 and rows > 1
        flushes: list[list[tuple[Value, Value]]] = []  # PE (r, c)'s flush and flush_sum
        last_mode: Value | None = None  # the mode of the sums PE (R-1, C-1) flushes
        for r in range(rows):
            a, step = a_in[r], controls[r]
            flushes.append([])
            for c in range(cols):
                b = b_in[c]
                pe = self._pe_class(**self._pe_args, lfsr_seed=self._seeds[r][c], decoded=True)
                m.submodules[f"pe_{r}_{c}"] = pe
                if isinstance(pe, MXMAC):  # the element's unpacked fields, its block scale above them
                    na, nb = len(Value.cast(pe.a)), len(Value.cast(pe.b))
                    m.d.comb += [pe.en.eq(1), pe.step.eq(step), pe.a.eq(a[:na]), pe.b.eq(b[:nb])]
                    m.d.comb += [pe.a_scale.eq(a[na:]), pe.b_scale.eq(b[nb:])]
                else:
                    m.d.comb += [pe.en.eq(1), pe.step.eq(step), pe.a.eq(a), pe.b.eq(b)]
                # BUFFER_STAGES registers between each PE and its place in the buffer (hls_gen.spec says why). The
                # load registers are kept apart: the first has the same input as the next PE's control register.
                # With slot enables the slots take the last load stage as registers of their own (below); the last
                # PE's is still needed to count the tile in.
                load, flushed, flushed_mode = pe.flush, pe.flush_sum, pe.flush_mode if mac.mode_bits else None
                for i in range(BUFFER_STAGES):
                    before = load
                    if i < BUFFER_STAGES - 1 or not slot_enables or (r, c) == (rows - 1, cols - 1):
                        load = registered(m, None, load, f"buffer_load_{r}_{c}_{i}", keep=True)
                    flushed = forward(flushed, f"buffer_in_{r}_{c}_{i}")
                    if flushed_mode is not None:
                        flushed_mode = forward(flushed_mode, f"buffer_in_mode_{r}_{c}_{i}")
                flushes[-1].append((load, flushed, before))
                if flushed_mode is not None:
                    last_mode = flushed_mode
                if c < cols - 1:
                    a, step = (
                        forward(a, f"a_{r}_{c}_right"),
                        registered(m, None, step, f"control_{r}_{c}_right", keep=True),
                    )
                if r < rows - 1:
                    b_in[c] = forward(b, f"b_{r}_{c}_down")

        # The output buffer: each PE's L sums in a shift register of its own (position 0 leaves first), loaded by
        # its own flush steps (after L of them sum l is at position l). Tile row l*rows + r is position 0 of PE
        # row r once row r's chains have shifted l times: a row's chains shift by one after the row is read, so
        # the output is a rows-to-1 choice of position 0 and no register needs more than its clock enable (a
        # choice among all rows*L tile rows cost about 190 LUT4 per PE at L = 8). Loading and reading both
        # shift toward position 0, one at a time: a tile loads only after the previous one has left.
        buffer = [
            [[Signal(mac.acc_bits, name=f"buffer_{r}_{c}_{l}") for l in range(sums)] for c in range(cols)]
            for r in range(rows)
        ]
        full = Signal(name="buffer_full")
        row = Signal(range(max(tile_rows, 2)), name="row")
        # the PE row of the output row (with one sum per PE, the row itself)
        part = None if rows == 1 else row if sums == 1 else Signal(range(rows), name="row_part")
        take = Signal(name="take")
        last_flush, _, _ = flushes[-1][-1]
        taken = ring("taken")  # sums PE (R-1, C-1) has flushed of the incoming tile
        tile_in = Signal(name="tile_in")  # the tile's last sum is flushed: the buffer is full from the next cycle
        m.d.comb += tile_in.eq(last_flush & at(taken, sums - 1))
        reads = _row_reads(m, rows, sums, tile_in, out.ready) if slot_enables else []
        # A read's shift takes effect shift_stages + 1 cycles later; row r is read again rows cycles later. Three
        # stages where the rows leave time: with two, the 8 x 8 e5m6 stochastic:8 array's critical path was a row's
        # read state (by the output) to a PE's first shift register (9.9 of 11.1 ns routing, 90.0 MHz).
        shift_stages = max(1, min(SHIFT_STAGES, rows - 1))
        for r in range(rows):
            for c in range(cols):
                pe_flush, pe_sum, pe_flush_before = flushes[r][c]
                if slot_enables:  # registered: row r is read again rows cycles later
                    # Each PE's own registers (kept apart), set from its row's copy of the read state: one register
                    # per row driving cols * L sums, or one decode of the central row counter driving 64 PEs' shift
                    # registers, crossed the device in a cycle (the 8 x 8 array's critical path, 92.9 and 77.5 MHz).
                    # Like the loads, the shift crosses several registers (shift_stages, the last the slots' enables)
                    # where the row's next read leaves time for it (the head must have shifted by then): with one,
                    # the 8 x 8 e5m6 stochastic:8 array's critical path was that register by the read state to the
                    # buffer's clock enable across the device (10.3 ns of routing, 90.4 MHz).
                    shift = reads[r]
                    for i in range(shift_stages - 1):
                        shift = registered(m, None, shift, f"buffer_shift_{r}_{c}_{i}", keep=True)
                    # Each slot's clock enable is a kept register of its own (load or shift, one stage early), so
                    # that no net drives the L x acc_bits flip-flops of a buffer whose slots nextpnr spreads from
                    # the PE to the output multiplexer: with one enable per PE, that net crossed the device (the 8 x 8
                    # arrays' critical path, 82-91 MHz).
                    enables = [
                        registered(m, None, pe_flush_before | shift, f"buffer_enable_{r}_{c}_{l}", keep=True)
                        for l in range(sums)
                    ]
                    for l in range(sums):
                        with m.If(enables[l]):
                            m.d.sync += buffer[r][c][l].eq(buffer[r][c][l + 1] if l < sums - 1 else pe_sum)
                else:
                    # one PE row is read every cycle: the shift follows the read at once; with one sum per PE
                    # nothing shifts (each tile loads position 0 anew)
                    shift = take if sums > 1 else C(0)
                    with m.If(pe_flush | shift):
                        m.d.sync += [buffer[r][c][l].eq(buffer[r][c][l + 1]) for l in range(sums - 1)]
                        m.d.sync += buffer[r][c][-1].eq(pe_sum)
        if mac.mode_bits:  # a job's sums share its mode: the last PE's flushed sum gives the tile's
            tile_mode = Signal(mac.mode_bits, name="buffer_mode")
            with m.If(last_flush):
                m.d.sync += tile_mode.eq(last_mode)
            m.d.comb += out.payload.mode.eq(tile_mode)
        with m.If(last_flush):
            advance(taken)
        with m.If(tile_in):
            m.d.sync += full.eq(1)
        m.d.comb += [out.valid.eq(full), out.payload.row.eq(row), out.payload.last.eq(row == tile_rows - 1)]
        # The row on the output goes through a signal of its own, not straight into the payload: Yosys writes a
        # port that logic drives in part as a reg whose other fields get "always @*" blocks of their own, which
        # Icarus runs only once their inputs change (row and mode would stay X until then).
        shown = Signal(data.ArrayLayout(mac.acc_bits, cols), name="shown_row")
        heads = [Cat(*(buffer[r][c][0] for c in range(cols))) for r in range(rows)]
        m.d.comb += shown.eq(heads[0] if part is None else select_value(m, part, heads, "out_head"))
        m.d.comb += out.payload.data.eq(shown)
        m.d.comb += take.eq(full & out.ready)
        with m.If(take):
            if part is not None and sums > 1:
                m.d.sync += part.eq(_next(part, rows))
            with m.If(row == tile_rows - 1):
                m.d.sync += [full.eq(0), row.eq(0), reserved.eq(0)]
            with m.Else():
                m.d.sync += row.eq(row + 1)
        return m
