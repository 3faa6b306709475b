"""The schema of an experiment: :class:`ExperimentConfig`, its fields and their rules.

Building one runs the preparation steps of :mod:`._prepare` (the rules across fields: the
search-space file, tuner and assessor, objectives, hardware), then pydantic's field rules, then
the last cross-field checks, and reports every problem of all three in one
:class:`ConfigError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from spiketune._validation import problems_from
from spiketune.engine import assessors, tuners
from spiketune.engine.config._prepare import prepare, top_key
from spiketune.engine.goals import DesignCheck, Goal, Objective
from spiketune.engine.space import SearchSpace
from spiketune.errors import ConfigError, Problem

__all__ = ["DEFAULT_EXPERIMENTS_DIR", "SESSION_FIELDS", "WORKER_FIELDS", "ExperimentConfig",
           "PopulationSize", "parse_duration"]

#: Where experiment directories go when ``experiment_dir`` is not set.
DEFAULT_EXPERIMENTS_DIR = Path("~/spiketune-experiments")

#: Fields each worker of a shared experiment sets for itself: they may differ between the
#: workers and the configuration stored with the study (paths differ between machines, and
#: so do GPUs and how many trials a machine runs at once).
WORKER_FIELDS = frozenset(
    {"experiment_dir", "trial_code_directory", "concurrency", "gpus", "require_gpus",
     "trials_per_gpu", "storage", "population", "population_group", "population_sizes"}
)

#: Fields a resumed session may change from the configuration stored with the study: the
#: worker fields, the budget (a search may be given more trials or time) and how lost trials
#: are retried and noticed. Every other field says what the study's trials are (their search
#: space, objectives and directions, constraints, the command that runs them, the tuner and
#: assessor that chose and judged them): changed, the study would hold trials of two
#: experiments, or values that fit none of its directions.
SESSION_FIELDS = WORKER_FIELDS | frozenset(
    {"max_trials", "max_duration", "max_trial_duration", "max_retries", "heartbeat_interval",
     "grace_period"}
)

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


_Count = Annotated[int, Strict(), Field(ge=1)]
_Duration = Annotated[float | None, BeforeValidator(parse_duration)]
_Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


def _gpus(value: Any) -> Any:
    """GPU indices from a list, one int, ``"0,1"`` (NNI's string form), ``"all"`` or
    ``"inherit"``."""
    if value is None or value in ("all", "inherit"):
        return value
    rule = ('must be a list of GPU indices (ints >= 0, no repeats), "0,1", "all" or '
            '"inherit"')
    if isinstance(value, bool):
        raise ValueError(rule)
    if isinstance(value, int):
        value = [value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise ValueError(rule)
        value = [int(p) for p in parts]
    if not isinstance(value, list | tuple):
        raise ValueError(rule)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(rule)
    if len(set(value)) != len(value):
        raise ValueError(rule)
    return list(value) or None


def _expand(value: Any) -> Any:
    if isinstance(value, str | Path):
        return Path(value).expanduser()
    return value


class PopulationSize(BaseModel):
    """One rule of ``population_sizes``: populations whose shared values match ``when`` take
    ``size`` members.

    ``when`` maps keys of ``population_group`` to a value: a plain value matches by equality,
    a nested choice by its option's name (``{"rule": "bptt"}``). A rule with several keys
    matches when all of them do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: dict[str, Any]
    size: _Count

    @field_validator("when")
    @classmethod
    def _when(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("name at least one key of population_group and its value")
        return value

    def matches(self, parameters: Mapping[str, Any]) -> bool:
        """Whether a leader's ``parameters`` (as a trial receives them) match ``when``."""
        return all(key in parameters and _shared_value(parameters[key]) == value
                   for key, value in self.when.items())


def _shared_value(value: Any) -> Any:
    """What a population shares of a parameter's value: a nested choice's option name."""
    return value["_name"] if isinstance(value, Mapping) and "_name" in value else value


class ExperimentConfig(BaseModel):
    """Everything an experiment needs, validated; build it like a dataclass.

    ``ExperimentConfig(...)`` raises :class:`ConfigError`, never pydantic's error. The model is
    frozen: change it with ``model_copy(update=...)`` only for values already validated.
    ``to_dict()`` is the canonical JSON form stored with the study; ``ExperimentConfig(**d)``
    reads it back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    #: Human name; the experiment id is ``<name>-<8 hex>``.
    name: str = "experiment"
    #: Root of experiment directories; None means ``~/spiketune-experiments``.
    experiment_dir: Annotated[Path | None, BeforeValidator(_expand)] = None
    #: Shell command that runs one trial, in ``trial_code_directory``; None for a Python trial.
    trial_command: str | None = None
    #: Working directory of trial processes.
    trial_code_directory: Annotated[Path, BeforeValidator(_expand)] = Path(".")
    #: NNI search space (validated by :meth:`SearchSpace.from_nni`), stored canonical.
    search_space: dict[str, Any]
    #: Tuner name (NNI or Optuna extra, see :mod:`spiketune.engine.tuners`), stored canonical.
    tuner: str = "TPE"
    tuner_args: dict[str, Any] = Field(default_factory=dict)
    #: Assessor name (see :mod:`spiketune.engine.assessors`) or None for no early stopping.
    assessor: str | None = None
    assessor_args: dict[str, Any] = Field(default_factory=dict)
    optimize_mode: Literal["maximize", "minimize"] = "maximize"
    #: Objectives by key of the final result, each with a direction; None = ``"default"`` in
    #: ``optimize_mode``. With more than one the study is multi-objective (Pareto front; no
    #: pruning assessor). ``optimize_mode`` then follows the first objective: set it only to
    #: that direction, or leave it out. See :mod:`spiketune.engine.goals`.
    objectives: list[Objective] | None = None
    #: Metrics of the final result, each with a direction, that the report's Pareto front sets
    #: against the objectives without the tuner optimising them: a search that spends every
    #: trial on accuracy still shows what each gain costs (``synops_per_sample``, energy).
    #: None = the front of the objectives alone. See :meth:`ExperimentResults.pareto_front`.
    tradeoffs: list[Objective] | None = None
    #: Hardware target every trial must fit, checked from its parameters before it starts:
    #: ``{"target": "xylo-audio2", "max_hidden": 500, "n_in": 12}`` (a target name, limits to
    #: override, network facts the search space does not give). Implies ``constraints``.
    hardware: dict[str, Any] | None = None
    #: Give the tuner the trials' constraint values (the ``"constraints"`` of their final
    #: results, the hardware check, the Silent assessor), so it learns to stay feasible.
    #: Implied by ``hardware`` and by the Silent assessor.
    constraints: Annotated[bool, Strict()] = False
    #: Trials to start at most (exact); None = until another limit ends the experiment.
    max_trials: _Count | None = None
    #: Seconds the experiment may run; None = no limit. No trial starts after it.
    max_duration: _Duration = None
    #: What reaching ``max_duration`` does to the trials still running. ``"stop"``: they are
    #: ended and recorded STOPPED (told the budget's end beforehand, so that a trial that
    #: watches it ends its training in time and completes). ``"finish"``: they run to their
    #: own end, still bounded by ``max_trial_duration`` and still ended by a stop (Ctrl-C,
    #: ``spiketune stop``); the experiment may then run past ``max_duration`` by up to one
    #: trial. ``"finish"`` is NNI's ``maxExperimentDuration``, which an NNI file sets.
    at_max_duration: Literal["stop", "finish"] = "stop"
    #: Seconds one trial may run before it is ended and recorded FAILED; None = no limit.
    max_trial_duration: _Duration = None
    #: Trials running at once; with ``population``, populations (processes) at once.
    concurrency: _Count = 1
    #: Population mode: up to this many trials trained together in one process of the trial
    #: command, which gets them from ``spiketune.trial.population()`` (a trial built on
    #: ``spiketune.snn`` trains them as one batched ``PopulationTrainer``). Each is still its
    #: own trial: reports, pruning, outcome, retries. None = one process per trial (any
    #: trial code, ``import nni``).
    population: _Count | None = None
    #: Population mode: top-level search-space keys whose values every member of a
    #: population shares with its first member (the others are drawn by the tuner as
    #: usual). Members that must share the shape of their computation to train as one
    #: batch (layer size, learning rule, batch size, encoding) then always can; a nested
    #: choice shares its option, not its sub-parameters.
    population_group: list[str] | None = None
    #: Population mode: sizes by shape. The first rule whose ``when`` matches the values a
    #: population shares (``population_group``) sets how many members it takes; ``population``
    #: for a population no rule matches. Why: batching pays for small networks and not for
    #: large ones on a CPU, and K trials of one expensive shape also take K of the tuner's
    #: draws, so a large network is better trained in a small population (even alone).
    #: ``[{when = {n_rec = 512}, size = 1}, {when = {n_rec = 256, rule = "bptt"}, size = 4}]``.
    population_sizes: list[PopulationSize] | None = None
    #: GPUs trials may use, one per trial: indices (each must exist when the experiment
    #: starts, else it does not start), ``"all"`` for every GPU found (none found: trials run
    #: on the CPU, with a notice), or None: trials see no GPU (``CUDA_VISIBLE_DEVICES=""``).
    #: ``"inherit"``: no GPU is given out, and trials see the GPUs the scheduler's process
    #: sees (its ``CUDA_VISIBLE_DEVICES``, or every GPU when unset), shared without limit;
    #: NNI's ``trialGpuNumber`` left out. Checked when the experiment starts, not here: a
    #: configuration may be written on a machine without the GPUs.
    gpus: Annotated[list[int] | Literal["all", "inherit"] | None,
                    BeforeValidator(_gpus)] = None
    #: With ``gpus = "all"``: at least one GPU must be found, else the experiment does not
    #: start (NNI's ``trialGpuNumber: 1`` sets it). Explicit indices are always required.
    require_gpus: Annotated[bool, Strict()] = False
    #: Trials that may share one GPU.
    trials_per_gpu: _Count = 1
    #: Known parameter sets to try first, in order, before the tuner draws (Optuna's
    #: ``enqueue_trial``): the trial of sequence number ``i`` receives ``start_with[i]``. A set
    #: may name only some keys of the search space; the tuner draws the others. Each value
    #: must be one the search space hands out. Use it to start from the defaults or from a
    #: configuration an earlier search found; resumed sessions and workers never run a set
    #: twice. Not with tuners that run fixed points (GridSearch, BruteForce, Batch).
    start_with: list[dict[str, Any]] | None = None
    #: Seed of the tuner's random draws (same seed, same sequence of parameters).
    seed: Annotated[int, Strict(), Field(ge=0, lt=2**32)] | None = None
    #: Optuna RDB storage URL; None = a SQLite file in the experiment directory. A password in
    #: it is used but never stored: :meth:`to_dict` drops it (give it through
    #: ``SPIKETUNE_DB_PASSWORD``, a password file or libpq's ``PGPASSWORD`` / ``~/.pgpass``).
    storage: str | None = None
    #: Times a trial lost with its worker (no heartbeat for ``grace_period``) is run again,
    #: with the same parameters, by a surviving worker. 0 = never.
    max_retries: Annotated[int, Strict(), Field(ge=0)] = 0
    #: Seconds between two heartbeats of a running trial (written by its scheduler).
    heartbeat_interval: _Seconds = 5.0
    #: Seconds without a heartbeat after which a running trial counts as lost with its worker.
    grace_period: _Seconds = 60.0

    _space: SearchSpace | None = PrivateAttr(default=None)
    _tuner: tuners.Tuner | None = PrivateAttr(default=None)
    _assessor: assessors.Assessor | None = PrivateAttr(default=None)
    _design: DesignCheck | None = PrivateAttr(default=None)

    def __init__(self, /, **data: Any) -> None:
        prepared = prepare(data)
        problems = list(prepared.problems)
        try:
            super().__init__(**prepared.data)
        except ValidationError as exc:
            problems += [
                p for p in problems_from(exc, model=ExperimentConfig,
                                         extra_keys=["search_space_file"])
                if top_key(p.field) not in prepared.reported
            ]
        else:
            problems += self._cross_field_problems()
        if problems:
            from spiketune.engine.storage import redact_url

            problems = [Problem(p.field, redact_url(p.value), p.rule)  # never its password
                        if p.field == "storage" and isinstance(p.value, str) else p
                        for p in problems]
            raise ConfigError(ordered(problems)) from None
        self._space, self._tuner = prepared.space, prepared.tuner
        self._assessor, self._design = prepared.assessor, prepared.design

    def _cross_field_problems(self) -> list[Problem]:
        problems = []
        if self.grace_period <= self.heartbeat_interval:
            problems.append(Problem(
                "grace_period", self.grace_period,
                f"must be longer than heartbeat_interval ({self.heartbeat_interval:g} s), or "
                "every trial would look lost between two heartbeats"))
        if self.require_gpus and self.gpus in (None, "inherit"):
            problems.append(Problem("require_gpus", True, "asks for GPUs, but gpus "
                                    f"{'is not set' if self.gpus is None else 'gives none out'}"
                                    ': set gpus to "all" or to GPU indices'))
        if self.population_group:
            if self.population is None:
                problems.append(Problem("population_group", self.population_group,
                                        "applies to population mode only: set population"))
            keys = set(self.search_space or {})
            for i, key in enumerate(self.population_group):
                if key not in keys:
                    problems.append(Problem(
                        f"population_group[{i}]", key,
                        f"a top-level key of the search space ({', '.join(sorted(keys))})"))
        problems += self._population_sizes_problems()
        return problems

    def _population_sizes_problems(self) -> list[Problem]:
        if not self.population_sizes:
            return []
        if self.population is None:
            return [Problem("population_sizes", [r.model_dump() for r in self.population_sizes],
                            "applies to population mode only: set population")]
        problems = []
        group = list(self.population_group or [])
        for i, rule in enumerate(self.population_sizes):
            for key, value in rule.when.items():
                field = f"population_sizes[{i}].when.{key}"
                if key not in group:
                    problems.append(Problem(field, value, "a key of population_group "
                                            f"({', '.join(group) or 'empty'}): only what a "
                                            "population shares can set its size"))
                    continue
                spec = (self.search_space or {}).get(key)
                if isinstance(spec, Mapping) and spec.get("_type") == "choice":
                    options = [_shared_value(v) for v in spec.get("_value") or []]
                    if value not in options:
                        problems.append(Problem(field, value, "one of the choice's options "
                                                f"({json.dumps(options)})"))
        return problems

    def population_size_of(self, parameters: Mapping[str, Any]) -> int:
        """How many members a population whose first member received ``parameters`` takes:
        the first matching rule of ``population_sizes``, else ``population`` (1 outside
        population mode)."""
        for rule in self.population_sizes or []:
            if rule.matches(parameters):
                return rule.size
        return self.population or 1

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> ExperimentConfig:
        """Same as ``ExperimentConfig(**obj)`` (so pydantic's error never leaks)."""
        if not isinstance(obj, Mapping):
            raise ConfigError(Problem("config", obj, "must be a mapping of key to value"))
        return cls(**obj)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """Read back a :meth:`to_dict` result (e.g. the copy stored with a study)."""
        return cls.model_validate(data)

    @classmethod
    def for_run(cls, *, python_trial: bool = False, **data: Any) -> ExperimentConfig:
        """Build a configuration that can run now: as the constructor, plus the checks of
        :meth:`check_runnable`, all reported in one :class:`ConfigError`."""
        runnable = runnable_problems(data, python_trial)
        try:
            config = cls(**data)
        except ConfigError as exc:
            raise ConfigError(ordered(exc.problems + runnable), exc.source) from None
        if runnable:
            raise ConfigError(runnable)
        return config

    # ---------------------------------------------------------------- field rules

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "/\\\0") or len(value) > 100:
            raise ValueError("must be 1 to 100 characters without '/', '\\' or NUL")
        return value

    @field_validator("trial_command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (or leave it out for a Python trial)")
        return value

    @field_validator("experiment_dir", "trial_code_directory")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(value).absolute()

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: list[Objective] | None) -> list[Objective] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one objective, or leave objectives out")
        keys = [o.key for o in value]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"each key once; repeated: {', '.join(repeated)}")
        if "constraints" in keys:
            raise ValueError("'constraints' is the final result's constraint values, not an "
                             "objective")
        return value

    @field_validator("tradeoffs")
    @classmethod
    def _tradeoffs(
        cls, value: list[Objective] | None, info: ValidationInfo
    ) -> list[Objective] | None:
        if not value:
            return None
        keys = [o.key for o in value]
        objectives = [o.key for o in info.data.get("objectives") or []] or ["default"]
        repeated = sorted({k for k in keys if keys.count(k) > 1 or k in objectives})
        if repeated:
            raise ValueError(f"each key once, none an objective; repeated: {', '.join(repeated)}")
        if "constraints" in keys:
            raise ValueError("'constraints' is the final result's constraint values, not a "
                             "metric to trade off")
        return value

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        from spiketune.engine.storage import check_url

        problem = None if value is None else check_url(value)
        if problem is not None:  # the problem never quotes the URL: it may hold a password
            raise ValueError(f"must be a database URL; {problem}")
        return value

    # ---------------------------------------------------------------- derived objects

    def space(self) -> SearchSpace:
        """The validated search space, including the tuner's constants (e.g. TRIAL_BUDGET)."""
        assert self._space is not None
        return self._space

    def create_tuner(self) -> tuners.Tuner:
        """The tuner named by ``tuner`` with ``tuner_args`` (validated already)."""
        assert self._tuner is not None
        return self._tuner

    def create_assessor(self) -> assessors.Assessor | None:
        """The assessor to use: the configured one, the tuner's own (Hyperband), or None."""
        if self._assessor is not None:
            return self._assessor
        return self.create_tuner().implied_assessor()

    @property
    def directions(self) -> list[str]:
        """Optuna study directions, one per objective."""
        if self.objectives:
            return [o.direction for o in self.objectives]
        return [self.optimize_mode]

    @property
    def constrained(self) -> bool:
        """Whether trials carry constraint values for the tuner (see :mod:`.goals`)."""
        return self.constraints or self.hardware is not None or isinstance(
            self._assessor, assessors.Silent)

    def goal(self) -> Goal:
        """The objectives and constraints, as the scheduler uses them."""
        objectives = self.objectives or [Objective(key="default", direction=self.optimize_mode)]
        assessor = self.create_assessor()
        judge = None
        if assessor is not None and type(assessor).judge is not assessors.Assessor.judge:
            judge = assessor.judge
        return Goal(tuple(objectives), self.constrained, self._design, judge)

    def gpu_indices(self, device_count: int) -> list[int]:
        """The GPU indices asked for, given how many GPUs the machine has (the experiment
        checks, when it starts, that the machine has them)."""
        if self.gpus in (None, "inherit"):
            return []
        if self.gpus == "all":
            return list(range(device_count))
        return list(self.gpus)

    def require_trial_command(self) -> str:
        """The trial command; :class:`ConfigError` when there is none (no Python trial given)."""
        if self.trial_command is None:
            raise ConfigError(
                Problem("trial_command", None, "required unless a Python callable is the trial")
            )
        return self.trial_command

    def check_runnable(self, *, python_trial: bool = False) -> None:
        """:class:`ConfigError` unless trials can start: a trial command (or a Python trial) and
        an existing trial code directory."""
        problems = runnable_problems(
            {"trial_command": self.trial_command,
             "trial_code_directory": self.trial_code_directory},
            python_trial,
        )
        if problems:
            raise ConfigError(problems)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form: durations in seconds, absolute paths, canonical names.

        A password in ``storage`` is left out (this form is written to files and the study).
        """
        data = self.model_dump(mode="json")
        for key in _OPTIONAL_IN_DICT:  # left out when unused: older stored forms compare equal
            if key in data and data[key] == type(self).model_fields[key].default:
                del data[key]
        if data.get("storage"):
            from spiketune.engine.storage import strip_password

            data["storage"] = strip_password(data["storage"])
        return data

    def differences_from(self, stored: Mapping[str, Any], *,
                         may_differ: frozenset[str] = WORKER_FIELDS) -> list[Problem]:
        """How this config differs from ``stored`` (a :meth:`to_dict`), the fields of
        ``may_differ`` aside (:data:`WORKER_FIELDS` for a worker that joins,
        :data:`SESSION_FIELDS` for a resumed session): one :class:`Problem` per differing
        field, naming both values."""
        mine = self.to_dict()
        problems = []
        for key in sorted(set(mine) | set(stored)):
            if key in may_differ or mine.get(key) == stored.get(key):
                continue
            problems.append(Problem(key, mine.get(key),
                                    f"differs from the experiment's stored value "
                                    f"{json.dumps(stored.get(key), sort_keys=True)}"))
        return problems


#: Every key a configuration in spiketune's own schema may hold, in schema order.
OWN_KEYS = [*ExperimentConfig.model_fields, "search_space_file"]
#: Fields :meth:`ExperimentConfig.to_dict` leaves out at their defaults (added after the
#: canonical form was first stored with studies).
_OPTIONAL_IN_DICT = ("objectives", "tradeoffs", "hardware", "constraints", "require_gpus",
                     "population", "population_group", "population_sizes", "start_with",
                     "at_max_duration")
_FIELD_ORDER = {name: i for i, name in enumerate(OWN_KEYS)}


def ordered(problems: list[Problem]) -> list[Problem]:
    """Problems in field order (stable), so messages read like the schema."""
    return sorted(problems, key=lambda p: _FIELD_ORDER.get(top_key(p.field), len(_FIELD_ORDER)))


def runnable_problems(data: Mapping[str, Any], python_trial: bool) -> list[Problem]:
    """What keeps trials from starting now: no trial command (unless ``python_trial``), or a
    trial code directory that does not exist."""
    command = data.get("trial_command")
    if command is None:
        if python_trial:
            return []
        return [Problem("trial_command", None,
                        "required: the shell command that runs one trial "
                        "(or give a Python callable as the trial)")]
    if not isinstance(command, str) or not command.strip():
        return []  # the schema reports it
    directory = data.get("trial_code_directory", Path("."))
    if isinstance(directory, str | Path):
        path = Path(directory).expanduser().absolute()
        if not path.is_dir():
            return [Problem("trial_code_directory", str(directory),
                            "must be an existing directory")]
    return []
