"""GEMM backends of the quantized layers (mpsim.nn.backends): each GEMM reaches the backend with its kind and
the layer's precision, the default is today's emulation bit for bit, and backends are found by name."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest
import torch
from torch import nn

import mpsim
from mpsim import backend_registry
from mpsim.nn import (
    EMULATOR,
    EmulatorBackend,
    GemmCall,
    GemmConfig,
    GemmKind,
    LayerPrecision,
    PrecisionConfig,
    TensorQuant,
    backend_names,
    load_backend,
    quantize_model,
    use_backend,
)

# Three operand formats that differ, so that each GEMM's operands say which tensors they are.
MIXED = LayerPrecision(
    weight=TensorQuant("e4m3"),
    activation=TensorQuant("e3m2"),
    grad=TensorQuant("e5m2", "stochastic:4"),
    forward=GemmConfig(acc="e5m6", rounding="stochastic:6"),
    grad_input=GemmConfig(acc="fp16", rounding="stochastic:8"),
    grad_weight=GemmConfig(acc="bf16"),
)


class Recording(EmulatorBackend):
    """The emulator, noting each call's kind and checking its operands are numbers of the kind's formats."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[GemmKind, tuple[int, ...], tuple[int, ...]]] = []

    def matmul(self, a, b, call, rng):  # type: ignore[no-untyped-def]
        for operand, quant in ((a, call.a), (b, call.b)):
            assert torch.equal(mpsim.quantize(operand.contiguous(), quant.format), operand), (call.kind, quant)
        self.calls.append((call.kind, tuple(a.shape), tuple(b.shape)))
        return super().matmul(a, b, call, rng)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4), nn.ReLU(), nn.Linear(4, 3)
    )


def _step(model: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(1)
    x = torch.randn(6, 2, 5, 5)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0, 1, 2]))
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_each_gemm_reaches_the_backend_with_its_kind_and_operands_of_its_formats() -> None:
    model, _ = quantize_model(_model(), PrecisionConfig(default=MIXED, seed=5))
    recording = Recording()
    use_backend(model, recording)
    _step(model)
    kinds = [kind for kind, _, _ in recording.calls]
    # forward through conv, linear, linear; backward from the last layer (the conv needs no input gradient)
    assert kinds == [GemmKind.FORWARD] * 3 + [GemmKind.GRAD_INPUT, GemmKind.GRAD_WEIGHT] * 2 + [GemmKind.GRAD_WEIGHT]
    assert recording.calls[0][1:] == ((3, 18), (6, 18, 25))  # the conv's weight against its im2col columns
    assert recording.calls[-1][1:] == ((3, 150), (150, 18))  # its weight gradient: one product over B*L


def test_the_default_backend_and_a_subclass_of_the_emulator_compute_the_same_bits() -> None:
    plain, _ = quantize_model(_model(), PrecisionConfig(default=MIXED, seed=5))
    routed, _ = quantize_model(_model(), PrecisionConfig(default=MIXED, seed=5))
    use_backend(routed, Recording())
    loss_a, grads_a = _step(plain)
    loss_b, grads_b = _step(routed)
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_gemm_calls_name_the_operands_in_the_order_a_layer_multiplies_them() -> None:
    assert [k.operands for k in GemmKind] == [("activation", "weight"), ("grad", "weight"), ("activation", "grad")]
    assert MIXED.gemm(GemmKind.GRAD_INPUT) is MIXED.grad_input
    linear = MIXED.call(GemmKind.GRAD_WEIGHT)
    assert (linear.config, linear.a, linear.b) == (MIXED.grad_weight, MIXED.activation, MIXED.grad)
    conv = MIXED.call(GemmKind.GRAD_WEIGHT, weight_first=True)  # dy @ x^T
    assert (conv.config, conv.a, conv.b) == (MIXED.grad_weight, MIXED.grad, MIXED.activation)


class Refusing(EmulatorBackend):
    name = "refusing"

    def check(self, layer: str, calls: Sequence[GemmCall]) -> None:
        assert [c.kind for c in calls] == list(GemmKind)
        if layer == "3":
            raise ValueError(f"layer {layer}: no mode for e3m2 x e4m3 -> e5m6 stochastic:6")


def test_a_backend_that_cannot_compute_a_layer_changes_no_layer() -> None:
    model, _ = quantize_model(_model(), PrecisionConfig(default=MIXED))
    with pytest.raises(ValueError, match=r"^layer 3: no mode for e3m2 x e4m3 -> e5m6 stochastic:6$"):
        use_backend(model, Refusing())
    assert all(getattr(m, "backend", EMULATOR) is EMULATOR for m in model.modules())


def test_backends_are_found_by_name_the_emulator_first(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []

    def factory(hardware: str | Path | None) -> EmulatorBackend:
        made.append(hardware)
        return Recording()

    point = metadata.EntryPoint("fake", f"{__name__}:_FACTORY", backend_registry.BACKEND_GROUP)
    monkeypatch.setitem(globals(), "_FACTORY", factory)
    monkeypatch.setattr(backend_registry, "backend_entry_points", lambda: {"fake": point})
    assert backend_names() == ["emulator", "fake"]
    assert load_backend("emulator") is EMULATOR
    assert isinstance(load_backend("fake", "rtl/x.json"), Recording)
    assert made == ["rtl/x.json"]


def test_bad_backend_requests_are_one_line() -> None:
    with pytest.raises(ValueError, match=r"^unknown GEMM backend 'rtll': expected one of emulator"):
        load_backend("rtll")
    with pytest.raises(ValueError, match=r"^the emulator backend runs no hardware; drop --hardware 'a.json'$"):
        load_backend("emulator", "a.json")
