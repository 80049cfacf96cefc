"""Where a PE's significand product is computed: Yosys' inferred multiplier, or a vendor DSP block instantiated.

``"inferred"`` writes ``a.sig * b.sig`` and leaves the mapping to the
synthesis tool. Yosys' ECP5 flow maps it to a MULT18X18D but leaves the
block's own registers unused, so every product crosses the routing to the
DSP column and back inside one cycle (see docs/hardware.md, "DSP blocks").
``"ecp5"`` instantiates the MULT18X18D itself with its input registers
(``REG_INPUTA``/``REG_INPUTB``) and its output register (``REG_OUTPUT``)
clocked: those are exactly the operand and product registers of a PE built
with ``pipeline=2``, so the schedule, the latency and the bits do not
change; only the registers move into the block.

A design with the instance simulates with :data:`SIM_MODELS` (a behavioural
model of the part of MULT18X18D it uses: unsigned operands, input and output
registers, synchronous reset); the Amaranth simulator cannot run an
instance, so Amaranth-level tests build the inferred multiplier.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Signal, Value

from hls_gen.array_size import DSP_BLOCKS
from hls_gen.spec import MAX_OPERAND_BITS

__all__ = ["ECP5_MULT_BITS", "SIM_MODELS", "check_dsp", "mult18x18d"]

#: Operand width of one MULT18X18D (unsigned use: significands up to 18 bits).
ECP5_MULT_BITS = 18
#: Verilog models a simulator needs for the instantiated blocks, by ``dsp`` choice.
SIM_MODELS: dict[str, tuple[Path, ...]] = {
    "inferred": (),
    "ecp5": (Path(__file__).parent / "verilog" / "MULT18X18D.v",),
}
# Every operand format's significand (sign and one exponent bit off its width) fits one block's port.
assert MAX_OPERAND_BITS - 1 <= ECP5_MULT_BITS


def check_dsp(dsp: object, pipeline: int, fused: bool) -> str:
    """``dsp`` checked against the PE it would build (one line naming the bad value), returned."""
    if not isinstance(dsp, str) or dsp not in DSP_BLOCKS:
        raise ValueError(f"dsp must be one of {', '.join(DSP_BLOCKS)}, not {dsp!r}")
    if dsp == "inferred":
        return dsp
    if pipeline < 2:
        raise ValueError(
            f"dsp 'ecp5' uses the MULT18X18D's input and output registers, which are pipeline 2's operand and "
            f"product registers: give pipeline 2, not {pipeline}"
        )
    if not fused:
        raise ValueError(
            "dsp 'ecp5' registers the exact product in the block; a rounded (unfused) product is rounded before its "
            "register, so it takes dsp 'inferred'"
        )
    return dsp


def mult18x18d(m: Module, a: Value, b: Value, en: Value, name: str) -> Value:
    """``a * b`` (unsigned) from a MULT18X18D with input and output registers: two enabled cycles late.

    Clock, clock enable (``en``) and synchronous reset (the domain's) are the
    ones of the fabric registers it replaces, which reset to zero as the
    block's registers do.
    """
    width = len(a) + len(b)
    p = Signal(36, name=f"{name}_block_p")
    pins: dict[str, object] = {}
    for i in range(ECP5_MULT_BITS):
        pins[f"i_A{i}"] = a[i] if i < len(a) else Const(0, 1)
        pins[f"i_B{i}"] = b[i] if i < len(b) else Const(0, 1)
        pins[f"i_C{i}"] = Const(0, 1)
    for i in range(36):
        pins[f"o_P{i}"] = p[i]
    registers = {}
    for reg in ("INPUTA", "INPUTB", "OUTPUT"):
        registers |= {f"p_REG_{reg}_CLK": "CLK0", f"p_REG_{reg}_CE": "CE0", f"p_REG_{reg}_RST": "RST0"}
    for reg in ("INPUTC", "PIPELINE"):
        registers |= {f"p_REG_{reg}_CLK": "NONE"}
    m.submodules[f"{name}_block"] = Instance(
        "MULT18X18D",
        **registers,
        p_GSR="DISABLED",
        p_RESETMODE="SYNC",
        p_SOURCEB_MODE="B_SHIFT",
        p_MULT_BYPASS="DISABLED",
        i_SIGNEDA=Const(0, 1),
        i_SIGNEDB=Const(0, 1),
        i_SOURCEA=Const(0, 1),
        i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal(),
        i_CE0=en,
        i_RST0=ResetSignal(),
        **{f"i_{pin}{i}": Const(0, 1) for pin in ("CLK", "CE", "RST") for i in (1, 2, 3)},
        **pins,
    )
    return p[:width]
