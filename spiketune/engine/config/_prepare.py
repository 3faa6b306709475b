"""The preparation steps: the rules across fields that pydantic's field rules cannot express.

:func:`prepare` runs them in order on the raw fields of a configuration (any of the three
forms, after a file's translation), each step reading what the earlier ones left:

1. :func:`space_from_file`: ``search_space_file`` is an input spelling of ``search_space``;
2. :func:`~._nni.lift_class_args`: ``optimize_mode`` and ``seed`` given in NNI's ``classArgs``;
3. :func:`follow_first_objective`: with ``objectives``, ``optimize_mode`` is the first one's;
4. :func:`build_tuner` and :func:`build_assessor`: names made canonical, arguments validated;
5. :func:`algorithm_conflicts`: tuner, assessor and the number of objectives agree;
6. :func:`build_space`: the search space, in the form the tuner wants, checked by it;
7. :func:`build_design`: the ``hardware`` table, checked against the space's parameter names;
8. :func:`start_point_problems`: each of ``start_with`` is a point the space hands out.

Every step records its problems and the next one goes on, so one :class:`ConfigError` lists
them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spiketune.engine import assessors, tuners
from spiketune.engine.config._files import ParseError, read_space_file
from spiketune.engine.config._nni import lift_class_args
from spiketune.engine.goals import DesignCheck, make_design_check
from spiketune.engine.space import SearchSpace, same_values
from spiketune.errors import ConfigError, Problem

__all__ = ["Prepared", "prepare", "top_key"]


@dataclass
class Prepared:
    """What the preparation steps leave: the fields with canonical values, the problems found,
    and the objects built from them (None where their fields have problems)."""

    data: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    space: SearchSpace | None = None
    tuner: tuners.Tuner | None = None
    assessor: assessors.Assessor | None = None
    design: DesignCheck | None = None

    @property
    def reported(self) -> set[str]:
        """Top-level fields the steps reported already: the schema's own problems with them
        would only repeat the same cause (a search-space file that cannot be read is one
        problem, not also a missing search space)."""
        fields = {top_key(p.field) for p in self.problems}
        if "search_space_file" in fields:
            fields.add("search_space")
        return fields


def top_key(field: str) -> str:
    """The top-level key of a problem's dotted field (``tuner_args.x[0]`` -> ``tuner_args``)."""
    return re.split(r"[.\[]", field)[0]


def prepare(data: Mapping[str, Any]) -> Prepared:
    """Run every preparation step on the raw fields ``data`` (see the module docstring)."""
    out = Prepared(dict(data))
    out.problems += space_from_file(out.data)
    out.problems += lift_class_args(out.data)
    out.problems += follow_first_objective(out.data)
    given = dict(out.data)  # names as the user spelled them, for the messages
    out.tuner = build_tuner(out.data, out.problems)
    out.assessor = build_assessor(out.data, out.problems)
    out.problems += algorithm_conflicts(given, out.tuner, out.assessor)
    out.space = build_space(out.data, out.tuner, out.problems)
    out.design = build_design(out.data, out.space, out.problems)
    out.problems += start_point_problems(out.data, out.space, out.tuner)
    return out


def space_from_file(data: dict[str, Any]) -> list[Problem]:
    """Replace ``search_space_file`` by the ``search_space`` it holds (JSON or YAML)."""
    if "search_space_file" not in data:
        if "search_space" not in data:
            return [Problem("search_space", None, "required (or search_space_file)")]
        return []
    file = data.pop("search_space_file")
    if "search_space" in data:
        return [Problem("search_space_file", file,
                        "give search_space or search_space_file, not both")]
    if not isinstance(file, str | Path):
        return [Problem("search_space_file", file, "must be a path")]
    try:
        data["search_space"] = read_space_file(Path(file).expanduser())
    except UnicodeDecodeError as exc:
        utf16 = bytes(exc.object[:2]) in (b"\xff\xfe", b"\xfe\xff")
        return [Problem("search_space_file", str(file), f"must be UTF-8 text (byte {exc.start} "
                        f"is not{'; this file is UTF-16' if utf16 else ''})")]
    except OSError as exc:
        return [Problem("search_space_file", str(file),
                        f"must be a readable file ({exc.strerror or exc})")]
    except ParseError as exc:
        return [Problem("search_space_file", str(file), f"must hold JSON or YAML ({exc})")]
    return []


