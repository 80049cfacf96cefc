"""``mpsim.qmatmul``: matrix products with every multiply and add rounded, as an accelerator does.

Accumulation orders (per output element, over the reduction dimension K):

* ``"sequential"``: ``acc = 0; acc = R_acc(acc + p_k)`` for k = 0..K-1 (a MAC unit).
* ``"pairwise"``: a balanced tree: neighbours ``(2w, 2w+1)`` of each level are
  added and rounded; an odd last element moves up a level unchanged.
* ``int B`` (blocked): sequential partial sums over blocks of ``B`` terms, each
  started from 0, then the partial sums added sequentially (a MAC array with
  a K-split, or chunk-based accumulation).

``p_k = R_mul(a_ik * b_kj)`` when ``mul`` is a format, the exact product when
``mul`` is None; ``fma=True`` is the fused multiply-add (no product
rounding; one rounding per step) and excludes ``mul``. Every rounding is of
the exact value (see :mod:`mpsim.gemm_kernels`).

Each call runs the fastest kernel path that is provably bit-identical to the
general one for its operands (:meth:`GemmSpec.kernel_kinds`): from the
formats and the operands' ranges (largest magnitude, finest bit, significant
bits) it proves when products need no rounding, when every sum is exact in
float64 (then the sum itself is rounded, no error term), and when float32
hardware addition is the accumulator's rounding. The exact-sum paths run
guarded: range checks out of the loop, a tile whose results are not all
finite computed again with the checked step (:mod:`mpsim.gemm_kernels`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np

from mpsim import gemm_kernels as gk
from mpsim import kernels
from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.quantize import kernel_params
from mpsim.randbits import LFSR, CounterRNG, LFSRGrid, RandomSource, make_source
from mpsim.rounding import Rounding, RoundingMode, parse_rounding

__all__ = ["GemmSpec", "parse_order", "qmatmul"]

_EMPTY_RAND = np.empty(0, dtype=np.int64)
_FAST_MODES = (RoundingMode.NEAREST, RoundingMode.STOCHASTIC)
#: Stochastic rounding of a pair rounded to odd in float64 reads man_bits + k bits below the leading one.
MAX_PAIR_FRACTION_BITS = 51
#: round_nearest_guarded's magic constant keeps a sum in its binade up to this many mantissa bits.
MAX_GUARDED_MAN_BITS = 49
# Outputs of a parallel work item: 128 KiB of float64 accumulators, in L2. Each step of a tile costs a call and
# its random-bit bookkeeping once; 16384 outputs ran 1.0-1.4x as fast as 2048 (which fit L1) at 256-1024 squared
# (1.1-1.4x for sequential nearest and SR8/SR16 sums; exact SR, bound by its hashes, about the same).
TILE_ELEMENTS = 16384
#: False forces the general path (TwoSum + round_pair, quantize_scalar products): the tests' reference.
_FAST_PATHS = True


def parse_order(order: str | int) -> tuple[int, int]:
    """``"sequential"``, ``"pairwise"`` or a block size ``B >= 1`` -> (kernel order code, block)."""
    if isinstance(order, str):
        key = order.strip().lower()
        if key == "sequential":
            return gk.ORDER_SEQUENTIAL, 0
        if key == "pairwise":
            return gk.ORDER_PAIRWISE, 0
        if key.isascii() and key.isdecimal():
            order = int(key)
        else:
            raise ValueError(f"order must be 'sequential', 'pairwise' or a block size >= 1, not {order!r}")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be 'sequential', 'pairwise' or a block size >= 1, not {order!r}")
    return gk.ORDER_BLOCKED, int(order)


def _guardable(fmt: FloatFormat | FixedFormat | None) -> bool:
    """Whether the guarded roundings of :mod:`mpsim.gemm_kernels` take ``fmt``.

    Their constants must be normal float64 numbers (``2**(1024 - emax)``,
    ``2**(emax - 1024)``, ``1.5 * 2**(52 - man_bits - 1024 + emax)``; a large
    bias gives ``emax <= 0``), and the nearest one's sums stay in their binade
    up to ``MAX_GUARDED_MAN_BITS``.
    """
    return (
        isinstance(fmt, FloatFormat)
        and fmt.man_bits <= MAX_GUARDED_MAN_BITS
        and fmt.emax >= 2
        and fmt.emax - fmt.man_bits >= -50
    )


def exact_params(
    fmt: FloatFormat | FixedFormat | None, rule: Rounding, p: kernels.KernelParams
) -> gk.ExactParams | None:
    """Parameters of the exact-value roundings, or None where they do not apply.

    They take float formats with subnormals, nearest or stochastic rounding
    (any number of random bits).
    """
    if not isinstance(fmt, FloatFormat) or not fmt.subnormals or rule.mode not in _FAST_MODES:
        return None
    shift = 52 - fmt.man_bits
    k = rule.kernel_rand_bits if rule.stochastic else 0
    r_up, r_down = max(shift - k, 0), max(k - shift, 0)  # r to the scale of the discarded bits
    return gk.ExactParams(
        c_shift=np.uint64(shift << 52),
        c_small=np.uint64((fmt.min_exponent + 52 + 1023) << 52),
        trunc=np.uint64(~((1 << shift) - 1) & (2**64 - 1)),
        emin_bits=np.uint64((fmt.emin + 1023) << 52),
        max_value=fmt.max,
        overflow=_overflow_value(fmt, p),
        to_quanta=2.0**-fmt.min_exponent,
        quantum=2.0**fmt.min_exponent,
        k=np.uint64(k),
        k_scale=2.0**k,
        r_down=np.uint64(r_down),
        r_up=np.uint64(r_up),
        r_kept=np.uint64(k - r_down),
        r_mask=np.uint64(((1 << (k - r_down)) - 1) << r_up),
        zero=0.0 if p.unsigned_zero else -0.0,
        emin_value=2.0**fmt.emin,
        emax_bits=np.uint64((fmt.emax + 1023) << 52),
        guard_scale=2.0 ** (1024 - fmt.emax) if _guardable(fmt) else math.nan,
        magic_scale=1.5 * 2.0 ** (52 - fmt.man_bits - 1024 + fmt.emax) if _guardable(fmt) else math.nan,
    )


def _overflow_value(fmt: FloatFormat, p: kernels.KernelParams) -> float:
    """Magnitude that nearest or stochastic rounding gives beyond max: Inf, NaN or max."""
    if p.saturate:
        return fmt.max
    return math.inf if fmt.has_inf else math.nan if fmt.has_nan else fmt.max


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


def fits(prod: Products, fmt: FloatFormat | FixedFormat, p: kernels.KernelParams) -> bool:
    """Whether every product is a value of the float format, so rounding into it changes nothing."""
    if not isinstance(fmt, FloatFormat) or p.unsigned_zero:  # fnuz: -0 would become +0
        return False
    if prod.inf and not (fmt.has_inf and not p.saturate):
        return False
    # with at most man_bits+1 significant bits, on the grid of the smallest quantum, within max
    return prod.sig <= fmt.man_bits + 1 and prod.lsb >= fmt.min_exponent and prod.max <= fmt.max


class GemmSpec:
    """A parsed (mul, acc, rounding, order) configuration; builds kernel setups."""

    def __init__(
        self,
        mul: str | FloatFormat | FixedFormat | None,
        acc: str | FloatFormat | FixedFormat | None,
        rounding: str | Rounding = "nearest",
        *,
        mul_rounding: str | Rounding = "nearest",
        fma: bool = False,
        order: str | int = "sequential",
        saturate: bool | None = None,
    ) -> None:
        self.mul = None if mul is None else parse_format(mul)
        self.acc = parse_format("fp32") if acc is None else parse_format(acc)
        self.rounding = parse_rounding(rounding)
        self.mul_rounding = parse_rounding(mul_rounding)
        if not isinstance(fma, bool):
            raise ValueError(f"fma must be True or False, not {fma!r}")
        if fma and self.mul is not None:
            raise ValueError(f"fma=True rounds once per step: it excludes a product format, got mul={self.mul}")
        self.fma = fma
        self.order, self.block = parse_order(order)
        self.order_name = order
        self.saturate = saturate
        self.acc_params = kernel_params(self.acc, self.rounding, saturate)
        self.mul_params = kernel_params(self.mul if self.mul is not None else self.acc, self.mul_rounding, saturate)
        self.acc_exact = exact_params(self.acc, self.rounding, self.acc_params)
        self.mul_exact = exact_params(self.mul, self.mul_rounding, self.mul_params)
        # the round-to-odd pair path (see mpsim.gemm_kernels)
        self.acc_pair = self.acc_exact is not None and (
            not self.rounding.stochastic or self.acc.man_bits + self.rounding.kernel_rand_bits <= MAX_PAIR_FRACTION_BITS
        )

    @property
    def stochastic(self) -> bool:
        return self.rounding.stochastic or (self.mul is not None and self.mul_rounding.stochastic)

    def random_inputs(
        self, seed: int | RandomSource | LFSRGrid | None, draws: int, shape: tuple[int, int, int, int] | None = None
    ) -> tuple[int, np.uint64, np.uint64, np.ndarray]:
        """(source kind, counter key, counter offset, explicit bits) for ``draws`` numbered draws.

        ``shape`` (B, M, N, K) places the draws of an :class:`~mpsim.randbits.LFSRGrid` (a MAC array's stream).
        """
        if not self.stochastic:
            return kernels.SOURCE_NONE, np.uint64(0), np.uint64(0), _EMPTY_RAND
        if isinstance(seed, LFSRGrid):
            if shape is None:
                raise ValueError("an LFSRGrid source needs the product's shape (B, M, N, K)")
            mul_rounding = self.mul_rounding if self.mul is not None else None
            return (
                kernels.SOURCE_ARRAY,
                np.uint64(0),
                np.uint64(0),
                seed.gemm_draws(shape, self.rounding, mul_rounding, self.order_name),
            )
        source = make_source(seed)
        if isinstance(source, CounterRNG):
            return kernels.SOURCE_COUNTER, np.uint64(source.key), np.uint64(source.reserve(draws)), _EMPTY_RAND
        assert isinstance(source, LFSR)
        return kernels.SOURCE_ARRAY, np.uint64(0), np.uint64(0), source.draw(draws, self._lfsr_bits())

    def run(self, a3: np.ndarray, b3: np.ndarray, out: np.ndarray, seed: int | RandomSource | None) -> None:
        """Fill ``out`` (float64, (batch, M, N)) with the product of 3-D float32 ``a3`` and ``b3``."""
        draws = out.size * max(a3.shape[2], 1) * gk.STAGES
        source, key, offset, rand = self.random_inputs(seed, draws, (*out.shape, a3.shape[2]))
        if out.size == 0:
            return
        prod_kind, step_kind = self.kernel_kinds(a3, b3)
        gk.qgemm(
            a3,
            b3,
            out,
            prod_kind,
            self.mul_params,
            self.mul_exact if self.mul_exact is not None else _NO_EXACT,
            step_kind,
            self.acc_params,
            self.acc_exact if self.acc_exact is not None else _NO_EXACT,
            self.order,
            self.block,
            source,
            key,
            offset,
            rand,
            *tile_shape(*out.shape),
        )

    def kernel_kinds(self, a3: np.ndarray, b3: np.ndarray) -> tuple[int, int]:
        """(product kind, step kind) for these operands: the fastest path that gives the general path's bits."""
        if not _FAST_PATHS:
            return (gk.PROD_EXACT if self.mul is None else gk.PROD_GENERAL), gk.STEP_GENERAL
        prod = products_of(a3, b3)
        prod_kind = self._product_kind(prod)
        return prod_kind, self._step_kind(prod, prod_kind, a3.shape[2])

    def _product_kind(self, prod: Products) -> int:
        if self.mul is None or fits(prod, self.mul, self.mul_params):
            return gk.PROD_EXACT
        if self.mul_exact is None:
            return gk.PROD_GENERAL
        mul = self.mul
        assert isinstance(mul, FloatFormat)
        if self.mul_rounding.stochastic:
            # the guarded rounding adds 2**emin to subnormal products: exact on a grid of 2**(emin-52)
            return gk.PROD_STOCHASTIC_GUARDED if prod.lsb >= mul.emin - 52 else gk.PROD_STOCHASTIC
        return gk.PROD_NEAREST_GUARDED if _guardable(mul) else gk.PROD_NEAREST

    def _step_kind(self, prod: Products, prod_kind: int, k_dim: int) -> int:
        if self._acc_is_binary32_nearest() and (self.mul is not None or fits(prod, _FP32, _FP32_PARAMS)):
            return gk.STEP_F32  # every format's values are float32 values, rounded products too
        if self.acc_exact is not None:
            grid, term_max = self._term_range(prod, prod_kind)
            if self._sums_exact(grid, term_max, k_dim):
                acc = self.acc
                assert isinstance(acc, FloatFormat)
                on_grid = grid >= acc.min_exponent  # nothing rounds to zero
                if not self.rounding.stochastic:
                    if not _guardable(acc):
                        return gk.STEP_NEAREST
                    if not on_grid:
                        return gk.STEP_NEAREST_GUARDED
                    # a sequential sum never meets -0 + -0; a pairwise tree adds two terms
                    pairwise = self.order == gk.ORDER_PAIRWISE
                    return gk.STEP_NEAREST_ON_GRID_SIGNED if pairwise else gk.STEP_NEAREST_ON_GRID
                if on_grid and _guardable(acc) and not (prod.nan or prod.inf):
                    return gk.STEP_STOCHASTIC_ON_GRID  # (adding r to the bits of a NaN could carry out of it)
                # the guarded step adds 2**emin to subnormal sums: exact when the terms are multiples of 2**(emin-52)
                return gk.STEP_STOCHASTIC_GUARDED if grid >= acc.emin - 52 else gk.STEP_STOCHASTIC
        return gk.STEP_PAIR if self.acc_pair else gk.STEP_GENERAL

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

    def _term_range(self, prod: Products, prod_kind: int) -> tuple[int, float]:
        """(g, t): every finite term is a multiple of 2**g of magnitude at most t."""
        if prod_kind == gk.PROD_EXACT:
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
        if self.order == gk.ORDER_SEQUENTIAL:
            depth = k_dim
        elif self.order == gk.ORDER_PAIRWISE:
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

    def __repr__(self) -> str:
        return (
            f"GemmSpec(mul={self.mul}, acc={self.acc}, rounding={self.rounding}, "
            f"mul_rounding={self.mul_rounding}, fma={self.fma}, order={self.order_name!r})"
        )


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


def qmatmul_numpy(a: np.ndarray, b: np.ndarray, spec: GemmSpec, seed: int | RandomSource | None = None) -> np.ndarray:
    """:func:`qmatmul` on NumPy arrays (float32 result)."""
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
    spec.run(a3, b3, out, seed)
    result = out.astype(np.float32)
    return result[0] if squeeze else result


def qmatmul(
    a: Any,
    b: Any,
    *,
    mul: str | FloatFormat | FixedFormat | None = None,
    acc: str | FloatFormat | FixedFormat | None = "fp32",
    rounding: str | Rounding = "nearest",
    mul_rounding: str | Rounding = "nearest",
    fma: bool = False,
    order: str | int = "sequential",
    seed: int | RandomSource | None = None,
    saturate: bool | None = None,
) -> Any:
    """Matrix product with every product rounded to ``mul`` and every addition to ``acc``.

    ``a``: (M, K) or (B, M, K); ``b``: (K, N) or (B, K, N); a batch of 1
    broadcasts. NumPy arrays or torch CPU tensors (float32, or float64 holding
    float32 values); returns the same type, float32. ``rounding`` is the
    accumulator's rounding (``"stochastic:K"``...), ``mul_rounding`` the
    products'; ``order`` is ``"sequential"``, ``"pairwise"`` or a block size.
    Stochastic bits come from ``seed`` (int, CounterRNG or LFSR), ``k`` bits per
    rounding, placed in the stream as :mod:`mpsim.gemm_kernels` documents (a
    CounterRNG's 64-bit words are shared by runs of ``64 // k`` steps).
    """
    spec = GemmSpec(mul, acc, rounding, mul_rounding=mul_rounding, fma=fma, order=order, saturate=saturate)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return qmatmul_numpy(a, b, spec, seed)
    if type(a).__module__.startswith("torch") or type(b).__module__.startswith("torch"):
        from mpsim.torch_glue import qmatmul_tensors

        return qmatmul_tensors(a, b, spec, seed)
    raise ValueError(f"qmatmul takes NumPy arrays or torch tensors, not {type(a).__name__} and {type(b).__name__}")
