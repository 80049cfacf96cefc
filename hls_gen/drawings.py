"""Drawings of the generated hardware for ``docs/hardware.md`` (matplotlib, Agg), made from the generator's specs.

``python -m hls_gen.drawings`` writes ``docs/figures/`` (next to ``hls_gen/``):

* ``pe_pipeline.png``: a pipelined PE (``--interleave L``, default 8), its
  accumulate loop drawn as a ring with the register cuts where
  :data:`hls_gen.spec.LOOP_CUTS` puts them (:func:`loop_plan`);
* ``modes_datapath.png``: the multi-mode PE of ``--precision e4m3-sr
  --precision bf16``, its decoders, rounder constants and mode table computed from
  :func:`hls_gen.modes.training_modes` (:func:`modes_plan`);
* ``array_dataflow.png``: the ``R x C`` output-stationary systolic array:
  operands decoded at the edge, skewed and passed neighbour to neighbour
  with the step control (:func:`draw_operand_movement`), each PE's slots of
  the output buffer, the output multiplexer, both valid/ready streams and
  the timing (:func:`array_latency`).

``--out DIR`` writes elsewhere; ``--check`` draws into a temporary folder and
exits 1 when a drawing's pixels differ from the checked-in one (or it is
missing or stale). The drawings are deterministic for one Matplotlib
version; another version may place text a pixel differently, which
``--check`` reports with both versions.

Nothing here imports Amaranth: the drawings read the specs (:mod:`hls_gen.spec`,
:mod:`hls_gen.modes`), not the elaborated design.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hls_gen.modes import HwMode, check_modes, mode_bits, training_modes
from hls_gen.spec import (
    BUFFER_STAGES,
    LOOP_CUTS,
    MAX_INTERLEAVE,
    array_latency,
    check_int,
    rounding_string,
    shared_adder_bits,
)

__all__ = [
    "CONTROL_FIELDS",
    "DPI",
    "DRAWN_KINDS",
    "FIGURES",
    "FIGURE_DIR",
    "LOOP_STAGES",
    "SIZES",
    "ArrayGeometry",
    "LoopPlan",
    "LoopStage",
    "ModesPlan",
    "Sheet",
    "array_dataflow_figure",
    "array_latency",
    "differences",
    "draw_all",
    "draw_operand_movement",
    "drawn_counts",
    "loop_plan",
    "modes_datapath_figure",
    "modes_plan",
    "pe_pipeline_figure",
]

#: Where the checked-in drawings live.
FIGURE_DIR = Path(__file__).resolve().parent.parent / "docs" / "figures"
#: Pixels per inch: the figures are 10 inches wide, 1600 pixels.
DPI = 160
#: Each drawing's size in inches (width, height); at :data:`DPI`, 1600 pixels wide.
SIZES: dict[str, tuple[float, float]] = {
    "pe_pipeline.png": (10.0, 6.4),
    "modes_datapath.png": (10.0, 7.0),
    "array_dataflow.png": (10.0, 8.4),
}
#: The precisions of the multi-mode drawing (the ``mac_e4m3_sr_bf16_2x2_il8`` preset's).
MODES_PRECISIONS = ("e4m3-sr", "bf16")

#: The accumulate loop's blocks in :func:`hls_gen.accumulator.accumulate`'s order, each with its label; a
#: :data:`~hls_gen.spec.LOOP_CUTS` name is the block a cut follows ("round" cuts between deciding and encoding).
#: The result register after ``encode`` closes the loop.
LOOP_STAGES: tuple[tuple[str, str], ...] = (
    ("unpack", "unpack the\nsum so far"),
    ("order", "order by\nmagnitude"),
    ("align", "align the\nsmaller"),
    ("add", "add\n(sticky bit)"),
    ("normalize", "normalize\n(leading zeros)"),
    ("place", "place on the\nformat's grid"),
    ("round", "decide the\nrounding"),
    ("encode", "encode\n(specials)"),
)


@dataclass(frozen=True)
class LoopStage:
    """One block of the accumulate loop; ``cut``: a register follows it."""

    name: str
    label: str
    cut: bool


@dataclass(frozen=True)
class LoopPlan:
    """The accumulate ring of a PE with ``interleave`` sums, as :data:`~hls_gen.spec.LOOP_CUTS` cuts it."""

    interleave: int
    stages: tuple[LoopStage, ...]
    delays: int  # plain registers after the result register (interleave above the most cuts)

    @property
    def cuts(self) -> tuple[str, ...]:
        """The blocks a register follows, in loop order."""
        return tuple(s.name for s in self.stages if s.cut)

    @property
    def registers(self) -> int:
        """Registers round the ring: the cuts, the result register and the delays (one per sum in flight)."""
        return len(self.cuts) + 1 + self.delays


def loop_plan(interleave: int) -> LoopPlan:
    """The ring of :func:`hls_gen.accumulator.accumulate` for ``interleave`` sums, its cuts read from LOOP_CUTS."""
    check_int(interleave, "interleave", 1, MAX_INTERLEAVE)
    cuts = LOOP_CUTS[min(interleave, len(LOOP_CUTS))]
    names = [name for name, _ in LOOP_STAGES[:-1]]  # a cut follows any block but the last
    unknown = [c for c in cuts if c not in names]
    if unknown:
        raise ValueError(f"LOOP_CUTS[{min(interleave, len(LOOP_CUTS))}] cuts after {unknown[0]!r}, not one of {names}")
    stages = tuple(LoopStage(name, label, name in cuts) for name, label in LOOP_STAGES)
    return LoopPlan(interleave, stages, interleave - 1 - len(cuts))


@dataclass(frozen=True)
class ModesPlan:
    """What a multi-mode PE shares and what it has per format (:meth:`hls_gen.mac.MAC._elaborate_modes`)."""

    precisions: tuple[str, ...]
    modes: tuple[HwMode, ...]
    uses: tuple[tuple[str, ...], ...]  # the GEMMs each mode runs

    @property
    def a_formats(self) -> list[str]:
        """Operand A's unpackers, one per distinct format, in first-use order."""
        return list(dict.fromkeys(m.a_format.label for m in self.modes))

    @property
    def b_formats(self) -> list[str]:
        return list(dict.fromkeys(m.b_format.label for m in self.modes))

    @property
    def acc_formats(self) -> list[str]:
        """The sum-so-far unpackers, one per distinct accumulator format."""
        return list(dict.fromkeys(m.acc_format.label for m in self.modes))

    @property
    def product_rounders(self) -> list[str]:
        """One per distinct (product format, rounding) of an unfused mode."""
        return list(
            dict.fromkeys(
                f"{m.product_format.label} {rounding_string(m.product_rand_bits)}"
                for m in self.modes
                if m.product_format is not None
            )
        )

    @property
    def rounders(self) -> list[str]:
        """One per distinct (accumulator format, rounding): ``"fp16 stochastic:8"``."""
        return list(dict.fromkeys(f"{m.acc_format.label} {rounding_string(m.rand_bits)}" for m in self.modes))

    @property
    def lfsr_steps(self) -> list[int]:
        """LFSR steps per accepted step, by mode code."""
        return [m.lfsr_steps for m in self.modes]

    @property
    def mode_bits(self) -> int:
        return mode_bits(len(self.modes))

    @property
    def sig_bits(self) -> tuple[int, int]:
        """Significand bits of the shared multiplier's operands (the widest A's and B's)."""
        return max(m.a_format.man_bits + 1 for m in self.modes), max(m.b_format.man_bits + 1 for m in self.modes)

    @property
    def window_bits(self) -> int:
        """The shared adder's window (:func:`hls_gen.spec.shared_adder_bits`, as the hardware sizes it)."""
        sig, guard = shared_adder_bits(
            [(m.acc_format, m.rand_bits) for m in self.modes], [m.term_bits for m in self.modes]
        )
        return sig + guard + 1


