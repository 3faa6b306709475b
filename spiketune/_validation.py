"""Turning pydantic's validation errors into spiketune :class:`Problem` records.

pydantic never leaks out of spiketune: every ``ValidationError`` becomes one ``Problem`` per
error, naming the key (dotted path), the value and the rule in plain words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from spiketune.errors import Problem

__all__ = ["join", "parse_duration", "problems_from", "rename", "validate_args"]

_MISSING = object()


def join(path: Iterable[str | int]) -> str:
    """``("tuner_args", "x", 0)`` -> ``"tuner_args.x[0]"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _num(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _rule(error: Mapping[str, Any], accepted: Iterable[str] | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        keys = ", ".join(sorted(accepted or ()))
        return f"unknown key; accepted: {keys}" if keys else "unknown key"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind in ("string_type",):
        return "must be a string"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping"
    if kind in ("list_type",):
        return "must be a list"
    if kind == "greater_than_equal":
        return f"must be >= {_num(ctx['ge'])}"
    if kind == "greater_than":
        return f"must be > {_num(ctx['gt'])}"
    if kind == "less_than_equal":
        return f"must be <= {_num(ctx['le'])}"
    if kind == "less_than":
        return f"must be < {_num(ctx['lt'])}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", error["msg"])
    return str(error["msg"])


def problems_from(
    exc: ValidationError,
    prefix: str = "",
    accepted: Mapping[str, Iterable[str]] | Iterable[str] | None = None,
) -> list[Problem]:
    """One Problem per pydantic error; ``accepted`` names the keys valid at the top level
    (or per parent path, as a mapping) for "unknown key" messages."""
    problems = []
    seen: set[str] = set()
    for error in exc.errors():
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # unions add a branch name to the location ("list[int]", "str"); keep the first error only
        loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p in _TYPE_NAMES))]
        path = join([*(p for p in [prefix] if p), *loc])
        if path in seen:
            continue
        seen.add(path)
        keys = accepted.get(join(loc[:-1])) if isinstance(accepted, Mapping) else accepted
        problems.append(Problem(path, error.get("input", _MISSING) if error["type"] != "missing"
                                else None, _rule(error, keys)))
    return problems


_TYPE_NAMES = {"str", "int", "float", "bool", "none", "literal", "list", "dict", "lax-or-strict",
               "is-instance[Path]", "json-or-python"}


def validate_args(
    model: type[BaseModel], args: Mapping[str, Any], prefix: str
) -> tuple[BaseModel | None, list[Problem]]:
    """Validate ``args`` with ``model``; unknown keys name the accepted ones."""
    if not isinstance(args, Mapping):
        return None, [Problem(prefix, args, "must be a mapping of argument name to value")]
    try:
        return model.model_validate(dict(args)), []
    except ValidationError as exc:
        return None, problems_from(exc, prefix, list(model.model_fields))


def rename(problems: Iterable[Problem], names: Mapping[str, str]) -> list[Problem]:
    """Rewrite the first path segments of each problem's field with ``names``.

    The longest matching prefix wins: ``{"tuner_args": "tuner.classArgs"}`` turns
    ``tuner_args.seed`` into ``tuner.classArgs.seed``.
    """
    out = []
    for p in problems:
        field = p.field
        for old in sorted(names, key=len, reverse=True):
            if field == old or field.startswith(old + ".") or field.startswith(old + "["):
                field = names[old] + field[len(old):]
                break
        out.append(Problem(field, p.value, p.rule))
    return out


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float | None:
    """Seconds from ``30s`` / ``10m`` / ``2h`` / ``1d`` (NNI's spellings) or a number of seconds.

    ``None`` means no limit. Raises ``ValueError`` with the rule when the value is not a
    positive, finite duration.
    """
    if value is None:
        return None
    rule = 'must be a positive duration: a number of seconds or "30s", "10m", "2h", "1d"'
    if isinstance(value, bool):
        raise ValueError(rule)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(rule)
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    else:
        raise ValueError(rule)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(rule)
    return seconds
