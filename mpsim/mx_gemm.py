"""MX GEMMs at the MAC level: :func:`mpsim.qmatmul` with ``mul`` an MX format (:func:`run_mx`).

``A`` (M, K) is put in MX blocks along its rows' K and ``B`` (K, N) along its
columns' K (one MX format for both, or one each of the same block size:
``mul="mxfp8_e4m3,mxfp8_e5m2"``), each by its format's scale rule with its elements rounded by
``GemmConfig.mul_rounding`` (nearest by default, as OCP's conversion does; ``stochastic:K`` for
unbiased operands: :func:`mpsim.mx_quantization.mx_blocks`, as :func:`mpsim.quantize_mx`).
When K is not a multiple of the block size the last block is padded with zero
elements, which add nothing. Then, as an MX dot-product unit does, for every
output ``C[i, j]`` and every block ``k`` in order:

* ``term_k`` = the exact sum of the block's element products times
  ``2**(Ea + Eb)``, the product of the two shared scales (NaN where either
  scale is NaN); with ``GemmConfig.block_sum`` a format, the block sum is
  first rounded to nearest (ties to even) into it;
* ``acc = R_acc(acc + term_k)`` from ``acc = +0``: one rounding per block,
  of the exact value, as the sequential :func:`mpsim.qmatmul` adds a product.

Stochastic bits, from one stream: with stochastic elements, A's elements
take the first ``A.size`` draws (element ``i`` of ``A`` in C order, batch
first, takes draw ``i``), B's the next ``B.size``; then the accumulator's:
block ``k`` of output ``o`` takes the draw that
:func:`mpsim.qmatmul` gives the sum of term ``k`` of output ``o`` for a
reduction of ``nb = ceil(K / block_size)`` terms (:mod:`mpsim.gemm_kernels`).
A MAC array's stream (:class:`~mpsim.randbits.LFSRGrid`) serves the
accumulator only: stochastic elements are refused with it.
The numerics are in :mod:`mpsim.mx_gemm_kernels` (exact for every MX format).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mpsim import gemm_kernels as gk
from mpsim.mx import MXFormat, element_range
from mpsim.mx_gemm_kernels import mx_gemm_sequential
from mpsim.mx_quantization import mx_blocks
from mpsim.randbits import LFSRGrid, RandomSource, make_source

if TYPE_CHECKING:
    from mpsim.gemm import GemmPlan

__all__ = ["block_split", "run_mx"]


def block_split(fmt_a: MXFormat, fmt_b: MXFormat) -> int:
    """Where :func:`mpsim.mx_gemm_kernels.mx_gemm_sequential` cuts each product so that both part sums are exact.

    Products are multiples of ``2**lsb`` below ``2**top``; a block of ``2**w``
    or fewer of them is exact in float64 in two parts cut at ``2**split``
    when ``split + w - lsb <= 53`` and ``top + w - split <= 53``.
    """
    (la, ta), (lb, tb) = element_range(fmt_a), element_range(fmt_b)
    lsb, top = la + lb, ta + tb
    w = max(fmt_a.block_size - 1, 1).bit_length()
    split = lsb + 53 - w
    if top + w - split > 53:
        raise ValueError(f"MX GEMM: block sums of {fmt_a} by {fmt_b} span {top + w - lsb} bits, more than 106")
    return split


def run_mx(
    plan: GemmPlan, a3: np.ndarray, b3: np.ndarray, out: np.ndarray, seed: int | RandomSource | LFSRGrid | None
) -> None:
    """Fill ``out`` (float64, (B, M, N)) with the MX GEMM of float32 ``a3`` (Ba, M, K) and ``b3`` (Bb, K, N)."""
    assert plan.mx is not None
    fmt_a, fmt_b = plan.mx
    split = block_split(fmt_a, fmt_b)
    k_dim, bs = a3.shape[2], fmt_a.block_size
    nb = -(-k_dim // bs)
    elements = plan.mul_rounding
    if elements.stochastic:
        if isinstance(seed, LFSRGrid):
            raise ValueError(
                f"a MAC array's random stream rounds the accumulator only, not MX elements ({elements}): "
                "quantize the operands with quantize_mx first"
            )
        seed = make_source(seed)  # one stream: A's elements, B's, then the accumulator
    sa, ea = mx_blocks(a3, fmt_a, axis=2, rounding=elements, seed=seed)
    sb, eb = mx_blocks(b3, fmt_b, axis=1, rounding=elements, seed=seed)
    source, key, offset, rand = plan.random_inputs(seed, out.size * max(nb, 1) * gk.STAGES, (*out.shape, nb))
    if out.size == 0:
        return
    ea_pad = np.zeros((a3.shape[0], a3.shape[1], nb * bs), dtype=np.float32)
    ea_pad[:, :, :k_dim] = ea
    eb_pad = np.zeros((b3.shape[0], b3.shape[2], nb * bs), dtype=np.float32)
    eb_pad[:, :, :k_dim] = eb.transpose(0, 2, 1)
    sb_t = np.ascontiguousarray(sb.transpose(0, 2, 1))
    block_params = plan.block_sum_params
    round_blocks = block_params is not None
    mx_gemm_sequential(
        ea_pad,
        sa,
        eb_pad,
        sb_t,
        out,
        bs,
        split,
        plan.acc_params,
        source,
        key,
        offset,
        rand,
        round_blocks,
        block_params if block_params is not None else plan.acc_params,
    )
