"""The declared search space of ``mpsim nas``: what a trial may sample, from a YAML/JSON file, checked up front.

A space file has three sections, each key optional (a missing key keeps
the default, today's space; ``mpsim nas --print-space`` prints it)::

    network:
      families: [mlp, cnn]
      mlp: {depth: {min: 0, max: 3}, width: {min: 16, max: 256, step: 16}}
      cnn: {depth: [1, 2], channels: [4, 8, 16, 32], kernel: [1, 3, 5]}
      operands: [mxfp8_e4m3, e4m3]          # one operand format for the whole network (MX formats only here)
    layer:
      operands: [e4m3, e5m2, {exp: [2, 5], man: [1, 3]}]   # or per layer (not with network.operands)
      accumulators: [fp16, {exp: [5, 8], man: [6, 10]}]
      roundings: [nearest, {stochastic: {min: 4, max: 12}}]
    array:
      sizes: [1x1, 4x4, 2x8]                # or rows: {min, max, step} and cols: ...
      interleave: [1, 8]
      pipeline: [1, 2]

Sizes are a list of integers, one integer, or a range ``{min, max, step}``
(sampled with ``suggest_int``). Format and rounding ranges (an ``eXmY``
range, a ``stochastic`` K range) are expanded into their members, one
categorical choice, so the parameter keeps one name. The space is checked
twice before any trial: :class:`SearchSpace` checks the values (no heavy
imports), :func:`check_hardware` checks that the generator builds every
array the space can produce, with the generator's own checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hls_gen.array_size import parse_array_size

__all__ = [
    "IntRange",
    "SearchSpace",
    "check_hardware",
    "choices",
    "load_space",
    "space_from_dict",
    "space_to_dict",
    "space_yaml",
]

ARCHS = ("mlp", "cnn")
SCOPES = ("layer", "network")


@dataclass(frozen=True)
class IntRange:
    """The integers ``min, min + step, ..., max`` (an Optuna int distribution)."""

    min: int
    max: int
    step: int = 1

    def __post_init__(self) -> None:
        for name in ("min", "max", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"range {name} must be an integer, not {value!r}")
        if self.step < 1:
            raise ValueError(f"range step must be at least 1, not {self.step}")
        if self.min > self.max:
            raise ValueError(f"empty range: min {self.min} > max {self.max}")
        # Optuna would move max silently onto the grid (with a warning); a space says what it samples
        if (self.max - self.min) % self.step:
            raise ValueError(f"range {self.min}..{self.max} does not end on a step of {self.step}")

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.min, self.max + 1, self.step))


#: A network size's choices: a categorical list or an int range.
IntChoices = tuple[int, ...] | IntRange


def choices(value: IntChoices) -> tuple[int, ...]:
    """Every value a size choice can take."""
    return value.values if isinstance(value, IntRange) else tuple(value)


#: SearchSpace field -> (its key in a space file, the least value a size may take).
_INT_FIELDS: dict[str, tuple[str, int]] = {
    "mlp_depths": ("network.mlp.depth", 0),
    "mlp_widths": ("network.mlp.width", 1),
    "cnn_depths": ("network.cnn.depth", 1),
    "cnn_channels": ("network.cnn.channels", 1),
    "cnn_kernels": ("network.cnn.kernel", 1),
    "array_rows": ("array.rows", 1),
    "array_cols": ("array.cols", 1),
    "interleaves": ("array.interleave", 1),
    "pipelines": ("array.pipeline", 0),
}


def _check_ints(value: object, least: int) -> None:
    if isinstance(value, IntRange):
        low = value.min
    elif isinstance(value, tuple) and value:
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
        if bad:
            raise ValueError(f"sizes must be integers, not {bad[0]!r}")
        low = min(value)
    else:
        raise ValueError(f"expected a non-empty tuple of integers or an IntRange, not {value!r}")
    if low < least:
        raise ValueError(f"sizes must be at least {least}, not {low}")


@dataclass(frozen=True)
class SearchSpace:
    """The choices a trial samples from (a tuple is a categorical choice, one entry fixes it; an
    :class:`IntRange` an int range). The defaults are the space of ``mpsim nas`` without a space file.

    ``mul`` holds the operand formats, sampled per layer (``mul_scope="layer"``) or once for the whole
    network (``"network"``; MX formats only so, as an MX array runs one arithmetic). The array is one of
    ``arrays`` (``"RxC"``), or, with ``arrays=()``, ``array_rows`` x ``array_cols``.
    """

    archs: tuple[str, ...] = ("mlp", "cnn")
    mlp_depths: IntChoices = (0, 1, 2)  # hidden layers
    mlp_widths: IntChoices = (16, 32, 64, 128)
    cnn_depths: IntChoices = (1, 2)  # convolutions before the classifier
    cnn_channels: IntChoices = (4, 8, 16)
    cnn_kernels: IntChoices = (1, 3, 5)
    mul: tuple[str, ...] = ("e4m3",)
    mul_scope: str = "layer"
    accs: tuple[str, ...] = ("e5m6", "fp16", "fp32")
    roundings: tuple[str, ...] = ("nearest", "stochastic:8")
    arrays: tuple[str, ...] = ("1x1", "4x4", "8x8")
    array_rows: IntChoices | None = None
    array_cols: IntChoices | None = None
    interleaves: IntChoices = (1,)
    pipelines: IntChoices = (1,)

    def __post_init__(self) -> None:
        # Values only: no Numba, torch or Amaranth (the command line checks its arguments before they load).
        from mpsim.formats import parse_format
        from mpsim.mx import is_mx_spec, parse_format_or_mx
        from mpsim.rounding import parse_rounding

        bad = [a for a in self.archs if a not in ARCHS] if isinstance(self.archs, tuple) else [self.archs]
        if bad or not self.archs:
            raise ValueError(f"architectures must be among mlp, cnn, not {list(self.archs)!r}")
        for name, (_, least) in _INT_FIELDS.items():
            value = getattr(self, name)
            if value is None and name in ("array_rows", "array_cols"):
                continue
            try:
                _check_ints(value, least)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        for name in ("mul", "accs", "roundings", "arrays"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a tuple of strings, not {value!r}")
            if not value and name != "arrays":
                raise ValueError(f"{name} must hold at least one choice")
        for fmt in self.mul:
            parse_format_or_mx(fmt)
        for acc in self.accs:
            parse_format(acc)
        for rounding in self.roundings:
            parse_rounding(rounding)
        if self.mul_scope not in SCOPES:
            raise ValueError(f"mul_scope must be layer or network, not {self.mul_scope!r}")
        mx = [f for f in self.mul if is_mx_spec(f)]
        if mx and self.mul_scope == "layer" and len(self.mul) > 1:
            raise ValueError(
                f"MX operand format {mx[0]} is a whole-network choice (an array runs one MX arithmetic, "
                "and no element format beside it): give it under network.operands"
            )
        for array in self.arrays:
            parse_array_size(array)
        sides = (self.array_rows is None, self.array_cols is None)
        if bool(self.arrays) == (sides != (True, True)) or sides[0] != sides[1]:
            raise ValueError("the array is one of arrays, or array_rows x array_cols: give exactly one of them")

    @property
    def max_layers(self) -> int:
        """The most GEMM layers a sampled network has (the classifier included)."""
        depths = [max(choices(getattr(self, f"{arch}_depths"))) for arch in self.archs]
        return max(depths) + 1


# ---------------------------------------------------------------------------------------------- the file format


class _SpaceError(ValueError):
    """A bad value at a key of the file (``where``: ``layer.accumulators``)."""


def _ints(value: object, where: str) -> IntChoices:
    """A list of integers, one integer, or ``{min, max, step}``."""
    if isinstance(value, dict):
        _keys(value, ("min", "max", "step"), where, required=("min", "max"))
        try:
            return IntRange(value["min"], value["max"], value.get("step", 1))
        except ValueError as error:
            raise _SpaceError(f"{where}: {error}") from None
    items = value if isinstance(value, list) else [value]
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, int)]
    if bad or not items:
        what = f"{bad[0]!r}" if bad else "an empty list"
        raise _SpaceError(f"{where}: expected integers, a list of them or {{min, max, step}}, not {what}")
    return tuple(dict.fromkeys(items))


def _bounds(value: object, where: str) -> tuple[int, int]:
    """``[lo, hi]``, ``{min, max}`` or one integer, for an ``eXmY`` range's exponent or significand bits."""
    if isinstance(value, dict):
        _keys(value, ("min", "max"), where, required=("min", "max"))
        value = [value["min"], value["max"]]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)):
        raise _SpaceError(f"{where}: expected [lo, hi], {{min, max}} or an integer, not {value!r}")
    lo, hi = value
    if lo > hi:
        raise _SpaceError(f"{where}: empty range: min {lo} > max {hi}")
    return lo, hi


