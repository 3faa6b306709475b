"""The multi-worker and crash protocol: heartbeats, the sweep of lost trials, retries, and
the recovery of trials whose scheduler died.

Several schedulers (workers, on one or many machines) may share one study. The scheduler
(:mod:`spiketune.engine.scheduler`) runs trials; this module keeps them honest towards each
other and towards crashes. The protocol:

1. **Heartbeats.** A trial is written RUNNING together with a heartbeat row naming its
   scheduler (``host:pid/token``). Every ``heartbeat_interval`` seconds the scheduler renews
   the rows of its running trials (:meth:`SharedStudy.round`). A row that is gone means
   another scheduler recorded the trial lost: its record and retry are written, so the
   scheduler ends the trial without recording it.
2. **The sweep.** In the same round the scheduler looks at the other schedulers' running
   trials: one whose heartbeat has not changed for ``grace_period`` seconds of this
   scheduler's own clock (clocks need not agree) is lost. It is settled (step 4) with the
   reason ``worker lost: ...``.
3. **Recovery.** A session that starts on an existing study first settles every trial of
   this machine left RUNNING by a scheduler whose process is gone
   (:func:`recover_interrupted`; reason ``interrupted: ...``). Trials of live schedulers, and
   of other machines, are left to their owners and to the sweep. ``spiketune stop`` of such
   an experiment ends the same trials' processes without recording them (:func:`end_orphans`).
4. **Settling a lost trial** (:func:`settle_lost_trial`). On this machine its leftover
   processes are ended first (SIGTERM, and SIGKILL after the grace period: a trial that
   saves a checkpoint on SIGTERM gets to write it), identified by the trial's directory in
   their environment, never by a pid alone. Then its ``metrics.jsonl`` is read and
   :func:`~spiketune.engine.outcome.decide` rules: a trial that reported a finite final
   result is COMPLETE with exactly those values (it finished before or after its scheduler
   died; its exit status is unknown); one without is FAILED with the reason and, while it
   has been tried fewer than ``1 + max_retries`` times, queued again (:func:`fail_lost_trial`).
   Every write is conditional on the trial still being RUNNING, so when two schedulers
   settle the same trial, the first write wins and the second changes nothing.
5. **Retries.** A queued retry is a WAITING trial with the same parameters and
   ``sequence_id``; any scheduler with room takes it first (:meth:`SharedStudy.take_retry`).
   It claims no new sequence id, so it does not count against ``max_trials``. A scheduler
   whose claims are all used keeps running, idle, while any trial of the study runs or waits,
   so that a surviving worker is there to retry the trials of one that dies.
6. **Shared state.** The round also reads the study's stop request and the elapsed time
   (the duration budget is shared: every scheduler follows the one that has counted most).
7. **Lost claims.** A trial starts in two writes: the claim of its sequence id, then the
   trial. A scheduler that dies between the two leaves a sequence id claimed with no trial,
   which no claim will hand out again. A scheduler whose budget is used looks for such claims
   before it leaves: one whose claimer is gone (its process, on this machine; else no trial
   for ``grace_period``) is taken over (a conditional write: one scheduler gets it) and run.
   Until every trial-less claim is settled, the scheduler stays.

A round that meets a lost database connection is skipped (the next one tries again): a short
outage must not end the trials that run meanwhile.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiketune.engine.goals import Goal
from spiketune.engine.outcome import (
    END_LAG_ATTR,
    Outcome,
    decide,
    optuna_steps,
    stored_form,
)
from spiketune.engine.runners import (
    PROCESS_FILE,
    Ended,
    count_trial_leftovers,
    end_trial_leftovers,
    process_alive,
)
from spiketune.engine.storage import (
    ATTR_ELAPSED,
    ATTR_STOP,
    ExperimentPaths,
    StudyStore,
    Unfinished,
    is_transient,
    parse_owner,
)
from spiketune.trial._protocol import METRICS_FILE, MetricsReader

if TYPE_CHECKING:
    import optuna

__all__ = [
    "News",
    "Orphans",
    "SharedStudy",
    "end_orphans",
    "fail_lost_trial",
    "read_intermediate",
    "recover_interrupted",
    "settle_lost_trial",
]


@dataclass(frozen=True)
class News:
    """What one round of :meth:`SharedStudy.round` found for the scheduler to act on."""

    disowned: frozenset[int]  # our trials another scheduler recorded lost: end, don't record
    stop_requested: bool  # the study holds a stop request (``spiketune stop`` elsewhere)
    elapsed: float  # seconds the experiment has run, as stored by the scheduler ahead most
    claims: tuple[int, ...] = ()  # sequence ids of lost claims taken over (round): run now


class SharedStudy:
    """One scheduler's side of the protocol (see the module docstring): heartbeats, the
    sweep, queued retries. Call :meth:`round` from the scheduler's loop."""

    def __init__(
        self,
        store: StudyStore,
        paths: ExperimentPaths,
        *,
        grace_period: float,
        max_retries: int,
        kill_grace: float,
        goal: Goal,
    ) -> None:
        self.store = store
        self.paths = paths
        self.grace_period = grace_period  # seconds of heartbeat silence that make a trial lost
        self.max_retries = max_retries
        self.kill_grace = kill_grace  # seconds between SIGTERM and SIGKILL for leftovers
        self.goal = goal
        self.waiting = 0  # queued retries in the study, as last seen
        self.others_running = 0  # trials of other schedulers running, as last seen
        self.claims_pending = False  # claims without a trial, whose claimer may still start it
        self._observed: dict[int, tuple[tuple[str | None, float | None], float]] = {}
        self._orphans: dict[int, tuple[str, float]] = {}  # sequence id -> (claimer, first seen)
        self._claims_checked = False  # looked for lost claims since the last ones were taken
        self._last = -math.inf

    @property
    def idle(self) -> bool:
        """Nothing left in the study for a scheduler whose budget is used: no trial of
        another scheduler runs, none waits for a retry, no claim may still need one."""
        return not (self.waiting or self.others_running or self.claims_pending)

    def round(self, mine: Collection[int], interval: float, *,
              exhausted: bool = False) -> News | None:
        """Every ``interval`` seconds (else None at once): renew the heartbeats of ``mine``
        (this scheduler's running trials, by storage id), settle other schedulers' lost
        trials, read the shared stop request and elapsed time; once this scheduler's budget
        is ``exhausted``, also take over the claims of schedulers that died between claiming
        a sequence id and starting its trial. None when skipped, also after a transient database
        error."""
        now = time.monotonic()
        if now - self._last < interval:
            return None
        self._last = now
        try:
            return self._round(set(mine), now, exhausted)
        except Exception as e:
            if not is_transient(e):
                raise
            return None

    def _round(self, mine: set[int], now: float, exhausted: bool) -> News:
        disowned = frozenset(self.store.beat(mine)) if mine else frozenset()
        rows = self.store.unfinished()
        self.waiting = sum(1 for r in rows if r.waiting)
        self.others_running = sum(1 for r in rows if not r.waiting and r.trial_id not in mine)
        for row in self._stale(rows, mine, now):
            self._settle(row)
        # Once the budget is used nothing is claimed any more: one look finds every lost
        # claim, and only claims still in flight (pending) need another.
        look = exhausted and (self.claims_pending or not self._claims_checked)
        claims = self._take_lost_claims(now) if look else []
        attrs = self.store.study_attrs()
        return News(disowned, bool(attrs.get(ATTR_STOP)), float(attrs.get(ATTR_ELAPSED, 0.0)),
                    tuple(claims))

    def _take_lost_claims(self, now: float) -> list[int]:
        """The sequence ids claimed that no trial holds and whose claimer is gone, taken over
        as this scheduler's (step 7 of the module docstring); sets :attr:`claims_pending`."""
        claims = self.store.claims()  # before the trials: a trial started meanwhile is seen
        others = {seq: owner for seq, owner in claims.items() if owner != self.store.owner}
        held = {t.user_attrs.get("sequence_id") for t in self.store.trials()} if others else set()
        orphans = {seq: owner for seq, owner in others.items() if seq not in held}
        seen: dict[int, tuple[str, float]] = {}
        taken: list[int] = []
        for seq, owner in sorted(orphans.items()):
            first = self._orphans.get(seq)
            seen[seq] = first if first is not None and first[0] == owner else (owner, now)
            if not self._claimer_gone(owner, now - seen[seq][1]):
                continue
            if self.store.take_claim(seq, owner):
                taken.append(seq)
            del seen[seq]
        self._orphans = seen
        self.claims_pending = bool(seen)
        self._claims_checked = not taken
        return taken

    def _claimer_gone(self, owner: str, silent_for: float) -> bool:
        """Whether the scheduler ``owner`` is gone: on this machine, once its process is
        (another process's pid; a store of this process is judged as a remote one); anywhere,
        once its claim has stayed without a trial for ``grace_period`` seconds of this
        scheduler's clock (a live scheduler starts the trial of a claim within milliseconds)."""
        if silent_for >= self.grace_period:
            return True
        host, pid = parse_owner(owner)
        if host != socket.gethostname() or pid in (None, os.getpid()):
            return False
        return not process_alive(pid, None)

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

    def _settle(self, row: Unfinished) -> None:
        import optuna

        trial = self.store.trial(row.trial_id)
        if trial.state != optuna.trial.TrialState.RUNNING:
            return
        owner = row.owner or "a scheduler that never sent one"
        reason = f"worker lost: no heartbeat from {owner} for {self.grace_period:g} s"
        here = parse_owner(owner)[0] == socket.gethostname()
        trial_dir = _trial_dir(trial, self.paths)
        retry = settle_lost_trial(self.store, trial, reason, self.max_retries, goal=self.goal,
                                  trial_dir=trial_dir if here else None,
                                  kill_grace=self.kill_grace)
        self._observed.pop(row.trial_id, None)
        if retry is not None and retry >= 0:
            self.waiting += 1

    def take_retry(self, trial_dir: Callable[[int], Path]) -> optuna.trial.FrozenTrial | None:
        """Take a queued retry (a WAITING trial) as this scheduler's: RUNNING, with a
        heartbeat. None when none is left."""
        trial = self.store.take_waiting(trial_dir)
        if trial is None:
            self.waiting = 0
            return None
        self.waiting = max(0, self.waiting - 1)
        return trial