def modes_plan(precisions: Sequence[str] = MODES_PRECISIONS) -> ModesPlan:
    """The modes of a training array for ``precisions`` (:func:`hls_gen.modes.training_modes`), checked."""
    arith = training_modes(list(precisions))
    return ModesPlan(tuple(precisions), check_modes(arith, 32), tuple(m.uses for m in arith))


# --- drawing kit ------------------------------------------------------------------------------------------------

#: Colours: logic, shared logic, per-format logic, optional logic, registers, random draws, mode code, text.
LOGIC, SHARED, PER_FORMAT, OPTIONAL = "#dbe9f6", "#fde3c8", "#e2f0d9", "#f4f4f4"
REGISTER, DRAWS, MODE, INK = "#3c3c3c", "#2e7d32", "#7b3fa0", "#1a1a1a"
FONT = 8.5
#: On top of Matplotlib's defaults: its bundled font, so that every machine draws the same glyphs.
RC = {"font.family": "DejaVu Sans", "font.size": FONT}


class Sheet:
    """One drawing: an axes in units of a tenth of an inch (100 wide), origin bottom left, helpers for blocks."""

    def __init__(self, name: str) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        width, height = SIZES[name]
        self.fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
        FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width * 10)
        self.ax.set_ylim(0, height * 10)
        self.ax.set_axis_off()
        self.width, self.height = width * 10, height * 10

    def text(self, x: float, y: float, s: str, *, gid: str | None = None, **kw: Any) -> Any:
        kw = {"ha": "center", "va": "center", "fontsize": FONT, "color": INK, **kw}
        t = self.ax.text(x, y, s, **kw)
        if gid is not None:
            t.set_gid(gid)
        return t

    def box(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        label: str,
        *,
        fill: str = LOGIC,
        dashed: bool = False,
        gid: str | None = None,
        fontsize: float = FONT,
    ) -> None:
        """A rounded block centred on ``(x, y)``, ``label`` in its middle (the label's ``gid``: ``gid``)."""
        from matplotlib.patches import FancyBboxPatch

        self.ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.8",
                facecolor=fill,
                edgecolor=INK,
                linewidth=0.9,
                linestyle=(0, (3, 2)) if dashed else "-",
            )
        )
        self.text(x, y, label, gid=gid, fontsize=fontsize, linespacing=1.15)

    def register(self, x: float, y: float, w: float, h: float, *, dashed: bool = False, gid: str | None = None) -> None:
        """A register: a dark bar centred on ``(x, y)`` with a clock wedge (outlined only when optional).

        ``gid``: the bar's (its wedge has none), so that a test can count the registers of a kind.
        """
        from matplotlib.patches import Polygon, Rectangle

        self.ax.add_patch(
            Rectangle(
                (x - w / 2, y - h / 2),
                w,
                h,
                facecolor="white" if dashed else REGISTER,
                edgecolor=REGISTER,
                linewidth=1.0,
                linestyle=(0, (2, 1.5)) if dashed else "-",
                gid=gid,
            )
        )
        # the clock wedge on the bar's lower edge (vertical bars) or left edge (horizontal bars)
        if h >= w:
            s = min(w, 1.0) * 0.9
            pts = [(x - s / 2, y - h / 2), (x + s / 2, y - h / 2), (x, y - h / 2 + s)]
        else:
            s = min(h, 1.0) * 0.9
            pts = [(x - w / 2, y - s / 2), (x - w / 2, y + s / 2), (x - w / 2 + s, y)]
        self.ax.add_patch(Polygon(pts, closed=True, facecolor=REGISTER if dashed else "white", edgecolor="none"))

    def wire(
        self,
        points: Sequence[tuple[float, float]],
        *,
        color: str = INK,
        width: float = 1.1,
        style: str = "-",
        head: bool = True,
    ) -> None:
        """A polyline through ``points``, an arrow head at its end unless ``head`` is false."""
        from matplotlib.patches import FancyArrowPatch
        from matplotlib.path import Path as MplPath

        linestyle = {"-": "-", "--": (0, (4, 2.5)), ":": (0, (1.2, 1.8)), "-.": (0, (5, 2, 1.2, 2))}[style]
        self.ax.add_patch(
            FancyArrowPatch(
                path=MplPath(list(points)),
                arrowstyle="-|>,head_length=5,head_width=2.6" if head else "-",
                mutation_scale=1,
                color=color,
                linewidth=width,
                linestyle=linestyle,
                shrinkA=0,
                shrinkB=0,
                joinstyle="miter",
                capstyle="butt",
            )
        )

    def dot(self, x: float, y: float, color: str = INK) -> None:
        from matplotlib.patches import Circle

        self.ax.add_patch(Circle((x, y), 0.45, facecolor=color, edgecolor="none"))

    def mux(self, x: float, y: float, w: float, h: float, *, facing: str = "right") -> None:
        """A multiplexer: a trapezoid centred on ``(x, y)``, narrow side ``facing`` ("right"/"left"/"down")."""
        from matplotlib.patches import Polygon

        l, r, b, t = x - w / 2, x + w / 2, y - h / 2, y + h / 2
        inset = min(w, h) * 0.3 if facing == "down" else h * 0.2
        pts = {
            "right": [(l, b), (l, t), (r, t - inset), (r, b + inset)],
            "left": [(r, b), (r, t), (l, t - inset), (l, b + inset)],
            "down": [(l, t), (r, t), (r - inset, b), (l + inset, b)],
        }[facing]
        self.ax.add_patch(Polygon(pts, closed=True, facecolor=SHARED, edgecolor=INK, linewidth=0.9))

    def save(self, path: Path) -> None:
        self.fig.savefig(path, dpi=DPI, facecolor="white")


# --- 1. the pipelined PE ----------------------------------------------------------------------------------------


