"""Autograd glue for quantized layers: the three GEMMs of training, each with its own arithmetic.

Forward ``y = x @ w`` uses the layer's ``forward`` GEMM config; backward
computes ``dx = dy @ w^T`` (``grad_input``) and ``dw = x^T @ dy``
(``grad_weight``), after quantizing the incoming error ``dy`` to the
``grad`` format. Operands are the already-quantized tensors saved in forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from mpsim import torch_glue
from mpsim.autograd import quantize_ste
from mpsim.gemm import plan_of
from mpsim.gemm_config import GemmConfig
from mpsim.precision import GemmKind, LayerPrecision, TensorQuant
from mpsim.randbits import CounterRNG

if TYPE_CHECKING:  # the layers pass their backend in; the backends module imports this one
    from mpsim.nn.backends import GemmBackend

__all__ = ["QMatmul", "gemm", "quantize_tensor"]


def gemm(a: torch.Tensor, b: torch.Tensor, config: GemmConfig, rng: CounterRNG) -> torch.Tensor:
    """``a @ b`` in the arithmetic of ``config`` (2-D or batched; float32 result)."""
    if not config.emulate:
        return torch.matmul(a, b)
    return torch_glue.qmatmul_tensors(a.contiguous(), b.contiguous(), plan_of(config), rng)


def quantize_tensor(x: torch.Tensor, quant: TensorQuant, rng: CounterRNG) -> torch.Tensor:
    """Straight-through quantization of ``x`` (identity when ``quant.format`` is None)."""
    if quant.format is None:
        return x
    return quantize_ste(x, quant.format, quant.rounding, seed=rng)


class QMatmul(torch.autograd.Function):
    """Product of a layer's input and weight, each GEMM of training in its own arithmetic.

    ``weight_first=False`` (Linear): ``y = x @ w`` with ``x`` (M, K), ``w``
    (K, N). ``weight_first=True`` (convolution via im2col): ``y[z] = w @ x[z]``
    with ``w`` (O, K) and ``x`` (B, K, L); the weight gradient sums over the
    batch and positions in one product of reduction length ``B*L``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        w: torch.Tensor,
        precision: LayerPrecision,
        rng: CounterRNG,
        weight_first: bool,
        backend: GemmBackend,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.precision, ctx.rng, ctx.weight_first, ctx.backend = precision, rng, weight_first, backend
        call = precision.call(GemmKind.FORWARD, weight_first)
        if weight_first:
            return backend.matmul(w.detach(), x.detach(), call, rng)
        return backend.matmul(x.detach(), w.detach(), call, rng)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w = ctx.saved_tensors
        precision: LayerPrecision = ctx.precision
        rng: CounterRNG = ctx.rng
        backend: GemmBackend = ctx.backend
        if precision.grad.format is not None:
            grad = torch_glue.quantize_tensor(
                grad.contiguous(), precision.grad.format, precision.grad.rounding, seed=rng
            )
        grad_x = grad_w = None
        grad_input = precision.call(GemmKind.GRAD_INPUT, ctx.weight_first)
        grad_weight = precision.call(GemmKind.GRAD_WEIGHT, ctx.weight_first)
        if ctx.weight_first:
            if ctx.needs_input_grad[0]:
                grad_x = backend.matmul(w.t(), grad, grad_input, rng)
            if ctx.needs_input_grad[1]:
                rows = grad.permute(1, 0, 2).reshape(grad.shape[1], -1)  # (O, B*L)
                cols = x.permute(0, 2, 1).reshape(-1, x.shape[1])  # (B*L, K)
                grad_w = backend.matmul(rows, cols, grad_weight, rng)
        else:
            if ctx.needs_input_grad[0]:
                grad_x = backend.matmul(grad, w.t(), grad_input, rng)
            if ctx.needs_input_grad[1]:
                grad_w = backend.matmul(x.t(), grad, grad_weight, rng)
        return grad_x, grad_w, None, None, None, None
