"""MX block quantization of NumPy arrays: :func:`quantize_mx_array`, :func:`encode_mx` and :func:`decode_mx`.

Blocks run along ``axis``: ``block_size`` consecutive elements share a scale.
When the axis length is not a multiple of the block size, the last block is
partial: it is treated as padded with zeros (which change no scale) and only
its real elements are returned or encoded. Each block:

1. ``E`` from the block's largest magnitude by the scale rule
   (:func:`mpsim.mx_kernels.scale_code`; a NaN anywhere gives the NaN
   scale 0xFF, an all-zero block ``E = -127``, an Inf ``E = 127``);
2. elements ``x / 2**E`` (exact, in float64) rounded to the element format
   by the element kernel of :func:`mpsim.quantize`, saturating (an Inf
   becomes +-max), with its random stream: element ``i`` of ``x`` in C order
   takes draw ``i``;
3. values ``element * 2**E`` (float32: a value beyond float32, possible only
   from Inf or float64 input, becomes +-Inf); a NaN block is all NaN.

All three in one parallel pass, :func:`mpsim.mx_kernels.quantize_mx_blocks`;
float32 input rounded to nearest into a float element format of at most 8 bits
(the OCP FP presets) takes :func:`mpsim.mx_kernels.quantize_mx_f32_nearest`,
the same results computed on the float32 bits, which also writes the element
codes of :func:`encode_mx` directly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mpsim.codec import code_dtype, decode, encode
from mpsim.formats import FloatFormat
from mpsim.mx import SCALE_BIAS, SCALE_NAN_CODE, MXFormat, ScaleMode, parse_mx_format, parse_scale_mode
from mpsim.mx_kernels import element_constants, pack_nibble_rows, quantize_mx_blocks, quantize_mx_f32_nearest
from mpsim.params import NEAREST, KernelParams, float32_params, kernel_params
from mpsim.quantization import random_inputs
from mpsim.randbits import RandomSource
from mpsim.rounding import Rounding, parse_rounding

__all__ = ["decode_mx", "encode_mx", "mx_blocks", "quantize_mx_array"]


def _check_axis(shape: tuple[int, ...], axis: object) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis must be an integer in -{len(shape)}..{len(shape) - 1} for shape {shape}, not {axis!r}")
    return int(axis) % len(shape)


def _as_float(x: Any) -> np.ndarray:
    """A float32/float64 array of ``x``: float16 widened (exact), lists of numbers as float64."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype=np.float64)
    if not isinstance(x, np.ndarray):
        raise ValueError(
            f"quantize_mx takes a NumPy array, a torch tensor or a list of numbers, not {type(x).__name__}"
        )
    if x.dtype in (np.float32, np.float64):
        return x
    if x.dtype == np.float16:
        return x.astype(np.float32)
    raise ValueError(f"quantize_mx takes float16, float32 or float64 arrays, not dtype {x.dtype}")