def _formats(value: object, where: str) -> tuple[str, ...]:
    """Format names, and ``{exp: [lo, hi], man: [lo, hi]}`` ranges expanded into ``eXmY`` names."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _SpaceError(f"{where}: expected format names or {{exp, man}} ranges, not an empty list")
    out: list[str] = []
    for item in items:
        if isinstance(item, dict):
            _keys(item, ("exp", "man"), where, required=("exp", "man"))
            e_lo, e_hi = _bounds(item["exp"], f"{where}.exp")
            m_lo, m_hi = _bounds(item["man"], f"{where}.man")
            out += [f"e{e}m{m}" for e in range(e_lo, e_hi + 1) for m in range(m_lo, m_hi + 1)]
        elif isinstance(item, str):
            out.append(item.strip())
        else:
            raise _SpaceError(f"{where}: expected a format name or {{exp, man}}, not {item!r}")
    return tuple(dict.fromkeys(out))


def _roundings(value: object, where: str) -> tuple[str, ...]:
    """Rounding names, and ``{stochastic: {min, max, step}}`` (or a list of K) expanded into ``stochastic:K``."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _SpaceError(f"{where}: expected roundings, not an empty list")
    out: list[str] = []
    for item in items:
        if isinstance(item, dict):
            _keys(item, ("stochastic",), where, required=("stochastic",))
            out += [f"stochastic:{k}" for k in choices(_ints(item["stochastic"], f"{where}.stochastic"))]
        elif isinstance(item, str):
            out.append(item.strip())
        else:
            raise _SpaceError(f"{where}: expected a rounding or {{stochastic: {{min, max}}}}, not {item!r}")
    return tuple(dict.fromkeys(out))