# ------------------------------------------------------------------------------ settling
def settle_lost_trial(
    store: StudyStore,
    trial: optuna.trial.FrozenTrial,
    reason: str,
    max_retries: int,
    *,
    goal: Goal | None = None,
    trial_dir: Path | None = None,
    kill_grace: float = 5.0,
) -> int | None:
    """Record a RUNNING trial whose scheduler is gone (``reason`` says how), from what its
    directory shows.

    ``trial_dir``: the trial's directory when it is on this machine (None: another machine's
    trial, known only from the study). Its leftover processes are ended first (SIGTERM, then
    SIGKILL after ``kill_grace`` seconds), then its ``metrics.jsonl`` is read: a valid final
    result makes it COMPLETE with those values; otherwise it is FAILED with ``reason`` and
    its retry queued as :func:`fail_lost_trial` does. Returns the retry's number, -1 without a
    retry, None if another scheduler recorded the trial first.
    """
    goal = goal or Goal()
    intermediate: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    errors: list[str] = []
    if trial_dir is not None:
        # Found by their environment, not by process.json: a scheduler killed between
        # starting a trial and writing that file leaves a trial nobody knows the pid of.
        end_trial_leftovers(trial_dir, kill_grace)
        intermediate, final, errors = read_intermediate(trial_dir)
    ended = Ended(trial.number, final=final, protocol_errors=errors)
    verdict = decide(ended, stop_reason=None, goal=goal, interrupted=reason)
    if final is None:  # lost before it had a result: it may run again
        return fail_lost_trial(store, trial, verdict.reason or reason, max_retries,
                               intermediate=intermediate, trial_dir=trial_dir,
                               step_key=goal.step_key)
    stored = stored_form(verdict, intermediate, goal)
    attrs = dict(stored.attrs)
    if "trial_dir" not in trial.user_attrs and trial_dir is not None:
        attrs["trial_dir"] = str(trial_dir)
    lag = _result_age(trial_dir)
    if lag is not None:
        attrs[END_LAG_ATTR] = lag
    done = store.finish_trial(store.trial_id(trial), stored.state, stored.value, attrs,
                              stored.steps, stored.system_attrs)
    return -1 if done else None


