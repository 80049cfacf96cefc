"""In-place quantization keeps Parameter objects; PackNet's wrappers run the quantized layer; switching precisions."""

from __future__ import annotations

import torch
from avalanche.models.packnet import PackNetModel
from torch import nn

import mpsim
from continual.convert import QPnLinear, quantize_in_place, quantized_modules, set_precision
from continual.models import mlp
from continual.precision import CL_PRESETS
from mpsim.nn import GemmConfig, LayerPrecision, PrecisionConfig, QLinear, TensorQuant, quantize_model

E4M3 = CL_PRESETS["e4m3-sr"].layers


def test_mpsim_quantize_model_makes_new_parameters():
    # why quantize_in_place exists: an optimizer built before quantize_model would update orphans
    model = mlp(8, 4, 2)
    before = list(model.parameters())
    quantize_model(model, E4M3)
    assert not any(p is q for p, q in zip(before, model.parameters()))


def test_quantize_in_place_keeps_parameters_and_the_optimizer_works():
    torch.manual_seed(0)
    model = mlp(8, 4, 2)
    before = list(model.parameters())
    values = [p.detach().clone() for p in before]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    report, new = quantize_in_place(model, E4M3)
    assert [type(m) for _, m in quantized_modules(model)] == [QLinear, QLinear] and new == [
        m for _, m in quantized_modules(model)
    ]
    assert [n for n, _ in report.replaced] == ["1", "3"]
    assert all(p is q for p, q in zip(before, model.parameters()))
    assert all(torch.equal(p, v) for p, v in zip(model.parameters(), values))
    nn.functional.cross_entropy(model(torch.randn(5, 8)), torch.tensor([0, 1, 0, 1, 1])).backward()
    optimizer.step()
    assert all(not torch.equal(p, v) for p, v in zip(model.parameters(), values))


def test_second_call_converts_only_newcomers_with_their_own_stream():
    model = mlp(8, 4, 2)
    quantize_in_place(model, E4M3)
    model.append(nn.Linear(2, 3))
    head = model[-1]
    _, new = quantize_in_place(model, E4M3)
    assert len(new) == 1 and new[0] is model[-1] and new[0].weight is head.weight
    seeds = [m.rng.seed for _, m in quantized_modules(model)]
    assert len(set(seeds)) == 3


def test_set_precision_follows_overrides():
    model = mlp(8, 4, 2)
    quantize_in_place(model, E4M3)
    config = PrecisionConfig(
        default=CL_PRESETS["bf16"].layers.default, overrides=(("3", CL_PRESETS["e5m2"].layers.default),)
    )
    set_precision(model, config)
    assert model[1].precision == CL_PRESETS["bf16"].layers.default
    assert model[3].precision == CL_PRESETS["e5m2"].layers.default
    assert model[1].rng.offset == 0  # the stream is kept, not reseeded


def test_packnet_wrapper_runs_the_quantized_layer_on_masked_weights():
    torch.manual_seed(0)
    cast = GemmConfig(emulate=False)  # quantized operands, torch product: an exact oracle below
    layer = LayerPrecision(
        weight=TensorQuant("e4m3"), activation=TensorQuant("e4m3"), forward=cast, grad_input=cast, grad_weight=cast
    )
    model = PackNetModel(mlp(6, 5, 3))
    quantize_in_place(model, PrecisionConfig(default=layer))
    wrapper = model.wrappee[1]
    assert type(wrapper) is QPnLinear and isinstance(wrapper.wrappee, QLinear)
    model.prune(0.5)
    mask = wrapper.visible_mask
    assert 0 < int(mask.sum()) < mask.numel()
    x = torch.randn(4, 6)
    got = model(x, torch.zeros(4, dtype=torch.long))
    inner = wrapper.wrappee
    hidden = mpsim.quantize(x, "e4m3") @ mpsim.quantize(inner.weight * mask, "e4m3").t() + inner.bias
    head = model.wrappee[3].wrappee
    want = (
        mpsim.quantize(torch.relu(hidden), "e4m3")
        @ mpsim.quantize(head.weight * model.wrappee[3].visible_mask, "e4m3").t()
        + head.bias
    )
    torch.testing.assert_close(got, want)
    # PackNet's own gradient hook (bound to the wrapper's masks) still zeroes the frozen weights
    model.freeze_pruned()
    model.activate_task(1)
    model(x, torch.ones(4, dtype=torch.long)).sum().backward()
    assert inner.weight.grad is not None and torch.all(inner.weight.grad[wrapper.task_index == 0] == 0)