def follow_first_objective(data: dict[str, Any]) -> list[Problem]:
    """With ``objectives``, ``optimize_mode`` is the first objective's direction: set it when
    it is missing, refuse a contradicting one."""
    objectives = data.get("objectives")
    first = objectives[0] if isinstance(objectives, list) and objectives else None
    direction = first.get("direction") if isinstance(first, Mapping) else getattr(
        first, "direction", None)
    if direction not in ("maximize", "minimize"):
        return []  # no objectives, or the schema reports them
    if "optimize_mode" not in data:
        data["optimize_mode"] = direction
        return []
    if data["optimize_mode"] != direction:
        return [Problem("optimize_mode", data["optimize_mode"],
                        f"differs from the first objective's direction ({direction!r}); with "
                        "objectives, give each direction there and leave optimize_mode out")]
    return []


def build_tuner(data: dict[str, Any], problems: list[Problem]) -> tuners.Tuner | None:
    """The tuner, its name and arguments made canonical in ``data``; None on problems (added
    to ``problems``) or when the schema will report the name's type."""
    name = data.get("tuner", "TPE")
    if not isinstance(name, str):
        return None
    try:
        tuner = tuners.make_tuner(name, data.get("tuner_args") or {})
    except ConfigError as exc:
        problems += exc.problems
        return None
    data["tuner"], data["tuner_args"] = tuner.name, tuner.arguments()
    return tuner


def build_assessor(data: dict[str, Any], problems: list[Problem]) -> assessors.Assessor | None:
    """The assessor (None: none asked, or problems, added to ``problems``), its name and
    arguments made canonical in ``data``."""
    name = data.get("assessor")
    if name is not None and not isinstance(name, str):
        return None
    try:
        assessor = assessors.make_assessor(name, data.get("assessor_args") or {})
    except ConfigError as exc:
        problems += exc.problems
        return None
    if assessor is not None:
        data["assessor"], data["assessor_args"] = assessor.name, assessor.arguments()
    return assessor


def algorithm_conflicts(
    given: Mapping[str, Any], tuner: tuners.Tuner | None, assessor: assessors.Assessor | None
) -> list[Problem]:
    """Combinations Optuna cannot run: a second early-stopping rule beside Hyperband's or
    BOHB's, a single-objective tuner with several objectives, pruning with several.
    ``given``: the fields with the names as the user spelled them."""
    problems = []
    objectives = given.get("objectives")
    several = isinstance(objectives, list) and len(objectives) > 1
    tuner_name, assessor_name = given.get("tuner", "TPE"), given.get("assessor")
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
            problems.append(Problem("tuner", tuner_name, f"{tuner.name} stops trials "
                                    "early through Optuna's pruning, which Optuna does not do "
                                    "for several objectives; use NSGAII, TPE or GP"))
    if several and assessor is not None and assessor.uses_pruner():
        problems.append(Problem("assessor", assessor_name,
                                "Optuna cannot prune a study with several objectives "
                                "(Trial.report takes one): remove the assessor, give one "
                                "objective, or use Silent (without wrapped) to stop silent "
                                "networks"))
    return problems


def build_space(
    data: dict[str, Any], tuner: tuners.Tuner | None, problems: list[Problem]
) -> SearchSpace | None:
    """The search space in the form the tuner wants (NNI's Batch form for Batch), checked by
    the tuner and given its constants (``TRIAL_BUDGET``); stored canonical in ``data``."""
    spec = data.get("search_space")
    if not isinstance(spec, Mapping):
        return None  # missing (reported) or not a mapping (the schema reports it)
    try:
        space = SearchSpace.batch(spec) if tuner is not None and tuner.batch_space \
            else SearchSpace.from_nni(spec)
        data["search_space"] = space.to_nni()
        if tuner is None:
            return space
        problems += tuner.check(space)
        return space.with_constants(tuner.constants)
    except ConfigError as exc:
        problems += exc.problems
        return None


