"""The main job: train a small MLP or CNN on built-in data at a chosen precision.

Writes ``metrics.json`` (per-epoch loss and accuracy, wall time, the full
configuration) and ``curves.png`` into the output folder, checkpoints after
every epoch (``checkpoint.pt``) and resumes from it, so a killed run loses no
finished epoch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from mpsim.backend_registry import check_backend_name
from mpsim.data import Dataset, load_dataset
from mpsim.nn import parse_precision, quantize_model, use_backend
from mpsim.nn.backends import GemmBackend, load_backend
from mpsim.optim import QSGD, OptimPrecision, QAdam

__all__ = ["TrainConfig", "build_model", "train"]

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with its results)."""

    dataset: str = "digits"
    model: str = "mlp"
    hidden: int = 64
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    precision: str = "e4m3-sr"
    optim_precision: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    data_root: str | None = None
    backend: str = "emulator"  # what computes the GEMMs (mpsim.nn.backends.backend_names)
    hardware: str | None = None  # the manifest of the array a hardware backend runs

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        for name in ("hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr!r}")
        parse_precision(self.precision)
        OptimPrecision.from_dict(self.optim_precision)
        check_backend_name(self.backend)


def build_model(config: TrainConfig, data: Dataset) -> nn.Module:
    """fp32 model for the data: MLP on flat inputs, small CNN on images (2-D) or signals (1-D as 1xL)."""
    classes = data.num_classes
    if config.model == "mlp":
        inputs = int(np.prod(data.input_shape))
        return nn.Sequential(
            nn.Flatten(), nn.Linear(inputs, config.hidden), nn.ReLU(), nn.Linear(config.hidden, classes)
        )
    shape = data.input_shape
    if len(shape) == 1:  # a 1-D signal: convolve along its length
        return nn.Sequential(
            nn.Unflatten(1, (1, 1, shape[0])),
            nn.Conv2d(1, 8, (1, 5), padding=(0, 2)),
            nn.ReLU(),
            nn.Conv2d(8, 16, (1, 5), stride=(1, 2), padding=(0, 2)),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * ((shape[0] + 1) // 2), classes),
        )
    channels, height, width = shape
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * ((height + 1) // 2) * ((width + 1) // 2), classes),
    )


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            logits = model(x[start : start + batch])
            loss += float(nn.functional.cross_entropy(logits, y[start : start + batch], reduction="sum"))
            correct += float((logits.argmax(1) == y[start : start + batch]).sum())
    model.train()
    return loss / len(x), correct / len(x)


def _make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    precision = OptimPrecision.from_dict({"seed": config.seed, **config.optim_precision})
    if config.optimizer == "sgd":
        return QSGD(model.parameters(), lr=config.lr, momentum=config.momentum, precision=precision)
    return QAdam(model.parameters(), lr=config.lr, precision=precision)


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    plot: bool = True,
    backend: GemmBackend | None = None,
) -> dict[str, Any]:
    """Train per ``config``; resume from ``out_dir/checkpoint.pt`` when it holds the same configuration.

    ``backend``: an opened backend of ``config.backend``'s name (one built with options of its own), instead of
    :func:`mpsim.nn.backends.load_backend`'s.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(config.dataset, seed=config.seed, root=config.data_root)
    torch.manual_seed(config.seed)
    model, report = quantize_model(build_model(config, data), parse_precision(config.precision).with_seed(config.seed))
    if backend is None:
        backend = load_backend(config.backend, config.hardware)
    elif backend.name != config.backend:
        raise ValueError(f"the backend given is {backend.name!r}, the configuration's {config.backend!r}")
    use_backend(model, backend)  # raises, naming the first GEMM the backend cannot compute, before any work
    optimizer = _make_optimizer(config, model)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    history: list[dict[str, float]] = []
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] != asdict(config):
            raise ValueError(f"{checkpoint} belongs to another configuration; use another output folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = state["history"]
        _restore_rngs(model, state["rngs"])
        backend.restore(state.get("backend", {}))
    shuffler = np.random.default_rng(config.seed)
    for _ in range(len(history)):
        shuffler.permutation(len(x_train))  # replay the shuffles of finished epochs
    epochs = range(len(history), config.epochs)
    bar = tqdm(
        epochs,
        desc=f"train {config.dataset}/{config.model} @ {config.precision}"
        + ("" if config.backend == "emulator" else f" on {config.backend}"),
        disable=not progress,
        initial=len(history),
        total=config.epochs,
    )
    # a fresh install compiles the Numba kernels inside the first epoch (about 35 s): say so rather than look hung
    bar.set_postfix_str("compiling kernels if this is the first run", refresh=True)
    for epoch in bar:
        start = time.perf_counter()
        order = torch.from_numpy(shuffler.permutation(len(x_train)))
        total_loss = 0.0
        for first in range(0, len(order), config.batch_size):
            index = order[first : first + config.batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(index)
        test_loss, test_acc = _evaluate(model, x_test, y_test)
        _, train_acc = _evaluate(model, x_train, y_train)
        row = {
            "epoch": epoch + 1,
            "train_loss": total_loss / len(order),
            "train_accuracy": train_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "seconds": time.perf_counter() - start,
        }
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{test_acc:.3f}")
        state = {
            "config": asdict(config),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": history,
            "rngs": _rng_offsets(model),
            "backend": backend.state(),
        }
        torch.save(state, checkpoint.with_suffix(".tmp"))
        checkpoint.with_suffix(".tmp").replace(checkpoint)  # atomic: a kill never leaves half a checkpoint
    metrics = {
        "config": asdict(config),
        "conversion": {"replaced": report.replaced, "kept_fp32": report.kept_fp32, "unsupported": report.unsupported},
        "history": history,
        "final_test_accuracy": history[-1]["test_accuracy"] if history else None,
        "train_seconds": sum(r["seconds"] for r in history),
        "hardware": backend.report(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if plot:
        plot_curves(history, out / "curves.png", title=f"{config.dataset} {config.model} @ {config.precision}")
    return metrics


def _rng_offsets(model: nn.Module) -> dict[str, int]:
    return {name: m.rng.offset for name, m in model.named_modules() if hasattr(m, "rng")}


def _restore_rngs(model: nn.Module, offsets: dict[str, int]) -> None:
    for name, m in model.named_modules():
        if name in offsets:
            m.rng.offset = offsets[name]


def plot_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, train and test, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.8), layout="constrained")
    left.plot(epochs, [r["train_loss"] for r in history], label="train")
    left.plot(epochs, [r["test_loss"] for r in history], label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy loss (nats per sample)", title="loss")
    right.plot(epochs, [r["train_accuracy"] for r in history], label="train")
    right.plot(epochs, [r["test_accuracy"] for r in history], label="test")
    right.set(xlabel="epoch", ylabel="accuracy (fraction correct)", title="accuracy", ylim=(0, 1))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