def pe_pipeline_figure(interleave: int = 8) -> Sheet:
    """The pipelined PE: operands, multiplier, product register, and the accumulate ring cut as LOOP_CUTS says.

    The cut labels (``<block>_q``, the register after that block) carry the ``gid`` ``"cut"``, the blocks
    ``"stage:<name>"`` and the note counting the ring's registers ``"ring"``.
    """
    plan = loop_plan(interleave)
    s = Sheet("pe_pipeline.png")
    L = plan.interleave
    s.text(
        50,
        s.height - 2.5,
        f"Pipelined PE, --interleave {L}: the accumulate loop cut by {len(plan.cuts)} registers "
        f"(hls_gen.spec.LOOP_CUTS[{min(L, len(LOOP_CUTS))}]), {L} sums in turn",
        fontsize=10.5,
        fontweight="bold",
    )

    # Feed path: operands on the upper lane, the step's random draws on the lower lane, through the same registers.
    lane_op, lane_draw = 53.0, 46.5
    s.text(1.0, lane_op + 2.6, "in: a, b, valid, last", ha="left")
    s.box(7.0, lane_draw, 11.5, 5.0, "LFSR\nkp + ks steps\nper accepted step", fill=PER_FORMAT, fontsize=FONT - 0.5)
    s.wire([(1.0, lane_op), (15.3, lane_op)])
    s.register(16.5, (lane_op + lane_draw) / 2, 1.1, 10.5, dashed=True)
    s.text(16.5, lane_op + 6.3, "operand regs\n(--pipeline 2)", fontsize=FONT - 1)
    s.box(27.0, lane_op, 15.0, 5.0, "unpack a, b\n(normalized)")
    s.wire([(17.1, lane_op), (19.5, lane_op)])
    s.box(46.0, lane_op, 18.0, 6.4, "DSP multiplier\nexact product:\nsig_a × sig_b, exp_a + exp_b", fill=SHARED)
    s.wire([(34.5, lane_op), (37.0, lane_op)])
    s.box(65.0, lane_op, 15.0, 5.0, "product rounding\n(unfused MAC only)", fill=OPTIONAL, dashed=True)
    s.wire([(55.0, lane_op), (57.5, lane_op)])
    s.wire([(72.5, lane_op), (75.4, lane_op)])
    s.register(76.5, (lane_op + lane_draw) / 2, 1.1, 10.5)
    s.text(76.5, lane_op + 6.3, "product register\n(--pipeline ≥ 1)", fontsize=FONT - 1)
    # draws: kp bits to the product rounder, ks bits on with the step
    s.wire([(12.75, lane_draw), (15.9, lane_draw)], color=DRAWS, style="--", head=False)
    s.wire([(17.1, lane_draw), (60.0, lane_draw), (60.0, lane_op - 2.5)], color=DRAWS, style="--")
    s.text(57.5, lane_draw + 2.2, "kp bits", color=DRAWS, fontsize=FONT - 1)
    s.wire([(60.0, lane_draw), (75.9, lane_draw)], color=DRAWS, style="--", head=False)
    s.text(
        38.0,
        lane_draw - 2.0,
        "random draws (ks bits) travel with their step: valid, last, draw",
        color=DRAWS,
        fontsize=FONT - 0.5,
    )

    # The ring, counter-clockwise: top row right to left from the entry (unpack), bottom row left to right.
    top, bottom, bw, bh = 35.0, 8.0, 13.0, 6.0
    xs = [84.0, 65.0, 46.0, 27.0]
    centres = [(x, top) for x in xs] + [(x, bottom) for x in reversed(xs)]
    left_x, right_x = 13.0, 96.0
    step_top, step_bottom, step_left = top - bh / 2 - 3.0, bottom + bh / 2 + 3.0, left_x + 4.0
    for stage, (x, y) in zip(plan.stages, centres):
        s.box(x, y, bw, bh, stage.label, fill=LOGIC, gid=f"stage:{stage.name}")
    # datapath arrows between consecutive blocks (the registers drawn over them)
    for i in range(3):
        s.wire([(xs[i] - bw / 2, top), (xs[i + 1] + bw / 2, top)])
        s.wire([(xs[3 - i] + bw / 2, bottom), (xs[2 - i] - bw / 2, bottom)])
    s.wire([(xs[3] - bw / 2, top), (left_x, top), (left_x, bottom), (xs[3] - bw / 2, bottom)])
    # the step (valid, last, fresh, draw) beside the datapath, from the entry to the rounding decision
    decide_x = xs[1]  # the bottom row runs left to right: normalize, place, decide, encode
    s.wire(
        [
            (xs[0] + 2.5, top - bh / 2),
            (xs[0] + 2.5, step_top),
            (step_left, step_top),
            (step_left, step_bottom),
            (decide_x, step_bottom),
            (decide_x, bottom + bh / 2),
        ],
        color=DRAWS,
        style="--",
    )
    s.text(
        (xs[1] + xs[2]) / 2,
        step_top - 1.4,
        "step: valid, last, fresh, draw (the cuts register it too)",
        color=DRAWS,
        fontsize=FONT - 1,
    )
    # a cut sits between its block and the next one along the ring, across the datapath and the step
    for i, stage in enumerate(plan.stages[:-1]):
        if not stage.cut:
            continue
        (x0, y0), (x1, y1) = centres[i], centres[i + 1]
        label = {"gid": "cut", "fontsize": FONT - 1, "family": "monospace"}
        if y0 == y1 == top:
            lo, hi = step_top - 1.0, top + bh / 2 + 0.8
            s.register((x0 + x1) / 2, (lo + hi) / 2, 1.1, hi - lo)
            s.text((x0 + x1) / 2, hi + 1.3, f"{stage.name}_q", **label)
        elif y0 == y1:
            lo, hi = bottom - bh / 2 - 0.8, step_bottom + 1.0
            s.register((x0 + x1) / 2, (lo + hi) / 2, 1.1, hi - lo)
            s.text((x0 + x1) / 2, lo - 1.3, f"{stage.name}_q", **label)
        else:  # down the left side
            s.register((left_x + step_left) / 2, (top + bottom) / 2, step_left - left_x + 5.0, 1.1)
            s.text(left_x - 1.0, (top + bottom) / 2 + 1.7, f"{stage.name}_q", ha="right", **label)
    # the result register closes the loop; delay registers (interleave > 8) follow it
    s.wire([(xs[0] + bw / 2, bottom), (right_x, bottom), (right_x, top), (xs[0] + bw / 2, top)])
    s.register(right_x - 2.9, bottom, 1.1, bh + 1.6)
    s.text(right_x - 2.9, bottom - bh / 2 - 1.9, "result", fontsize=FONT - 1, family="monospace")
    if plan.delays:
        s.register(right_x, (top + bottom) / 2 - 3.0, 3.6, 1.1)
        s.text(
            right_x - 2.6, (top + bottom) / 2 - 3.0, f"{plan.delays} delay\nregister(s)", fontsize=FONT - 1, ha="right"
        )
    s.text(
        right_x - 1.2,
        (top + bottom) / 2 + 4.0,
        "loop-back: acc = the sum of\nthe slot now at the entry",
        fontsize=FONT - 1,
        ha="right",
    )
    s.wire([(right_x, bottom), (right_x, 1.2), (62.0, 1.2)])
    s.text(61.0, 1.2, "acc, done → the array's output buffer", ha="right", fontsize=FONT - 1)
    # the term enters with the sum at the entry
    s.wire([(77.6, lane_op), (87.0, lane_op), (87.0, top + bh / 2)])
    s.text(88.0, (lane_draw + top + bh / 2) / 2 - 1.5, "term\n(exact\nproduct)", ha="left", fontsize=FONT - 1)
    s.wire([(77.1, lane_draw), (81.0, lane_draw), (81.0, top + bh / 2)], color=DRAWS, style="--")

    # C-slow: the note inside the ring
    cx, cy = (xs[3] + xs[0]) / 2 + 2.0, (top + bottom) / 2
    s.text(
        cx,
        cy + 2.4,
        f"C-slow: {L} registers round the ring ({len(plan.cuts)} cuts + result"
        + (f" + {plan.delays} delays" if plan.delays else "")
        + f"), so {L} sums share it",
        gid="ring",
        fontweight="bold",
    )
    s.text(
        cx,
        cy - 2.0,
        f"the step entering in cycle n belongs to sum n mod {L} and meets it again {L} cycles later;\n"
        "a bubble adds −0, so its slot's sum holds and the loop never waits",
        fontsize=FONT - 0.5,
    )
    return s


