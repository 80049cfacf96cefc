"""Network descriptions for the cost model: Linear and Conv2d layers with shapes, from JSON/YAML or torch.

A :class:`NetworkSpec` is what :mod:`hls_gen.perf_model` costs and what
:mod:`hls_gen.nas` searches over: an input shape (without the batch) and a
sequence of layers, each ``Linear`` (``out_features``) or ``Conv2d``
(``out_channels``, ``kernel``, ``stride``, ``padding``, ``groups``), with an
optional per-layer precision (``mul``, ``acc``, ``rounding``). Activations,
flattening and other element-wise steps hold no GEMM and are not listed;
a Linear layer after a Conv2d reads the flattened feature map.

File form (JSON or YAML)::

    {"name": "cnn", "input_shape": [1, 8, 8],
     "layers": [{"kind": "Conv2d", "out_channels": 8, "kernel": 3, "padding": 1},
                {"kind": "Linear", "out_features": 10, "acc": "fp16"}]}

:func:`network_from_module` reads any torch model built from supported
layers (``mpsim train``'s ``mlp`` and ``cnn`` among them) by running it once on
a zero input; a layer kind that holds a GEMM the model cannot cost
(``Conv1d``, ``LSTM``, ...) raises ``ValueError`` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpsim.config_file import read_mapping
from mpsim.formats import parse_format
from mpsim.mx import parse_format_or_mx
from mpsim.rounding import parse_rounding

__all__ = [
    "LAYER_KINDS",
    "GemmShape",
    "LayerSpec",
    "NetworkSpec",
    "builtin_network",
    "load_network",
    "network_from_module",
]

LAYER_KINDS = ("Linear", "Conv2d")


def _positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")
    return value


def _pair(value: object, what: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)  # type: ignore[arg-type]
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in pair):
        raise ValueError(f"{what} must be an integer >= {minimum} or a pair of them, not {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class GemmShape:
    """One layer as GEMMs: ``groups`` products of ``(rows x k) @ (k x cols)``."""

    rows: int
    k: int
    cols: int
    groups: int = 1

    @property
    def macs(self) -> int:
        return self.groups * self.rows * self.k * self.cols


@dataclass(frozen=True)
class LayerSpec:
    """One GEMM layer. ``mul``/``acc``/``rounding`` None: the array's own; ``mul`` may be an MX format (the
    layer's operands in MX blocks, as on an MX array)."""

    kind: str
    out: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    mul: str | None = None
    acc: str | None = None
    rounding: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"unsupported layer kind {self.kind!r}: the cost model counts {', '.join(LAYER_KINDS)}")
        _positive(self.out, "out_features" if self.kind == "Linear" else "out_channels")
        _positive(self.groups, "groups")
        if self.mul is not None:
            parse_format_or_mx(self.mul)
        if self.acc is not None:
            parse_format(self.acc)
        if self.rounding is not None:
            parse_rounding(self.rounding)

    @classmethod
    def from_dict(cls, data: dict[str, Any], index: int = 0) -> LayerSpec:
        if not isinstance(data, dict):
            raise ValueError(f"layer {index} must be a mapping, not {data!r}")
        kind = data.get("kind")
        if kind not in LAYER_KINDS:
            raise ValueError(
                f"unsupported layer kind {kind!r} in layer {index}: the cost model counts {', '.join(LAYER_KINDS)}"
            )
        known = {"kind", "mul", "acc", "rounding"} | (
            {"out_features"}
            if kind == "Linear"
            else {"out_channels", "kernel", "stride", "padding", "dilation", "groups"}
        )
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown keys {unknown} in {kind} layer {index}; known: {sorted(known)}")
        precision = {k: data.get(k) for k in ("mul", "acc", "rounding")}
        if kind == "Linear":
            return cls(kind, _positive(data.get("out_features"), f"out_features of layer {index}"), **precision)
        return cls(
            kind,
            _positive(data.get("out_channels"), f"out_channels of layer {index}"),
            kernel=_pair(data.get("kernel", 1), f"kernel of layer {index}", 1),
            stride=_pair(data.get("stride", 1), f"stride of layer {index}", 1),
            padding=_pair(data.get("padding", 0), f"padding of layer {index}", 0),
            dilation=_pair(data.get("dilation", 1), f"dilation of layer {index}", 1),
            groups=_positive(data.get("groups", 1), f"groups of layer {index}"),
            **precision,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.kind == "Linear":
            data["out_features"] = self.out
        else:
            data.update(
                out_channels=self.out,
                kernel=list(self.kernel),
                stride=list(self.stride),
                padding=list(self.padding),
                dilation=list(self.dilation),
                groups=self.groups,
            )
        data.update(
            {k: v for k, v in (("mul", self.mul), ("acc", self.acc), ("rounding", self.rounding)) if v is not None}
        )
        return data


@dataclass(frozen=True)
class NetworkSpec:
    """Input shape (no batch: ``(features,)`` or ``(channels, height, width)``) and GEMM layers in order."""

    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    name: str = "network"
    classes: int | None = field(default=None)

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        if not self.input_shape or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.input_shape
        ):
            raise ValueError(f"input shape must be positive integers, not {self.input_shape!r}")
        self.shapes()  # every layer fits its input, checked now

    def shapes(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(input shape, output shape) of each layer, batch excluded."""
        shape = tuple(self.input_shape)
        out = []
        for i, layer in enumerate(self.layers):
            if layer.kind == "Linear":
                new: tuple[int, ...] = (layer.out,)
            else:
                if len(shape) != 3:
                    raise ValueError(f"Conv2d layer {i} needs a (channels, height, width) input, not {shape!r}")
                channels, h, w = shape
                if channels % layer.groups or layer.out % layer.groups:
                    raise ValueError(
                        f"groups={layer.groups} of layer {i} must divide in_channels {channels} "
                        f"and out_channels {layer.out}"
                    )
                ho = (h + 2 * layer.padding[0] - layer.dilation[0] * (layer.kernel[0] - 1) - 1) // layer.stride[0] + 1
                wo = (w + 2 * layer.padding[1] - layer.dilation[1] * (layer.kernel[1] - 1) - 1) // layer.stride[1] + 1
                if ho < 1 or wo < 1:
                    raise ValueError(f"Conv2d layer {i} (kernel {layer.kernel}) leaves no output from a {h}x{w} input")
                new = (layer.out, ho, wo)
            out.append((shape, new))
            shape = new
        return out

    def gemms(self, batch: int = 1) -> list[GemmShape]:
        """Each layer as GEMMs for a batch: Linear ``(batch x in) @ (in x out)``; Conv2d im2col per group."""
        _positive(batch, "batch")
        result = []
        for layer, (shape_in, shape_out) in zip(self.layers, self.shapes()):
            if layer.kind == "Linear":
                result.append(GemmShape(batch, math.prod(shape_in), layer.out))
            else:
                k = shape_in[0] // layer.groups * layer.kernel[0] * layer.kernel[1]
                result.append(
                    GemmShape(batch * shape_out[1] * shape_out[2], k, layer.out // layer.groups, layer.groups)
                )
        return result

    def weights(self) -> list[int]:
        """Weights per layer (biases excluded)."""
        return [g.k * g.cols * g.groups for g in self.gemms()]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        if not isinstance(data, dict):
            raise ValueError(f"a network description is a mapping, not {data!r}")
        unknown = sorted(set(data) - {"name", "input_shape", "layers", "classes"})
        if unknown:
            raise ValueError(f"unknown network keys {unknown}; known: ['classes', 'input_shape', 'layers', 'name']")
        if "input_shape" not in data or "layers" not in data:
            raise ValueError("a network description needs 'input_shape' and 'layers'")
        if not isinstance(data["layers"], list):
            raise ValueError(f"'layers' must be a list of layers, not {data['layers']!r}")
        if not isinstance(data["input_shape"], list):
            raise ValueError(f"'input_shape' must be a list of sizes such as [1, 8, 8], not {data['input_shape']!r}")
        layers = tuple(LayerSpec.from_dict(layer, i) for i, layer in enumerate(data["layers"]))
        return cls(tuple(data["input_shape"]), layers, str(data.get("name", "network")), data.get("classes"))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.classes is not None:
            data["classes"] = self.classes
        return data


def load_network(path: str | Path) -> NetworkSpec:
    """A :class:`NetworkSpec` from a ``.json`` or ``.yaml``/``.yml`` file.

    A file that does not parse, or describes no network, raises ``ValueError``
    naming the file (and the line, for a syntax error).
    """
    path = Path(path)
    data = read_mapping(path, "network file")
    try:
        return NetworkSpec.from_dict(data)
    except ValueError as error:
        raise ValueError(f"network file {str(path)!r}: {error}") from None


def network_from_module(module: Any, input_shape: tuple[int, ...], name: str = "network") -> NetworkSpec:
    """The GEMM layers of a torch model, in execution order, found by running it once on zeros.

    Linear/Conv2d (and mpsim's QLinear/QConv2d) become layers; modules without
    parameters and element-wise ones with parameters (normalisation) are
    skipped; any other module with parameters raises ``ValueError`` naming it.
    """
    import torch
    from torch import nn

    supported = (nn.Linear, nn.Conv2d)
    elementwise = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
    bad = [
        f"{n} ({type(m).__name__})"
        for n, m in module.named_modules()
        if n and not isinstance(m, supported + elementwise) and any(True for _ in m.parameters(recurse=False))
    ]
    if bad:
        raise ValueError(f"unsupported layers for the cost model: {', '.join(bad)}; it counts Linear and Conv2d")
    layers: list[LayerSpec] = []

    def hook(m: Any, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(m, nn.Linear):
            layers.append(LayerSpec("Linear", m.out_features))
        else:
            if isinstance(m.padding, str):
                raise ValueError(f"Conv2d padding {m.padding!r} is not supported by the cost model; give it in pixels")
            layers.append(
                LayerSpec(
                    "Conv2d",
                    m.out_channels,
                    kernel=tuple(m.kernel_size),
                    stride=tuple(m.stride),
                    padding=tuple(m.padding),
                    dilation=tuple(m.dilation),
                    groups=m.groups,
                )
            )

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, supported)]
    try:
        was_training = module.training
        module.eval()
        with torch.no_grad():
            module(torch.zeros((1, *input_shape)))
        module.train(was_training)
    finally:
        for h in handles:
            h.remove()
    # a Linear reads the flattened map; a 1-D signal unflattened to (1, 1, L) by the model stays a 3-D shape here
    shape = tuple(input_shape)
    first = layers[0] if layers else None
    if first is not None and first.kind == "Conv2d" and len(shape) == 1:
        shape = (1, 1, shape[0])
    return NetworkSpec(shape, tuple(layers), name)


def builtin_network(model: str, dataset: str = "digits", hidden: int = 64) -> NetworkSpec:
    """``mpsim train``'s ``mlp`` or ``cnn`` on a dataset's input shape (``digits-image`` for ``cnn`` on digits)."""
    from mpsim.data import load_dataset
    from mpsim.train import MODELS, TrainConfig, build_model

    if model not in MODELS:
        raise ValueError(
            f"unknown built-in model {model!r}: expected one of {', '.join(MODELS)} or a .json/.yaml network file"
        )
    if model == "cnn" and dataset == "digits":
        dataset = "digits-image"  # the CNN wants images; flat digits are 8x8 images
    data = load_dataset(dataset)
    net = build_model(TrainConfig(dataset=dataset, model=model, hidden=hidden), data)
    spec = network_from_module(net, data.input_shape, name=f"{model}-{dataset}")
    return NetworkSpec(spec.input_shape, spec.layers, spec.name, data.num_classes)
