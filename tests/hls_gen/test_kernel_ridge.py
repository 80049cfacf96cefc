"""The residual correction: it learns a smooth function, fades to the mean far away, ignores constant features,
round-trips through JSON, and refuses a non-positive length scale or noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hls_gen.kernel_ridge import KernelRidge, fit_kernel_ridge


def smooth(x: np.ndarray) -> np.ndarray:
    return 0.2 * np.sin(x[:, 0]) + 0.1 * x[:, 1] ** 2


def test_learns_a_smooth_function_from_noisy_samples() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(150, 2))
    r = smooth(x) + rng.normal(scale=0.01, size=150)
    model = fit_kernel_ridge(("u", "v"), x, r, length_scale=0.5, noise=1e-4)
    probe = rng.uniform(-1.8, 1.8, size=(40, 2))
    got = np.array([model.predict(p) for p in probe])
    baseline = np.abs(smooth(probe) - r.mean()).mean()  # the mean alone
    assert np.abs(got - smooth(probe)).mean() < 0.1 * baseline


def test_fades_to_the_mean_far_from_the_data() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(30, 2))
    r = smooth(x)
    model = fit_kernel_ridge(("u", "v"), x, r, length_scale=1.0, noise=1e-3)
    assert model.predict([100.0, -100.0]) == pytest.approx(r.mean(), abs=1e-12)
    assert model.spread == pytest.approx(r.std())


def test_a_constant_feature_is_ignored() -> None:
    rng = np.random.default_rng(2)
    x = np.column_stack([rng.uniform(-1, 1, 20), np.full(20, 3.0)])
    r = np.sin(x[:, 0])
    model = fit_kernel_ridge(("u", "fixed"), x, r, length_scale=1.0, noise=1e-3)
    assert model.scale[1] == 0.0
    assert model.predict([0.3, 3.0]) == model.predict([0.3, 1000.0])  # the constant feature says nothing


def test_no_variance_means_no_correction() -> None:
    model = fit_kernel_ridge(("u",), [[0.0], [1.0], [2.0]], [0.25, 0.25, 0.25], length_scale=1.0, noise=1e-3)
    assert model.predict([0.5]) == 0.25 and model.predict([7.0]) == 0.25
    empty = fit_kernel_ridge(("u",), np.zeros((0, 1)), [], length_scale=1.0, noise=1e-3)
    assert empty.predict([1.0]) == 0.0


def test_round_trips_through_json() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, size=(12, 3))
    model = fit_kernel_ridge(("a", "b", "c"), x, rng.normal(size=12), length_scale=1.5, noise=0.01)
    again = KernelRidge.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    probe = rng.uniform(-1, 1, size=3)
    assert again.predict(probe) == model.predict(probe)


@pytest.mark.parametrize(("length_scale", "noise"), [(0.0, 0.1), (1.0, 0.0), (-1.0, 0.1)])
def test_refuses_non_positive_settings(length_scale: float, noise: float) -> None:
    with pytest.raises(ValueError, match=r"^length scale and noise must be positive, not "):
        fit_kernel_ridge(("u",), [[0.0]], [0.0], length_scale=length_scale, noise=noise)
