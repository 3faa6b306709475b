"""Assessors: stopping weak trials early, by NNI name or Optuna pruner name.

An assessor watches each trial's intermediate results (``report_intermediate_result``), which the
scheduler passes on as ``trial.report(value, step)`` with ``value`` = the result's ``default``
(or, with one named objective, the objective's key: the pruner judges in its direction; see
:attr:`spiketune.engine.goals.Goal.step_key`) and ``step`` = how many results the trial has
reported so far (1 for the first), and tells it when to stop the trial (the trial is then
recorded as EARLY_STOPPED). Steps are therefore the resource the trial has used (epochs, say),
which is what Hyperband's ``min_resource``/``max_resource`` and NNI's ``TRIAL_BUDGET`` count.

==================  ===================================  =========================================
name                Optuna pruner                        notes
==================  ===================================  =========================================
Medianstop (NNI)    ``MedianPruner``                     NNI's ``start_step`` (results needed
                                                         before judging) becomes
                                                         ``n_warmup_steps = start_step``;
                                                         ``n_startup_trials`` defaults to 0, as
                                                         NNI judges once one trial has completed.
                                                         NNI compares with the median of running
                                                         averages, Optuna with the median of the
                                                         values at that step: same rule, slightly
                                                         smoother reference in NNI.
Hyperband           ``HyperbandPruner``                  resources are steps (reports)
SuccessiveHalving   ``SuccessiveHalvingPruner``          asynchronous successive halving (ASHA)
Percentile          ``PercentilePruner``                 ``percentile`` required
Threshold           ``ThresholdPruner``                  ``lower`` and/or ``upper``
Patient             ``PatientPruner``                    ``wrapped: {name, args}`` optional
Wilcoxon            ``WilcoxonPruner``                   for steps that are instances, not epochs
Silent              none (its own rule), or the          stops a trial whose network is silent or
                    ``wrapped`` assessor's pruner        saturated, from keys of its intermediate
                                                         dict; see :class:`Silent`
Curvefitting (NNI)  refused                              it extrapolates learning curves with a
                                                         fitted model; no Optuna pruner does that
==================  ===================================  =========================================

Names are matched ignoring case, ``-``/``_`` and a trailing ``Pruner``/``Assessor``
(``MedianPruner`` and ``median`` both mean Medianstop). Arguments are validated here, once, when
the configuration is read; an unknown argument is an error that lists the accepted ones.

Optuna prunes single-objective studies only (``Trial.report`` refuses several objectives), so a
multi-objective experiment accepts no assessor that uses a pruner (:meth:`Assessor.uses_pruner`):
only ``Silent`` without ``wrapped``.
"""

from __future__ import annotations

import abc
import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from spiketune._validation import rename, validate_args
from spiketune.engine._algorithm import ArgumentsOwner, canonical_name
from spiketune.engine.goals import Judgement
from spiketune.errors import ConfigError, Problem

if TYPE_CHECKING:
    from optuna.pruners import BasePruner

__all__ = ["ASSESSORS", "Assessor", "Silent", "canonical_assessor_name", "make_assessor"]

_Int0 = Annotated[int, Strict(), Field(ge=0)]
_Int1 = Annotated[int, Strict(), Field(ge=1)]
_Float = Annotated[float, Field(allow_inf_nan=False)]