def _strings(value: object, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    bad = [v for v in items if not isinstance(v, str)]
    if bad or not items:
        raise _SpaceError(f"{where}: expected names, not {bad[0] if bad else 'an empty list'!r}")
    return tuple(dict.fromkeys(v.strip() for v in items))


def _keys(data: dict[str, Any], known: tuple[str, ...], where: str, required: tuple[str, ...] = ()) -> None:
    for key in data:
        if key not in known:
            place = f"{where}.{key}" if where else str(key)
            raise _SpaceError(f"unknown key {place!r}: expected {', '.join(known)}")
    missing = [k for k in required if k not in data]
    if missing:
        raise _SpaceError(f"{where}: missing {missing[0]!r} (it takes {', '.join(known)})")


def _section(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        place = f"{where}.{key}" if where else key
        raise _SpaceError(f"{place}: expected a mapping, not {value!r}")
    return value


#: Which SearchSpace field each file key fills, and how it is read.
_READERS = {
    "archs": ("network.families", _strings),
    "mlp_depths": ("network.mlp.depth", _ints),
    "mlp_widths": ("network.mlp.width", _ints),
    "cnn_depths": ("network.cnn.depth", _ints),
    "cnn_channels": ("network.cnn.channels", _ints),
    "cnn_kernels": ("network.cnn.kernel", _ints),
    "accs": ("layer.accumulators", _formats),
    "roundings": ("layer.roundings", _roundings),
    "arrays": ("array.sizes", _strings),
    "array_rows": ("array.rows", _ints),
    "array_cols": ("array.cols", _ints),
    "interleaves": ("array.interleave", _ints),
    "pipelines": ("array.pipeline", _ints),
}


def _lookup(data: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def space_from_dict(data: dict[str, Any], source: str = "space") -> SearchSpace:
    """The :class:`SearchSpace` a space file's mapping declares; a one-line ``ValueError`` naming ``source``, the
    key and the bad value otherwise."""
    try:
        return _space_from_dict(data)
    except _SpaceError as error:
        raise ValueError(f"{source}: {error}") from None


def _space_from_dict(data: dict[str, Any]) -> SearchSpace:
    from mpsim.formats import parse_format
    from mpsim.mx import parse_format_or_mx
    from mpsim.rounding import parse_rounding

    _keys(data, ("network", "layer", "array"), "")
    network, layer, array = (_section(data, k, "") for k in ("network", "layer", "array"))
    _keys(network, ("families", "mlp", "cnn", "operands"), "network")
    _keys(_section(network, "mlp", "network"), ("depth", "width"), "network.mlp")
    _keys(_section(network, "cnn", "network"), ("depth", "channels", "kernel"), "network.cnn")
    _keys(layer, ("operands", "accumulators", "roundings"), "layer")
    _keys(array, ("sizes", "rows", "cols", "interleave", "pipeline"), "array")
    kwargs: dict[str, Any] = {}
    for name, (key, read) in _READERS.items():
        found, value = _lookup(data, key)
        if found:
            kwargs[name] = read(value, key)
    if "network.operands" in _flat_keys(data) and "layer.operands" in _flat_keys(data):
        raise _SpaceError("operands are chosen per network (network.operands) or per layer (layer.operands), not both")
    for key, scope in (("network.operands", "network"), ("layer.operands", "layer")):
        found, value = _lookup(data, key)
        if found:
            kwargs["mul"], kwargs["mul_scope"] = _formats(value, key), scope
    if ("array_rows" in kwargs) != ("array_cols" in kwargs):
        raise _SpaceError("array.rows and array.cols come together (or array.sizes alone)")
    if "array_rows" in kwargs:
        if "arrays" in kwargs:
            raise _SpaceError("array.sizes or array.rows and array.cols, not both")
        kwargs["arrays"] = ()
    # each value checked at its key, so that the message names it
    checks: list[tuple[str, tuple[str, ...], Any]] = [
        ("accs", kwargs.get("accs", ()), parse_format),
        ("roundings", kwargs.get("roundings", ()), parse_rounding),
        ("arrays", kwargs.get("arrays", ()), parse_array_size),
    ]
    mul_key = f"{kwargs.get('mul_scope', 'layer')}.operands"
    for fmt in kwargs.get("mul", ()):
        _at(mul_key, fmt, parse_format_or_mx)
    for name, values, parse in checks:
        for value in values:
            _at(_READERS[name][0], value, parse)
    for arch in kwargs.get("archs", ()):
        if arch not in ARCHS:
            raise _SpaceError(f"network.families: unknown family {arch!r}: expected mlp, cnn")
    try:
        return SearchSpace(**kwargs)
    except ValueError as error:
        field_name = str(error).partition(":")[0]
        key = _INT_FIELDS.get(field_name, (None,))[0]
        if key is not None:
            raise _SpaceError(f"{key}{str(error)[len(field_name) :]}") from None
        if field_name.startswith("MX operand format"):
            raise _SpaceError(f"layer.operands: {error}") from None
        raise _SpaceError(str(error)) from None


def _at(key: str, value: str, parse: Any) -> None:
    try:
        parse(value)
    except ValueError as error:
        raise _SpaceError(f"{key}: {error}") from None


def _flat_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        name = f"{prefix}{key}"
        out.add(name)
        if isinstance(value, dict):
            out |= _flat_keys(value, f"{name}.")
    return out


def load_space(path: str | Path) -> SearchSpace:
    """The :class:`SearchSpace` of a ``.yaml``/``.yml``/``.json`` space file (errors name the file and key)."""
    from mpsim.config_file import read_mapping

    return space_from_dict(read_mapping(path, "space file"), str(path))


def _ints_out(value: IntChoices) -> Any:
    if isinstance(value, IntRange):
        return {"min": value.min, "max": value.max, "step": value.step}
    return list(value)


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as a space file's mapping (:func:`space_from_dict` reads it back to an equal space)."""
    network: dict[str, Any] = {
        "families": list(space.archs),
        "mlp": {"depth": _ints_out(space.mlp_depths), "width": _ints_out(space.mlp_widths)},
        "cnn": {
            "depth": _ints_out(space.cnn_depths),
            "channels": _ints_out(space.cnn_channels),
            "kernel": _ints_out(space.cnn_kernels),
        },
    }
    layer: dict[str, Any] = {}
    (network if space.mul_scope == "network" else layer)["operands"] = list(space.mul)
    layer.update(accumulators=list(space.accs), roundings=list(space.roundings))
    array: dict[str, Any] = {}
    if space.arrays:
        array["sizes"] = list(space.arrays)
    else:
        array.update(rows=_ints_out(space.array_rows), cols=_ints_out(space.array_cols))  # type: ignore[arg-type]
    array.update(interleave=_ints_out(space.interleaves), pipeline=_ints_out(space.pipelines))
    return {"network": network, "layer": layer, "array": array}


def space_yaml(space: SearchSpace) -> str:
    """The space as a YAML space file (a template: ``mpsim nas --print-space > space.yaml``)."""
    import yaml

    return yaml.safe_dump(space_to_dict(space), sort_keys=False, default_flow_style=None, width=100)


# ---------------------------------------------------------------------------------------------- the hardware


def check_hardware(space: SearchSpace, lfsr_width: int = 32) -> None:
    """A ``ValueError`` naming the key and the value unless the generator builds every array ``space`` can produce.

    The generator's own checks, factor by factor: each operand format, accumulator and rounding
    (:func:`hls_gen.spec.operand_format`, :func:`~hls_gen.spec.float_format`, :func:`~hls_gen.spec.hw_rounding`),
    each combination of them (:func:`hls_gen.modes.check_mode`: NaN-capable accumulators), the array's sides,
    pipeline and interleave against its limits, an MX format built as a 1x1 array with each accumulator,
    rounding, pipeline and interleave, and the modes a per-layer choice of operands may need. Loads Amaranth
    (for the MX PE's limits).
    """
    from hls_gen.emit import ArrayConfig
    from hls_gen.modes import MAX_MODES, check_mode
    from hls_gen.mx_mac import mx_formats
    from hls_gen.spec import (
        MAX_ARRAY_SIDE,
        MAX_INTERLEAVE,
        MAX_PIPELINE,
        check_int,
        described,
        float_format,
        hw_rounding,
        operand_format,
    )
    from mpsim.mx import is_mx_spec

    mul_key = f"{space.mul_scope}.operands"
    elements = [f for f in space.mul if not is_mx_spec(f)]
    mx = [f for f in space.mul if is_mx_spec(f)]
    for fmt in elements:
        _hw(f"{mul_key} {fmt}", operand_format, fmt, "multiplier operand format")
    for acc in space.accs:
        _hw(f"layer.accumulators {acc}", float_format, acc, "accumulator format")
    for rounding in space.roundings:
        _hw(f"layer.roundings {rounding}", hw_rounding, rounding, "accumulator rounding", lfsr_width)
    for fmt in elements:
        for acc in space.accs:
            for rounding in space.roundings:
                where = f"{mul_key} {fmt} with layer.accumulators {acc} and layer.roundings {rounding}"
                _hw(
                    where,
                    lambda f, a, r: check_mode(
                        a_format=f,
                        b_format=f,
                        acc_format=a,
                        product_format=None,
                        rounding=r,
                        product_rounding="nearest",
                        lfsr_width=lfsr_width,
                    ),
                    fmt,
                    acc,
                    rounding,
                )
    sides = (
        [("array.sizes", a, parse_array_size(a)) for a in space.arrays]
        if space.arrays
        else [("array.rows", n, (n, 1)) for n in choices(space.array_rows)]  # type: ignore[arg-type]
        + [("array.cols", n, (1, n)) for n in choices(space.array_cols)]  # type: ignore[arg-type]
    )
    for key, shown, (rows, cols) in sides:
        _hw(f"{key} {shown}", check_int, rows, "MAC array rows", 1, MAX_ARRAY_SIDE)
        _hw(f"{key} {shown}", check_int, cols, "MAC array columns", 1, MAX_ARRAY_SIDE)
    if elements:
        for p in choices(space.pipelines):
            _hw(f"array.pipeline {p}", check_int, p, "MAC pipeline registers", 0, MAX_PIPELINE)
        for il in choices(space.interleaves):
            _hw(f"array.interleave {il}", check_int, il, "MAC interleave", 1, MAX_INTERLEAVE)
    first = dict(acc_format=space.accs[0], rounding=space.roundings[0])
    geometry = dict(pipeline=1, interleave=1)  # what every MX PE takes: each trial below varies one thing
    for fmt in mx:
        _hw(f"{mul_key} {fmt}", mx_formats, fmt)
        trials = [({"acc_format": acc}, f"layer.accumulators {acc}") for acc in space.accs]
        trials += [({"rounding": r}, f"layer.roundings {r}") for r in space.roundings]
        trials += [({"pipeline": p}, f"array.pipeline {p}") for p in choices(space.pipelines)]
        trials += [({"interleave": il}, f"array.interleave {il}") for il in choices(space.interleaves)]
        for change, where in trials:
            config = ArrayConfig(a_format=fmt, **{**first, **geometry, **change})  # type: ignore[arg-type]
            _hw(f"{mul_key} {fmt} with {where}", lambda c: described(c.build()), config)
    if space.mul_scope == "layer" and min(len(elements), space.max_layers) > MAX_MODES:
        raise ValueError(
            f"layer.operands: {len(elements)} operand formats per layer in networks of up to {space.max_layers} "
            f"layers may need more than the {MAX_MODES} modes an array runs; give fewer formats or shallower networks"
        )


def _hw(where: str, check: Any, *args: Any) -> None:
    try:
        check(*args)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def check_supernet_space(space: SearchSpace) -> None:
    """A one-line ``ValueError`` unless every network ``space`` produces is a subnetwork of its supernet
    (:mod:`hls_gen.supernet`): the elastic kernel takes the centre ``k x k`` of the largest kernel ``K``, which is
    centred only when ``K - k`` is even, and an even kernel with padding ``k // 2`` changes the map size the
    classifier reads; so CNN kernels must be odd."""
    if "cnn" in space.archs:
        even = [k for k in choices(space.cnn_kernels) if k % 2 == 0]
        if even:
            raise ValueError(
                f"estimator 'supernet' takes each kernel as the centre of the largest one, so CNN kernel sizes must "
                f"be odd, not {even[0]}"
            )
