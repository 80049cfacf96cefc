"""The hardware random-bit source: :class:`mpsim.randbits.LFSR` in gates."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hls_gen.spec import check_int, checking, lfsr_spec
from mpsim.randbits import LFSRSpec

__all__ = ["LFSR"]

#: Most LFSR steps one cycle may take (an unrolled XOR network per step).
MAX_STEPS = 256


class LFSR(wiring.Component):
    """A right-shifting Galois LFSR that takes ``steps`` steps per enabled cycle.

    Bit for bit :class:`mpsim.randbits.LFSR`: one step is ``out = s & 1;
    s >>= 1; if out: s ^= mask`` (``mask`` from the taps, bit ``t-1`` per tap
    ``t``). ``bits`` shows the ``steps`` bits the next enabled cycle shifts
    out, the first one as the most significant, so ``bits`` read in the cycles
    where ``en`` is high are ``mpsim.randbits.LFSR(width, seed).draw(n, steps)``.
    The state resets (synchronous ``sync`` reset) to ``seed``.

    Parameters
    ----------
    width : int
        State width, 3..32 with the default taps.
    seed : int
        Reset state, 1..2**width-1.
    steps : int
        Steps per enabled cycle (random bits per cycle), 1..256.
    taps : tuple of int or None
        Tap positions (1-indexed, including ``width``); None takes
        :data:`mpsim.randbits.LFSR_TAPS`.
    choices : tuple of int or None
        Step counts an enabled cycle may take, each 0..``steps``, picked by
        ``choice`` (a multi-mode MAC steps as many bits as its step's mode
        rounds with); None: always ``steps``.

    Members
    -------
    en : In(1)
        Take ``steps`` steps (``choices[choice]`` with choices) at the next clock edge.
    choice : In(range(len(choices)))
        Which step count the next enabled cycle takes (only with ``choices``).
    bits : Out(steps)
        The bits of the next ``steps`` steps, first step in the most
        significant bit (a cycle of ``n`` steps uses the top ``n``).
    state : Out(width)
        The current state.
    """

    def __init__(
        self,
        *,
        width: int = 32,
        seed: int = 1,
        steps: int = 1,
        taps: tuple[int, ...] | None = None,
        choices: tuple[int, ...] | None = None,
    ) -> None:
        with checking(self):
            self._spec = lfsr_spec(width, seed, taps)
            self._steps = check_int(steps, "LFSR steps per cycle", 1, MAX_STEPS)
            members: dict[str, wiring.Member] = {"en": In(1)}
            if choices is not None:
                choices = tuple(check_int(c, "LFSR step choice", 0, self._steps) for c in choices)
                if not choices:
                    raise ValueError("LFSR step choices must not be empty")
                members["choice"] = In(range(max(len(choices), 2)))
            self._choices = choices
            members.update({"bits": Out(self._steps), "state": Out(width)})
            super().__init__(members)

    @property
    def spec(self) -> LFSRSpec:
        """The mpsim description of this LFSR (width, seed, taps)."""
        return self._spec

    @property
    def width(self) -> int:
        return self._spec.width

    @property
    def seed(self) -> int:
        return self._spec.seed

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def choices(self) -> tuple[int, ...] | None:
        """Step counts selectable per cycle (None: always :attr:`steps`)."""
        return self._choices

    def elaborate(self, platform: object) -> Module:
        m = Module()
        reg = Signal(self.width, init=self.seed, name="lfsr_state")
        # Unroll the steps symbolically over GF(2): every bit is the XOR of a set of
        # state bits (a bit mask), so each output and next-state bit is one XOR reduction.
        mask = self._spec.mask
        state = [1 << i for i in range(self.width)]  # bit i of the state, as a mask of reg bits
        outs = []
        after = [state]  # after[n]: the state after n steps
        for _ in range(self._steps):
            bit = state[0]
            outs.append(bit)
            state = [
                (state[i + 1] if i + 1 < self.width else 0) ^ (bit if (mask >> i) & 1 else 0) for i in range(self.width)
            ]
            after.append(state)

        def xor_of(select: int) -> Value:
            return (reg & select).xor() if select else Const(0, 1)

        m.d.comb += [self.state.eq(reg), self.bits.eq(Cat(*(xor_of(b) for b in reversed(outs))))]
        with m.If(self.en):
            if self._choices is None:
                m.d.sync += reg.eq(Cat(*(xor_of(b) for b in state)))
            else:
                last = len(self._choices) - 1
                whole = len(self._choices) == 1 << last.bit_length()  # every code of the choice field is a choice
                with m.Switch(self.choice):
                    for i, n in enumerate(self._choices):
                        # The last choice takes the codes no mode has too: a case statement that covers every code
                        # (Verilator -Wall: CASEINCOMPLETE for 3 modes); with 2**k choices the cases are unchanged.
                        with m.Case(i) if i < last or whole else m.Default():
                            m.d.sync += reg.eq(Cat(*(xor_of(b) for b in after[n])))
        return m
