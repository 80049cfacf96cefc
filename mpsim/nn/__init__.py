"""Quantized layers, their precision configuration and model conversion."""

from mpsim.nn.backends import EMULATOR, EmulatorBackend, GemmBackend, backend_names, load_backend
from mpsim.nn.convert import ConversionReport, gemm_calls, quantize_model, use_backend
from mpsim.nn.layers import QConv2d, QLinear
from mpsim.precision import (
    PRECISION_PRESETS,
    GemmCall,
    GemmConfig,
    GemmKind,
    LayerPrecision,
    PrecisionConfig,
    TensorQuant,
    parse_precision,
)

__all__ = [
    "EMULATOR",
    "PRECISION_PRESETS",
    "ConversionReport",
    "EmulatorBackend",
    "GemmBackend",
    "GemmCall",
    "GemmConfig",
    "GemmKind",
    "LayerPrecision",
    "PrecisionConfig",
    "QConv2d",
    "QLinear",
    "TensorQuant",
    "backend_names",
    "gemm_calls",
    "load_backend",
    "parse_precision",
    "quantize_model",
    "use_backend",
]