# --- 2. the multi-mode PE ---------------------------------------------------------------------------------------


def _stack(
    s: Sheet, x: float, top: float, labels: list[str], *, w: float, h: float, gap: float, fill: str, gid: str
) -> list[float]:
    """Boxes one above the other from ``top`` down; returns their centre heights."""
    ys = [top - h / 2 - i * (h + gap) for i in range(len(labels))]
    for label, y in zip(labels, ys):
        s.box(x, y, w, h, label, fill=fill, gid=gid)
    return ys


def modes_datapath_figure(precisions: Sequence[str] = MODES_PRECISIONS) -> Sheet:
    """The multi-mode PE: each format's fields (``gid`` ``"unpack"``, ``"unpack_acc"``) picked by the mode into one
    normalization, one multiplier, one adder and one rounder whose grid and rule the mode picks (``gid``
    ``"rounder"``: each (accumulator, rounding) of the modes)."""
    plan = modes_plan(precisions)
    s = Sheet("modes_datapath.png")
    s.text(
        50,
        s.height - 2.5,
        f"Multi-mode PE, --precision {' --precision '.join(plan.precisions)}: {len(plan.modes)} modes, "
        f"a {plan.mode_bits}-bit mode code per job",
        fontsize=10.5,
        fontweight="bold",
    )
    s.text(
        99.0,
        s.height - 5.5,
        "green: per format  ·  orange: shared by every mode  ·  purple: the mode code  ·  green dashes: random draws",
        ha="right",
        fontsize=FONT - 0.5,
        color="#555555",
    )
    mode_kw: dict[str, Any] = {"color": MODE, "style": "-."}

    # operands: each format's fields picked by the mode (left-aligned in the widest), one normalization, one
    # multiplier (hls_gen.arith.unpack_modes)
    ux, uw, uh, gap, mux_x, norm_x = 8.0, 10.0, 3.4, 1.0, 16.5, 22.5
    groups = []
    for operand, formats, group_top in (("a", plan.a_formats, 61.0), ("b", plan.b_formats, 44.0)):
        ys = _stack(
            s, ux, group_top, [f"{f} fields" for f in formats], w=uw, h=uh, gap=gap, fill=PER_FORMAT, gid="unpack"
        )
        s.text(
            0.8,
            group_top + 1.6,
            f"{operand}[{'r' if operand == 'a' else 'c'}] (formats in the low bits)",
            ha="left",
            va="bottom",
            fontsize=FONT - 1,
        )
        s.wire([(0.8, group_top + 0.8), (1.8, group_top + 0.8), (1.8, ys[-1])], head=False)
        for y in ys:
            s.wire([(1.8, y), (ux - uw / 2, y)])
            s.wire([(ux + uw / 2, y), (mux_x - 1.25, y)])
        lo, hi = ys[-1] - uh / 2 - 0.5, ys[0] + uh / 2 + 0.5
        mid = (lo + hi) / 2
        s.mux(mux_x, mid, 2.5, hi - lo, facing="right")
        s.box(norm_x, mid, 6.8, 6.0, "one\nnormal-\nization", fill=SHARED, gid="unpack_shared", fontsize=FONT - 1)
        s.wire([(mux_x + 1.25, mid), (norm_x - 3.4, mid)])
        groups.append((mid, lo, hi))
    (a_y, _, a_hi), (b_y, b_lo, _) = groups
    mul_x, mul_y = 32.5, (a_y + b_y) / 2
    s.box(
        mul_x,
        mul_y,
        9.6,
        7.0,
        f"one multiplier\n{plan.sig_bits[0]} × {plan.sig_bits[1]}-bit\nsignificands",
        fill=SHARED,
    )
    for y, side in ((a_y, 1.5), (b_y, -1.5)):
        s.wire([(norm_x + 3.4, y), (26.6, y), (26.6, mul_y + side), (mul_x - 4.8, mul_y + side)])
    s.wire([(mux_x, a_hi + 2.2), (mux_x, a_hi)], **mode_kw)
    s.text(mux_x, a_hi + 3.0, "mode", color=MODE, fontsize=FONT - 1.5)
    if plan.product_rounders:
        note = "product rounders:\n" + "\n".join(plan.product_rounders)
    else:
        note = "fused in every mode:\nthe exact product"
    s.text(mul_x, mul_y - 5.6, note, fontsize=FONT - 1.5, va="top")

    # the product register also carries the step's draw and mode (and valid, last)
    code_y, draw_y, reg_x = 24.0, 16.0, 39.5
    s.register(reg_x, (draw_y - 1.5 + mul_y + 3.5) / 2, 1.1, mul_y + 3.5 - draw_y + 1.5)
    s.text(reg_x, mul_y + 6.0, "product register:\nterm, draw, mode", fontsize=FONT - 1.5)
    s.wire([(mul_x + 4.8, mul_y), (reg_x - 0.55, mul_y)])

    # the ring: the sum so far decoded in its mode's format (fields picked, one normalization), the shared
    # order/align, add and normalize, then one rounder for every mode: the sum placed on the mode's grid, rounded
    # by the mode's rule and encoded in its format (hls_gen.grid_place.place_modes, hls_gen.mode_round)
    row_y, ring_l, ring_r = 55.5, 43.0, 97.0
    acc_ys = _stack(
        s,
        48.5,
        row_y + 4.4,
        [f"{f} fields" for f in plan.acc_formats],
        w=8.2,
        h=3.4,
        gap=1.0,
        fill=PER_FORMAT,
        gid="unpack_acc",
    )
    amux_x, anorm_x = 55.0, 60.5
    alo, ahi = acc_ys[-1] - 2.1, acc_ys[0] + 2.1
    s.mux(amux_x, (alo + ahi) / 2, 2.4, ahi - alo, facing="right")
    for y in acc_ys:
        s.wire([(ring_l, y), (44.4, y)])
        s.wire([(52.6, y), (amux_x - 1.2, y)])
    s.box(anorm_x, row_y, 6.4, 7.5, "one\nnormal-\nization", fill=SHARED, fontsize=FONT - 1)
    s.wire([(amux_x + 1.2, row_y), (anorm_x - 3.2, row_y)])
    prev = anorm_x + 3.2
    for x, w, label in (
        (70.0, 8.6, f"order, align\n(window\n{plan.window_bits} bits)"),
        (80.0, 6.6, "add"),
        (90.0, 8.6, "normalize\n(leading\nzeros)"),
    ):
        s.box(x, row_y, w, 7.5, label, fill=SHARED)
        s.wire([(prev, row_y), (x - w / 2, row_y)])
        prev = x + w / 2
    s.wire([(reg_x + 0.55, mul_y), (41.5, mul_y), (41.5, 62.5), (70.0, 62.5), (70.0, row_y + 3.75)])
    s.text(41.0, 58.0, "term", ha="right", fontsize=FONT - 1)
    round_y, place_x, round_x, bw, bh = 42.0, 89.0, 74.0, 11.0, 6.4
    s.wire([(94.3, row_y), (ring_r, row_y), (ring_r, round_y), (place_x + bw / 2, round_y)])
    s.box(place_x, round_y, bw, bh, "place on the\nmode's grid\n(one shift)", fill=SHARED, gid="place")
    s.box(round_x, round_y, bw, bh, "round by the\nmode's rule,\nencode its code", fill=SHARED, gid="round")
    s.wire([(place_x - bw / 2, round_y), (round_x + bw / 2, round_y)])
    res_x = 64.0
    s.wire([(round_x - bw / 2, round_y), (res_x + 0.55, round_y)])
    s.register(res_x, round_y, 1.1, 9.0)
    s.text(res_x, round_y - 5.4, "result + its mode\n= acc, acc_mode", va="top", fontsize=FONT - 1.5)
    s.wire([(res_x - 0.55, round_y), (ring_l, round_y), (ring_l, acc_ys[0])], head=False)
    s.text(
        ring_l + 0.8,
        round_y + 2.0,
        "loop-back:\nthe slot's sum\nand its mode",
        ha="left",
        va="bottom",
        fontsize=FONT - 1.5,
    )

    # what the mode picks in the one rounder: each (accumulator, rounding)'s grid and rule, constants only
    grids = sorted(plan.rounders, key=lambda label: "stochastic" in label)
    gx, gy, gw = 87.5, 30.0, 19.0
    gh = 3.4 + 2.2 * len(grids)
    g_top = gy + gh / 2
    s.box(gx, gy, gw, gh, "", fill=PER_FORMAT)
    s.text(gx, g_top - 1.5, "each mode's grid, range, rule", fontsize=FONT - 1.5, color="#555555")
    for i, label in enumerate(grids):
        s.text(gx, g_top - 3.6 - 2.2 * i, label, fontsize=FONT - 1, gid="rounder")
    for x in (round_x + 4.5, place_x):
        s.wire([(x, g_top), (x, round_y - bh / 2)], width=0.8)

    # the LFSR steps each mode's count; the draw travels with its step to the rounder
    steps = ", ".join(str(k) for k in plan.lfsr_steps)
    s.box(29.0, draw_y, 16.0, 5.0, f"LFSR: steps ({steps})\nby mode code", fill=PER_FORMAT, gid="lfsr")
    if any("stochastic" in label for label in grids):
        s.wire([(37.0, draw_y), (round_x + 2.0, draw_y), (round_x + 2.0, round_y - bh / 2)], color=DRAWS, style="--")
        s.text(56.0, draw_y + 1.2, "the step's draw (its mode's bits) rides the cuts", color=DRAWS, fontsize=FONT - 1.5)

    # the mode code: operand multiplexers, the LFSR's count, then with the step round the ring
    s.text(0.8, code_y + 1.2, f"inp.payload.mode ({plan.mode_bits} bits)", ha="left", color=MODE, fontsize=FONT - 0.5)
    s.wire([(0.8, code_y), (reg_x - 0.55, code_y)], head=False, **mode_kw)
    s.wire([(mux_x, code_y), (mux_x, b_lo)], **mode_kw)
    s.wire([(29.0, code_y), (29.0, draw_y + 2.5)], **mode_kw)
    s.wire([(reg_x + 0.55, code_y), (round_x - 2.0, code_y), (round_x - 2.0, round_y - bh / 2)], **mode_kw)
    join = 46.5
    s.wire([(amux_x, code_y), (amux_x, alo)], **mode_kw)
    s.wire([(res_x, round_y + 4.5), (res_x, join), (amux_x, join)], head=False, **mode_kw)
    for x, y in ((mux_x, code_y), (29.0, code_y), (amux_x, code_y), (amux_x, join)):
        s.dot(x, y, MODE)
    s.text(
        amux_x - 0.8,
        join + 0.9,
        "the step's mode\n(a bubble: its slot's)",
        ha="right",
        va="bottom",
        color=MODE,
        fontsize=FONT - 1.5,
    )
    s.text(reg_x + 1.5, code_y - 1.3, "the step's mode rides the cuts", ha="left", color=MODE, fontsize=FONT - 1.5)

    # the modes
    lines = [f"{'code':<5} {'A × B':<14} {'accumulator, rounding':<22} runs"]
    for code, (m, uses) in enumerate(zip(plan.modes, plan.uses)):
        ab = f"{m.a_format.label} × {m.b_format.label}"
        acc = f"{m.acc_format.label}, {rounding_string(m.rand_bits)}"
        lines.append(f"{code:<5} {ab:<14} {acc:<22} {_uses(uses)}")
    s.text(44.0, 12.0, "\n".join(lines), ha="left", va="top", family="monospace", fontsize=FONT - 1.5, gid="modes")
    s.text(
        1.0,
        8.0,
        "The ring is cut as in the single-mode PE\n(LOOP_CUTS, not drawn here): the mode and\n"
        "the draw ride the cuts with their step.",
        ha="left",
        va="center",
        fontsize=FONT - 1,
    )
    return s


