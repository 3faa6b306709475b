"""Configuration files: spiketune's own schema in TOML, YAML or JSON, or an NNI v2 file.

:func:`load_config` reads the file, tells the two forms apart, translates the NNI form
(:mod:`._nni`), makes relative paths relative to the file, and builds the
:class:`ExperimentConfig`. Every problem names the key as the file spells it and comes in the
order of the file's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spiketune._validation import rename
from spiketune.engine.config import _nni
from spiketune.engine.config._files import ParseError, read_config_file
from spiketune.engine.config._prepare import top_key
from spiketune.engine.config._schema import (
    OWN_KEYS,
    ExperimentConfig,
    ordered,
    runnable_problems,
)
from spiketune.errors import ConfigError, Problem

__all__ = ["load_config"]

_OWN = frozenset(OWN_KEYS)
#: Keys of spiketune's own schema that hold paths, relative to the file.
_PATHS = ("trial_code_directory", "experiment_dir", "search_space_file")


def load_config(path: str | Path, *, python_trial: bool = False) -> ExperimentConfig:
    """Read an experiment configuration file: TOML/YAML in spiketune's schema, or NNI v2 YAML.

    The NNI form is recognised by its camelCase keys (or a ``tuner: {name: ...}`` mapping).
    Relative paths are relative to the file's directory. A file cannot carry a Python trial,
    so a missing ``trial_command`` is reported with the other problems unless
    ``python_trial`` says the caller provides one. Raises :class:`ConfigError` listing every
    problem with the keys as the file spells them; ``source`` is the file. A file that cannot
    be parsed is one problem that gives the line and column where the parser stopped.
    """
    path = Path(path).expanduser()
    source = str(path)
    raw = _read(path, source)
    base = path.absolute().parent
    if _nni.is_nni(raw, _OWN):
        data, names, problems = _nni.translate(raw, base, _OWN)
    else:
        data, names, problems = _from_own(raw, base), {}, []
    # problems of the translation already carry the file's spelling; the schema's are renamed
    schema = runnable_problems(data, python_trial)
    try:
        config = ExperimentConfig(**data)
    except ConfigError as exc:
        schema = exc.problems + schema
    problems += rename(ordered(schema), names)
    if problems:
        raise ConfigError(_in_file_order(problems, raw), source)
    return config


def _read(path: Path, source: str) -> Mapping[str, Any]:
    try:
        raw = read_config_file(path)
    except OSError as exc:
        raise ConfigError(Problem("config file", source,
                                  f"must be a readable file ({exc.strerror or exc})")) from None
    except ParseError as exc:
        raise ConfigError(Problem("config file", source, f"could not be parsed: {exc}"),
                          source) from None
    except ValueError as exc:
        raise ConfigError(Problem("config file", source, str(exc)), source) from None
    if not isinstance(raw, Mapping):
        raise ConfigError(Problem("config file", source, "must hold a mapping of key to value"),
                          source)
    return raw


def _in_file_order(problems: list[Problem], raw: Mapping[str, Any]) -> list[Problem]:
    """Problems sorted by where their key appears in the file (stable; others last)."""
    position = {str(key): i for i, key in enumerate(raw)}
    return sorted(problems, key=lambda p: position.get(top_key(p.field), len(position)))


def _from_own(raw: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """spiketune's own schema: the file's mapping, paths made relative to its directory."""
    data = dict(raw)
    for key in _PATHS:
        value = data.get(key)
        if isinstance(value, str):
            data[key] = base / Path(value).expanduser()
    data.setdefault("trial_code_directory", base)
    return data
