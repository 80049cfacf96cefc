"""Arithmetic modes: the GEMMs one generated array executes, chosen per job at run time.

An :class:`ArithMode` is one GEMM arithmetic as the hardware sees it: operand
formats, the product (exact, or rounded into a format), the accumulator and
the roundings. A single-mode array has one; ``mpsim emit --precision A
--precision B`` builds an array with every distinct mode that a training step
of each named precision needs (:func:`training_modes`): the forward GEMM
``activation x weight``, the input gradient ``grad x weight^T`` and the weight
gradient ``activation^T x grad`` (:mod:`mpsim.nn.functional`), each with its
operand formats and its :class:`~mpsim.gemm_config.GemmConfig`.
:func:`check_modes` parses a mode set once into :class:`HwMode` s, the form the
generators read, and refuses what cannot be built with one line naming the
value.

An MX mode (operand formats MX, ``"mxfp8_e5m2"``; no product format) is a
GEMM of :mod:`mpsim.mx_gemm`: block dot products, each block's exact sum
times its two E8M0 scales added with one rounding. :class:`HwMode` then
carries the MX formats (``mx``) beside their element formats. An array's
modes are all MX, sharing one block size (its PEs are
:class:`hls_gen.mx_mac.MXMAC` s), or all element-wise
(:class:`hls_gen.mac.MAC` s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hls_gen.spec import check_nan_capable, float_format, hw_rounding, operand_format, rounding_token
from mpsim.formats import FloatFormat
from mpsim.gemm_config import GemmConfig
from mpsim.mx import MXFormat, block_window, is_mx_spec, parse_mx_format
from mpsim.precision import GemmKind, LayerPrecision, PrecisionConfig, parse_precision

__all__ = [
    "MAX_MODES",
    "ArithMode",
    "HwMode",
    "array_gemm_config",
    "check_mode",
    "check_modes",
    "check_mx_mode",
    "mode_bits",
    "mx_formats",
    "training_modes",
    "window",
]

#: Most modes one array executes (the mode field is at most 4 bits).
MAX_MODES = 16


def array_gemm_config(
    product_format: str | FloatFormat | None,
    acc_format: str | FloatFormat,
    rounding: str,
    product_rounding: str,
) -> GemmConfig:
    """The arithmetic of a generated MAC array: each PE sums its products from +0 in order, every step rounded."""
    return GemmConfig(
        mul=product_format, acc=acc_format, rounding=rounding, mul_rounding=product_rounding, order="sequential"
    )


@dataclass(frozen=True)
class ArithMode:
    """One GEMM arithmetic of an array: ``C = A @ B`` with ``A`` in ``a_format``, ``B`` in ``b_format``.

    Formats and roundings are mpsim strings (``"e4m3"``, ``"stochastic:8"``);
    ``product_format=None`` is a fused MAC (exact products, one rounding per
    step). ``uses`` names the GEMMs that run in this mode
    (``"e4m3-sr/forward"``), for the manifest and the reader.
    """

    a_format: str
    acc_format: str
    b_format: str | None = None
    product_format: str | None = None
    rounding: str = "nearest"
    product_rounding: str = "nearest"
    uses: tuple[str, ...] = ()

    @property
    def gemm_config(self) -> GemmConfig:
        """The mode's arithmetic as :func:`mpsim.qmatmul` takes it: each output summed from +0 in order."""
        return array_gemm_config(self.product_format, self.acc_format, self.rounding, self.product_rounding)

    @property
    def arithmetic(self) -> tuple[str, str, str, str | None, str, str]:
        """What makes two modes the same hardware (everything but ``uses``)."""
        product_rounding = "nearest" if self.product_format is None else self.product_rounding
        return (
            self.a_format,
            self.b_format or self.a_format,
            self.acc_format,
            self.product_format,
            self.rounding,
            product_rounding,
        )


