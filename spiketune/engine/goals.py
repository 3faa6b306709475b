"""What a search aims for: its objectives, and which trials count as feasible.

**Objectives.** By default a search maximises (or minimises, ``optimize_mode``) the
``"default"`` key of each trial's final result. ``objectives`` names other keys of the final
result, each with a direction; with more than one the study is multi-objective and its answer
is a Pareto front rather than one best trial::

    objectives = [{key = "default", direction = "maximize"},
                  {key = "synops_per_sample", direction = "minimize"}]

A trial whose final result lacks an objective key, or holds a non-finite number there, is
recorded FAILED with a reason naming the key.

**Constraints.** In a constrained experiment every finished trial carries three constraint
values (the trial user attribute ``constraints``, in the order of :data:`CONSTRAINTS`); a
value > 0 means the trial broke that kind of constraint, and by how much (normalised):

``reported``  what the trial itself reported: the sum of the positive values of the
              ``"constraints"`` key of its final result (a number or a list of numbers, > 0 =
              violated; e.g. ``HardwareAssessment.constraints`` after training);
``design``    the hardware design-rule check made from the trial's parameters before it
              starts (:class:`DesignCheck`): the sum of the broken rules' normalised excesses.
              Such a trial is not launched: it is recorded FAILED, ``infeasible: <rules>``;
``silent``    the silent-network rule of the ``Silent`` assessor: how far the activity of a
              trial it stopped was from the threshold.

Three fixed entries (sums, not one value per rule) keep the list the same length for every
trial, as Optuna's samplers need, and give GP one constraint model per source rather than one
per rarely-broken rule; TPE and NSGA-II only use the sum of the positive values anyway.

**What the tuner sees.** The scheduler sets the three values on each finished trial of its
working copy of the study (the tuner's view) with Optuna 5's ``Trial.set_constraint`` (named
as in :data:`CONSTRAINTS`); TPE, NSGA-II and GP read them from there (they replace the
deprecated ``constraints_func``). These samplers learn only from COMPLETE trials (NSGA-II, GP)
or COMPLETE and PRUNED ones (TPE), never from failed ones, so the view holds a trial that
broke a constraint without a final result as COMPLETE, with the worst value of each objective
among the complete trials at that time (0 before any): the samplers rank it below every
feasible trial and learn to avoid its region. The stored study keeps the true outcome, the
constraint values in the ``constraints`` user attribute and, as Optuna's own constraint values
(:func:`optuna_constraints`), in the system attributes ``Trial.set_constraint`` writes, so
Optuna's ``best_trial`` and ``best_trials`` on the stored study skip infeasible trials;
:func:`sampler_trials` rebuilds the view from the user attribute when a session opens, with
each trial's parameters in the search space's search coordinates (the stored study records the
values the trial received; see :mod:`spiketune.engine.space`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from spiketune._values import is_finite
from spiketune.errors import ConfigError
from spiketune.hardware import ParameterCheck

if TYPE_CHECKING:
    import optuna

    from spiketune.engine.space import SearchSpace

__all__ = [
    "CONSTRAINTS",
    "DesignCheck",
    "Goal",
    "Judgement",
    "Objective",
    "make_design_check",
    "pareto_front",
    "sampler_trials",
]

#: The constraint values of a trial, in this order (see the module docstring).
CONSTRAINTS: tuple[str, ...] = ("reported", "design", "silent")

Direction = Literal["maximize", "minimize"]


class Objective(BaseModel):
    """One objective: a key of the trial's final result and whether to maximise it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    direction: Direction = Field(description="maximize or minimize")


@dataclass(frozen=True)
class Judgement:
    """A broken constraint: the reason recorded with the trial and the normalised excess
    (> 0) that goes into its entry of the constraint list."""

    reason: str
    excess: float


