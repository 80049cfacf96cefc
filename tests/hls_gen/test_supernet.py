"""`mpsim nas --estimator supernet`: the weight-sharing supernet's subnetworks against independently built torch
networks, weight sharing, seeded training, checkpoint and resume, the estimator in a study, bad input. Tiny
supernets on digits (widths 8 and 16, 2-4 channels), one or two epochs at batch 128."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from hls_gen.nas import (
    NASConfig,
    SearchSpace,
    build_torch,
    datasets,
    kendall_tau,
    open_study,
    precision_config,
    run_name,
    run_nas,
    sample,
    train_accuracy,
)
from hls_gen.network import LayerSpec, NetworkSpec
from hls_gen.supernet import CHECKPOINT, Supernet, train_supernets
from mpsim.nn import quantize_model

ROUNDINGS = ("nearest", "stochastic:8")
MLP = SearchSpace(
    archs=("mlp",),
    mlp_depths=(0, 1, 2),
    mlp_widths=(8, 16),
    accs=("e5m6", "fp32"),
    roundings=ROUNDINGS,
    arrays=("1x1",),
)
CNN = SearchSpace(
    archs=("cnn",),
    cnn_depths=(1, 2),
    cnn_channels=(2, 4),
    cnn_kernels=(1, 3, 5),
    accs=("e5m6", "fp32"),
    roundings=ROUNDINGS,
    arrays=("1x1",),
)
MX = SearchSpace(
    archs=("mlp",),
    mlp_depths=(1, 2),
    mlp_widths=(8, 16),
    mul=("mxfp8_e4m3",),
    mul_scope="network",
    accs=("fp32",),
    roundings=("nearest",),
    arrays=("1x1",),
)
TINY = dict(estimator="supernet", supernet_epochs=1, batch_size=128, proxy_threshold=None)


def _params(arch: str, sizes: list[tuple[int, ...]], accs: list[str], roundings: list[str]) -> dict:
    """A candidate's parameters as :func:`sample` names them: hidden widths (MLP) or (channels, kernel) (CNN)."""
    params: dict = {"arch": arch, f"{arch}_depth": len(sizes), "array": "1x1"}
    for i, size in enumerate(sizes):
        if arch == "mlp":
            params[f"mlp_width_{i}"] = size[0]
        else:
            params[f"cnn_channels_{i}"], params[f"cnn_kernel_{i}"] = size
    for i, (acc, rounding) in enumerate(zip(accs, roundings)):
        params[f"acc_{i}"], params[f"rounding_{i}"] = acc, rounding
    return params


def _network(space: SearchSpace, params: dict) -> NetworkSpec:
    shape = (64,) if params["arch"] == "mlp" else (1, 8, 8)
    return sample(optuna.trial.FixedTrial(params), space, shape, 10).network


def _supernet(space: SearchSpace, seed: int = 3) -> Supernet:
    arch = space.archs[0]
    return Supernet(space, arch, (64,) if arch == "mlp" else (1, 8, 8), 10, seed)


