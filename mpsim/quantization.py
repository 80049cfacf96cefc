"""Quantization of NumPy arrays and numbers: the NumPy API under :func:`mpsim.quantize`.

Between the callers (:mod:`mpsim.api` for arrays and numbers,
:mod:`mpsim.torch_glue` for tensors, which hands over zero-copy views) and
the pure kernels in :mod:`mpsim.kernels`: picks the kernel for a layout and
dtype and supplies the random bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpsim import kernels
from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.params import (
    NEAREST,
    SOURCE_ARRAY,
    SOURCE_COUNTER,
    SOURCE_NONE,
    STOCHASTIC,
    KernelParams,
    float32_params,
    kernel_params,
)
from mpsim.randbits import LFSR, CounterRNG, RandomSource, make_source
from mpsim.rounding import Rounding, parse_rounding

__all__ = ["check_fits", "quantize_array", "quantize_float_array", "quantize_numpy", "random_inputs"]

_EMPTY_RAND = np.empty(0, dtype=np.int64)


def random_inputs(
    rounding: Rounding, seed: int | RandomSource | None, n: int
) -> tuple[int, np.uint64, np.uint64, np.ndarray]:
    """(source kind, counter key, counter offset, explicit bits) for a kernel call of ``n`` elements."""
    if not rounding.stochastic:
        return SOURCE_NONE, np.uint64(0), np.uint64(0), _EMPTY_RAND
    source = make_source(seed)
    if isinstance(source, CounterRNG):
        return SOURCE_COUNTER, np.uint64(source.key), np.uint64(source.reserve(n)), _EMPTY_RAND
    assert isinstance(source, LFSR)
    if rounding.rand_bits is None:
        raise ValueError("an LFSR source needs a finite number of random bits (rounding 'stochastic:K'), not None")
    return SOURCE_ARRAY, np.uint64(0), np.uint64(0), source.draw(n, rounding.rand_bits)


def quantize_float_array(
    x: np.ndarray, fmt: FloatFormat | FixedFormat, p: KernelParams, rounding: Rounding, seed: Any
) -> np.ndarray:
    """Quantize a float32/float64 array; returns a new C-contiguous array of the same shape and dtype."""
    out = np.empty(x.shape, dtype=x.dtype)
    flat_out = out.reshape(-1)
    source, key, offset, rand = random_inputs(rounding, seed, x.size)
    if x.size == 0:
        return out
    if not x.flags.c_contiguous:
        kernels.quantize_strided(x, flat_out, p, source, key, offset, rand)
        return out
    flat = x.reshape(-1)
    fast = float32_params(fmt, p) if x.dtype == np.float32 else None
    if fast is not None and p.mode == NEAREST:
        kernels.quantize_f32_nearest(flat.view(np.uint32), flat_out.view(np.uint32), p, fast)
    elif fast is not None and p.mode == STOCHASTIC:
        kernels.quantize_f32_stochastic(
            flat.view(np.uint32), flat_out.view(np.uint32), p, fast, source, key, offset, rand
        )
    else:
        kernels.quantize_contiguous(flat, flat_out, p, source, key, offset, rand)
    return out


def check_fits(fmt: FloatFormat | FixedFormat, dtype_name: str, exp_bits: int, man_bits: int) -> None:
    """ValueError unless every value of ``fmt`` is exact in the IEEE type ``e{exp_bits}m{man_bits}``."""
    fits = fmt.fits_in(exp_bits, man_bits)
    if not fits:
        raise ValueError(
            f"format {fmt} has values that {dtype_name} cannot hold exactly; "
            f"pass float32 or float64 input to quantize to {fmt}"
        )


_NARROW_NUMPY = {np.dtype(np.float16): ("float16", 5, 10)}


def quantize_array(
    x: np.ndarray,
    fmt: FloatFormat | FixedFormat,
    rounding: Rounding,
    seed: int | RandomSource | None = None,
    saturate: bool | None = None,
) -> np.ndarray:
    """``x`` (float16, float32 or float64, any strides) rounded into ``fmt``: a new array of its shape and dtype."""
    p = kernel_params(fmt, rounding, saturate)
    if x.dtype in (np.float32, np.float64):
        return quantize_float_array(x, fmt, p, rounding, seed)
    if x.dtype in _NARROW_NUMPY:
        name, e, m = _NARROW_NUMPY[x.dtype]
        check_fits(fmt, name, e, m)
        return quantize_float_array(x.astype(np.float32), fmt, p, rounding, seed).astype(x.dtype)
    if x.dtype.kind == "f" and not x.dtype.isnative:
        raise ValueError(
            f"quantize takes arrays in the machine's byte order, not dtype {x.dtype.str!r}; "
            "convert with x.astype(x.dtype.newbyteorder('='))"
        )
    raise ValueError(f"quantize takes float16, float32 or float64 arrays, not dtype {x.dtype}")


def quantize_numpy(
    x: np.ndarray | float | list[float] | tuple[float, ...],
    fmt: str | FloatFormat | FixedFormat,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    seed: int | RandomSource | None = None,
    saturate: bool | None = None,
) -> np.ndarray | float:
    """:func:`mpsim.quantize` of a NumPy array, a Python or NumPy number, or a list of numbers."""
    fmt = parse_format(fmt)
    rule = parse_rounding(rounding, rand_bits)
    if isinstance(x, np.ndarray):
        return quantize_array(x, fmt, rule, seed, saturate)
    if isinstance(x, (float, int, np.floating, np.integer)) and not isinstance(x, bool):
        p = kernel_params(fmt, rule, saturate)
        return float(quantize_float_array(np.array(float(x)), fmt, p, rule, seed)[()])
    if isinstance(x, (list, tuple)):
        return quantize_array(np.asarray(x, dtype=np.float64), fmt, rule, seed, saturate)
    raise ValueError(f"quantize takes a NumPy array, a torch tensor or a float, not {type(x).__name__}")
