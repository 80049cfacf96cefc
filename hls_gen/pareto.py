"""Pareto fronts of NAS trials in (accuracy up, latency down, energy down)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["dominates", "front_rows", "pareto_front"]


def front_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Pareto front of the trials that were not pruned, fastest first: a pruned trial's accuracy is after
    fewer epochs than the others', so it is no point of the front (nor of Optuna's ``best_trials``)."""
    return sorted(pareto_front([r for r in rows if not r.get("pruned")]), key=lambda r: r["latency_us"])


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Objectives ``a`` dominate ``b`` in (accuracy up, latency down, energy down): no worse anywhere, better
    somewhere."""
    (acc_a, lat_a, en_a), (acc_b, lat_b, en_b) = a, b
    ge = acc_a >= acc_b and lat_a <= lat_b and en_a <= en_b
    return ge and (acc_a > acc_b or lat_a < lat_b or en_a < en_b)


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows not dominated in (accuracy up, latency down, energy down)."""

    def objectives(r: dict[str, Any]) -> tuple[float, float, float]:
        return r["accuracy"], r["latency_us"], r["energy_uj"]

    return [r for r in rows if not any(dominates(objectives(o), objectives(r)) for o in rows if o is not r)]
