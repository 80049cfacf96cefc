"""The arithmetic of one matrix product, as one frozen record.

:class:`GemmConfig` is the single description of a GEMM's arithmetic that
every part of mpsim reads: :func:`mpsim.qmatmul` builds one from its keyword
arguments, the torch layers hold one per GEMM of training
(:class:`mpsim.nn.LayerPrecision`), the precision presets are made of them,
and a generated accelerator's manifest reads back as one. A kernel plan
(:class:`mpsim.gemm.GemmPlan`) is built from it once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mpsim.formats import FixedFormat, FloatFormat, parse_format
from mpsim.mx import MXFormat, is_mx_spec, parse_mx_format
from mpsim.rounding import Rounding, parse_rounding

__all__ = ["GemmConfig", "OrderKind", "parse_mx_operands", "parse_order"]


class OrderKind(enum.IntEnum):
    """How the terms of one output are summed (the values are the kernels' order codes)."""

    SEQUENTIAL = 0  # acc = R(acc + p_k), k = 0..K-1: a MAC unit
    PAIRWISE = 1  # a balanced tree of rounded additions
    BLOCKED = 2  # sequential partial sums over blocks of B terms, then the partial sums sequentially


def parse_order(order: str | int) -> tuple[OrderKind, int]:
    """``"sequential"``, ``"pairwise"`` or a block size ``B >= 1`` -> (order kind, block size; 0 if none)."""
    if isinstance(order, str):
        key = order.strip().lower()
        if key == "sequential":
            return OrderKind.SEQUENTIAL, 0
        if key == "pairwise":
            return OrderKind.PAIRWISE, 0
        if not (key.isascii() and key.isdecimal()):
            raise ValueError(f"order must be 'sequential', 'pairwise' or a block size >= 1, not {order!r}")
        order = int(key)
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be 'sequential', 'pairwise' or a block size >= 1, not {order!r}")
    return OrderKind.BLOCKED, int(order)


_Format = str | FloatFormat | FixedFormat | MXFormat | tuple[str | MXFormat, str | MXFormat]


def parse_mx_operands(spec: object) -> tuple[MXFormat, MXFormat] | None:
    """The MX formats of A and B when ``spec`` (a ``mul``) is MX, else ``None``.

    One MX format serves both; ``"A,B"`` (``"mxfp8_e4m3,mxfp8_e5m2"``) or a
    pair gives each its own, which must share the block size.
    """
    if isinstance(spec, MXFormat):
        parts: list[object] = [spec]
    elif isinstance(spec, str) and is_mx_spec(spec):
        parts = [p.strip() for p in spec.split(",")]
    elif isinstance(spec, tuple) and any(is_mx_spec(p) for p in spec):
        parts = list(spec)
    else:
        return None
    if len(parts) > 2:
        raise ValueError(f"an MX mul is one format or two (A,B), not {spec!r}")
    fa, fb = parse_mx_format(parts[0]), parse_mx_format(parts[-1])  # type: ignore[arg-type]
    if fa.block_size != fb.block_size:
        raise ValueError(
            f"MX operands must share a block size: A's {fa} has {fa.block_size}, B's {fb} has {fb.block_size}"
        )
    return fa, fb


@dataclass(frozen=True)
class GemmConfig:
    """Arithmetic of ``a @ b`` with every product rounded to ``mul`` and every addition to ``acc``.

    Fields keep what they were given (a name such as ``"e4m3"`` or a spec
    object); :attr:`mul_format`, :attr:`acc_format`, :attr:`acc_rounding`,
    :attr:`mul_rounding_rule` and :attr:`order_kind` are the parsed values.
    Every field is checked when the config is made, naming the bad value.

    Parameters
    ----------
    mul : format, name or None
        Format the exact products are rounded into; ``None`` keeps them
        exact (a fused multiply-add: one rounding per step, the sum's). An MX
        format (:class:`~mpsim.mx.MXFormat`, ``"mxfp8_e4m3"``...) makes an MX
        GEMM (:mod:`mpsim.mx_gemm`): operands in MX blocks along K, their
        elements rounded by ``mul_rounding``, one accumulator rounding per
        block; it needs ``order="sequential"`` and an accumulator that does
        not wrap.
    acc : format or name
        Accumulator format: every addition is rounded into it.
    rounding : Rounding or name
        The accumulator's rounding (``"nearest"``, ``"stochastic:8"``, ...).
    mul_rounding : Rounding or name
        The products' rounding (used only with ``mul``); in an MX GEMM, the
        rounding of both operands' elements into their blocks.
    order : "sequential", "pairwise" or int
        Accumulation order; an int ``B`` sums blocks of ``B`` terms.
    saturate : bool or None
        Clamp overflow to +-max in every rounding; ``None`` follows each format.
    emulate : bool
        ``False`` marks a GEMM that the torch layers leave to ``torch.matmul``
        in fp32 on the (quantized) operands: the cast-only emulation of
        QPyTorch-style tools. :func:`mpsim.qmatmul` refuses such a config.
    block_sum : format, name or None
        MX GEMMs only: each block's exact sum rounded to nearest (ties to
        even) into this format before it is scaled (``saturate`` applies);
        ``None`` keeps it exact.
    """

    mul: _Format | None = None
    acc: _Format = "fp32"
    rounding: str | Rounding = "nearest"
    mul_rounding: str | Rounding = "nearest"
    order: str | int = "sequential"
    saturate: bool | None = None
    emulate: bool = True
    block_sum: str | FloatFormat | FixedFormat | None = None

    def __post_init__(self) -> None:
        mx = parse_mx_operands(self.mul)
        if self.mul is not None and mx is None:
            parse_format(self.mul)  # type: ignore[arg-type]
        parse_format(self.acc)
        parse_rounding(self.rounding)
        parse_rounding(self.mul_rounding)
        parse_order(self.order)
        if mx is not None:
            self._check_mx(_mx_label(mx))
        if self.saturate is not None and not isinstance(self.saturate, bool):
            raise ValueError(f"saturate must be True, False or None, not {self.saturate!r}")
        if not isinstance(self.emulate, bool):
            raise ValueError(f"emulate must be True or False, not {self.emulate!r}")
        if self.block_sum is not None:
            parse_format(self.block_sum)
            if mx is None:
                raise ValueError(f"block_sum rounds the block sums of an MX GEMM: it needs an MX mul, not {self.mul!r}")

    def _check_mx(self, mx: str) -> None:
        """What an MX GEMM can serve: blocks in order, an accumulator that does not wrap."""
        if parse_order(self.order)[0] != OrderKind.SEQUENTIAL:
            raise ValueError(
                f"an MX GEMM ({mx}) adds its blocks in order: order must be 'sequential', not {self.order!r}"
            )
        acc = parse_format(self.acc)
        saturates = self.saturate if self.saturate is not None else getattr(acc, "overflow", "") == "saturate"
        if isinstance(acc, FixedFormat) and not saturates:
            raise ValueError(f"an MX GEMM ({mx}) needs an accumulator that does not wrap, not {acc}")

    @property
    def mx_formats(self) -> tuple[MXFormat, MXFormat] | None:
        """The MX block formats of A and B in an MX GEMM (``mul`` MX), else ``None``."""
        return parse_mx_operands(self.mul)

    @property
    def mul_format(self) -> FloatFormat | FixedFormat | None:
        """The product format (``None`` for exact products and for an MX GEMM: see :attr:`mx_formats`)."""
        if self.mul is None or self.mx_formats is not None:
            return None
        return parse_format(self.mul)  # type: ignore[arg-type]

    @property
    def block_sum_format(self) -> FloatFormat | FixedFormat | None:
        """The format MX block sums are rounded into (``None``: exact)."""
        return None if self.block_sum is None else parse_format(self.block_sum)

    @property
    def acc_format(self) -> FloatFormat | FixedFormat:
        return parse_format(self.acc)

    @property
    def acc_rounding(self) -> Rounding:
        return parse_rounding(self.rounding)

    @property
    def mul_rounding_rule(self) -> Rounding:
        return parse_rounding(self.mul_rounding)

    @property
    def order_kind(self) -> OrderKind:
        return parse_order(self.order)[0]

    @property
    def block(self) -> int:
        """Terms per block of the blocked order (0 for the others)."""
        return parse_order(self.order)[1]

    @property
    def stochastic(self) -> bool:
        """Whether any rounding of the product draws random bits."""
        return self.acc_rounding.stochastic or (self.mul is not None and self.mul_rounding_rule.stochastic)

    def _mul_label(self) -> str:
        mx = self.mx_formats
        return _mx_label(mx) if mx is not None else str(parse_format(self.mul))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML values (format and rounding names) that :meth:`from_dict` reads back."""
        return {
            "mul": None if self.mul is None else self._mul_label(),
            "acc": str(parse_format(self.acc)),
            "rounding": str(parse_rounding(self.rounding)),
            "mul_rounding": str(parse_rounding(self.mul_rounding)),
            "order": self.order,
            "saturate": self.saturate,
            "emulate": self.emulate,
            **({} if self.block_sum is None else {"block_sum": str(parse_format(self.block_sum))}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GemmConfig:
        """From a mapping of field names (as :meth:`to_dict` writes)."""
        if not isinstance(data, dict):
            raise ValueError(f"GemmConfig takes a mapping, not {data!r}")
        known = {f.name for f in fields(cls)}
        data = dict(data)
        # Files written before the config was unified carry 'fma': true meant mul=None, which it still says.
        fma = data.pop("fma", False)
        if fma not in (True, False):
            raise ValueError(f"fma must be true or false, not {fma!r}")
        if fma and data.get("mul") is not None:
            raise ValueError(f"fma: true rounds once per step: it excludes a product format, got mul={data['mul']}")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GemmConfig keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def __str__(self) -> str:
        products = "exact products" if self.mul is None else f"products {self.mul_format} ({self.mul_rounding_rule})"
        if self.mx_formats is not None:
            sums = "exact" if self.block_sum is None else f"rounded to {self.block_sum_format}"
            products = f"MX blocks {self._mul_label()} (block sums {sums})"
        return f"{products}, accumulator {self.acc_format} ({self.acc_rounding}), order {self.order}"


def _mx_label(mx: tuple[MXFormat, MXFormat]) -> str:
    """``"A"`` for one format, ``"A,B"`` for two (what :func:`parse_mx_operands` reads back)."""
    return str(mx[0]) if mx[0] == mx[1] else f"{mx[0]},{mx[1]}"
