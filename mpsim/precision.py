"""Precision configuration of layers: frozen dataclasses, loadable from dicts, JSON and YAML.

Each GEMM of training is a :class:`~mpsim.gemm_config.GemmConfig`, the type
:func:`mpsim.qmatmul` and the hardware manifests use too.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mpsim.config_file import read_mapping
from mpsim.formats import parse_format
from mpsim.gemm_config import GemmConfig
from mpsim.rounding import parse_rounding

__all__ = [
    "PRECISION_PRESETS",
    "GemmCall",
    "GemmConfig",
    "GemmKind",
    "LayerPrecision",
    "PrecisionConfig",
    "TensorQuant",
]


def _check_keys(cls: type, data: dict[str, Any]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} takes a mapping, not {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")


@dataclass(frozen=True)
class TensorQuant:
    """How a tensor (weights, activations, gradients) is quantized: format (None = left fp32) and rounding."""

    format: str | None = None
    rounding: str = "nearest"

    def __post_init__(self) -> None:
        if self.format is not None:
            parse_format(self.format)
        parse_rounding(self.rounding)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str | None) -> TensorQuant:
        if data is None or isinstance(data, str):
            return cls(format=data)
        _check_keys(cls, data)
        return cls(**data)


class GemmKind(enum.Enum):
    """The three GEMMs of a layer's training step (:mod:`mpsim.nn.functional` computes them)."""

    FORWARD = "forward"  # y = x @ w
    GRAD_INPUT = "grad_input"  # dx = dy @ w^T
    GRAD_WEIGHT = "grad_weight"  # dw = x^T @ dy

    @property
    def operands(self) -> tuple[str, str]:
        """The tensors (:class:`LayerPrecision` field names) that are the GEMM's A and B operands."""
        return _OPERANDS[self]


_OPERANDS = {
    GemmKind.FORWARD: ("activation", "weight"),
    GemmKind.GRAD_INPUT: ("grad", "weight"),
    GemmKind.GRAD_WEIGHT: ("activation", "grad"),
}


@dataclass(frozen=True)
class GemmCall:
    """One GEMM of a layer's training step: its kind, its arithmetic, and how its A and B operands (in the order
    multiplied) were quantized: their formats are what a hardware mode multiplies."""

    kind: GemmKind
    config: GemmConfig
    a: TensorQuant
    b: TensorQuant


