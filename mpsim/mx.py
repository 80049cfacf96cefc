"""Microscaling (MX) block formats: one spec per block format, and the names that :func:`parse_format` reads.

An MX block (OCP Microscaling Formats v1.0) is ``block_size`` elements of an
element format that share one E8M0 scale: 8 bits, bias 127, no sign, no
zero; code ``c`` in 0..254 is ``2**(c - 127)`` and 0xFF is NaN. A value is
``element * 2**E``. The numerics are in :mod:`mpsim.mx_kernels` (Numba) and
:mod:`mpsim.mx_quantization` (NumPy); this module holds only the spec.

The scale rules (``E`` = the block's shared exponent, ``amax`` = the largest
magnitude in the block, ``emax`` = exponent of the element format's largest
normal, ``max`` = its largest value, ``m`` = its mantissa bits, 6 for MXINT8:
the bits after the leading one of 127/64), each clamped to E8M0's range
``-127..127``:

``floor``
    ``E = floor(log2(amax)) - emax``: OCP MX v1.0's conversion (section 6.3) and
    gfloat's ``compute_scale_amax``. Elements beyond ``max`` after scaling saturate.
``ceil``
    ``E = ceil(log2(amax)) - emax`` (torchao ``ScaleCalculationMode.CEIL``).
``rceil``
    ``E = ceil(log2(amax / max))``: the smallest ``E`` with ``amax / 2**E <= max``,
    so nothing saturates (NVIDIA's cuBLAS/``cvt.rp...ue8m0``, FBGEMM, torchao
    ``RCEIL``); here with the exact quotient, not a float32 one.
``even``
    ``amax`` rounded to ``m`` mantissa bits (to nearest, ties away from zero),
    then ``floor``: torchao ``ScaleCalculationMode.EVEN``.

MXINT8's elements are 8-bit two's complement with an implicit ``2**-6``
(values ``k/64``, -2 to 127/64): the fixed-point format ``q1.6`` here.

Special blocks, as gfloat treats them: a NaN anywhere gives the NaN scale and
an all-NaN block (OCP); an all-zero block ``E = -127`` (code 0) and zeros; an
Inf ``E = 127`` (``log2(Inf)`` clamped), the Inf element saturating to +-max.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from mpsim.formats import FixedFormat, FloatFormat, Format
from mpsim.formats import parse_format as parse_element_format

__all__ = [
    "MX_PRESETS",
    "SCALE_BIAS",
    "SCALE_BITS",
    "SCALE_EMAX",
    "SCALE_EMIN",
    "SCALE_NAN_CODE",
    "MXFormat",
    "ScaleMode",
    "block_sum_bits",
    "block_window",
    "element_range",
    "parse_format_or_mx",
    "parse_mx_format",
    "parse_scale_mode",
]

#: The E8M0 shared scale: width, bias, NaN code and the exponents it encodes.
SCALE_BITS = 8
SCALE_BIAS = 127
SCALE_NAN_CODE = 0xFF
SCALE_EMIN = -127
SCALE_EMAX = 127

#: Smallest element-format exponent whose values times ``2**SCALE_EMIN`` are still exact in float32.
_MIN_ELEMENT_EXPONENT = -149 - SCALE_EMIN


class ScaleMode(enum.Enum):
    """How a block's shared exponent follows from its largest magnitude (see the module doc)."""

    FLOOR = "floor"
    CEIL = "ceil"
    RCEIL = "rceil"
    EVEN = "even"

    @property
    def code(self) -> int:
        """Small integer the Numba kernels switch on."""
        return list(ScaleMode).index(self)


def parse_scale_mode(spec: str | ScaleMode) -> ScaleMode:
    """``"floor"``, ``"ceil"``, ``"rceil"`` or ``"even"`` (or a :class:`ScaleMode`)."""
    if isinstance(spec, ScaleMode):
        return spec
    if isinstance(spec, str):
        for mode in ScaleMode:
            if spec.strip().lower() == mode.value:
                return mode
    known = ", ".join(repr(m.value) for m in ScaleMode)
    raise ValueError(f"scale mode must be one of {known}, not {spec!r}")


def _element_emax(element: Format) -> int:
    return math.floor(math.log2(element.max))


