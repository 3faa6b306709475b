"""Experiment configuration: one schema, validated once, reached three ways.

1. Python: ``ExperimentConfig(name=..., trial_command=..., search_space={...}, ...)``;
2. a TOML or YAML file in spiketune's own snake_case schema (the field names below, plus
   ``search_space_file``);
3. an NNI v2 ``config.yml``, read unchanged (camelCase keys; see :func:`load_config`).

Every input meets the same rules and fails with one :class:`ConfigError` that lists every
problem, each naming the key as the user spelled it, the value and the rule. Relative paths in
a file are relative to that file's directory; in Python, to the working directory. Durations
are stored in seconds and accept NNI's ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``.

Importing this module does not import Optuna or torch.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    field_validator,
)

from spiketune._validation import parse_duration, problems_from, rename
from spiketune.engine import assessors, tuners
from spiketune.engine.goals import DesignCheck, Goal, Objective, make_design_check
from spiketune.engine.space import SearchSpace
from spiketune.errors import ConfigError, Problem

__all__ = ["DEFAULT_EXPERIMENTS_DIR", "WORKER_FIELDS", "ExperimentConfig", "load_config"]

#: Where experiment directories go when ``experiment_dir`` is not set.
DEFAULT_EXPERIMENTS_DIR = Path("~/spiketune-experiments")

_Count = Annotated[int, Strict(), Field(ge=1)]


def _duration(value: Any) -> Any:
    return parse_duration(value)


_Duration = Annotated[float | None, BeforeValidator(_duration)]
_Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]

#: Fields each worker of a shared experiment sets for itself: they may differ between the
#: workers and the configuration stored with the study (paths differ between machines, and
#: so do GPUs and how many trials a machine runs at once).
WORKER_FIELDS = frozenset(
    {"experiment_dir", "trial_code_directory", "concurrency", "gpus", "trials_per_gpu", "storage"}
)


def _gpus(value: Any) -> Any:
    """GPU indices from a list, one int, ``"0,1"`` (NNI's string form) or ``"all"``."""
    if value is None or value == "all":
        return value
    rule = 'must be a list of GPU indices (ints >= 0, no repeats), "0,1" or "all"'
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
    #: Hardware target every trial must fit, checked from its parameters before it starts:
    #: ``{"target": "xylo-audio2", "max_hidden": 500, "n_in": 12}`` (a target name, limits to
    #: override, network facts the search space does not give). Implies ``constraints``.
    hardware: dict[str, Any] | None = None
    #: Give the tuner the trials' constraint values (the ``"constraints"`` of their final
    #: results, the hardware check, the Silent assessor), so it learns to stay feasible.
    #: Implied by ``hardware`` and by the Silent assessor.
    constraints: bool = False
    #: Trials to start at most (exact); None = until another limit ends the experiment.
    max_trials: _Count | None = None
    #: Seconds the experiment may run; None = no limit.
    max_duration: _Duration = None
    #: Seconds one trial may run before it is ended and recorded FAILED; None = no limit.
    max_trial_duration: _Duration = None
    #: Trials running at once.
    concurrency: _Count = 1
    #: GPU indices trials may use (one per trial), ``"all"`` for every visible GPU, or None:
    #: trials see no GPU.
    gpus: Annotated[list[int] | Literal["all"] | None, BeforeValidator(_gpus)] = None
    #: Trials that may share one GPU.
    trials_per_gpu: _Count = 1
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
        prepared, problems, built, design = _prepare(data)
        try:
            super().__init__(**prepared)
        except ValidationError as exc:
            flagged = {p.field.split(".")[0].split("[")[0] for p in problems}
            problems += [
                p for p in problems_from(exc, model=ExperimentConfig,
                                         extra_keys=["search_space_file"])
                if p.field.split(".")[0].split("[")[0] not in flagged
            ]
        else:
            problems += self._cross_field_problems()
        if problems:
            raise ConfigError(_ordered(problems)) from None
        self._space, self._tuner, self._assessor = built
        self._design = design

    def _cross_field_problems(self) -> list[Problem]:
        if self.grace_period <= self.heartbeat_interval:
            return [Problem("grace_period", self.grace_period,
                            f"must be longer than heartbeat_interval ({self.heartbeat_interval:g} "
                            "s), or every trial would look lost between two heartbeats")]
        return []

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
        runnable = _runnable_problems(data, python_trial)
        try:
            config = cls(**data)
        except ConfigError as exc:
            raise ConfigError(_ordered(exc.problems + runnable), exc.source) from None
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

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z][a-z0-9+.-]*://", value):
            raise ValueError("must be an RDB URL such as sqlite:///path/study.db or "
                             "postgresql://user@host/db")
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
        """The GPU indices trials may use, given how many GPUs the machine has."""
        if self.gpus is None:
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
        problems = _runnable_problems(
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
            if data.get(key) in (None, False):
                data.pop(key, None)
        if data.get("storage"):
            from spiketune.engine.storage import strip_password

            data["storage"] = strip_password(data["storage"])
        return data

    def differences_from(self, stored: Mapping[str, Any]) -> list[Problem]:
        """How this config differs from ``stored`` (a :meth:`to_dict`), :data:`WORKER_FIELDS`
        aside: one :class:`Problem` per differing field, naming both values."""
        mine = self.to_dict()
        problems = []
        for key in sorted(set(mine) | set(stored)):
            if key in WORKER_FIELDS or mine.get(key) == stored.get(key):
                continue
            problems.append(Problem(key, mine.get(key),
                                    f"differs from the experiment's stored value "
                                    f"{json.dumps(stored.get(key), sort_keys=True)}"))
        return problems


# ==================================================================== validation steps

_OWN_KEYS = [*ExperimentConfig.model_fields, "search_space_file"]
#: Fields :meth:`ExperimentConfig.to_dict` leaves out at their defaults (added after the
#: canonical form was first stored with studies).
_OPTIONAL_IN_DICT = ("objectives", "hardware", "constraints")
_FIELD_ORDER = {name: i for i, name in enumerate(_OWN_KEYS)}


def _ordered(problems: list[Problem]) -> list[Problem]:
    """Problems in field order (stable), so messages read like the schema."""
    def rank(p: Problem) -> int:
        return _FIELD_ORDER.get(re.split(r"[.\[]", p.field)[0], len(_FIELD_ORDER))

    return sorted(problems, key=rank)


def _runnable_problems(data: Mapping[str, Any], python_trial: bool) -> list[Problem]:
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


def _read_space_file(path: Path) -> Any:
    """JSON first, then YAML (NNI accepts both for ``searchSpaceFile``)."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.load(text, Loader=_YamlLoader)


def _prepare(
    data: Mapping[str, Any],
) -> tuple[dict[str, Any], list[Problem], tuple[Any, Any, Any], DesignCheck | None]:
    """The cross-field rules pydantic cannot express: space file, names, args, space vs tuner.

    Returns the data with canonical values, the problems found, and the built
    (space, tuner, assessor) and the hardware design check.
    """
    data = dict(data)
    problems: list[Problem] = []

    # search_space_file: an input spelling of search_space
    if "search_space_file" in data:
        file = data.pop("search_space_file")
        if "search_space" in data:
            problems.append(Problem("search_space_file", file, "give search_space or "
                                    "search_space_file, not both"))
        elif not isinstance(file, str | Path):
            problems.append(Problem("search_space_file", file, "must be a path"))
        else:
            path = Path(file).expanduser()
            try:
                data["search_space"] = _read_space_file(path)
            except OSError as exc:
                problems.append(Problem("search_space_file", str(file),
                                        f"must be a readable file ({exc.strerror or exc})"))
            except yaml.YAMLError as exc:
                problems.append(Problem("search_space_file", str(file),
                                        f"must hold JSON or YAML ({_first_line(exc)})"))
    elif "search_space" not in data:
        problems.append(Problem("search_space", None, "required (or search_space_file)"))

    # optimize_mode and seed given inside the tuner's or assessor's arguments (NNI's classArgs)
    for args_key, keys in (("tuner_args", ("optimize_mode", "seed")),
                           ("assessor_args", ("optimize_mode",))):
        args = data.get(args_key)
        if not isinstance(args, Mapping):
            continue
        args = dict(args)
        for key in keys:
            if key not in args:
                continue
            value = args.pop(key)
            if key in data and data[key] != value:
                problems.append(Problem(f"{args_key}.{key}", value,
                                        f"differs from the experiment's {key} "
                                        f"({data[key]!r}); set it once"))
            else:
                data[key] = value
        data[args_key] = args

    # objectives: optimize_mode follows the first one
    objectives = data.get("objectives")
    first = objectives[0] if isinstance(objectives, list) and objectives else None
    direction = first.get("direction") if isinstance(first, Mapping) else getattr(
        first, "direction", None)
    if direction in ("maximize", "minimize"):
        if "optimize_mode" not in data:
            data["optimize_mode"] = direction
        elif data["optimize_mode"] != direction:
            problems.append(Problem("optimize_mode", data["optimize_mode"],
                                    f"differs from the first objective's direction "
                                    f"({direction!r}); with objectives, give each direction "
                                    "there and leave optimize_mode out"))
    several = isinstance(objectives, list) and len(objectives) > 1

    # tuner
    tuner: tuners.Tuner | None = None
    tuner_name = data.get("tuner", "TPE")
    if isinstance(tuner_name, str):
        try:
            tuner = tuners.make_tuner(tuner_name, data.get("tuner_args") or {})
            data["tuner"] = tuner.name
            data["tuner_args"] = tuner.arguments()
        except ConfigError as exc:
            problems += exc.problems

    # assessor
    assessor: assessors.Assessor | None = None
    assessor_name = data.get("assessor")
    if assessor_name is None or isinstance(assessor_name, str):
        try:
            assessor = assessors.make_assessor(assessor_name, data.get("assessor_args") or {})
            if assessor is not None:
                data["assessor"] = assessor.name
                data["assessor_args"] = assessor.arguments()
        except ConfigError as exc:
            problems += exc.problems
    if assessor is not None and tuner is not None and tuner.implied_assessor() is not None:
        problems.append(Problem("assessor", assessor_name,
                                f"the {tuner.name} tuner stops trials early itself "
                                "(Optuna's HyperbandPruner); remove the assessor"))
    if several and tuner is not None:
        if not tuner.multi_objective:
            problems.append(Problem("tuner", tuner_name, f"{tuner.name} optimises one "
                                    "objective; with several objectives use NSGAII, TPE, GP, "
                                    "Evolution, Random or QMC"))
        elif tuner.implied_assessor() is not None:
            problems.append(Problem("tuner", tuner_name, f"{tuner.name} stops trials early "
                                    "through Optuna's pruning, which Optuna does not do for "
                                    "several objectives; use NSGAII, TPE or GP"))
    if several and assessor is not None and assessor.uses_pruner():
        problems.append(Problem("assessor", assessor_name,
                                "Optuna cannot prune a study with several objectives "
                                "(Trial.report takes one): remove the assessor, give one "
                                "objective, or use Silent (without wrapped) to stop silent "
                                "networks"))

    # search space, in the form the tuner wants
    space: SearchSpace | None = None
    spec = data.get("search_space")
    if isinstance(spec, Mapping):
        try:
            if tuner is not None and tuner.batch_space:
                space = SearchSpace.batch(spec)
            else:
                space = SearchSpace.from_nni(spec)
            data["search_space"] = space.to_nni()
            if tuner is not None:
                problems += tuner.check(space)
                space = space.with_constants(tuner.constants)
        except ConfigError as exc:
            problems += exc.problems

    # hardware: checked against the search space's parameter names
    design: DesignCheck | None = None
    spec = data.get("hardware")
    if spec is not None:
        names = space.to_nni().keys() if space is not None else (
            data["search_space"].keys() if isinstance(data.get("search_space"), Mapping) else ())
        try:
            design, data["hardware"] = make_design_check(spec, names)
        except ConfigError as exc:
            problems += exc.problems
    return data, problems, (space, tuner, assessor), design


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ==================================================================== files


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


def _read_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        with path.open("rb") as f:
            return tomllib.load(f)
    if suffix in (".yaml", ".yml"):
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_YamlLoader)
    if suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    raise ValueError("the file name must end in .toml, .yaml, .yml or .json")


def load_config(path: str | Path, *, python_trial: bool = False) -> ExperimentConfig:
    """Read an experiment configuration file: TOML/YAML in spiketune's schema, or NNI v2 YAML.

    The NNI form is recognised by its camelCase keys (or a ``tuner: {name: ...}`` mapping).
    Relative paths are relative to the file's directory. A file cannot carry a Python trial,
    so a missing ``trial_command`` is reported with the other problems unless
    ``python_trial`` says the caller provides one. Raises :class:`ConfigError` listing every
    problem with the keys as the file spells them; ``source`` is the file.
    """
    path = Path(path).expanduser()
    source = str(path)
    try:
        raw = _read_file(path)
    except OSError as exc:
        raise ConfigError(Problem("config file", source,
                                  f"must be a readable file ({exc.strerror or exc})")) from None
    except (ValueError, yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(Problem("config file", source, f"could not be parsed: "
                                  f"{_first_line(exc)}"), source) from None
    if not isinstance(raw, Mapping):
        raise ConfigError(Problem("config file", source, "must hold a mapping of key to value"),
                          source)
    base = path.absolute().parent
    if _is_nni(raw):
        data, names, problems = _from_nni(raw, base)
    else:
        data, names, problems = _from_own(raw, base)
    # problems of the translation already carry the file's spelling; the schema's are renamed
    schema = _runnable_problems(data, python_trial)
    try:
        config = ExperimentConfig(**data)
    except ConfigError as exc:
        schema = exc.problems + schema
    problems += rename(_ordered(schema), names)
    if problems:
        raise ConfigError(_in_file_order(problems, raw), source)
    return config


def _in_file_order(problems: list[Problem], raw: Mapping[str, Any]) -> list[Problem]:
    """Problems sorted by where their key appears in the file (stable; others last)."""
    position = {str(key): i for i, key in enumerate(raw)}

    def rank(p: Problem) -> int:
        return position.get(re.split(r"[.\[]", p.field)[0], len(position))

    return sorted(problems, key=rank)


def _from_own(raw: Mapping[str, Any], base: Path) -> tuple[dict, dict[str, str], list[Problem]]:
    data = dict(raw)
    for key in ("trial_code_directory", "experiment_dir", "search_space_file"):
        value = data.get(key)
        if isinstance(value, str):
            data[key] = base / Path(value).expanduser()
    data.setdefault("trial_code_directory", base)
    return data, {}, []


# ---- NNI v2

def _norm(key: str) -> str:
    return key.replace("_", "").lower()


_NNI_ONLY = {
    "experimentname", "experimenttype", "searchspacefile", "trialconcurrency", "trialgpunumber",
    "maxexperimentduration", "maxtrialnumber", "maxtrialduration", "experimentworkingdirectory",
    "trainingservice", "advisor", "useannotation", "nnimanagerip", "tunergpuindices",
    "sharedstorage", "loglevel", "authorname", "maxexecduration", "maxtrialnum",
    "trainingserviceplatform", "searchspacepath", "trial",
}

_NNI_V1 = {
    "authorname": "no v2 equivalent; remove it",
    "maxexecduration": "NNI v1 key; NNI v2 spells it maxExperimentDuration",
    "maxtrialnum": "NNI v1 key; NNI v2 spells it maxTrialNumber",
    "trainingserviceplatform": "NNI v1 key; NNI v2 uses trainingService: {platform: local}",
    "searchspacepath": "NNI v1 key; NNI v2 spells it searchSpaceFile",
    "trial": "NNI v1 key; NNI v2 uses trialCommand, trialCodeDirectory and trialGpuNumber",
    "localconfig": "NNI v1 key; NNI v2 uses trainingService",
    "logdir": "NNI v1 key; NNI v2 spells it experimentWorkingDirectory",
    "multiphase": "NNI v1 key with no v2 equivalent; remove it",
    "multithread": "NNI v1 key with no v2 equivalent; remove it",
}

_NNI_UNSUPPORTED = {
    "nnimanagerip": "only for remote training services; spiketune runs trials on this machine",
    "tunergpuindices": "spiketune's tuners run in the scheduler, without a GPU",
    "sharedstorage": "only for remote training services; spiketune runs trials on this machine",
    "debug": "NNI's debug mode has no spiketune equivalent; remove it",
    "loglevel": "NNI's log level has no spiketune equivalent; remove it",
}

_NNI_TOP = [
    "experimentName", "searchSpaceFile", "searchSpace", "trialCommand", "trialCodeDirectory",
    "trialConcurrency", "trialGpuNumber", "maxExperimentDuration", "maxTrialNumber",
    "maxTrialDuration", "experimentWorkingDirectory", "experimentType", "useAnnotation",
    "tuner", "assessor", "advisor", "trainingService",
]
_OWN_IN_NNI = {
    "name": "NNI spells it experimentName",
    "experiment_dir": "NNI spells it experimentWorkingDirectory",
    "trial_code_directory": "NNI spells it trialCodeDirectory",
    "max_trials": "NNI spells it maxTrialNumber",
    "max_duration": "NNI spells it maxExperimentDuration",
    "max_trial_duration": "NNI spells it maxTrialDuration",
    "concurrency": "NNI spells it trialConcurrency",
    "gpus": "NNI uses trialGpuNumber and trainingService.gpuIndices",
    "trials_per_gpu": "NNI spells it trainingService.maxTrialNumberPerGpu",
    "tuner_args": "NNI uses tuner.classArgs",
    "assessor_args": "NNI uses assessor.classArgs",
    "optimize_mode": "NNI puts it in tuner.classArgs",
    "seed": "NNI puts it in tuner.classArgs",
    "storage": "NNI has no equivalent: write the file in spiketune's own schema to use it",
    "max_retries": "NNI has no equivalent: write the file in spiketune's own schema to use it",
    "heartbeat_interval": "NNI has no equivalent: write the file in spiketune's own schema to "
                          "use it",
    "grace_period": "NNI has no equivalent: write the file in spiketune's own schema to use it",
}
_NNI_SERVICE = ["platform", "useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices", "reuseMode",
                "trialCommand", "trialCodeDirectory", "trialGpuNumber"]


def _is_nni(raw: Mapping[str, Any]) -> bool:
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        if key != key.lower() or (key not in _OWN_KEYS and _norm(key) in _NNI_ONLY):
            return True
        if key in ("tuner", "assessor") and isinstance(value, Mapping):
            return True
    return False


def _from_nni(raw: Mapping[str, Any], base: Path) -> tuple[dict, dict[str, str], list[Problem]]:
    """Translate an NNI v2 config into spiketune's schema, remembering each key's spelling."""
    data: dict[str, Any] = {}
    names: dict[str, str] = {}
    problems: list[Problem] = []
    own = {_norm(k): k for k in _OWN_KEYS}
    simple = {
        "experimentname": "name",
        "searchspace": "search_space",
        "trialcommand": "trial_command",
        "trialconcurrency": "concurrency",
        "maxexperimentduration": "max_duration",
        "maxtrialnumber": "max_trials",
        "maxtrialduration": "max_trial_duration",
    }
    gpu_number: tuple[str, Any] | None = None
    service: Mapping[str, Any] = {}
    service_key = "trainingService"
    algorithms: dict[str, tuple[str, Any]] = {}

    def path_value(key: str, value: Any, field: str) -> None:
        names[field] = key
        if isinstance(value, str):
            data[field] = base / Path(value).expanduser()
        else:
            data[field] = value  # the schema reports the type

    for key, value in raw.items():
        if not isinstance(key, str):
            problems.append(Problem(str(key), value, "keys must be strings"))
            continue
        norm = _norm(key)
        if norm in simple:
            field = simple[norm]
            if field in data:
                problems.append(Problem(key, value, f"{names[field]} is given already"))
                continue
            data[field] = value
            names[field] = key
        elif norm == "searchspacefile":
            if "search_space" in data and "search_space_file" not in data:
                problems.append(Problem(key, value,
                                        "give searchSpace or searchSpaceFile, not both"))
                continue
            names["search_space_file"] = key
            names["search_space"] = f"{key}[{value}]"
            data["search_space_file"] = base / Path(str(value)).expanduser()
        elif norm == "trialcodedirectory":
            path_value(key, value, "trial_code_directory")
        elif norm == "experimentworkingdirectory":
            path_value(key, value, "experiment_dir")
        elif norm == "trialgpunumber":
            gpu_number = (key, value)
        elif norm in ("tuner", "assessor", "advisor"):
            algorithms[norm] = (key, value)
        elif norm == "trainingservice":
            service_key = key
            if isinstance(value, Mapping):
                service = value
            elif isinstance(value, list):
                problems.append(Problem(key, "[...]", "a single local training service only "
                                        "(hybrid lists are not supported)"))
            else:
                problems.append(Problem(key, value, "must be a mapping {platform: local, ...}"))
        elif norm == "experimenttype":
            if value != "hpo":
                problems.append(Problem(key, value, "only hpo experiments are supported"))
        elif norm == "useannotation":
            if value is not False:
                problems.append(Problem(key, value, "NNI annotations are not supported; "
                                        "use a search space and set it to false"))
        elif norm in _NNI_UNSUPPORTED:
            problems.append(Problem(key, value, f"not supported: {_NNI_UNSUPPORTED[norm]}"))
        elif norm in _NNI_V1:
            problems.append(Problem(key, value, _NNI_V1[norm]))
        elif norm in own and norm not in {_norm(k) for k in _NNI_TOP}:
            problems.append(Problem(key, value, "a key of spiketune's own schema in an NNI "
                                    f"config; {_OWN_IN_NNI.get(own[norm], 'not in NNI configs')}"))
        else:
            problems.append(Problem(key, value, "unknown key; accepted: " + ", ".join(_NNI_TOP)))

    # tuner / advisor / assessor: {name, classArgs}
    if "advisor" in algorithms and "tuner" in algorithms:
        problems.append(Problem(algorithms["advisor"][0], algorithms["advisor"][1],
                                "give tuner or advisor, not both"))
    for kind in ("tuner", "advisor", "assessor"):
        if kind not in algorithms:
            continue
        key, value = algorithms[kind]
        field = "assessor" if kind == "assessor" else "tuner"
        if value is None:
            continue
        if not isinstance(value, Mapping):
            problems.append(Problem(key, value, "must be a mapping {name: ..., classArgs: {...}}"))
            continue
        for sub, subvalue in value.items():
            norm = _norm(str(sub))
            if norm == "name":
                data[field] = subvalue
                names[field] = f"{key}.{sub}"
            elif norm == "classargs":
                if subvalue is not None:
                    data[f"{field}_args"] = subvalue
                names[f"{field}_args"] = f"{key}.{sub}"
                if isinstance(subvalue, Mapping):
                    for lifted in ("optimize_mode", "seed"):
                        if lifted in subvalue and lifted not in names:
                            names[lifted] = f"{key}.{sub}.{lifted}"
            elif norm in ("classname", "codedirectory", "classfilename", "codedir"):
                problems.append(Problem(f"{key}.{sub}", subvalue,
                                        f"custom {kind} classes are not supported; use a "
                                        "built-in name"))
            elif norm == "builtintunername" or norm == "builtinassessorname" \
                    or norm == "builtinadvisorname":
                problems.append(Problem(f"{key}.{sub}", subvalue,
                                        "NNI v1 key; NNI v2 spells it name"))
            else:
                problems.append(Problem(f"{key}.{sub}", subvalue,
                                        "unknown key; accepted: name, classArgs"))
        if field not in data:
            problems.append(Problem(f"{key}.name", None, "required"))

    # trainingService: {platform: local, ...}
    seen_platform = False
    for sub, value in service.items():
        norm = _norm(str(sub))
        where = f"{service_key}.{sub}"
        if norm == "platform":
            seen_platform = True
            if value != "local":
                problems.append(Problem(where, value, "unsupported platform; spiketune runs "
                                        "trials on this machine (platform: local)"))
        elif norm == "useactivegpu":
            # spiketune assigns GPU slots without looking at other processes on the GPU
            if not isinstance(value, bool):
                problems.append(Problem(where, value, "must be true or false"))
        elif norm == "maxtrialnumberpergpu":
            data["trials_per_gpu"] = value
            names["trials_per_gpu"] = where
        elif norm == "gpuindices":
            data["gpus"] = value
            names["gpus"] = where
        elif norm == "reusemode":
            if value is not False:
                problems.append(Problem(where, value, "reuse mode is not supported; set false"))
        elif norm == "trialcommand":
            if "trial_command" in data:
                problems.append(Problem(where, value, f"{names['trial_command']} is given "
                                        "already"))
            else:
                data["trial_command"] = value
                names["trial_command"] = where
        elif norm == "trialcodedirectory":
            if "trial_code_directory" in data:
                problems.append(Problem(where, value, f"{names['trial_code_directory']} is "
                                        "given already"))
            else:
                path_value(where, value, "trial_code_directory")
        elif norm == "trialgpunumber":
            if gpu_number is not None:
                problems.append(Problem(where, value, f"{gpu_number[0]} is given already"))
            else:
                gpu_number = (where, value)
        else:
            problems.append(Problem(where, value, "unknown key; accepted: "
                                    + ", ".join(_NNI_SERVICE)))
    if service and not seen_platform:
        problems.append(Problem(f"{service_key}.platform", None, "required (local)"))

    # trialGpuNumber: 0 or absent = no GPU; 1 = one of gpuIndices (or every GPU) per trial
    if gpu_number is None or gpu_number[1] in (0, None):
        if "gpus" in data and data["gpus"] not in (None, [], ""):
            where = gpu_number[0] if gpu_number else "trialGpuNumber"
            problems.append(Problem(names["gpus"], data["gpus"],
                                    f"has no effect unless {where} is 1; set {where}: 1 to give "
                                    "each trial one of these GPUs"))
        data.pop("gpus", None)
    elif gpu_number[1] == 1 and not isinstance(gpu_number[1], bool):
        data.setdefault("gpus", "all")
        names.setdefault("gpus", gpu_number[0])
    else:
        problems.append(Problem(gpu_number[0], gpu_number[1],
                                "must be 0 (no GPU) or 1 (one GPU per trial)"))

    data.setdefault("trial_code_directory", base)
    names.setdefault("trial_command", "trialCommand")
    names.setdefault("search_space", "searchSpace")
    return data, names, problems