# ------------------------------------------------------------------------------ design check
@dataclass(frozen=True)
class DesignCheck:
    """The hardware design-rule check of a trial's parameters, before the trial starts.

    What a trial's parameters mean for the network, and which rules it breaks, is the hardware
    package's knowledge (:class:`spiketune.hardware.ParameterCheck`); this adds what the search
    makes of it: a :class:`Judgement` with the reason recorded with the trial and the sum of
    the broken rules' normalised excesses as its ``design`` constraint value.
    """

    check: ParameterCheck

    def __call__(self, parameters: Mapping[str, Any]) -> Judgement | None:
        """None when the network fits the target, else why not (``infeasible: ...``)."""
        try:
            violations = self.check.violations(parameters)
        except ConfigError as exc:
            what = "; ".join(f"{p.field} = {p.value!r}: {p.rule}" for p in exc.problems)
            return Judgement(f"infeasible: the design check cannot read the network ({what})",
                             1.0)
        if not violations:
            return None
        return Judgement("infeasible: " + "; ".join(str(v) for v in violations),
                         sum(v.excess for v in violations))


def make_design_check(
    spec: Mapping[str, Any], parameter_names: Iterable[str]
) -> tuple[DesignCheck, dict[str, Any]]:
    """Validate the ``hardware`` table of a configuration; (check, canonical table).

    ``spec``: ``target`` (a name of :data:`spiketune.hardware.TARGETS`), any of the target's
    limits to override (``max_hidden = 500``), and fixed network facts
    (:data:`spiketune.hardware.NETWORK_KEYS`) that the search space does not give.
    ``parameter_names``: the search space's top-level names. Raises :class:`ConfigError`
    naming ``hardware.<key>``.
    """
    check = ParameterCheck.from_table(spec, parameter_names, name="hardware")
    return DesignCheck(check), check.table()


# ------------------------------------------------------------------------------ the goal
@dataclass(frozen=True)
class Goal:
    """Objectives and constraints of one experiment, as the scheduler uses them.

    ``judge(report, step)`` (the assessor's silent-network rule) may stop a trial from an
    intermediate report; ``design`` checks a trial's parameters before it starts.
    """

    objectives: tuple[Objective, ...] = (Objective(key="default", direction="maximize"),)
    constrained: bool = False
    design: DesignCheck | None = None
    judge: Callable[[Mapping[str, Any], int], Judgement | None] | None = None

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def multi(self) -> bool:
        """More than one objective: Optuna takes no intermediate values and prunes nothing."""
        return len(self.objectives) > 1

    @property
    def step_key(self) -> str:
        """The key of the intermediate results that become Optuna's intermediate values: the
        one objective's key, since a pruner judges them in the objective's direction (a
        ``"default"`` that rises while the objective ``loss`` falls would get the best trials
        pruned); ``"default"`` with several objectives, whose intermediate values are only
        shown."""
        return "default" if self.multi else self.objectives[0].key

    def values(self, metrics: Mapping[str, Any]) -> tuple[list[float] | None, str | None]:
        """The objective values of a final result, or why there are none (a FAILED reason)."""
        out = []
        for key in self.keys:
            if key not in metrics:
                return None, (f"the final result has no {key!r}, an objective (keys: "
                              f"{', '.join(sorted(metrics))})")
            v = metrics[key]
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                return None, f"metric not a number: {key}={v!r}"
            if not is_finite(v):
                return None, f"non-finite metric: {key}={v!r}"
            out.append(float(v))
        return out, None

    def constraints(
        self,
        metrics: Mapping[str, Any] | None,
        design: Judgement | None = None,
        silent: Judgement | None = None,
    ) -> list[float]:
        """The trial's constraint values, in the order of :data:`CONSTRAINTS`."""
        reported = 0.0
        if metrics is not None and "constraints" in metrics:
            reported = sum(max(0.0, c) for c in reported_constraints(metrics["constraints"]))
        return [
            reported,
            0.0 if design is None else max(design.excess, 1e-9),
            0.0 if silent is None else max(silent.excess, 1e-9),
        ]


def reported_constraints(value: Any) -> list[float]:
    """The ``"constraints"`` of a final result as a list of floats; ValueError when it is not
    a finite number or a list of them."""
    items = value if isinstance(value, list | tuple) else [value]
    if not all(is_finite(c) for c in items):
        raise ValueError(f"'constraints' must be a finite number or a list of them, got "
                         f"{value!r}")
    return [float(c) for c in items]


