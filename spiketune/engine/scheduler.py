"""The scheduler: asks the tuner for parameters, starts trials, decides how each one ended.

It is the only code that writes the study (through
:class:`~spiketune.engine.storage.StudyStore`), and
:func:`decide` is the one place where a trial's fate is settled. One loop, one thread::

    while budget left and not stopping:
        start trials up to the concurrency (a queued retry first; else claim a slot, ask,
        sample, record, launch)
    poll the runner -> intermediate results (report, maybe prune) and endings (decide, record)
    enforce max_trial_duration, max_duration, stop requests
    every heartbeat_interval: renew this scheduler's heartbeats, record other schedulers'
        trials without a heartbeat for grace_period as lost (and queue their retries), read
        the shared stop request and elapsed time

Several schedulers (workers, on one or many machines) may share a study. A scheduler whose
slots are all claimed keeps running, idle, while any trial of the study runs or waits, so a
surviving worker is there to retry the trials of one that dies.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiketune.engine.goals import (
    CONSTRAINTS,
    Goal,
    Judgement,
    Objective,
    infeasible,
    reported_constraints,
    sampler_trials,
    worst_values,
)
from spiketune.engine.results import Outcome
from spiketune.engine.runners import Ended, Launch, Reported, Runner, StopReason, process_alive
from spiketune.engine.storage import (
    ATTR_ELAPSED,
    ATTR_STOP,
    ExperimentPaths,
    StudyStore,
    Unfinished,
    is_transient,
    parse_owner,
)

if TYPE_CHECKING:
    import optuna

    from spiketune.engine.space import SearchSpace

__all__ = ["Budget", "Progress", "Scheduler", "Verdict", "decide", "fail_lost_trial",
           "recover_interrupted"]

_STDERR_IN_REASON = 1500  # characters of stderr tail kept in a FAILED trial's reason


@dataclass(frozen=True)
class Budget:
    """Limits of an experiment; durations in seconds of wall time, across resumes."""

    max_trials: int | None = None
    max_duration: float | None = None
    max_trial_duration: float | None = None


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays (``spiketune run``)."""

    started: int  # trials ever started (claims), this session's and earlier ones
    running: int
    complete: int
    early_stopped: int
    failed: int
    best_value: float | None
    best_number: int | None
    elapsed_seconds: float
    max_trials: int | None
    max_duration: float | None
    stopping: bool

    @property
    def done(self) -> int:
        return self.complete + self.early_stopped + self.failed

    @property
    def remaining_seconds(self) -> float | None:
        if self.max_duration is None:
            return None
        return max(0.0, self.max_duration - self.elapsed_seconds)


@dataclass(frozen=True)
class Verdict:
    """How a trial ended: outcome, human-readable reason, final metrics."""

    outcome: Outcome
    reason: str | None
    metrics: dict[str, Any] | None