@contextlib.contextmanager
def _chosen_on_purpose() -> Iterator[None]:
    """Silence Optuna's "experimental" warning for a pruner the user named explicitly."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Assessor(ArgumentsOwner, abc.ABC):
    """Base of every assessor (the extension point for early stopping).

    Lifecycle:

    1. :func:`make_assessor` validates the arguments once, when the configuration is read
       (``Args`` is the pydantic model of the accepted arguments); nothing of Optuna is imported.
    2. The scheduler calls :meth:`create_pruner` once, when it opens the study.
    3. Optuna then consults the pruner after each ``trial.report(value, step)``; before that,
       the scheduler asks :meth:`judge` about the whole intermediate report (rules that need no
       other trial, such as :class:`Silent`'s).

    A subclass sets ``name`` and ``Args`` and implements :meth:`create_pruner`.
    """

    name: ClassVar[str]
    Args: ClassVar[type[BaseModel]] = _Args

    def __init__(self, args: BaseModel) -> None:
        self.args = args

    @abc.abstractmethod
    def create_pruner(self) -> BasePruner:
        """A new Optuna pruner for one study."""

    def uses_pruner(self) -> bool:
        """Whether the assessor stops trials through an Optuna pruner (single objective only)."""
        return True

    def judge(self, report: Mapping[str, Any], step: int) -> Judgement | None:
        """Why to stop a trial now, from its intermediate ``report`` (the whole dict; ``step``
        counts reports from 1) alone, with the trial's ``silent`` constraint value (see
        :mod:`spiketune.engine.goals`); None (the default): no reason."""
        return None


class Medianstop(Assessor):
    name = "Medianstop"

    class Args(_Args):
        start_step: _Int0 | None = None
        n_startup_trials: _Int0 = 0
        n_warmup_steps: _Int0 | None = None
        interval_steps: _Int1 = 1
        n_min_trials: _Int1 = 1

        @model_validator(mode="after")
        def _one_warmup(self) -> Medianstop.Args:
            if self.start_step is not None and self.n_warmup_steps is not None:
                raise ValueError("give start_step (NNI) or n_warmup_steps (Optuna), not both")
            return self

    def warmup_steps(self) -> int:
        """No trial is stopped at a step below this (steps count results, from 1).

        NNI judges once ``start_step`` results have arrived, i.e. from step ``start_step``;
        Optuna's ``n_warmup_steps`` skips that many results (see :func:`_optuna_warmup`).
        """
        args = self.args
        assert isinstance(args, Medianstop.Args)
        if args.start_step is not None:
            return args.start_step
        return _optuna_warmup(args.n_warmup_steps or 0)

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import MedianPruner

        args = self.args
        assert isinstance(args, Medianstop.Args)
        return MedianPruner(
            n_startup_trials=args.n_startup_trials,
            n_warmup_steps=self.warmup_steps(),
            interval_steps=args.interval_steps,
            n_min_trials=args.n_min_trials,
        )


class Percentile(Assessor):
    name = "Percentile"

    class Args(_Args):
        percentile: Annotated[float, Field(ge=0, le=100)]
        n_startup_trials: _Int0 = 5
        n_warmup_steps: _Int0 = 0
        interval_steps: _Int1 = 1
        n_min_trials: _Int1 = 1

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import PercentilePruner

        args = self.args.model_dump()
        return PercentilePruner(**{**args, "n_warmup_steps": _optuna_warmup(
            args["n_warmup_steps"])})


class Hyperband(Assessor):
    name = "Hyperband"

    class Args(_Args):
        min_resource: _Int1 = 1
        max_resource: _Int1 | Literal["auto"] = "auto"
        reduction_factor: Annotated[int, Strict(), Field(ge=2)] = 3
        bootstrap_count: _Int0 = 0

        @model_validator(mode="after")
        def _consistent(self) -> Hyperband.Args:
            if self.max_resource != "auto" and self.max_resource < self.min_resource:
                raise ValueError("max_resource must be >= min_resource")
            if self.bootstrap_count > 0 and self.max_resource == "auto":
                raise ValueError("bootstrap_count > 0 needs an integer max_resource")
            return self

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import HyperbandPruner

        return HyperbandPruner(**self.args.model_dump())


class SuccessiveHalving(Assessor):
    name = "SuccessiveHalving"

    class Args(_Args):
        min_resource: _Int1 | Literal["auto"] = "auto"
        reduction_factor: Annotated[int, Strict(), Field(ge=2)] = 4
        min_early_stopping_rate: _Int0 = 0
        bootstrap_count: _Int0 = 0

        @model_validator(mode="after")
        def _consistent(self) -> SuccessiveHalving.Args:
            if self.bootstrap_count > 0 and self.min_resource == "auto":
                raise ValueError("bootstrap_count > 0 needs an integer min_resource")
            return self

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import SuccessiveHalvingPruner

        return SuccessiveHalvingPruner(**self.args.model_dump())


class Threshold(Assessor):
    name = "Threshold"

    class Args(_Args):
        lower: _Float | None = None
        upper: _Float | None = None
        n_warmup_steps: _Int0 = 0
        interval_steps: _Int1 = 1

        @model_validator(mode="after")
        def _bounds(self) -> Threshold.Args:
            if self.lower is None and self.upper is None:
                raise ValueError("give lower, upper or both")
            if self.lower is not None and self.upper is not None and self.lower > self.upper:
                raise ValueError("lower must be <= upper")
            return self

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import ThresholdPruner

        args = self.args.model_dump()
        return ThresholdPruner(**{**args, "n_warmup_steps": _optuna_warmup(
            args["n_warmup_steps"])})


class _Wrapped(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Patient(Assessor):
    name = "Patient"

    class Args(_Args):
        patience: _Int0
        min_delta: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
        wrapped: _Wrapped | None = None

    def __init__(self, args: BaseModel) -> None:
        super().__init__(args)
        assert isinstance(args, Patient.Args)
        self.wrapped = _wrap(args.wrapped)

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import PatientPruner

        args = self.args
        assert isinstance(args, Patient.Args)
        inner = self.wrapped.create_pruner() if self.wrapped is not None else None
        with _chosen_on_purpose():
            return PatientPruner(inner, patience=args.patience, min_delta=args.min_delta)


class Wilcoxon(Assessor):
    name = "Wilcoxon"

    class Args(_Args):
        p_threshold: Annotated[float, Field(ge=0, le=1)] = 0.1
        n_startup_steps: _Int0 = 2

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import WilcoxonPruner

        with _chosen_on_purpose():
            return WilcoxonPruner(**self.args.model_dump())


class Silent(Assessor):
    """Stop a trial whose network is silent or saturated, from its own intermediate reports.

    ``lower = {key: threshold}`` stops the trial when ``report[key] < threshold`` (default
    ``{"spikes_per_sample": 1}``: fewer than one spike per sample), ``upper`` when
    ``report[key] > threshold`` (e.g. ``{"rate_per_step": 0.9}``: nearly every neuron firing in
    every step), judged from report ``start_step`` on (1: after the first epoch). Keys are those
    of the trial's intermediate dict, in the trial's own units; a report without a key is not
    judged on it. The trial is recorded EARLY_STOPPED with the reason (``silent network:
    spikes_per_sample=0.3 < 1``; a broken upper bound reads ``saturated network``, unless the key
    names a silent fraction) and, in the experiment's constraints, a ``silent`` value > 0 (the
    relative distance to the threshold), so a feasibility-aware tuner learns to avoid the silent
    region. ``wrapped: {name, args}`` adds another assessor's pruner (single objective only).
    """

    name = "Silent"

    class Args(_Args):
        lower: dict[str, _Float] | None = None
        upper: dict[str, _Float] = Field(default_factory=dict)
        start_step: _Int1 = 1
        wrapped: _Wrapped | None = None

        @model_validator(mode="after")
        def _thresholds(self) -> Silent.Args:
            if self.lower is not None and not self.lower and not self.upper:
                raise ValueError("give at least one threshold in lower or upper")
            if any(not k.strip() for k in [*(self.lower or {}), *self.upper]):
                raise ValueError("threshold keys must be non-empty")
            return self

    def __init__(self, args: BaseModel) -> None:
        super().__init__(args)
        assert isinstance(args, Silent.Args)
        self.lower = {"spikes_per_sample": 1.0} if args.lower is None else dict(args.lower)
        self.upper = dict(args.upper)
        self.start_step = args.start_step
        self.wrapped = _wrap(args.wrapped)

    def uses_pruner(self) -> bool:
        return self.wrapped is not None

    def create_pruner(self) -> BasePruner:
        from optuna.pruners import NopPruner

        return self.wrapped.create_pruner() if self.wrapped is not None else NopPruner()

    def judge(self, report: Mapping[str, Any], step: int) -> Judgement | None:
        if step < self.start_step:
            return None
        broken: list[tuple[str, str, float]] = []  # (kind, text, excess)
        for bounds, below in ((self.lower, True), (self.upper, False)):
            for key, limit in bounds.items():
                value = report.get(key)
                if not isinstance(value, int | float) or isinstance(value, bool):
                    continue
                if value != value:  # NaN: no activity measured at all
                    if not below:  # silent, maybe, but not saturated
                        continue
                    value = 0.0
                if (value < limit) if below else (value > limit):
                    excess = abs(value - limit) / abs(limit) if limit else 1.0
                    kind = "silent" if below or "silent" in key else "saturated"
                    broken.append((kind, f"{key}={value:.4g} {'<' if below else '>'} {limit:g}",
                                   min(excess, 1e6)))
        if not broken:
            return None
        kind = broken[0][0]
        return Judgement(f"{kind} network: " + ", ".join(text for _, text, _ in broken),
                    sum(e for _, _, e in broken))


def _optuna_warmup(n_warmup_steps: int) -> int:
    """Optuna's ``n_warmup_steps`` for spiketune's steps. Optuna counts a trial's steps from
    0, so its ``n_warmup_steps = N`` skips the first N results; spiketune numbers results
    from 1 (the first epoch's report is step 1), and passing N as it is would skip N - 1."""
    return n_warmup_steps + 1 if n_warmup_steps else 0


def _wrap(spec: _Wrapped | None) -> Assessor | None:
    """The assessor whose pruner another one wraps. Silent judges the reports themselves,
    which only the experiment's own assessor does (its pruner stops nothing): wrapped, its
    rule would be dropped without a word, so it is refused."""
    if spec is None:
        return None
    try:
        inner = make_assessor(spec.name, spec.args)
    except ConfigError as exc:
        names = {"assessor_args": "assessor_args.wrapped.args",
                 "assessor": "assessor_args.wrapped.name"}
        raise ConfigError(rename(exc.problems, names)) from None
    if isinstance(inner, Silent):
        raise ConfigError(Problem("assessor_args.wrapped.name", spec.name,
                                  "an assessor with a pruner; Silent judges the reports "
                                  "itself: make it the assessor, wrapping the other"))
    return inner


#: Assessors by canonical name.
ASSESSORS: dict[str, type[Assessor]] = {
    cls.name: cls
    for cls in (Medianstop, Hyperband, SuccessiveHalving, Percentile, Threshold, Patient, Wilcoxon,
                Silent)
}

_ALIASES = {"median": "Medianstop", "asha": "SuccessiveHalving", "silentnetwork": "Silent"}

_REFUSED = {
    "curvefitting": (
        "it predicts each trial's final result by fitting learning-curve models, which no Optuna "
        "pruner does",
        ["Medianstop", "Percentile", "Patient", "Threshold", "Hyperband"],
    ),
}


def canonical_assessor_name(name: str) -> str:
    """The canonical spelling of an accepted assessor name; ConfigError otherwise."""
    return canonical_name(
        "assessor", name, ASSESSORS, suffixes=("pruner", "assessor"), aliases=_ALIASES,
        refused=_REFUSED,
    )


def make_assessor(name: str | None, args: Mapping[str, Any] | None = None) -> Assessor | None:
    """Build the assessor ``name`` with validated ``args``; ``None`` means no early stopping.

    ``optimize_mode`` is a setting of the experiment, not an argument of an assessor: the
    configuration takes it out of NNI's ``classArgs`` before it calls this. Raises
    :class:`ConfigError` naming ``assessor`` or ``assessor_args.<key>``.
    """
    args = {} if args is None else args
    if name is None:
        if args:
            if not isinstance(args, Mapping):
                raise ConfigError(Problem("assessor_args", args, "a mapping of argument name "
                                          "to value, and given only with an assessor"))
            raise ConfigError(Problem("assessor_args", dict(args), "given without an assessor"))
        return None
    cls = ASSESSORS[canonical_assessor_name(name)]
    parsed, problems = validate_args(cls.Args, args, "assessor_args")
    if problems:
        raise ConfigError(problems)
    assert parsed is not None
    return cls(parsed)
