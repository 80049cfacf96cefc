"""MX stimulus: float data with the edge cases of MX blocks, and the codes an MX array takes (element and scale codes).

The operands are quantized on the host, as :func:`mpsim.qmatmul` quantizes
them (:func:`mpsim.encode_mx`, the format's scale rule, elements to nearest),
so the hardware's input and mpsim's reference come from the same float data.
"""

from __future__ import annotations

import numpy as np

import mpsim
from mpsim.mx import MXFormat, parse_mx_format

__all__ = ["mx_codes", "mx_values"]


def mx_values(rng: np.random.Generator, shape: tuple[int, ...], axis: int, block: int) -> np.ndarray:
    """Float32 data whose MX blocks along ``axis`` cover the edge cases.

    Each block gets its own magnitude ``2**e``: mostly near 1, some at the
    ends of E8M0's range (``e`` from -150 to 126, giving scale codes near 0
    and near the top), elements spread over up to 2**-14 below the block's
    largest (subnormal elements after scaling); some blocks all zero, some
    elements zero or exact negatives of their neighbour (cancellation), and
    rarely a NaN (the block's scale is 0xFF) or an Inf (scale code 254, E = 127,
    elements saturated).
    """
    axis = axis % len(shape)
    moved = (*shape[:axis], *shape[axis + 1 :], shape[axis])
    n = moved[-1]
    blocks = -(-n // block)
    wide = rng.random((*moved[:-1], blocks)) < 0.06
    exps = np.where(wide, rng.integers(-150, 127, wide.shape), rng.integers(-10, 6, wide.shape))
    spread = np.where(rng.random(moved) < 0.3, rng.integers(0, 15, moved), 0)
    x = rng.standard_normal(moved) * np.exp2(np.repeat(exps, block, axis=-1)[..., :n] - spread)
    x = np.where(rng.random(moved) < 0.1, 0.0, x)
    zero_block = np.repeat(rng.random(exps.shape) < 0.05, block, axis=-1)[..., :n]
    x = np.where(zero_block, 0.0, x)
    if n > 1:
        cancel = rng.random((*moved[:-1], n - 1)) < 0.1
        x[..., 1:] = np.where(cancel, -x[..., :-1], x[..., 1:])
    pick = rng.random(moved)
    x = np.where(pick < 0.002, np.nan, x)
    x = np.where((pick >= 0.002) & (pick < 0.004), np.inf * np.sign(rng.standard_normal(moved)), x)
    with np.errstate(over="ignore"):
        return np.moveaxis(x.astype(np.float32), -1, axis)


def mx_codes(x: np.ndarray, fmt: str | MXFormat, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scales, codes)`` of ``x`` in MX blocks along ``axis`` as an MX array takes them: E8M0 scale codes (the
    shape of ``x`` with ``axis`` cut to the blocks) and one element code per element (FP4 unpacked), int64."""
    fmt = parse_mx_format(fmt)
    scales, codes = mpsim.encode_mx(x, fmt, axis=axis)
    if fmt.packed_per_byte == 2:
        moved = np.moveaxis(codes, axis, -1)
        both = np.stack([moved & 0x0F, moved >> 4], axis=-1).reshape(*moved.shape[:-1], -1)
        codes = np.moveaxis(both[..., : x.shape[axis]], -1, axis)
    return scales.astype(np.int64), codes.astype(np.int64)
