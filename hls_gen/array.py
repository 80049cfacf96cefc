"""Output-stationary MAC array with valid/ready streams in and out."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hls_gen.mac import MAC
from hls_gen.modes import ArithMode
from hls_gen.spec import MAX_ARRAY_SIDE, check_int, checking, described, lfsr_spec
from mpsim.formats import FloatFormat
from mpsim.randbits import LFSRGrid, LFSRSpec

__all__ = ["MACArray"]


def _next(counter: Signal, n: int) -> Value:
    """``counter + 1`` modulo ``n``."""
    return Mux(counter == n - 1, 0, counter + 1)


class MACArray(wiring.Component):
    """``rows x cols`` processing elements computing one output tile ``C = A @ B``, output-stationary.

    A *job* is a tile product: ``A`` is ``rows x K``, ``B`` is ``K x cols``,
    ``K >= 1``. Beat ``t`` of the input stream carries column ``t`` of ``A``
    (``in_a``, element ``r`` in bits ``[r*a_bits, (r+1)*a_bits)``) and row ``t``
    of ``B`` (``in_b``, element ``c`` likewise); ``in_last`` marks beat
    ``K-1``. Operands are broadcast along rows and columns; PE ``(r, c)`` is a
    :class:`~hls_gen.mac.MAC` that accumulates ``A[r, t] * B[t, c]`` in beat
    order starting from +0 (``mpsim.qmatmul``'s ``"sequential"`` order), so
    the tile is bit for bit ``mpsim.qmatmul(A, B, mul=product_format,
    acc=acc_format, rounding=..., mul_rounding=..., seed=LFSRGrid(lfsr_width,
    lfsr_seed, lfsr_taps, rows=rows, cols=cols))`` (a larger product tiled
    ``(batch, row tile, column tile)`` in C order, padded with zeros, gives
    that ``qmatmul`` of the whole product).

    A finished tile moves into an output buffer and leaves as ``rows`` beats,
    row ``r`` of ``C`` in beat ``r`` (``out_data``, element ``c`` in bits
    ``[c*acc_bits, (c+1)*acc_bits)``), ``out_last`` on the last row; the next
    job streams in meanwhile. ``in_ready`` drops only while a finished tile
    waits for the buffer. Both streams follow the usual rule: a beat moves in
    a cycle where ``valid`` and ``ready`` are both high. Reset (``rst``,
    synchronous) clears the accumulators, the buffer and the LFSRs (to their
    seeds).

    Parameters
    ----------
    a_format, b_format, acc_format, product_format, rounding, product_rounding, lfsr_width, lfsr_taps, pipeline
        As :class:`~hls_gen.mac.MAC`.
    lfsr_seed : int
        Seed of the array's random stream; PE ``(r, c)`` starts from
        ``LFSRGrid(...).seeds[r, c]`` (see :mod:`mpsim.randbits`).
    rows, cols : int
        Array size, 1..64 each.
    modes : sequence of hls_gen.modes.ArithMode or None
        Instead of one set of formats and roundings: 2..16 modes (as
        :class:`~hls_gen.mac.MAC`), the job's chosen by ``in_mode``. Jobs of
        different modes follow each other with no idle cycle; each job's
        tile is ``mpsim.qmatmul`` with its mode's arithmetic, the PEs'
        LFSRs carrying on from job to job (each steps its beat's mode's
        random bits).
    interleave : int
        Sums each PE holds in turn (its accumulate loop cut into that many
        register stages, up to 8; :func:`hls_gen.accumulator.accumulate`).
        A job's tile of ``C`` then has ``rows * interleave`` rows: beat
        ``t * interleave + l`` carries rows ``l*rows .. (l+1)*rows - 1`` of
        column ``t`` of ``A`` and row ``t`` of ``B``, ``in_last`` marks the
        ``interleave`` beats of step ``K-1``, and PE ``(r, c)`` computes row
        ``l*rows + r`` from the beats ``l``. The PEs never wait for input (a
        cycle without a beat holds every sum), so sums in flight always
        finish; inside a job, after a cycle without a beat, ``in_ready``
        stays low until the next beat's sum comes round again (at most
        ``interleave - 1`` cycles).

    Members
    -------
    in_valid : In(1)
        ``in_a``/``in_b`` carry a beat.
    in_ready : Out(1)
        The array takes the beat.
    in_last : In(1)
        The beat is the last (``K-1``) of its job.
    in_mode : In(mode_bits)
        The job's mode code, the same on each of its beats (only with ``modes``).
    in_a : In(rows * a_format.bits)
        Column ``t`` of ``A``: element ``r`` at bits ``r*a_bits``.
    in_b : In(cols * b_format.bits)
        Row ``t`` of ``B``: element ``c`` at bits ``c*b_bits``.
    out_valid : Out(1)
        ``out_data`` carries a row of a finished tile.
    out_ready : In(1)
        The reader takes the row.
    out_last : Out(1)
        The row is the tile's last (``rows - 1``).
    out_row : Out(range(max(rows, 2)))
        Index of the row on ``out_data`` (one bit wide for a single row).
    out_mode : Out(mode_bits)
        The mode code of the tile on ``out_data`` (only with ``modes``).
    out_data : Out(cols * acc_format.bits)
        Row ``out_row`` of the tile: element ``c`` at bits ``c*acc_bits``.
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
        rows: int = 4,
        cols: int = 4,
        pipeline: int = 0,
        interleave: int = 1,
        modes: tuple[ArithMode, ...] | None = None,
    ) -> None:
        with checking(self):
            self._rows = check_int(rows, "MAC array rows", 1, MAX_ARRAY_SIDE)
            self._cols = check_int(cols, "MAC array columns", 1, MAX_ARRAY_SIDE)
            self._lfsr = lfsr_spec(lfsr_width, lfsr_seed, lfsr_taps)
            # One MAC checks every remaining parameter; the PEs differ only in their seeds.
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
            )
            self._model = MAC(**self._pe_args, lfsr_seed=lfsr_seed)
            described(self._model)  # of the PEs, never elaborated itself
            self._grid = self.random_source()
            self._seeds = [[int(s) for s in row] for row in self._grid.seeds]
            mac = self._model
            members: dict[str, wiring.Member] = {"in_valid": In(1), "in_ready": Out(1), "in_last": In(1)}
            if mac.mode_bits:
                members["in_mode"] = In(mac.mode_bits)
            members.update(
                {
                    "in_a": In(self._rows * mac.a_bits),
                    "in_b": In(self._cols * mac.b_bits),
                    "out_valid": Out(1),
                    "out_ready": In(1),
                    "out_last": Out(1),
                    "out_row": Out(range(max(self.tile_rows, 2))),
                }
            )
            if mac.mode_bits:
                members["out_mode"] = Out(mac.mode_bits)
            members["out_data"] = Out(self._cols * mac.acc_bits)
            super().__init__(members)

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
    def pe(self) -> MAC:
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
        """Cycles from accepting a job's last beat to ``out_valid`` (when the buffer is free)."""
        return self._model.latency + 1

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
        sums, tile_rows = mac.interleave, self.tile_rows
        a_bits, b_bits, acc_bits = mac.a_bits, mac.b_bits, mac.acc_bits
        en = Signal(name="advance")
        beat = Signal(name="beat")  # a beat enters the PEs this cycle
        full = Signal(name="buffer_full")
        row = Signal(range(max(tile_rows, 2)), name="row")
        pes = []
        for r in range(self._rows):
            for c in range(self._cols):
                pe = MAC(**self._pe_args, lfsr_seed=self._seeds[r][c])
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [
                    pe.en.eq(en),
                    pe.valid.eq(beat),
                    pe.last.eq(self.in_last),
                    pe.a.eq(self.in_a[r * a_bits : (r + 1) * a_bits]),
                    pe.b.eq(self.in_b[c * b_bits : (c + 1) * b_bits]),
                ]
                if mac.mode_bits:
                    m.d.comb += pe.mode.eq(self.in_mode)
                pes.append(pe)
        done = pes[0].done  # the PEs run in lockstep
        m.d.comb += en.eq(~(done & full))
        if sums == 1:
            m.d.comb += [self.in_ready.eq(en), beat.eq(self.in_valid)]  # an idle cycle is a bubble: sums hold
        else:
            # The PEs' loops turn every cycle (a bubble holds its sum), so the sums in flight always finish. Inside a
            # job, beat n belongs to the sum that reaches the loops' entry n cycles after the job's first: after a
            # gap the next beat waits for its sum to come round (at most interleave - 1 cycles).
            turn = Signal(range(sums), name="turn")  # which ring position is at the PEs' entry
            due = Signal(range(sums), name="due")  # the ring position the job's next beat belongs to
            step_beat = Signal(range(sums), name="step_beat")  # the beat's sum within its step
            in_job = Signal(name="in_job")
            m.d.comb += self.in_ready.eq(en & (~in_job | (turn == due)))
            m.d.comb += beat.eq(self.in_valid & self.in_ready)
            with m.If(en):
                m.d.sync += turn.eq(_next(turn, sums))
            with m.If(beat):
                m.d.sync += [
                    due.eq(_next(turn, sums)),
                    step_beat.eq(_next(step_beat, sums)),
                    in_job.eq(~(self.in_last & (step_beat == sums - 1))),
                ]
        buffer = [Signal(self._cols * acc_bits, name=f"buffer_row_{i}") for i in range(tile_rows)]
        buffer_mode = Signal(mac.mode_bits, name="buffer_mode")
        if mac.mode_bits:
            m.d.comb += self.out_mode.eq(buffer_mode)
        finished = [Cat(*(pes[r * self._cols + c].acc for c in range(self._cols))) for r in range(self._rows)]
        with m.If(done & en):  # en here implies the buffer is free
            if sums == 1:
                m.d.sync += full.eq(1)
            else:  # the PEs' sums finish one a cycle, in order: each shifts the buffer up by a PE row of the tile
                done_slot = Signal(range(sums), name="done_slot")
                m.d.sync += done_slot.eq(_next(done_slot, sums))
                with m.If(done_slot == sums - 1):
                    m.d.sync += full.eq(1)
                for i in range(tile_rows - self._rows):
                    m.d.sync += buffer[i].eq(buffer[i + self._rows])
            for r in range(self._rows):
                m.d.sync += buffer[tile_rows - self._rows + r].eq(finished[r])
            if mac.mode_bits:  # a job's sums share its mode
                m.d.sync += buffer_mode.eq(pes[0].acc_mode)
        m.d.comb += [self.out_valid.eq(full), self.out_row.eq(row), self.out_last.eq(row == tile_rows - 1)]
        with m.Switch(row):
            for i in range(tile_rows - 1):
                with m.Case(i):
                    m.d.comb += self.out_data.eq(buffer[i])
            with m.Default():  # the last row (the counter never goes beyond it)
                m.d.comb += self.out_data.eq(buffer[-1])
        with m.If(full & self.out_ready):
            with m.If(row == tile_rows - 1):
                m.d.sync += [full.eq(0), row.eq(0)]
            with m.Else():
                m.d.sync += row.eq(row + 1)
        return m
