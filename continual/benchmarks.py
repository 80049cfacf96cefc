"""Offline continual-learning benchmarks: split and permuted digits, mnist1d and (local) MNIST.

Nothing is downloaded. scikit-learn's digits ship with it, mnist1d is
generated from its templates with the seed, and MNIST is read from files
the user has (see :func:`mpsim.data.load_mnist_dataset`); a missing file is
a ``FileNotFoundError`` naming it and the folder to put it in.

* ``split-*``: the 10 classes in ``n_experiences`` groups, in the fixed order
  0,1 | 2,3 | ... (so seeds vary the data split, initialisation and
  shuffling, not the task order).
* ``permuted-*``: every experience holds all 10 classes with its own seeded
  permutation of the input features.

Scenarios: ``class`` -- no task labels, one shared head (for permuted
benchmarks this is domain-incremental learning); ``task`` -- task labels
given at train and test time, one head per task (split: labels renumbered
from 0 in each experience).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from continual.config import BENCHMARKS, SCENARIOS, check_data_root
from mpsim.data import Dataset, load_dataset

__all__ = ["BENCHMARKS", "SCENARIOS", "CLBenchmark", "check_data", "make_benchmark"]


@dataclass
class CLBenchmark:
    """An Avalanche benchmark and the shapes a model for it needs."""

    name: str
    scenario: str
    stream: Any  # avalanche NCScenario: .train_stream, .test_stream
    input_size: int  # features per sample (flattened)
    head_size: int  # outputs of one head (all 10 classes, or the classes of one task)
    n_experiences: int

    @property
    def task_labels(self) -> bool:
        return self.scenario == "task"


class _Tensors(torch.utils.data.TensorDataset):
    """(x, y) tensors with the ``targets`` list Avalanche's generators read."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
        self.targets = y.tolist()


@lru_cache(maxsize=8)
def _load(dataset: str, seed: int, root: str | None) -> Dataset:
    return load_dataset(dataset, seed=seed, root=root)


def check_data(name: str, data_root: str | None, seed: int = 0) -> Dataset:
    """The dataset behind benchmark ``name``.

    For MNIST, a ValueError without a data root and a FileNotFoundError naming a missing file
    (see :func:`continual.config.check_data_root`).
    """
    check_data_root(name, data_root)
    return _load(BENCHMARKS[name].dataset, seed, None if data_root is None else str(data_root))


def make_benchmark(
    name: str, scenario: str = "class", *, n_experiences: int = 5, seed: int = 0, data_root: str | None = None
) -> CLBenchmark:
    """Build benchmark ``name`` (one of :data:`BENCHMARKS`) in ``scenario`` (``class`` or ``task``)."""
    from avalanche.benchmarks import nc_benchmark

    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: expected one of {', '.join(BENCHMARKS)}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    if isinstance(n_experiences, bool) or not isinstance(n_experiences, int) or n_experiences < 1:
        raise ValueError(f"n_experiences must be a positive integer, not {n_experiences!r}")
    kind = BENCHMARKS[name].kind
    data = check_data(name, data_root, seed)
    classes = data.num_classes
    input_size = int(np.prod(data.input_shape))
    task = scenario == "task"
    if kind == "split":
        if classes % n_experiences:
            raise ValueError(f"{name} has {classes} classes, which {n_experiences} experiences do not divide")
        stream = nc_benchmark(
            _Tensors(data.x_train, data.y_train),
            _Tensors(data.x_test, data.y_test),
            n_experiences,
            task_labels=task,
            shuffle=False,
            fixed_class_order=list(range(classes)),
            class_ids_from_zero_in_each_exp=task,
        )
        head = classes // n_experiences if task else classes
    else:
        rng = np.random.default_rng(seed)
        trains, tests = [], []
        for _ in range(n_experiences):
            perm = rng.permutation(input_size)
            trains.append(_Tensors(_permute(data.x_train, perm), data.y_train))
            tests.append(_Tensors(_permute(data.x_test, perm), data.y_test))
        stream = nc_benchmark(
            trains,
            tests,
            n_experiences,
            task_labels=task,
            shuffle=False,
            one_dataset_per_exp=True,
            class_ids_from_zero_in_each_exp=True,
        )
        head = classes
    return CLBenchmark(name, scenario, stream, input_size, head, n_experiences)


def _permute(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)[:, perm].reshape(x.shape)
