"""Avalanche glue for evaluation: the accuracy-matrix rows, and an evaluator that logs nowhere."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from avalanche.core import SupervisedPlugin
from avalanche.logging import BaseLogger
from avalanche.training.plugins import EvaluationPlugin

__all__ = ["AccuracyMatrixPlugin", "quiet_evaluator"]


class AccuracyMatrixPlugin(SupervisedPlugin):
    """One row per ``strategy.eval(stream)`` call: top-1 accuracy on each evaluated experience.

    Reads ``strategy.experience.current_experience``, ``mb_output`` and
    ``mb_y`` after every eval iteration; writes nothing to the strategy.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[int, float]] = []
        self._correct: dict[int, int] = defaultdict(int)
        self._seen: dict[int, int] = defaultdict(int)

    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._correct.clear()
        self._seen.clear()

    def after_eval_iteration(self, strategy: Any, **kwargs: Any) -> None:
        exp = int(strategy.experience.current_experience)
        self._correct[exp] += int((strategy.mb_output.argmax(1) == strategy.mb_y).sum())
        self._seen[exp] += int(strategy.mb_y.numel())

    def after_eval(self, strategy: Any, **kwargs: Any) -> None:
        self.rows.append({exp: self._correct[exp] / self._seen[exp] for exp in sorted(self._seen)})


class _Silent(BaseLogger):
    """Avalanche warns when an evaluator has no logger; the runner reports through its own JSON instead."""


def quiet_evaluator() -> EvaluationPlugin:
    return EvaluationPlugin(loggers=[_Silent()])
