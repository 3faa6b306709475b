"""Workers as SLURM jobs through submitit (``pip install 'spiketune[slurm]'``), or as local
processes through submitit's local executor (testing, or one machine).

Every option is a submitit parameter (:data:`OPTIONS`: option -> parameter of
``submitit.AutoExecutor.update_parameters`` and how its value is read); ``--slurm-option
KEY=VALUE`` passes any other parameter of ``submitit.SlurmExecutor`` (``exclude``, ``gres``,
``mail_type``, ``setup``...), and an unknown one is refused with the list of those accepted.

The N workers go as one job array (``--array-parallelism`` caps how many run at once). Each
job runs :class:`~spiketune.engine.launch.WorkerTask` on the experiment this submission
registered in the storage first, so that every job joins that experiment, ``spiketune ls``
shows it (and the jobs) at once, and ``spiketune stop`` finds the jobs to cancel.

GPUs: ``--gpus-per-worker G`` asks SLURM for G GPUs per job (``--gpus-per-node``) and runs
the worker with ``gpus = "all"``: its trials use exactly the GPUs of the job's allocation, as
SLURM lists them in ``CUDA_VISIBLE_DEVICES``. The local executor gives each job G of this
machine's GPUs, different ones for each job, the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from spiketune.engine.launch._base import Launched, Launcher, WorkerSpec
from spiketune.engine.launch._jobs import new_record, record_jobs
from spiketune.engine.launch._worker import WorkerTask
from spiketune.errors import ConfigError, LaunchError, Problem

__all__ = ["EXECUTORS", "OPTIONS", "SlurmLauncher", "gigabytes", "minutes"]

#: ``--executor`` values: submitit's cluster names.
EXECUTORS = ("slurm", "local")
_UNITS_GB = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?\s*$", re.IGNORECASE)


def minutes(value: str) -> int:
    """SLURM's time limit in whole minutes (rounded up) from ``"4h"``, ``"90m"``, ``"1d"`` or
    seconds."""
    from spiketune.engine.config import parse_duration

    seconds = parse_duration(value if not str(value).isdigit() else int(value))
    assert seconds is not None  # parse_duration refuses None for a given value
    return math.ceil(seconds / 60)


def gigabytes(value: str) -> float:
    """Memory in GB from ``"16G"``, ``"16GB"``, ``"512M"``, ``"1.5T"``."""
    match = _MEMORY.match(str(value))
    if match is None or float(match.group(1)) <= 0:
        raise ValueError('must be a positive amount such as "16G", "512M" or "1.5T"')
    return float(match.group(1)) * _UNITS_GB[match.group(2).upper()]


def _positive(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be an integer >= 1")
    return number


def _count(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be an integer >= 0")
    return number


#: option -> (submitit parameter of AutoExecutor, converter of the option's value)
OPTIONS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "partition": ("slurm_partition", str),
    "gpus_per_worker": ("gpus_per_node", _count),
    "time": ("timeout_min", minutes),
    "mem": ("mem_gb", gigabytes),
    "cpus_per_worker": ("cpus_per_task", _positive),
    "account": ("slurm_account", str),
    "qos": ("slurm_qos", str),
    "constraint": ("slurm_constraint", str),
    "array_parallelism": ("slurm_array_parallelism", _positive),
    "job_name": ("name", str),
}
#: SLURM parameters that spiketune sets itself (a --slurm-option may not change them).
_MANAGED = frozenset({"array", "map_count", "nodes", "ntasks_per_node", "tasks_per_node"})


class SlurmLauncher(Launcher):
    """N workers as SLURM jobs (``executor="slurm"``), or as processes of this machine
    (``executor="local"``: submitit's local executor runs the same job objects; for tests
    and single machines).

    ``options``: the :data:`OPTIONS` (None: SLURM's default); ``slurm_options``: further
    parameters of ``submitit.SlurmExecutor`` by name, values as text (JSON is read: numbers,
    ``true``, lists); ``folder``: where submitit keeps job scripts, pickles and logs (default
    ``<experiment dir>/jobs``; on SLURM it must be on a filesystem the nodes share).
    """

    kind: ClassVar[str] = "slurm"

    def __init__(
        self,
        *,
        executor: str = "slurm",
        options: Mapping[str, Any] | None = None,
        slurm_options: Mapping[str, str] | None = None,
        folder: Path | None = None,
    ) -> None:
        if executor not in EXECUTORS:
            raise ConfigError(Problem("--executor", executor,
                                      f"must be one of {', '.join(EXECUTORS)}"))
        self.executor = executor
        self.remote = executor != "local"
        self.folder = folder
        self.parameters = _parameters(options or {}, executor)
        self.slurm_parameters = _slurm_parameters(slurm_options or {}, self.parameters)
        self.gpus_per_worker = int(self.parameters.get("gpus_per_node", 0))

    def check(self, spec: WorkerSpec) -> None:
        """The base's storage rules; for SLURM, submitit installed and SLURM here (before
        the experiment is registered, so that a refusal leaves nothing behind)."""
        super().check(spec)
        if self.executor == "local" and self.gpus_per_worker:
            # every job's GPUs are there, before any job starts: a refusal half-way would
            # leave jobs running that nothing records
            from spiketune.engine.experiment import _gpus_found

            found, where = _gpus_found()
            need = self.gpus_per_worker * spec.workers
            if len(found) < need:
                raise ConfigError(Problem(
                    "--gpus-per-worker", self.gpus_per_worker,
                    f"{spec.workers} local workers x {self.gpus_per_worker} GPUs = {need} "
                    f"GPUs, and this machine has {len(found)} ({where})"))
        submitit = _submitit()
        if self.executor == "slurm" and submitit.SlurmExecutor.affinity() <= 0:
            raise LaunchError(
                "no SLURM here (`srun` is not on PATH): run `spiketune submit` on a login "
                "node of the cluster, or use --executor local to start the workers on this "
                "machine")

    def launch(self, spec: WorkerSpec) -> Launched:
        """Register the experiment in the storage, submit ``spec.workers`` jobs, record them
        in the experiment directory's ``jobs.json``."""
        exp_id, directory = _register(spec)
        folder = self.folder or directory / "jobs"
        executor = self._executor(folder)
        # to the microsecond and with the UTC offset, as a stop request
        submitted = datetime.now().astimezone().isoformat()
        tasks = [WorkerTask(config=str(spec.config_path), storage=spec.storage,
                            experiment=exp_id, gpus="all" if self.gpus_per_worker else None,
                            submitted=submitted)
                 for _ in range(spec.workers)]
        jobs = self._submit(executor, tasks)
        with contextlib.suppress(OSError):  # submitit leaves its pattern as an empty folder
            (folder / "%j").rmdir()
        # submitit's folder pattern (``<folder>/%j``): where each job's files are found
        records = [new_record(job.job_id, self.executor, Path(executor.folder))
                   for job in jobs]
        record_jobs(directory, records)
        return Launched(self.executor, tuple(r.id for r in records), exp_id,
                        (directory / "jobs.json",))

    # ------------------------------------------------------------------ submitit
    def _executor(self, folder: Path) -> Any:
        submitit = _submitit()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            executor = submitit.AutoExecutor(folder=folder / "%j", cluster=self.executor)
        except RuntimeError as e:  # SlurmExecutor: srun gone since check()
            raise LaunchError(f"no SLURM here: {e}") from None
        try:
            executor.update_parameters(**{**self.parameters, **self.slurm_parameters})
        except (NameError, ValueError, AssertionError) as e:  # what submitit itself refuses
            raise LaunchError(f"submitit refused the job parameters: {e}") from None
        return executor

    def _submit(self, executor: Any, tasks: list[WorkerTask]) -> list[Any]:
        import submitit

        try:
            if self.executor == "local" and self.gpus_per_worker:
                return [self._submit_local_on_gpus(executor, task, k)
                        for k, task in enumerate(tasks)]
            with executor.batch():  # SLURM: one job array
                delayed = [executor.submit(task) for task in tasks]
            return [job for job in delayed]
        except (submitit.core.utils.FailedSubmissionError, OSError) as e:
            raise LaunchError(f"the jobs could not be submitted: {e}") from None

    def _submit_local_on_gpus(self, executor: Any, task: WorkerTask, k: int) -> Any:
        """The ``k``-th local job, given its own ``gpus_per_worker`` GPUs of this machine
        (submitit's local executor would give every job the same first ones)."""
        from spiketune.engine.experiment import _gpus_found

        found, where = _gpus_found()
        g = self.gpus_per_worker
        mine = found[k * g:(k + 1) * g]
        if len(mine) < g:
            raise ConfigError(Problem(
                "--gpus-per-worker", g,
                f"asks for {g} GPUs for each local worker, and this machine has "
                f"{len(found)} ({where}) for them all"))
        import submitit

        # AutoExecutor does not pass visible_gpus on: a LocalExecutor of the same folder and
        # parameters does, one per job.
        local = submitit.LocalExecutor(folder=executor.folder)
        local.update_parameters(**{**executor.parameters, "visible_gpus": tuple(mine)})
        return local.submit(task)


