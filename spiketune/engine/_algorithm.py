"""What tuners and assessors share: names matched as users write them, arguments as values.

A tuner or an assessor is named in a configuration (``tuner = "TPE"``) and built once, from
arguments validated when the configuration is read. Users write the names as NNI, Optuna or
their own habit spells them, so names compare loosely (:func:`canonical_name`); configurations
compare tuners and assessors (a worker joining a study checks that its configuration matches),
so two with the same class and arguments are equal (:class:`ArgumentsOwner`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from spiketune.errors import ConfigError, Problem

__all__ = ["ArgumentsOwner", "canonical_name"]


class ArgumentsOwner:
    """Equality, hashing and ``repr`` from a validated pydantic ``args`` record."""

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
