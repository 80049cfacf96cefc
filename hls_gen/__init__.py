"""hls_gen: Amaranth floating-point units and MAC arrays, bit-exact with mpsim.

The hardware takes mpsim's format and rounding specs (:class:`mpsim.FloatFormat`,
``"nearest"`` / ``"stochastic:K"``, the LFSR of :mod:`mpsim.randbits`) and
computes what :func:`mpsim.qmatmul` computes in the sequential order, bit for
bit. Blocks (all ``amaranth.lib.wiring.Component``):

* :class:`LFSR` -- the random-bit source, seeded at reset;
* :class:`FPMultiplier` -- any two operand formats, exact or rounded product;
* :class:`FPAdder`, :class:`Accumulator` -- rounded sums in an accumulator format;
* :class:`MAC` -- fused or unfused multiply-accumulate (one processing element);
* :class:`MACArray` -- an R x C output-stationary array with valid/ready streams.

:class:`ArrayConfig` and :func:`emit` write Verilog plus a JSON manifest
(``mpsim emit``); ``python -m hls_gen.regen`` rewrites ``rtl/``.
"""

from hls_gen.accumulator import Accumulator, FPAdder
from hls_gen.array import MACArray
from hls_gen.emit import LINT_WAIVERS, ArrayConfig, emit, load_manifest
from hls_gen.lfsr import LFSR
from hls_gen.mac import MAC
from hls_gen.multiplier import FPMultiplier

__all__ = [
    "LFSR",
    "LINT_WAIVERS",
    "MAC",
    "Accumulator",
    "ArrayConfig",
    "FPAdder",
    "FPMultiplier",
    "MACArray",
    "emit",
    "load_manifest",
]