@dataclass
class _Live:
    """A trial this scheduler started and has not yet recorded as ended."""

    number: int
    trial_id: int
    handle: optuna.Trial
    sequence_id: int
    parameters: dict[str, Any]
    trial_dir: Path
    started: float  # monotonic seconds
    gpu: int | None
    intermediate: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    lost: bool = False  # another scheduler recorded it lost: its end is not ours to record
    design: Judgement | None = None  # the hardware check found it infeasible: never launched
    silent: Judgement | None = None  # the assessor's own rule stopped it (silent network)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def decide(
    ended: Ended,
    *,
    stop_reason: StopReason | None,
    stop_detail: str = "",
    steps: int = 0,
    goal: Goal | None = None,
) -> Verdict:
    """The one place where a trial's outcome is decided, from the facts of its ending.

    In order: a final result with every objective finite (``goal``'s keys; ``"default"``
    without one) and readable constraint values (in a constrained experiment), from a trial
    that exited cleanly (or that we ended after it had reported), is COMPLETE; a trial the
    assessor stopped is EARLY_STOPPED; then FAILED for a timeout, an experiment stop, a
    non-zero exit (with the tail of stderr), an exception, no final result, or a final result
    without a finite objective (naming the key) or with unreadable constraints.
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
    if final is not None and problem is None and (clean_exit or stop_reason):
        return Verdict(Outcome.COMPLETE, None, final)
    if stop_reason == StopReason.PRUNE:
        why = f"stopped by the assessor after step {steps}"
        return Verdict(Outcome.EARLY_STOPPED, f"{why}: {stop_detail}" if stop_detail else why,
                       None)
    if stop_reason == StopReason.TIMEOUT:
        return Verdict(Outcome.FAILED, f"timeout: {stop_detail}", final)
    if stop_reason == StopReason.STOP:
        return Verdict(Outcome.FAILED, f"stopped: {stop_detail}", final)
    code = ended.exit_code
    if code not in (None, 0):
        what = f"killed by signal {_signal_name(-code)}" if code < 0 else f"exit code {code}"
        tail = (ended.error or "")[-_STDERR_IN_REASON:]
        return Verdict(Outcome.FAILED, f"{what}; stderr tail:\n{tail}" if tail else what, final)
    if ended.error is not None:
        return Verdict(Outcome.FAILED, f"exception:\n{ended.error[-_STDERR_IN_REASON:]}", final)
    if final is None:
        why = "exited without reporting a final result"
        if ended.protocol_errors:
            why += "; " + "; ".join(ended.protocol_errors[:3])
        return Verdict(Outcome.FAILED, why, None)
    return Verdict(Outcome.FAILED, problem or "final result rejected", final)


_DEFAULT_GOAL = Goal()


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


class _GpuSlots:
    """Which GPU each running trial may use: at most ``per_gpu`` trials per index."""

    def __init__(self, gpus: Sequence[int] | None, per_gpu: int) -> None:
        self.gpus = list(gpus or [])
        self.per_gpu = per_gpu
        self.load = dict.fromkeys(self.gpus, 0)

    @property
    def capacity(self) -> int | None:
        return len(self.gpus) * self.per_gpu if self.gpus else None

    def acquire(self) -> int | None:
        """The least loaded GPU with room (lowest index first); None without GPUs."""
        if not self.gpus:
            return None
        gpu = min(self.gpus, key=lambda g: (self.load[g], self.gpus.index(g)))
        if self.load[gpu] >= self.per_gpu:
            raise RuntimeError("no free GPU slot")  # the scheduler checks capacity first
        self.load[gpu] += 1
        return gpu

    def release(self, gpu: int | None) -> None:
        if gpu is not None:
            self.load[gpu] -= 1


class Scheduler:
    """Runs one experiment session: from start (or resume) until its budget or a stop.

    The tuner's sampler and the assessor's pruner work on an in-memory copy of the study
    (:meth:`StudyStore.working_study`); every trial is written to the stored study when it
    starts and when it ends. Stop it from another thread with :meth:`request_stop`, from
    another process by creating the experiment's ``stop`` file, or with SIGINT/SIGTERM when it
    runs in the main thread (a second signal kills the trials at once).
    """

    def __init__(
        self,
        *,
        store: StudyStore,
        runner: Runner,
        paths: ExperimentPaths,
        experiment_id: str,
        space: SearchSpace,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner | None,
        budget: Budget,
        concurrency: int = 1,
        gpus: Sequence[int] | None = None,
        trials_per_gpu: int = 1,
        fixed_trials: list[dict[str, Any]] | None = None,
        progress: Callable[[Progress], None] | None = None,
        poll_interval: float = 0.05,
        sync_interval: float = 2.0,
        heartbeat_interval: float = 5.0,
        grace_period: float = 60.0,
        max_retries: int = 0,
        goal: Goal | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.paths = paths
        self.experiment_id = experiment_id
        self.space = space
        self.budget = budget
        self.concurrency = concurrency
        self.fixed = fixed_trials
        self.progress_callback = progress
        self.poll_interval = poll_interval
        self.sync_interval = sync_interval
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retries = max_retries
        self.goal = goal  # None: the study's one direction on "default"
        self._sampler = sampler
        self._pruner = pruner
        self._gpus = _GpuSlots(gpus, trials_per_gpu)
        self._live: dict[int, _Live] = {}
        self._stop_detail: str | None = None
        self._force = False
        self._budget_stop = False
        self._stop_lock = threading.Lock()
        self._counts = dict.fromkeys(Outcome, 0)
        self._best: tuple[float, int] | None = None
        self._known_ids: set[int] = set()
        self._observed: dict[int, tuple[tuple[str | None, float | None], float]] = {}
        self._waiting = 0  # queued retries in the study, as last seen
        self._others_running = 0  # trials of other schedulers running, as last seen
        self._last_house = -math.inf
        self.status = "created"

    # ------------------------------------------------------------------ public
    def request_stop(
        self, detail: str = "stop requested", *, force: bool = False, budget: bool = False
    ) -> None:
        """Ask the loop to end the running trials and return (thread-safe).

        ``budget``: the stop is the duration budget running out (the session is then "done",
        not "stopped").
        """
        with self._stop_lock:
            if self._stop_detail is None:
                self._stop_detail = detail
                self._budget_stop = budget
            self._force = self._force or force

    @property
    def stopping(self) -> bool:
        return self._stop_detail is not None

    def run(self) -> str:
        """Run until the budget is used or a stop; return ``"done"`` or ``"stopped"``."""
        self._open_session()
        restore = self._install_signal_handlers()
        try:
            self._loop()
        except BaseException:
            self._abort("the scheduler failed")
            raise
        finally:
            restore()
            self._save_elapsed()
        self.status = "stopped" if self.stopping and not self._budget_stop else "done"
        return self.status

    # ------------------------------------------------------------------ session
    def _open_session(self) -> None:
        trials = self.store.trials()
        self._known_ids = {t._trial_id for t in trials}
        if self.goal is None:
            self.goal = Goal((Objective(key="default", direction=self.store.direction),))
        self._working = self.store.working_study(self._sampler, self._pruner_or_nop(),
                                                 sampler_trials(trials, self.goal))
        direction = self.store.direction
        self._sign = -1.0 if direction == "maximize" else 1.0
        for t in trials:
            self._count_stored(t)
        attrs = self.store.study_attrs()
        self._elapsed_base = float(attrs.get(ATTR_ELAPSED, 0.0))
        if attrs.get(ATTR_STOP):  # a new session continues a stopped experiment
            self.store.set_study_attr(ATTR_STOP, None)
        self._t0 = time.monotonic()
        self._last_elapsed_save = self._t0
        self._last_sync = self._t0
        self._last_progress = 0.0
        self._started = self.store.claims_used()
        self.status = "running"

    def _pruner_or_nop(self) -> optuna.pruners.BasePruner:
        import optuna

        return self._pruner if self._pruner is not None else optuna.pruners.NopPruner()

    def _count_stored(self, t: optuna.trial.FrozenTrial) -> None:
        from spiketune.engine.results import record_from_trial

        rec = record_from_trial(t)
        self._counts[rec.outcome] += 1
        if rec.outcome == Outcome.COMPLETE and not infeasible(rec.constraints):
            self._note_best(t.values[0] if t.values else rec.value, rec.number)

    def _note_best(self, value: Any, number: int) -> None:
        if not _finite(value):
            return
        key = self._sign * float(value)
        if self._best is None or key < self._sign * self._best[0]:
            self._best = (float(value), number)

    def elapsed(self) -> float:
        """Seconds of wall time the experiment has run, all sessions together."""
        return self._elapsed_base + (time.monotonic() - self._t0)

    def _save_elapsed(self) -> None:
        with contextlib.suppress(Exception):  # never mask the real error on the way out
            self.store.set_study_attr(ATTR_ELAPSED, round(self.elapsed(), 3))
        self._last_elapsed_save = time.monotonic()

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous: dict[int, Any] = {}

        def handler(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            self.request_stop(f"{name} received", force=self.stopping)

        # SIGHUP too: trials run in sessions of their own, so a closed terminal would orphan them.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, handler)

        def restore() -> None:
            for sig, h in previous.items():
                signal.signal(sig, h)

        return restore

    # ------------------------------------------------------------------ loop
    def _capacity(self) -> int:
        cap = self._gpus.capacity
        return self.concurrency if cap is None else min(self.concurrency, cap)

    def _limit(self) -> int | None:
        fixed = None if self.fixed is None else len(self.fixed)
        limits = [x for x in (self.budget.max_trials, fixed) if x is not None]
        return min(limits) if limits else None

    def _loop(self) -> None:
        exhausted = False
        while True:
            idle = exhausted and not self._live
            self._housekeeping(self.heartbeat_interval if not idle
                               else min(self.heartbeat_interval, 0.5))
            if self.paths.stop_file.exists():
                self.request_stop("stop requested (spiketune stop)")
            max_duration = self.budget.max_duration
            if max_duration is not None and self.elapsed() >= max_duration:
                self.request_stop(f"max_duration of {max_duration:g} s reached", budget=True)
            if self.stopping:
                for live in self._live.values():
                    self._stop_trial(live, StopReason.STOP, self._stop_detail or "", self._force)
            else:
                self._enforce_trial_timeouts()
                while len(self._live) < self._capacity():
                    if self._waiting and self._take_retry():
                        continue
                    if exhausted:
                        break
                    exhausted = not self._launch_one()
                    if exhausted:
                        self._last_house = -math.inf  # look at the study before leaving
                        self._housekeeping(0.0)
            if not self._live and (
                self.stopping
                or (exhausted and not self._waiting and not self._others_running)
            ):
                break
            for event in self.runner.poll(self._poll_timeout()):
                if isinstance(event, Reported):
                    self._on_report(event)
                else:
                    self._on_end(event)
            self._tick()

    def _poll_timeout(self) -> float:
        timeout = self.poll_interval
        limit = self.budget.max_trial_duration
        if limit is not None:
            now = time.monotonic()
            for live in self._live.values():
                if live.stop_reason is None:
                    timeout = min(timeout, max(0.0, live.started + limit - now))
        return timeout

    # ------------------------------------------------------------------ workers
    def _housekeeping(self, interval: float) -> None:
        """Every ``interval`` seconds: heartbeats, the sweep for lost trials, shared state.

        A round that meets a lost database connection is skipped (the next one tries again):
        a short outage must not end the trials that run meanwhile.
        """
        now = time.monotonic()
        if now - self._last_house < interval:
            return
        self._last_house = now
        try:
            self._housekeeping_round(now)
        except Exception as e:
            if not is_transient(e):
                raise

    def _housekeeping_round(self, now: float) -> None:
        mine = {live.trial_id for live in self._live.values()}
        if mine:
            for trial_id in self.store.beat(mine):
                # Another scheduler took this trial for lost (we were silent too long): its
                # record is written and its retry queued, so end it without recording it.
                live = next(x for x in self._live.values() if x.trial_id == trial_id)
                if not live.lost:
                    live.lost = True
                    self.runner.stop(live.number, StopReason.STOP, force=True)
        rows = self.store.unfinished()
        self._waiting = sum(1 for r in rows if r.waiting)
        self._others_running = sum(1 for r in rows if not r.waiting and r.trial_id not in mine)
        for row in self._stale(rows, mine, now):
            self._fail_lost(row)
        attrs = self.store.study_attrs()
        if attrs.get(ATTR_STOP) and not self.stopping:
            self.request_stop("stop requested (spiketune stop)")
        # The duration budget is shared: every scheduler follows the one that has counted most.
        stored = float(attrs.get(ATTR_ELAPSED, 0.0))
        ahead = stored - self.elapsed()
        if ahead > 0:
            self._elapsed_base += ahead

    def _stale(self, rows: list[Unfinished], mine: set[int], now: float) -> list[Unfinished]:
        """Running trials of other schedulers whose heartbeat has not changed for
        ``grace_period`` seconds of this scheduler's own clock (so clocks need not agree)."""
        observed: dict[int, tuple[tuple[str | None, float | None], float]] = {}
        stale = []
        for row in rows:
            if row.waiting or row.trial_id in mine:
                continue
            beat = (row.owner, row.beat_at)
            previous = self._observed.get(row.trial_id)
            if previous is None or previous[0] != beat:
                observed[row.trial_id] = (beat, now)
                continue
            observed[row.trial_id] = previous
            if now - previous[1] >= self.grace_period:
                stale.append(row)
        self._observed = observed
        return stale

    def _fail_lost(self, row: Unfinished) -> None:
        import optuna

        trial = self.store.trial(row.trial_id)
        if trial.state != optuna.trial.TrialState.RUNNING:
            return
        owner = row.owner or "a scheduler that never sent one"
        trial_dir = self.paths.trial_dir(trial.number)
        if parse_owner(owner)[0] == socket.gethostname():
            info = _read_process_info(trial_dir)
            if info is not None and not process_alive(info.get("scheduler_pid"),
                                                      info.get("scheduler_start")):
                _kill_leftovers(info)
        reason = f"worker lost: no heartbeat from {owner} for {self.grace_period:g} s"
        retry = fail_lost_trial(self.store, trial, reason, self.max_retries)
        self._observed.pop(row.trial_id, None)
        if retry is not None and retry >= 0:
            self._waiting += 1

    def _take_retry(self) -> bool:
        """Start a queued retry (a WAITING trial) as one of ours; False if none is left."""
        trial = self.store.take_waiting(self.paths.trial_dir)
        if trial is None:
            self._waiting = 0
            return False
        self._waiting = max(0, self._waiting - 1)
        self._working.enqueue_trial(dict(trial.params), skip_if_exists=False)
        handle = self._working.ask()
        self.space.sample(handle)  # the same Optuna parameters, for reports and pruning
        slot = trial.user_attrs.get("sequence_id")
        self._known_ids.add(trial._trial_id)
        self._launch(handle, trial.user_attrs["parameters"], trial._trial_id, trial.number,
                     -1 if slot is None else int(slot))
        return True

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_elapsed_save >= 1.0:  # what a crash can lose of the budget
            self._save_elapsed()
        if self.progress_callback is not None and now - self._last_progress >= 0.2:
            self._last_progress = now
            self.progress_callback(self.progress())

    def progress(self) -> Progress:
        best = self._best
        return Progress(
            started=self._started,
            running=len(self._live),
            complete=self._counts[Outcome.COMPLETE],
            early_stopped=self._counts[Outcome.EARLY_STOPPED],
            failed=self._counts[Outcome.FAILED],
            best_value=None if best is None else best[0],
            best_number=None if best is None else best[1],
            elapsed_seconds=self.elapsed(),
            max_trials=self._limit(),
            max_duration=self.budget.max_duration,
            stopping=self.stopping,
        )

    def _enforce_trial_timeouts(self) -> None:
        limit = self.budget.max_trial_duration
        if limit is None:
            return
        now = time.monotonic()
        for live in self._live.values():
            if live.stop_reason is None and now - live.started >= limit:
                self._stop_trial(live, StopReason.TIMEOUT, f"ran longer than max_trial_duration "
                                 f"({limit:g} s)")

    def _stop_trial(
        self, live: _Live, reason: StopReason, detail: str, force: bool = False
    ) -> None:
        if live.stop_reason is None:
            live.stop_reason, live.stop_detail = reason, detail
            self.runner.stop(live.number, reason, force=force)
        elif force:
            self.runner.stop(live.number, live.stop_reason, force=True)

    # ------------------------------------------------------------------ starting a trial
    def _sync(self) -> None:
        """Add trials finished by other schedulers sharing the study to the working copy
        (skipped, until the next time, while the database cannot be reached)."""
        now = time.monotonic()
        if now - self._last_sync < self.sync_interval:
            return
        self._last_sync = now
        try:
            finished = self.store.new_finished_trials(self._known_ids)
        except Exception as e:
            if not is_transient(e):
                raise
            return
        for t in finished:
            self._known_ids.add(t._trial_id)
            view = sampler_trials([t], self._goal,
                                  self._working.get_trials(deepcopy=False))
            self._working.add_trials(view)
            self._count_stored(t)

    def _launch_one(self) -> bool:
        """Start one trial; False when the budget allows no more."""
        slot = self.store.claim(self._limit())
        if slot is None:
            return False
        self._started = slot + 1
        self._sync()
        if self.fixed is not None:
            self._working.enqueue_trial(self.fixed[slot], skip_if_exists=False)
        handle = self._working.ask()
        parameters = self.space.sample(handle)
        trial_id, number = self.store.start_trial(
            handle.params,
            handle.distributions,
            {"parameters": parameters, "sequence_id": slot},
            trial_dir=self.paths.trial_dir,
        )
        self._known_ids.add(trial_id)
        self._launch(handle, parameters, trial_id, number, slot)
        return True

    def _launch(
        self,
        handle: optuna.Trial,
        parameters: dict[str, Any],
        trial_id: int,
        number: int,
        slot: int,
    ) -> None:
        parameters_json = json.dumps(parameters)
        gpu = self._gpus.acquire()
        live = _Live(
            number=number,
            trial_id=trial_id,
            handle=handle,
            sequence_id=slot,
            parameters=parameters,
            trial_dir=self.paths.trial_dir(number),
            started=time.monotonic(),
            gpu=gpu,
        )
        self._live[number] = live
        if self._goal.design is not None:
            live.design = self._goal.design(parameters)
            if live.design is not None:  # never launched: recorded at once, with its constraints
                self._record(live, Verdict(Outcome.FAILED, live.design.reason, None))
                return
        launch = Launch(
            number=number,
            sequence_id=slot,
            parameters=parameters,
            parameters_json=parameters_json,
            trial_dir=live.trial_dir,
            experiment_id=self.experiment_id,
            gpu=gpu,
        )
        try:
            self.runner.start(launch)
        except Exception as e:
            self._record(live, Verdict(Outcome.FAILED, f"could not start: {e}", None))

    # ------------------------------------------------------------------ events
    def _on_report(self, event: Reported) -> None:
        live = self._live.get(event.number)
        if live is None:
            return
        live.intermediate.append(event.value)
        step = len(live.intermediate)
        if live.stop_reason is not None:
            return
        if self._goal.judge is not None:
            live.silent = self._goal.judge(event.value, step)
            if live.silent is not None:
                self._stop_trial(live, StopReason.PRUNE, live.silent.reason)
                return
        value = event.value["default"]
        if not _finite(value) or self._goal.multi:  # Optuna keeps one objective's reports
            return
        live.handle.report(float(value), step)
        if self._pruner is not None and live.handle.should_prune():
            self._stop_trial(live, StopReason.PRUNE, "")

    def _on_end(self, event: Ended) -> None:
        live = self._live.get(event.number)
        if live is None:
            return
        if live.lost:
            self._forget(live)
            return
        verdict = decide(
            event,
            stop_reason=live.stop_reason,
            stop_detail=live.stop_detail,
            steps=len(live.intermediate),
            goal=self._goal,
        )
        self._record(live, verdict)

    def _record(self, live: _Live, verdict: Verdict) -> None:
        """Write the verdict to the study (once) and to the working copy."""
        import optuna

        state = {
            Outcome.COMPLETE: optuna.trial.TrialState.COMPLETE,
            Outcome.EARLY_STOPPED: optuna.trial.TrialState.PRUNED,
            Outcome.FAILED: optuna.trial.TrialState.FAIL,
        }[verdict.outcome]
        goal = self._goal
        steps = {i: float(v["default"]) for i, v in enumerate(live.intermediate, start=1)
                 if _finite(v["default"])}
        values: list[float] | None = None
        if verdict.outcome == Outcome.COMPLETE:
            assert verdict.metrics is not None
            values, _ = goal.values(verdict.metrics)
        elif verdict.outcome == Outcome.EARLY_STOPPED and steps and not goal.multi:
            values = [steps[max(steps)]]  # what Optuna stores for a pruned trial
        attrs: dict[str, Any] = {
            "metrics": verdict.metrics,
            "intermediate": live.intermediate,
            "outcome": verdict.outcome.value,
            "reason": verdict.reason,
        }
        constraints = None  # an ordinary failure has none: its feasibility is unknown
        if goal.constrained and (verdict.outcome != Outcome.FAILED or live.design is not None):
            metrics = verdict.metrics if verdict.outcome == Outcome.COMPLETE else None
            constraints = goal.constraints(metrics, live.design, live.silent)
            attrs["constraints"] = constraints
        stored = None if values is None else values[0] if len(values) == 1 else values
        if not self.store.finish_trial(live.trial_id, state, stored, attrs, steps):
            # Recorded lost by another scheduler meanwhile (its retry is queued).
            self._forget(live)
            return
        self._tell(live, state, values, constraints)
        self._counts[verdict.outcome] += 1
        if verdict.outcome == Outcome.COMPLETE and values and not infeasible(constraints):
            self._note_best(values[0], live.number)
        self._gpus.release(live.gpu)
        del self._live[live.number]

    @property
    def _goal(self) -> Goal:
        assert self.goal is not None  # set when the session opens
        return self.goal

    def _tell(
        self,
        live: _Live,
        state: optuna.trial.TrialState,
        values: list[float] | None,
        constraints: list[float] | None,
    ) -> None:
        """Tell the tuner's working copy how a trial ended, as :func:`sampler_trials` would
        show its record: a trial that broke a constraint without a result counts as COMPLETE
        with the worst values so far, so feasibility-aware samplers learn from it."""
        import optuna

        complete = optuna.trial.TrialState.COMPLETE
        if constraints is not None:
            for name, value in zip(CONSTRAINTS, constraints, strict=True):
                live.handle.set_constraint(name, value)  # what the samplers read
            if state != complete and infeasible(constraints):
                state = complete
                values = worst_values(self._working.get_trials(deepcopy=False),
                                      self._goal.directions)
        if state == complete:
            self._working.tell(live.handle, values)
        else:
            self._working.tell(live.handle, state=state)

    def _forget(self, live: _Live) -> None:
        """Drop a trial whose record another scheduler wrote (see :meth:`_housekeeping`)."""
        import optuna

        self._working.tell(live.handle, state=optuna.trial.TrialState.FAIL)
        self._gpus.release(live.gpu)
        del self._live[live.number]

    def _abort(self, detail: str) -> None:
        """On an unexpected error: end every running trial and record it as interrupted."""
        live = list(self._live.values())
        for item in live:
            self.runner.stop(item.number, StopReason.STOP, force=True)
        try:
            self.runner.close()
        finally:
            for item in live:
                if item.number in self._live:
                    with contextlib.suppress(Exception):  # storage may be what failed
                        self._record(item, Verdict(Outcome.FAILED, f"interrupted: {detail}", None))


