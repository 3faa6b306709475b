"""The scheduler: asks the tuner for parameters, starts trials, records how each one ended.

It is the only code that writes the study (through
:class:`~spiketune.engine.storage.StudyStore`, and the protocol of
:mod:`spiketune.engine.workers`); :func:`~spiketune.engine.outcome.decide` is the one place
where a trial's fate is settled. One loop, one thread::

    while budget left and not stopping:
        start trials up to the concurrency (a queued retry first; else claim a sequence id,
        ask, sample, record, launch)
    poll the runner -> intermediate results (report, maybe prune) and endings (decide, record)
    enforce max_trial_duration, max_duration (stop the running trials, or start no more and
        let them finish: Budget.at_max_duration), stop requests
    every heartbeat_interval: one round of the multi-worker protocol (spiketune.engine.workers:
        heartbeats, the sweep of lost trials, the shared stop request and elapsed time)

Several schedulers (workers, on one or many machines) may share a study; how they keep track
of each other, and how the trials of a dead one are settled, is :mod:`spiketune.engine.workers`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from spiketune._values import is_finite
from spiketune.engine.goals import (
    CONSTRAINTS,
    Goal,
    Judgement,
    Objective,
    infeasible,
    sampler_trials,
    worst_values,
)
from spiketune.engine.outcome import Outcome, Verdict, decide, stored_form
from spiketune.engine.runners import Ended, Launch, Reported, Runner, StopReason
from spiketune.engine.storage import (
    ATTR_ELAPSED,
    ATTR_STOP,
    ExperimentPaths,
    StudyStore,
    is_transient,
)
from spiketune.engine.workers import SharedStudy
from spiketune.trial._protocol import ENV_BUDGET_END

if TYPE_CHECKING:
    import optuna

    from spiketune.engine.space import SearchSpace

__all__ = ["Budget", "Progress", "Scheduler"]


@dataclass(frozen=True)
class Budget:
    """Limits of an experiment; durations in seconds of wall time, across resumes.

    ``at_max_duration``: what reaching ``max_duration`` does to the running trials;
    ``"stop"`` ends them, ``"finish"`` lets them run to their end (NNI's rule). No trial starts
    after it either way.
    """

    max_trials: int | None = None
    max_duration: float | None = None
    max_trial_duration: float | None = None
    at_max_duration: Literal["stop", "finish"] = "stop"


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
    stopped: int = 0  # ended by a stop of the experiment (user, max_duration)
    # max_duration is reached and the running trials are left to finish (at_max_duration)
    finishing: bool = False

    @property
    def done(self) -> int:
        return self.complete + self.early_stopped + self.failed + self.stopped

    @property
    def remaining_seconds(self) -> float | None:
        if self.max_duration is None:
            return None
        return max(0.0, self.max_duration - self.elapsed_seconds)


@dataclass
class _Live:
    """A trial this scheduler started and has not yet recorded as ended."""

    number: int
    trial_id: int  # Optuna's storage id (heartbeats and the trial's record use it)
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


class _GpuSlots:
    """Which GPU each running trial may use: at most ``per_gpu`` trials per index."""

    def __init__(self, gpus: Sequence[int] | None, per_gpu: int) -> None:
        self.gpus = list(gpus or [])
        self.per_gpu = per_gpu
        self.load = dict.fromkeys(self.gpus, 0)

    @property
    def capacity(self) -> int | None:
        return len(self.gpus) * self.per_gpu if self.gpus else None

    def acquire(self, same_as: int | None = None) -> int | None:
        """The least loaded GPU with room (lowest index first), or ``same_as`` (the GPU of
        the population a trial joins); None without GPUs."""
        if not self.gpus:
            return None
        if same_as is not None and same_as in self.load:
            self.load[same_as] += 1
            return same_as
        gpu = min(self.gpus, key=lambda g: (self.load[g], self.gpus.index(g)))
        if self.load[gpu] >= self.per_gpu:
            raise RuntimeError("no free GPU slot")  # the scheduler checks capacity first
        self.load[gpu] += 1
        return gpu

    def release(self, gpu: int | None) -> None:
        if gpu is not None:
            self.load[gpu] -= 1


def stopped_since(stop: object, submitted: str | None) -> bool:
    """Whether the stop request ``stop`` (the study's ``stop_requested``: an ISO time, or
    None) came at or after ``submitted`` (a worker's submission, ISO time; None: never).

    Both are kept to the microsecond, so that a ``spiketune submit`` right after ``spiketune
    stop`` (the same second) still resumes; a time recorded to the second counts as its
    second's start. A time with a UTC offset (as written since times carry one) is compared
    as the instant it names, so a stop from a machine in another time zone counts rightly; one
    without (older records) is this machine's local time."""
    if not stop or submitted is None:
        return False
    try:
        return local_time(str(stop)) >= local_time(submitted)
    except (TypeError, ValueError):  # not a time this module wrote: compare as text
        return str(stop) >= submitted


def local_time(when: str) -> datetime:
    """An ISO time as this machine's local time without an offset (one with an offset is
    converted; one without is taken as local already). Raises ValueError for anything else."""
    parsed = datetime.fromisoformat(when)
    return parsed if parsed.tzinfo is None else parsed.astimezone().replace(tzinfo=None)


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
        start_points: Sequence[dict[str, Any]] = (),
        progress: Callable[[Progress], None] | None = None,
        poll_interval: float = 0.05,
        sync_interval: float = 2.0,
        heartbeat_interval: float = 5.0,
        grace_period: float = 60.0,
        max_retries: int = 0,
        goal: Goal | None = None,
        kill_grace: float = 5.0,
        population_group: Sequence[str] = (),
        submitted: str | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.paths = paths
        self.experiment_id = experiment_id
        self.space = space
        self.budget = budget
        self.concurrency = concurrency
        self.fixed = fixed_trials
        # known parameter sets to try first, as the trials receive them (checked against the
        # space with the config): sequence id i gets point i
        self.start_points = list(start_points)
        self.progress_callback = progress
        self.poll_interval = poll_interval
        self.sync_interval = sync_interval
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retries = max_retries
        self.kill_grace = kill_grace  # seconds from SIGTERM to SIGKILL for lost trials' leftovers
        self.goal = goal  # None: the study's one direction on "default"
        # population mode: keys a batch's members take from its first member
        self.population_group = tuple(population_group)
        # a submitted worker's submission time (ISO, seconds): a stop requested since then
        # ends its session before it starts (see _open_session)
        self.submitted = submitted
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
        self._shared: SharedStudy  # the multi-worker protocol; made when the session opens
        self._exhausted = False  # nothing left to claim (the budget is used)
        # max_duration reached with at_max_duration "finish": no trial starts any more, and
        # the session ends once the running ones have
        self._finishing = False
        self._taken_over: list[int] = []  # sequence ids claimed by dead schedulers, to run
        self._warned_unjudged = False  # said that reports lack the objective (_unjudged)
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
        if not self._open_session():
            self.status = "stopped"
            return self.status
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
    def _open_session(self) -> bool:
        """Read the study and take the session; False (nothing written) when a submitted
        worker finds a stop requested since its submission.

        Why here: a new session clears the stop request (that is how a stopped experiment
        resumes), so a worker job that starts late, after ``spiketune stop``, would restart
        the experiment its user just stopped. The check and the clear are one read and one
        write apart, at the very start of the session."""
        with self.store.reading():  # a damaged database: said, not a traceback
            attrs = self.store.study_attrs()
        stop = attrs.get(ATTR_STOP)
        if stopped_since(stop, self.submitted):
            return False
        if stop:  # a new session continues a stopped experiment
            self.store.set_study_attr(ATTR_STOP, None)
        trials = self.store.trials()
        self._known_ids = {self.store.trial_id(t) for t in trials}
        if self.goal is None:
            self.goal = Goal((Objective(key="default", direction=self.store.direction),))
        self._working = self.store.working_study(self._sampler, self._pruner_or_nop(),
                                                 sampler_trials(trials, self.goal,
                                                                space=self.space))
        # A study begun by spiketune 0.1.0 keeps recording search coordinates as params.
        self._store_search = self.space.stores_search_coordinates(trials)
        self._shared = SharedStudy(self.store, self.paths, grace_period=self.grace_period,
                                   max_retries=self.max_retries, kill_grace=self.kill_grace,
                                   goal=self.goal)
        direction = self.store.direction
        self._sign = -1.0 if direction == "maximize" else 1.0
        for t in trials:
            self._count_stored(t)
        self._elapsed_base = float(attrs.get(ATTR_ELAPSED, 0.0))
        self._t0 = time.monotonic()
        self._last_elapsed_save = self._t0
        self._last_sync = self._t0
        self._last_progress = 0.0
        self._started = self.store.claims_used()
        self.status = "running"
        return True

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
        if not is_finite(value):
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
        while True:
            idle = self._exhausted and not self._live
            self._housekeeping(self.heartbeat_interval if not idle
                               else min(self.heartbeat_interval, 0.5))
            if self.paths.stop_file.exists():
                self.request_stop("stop requested (spiketune stop)")
            if self._duration_spent():
                if self.budget.at_max_duration == "finish":
                    self._finishing = True
                else:
                    self.request_stop(f"max_duration of {self.budget.max_duration:g} s reached",
                                      budget=True)
            if self.stopping:
                for live in self._live.values():
                    self._stop_trial(live, StopReason.STOP, self._stop_detail or "", self._force)
            else:
                self._enforce_trial_timeouts()
                filling = time.monotonic()
                while (not self._finishing and len(self._live) < self._capacity()
                       and self.runner.accepts()):
                    if self._fill_interrupted(filling):
                        break
                    if self._shared.waiting and self._take_retry():
                        continue
                    if self._exhausted:
                        break
                    if not self._launch_one():
                        self._exhausted = True
                        self._housekeeping(0.0)  # look at the study before leaving
            if not self._live and (self.stopping or self._finishing
                                   or (self._exhausted and self._shared.idle)):
                break
            for event in self.runner.poll(self._poll_timeout()):
                if isinstance(event, Reported):
                    self._on_report(event)
                else:
                    self._on_end(event)
            self._tick()

    def _fill_interrupted(self, since: float) -> bool:
        """Whether to leave the loop that starts trials before the runner is full: a stop was
        asked (Ctrl-C, ``spiketune stop``), the duration budget is out, or one heartbeat
        interval went to it. A population of many members is collected one tuner draw at a
        time; the loop's housekeeping must still run, and a batch that is not full then
        starts with the members it has."""
        if self.stopping or self.paths.stop_file.exists() or self._duration_spent():
            return True
        return time.monotonic() - since > self.heartbeat_interval

    def _duration_spent(self) -> bool:
        """Whether the experiment has run ``max_duration`` (all sessions together)."""
        max_duration = self.budget.max_duration
        return max_duration is not None and self.elapsed() >= max_duration

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
        """Every ``interval`` seconds: a round of the multi-worker protocol
        (:meth:`SharedStudy.round`), and what it found acted upon."""
        # finishing: a dead scheduler's claims are not taken over, as no trial starts now
        news = self._shared.round([live.trial_id for live in self._live.values()], interval,
                                  exhausted=self._exhausted and not self._finishing)
        if news is None:
            return
        if news.claims:  # claims of schedulers that died before starting their trial
            self._taken_over.extend(news.claims)
            self._exhausted = False
        for live in self._live.values():
            if live.trial_id in news.disowned and not live.lost:
                # Another scheduler took this trial for lost (we were silent too long): its
                # record is written and its retry queued, so end it without recording it.
                live.lost = True
                self.runner.stop(live.number, StopReason.STOP, force=True)
        if news.stop_requested and not self.stopping:
            self.request_stop("stop requested (spiketune stop)")
        # The duration budget is shared: every scheduler follows the one that has counted most.
        ahead = news.elapsed - self.elapsed()
        if ahead > 0:
            self._elapsed_base += ahead

    def _take_retry(self) -> bool:
        """Start a queued retry (a WAITING trial) as one of ours; False if none is left."""
        trial = self._shared.take_retry(self.paths.trial_dir)
        if trial is None:
            return False
        # the sampler's coordinates of the same parameters, for reports and pruning
        search, _ = self.space.search_params(trial.user_attrs["parameters"])
        self._working.enqueue_trial(search, skip_if_exists=False)
        handle = self._working.ask()
        self.space.sample(handle)
        sequence_id = trial.user_attrs.get("sequence_id")
        trial_id = self.store.trial_id(trial)
        self._known_ids.add(trial_id)
        self._launch(handle, trial.user_attrs["parameters"], trial_id, trial.number,
                     -1 if sequence_id is None else int(sequence_id))
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
            stopped=self._counts[Outcome.STOPPED],
            best_value=None if best is None else best[0],
            best_number=None if best is None else best[1],
            elapsed_seconds=self.elapsed(),
            max_trials=self._limit(),
            max_duration=self.budget.max_duration,
            stopping=self.stopping,
            finishing=self._finishing and not self.stopping,
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
            self._known_ids.add(self.store.trial_id(t))
            view = sampler_trials([t], self._goal,
                                  self._working.get_trials(deepcopy=False), self.space)
            self._working.add_trials(view)
            self._count_stored(t)

    def _launch_one(self) -> bool:
        """Start one trial; False when the budget allows no more."""
        sequence_id = (self._taken_over.pop(0) if self._taken_over
                       else self.store.claim(self._limit()))
        if sequence_id is None:
            return False
        self._started = max(self._started, sequence_id + 1)
        self._sync()
        start = None
        if self.fixed is not None:
            self._working.enqueue_trial(self.fixed[sequence_id], skip_if_exists=False)
        elif sequence_id < len(self.start_points):
            start = self.start_points[sequence_id]
            self._working.enqueue_trial(self.space.search_params(start)[0],
                                        skip_if_exists=False)
        elif self.population_group:
            self._share_with_batch()
        handle = self._working.ask()
        parameters = self.space.sample(handle)
        if start is not None:  # exactly as given: a normal type's search coordinate rounds
            parameters = _overlaid(parameters, start)
        # the study records what the trial receives; the sampler keeps its own coordinates
        params, distributions = ((handle.params, handle.distributions) if self._store_search
                                 else self.space.stored_params(parameters))
        trial_id, number = self.store.start_trial(
            params,
            distributions,
            {"parameters": parameters, "sequence_id": sequence_id},
            trial_dir=self.paths.trial_dir,
        )
        self._known_ids.add(trial_id)
        self._launch(handle, parameters, trial_id, number, sequence_id)
        return True

    def _share_with_batch(self) -> None:
        """Population mode with ``population_group``: the next trial takes those keys' values
        from the first trial of the batch the runner is collecting (a nested choice its
        option alone); the tuner draws the rest."""
        leader = self.runner.batch_leader()
        if leader is None:
            return
        shared = {key: ({"_name": value["_name"]} if isinstance(value, dict)
                        and "_name" in value else value)
                  for key, value in leader.parameters.items() if key in self.population_group}
        search, _ = self.space.search_params(shared)
        if search:
            self._working.enqueue_trial(search, skip_if_exists=False)

    def _launch(
        self,
        handle: optuna.Trial,
        parameters: dict[str, Any],
        trial_id: int,
        number: int,
        sequence_id: int,
    ) -> None:
        parameters_json = json.dumps(parameters)
        leader = self.runner.batch_leader()  # a population's members share its GPU
        gpu = self._gpus.acquire(same_as=None if leader is None else leader.gpu)
        live = _Live(
            number=number,
            trial_id=trial_id,
            handle=handle,
            sequence_id=sequence_id,
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
            sequence_id=sequence_id,
            parameters=parameters,
            parameters_json=parameters_json,
            trial_dir=live.trial_dir,
            experiment_id=self.experiment_id,
            gpu=gpu,
            environment=self._budget_env(),
        )
        try:
            self.runner.start(launch)
        except Exception as e:
            self._record(live, Verdict(Outcome.FAILED, f"could not start: {e}", None))

    def _budget_env(self) -> dict[str, str]:
        """The end of the duration budget, for a trial to end its training before it
        (``spiketune.trial.trial_deadline``): at that instant every trial still running is
        stopped and recorded without a result. None with ``at_max_duration = "finish"``: a
        trial is left to finish then, and ending its training early would only cut it short."""
        max_duration = self.budget.max_duration
        if max_duration is None or self.budget.at_max_duration == "finish":
            return {}
        end = time.time() + max(0.0, max_duration - self.elapsed())
        return {ENV_BUDGET_END: repr(end)}

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
        if self._goal.multi:  # Optuna keeps one objective's reports
            return
        key = self._goal.step_key
        value = event.value.get(key)
        if key not in event.value and self._pruner is not None:
            self._unjudged(live, key)
        if not is_finite(value):  # nothing to judge at this step
            return
        live.handle.report(float(value), step)
        if self._pruner is not None and live.handle.should_prune():
            self._stop_trial(live, StopReason.PRUNE, "")

    def _unjudged(self, live: _Live, key: str) -> None:
        """Say once per session that a trial's intermediate results lack the objective
        ``key``, which the assessor judges: its steps are stored, but not judged. Why not
        judge ``"default"`` instead: with a named objective ``"default"`` has no direction,
        and judged in the objective's it would stop the best trials."""
        if self._warned_unjudged:
            return
        self._warned_unjudged = True
        warnings.warn(
            f"trial {live.number} reported an intermediate result without {key!r}, the "
            f"objective the assessor judges (keys: {', '.join(sorted(live.intermediate[-1]))})"
            f": such results are not judged, so no trial is stopped early on them; report "
            f"{key!r} in intermediate results too", UserWarning, stacklevel=2)

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
        if event.shared_failure and verdict.outcome == Outcome.FAILED:
            self._record_shared_failure(live, verdict)
        else:
            self._record(live, verdict)

    def _record_shared_failure(self, live: _Live, verdict: Verdict) -> None:
        """A member of a population whose process died before the member had a result:
        FAILED (the reason says how the process ended), and retried as a lost trial is, at
        least once: nothing is known against its parameters."""
        import optuna

        from spiketune.engine.workers import fail_lost_trial

        trial = self.store.trial(live.trial_id)
        retry = fail_lost_trial(self.store, trial, verdict.reason or "its process failed",
                                max(1, self.max_retries), intermediate=live.intermediate,
                                trial_dir=live.trial_dir, step_key=self._goal.step_key)
        if retry is None:  # recorded lost by another scheduler meanwhile
            self._forget(live)
            return
        self._working.tell(live.handle, state=optuna.trial.TrialState.FAIL)
        self._counts[Outcome.FAILED] += 1
        if retry >= 0:
            self._shared.waiting += 1
        self._gpus.release(live.gpu)
        del self._live[live.number]

    def _record(self, live: _Live, verdict: Verdict) -> None:
        """Write the verdict to the study (once) and to the working copy."""
        stored = stored_form(verdict, live.intermediate, self._goal, design=live.design,
                             silent=live.silent)
        if not self.store.finish_trial(live.trial_id, stored.state, stored.value, stored.attrs,
                                       stored.steps, stored.system_attrs):
            # Recorded lost by another scheduler meanwhile (its retry is queued).
            self._forget(live)
            return
        self._tell(live, stored.state, stored.values, stored.constraints)
        self._counts[verdict.outcome] += 1
        if (verdict.outcome == Outcome.COMPLETE and stored.values
                and not infeasible(stored.constraints)):
            self._note_best(stored.values[0], live.number)
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
        """On an unexpected error: end every running trial and record it from what its
        ``metrics.jsonl`` holds, as a resume would: COMPLETE with the final result it had
        reported (its result is not lost with the scheduler), else FAILED as interrupted."""
        live = list(self._live.values())
        for item in live:
            self.runner.stop(item.number, StopReason.STOP, force=True)
        try:
            self.runner.close()
        finally:
            for item in live:
                if item.number in self._live:
                    with contextlib.suppress(Exception):  # storage may be what failed
                        self._record(item, self._interrupted(item, f"interrupted: {detail}"))

    def _interrupted(self, live: _Live, reason: str) -> Verdict:
        """The verdict on a trial its scheduler gave up: from its ``metrics.jsonl``."""
        from spiketune.engine.workers import read_intermediate

        try:
            intermediate, final, errors = read_intermediate(live.trial_dir)
        except Exception:  # a file it cannot read: the reason alone
            return Verdict(Outcome.FAILED, reason, None)
        if len(intermediate) > len(live.intermediate):
            live.intermediate = intermediate
        ended = Ended(live.number, final=final, protocol_errors=errors)
        return decide(ended, stop_reason=None, goal=self._goal, interrupted=reason)


def _overlaid(parameters: dict[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` with every value ``given`` names put in as given (nested choices key by
    key): a start point's values, which the space hands out to within rounding."""
    out = dict(parameters)
    for key, value in given.items():
        inner = out.get(key)
        if isinstance(value, Mapping) and isinstance(inner, dict):
            out[key] = _overlaid(inner, value)
        else:
            out[key] = copy.deepcopy(value)
    return out
