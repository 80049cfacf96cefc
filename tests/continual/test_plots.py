"""Sweep plots readable at any size: a minimum size in pixels, labelled axes, a title clear of every label."""

from __future__ import annotations

from dataclasses import replace

import matplotlib
import matplotlib.image
import matplotlib.pyplot
import pytest

from continual.config import RunConfig
from continual.plots import MIN_SIZE, heatmap_figure, pareto_figure, plot_heatmaps
from continual.report import aggregate
from tests.continual.test_sweep import _fake_result

matplotlib.use("Agg")


def _results(strategies: tuple[str, ...], precisions: tuple[str, ...], experiences: int) -> list[dict]:
    results = []
    for strategy in strategies:
        for precision in precisions:
            config = replace(RunConfig(strategy=strategy, precision=precision), n_experiences=experiences)
            result = _fake_result(config)
            result["accuracy_matrix"] = [[0.5] * experiences for _ in range(experiences)]
            results.append(result)
    return results


def _clear_of(fig, text) -> bool:
    """``text`` overlaps no axes' title, label or tick label."""
    renderer = fig.canvas.get_renderer()
    box = text.get_window_extent(renderer)
    for ax in fig.axes:
        for other in [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]:
            if (
                other is not text
                and other.get_text()
                and other.get_visible()
                and box.overlaps(other.get_window_extent(renderer))
            ):
                return False
    return True


@pytest.mark.parametrize(
    ("strategies", "precisions", "experiences"),
    [(("naive",), ("fp32",), 2), (("naive", "replay", "ewc"), ("fp32", "bf16", "e4m3", "e4m3-sr"), 5)],
)
def test_heatmaps_readable_at_any_size(strategies, precisions, experiences, tmp_path):
    fig = heatmap_figure(_results(strategies, precisions, experiences), "split-digits (class-incremental)")
    fig.canvas.draw()
    width, height = fig.get_size_inches()
    assert width >= MIN_SIZE[0] and height >= MIN_SIZE[1]
    cells = [ax for ax in fig.axes if ax.images]
    assert len(cells) == len(strategies) * len(precisions)
    bottom, left = cells[-len(precisions) :], cells[:: len(precisions)]
    assert [ax.get_xlabel() for ax in bottom] == ["evaluated on experience"] * len(precisions)
    assert [ax.get_ylabel().split("\n")[-1] for ax in left] == ["trained up to experience"] * len(strategies)
    assert [ax.get_ylabel().split("\n")[0] for ax in cells if ax.get_ylabel()] == list(strategies)
    colorbar = [ax for ax in fig.axes if not ax.images]
    assert [ax.get_ylabel() for ax in colorbar] == ["accuracy (fraction correct)"]
    assert _clear_of(fig, fig._suptitle)
    path = tmp_path / "h.png"
    plot_heatmaps(_results(strategies, precisions, experiences), path, "t")
    height_px, width_px, _ = matplotlib.image.imread(path).shape
    assert width_px >= 640 and height_px >= 480
    matplotlib.pyplot.close(fig)


def test_pareto_axes_have_units_and_a_clear_title():
    rows = aggregate(_results(("naive", "replay"), ("fp32", "e4m3"), 2))
    fig = pareto_figure(rows, "split-digits (class-incremental): accuracy vs training energy")
    fig.canvas.draw()
    (ax,) = fig.axes
    assert ax.get_xlabel() == "training energy, µJ (Horowitz 45 nm proxy, log scale)"
    assert ax.get_ylabel() == "average accuracy (fraction correct)"
    assert tuple(fig.get_size_inches()) >= MIN_SIZE
    assert _clear_of(fig, ax.title)
    matplotlib.pyplot.close(fig)
