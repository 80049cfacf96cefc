"""GEMM plans and the NumPy side of ``mpsim.qmatmul``: every multiply and add rounded, as an accelerator does.

Accumulation orders (per output element, over the reduction dimension K):

* ``"sequential"``: ``acc = 0; acc = R_acc(acc + p_k)`` for k = 0..K-1 (a MAC unit).
* ``"pairwise"``: a balanced tree: neighbours ``(2w, 2w+1)`` of each level are
  added and rounded; an odd last element moves up a level unchanged.
* ``int B`` (blocked): sequential partial sums over blocks of ``B`` terms, each
  started from 0, then the partial sums added sequentially (a MAC array with
  a K-split, or chunk-based accumulation).

``p_k = R_mul(a_ik * b_kj)`` when ``mul`` is a format, the exact product when
``mul`` is None (a fused multiply-add: one rounding per step). Every rounding
is of the exact value (see :mod:`mpsim.gemm_kernels`).

Each call runs the fastest kernel path that is provably bit-identical to the
general one for its operands (:meth:`GemmPlan.kernel_kinds`): from the
formats and the operands' ranges (largest magnitude, finest bit, significant
bits) it proves when products need no rounding, when every sum is exact in
float64 (then the sum itself is rounded, no error term), and when float32
hardware addition is the accumulator's rounding. The exact-sum paths run
guarded: range checks out of the loop, a tile whose results are not all
finite computed again with the checked step (:mod:`mpsim.gemm_kernels`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from mpsim import gemm_kernels as gk
from mpsim import mx_gemm
from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.gemm_config import GemmConfig, OrderKind, parse_order
from mpsim.gemm_kernels import ProductKind, StepKind
from mpsim.mx import MXFormat
from mpsim.params import (
    SOURCE_ARRAY,
    SOURCE_COUNTER,
    SOURCE_NONE,
    ExactParams,
    KernelParams,
    exact_params,
    guardable,
    kernel_params,
)
from mpsim.randbits import LFSR, CounterRNG, LFSRGrid, RandomSource, make_source
from mpsim.rounding import Rounding, RoundingMode, parse_rounding

__all__ = ["GemmPlan", "ProductKind", "StepKind", "plan_of", "qmatmul_array"]

_EMPTY_RAND = np.empty(0, dtype=np.int64)
#: Stochastic rounding of a pair rounded to odd in float64 reads man_bits + k bits below the leading one.
MAX_PAIR_FRACTION_BITS = 51
# Outputs of a parallel work item: 128 KiB of float64 accumulators, in L2. Each step of a tile costs a call and
# its random-bit bookkeeping once, so a larger tile shares it over more outputs (measured 1.0-1.4x at 256-1024
# squared against 2048 outputs, which fit L1); a pairwise tree's stack of levels must still fit L2.
TILE_ELEMENTS = 16384
#: False forces the general path (TwoSum + round_pair, quantize_scalar products): the tests' reference.
_FAST_PATHS = True

_FP32 = parse_format("fp32")
_FP32_PARAMS = kernel_params(_FP32, parse_rounding("nearest"))
_NO_EXACT = exact_params(_FP32, parse_rounding("nearest"), _FP32_PARAMS)  # stands in where a path has none


def tile_shape(batch: int, m: int, n: int) -> tuple[int, int]:
    """Rows and columns of a parallel work item.

    Up to ``MAX_TILE_ROWS`` x ``TILE_ELEMENTS / rows`` outputs: per-step
    overheads are shared by every output of a tile and a converted row of b
    by every row, while its accumulators stay in the L2 cache; fewer rows
    where that leaves fewer than two items per thread.
    """
    threads = numba.get_num_threads()
    rows = min(gk.MAX_TILE_ROWS, m)
    while True:
        cols = min(n, max(1, TILE_ELEMENTS // rows))
        if rows == 1 or batch * -(-m // rows) * -(-n // cols) >= 2 * threads:
            return rows, cols
        rows //= 2


class Products(NamedTuple):
    """What the operands' ranges say about every finite product ``a_ik * b_kj``."""

    lsb: int  # each is a multiple of 2**lsb
    sig: int  # ... with at most sig significant bits
    max: float  # ... and magnitude at most max
    inf: bool  # an operand holds an infinity
    nan: bool = False  # an operand holds a NaN (every path propagates them)


