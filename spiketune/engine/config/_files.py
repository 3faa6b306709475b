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
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``), as JSON does,
    and refuses a key given twice in one mapping, where YAML would silently keep the last
    (``max_trials: 2`` then ``max_trials: 200`` would run 200 trials)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader says so itself
                    continue
                if first is not key_node:
                    where = _where(first.start_mark.line + 1, first.start_mark.column + 1)
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice (first at {where}); "
                        "keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


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


class _DuplicateKey(ValueError):
    """A JSON object names a key twice (``json`` would keep the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_json(text: str) -> Any:
    """JSON text as Python values; :class:`ParseError` if invalid or if an object names a key
    twice (with the place YAML's reader, for which JSON is a subset, finds for it)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise _json_error(exc) from None
    except _DuplicateKey as exc:
        read_yaml(text)  # raises with the line and column where it can
        raise ParseError(f"key {exc.args[0]!r} given twice in one object; keep one") from None


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
        return read_json(path.read_text(encoding=_UTF8))
    raise ValueError("the file name must end in .toml, .yaml, .yml or .json")


def read_space_file(path: Path) -> Any:
    """A search-space file: JSON first, then YAML (NNI accepts both for ``searchSpaceFile``).
    Raises ``OSError`` or :class:`ParseError` (with YAML's position: JSON is a subset)."""
    text = path.read_text(encoding=_UTF8)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, _DuplicateKey):
        return read_yaml(text)  # YAML's reader says where a JSON file repeats a key
