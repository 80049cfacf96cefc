"""Number formats: one immutable spec per number system.

Every derived number (max, eps, smallest subnormal, bit count, ...) is a
property computed from the spec; there is no per-format table of numbers.
Names follow ml_dtypes: ``e4m3`` is OCP E4M3FN, ``f`` = finite (no Inf),
``n`` = NaN only at one pattern, ``uz`` = unsigned zero (NaN at the
negative-zero pattern).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

__all__ = [
    "OVERFLOWS",
    "PRESETS",
    "SPECIALS",
    "FixedFormat",
    "FloatFormat",
    "Format",
    "Overflow",
    "Specials",
    "parse_format",
]

# All format values must be exactly representable in float32, so that the
# float32 emulation path never double-rounds.  These bound exponent and
# mantissa widths (fp32 itself is e8m23).
MAX_EXP_BITS = 8
MAX_MAN_BITS = 23
_FP32_EMAX = 127
_FP32_MIN_SUBNORMAL_EXP = -149
#: Widest fixed-point magnitude (integer + fraction bits): float32's 24-bit significand.
MAX_FIXED_MAGNITUDE_BITS = 24


#: What the top of a floating-point format's encoding space means:
#: ``ieee``: exponent field all ones is Inf (mantissa 0) or NaN (IEEE 754);
#: ``fn``: finite, one NaN: no Inf, only the all-ones magnitude is NaN (OCP E4M3);
#: ``fnuz``: finite, unsigned zero: no Inf, no -0, NaN is the negative-zero pattern;
#: ``finite``: no Inf and no NaN, every pattern is a number (OCP FP6/FP4).
Specials = Literal["ieee", "fn", "fnuz", "finite"]
SPECIALS: tuple[str, ...] = ("ieee", "fn", "fnuz", "finite")

#: What a value beyond the largest finite number becomes by default:
#: ``inf``: Inf if the format has it, else NaN if it has that, else +-max
#: (directed roundings follow IEEE 754: toward zero never overflows);
#: ``saturate``: clamp to +-max, +-Inf inputs too.
Overflow = Literal["inf", "saturate"]
OVERFLOWS: tuple[str, ...] = ("inf", "saturate")


def _check_choice(value: object, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


def _check_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, not {value!r}")


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: sign, ``exp_bits`` exponent, ``man_bits`` mantissa.

    Parameters
    ----------
    exp_bits : int
        Exponent field width, 1..8.
    man_bits : int
        Stored mantissa (fraction) width, 0..23.
    bias : int or None
        Exponent bias; ``None`` means ``2**(exp_bits-1) - 1`` (IEEE), or
        ``2**(exp_bits-1)`` for ``fnuz`` formats (as ml_dtypes). The resolved
        value is :attr:`exponent_bias`.
    subnormals : bool
        Whether the zero exponent field encodes subnormals. Without them the
        values nearest zero are 0 and +-2**emin, and rounding picks between
        them; the unused codes decode as zero.
    specials : {"ieee", "fn", "fnuz", "finite"}
        Meaning of the top of the encoding space (see :data:`Specials`).
    overflow : {"inf", "saturate"}
        Default overflow policy of :func:`mpsim.quantize`.
    name : str or None
        Display name; derived from the fields when ``None``.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    subnormals: bool = True
    specials: Specials = "ieee"
    overflow: Overflow = "inf"
    name: str | None = None

    def __post_init__(self) -> None:
        _check_int(self.exp_bits, "exponent bits")
        _check_int(self.man_bits, "mantissa bits")
        if not 1 <= self.exp_bits <= MAX_EXP_BITS:
            raise ValueError(f"exponent bits must be 1..{MAX_EXP_BITS}, not {self.exp_bits!r}")
        if not 0 <= self.man_bits <= MAX_MAN_BITS:
            raise ValueError(f"mantissa bits must be 0..{MAX_MAN_BITS}, not {self.man_bits!r}")
        if self.bias is not None:
            _check_int(self.bias, "bias")
        if not isinstance(self.subnormals, bool):
            raise ValueError(f"subnormals must be True or False, not {self.subnormals!r}")
        _check_choice(self.specials, SPECIALS, "specials")
        _check_choice(self.overflow, OVERFLOWS, "overflow")
        if self.specials == "ieee" and self.man_bits == 0:
            raise ValueError(
                "specials 'ieee' needs at least 1 mantissa bit to encode NaN, "
                "not man_bits=0; use specials 'fn' or 'finite'"
            )
        if self.specials == "ieee" and self.exp_bits == 1:
            raise ValueError(
                "specials 'ieee' needs at least 2 exponent bits (one exponent field "
                "is reserved for Inf/NaN), not exp_bits=1"
            )
        if self.max_code >> self.man_bits == 0:
            raise ValueError(f"format {self.describe()} has no normal finite value")
        if self.emax > _FP32_EMAX:
            raise ValueError(
                f"bias {self.exponent_bias!r} gives max exponent {self.emax}, beyond float32's "
                f"{_FP32_EMAX}; mpsim formats must fit in float32"
            )
        if self.min_exponent < _FP32_MIN_SUBNORMAL_EXP:
            raise ValueError(
                f"bias {self.exponent_bias!r} gives smallest exponent {self.min_exponent}, "
                f"below float32's {_FP32_MIN_SUBNORMAL_EXP}; mpsim formats must fit in float32"
            )

    # --- identity -------------------------------------------------------

    @property
    def default_bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - (0 if self.specials == "fnuz" else 1)

    @property
    def exponent_bias(self) -> int:
        """The bias in effect (``bias``, or the default for the specials)."""
        return self.default_bias if self.bias is None else self.bias

    @property
    def label(self) -> str:
        """``name``, or a name derived from the fields that :func:`parse_format` reads back."""
        if self.name is not None:
            return self.name
        suffix = {"ieee": "", "fn": "fn", "fnuz": "fnuz", "finite": "f"}[self.specials]
        label = f"e{self.exp_bits}m{self.man_bits}{suffix}"
        if self.exponent_bias != self.default_bias:
            label += f"b{self.exponent_bias}"
        if not self.subnormals:
            label += "ns"
        if self.overflow == "saturate":
            label += "sat"
        return label

    def describe(self) -> str:
        return (
            f"FloatFormat(exp_bits={self.exp_bits}, man_bits={self.man_bits}, "
            f"bias={self.exponent_bias}, subnormals={self.subnormals}, "
            f"specials={self.specials!r}, overflow={self.overflow!r})"
        )

    def __str__(self) -> str:
        return self.label

    # --- encoding layout ---------------------------------------------------

    @property
    def is_fixed(self) -> bool:
        return False

    @property
    def signed(self) -> bool:
        return True

    @property
    def bits(self) -> int:
        """Total width in bits, sign included."""
        return 1 + self.exp_bits + self.man_bits

    @property
    def has_inf(self) -> bool:
        return self.specials == "ieee"

    @property
    def has_nan(self) -> bool:
        return self.specials != "finite"

    @property
    def has_negative_zero(self) -> bool:
        return self.specials != "fnuz"

    @property
    def saturates(self) -> bool:
        """Whether overflow clamps to +-max by default (always, for formats with nowhere else to go)."""
        return self.overflow == "saturate" or not (self.has_inf or self.has_nan)

    @property
    def max_code(self) -> int:
        """Magnitude bit pattern (sign bit clear) of the largest finite value."""
        all_ones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials == "ieee":
            return all_ones - (1 << self.man_bits)  # top exponent field is Inf/NaN
        if self.specials == "fn":
            return all_ones - 1  # the all-ones magnitude is NaN
        return all_ones

    @property
    def nan_code(self) -> int | None:
        """Bit pattern of the (positive, quiet) NaN this format encodes, or None."""
        if self.specials == "ieee":
            return ((1 << self.exp_bits) - 1) << self.man_bits | 1 << (self.man_bits - 1)
        if self.specials == "fn":
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials == "fnuz":
            return 1 << (self.bits - 1)
        return None

    @property
    def inf_code(self) -> int | None:
        """Bit pattern of +Inf, or None."""
        if self.specials == "ieee":
            return ((1 << self.exp_bits) - 1) << self.man_bits
        return None

    # --- derived numbers --------------------------------------------------

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.exponent_bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        return (self.max_code >> self.man_bits) - self.exponent_bias

    @property
    def min_exponent(self) -> int:
        """Exponent of the smallest positive value's least significant bit."""
        return self.emin - self.man_bits if self.subnormals else self.emin

    @property
    def max_exact(self) -> Fraction:
        """Largest finite value, exactly."""
        return self._magnitude_exact(self.max_code)

    @property
    def max(self) -> float:
        return float(self.max_exact)

    @property
    def min(self) -> float:
        """Most negative finite value."""
        return -self.max

    @property
    def smallest_normal(self) -> float:
        return 2.0**self.emin

    @property
    def smallest_subnormal(self) -> float:
        """Smallest positive value (the smallest normal when subnormals are off)."""
        return 2.0**self.min_exponent

    @property
    def eps(self) -> float:
        """Machine epsilon: distance from 1.0 to the next larger value."""
        return 2.0**-self.man_bits

    @property
    def num_finite(self) -> int:
        """Number of distinct finite values (+0 and -0 counted once)."""
        positive = self.max_code  # codes 1..max_code, minus unused subnormal codes
        if not self.subnormals:
            positive -= (1 << self.man_bits) - 1
        return 2 * positive + 1

    def _magnitude_exact(self, code: int) -> Fraction:
        exp_field = code >> self.man_bits
        frac = code & ((1 << self.man_bits) - 1)
        if exp_field == 0:
            # Without subnormals the codes 0.xxx are unused and read as zero.
            return Fraction(frac if self.subnormals else 0) * Fraction(2) ** (self.emin - self.man_bits)
        scale = Fraction(2) ** (exp_field - self.exponent_bias - self.man_bits)
        return ((1 << self.man_bits) + frac) * scale

    def fits_in(self, exp_bits: int, man_bits: int) -> bool:
        """Whether every value of this format is exactly an IEEE float ``e{exp_bits}m{man_bits}``."""
        other_bias = 2 ** (exp_bits - 1) - 1
        other_min_exponent = 1 - other_bias - man_bits
        return self.man_bits <= man_bits and self.emax <= other_bias and self.min_exponent >= other_min_exponent