def infeasible(constraints: Sequence[float] | None) -> bool:
    return constraints is not None and any(c > 0 for c in constraints)


# ------------------------------------------------------------------------------ the tuner's view
def optuna_constraints(values: Sequence[float]) -> dict[str, float]:
    """The system attributes ``Trial.set_constraint`` writes for these constraint values."""
    return {f"constraints:{name}": float(v) for name, v in zip(CONSTRAINTS, values, strict=True)}


def worst_values(
    trials: Iterable[optuna.trial.FrozenTrial], directions: Sequence[str]
) -> list[float]:
    """Per objective, the worst value among COMPLETE trials (0 when there is none)."""
    import optuna

    rows = [t.values for t in trials
            if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None]
    out = []
    for i, d in enumerate(directions):
        col = [r[i] for r in rows if i < len(r) and math.isfinite(r[i])]
        out.append((min(col) if d == "maximize" else max(col)) if col else 0.0)
    return out


def sampler_trials(
    trials: Sequence[optuna.trial.FrozenTrial],
    goal: Goal,
    before: Sequence[optuna.trial.FrozenTrial] = (),
    space: SearchSpace | None = None,
) -> list[optuna.trial.FrozenTrial]:
    """The finished stored ``trials`` as the tuner sees them (see the module docstring).

    ``space``: the stored params (the received values) become the space's search
    coordinates (:meth:`SearchSpace.search_point`), in which the sampler draws; without it
    they are kept as stored. Constrained: COMPLETE and PRUNED trials carry their constraint
    values as Optuna's named constraints (zeros when none were recorded); a trial that broke
    a constraint without a final result becomes COMPLETE with the worst values of the
    complete trials before it (those of ``before``, the tuner's view so far, and earlier ones
    of ``trials``).
    """
    import optuna

    finished = [t for t in trials if t.state.is_finished()]
    if not goal.constrained and space is None:
        return finished
    state = optuna.trial.TrialState
    out: list[optuna.trial.FrozenTrial] = []
    seen = [t for t in before if t.state == state.COMPLETE]
    for t in sorted(finished, key=lambda t: t.number):
        params, distributions = (
            (t.params, t.distributions) if space is None else space.search_point(t))
        c = t.user_attrs.get("constraints")
        c = [0.0] * len(CONSTRAINTS) if c is None else [float(x) for x in c]
        if goal.constrained and t.state != state.COMPLETE and infeasible(c):
            view = optuna.trial.create_trial(
                state=state.COMPLETE,
                values=worst_values(seen, goal.directions),
                params=params,
                distributions=distributions,
                user_attrs={"constraints": c},
                system_attrs=optuna_constraints(c),
            )
        elif goal.constrained and t.state in (state.COMPLETE, state.PRUNED):
            view = optuna.trial.create_trial(
                state=t.state,
                values=t.values,
                params=params,
                distributions=distributions,
                user_attrs={"constraints": c},
                system_attrs=optuna_constraints(c),
                intermediate_values=t.intermediate_values,
            )
        elif space is None:
            view = t
        else:  # what samplers and pruners read: state, values, params, intermediate values
            view = optuna.trial.create_trial(
                state=t.state,
                values=t.values,
                params=params,
                distributions=distributions,
                system_attrs=t.system_attrs,
                intermediate_values=t.intermediate_values,
            )
        out.append(view)
        if view.state == state.COMPLETE:
            seen.append(view)
    return out


# ------------------------------------------------------------------------------ Pareto front
def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated ``points`` (in input order; duplicates all kept).

    A point dominates another when it is at least as good in every objective and better in
    one; ``directions`` say what better means per objective.
    """
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    costs = [[s * float(v) for s, v in zip(signs, p, strict=True)] for p in points]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(
            x < y for x, y in zip(a, b, strict=True))

    return [i for i, c in enumerate(costs)
            if not any(dominates(o, c) for j, o in enumerate(costs) if j != i)]