def _uses(uses: tuple[str, ...]) -> str:
    """``e4m3-sr forward``, ``bf16 forward, grad_input, grad_weight``."""
    names = list(dict.fromkeys(u.split("/")[0] for u in uses))
    kinds = [u.split("/")[1] for u in uses]
    return f"{' + '.join(names)} {', '.join(kinds)}"


# --- 3. the array -----------------------------------------------------------------------------------------------

#: The step control's fields (:data:`hls_gen.step.STEP_CONTROL`, ``mode`` added in a multi-mode array): the bundle
#: that enters with a beat (or a flush, or a bubble) and travels with ``A``.
CONTROL_FIELDS = ("valid", "last", "flush")
#: Colours of the array drawing: A and the step control moving right, B moving down, flushed sums and output data.
A_INK, B_INK, CONTROL_INK, OUT_INK = "#1f4e9c", "#2e7d32", MODE, "#b23c17"
#: What :func:`drawn_counts` counts, each per row, column or PE (the drawn patch's ``gid``: ``"<kind>:<index>"``).
DRAWN_KINDS = ("a_skew", "b_skew", "control_skew", "a_pe", "b_pe", "load", "slot")


@dataclass(frozen=True)
class ArrayGeometry:
    """Where the array drawing puts things: PE centres and size, where operands enter them, the edge."""

    rows: int
    cols: int
    pe_w: float
    pe_h: float
    x0: float  # centre of PE column 0
    y0: float  # centre of PE row 0 (rows go down)
    pitch_x: float
    pitch_y: float
    a_dy: float  # A enters a PE this far above its centre (on its left side)
    control_dy: float  # the step control, this far above its centre (on its left side)
    b_dx: float  # B enters a PE this far left of its centre (on its top)
    stream_bottom: float  # the input stream block's bottom edge (the payload's a leaves it there)
    stream_right: float  # ... and its right edge (its b leaves it there)
    a_bus_x: float  # the payload's a comes down at this x from the input stream
    b_bus_y: float  # the payload's b runs right along this y from the input stream
    b_decode_y: float  # centre of the B decoders (the A decoders sit at a_decode_x)
    a_decode_x: float
    control_x: float  # the step control's skew chain runs down at this x
    control_top: float  # ... from this y (where it leaves the step control block)
    skew_pitch: float = 2.2  # between skew registers
    reg: float = 1.2  # a skew register's side

    def centre(self, r: int, c: int) -> tuple[float, float]:
        return self.x0 + c * self.pitch_x, self.y0 - r * self.pitch_y

    def a_y(self, r: int) -> float:
        return self.centre(r, 0)[1] + self.a_dy

    def control_y(self, r: int) -> float:
        return self.centre(r, 0)[1] + self.control_dy

    def b_x(self, c: int) -> float:
        return self.centre(0, c)[0] - self.b_dx

    @property
    def left(self) -> float:
        """The PEs' left edge (column 0)."""
        return self.x0 - self.pe_w / 2

    @property
    def top(self) -> float:
        """The PEs' top edge (row 0)."""
        return self.y0 + self.pe_h / 2