#: The local executor's time limit when none is given (submitit's own is 2 minutes): 30 days.
_LOCAL_MINUTES = 30 * 24 * 60


def _parameters(options: Mapping[str, Any], executor: str) -> dict[str, Any]:
    """AutoExecutor's parameters from :data:`OPTIONS`; every unknown option or bad value is
    one problem of one :class:`ConfigError`.

    SLURM needs ``time``: SLURM ends a job at its time limit, and submitit's default is 5
    minutes, a limit nobody would choose for a worker. Local jobs have none unless given.
    """
    problems: list[Problem] = []
    parameters: dict[str, Any] = {"name": "spiketune-worker"}
    if options.get("time") is None:
        if executor == "slurm":
            problems.append(Problem("--time", None, "needed for SLURM jobs: the worker's wall "
                                    "time, e.g. --time 4h (SLURM ends a job at its limit; "
                                    "submitit's default would be 5 minutes)"))
        else:
            parameters["timeout_min"] = _LOCAL_MINUTES
    for option, value in options.items():
        if value is None:
            continue
        if option not in OPTIONS:
            problems.append(Problem(_flag(option), value, "unknown option; accepted: "
                                    + ", ".join(_flag(o) for o in OPTIONS)))
            continue
        parameter, convert = OPTIONS[option]
        try:
            parameters[parameter] = convert(value)
        except (TypeError, ValueError) as e:
            problems.append(Problem(_flag(option), value, str(e) or "cannot be read"))
    if problems:
        raise ConfigError(problems)
    return parameters


