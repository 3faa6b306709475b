"""The Python entry point: describe an experiment, run it, stop it, resume it.

::

    exp = Experiment(name="lif", trial_command="python3 main_hpo.py", search_space={...},
                     tuner="TPE", max_trials=50, max_duration="2h", concurrency=2)
    results = exp.run()                      # blocks; Ctrl-C stops cleanly
    Experiment.load(exp.id).resume()         # later, after a stop or a crash

A Python callable can be the trial instead of a command (run in-process, for cheap trials)::

    Experiment(trial=lambda p: -(p["x"] - 1) ** 2, search_space=..., max_trials=30).run()

Many workers, on one or many machines, share one experiment through a database::

    Experiment.join(config, storage="postgresql://user@db-host/hpo").run()   # on each machine
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from spiketune.engine.config import SESSION_FIELDS, WORKER_FIELDS, ExperimentConfig
from spiketune.engine.results import (
    ExperimentResults,
    TrialRecord,
    load_results,
    results_from_store,
)
from spiketune.engine.runners import (
    InProcessRunner,
    PopulationRunner,
    Runner,
    SubprocessRunner,
    process_alive,
    process_start_time,
)
from spiketune.engine.scheduler import Budget, Progress, Scheduler, local_time
from spiketune.engine.storage import (
    ATTR_CONFIG,
    ATTR_ELAPSED,
    ATTR_EXPERIMENT_DIR,
    ATTR_STOP,
    ATTR_VERSION,
    ExperimentPaths,
    StudyStore,
    default_root,
    find_experiment,
    find_study,
    journal_file,
    read_experiment_json,
    read_json,
    redact_url,
    sqlite_url,
    strip_password,
    write_json,
)
from spiketune.engine.workers import Orphans, end_orphans, recover_interrupted
from spiketune.errors import ConfigError, Problem, StorageError
from spiketune.trial._protocol import ENV_MAX_TRIAL_DURATION

__all__ = ["Experiment", "ExperimentSummary", "list_experiments"]

LOCK_FILE = "session.lock"  # in the experiment directory: see _SessionLock


class Experiment:
    """One hyperparameter search: its configuration, its directory and its study.

    ``Experiment(config)`` or ``Experiment(**config_fields)`` (the fields of
    :class:`~spiketune.engine.config.ExperimentConfig`; a given ``config`` plus fields means the
    config with those fields changed). ``trial`` is a Python callable run in-process instead
    of a ``trial_command``. Nothing is written until :meth:`run`.

    ``kill_grace`` is the seconds between SIGTERM and SIGKILL when a trial process is ended.
    """

    def __init__(
        self,
        config: ExperimentConfig | Mapping[str, Any] | None = None,
        /,
        *,
        trial: Callable[..., Any] | None = None,
        kill_grace: float = 5.0,
        **fields: Any,
    ) -> None:
        python_trial = trial is not None
        if isinstance(config, Mapping):  # the fields as a dict: the same as given as keywords
            config, fields = None, {**_field_names(config), **fields}
        elif config is not None and not isinstance(config, ExperimentConfig):
            raise ConfigError(Problem(
                "config", type(config).__name__,
                "an ExperimentConfig (load_config(path)), a mapping of its fields, or the "
                "fields as keywords"))
        if config is None:
            config = ExperimentConfig.for_run(python_trial=python_trial, **fields)
        elif fields:
            # to_dict() leaves a database password out; this config keeps using it
            config = ExperimentConfig.for_run(
                python_trial=python_trial,
                **{**config.to_dict(), "storage": config.storage, **fields},
            )
        else:
            config.check_runnable(python_trial=python_trial)
        if python_trial and config.trial_command is not None:
            raise ConfigError(
                Problem("trial", getattr(trial, "__name__", repr(trial)),
                        "give either trial_command or a Python trial, not both")
            )
        self.config = config
        self.trial = trial
        self.kill_grace = _kill_grace(kill_grace)
        self.id = f"{config.name}-{secrets.token_hex(4)}"
        self.directory = (config.experiment_dir or default_root()).expanduser() / self.id
        self._scheduler: Scheduler | None = None
        self._exists = False
        self._joined: StudyStore | None = None  # a worker's study, open (see join)
        self._submitted: str | None = None  # a submitted worker's submission time (join)

    #: run() or resume() is under way in some thread of this process
    _running_call = False
    #: stop() came while that call had no scheduler yet: the scheduler stops as it starts
    _stop_before_start = False
    #: guards the two flags and ``_scheduler`` between stop() and the running call (held
    #: for moments only, so one lock serves every instance)
    _stop_guard = threading.Lock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        experiment: str | Path,
        *,
        trial: Callable[..., Any] | None = None,
        storage: str | None = None,
        kill_grace: float = 5.0,
    ) -> Experiment:
        """An existing experiment, by directory, id or unique id prefix.

        ``trial`` is needed to resume an experiment whose trial was a Python callable;
        ``storage`` overrides the recorded database URL.
        """
        directory = find_experiment(experiment)
        meta = read_experiment_json(ExperimentPaths(directory).experiment_json)
        config = ExperimentConfig.from_dict(meta["config"])
        if storage is not None:
            config = config.model_copy(update={"storage": storage})
        self = cls.__new__(cls)
        self.config = config
        self.trial = trial
        self.kill_grace = _kill_grace(kill_grace)
        self.id = meta["id"]
        self.directory = directory
        self._scheduler = None
        self._exists = True
        self._joined = None
        self._submitted = None
        return self

    @classmethod
    def join(
        cls,
        config: ExperimentConfig,
        *,
        storage: str | None = None,
        experiment: str | None = None,
        trial: Callable[..., Any] | None = None,
        kill_grace: float = 5.0,
        submitted: str | None = None,
    ) -> Experiment:
        """A worker of the shared experiment that ``config`` describes: :meth:`run` it on each
        machine (or several times on one).

        ``storage`` (default ``config.storage``) is the database every worker reaches. The
        first worker creates the study and registers it under ``config.name``; the others find
        it by that name (or by ``experiment``, an id or id prefix in that database) and join.
        Each worker runs its own trials in its own directory ``<experiment_dir>/<id>/``, and
        sets the fields of :data:`~spiketune.engine.config.WORKER_FIELDS` for itself (its
        paths, ``concurrency``, GPUs, population sizes); every other field must equal the
        stored configuration, else :class:`ConfigError` lists the differences.

        ``submitted`` (ISO time, seconds): when a launcher submitted this worker. A stop
        requested at that time or later (``spiketune stop``) then ends its :meth:`run` before
        it starts, instead of resuming the experiment: the worker was late, not sent after
        the stop. None: every run resumes a stopped experiment.
        """
        if submitted is not None:
            submitted = check_submitted(submitted)
        url = storage or config.storage
        if url is None:
            raise ConfigError(Problem("storage", None, "a worker needs a database that every "
                                      "worker reaches: --storage URL, or storage in the config"))
        if url != config.storage:
            config = config.model_copy(update={"storage": url})
        self = cls(config, trial=trial, kill_grace=kill_grace)
        self._make_runner()  # a trial that cannot run fails before anything is written
        if experiment is not None:
            store = StudyStore.open(url, find_study(url, experiment))
        else:
            store, _created = StudyStore.join_or_create(
                url, config.name, self.id, direction=config.directions,
                attrs={ATTR_CONFIG: config.to_dict(), ATTR_VERSION: _version(),
                       ATTR_EXPERIMENT_DIR: str(self.directory), ATTR_ELAPSED: 0.0},
            )
        try:
            stored = store.study_attrs().get(ATTR_CONFIG) or {}
            problems = config.differences_from(stored)
            if problems:
                raise ConfigError(problems, f"this worker: experiment {store.study_name} in "
                                  f"{redact_url(url)} is stored with other values (workers may "
                                  f"differ only in {', '.join(sorted(WORKER_FIELDS))})")
            self.id = store.study_name
            self.directory = (config.experiment_dir or default_root()).expanduser() / self.id
            self._write_meta(exist_ok=True)
        except BaseException:
            store.close()
            raise
        self._joined = store
        self._exists = True
        self._submitted = submitted
        return self

    def close(self) -> None:
        """Release the study that :meth:`join` opened, for an experiment that joins (and so
        registers) a study here but runs elsewhere, e.g. in jobs a launcher submits. A later
        :meth:`run` opens the study again. Idempotent."""
        if self._joined is not None:
            store, self._joined = self._joined, None
            store.close()

    # ------------------------------------------------------------------ properties
    @property
    def paths(self) -> ExperimentPaths:
        return ExperimentPaths(self.directory)

    @property
    def storage_url(self) -> str:
        return self.config.storage or sqlite_url(self.paths.study_db)

    @property
    def status(self) -> str:
        """``created``, ``running``, ``done``, ``stopped``, ``failed`` or ``interrupted``
        (of this directory's schedulers and workers)."""
        return scheduler_status(self.directory)

    def results(self) -> ExperimentResults:
        """What the experiment has found so far (works while it runs, and after)."""
        return load_results(self.directory, storage=self.config.storage)

    @property
    def best(self) -> TrialRecord | None:
        return self.results().best

    # ------------------------------------------------------------------ running
    def run(self, *, progress: Callable[[Progress], None] | None = None) -> ExperimentResults:
        """Run until ``max_trials``, ``max_duration``, the end of a Batch/grid, or a stop.

        On an experiment that exists already, the same as :meth:`resume`. ``progress`` is
        called a few times a second with a :class:`~spiketune.engine.scheduler.Progress`.
        """
        self._begin_call(progress)
        if self._joined is not None:
            store, self._joined = self._joined, None
            return self._session(progress, store=store, fresh=False, worker=True)
        if self._exists or self.paths.experiment_json.exists():
            return self.resume(progress=progress)
        return self._session(progress, store=self._create(), fresh=True)

    def resume(self, *, progress: Callable[[Progress], None] | None = None) -> ExperimentResults:
        """Continue a stopped or crashed experiment where it was.

        Trials left running by a crashed scheduler are settled first: their leftover
        processes are ended, and each is recorded COMPLETE with the final result its
        ``metrics.jsonl`` holds, else FAILED (interrupted). The trial count and the duration
        budget go on from where they were. Only one session of an experiment directory runs
        at a time: a second ``resume`` raises :class:`StorageError`.
        """
        self._begin_call(progress)
        if not self.paths.experiment_json.exists():
            raise StorageError(f"experiment {self.id} has not been run yet: no {self.directory}")
        status = self.status
        if status == "running":
            info = read_json(self.paths.scheduler_json)
            raise StorageError(
                f"experiment {self.id} is running (pid {info.get('pid')} on {info.get('host')}); "
                "stop it first with `spiketune stop`"
            )
        return self._session(progress, store=None, fresh=False)

    @property
    def running(self) -> bool:
        """Whether the experiment runs: a scheduler of this directory, or (in a shared
        database) a trial of any worker on any machine."""
        if self.status == "running":
            return True
        return self.config.storage is not None and running_in_study(self.storage_url, self.id) > 0

    def stop(self, *, wait: float | None = None) -> str:
        """Ask the running experiment to stop: its trials are ended and recorded.

        Works from another thread of the process that runs it and from any other process (it
        leaves a ``stop`` file the scheduler looks for); in a shared database every worker
        stops too, within one heartbeat interval. ``wait``: seconds to wait until nothing runs
        any more (:attr:`running`). Returns the status of this directory's schedulers.

        An ``interrupted`` experiment (its scheduler was killed) has no scheduler to ask: the
        trial processes it left running are ended here (:func:`end_orphaned_trials`), and
        :meth:`resume` records those trials.
        """
        with self._stop_guard:
            starting = self._running_call
            if self._scheduler is not None:
                self._scheduler.request_stop("stop requested")
            elif self._running_call:  # starting: its scheduler stops as soon as it exists
                self._stop_before_start = True
        status = self.status
        if self._scheduler is None and status == "running":
            self.paths.stop_file.touch()
        elif not starting and status == "interrupted":
            end_orphaned_trials(self)
        if self.config.storage is not None:  # workers elsewhere read it from the study
            request_stop_in_study(self.storage_url, self.id)
        poll = 0.05 if self.config.storage is None else 0.5  # a database is asked less often
        _wait_until(lambda: not self.running, wait, poll)
        return self.status

    # ------------------------------------------------------------------ internals
    def _begin_call(self, progress: Callable[[Progress], None] | None) -> None:
        """Checks and flags of a run() or resume() call, before anything is written."""
        if progress is not None and not callable(progress):
            raise ConfigError(Problem("progress", repr(progress), "a callable, or None"))
        with self._stop_guard:
            self._running_call = True
            self._stop_before_start = False  # a stop() before this call stopped nothing

    def _create(self) -> StudyStore:
        """Make the experiment directory and its study; return the study, open."""
        self._make_runner()  # a trial that cannot run fails before anything is written
        from spiketune.engine.storage._paths import writable_root

        writable_root(self.directory.parent)  # a root that is a file: said, not an OSError
        self.directory.mkdir(parents=True, exist_ok=False)
        try:
            self._write_meta(exist_ok=False)
            store = StudyStore.open(
                self.storage_url, self.id, create=True, direction=self.config.directions
            )
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)  # ours, made a moment ago
            raise
        try:
            store.set_study_attr(ATTR_CONFIG, self.config.to_dict())
            store.set_study_attr(ATTR_VERSION, _version())
            store.set_study_attr(ATTR_EXPERIMENT_DIR, str(self.directory))
            store.set_study_attr(ATTR_ELAPSED, 0.0)
        except BaseException:
            store.close()
            raise
        self._exists = True
        return store

    def _write_meta(self, *, exist_ok: bool) -> None:
        """``experiment.json`` (kept if it exists and ``exist_ok``): no password in it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if exist_ok and self.paths.experiment_json.exists():
            return
        meta = {
            "id": self.id,
            "name": self.config.name,
            "created": datetime.now().isoformat(timespec="seconds"),
            "storage": None if self.config.storage is None
            else strip_password(self.config.storage),
            "spiketune_version": _version(),
            "config": self.config.to_dict(),
        }
        write_json(self.paths.experiment_json, meta)

    def _check_stored_config(self, store: StudyStore) -> None:
        """Refuse to resume with a configuration (``experiment.json``, read by :meth:`load`)
        that differs from the one stored with the study beyond :data:`SESSION_FIELDS`: other
        objectives would store trials with more values than the study has directions, another
        search space parameters of another kind under the same names. A study stored without
        its configuration (none to compare with) is resumed as it is."""
        stored = store.study_attrs().get(ATTR_CONFIG)
        if not isinstance(stored, dict) or not stored:
            return
        # Read back as this release writes it: a study stored by an earlier release lacks the
        # fields added since (at their defaults) and is not taken for a changed one.
        with contextlib.suppress(ConfigError):
            stored = ExperimentConfig.from_dict(stored).to_dict()
        problems = self.config.differences_from(stored, may_differ=SESSION_FIELDS)
        if problems:
            raise ConfigError(problems, f"{self.paths.experiment_json}: experiment {self.id} "
                              f"is stored with other values (a resumed session may change "
                              f"only {', '.join(sorted(SESSION_FIELDS))})")

    def _make_runner(self) -> Runner:
        _gpu_indices(self.config, notice=False)  # GPUs asked for but missing: nothing starts
        if self.trial is not None:
            if self.config.population is not None:
                raise ConfigError(Problem(
                    "population", self.config.population,
                    "population mode runs a trial command (whose script calls "
                    "spiketune.trial.population()), not a Python callable"))
            return InProcessRunner(self.trial, max_trial_duration=self.config.max_trial_duration)
        if self.config.trial_command is None:
            raise ConfigError(
                Problem("trial", None, "this experiment's trial is a Python callable: pass it "
                        "again, Experiment.load(..., trial=fn)")
            )
        self.config.check_runnable()
        limit = self.config.max_trial_duration
        runner = SubprocessRunner(
            self.config.trial_command, self.config.trial_code_directory,
            kill_grace=self.kill_grace,
            # A trial that knows its time limit can end its training in time with a result
            # (spiketune.trial.trial_deadline) rather than be killed without one.
            env=None if limit is None else {ENV_MAX_TRIAL_DURATION: repr(float(limit))},
            hide_gpus=self.config.gpus != "inherit",
        )
        if self.config.population is None:
            return runner
        return PopulationRunner(runner, size=self.config.population,
                                processes=self.config.concurrency,
                                population_dir=self.paths.population_dir,
                                size_of=(self.config.population_size_of
                                         if self.config.population_sizes else None))

    def _session(
        self,
        progress: Callable[[Progress], None] | None,
        *,
        store: StudyStore | None,
        fresh: bool,
        worker: bool = False,
    ) -> ExperimentResults:
        """One scheduler session on ``store`` (None: open it); ``fresh``: the study was just
        created; ``worker``: one of possibly many schedulers of this directory.

        The session holds the directory's lock throughout (shared between workers, exclusive
        otherwise): see :class:`_SessionLock`."""
        try:
            lock = _SessionLock(self.directory, self.id, shared=worker)
        except BaseException:
            if store is not None:
                store.close()
            raise
        with lock:
            return self._locked_session(progress, store=store, fresh=fresh, worker=worker)

    def _locked_session(
        self,
        progress: Callable[[Progress], None] | None,
        *,
        store: StudyStore | None,
        fresh: bool,
        worker: bool,
    ) -> ExperimentResults:
        config = self.config
        try:
            runner = self._make_runner()
        except BaseException:
            if store is not None:
                store.close()
            raise
        if store is None:
            store = StudyStore.open(self.storage_url, self.id)
        paths = self.paths
        state_file = paths.worker_json(store.owner) if worker else paths.scheduler_json
        try:
            if not fresh and not worker:
                self._check_stored_config(store)
            if not worker or not _local_workers_running(paths):
                with contextlib.suppress(FileNotFoundError):
                    paths.stop_file.unlink()
            _write_scheduler_state(state_file, "running")
            goal = config.goal()
            # A member of a population is retried at least once: it may have been lost with
            # the others, through no fault of its own parameters.
            members = max([config.population or 1]
                          + [r.size for r in config.population_sizes or []])
            max_retries = config.max_retries if members == 1 else max(1, config.max_retries)
            if not fresh:
                with store.reading():  # a damaged database: said, not a traceback
                    recover_interrupted(store, paths, max_retries, goal=goal,
                                        kill_grace=self.kill_grace)
            tuner = config.create_tuner()
            assessor = config.create_assessor()
            space = config.space()
            started = 0 if fresh else store.claims_used()
            # A resumed session must not replay the seeded draws of the first one, and workers
            # sharing a study must not draw the same parameters.
            seed = None if config.seed is None else (config.seed + started) % 2**32
            if seed is not None and worker:
                seed = zlib.crc32(f"{seed}:{store.owner}".encode())
            sampler = tuner.create_sampler(space, seed=seed, directions=config.directions)
            scheduler = Scheduler(
                store=store,
                runner=runner,
                paths=paths,
                experiment_id=self.id,
                space=space,
                sampler=sampler,
                # None: no Optuna pruner (Silent alone judges each report by itself)
                pruner=assessor.create_pruner() if assessor and assessor.uses_pruner() else None,
                budget=Budget(config.max_trials, config.max_duration, config.max_trial_duration,
                              config.at_max_duration),
                concurrency=config.concurrency * members,
                gpus=_gpu_indices(config),
                trials_per_gpu=config.trials_per_gpu * members,
                fixed_trials=tuner.fixed_trials(space, seed=config.seed),
                start_points=list(config.start_with or ()),
                progress=progress,
                heartbeat_interval=config.heartbeat_interval,
                grace_period=config.grace_period,
                max_retries=max_retries,
                goal=goal,
                kill_grace=self.kill_grace,
                population_group=config.population_group or (),
                submitted=self._submitted if worker else None,
            )
            with self._stop_guard:
                self._scheduler = scheduler
                if self._stop_before_start:
                    scheduler.request_stop("stop requested")
            status = "failed"
            try:
                status = scheduler.run()
            except BaseException as e:
                self._end_session(state_file, status, worker=worker, error=e)
                raise
            self._end_session(state_file, status, worker=worker, error=None)
            return results_from_store(store, self.directory)
        finally:
            runner.close()
            store.close()

    def _end_session(self, state_file: Path, status: str, *, worker: bool,
                     error: BaseException | None) -> None:
        """What a session leaves once its scheduler has returned ``status`` or raised
        ``error``: its state file, and no stop file unless another worker of the directory
        still runs. A file that cannot be written now (a full disk) must not hide ``error``,
        the reason the session ended: it is noted on it (see :func:`_noted_on`)."""
        with self._stop_guard:
            self._scheduler = None
            self._running_call = False
        with _noted_on(error):
            _write_scheduler_state(state_file, status)
        if not worker or not _local_workers_running(self.paths):
            with _noted_on(error), contextlib.suppress(FileNotFoundError):
                self.paths.stop_file.unlink()


@contextlib.contextmanager
def _noted_on(error: BaseException | None) -> Iterator[None]:
    """A clean-up step after ``error`` (None: nothing failed): an OSError it meets is added
    to ``error`` as a note (``also: <file>: <problem>``) rather than raised in its place, so
    the first failure is the one reported (a full disk fails the study's write first, then
    every file written after it). Without ``error``, the OSError is raised."""
    try:
        yield
    except OSError as e:
        if error is None:
            raise
        where = f"{e.filename}: " if e.filename else ""
        error.add_note(f"also: {where}{e.strerror or e}")


class _SessionLock:
    """The lock of an experiment directory, held by each session that runs its trials.

    ``run`` and ``resume`` take it exclusive, workers shared: so two ``resume`` commands of
    one experiment started at the same moment (both past the status check) cannot both run,
    and neither can a ``resume`` beside workers of the same directory. It is an advisory
    ``flock`` on ``session.lock`` in the directory, released by the kernel when its process
    ends, even by ``kill -9``: a crash never leaves it stale. Its file descriptor is not
    inherited by trial processes, so an orphaned trial does not keep it.
    """

    def __init__(self, directory: Path, experiment_id: str, *, shared: bool) -> None:
        path = directory / LOCK_FILE
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode("utf-8", errors="replace").strip()
            os.close(self._fd)
            raise StorageError(
                f"experiment {experiment_id} is already running in another process"
                f"{f' ({holder})' if holder else ''}: one session of an experiment directory "
                f"runs at a time; stop it first with `spiketune stop {experiment_id}`"
            ) from None
        except BaseException:
            os.close(self._fd)
            raise
        # Who holds it, for the message above (workers share it: none of them is named).
        os.ftruncate(self._fd, 0)
        if not shared:
            os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)

    def __enter__(self) -> _SessionLock:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing the last descriptor releases the lock


def _version() -> str:
    from spiketune import __version__

    return __version__


def _write_scheduler_state(path: Path, status: str) -> None:
    info = {
        "status": status,
        "pid": os.getpid(),
        "start_time": process_start_time(os.getpid()),
        "host": socket.gethostname(),
        # to the microsecond: of two workers of one directory ending in the same second,
        # the later decides the experiment's status (scheduler_status)
        "updated": datetime.now().isoformat(timespec="microseconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, info)


def end_orphaned_trials(experiment: Experiment) -> Orphans:
    """End the trial processes that the killed scheduler of an ``interrupted`` experiment
    left running on this machine (they hold CPUs and GPUs until then), found and ended as a
    resume's recovery finds and ends them (:func:`~spiketune.engine.workers.end_orphans`).
    Nothing is recorded: the trials stay RUNNING until a resume records them."""
    url = experiment.storage_url
    # Read-only, as reading never writes; but a journal's reads see a new trial and its
    # owner together only under its lock, which a read-only opening does not take (without
    # it, a live worker's trial of this instant could pass for an orphan).
    store = StudyStore.open(url, experiment.id, read_only=journal_file(url) is None)
    try:
        with store.reading():
            return end_orphans(store, experiment.paths, kill_grace=experiment.kill_grace)
    finally:
        store.close()


def request_stop_in_study(url: str, experiment_id: str) -> None:
    """Ask every worker of a database-backed experiment to stop (they read it within one
    heartbeat interval)."""
    store = StudyStore.open(url, experiment_id)
    try:
        # to the microsecond: a submission in the same second after it must resume; with the
        # UTC offset: workers in other time zones compare it as the same instant
        store.set_study_attr(ATTR_STOP, datetime.now().astimezone().isoformat())
    finally:
        store.close()


def check_submitted(value: object, field: str = "submitted") -> str:
    """A worker's submission time as ISO, this machine's local time without an offset (a time
    with one is converted), as :func:`~spiketune.engine.scheduler.stopped_since` compares it
    with a stop request. Raises ConfigError naming ``field`` for anything else."""
    try:
        when = local_time(str(value)) if isinstance(value, str | datetime) else None
    except ValueError:
        when = None
    if when is None:
        raise ConfigError(Problem(field, value, "an ISO date and time, e.g. "
                                  "2026-01-31T12:00:00"))
    return when.isoformat()


def running_in_study(url: str, experiment_id: str) -> int:
    """Trials of the experiment running in the database ``url`` (every worker's)."""
    store = StudyStore.open(url, experiment_id)
    try:
        return sum(1 for r in store.unfinished() if not r.waiting)
    finally:
        store.close()


def stop_in_study(url: str, experiment_id: str, *, wait: float | None = None) -> int:
    """Stop every worker of an experiment that has no directory here (it lives in the database
    ``url``); wait up to ``wait`` seconds for their trials to end. Returns the trials still
    running."""
    request_stop_in_study(url, experiment_id)
    _wait_until(lambda: running_in_study(url, experiment_id) == 0, wait, 0.5)
    return running_in_study(url, experiment_id)


def _field_names(config: Mapping[Any, Any]) -> dict[str, Any]:
    """A configuration given as a mapping, its keys checked to be field names (text)."""
    named = [key for key in config if not isinstance(key, str)]
    if named:
        raise ConfigError([Problem("config", key, "field names are text") for key in named])
    return dict(config)


def _kill_grace(value: Any) -> float:
    """``kill_grace``: seconds from SIGTERM to SIGKILL when a trial is ended, checked when
    the experiment is made rather than when its first trial ends."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ConfigError(Problem("kill_grace", value, "seconds >= 0"))
    return float(value)


def _wait_until(done: Callable[[], bool], seconds: float | None, poll: float) -> None:
    """Poll ``done`` every ``poll`` seconds until it holds or ``seconds`` have passed."""
    deadline = time.monotonic() + (seconds or 0.0)
    while seconds and not done() and time.monotonic() < deadline:
        time.sleep(poll)


def _status_of(info: dict[str, Any]) -> str:
    status = str(info.get("status", "created"))
    if status != "running":
        return status
    if info.get("host") != socket.gethostname():
        return "running"  # cannot check another machine
    return "running" if process_alive(info.get("pid"), info.get("start_time")) else "interrupted"


def _states(paths: ExperimentPaths) -> list[dict[str, Any]]:
    """The state files of the directory's schedulers; one that exists but cannot be read
    counts as a scheduler of ``unknown`` status, not as none (which reads ``created``)."""
    files = [paths.scheduler_json, *sorted(paths.workers.glob("*.json"))]
    out = []
    for path in files:
        try:
            info = read_json(path)
        except FileNotFoundError:  # gone between the listing and the read
            continue
        except (OSError, ValueError):
            info = None
        out.append(info if isinstance(info, dict) else {"status": "unknown"})
    return out


def _local_workers_running(paths: ExperimentPaths) -> bool:
    me = (socket.gethostname(), os.getpid())
    return any(_status_of(i) == "running" and (i.get("host"), i.get("pid")) != me
               for i in _states(paths))


def scheduler_status(directory: Path) -> str:
    """The status of the experiment's schedulers on this machine: ``running`` while one of
    them (``scheduler.json``, or a worker's ``workers/*.json``) runs; otherwise the status the
    last of them recorded, ``interrupted`` if it died, ``unknown`` if its file cannot be
    read; ``created`` when none has run."""
    states = _states(ExperimentPaths(directory))
    if not states:
        return "created"
    statuses = [_status_of(i) for i in states]
    if "running" in statuses:
        return "running"
    last = max(range(len(states)), key=lambda k: str(states[k].get("updated", "")))
    return statuses[last]


def _gpu_indices(config: ExperimentConfig, *, notice: bool = True) -> list[int]:
    """The GPU indices this machine gives the trials (one per trial), checked against the GPUs
    it has (:func:`_gpus_found`) when the experiment starts, not when the configuration is
    read: a configuration may be written on a laptop for a GPU machine.

    A request that cannot be met stops the start with a :class:`ConfigError` naming the field:
    indices the machine does not have (``gpus``), or ``"all"`` with ``require_gpus`` (NNI's
    ``trialGpuNumber: 1``) and no GPU. ``"all"`` alone with no GPU runs the trials on the CPU,
    with one notice on stderr (when ``notice``: once per session). None and ``"inherit"``
    give out no GPU.
    """
    if config.gpus in (None, "inherit"):
        return []
    found, where = _gpus_found()
    if config.gpus == "all":
        if found:
            return found
        if config.require_gpus:
            raise ConfigError(Problem(
                "require_gpus", True,
                f'asks for a GPU per trial (gpus = "all"; NNI: trialGpuNumber: 1), and this '
                f"machine has none ({where}); leave it out to run trials on the CPU, or list "
                "the GPUs in CUDA_VISIBLE_DEVICES"))
        if notice:
            print(f'spiketune: gpus = "all" found no GPU on this machine ({where}); trials '
                  "run on the CPU", file=sys.stderr)
        return []
    missing = [i for i in config.gpus if i not in found]
    if missing:
        has = f"it has {', '.join(map(str, found))}" if found else "it has none"
        raise ConfigError(Problem(
            "gpus", config.gpus,
            f"GPU {', '.join(map(str, missing))} not found on this machine ({has}: {where}); "
            'give indices it has, "all" for every GPU found (the CPU when there is none), or '
            "leave gpus out"))
    return list(config.gpus)


def _gpus_found() -> tuple[list[int], str]:
    """The indices of this machine's GPUs, and where they come from (for messages).

    ``CUDA_VISIBLE_DEVICES`` when it holds indices (``""``: none), as a job scheduler or the
    user sets it; else every GPU ``nvidia-smi -L`` lists. Indices are the machine's (what a
    trial's ``CUDA_VISIBLE_DEVICES`` is set to).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        parts = [p.strip() for p in visible.split(",") if p.strip()]
        if all(p.isdigit() for p in parts):
            return [int(p) for p in parts], f"CUDA_VISIBLE_DEVICES={visible!r}"
    count = _gpu_count()
    if count is None:
        return [], "nvidia-smi is not installed"
    return list(range(count)), f"nvidia-smi -L lists {count}"


def _gpu_count() -> int | None:
    """GPUs on this machine, from ``nvidia-smi -L`` (torch is not imported for this); None
    when ``nvidia-smi`` is not installed."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


# ------------------------------------------------------------------------------ listing
class ExperimentSummary:
    """What ``spiketune ls`` shows of one experiment, read from its directory only;
    ``problem`` says why its ``experiment.json`` could not be read (None when it could)."""

    def __init__(self, directory: Path, meta: dict[str, Any], problem: str | None = None
                 ) -> None:
        self.directory = directory
        self.problem = problem
        self.id: str = meta.get("id", directory.name)
        self.name: str = meta.get("name", "")
        self.created: str = meta.get("created", "")
        self.config: dict[str, Any] = meta.get("config", {})
        self.storage: str | None = meta.get("storage")

    @property
    def status(self) -> str:
        return scheduler_status(self.directory)


def list_experiments(root: Path | None = None) -> list[ExperimentSummary]:
    """Every experiment directory under ``root`` (default: the experiments root), oldest first."""
    base = root or default_root()
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        path = ExperimentPaths(d).experiment_json
        if path.is_file():
            try:
                out.append(ExperimentSummary(d, read_experiment_json(path)))
            except StorageError as e:  # listed as damaged, not left out
                out.append(ExperimentSummary(d, {}, problem=str(e)))
    return sorted(out, key=lambda s: (s.created, s.id))