def draw_operand_movement(s: Sheet, g: ArrayGeometry) -> None:
    """How operands reach the PEs (:class:`hls_gen.array.MACArray`): systolic, decoded once at the edge.

    The input payload's ``a[r]`` is decoded where it enters, then crosses ``r`` skew registers into PE ``(r, 0)`` and
    moves right, a register between neighbouring PEs; ``b[c]`` likewise crosses ``c`` skew
    registers into PE ``(0, c)`` and moves down. The step control leaves its block, one chain of ``rows - 1``
    registers down the left edge (row ``r`` taps it after ``r``), and moves right with ``A`` through the same
    registers. The registers' ``gid``s are ``"a_skew:<row>"``, ``"b_skew:<column>"``, ``"control_skew:<row>"`` (the
    one just before row ``r``), ``"a_pe:<row>"`` and ``"b_pe:<column>"`` (:func:`drawn_counts` counts them).
    """
    half_w, half_h, side = g.pe_w / 2, g.pe_h / 2, g.reg
    decode_w, decode_h = 7.0, 3.0
    decoder = "decode\n(per mode)"
    # the payload's a: down the left side, element r into its decoder, then r skew registers into PE (r, 0)
    s.wire([(g.a_bus_x, g.stream_bottom), (g.a_bus_x, g.a_y(g.rows - 1))], head=False, width=2.2, color=A_INK)
    s.text(g.a_bus_x + 0.5, g.stream_bottom - 1.05, f"a: {g.rows} × a", ha="left", fontsize=FONT - 1.5, color=A_INK)
    for r in range(g.rows):
        y = g.a_y(r)
        if r < g.rows - 1:
            s.dot(g.a_bus_x, y, A_INK)
        s.text(g.a_bus_x + 0.4, y + 0.9, f"a[{r}]", ha="left", fontsize=FONT - 1.5, color=A_INK)
        s.wire([(g.a_bus_x, y), (g.a_decode_x - decode_w / 2, y)], color=A_INK)
        s.box(g.a_decode_x, y, decode_w, decode_h, decoder, fill=PER_FORMAT, gid="decode", fontsize=FONT - 1.5)
        skew = [g.control_x - 2.0 - i * g.skew_pitch for i in range(r)][::-1]  # the last one nearest the PE
        x = g.a_decode_x + decode_w / 2
        for k in skew:
            s.wire([(x, y), (k - side / 2, y)], head=False, color=A_INK)
            s.register(k, y, side, side, gid=f"a_skew:{r}")
            x = k + side / 2
        s.wire([(x, y), (g.left, y)], color=A_INK)
    # the payload's b: right along the top, element c into its decoder, then c skew registers into PE (0, c)
    s.wire([(g.stream_right, g.b_bus_y), (g.b_x(g.cols - 1), g.b_bus_y)], head=False, width=2.2, color=B_INK)
    s.text(g.stream_right + 0.4, g.b_bus_y + 0.9, f"b: {g.cols} × b", ha="left", fontsize=FONT - 1.5, color=B_INK)
    for c in range(g.cols):
        x = g.b_x(c)
        if c < g.cols - 1:
            s.dot(x, g.b_bus_y, B_INK)
        s.text(x + 0.5, g.b_bus_y - 1.1, f"b[{c}]", ha="left", fontsize=FONT - 1.5, color=B_INK)
        s.wire([(x, g.b_bus_y), (x, g.b_decode_y + decode_h / 2)], color=B_INK)
        s.box(x, g.b_decode_y, decode_w, decode_h, decoder, fill=PER_FORMAT, gid="decode", fontsize=FONT - 1.5)
        y = g.b_decode_y - decode_h / 2
        for k in [g.top + 2.0 + i * g.skew_pitch for i in range(c)][::-1]:
            s.wire([(x, y), (x, k + side / 2)], head=False, color=B_INK)
            s.register(x, k, side, side, gid=f"b_skew:{c}")
            y = k - side / 2
        s.wire([(x, y), (g.b_x(c), g.top)], color=B_INK)
    # the step control: one skew chain down the left edge, row r's tap after r registers
    y = g.control_top
    for r in range(g.rows):
        if r:
            k = (g.control_y(r - 1) + g.control_y(r)) / 2
            s.wire([(g.control_x, y), (g.control_x, k + side / 2)], head=False, color=CONTROL_INK)
            s.register(g.control_x, k, side, side, gid=f"control_skew:{r}")
            y = k - side / 2
        s.wire([(g.control_x, y), (g.control_x, g.control_y(r)), (g.left, g.control_y(r))], color=CONTROL_INK)
        if r < g.rows - 1:
            s.dot(g.control_x, g.control_y(r), CONTROL_INK)
        y = g.control_y(r)
    # neighbour to neighbour: A and the control right, B down, one register per PE
    for r in range(g.rows):
        for c in range(g.cols):
            x, y = g.centre(r, c)
            if c < g.cols - 1:
                k = x + g.pitch_x / 2
                lo, hi = y + g.control_dy - 0.7, y + g.a_dy + 0.7
                for dy, ink in ((g.a_dy, A_INK), (g.control_dy, CONTROL_INK)):
                    s.wire([(x + half_w, y + dy), (k - 0.55, y + dy)], head=False, color=ink)
                    s.wire([(k + 0.55, y + dy), (k + g.pitch_x / 2 - half_w, y + dy)], color=ink)
                s.register(k, (lo + hi) / 2, 1.1, hi - lo, gid=f"a_pe:{r}")
            if r < g.rows - 1:
                bx, k = x - g.b_dx, y - half_h - 1.3
                s.wire([(bx, y - half_h), (bx, k + side / 2)], head=False, color=B_INK)
                s.register(bx, k, side, side, gid=f"b_pe:{c}")
                s.wire([(bx, k - side / 2), (bx, y - g.pitch_y + half_h)], color=B_INK)


