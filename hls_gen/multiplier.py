"""Floating-point multiplier: two operand formats in, the exact product or a rounded one out."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hls_gen.arith import exp_shape, multiply_exact, round_pack, unpack
from hls_gen.spec import check_nan_capable, checking, float_format, hw_rounding, operand_format
from mpsim.formats import FloatFormat

__all__ = ["FPMultiplier", "exact_product_bounds", "exact_product_layout"]


def exact_product_bounds(a_format: FloatFormat, b_format: FloatFormat) -> tuple[int, int, int]:
    """(significand bits, lowest, highest exponent) of every exact nonzero product."""
    a_lo = a_format.emin - a_format.man_bits if a_format.subnormals else a_format.emin
    b_lo = b_format.emin - b_format.man_bits if b_format.subnormals else b_format.emin
    return a_format.man_bits + b_format.man_bits + 2, a_lo + b_lo, a_format.emax + b_format.emax + 1


def exact_product_layout(a_format: FloatFormat, b_format: FloatFormat) -> data.StructLayout:
    """Layout of an exact product: ``(-1)**sign * sig * 2**(exp - (len(sig) - 1))``, ``sig`` normalized.

    Fields (LSB first): ``sig`` (``a.man_bits + b.man_bits + 2`` bits, top bit
    set for finite nonzero products), ``exp`` (signed exponent of that top
    bit), ``sign``, ``zero``, ``inf``, ``nan``. ``sig`` and ``exp`` are
    unspecified when a flag is set.
    """
    width, lo, hi = exact_product_bounds(a_format, b_format)
    return data.StructLayout({"sig": width, "exp": exp_shape(lo, hi), "sign": 1, "zero": 1, "inf": 1, "nan": 1})


class FPMultiplier(wiring.Component):
    """Combinational floating-point multiplier for any two operand formats (e.g. e4m3 x e5m2).

    The product is exact (no rounding: the significands' full product) or,
    with ``out_format``, rounded into it as ``mpsim.quantize(a * b,
    out_format, rounding)`` does, bit for bit: round to nearest even, or
    stochastic with ``k`` random bits taken from ``rand``. Specials follow IEEE
    754 on the decoded values: NaN in, or 0 x Inf, gives NaN; Inf x finite
    nonzero gives Inf; a zero operand gives a zero with the XOR of the signs.
    A rounded NaN is ``out_format``'s canonical NaN pattern.

    Parameters
    ----------
    a_format, b_format : str or mpsim.FloatFormat
        Operand formats, at most 16 bits each.
    out_format : str, mpsim.FloatFormat or None
        Format of the rounded product; None for the exact product.
    rounding : str
        ``"nearest"`` or ``"stochastic:K"`` (only with ``out_format``).

    Members
    -------
    a : In(a_format.bits)
        Bit pattern of the first operand.
    b : In(b_format.bits)
        Bit pattern of the second operand.
    rand : In(K)
        Random draw of the stochastic rounding (only with ``stochastic:K``).
    product : Out(exact_product_layout(a_format, b_format)) or Out(out_format.bits)
        The exact product (a :func:`exact_product_layout` struct), or the bit
        pattern of the rounded product.
    """

    def __init__(
        self,
        *,
        a_format: str | FloatFormat,
        b_format: str | FloatFormat,
        out_format: str | FloatFormat | None = None,
        rounding: str = "nearest",
    ) -> None:
        with checking(self):
            self._a_format = operand_format(a_format, "multiplier operand format a")
            self._b_format = operand_format(b_format, "multiplier operand format b")
            self._out_format = None if out_format is None else float_format(out_format, "product format")
            self._rand_bits = hw_rounding(rounding, "product rounding")
            if self._out_format is None and self._rand_bits is not None:
                raise ValueError(f"an exact product takes no rounding, not {rounding!r}; give out_format to round it")
            if self._out_format is not None:
                check_nan_capable(self._out_format, "product format", (self._a_format, self._b_format))
            members: dict[str, wiring.Member] = {"a": In(self._a_format.bits), "b": In(self._b_format.bits)}
            if self._rand_bits is not None:
                members["rand"] = In(self._rand_bits)
            if self._out_format is None:
                members["product"] = Out(exact_product_layout(self._a_format, self._b_format))
            else:
                members["product"] = Out(self._out_format.bits)
            super().__init__(members)

    @property
    def a_format(self) -> FloatFormat:
        return self._a_format

    @property
    def b_format(self) -> FloatFormat:
        return self._b_format

    @property
    def out_format(self) -> FloatFormat | None:
        return self._out_format

    @property
    def rand_bits(self) -> int | None:
        """Random bits of the product rounding (None: nearest, or exact)."""
        return self._rand_bits

    def elaborate(self, platform: object) -> Module:
        m = Module()
        a = unpack(m, self.a, self._a_format, "a")
        b = unpack(m, self.b, self._b_format, "b")
        p = multiply_exact(m, a, b, "p")
        if self._out_format is None:
            out = self.product
            m.d.comb += [
                out.sig.eq(p.sig),
                out.exp.eq(p.exp),
                out.sign.eq(p.sign),
                out.zero.eq(p.zero),
                out.inf.eq(p.inf),
                out.nan.eq(p.nan),
            ]
        else:
            rand = self.rand if self._rand_bits is not None else None
            code = round_pack(m, p, 0, self._out_format, self._rand_bits, rand, "pr")
            m.d.comb += self.product.eq(code)
        return m
