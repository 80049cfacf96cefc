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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpsim import gemm_kernels as gk
from mpsim import kernels
from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.quantize import kernel_params
from mpsim.randbits import LFSR, CounterRNG, RandomSource, make_source
from mpsim.rounding import Rounding, RoundingMode, parse_rounding

__all__ = ["qmatmul", "GemmSpec", "parse_order"]

_EMPTY_RAND = np.empty(0, dtype=np.int64)
_FAST_MODES = (RoundingMode.NEAREST, RoundingMode.STOCHASTIC)
MAX_FAST_RAND_BITS = 29


def parse_order(order: "str | int") -> tuple[int, int]:
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


def float64_params(fmt: FloatFormat | FixedFormat | None, rule: Rounding, p: kernels.KernelParams) -> tuple[gk.Float64Params, bool]:
    """Parameters of the branch-free pair rounding and whether it applies."""
    dummy = gk.Float64Params(shift=1, emin_bits=0, max_bits=0, overflow_bits=0, inf_bits=0, to_quanta=1.0, quantum=1.0)
    if fmt is None or isinstance(fmt, FixedFormat) or rule.mode not in _FAST_MODES:
        return dummy, False
    if rule.stochastic and rule.kernel_rand_bits > MAX_FAST_RAND_BITS:
        return dummy, False
    max_bits = int(np.float64(fmt.max).view(np.int64))
    if p.saturate:
        overflow_bits = max_bits
    else:
        overflow_bits = 0x7FF0000000000000 if fmt.has_inf else 0x7FF8000000000000 if fmt.has_nan else max_bits
    min_exponent = fmt.min_exponent
    return (
        gk.Float64Params(
            shift=52 - fmt.man_bits,
            emin_bits=(fmt.emin + 1023) << 52,
            max_bits=max_bits,
            overflow_bits=overflow_bits,
            inf_bits=overflow_bits,
            to_quanta=2.0**-min_exponent,
            quantum=2.0**min_exponent,
        ),
        True,
    )


class GemmSpec:
    """A parsed (mul, acc, rounding, order) configuration; builds kernel setups."""

    def __init__(
        self,
        mul: "str | FloatFormat | FixedFormat | None",
        acc: "str | FloatFormat | FixedFormat | None",
        rounding: "str | Rounding" = "nearest",
        *,
        mul_rounding: "str | Rounding" = "nearest",
        fma: bool = False,
        order: "str | int" = "sequential",
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
        self.acc_fast, self.acc_is_fast = float64_params(self.acc, self.rounding, self.acc_params)
        self.mul_fast, self.mul_is_fast = float64_params(self.mul, self.mul_rounding, self.mul_params)

    @property
    def stochastic(self) -> bool:
        return self.rounding.stochastic or (self.mul is not None and self.mul_rounding.stochastic)

    def random_inputs(self, seed: "int | RandomSource | None", draws: int) -> tuple[int, np.uint64, np.uint64, np.ndarray]:
        """(source kind, counter key, counter offset, explicit bits) for ``draws`` numbered draws."""
        if not self.stochastic:
            return kernels.SOURCE_NONE, np.uint64(0), np.uint64(0), _EMPTY_RAND
        source = make_source(seed)
        if isinstance(source, CounterRNG):
            return kernels.SOURCE_COUNTER, np.uint64(source.key), np.uint64(source.reserve(draws)), _EMPTY_RAND
        assert isinstance(source, LFSR)
        return kernels.SOURCE_ARRAY, np.uint64(0), np.uint64(0), source.draw(draws, self._lfsr_bits())

    def run(self, a3: np.ndarray, b3: np.ndarray, out: np.ndarray, seed: "int | RandomSource | None") -> None:
        """Fill ``out`` (float64, (batch, M, N)) with the product of 3-D float32 ``a3`` and ``b3``."""
        draws = out.size * max(a3.shape[2], 1) * gk.STAGES
        source, key, offset, rand = self.random_inputs(seed, draws)
        if out.size == 0:
            return
        gk.qgemm(
            a3, b3, out, self.mul is not None, self.mul_params, self.mul_fast, self.mul_is_fast,
            self.acc_params, self.acc_fast, self.acc_is_fast, self.order, self.block,
            source, key, offset, rand,
        )  # fmt: skip

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


def qmatmul_numpy(a: np.ndarray, b: np.ndarray, spec: GemmSpec, seed: "int | RandomSource | None" = None) -> np.ndarray:
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
    mul: "str | FloatFormat | FixedFormat | None" = None,
    acc: "str | FloatFormat | FixedFormat | None" = "fp32",
    rounding: "str | Rounding" = "nearest",
    mul_rounding: "str | Rounding" = "nearest",
    fma: bool = False,
    order: "str | int" = "sequential",
    seed: "int | RandomSource | None" = None,
    saturate: bool | None = None,
) -> Any:
    """Matrix product with every product rounded to ``mul`` and every addition to ``acc``.

    ``a``: (M, K) or (B, M, K); ``b``: (K, N) or (B, K, N); a batch of 1
    broadcasts. NumPy arrays or torch CPU tensors (float32, or float64 holding
    float32 values); returns the same type, float32. ``rounding`` is the
    accumulator's rounding (``"stochastic:K"``...), ``mul_rounding`` the
    products'; ``order`` is ``"sequential"``, ``"pairwise"`` or a block size.
    Stochastic bits come from ``seed`` (int, CounterRNG or LFSR), one draw per
    rounding, numbered as :mod:`mpsim.gemm_kernels` documents.
    """
    spec = GemmSpec(mul, acc, rounding, mul_rounding=mul_rounding, fma=fma, order=order, saturate=saturate)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return qmatmul_numpy(a, b, spec, seed)
    if type(a).__module__.startswith("torch") or type(b).__module__.startswith("torch"):
        from mpsim.torch_glue import qmatmul_tensors

        return qmatmul_tensors(a, b, spec, seed)
    raise ValueError(f"qmatmul takes NumPy arrays or torch tensors, not {type(a).__name__} and {type(b).__name__}")
