"""hls_gen.drawings: the three PNGs of docs/hardware.md, their cuts read from LOOP_CUTS, the array's systolic
registers and timing read from MACArray, --check, the checked-in set."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import matplotlib
import matplotlib.image
import pytest
from amaranth.back import rtlil

import hls_gen.drawings as drawings
from hls_gen.drawings import (
    CONTROL_FIELDS,
    DPI,
    FIGURE_DIR,
    LOOP_STAGES,
    SIZES,
    array_dataflow_figure,
    array_latency,
    drawn_counts,
    loop_plan,
    main,
    modes_datapath_figure,
    modes_plan,
    pe_pipeline_figure,
)
from hls_gen.emit import ArrayConfig
from hls_gen.modes import training_modes
from hls_gen.spec import BUFFER_STAGES, LOOP_CUTS, MAX_INTERLEAVE

NAMES = ("pe_pipeline.png", "modes_datapath.png", "array_dataflow.png")


def texts(sheet: drawings.Sheet, gid: str) -> list[str]:
    return [t.get_text() for t in sheet.ax.texts if t.get_gid() == gid]


def test_the_command_writes_three_pngs_at_docs_width_and_check_compares_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)
    for name in NAMES:
        height, width, _ = matplotlib.image.imread(tmp_path / name).shape
        assert (width, height) == (round(SIZES[name][0] * DPI), round(SIZES[name][1] * DPI))
        assert 1400 <= width <= 1800
    capsys.readouterr()
    # drawn again, the same pixels
    assert (main(["--out", str(tmp_path), "--check"]), capsys.readouterr().out) == (0, "")
    # a drawing of another size, one missing, one no command draws
    shutil.copy(tmp_path / "pe_pipeline.png", tmp_path / "array_dataflow.png")
    (tmp_path / "modes_datapath.png").unlink()
    (tmp_path / "old.png").write_bytes((tmp_path / "pe_pipeline.png").read_bytes())
    assert main(["--out", str(tmp_path), "--check"]) == 1
    width, height = (round(v * DPI) for v in SIZES["pe_pipeline.png"])
    assert capsys.readouterr().out.splitlines() == [
        "modes_datapath.png: missing",
        "old.png: not drawn by hls_gen.drawings (stale)",
        f"array_dataflow.png: {width} x {height} pixels, drawn {width} x {round(SIZES['array_dataflow.png'][1] * DPI)}",
    ]


@pytest.mark.parametrize("interleave", range(1, MAX_INTERLEAVE + 1))
def test_the_pe_drawing_cuts_the_ring_where_loop_cuts_says(interleave: int) -> None:
    cuts = LOOP_CUTS[min(interleave, len(LOOP_CUTS))]
    sheet = pe_pipeline_figure(interleave)
    assert texts(sheet, "cut") == [f"{name}_q" for name in cuts]
    assert loop_plan(interleave).cuts == cuts
    # C-slow: one register round the ring per sum in flight
    assert loop_plan(interleave).registers == interleave
    (ring,) = texts(sheet, "ring")
    assert ring.startswith(f"C-slow: {interleave} registers round the ring ({len(cuts)} cuts + result")


def test_the_drawn_blocks_are_accumulates_cuts_in_its_order() -> None:
    """The drawing's blocks that a cut can follow are the ``cut("...")`` calls of ``accumulate``, in source order."""
    source = (Path(drawings.__file__).parent / "accumulator.py").read_text()
    (function,) = (n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "accumulate")
    calls = sorted(
        (n.lineno, n.col_offset, n.args[0].value)
        for n in ast.walk(function)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "cut"
    )
    order = [name for _, _, name in calls]
    assert order == [name for name, _ in LOOP_STAGES[:-1]]
    assert set().union(*LOOP_CUTS.values()) <= set(order)


def test_a_cut_the_drawing_does_not_know_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LOOP_CUTS, 2, ("multiply",))
    names = ", ".join(repr(name) for name, _ in LOOP_STAGES[:-1])
    with pytest.raises(ValueError, match=rf"^LOOP_CUTS\[2\] cuts after 'multiply', not one of \[{names}\]$"):
        loop_plan(2)


def test_the_modes_drawing_has_fields_per_format_and_one_rounder_with_each_accumulator_roundings_constants() -> None:
    modes = training_modes(["e4m3-sr", "bf16"])
    sheet = modes_datapath_figure(["e4m3-sr", "bf16"])
    operands = [m.a_format for m in modes], [m.b_format or m.a_format for m in modes]
    assert texts(sheet, "unpack") == [f"{f} fields" for formats in operands for f in dict.fromkeys(formats)]
    assert len(texts(sheet, "unpack_shared")) == 2  # one normalization per operand, as unpack_modes builds it
    assert texts(sheet, "unpack_acc") == [f"{f} fields" for f in dict.fromkeys(m.acc_format for m in modes)]
    assert sorted(texts(sheet, "rounder")) == sorted({f"{m.acc_format} {m.rounding}" for m in modes})
    assert len(texts(sheet, "place")) == len(texts(sheet, "round")) == 1  # one rounder serves every mode


