"""hls_gen.hypervolume against counting the unit cells a set of integer points dominates (an independent oracle)."""

from __future__ import annotations

import itertools
import random

import pytest

from hls_gen.hypervolume import hypervolume


def cells(points: list[tuple[int, ...]], reference: tuple[int, ...]) -> int:
    """Unit cells [c, c+1) of the box below ``reference`` (from 0) whose corner some point dominates."""
    return sum(
        any(all(p <= c for p, c in zip(point, corner)) for point in points)
        for corner in itertools.product(*(range(r) for r in reference))
    )


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_exact_on_random_integer_points(dims: int) -> None:
    rng = random.Random(dims)
    reference = tuple([6] * dims)
    for _ in range(25):
        points = [tuple(rng.randrange(0, 7) for _ in range(dims)) for _ in range(rng.randrange(0, 9))]
        assert hypervolume(points, reference) == cells(points, reference), points


def test_points_beyond_the_reference_add_nothing() -> None:
    assert hypervolume([(1.0, 1.0), (3.0, 0.5), (0.5, 3.0)], (2.0, 2.0)) == 1.0
    assert hypervolume([], (1.0, 1.0, 1.0)) == 0.0


def test_bad_input_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^point \[1\.0\] has 1 objectives, the reference 2$"):
        hypervolume([[1.0]], [2.0, 2.0])
    with pytest.raises(ValueError, match=r"^hypervolume of NaN"):
        hypervolume([[float("nan"), 1.0]], [2.0, 2.0])
