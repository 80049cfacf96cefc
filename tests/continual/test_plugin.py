"""PrecisionPlugin on Avalanche's own strategies: every family trains at low precision, and what the
arithmetic sees and what the strategies store is representable in the formats in force."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from avalanche.training.plugins import AGEMPlugin, EWCPlugin, GEMPlugin, ReplayPlugin

import mpsim
import mpsim.nn.functional as qf
from continual.config import STRATEGIES, RunConfig
from continual.convert import quantized_modules
from continual.runner import build_run, run
from mpsim.data import load_dataset

TINY = dict(epochs=2, hidden=16, precision="e4m3-sr")


def _config(strategy: str, **kwargs) -> RunConfig:
    return RunConfig(strategy=strategy, scenario="task" if strategy == "packnet" else "class", **{**TINY, **kwargs})


def _representable(t: torch.Tensor, fmt: str | None) -> bool:
    return fmt is None or torch.equal(mpsim.quantize(t.detach().contiguous(), fmt), t)


@pytest.fixture(scope="module")
def trained():
    """Each strategy trained at e4m3-sr, its run parts kept for inspection (minutes: its tests are slow)."""
    out = {}
    for strategy in STRATEGIES:
        parts = build_run(_config(strategy))
        out[strategy] = (parts, run(parts.config, progress=False, parts=parts))
    return out


@pytest.mark.slow  # trains every strategy family (the trained fixture)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_family_trains_end_to_end_at_e4m3_sr(trained, strategy):
    parts, result = trained[strategy]
    matrix = np.array(result["accuracy_matrix"])
    assert matrix.shape == ((1, 5) if strategy == "joint" else (5, 5))
    if strategy == "joint":
        assert result["average_accuracy"] > 0.5  # all ten classes at once
    else:
        # the first 2-class task is learnt, and learning goes on after it (later tasks can stall in
        # naive class-incremental SGD, in fp32 too: old-class logits dominate)
        assert matrix[0, 0] > 0.9 and np.diag(matrix)[1:].max() > 0.8
    train = result["cost"]["train"]["macs_by_format"]
    assert train and all(label.split("*")[0] in ("e4m3", "e5m2") for label in train)  # no fp32 GEMM in training
    assert result["precision_batches"].keys() == {"e4m3-sr"} and result["switches"] == []
    model_params = {id(p) for p in parts.strategy.model.parameters()}
    optimized = {id(p) for g in parts.strategy.optimizer.param_groups for p in g["params"]}
    assert model_params <= optimized  # no parameter orphaned by the conversion


@pytest.mark.slow  # trains every strategy family (the trained fixture)
def test_strategy_families_behave_as_known(trained):
    acc = {s: trained[s][1]["average_accuracy"] for s in STRATEGIES}
    assert acc["replay"] > acc["naive"] + 0.2 and acc["gem"] > acc["naive"] + 0.2  # replay beats fine-tuning
    assert acc["joint"] > acc["naive"] + 0.3
    # parameter isolation freezes each task's sub-network; what is left is the noise of stochastic
    # rounding in the evaluation GEMMs (e4m3-sr accumulates with SR at inference too)
    assert trained["packnet"][1]["forgetting"] < 0.01


@pytest.mark.slow  # trains every strategy family (the trained fixture)
def test_stored_state_is_in_the_storage_formats(trained):
    p = trained["naive"][0].plugin.precision
    assert (p.buffer, p.state, p.weight) == ("e4m3", "fp16", "fp16")
    plugins = {type(x): x for s in ("replay", "gem", "agem", "ewc") for x in trained[s][0].strategy.plugins}
    replay = plugins[ReplayPlugin].storage_policy.buffer
    samples = torch.stack([replay[i][0] for i in range(len(replay))])
    assert len(replay) == 200 and _representable(samples, "e4m3")
    gem = plugins[GEMPlugin]
    assert len(gem.memory_x) == 5 and all(_representable(x, "e4m3") for x in gem.memory_x.values())
    agem = plugins[AGEMPlugin]
    assert len(agem.buffers) == 5 and all(_representable(b[i][0], "e4m3") for b in agem.buffers for i in range(len(b)))
    ewc = plugins[EWCPlugin]
    tensors = [pd.data for group in (ewc.saved_params, ewc.importances) for d in group.values() for pd in d.values()]
    assert len(tensors) == 2 * 5 * 4 and all(_representable(t, "fp16") for t in tensors)
    # raw digits are not e4m3 numbers: the rounding above did something
    raw = torch.from_numpy(load_dataset("digits").x_train[:50])
    assert not _representable(raw, "e4m3")


@pytest.mark.slow  # trains every strategy family (the trained fixture)
def test_weights_and_optimizer_state_are_stored_in_their_formats(trained):
    strategy = trained["replay"][0].strategy
    assert all(_representable(p, "fp16") for p in strategy.model.parameters())
    momenta = [s["momentum_buffer"] for s in strategy.optimizer.state.values()]
    assert momenta and all(_representable(m, "fp16") for m in momenta)


@pytest.mark.parametrize("strategy", ["replay", "gem"])
def test_an_mx_preset_trains_and_keeps_its_replay_samples_in_mx_blocks(strategy):
    """mxfp4: every training GEMM is an MX GEMM (its labels), the run learns, and the memory's samples are MXFP4
    blocks along the features (quantize_mx leaves them unchanged; the raw digits it changes)."""
    parts = build_run(_config(strategy, precision="mxfp4", epochs=1))
    result = run(parts.config, progress=False, parts=parts)
    assert np.array(result["accuracy_matrix"])[0, 0] > 0.8
    train = result["cost"]["train"]["macs_by_format"]
    assert train and all(label.startswith("mxfp4_e2m1*mxfp4_e2m1->") for label in train)
    plugin = next(x for x in parts.strategy.plugins if isinstance(x, (ReplayPlugin, GEMPlugin)))
    if strategy == "replay":
        buffer = plugin.storage_policy.buffer
        samples = torch.stack([buffer[i][0] for i in range(len(buffer))])
    else:
        samples = torch.cat(list(plugin.memory_x.values()))
    assert len(samples) > 0 and torch.equal(mpsim.quantize_mx(samples, "mxfp4_e2m1"), samples)
    raw = torch.from_numpy(load_dataset("digits").x_train[:50])
    assert not torch.equal(mpsim.quantize_mx(raw, "mxfp4_e2m1"), raw)


def test_macs_are_counted_exactly_and_the_lwf_teacher_too():
    digits = load_dataset("digits")
    n_train, n_test, h = len(digits.x_train), len(digits.x_test), 8
    results = {
        s: run(RunConfig(strategy=s, epochs=1, hidden=h, precision="e4m3-sr"), progress=False) for s in ("naive", "lwf")
    }
    naive = results["naive"]["cost"]
    per_sample = 64 * h + h * 10
    assert naive["train"]["macs_by_format"] == {
        "e4m3*e4m3->fp16": n_train * per_sample,  # forward
        "e4m3*e5m2->fp16": n_train * per_sample,  # weight gradients
        "e5m2*e4m3->fp16": n_train * h * 10,  # input gradient of the second layer only
    }
    assert naive["eval"]["macs"] == 6 * n_test * per_sample  # untrained model + after each experience
    # LwF's teacher is a deep copy of the model: its forward passes count too
    first = sum(digits.y_train < 2)
    assert results["lwf"]["cost"]["train"]["macs"] - naive["train"]["macs"] == (n_train - first) * per_sample


class _Audit:
    """Forward hooks on every quantized layer, checking what its GEMM is fed against the formats in force."""

    def __init__(self, parts, monkeypatch):
        self.plugin, self.model = parts.plugin, parts.strategy.model
        self.active = None
        self.checked: dict[str, int] = {}
        self.raw_quantized = 0
        original = qf.gemm

        def gemm(a, b, config, rng):  # the operands a MAC array would receive
            if self.active is not None:
                self._check_operands(a, b)
            return original(a, b, config, rng)

        monkeypatch.setattr(qf, "gemm", gemm)

    def attach(self):
        for name, module in quantized_modules(self.model):
            if not getattr(module, "_audited", False):
                module.register_forward_pre_hook(self._pre(name))
                module.register_forward_hook(lambda *_: setattr(self, "active", None))
                module._audited = True

    def _pre(self, name):
        def hook(module, inputs):
            p = self.plugin.precision
            assert module.precision == p.layers.for_module(name), f"{name} computes in a stale precision"
            assert _representable(module.weight, p.weight), f"{name} weights are not {p.weight} numbers"
            self.raw_quantized += not _representable(inputs[0], module.precision.activation.format)
            self.active = module
            self.checked[p.name] = self.checked.get(p.name, 0) + 1

        return hook

    def _check_operands(self, a, b):
        prec = self.active.precision
        assert _representable(a, prec.activation.format), f"activations not {prec.activation.format}"
        assert _representable(b, prec.weight.format), f"weights not {prec.weight.format}"


@pytest.mark.slow  # three epochs of replay, long enough for the adaptive policy to switch
def test_forward_operands_are_representable_through_adaptive_switches(monkeypatch, caplog):
    parts = build_run(_config("replay", policy="adaptive", epochs=3))
    audit = _Audit(parts, monkeypatch)
    from avalanche.core import SupervisedPlugin

    class Attach(SupervisedPlugin):  # after PrecisionPlugin: the layers are converted by then
        def before_training_exp(self, strategy, **kwargs):
            audit.attach()

        def before_eval_exp(self, strategy, **kwargs):
            audit.attach()

    parts.strategy.plugins.insert(parts.strategy.plugins.index(parts.plugin) + 1, Attach())
    with caplog.at_level(logging.INFO, logger="continual"):
        result = run(parts.config, progress=False, parts=parts)
    switches = result["switches"]
    assert {s["to"] for s in switches} == {"bf16", "e4m3-sr"} and all(s["reason"] for s in switches)
    assert audit.checked.get("bf16", 0) > 0 and audit.checked.get("e4m3-sr", 0) > 0
    assert audit.raw_quantized > 0  # inputs arrive unrepresentable: the layers really quantize them
    logged = [r.getMessage() for r in caplog.records if r.name == "continual"]
    assert len(logged) == len(switches) and all("precision switch" in m for m in logged)
    assert sum(result["precision_batches"].values()) == 5 * 3 * 9  # every batch in one precision or the other


def test_plugin_takes_a_preset_a_config_or_a_policy():
    from continual import AdaptivePolicy, PrecisionPlugin
    from mpsim.nn import PRECISION_PRESETS

    assert PrecisionPlugin("e4m3-sr").precision.name == "e4m3-sr"
    from_config = PrecisionPlugin(PRECISION_PRESETS["e5m2"]).precision  # an mpsim PrecisionConfig
    assert (
        from_config.name == "custom"
        and from_config.layers == PRECISION_PRESETS["e5m2"]
        and from_config.weight == "bf16"
    )
    adaptive = PrecisionPlugin(AdaptivePolicy("e5m2-sr"))
    assert adaptive.precision.name == "bf16" and adaptive.monitor.format == mpsim.parse_format("e5m2")
