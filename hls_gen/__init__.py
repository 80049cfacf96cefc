"""hls_gen: Amaranth floating-point units and MAC arrays, bit-exact with mpsim.

The hardware takes mpsim's format and rounding specs (:class:`mpsim.FloatFormat`,
``"nearest"`` / ``"stochastic:K"``, the LFSR of :mod:`mpsim.randbits`) and
computes what :func:`mpsim.qmatmul` computes in the sequential order, bit for
bit. Blocks (all ``amaranth.lib.wiring.Component``):

* :class:`LFSR` -- the random-bit source, seeded at reset;
* :class:`FPMultiplier` -- any two operand formats, exact or rounded product;
* :class:`FPAdder`, :class:`Accumulator` -- rounded sums in an accumulator format;
* :class:`MAC` -- fused or unfused multiply-accumulate (one processing element);
* :class:`MACArray` -- an R x C output-stationary systolic array with valid/ready streams,
  one arithmetic or several modes chosen per job (:class:`ArithMode`,
  :func:`hls_gen.modes.training_modes`).

:class:`ArrayConfig` and :func:`hls_gen.emit.emit` write Verilog plus a JSON manifest
(``mpsim emit``), the typed :class:`ArrayManifest` that :mod:`sim` reads back;
``python -m hls_gen.regen`` rewrites ``rtl/``.
"""

from __future__ import annotations

from types import ModuleType

__all__ = [
    "LFSR",
    "LINT_WAIVERS",
    "MAC",
    "Accumulator",
    "ArithMode",
    "ArrayConfig",
    "ArrayManifest",
    "FPAdder",
    "FPMultiplier",
    "MACArray",
    "load_manifest",
]


def _home(name: str) -> ModuleType | None:
    """The module that defines public ``name``."""
    if name in ("Accumulator", "FPAdder"):
        from hls_gen import accumulator

        return accumulator
    if name == "MACArray":
        from hls_gen import array

        return array
    if name in ("LINT_WAIVERS", "ArrayConfig", "load_manifest"):
        from hls_gen import emit

        return emit
    if name == "ArithMode":
        from hls_gen import modes

        return modes
    if name == "ArrayManifest":
        from hls_gen import manifest

        return manifest
    if name == "LFSR":
        from hls_gen import lfsr

        return lfsr
    if name == "MAC":
        from hls_gen import mac

        return mac
    if name == "FPMultiplier":
        from hls_gen import multiplier

        return multiplier
    return None


def __getattr__(name: str) -> object:
    # Amaranth (the hw extra) loads when a block is first used, not with the package: the mpsim command line
    # registers emit, cost and nas without it, and says which extra to install when one runs.
    module = _home(name)
    if module is None:
        raise AttributeError(f"module 'hls_gen' has no attribute {name!r}")
    return getattr(module, name)