@dataclass(frozen=True)
class FixedFormat:
    """A binary fixed-point format: ``int_bits`` integer and ``frac_bits`` fraction bits.

    Signed formats add a sign bit (two's complement): ``q4.11`` is 16 bits,
    range ``[-16, 16 - 2**-11]``. Unsigned ``uq4.12`` is 16 bits, ``[0, 16 - 2**-12]``.
    ``overflow`` is ``saturate`` (clamp) or ``wrap`` (two's complement modulo).
    """

    int_bits: int
    frac_bits: int
    signed: bool = True
    overflow: Literal["saturate", "wrap"] = "saturate"
    name: str | None = None

    def __post_init__(self) -> None:
        _check_int(self.int_bits, "integer bits")
        _check_int(self.frac_bits, "fraction bits")
        if self.int_bits < 0:
            raise ValueError(f"integer bits must be >= 0, not {self.int_bits!r}")
        if self.frac_bits < 0:
            raise ValueError(f"fraction bits must be >= 0, not {self.frac_bits!r}")
        if not isinstance(self.signed, bool):
            raise ValueError(f"signed must be True or False, not {self.signed!r}")
        _check_choice(self.overflow, ("saturate", "wrap"), "fixed-point overflow")
        magnitude_bits = self.int_bits + self.frac_bits
        if not 1 <= magnitude_bits <= MAX_FIXED_MAGNITUDE_BITS:
            raise ValueError(
                f"integer + fraction bits must be 1..{MAX_FIXED_MAGNITUDE_BITS} (exact in float32), "
                f"not {magnitude_bits!r}"
            )

    @property
    def label(self) -> str:
        """``name``, or ``qI.F`` / ``uqI.F`` (``wrap`` appended), as :func:`parse_format` reads."""
        if self.name is not None:
            return self.name
        prefix = "q" if self.signed else "uq"
        return f"{prefix}{self.int_bits}.{self.frac_bits}" + ("wrap" if self.overflow == "wrap" else "")

    def __str__(self) -> str:
        return self.label

    def describe(self) -> str:
        return (
            f"FixedFormat(int_bits={self.int_bits}, frac_bits={self.frac_bits}, "
            f"signed={self.signed}, overflow={self.overflow!r})"
        )

    @property
    def is_fixed(self) -> bool:
        return True

    @property
    def bits(self) -> int:
        return self.int_bits + self.frac_bits + (1 if self.signed else 0)

    has_inf = False
    has_nan = False
    has_negative_zero = False

    @property
    def saturates(self) -> bool:
        return self.overflow == "saturate"

    @property
    def max_exact(self) -> Fraction:
        return Fraction((1 << (self.int_bits + self.frac_bits)) - 1, 1 << self.frac_bits)

    @property
    def min_exact(self) -> Fraction:
        return -Fraction(1 << self.int_bits) if self.signed else Fraction(0)

    @property
    def max(self) -> float:
        return float(self.max_exact)

    @property
    def min(self) -> float:
        return float(self.min_exact)

    @property
    def eps(self) -> float:
        """Resolution: the distance between neighbouring values."""
        return 2.0**-self.frac_bits

    @property
    def smallest_subnormal(self) -> float:
        return self.eps

    @property
    def smallest_normal(self) -> float:
        return self.eps

    @property
    def num_finite(self) -> int:
        return 1 << self.bits

    def fits_in(self, exp_bits: int, man_bits: int) -> bool:
        """Whether every value of this format is exactly an IEEE float ``e{exp_bits}m{man_bits}``."""
        other_bias = 2 ** (exp_bits - 1) - 1
        return (
            self.int_bits + self.frac_bits <= man_bits + 1
            and self.int_bits <= other_bias
            and -self.frac_bits >= 1 - other_bias - man_bits
        )