@dataclass(frozen=True)
class LayerPrecision:
    """Precisions of one layer: its three GEMMs and the tensors entering them."""

    weight: TensorQuant = field(default_factory=TensorQuant)
    activation: TensorQuant = field(default_factory=TensorQuant)
    grad: TensorQuant = field(default_factory=TensorQuant)  # error flowing back into the layer
    forward: GemmConfig = field(default_factory=lambda: GemmConfig(emulate=False))
    grad_input: GemmConfig = field(default_factory=lambda: GemmConfig(emulate=False))
    grad_weight: GemmConfig = field(default_factory=lambda: GemmConfig(emulate=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerPrecision:
        _check_keys(cls, data)
        parts: dict[str, Any] = {}
        for name in ("weight", "activation", "grad"):
            if name in data:
                parts[name] = TensorQuant.from_dict(data[name])
        for name in ("forward", "grad_input", "grad_weight"):
            if name in data:
                parts[name] = GemmConfig.from_dict(data[name])
        return cls(**parts)

    def gemm(self, kind: GemmKind) -> GemmConfig:
        """The arithmetic of GEMM ``kind``."""
        return getattr(self, kind.value)

    def call(self, kind: GemmKind, weight_first: bool = False) -> GemmCall:
        """GEMM ``kind`` as the layer computes it: a linear layer multiplies ``x @ w``, ``dy @ w^T``, ``x^T @ dy``;
        a convolution (``weight_first``) ``w @ x``, ``w^T @ dy``, ``dy @ x^T``: the same operands swapped."""
        a, b = kind.operands[::-1] if weight_first else kind.operands
        config = self.gemm(kind)
        mx = config.mx_formats
        if weight_first and mx is not None and mx[0] != mx[1]:  # an MX pair names A's format first: swap it too
            config = replace(config, mul=f"{mx[1]},{mx[0]}")
        return GemmCall(kind, config, getattr(self, a), getattr(self, b))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: asdict(getattr(self, name)) for name in ("weight", "activation", "grad")}
        data.update({name: getattr(self, name).to_dict() for name in ("forward", "grad_input", "grad_weight")})
        return data


@dataclass(frozen=True)
class PrecisionConfig:
    """A model's precision: a default per layer, overrides by module-name pattern, and a seed.

    ``overrides`` are ``(pattern, LayerPrecision)`` pairs matched with
    :func:`fnmatch.fnmatch` against module names (``"0"``, ``"features.*"``);
    the last match wins. ``seed`` seeds each layer's random stream (layer ``i``
    in module order gets ``seed + i``).
    """

    default: LayerPrecision = field(default_factory=LayerPrecision)
    overrides: tuple[tuple[str, LayerPrecision], ...] = ()
    seed: int = 0

    def for_module(self, name: str) -> LayerPrecision:
        chosen = self.default
        for pattern, precision in self.overrides:
            if fnmatch.fnmatch(name, pattern):
                chosen = precision
        return chosen

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrecisionConfig:
        _check_keys(cls, data)
        default = LayerPrecision.from_dict(data.get("default", {}))
        overrides = tuple((str(p), LayerPrecision.from_dict(v)) for p, v in dict(data.get("overrides", {})).items())
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        return cls(default=default, overrides=overrides, seed=seed)

    @classmethod
    def load(cls, path: str | Path) -> PrecisionConfig:
        """From a ``.json`` or ``.yaml``/``.yml`` file."""
        return cls.from_dict(read_mapping(path, "precision config"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default.to_dict(),
            "overrides": {p: v.to_dict() for p, v in self.overrides},
            "seed": self.seed,
        }

    def with_seed(self, seed: int) -> PrecisionConfig:
        return replace(self, seed=seed)


def _preset(fmt: str | None, rounding: str, acc: str, emulate: bool = True) -> PrecisionConfig:
    tq = TensorQuant(fmt, "nearest")
    gemm = GemmConfig(mul=None, acc=acc, rounding=rounding, emulate=emulate)
    grad = TensorQuant("e5m2" if fmt == "e4m3" else fmt, rounding)
    layer = LayerPrecision(weight=tq, activation=tq, grad=grad, forward=gemm, grad_input=gemm, grad_weight=gemm)
    return PrecisionConfig(default=layer)


def _mx_preset(
    fwd: str, bwd: str, acc: str, rounding: str = "nearest", grad_elements: str = "nearest"
) -> PrecisionConfig:
    """MX training: every GEMM puts its fp32 operands in MX blocks along its own reduction axis.

    Forward ``x @ w`` in ``fwd`` (both operands); the backward GEMMs take the
    error in ``bwd`` and the other operand in ``fwd``, their elements rounded
    by ``grad_elements``. The tensors themselves stay fp32 (the master copies):
    a weight enters the forward GEMM blocked along its input features and the
    input-gradient GEMM blocked along its output features, as MX training
    recipes quantize per GEMM (OCP MX v1.0; Rouhani et al., 2023).
    """
    forward = GemmConfig(mul=fwd, acc=acc, rounding=rounding)
    grad_input = GemmConfig(mul=f"{bwd},{fwd}", acc=acc, rounding=rounding, mul_rounding=grad_elements)
    grad_weight = GemmConfig(mul=f"{fwd},{bwd}", acc=acc, rounding=rounding, mul_rounding=grad_elements)
    return PrecisionConfig(default=LayerPrecision(forward=forward, grad_input=grad_input, grad_weight=grad_weight))


#: Named configurations (``mpsim train --precision NAME``). ``*-sr`` accumulate
#: with stochastic rounding (8 random bits); FP8 presets use e4m3 weights and
#: activations, e5m2 gradients, and an fp16 or bf16 accumulator. MX presets
#: (:func:`_mx_preset`) block every GEMM's operands along its reduction axis
#: (32 elements per E8M0 scale): ``mxfp8`` e4m3 forward and e5m2 errors, ``mxfp6``
#: e2m3 forward and e3m2 errors, ``mxfp4`` e2m1 throughout with the backward
#: GEMMs' elements rounded stochastically (8 bits), as MXFP4 training does
#: (Tseng et al., 2025), all into an fp16 accumulator.
PRECISION_PRESETS: dict[str, PrecisionConfig] = {
    "fp32": PrecisionConfig(),
    "bf16": _preset("bf16", "nearest", "bf16"),
    "bf16-sr": _preset("bf16", "stochastic:8", "bf16"),
    "fp16": _preset("fp16", "nearest", "fp16"),
    "e4m3": _preset("e4m3", "nearest", "fp16"),
    "e4m3-sr": _preset("e4m3", "stochastic:8", "fp16"),
    "e5m2": _preset("e5m2", "nearest", "bf16"),
    "e5m2-sr": _preset("e5m2", "stochastic:8", "bf16"),
    "e4m3-fp12": _preset("e4m3", "nearest", "e5m6"),
    "e4m3-fp12-sr": _preset("e4m3", "stochastic:8", "e5m6"),
    "mxfp8": _mx_preset("mxfp8_e4m3", "mxfp8_e5m2", "fp16"),
    "mxfp8-sr": _mx_preset("mxfp8_e4m3", "mxfp8_e5m2", "fp16", "stochastic:8"),
    "mxfp6": _mx_preset("mxfp6_e2m3", "mxfp6_e3m2", "fp16"),
    "mxfp4": _mx_preset("mxfp4_e2m1", "mxfp4_e2m1", "fp16", grad_elements="stochastic:8"),
}


def parse_precision(spec: str | PrecisionConfig | dict[str, Any]) -> PrecisionConfig:
    """A preset name, a .json/.yaml path, a dict, or a config."""
    if isinstance(spec, PrecisionConfig):
        return spec
    if isinstance(spec, dict):
        return PrecisionConfig.from_dict(spec)
    if isinstance(spec, str):
        if spec in PRECISION_PRESETS:
            return PRECISION_PRESETS[spec]
        if spec.endswith((".json", ".yaml", ".yml")):
            return PrecisionConfig.load(spec)
        raise ValueError(
            f"unknown precision {spec!r}: expected one of {', '.join(PRECISION_PRESETS)} or a .json/.yaml file"
        )
    raise ValueError(f"precision must be a preset name, a file, a dict or a PrecisionConfig, not {spec!r}")
