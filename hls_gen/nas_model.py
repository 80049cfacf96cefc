"""A NAS candidate: what a trial samples, its torch model at the per-layer precision, and its accuracy.

:func:`sample` draws a :class:`Candidate` (network, per-layer formats, array) from a search space through an
Optuna trial (or anything with its ``suggest_*`` methods); :func:`build_torch` and :func:`quantized_model` make
the network a torch model whose every GEMM is emulated at its layer's precision; :func:`train_accuracy` trains
it briefly (seeded) and :func:`gradient_norm` scores it at initialisation. torch is loaded only by the functions
that need it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hls_gen.array_size import parse_array_size
from hls_gen.nas_config import NASConfig
from hls_gen.nas_space import IntRange, SearchSpace, choices
from hls_gen.network import LayerSpec, NetworkSpec

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PROXY_BATCHES",
    "Candidate",
    "build_torch",
    "datasets",
    "gradient_norm",
    "mx_backward",
    "precision_config",
    "quantized_model",
    "sample",
    "tensors",
    "train_accuracy",
]

PROXY_BATCHES = 4  # mini-batches the gradient-norm proxy averages over


@dataclass(frozen=True)
class Candidate:
    """What a trial sampled: the network with per-layer precision, the array size, interleave and pipeline."""

    network: NetworkSpec
    arch: str
    array: tuple[int, int]
    interleave: int = 1
    pipeline: int = 1


def sample(trial: optuna.trial.BaseTrial, space: SearchSpace, input_shape: tuple[int, ...], classes: int) -> Candidate:
    """Draw a candidate; parameter names are stable so that NSGA-II can cross them over.

    The parameters of the default space are drawn in the order and with the distributions they always had
    (a stored study resumes as it was); a choice added since (the operand formats, the interleave, the
    pipeline) is a parameter only when the space gives it more than one value.
    """
    arch = trial.suggest_categorical("arch", list(space.archs))
    network_mul = _fixed_or_suggest(trial, "mul", space.mul) if space.mul_scope == "network" else None
    layers: list[tuple[str, dict[str, Any]]] = []
    if arch == "mlp":
        depth = _suggest_int(trial, "mlp_depth", space.mlp_depths)
        for i in range(depth):
            layers.append(("Linear", {"out": _suggest_int(trial, f"mlp_width_{i}", space.mlp_widths)}))
        shape: tuple[int, ...] = (int(_prod(input_shape)),)
    else:
        depth = _suggest_int(trial, "cnn_depth", space.cnn_depths)
        for i in range(depth):
            k = _suggest_int(trial, f"cnn_kernel_{i}", space.cnn_kernels)
            channels = _suggest_int(trial, f"cnn_channels_{i}", space.cnn_channels)
            # the last convolution halves the map, as mpsim train's cnn does
            stride = 2 if i == depth - 1 else 1
            layers.append(
                ("Conv2d", {"out": channels, "kernel": (k, k), "padding": (k // 2, k // 2), "stride": (stride, stride)})
            )
        shape = input_shape
    layers.append(("Linear", {"out": classes}))
    specs = []
    for i, (kind, args) in enumerate(layers):
        mul = network_mul or _fixed_or_suggest(trial, f"mul_{i}", space.mul)
        acc = trial.suggest_categorical(f"acc_{i}", list(space.accs))
        rounding = trial.suggest_categorical(f"rounding_{i}", list(space.roundings))
        specs.append(LayerSpec(kind, mul=mul, acc=acc, rounding=rounding, **args))
    if space.arrays:
        array = parse_array_size(trial.suggest_categorical("array", list(space.arrays)))
    else:
        array = (
            _suggest_int(trial, "array_rows", space.array_rows),  # type: ignore[arg-type]
            _suggest_int(trial, "array_cols", space.array_cols),  # type: ignore[arg-type]
        )
    interleave = _fixed_or_suggest(trial, "interleave", space.interleaves)
    pipeline = _fixed_or_suggest(trial, "pipeline", space.pipelines)
    network = NetworkSpec(shape, tuple(specs), f"{arch}-{trial.number}", classes)
    return Candidate(network, arch, array, interleave, pipeline)


def _suggest_int(trial: optuna.trial.BaseTrial, name: str, space: tuple[int, ...] | IntRange) -> int:
    """A categorical choice from a tuple, an int from a range (with its step)."""
    if isinstance(space, IntRange):
        return trial.suggest_int(name, space.min, space.max, step=space.step)
    return trial.suggest_categorical(name, list(space))


def _fixed_or_suggest(trial: optuna.trial.BaseTrial, name: str, space: tuple[Any, ...] | IntRange) -> Any:
    """The one value of a fixed choice (no parameter: the default space samples what it always did), or a draw."""
    values = choices(space) if isinstance(space, IntRange) else space
    if len(values) == 1:
        return values[0]
    return (
        _suggest_int(trial, name, space)
        if isinstance(space, IntRange)
        else trial.suggest_categorical(name, list(values))
    )


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def build_torch(network: NetworkSpec) -> Any:
    """The fp32 torch model of a network description (ReLU between layers, flatten before a Linear)."""
    from torch import nn

    modules: list[Any] = []
    shapes = network.shapes()
    for i, (layer, (shape_in, _)) in enumerate(zip(network.layers, shapes)):
        if i:
            modules.append(nn.ReLU())
        if layer.kind == "Linear":
            if len(shape_in) != 1:
                modules.append(nn.Flatten())
            modules.append(nn.Linear(_prod(shape_in), layer.out))
        else:
            modules.append(
                nn.Conv2d(
                    shape_in[0],
                    layer.out,
                    layer.kernel,
                    stride=layer.stride,
                    padding=layer.padding,
                    dilation=layer.dilation,
                    groups=layer.groups,
                )
            )
    return nn.Sequential(*modules)


def precision_config(network: NetworkSpec, model: Any, seed: int) -> Any:
    """A :class:`LayerPrecision` override per GEMM layer: operands, accumulator and rounding, as mpsim's presets.

    An element operand format quantizes weights and activations (gradients in e5m2 beside e4m3, as the FP8
    presets, else in the operand format) and every GEMM accumulates in the layer's format and rounding; an MX
    operand format blocks every GEMM's operands (tensors stay fp32), the backward GEMMs' errors in the MX format
    the MX preset of that forward format uses (:func:`mx_backward`).
    """
    from torch import nn

    from mpsim.mx import is_mx_spec
    from mpsim.precision import GemmConfig, LayerPrecision, PrecisionConfig, TensorQuant

    names = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    overrides = []
    for name, layer in zip(names, network.layers):
        mul, acc, rounding = layer.mul or "e4m3", layer.acc or "fp32", layer.rounding or "nearest"
        if is_mx_spec(mul):
            backward, elements = mx_backward(mul)
            precision = LayerPrecision(
                forward=GemmConfig(mul=mul, acc=acc, rounding=rounding),
                grad_input=GemmConfig(mul=f"{backward},{mul}", acc=acc, rounding=rounding, mul_rounding=elements),
                grad_weight=GemmConfig(mul=f"{mul},{backward}", acc=acc, rounding=rounding, mul_rounding=elements),
            )
        else:
            tensor = TensorQuant(mul, "nearest")
            grad = TensorQuant("e5m2" if mul == "e4m3" else mul, rounding)  # FP8 training: e5m2 gradients
            gemm = GemmConfig(mul=None, acc=acc, rounding=rounding)
            precision = LayerPrecision(
                weight=tensor, activation=tensor, grad=grad, forward=gemm, grad_input=gemm, grad_weight=gemm
            )
        overrides.append((name, precision))
    return PrecisionConfig(overrides=tuple(overrides), seed=seed)


def mx_backward(fmt: str) -> tuple[str, str]:
    """(MX format of the errors, rounding of the backward GEMMs' elements) for MX forward format ``fmt``: those of
    the MX preset whose forward GEMM is ``fmt`` (``mxfp8_e4m3`` -> ``mxfp8_e5m2``), else ``fmt`` and nearest."""
    from mpsim.mx import parse_mx_format
    from mpsim.precision import PRECISION_PRESETS

    mine = parse_mx_format(fmt)
    for preset in PRECISION_PRESETS.values():
        forward, grad_input = preset.default.forward, preset.default.grad_input
        if forward.mx_formats is not None and forward.mx_formats[0] == mine and grad_input.mx_formats is not None:
            return str(grad_input.mx_formats[0]), str(grad_input.mul_rounding)
    return fmt, "nearest"


def quantized_model(network: NetworkSpec, config: NASConfig) -> Any:
    """The network's torch model with seeded initial weights, every GEMM emulated at its layer's precision."""
    import torch

    from mpsim.nn import quantize_model

    torch.manual_seed(config.seed)
    model = build_torch(network)
    model, _ = quantize_model(model, precision_config(network, model, config.seed), strict=True)
    return model


def tensors(network: NetworkSpec, data: Any) -> tuple[Any, Any, Any, Any]:
    """(x_train, y_train, x_test, y_test) as torch tensors, inputs in the network's shape."""
    import torch

    x_train = torch.from_numpy(data.x_train.reshape(len(data.x_train), *network.input_shape))
    x_test = torch.from_numpy(data.x_test.reshape(len(data.x_test), *network.input_shape))
    return x_train, torch.from_numpy(data.y_train), x_test, torch.from_numpy(data.y_test)


def train_accuracy(
    network: NetworkSpec, config: NASConfig, data: Any, stop: Callable[[float, int], bool] | None = None
) -> tuple[float, int, float]:
    """Test accuracy after short emulated training: (accuracy, epochs run, seconds). Seeded.

    ``stop(accuracy, epoch)`` is asked after each epoch (1-based) whether to stop there (a pruner's decision).
    """
    import numpy as np
    import torch
    from torch import nn

    from mpsim.optim import QSGD, OptimPrecision

    start = time.perf_counter()
    model = quantized_model(network, config)
    optimizer = QSGD(model.parameters(), lr=config.lr, momentum=0.9, precision=OptimPrecision(seed=config.seed))
    x_train, y_train, x_test, y_test = tensors(network, data)
    shuffler = np.random.default_rng(config.seed)
    accuracy, epochs = 0.0, 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.from_numpy(shuffler.permutation(len(x_train)))
        for first in range(0, len(order), config.batch_size):
            index = order[first : first + config.batch_size]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
        epochs = epoch + 1
        # the cheap proxy: one epoch tells a network that will not learn from one that might
        if epoch == 0 and config.proxy_threshold is not None and accuracy < config.proxy_threshold:
            break
        if stop is not None and stop(accuracy, epochs):
            break
    return accuracy, epochs, time.perf_counter() - start


def gradient_norm(
    network: NetworkSpec, config: NASConfig, data: Any, batches: int = PROXY_BATCHES
) -> tuple[float, float]:
    """The zero-cost proxy: (score, seconds). No training, no weight update.

    The score is the mean, over ``batches`` seeded training mini-batches of ``config.batch_size``, of the L2 norm
    of the cross-entropy loss's gradient with respect to every weight of the initialised network, through the
    emulated GEMMs at the network's per-layer precision (so it sees the operand, accumulator and rounding
    choices). Larger is read as better, as the gradient-norm proxy of Abdelfattah et al. (2021) is.
    """
    import numpy as np
    import torch
    from torch import nn

    start = time.perf_counter()
    model = quantized_model(network, config)
    model.train()
    x_train, y_train, _, _ = tensors(network, data)
    picker = np.random.default_rng(config.seed)
    size = min(config.batch_size, len(x_train))
    norms = []
    for _ in range(batches):
        index = torch.from_numpy(picker.choice(len(x_train), size=size, replace=False))
        model.zero_grad()
        nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
        # in float64: the sum of squares of every gradient element, then one square root
        squares = sum(float((p.grad.double() ** 2).sum()) for p in model.parameters() if p.grad is not None)
        norms.append(math.sqrt(squares))
    return sum(norms) / len(norms), time.perf_counter() - start


def datasets(config: NASConfig) -> dict[str, Any]:
    from mpsim.data import load_dataset

    # the same seeded split, flat for MLPs and as 1x8x8 images for CNNs
    return {"mlp": load_dataset("digits", seed=config.seed), "cnn": load_dataset("digits-image", seed=config.seed)}
