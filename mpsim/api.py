"""The public front: :func:`quantize` and :func:`qmatmul` take NumPy arrays, numbers or torch tensors.

The top of the stack. NumPy input goes to the NumPy API (:mod:`mpsim.quantization`,
:mod:`mpsim.gemm`); a torch tensor goes to the torch adapter
(:mod:`mpsim.torch_glue`), which is imported only then, so that NumPy-only
work never loads torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpsim.formats import FixedFormat, FloatFormat
from mpsim.gemm import plan_of, qmatmul_array
from mpsim.gemm_config import GemmConfig
from mpsim.mx import MXFormat, ScaleMode
from mpsim.mx_quantization import quantize_mx_array
from mpsim.quantization import quantize_numpy
from mpsim.randbits import LFSRGrid, RandomSource
from mpsim.rounding import Rounding

__all__ = ["qmatmul", "quantize", "quantize_mx"]


def _is_tensor(x: object) -> bool:
    return type(x).__module__.startswith("torch")


def _torch_glue() -> Any:
    # torch takes seconds to import: the adapter is loaded when the first tensor arrives, not with mpsim.
    from mpsim import torch_glue

    return torch_glue


def quantize(
    x: Any,
    fmt: str | FloatFormat | FixedFormat,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    seed: int | RandomSource | None = None,
    saturate: bool | None = None,
) -> Any:
    """Round every element of ``x`` to the nearest value of ``fmt`` under ``rounding``.

    Parameters
    ----------
    x : numpy.ndarray, torch.Tensor (CPU) or float
        Input; float32 and float64 (float16/bfloat16 where the format fits
        them). The result has the same type, shape and dtype; ``x`` is not
        modified and not copied (non-contiguous inputs are read in place).
    fmt : str or format
        A format spec or a string for :func:`mpsim.parse_format`.
    rounding : str or Rounding
        ``"nearest"`` (ties to even), ``"nearest_away"``, ``"toward_zero"``,
        ``"up"``, ``"down"``, ``"stochastic"`` or ``"stochastic:K"``.
    rand_bits : int or None
        Random bits per stochastic rounding (``None``: exact).
    seed : int, CounterRNG, LFSR or None
        Source of the stochastic bits: an int seeds a fresh
        :class:`~mpsim.randbits.CounterRNG` (same seed, same bits); a source
        object is used and advanced; ``None`` draws a seed from the OS.
    saturate : bool or None
        Clamp overflow (and +-Inf) to +-max; ``None`` follows the format.
    """
    if _is_tensor(x):
        return _torch_glue().quantize_tensor(x, fmt, rounding, rand_bits=rand_bits, seed=seed, saturate=saturate)
    return quantize_numpy(x, fmt, rounding, rand_bits=rand_bits, seed=seed, saturate=saturate)


def quantize_mx(
    x: Any,
    fmt: str | MXFormat,
    axis: int = -1,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    scale_mode: str | ScaleMode | None = None,
    seed: int | RandomSource | None = None,
) -> Any:
    """Quantize ``x`` to an MX block format and back: float32 values of ``x``'s shape.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor (CPU)
        float16, float32 or float64 (torch: bfloat16 too); a tensor gives a tensor.
    fmt : str or MXFormat
        ``mxfp8_e4m3``, ``mxfp8_e5m2``, ``mxfp6_e3m2``, ``mxfp6_e2m3``, ``mxfp4_e2m1``,
        ``mxint8`` or ``mx:ELEMENT[:bN][:MODE]`` (:func:`mpsim.mx.parse_mx_format`).
    axis : int
        The axis along which ``block_size`` consecutive elements share a scale;
        a last partial block counts as padded with zeros.
    rounding : str or Rounding
        Rounding of the scaled elements (``"nearest"``, ``"stochastic:K"``...); they saturate.
    scale_mode : str, ScaleMode or None
        ``"floor"`` (OCP), ``"ceil"``, ``"rceil"``, ``"even"`` (:mod:`mpsim.mx`); ``None``: the format's.
    seed : int, CounterRNG, LFSR or None
        Stochastic bits as :func:`quantize` draws them: element ``i`` of ``x`` (C order) takes draw ``i``.
    """
    if _is_tensor(x):
        return _torch_glue().quantize_mx_tensor(
            x, fmt, axis, rounding, rand_bits=rand_bits, scale_mode=scale_mode, seed=seed
        )
    return quantize_mx_array(x, fmt, axis, rounding, rand_bits=rand_bits, scale_mode=scale_mode, seed=seed)


def qmatmul(
    a: Any,
    b: Any,
    *,
    mul: str | FloatFormat | FixedFormat | MXFormat | None = None,
    acc: str | FloatFormat | FixedFormat | None = "fp32",
    rounding: str | Rounding = "nearest",
    mul_rounding: str | Rounding = "nearest",
    fma: bool = False,
    order: str | int = "sequential",
    seed: int | RandomSource | LFSRGrid | None = None,
    saturate: bool | None = None,
    block_sum: str | FloatFormat | FixedFormat | None = None,
    config: GemmConfig | None = None,
) -> Any:
    """Matrix product with every product rounded to ``mul`` and every addition to ``acc``.

    ``a``: (M, K) or (B, M, K); ``b``: (K, N) or (B, K, N); a batch of 1
    broadcasts. NumPy arrays or torch CPU tensors (float32, or float64 holding
    float32 values); returns the same type, float32. ``rounding`` is the
    accumulator's rounding (``"stochastic:K"``...), ``mul_rounding`` the
    products'; ``order`` is ``"sequential"``, ``"pairwise"`` or a block size.
    ``fma=True`` only states that the products are not rounded: that is what
    ``mul=None`` (the default) means, and it is an error with a ``mul`` format.
    ``mul`` an MX format (``"mxfp8_e4m3"``, an :class:`~mpsim.mx.MXFormat`)
    makes an MX GEMM (:mod:`mpsim.mx_gemm`): ``a`` in MX blocks along its
    rows, ``b`` along its columns (elements to nearest, the last block
    zero-padded), each block's exact dot product times both scales added into
    ``acc`` with one rounding per block, in order; ``block_sum`` a format rounds
    each block's sum into it (to nearest) before the scaling.
    ``config`` gives the whole arithmetic as one
    :class:`~mpsim.gemm_config.GemmConfig` instead of the keywords (not both).
    Stochastic bits come from ``seed`` (int, CounterRNG, LFSR or LFSRGrid),
    ``k`` bits per rounding, placed in the stream as :mod:`mpsim.gemm_kernels`
    documents (a CounterRNG's 64-bit words are shared by runs of ``64 // k`` steps).
    """
    if not isinstance(fma, bool):
        raise ValueError(f"fma must be True or False, not {fma!r}")
    if config is None:
        if fma and mul is not None:
            raise ValueError(f"fma=True rounds once per step: it excludes a product format, got mul={mul}")
        config = GemmConfig(
            mul=mul,
            acc="fp32" if acc is None else acc,
            rounding=rounding,
            mul_rounding=mul_rounding,
            order=order,
            saturate=saturate,
            block_sum=block_sum,
        )
    elif not isinstance(config, GemmConfig):
        raise ValueError(f"config must be a GemmConfig, not {config!r}")
    else:
        given = {
            name: value
            for name, value, default in (
                ("mul", mul, None),
                ("acc", acc, "fp32"),
                ("rounding", rounding, "nearest"),
                ("mul_rounding", mul_rounding, "nearest"),
                ("fma", fma, False),
                ("order", order, "sequential"),
                ("saturate", saturate, None),
                ("block_sum", block_sum, None),
            )
            if value != default
        }
        if given:
            raise ValueError(f"qmatmul takes config or the arithmetic keywords, not both: got config and {given}")
    plan = plan_of(config)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return qmatmul_array(a, b, plan, seed)
    if _is_tensor(a) or _is_tensor(b):
        return _torch_glue().qmatmul_tensors(a, b, plan, seed)
    raise ValueError(f"qmatmul takes NumPy arrays or torch tensors, not {type(a).__name__} and {type(b).__name__}")