def _result_age(trial_dir: Path | None) -> float | None:
    """Seconds since the trial's ``metrics.jsonl`` was last written (its final result, for a
    trial that has one), or None without the file."""
    if trial_dir is None:
        return None
    try:
        written = (trial_dir / METRICS_FILE).stat().st_mtime
    except OSError:
        return None
    return round(max(0.0, time.time() - written), 3)


def fail_lost_trial(
    store: StudyStore,
    trial: optuna.trial.FrozenTrial,
    reason: str,
    max_retries: int,
    *,
    intermediate: list[dict[str, Any]] | None = None,
    trial_dir: Path | None = None,
    step_key: str = "default",
) -> int | None:
    """Record a trial whose scheduler is gone as FAILED (``reason``) and, while it has been
    tried fewer than ``1 + max_retries`` times, queue its retry. ``step_key``: the key of
    the ``intermediate`` reports stored as Optuna's intermediate values
    (:attr:`~spiketune.engine.goals.Goal.step_key`).

    The retry is a WAITING trial with the same parameters and sequence id (it re-runs the
    lost trial's claim and does not count against ``max_trials``) and the attributes
    ``retry_of`` (the number of the first trial of these parameters) and ``attempt`` (1 for
    the first retry). Returns the retry's number, -1 without a retry, None if another
    scheduler recorded the trial first.
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
    return store.fail_lost(trial, attrs, retry, optuna_steps(reports, step_key))


def recover_interrupted(
    store: StudyStore,
    paths: ExperimentPaths,
    max_retries: int = 0,
    *,
    goal: Goal | None = None,
    kill_grace: float = 5.0,
) -> list[int]:
    """Settle every trial left RUNNING by a dead scheduler of this machine
    (:func:`settle_lost_trial`: COMPLETE when its ``metrics.jsonl`` holds a valid final
    result, else FAILED ``interrupted: ...`` and queued again while ``max_retries`` allows).

    Trials whose scheduler still runs on this machine, or runs on another one, are left alone
    (other machines' lost trials are found by the heartbeat sweep). Returns the numbers of
    the trials recorded.
    """
    done: list[int] = []
    for t, trial_dir, owner in _interrupted(store, paths):
        reason = "interrupted: the scheduler ended while the trial was running" + (
            f" (scheduler {owner})" if owner is not None else "")
        if settle_lost_trial(store, t, reason, max_retries, goal=goal, trial_dir=trial_dir,
                             kill_grace=kill_grace) is not None:
            done.append(t.number)
    return done


@dataclass(frozen=True)
class Orphans:
    """What :func:`end_orphans` did."""

    trials: tuple[int, ...]  # numbers of the interrupted trials whose processes were looked for
    ended: int  # their processes found and ended
    running: int  # their processes that still run (that could not be ended)


def end_orphans(store: StudyStore, paths: ExperimentPaths, *,
                kill_grace: float = 5.0) -> Orphans:
    """End the processes of the trials that :func:`recover_interrupted` would settle (left
    running by a dead scheduler of this machine: they go on holding CPUs and GPUs), as it
    ends them (SIGTERM, then SIGKILL after ``kill_grace`` seconds), and record nothing: the
    trials stay RUNNING in the study until a resume records them from what their directories
    show (their ``metrics.jsonl``, complete by then)."""
    numbers: list[int] = []
    ended = running = 0
    for t, trial_dir, _owner in _interrupted(store, paths):
        numbers.append(t.number)
        ended += end_trial_leftovers(trial_dir, kill_grace)
        running += count_trial_leftovers(trial_dir)
    return Orphans(tuple(numbers), ended - running, running)


def _interrupted(
    store: StudyStore, paths: ExperimentPaths
) -> list[tuple[optuna.trial.FrozenTrial, Path, str | None]]:
    """The trials of the study left RUNNING by a dead scheduler of this machine, with their
    directories and owners (``host:pid/token``; None without a heartbeat)."""
    import optuna

    found: list[tuple[optuna.trial.FrozenTrial, Path, str | None]] = []
    host = socket.gethostname()
    # Trials first, owners second: a trial is written RUNNING together with its first
    # heartbeat, so every RUNNING trial of the first read has its owner in the second. (Read
    # the other way round, a trial started in between would look ownerless, and be taken
    # for an interrupted one.)
    with store.consistent_reads():  # a journal writes a trial and its owner in two appends
        trials = store.trials()
        owners = {r.trial_id: r.owner for r in store.unfinished() if not r.waiting}
    for t in trials:
        if t.state != optuna.trial.TrialState.RUNNING:
            continue
        owner = owners.get(store.trial_id(t))
        if owner is not None and owner != store.owner:
            owner_host, owner_pid = parse_owner(owner)
            if owner_host != host:
                continue
            if owner_pid == os.getpid() or process_alive(owner_pid, None):
                continue  # its scheduler is alive (in this process: another store's)
        trial_dir = _trial_dir(t, paths)
        info = read_process_info(trial_dir)
        if info is not None:
            if info.get("host") != host:
                continue
            pid = info.get("scheduler_pid")
            if pid != os.getpid() and process_alive(pid, info.get("scheduler_start")):
                continue  # its scheduler is alive
        found.append((t, trial_dir, owner))
    return found


# ------------------------------------------------------------------------------ trial files
def read_intermediate(
    trial_dir: Path,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """The intermediate reports, the first final report and the unreadable lines of a
    trial's ``metrics.jsonl`` (all empty without one). A last line cut short by a kill is
    unreadable, like any other."""
    try:
        reader = MetricsReader(trial_dir / METRICS_FILE)
    except OSError:
        return [], None, []
    try:
        return reader.read(last=True), reader.final, reader.errors
    finally:
        reader.close()


def read_process_info(trial_dir: Path) -> dict[str, Any] | None:
    """The trial's ``process.json`` (pid, process group, host, its scheduler's pid and start
    time), or None when it is missing or unreadable."""
    try:
        info = json.loads((trial_dir / PROCESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _trial_dir(trial: optuna.trial.FrozenTrial, paths: ExperimentPaths) -> Path:
    """The directory the trial ran in: recorded when it started (a worker's own directory),
    else this experiment's ``trials/<number>``."""
    recorded = trial.user_attrs.get("trial_dir")
    return Path(recorded) if recorded else paths.trial_dir(trial.number)

