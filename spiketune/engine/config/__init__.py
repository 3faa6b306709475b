"""Experiment configuration: one schema, validated once, reached three ways.

1. Python: ``ExperimentConfig(name=..., trial_command=..., search_space={...}, ...)``;
2. a TOML or YAML file in spiketune's own snake_case schema (the field names of
   :class:`ExperimentConfig`, plus ``search_space_file``);
3. an NNI v2 ``config.yml``, read unchanged (camelCase keys; see :func:`load_config`).

Every input meets the same rules and fails with one :class:`ConfigError` that lists every
problem, each naming the key as the user spelled it, the value and the rule. Relative paths in
a file are relative to that file's directory; in Python, to the working directory. Durations
are stored in seconds and accept NNI's ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``.

Modules: ``_schema`` (the model and its field rules), ``_prepare`` (the rules across fields,
one function per step), ``_nni`` (everything NNI: one table from NNI key to handler),
``_files`` (parsing TOML, YAML, JSON with line and column in errors), ``_load``
(:func:`load_config`). Importing this package does not import Optuna or torch.
"""

from __future__ import annotations

from spiketune.engine.config._load import load_config
from spiketune.engine.config._schema import (
    DEFAULT_EXPERIMENTS_DIR,
    SESSION_FIELDS,
    WORKER_FIELDS,
    ExperimentConfig,
    PopulationSize,
    parse_duration,
)

__all__ = [
    "DEFAULT_EXPERIMENTS_DIR",
    "SESSION_FIELDS",
    "WORKER_FIELDS",
    "ExperimentConfig",
    "PopulationSize",
    "load_config",
    "parse_duration",
]
