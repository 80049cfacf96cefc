"""Built-in offline datasets: scikit-learn digits, mnist1d (generated), and local MNIST files.

Nothing is downloaded: digits ship with scikit-learn, mnist1d is generated
from its templates with a seed, and MNIST is read from files the user has
(IDX as distributed, or ``.npz``) with a clear error naming what is missing.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpsim.extras import require

__all__ = ["DATASETS", "Dataset", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays: ``x`` float32 (N, ...) standardised, ``y`` int64 class labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean()
    std = train.std() + 1e-8
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def load_digits_dataset(seed: int = 0, image: bool = False) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), 25% held out by a seeded split."""
    require("cl", "sklearn")
    from sklearn.datasets import load_digits  # scikit-learn comes with the cl extra

    digits = load_digits()
    x = digits.images.astype(np.float32) if image else digits.data.astype(np.float32)
    if image:
        x = x[:, None]
    x_tr, y_tr, x_te, y_te = _split(x, digits.target.astype(np.int64), 0.25, seed)
    x_tr, x_te = _standardise(x_tr, x_te)
    return Dataset("digits", x_tr, y_tr, x_te, y_te)


def load_mnist1d_dataset(seed: int = 0, num_samples: int = 4000) -> Dataset:
    """mnist1d (Greydanus 2020): 40-sample 1-D signals of 10 classes, generated offline with a seed."""
    require("cl", "mnist1d")
    from mnist1d.data import get_dataset_args, make_dataset  # mnist1d comes with the cl extra

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    data = make_dataset(args)
    x_tr, x_te = _standardise(np.asarray(data["x"], np.float32), np.asarray(data["x_test"], np.float32))
    return Dataset("mnist1d", x_tr, np.asarray(data["y"], np.int64), x_te, np.asarray(data["y_test"], np.int64))


_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped), as in the MNIST distribution."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {array.size} bytes, expected {shape}")
    return array.reshape(shape)


def _mnist_paths(root: Path) -> Path | dict[str, Path]:
    """``mnist.npz`` at or in ``root``, or the four IDX files in it; ``FileNotFoundError`` naming what is missing."""
    npz = root / "mnist.npz" if root.is_dir() else root
    if npz.suffix == ".npz" and npz.exists():
        return npz
    if not root.is_dir():
        raise FileNotFoundError(f"MNIST data root {str(root)!r} is neither a folder nor an .npz file")
    paths = {}
    for key, stem in _MNIST_FILES.items():
        found = next((c for c in (root / stem, root / f"{stem}.gz") if c.exists()), None)
        if found is None:
            raise FileNotFoundError(
                f"MNIST file {stem}[.gz] not found in {str(root)!r}: put the four MNIST IDX files "
                f"(or mnist.npz with x_train, y_train, x_test, y_test) there; nothing is downloaded"
            )
        paths[key] = found
    return paths


def load_mnist_dataset(root: str | Path) -> Dataset:
    """MNIST from local files: ``mnist.npz`` (keys x_train, y_train, x_test, y_test) or the four IDX files."""
    paths = _mnist_paths(Path(root))
    if isinstance(paths, Path):
        with np.load(paths) as f:
            arrays = {k: f[k] for k in _MNIST_FILES}
    else:
        arrays = {key: read_idx(path) for key, path in paths.items()}
    x_tr, x_te = _standardise(
        arrays["x_train"].astype(np.float32)[:, None], arrays["x_test"].astype(np.float32)[:, None]
    )
    return Dataset("mnist", x_tr, arrays["y_train"].astype(np.int64), x_te, arrays["y_test"].astype(np.int64))


DATASETS = ("digits", "digits-image", "mnist1d", "mnist")
MNIST_ROOT_NEEDED = (
    "dataset 'mnist' reads local files, nothing is downloaded: give the folder with the four IDX files or mnist.npz "
    "(--data-root DIR on the command line, root= in Python)"
)


def check_data_root(name: str, root: str | Path | None) -> None:
    """Refuse, before any work, a dataset ``name`` whose local files are not at ``root`` (only ``mnist`` has any)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    if name != "mnist":
        return
    if root is None:
        raise ValueError(MNIST_ROOT_NEEDED)
    _mnist_paths(Path(root))


def load_dataset(name: str, *, seed: int = 0, root: str | Path | None = None) -> Dataset:
    """One of :data:`DATASETS`; ``mnist`` needs ``root`` (a folder or an .npz file)."""
    if name == "digits":
        return load_digits_dataset(seed)
    if name == "digits-image":
        return load_digits_dataset(seed, image=True)
    if name == "mnist1d":
        return load_mnist1d_dataset(seed)
    if name == "mnist":
        if root is None:
            raise ValueError(MNIST_ROOT_NEEDED)
        return load_mnist_dataset(root)
    raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
