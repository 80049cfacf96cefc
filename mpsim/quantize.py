"""``mpsim.quantize``: round arrays and tensors into a format (the public entry point).

Framework glue between callers (NumPy arrays, torch CPU tensors, Python
numbers) and the pure kernels in :mod:`mpsim.kernels`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpsim import kernels
from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.randbits import LFSR, CounterRNG, RandomSource, make_source
from mpsim.rounding import Rounding, parse_rounding

__all__ = ["kernel_params", "quantize"]

_EMPTY_RAND = np.empty(0, dtype=np.int64)


def kernel_params(
    fmt: FloatFormat | FixedFormat, rounding: Rounding, saturate: bool | None = None
) -> kernels.KernelParams:
    """Flatten a format and rounding into the kernels' parameters.

    ``saturate=None`` takes the format's own overflow policy.
    """
    if saturate is not None and not isinstance(saturate, bool):
        raise ValueError(f"saturate must be True, False or None, not {saturate!r}")
    if isinstance(fmt, FixedFormat):
        wrap = fmt.overflow == "wrap" if saturate is None else not saturate
        return kernels.KernelParams(
            is_fixed=True,
            man_bits=0,
            emin=0,
            subnormals=True,
            frac_bits=fmt.frac_bits,
            magnitude_bits=fmt.int_bits + fmt.frac_bits,
            signed=fmt.signed,
            wrap=wrap,
            max_value=fmt.max,
            saturate=not wrap,
            has_inf=False,
            has_nan=False,
            unsigned_zero=True,
            mode=rounding.mode.code,
            rand_bits=rounding.kernel_rand_bits,
        )
    sat = fmt.saturates if saturate is None else (saturate or not (fmt.has_inf or fmt.has_nan))
    return kernels.KernelParams(
        is_fixed=False,
        man_bits=fmt.man_bits,
        emin=fmt.emin,
        subnormals=fmt.subnormals,
        frac_bits=0,
        magnitude_bits=0,
        signed=True,
        wrap=False,
        max_value=fmt.max,
        saturate=sat,
        has_inf=fmt.has_inf,
        has_nan=fmt.has_nan,
        unsigned_zero=not fmt.has_negative_zero,
        mode=rounding.mode.code,
        rand_bits=rounding.kernel_rand_bits,
    )


def _random_inputs(
    rounding: Rounding, seed: int | RandomSource | None, n: int
) -> tuple[int, np.uint64, np.uint64, np.ndarray]:
    """(source kind, counter key, counter offset, explicit bits) for a kernel call of ``n`` elements."""
    if not rounding.stochastic:
        return kernels.SOURCE_NONE, np.uint64(0), np.uint64(0), _EMPTY_RAND
    source = make_source(seed)
    if isinstance(source, CounterRNG):
        return kernels.SOURCE_COUNTER, np.uint64(source.key), np.uint64(source.reserve(n)), _EMPTY_RAND
    assert isinstance(source, LFSR)
    if rounding.rand_bits is None:
        raise ValueError("an LFSR source needs a finite number of random bits (rounding 'stochastic:K'), not None")
    return kernels.SOURCE_ARRAY, np.uint64(0), np.uint64(0), source.draw(n, rounding.rand_bits)


def float32_params(fmt: FloatFormat | FixedFormat, p: kernels.KernelParams) -> kernels.Float32Params | None:
    """Parameters of the float32 fast path, or None where it does not apply (fixed point, emin < -126)."""
    if isinstance(fmt, FixedFormat) or fmt.emin < -126:
        return None
    max_bits = int(np.float32(fmt.max).view(np.uint32))
    if p.saturate or not (fmt.has_inf or fmt.has_nan):
        overflow_bits = max_bits
    else:
        overflow_bits = 0x7F800000 if fmt.has_inf else 0x7FC00000
    return kernels.Float32Params(
        shift=23 - fmt.man_bits,
        emin_bits=(fmt.emin + 127) << 23,
        half_emin_bits=int(np.float32(2.0 ** (fmt.emin - 1)).view(np.uint32)),
        max_bits=max_bits,
        overflow_bits=overflow_bits,
        inf_bits=max_bits if overflow_bits == max_bits else overflow_bits,
    )


def _quantize_numpy(
    x: np.ndarray, fmt: FloatFormat | FixedFormat, p: kernels.KernelParams, rounding: Rounding, seed: Any
) -> np.ndarray:
    """Quantize a float32/float64 array; returns a new C-contiguous array of the same shape and dtype."""
    out = np.empty(x.shape, dtype=x.dtype)
    flat_out = out.reshape(-1)
    source, key, offset, rand = _random_inputs(rounding, seed, x.size)
    if x.size == 0:
        return out
    if not x.flags.c_contiguous:
        kernels.quantize_strided(x, flat_out, p, source, key, offset, rand)
        return out
    flat = x.reshape(-1)
    fast = float32_params(fmt, p) if x.dtype == np.float32 else None
    if fast is not None and p.mode == kernels.NEAREST:
        kernels.quantize_f32_nearest(flat.view(np.uint32), flat_out.view(np.uint32), p, fast)
    elif fast is not None and p.mode == kernels.STOCHASTIC:
        kernels.quantize_f32_stochastic(
            flat.view(np.uint32), flat_out.view(np.uint32), p, fast, source, key, offset, rand
        )
    else:
        kernels.quantize_contiguous(flat, flat_out, p, source, key, offset, rand)
    return out


def _check_fits(fmt: FloatFormat | FixedFormat, dtype_name: str, exp_bits: int, man_bits: int) -> None:
    fits = fmt.fits_in(exp_bits, man_bits)
    if not fits:
        raise ValueError(
            f"format {fmt} has values that {dtype_name} cannot hold exactly; "
            f"pass float32 or float64 input to quantize to {fmt}"
        )


_NARROW_NUMPY = {np.dtype(np.float16): ("float16", 5, 10)}


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
    fmt = parse_format(fmt)
    rule = parse_rounding(rounding, rand_bits)
    p = kernel_params(fmt, rule, saturate)
    if isinstance(x, np.ndarray):
        return _quantize_ndarray(x, fmt, p, rule, seed)
    if type(x).__module__.startswith("torch"):
        from mpsim.torch_glue import quantize_tensor

        return quantize_tensor(x, fmt, p, rule, seed)
    if isinstance(x, (float, int, np.floating, np.integer)) and not isinstance(x, bool):
        return float(_quantize_numpy(np.array(float(x)), fmt, p, rule, seed)[()])
    if isinstance(x, (list, tuple)):
        return _quantize_ndarray(np.asarray(x, dtype=np.float64), fmt, p, rule, seed)
    raise ValueError(f"quantize takes a NumPy array, a torch tensor or a float, not {type(x).__name__}")


def _quantize_ndarray(
    x: np.ndarray, fmt: FloatFormat | FixedFormat, p: kernels.KernelParams, rule: Rounding, seed: Any
) -> np.ndarray:
    if x.dtype in (np.float32, np.float64):
        return _quantize_numpy(x, fmt, p, rule, seed)
    if x.dtype in _NARROW_NUMPY:
        name, e, m = _NARROW_NUMPY[x.dtype]
        _check_fits(fmt, name, e, m)
        return _quantize_numpy(x.astype(np.float32), fmt, p, rule, seed).astype(x.dtype)
    if x.dtype.kind == "f" and not x.dtype.isnative:
        raise ValueError(
            f"quantize takes arrays in the machine's byte order, not dtype {x.dtype.str!r}; "
            "convert with x.astype(x.dtype.newbyteorder('='))"
        )
    raise ValueError(f"quantize takes float16, float32 or float64 arrays, not dtype {x.dtype}")