@dataclass(frozen=True)
class HwMode:
    """A checked :class:`ArithMode`: parsed formats and the random bits of each rounding (None: nearest).

    ``mx``: an MX mode's block formats of A and B (``a_format`` and ``b_format`` are then their element formats,
    what the operand ports carry), else None.
    """

    a_format: FloatFormat
    b_format: FloatFormat
    acc_format: FloatFormat
    product_format: FloatFormat | None
    rand_bits: int | None
    product_rand_bits: int | None
    mx: tuple[MXFormat, MXFormat] | None = None

    @property
    def lfsr_steps(self) -> int:
        """LFSR steps per accepted step of this mode (an MX mode's: per block): the product's random bits, then the
        sum's."""
        return (self.product_rand_bits or 0) + (self.rand_bits or 0)

    @property
    def term_bits(self) -> int:
        """Significand bits of the terms this mode accumulates: an exact product's (both operands'), or the
        product format's (an MX mode's terms are normalized block sums: see :class:`hls_gen.mx_mac.MXMAC`)."""
        if self.product_format is None:
            return self.a_format.man_bits + 1 + self.b_format.man_bits + 1
        return self.product_format.man_bits + 1

    @property
    def label(self) -> str:
        """A short name: ``e4m3xe5m2_fp16_sr8``, ``bf16_bf16_rne``, ``e4m3_e5m6_pe4m3rne_sr8``,
        ``mxfp8_e5m2xmxfp8_e4m3_fp16_rne``."""
        a, b = (self.a_format.label, self.b_format.label) if self.mx is None else (f.label for f in self.mx)
        parts = [a if a == b else f"{a}x{b}", self.acc_format.label]
        if self.product_format is not None:
            parts.append(f"p{self.product_format.label}{rounding_token(self.product_rand_bits)}")
        parts.append(rounding_token(self.rand_bits))
        return "_".join(parts)


def mx_formats(a_format: object, b_format: object | None = None) -> tuple[MXFormat, MXFormat]:
    """The MX formats of A and B (B defaults to A's), checked for what :class:`hls_gen.mx_mac.MXMAC` builds;
    one-line errors."""
    parsed = []
    for what, value in (("MX operand format a", a_format), ("MX operand format b", b_format or a_format)):
        if not isinstance(value, (str, MXFormat)):
            raise TypeError(f"{what} must be an MX format string or an mpsim MXFormat, not {value!r}")
        fmt = parse_mx_format(value)
        if not isinstance(fmt.element, FloatFormat):
            raise ValueError(
                f"{what} must have floating-point elements, not {fmt} (elements {fmt.element}): "
                "the hardware generator has no fixed-point datapath"
            )
        operand_format(fmt.element, f"{what}'s element format")
        parsed.append(fmt)
    fa, fb = parsed
    if fa.block_size != fb.block_size:
        raise ValueError(
            f"MX operands must share a block size: a's {fa} has {fa.block_size}, b's {fb} has {fb.block_size}"
        )
    return fa, fb


def check_mx_mode(
    a_format: object, b_format: object, acc_format: object, product_format: object, rounding: object,
    product_rounding: object, lfsr_width: int | None,
) -> HwMode:  # fmt: skip
    """An MX mode checked: no product format (a block's products are summed exactly), an accumulator with NaN."""
    fa, fb = mx_formats(a_format, b_format)
    if product_format is not None:
        raise ValueError(
            f"an MX mode sums each block's products exactly: it takes no product format, not {product_format}"
        )
    if product_rounding != "nearest":
        raise ValueError(
            f"an MX mode rounds no products (its elements come quantized), so product rounding must be 'nearest', "
            f"not {product_rounding!r}"
        )
    acc = float_format(acc_format, "accumulator format")  # type: ignore[arg-type]
    if not acc.has_nan:
        raise ValueError(
            f"accumulator format {acc} has no NaN, but an MX block's NaN scale (0xFF) brings NaN; use a format with NaN"
        )
    rand_bits = hw_rounding(rounding, "accumulator rounding", lfsr_width)  # type: ignore[arg-type]
    return HwMode(fa.element, fb.element, acc, None, rand_bits, None, mx=(fa, fb))  # type: ignore[arg-type]


