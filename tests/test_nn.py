"""Quantized layers, precision configs and model conversion (mpsim.nn)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mpsim
from mpsim.nn import (
    PRECISION_PRESETS,
    GemmConfig,
    LayerPrecision,
    PrecisionConfig,
    QConv2d,
    QLinear,
    TensorQuant,
    parse_precision,
    quantize_model,
)
from mpsim.precision import GemmKind
from tests.exact_reference import same
from tests.test_mx_gemm import reference_mx_qmatmul

FP32_EMULATED = GemmConfig(mul=None, acc="fp32")
FP8 = LayerPrecision(
    weight=TensorQuant("e4m3"),
    activation=TensorQuant("e4m3"),
    grad=TensorQuant("e5m2"),
    forward=GemmConfig(acc="e5m6"),
    grad_input=GemmConfig(acc="fp16", rounding="stochastic:8"),
    grad_weight=GemmConfig(acc="bf16", order=4),
)


def test_qlinear_forward_and_backward_are_the_configured_gemms():
    torch.manual_seed(0)
    layer = QLinear(12, 5, precision=FP8, seed=3)
    x = torch.randn(7, 12, requires_grad=True)
    y = layer(x)
    grad_y = torch.randn(7, 5)
    y.backward(grad_y)
    xq = mpsim.quantize(x.detach(), "e4m3")
    wq = mpsim.quantize(layer.weight.detach(), "e4m3")
    expected = mpsim.qmatmul(xq, wq.t().contiguous(), acc="e5m6") + layer.bias.detach()
    torch.testing.assert_close(y.detach(), expected, rtol=0, atol=0)
    gq = mpsim.quantize(grad_y, "e5m2")
    # grad_weight: nearest rounding, blocked order: no random bits involved, so it is exactly reproducible
    grad_w = mpsim.qmatmul(xq.t().contiguous(), gq, acc="bf16", order=4)
    torch.testing.assert_close(layer.weight.grad, grad_w.t(), rtol=0, atol=0)
    torch.testing.assert_close(layer.bias.grad, grad_y.sum(0))
    # grad_input used stochastic fp16 accumulation: within one fp16 ulp-ish of the exact product
    exact = gq.double() @ wq.double()
    assert float((x.grad.double() - exact).abs().max()) < 2e-2 * float(exact.abs().max())


def _exact_equal(got: torch.Tensor, want: np.ndarray) -> None:
    for (i, j), value in np.ndenumerate(want):
        assert same(float(got[i, j]), value), (i, j, float(got[i, j]), value)


def test_mx_preset_blocks_each_gemm_along_its_own_reduction_axis():
    """mxfp8: forward x @ w^T blocked along the 36 input features, grad_input dy @ w along the 5 outputs (e5m2 by
    e4m3), grad_weight x^T @ dy along the 40 samples (two blocks, the second partial), each against the exact model
    of an MX GEMM on the fp32 tensors."""
    torch.manual_seed(4)
    layer = QLinear(36, 5, bias=False, precision=PRECISION_PRESETS["mxfp8"].default, seed=1)
    x = (torch.randn(40, 36) * 2.0 ** torch.randint(-4, 4, (40, 1))).requires_grad_()
    y = layer(x)
    grad_y = torch.randn(40, 5) * 1e-3
    y.backward(grad_y)
    xs, w, dy = x.detach().numpy(), layer.weight.detach().numpy(), grad_y.numpy()
    exact = {"mode": "nearest", "k": 0, "draw": None}
    _exact_equal(y.detach(), reference_mx_qmatmul(xs, w.T.copy(), "mxfp8_e4m3", "fp16", **exact))
    want_dx = reference_mx_qmatmul(dy, w, "mxfp8_e5m2,mxfp8_e4m3", "fp16", **exact)
    _exact_equal(x.grad, want_dx)
    want_dw = reference_mx_qmatmul(xs.T.copy(), dy, "mxfp8_e4m3,mxfp8_e5m2", "fp16", **exact)
    _exact_equal(layer.weight.grad.t(), want_dw)


def test_an_mx_pair_follows_its_operands_when_a_convolution_swaps_them():
    layer = PRECISION_PRESETS["mxfp8"].default
    for kind in GemmKind:
        linear, conv = layer.call(kind), layer.call(kind, weight_first=True)
        assert (conv.a, conv.b) == (linear.b, linear.a)
        assert conv.config.mx_formats == linear.config.mx_formats[::-1]
        assert conv.config.mul_rounding == linear.config.mul_rounding


def test_qlinear_fp32_config_matches_nn_linear():
    torch.manual_seed(1)
    ref = nn.Linear(9, 4)
    q, _ = quantize_model(nn.Sequential(ref), "fp32", inplace=False)
    x = torch.randn(6, 9)
    torch.testing.assert_close(q(x), ref(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "padding": 1},
        {"kernel_size": 3, "stride": 2, "padding": 2, "dilation": 2},
        {"kernel_size": (2, 3), "groups": 2},
        {"kernel_size": 1, "bias": False},
    ],
)
def test_qconv2d_with_fp32_emulation_matches_conv2d(kwargs):
    torch.manual_seed(2)
    ref = nn.Conv2d(4, 6, **kwargs)
    precision = LayerPrecision(forward=FP32_EMULATED, grad_input=FP32_EMULATED, grad_weight=FP32_EMULATED)
    q = QConv2d(4, 6, precision=precision, **kwargs)
    q.load_state_dict(ref.state_dict())
    x = torch.randn(3, 4, 9, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y_ref, y = ref(x), q(x2)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    y_ref.backward(g)
    y.backward(g)
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)


def test_qconv2d_forward_operands_are_representable_in_their_formats():
    torch.manual_seed(3)
    q = QConv2d(2, 3, 3, padding=1, precision=FP8)
    seen = {}

    def spy(module, args, output):
        seen["out"] = output

    q.register_forward_hook(spy)
    x = torch.randn(2, 2, 5, 5)
    y = q(x)
    xq = mpsim.quantize(x, "e4m3")
    wq = mpsim.quantize(q.weight.detach(), "e4m3")
    cols = F.unfold(xq, 3, padding=1)
    expected = mpsim.qmatmul(wq.reshape(3, -1), cols, acc="e5m6").reshape(2, 3, 5, 5) + q.bias.detach().reshape(
        1, -1, 1, 1
    )
    torch.testing.assert_close(y.detach(), expected, rtol=0, atol=0)
    assert torch.equal(mpsim.quantize(wq, "e4m3"), wq)


def test_quantize_model_reports_replaced_kept_and_unsupported():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2, 2), nn.Embedding(4, 2))
    converted, report = quantize_model(model, "e4m3", inplace=False)
    assert [n for n, _ in report.replaced] == ["0", "3"]
    assert isinstance(converted[0], QConv2d) and isinstance(converted[3], QLinear)
    assert isinstance(model[0], nn.Conv2d) and not isinstance(model[0], QConv2d)  # original untouched
    assert ("1", "ReLU") in report.kept_fp32
    assert report.unsupported == [("4", "Embedding")]
    with pytest.raises(ValueError, match=r"^unsupported layers with parameters: 4 \(Embedding\)$"):
        quantize_model(model, "e4m3", inplace=False, strict=True)


def test_overrides_pick_the_last_matching_pattern():
    low = LayerPrecision(weight=TensorQuant("e2m1"))
    mid = LayerPrecision(weight=TensorQuant("e4m3"))
    config = PrecisionConfig(overrides=(("*", low), ("2", mid)))
    model, _ = quantize_model(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)), config)
    assert model[0].precision.weight.format == "e2m1"
    assert model[2].precision.weight.format == "e4m3"


def test_config_round_trips_through_json_and_yaml(tmp_path):
    config = PrecisionConfig(default=FP8, overrides=(("head.*", LayerPrecision()),), seed=7)
    (tmp_path / "p.json").write_text(json.dumps(config.to_dict()))
    assert PrecisionConfig.load(tmp_path / "p.json") == config
    import yaml

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config.to_dict()))
    assert parse_precision(str(tmp_path / "p.yaml")) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"defaults": {}}, r"^unknown PrecisionConfig keys \['defaults'\]; known: \['default', 'overrides', 'seed'\]$"),
        ({"default": {"weight": "e9m9"}}, r"^impossible format 'e9m9': exponent bits must be 1\.\.8, not 9$"),
        (
            {"default": {"forward": {"order": "zigzag"}}},
            r"^order must be 'sequential', 'pairwise' or a block size >= 1, not 'zigzag'$",
        ),
        ({"default": {"grad": {"format": "e5m2", "rounding": "sometimes"}}}, r"^unknown rounding 'sometimes': .*$"),
    ],
)
def test_bad_configs_name_the_bad_value(data, message):
    with pytest.raises(ValueError, match=message):
        PrecisionConfig.from_dict(data)


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match=r"^unknown precision 'fp7': expected one of .*$"):
        parse_precision("fp7")


@pytest.mark.parametrize("name", list(PRECISION_PRESETS))
def test_every_preset_trains_one_step(name):
    torch.manual_seed(0)
    model, _ = quantize_model(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), name)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def test_cuda_like_tensors_are_refused():
    layer = QLinear(2, 2, precision=FP8)
    with pytest.raises(ValueError, match=r"^mpsim has no meta kernel yet: .*$"):
        layer(torch.empty(3, 2, device="meta"))


def test_seeded_layers_are_reproducible():
    def run() -> np.ndarray:
        torch.manual_seed(0)
        layer = QLinear(5, 3, precision=LayerPrecision(forward=GemmConfig(acc="bf16", rounding="stochastic:4")), seed=9)
        return layer(torch.randn(4, 5)).detach().numpy()

    np.testing.assert_array_equal(run(), run())