Format = FloatFormat | FixedFormat


def _ocp(exp_bits: int, man_bits: int, specials: Specials, name: str) -> FloatFormat:
    return FloatFormat(exp_bits, man_bits, specials=specials, name=name)


#: Named formats. ``e4m3``/``e5m2`` are OCP FP8 (E4M3FN, E5M2); ``e3m2``,
#: ``e2m3``, ``e2m1`` are OCP MX FP6/FP4; ``*fnuz`` follow ml_dtypes/Graphcore.
PRESETS: dict[str, FloatFormat] = {
    "fp32": FloatFormat(8, 23, name="fp32"),
    "tf32": FloatFormat(8, 10, name="tf32"),
    "fp16": FloatFormat(5, 10, name="fp16"),
    "bf16": FloatFormat(8, 7, name="bf16"),
    "e5m2": _ocp(5, 2, "ieee", "e5m2"),
    "e4m3": _ocp(4, 3, "fn", "e4m3"),
    "e4m3fnuz": _ocp(4, 3, "fnuz", "e4m3fnuz"),
    "e5m2fnuz": _ocp(5, 2, "fnuz", "e5m2fnuz"),
    "e3m2": _ocp(3, 2, "finite", "e3m2"),
    "e2m3": _ocp(2, 3, "finite", "e2m3"),
    "e2m1": _ocp(2, 1, "finite", "e2m1"),
}

