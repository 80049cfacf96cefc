"""Quantized layers, their precision configuration and model conversion."""

from mpsim.nn.convert import ConversionReport, quantize_model
from mpsim.nn.layers import QConv2d, QLinear
from mpsim.precision import PRECISION_PRESETS, GemmConfig, LayerPrecision, PrecisionConfig, TensorQuant, parse_precision

__all__ = [
    "PRECISION_PRESETS",
    "ConversionReport",
    "GemmConfig",
    "LayerPrecision",
    "PrecisionConfig",
    "QConv2d",
    "QLinear",
    "TensorQuant",
    "parse_precision",
    "quantize_model",
]
