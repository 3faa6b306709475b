"""Reading configuration and search-space files: TOML, YAML (safe), JSON.

A file that cannot be parsed raises :class:`ParseError`, whose message starts with the line
and column (counted from 1) where the parser stopped, so the user can go straight there.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ParseError", "read_config_file", "read_space_file"]


class ParseError(ValueError):
    """A file's text is not valid TOML, YAML or JSON; the message says where and why."""


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``), as JSON does."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)

_TOML_WHERE = re.compile(r"^(?P<why>.*?)\s*\(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _where(line: int, column: int) -> str:
    return f"line {line}, column {column}"


def _yaml_error(exc: yaml.YAMLError) -> ParseError:
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return ParseError(str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid")
    mark = exc.problem_mark
    text = f"{_where(mark.line + 1, mark.column + 1)}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        start = exc.context_mark
        text += f" ({exc.context} that starts at {_where(start.line + 1, start.column + 1)})"
    elif exc.context:
        text += f" ({exc.context})"
    return ParseError(text)


def _toml_error(exc: tomllib.TOMLDecodeError) -> ParseError:
    match = _TOML_WHERE.match(str(exc))
    if match is None:
        return ParseError(str(exc))
    return ParseError(f"{_where(int(match['line']), int(match['column']))}: {match['why']}")


def _json_error(exc: json.JSONDecodeError) -> ParseError:
    return ParseError(f"{_where(exc.lineno, exc.colno)}: {exc.msg}")


#: Configuration files are UTF-8; a byte-order mark (which Windows editors write) is skipped.
_UTF8 = "utf-8-sig"


def read_yaml(text: str) -> Any:
    """YAML text (safe: plain data only) as Python values; :class:`ParseError` if invalid."""
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None


def read_config_file(path: Path) -> Any:
    """The data of a configuration file, by its suffix: ``.toml``, ``.yaml``/``.yml`` or
    ``.json``. Raises ``OSError`` when it cannot be read, :class:`ParseError` when it cannot
    be parsed, ``ValueError`` for another suffix."""
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(path.read_text(encoding=_UTF8))
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(exc) from None
    if suffix in (".yaml", ".yml"):
        return read_yaml(path.read_text(encoding=_UTF8))
    if suffix == ".json":
        try:
            return json.loads(path.read_text(encoding=_UTF8))
        except json.JSONDecodeError as exc:
            raise _json_error(exc) from None
    raise ValueError("the file name must end in .toml, .yaml, .yml or .json")


def read_space_file(path: Path) -> Any:
    """A search-space file: JSON first, then YAML (NNI accepts both for ``searchSpaceFile``).
    Raises ``OSError`` or :class:`ParseError` (with YAML's position: JSON is a subset)."""
    text = path.read_text(encoding=_UTF8)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return read_yaml(text)