@dataclass(frozen=True)
class MXFormat:
    """An MX block format: ``block_size`` elements of ``element`` sharing one E8M0 scale.

    Parameters
    ----------
    element : FloatFormat or FixedFormat
        Element format: any float format whose values times ``2**-127`` are exact
        in float32 (smallest value at least ``2**-22``), or a signed saturating
        fixed-point format (MXINT8: ``q1.6``). Elements always saturate.
    block_size : int
        Elements per shared scale, at least 1 (OCP: 32).
    scale_mode : ScaleMode
        The default scale rule of :func:`mpsim.quantize_mx` (OCP: floor).
    name : str or None
        Display name; derived from the fields when ``None``.
    """

    element: FloatFormat | FixedFormat
    block_size: int = 32
    scale_mode: ScaleMode = ScaleMode.FLOOR
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 1:
            raise ValueError(f"MX block size must be a positive integer, not {self.block_size!r}")
        if not isinstance(self.scale_mode, ScaleMode):
            raise ValueError(f"scale mode must be a ScaleMode, not {self.scale_mode!r}")
        e = self.element
        if isinstance(e, FixedFormat):
            if not e.signed or e.overflow != "saturate":
                raise ValueError(f"MX element format must be signed and saturating, not {e}")
            lowest = -e.frac_bits
        elif isinstance(e, FloatFormat):
            lowest = e.min_exponent
        else:
            raise ValueError(f"MX element format must be a FloatFormat or FixedFormat, not {e!r}")
        if lowest < _MIN_ELEMENT_EXPONENT:
            raise ValueError(
                f"MX element format {e} has values down to 2**{lowest}: times the smallest scale "
                f"2**{SCALE_EMIN} they are not float32 numbers (need 2**{_MIN_ELEMENT_EXPONENT} or more)"
            )

    @property
    def label(self) -> str:
        """``name``, or a name that :func:`parse_format` reads back (``mx:e3m4:b16``, ``mxfp8_e4m3:ceil``)."""
        if self.name is not None:
            return self.name
        preset = next((n for n, f in MX_PRESETS.items() if f.element == self.element), None)
        label = preset if preset is not None else f"mx:{self.element}"
        if self.block_size != 32 or preset is None:
            label += f":b{self.block_size}"
        if self.scale_mode is not ScaleMode.FLOOR:
            label += f":{self.scale_mode.value}"
        return label

    def __str__(self) -> str:
        return self.label

    @property
    def element_emax(self) -> int:
        """Exponent of the element format's largest normal, ``floor(log2(max))`` (OCP's emax_elem)."""
        return _element_emax(self.element)

    @property
    def element_man_bits(self) -> int:
        """Bits after the leading one of the element's largest value: the precision the ``even`` rule rounds to."""
        e = self.element
        return e.man_bits if isinstance(e, FloatFormat) else self.element_emax + e.frac_bits

    @property
    def bits_per_element(self) -> float:
        """Storage per element, the scale's share included: ``element.bits + 8 / block_size``."""
        return self.element.bits + SCALE_BITS / self.block_size

    @property
    def packed_per_byte(self) -> int:
        """Element codes per stored byte: 2 for elements of 4 bits or fewer, else 1 (see :func:`mpsim.encode_mx`)."""
        return 2 if self.element.bits <= 4 else 1


def _mx(element: str | Format, name: str) -> MXFormat:
    return MXFormat(parse_element_format(element), name=name)


#: The OCP MX v1.0 concrete formats (block 32, E8M0 scale, floor rule).
MX_PRESETS: dict[str, MXFormat] = {
    "mxfp8_e4m3": _mx("e4m3", "mxfp8_e4m3"),
    "mxfp8_e5m2": _mx("e5m2", "mxfp8_e5m2"),
    "mxfp6_e3m2": _mx("e3m2", "mxfp6_e3m2"),
    "mxfp6_e2m3": _mx("e2m3", "mxfp6_e2m3"),
    "mxfp4_e2m1": _mx("e2m1", "mxfp4_e2m1"),
    "mxint8": _mx(FixedFormat(1, 6, name="int8"), "mxint8"),
}

_BLOCK = re.compile(r"^b(-?\d+)$")


