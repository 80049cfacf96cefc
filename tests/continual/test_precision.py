"""Presets derived from mpsim's, and their checks."""

from __future__ import annotations

import pytest

from continual.precision import CL_PRESETS, CLPrecision, parse_cl_precision
from mpsim.nn import PRECISION_PRESETS, PrecisionConfig


def test_every_mpsim_preset_has_a_cl_preset():
    assert list(CL_PRESETS) == list(PRECISION_PRESETS)
    for name, p in CL_PRESETS.items():
        assert p.name == name and p.layers == PRECISION_PRESETS[name]


@pytest.mark.parametrize("name", list(PRECISION_PRESETS))
def test_storage_formats_follow_the_accumulator(name):
    p = CL_PRESETS[name]
    gemm = p.layers.default.forward
    if not gemm.emulate:
        assert (p.weight, p.grad, p.state, p.buffer) == (None, None, None, None)
        return
    assert p.weight == p.grad == p.state == gemm.acc  # what the MAC array writes back
    mx = gemm.mx_formats  # an MX GEMM blocks the fp32 input itself: samples are kept in its MX format
    assert p.buffer == (p.layers.default.activation.format if mx is None else str(mx[0]))  # what the first layer reads
    assert p.update_rounding == (gemm.rounding if name.endswith("-sr") else "nearest")


def test_parse():
    assert parse_cl_precision("e4m3-sr") is CL_PRESETS["e4m3-sr"]
    custom = parse_cl_precision({"default": {"weight": "e3m2", "forward": {"acc": "fp16"}}})
    assert custom.name == "custom" and custom.weight == "fp16" and custom.buffer is None
    assert parse_cl_precision(custom) is custom


def test_bad_values_named():
    with pytest.raises(
        ValueError, match=r"^unknown precision 'e4m3x': expected one of fp32, bf16, .* or a \.json/\.yaml file$"
    ):
        parse_cl_precision("e4m3x")
    with pytest.raises(
        ValueError, match=r"^weight format: impossible format 'e9m9': exponent bits must be 1\.\.8, not 9$"
    ):
        CLPrecision("x", PrecisionConfig(), weight="e9m9")
    with pytest.raises(ValueError, match=r"^update_rounding: "):
        CLPrecision("x", PrecisionConfig(), update_rounding="sideways")
    with pytest.raises(ValueError, match=r"^precision name must be a non-empty string, not ''$"):
        CLPrecision("")