def read_intermediate(trial_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The intermediate reports and first final report in a trial's ``metrics.jsonl``."""
    from spiketune.engine.runners import _parse_metric_line

    intermediate: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    try:
        data = (trial_dir / "metrics.jsonl").read_bytes()
    except OSError:
        return intermediate, final
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            kind, value = _parse_metric_line(raw)
        except (ValueError, TypeError):
            continue
        if kind == "intermediate":
            intermediate.append(value)
        elif final is None:
            final = value
    return intermediate, final


def fail_lost_trial(
    store: StudyStore,
    trial: optuna.trial.FrozenTrial,
    reason: str,
    max_retries: int,
    *,
    intermediate: list[dict[str, Any]] | None = None,
    trial_dir: Path | None = None,
) -> int | None:
    """Record a trial whose scheduler is gone as FAILED (``reason``) and, while it has been
    tried fewer than ``1 + max_retries`` times, queue its retry.

    The retry is a WAITING trial with the same parameters and sequence id (a retry re-runs
    the lost slot; it does not count against ``max_trials``) and the attributes ``retry_of``
    (the number of the first trial of these parameters) and ``attempt`` (1 for the first
    retry). Returns the retry's number, -1 without a retry, None if another scheduler recorded
    the trial first.
    """
    attempt = int(trial.user_attrs.get("attempt", 0))
    retry = None
    if attempt < max_retries:
        retry = {
            "parameters": trial.user_attrs.get("parameters", dict(trial.params)),
            "sequence_id": trial.user_attrs.get("sequence_id"),
            "retry_of": trial.user_attrs.get("retry_of", trial.number),
            "attempt": attempt + 1,
        }
    reports = intermediate or []
    attrs: dict[str, Any] = {
        "metrics": None,
        "intermediate": reports,
        "outcome": Outcome.FAILED.value,
        "reason": reason,
    }
    if "trial_dir" not in trial.user_attrs and trial_dir is not None:
        attrs["trial_dir"] = str(trial_dir)  # trials started before it was stored at start
    steps = {i: float(v["default"]) for i, v in enumerate(reports, start=1)
             if _finite(v["default"])}
    return store.fail_lost(trial, attrs, retry, steps)


def recover_interrupted(
    store: StudyStore, paths: ExperimentPaths, max_retries: int = 0
) -> list[int]:
    """Record every trial left RUNNING by a dead scheduler of this host as FAILED
    (interrupted), and queue its retry while ``max_retries`` allows (see
    :func:`fail_lost_trial`).

    Its leftover processes are killed first: the process group recorded in the trial's
    ``process.json``, after checking (through ``/proc``) that its processes really are that
    trial's. Trials whose scheduler still runs on this host, or runs on another host, are left
    alone (other hosts' lost trials are found by the heartbeat sweep). Returns the numbers of
    the trials recorded.
    """
    import optuna

    done: list[int] = []
    host = socket.gethostname()
    # Trials first, owners second: a trial is written RUNNING together with its first
    # heartbeat, so every RUNNING trial of the first read has its owner in the second. (Read
    # the other way round, a trial started in between would look ownerless, and be taken
    # for an interrupted one.)
    trials = store.trials()
    owners = {r.trial_id: r.owner for r in store.unfinished() if not r.waiting}
    for t in trials:
        if t.state != optuna.trial.TrialState.RUNNING:
            continue
        owner = owners.get(t._trial_id)
        if owner is not None and owner != store.owner:
            owner_host, owner_pid = parse_owner(owner)
            if owner_host != host:
                continue
            if owner_pid == os.getpid() or process_alive(owner_pid, None):
                continue  # its scheduler is alive (in this process: another store's)
        trial_dir = paths.trial_dir(t.number)
        info = _read_process_info(trial_dir)
        if info is not None:
            if info.get("host") != host:
                continue
            pid = info.get("scheduler_pid")
            if pid != os.getpid() and process_alive(pid, info.get("scheduler_start")):
                continue  # its scheduler is alive
            _kill_leftovers(info)
        intermediate, _final = read_intermediate(trial_dir)
        reason = "interrupted: the scheduler ended while the trial was running" + (
            f" (scheduler {owner})" if owner is not None else "")
        if fail_lost_trial(store, t, reason, max_retries, intermediate=intermediate,
                           trial_dir=trial_dir) is not None:
            done.append(t.number)
    return done


def _read_process_info(trial_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((trial_dir / "process.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _kill_leftovers(info: Mapping[str, Any]) -> None:
    """SIGKILL the trial's process group if (and only if) it still holds that trial's processes."""
    pgid = info.get("pgid")
    marker = f"SPIKETUNE_TRIAL_DIR={info.get('trial_dir')}".encode()
    if not isinstance(pgid, int) or pgid <= 1:
        return
    proc = Path("/proc")
    if not proc.is_dir():
        return  # cannot verify the group is still the trial's: leave it alone
    ours = False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if marker in environ:
            ours = True
            break
    if ours:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
