"""How a trial ended: the explicit states, and :func:`decide`, the one place that settles them.

Every ending goes through :func:`decide`: a trial the scheduler watched to its end, and a
trial found RUNNING after its scheduler died (``interrupted=...``, no exit status known).
The scheduler and the crash recovery (:mod:`spiketune.engine.workers`) only record what it
returns, in the one form :func:`stored_form` gives; :func:`optuna_state` says which Optuna
state stores each outcome.

The states and their Optuna states:

==================  ============  ====================================================
``COMPLETE``        ``COMPLETE``  a finite final result (value(s) told to the tuner)
``EARLY_STOPPED``   ``PRUNED``    the assessor stopped it (the tuner ranks it low)
``FAILED``          ``FAIL``      the trial's own fault, or unknown (the tuner skips it)
``STOPPED``         ``FAIL``      ended by ``spiketune stop``, Ctrl-C or ``max_duration``
``RUNNING``         ``RUNNING``   not ended yet
``WAITING``         ``WAITING``   a queued retry of a lost trial
==================  ============  ====================================================

A STOPPED trial is stored as Optuna's ``FAIL`` (with the user attribute ``outcome`` =
``"STOPPED"``), not ``PRUNED``: it was ended for a reason that says nothing about its
parameters, and the samplers skip ``FAIL`` trials, while TPE would rank a ``PRUNED`` one
among the bad ones and steer away from parameters that were never judged. It keeps its
claim on ``max_trials`` (the budget counts trials started).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from spiketune._values import is_finite
from spiketune.engine.goals import Goal, Judgement, optuna_constraints, reported_constraints
from spiketune.engine.runners import Ended, StopReason, signal_name

if TYPE_CHECKING:
    import optuna

__all__ = ["Outcome", "Stored", "Verdict", "decide", "optuna_state", "optuna_steps",
           "stored_form"]

_STDERR_IN_REASON = 1500  # characters of stderr tail kept in a FAILED trial's reason
#: Said of a SIGKILL that spiketune did not send.
_OUTSIDE_SIGKILL = (" from outside spiketune (on Linux most often the out-of-memory killer, "
                    "when the machine runs out of memory: see dmesg)")

#: The user attribute of a trial recorded after it had ended (a lost trial found COMPLETE by a
#: later session): how many seconds before its record its final result was written. The
#: storage stamps a trial's end when it is recorded, which for such a trial can be hours late;
#: the records (``TrialRecord.finished``, its duration) take this many seconds off.
END_LAG_ATTR = "ended_seconds_before_record"


class Outcome(StrEnum):
    """How a trial ended (the first four), or that it has not ended yet (the last two)."""

    COMPLETE = "COMPLETE"  # reported a finite final result and exited cleanly
    EARLY_STOPPED = "EARLY_STOPPED"  # stopped by the assessor
    FAILED = "FAILED"  # see the record's reason
    STOPPED = "STOPPED"  # ended by a stop of the experiment (user or max_duration)
    RUNNING = "RUNNING"
    WAITING = "WAITING"

    @property
    def finished(self) -> bool:
        return self not in (Outcome.RUNNING, Outcome.WAITING)


def optuna_state(outcome: Outcome) -> optuna.trial.TrialState:
    """The Optuna state that stores a finished ``outcome`` (see the module docstring)."""
    import optuna

    state = optuna.trial.TrialState
    return {
        Outcome.COMPLETE: state.COMPLETE,
        Outcome.EARLY_STOPPED: state.PRUNED,
        Outcome.FAILED: state.FAIL,
        Outcome.STOPPED: state.FAIL,
        Outcome.RUNNING: state.RUNNING,
        Outcome.WAITING: state.WAITING,
    }[outcome]


@dataclass(frozen=True)
class Verdict:
    """How a trial ended: outcome, human-readable reason, final metrics."""

    outcome: Outcome
    reason: str | None
    metrics: dict[str, Any] | None


_DEFAULT_GOAL = Goal()


def decide(
    ended: Ended,
    *,
    stop_reason: StopReason | None,
    stop_detail: str = "",
    steps: int = 0,
    goal: Goal | None = None,
    interrupted: str | None = None,
) -> Verdict:
    """The one place where a trial's outcome is decided, from the facts of its ending.

    In order:

    1. A final result with every objective finite (``goal``'s keys; ``"default"`` without
       one) and readable constraint values (in a constrained experiment) is COMPLETE when
       the trial exited cleanly, when the engine ended it after it had reported, or when its
       scheduler died meanwhile. ``interrupted`` (the reason why it is gone, e.g.
       ``interrupted: the scheduler ended ...``) says so: the trial's exit status is then
       unknown, and its word is taken, since a trial reports its final result when it has
       one (the ``metrics.jsonl`` line is all there is to go by).
    2. A trial the assessor stopped is EARLY_STOPPED.
    3. A trial ended by a stop of the experiment (``spiketune stop``, Ctrl-C,
       ``max_duration``) is STOPPED.
    4. Otherwise FAILED: a timeout, the trial's own reason (a population member's
       ``fail()``), a non-zero exit or a signal (with the tail of stderr), an exception,
       ``interrupted`` without a final result (its reason), no final result, or a final
       result without a finite objective (naming the key) or with unreadable constraints.
       A trial that reported a final result and then exited non-zero FAILED: the exit
       says its own run went wrong after all (its metrics stay in the record).

    A trial killed by a signal is reported as ``killed by signal SIGSEGV`` (``ended.signal``,
    which the runner also reads behind a shell that turned it into exit status 128 + N),
    not as the exit code.
    """
    final = ended.final
    clean_exit = ended.exit_code in (None, 0) and ended.error is None and not ended.stopped
    problem = None
    if final is not None:
        _, problem = (goal or _DEFAULT_GOAL).values(final)
        if problem is None and goal is not None and goal.constrained and "constraints" in final:
            try:
                reported_constraints(final["constraints"])
            except ValueError as exc:
                problem = str(exc)
    if final is not None and problem is None and interrupted is not None:
        return Verdict(Outcome.COMPLETE, f"result read from metrics.jsonl; {interrupted}", final)
    if final is not None and problem is None and (clean_exit or stop_reason):
        return Verdict(Outcome.COMPLETE, None, final)
    if stop_reason == StopReason.PRUNE:
        why = f"stopped by the assessor after step {steps}"
        return Verdict(Outcome.EARLY_STOPPED, f"{why}: {stop_detail}" if stop_detail else why,
                       None)
    if stop_reason == StopReason.TIMEOUT:
        return Verdict(Outcome.FAILED, f"timeout: {stop_detail}", final)
    if stop_reason == StopReason.STOP:
        return Verdict(Outcome.STOPPED, f"stopped: {stop_detail}", final)
    if ended.failure is not None:
        return Verdict(Outcome.FAILED, ended.failure, final)
    if interrupted is not None and final is None:
        # what it wrote that could not be read may be the result it meant to give
        return Verdict(Outcome.FAILED, _with_protocol_errors(interrupted, ended), None)
    killed = _killed_by(ended)
    code = ended.exit_code
    if killed is not None or code not in (None, 0):
        what = f"killed by signal {killed}" if killed is not None else f"exit code {code}"
        if killed == "SIGKILL" and stop_reason is None:
            # spiketune sends SIGKILL only to a trial it is stopping (stop_reason set): this
            # one came from elsewhere, and an unexplained SIGKILL is most often the kernel
            # reclaiming memory, which nothing in the trial's own output says.
            what += _OUTSIDE_SIGKILL
        tail = (ended.error or "")[-_STDERR_IN_REASON:]
        return Verdict(Outcome.FAILED, f"{what}; stderr tail:\n{tail}" if tail else what, final)
    if ended.error is not None:
        return Verdict(Outcome.FAILED, f"exception:\n{ended.error[-_STDERR_IN_REASON:]}", final)
    if final is None:
        return Verdict(Outcome.FAILED, _with_protocol_errors(
            "exited without reporting a final result", ended), None)
    return Verdict(Outcome.FAILED, problem or "final result rejected", final)


def _with_protocol_errors(why: str, ended: Ended) -> str:
    """``why``, followed by the first unreadable lines of the trial's ``metrics.jsonl``."""
    if not ended.protocol_errors:
        return why
    return why + "; " + "; ".join(ended.protocol_errors[:3])


