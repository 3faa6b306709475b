"""What an experiment found, read from its study without touching Optuna's internals.

``load_results(experiment)`` gives an :class:`ExperimentResults`: the config, one
:class:`TrialRecord` per trial and the best one (with several objectives, the Pareto front:
:meth:`ExperimentResults.pareto_front`). The CLI, reports and dashboards read results
only through here. :func:`export_results` writes them as CSV or JSON; :func:`records_from_json`
reads a JSON export back. :func:`save_retrained` and :func:`load_retrained` keep the chosen
configuration retrained with several seeds (:class:`Retrained`, in ``retrained.json``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from spiketune._values import flatten, is_finite, nonfinite_to_none
from spiketune.engine.outcome import (
    END_LAG_ATTR,
    Outcome,  # also importable from here (public name)
)
from spiketune.engine.storage import (
    ATTR_CONFIG,
    ATTR_ELAPSED,
    ExperimentPaths,
    StudyStore,
    experiment_location,
    find_experiment,
    read_experiment_json,
)
from spiketune.errors import StorageError
from spiketune.trial._artifacts import BestModel, BestModelKeeper, Predictions

if TYPE_CHECKING:
    import optuna

__all__ = [
    "RETRAINED_FILE",
    "ExperimentResults",
    "Outcome",
    "Retrained",
    "RetrainedRun",
    "TrialRecord",
    "export_results",
    "load_best_model",
    "load_predictions",
    "load_results",
    "load_retrained",
    "records_from_json",
    "save_retrained",
]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the user sees it. ``metrics[objective]`` is its objective:
    ``metrics["default"]``, or the key of the experiment's one objective when it names one
    (``objectives = [{key = "cost", ...}]``)."""

    number: int
    outcome: Outcome
    parameters: dict[str, Any]
    metrics: dict[str, Any] | None = None
    intermediate: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    trial_dir: Path | None = None
    started: datetime | None = None
    finished: datetime | None = None
    duration_seconds: float | None = None
    sequence_id: int | None = None
    #: Constraint values of a constrained experiment (see :mod:`spiketune.engine.goals`), else None.
    constraints: list[float] | None = None
    #: The metric :attr:`value` reads: the experiment's one objective.
    objective: str = "default"

    @property
    def value(self) -> float | None:
        """The objective (``metrics[objective]``), or ``None`` without a final result."""
        return None if self.metrics is None else self.metrics.get(self.objective)

    @property
    def feasible(self) -> bool | None:
        """False when a constraint value is > 0; None when no constraints were recorded."""
        if self.constraints is None:
            return None
        return not any(c > 0 for c in self.constraints)

    def to_dict(self, intermediate: bool = True) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become ``None``; times ISO 8601)."""
        out: dict[str, Any] = {
            "number": self.number,
            "sequence_id": self.sequence_id,
            "outcome": self.outcome.value,
            "value": nonfinite_to_none(self.value),
            "parameters": self.parameters,
            "metrics": nonfinite_to_none(self.metrics),
            "reason": self.reason,
            "trial_dir": None if self.trial_dir is None else str(self.trial_dir),
            "started": None if self.started is None else self.started.isoformat(),
            "finished": None if self.finished is None else self.finished.isoformat(),
            "duration_seconds": self.duration_seconds,
        }
        if self.objective != "default":  # the metric "value" is: read back the same
            out["objective"] = self.objective
        if self.constraints is not None:
            out["constraints"] = self.constraints
            out["feasible"] = self.feasible
        if intermediate:
            out["intermediate"] = nonfinite_to_none(self.intermediate)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            number=int(d["number"]),
            outcome=Outcome(d["outcome"]),
            parameters=dict(d.get("parameters") or {}),
            metrics=d.get("metrics"),
            intermediate=list(d.get("intermediate") or []),
            reason=d.get("reason"),
            trial_dir=None if d.get("trial_dir") is None else Path(d["trial_dir"]),
            started=_parse_time(d.get("started")),
            finished=_parse_time(d.get("finished")),
            duration_seconds=d.get("duration_seconds"),
            sequence_id=d.get("sequence_id"),
            constraints=d.get("constraints"),
            objective=str(d.get("objective", "default")),
        )


@dataclass(frozen=True)
class ExperimentResults:
    """Everything stored about one experiment.

    ``objectives``: ``(key, direction)`` per objective; empty means ``"default"`` in
    ``optimize_mode``. ``tradeoffs``: ``(key, direction)`` per metric the Pareto front sets
    against the objectives without the tuner optimising it (config ``tradeoffs``).
    """

    id: str
    directory: Path | None
    config: dict[str, Any]
    records: list[TrialRecord]
    optimize_mode: Literal["maximize", "minimize"]
    elapsed_seconds: float = 0.0
    objectives: tuple[tuple[str, str], ...] = ()
    tradeoffs: tuple[tuple[str, str], ...] = ()

    @property
    def goals(self) -> list[tuple[str, str]]:
        """``(key, direction)`` of every objective."""
        return list(self.objectives) or [("default", self.optimize_mode)]

    @property
    def objective_key(self) -> str:
        """The metric each record's ``value`` is: the first objective's key (``"default"``
        unless the experiment names its objectives; with several, the first, whose
        direction ``optimize_mode`` follows). Why not ``"default"`` then: a trial still
        reports ``default`` (the protocol asks for it), but unless an objective is named so
        it is no objective, and reports, exports and histories would show the wrong figure."""
        return self.goals[0][0]

    @property
    def front_goals(self) -> list[tuple[str, str]]:
        """``(key, direction)`` of every objective, then of every trade-off metric: the axes
        of the Pareto front the report draws."""
        return self.goals + list(self.tradeoffs)

    @property
    def has_front(self) -> bool:
        """Whether there is a front to draw: several objectives, or trade-off metrics."""
        return len(self.front_goals) > 1

    @property
    def multi_objective(self) -> bool:
        return len(self.goals) > 1

    def objective_values(
        self, record: TrialRecord, *, tradeoffs: bool = False
    ) -> list[float] | None:
        """The record's objective values (then its trade-off metrics, with ``tradeoffs``), or
        None unless all are finite numbers."""
        metrics = record.metrics or {}
        goals = self.front_goals if tradeoffs else self.goals
        values = [metrics.get(key) for key, _ in goals]
        return [float(v) for v in values] if all(is_finite(v) for v in values) else None

    def _candidates(self, tradeoffs: bool = False) -> list[tuple[TrialRecord, list[float]]]:
        out = []
        for r in self.records:
            values = self.objective_values(r, tradeoffs=tradeoffs)
            if r.outcome == Outcome.COMPLETE and r.feasible is not False and values is not None:
                out.append((r, values))
        return out

    def pareto_front(self, *, tradeoffs: bool = False) -> list[TrialRecord]:
        """The COMPLETE, feasible trials no other such trial dominates (better or equal in
        every objective, better in one), by trial number. One objective: the best trial(s).
        With ``tradeoffs``, the trade-off metrics count as objectives too (a trial without
        them is left out): the front of accuracy against cost of a search that optimised
        accuracy alone."""
        from spiketune.engine.goals import pareto_front

        candidates = self._candidates(tradeoffs)
        directions = [d for _, d in (self.front_goals if tradeoffs else self.goals)]
        front = pareto_front([v for _, v in candidates], directions)
        return sorted((candidates[i][0] for i in front), key=lambda r: r.number)

    @property
    def best_trials(self) -> list[TrialRecord]:
        """The Pareto front with several objectives; ``[best]`` (or ``[]``) with one."""
        if self.multi_objective:
            return self.pareto_front()
        return [] if self.best is None else [self.best]

    @property
    def best(self) -> TrialRecord | None:
        """The COMPLETE (and feasible, when constrained) trial with the best finite value of
        the first objective (lowest number on ties). With several objectives it is one member
        of the Pareto front, the best on the first objective: see :meth:`pareto_front`."""
        candidates = self._candidates()
        if not candidates:
            return None
        if self.multi_objective:
            front = set(r.number for r in self.pareto_front())
            candidates = [(r, v) for r, v in candidates if r.number in front]
        sign = -1.0 if self.goals[0][1] == "maximize" else 1.0
        return min(candidates, key=lambda c: (sign * c[1][0], c[0].number))[0]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.records if r.outcome == outcome)

    def failure(self) -> str | None:
        """Why the experiment has no result at all, when every trial it ran failed (a
        broken trial script, data it cannot read): the number of trials and the first one's
        cause; None when any trial reached a result or was stopped, or none ran.

        Why: commands that run an experiment exit non-zero then, so that a script or a CI
        job running them sees the failure rather than an exit status of success."""
        if not self.records or any(r.outcome != Outcome.FAILED for r in self.records):
            return None
        first = min(self.records, key=lambda r: r.number)
        return (f"every trial failed ({len(self.records)}); trial {first.number}: "
                f"{first.reason or 'no reason recorded'}")

    @property
    def parameter_names(self) -> list[str]:
        """Flattened parameter names (nested choices as ``outer.inner``), in first-seen order."""
        return _ordered_keys(flatten(r.parameters) for r in self.records)

    @property
    def metric_keys(self) -> list[str]:
        """Every key of every final metric dict, ``default`` first."""
        keys = _ordered_keys(r.metrics or {} for r in self.records)
        return (["default"] if "default" in keys else []) + [k for k in keys if k != "default"]


def load_results(experiment: str | Path, storage: str | None = None) -> ExperimentResults:
    """Read an experiment's results.

    ``experiment`` is an experiment directory, an id or an id prefix (looked up under
    ``$SPIKETUNE_EXPERIMENTS`` or ``~/spiketune-experiments``). ``storage`` overrides the
    database URL recorded in the directory (for a study moved to another server); with it,
    ``experiment`` may also be an experiment that has no directory on this machine (an id, id
    prefix or worker experiment name in that database).
    """
    directory, experiment_id, url = experiment_location(experiment, storage)
    store = StudyStore.open(url, experiment_id, read_only=True)
    try:
        with store.reading():
            return results_from_store(store, directory)
    finally:
        store.close()


def results_from_store(
    store: StudyStore,
    directory: Path | None,
    *,
    trials: list[optuna.trial.FrozenTrial] | None = None,
) -> ExperimentResults:
    """The results held by an open study (what :func:`load_results` returns); of ``trials``
    when given, the study's trials as the caller has just read them (the dashboard: reading
    every trial of a big study again takes seconds)."""
    attrs = store.study_attrs()
    if trials is None:
        trials = store.trials()
    return _results(store, directory, attrs, lambda objective: [
        record_from_trial(t, directory, objective) for t in trials])


#: The user attributes :func:`load_summary` reads of each trial.
_SUMMARY_KEYS = ("outcome", "metrics", "constraints")


def load_summary(experiment: str | Path, storage: str | None = None) -> ExperimentResults:
    """The results as :func:`load_results` reads them (``experiment`` and ``storage`` alike),
    each record holding its number, outcome, final metrics and constraint values alone: no
    parameters, intermediate reports, times or directory. Enough for how many trials there
    are, how each ended and which are best (``spiketune ls``).

    Why: reading every trial whole takes seconds with thousands of trials (about 1.5 s for
    3,000 on SQLite, most of ``ls`` then), this read some hundredths
    (:meth:`StudyStore.summaries`)."""
    import optuna

    directory, experiment_id, url = experiment_location(experiment, storage)
    store = StudyStore.open(url, experiment_id, read_only=True)
    try:
        with store.reading():
            attrs = store.study_attrs()
            trials = store.summaries(_SUMMARY_KEYS)
            return _results(store, directory, attrs, lambda objective: [TrialRecord(
                number=t.number,
                outcome=_outcome(optuna.trial.TrialState[t.state], t.attrs),
                parameters={},
                metrics=_final_metrics(optuna.trial.TrialState[t.state], t.attrs, t.values),
                constraints=t.attrs.get("constraints"),
                objective=objective,
            ) for t in trials])
    finally:
        store.close()


def _results(store: StudyStore, directory: Path | None, attrs: Mapping[str, Any],
             records: Callable[[str], list[TrialRecord]]) -> ExperimentResults:
    """The results of the study of ``store`` (its user attributes ``attrs``), with the
    records ``records(objective key)`` makes of its trials."""
    meta_config: dict[str, Any] = {}
    if directory is not None and not attrs.get(ATTR_CONFIG):
        with contextlib.suppress(StorageError):
            meta_config = read_experiment_json(ExperimentPaths(directory).experiment_json)[
                "config"]
    config = attrs.get(ATTR_CONFIG) or meta_config
    objectives, tradeoffs = (tuple(
        (str(o["key"]), str(o["direction"])) for o in config.get(field) or ()
        if isinstance(o, Mapping) and "key" in o and "direction" in o
    ) for field in ("objectives", "tradeoffs"))
    # Objectives named by their keys: the first is each record's value.
    objective = objectives[0][0] if objectives else "default"
    return ExperimentResults(
        id=store.study_name,
        directory=directory,
        config=config,
        records=records(objective),
        optimize_mode="maximize" if store.direction == "maximize" else "minimize",
        elapsed_seconds=float(attrs.get(ATTR_ELAPSED, 0.0)),
        objectives=objectives,
        tradeoffs=tradeoffs,
    )


def _outcome(state: optuna.trial.TrialState, attrs: Mapping[str, Any]) -> Outcome:
    """A stored trial's outcome: its state while it runs or waits, else the one spiketune
    recorded (from its Optuna state for a trial written by something other than
    spiketune)."""
    import optuna

    if state == optuna.trial.TrialState.RUNNING:
        return Outcome.RUNNING
    if state == optuna.trial.TrialState.WAITING:
        return Outcome.WAITING
    if "outcome" in attrs:
        return Outcome(attrs["outcome"])
    return {
        optuna.trial.TrialState.COMPLETE: Outcome.COMPLETE,
        optuna.trial.TrialState.PRUNED: Outcome.EARLY_STOPPED,
    }.get(state, Outcome.FAILED)


def _final_metrics(state: optuna.trial.TrialState, attrs: Mapping[str, Any],
                   values: list[float] | None) -> dict[str, Any] | None:
    """A stored trial's final metrics: the ones spiketune recorded, else (a complete trial
    written by something other than spiketune) its first value as ``default``."""
    import optuna

    metrics = attrs.get("metrics")
    if metrics is None and state == optuna.trial.TrialState.COMPLETE and values:
        metrics = {"default": values[0]}
    return metrics


def record_from_trial(
    trial: optuna.trial.FrozenTrial, directory: Path | None = None, objective: str = "default"
) -> TrialRecord:
    """The :class:`TrialRecord` of a stored Optuna trial (of the experiment in ``directory``,
    whose ``objective`` metric is its value)."""
    attrs = trial.user_attrs
    state = trial.state
    outcome = _outcome(state, attrs)
    metrics = _final_metrics(state, attrs, trial.values)
    intermediate = attrs.get("intermediate")
    if intermediate is None:
        intermediate = [{"default": v} for _, v in sorted(trial.intermediate_values.items())]
    started, finished = trial.datetime_start, trial.datetime_complete
    lag = attrs.get(END_LAG_ATTR)  # recorded after it had ended: its own end, not its record's
    if finished is not None and isinstance(lag, (int, float)) and math.isfinite(lag) and lag > 0:
        finished -= timedelta(seconds=float(lag))
        if started is not None:
            finished = max(started, finished)
    duration = (finished - started).total_seconds() if started and finished else None
    trial_dir = attrs.get("trial_dir")
    if trial_dir is None and directory is not None:  # running: recorded when it ends
        trial_dir = ExperimentPaths(directory).trial_dir(trial.number)
    return TrialRecord(
        number=trial.number,
        outcome=outcome,
        parameters=attrs.get("parameters", dict(trial.params)),
        metrics=metrics,
        intermediate=list(intermediate),
        reason=attrs.get("reason"),
        trial_dir=None if trial_dir is None else Path(trial_dir),
        started=started,
        finished=finished,
        duration_seconds=duration,
        sequence_id=attrs.get("sequence_id"),
        constraints=attrs.get("constraints"),
        objective=objective,
    )


# ------------------------------------------------------------------------------ export
def export_results(
    results: ExperimentResults,
    fmt: Literal["csv", "json"] = "csv",
    *,
    intermediate: bool = False,
) -> str:
    """The results as CSV or JSON text.

    CSV: one row per trial with columns ``number, sequence_id, outcome, value, param.<name>...,
    metric.<key>..., started, finished, duration_seconds, reason, trial_dir``; nested parameters
    are flattened with dots. With ``intermediate``, a ``step`` column is added and each trial's
    intermediate reports come as rows ``step = 1, 2, ...`` (their metric columns filled from the
    report) before the trial's own row (``step`` empty).

    In a constrained experiment, ``feasible`` and ``constraints`` columns come before
    ``started``.

    JSON: ``{"experiment", "optimize_mode", "best", "trials": [...]}`` (plus ``objectives``
    and ``pareto_front``, trial numbers, with several objectives) where each trial is
    :meth:`TrialRecord.to_dict`; ``intermediate`` adds each trial's list of reports. Non-finite
    numbers are written as ``null`` (strict JSON).
    """
    if fmt == "json":
        best = results.best
        doc = {
            "experiment": results.id,
            "optimize_mode": results.optimize_mode,
            "best": None if best is None else best.number,
            "trials": [r.to_dict(intermediate=intermediate) for r in results.records],
        }
        if results.multi_objective:
            doc["objectives"] = [{"key": k, "direction": d} for k, d in results.goals]
            doc["pareto_front"] = [r.number for r in results.pareto_front()]
        return json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}: use 'csv' or 'json'")
    params = results.parameter_names
    metrics = results.metric_keys
    if intermediate:
        metrics = metrics + [
            k
            for k in _ordered_keys(i for r in results.records for i in r.intermediate)
            if k not in metrics
        ]
    head = ["number", "sequence_id", "outcome"] + (["step"] if intermediate else []) + ["value"]
    tail = ["started", "finished", "duration_seconds", "reason", "trial_dir"]
    if any(r.constraints is not None for r in results.records):
        tail = ["feasible", "constraints", *tail]
    columns = head + [f"param.{p}" for p in params] + [f"metric.{m}" for m in metrics] + tail
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in results.records:
        base: dict[str, Any] = {
            "number": r.number,
            "sequence_id": "" if r.sequence_id is None else r.sequence_id,
            "outcome": r.outcome.value,
        }
        for p, v in flatten(r.parameters).items():
            base[f"param.{p}"] = _cell(v)
        if intermediate:
            for step, report in enumerate(r.intermediate, start=1):
                row = dict(base, step=step, value=_cell(report.get("default")))
                row.update({f"metric.{k}": _cell(v) for k, v in report.items()})
                writer.writerow(row)
        row = dict(base, value=_cell(r.value))
        if intermediate:
            row["step"] = ""
        row.update({f"metric.{k}": _cell(v) for k, v in (r.metrics or {}).items()})
        row.update(
            started="" if r.started is None else r.started.isoformat(),
            finished="" if r.finished is None else r.finished.isoformat(),
            duration_seconds="" if r.duration_seconds is None else r.duration_seconds,
            reason=r.reason or "",
            trial_dir="" if r.trial_dir is None else str(r.trial_dir),
        )
        if "feasible" in tail:
            row.update(feasible=_cell(r.feasible), constraints=_cell(r.constraints))
        writer.writerow(row)
    return buf.getvalue()


def records_from_json(text: str) -> list[TrialRecord]:
    """The trial records of a JSON export (inverse of ``export_results(..., "json")``)."""
    doc = json.loads(text)
    return [TrialRecord.from_dict(t) for t in doc["trials"]]


# ------------------------------------------------------------------------------ helpers
def _ordered_keys(dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        for k in d:
            seen.setdefault(k, None)
    return list(seen)


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return v


def _parse_time(s: str | None) -> datetime | None:
    return None if not s else datetime.fromisoformat(s)


def load_best_model(experiment: str | Path) -> BestModel | None:
    """The best model its trials kept for ``experiment`` (a directory, id, name or id prefix),
    or ``None`` when none was offered."""
    return BestModelKeeper(find_experiment(experiment)).current()


def load_predictions(experiment: str | Path) -> Predictions | None:
    """The predictions of the experiment's best model, or ``None`` when none were kept."""
    best = load_best_model(experiment)
    return None if best is None else best.predictions


