"""mpsim: low-precision arithmetic emulation and accelerator co-design.

One format and rounding spec drives both the emulator and the generated
hardware, bit for bit, stochastic rounding included.

Layers, each importing only those below it: specs (:mod:`~mpsim.formats`,
:mod:`~mpsim.mx`, :mod:`~mpsim.rounding`, :mod:`~mpsim.randbits`, :mod:`~mpsim.gemm_config`) ->
kernel parameters (:mod:`~mpsim.params`) -> Numba kernels
(:mod:`~mpsim.kernels`, :mod:`~mpsim.gemm_kernels`, :mod:`~mpsim.mx_kernels`) -> the NumPy API
(:mod:`~mpsim.quantization`, :mod:`~mpsim.codec`, :mod:`~mpsim.gemm`,
:mod:`~mpsim.mx_quantization`) -> the torch
adapter (:mod:`~mpsim.torch_glue`, :mod:`~mpsim.autograd`, :mod:`mpsim.nn`,
:mod:`~mpsim.optim`) -> the front (:mod:`~mpsim.api`) and the applications
(:mod:`~mpsim.train`, :mod:`~mpsim.cli`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mpsim.formats import PRESETS, FixedFormat, FloatFormat, Format
from mpsim.gemm_config import GemmConfig
from mpsim.mx import MX_PRESETS, MXFormat, ScaleMode
from mpsim.mx import parse_format_or_mx as parse_format
from mpsim.rounding import Rounding, RoundingMode, parse_rounding

if TYPE_CHECKING:
    from mpsim.api import qmatmul, quantize, quantize_mx
    from mpsim.autograd import quantize_ste
    from mpsim.codec import decode, encode
    from mpsim.mx_quantization import decode_mx, encode_mx
    from mpsim.nn import quantize_model
    from mpsim.randbits import LFSR, CounterRNG

__version__ = "0.1.0"

__all__ = [
    "LFSR",
    "MX_PRESETS",
    "PRESETS",
    "CounterRNG",
    "FixedFormat",
    "FloatFormat",
    "Format",
    "GemmConfig",
    "MXFormat",
    "Rounding",
    "RoundingMode",
    "ScaleMode",
    "decode",
    "decode_mx",
    "encode",
    "encode_mx",
    "parse_format",
    "parse_rounding",
    "qmatmul",
    "quantize",
    "quantize_model",
    "quantize_mx",
    "quantize_ste",
]


#: Names whose modules load on first use: Numba takes a third of a second to import and torch seconds, and
#: ``mpsim --help`` or a spec (formats, roundings, GEMM configurations) needs neither.
_LAZY = {
    "qmatmul": "mpsim.api",
    "quantize": "mpsim.api",
    "quantize_mx": "mpsim.api",
    "encode_mx": "mpsim.mx_quantization",
    "decode_mx": "mpsim.mx_quantization",
    "encode": "mpsim.codec",
    "decode": "mpsim.codec",
    "LFSR": "mpsim.randbits",
    "CounterRNG": "mpsim.randbits",
    "quantize_ste": "mpsim.autograd",
    "quantize_model": "mpsim.nn",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mpsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain one
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
