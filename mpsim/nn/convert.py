"""``quantize_model``: swap supported modules for their quantized versions and report what changed;
``use_backend``: what computes their GEMMs."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mpsim.nn.backends import GemmBackend
from mpsim.nn.layers import QConv2d, QLinear
from mpsim.precision import GemmCall, GemmKind, LayerPrecision, PrecisionConfig, parse_precision

__all__ = ["ConversionReport", "gemm_calls", "quantize_model", "use_backend"]

# Modules that hold no GEMM and stay fp32 unless configured (listed as kept, not as unsupported).
_KEPT_FP32 = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
    nn.Softmax,
    nn.LogSoftmax,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool1d,
)


@dataclass
class ConversionReport:
    """What :func:`quantize_model` did: replaced, kept in fp32, and unsupported modules (by name)."""

    replaced: list[tuple[str, str]] = field(default_factory=list)  # (name, new type)
    kept_fp32: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)}: " + ", ".join(f"{n} ({t})" for n, t in self.replaced)]
        lines.append(f"kept fp32 {len(self.kept_fp32)}: " + ", ".join(f"{n} ({t})" for n, t in self.kept_fp32))
        lines.append(f"unsupported {len(self.unsupported)}: " + ", ".join(f"{n} ({t})" for n, t in self.unsupported))
        return "\n".join(lines)


def _convert(module: nn.Module, name: str, config: PrecisionConfig, seed: int) -> nn.Module:
    precision = config.for_module(name)
    if isinstance(module, nn.Linear):
        new: nn.Module = QLinear(
            module.in_features, module.out_features, bias=module.bias is not None, precision=precision, seed=seed
        )
    else:
        assert isinstance(module, nn.Conv2d)
        new = QConv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
            precision=precision,
            seed=seed,
        )
    new.load_state_dict(module.state_dict())
    new.train(module.training)
    return new.to(next(module.parameters()).device)


def quantize_model(
    model: nn.Module, config: PrecisionConfig | str | dict[str, Any], *, inplace: bool = True, strict: bool = False
) -> tuple[nn.Module, ConversionReport]:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` by ``QLinear``/``QConv2d`` with its configured precision.

    Returns the model (``model`` itself, or a converted copy when
    ``inplace=False``) and a report. Modules with parameters that mpsim
    cannot emulate (e.g. ``nn.LSTM``, ``nn.Embedding``) are listed as
    unsupported; ``strict=True`` raises ``ValueError`` naming them instead.
    """
    config = parse_precision(config)
    target = model if inplace else copy.deepcopy(model)
    report = ConversionReport()
    index = 0
    for name, module in list(target.named_modules()):
        if name == "":
            continue
        kind = type(module).__name__
        if isinstance(module, (QLinear, QConv2d)):
            report.replaced.append((name, kind))  # already quantized
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            parent_name, _, child = name.rpartition(".")
            parent = target.get_submodule(parent_name) if parent_name else target
            new = _convert(module, name, config, config.seed + index)
            setattr(parent, child, new)
            report.replaced.append((name, type(new).__name__))
            index += 1
        elif isinstance(module, _KEPT_FP32) or not any(True for _ in module.parameters(recurse=False)):
            if not list(module.children()):
                report.kept_fp32.append((name, kind))
        else:
            report.unsupported.append((name, kind))
    if strict and report.unsupported:
        names = ", ".join(f"{n} ({t})" for n, t in report.unsupported)
        raise ValueError(f"unsupported layers with parameters: {names}")
    return target, report


def use_backend(model: nn.Module, backend: GemmBackend) -> nn.Module:
    """Hand ``backend`` every quantized layer of ``model`` (in place), once it has checked that it can compute
    each of their GEMMs (``backend.check`` raises ``ValueError`` naming the first it cannot, before any layer
    is changed). Returns ``model``."""
    layers = [(name, module) for name, module in model.named_modules() if isinstance(module, (QLinear, QConv2d))]
    for name, module in layers:
        backend.check(name, gemm_calls(module))
    for _, module in layers:
        module.backend = backend
    return model


def gemm_calls(module: QLinear | QConv2d, precision: LayerPrecision | None = None) -> list[GemmCall]:
    """The three GEMMs of a quantized layer at ``precision`` (its own by default), each with its operands in the
    order the layer multiplies them (a convolution weight-first)."""
    layer = module.precision if precision is None else precision
    return [layer.call(kind, isinstance(module, QConv2d)) for kind in GemmKind]