def _blocks(x: np.ndarray, axis: int, block: int) -> np.ndarray:
    """``x`` with ``axis`` moved last and zero-padded to whole blocks: shape ``(..., n_blocks, block)``."""
    moved = np.moveaxis(x, axis, -1)
    n = moved.shape[-1]
    pad = -n % block
    if pad:
        moved = np.concatenate([moved, np.zeros((*moved.shape[:-1], pad), dtype=moved.dtype)], axis=-1)
    return moved.reshape(*moved.shape[:-1], (n + pad) // block, block)


def _unblock(blocks: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The inverse of :func:`_blocks`: padding dropped, the axis put back."""
    flat = blocks.reshape(*blocks.shape[:-2], blocks.shape[-2] * blocks.shape[-1])[..., :n]
    return np.moveaxis(flat, -1, axis)


def _f32_fast(x: np.ndarray, fmt: MXFormat, p: KernelParams) -> bool:
    """Whether :func:`mpsim.mx_kernels.quantize_mx_f32_nearest` takes these blocks."""
    e = fmt.element
    return (
        x.dtype == np.float32
        and p.mode == NEAREST
        and isinstance(e, FloatFormat)
        and e.subnormals
        and e.has_negative_zero
        and e.man_bits >= 1
        and e.bits <= 8
        and float32_params(e, p) is not None
    )


def _run_blocks(
    x: Any,
    fmt: str | MXFormat,
    axis: int,
    rounding: str | Rounding,
    rand_bits: int | None,
    scale_mode: str | ScaleMode | None,
    seed: int | RandomSource | None,
    want: str,
) -> tuple[MXFormat, int, np.ndarray, np.ndarray]:
    """(format, axis, scale codes: ``x``'s shape with ``axis`` cut to the blocks, the ``want``ed array).

    ``want``: ``"values"`` (float32 ``element * 2**E``), ``"elements"`` (float32
    element values) or ``"codes"`` (element codes, unpacked, :func:`encode_mx`'s dtype).
    """
    fmt = parse_mx_format(fmt)
    mode = fmt.scale_mode if scale_mode is None else parse_scale_mode(scale_mode)
    rule = parse_rounding(rounding, rand_bits)
    x = _as_float(x)
    if x.ndim == 0:
        raise ValueError(f"quantize_mx needs an array with at least one axis, not a scalar {x!r}")
    axis = _check_axis(x.shape, axis)
    n = x.shape[axis]
    n_blocks = -(-n // fmt.block_size)
    p = kernel_params(fmt.element, rule, saturate=True)
    e = fmt.element
    if want != "elements" and _f32_fast(x, fmt, p):
        rows = np.ascontiguousarray(np.moveaxis(x, axis, -1))  # a copy unless the blocks run along the last axis
        values = np.empty(rows.shape if want == "values" else 0, dtype=np.float32)
        elements = np.empty(rows.shape if want == "codes" else 0, dtype=code_dtype(e.bits))
        row_scales = np.empty((*rows.shape[:-1], n_blocks), dtype=np.uint8)
        if x.size:
            quantize_mx_f32_nearest(
                rows.reshape(-1).view(np.uint32),
                values.reshape(-1),
                elements.reshape(-1),
                row_scales.reshape(-1),
                rows.size // n,
                n,
                fmt.block_size,
                mode.code,
                fmt.element_emax,
                fmt.element_man_bits,
                p.max_value,
                element_constants(p, float32_params(e, p), e.exponent_bias, e.bits),
                0 if e.nan_code is None else e.nan_code,
                want == "values",
            )
        result = values if want == "values" else elements
        back = (np.ascontiguousarray(np.moveaxis(a, -1, axis)) for a in (row_scales, result))
        return fmt, axis, *back
    codes = np.empty((*x.shape[:axis], n_blocks, *x.shape[axis + 1 :]), dtype=np.uint8)
    out = np.empty(x.shape, dtype=np.float32)
    source, key, offset, rand = random_inputs(rule, seed, x.size)
    if x.size:
        quantize_mx_blocks(
            np.ascontiguousarray(x).reshape(-1),
            out.reshape(-1),
            codes.reshape(-1),
            math.prod(x.shape[:axis]),
            n,
            math.prod(x.shape[axis + 1 :]),
            fmt.block_size,
            mode.code,
            fmt.element_emax,
            fmt.element_man_bits,
            p,
            source,
            key,
            offset,
            rand,
            want == "values",
            np.nan if e.has_nan else 0.0,
        )
    if want == "codes":
        return fmt, axis, codes, encode(e, out)
    return fmt, axis, codes, out


def quantize_mx_array(
    x: Any,
    fmt: str | MXFormat,
    axis: int = -1,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    scale_mode: str | ScaleMode | None = None,
    seed: int | RandomSource | None = None,
) -> np.ndarray:
    """:func:`mpsim.quantize_mx` of a NumPy array (or a list of numbers): float32 values."""
    return _run_blocks(x, fmt, axis, rounding, rand_bits, scale_mode, seed, "values")[3]


def mx_blocks(
    x: np.ndarray,
    fmt: str | MXFormat,
    axis: int,
    rounding: str | Rounding = "nearest",
    seed: int | RandomSource | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scales, elements)`` of ``x`` in MX blocks along ``axis`` by the format's scale rule, elements rounded by
    ``rounding`` (random draws from ``seed`` as :func:`mpsim.quantize_mx` takes them).

    ``scales``: uint8 E8M0 codes as :func:`encode_mx` gives them; ``elements``:
    float32 element values, ``x``'s shape (NaN blocks: NaN or 0 elements).
    """
    _, _, codes, elements = _run_blocks(x, fmt, axis, rounding, None, None, seed, "elements")
    return codes, elements


def _pack_nibbles(codes: np.ndarray, axis: int) -> np.ndarray:
    rows = np.ascontiguousarray(np.moveaxis(codes, axis, -1), dtype=np.uint8)
    n = rows.shape[-1]
    packed = np.empty((*rows.shape[:-1], (n + 1) // 2), dtype=np.uint8)
    if packed.size:
        pack_nibble_rows(rows.reshape(-1), packed.reshape(-1), rows.size // n, n)
    return np.ascontiguousarray(np.moveaxis(packed, -1, axis))


def _unpack_nibbles(packed: np.ndarray, axis: int, n: int) -> np.ndarray:
    moved = np.moveaxis(packed, axis, -1)
    both = np.stack([moved & 0x0F, moved >> 4], axis=-1).reshape(*moved.shape[:-1], -1)
    return np.moveaxis(both[..., :n], -1, axis)


def encode_mx(
    x: Any,
    fmt: str | MXFormat,
    axis: int = -1,
    rounding: str | Rounding = "nearest",
    *,
    rand_bits: int | None = None,
    scale_mode: str | ScaleMode | None = None,
    seed: int | RandomSource | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as MX blocks: ``(scales, codes)``, the elements rounded as :func:`mpsim.quantize_mx` rounds them.

    ``scales``: uint8 E8M0 codes, the shape of ``x`` with ``axis`` cut to the
    number of blocks. ``codes``: the element bit patterns along ``axis``, one per
    byte (uint8; FP6 in the low 6 bits; elements wider than 8 bits: uint16),
    or two per byte for elements of 4 bits or fewer (FP4), the earlier element
    in the low nibble and an odd axis padded with a zero nibble. Elements of a
    NaN block (scale 0xFF) are the element format's NaN where it has one, else 0.
    """
    fmt, axis, codes, element_codes = _run_blocks(x, fmt, axis, rounding, rand_bits, scale_mode, seed, "codes")
    if fmt.packed_per_byte == 2:
        element_codes = _pack_nibbles(element_codes, axis)
    return codes, np.ascontiguousarray(element_codes)


def decode_mx(
    scales: Any, codes: Any, fmt: str | MXFormat, axis: int = -1, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Float32 values of MX blocks as :func:`encode_mx` lays them out.

    ``shape``: the shape of the values; needed only for packed FP4 codes of an
    odd axis length (default: the codes' shape, the packed axis doubled).
    """
    fmt = parse_mx_format(fmt)
    scales, codes = np.asarray(scales), np.asarray(codes)
    for name, a in (("scales", scales), ("codes", codes)):
        if a.dtype.kind not in "ui":
            raise ValueError(f"MX {name} must be unsigned integers, not dtype {a.dtype}")
        if a.ndim == 0:
            raise ValueError(f"MX {name} must have at least one axis, not a scalar {a!r}")
    axis = _check_axis(codes.shape, axis)
    packed = fmt.packed_per_byte == 2
    if shape is None:
        shape = tuple(n * 2 if packed and i == axis else n for i, n in enumerate(codes.shape))
    shape = tuple(int(n) for n in shape)
    if len(shape) != codes.ndim:
        raise ValueError(f"MX codes with {codes.ndim} axes do not hold values of shape {shape}")
    n = shape[axis]
    want_codes = tuple((m + 1) // 2 if packed and i == axis else m for i, m in enumerate(shape))
    if codes.shape != want_codes:
        raise ValueError(f"MX codes of shape {codes.shape} do not hold values of shape {shape} ({fmt})")
    want_scales = tuple(-(-m // fmt.block_size) if i == axis else m for i, m in enumerate(shape))
    if scales.shape != want_scales:
        raise ValueError(f"MX scales must have shape {want_scales} for values of shape {shape}, not {scales.shape}")
    if (scales > 255).any():
        raise ValueError(f"MX scale codes are 8-bit, not {int(scales.max())!r}")
    if packed:
        codes = _unpack_nibbles(codes, axis, n)
    elements = decode(fmt.element, codes, dtype=np.float64)
    exponents = np.moveaxis(scales.astype(np.int64), axis, -1)
    blocks = _blocks(elements, axis, fmt.block_size)
    values = np.ldexp(blocks, np.where(exponents == SCALE_NAN_CODE, 0, exponents - SCALE_BIAS)[..., None])
    values[exponents == SCALE_NAN_CODE] = np.nan
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(_unblock(values, axis, n)).astype(np.float32)