def _plain(network: NetworkSpec, supernet: Supernet) -> nn.Sequential:
    """The network built layer by layer with torch.nn, its weights copied from the supernet by index: the first
    units/channels of each layer, the centre of each kernel, the depth's classifier on the kept features."""
    modules: list[nn.Module] = []
    previous = network.input_shape[0]
    body = network.layers[:-1]
    for i, layer in enumerate(body):
        full = supernet.module["layers"][i]
        if modules:
            modules.append(nn.ReLU())
        if layer.kind == "Linear":
            module: nn.Module = nn.Linear(previous, layer.out)
            weight = full.weight.detach()[: layer.out, :previous]
        else:
            k, big = layer.kernel[0], full.weight.shape[-1]
            stride = 2 if i == len(body) - 1 else 1
            module = nn.Conv2d(previous, layer.out, k, stride=stride, padding=k // 2)
            lo = (big - k) // 2
            weight = full.weight.detach()[: layer.out, :previous, lo : lo + k, lo : lo + k]
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.copy_(full.bias.detach()[: layer.out])
        modules.append(module)
        previous = layer.out
    head = supernet.module["heads"][str(len(body))]
    if body:
        modules.append(nn.ReLU())
    if network.layers[0].kind == "Conv2d":
        modules.append(nn.Flatten())
        width = head.weight.shape[1] // 16  # the classifier reads a max-channels x 4 x 4 map
        columns = [c * 16 + p for c in range(previous) for p in range(16)]  # the kept channels' positions
        assert head.weight.shape[1] == width * 16
    else:
        columns = list(range(previous))
    module = nn.Linear(len(columns), 10)
    with torch.no_grad():
        module.weight.copy_(head.weight.detach()[:, columns])
        module.bias.copy_(head.bias.detach())
    modules.append(module)
    return nn.Sequential(*modules)


CASES = [
    (MLP, _params("mlp", [], ["fp32"], ["nearest"])),
    (MLP, _params("mlp", [(8,)], ["e5m6", "fp32"], ["stochastic:8", "nearest"])),
    (MLP, _params("mlp", [(16,), (8,)], ["fp32", "e5m6", "e5m6"], ["nearest", "stochastic:8", "nearest"])),
    (MX, _params("mlp", [(16,), (8,)], ["fp32"] * 3, ["nearest"] * 3)),
    (CNN, _params("cnn", [(2, 3)], ["e5m6", "fp32"], ["nearest", "stochastic:8"])),
    (CNN, _params("cnn", [(4, 1), (2, 5)], ["fp32", "e5m6", "fp32"], ["stochastic:8", "nearest", "nearest"])),
]


@pytest.mark.parametrize(("space", "params"), CASES)
def test_a_subnetwork_is_the_network_built_from_its_sliced_weights(space: SearchSpace, params: dict) -> None:
    """Bit for bit: in fp32 (torch's layers) and at the candidate's emulated precision (mpsim's quantized layers,
    the same rounding seed), the subnetwork computes what the plain network with the copied weights computes."""
    network = _network(space, params)
    supernet = _supernet(space)
    plain = _plain(network, supernet)
    x = torch.randn(16, *network.input_shape, generator=torch.Generator().manual_seed(1))
    fp32 = torch.func.functional_call(build_torch(network), supernet.slices(network), (x,))
    assert torch.equal(fp32, plain(x))
    quantized, _ = quantize_model(plain, precision_config(network, plain, 5), strict=True)
    expected = quantized(x)
    assert torch.equal(supernet.subnet(network, 5)(x), expected)
    assert not torch.equal(expected, fp32)  # the emulated arithmetic is not fp32's


def test_a_cnn_subnetwork_is_the_largest_network_with_the_weights_outside_it_zero() -> None:
    """An independent fact about the elastic kernel and channels: zero every weight of the largest network (of
    the same depth, 5x5 kernels, padding 2) outside the subnetwork's slice, and it computes the subnetwork (up to
    the summation order of torch's fp32 products)."""
    params = _params("cnn", [(2, 3), (4, 1)], ["fp32"] * 3, ["nearest"] * 3)
    network = _network(CNN, params)
    supernet = _supernet(CNN)
    largest = build_torch(supernet._largest(2))  # Conv2d 0, ReLU, Conv2d 2, ReLU, Flatten, Linear 5
    layers, head = supernet.module["layers"], supernet.module["heads"]["2"]
    kept = {  # the subnetwork's slice of each weight: first channels, the centre of the 5x5 kernel
        "0.weight": (layers[0].weight, (slice(0, 2), slice(0, 1), slice(1, 4), slice(1, 4))),
        "0.bias": (layers[0].bias, (slice(0, 2),)),
        "2.weight": (layers[1].weight, (slice(0, 4), slice(0, 2), slice(2, 3), slice(2, 3))),
        "2.bias": (layers[1].bias, (slice(0, 4),)),
        "5.weight": (head.weight, (slice(None),)),  # 4 channels: all of the classifier's input
        "5.bias": (head.bias, (slice(None),)),
    }
    state = {}
    for name, (value, keep) in kept.items():
        state[name] = torch.zeros_like(value)
        state[name][keep] = value.detach()[keep]
    largest.load_state_dict(state)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    sub = torch.func.functional_call(build_torch(network), supernet.slices(network), (x,))
    torch.testing.assert_close(sub, largest(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("space", [MLP, CNN])
def test_the_largest_subnetwork_is_the_supernet(space: SearchSpace) -> None:
    """The largest candidate's weights are the supernet's layers and its deepest classifier, whole (the same
    storage, not copies)."""
    arch = space.archs[0]
    sizes = [(16,), (16,)] if arch == "mlp" else [(4, 5), (4, 5)]
    network = _network(space, _params(arch, sizes, ["fp32"] * 3, ["nearest"] * 3))
    supernet = _supernet(space)
    slices = supernet.slices(network)
    deepest = [*supernet.module["layers"], supernet.module["heads"]["2"]]
    whole = [p for module in deepest for p in (module.weight, module.bias)]
    assert len(slices) == len(whole)
    for tensor, parameter in zip(slices.values(), whole):
        assert tensor.shape == parameter.shape and tensor.data_ptr() == parameter.data_ptr()


def test_weights_are_shared_and_those_outside_a_slice_do_not_matter() -> None:
    """A weight two subnetworks contain changes both; one outside a subnetwork's slice (a unit it drops, a tap
    outside its kernel's centre) changes the larger one only."""
    supernet = _supernet(CNN)
    small = _network(CNN, _params("cnn", [(2, 1), (2, 3)], ["e5m6"] * 3, ["nearest"] * 3))
    large = _network(CNN, _params("cnn", [(4, 3), (4, 5)], ["e5m6"] * 3, ["nearest"] * 3))
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))

    def outputs() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return supernet.subnet(small, 0)(x), supernet.subnet(large, 0)(x)

    first = supernet.module["layers"][0].weight
    for index, shared in (((0, 0, 2, 2), True), ((3, 0, 2, 2), False), ((0, 0, 1, 2), False)):
        before = outputs()
        with torch.no_grad():
            first[index] += 1.0
        after = outputs()
        assert torch.equal(after[0], before[0]) != shared, index
        assert not torch.equal(after[1], before[1]), index


def _weights(estimate) -> dict[str, torch.Tensor]:
    return {f"{arch}.{k}": v.clone() for arch, s in estimate.supernets.items() for k, v in s.state_dict().items()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def mlp_data() -> dict:
    return datasets(NASConfig(**TINY, space=MLP))


def test_training_is_seeded_and_resumes_after_a_kill_as_if_uninterrupted(tmp_path: Path, mlp_data: dict) -> None:
    """Two epochs in one go; two epochs killed after the first (its checkpoint written) and resumed: the same bits.
    The first epoch alone is what the killed run had saved; another seed gives other weights; a finished
    checkpoint is loaded without training, one of other settings is not."""
    config = NASConfig(**{**TINY, "supernet_epochs": 2}, space=MLP)
    calls: list[tuple[str, int]] = []
    straight = _weights(train_supernets(config, mlp_data, tmp_path / "a", progress=False, after_epoch=_add(calls)))
    assert calls == [("mlp", 1), ("mlp", 2)]

    def kill(arch: str, epoch: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernets(config, mlp_data, tmp_path / "b", progress=False, after_epoch=kill)
    saved = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)
    assert saved["families"]["mlp"]["epochs"] == 1
    calls.clear()
    resumed = _weights(train_supernets(config, mlp_data, tmp_path / "b", progress=False, after_epoch=_add(calls)))
    assert calls == [("mlp", 2)] and _equal(resumed, straight)

    one = _weights(train_supernets(NASConfig(**TINY, space=MLP), mlp_data, None, progress=False))
    assert _equal(one, {f"mlp.{k}": v for k, v in saved["families"]["mlp"]["model"].items()})
    assert not _equal(one, straight)
    calls.clear()
    again = _weights(train_supernets(config, mlp_data, tmp_path / "a", progress=False, after_epoch=_add(calls)))
    assert calls == [] and _equal(again, straight)  # finished: loaded

    other_seed = NASConfig(**TINY, space=MLP, seed=1)
    other = _weights(train_supernets(other_seed, mlp_data, tmp_path / "a", progress=False, after_epoch=_add(calls)))
    assert not _equal(other, one)
    assert calls == [("mlp", 1)]  # another key: trained anew, the checkpoint replaced
    assert torch.load(tmp_path / "a" / CHECKPOINT, weights_only=True)["families"]["mlp"]["epochs"] == 1


def _add(calls: list) -> object:
    return lambda arch, epoch: calls.append((arch, epoch))


def test_the_estimator_in_a_study(tmp_path: Path, mlp_data: dict) -> None:
    """Each trial's accuracy is its subnetwork's with the trained weights (the checkpoint, loaded again), no
    epoch trained per trial; the supernet's one-off cost is in the study and pareto.json; a rerun trains nothing."""
    config = NASConfig(trials=3, **TINY, space=MLP)
    study = run_nas(config, tmp_path, progress=False)
    calls: list = []
    estimate = train_supernets(config, mlp_data, tmp_path, progress=False, after_epoch=_add(calls))
    assert calls == []
    for trial in study.trials:
        network = NetworkSpec.from_dict(trial.user_attrs["network"])
        assert trial.values[0] == estimate.accuracy(network, "mlp", mlp_data["mlp"])[0]
        attrs = {k: trial.user_attrs[k] for k in ("estimator", "epochs", "supernet_epochs", "pruned")}
        assert attrs == {"estimator": "supernet", "epochs": 0, "supernet_epochs": 1, "pruned": False}
    cost = study.user_attrs["supernet"]
    assert cost["families"] == ["mlp"] and cost["epochs"] == 1 and cost["train_seconds"] > 0
    summary = json.loads((tmp_path / "pareto.json").read_text())
    assert summary["supernet"] == cost and summary["epochs_spent"] == 0
    assert summary["config"]["estimator"] == "supernet" and summary["config"]["supernet_epochs"] == 1


def test_supernet_accuracy_ranks_candidates_as_training_does(mlp_data: dict) -> None:
    """After two supernet epochs, Kendall's tau between the subnetworks' accuracy and that of each network trained
    alone (two epochs, the same precision) over five MLPs of different capacity and accumulators is positive."""
    config = NASConfig(**{**TINY, "supernet_epochs": 2}, space=MLP)
    estimate = train_supernets(config, mlp_data, None, progress=False)
    trained = NASConfig(epochs=2, batch_size=128, proxy_threshold=None, space=MLP)
    candidates = [
        _params("mlp", [], ["e5m6"], ["nearest"]),
        _params("mlp", [(8,)], ["e5m6", "e5m6"], ["nearest", "nearest"]),
        _params("mlp", [(16,)], ["fp32", "fp32"], ["nearest", "nearest"]),
        _params("mlp", [(8,), (8,)], ["e5m6"] * 3, ["stochastic:8"] * 3),
        _params("mlp", [(16,), (16,)], ["fp32"] * 3, ["nearest"] * 3),
    ]
    networks = [_network(MLP, p) for p in candidates]
    estimated = [estimate.accuracy(n, "mlp", mlp_data["mlp"])[0] for n in networks]
    accuracies = [train_accuracy(n, trained, mlp_data["mlp"])[0] for n in networks]
    print(f"supernet {estimated}\ntrained {accuracies}")
    assert kendall_tau(estimated, accuracies) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(estimator="supernet", proxy_threshold=None),
            "estimator 'supernet' needs supernet_epochs: the epochs that train its supernets",
        ),
        (dict(supernet_epochs=2), "supernet_epochs train the supernets of estimator 'supernet', not of 'full'"),
        (dict(TINY, supernet_epochs=0), "supernet_epochs must be a positive integer, not 0"),
        (
            dict(TINY, space=SearchSpace(cnn_kernels=(1, 2, 3))),
            "estimator 'supernet' takes each kernel as the centre of the largest one, so CNN kernel sizes must be "
            "odd, not 2",
        ),
    ],
)
def test_bad_supernet_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        NASConfig(**kwargs)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [LayerSpec("Linear", 32), LayerSpec("Linear", 10)],
            "layer 0 of wide (Linear of 32) is not in the mlp supernet",
        ),
        (
            [LayerSpec("Linear", 8)] * 3 + [LayerSpec("Linear", 10)],
            "the mlp supernet holds depths [0, 1, 2] with a 10-class Linear classifier, not wide's 3 layers and "
            "Linear of 10",
        ),
    ],
)
def test_a_network_outside_the_supernet_is_refused(layers: list, message: str) -> None:
    network = NetworkSpec((64,), tuple(layers), "wide", 10)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _supernet(MLP).slices(network)


def test_cli_even_kernel_space_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text("network: {cnn: {kernel: [2, 3]}}\n")
    argv = ["--estimator", "supernet", "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; from mpsim.cli import main; sys.exit(main(['nas', *{argv!r}]))"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr == (
        "mpsim nas: error: estimator 'supernet' takes each kernel as the centre of the largest one, so CNN kernel "
        "sizes must be odd, not 2\n"
    )
    assert not (tmp_path / "out").exists()


def test_run_name_and_a_resume_with_other_supernet_epochs(tmp_path: Path) -> None:
    config = NASConfig(estimator="supernet", supernet_epochs=10, proxy_threshold=None)
    assert run_name(config) == "digits_s0_estimator=supernet,supernet-epochs=10"
    open_study(config, tmp_path)
    with pytest.raises(
        ValueError,
        match=r"^study 'mpsim-nas' in sqlite:///.*study\.db was run with other settings \(supernet_epochs 10 there, "
        r"5 here\); use another --out or --study-name$",
    ):
        open_study(replace(config, supernet_epochs=5), tmp_path)
