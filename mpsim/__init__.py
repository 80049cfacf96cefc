"""mpsim: low-precision arithmetic emulation and accelerator co-design.

One format and rounding spec drives both the emulator and the generated
hardware, bit for bit, stochastic rounding included.
"""

from mpsim.formats import PRESETS, FixedFormat, FloatFormat, Format, parse_format
from mpsim.gemm import qmatmul
from mpsim.quantize import quantize
from mpsim.randbits import LFSR, CounterRNG
from mpsim.rounding import Rounding, RoundingMode, parse_rounding

__version__ = "0.1.0"

__all__ = [
    "LFSR",
    "PRESETS",
    "CounterRNG",
    "FixedFormat",
    "FloatFormat",
    "Format",
    "Rounding",
    "RoundingMode",
    "parse_format",
    "parse_rounding",
    "qmatmul",
    "quantize",
    "quantize_model",
    "quantize_ste",
]


def __getattr__(name: str) -> object:  # torch is imported only when its glue is used
    if name == "quantize_ste":
        from mpsim.autograd import quantize_ste

        return quantize_ste
    if name == "quantize_model":
        from mpsim.nn import quantize_model

        return quantize_model
    raise AttributeError(f"module 'mpsim' has no attribute {name!r}")