def drawn_counts(sheet: Sheet, kind: str, n: int) -> list[int]:
    """How many patches of ``kind`` (one of :data:`DRAWN_KINDS`) the drawing has at each index ``0 .. n-1``.

    ``a_skew`` and ``a_pe`` count per row, ``b_skew`` and ``b_pe`` per column, ``control_skew`` per row (the
    chain's register just before that row's tap), ``load`` and ``slot`` per PE (``r * cols + c``: the register
    between the PE and its place in the output buffer, and that place's slots).
    """
    if kind not in DRAWN_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {list(DRAWN_KINDS)}")
    counts = [0] * n
    for patch in sheet.ax.patches:
        name, _, index = (patch.get_gid() or "").partition(":")
        if name == kind:
            counts[int(index)] += 1
    return counts


def array_dataflow_figure(rows: int = 4, cols: int = 4, interleave: int = 8, pipeline: int = 1) -> Sheet:
    """The output-stationary systolic array: operands in, ``interleave`` sums per PE, the buffer, both streams.

    ``pipeline`` (the PE's, ``--pipeline``, default 1) enters the latency the caption states (gid ``"latency"``).
    """
    from matplotlib.patches import Rectangle

    check_int(rows, "rows", 1, 4)
    check_int(cols, "columns", 1, 4)
    check_int(pipeline, "pipeline", 0, 2)
    L = loop_plan(interleave).interleave
    tile = rows * L
    s = Sheet("array_dataflow.png")
    s.text(
        50,
        s.height - 2.5,
        f"MAC array, {rows} x {cols} PEs, --interleave {L}: output-stationary and systolic, "
        f"a tile of {tile} x {cols} sums per job",
        fontsize=10.5,
        fontweight="bold",
    )
    stream_y = s.height - 10.0
    s.box(10.0, stream_y, 18.0, 6.5, "input stream inp\nvalid →   ← ready\npayload: a, b, last (mode)", fill=SHARED)
    g = ArrayGeometry(
        rows=rows,
        cols=cols,
        pe_w=9.0,
        pe_h=6.6,
        x0=26.5,
        y0=stream_y - 18.8,
        pitch_x=13.2,
        pitch_y=11.5,
        a_dy=1.8,
        control_dy=0.6,
        b_dx=3.2,
        stream_bottom=stream_y - 3.25,
        stream_right=19.0,
        a_bus_x=1.5,
        b_bus_y=stream_y - 1.5,
        b_decode_y=stream_y - 6.0,
        a_decode_x=8.7,
        control_x=20.2,
        control_top=stream_y - 10.5,
    )
    # the step control: made at the edge from the input's handshake, its last and mode and the flush's turn
    control_w, control_h = 15.0, 5.6
    control_x = 3.0 + control_w / 2
    s.wire([(control_x, g.stream_bottom), (control_x, g.control_top + control_h / 2)], color=CONTROL_INK)
    s.box(
        control_x,
        g.control_top,
        control_w,
        control_h,
        "step control\n" + "/".join(CONTROL_FIELDS) + "(/mode)\nflush: buffer free",
        fill=SHARED,
        gid="control",
        fontsize=FONT - 1.5,
    )
    s.wire([(control_x + control_w / 2, g.control_top), (g.control_x, g.control_top)], head=False, color=CONTROL_INK)

    # the PEs, each with its ring of sums and, below it, its own L slots of the output buffer
    slot_w = min(0.8, 6.4 / L)
    bus_y = [g.centre(r, 0)[1] - g.pe_h / 2 - 2.7 for r in range(rows)]
    for r in range(rows):
        for c in range(cols):
            x, y = g.centre(r, c)
            s.box(x, y, g.pe_w, g.pe_h, "", fill=LOGIC)
            s.text(x + 0.6, y + 2.2, f"PE {r},{c}", fontsize=FONT - 1, fontweight="bold")
            _ring_of_sums(s, x + 1.6, y - 0.7, L)
            right, top = x + g.pe_w / 2 - 0.3, y - g.pe_h / 2 - 1.0
            for l in range(L):
                s.ax.add_patch(
                    Rectangle(
                        (right - (L - l) * slot_w, top - 1.0),
                        slot_w,
                        1.0,
                        facecolor="#fbe4dd",
                        edgecolor="#8a8a8a",
                        lw=0.5,
                        gid=f"slot:{r * cols + c}",
                    )
                )
            # the flush: the PE's finished sum through its load register into its last slot, the slots shifting
            # towards the first
            s.wire([(right - slot_w / 2, y - g.pe_h / 2), (right - slot_w / 2, top)], color=OUT_INK, width=0.9)
            for i in range(BUFFER_STAGES):  # stacked in the gap between the PE and its slots
                height = 0.8 / BUFFER_STAGES
                y_reg = top + 0.1 + height * (i + 0.5)
                s.register(right - slot_w / 2, y_reg, 0.9, height * 0.85, gid=f"load:{r * cols + c}")
            mid = right - L * slot_w / 2
            s.wire([(mid, top - 1.0), (mid, bus_y[r])], color=OUT_INK, width=0.9, head=False)
            s.dot(mid, bus_y[r], OUT_INK)
    draw_operand_movement(s, g)

    # each PE row's first slots to the output multiplexer; tile row i is PE row i mod R's first slot after that
    # row's slots have shifted i div R times (once after each read)
    mux_x, mux_w, mux_h = 80.0, 3.5, 2.0 * rows + 2.0
    mux_y = sum(bus_y) / rows
    inputs = [mux_y + (rows - 1) - 2.0 * r for r in range(rows)]
    down = [r for r in range(rows) if bus_y[r] > inputs[r]]
    up = [r for r in range(rows) if r not in down]
    turn = {r: 73.5 + 1.3 * (len(down) - 1 - i) for i, r in enumerate(down)}
    turn.update({r: 73.5 + 1.3 * i for i, r in enumerate(up)})
    first = g.centre(0, 0)[0] + g.pe_w / 2 - 0.3 - L * slot_w / 2
    for r in range(rows):
        points = [(first, bus_y[r]), (turn[r], bus_y[r]), (turn[r], inputs[r]), (mux_x - mux_w / 2, inputs[r])]
        s.wire(points, color=OUT_INK, width=1.8)
    s.mux(mux_x, mux_y, mux_w, mux_h, facing="right")
    s.text(
        first - 0.5,
        bus_y[-1] - 0.6,
        f"a PE row's slots: {cols} × {L} sums",
        ha="left",
        va="top",
        fontsize=FONT - 1.5,
        color=OUT_INK,
    )
    select_y = mux_y - mux_h / 2 - 3.0
    s.wire([(mux_x, select_y), (mux_x, mux_y - mux_h / 2 + mux_h * 0.1)], width=0.9)
    s.text(
        mux_x,
        select_y - 0.4,
        f"row i: PE row\ni mod {rows}, slot 0\n(shifts once read)",
        va="top",
        fontsize=FONT - 1.5,
        gid="mux",
    )
    out_x, out_w = 93.75, 11.5
    s.wire([(mux_x + mux_w / 2, mux_y), (out_x - out_w / 2, mux_y)], width=2.2)
    s.text((mux_x + mux_w / 2 + out_x - out_w / 2) / 2, mux_y + 0.5, "data", va="bottom", fontsize=FONT - 1.5)
    s.box(
        out_x,
        mux_y,
        out_w,
        10.0,
        "output stream out\nvalid →\n← ready\npayload: data,\nrow, last (mode)",
        fill=SHARED,
        fontsize=FONT - 1.5,
    )
    s.text(
        out_x,
        mux_y - 5.6,
        f"out.valid once PE {rows - 1},{cols - 1}\nhas flushed its {L} sums",
        va="top",
        fontsize=FONT - 1.5,
    )
    _array_legend(s, 73.0, s.height - 6.5, L)

    # what the drawing says in words
    latency = array_latency(rows, cols, L, pipeline)
    notes_top = bus_y[-1] - 3.0
    s.text(
        1.5,
        notes_top,
        "Systolic: PE (r, c) takes beat n at cycle n + r + c. The PEs never stall (no array-wide enable); "
        "inp.ready is the only stall.",
        ha="left",
        va="top",
        fontweight="bold",
        fontsize=FONT - 0.5,
        gid="timing",
    )
    s.text(
        1.5,
        notes_top - 2.2,
        f"Latency from a job's last beat to out.valid (the buffer free): p + L + R + C{_stages_term()} = "
        f"{pipeline} + {L} + {rows} + {cols}{_stages_term()} = {latency} cycles at --pipeline {pipeline}.",
        ha="left",
        va="top",
        fontweight="bold",
        fontsize=FONT - 0.5,
        gid="latency",
    )
    s.text(
        1.5,
        notes_top - 4.4,
        f"Each PE holds {L} sums in its accumulate ring: beat t·{L} + l carries rows l·{rows} … l·{rows} + {rows - 1}"
        f" of A's column t, so PE (r, c) computes row l·{rows} + r, column c.\nA finished tile stays in the rings "
        f"until the output buffer is free; then {L} flush steps follow it through the same skew and each PE\nshifts "
        f"its {L} sums through {_registers()} of its own into its own {L} slots. Each operand is decoded once, "
        "where it enters: a multi-mode\narray decodes it in its job's mode (the input payload's), carried in the step "
        "control to the rounders and with the flushed sums to the output.",
        ha="left",
        va="top",
        fontsize=FONT - 0.5,
        linespacing=1.3,
    )
    return s


