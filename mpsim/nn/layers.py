"""Quantized layers: drop-in ``nn.Linear`` / ``nn.Conv2d`` whose arithmetic follows a LayerPrecision."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mpsim.nn.backends import EMULATOR, GemmBackend
from mpsim.nn.functional import QMatmul, quantize_tensor
from mpsim.precision import LayerPrecision
from mpsim.randbits import CounterRNG

__all__ = ["QConv2d", "QLinear"]


class QLinear(nn.Linear):
    """``nn.Linear`` with quantized weights, activations and errors and emulated GEMMs.

    The bias is added in fp32 after the product (as accelerators add it in a
    wider post-processing stage).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        precision: LayerPrecision | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.precision = precision if precision is not None else LayerPrecision()
        self.rng = CounterRNG(seed)
        self.backend: GemmBackend = EMULATOR  # mpsim.nn.use_backend sets another

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.precision
        shape = x.shape
        xq = quantize_tensor(x.reshape(-1, shape[-1]), p.activation, self.rng)
        wq = quantize_tensor(self.weight, p.weight, self.rng)
        y = QMatmul.apply(xq, wq.t(), p, self.rng, False, self.backend)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, precision={_short(self.precision)}"


class QConv2d(nn.Conv2d):
    """``nn.Conv2d`` (stride, padding, dilation, groups; zero padding) through im2col and emulated GEMMs."""

    def __init__(self, *args: object, precision: LayerPrecision | None = None, seed: int = 0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.padding_mode != "zeros":
            raise ValueError(f"QConv2d supports padding_mode 'zeros', not {self.padding_mode!r}")
        if isinstance(self.padding, str):
            raise ValueError(f"QConv2d needs explicit integer padding, not {self.padding!r}")
        self.precision = precision if precision is not None else LayerPrecision()
        self.rng = CounterRNG(seed)
        self.backend: GemmBackend = EMULATOR  # mpsim.nn.use_backend sets another

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.precision
        batch, _, height, width = x.shape
        kh, kw = self.kernel_size
        xq = quantize_tensor(x, p.activation, self.rng)
        wq = quantize_tensor(self.weight, p.weight, self.rng)
        cols = F.unfold(xq, (kh, kw), dilation=self.dilation, padding=self.padding, stride=self.stride)
        out_h = (height + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        out_w = (width + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        group_in = cols.shape[1] // self.groups
        group_out = self.out_channels // self.groups
        outs = []
        for g in range(self.groups):
            w_g = wq[g * group_out : (g + 1) * group_out].reshape(group_out, -1)
            c_g = cols[:, g * group_in : (g + 1) * group_in]
            outs.append(QMatmul.apply(c_g, w_g, p, self.rng, True, self.backend))
        y = torch.cat(outs, dim=1) if self.groups > 1 else outs[0]
        y = y.reshape(batch, self.out_channels, out_h, out_w)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, precision={_short(self.precision)}"


def _short(p: LayerPrecision) -> str:
    f = p.forward
    gemm = f"{f.to_dict()['mul'] or 'exact'}x->{f.acc}/{f.rounding}" if f.emulate else "torch-fp32"
    return f"w={p.weight.format or 'fp32'} a={p.activation.format or 'fp32'} g={p.grad.format or 'fp32'} gemm={gemm}"