_ALIASES = {
    "float32": "fp32",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "e4m3fn": "e4m3",
    "fp8_e4m3": "e4m3",
    "fp8_e5m2": "e5m2",
    "e3m2fn": "e3m2",
    "e2m3fn": "e2m3",
    "e2m1fn": "e2m1",
    "fp6_e3m2": "e3m2",
    "fp6_e2m3": "e2m3",
    "fp4_e2m1": "e2m1",
}

_GENERIC_FLOAT = re.compile(r"^e(\d+)m(\d+)(fnuz|fn|f)?(?:b(-?\d+))?(ns)?(sat)?$")
_GENERIC_FIXED = re.compile(r"^(u?)q(\d+)\.(\d+)(wrap|sat)?$")
_SPECIALS_SUFFIX: dict[str | None, Specials] = {None: "ieee", "fn": "fn", "fnuz": "fnuz", "f": "finite"}


def parse_format(spec: str | FloatFormat | FixedFormat) -> FloatFormat | FixedFormat:
    """Turn a format string (or a format) into a format spec.

    Accepted: the names in :data:`PRESETS` (and aliases such as ``bfloat16``);
    generic ``eXmY`` (IEEE-style, subnormals on) with optional suffixes
    ``fn``/``fnuz``/``f`` (specials), ``bN`` (bias), ``ns`` (no subnormals),
    ``sat`` (saturate on overflow), e.g. ``e8m7ns``, ``e4m3fnsat``; fixed
    point ``qI.F`` (signed) and ``uqI.F`` (unsigned) with optional ``wrap``.
    """
    if isinstance(spec, (FloatFormat, FixedFormat)):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"format must be a string or a format spec, not {spec!r}")
    key = spec.strip().lower()
    key = _ALIASES.get(key, key)
    if key in PRESETS:
        return PRESETS[key]
    sat = key.endswith("sat")
    base = key[: -len("sat")] if sat else key
    base = _ALIASES.get(base, base)
    if sat and base in PRESETS:
        preset = PRESETS[base]
        return FloatFormat(
            preset.exp_bits,
            preset.man_bits,
            bias=preset.bias,
            subnormals=preset.subnormals,
            specials=preset.specials,
            overflow="saturate",
            name=f"{preset.name}sat",
        )
    match = _GENERIC_FLOAT.match(key)
    if match:
        e, m, suffix, bias, ns, sat_flag = match.groups()
        try:
            return FloatFormat(
                int(e),
                int(m),
                bias=None if bias is None else int(bias),
                subnormals=ns is None,
                specials=_SPECIALS_SUFFIX[suffix],
                overflow="saturate" if sat_flag else "inf",
            )
        except ValueError as err:
            raise ValueError(f"impossible format {spec!r}: {err}") from None
    match = _GENERIC_FIXED.match(key)
    if match:
        unsigned, i, f, mode = match.groups()
        try:
            return FixedFormat(
                int(i),
                int(f),
                signed=not unsigned,
                overflow="wrap" if mode == "wrap" else "saturate",
            )
        except ValueError as err:
            raise ValueError(f"impossible format {spec!r}: {err}") from None
    if key.startswith("mx"):
        raise ValueError(f"unknown format {spec!r}: MX block formats (mxfp8_e4m3, ...) are for mpsim.quantize_mx")
    known = ", ".join(PRESETS)
    raise ValueError(f"unknown format {spec!r}: expected one of {known}, eXmY[fn|fnuz|f][bN][ns][sat], qI.F or uqI.F")
