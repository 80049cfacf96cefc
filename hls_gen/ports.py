"""The MAC array's interface: two ``amaranth.lib.stream`` streams whose payloads are ``amaranth.lib.data`` layouts.

:class:`hls_gen.array.MACArray` takes input beats on the stream member
``inp`` and hands out rows of finished tiles on ``out``; each stream is
``valid``, ``ready`` and a ``payload`` struct (:func:`input_layout`,
:func:`output_layout`). Amaranth names a top-level port by its member path
joined with ``__`` (:func:`verilog_name`), so the Verilog has six stream
ports besides ``clk`` and ``rst``: ``inp__valid``, ``inp__ready``,
``inp__payload``, ``out__valid``, ``out__ready``, ``out__payload``. The
manifest lists each payload's leaf fields (:func:`layout_fields`), an
array field's elements as ``name[i]``, so a bench packs and unpacks a
payload by field name without a copy of the layout.
"""

from __future__ import annotations

from amaranth.hdl import Shape, ShapeLike
from amaranth.lib import data, stream

__all__ = [
    "INPUT",
    "OUTPUT",
    "input_layout",
    "input_signature",
    "layout_fields",
    "output_layout",
    "output_signature",
    "verilog_name",
]

#: The array's input stream member (``in`` is a Python keyword).
INPUT = "inp"
#: The array's output stream member.
OUTPUT = "out"


def input_layout(
    *, rows: int, cols: int, a_bits: int, b_bits: int, mode_bits: int = 0, scale_bits: int = 0
) -> data.StructLayout:
    """The payload of an input beat, fields from the least significant bit up.

    ``a``
        ``ArrayLayout(a_bits, rows)``: column ``t`` of ``A``, element ``r``
        for PE row ``r`` (an operand bit pattern, in the job's mode's format
        in the low bits for a multi-mode array).
    ``b``
        ``ArrayLayout(b_bits, cols)``: row ``t`` of ``B``, element ``c`` for
        PE column ``c``.
    ``last``
        The beat is the last (``K - 1``) of its job.
    ``mode``
        ``mode_bits`` wide, only for a multi-mode array (``mode_bits > 0``):
        the job's mode code, the same on each of its beats.
    ``a_scale``, ``b_scale``
        ``ArrayLayout(scale_bits, rows)`` and ``ArrayLayout(scale_bits, cols)``,
        only for an MX array (``scale_bits > 0``): the E8M0 scale codes of
        the blocks that ``a[r]`` and ``b[c]`` belong to (the same on each beat
        of a block).
    """
    fields: dict[str, ShapeLike] = {
        "a": data.ArrayLayout(a_bits, rows),
        "b": data.ArrayLayout(b_bits, cols),
        "last": 1,
    }
    if mode_bits:
        fields["mode"] = mode_bits
    if scale_bits:
        fields["a_scale"] = data.ArrayLayout(scale_bits, rows)
        fields["b_scale"] = data.ArrayLayout(scale_bits, cols)
    return data.StructLayout(fields)


def output_layout(*, cols: int, tile_rows: int, acc_bits: int, mode_bits: int = 0) -> data.StructLayout:
    """The payload of an output beat, one row of a finished tile, fields from the least significant bit up.

    ``data``
        ``ArrayLayout(acc_bits, cols)``: row ``row`` of ``C``, element ``c``
        for column ``c`` (an accumulator bit pattern, in the tile's mode's
        format in the low bits for a multi-mode array).
    ``row``
        ``range(max(tile_rows, 2))``: the row's index in its tile (one bit
        wide for a single row).
    ``last``
        The row is the tile's last (``tile_rows - 1``).
    ``mode``
        ``mode_bits`` wide, only for a multi-mode array: the tile's mode code.
    """
    fields: dict[str, ShapeLike] = {
        "data": data.ArrayLayout(acc_bits, cols),
        "row": range(max(tile_rows, 2)),
        "last": 1,
    }
    if mode_bits:
        fields["mode"] = mode_bits
    return data.StructLayout(fields)


def input_signature(**kwargs: int) -> stream.Signature:
    """``stream.Signature(input_layout(**kwargs))``: the array takes it as ``In``."""
    return stream.Signature(input_layout(**kwargs))


def output_signature(**kwargs: int) -> stream.Signature:
    """``stream.Signature(output_layout(**kwargs))``: the array drives it as ``Out``."""
    return stream.Signature(output_layout(**kwargs))


def verilog_name(*path: str) -> str:
    """The port Amaranth's Verilog back end names for a top-level member path: ``inp__payload`` for ``inp.payload``."""
    return "__".join(path)


def layout_fields(layout: data.Layout, prefix: str = "", offset: int = 0) -> tuple[tuple[str, int, int, bool], ...]:
    """Every leaf field of ``layout`` as ``(name, offset, width, signed)``, in bit order.

    A struct's fields are named by their names, an array's elements
    ``name[i]`` (as ``view.name[i]`` reads them); nested layouts are flattened.
    """
    out: list[tuple[str, int, int, bool]] = []
    for key, field in layout:
        name = f"{prefix}[{key}]" if isinstance(layout, data.ArrayLayout) else (f"{prefix}.{key}" if prefix else key)
        if isinstance(field.shape, data.Layout):
            out.extend(layout_fields(field.shape, name, offset + field.offset))
        else:
            shape = Shape.cast(field.shape)
            out.append((name, offset + field.offset, shape.width, shape.signed))
    return tuple(sorted(out, key=lambda f: f[1]))
