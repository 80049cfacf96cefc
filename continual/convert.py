"""Model-level glue: quantize a model in place without orphaning its optimizer, switch precisions, round stored tensors.

:func:`mpsim.nn.quantize_model` builds each ``QLinear``/``QConv2d`` with new
``Parameter`` objects (it copies the values through ``load_state_dict``). An
Avalanche strategy holds its optimizer from construction, and
``make_optimizer`` matches parameters by object identity, so
:func:`quantize_in_place` puts the original ``Parameter`` objects back into
the new modules: optimizers, EWC's ``named_parameters`` snapshots and
PackNet's gradient hooks keep pointing at the live weights.

PackNet's wrappers (``avalanche.models.packnet._PnLinear``/``_PnConvNd``)
call ``F.linear``/``_conv_forward`` on their masked weight, bypassing the
wrapped module; :class:`QPnLinear`/:class:`QPnConvNd` re-route that call through the
(quantized) wrapped module with the masked weight substituted.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.models.packnet import _PnConvNd, _PnLinear
from torch import nn

from mpsim.mx import is_mx_spec
from mpsim.nn import ConversionReport, PrecisionConfig, QConv2d, QLinear, quantize_model
from mpsim.randbits import CounterRNG
from mpsim.torch_glue import quantize_mx_tensor, quantize_tensor

__all__ = [
    "QUANTIZED",
    "quantize_in_place",
    "quantize_samples",
    "quantized_modules",
    "round_tensors_",
    "set_precision",
]

QUANTIZED = (QLinear, QConv2d)


def quantized_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, QUANTIZED)]


def quantize_in_place(model: nn.Module, config: PrecisionConfig) -> tuple[ConversionReport, list[nn.Module]]:
    """Convert every plain Linear/Conv2d of ``model``, keeping its Parameter objects.

    Returns the conversion report and the new modules. Already-quantized
    modules are left alone, so calling it again after a dynamic module (a
    new head) appeared converts only the newcomer; its random stream is
    seeded after the existing ones.
    """
    before = dict(model.named_parameters())
    existing = {id(m) for _, m in quantized_modules(model)}
    _, report = quantize_model(model, config.with_seed(config.seed + len(existing)), inplace=True)
    new_modules = []
    for name, module in quantized_modules(model):
        if id(module) in existing:
            continue
        new_modules.append(module)
        for pname, param in list(module.named_parameters(recurse=False)):
            original = before.get(f"{name}.{pname}" if name else pname)
            if original is not None and original is not param:
                setattr(module, pname, original)
    _reroute_packnet(model)
    return report, new_modules


def set_precision(model: nn.Module, config: PrecisionConfig) -> None:
    """Give every quantized module of ``model`` its precision under ``config`` (its random stream continues)."""
    for name, module in quantized_modules(model):
        module.precision = config.for_module(name)


@torch.no_grad()
def quantize_samples(x: torch.Tensor, fmt: str, rng: CounterRNG | None = None) -> torch.Tensor:
    """Stored samples (a replay memory's inputs) rounded to nearest into ``fmt``; an MX format blocks them along
    the last axis, the features a first linear layer blocks its input along."""
    if is_mx_spec(fmt):
        return quantize_mx_tensor(x.contiguous(), fmt, axis=-1)
    return quantize_tensor(x.contiguous(), fmt, "nearest", seed=rng)


@torch.no_grad()
def round_tensors_(tensors: Any, fmt: str | None, rounding: str, rng: CounterRNG) -> None:
    """Round each float tensor of an iterable in place into ``fmt`` (no-op for ``None``)."""
    if fmt is None:
        return
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
            t.copy_(quantize_tensor(t.detach(), fmt, rounding, seed=rng))


def _packnet_forward(module: Any, input: torch.Tensor) -> torch.Tensor:
    """Run the wrapped quantized module itself with PackNet's masked weight in place of its own."""
    wrappee = module.wrappee
    params = {"weight": module.available_weights()}
    if wrappee.bias is not None:
        params["bias"] = wrappee.bias
    return torch.func.functional_call(wrappee, params, (input,))


class QPnLinear(_PnLinear):
    """PackNet's Linear wrapper whose product runs in the wrapped ``QLinear``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _packnet_forward(self, input)


class QPnConvNd(_PnConvNd):
    """PackNet's convolution wrapper whose product runs in the wrapped ``QConv2d``."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _packnet_forward(self, input)


def _reroute_packnet(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, (QPnLinear, QPnConvNd)) or not isinstance(getattr(module, "wrappee", None), QUANTIZED):
            continue
        # Swap the class, not the object: PackNet registered a gradient hook bound to
        # this very module (its masks), and a new wrapper would leave that hook stale.
        if type(module) is _PnLinear:
            module.__class__ = QPnLinear
        elif type(module) is _PnConvNd:
            module.__class__ = QPnConvNd