def products_of(a3: np.ndarray, b3: np.ndarray) -> Products:
    """:class:`Products` of two contiguous float32 operands (one pass over each)."""
    a_max, a_lsb, a_sig, a_inf, a_nan = gk.operand_stats(a3.reshape(-1).view(np.uint32))
    b_max, b_lsb, b_sig, b_inf, b_nan = gk.operand_stats(b3.reshape(-1).view(np.uint32))
    inf, nan = a_inf or b_inf, a_nan or b_nan
    if gk.LSB_NONE in (a_lsb, b_lsb):  # no nonzero finite product: any grid will do
        return Products(lsb=gk.LSB_NONE, sig=0, max=0.0, inf=inf, nan=nan)
    magnitude = float(np.uint32(a_max).view(np.float32)) * float(np.uint32(b_max).view(np.float32))  # exact
    return Products(lsb=a_lsb + b_lsb, sig=a_sig + b_sig, max=magnitude, inf=inf, nan=nan)


def fits(prod: Products, fmt: FloatFormat | FixedFormat, p: KernelParams) -> bool:
    """Whether every product is a value of the float format, so rounding into it changes nothing."""
    if not isinstance(fmt, FloatFormat) or p.unsigned_zero:  # fnuz: -0 would become +0
        return False
    if prod.inf and not (fmt.has_inf and not p.saturate):
        return False
    # with at most man_bits+1 significant bits, on the grid of the smallest quantum, within max
    return prod.sig <= fmt.man_bits + 1 and prod.lsb >= fmt.min_exponent and prod.max <= fmt.max