def parse_mx_format(spec: str | MXFormat) -> MXFormat:
    """An MX format from ``PRESET[:bN][:MODE]`` or ``mx:ELEMENT[:bN][:MODE]``.

    ``PRESET`` is a name of :data:`MX_PRESETS`; ``ELEMENT`` any element format
    string (``e3m4``, ``e4m3``, ``int8`` for MXINT8's elements); ``bN`` the block
    size (default 32); ``MODE`` the scale rule (``floor``, ``ceil``, ``rceil``,
    ``even``; default floor). E.g. ``mxfp4_e2m1:b16:rceil``, ``mx:e3m4:b16``.
    """
    if isinstance(spec, MXFormat):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"MX format must be a string or an MXFormat, not {spec!r}")
    head, *fields = spec.strip().lower().split(":")
    if head in MX_PRESETS:
        base = MX_PRESETS[head]
    elif head == "mx" and fields:
        text = fields.pop(0)
        element = MX_PRESETS["mxint8"].element if text == "int8" else _element(text, spec)
        base = MXFormat(element)
    else:
        known = ", ".join(MX_PRESETS)
        raise ValueError(f"unknown MX format {spec!r}: expected one of {known} or mx:ELEMENT[:bN][:MODE]")
    block, mode = base.block_size, base.scale_mode
    for field in fields:
        match = _BLOCK.match(field)
        if match:
            block = int(match.group(1))
        else:
            try:
                mode = parse_scale_mode(field)
            except ValueError:
                raise ValueError(f"MX format {spec!r}: {field!r} is neither a block size bN nor a scale mode") from None
    if (block, mode) == (base.block_size, base.scale_mode):
        return _preset_of(base)
    try:
        return MXFormat(base.element, block, mode)
    except ValueError as err:
        raise ValueError(f"impossible MX format {spec!r}: {err}") from None


def _preset_of(fmt: MXFormat) -> MXFormat:
    """The named preset equal to ``fmt`` but for the name (``mx:e4m3`` is ``mxfp8_e4m3``), else ``fmt``."""
    fields = (fmt.element, fmt.block_size, fmt.scale_mode)
    return next((p for p in MX_PRESETS.values() if (p.element, p.block_size, p.scale_mode) == fields), fmt)


def _element(text: str, spec: str) -> Format:
    try:
        element = parse_element_format(text)
        MXFormat(element)
    except ValueError as err:
        raise ValueError(f"MX format {spec!r}: {err}") from None
    return element


def is_mx_spec(spec: object) -> bool:
    """Whether ``spec`` is for :func:`parse_mx_format`: an :class:`MXFormat` or a string starting with ``mx``."""
    if isinstance(spec, MXFormat):
        return True
    if not isinstance(spec, str):
        return False
    return spec.strip().lower().startswith("mx")


def parse_format_or_mx(spec: str | FloatFormat | FixedFormat | MXFormat) -> FloatFormat | FixedFormat | MXFormat:
    """``mpsim.parse_format``: :func:`mpsim.formats.parse_format` plus the MX formats of :func:`parse_mx_format`."""
    if is_mx_spec(spec):
        return parse_mx_format(spec)  # type: ignore[arg-type]
    return parse_element_format(spec)  # type: ignore[arg-type]


def element_range(fmt: MXFormat) -> tuple[int, int]:
    """(l, t): the element format's values are multiples of ``2**l`` below ``2**t``."""
    e = fmt.element
    return (e.min_exponent if isinstance(e, FloatFormat) else -e.frac_bits), math.floor(math.log2(e.max)) + 1


def block_window(fmt_a: MXFormat, fmt_b: MXFormat) -> tuple[int, int]:
    """``(lsb, width)``: every exact block sum of ``fmt_a`` by ``fmt_b`` elements is a multiple of ``2**lsb`` of
    magnitude below ``2**(lsb + width)``.

    Products are multiples of ``2**lsb`` below ``2**top``; a block of ``block_size <= 2**w`` of them (``w =
    bit_length(block_size - 1)``, at least 1) grows by ``w`` bits: ``width = top + w - lsb``. The hardware's
    block-sum register is this window plus a sign (:class:`hls_gen.mx_mac.MXMAC`).
    """
    (la, ta), (lb, tb) = element_range(fmt_a), element_range(fmt_b)
    w = max(fmt_a.block_size - 1, 1).bit_length()
    return la + lb, ta + tb + w - (la + lb)


def block_sum_bits(fmt_a: MXFormat, fmt_b: MXFormat) -> int:
    """Width of the two's-complement register that holds any block's exact sum of element products: the window
    of :func:`block_window` and a sign (42 bits for MXFP8 E4M3, 14 for MXFP4 E2M1)."""
    return block_window(fmt_a, fmt_b)[1] + 1
