"""Torch CPU tensors through the NumPy kernels: zero-copy views in, a tensor out."""

from __future__ import annotations

from typing import Any

import torch

from mpsim import kernels
from mpsim.formats import FixedFormat, FloatFormat
from mpsim.rounding import Rounding

# Narrow torch dtypes: computed in float32, written back exactly when the format fits.
_NARROW = {torch.float16: ("float16", 5, 10), torch.bfloat16: ("bfloat16", 8, 7)}


def quantize_tensor(
    x: torch.Tensor, fmt: FloatFormat | FixedFormat, p: kernels.KernelParams, rule: Rounding, seed: Any
) -> torch.Tensor:
    """Quantize a CPU tensor; a CUDA (or other device) tensor is refused, never copied."""
    from mpsim.quantize import _check_fits, _quantize_numpy

    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch.Tensor, not {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(
            f"mpsim has no {x.device.type} kernel yet: got a tensor on {x.device}; "
            "move it to the CPU explicitly (x.cpu()) if that is what you want"
        )
    if x.dtype in (torch.float32, torch.float64):
        view = x.detach().numpy()  # shares memory, keeps strides
        return torch.from_numpy(_quantize_numpy(view, fmt, p, rule, seed))
    if x.dtype in _NARROW:
        name, e, m = _NARROW[x.dtype]
        _check_fits(fmt, name, e, m)
        wide = x.detach().float().numpy()
        return torch.from_numpy(_quantize_numpy(wide, fmt, p, rule, seed)).to(x.dtype)
    raise ValueError(f"quantize takes float16, bfloat16, float32 or float64 tensors, not {x.dtype}")


def _cpu_numpy(x: torch.Tensor, name: str) -> Any:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"qmatmul {name} must be a torch.Tensor when the other is, not {type(x).__name__}")
    if x.device.type != "cpu":
        raise ValueError(f"mpsim has no {x.device.type} kernel yet: qmatmul {name} is on {x.device}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"qmatmul takes float32 or float64 tensors, not {name} of dtype {x.dtype}")
    return x.detach().numpy()


def qmatmul_tensors(a: torch.Tensor, b: torch.Tensor, spec: Any, seed: Any) -> torch.Tensor:
    """:func:`mpsim.qmatmul` on CPU tensors (float32 result)."""
    from mpsim.gemm import qmatmul_numpy

    return torch.from_numpy(qmatmul_numpy(_cpu_numpy(a, "a"), _cpu_numpy(b, "b"), spec, seed))