@pytest.mark.parametrize("precisions", [("e4m3-sr", "bf16"), ("e5m2-sr", "fp16"), ("e4m3-fp12-sr", "bf16-sr")])
def test_the_modes_drawing_states_the_adder_window_the_hardware_builds(precisions: tuple[str, ...]) -> None:
    """The window the drawing prints is the elaborated adder's (its sum ``add_total`` has the carry bit more).

    e4m3-sr + bf16: bf16 x bf16 products fill 16 bits, fp16 stochastic:8 needs 10 guard bits below its 11, of
    which the 5 zeros under them count: 16 + 5 + 1 = 22."""
    window = modes_plan(precisions).window_bits
    if precisions == ("e4m3-sr", "bf16"):
        assert window == 22
    text = rtlil.convert(ArrayConfig(precisions=precisions, rows=1, cols=1).build())
    (width,) = set(re.findall(r"wire width (\d+) (?:\S+ )*\\add_total\n", text))
    assert int(width) == window + 1


SHAPES = [(1, 1), (1, 4), (2, 3), (3, 1), (4, 4)]


@pytest.mark.parametrize(("rows", "cols"), SHAPES)
def test_the_array_drawing_is_systolic_skew_registers_at_the_edges_one_between_neighbours(rows: int, cols: int) -> None:
    """Row r's A crosses r skew registers, column c's B c; one register between neighbouring PEs on each path.

    As :meth:`hls_gen.array.MACArray.elaborate` builds them (``a_skew_{r}_{i}`` for ``i < r``, ``b_skew_{c}_{i}``
    for ``i < c``, ``a_{r}_{c}_right`` for ``c < cols - 1``, ``b_{r}_{c}_down`` for ``r < rows - 1``); the step
    control's skew is one chain of ``rows - 1`` registers, row r's tap after r of them.
    """
    sheet = array_dataflow_figure(rows, cols, interleave=4)
    assert drawn_counts(sheet, "a_skew", rows) == list(range(rows))
    assert drawn_counts(sheet, "b_skew", cols) == list(range(cols))
    chain = drawn_counts(sheet, "control_skew", rows)
    assert [sum(chain[: r + 1]) for r in range(rows)] == list(range(rows))
    assert drawn_counts(sheet, "a_pe", rows) == [cols - 1] * rows
    assert drawn_counts(sheet, "b_pe", cols) == [rows - 1] * cols
    # each PE its own load registers (``buffer_load_{r}_{c}_{i}``) and slots of the output buffer, one per sum; an
    # operand decoder per row and per column
    assert drawn_counts(sheet, "load", rows * cols) == [BUFFER_STAGES] * (rows * cols)
    assert drawn_counts(sheet, "slot", rows * cols) == [4] * (rows * cols)
    assert texts(sheet, "decode") == ["decode\n(per mode)"] * (rows + cols)


def test_drawn_counts_knows_its_kinds() -> None:
    with pytest.raises(ValueError, match=r"^kind 'a' is not one of \['a_skew', "):
        drawn_counts(array_dataflow_figure(1, 1), "a", 1)


@pytest.mark.parametrize(("rows", "cols"), SHAPES)
@pytest.mark.parametrize(("interleave", "pipeline"), [(1, 0), (8, 1), (16, 2)])
def test_the_array_drawing_states_macarrays_latency(rows: int, cols: int, interleave: int, pipeline: int) -> None:
    from hls_gen.array import MACArray
    from hls_gen.spec import described

    array = described(  # read for its latency, never elaborated
        MACArray(
            a_format="e4m3",
            b_format="e4m3",
            acc_format="fp16",
            rows=rows,
            cols=cols,
            interleave=interleave,
            pipeline=pipeline,
        )
    )
    assert array_latency(rows, cols, interleave, pipeline) == array.latency
    (line,) = texts(array_dataflow_figure(rows, cols, interleave, pipeline), "latency")
    sums = f"{pipeline} + {interleave} + {rows} + {cols} + 1"  # - 1 + BUFFER_STAGES
    assert BUFFER_STAGES == 2  # the drawing's text is checked for the stages the design has
    assert f"p + L + R + C + 1 = {sums} = {array.latency} cycles at --pipeline {pipeline}." in line
    (timing,) = texts(array_dataflow_figure(rows, cols, interleave, pipeline), "timing")
    assert timing.startswith("Systolic: PE (r, c) takes beat n at cycle n + r + c.")
    assert "inp.ready is the only stall" in timing


def test_the_drawn_step_control_is_step_controls_fields() -> None:
    from hls_gen.step import STEP_CONTROL, step_control

    assert tuple(name for name, _ in STEP_CONTROL) == CONTROL_FIELDS
    assert tuple(name for name, _ in step_control(2)) == (*CONTROL_FIELDS, "mode")
    (label,) = texts(array_dataflow_figure(), "control")
    assert "valid/last/flush(/mode)" in label


def test_a_bad_interleave_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--interleave", "17", "--out", "unused"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"--interleave must be 1..{MAX_INTERLEAVE}, not 17")


def _written_by(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return str(image.info.get("Software", ""))


def test_docs_figures_are_what_the_command_draws() -> None:
    """``python -m hls_gen.drawings --check`` finds nothing to change (else: run ``python -m hls_gen.drawings``).

    Pixels are compared, which another Matplotlib version may render a little differently: then this skips.
    """
    written = _written_by(FIGURE_DIR / "pe_pipeline.png")
    if f"version{matplotlib.__version__}," not in written:
        pytest.skip(f"docs/figures drawn by {written!r}, this is Matplotlib {matplotlib.__version__}")
    assert drawings.differences() == []