# ------------------------------------------------------------------------------ retrained
#: The file, in the experiment directory, holding the chosen configuration retrained with
#: several seeds (:func:`save_retrained`, :func:`load_retrained`).
RETRAINED_FILE = "retrained.json"

_RETRAINED_KEYS = frozenset({"parameters", "runs", "metric", "split_digest", "trial", "command"})
_RUN_KEYS = frozenset({"seed", "metrics", "checkpoint", "split_digest"})


@dataclass(frozen=True)
class RetrainedRun:
    """One retraining of the chosen configuration with one seed.

    A search picks its configuration on validation, so the test accuracy of the best trial is
    one draw of the seed's luck; retraining with several seeds measures that spread.
    ``metrics`` is what the run scored (``"test"`` its test accuracy); a number that was not
    finite when written reads back as NaN. ``checkpoint`` is the run's model file, relative to
    the experiment directory (so the directory can move whole) or absolute. ``split_digest``
    names the data split the run trained and tested on (its ``result.json``'s; None: not
    recorded): a run on another split than the chosen trial's did not measure the search's
    choice on the search's test part (see :attr:`Retrained.off_split`).
    """

    seed: int
    metrics: dict[str, float]
    checkpoint: str | None = None
    split_digest: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"a retrained run's seed must be an integer, but got {self.seed!r}")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become ``None``)."""
        return {"seed": self.seed, "metrics": nonfinite_to_none(dict(self.metrics)),
                "checkpoint": self.checkpoint, "split_digest": self.split_digest}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrainedRun:
        """Inverse of :meth:`as_dict`; raises ValueError naming what is wrong."""
        _check_keys(d, _RUN_KEYS, {"seed", "metrics"}, "a run")
        metrics = d["metrics"]
        if not isinstance(metrics, Mapping):
            raise ValueError(f"a run's metrics must be an object, but got {metrics!r}")
        out: dict[str, float] = {}
        for key, value in metrics.items():
            if value is None:  # written for a non-finite number
                value = math.nan
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"metric {key!r} of seed {d['seed']!r} must be a number or "
                                 f"null, but got {value!r}")
            out[str(key)] = float(value)
        checkpoint = d.get("checkpoint")
        if checkpoint is not None and not isinstance(checkpoint, str):
            raise ValueError(f"a run's checkpoint must be a path or null, but got {checkpoint!r}")
        digest = d.get("split_digest")  # absent in files written before runs recorded it
        if digest is not None and not isinstance(digest, str):
            raise ValueError(f"a run's split_digest must be a string or null, but got "
                             f"{digest!r}")
        return cls(seed=d["seed"], metrics=out, checkpoint=checkpoint, split_digest=digest)


@dataclass(frozen=True)
class Retrained:
    """The configuration a search chose (its best trial by validation), retrained with several
    seeds and scored on the test set: the honest estimate of its test accuracy, as
    :attr:`mean` ± :attr:`std` over the seeds.

    ``metric`` is the key of each run's metrics that is summarised (``"test"``);
    ``split_digest`` identifies the data split of the chosen trial (the search's own split, so
    the test set stayed unseen while choosing), which every run should have used too (each
    run records its own: :attr:`off_split` lists those that did not); ``trial`` is the trial
    the parameters came from and ``command`` what was run, for whoever repeats it.
    """

    parameters: dict[str, Any]
    runs: tuple[RetrainedRun, ...]
    metric: str = "test"
    split_digest: str | None = None
    trial: int | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "runs", tuple(self.runs))  # a list given is stored as a tuple
        bad = [r for r in self.runs if not isinstance(r, RetrainedRun)]
        if bad:
            raise ValueError(f"runs must be RetrainedRun objects, but got {bad[0]!r}")
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric must be a non-empty metric key, but got {self.metric!r}")

    @property
    def off_split(self) -> tuple[RetrainedRun, ...]:
        """The runs that recorded another data split than :attr:`split_digest` (the chosen
        trial's). Why it matters: such a run was tested on another test part, whose samples
        the search may have validated on, so its figure is not the search's honest estimate.
        Runs without a recorded split are not counted; nothing is without a
        :attr:`split_digest`."""
        if self.split_digest is None:
            return ()
        return tuple(r for r in self.runs
                     if r.split_digest is not None and r.split_digest != self.split_digest)

    @property
    def values(self) -> list[float]:
        """Each run's ``metrics[metric]``, in run order; runs without a finite one are skipped."""
        return [float(r.metrics[self.metric]) for r in self.runs
                if is_finite(r.metrics.get(self.metric))]

    @property
    def mean(self) -> float | None:
        """The mean of :attr:`values`, or None without any."""
        values = self.values
        return statistics.fmean(values) if values else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation (ddof=1) of :attr:`values`: the spread one more seed
        would show. 0.0 for a single value (no spread measured), None without any."""
        values = self.values
        if not values:
            return None
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers become ``None``)."""
        return {
            "parameters": nonfinite_to_none(dict(self.parameters)),
            "runs": [r.as_dict() for r in self.runs],
            "metric": self.metric,
            "split_digest": self.split_digest,
            "trial": self.trial,
            "command": self.command,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Retrained:
        """Inverse of :meth:`as_dict`; raises ValueError naming what is wrong (an unknown key
        too: a misspelt one would otherwise be lost without a word)."""
        _check_keys(d, _RETRAINED_KEYS, {"parameters", "runs"}, "the file")
        parameters, runs = d["parameters"], d["runs"]
        if not isinstance(parameters, Mapping):
            raise ValueError(f"parameters must be an object, but got {parameters!r}")
        if not isinstance(runs, list):
            raise ValueError(f"runs must be a list, but got {runs!r}")
        for key in ("split_digest", "command"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise ValueError(f"{key} must be a string or null, but got {d[key]!r}")
        trial = d.get("trial")
        if trial is not None and (not isinstance(trial, int) or isinstance(trial, bool)):
            raise ValueError(f"trial must be a trial number or null, but got {trial!r}")
        return cls(
            parameters=dict(parameters),
            runs=tuple(RetrainedRun.from_dict(r) for r in runs),
            metric=d.get("metric", "test"),
            split_digest=d.get("split_digest"),
            trial=trial,
            command=d.get("command"),
        )


def save_retrained(directory: str | Path, retrained: Retrained) -> Path:
    """Write ``retrained`` as ``<directory>/retrained.json`` and return the file's path.

    Atomic (a temporary file, then a rename), so a report built meanwhile reads the old file or
    the new one, never half of one. Strict JSON with sorted keys (stable diffs); non-finite
    numbers are written as ``null``.
    """
    path = Path(directory) / RETRAINED_FILE
    text = json.dumps(retrained.as_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_retrained(directory: str | Path) -> Retrained | None:
    """The retrained configuration stored in the experiment ``directory``, or None when it has
    no ``retrained.json``.

    A file that cannot be read or does not hold a retrained configuration raises
    :class:`~spiketune.errors.StorageError` naming the file and the problem; the file is left
    as it is, for whoever wrote it to look at.
    """
    path = Path(directory) / RETRAINED_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise StorageError(f"the retrained configuration {path} cannot be read: {e}") from None
    try:
        doc = json.loads(text)
        if not isinstance(doc, Mapping):
            raise ValueError(f"expected a JSON object, but got {type(doc).__name__}")
        return Retrained.from_dict(doc)
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise StorageError(f"the retrained configuration {path} is corrupt: {e}") from None


def _check_keys(d: Any, known: frozenset[str], required: set[str], what: str) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{what} must be an object, but got {d!r}")
    missing = sorted(required - set(d))
    if missing:
        raise ValueError(f"{what} lacks {', '.join(map(repr, missing))}")
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; known: {sorted(known)}")
