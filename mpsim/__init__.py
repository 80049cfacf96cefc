"""mpsim: low-precision arithmetic emulation and accelerator co-design.

One format and rounding spec drives both the emulator and the generated
hardware, bit for bit, stochastic rounding included.

Layers, each importing only those below it: specs (:mod:`~mpsim.formats`,
:mod:`~mpsim.rounding`, :mod:`~mpsim.randbits`, :mod:`~mpsim.gemm_config`) ->
kernel parameters (:mod:`~mpsim.params`) -> Numba kernels
(:mod:`~mpsim.kernels`, :mod:`~mpsim.gemm_kernels`) -> the NumPy API
(:mod:`~mpsim.quantize`, :mod:`~mpsim.codec`, :mod:`~mpsim.gemm`) -> the torch
adapter (:mod:`~mpsim.torch_glue`, :mod:`~mpsim.autograd`, :mod:`mpsim.nn`,
:mod:`~mpsim.optim`) -> the front (:mod:`~mpsim.api`) and the applications
(:mod:`~mpsim.train`, :mod:`~mpsim.cli`).
"""

from mpsim import jit_cache

jit_cache.install()  # before any kernel is compiled or loaded from disk: see mpsim.jit_cache

from mpsim.api import qmatmul, quantize  # noqa: E402 - after the cache guard
from mpsim.codec import decode, encode  # noqa: E402
from mpsim.formats import PRESETS, FixedFormat, FloatFormat, Format, parse_format  # noqa: E402
from mpsim.gemm_config import GemmConfig  # noqa: E402
from mpsim.randbits import LFSR, CounterRNG  # noqa: E402
from mpsim.rounding import Rounding, RoundingMode, parse_rounding  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "LFSR",
    "PRESETS",
    "CounterRNG",
    "FixedFormat",
    "FloatFormat",
    "Format",
    "GemmConfig",
    "Rounding",
    "RoundingMode",
    "decode",
    "encode",
    "parse_format",
    "parse_rounding",
    "qmatmul",
    "quantize",
    "quantize_model",
    "quantize_ste",
]


def __getattr__(name: str) -> object:
    # torch takes seconds to import: its adapter loads on first use of a torch-only name.
    if name == "quantize_ste":
        from mpsim.autograd import quantize_ste

        return quantize_ste
    if name == "quantize_model":
        from mpsim.nn import quantize_model

        return quantize_model
    raise AttributeError(f"module 'mpsim' has no attribute {name!r}")
