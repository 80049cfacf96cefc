"""Offline benchmarks: experiences, classes, task labels and permutations; local MNIST with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from continual.benchmarks import BENCHMARKS, make_benchmark
from mpsim.data import load_dataset


def _arrays(exp):
    xs, ys, ts = zip(*(exp.dataset[i][:3] for i in range(len(exp.dataset))))
    return torch.stack(xs).numpy(), np.array(ys), np.array(ts)


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_split_digits(scenario):
    bench = make_benchmark("split-digits", scenario, seed=1)
    digits = load_dataset("digits", seed=1)
    assert bench.input_size == 64 and bench.head_size == (2 if scenario == "task" else 10)
    train = list(bench.stream.train_stream)
    assert len(train) == 5 and sum(len(e.dataset) for e in train) == len(digits.x_train)
    for i, exp in enumerate(train):
        x, y, t = _arrays(exp)
        original = sorted({2 * i, 2 * i + 1})
        assert sorted(set(y)) == ([0, 1] if scenario == "task" else original)  # task-IL: labels from 0 per task
        assert set(t) == {i if scenario == "task" else 0}
        assert len(x) == int(np.isin(digits.y_train, original).sum())


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_permuted_mnist1d_permutes_features_per_experience(scenario):
    bench = make_benchmark("permuted-mnist1d", scenario, n_experiences=3, seed=0)
    data = load_dataset("mnist1d", seed=0)
    assert bench.input_size == 40 and bench.head_size == 10
    firsts = []
    for i, exp in enumerate(bench.stream.train_stream):
        x, y, t = _arrays(exp)
        assert len(x) == len(data.x_train) and sorted(set(y)) == list(range(10))
        assert set(t) == {i if scenario == "task" else 0}
        order = np.argsort(y, kind="stable")  # compare sample by sample, whatever order the stream keeps
        want = data.x_train[np.argsort(data.y_train, kind="stable")]
        np.testing.assert_array_equal(np.sort(x[order], axis=1), np.sort(want, axis=1))  # same values, moved
        firsts.append(x[order][0])
    assert not np.array_equal(firsts[0], firsts[1]) and not np.array_equal(firsts[1], firsts[2])


def test_same_seed_same_benchmark():
    a = _arrays(next(iter(make_benchmark("permuted-digits", seed=3).stream.train_stream)))
    b = _arrays(next(iter(make_benchmark("permuted-digits", seed=3).stream.train_stream)))
    c = _arrays(next(iter(make_benchmark("permuted-digits", seed=4).stream.train_stream)))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_mnist_from_local_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "y_train": np.arange(40) % 10,
        "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_test": np.arange(20) % 10,
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    bench = make_benchmark("split-mnist", data_root=str(tmp_path))
    assert bench.input_size == 784 and len(list(bench.stream.train_stream)) == 5
    assert sum(len(e.dataset) for e in bench.stream.test_stream) == 20


def test_missing_mnist_files_are_named(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=rf"^--data-root: MNIST file train-images-idx3-ubyte\[\.gz\] not found in '{tmp_path}': put the four",
    ):
        make_benchmark("permuted-mnist", data_root=str(tmp_path))
    with pytest.raises(
        ValueError,
        match=r"^benchmark 'split-mnist' reads local MNIST files, nothing is downloaded: .* with --data-root DIR$",
    ):
        make_benchmark("split-mnist")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("split-cifar",), r"^unknown benchmark 'split-cifar': expected one of " + ", ".join(BENCHMARKS) + "$"),
        (("split-digits", "domain"), r"^unknown scenario 'domain': expected one of class, task$"),
    ],
)
def test_bad_names(args, message):
    with pytest.raises(ValueError, match=message):
        make_benchmark(*args)


def test_experiences_must_divide_the_classes():
    with pytest.raises(ValueError, match=r"^split-digits has 10 classes, which 3 experiences do not divide$"):
        make_benchmark("split-digits", n_experiences=3)
