"""Settings files (.json, .yaml, .yml) read into a dict, with errors that name the file, the line and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["SUFFIXES", "read_mapping"]

SUFFIXES = (".json", ".yaml", ".yml")


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping in ``what`` file ``path``; ``ValueError``/``FileNotFoundError`` naming it otherwise.

    ``what`` says what the file is for ("precision config", "network file")
    in the message: ``network file 'net.yaml', line 3, column 9: expected ',' or ']'``.
    """
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{what} must be .json, .yaml or .yml, not {path.name!r}")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {str(path)!r} cannot be read: {error}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{what} {str(path)!r}, line {error.lineno}, column {error.colno}: {error.msg}") from None
    else:
        import yaml  # (a core dependency; imported here so that JSON users and --help never load it)

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ValueError(f"{what} {str(path)!r}{where}: {problem}") from None
    if not isinstance(data, dict):
        shown = repr(data) if len(repr(data)) <= 60 else repr(data)[:57] + "..."
        raise ValueError(f"{what} {str(path)!r} must hold a mapping (name: value settings), not {shown}")
    return data
