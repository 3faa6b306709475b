"""Turning pydantic's validation errors into spiketune :class:`Problem` records.

pydantic never leaks out of spiketune: every ``ValidationError`` becomes one ``Problem`` per
error, naming the key (dotted path), the value and the rule in plain words.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from spiketune.errors import ConfigError, Problem

__all__ = ["join", "parse_duration", "problems_from", "rename", "validate_args"]

class ArgumentsOwner:
    """Equality, hashing and ``repr`` from a validated pydantic ``args`` record.

    Tuners and assessors are values: two with the same class and arguments are the same
    (configs compare them, and a worker joining a study checks that its config matches).
    """

    args: BaseModel

    def arguments(self) -> dict[str, Any]:
        """The validated arguments, as given (defaults left out)."""
        return self.args.model_dump(mode="json", exclude_unset=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.arguments()})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArgumentsOwner):
            return NotImplemented
        return type(self) is type(other) and self.args == other.args

    def __hash__(self) -> int:
        return hash((type(self), repr(self.args)))


def canonical_name(
    kind: str,
    name: object,
    accepted: Iterable[str],
    *,
    suffixes: tuple[str, ...],
    aliases: Mapping[str, str],
    refused: Mapping[str, tuple[str, list[str]]],
) -> str:
    """The canonical spelling of a tuner or assessor ``name`` (``kind`` says which).

    Names compare without case, punctuation or a trailing ``suffixes`` word (``TPETuner``,
    ``tpe``, ``TPE_sampler`` are one name), as NNI and Optuna users write them. ``aliases`` map
    such keys to canonical names; ``refused`` maps a key to (why, alternatives). Anything else
    is a :class:`ConfigError` that names the accepted names.
    """

    def key_of(text: str) -> str:
        key = re.sub(r"[^a-z0-9]", "", text.lower())
        for suffix in suffixes:
            if key.endswith(suffix) and key != suffix:
                key = key[: -len(suffix)]
        return key

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(Problem(kind, name, f"must be {'an' if kind[0] in 'aeiou' else 'a'} "
                                              f"{kind} name"))
    accepted = list(accepted)
    key = key_of(name)
    for canonical in accepted:
        if key_of(canonical) == key:
            return canonical
    if key in aliases:
        return aliases[key]
    if key in refused:
        reason, alternatives = refused[key]
        raise ConfigError(
            Problem(kind, name, f"not supported: {reason}; use one of {', '.join(alternatives)}")
        )
    raise ConfigError(Problem(kind, name, f"unknown {kind}; accepted: {', '.join(accepted)}"))


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
    if kind in ("list_type",):
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


def problems_from(
    exc: ValidationError,
    prefix: str = "",
    model: type[BaseModel] | None = None,
    extra_keys: Iterable[str] = (),
) -> list[Problem]:
    """One Problem per offending key of a pydantic error, in plain words.

    The alternatives of a union are merged into one rule. ``model`` (plus ``extra_keys`` at
    the top level) supplies the accepted keys named by "unknown key" problems.
    """
    grouped: dict[str, list[tuple[Mapping[str, Any], list[str | int]]]] = {}
    for error in exc.errors():
        loc = list(error["loc"])
        keep_last = error["type"] == "extra_forbidden" and loc
        last = loc[-1:] if keep_last else []
        loc = [p for p in (loc[:-1] if keep_last else loc) if not _is_branch_tag(p)] + last
        path = join([*(p for p in [prefix] if p), *loc])
        grouped.setdefault(path, []).append((error, loc))
    problems = []
    for path, errors in grouped.items():
        rules: list[str] = []
        for error, loc in errors:
            accepted: list[str] | None = None
            if error["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                if parent is not None:
                    accepted = list(parent.model_fields)
                    if not loc[:-1]:
                        accepted += list(extra_keys)
            rule = _rule(error, accepted)
            if rule not in rules:
                rules.append(rule)
        rule = rules[0] + "".join(
            ", or " + (r[len("must be "):] if r.startswith("must be ") else r) for r in rules[1:]
        )
        first = errors[0][0]
        value = None if first["type"] == "missing" else first.get("input")
        problems.append(Problem(path, value, rule))
    return problems


def validate_args(
    model: type[BaseModel], args: Mapping[str, Any], prefix: str
) -> tuple[BaseModel | None, list[Problem]]:
    """Validate ``args`` with ``model``; unknown keys name the accepted ones."""
    if not isinstance(args, Mapping):
        return None, [Problem(prefix, args, "must be a mapping of argument name to value")]
    try:
        return model.model_validate(dict(args)), []
    except ValidationError as exc:
        return None, problems_from(exc, prefix, model)


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
