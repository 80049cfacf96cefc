"""GemmConfig: one checked record of a GEMM's arithmetic, its dict form, and qmatmul taking it."""

from __future__ import annotations

import numpy as np
import pytest

import mpsim
from mpsim.gemm import plan_of
from mpsim.gemm_config import GemmConfig, OrderKind, parse_order
from mpsim.nn import LayerPrecision, PrecisionConfig


def _operands() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = mpsim.quantize(rng.standard_normal((5, 7)).astype(np.float32), "e4m3")
    b = mpsim.quantize(rng.standard_normal((7, 4)).astype(np.float32), "e4m3")
    return a, b


def test_parsed_views() -> None:
    config = GemmConfig(mul="e4m3", acc="bfloat16", rounding="sr8", mul_rounding="stochastic:4", order=16)
    assert config.mul_format == mpsim.parse_format("e4m3")
    assert config.acc_format == mpsim.parse_format("bf16")
    assert config.acc_rounding == mpsim.parse_rounding("stochastic:8")
    assert config.mul_rounding_rule == mpsim.parse_rounding("stochastic:4")
    assert (config.order_kind, config.block) == (OrderKind.BLOCKED, 16)
    assert config.stochastic and not GemmConfig(rounding="nearest", mul_rounding="stochastic").stochastic
    assert str(config) == "products e4m3 (stochastic:4), accumulator bf16 (stochastic:8), order 16"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"acc": "e4m3x"}, r"^unknown format 'e4m3x': expected one of "),
        ({"mul": 8}, r"^format must be a string or a format spec, not 8$"),
        ({"rounding": "floor"}, r"^unknown rounding 'floor': "),
        ({"order": 0}, r"^order must be 'sequential', 'pairwise' or a block size >= 1, not 0$"),
        ({"order": "tree"}, r"^order must be 'sequential', 'pairwise' or a block size >= 1, not 'tree'$"),
        ({"saturate": 1}, r"^saturate must be True, False or None, not 1$"),
        ({"emulate": "yes"}, r"^emulate must be True or False, not 'yes'$"),
    ],
)
def test_bad_fields_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GemmConfig(**kwargs)  # type: ignore[arg-type]


def test_parse_order() -> None:
    assert parse_order("Sequential") == (OrderKind.SEQUENTIAL, 0)
    assert parse_order("pairwise") == (OrderKind.PAIRWISE, 0)
    assert parse_order("32") == parse_order(32) == parse_order(np.int64(32)) == (OrderKind.BLOCKED, 32)
    with pytest.raises(ValueError, match=r"^order must be .* not True$"):
        parse_order(True)


def test_dict_round_trip_names_canonical_values() -> None:
    config = GemmConfig(mul=mpsim.parse_format("e5m2"), acc="half", rounding="sr8", order="pairwise", saturate=True)
    data = config.to_dict()
    assert data == {
        "mul": "e5m2",
        "acc": "fp16",
        "rounding": "stochastic:8",
        "mul_rounding": "nearest",
        "order": "pairwise",
        "saturate": True,
        "emulate": True,
    }
    assert GemmConfig.from_dict(data).to_dict() == data


def test_from_dict_reads_the_old_fma_key_and_refuses_unknown_keys() -> None:
    assert GemmConfig.from_dict({"acc": "fp16", "fma": True}) == GemmConfig(acc="fp16")
    with pytest.raises(
        ValueError, match=r"^fma: true rounds once per step: it excludes a product format, got mul=e4m3$"
    ):
        GemmConfig.from_dict({"mul": "e4m3", "fma": True})
    with pytest.raises(ValueError, match=r"^unknown GemmConfig keys \['accumulator'\]; known: "):
        GemmConfig.from_dict({"accumulator": "fp16"})


def test_layer_precision_holds_gemm_configs_through_json_and_yaml_dicts() -> None:
    layer = LayerPrecision(forward=GemmConfig(acc="e5m6", rounding="stochastic:8", order=4))
    config = PrecisionConfig(default=layer)
    again = PrecisionConfig.from_dict(config.to_dict()).default.forward
    assert again.to_dict() == layer.forward.to_dict()


def test_qmatmul_config_equals_the_keywords() -> None:
    a, b = _operands()
    config = GemmConfig(mul="e5m2", acc="fp16", rounding="stochastic:8", mul_rounding="stochastic:4", order=3)
    got = mpsim.qmatmul(a, b, config=config, seed=5)
    want = mpsim.qmatmul(
        a, b, mul="e5m2", acc="fp16", rounding="stochastic:8", mul_rounding="stochastic:4", order=3, seed=5
    )
    np.testing.assert_array_equal(got, want)


def test_qmatmul_refuses_config_with_keywords_and_torch_only_configs() -> None:
    a, b = _operands()
    with pytest.raises(ValueError, match=r"^qmatmul takes config or the arithmetic keywords, not both: got config and"):
        mpsim.qmatmul(a, b, config=GemmConfig(), acc="fp16")
    with pytest.raises(ValueError, match=r"^a GemmConfig with emulate=False is torch.matmul's product in fp32, "):
        mpsim.qmatmul(a, b, config=GemmConfig(emulate=False))
    with pytest.raises(ValueError, match=r"^config must be a GemmConfig, not 'fp16'$"):
        mpsim.qmatmul(a, b, config="fp16")  # type: ignore[arg-type]


def test_a_plan_is_built_once_per_config() -> None:
    config = GemmConfig(acc="e5m6", rounding="stochastic:8")
    assert plan_of(config) is plan_of(GemmConfig(acc="e5m6", rounding="stochastic:8"))
    assert plan_of(config) is not plan_of(GemmConfig(acc="e5m6"))
