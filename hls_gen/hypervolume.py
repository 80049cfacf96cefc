"""The hypervolume of a set of points: the measure of what they dominate up to a reference point (all minimised).

Exact, by slicing (Hypervolume by Slicing Objectives, While et al., IEEE TEC 2006): the points sorted by their
last objective cut the box into slabs, each the hypervolume of the points below it in one dimension fewer
times its thickness; two dimensions are a sweep. Fine for the fronts of a NAS study (tens of points, 4
objectives); a point not strictly better than the reference in every objective adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["hypervolume"]


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume dominated by ``points`` and bounded by ``reference`` (every objective minimised).

    A ``ValueError`` names a point whose length is not the reference's, or a value that is NaN.
    """
    ref = tuple(float(r) for r in reference)
    if not ref:
        raise ValueError("the hypervolume needs a reference point with at least one objective")
    kept = []
    for point in points:
        p = tuple(float(v) for v in point)
        if len(p) != len(ref):
            raise ValueError(f"point {list(point)!r} has {len(p)} objectives, the reference {len(ref)}")
        if any(math.isnan(v) for v in (*p, *ref)):
            raise ValueError(f"hypervolume of NaN: point {list(point)!r}, reference {list(reference)!r}")
        if all(v < r for v, r in zip(p, ref)):
            kept.append(p)
    return _slice(kept, ref)


def _slice(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not points:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in points)
    if len(ref) == 2:
        volume, best = 0.0, ref[1]
        for x, y in sorted(points):  # by the first objective: each point adds the strip below the best so far
            if y < best:
                volume += (ref[0] - x) * (best - y)
                best = y
        return volume
    ordered = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    for i, point in enumerate(ordered):
        top = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        if top > point[-1]:
            volume += (top - point[-1]) * _slice([p[:-1] for p in ordered[: i + 1]], ref[:-1])
    return volume
