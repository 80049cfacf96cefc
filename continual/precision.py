"""What a continual-learning run computes and stores in: arithmetic, weights, gradients, state, replay samples.

A :class:`CLPrecision` extends an mpsim :class:`~mpsim.precision.PrecisionConfig`
(the arithmetic of every layer: forward, input-gradient and weight-gradient
GEMMs) with the formats of what a continual learner *keeps* between steps:
the weights after each update, the gradients the optimizer reads, optimizer
and strategy state (momentum, EWC importances, GEM/SI anchors) and replay
samples. ``None`` everywhere means float32.

The presets are derived from mpsim's :data:`~mpsim.precision.PRECISION_PRESETS`,
never typed by hand: weights, gradients and state live in the format the
MAC array accumulates into (fp16 for ``e4m3*``, bf16 for ``e5m2*`` and
``bf16*``, e5m6 for ``e4m3-fp12*``), weight updates round like the GEMMs do
(nearest, or stochastic with 8 random bits for ``*-sr``), and replay samples
are stored in the activation format (what the first layer reads anyway).
MX presets keep their tensors fp32 and block them in each GEMM: their replay
samples are stored in the forward GEMM's MX format for its input, blocked along
the features (:func:`continual.convert.quantize_samples`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mpsim.formats import parse_format
from mpsim.mx import is_mx_spec, parse_mx_format
from mpsim.precision import PRECISION_PRESETS, PrecisionConfig, parse_precision
from mpsim.rounding import RoundingMode, parse_rounding

__all__ = ["CL_PRESETS", "CLPrecision", "label_order", "parse_cl_precision", "preset_names"]


def _check_format(value: str | None, what: str) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{what} format must be a format string or None, not {value!r}")
    try:
        if what == "buffer" and is_mx_spec(value):
            parse_mx_format(value)  # samples can be stored in MX blocks; weights and state are element formats
        else:
            parse_format(value)
    except ValueError as err:
        raise ValueError(f"{what} format: {err}") from None


@dataclass(frozen=True)
class CLPrecision:
    """A named precision for continual learning: layer arithmetic plus storage formats.

    Parameters
    ----------
    name : str
        Label used in logs, switch records and results tables.
    layers : PrecisionConfig
        Arithmetic of every ``QLinear``/``QConv2d`` (see :mod:`mpsim.precision`).
    weight : str or None
        Format the weights are stored in; every optimizer step is rounded into it.
    update_rounding : str
        Rounding of that write-back (``"nearest"``, ``"stochastic:8"``, ...).
    grad : str or None
        Format of the gradients the optimizer reads (after GEM/AGEM projections).
    state : str or None
        Format of optimizer state (momentum, Adam moments) and strategy state
        (EWC/SI importances and anchors, GEM/AGEM memories' features are samples).
    buffer : str or None
        Format replay samples are stored in (Replay, GEM, AGEM memories); an
        element format or an MX format (blocked along the features).
    """

    name: str
    layers: PrecisionConfig = field(default_factory=PrecisionConfig)
    weight: str | None = None
    update_rounding: str = "nearest"
    grad: str | None = None
    state: str | None = None
    buffer: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"precision name must be a non-empty string, not {self.name!r}")
        if not isinstance(self.layers, PrecisionConfig):
            raise ValueError(f"layers must be a PrecisionConfig, not {self.layers!r}")
        for what in ("weight", "grad", "state", "buffer"):
            _check_format(getattr(self, what), what)
        if not isinstance(self.update_rounding, str):
            raise ValueError(f"update_rounding must be a rounding string, not {self.update_rounding!r}")
        try:
            parse_rounding(self.update_rounding)
        except ValueError as err:
            raise ValueError(f"update_rounding: {err}") from None

    @classmethod
    def from_config(cls, name: str, config: PrecisionConfig) -> CLPrecision:
        """Storage formats derived from a layer config as the presets derive them (see module doc)."""
        layer = config.default
        gemm = layer.forward
        store = gemm.acc if gemm.emulate and gemm.acc != "fp32" else None
        stochastic = parse_rounding(gemm.rounding).mode is RoundingMode.STOCHASTIC
        return cls(
            name=name,
            layers=config,
            weight=store,
            update_rounding=gemm.rounding if stochastic else "nearest",
            grad=store,
            state=store,
            buffer=layer.activation.format if gemm.mx_formats is None else str(gemm.mx_formats[0]),
        )

    def with_seed(self, seed: int) -> CLPrecision:
        """The same precision with the layers' random streams seeded from ``seed``."""
        return replace(self, layers=self.layers.with_seed(seed))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layers": self.layers.to_dict(),
            "weight": self.weight,
            "update_rounding": self.update_rounding,
            "grad": self.grad,
            "state": self.state,
            "buffer": self.buffer,
        }


#: Every mpsim precision preset with its derived storage formats.
CL_PRESETS: dict[str, CLPrecision] = {
    name: CLPrecision.from_config(name, cfg) for name, cfg in PRECISION_PRESETS.items()
}


def preset_names() -> list[str]:
    return list(CL_PRESETS)


def label_order(label: str) -> tuple[int, str]:
    """Sort key for precision labels in tables and plots: presets in :data:`CL_PRESETS` order, then others by name."""
    names = preset_names()
    return (names.index(label), label) if label in names else (len(names), label)


def parse_cl_precision(spec: str | CLPrecision | PrecisionConfig | dict[str, Any]) -> CLPrecision:
    """A preset name, a CLPrecision, or what :func:`mpsim.precision.parse_precision` reads (a .json/.yaml path, ...)."""
    if isinstance(spec, CLPrecision):
        return spec
    if isinstance(spec, str) and spec in CL_PRESETS:
        return CL_PRESETS[spec]
    config = parse_precision(spec)  # raises ValueError naming the bad value
    name = spec if isinstance(spec, str) else "custom"
    return CLPrecision.from_config(name, config)