def _killed_by(ended: Ended) -> str | None:
    """The name of the signal that ended the trial's program (SIGSEGV, ...), or None."""
    if ended.signal is not None:
        return signal_name(ended.signal)
    code = ended.exit_code
    return signal_name(-code) if code is not None and code < 0 else None


def optuna_steps(reports: list[dict[str, Any]], key: str = "default") -> dict[int, float]:
    """Optuna's intermediate values of a trial: the finite ``key`` of each report
    (:attr:`Goal.step_key`), by step (1, 2, ...; a report without a finite ``key`` keeps its
    step number but has no value)."""
    return {i: float(r[key]) for i, r in enumerate(reports, start=1) if is_finite(r.get(key))}


@dataclass(frozen=True)
class Stored:
    """How a verdict is written to the study (see :func:`stored_form`)."""

    state: optuna.trial.TrialState
    values: list[float] | None  # one per objective; what the tuner is told
    attrs: dict[str, Any]  # trial user attributes
    steps: dict[int, float]  # Optuna intermediate values
    constraints: list[float] | None

    @property
    def system_attrs(self) -> dict[str, float]:
        """The trial system attributes that store its constraint values as Optuna's
        ``Trial.set_constraint`` does (``constraints:reported`` ...): what Optuna's
        ``best_trial`` and ``best_trials`` read to leave infeasible trials out."""
        return {} if self.constraints is None else optuna_constraints(self.constraints)

    @property
    def value(self) -> float | list[float] | None:
        """What Optuna stores: one value, a list (several objectives), or None."""
        if self.values is None:
            return None
        return self.values[0] if len(self.values) == 1 else self.values