@dataclass(frozen=True)
class GemmPlan:
    """What the kernels need of a :class:`~mpsim.gemm_config.GemmConfig`, built once (:func:`plan_of`).

    Holds the parsed formats and roundings, the order, and the kernel
    parameter records; :meth:`kernel_kinds` picks, per call, the fastest
    product and step kinds that give the general path's bits.
    """

    config: GemmConfig
    mul: FloatFormat | FixedFormat | None
    acc: FloatFormat | FixedFormat
    rounding: Rounding
    mul_rounding: Rounding
    order: OrderKind
    block: int
    acc_params: KernelParams
    mul_params: KernelParams
    acc_exact: ExactParams | None
    mul_exact: ExactParams | None
    acc_pair: bool  # the round-to-odd pair path applies (see mpsim.gemm_kernels)
    mx: tuple[MXFormat, MXFormat] | None = None  # an MX GEMM (mpsim.mx_gemm): A's and B's block formats
    block_sum_params: KernelParams | None = None  # an MX GEMM's block sums rounded to nearest under these

    @classmethod
    def build(cls, config: GemmConfig) -> GemmPlan:
        """The plan of ``config`` (:func:`plan_of` caches it)."""
        if not config.emulate:
            raise ValueError("a GemmConfig with emulate=False is torch.matmul's product in fp32, not an mpsim GEMM")
        mul, acc = config.mul_format, config.acc_format
        rounding, mul_rounding = config.acc_rounding, config.mul_rounding_rule
        order, block = parse_order(config.order)
        acc_params = kernel_params(acc, rounding, config.saturate)
        mul_params = kernel_params(mul if mul is not None else acc, mul_rounding, config.saturate)
        acc_exact = exact_params(acc, rounding, acc_params)
        acc_pair = acc_exact is not None and (
            not rounding.stochastic or acc.man_bits + rounding.kernel_rand_bits <= MAX_PAIR_FRACTION_BITS
        )
        return cls(
            config=config,
            mul=mul,
            acc=acc,
            rounding=rounding,
            mul_rounding=mul_rounding,
            order=order,
            block=block,
            acc_params=acc_params,
            mul_params=mul_params,
            acc_exact=acc_exact,
            mul_exact=exact_params(mul, mul_rounding, mul_params),
            acc_pair=acc_pair,
            mx=config.mx_formats,
            block_sum_params=None
            if config.block_sum_format is None
            else kernel_params(config.block_sum_format, parse_rounding("nearest"), config.saturate),
        )

    @property
    def stochastic(self) -> bool:
        return self.config.stochastic

    def random_inputs(
        self, seed: int | RandomSource | LFSRGrid | None, draws: int, shape: tuple[int, int, int, int] | None = None
    ) -> tuple[int, np.uint64, np.uint64, np.ndarray]:
        """(source kind, counter key, counter offset, explicit bits) for ``draws`` numbered draws.

        ``shape`` (B, M, N, K) places the draws of an :class:`~mpsim.randbits.LFSRGrid` (a MAC array's stream).
        """
        if not self.stochastic:
            return SOURCE_NONE, np.uint64(0), np.uint64(0), _EMPTY_RAND
        if isinstance(seed, LFSRGrid):
            if shape is None:
                raise ValueError("an LFSRGrid source needs the product's shape (B, M, N, K)")
            mul_rounding = self.mul_rounding if self.mul is not None else None
            return (
                SOURCE_ARRAY,
                np.uint64(0),
                np.uint64(0),
                seed.gemm_draws(shape, self.rounding, mul_rounding, self.config.order),
            )
        source = make_source(seed)
        if isinstance(source, CounterRNG):
            return SOURCE_COUNTER, np.uint64(source.key), np.uint64(source.reserve(draws)), _EMPTY_RAND
        assert isinstance(source, LFSR)
        return SOURCE_ARRAY, np.uint64(0), np.uint64(0), source.draw(draws, self._lfsr_bits())

    def run(self, a3: np.ndarray, b3: np.ndarray, out: np.ndarray, seed: int | RandomSource | None) -> None:
        """Fill ``out`` (float64, (batch, M, N)) with the product of 3-D float32 ``a3`` and ``b3``."""
        if self.mx is not None:
            mx_gemm.run_mx(self, a3, b3, out, seed)
            return
        draws = out.size * max(a3.shape[2], 1) * gk.STAGES
        source, key, offset, rand = self.random_inputs(seed, draws, (*out.shape, a3.shape[2]))
        if out.size == 0:
            return
        prod_kind, step_kind = self.kernel_kinds(a3, b3)
        args = gk.GemmArgs(
            prod_kind=int(prod_kind),
            mul=self.mul_params,
            mul_x=self.mul_exact if self.mul_exact is not None else _NO_EXACT,
            acc=self.acc_params,
            acc_x=self.acc_exact if self.acc_exact is not None else _NO_EXACT,
            order=int(self.order),
            block=self.block,
            source=source,
            key=key,
            offset=offset,
            rand=rand,
        )
        gk.qgemm(a3, b3, out, args, int(step_kind), *tile_shape(*out.shape))

    def kernel_kinds(self, a3: np.ndarray, b3: np.ndarray) -> tuple[ProductKind, StepKind]:
        """(product kind, step kind) for these operands: the fastest path that gives the general path's bits."""
        if not _FAST_PATHS:
            return (ProductKind.EXACT if self.mul is None else ProductKind.GENERAL), StepKind.GENERAL
        prod = products_of(a3, b3)
        prod_kind = self._product_kind(prod)
        return prod_kind, self._step_kind(prod, prod_kind, a3.shape[2])

    def _product_kind(self, prod: Products) -> ProductKind:
        if self.mul is None or fits(prod, self.mul, self.mul_params):
            return ProductKind.EXACT
        if self.mul_exact is None:
            return ProductKind.GENERAL
        mul = self.mul
        assert isinstance(mul, FloatFormat)
        if self.mul_rounding.stochastic:
            # the guarded rounding adds 2**emin to subnormal products: exact on a grid of 2**(emin-52)
            return ProductKind.STOCHASTIC_GUARDED if prod.lsb >= mul.emin - 52 else ProductKind.STOCHASTIC
        return ProductKind.NEAREST_GUARDED if guardable(mul) else ProductKind.NEAREST

    def _step_kind(self, prod: Products, prod_kind: ProductKind, k_dim: int) -> StepKind:
        if self._acc_is_binary32_nearest() and (self.mul is not None or fits(prod, _FP32, _FP32_PARAMS)):
            return StepKind.F32  # every format's values are float32 values, rounded products too
        if self.acc_exact is not None:
            grid, term_max = self._term_range(prod, prod_kind)
            if self._sums_exact(grid, term_max, k_dim):
                acc = self.acc
                assert isinstance(acc, FloatFormat)
                on_grid = grid >= acc.min_exponent  # nothing rounds to zero
                if not self.rounding.stochastic:
                    if not guardable(acc):
                        return StepKind.NEAREST
                    if not on_grid:
                        return StepKind.NEAREST_GUARDED
                    # a sequential sum never meets -0 + -0; a pairwise tree adds two terms
                    pairwise = self.order == OrderKind.PAIRWISE
                    return StepKind.NEAREST_ON_GRID_SIGNED if pairwise else StepKind.NEAREST_ON_GRID
                if on_grid and guardable(acc) and not (prod.nan or prod.inf):
                    return StepKind.STOCHASTIC_ON_GRID  # (adding r to the bits of a NaN could carry out of it)
                # the guarded step adds 2**emin to subnormal sums: exact when the terms are multiples of 2**(emin-52)
                return StepKind.STOCHASTIC_GUARDED if grid >= acc.emin - 52 else StepKind.STOCHASTIC
        return StepKind.PAIR if self.acc_pair else StepKind.GENERAL

    def _acc_is_binary32_nearest(self) -> bool:
        """IEEE binary32 with round-to-nearest-even and overflow to Inf: float32 hardware addition."""
        acc, p = self.acc, self.acc_params
        binary32 = (23, -126, 127, True, True, True)
        return (
            isinstance(acc, FloatFormat)
            and (acc.man_bits, acc.emin, acc.emax, acc.subnormals, acc.has_inf, acc.has_nan) == binary32
            and not p.saturate
            and not p.unsigned_zero
            and self.rounding.mode == RoundingMode.NEAREST
        )

    def _term_range(self, prod: Products, prod_kind: ProductKind) -> tuple[int, float]:
        """(g, t): every finite term is a multiple of 2**g of magnitude at most t."""
        if prod_kind == ProductKind.EXACT:
            return prod.lsb, prod.max
        mul = self.mul
        if isinstance(mul, FixedFormat):
            return -mul.frac_bits, 2.0**mul.int_bits
        # rounding keeps a product's grid or moves it to a coarser quantum, or to max on overflow
        grid = max(mul.min_exponent, min(prod.lsb, mul.emax - mul.man_bits))
        return grid, min(mul.max, prod.max * (1.0 + 2.0**-mul.man_bits) + 2.0**mul.min_exponent)

    def _sums_exact(self, grid: int, term_max: float, k_dim: int) -> bool:
        """Whether every sum of the accumulation is exact in float64, for terms from :meth:`_term_range`.

        Every value summed (term or rounded sum) is a multiple of ``2**g``,
        ``g = min(grid, emax - man_bits)``: a rounding keeps the grid of its
        input or moves to a coarser quantum (or max). A sum of two such values
        below ``2**(g + 53)`` is a float64. The magnitude bound: a rounding
        adds at most ``u |x| + 2**min_exponent`` (``u = 2**-man_bits``, half
        for nearest), so a node of depth ``d`` over terms summing to at most
        ``S`` is at most ``(S + d 2**min_exponent) (1 + u)**d``; and every
        finite summand is at most ``max(acc max, term_max)``.
        """
        if k_dim == 0:
            return True
        acc = self.acc
        assert isinstance(acc, FloatFormat)
        grid = min(grid, acc.emax - acc.man_bits)
        if self.order == OrderKind.SEQUENTIAL:
            depth = k_dim
        elif self.order == OrderKind.PAIRWISE:
            depth = k_dim.bit_length()
        else:
            depth = min(k_dim, self.block) + -(-k_dim // self.block)
        u = 2.0 ** -(acc.man_bits + (0 if self.rounding.stochastic else 1))
        growth = math.log2(k_dim * term_max + depth * 2.0**acc.min_exponent) + depth * math.log1p(u) / math.log(2.0)
        log_bound = min(growth, math.log2(2.0 * max(acc.max, term_max)))
        return log_bound < grid + 52  # one bit of margin over 53 for the float arithmetic of the bound

    def _lfsr_bits(self) -> int:
        counts = {r.rand_bits for r in (self.rounding, self.mul_rounding) if r.stochastic}
        if None in counts:
            raise ValueError("an LFSR source needs a finite number of random bits (rounding 'stochastic:K'), not None")
        if len(counts) > 1:
            raise ValueError(f"an LFSR source hands out one bit count per rounding; mul and acc ask {sorted(counts)}")
        return counts.pop()


def _as_float32_3d(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype == np.float32:
        arr = x
    elif x.dtype == np.float64:
        arr = x.astype(np.float32)
        same = (arr.astype(np.float64) == x) | (np.isnan(x) & np.isnan(arr))
        if not same.all():
            bad = float(x.reshape(-1)[np.flatnonzero(~same.reshape(-1))[0]])
            raise ValueError(
                f"qmatmul {name} must hold float32 values (products are exact in float64 only then); "
                f"{bad!r} is not one: quantize the input first"
            )
    else:
        raise ValueError(f"qmatmul takes float32 (or float32-valued float64) arrays, not {name} of dtype {x.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"qmatmul {name} must be 2-D or 3-D (batched), not {arr.ndim}-D")
    return np.ascontiguousarray(arr)


@functools.lru_cache(maxsize=256)
def plan_of(config: GemmConfig) -> GemmPlan:
    """The plan of ``config``, built once per distinct config (a layer's GEMMs reuse theirs every step)."""
    return GemmPlan.build(config)


def qmatmul_array(
    a: np.ndarray, b: np.ndarray, plan: GemmPlan, seed: int | RandomSource | LFSRGrid | None = None
) -> np.ndarray:
    """:func:`mpsim.qmatmul` of NumPy arrays under ``plan`` (float32 result)."""
    squeeze = a.ndim == 2 and b.ndim == 2
    a3 = _as_float32_3d(a, "a")
    b3 = _as_float32_3d(b, "b")
    if a3.shape[2] != b3.shape[1]:
        raise ValueError(f"qmatmul shapes {a.shape} and {b.shape} do not match: {a3.shape[2]} != {b3.shape[1]}")
    if a3.shape[0] != b3.shape[0] and 1 not in (a3.shape[0], b3.shape[0]):
        raise ValueError(f"qmatmul batch sizes {a3.shape[0]} and {b3.shape[0]} differ and neither is 1")
    batch = max(a3.shape[0], b3.shape[0])
    m, n = a3.shape[1], b3.shape[2]
    out = np.empty((batch, m, n), dtype=np.float64)
    plan.run(a3, b3, out, seed)
    result = out.astype(np.float32)
    return result[0] if squeeze else result
