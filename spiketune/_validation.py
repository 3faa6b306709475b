"""The one place where pydantic's validation errors become spiketune :class:`Problem` records.

Every package that validates user input with pydantic (the engine's configuration, tuner and
assessor arguments, hardware targets, SNN configs, dataset options) goes through
:func:`validate` or :func:`validate_args`, so pydantic's own error never leaks out and every
message reads the same way: one :class:`Problem` per offending key, naming the key as a dotted
path (``tuner_args.tpe_args.prior_weight``, ``search_space.x._value[1]``), the value given and
the rule in plain words (``must be >= 1``, ``unknown key; accepted: ...``).

A model validator that finds a problem across fields blames the one field it is about with
:func:`cross_field`, so the message names that field rather than the whole mapping.

This module is package-level on purpose: it depends on pydantic and :mod:`spiketune.errors`
only, never on the engine, so the hardware, SNN and data packages may use it too.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from spiketune.errors import ConfigError, Problem

__all__ = ["cross_field", "join", "problems_from", "rename", "validate", "validate_args"]

_M = TypeVar("_M", bound=BaseModel)

#: The error type of :func:`cross_field`.
_CROSS_FIELD = "cross_field"


def cross_field(field: str, value: Any, rule: str) -> PydanticCustomError:
    """The error a model validator raises to blame ``field`` (a key of the same mapping) for a
    problem found across fields; :func:`problems_from` reports it as ``Problem(field, value,
    rule)``."""
    return PydanticCustomError(
        _CROSS_FIELD, "{field}: {rule}", {"field": field, "value": value, "rule": rule}
    )


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
    if kind in ("string_type", "string_sub_type"):
        return "must be a string"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping"
    if kind in ("list_type", "tuple_type", "set_type", "frozen_set_type"):
        return "must be a list"
    if kind in ("path_type",):
        return "must be a path"
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


def _is_branch_tag(part: str | int) -> bool:
    """pydantic names union branches and validators in locations ("constrained-int",
    "literal['auto']", "function-after[...]"); field names are identifiers."""
    return isinstance(part, str) and not part.isidentifier()


def _model_at(model: type[BaseModel] | None, path: list[str | int]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for "accepted keys")."""
    for part in path:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model = _find_model(model.model_fields[part].annotation)
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _located(error: Mapping[str, Any]) -> tuple[list[str | int], Any]:
    """Where an error is (its path, branch tags dropped) and the value found there."""
    loc = list(error["loc"])
    if error["type"] == _CROSS_FIELD:
        ctx = error.get("ctx") or {}
        return [*(p for p in loc if not _is_branch_tag(p)), ctx["field"]], ctx.get("value")
    keep_last = error["type"] == "extra_forbidden" and loc
    last = loc[-1:] if keep_last else []
    loc = [p for p in (loc[:-1] if keep_last else loc) if not _is_branch_tag(p)] + last
    return loc, None if error["type"] == "missing" else error.get("input")


def problems_from(
    exc: ValidationError,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    extra_keys: Iterable[str] = (),
    root: str = "<root>",
) -> list[Problem]:
    """One Problem per offending key of a pydantic error, in plain words.

    ``prefix`` is put before every path (``"tuner_args"``); an error about the whole mapping is
    reported as ``prefix``, or as ``root`` when there is no prefix. The alternatives of a union
    are merged into one rule. ``model`` (plus ``extra_keys`` at the top level) supplies the
    accepted keys named by "unknown key" problems.
    """
    grouped: dict[str, list[tuple[Mapping[str, Any], list[str | int], Any]]] = {}
    for error in exc.errors():
        loc, value = _located(error)
        path = join([*(p for p in [prefix] if p), *loc]) or root
        grouped.setdefault(path, []).append((error, loc, value))
    problems = []
    for path, errors in grouped.items():
        rules: list[str] = []
        for error, loc, _ in errors:
            accepted: list[str] | None = None
            if error["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                if parent is not None:
                    accepted = list(parent.model_fields)
                    if not loc[:-1]:
                        accepted += list(extra_keys)
            rule = (error.get("ctx") or {})["rule"] if error["type"] == _CROSS_FIELD \
                else _rule(error, accepted)
            if rule not in rules:
                rules.append(rule)
        rule = rules[0] + "".join(
            ", or " + (r[len("must be "):] if r.startswith("must be ") else r) for r in rules[1:]
        )
        problems.append(Problem(path, errors[0][2], rule))
    return problems


def validate_args(
    model: type[_M], args: Mapping[str, Any], prefix: str
) -> tuple[_M | None, list[Problem]]:
    """Validate ``args`` with ``model``: (the model, []) or (None, the problems).

    Unknown keys name the accepted ones; every path starts with ``prefix``.
    """
    if not isinstance(args, Mapping):
        return None, [Problem(prefix or "<root>", args,
                              "must be a mapping of argument name to value")]
    try:
        return model.model_validate(dict(args)), []
    except ValidationError as exc:
        return None, problems_from(exc, prefix, model)


def validate(
    model: type[_M], values: Mapping[str, Any], *, root: str = "<root>",
    source: str | None = None,
) -> _M:
    """``model`` validated from ``values``, or :class:`ConfigError` listing every problem.

    ``root`` names the whole mapping in problems that are about no single key; ``source``
    (default: the model's name) says what was being validated.
    """
    source = source or model.__name__
    if not isinstance(values, Mapping):
        raise ConfigError(Problem(root, values, "must be a mapping of names to values"), source)
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, model=model, root=root), source) from None


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