def stored_form(
    verdict: Verdict,
    intermediate: list[dict[str, Any]],
    goal: Goal,
    *,
    design: Judgement | None = None,
    silent: Judgement | None = None,
) -> Stored:
    """The Optuna state, values, attributes and intermediate values that record ``verdict``
    of a trial that reported ``intermediate``: the one form every recorder writes. ``design``
    and ``silent`` are the judgements of the design check and of the assessor's own rule,
    when they refused the trial (a constrained experiment records their excess)."""
    steps = optuna_steps(intermediate, goal.step_key)
    values: list[float] | None = None
    if verdict.outcome == Outcome.COMPLETE and verdict.metrics is not None:
        values, _ = goal.values(verdict.metrics)
    elif verdict.outcome == Outcome.EARLY_STOPPED and steps and not goal.multi:
        values = [steps[max(steps)]]  # what Optuna stores for a pruned trial
    attrs: dict[str, Any] = {
        "metrics": verdict.metrics,
        "intermediate": intermediate,
        "outcome": verdict.outcome.value,
        "reason": verdict.reason,
    }
    constraints = None  # failed or stopped: its feasibility is unknown
    judged = verdict.outcome in (Outcome.COMPLETE, Outcome.EARLY_STOPPED)
    if goal.constrained and (judged or design is not None):
        metrics = verdict.metrics if verdict.outcome == Outcome.COMPLETE else None
        constraints = goal.constraints(metrics, design, silent)
        attrs["constraints"] = constraints
        if verdict.outcome == Outcome.COMPLETE:
            broken = _broken(constraints, metrics, silent)
            if broken is not None:
                attrs["reason"] = "; ".join(r for r in (broken, verdict.reason) if r)
    return Stored(optuna_state(verdict.outcome), values, attrs, steps, constraints)


def _broken(constraints: list[float], metrics: dict[str, Any] | None,
            silent: Judgement | None) -> str | None:
    """Why a COMPLETE trial is infeasible (its reason: the outcome alone does not say it),
    or None when it is feasible. The other outcomes say it already: a trial the design check
    refused is FAILED ``infeasible: ...``, one the silent rule stopped EARLY_STOPPED with it."""
    parts = []
    if constraints[0] > 0 and metrics is not None:
        values = ", ".join(f"{c:g}" for c in reported_constraints(metrics["constraints"]))
        parts.append(f"its reported constraints {values} (> 0 is broken)")
    if silent is not None:  # it ended before the stop reached it
        parts.append(silent.reason)
    return "infeasible: " + "; ".join(parts) if parts else None