def _slurm_parameters(options: Mapping[str, str], given: Mapping[str, Any]) -> dict[str, Any]:
    """``--slurm-option KEY=VALUE`` pairs as AutoExecutor's ``slurm_KEY`` parameters, checked
    against ``submitit.SlurmExecutor``'s own list (and against the options given already)."""
    if not options:
        return {}
    SlurmExecutor = _submitit().SlurmExecutor
    accepted = sorted(SlurmExecutor._valid_parameters() - _MANAGED)
    by_parameter = {p: o for o, (p, _) in OPTIONS.items()}
    equivalents = SlurmExecutor._equivalence_dict() or {}
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for key, text in options.items():
        if key not in accepted:
            problems.append(Problem(f"--slurm-option {key}", text,
                                    "unknown SLURM parameter; accepted: " + ", ".join(accepted)))
            continue
        generic = next((g for g, s in equivalents.items() if s == key), None)
        option = by_parameter.get(f"slurm_{key}") or by_parameter.get(generic or "")
        if option is not None and (f"slurm_{key}" in given or generic in given):
            problems.append(Problem(f"--slurm-option {key}", text,
                                    f"is set by {_flag(option)} already; give it once"))
            continue
        out[f"slurm_{key}"] = _value(text)
    if problems:
        raise ConfigError(problems)
    return out


def _submitit() -> Any:
    """The submitit module; :class:`LaunchError` saying how to install it when missing."""
    try:
        import submitit
    except ImportError:
        raise LaunchError("submitting jobs needs submitit: pip install "
                          "'spiketune[slurm]'") from None
    return submitit


def _value(text: str) -> Any:
    """A --slurm-option value: JSON when it reads as such (``3``, ``true``, ``["a"]``), else
    the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _register(spec: WorkerSpec) -> tuple[str, Path]:
    """Create (or find, by the config's name) the experiment in the storage, as the first
    worker would, and its directory here; returns its id and directory.

    Registered with the worker fields of this machine left out (``gpus``), since the
    submitting machine (a login node) need not have the GPUs the jobs will get; workers may
    differ in them anyway.
    """
    from spiketune.engine.experiment import Experiment

    config = spec.config.model_copy(update={"gpus": None, "require_gpus": False})
    exp = Experiment.join(config, storage=spec.storage)
    exp.close()  # only registered here, never run
    spent = _budget_spent(spec, exp.id)
    if spent is not None:
        raise LaunchError(
            f"experiment {exp.id} has used its budget ({spent}): its workers would end at "
            "once. Raise max_trials or max_duration in the config, or give the config "
            "another name for a new experiment")
    return exp.id, exp.directory


def _budget_spent(spec: WorkerSpec, experiment_id: str) -> str | None:
    """How the experiment (found again by its name) has used its budget, or None while
    workers have something to do: trials left to start, or trials still running or
    waiting to be retried."""
    import optuna

    from spiketune.engine.storage import ATTR_ELAPSED, StudyStore

    budget = spec.config
    store = StudyStore.open(spec.storage, experiment_id, read_only=True)
    try:
        elapsed = float(store.study_attrs().get(ATTR_ELAPSED) or 0.0)
        if budget.max_duration is not None and elapsed >= budget.max_duration:
            return f"max_duration {budget.max_duration:g} s, {elapsed:.0f} s run"
        if budget.max_trials is None or store.claims_used() < budget.max_trials:
            return None
        unfinished = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
        if any(t.state in unfinished for t in store.trials()):
            return None
        return f"max_trials {budget.max_trials}, every one started and finished"
    finally:
        store.close()