def _stages_term() -> str:
    """The buffer stages' part of the latency, ``p + L + R + C - 1 + BUFFER_STAGES``, as the drawing writes it."""
    extra = BUFFER_STAGES - 1
    return "" if extra == 0 else f" + {extra}" if extra > 0 else f" − {-extra}"


def _registers() -> str:
    return "a register" if BUFFER_STAGES == 1 else f"{BUFFER_STAGES} registers"


def _array_legend(s: Sheet, x: float, y: float, interleave: int) -> None:
    """The array drawing's key, from ``(x, y)`` down: its paths' colours and the register."""
    rows = [
        (A_INK, "A, decoded: right, a register per PE"),
        (CONTROL_INK, "step control: with A, the same registers"),
        (B_INK, "B, decoded: down, a register per PE"),
        (OUT_INK, f"flush: each PE's {interleave} sums, {_registers()}, its slots"),
        (None, "register (skew: r on row r's A,\nc on column c's B)"),
    ]
    for i, (ink, label) in enumerate(rows):
        ly = y - 2.3 * i
        if ink is None:
            s.register(x + 1.4, ly, 1.2, 1.2)
        else:
            s.wire([(x, ly), (x + 3.0, ly)], color=ink)
        s.text(x + 4.0, ly, label, ha="left", va="top" if "\n" in label else "center", fontsize=FONT - 1.5)


def _ring_of_sums(s: Sheet, x: float, y: float, count: int) -> None:
    """``count`` small cells round a circle: the sums a PE holds in turn."""
    import math

    from matplotlib.patches import Circle

    radius = 1.7
    s.ax.add_patch(Circle((x, y), radius, facecolor="none", edgecolor="#666666", lw=0.6))
    for i in range(count):
        angle = math.pi / 2 - 2 * math.pi * i / count
        s.ax.add_patch(
            Circle(
                (x + radius * math.cos(angle), y + radius * math.sin(angle)),
                0.42,
                facecolor="#f6c48f",
                edgecolor=INK,
                lw=0.4,
            )
        )


# --- the command ------------------------------------------------------------------------------------------------

#: Each drawing's file name and how to draw it for an interleave (the multi-mode PE does not draw its cuts).
FIGURES: dict[str, Callable[[int], Sheet]] = {
    "pe_pipeline.png": lambda interleave: pe_pipeline_figure(interleave),
    "modes_datapath.png": lambda interleave: modes_datapath_figure(),
    "array_dataflow.png": lambda interleave: array_dataflow_figure(interleave=interleave),
}


def draw_all(directory: Path, interleave: int = 8) -> list[Path]:
    """Write every drawing into ``directory`` (created if missing); returns the files written."""
    import matplotlib.style

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.style.context(["default", RC]):  # Matplotlib's defaults, whatever the local matplotlibrc says
        for name, draw in FIGURES.items():
            path = directory / name
            draw(interleave).save(path)
            written.append(path)
    return written


def _version(path: Path) -> str:
    """The Matplotlib version that wrote ``path`` (its PNG ``Software`` text), or ``"?"``."""
    from PIL import Image

    with Image.open(path) as image:
        return str(image.info.get("Software", "?")).split(",")[0].removeprefix("Matplotlib version")


def differences(directory: Path = FIGURE_DIR, interleave: int = 8) -> list[str]:
    """What differs between ``directory`` and a fresh drawing, pixel for pixel (empty when they agree)."""
    import matplotlib
    import numpy as np
    from matplotlib.image import imread

    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: imread(p) for p in draw_all(Path(tmp), interleave)}
    present = {p.name for p in directory.glob("*.png")} if directory.is_dir() else set()
    problems = [f"{name}: missing" for name in sorted(set(fresh) - present)]
    problems += [f"{name}: not drawn by hls_gen.drawings (stale)" for name in sorted(present - set(fresh))]
    for name in sorted(set(fresh) & present):
        old, new = imread(directory / name), fresh[name]
        if old.shape != new.shape:
            problems.append(f"{name}: {old.shape[1]} x {old.shape[0]} pixels, drawn {new.shape[1]} x {new.shape[0]}")
        elif not np.array_equal(old, new):
            changed = int(np.any(old != new, axis=-1).sum())
            line = f"{name}: {changed} pixels differ"
            written_by = _version(directory / name)
            if written_by != matplotlib.__version__:
                line += f" (drawn with Matplotlib {written_by}, this is {matplotlib.__version__})"
            problems.append(line)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hls_gen.drawings", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIGURE_DIR, help="folder of the PNGs (default: docs/figures)")
    parser.add_argument("--check", action="store_true", help="compare the folder with fresh drawings, write nothing")
    parser.add_argument(
        "--interleave", type=int, default=8, help="sums per PE of the PE and array drawings (default 8, as checked in)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.interleave <= MAX_INTERLEAVE:
        parser.error(f"--interleave must be 1..{MAX_INTERLEAVE}, not {args.interleave}")
    if args.check:
        problems = differences(args.out, args.interleave)
        for line in problems:
            print(line)
        return 1 if problems else 0
    for path in draw_all(args.out, args.interleave):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
