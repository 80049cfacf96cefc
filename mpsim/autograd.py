"""Torch autograd glue: quantize in forward, straight-through gradient in backward.

The backward pass can quantize the incoming gradient with its own format,
rounding and random source (error/gradient quantization in low-precision
training); otherwise the gradient passes unchanged (the straight-through
estimator, Bengio et al. 2013).
"""

from __future__ import annotations

from typing import Any

import torch

from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.randbits import RandomSource, make_source
from mpsim.rounding import Rounding, parse_rounding
from mpsim.torch_glue import quantize_tensor

__all__ = ["QuantizeSTE", "quantize_ste"]


class QuantizeSTE(torch.autograd.Function):
    """``forward``: ``quantize(x, ...)``; ``backward``: the gradient, optionally quantized."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        fmt: FloatFormat | FixedFormat,
        rounding: Rounding,
        source: RandomSource | None,
        saturate: bool | None,
        grad_fmt: FloatFormat | FixedFormat | None,
        grad_rounding: Rounding,
        grad_source: RandomSource | None,
    ) -> torch.Tensor:
        ctx.grad_spec = (grad_fmt, grad_rounding, grad_source)
        return quantize_tensor(x, fmt, rounding, seed=source, saturate=saturate)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_fmt, grad_rounding, grad_source = ctx.grad_spec
        if grad_fmt is not None:
            grad = quantize_tensor(grad, grad_fmt, grad_rounding, seed=grad_source)
        return grad, None, None, None, None, None, None, None


def quantize_ste(
    x: torch.Tensor,
    fmt: str | FloatFormat | FixedFormat,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    seed: int | RandomSource | None = None,
    saturate: bool | None = None,
    grad_format: str | FloatFormat | FixedFormat | None = None,
    grad_rounding: str | Rounding = "nearest",
    grad_seed: int | RandomSource | None = None,
) -> torch.Tensor:
    """Differentiable :func:`mpsim.quantize`: straight-through gradient.

    ``grad_format``/``grad_rounding``/``grad_seed`` quantize the gradient in
    backward. An int seed becomes one :class:`~mpsim.randbits.CounterRNG`
    here, so repeated backward calls through the same graph draw fresh bits;
    pass a source object to share one stream across calls.
    """
    fmt = parse_format(fmt)
    rule = parse_rounding(rounding, rand_bits)
    grad_fmt = None if grad_format is None else parse_format(grad_format)
    grad_rule = parse_rounding(grad_rounding)
    source = make_source(seed) if rule.stochastic else None
    grad_source = make_source(grad_seed) if grad_fmt is not None and grad_rule.stochastic else None
    return QuantizeSTE.apply(x, fmt, rule, source, saturate, grad_fmt, grad_rule, grad_source)
