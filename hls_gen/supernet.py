"""The weight-sharing supernetwork of ``mpsim nas --estimator supernet`` (Once-for-All style).

One supernetwork per network family of the search space holds the weights
of the largest network the space can produce:

* **MLP**: ``max depth`` hidden ``Linear`` layers of ``max width`` units;
* **CNN**: ``max depth`` convolutions of ``max channels`` channels and the
  largest kernel (``K x K``);

and one classifier (output ``Linear``) per depth the space allows: the
classifier of a depth-0 MLP reads the input, that of a depth-2 one the second
hidden layer, features of another meaning, so each depth has its own
classifier, shared across widths, channels and kernels.

A candidate's :class:`~hls_gen.network.NetworkSpec` is a subnetwork: its
first ``depth`` layers, of each the first ``width`` units or ``channels``
channels (rows of the weight, and the columns that read the previous layer's
kept units), the centre ``k x k`` of each ``K x K`` kernel (OFA's elastic
kernel as a plain centre crop, without OFA's kernel transform matrices),
and its depth's classifier on the kept features (the first channels of the
flattened map). The subnetwork runs as the very model
:func:`hls_gen.nas_model.train_accuracy` trains: :func:`~hls_gen.nas_model.build_torch`
converted by :func:`mpsim.nn.quantize_model` at the candidate's per-layer
precision (:func:`~hls_gen.nas_model.precision_config`), with the sliced supernet
weights in place of its own (``torch.func.functional_call``), so the
gradients of its emulated GEMMs land in the supernet's weights. The
networks hold no BatchNorm (``build_torch`` puts none), so a subnetwork needs
no recalibration.

Training runs once per study (:func:`train_supernets`), ``supernet_epochs``
epochs per family, with the sandwich rule: each mini-batch trains the largest
subnetwork, the smallest and :data:`RANDOM_SUBNETS` random ones, each at a
per-layer precision drawn from the space (operands, accumulator, rounding:
all three GEMMs of each layer at that precision), their gradients summed
into one step of :class:`mpsim.optim.QSGD`. Everything is seeded: the draws and
the data order of an epoch come from ``(seed, family, epoch)``, each
subnetwork's rounding bits from ``(seed, family, epoch, step, draw)``, so the
same settings give the same weights bit for bit, and a checkpoint written
after each epoch (``OUT/supernet.pt``: weights, optimizer state, epochs done,
under a key of the settings) resumes a killed training without losing a
finished epoch. A trial then costs one evaluation: the test accuracy of its
subnetwork with the inherited weights, no training.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hls_gen.nas_config import NASConfig, config_dict
from hls_gen.nas_model import build_torch, precision_config, sample, tensors
from hls_gen.nas_space import SearchSpace, check_supernet_space, choices
from hls_gen.network import NetworkSpec

if TYPE_CHECKING:
    import optuna

__all__ = [
    "CHECKPOINT",
    "RANDOM_SUBNETS",
    "SUPERNET_EPOCHS",
    "Supernet",
    "SupernetEstimate",
    "draw",
    "train_supernets",
]

CHECKPOINT = "supernet.pt"
SUPERNET_EPOCHS = 10  # the CLI's default
RANDOM_SUBNETS = 2  # per mini-batch, beside the largest and the smallest (the sandwich rule)
_FORMAT = 1  # the checkpoint layout's version, part of its key


class _Draw:
    """A stand-in for an Optuna trial that draws every choice of :func:`hls_gen.nas.sample` from a seeded NumPy
    generator: the architecture fixed, the sizes the largest (``"max"``), the smallest (``"min"``) or random, the
    precision and the rest random."""

    _SIZES = ("mlp_depth", "mlp_width_", "cnn_depth", "cnn_kernel_", "cnn_channels_")
    number = 0  # what the network's name holds

    def __init__(self, arch: str, sizes: str, rng: Any) -> None:
        self.arch, self.sizes, self.rng = arch, sizes, rng

    def _pick(self, name: str, values: list[Any]) -> Any:
        if name == "arch":
            return self.arch
        if self.sizes != "random" and name.startswith(self._SIZES):
            return (max if self.sizes == "max" else min)(values)
        return values[int(self.rng.integers(len(values)))]

    def suggest_categorical(self, name: str, values: list[Any]) -> Any:
        return self._pick(name, list(values))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1) -> int:
        return int(self._pick(name, list(range(low, high + 1, step))))


def draw(space: SearchSpace, arch: str, sizes: str, rng: Any, input_shape: tuple[int, ...], classes: int) -> Any:
    """A :class:`~hls_gen.nas.Candidate` of family ``arch`` as :func:`hls_gen.nas.sample` builds one: sizes
    ``"max"``, ``"min"`` or ``"random"``, per-layer precision random, from ``rng`` (``numpy.random.Generator``)."""
    return sample(_Draw(arch, sizes, rng), space, input_shape, classes)  # type: ignore[arg-type]


def _torch_modules() -> tuple[Any, Any]:
    import torch
    from torch import nn

    return torch, nn


class Supernet:
    """The weights of one family's supernetwork and the subnetworks that share them.

    ``layers`` holds ``nn.Linear`` or ``nn.Conv2d`` modules of the largest sizes (their parameters are the shared
    weights; they are never called), ``heads`` one classifier per depth. Initial weights are torch's defaults of
    those modules after ``torch.manual_seed(seed)``.
    """

    def __init__(self, space: SearchSpace, arch: str, input_shape: tuple[int, ...], classes: int, seed: int) -> None:
        torch, nn = _torch_modules()
        if arch not in space.archs:
            raise ValueError(f"the space has no {arch} family: it holds {', '.join(space.archs)}")
        check_supernet_space(space)
        # an MLP reads the flattened input, as hls_gen.nas.sample's networks do
        shape = (int(_prod(tuple(input_shape))),) if arch == "mlp" else tuple(input_shape)
        self.space, self.arch, self.input_shape, self.classes = space, arch, shape, classes
        torch.manual_seed(seed)
        depths = choices(space.mlp_depths if arch == "mlp" else space.cnn_depths)
        self.depths = tuple(sorted(depths))
        layers: list[Any] = []
        heads: dict[str, Any] = {}
        if arch == "mlp":
            self.width = max(choices(space.mlp_widths))
            features = self.input_shape[0]
            for i in range(max(depths)):
                layers.append(nn.Linear(features if i == 0 else self.width, self.width))
            for d in self.depths:
                heads[str(d)] = nn.Linear(features if d == 0 else self.width, classes)
        else:
            self.width = max(choices(space.cnn_channels))
            self.kernel = max(choices(space.cnn_kernels))
            for i in range(max(depths)):
                channels = self.input_shape[0] if i == 0 else self.width
                layers.append(nn.Conv2d(channels, self.width, self.kernel, padding=self.kernel // 2))
            for d in self.depths:
                shape = self._largest(d).shapes()[-1][0]  # the flattened map the classifier reads
                heads[str(d)] = nn.Linear(int(_prod(shape)), classes)
        self.module = nn.ModuleDict({"layers": nn.ModuleList(layers), "heads": nn.ModuleDict(heads)})

    def _largest(self, depth: int) -> NetworkSpec:
        from hls_gen.network import LayerSpec

        k = self.kernel
        convs = [
            LayerSpec(
                "Conv2d",
                self.width,
                kernel=(k, k),
                padding=(k // 2, k // 2),
                stride=(2, 2) if i == depth - 1 else (1, 1),
            )
            for i in range(depth)
        ]
        return NetworkSpec(self.input_shape, (*convs, LayerSpec("Linear", self.classes)), "largest", self.classes)

    def parameters(self) -> Any:
        return self.module.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)

    def slices(self, network: NetworkSpec) -> dict[str, Any]:
        """The supernet weights of ``network``'s subnetwork, named as the parameters of
        ``build_torch(network)`` (views: gradients reach the supernet); a ``ValueError`` naming what the supernet
        cannot express."""
        *body, head = network.layers
        kind = "Linear" if self.arch == "mlp" else "Conv2d"
        if tuple(network.input_shape) != self.input_shape:
            raise ValueError(
                f"the {self.arch} supernet reads inputs of shape {self.input_shape}, not {network.input_shape}"
            )
        if len(body) not in self.depths or head.kind != "Linear" or head.out != self.classes:
            raise ValueError(
                f"the {self.arch} supernet holds depths {list(self.depths)} with a {self.classes}-class Linear "
                f"classifier, not {network.name}'s {len(body)} layers and {head.kind} of {head.out}"
            )
        out: dict[str, Any] = {}
        names = _parameter_names(network)
        previous = self.input_shape[0]
        for i, layer in enumerate(body):
            full = self.module["layers"][i]
            if layer.kind != kind or layer.out > self.width or layer.groups != 1 or layer.dilation != (1, 1):
                raise ValueError(
                    f"layer {i} of {network.name} ({layer.kind} of {layer.out}) is not in the {self.arch} supernet"
                )
            weight = full.weight[: layer.out, :previous]
            if kind == "Conv2d":
                k, _ = layer.kernel
                stride = 2 if i == len(body) - 1 else 1
                if (
                    layer.kernel != (k, k)
                    or k > self.kernel
                    or (self.kernel - k) % 2
                    or layer.padding != (k // 2, k // 2)
                    or layer.stride != (stride, stride)
                ):
                    raise ValueError(f"layer {i} of {network.name} (kernel {layer.kernel}) is not in the cnn supernet")
                lo = (self.kernel - k) // 2
                weight = weight[:, :, lo : lo + k, lo : lo + k]
            out[f"{names[i]}.weight"], out[f"{names[i]}.bias"] = weight, full.bias[: layer.out]
            previous = layer.out
        full = self.module["heads"][str(len(body))]
        if kind == "Conv2d" and body:
            # the flattened map is channel-major: the first channels are the first columns of each spatial block
            _, h, w = network.shapes()[-1][0]
            weight = full.weight.reshape(self.classes, self.width, h * w)[:, :previous].reshape(self.classes, -1)
        else:
            weight = full.weight[:, :previous]
        out[f"{names[-1]}.weight"], out[f"{names[-1]}.bias"] = weight, full.bias
        return out

    def subnet(self, network: NetworkSpec, seed: int) -> Callable[[Any], Any]:
        """``network``'s subnetwork as a function of the input: the model :func:`hls_gen.nas_model.quantized_model`
        builds (every GEMM at its layer's precision, rounding bits from ``seed``) with the sliced supernet
        weights."""
        from torch.func import functional_call

        from mpsim.nn import quantize_model

        weights = self.slices(network)
        shell = build_torch(network)
        shell, _ = quantize_model(shell, precision_config(network, shell, seed), strict=True)
        return lambda x: functional_call(shell, weights, (x,), strict=True)  # every parameter, no other


def _parameter_names(network: NetworkSpec) -> list[str]:
    """The module name in ``build_torch(network)`` of each layer (a ReLU before every layer but the first, a Flatten
    before a Linear that reads a map)."""
    names, index = [], 0
    for i, (layer, (shape_in, _)) in enumerate(zip(network.layers, network.shapes())):
        index += 1 if i else 0
        index += 1 if layer.kind == "Linear" and len(shape_in) != 1 else 0
        names.append(str(index))
        index += 1
    return names


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


def _seed(*parts: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0])


def checkpoint_key(config: NASConfig) -> str:
    """What the supernets' weights depend on: the space, the seed, the data, the supernet epochs, batch size and
    learning rate; a checkpoint under another key is never loaded."""
    settings = config_dict(config)
    mine = {k: settings[k] for k in ("benchmark", "seed", "space", "supernet_epochs", "batch_size", "lr")}
    mine.update(format=_FORMAT, sandwich=RANDOM_SUBNETS)
    return hashlib.sha256(json.dumps(mine, sort_keys=True).encode()).hexdigest()[:16]


class SupernetEstimate:
    """The trained supernets of a study, one per family, and the accuracy of a candidate's subnetwork."""

    def __init__(self, config: NASConfig, supernets: dict[str, Supernet], seconds: float) -> None:
        self.config, self.supernets, self.seconds = config, supernets, seconds

    def accuracy(self, network: NetworkSpec, arch: str, data: Any) -> tuple[float, float]:
        """(test accuracy of ``network``'s subnetwork with the inherited weights at its precision, seconds)."""
        import torch

        start = time.perf_counter()
        _, _, x_test, y_test = tensors(network, data)
        with torch.no_grad():
            logits = self.supernets[arch].subnet(network, self.config.seed)(x_test)
        return float((logits.argmax(1) == y_test).float().mean()), time.perf_counter() - start


def train_supernets(
    config: NASConfig,
    data: dict[str, Any],
    out: str | Path | None,
    *,
    progress: bool = True,
    after_epoch: Callable[[str, int], None] | None = None,
) -> SupernetEstimate:
    """Train (or load, or resume) the supernet of each family of ``config.space`` for ``config.supernet_epochs``
    epochs; ``data`` maps a family to its dataset (:func:`hls_gen.nas_model.datasets`).

    With ``out``, ``OUT/supernet.pt`` is written after every epoch and read first: a checkpoint of the same key
    resumes at its next epoch (a finished one is used as it is), one of another key is replaced. ``after_epoch``
    is called with the family and the epoch (1-based) once that epoch is saved.
    """
    import numpy as np
    import torch
    from torch import nn
    from tqdm import tqdm

    from mpsim.optim import QSGD, OptimPrecision

    epochs = config.supernet_epochs
    if epochs is None:
        raise ValueError("train_supernets needs config.supernet_epochs, not None")
    path = Path(out) / CHECKPOINT if out is not None else None
    key = checkpoint_key(config)
    saved: dict[str, Any] = {}
    if path is not None and path.exists():
        stored = torch.load(path, weights_only=True)
        if stored.get("key") == key:
            saved = stored["families"]
    archs = list(config.space.archs)
    done = sum(saved.get(a, {}).get("epochs", 0) for a in archs)
    supernets: dict[str, Supernet] = {}
    seconds = 0.0
    with tqdm(
        total=epochs * len(archs), initial=done, desc="supernet epochs", unit="epoch", disable=not progress
    ) as bar:
        for family, arch in enumerate(archs):
            dataset = data[arch]
            supernet = Supernet(config.space, arch, dataset.input_shape, dataset.num_classes, config.seed)
            optimizer = QSGD(
                supernet.parameters(), lr=config.lr, momentum=0.9, precision=OptimPrecision(seed=config.seed)
            )
            state = saved.get(arch, {"epochs": 0, "seconds": 0.0})
            if state["epochs"]:
                supernet.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
            x_train = torch.from_numpy(dataset.x_train.reshape(len(dataset.x_train), *supernet.input_shape))
            y_train = torch.from_numpy(dataset.y_train)
            for epoch in range(state["epochs"], epochs):
                start = time.perf_counter()
                rng = np.random.default_rng([config.seed, family, epoch])
                order = torch.from_numpy(rng.permutation(len(x_train)))
                for step, first in enumerate(range(0, len(order), config.batch_size)):
                    index = order[first : first + config.batch_size]
                    optimizer.zero_grad()
                    for j, sizes in enumerate(("max", "min", *["random"] * RANDOM_SUBNETS)):
                        network = draw(config.space, arch, sizes, rng, dataset.input_shape, dataset.num_classes).network
                        forward = supernet.subnet(network, _seed(config.seed, family, epoch, step, j))
                        nn.functional.cross_entropy(forward(x_train[index]), y_train[index]).backward()
                    optimizer.step()
                state = {
                    "epochs": epoch + 1,
                    "seconds": state["seconds"] + time.perf_counter() - start,
                    "model": supernet.state_dict(),
                    "optimizer": optimizer.state_dict(),
                }
                saved[arch] = state
                if path is not None:
                    _save(path, {"key": key, "families": saved})
                bar.update(1)
                if after_epoch is not None:
                    after_epoch(arch, epoch + 1)
            supernets[arch] = supernet
            seconds += state["seconds"]
    return SupernetEstimate(config, supernets, seconds)


def _save(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` whole or not at all (a kill while saving leaves the previous one)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".pt.partial")
    torch.save(checkpoint, partial)
    os.replace(partial, path)


def record(study: optuna.Study, estimate: SupernetEstimate) -> None:
    """The one-off cost of the supernets in the study's ``supernet`` attribute (the trials count 0 epochs each)."""
    families = list(estimate.supernets)
    study.set_user_attr(
        "supernet",
        {
            "families": families,
            "epochs": estimate.config.supernet_epochs,
            "subnets_per_step": 2 + RANDOM_SUBNETS,
            "train_seconds": round(estimate.seconds, 2),
        },
    )
