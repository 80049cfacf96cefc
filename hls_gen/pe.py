"""What both processing elements share: modes, LFSR, pipeline, interleave, operands and the accumulate loop's ports.

:class:`hls_gen.mac.MAC` (element formats) and :class:`hls_gen.mx_mac.MXMAC`
(MX blocks) differ in what lies before the accumulate loop; their ports,
mode bookkeeping, operand decoding and latency are this class's.
"""

from __future__ import annotations

from amaranth.hdl import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hls_gen.arith import Unpacked, select_unpacked, unpack, unpack_modes, unpacked_layout
from hls_gen.modes import HwMode, mode_bits
from hls_gen.spec import loop_latency
from hls_gen.step import step_control
from mpsim.formats import FloatFormat
from mpsim.randbits import LFSRSpec

__all__ = ["PE"]


class PE(wiring.Component):
    """A processing element's common part; subclasses check their modes and build what feeds the loop.

    Ports: ``en``, ``step`` (with ``mode`` when there are several modes), ``a``, ``b``, the subclass's
    ``inputs``, then ``acc``, ``done``, ``flush``, ``flush_mode`` (several modes only) and ``flush_sum``; see
    :class:`hls_gen.mac.MAC` for what each carries.
    """

    #: The unit's name in messages ("MAC", "MX MAC").
    kind = "PE"

    def __init__(
        self,
        modes: tuple[HwMode, ...],
        lfsr: LFSRSpec,
        *,
        pipeline: int,
        interleave: int,
        decoded: bool,
        inputs: dict[str, wiring.Member] | None = None,
    ) -> None:
        if not isinstance(decoded, bool):
            raise TypeError(f"{self.kind} decoded must be a bool, not {decoded!r}")
        self._modes = modes
        self._lfsr = lfsr
        self._pipeline = pipeline
        self._interleave = interleave
        self._decoded = decoded
        members: dict[str, wiring.Member] = {
            "en": In(1),
            "step": In(step_control(self.mode_bits)),
            "a": In(self.operand_shape("a")),
            "b": In(self.operand_shape("b")),
            **(inputs or {}),
            "acc": Out(self.acc_bits),
            "done": Out(1),
            "flush": Out(1),
        }
        if self.mode_bits:
            members["flush_mode"] = Out(self.mode_bits)
        members["flush_sum"] = Out(self.acc_bits)
        super().__init__(members)

    @property
    def modes(self) -> tuple[HwMode, ...]:
        """The arithmetic modes, by code (one for a single-mode unit)."""
        return self._modes

    @property
    def mode_bits(self) -> int:
        """Width of the mode field (0: a single mode, no ``step.mode``)."""
        return mode_bits(len(self._modes))

    def _single(self) -> HwMode:
        if len(self._modes) != 1:
            raise ValueError(f"this {self.kind} has {len(self._modes)} modes; read its formats per mode from .modes")
        return self._modes[0]

    @property
    def a_format(self) -> FloatFormat:
        """A's (element) format."""
        return self._single().a_format

    @property
    def b_format(self) -> FloatFormat:
        """B's (element) format."""
        return self._single().b_format

    @property
    def acc_format(self) -> FloatFormat:
        return self._single().acc_format

    @property
    def rand_bits(self) -> int | None:
        """Random bits of the accumulation rounding (None: nearest)."""
        return self._single().rand_bits

    @property
    def lfsr(self) -> LFSRSpec:
        return self._lfsr

    @property
    def lfsr_steps(self) -> int:
        """LFSR steps per accumulated term, the most of any mode (0: no LFSR)."""
        return max(x.lfsr_steps for x in self._modes)

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def interleave(self) -> int:
        """Sums the unit holds in turn."""
        return self._interleave

    @property
    def decoded(self) -> bool:
        """Operands arrive unpacked."""
        return self._decoded

    @property
    def latency(self) -> int:
        """Enabled cycles from accepting the step marked ``last`` to ``done``."""
        return loop_latency(self._pipeline, self._interleave)

    def operand_formats(self, which: str) -> tuple[FloatFormat, ...]:
        """The (element) formats operand ``which`` (``"a"`` or ``"b"``) takes, by mode code."""
        return tuple(x.a_format if which == "a" else x.b_format for x in self._modes)

    def operand_shape(self, which: str) -> object:
        """The shape of operand ``which``: its widest bit pattern, or (``decoded``) the unpacked layout."""
        formats = self.operand_formats(which)
        return unpacked_layout(formats) if self._decoded else max(f.bits for f in formats)

    @property
    def a_bits(self) -> int:
        """Width of operand ``a``'s bit pattern (the widest mode's)."""
        return max(f.bits for f in self.operand_formats("a"))

    @property
    def b_bits(self) -> int:
        """Width of operand ``b``'s bit pattern (the widest mode's)."""
        return max(f.bits for f in self.operand_formats("b"))

    @property
    def acc_bits(self) -> int:
        """Width of the accumulator (the widest mode's)."""
        return max(x.acc_format.bits for x in self._modes)

    def decode(self, m: Module, which: str, code: Value, select: Value | None, name: str) -> Unpacked:
        """Operand ``which``'s bit pattern unpacked in the format of mode ``select`` (each format's value in the
        low bits), as one :class:`~hls_gen.arith.Unpacked` wide enough for every mode (an array's edge calls
        this)."""
        formats = self.operand_formats(which)
        if select is not None and len(set(formats)) > 1:
            return unpack_modes(m, code, formats, select, name)
        unpacked = {
            f: unpack(m, code[: f.bits], f, f"{name}_{f.label}" if len(formats) > 1 else name)
            for f in dict.fromkeys(formats)
        }
        return select_unpacked(m, select, [unpacked[f] for f in formats], name)  # type: ignore[arg-type]
