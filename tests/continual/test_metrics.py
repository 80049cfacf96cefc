"""Accuracy-matrix metrics against values worked out by hand from their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from continual.metrics import (
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    learning_accuracy,
    summarize,
)

# After experience 0: task 0 at 0.9; after 1: task 0 dropped to 0.5, task 1 0.8; after 2: 0.4, 0.7, 0.95.
R = [
    [0.9, 0.1, 0.2],
    [0.5, 0.8, 0.3],
    [0.4, 0.7, 0.95],
]
BASELINE = [0.1, 0.2, 0.1]


def test_average_and_learning_accuracy():
    assert average_accuracy(R) == pytest.approx((0.4 + 0.7 + 0.95) / 3)
    assert learning_accuracy(R) == pytest.approx((0.9 + 0.8 + 0.95) / 3)


def test_forgetting_takes_the_best_earlier_accuracy():
    # task 0: best of R[0,0], R[1,0] = 0.9, final 0.4 -> 0.5; task 1: best R[1,1] = 0.8, final 0.7 -> 0.1
    assert forgetting(R) == pytest.approx((0.5 + 0.1) / 2)


def test_backward_transfer_compares_with_just_learnt():
    assert backward_transfer(R) == pytest.approx(((0.4 - 0.9) + (0.7 - 0.8)) / 2)


def test_forward_transfer_uses_the_untrained_baseline():
    # R[0,1] - b1 = 0.1 - 0.2; R[1,2] - b2 = 0.3 - 0.1
    assert forward_transfer(R, BASELINE) == pytest.approx(((0.1 - 0.2) + (0.3 - 0.1)) / 2)


def test_accuracy_that_only_grows_forgets_nothing():
    # every column rises by 0.1 after its task: the last task improved after its own step, so forgetting is negative
    grows = np.tril(np.full((4, 4), 0.5)) + np.tril(np.full((4, 4), 0.1), -1)
    assert forgetting(grows) == pytest.approx((0 + 0 - 0.1) / 3)
    assert backward_transfer(grows) == pytest.approx(0.1)
    assert forgetting(np.eye(3)) == pytest.approx(1.0)  # everything learnt is lost
    assert backward_transfer(np.eye(3)) == pytest.approx(-1.0)


def test_joint_training_row_has_only_average_accuracy():
    out = summarize([[0.9, 0.8, 0.7]], BASELINE)
    assert out == {
        "average_accuracy": pytest.approx(0.8),
        "learning_accuracy": None,
        "forgetting": None,
        "backward_transfer": None,
        "forward_transfer": None,
    }


def test_summarize_square():
    out = summarize(R, BASELINE)
    assert out["forgetting"] == pytest.approx(forgetting(R))
    assert out["forward_transfer"] == pytest.approx(forward_transfer(R, BASELINE))
    assert summarize(R)["forward_transfer"] is None


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[0.5, 0.5]], r"^accuracy matrix must be square \(T x T\), not shape \(1, 2\)$"),
        ([], r"^accuracy matrix must be 2-D and non-empty, not shape \(0,\)$"),
        ([[1.5]], r"^accuracy matrix entries must be accuracies in \[0, 1\]$"),
    ],
)
def test_bad_matrices(matrix, message):
    with pytest.raises(ValueError, match=message):
        forgetting(matrix)


def test_baseline_length_checked():
    with pytest.raises(ValueError, match=r"^baseline must hold one accuracy per experience \(3\), not shape \(2,\)$"):
        forward_transfer(R, [0.1, 0.2])