def check_mode(
    *,
    a_format: object,
    b_format: object,
    acc_format: object,
    product_format: object,
    rounding: object,
    product_rounding: object,
    lfsr_width: int | None,
    what: str = "",
) -> HwMode:
    """One mode's formats and roundings parsed and checked (``what`` prefixes the messages: ``"mode 2: "``).

    Either operand an MX format makes an MX mode: then both must be MX formats of one block size.
    """
    try:
        if any(isinstance(v, (str, MXFormat)) and is_mx_spec(v) for v in (a_format, b_format)):
            return check_mx_mode(a_format, b_format, acc_format, product_format, rounding, product_rounding, lfsr_width)
        a = operand_format(a_format, "multiplier operand format a")  # type: ignore[arg-type]
        b = operand_format(b_format, "multiplier operand format b")  # type: ignore[arg-type]
        acc = float_format(acc_format, "accumulator format")  # type: ignore[arg-type]
        product = None if product_format is None else float_format(product_format, "product format")  # type: ignore[arg-type]
        rand_bits = hw_rounding(rounding, "accumulator rounding", lfsr_width)  # type: ignore[arg-type]
        product_rand_bits = hw_rounding(product_rounding, "product rounding", lfsr_width)  # type: ignore[arg-type]
        if product is None and product_rand_bits is not None:
            raise ValueError(
                f"product rounding {product_rounding!r} needs a product format; a fused MAC does not round products"
            )
        if product is not None:
            check_nan_capable(product, "product format", (a, b))
        check_nan_capable(acc, "accumulator format", (a, b))
    except (TypeError, ValueError) as error:
        if not what:
            raise
        raise type(error)(f"{what}{error}") from None
    return HwMode(a, b, acc, product, rand_bits, product_rand_bits)


def check_modes(modes: Sequence[ArithMode], lfsr_width: int | None) -> tuple[HwMode, ...]:
    """Every mode checked, in order (1..:data:`MAX_MODES` of them, no two the same arithmetic)."""
    if not isinstance(modes, (tuple, list)) or not all(isinstance(x, ArithMode) for x in modes):
        raise TypeError(f"modes must be a sequence of hls_gen.modes.ArithMode, not {modes!r}")
    if not 1 <= len(modes) <= MAX_MODES:
        raise ValueError(f"an array executes 1..{MAX_MODES} modes, not {len(modes)}")
    seen: dict[tuple[object, ...], int] = {}
    checked = []
    for i, mode in enumerate(modes):
        if mode.arithmetic in seen:
            raise ValueError(f"modes {seen[mode.arithmetic]} and {i} are the same arithmetic ({mode.arithmetic})")
        seen[mode.arithmetic] = i
        checked.append(
            check_mode(
                a_format=mode.a_format,
                b_format=mode.b_format or mode.a_format,
                acc_format=mode.acc_format,
                product_format=mode.product_format,
                rounding=mode.rounding,
                product_rounding=mode.product_rounding,
                lfsr_width=lfsr_width,
                what=f"mode {i} ({', '.join(mode.uses) or mode.a_format}): " if len(modes) > 1 else "",
            )
        )
    kinds = [x.mx is not None for x in checked]
    if len(set(kinds)) > 1:  # the first mode of the other kind than mode 0's
        j = kinds.index(not kinds[0])
        raise ValueError(
            f"modes 0 ({checked[0].label}) and {j} ({checked[j].label}): an array's modes must be all MX or all "
            "element-wise (its PEs are block dot-product units or element MACs)"
        )
    blocks = [x.mx[0].block_size for x in checked if x.mx is not None]
    if len(set(blocks)) > 1:  # one block counter per PE
        j = next(i for i, size in enumerate(blocks) if size != blocks[0])
        raise ValueError(
            f"modes 0 ({checked[0].label}) and {j} ({checked[j].label}): an MX array's modes share one block size, "
            f"not {blocks[0]} and {blocks[j]}"
        )
    return tuple(checked)


