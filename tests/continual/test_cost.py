"""Energy model through Horowitz's points, BOPs and MAC bookkeeping."""

from __future__ import annotations

import pytest

import mpsim
from continual.cost import HOROWITZ_45NM, CostCounter, EnergyModel, gemm_labels
from continual.precision import CL_PRESETS

# Horowitz, ISSCC 2014, 45 nm: the points the model must reproduce exactly (pJ).
HOROWITZ = {("mul", "fp16"): 1.1, ("mul", "fp32"): 3.7, ("add", "fp16"): 0.4, ("add", "fp32"): 0.9}


@pytest.mark.parametrize(("op", "fmt"), list(HOROWITZ))
def test_energy_model_passes_through_horowitz(op, fmt):
    got = HOROWITZ_45NM.multiply_pj(fmt, fmt) if op == "mul" else HOROWITZ_45NM.add_pj(fmt)
    assert got == pytest.approx(HOROWITZ[(op, fmt)])


def test_integer_points():
    assert HOROWITZ_45NM.multiply_pj("q3.4", "q3.4") == pytest.approx(0.2)  # 8-bit integers
    assert HOROWITZ_45NM.add_pj("q3.4") == pytest.approx(0.03)
    assert 0.03 < HOROWITZ_45NM.add_pj("q7.16") < 0.1  # 25 bits: between the 8- and 32-bit points


def test_energy_grows_with_significand_and_width():
    widths = ["e5m2", "e4m3", "bf16", "fp16", "fp32"]  # significands 3, 4, 8, 11, 24
    muls = [HOROWITZ_45NM.multiply_pj(f, f) for f in widths]
    assert muls == sorted(muls) and len(set(muls)) == len(muls)
    assert HOROWITZ_45NM.add_pj("e5m6") < HOROWITZ_45NM.add_pj("fp16") < HOROWITZ_45NM.add_pj("fp32")
    # bf16 and fp16 have the same width: same adder energy in this model
    assert HOROWITZ_45NM.add_pj("bf16") == HOROWITZ_45NM.add_pj("fp16")


def test_mac_is_multiply_plus_add():
    e = EnergyModel()
    assert e.mac_pj("e4m3", "e5m2", "fp16") == pytest.approx(e.multiply_pj("e4m3", "e5m2") + e.add_pj("fp16"))


def test_counter_summary_bops_and_energy():
    counter = CostCounter()
    counter.phase = "train"
    counter.add("e4m3*e5m2->fp16", 1000)
    counter.add("e4m3*e5m2->fp16", 500)
    counter.add("fp32*fp32->fp32", 10)
    counter.add("bf16*bf16->bf16", 7, phase="eval")
    s = counter.summary()
    train = s["train"]
    assert train["macs"] == 1510
    assert train["macs_by_format"] == {"e4m3*e5m2->fp16": 1500, "fp32*fp32->fp32": 10}
    assert train["bit_ops"] == 1500 * 8 * 8 + 10 * 32 * 32
    want = 1500 * HOROWITZ_45NM.mac_pj("e4m3", "e5m2", "fp16") + 10 * 4.6
    assert train["energy_uj"] == pytest.approx(want * 1e-6)
    assert s["eval"]["macs"] == 7 and s["eval"]["bit_ops"] == 7 * 16 * 16


def test_negative_macs_refused():
    with pytest.raises(ValueError, match=r"^MAC count must be >= 0, not -1$"):
        CostCounter().add("fp32*fp32->fp32", -1)


def test_gemm_labels_follow_the_layer_precision():
    layer = CL_PRESETS["e4m3-sr"].layers.default
    assert gemm_labels(layer) == {
        "forward": "e4m3*e4m3->fp16",
        "grad_input": "e5m2*e4m3->fp16",
        "grad_weight": "e4m3*e5m2->fp16",
    }
    assert set(gemm_labels(CL_PRESETS["fp32"].layers.default).values()) == {"fp32*fp32->fp32"}
    for label in gemm_labels(CL_PRESETS["e5m2"].layers.default).values():  # every label names formats mpsim reads
        operands, acc = label.split("->")
        for name in [*operands.split("*"), acc]:
            mpsim.parse_format(name)


def test_mx_gemms_are_labelled_by_their_block_formats_and_count_the_scale_work():
    layer = CL_PRESETS["mxfp8"].layers.default
    assert gemm_labels(layer) == {
        "forward": "mxfp8_e4m3*mxfp8_e4m3->fp16",
        "grad_input": "mxfp8_e5m2*mxfp8_e4m3->fp16",
        "grad_weight": "mxfp8_e4m3*mxfp8_e5m2->fp16",
    }
    counter = CostCounter()
    counter.add("mxfp4_e2m1*mxfp4_e2m1->fp16", 3200, phase="train")
    train = counter.summary()["train"]
    # per element pair 4 x 4 bit-operations of the elements, per block of 32 the 8-bit addition of the scales
    assert train["bit_ops"] == 3200 * 16 + 100 * 8
    e = HOROWITZ_45NM
    # FP4 E2M1 products are multiples of 2**-2 below 2**6 (6 x 6 = 36): 8 bits, 5 of carries, a sign
    per_pair = e.multiply_pj("e2m1", "e2m1") + e.add_pj("q13.0") + (e.add_pj("q7.0") + e.add_pj("fp16")) / 32
    assert e.mx_mac_pj("mxfp4_e2m1", "mxfp4_e2m1", "fp16") == pytest.approx(per_pair)
    assert train["energy_uj"] == pytest.approx(3200 * per_pair * 1e-6)
    # the per-block accumulator addition is shared by 32 pairs: cheaper than the element-wise MAC
    assert e.mx_mac_pj("mxfp8_e4m3", "mxfp8_e4m3", "fp16") < e.mac_pj("e4m3", "e4m3", "fp16")
