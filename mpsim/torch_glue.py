"""Torch CPU tensors through the NumPy API: zero-copy views in, a tensor out.

The bottom of the torch adapter: :mod:`mpsim.autograd`, :mod:`mpsim.nn` and
:mod:`mpsim.optim` quantize and multiply tensors through these two functions.
"""

from __future__ import annotations

import torch

from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.gemm import GemmPlan, qmatmul_array
from mpsim.mx import MXFormat, ScaleMode
from mpsim.mx_quantization import quantize_mx_array
from mpsim.params import kernel_params
from mpsim.quantization import check_fits, quantize_float_array
from mpsim.randbits import LFSRGrid, RandomSource
from mpsim.rounding import Rounding, parse_rounding

__all__ = ["qmatmul_tensors", "quantize_mx_tensor", "quantize_tensor"]

# Narrow torch dtypes: computed in float32, written back exactly when the format fits.
_NARROW = {torch.float16: ("float16", 5, 10), torch.bfloat16: ("bfloat16", 8, 7)}


def quantize_tensor(
    x: torch.Tensor,
    fmt: str | FloatFormat | FixedFormat,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    seed: int | RandomSource | None = None,
    saturate: bool | None = None,
) -> torch.Tensor:
    """:func:`mpsim.quantize` of a CPU tensor; a CUDA (or other device) tensor is refused, never copied."""
    fmt = parse_format(fmt)
    rule = parse_rounding(rounding, rand_bits)
    p = kernel_params(fmt, rule, saturate)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, not {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(
            f"mpsim has no {x.device.type} kernel yet: got a tensor on {x.device}; "
            "move it to the CPU explicitly (x.cpu()) if that is what you want"
        )
    if x.dtype in (torch.float32, torch.float64):
        view = x.detach().numpy()  # shares memory, keeps strides
        return torch.from_numpy(quantize_float_array(view, fmt, p, rule, seed))
    if x.dtype in _NARROW:
        name, e, m = _NARROW[x.dtype]
        check_fits(fmt, name, e, m)
        wide = x.detach().float().numpy()
        return torch.from_numpy(quantize_float_array(wide, fmt, p, rule, seed)).to(x.dtype)
    raise ValueError(f"quantize takes float16, bfloat16, float32 or float64 tensors, not {x.dtype}")


def quantize_mx_tensor(
    x: torch.Tensor,
    fmt: str | MXFormat,
    axis: int = -1,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    scale_mode: str | ScaleMode | None = None,
    seed: int | RandomSource | None = None,
) -> torch.Tensor:
    """:func:`mpsim.quantize_mx` of a CPU tensor: a float32 tensor of its shape."""
    if x.device.type != "cpu":
        raise ValueError(f"mpsim has no {x.device.type} kernel yet: got a tensor on {x.device}")
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"quantize_mx takes float16, bfloat16, float32 or float64 tensors, not {x.dtype}")
    view = x.detach()
    view = view.float() if x.dtype in _NARROW else view  # exact: both fit float32
    values = quantize_mx_array(view.numpy(), fmt, axis, rounding, rand_bits=rand_bits, scale_mode=scale_mode, seed=seed)
    return torch.from_numpy(values)


def _cpu_numpy(x: object, name: str) -> object:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"qmatmul {name} must be a torch.Tensor when the other is, not {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(f"mpsim has no {x.device.type} kernel yet: qmatmul {name} is on {x.device}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"qmatmul takes float32 or float64 tensors, not {name} of dtype {x.dtype}")
    return x.detach().numpy()


def qmatmul_tensors(
    a: torch.Tensor, b: torch.Tensor, plan: GemmPlan, seed: int | RandomSource | LFSRGrid | None = None
) -> torch.Tensor:
    """:func:`mpsim.qmatmul` of CPU tensors under ``plan`` (float32 result)."""
    return torch.from_numpy(qmatmul_array(_cpu_numpy(a, "a"), _cpu_numpy(b, "b"), plan, seed))