def window(modes: Sequence[HwMode]) -> tuple[int, int]:
    """``(lsb, width)`` of a block-sum register that holds every MX mode's block sums: the lowest of the modes'
    :func:`mpsim.mx.block_window` lsbs to the highest of their tops."""
    windows = [block_window(*x.mx) for x in modes if x.mx is not None]
    if not windows:
        raise ValueError("a block-sum window needs MX modes")
    lsb = min(lo for lo, _ in windows)
    return lsb, max(lo + w for lo, w in windows) - lsb


def mode_bits(count: int) -> int:
    """Width of the mode field for ``count`` modes (0 for a single mode: no field)."""
    return (count - 1).bit_length()


def _layer_modes(name: str, layer: LayerPrecision) -> list[ArithMode]:
    tensors = {"activation": layer.activation, "weight": layer.weight, "grad": layer.grad}
    modes = []
    for gemm_kind in GemmKind:
        kind, (a_name, b_name) = gemm_kind.value, gemm_kind.operands
        gemm: GemmConfig = layer.gemm(gemm_kind)
        use = f"{name}/{kind}"
        if not gemm.emulate:
            raise ValueError(
                f"precision {name!r}: its {kind} GEMM is left to torch in fp32 (emulate=False); "
                "the hardware needs an accumulator format and a rounding"
            )
        if gemm.order_kind.name != "SEQUENTIAL":
            raise ValueError(
                f"precision {name!r}: its {kind} GEMM sums in order {gemm.order!r}; a MAC array sums "
                "each output sequentially"
            )
        mx = gemm.mx_formats
        if mx is not None:  # an MX GEMM blocks its fp32 operands itself: its formats are the GEMM's, not the tensors'
            if gemm.mul_rounding_rule.stochastic:
                raise ValueError(
                    f"precision {name!r}: its {kind} GEMM rounds its MX elements {gemm.mul_rounding}; "
                    "a MAC array's random stream rounds the accumulator only (its operands arrive quantized)"
                )
            modes.append(
                ArithMode(
                    a_format=mx[0].label,
                    b_format=mx[1].label,
                    acc_format=str(gemm.acc),
                    rounding=str(gemm.rounding),
                    uses=(use,),
                )
            )
            continue
        formats = []
        for tensor in (a_name, b_name):
            fmt = tensors[tensor].format
            if fmt is None:
                raise ValueError(
                    f"precision {name!r}: the {tensor} tensor of its {kind} GEMM stays fp32; "
                    "the hardware multiplies operands of at most 16 bits"
                )
            formats.append(fmt)
        mul = gemm.mul
        modes.append(
            ArithMode(
                a_format=str(formats[0]),
                b_format=str(formats[1]),
                acc_format=str(gemm.acc),
                product_format=None if mul is None else str(mul),
                rounding=str(gemm.rounding),
                product_rounding=str(gemm.mul_rounding) if mul is not None else "nearest",
                uses=(use,),
            )
        )
    return modes


def training_modes(precisions: Sequence[str | PrecisionConfig]) -> tuple[ArithMode, ...]:
    """The distinct modes a training step of each precision needs, in first-use order (``uses`` merged).

    ``precisions`` are preset names (:data:`mpsim.precision.PRECISION_PRESETS`),
    ``.json``/``.yaml`` :class:`~mpsim.precision.PrecisionConfig` files, or
    configs; every layer precision of a config counts (its default and its
    overrides).
    """
    merged: dict[tuple[object, ...], ArithMode] = {}
    for spec in precisions:
        config = parse_precision(spec)
        name = spec if isinstance(spec, str) else "precision"
        layers = [(name, config.default)] + [(f"{name}[{pattern}]", layer) for pattern, layer in config.overrides]
        for label, layer in layers:
            for mode in _layer_modes(label, layer):
                key = mode.arithmetic
                if key in merged:
                    old = merged[key]
                    merged[key] = replace(old, uses=old.uses + mode.uses)
                else:
                    merged[key] = mode
    return tuple(merged.values())