def build_design(
    data: dict[str, Any], space: SearchSpace | None, problems: list[Problem]
) -> DesignCheck | None:
    """The hardware design check of the ``hardware`` table (None without one), which may name
    as network facts only what the search space does not vary; stored canonical in ``data``."""
    spec = data.get("hardware")
    if spec is None:
        return None
    if space is not None:
        names: Any = space.to_nni().keys()
    else:
        given = data.get("search_space")
        names = given.keys() if isinstance(given, Mapping) else ()
    try:
        design, data["hardware"] = make_design_check(spec, names)
    except ConfigError as exc:
        problems += exc.problems
        return None
    if space is not None:
        specs = space.to_nni()
        problems += [Problem(f"search_space.{key}", specs[key], "whole numbers, which the "
                             "design check counts: choice of integers, randint, or quniform "
                             "or qloguniform with a whole q")
                     for key in _COUNTED if key in specs and not _whole_valued(specs[key])]
    return design


#: Network facts the design check counts, which a trial must receive as whole numbers.
_COUNTED = ("n_in", "n_rec", "n_out", "refractory_steps")


def _whole_valued(spec: Any) -> bool:
    """Whether a parameter of this NNI spec hands out only whole numbers."""
    kind, values = spec.get("_type"), spec.get("_value")
    if kind == "randint":
        return True
    if kind == "choice":
        return all(isinstance(v, int | float) and not isinstance(v, bool)
                   and float(v).is_integer() for v in values)
    if kind in ("qnormal", "qlognormal"):
        return float(values[-1]).is_integer()
    if kind in ("quniform", "qloguniform"):  # clipped to [low, high]: those must be whole
        return all(float(v).is_integer() for v in values)
    return False


def start_point_problems(
    data: Mapping[str, Any], space: SearchSpace | None, tuner: tuners.Tuner | None
) -> list[Problem]:
    """``start_with``: every key a top-level parameter of the search space, every value one it
    hands out (a choice's option, a number within its range), and a tuner that draws (a grid
    or a batch already fixes every trial)."""
    points = data.get("start_with")
    if not isinstance(points, list) or not points or space is None:
        return []  # absent, or the schema reports its type
    if tuner is not None and tuner.fixed_trials(space) is not None:
        return [Problem("start_with", points,
                        f"{tuner.name} runs fixed points of its own; start_with needs a tuner "
                        "that draws (TPE, Random, GP, Evolution, CmaEs, ...)")]
    if data.get("population_group"):
        return [Problem("start_with", points,
                        "cannot be combined with population_group (a start point could "
                        "contradict the values its population shares)")]
    specs = space.to_nni()
    problems: list[Problem] = []
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            continue  # the schema reports it
        located, _ = space.search_params(point)
        received = space.handed_out(point)
        for key, value in point.items():
            if key not in specs:
                problems.append(Problem(f"start_with[{i}].{key}", value,
                                        f"a top-level key of the search space "
                                        f"({', '.join(specs)})"))
            elif not (_located(key, value, located)
                      and (key not in received or same_values(value, received[key]))):
                # out of range, off a quantised grid, a negative lognormal, a nested value
                # the space does not hand out: the trial would receive another value
                spec = specs[key]
                problems.append(Problem(f"start_with[{i}].{key}", value,
                                        f"a value the search space hands out "
                                        f"({spec['_type']} {json.dumps(spec['_value'])})"))
    return problems


def _located(key: str, value: Any, located: Mapping[str, Any]) -> bool:
    """Whether the search coordinates ``located`` hold top-level parameter ``key`` and, for a
    nested choice's option, each sub-parameter it names (``key/<_name>/<sub>``)."""
    if key not in located:
        return False
    if not isinstance(value, Mapping) or "_name" not in value:
        return True
    prefix = f"{key}/{value['_name']}/"
    return all(f"{prefix}{sub}" in located for sub in value if sub != "_name")
