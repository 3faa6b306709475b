"""The jobs submitted for an experiment: recorded in ``<experiment dir>/jobs.json``, their
state asked of the cluster, and cancelled.

``jobs.json`` (written atomically; a later submission for the same experiment appends)::

    {"jobs": [{"id": "4242_0", "executor": "slurm", "folder": "/.../jobs",
               "submitted": "2025-01-31T12:00:00", "host": "login1", "start_time": null}]}

States are submitit's: SLURM's as ``sacct`` reports them (``PENDING``, ``RUNNING``,
``COMPLETED``, ``CANCELLED``, ``FAILED``, ``TIMEOUT``...); for the local executor, ``RUNNING``
(its process runs), ``FINISHED`` (the task returned or raised: submitit wrote its result) or
``INTERRUPTED`` (its process is gone without a result: killed). A local job's process is
recognised by its pid and start time, so that a reused pid is not taken for it; one of another
machine is ``UNKNOWN``.

Stopping (:func:`cancel_jobs`, after the workers were asked to stop through the storage): a
pending job is cancelled at once (a job that starts anyway ends without running: see
:class:`~spiketune.engine.launch.WorkerTask`); a running one is given ``grace`` seconds
to end by itself (its worker ends and records its trials), and cancelled after.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from spiketune.engine.storage import read_json, write_json
from spiketune.errors import LaunchError

__all__ = [
    "JOBS_FILE",
    "JobRecord",
    "JobsStopped",
    "cancel_jobs",
    "job_state",
    "job_states",
    "new_record",
    "read_jobs",
    "record_jobs",
]

JOBS_FILE = "jobs.json"
#: SLURM states of a job that has not started yet (cancelled at once by a stop).
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                            "RESV_DEL_HOLD"})
#: States of a job that has ended, whatever the executor (nothing left to cancel).
ENDED_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                          "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED",
                          "FINISHED", "INTERRUPTED"})


@dataclass(frozen=True)
class JobRecord:
    """One submitted job, as ``jobs.json`` keeps it (see the module docstring)."""

    id: str
    executor: str  # "slurm" or "local"
    folder: str  # submitit's folder of the job's script, pickles and logs
    submitted: str
    host: str
    start_time: float | None = None  # a local job's process start (pid reuse check)


@dataclass(frozen=True)
class JobsStopped:
    """What :func:`cancel_jobs` did: jobs cancelled while pending, cancelled after the
    grace period, and ended by themselves (or already ended)."""

    pending: tuple[str, ...]
    overdue: tuple[str, ...]
    ended: tuple[str, ...]


def read_jobs(directory: Path) -> list[JobRecord]:
    """The jobs recorded in ``directory`` (none without a ``jobs.json``)."""
    path = directory / JOBS_FILE
    if not path.is_file():
        return []
    data = read_json(path)
    return [JobRecord(**job) for job in data.get("jobs", [])]


def record_jobs(directory: Path, jobs: Sequence[JobRecord]) -> None:
    """Add ``jobs`` to ``directory``'s ``jobs.json`` (written atomically)."""
    previous = read_jobs(directory)
    write_json(directory / JOBS_FILE, {"jobs": [asdict(j) for j in [*previous, *jobs]]})


def new_record(job_id: str, executor: str, folder: Path) -> JobRecord:
    """The record of a job just submitted from this process."""
    from spiketune.engine.runners import process_start_time

    start = process_start_time(int(job_id)) if executor == "local" else None
    return JobRecord(id=job_id, executor=executor, folder=str(folder),
                     submitted=datetime.now().isoformat(timespec="seconds"),
                     host=socket.gethostname(), start_time=start)


# ------------------------------------------------------------------------------ states
def job_state(job: JobRecord) -> str:
    """The job's state now (see the module docstring), ``UNKNOWN`` when it cannot be told."""
    if job.executor == "local":
        return _local_state(job)
    return _slurm_states([job])[job.id]


def job_states(jobs: Sequence[JobRecord]) -> dict[str, str]:
    """Every job's state, SLURM's from one ``sacct`` call."""
    states = _slurm_states([j for j in jobs if j.executor != "local"])
    states.update({j.id: _local_state(j) for j in jobs if j.executor == "local"})
    return states


def _local_state(job: JobRecord) -> str:
    from submitit.core.utils import JobPaths

    from spiketune.engine.runners import process_alive

    if job.host != socket.gethostname():
        return "UNKNOWN"
    if process_alive(int(job.id), job.start_time):
        return "RUNNING"
    result = JobPaths(job.folder, job.id, 0).result_pickle
    if not result.exists():
        return "INTERRUPTED"
    # submitit's result: ("success", what the worker returned) or ("error", the traceback),
    # read through the allow-list of plain data (never a bare pickle.load)
    from spiketune.data._safe_pickle import safe_load
    from spiketune.errors import DataError

    try:
        outcome = safe_load(result, allow_pandas=False)
    except (DataError, OSError):
        return "UNKNOWN"
    return "FAILED" if isinstance(outcome, tuple) and outcome[:1] == ("error",) else "FINISHED"


def _slurm_states(jobs: Sequence[JobRecord]) -> dict[str, str]:
    if not jobs:
        return {}
    if shutil.which("sacct") is None:  # off the cluster: unknown, and no warning per job
        return {j.id: "UNKNOWN" for j in jobs}
    from submitit import SlurmJob

    handles = [SlurmJob(folder=j.folder, job_id=j.id) for j in jobs]
    handles[0].get_info(mode="force")  # one sacct call for every job registered
    return {j.id: _first_word(h.watcher.get_state(j.id, mode="cache"))
            for j, h in zip(jobs, handles, strict=True)}


def _first_word(state: str) -> str:
    """``CANCELLED by 1000`` -> ``CANCELLED``."""
    return (state.split() or ["UNKNOWN"])[0].upper()


# ------------------------------------------------------------------------------ cancelling
def cancel(job: JobRecord) -> None:
    """Cancel one job: ``scancel`` for SLURM (SIGTERM to its steps, SIGKILL after SLURM's
    KillWait); SIGTERM to a local job's controller, which passes it on to the worker (the
    worker ends and records its trials, as on ``scancel``)."""
    if job.executor == "local":
        from spiketune.engine.runners import process_alive

        if job.host == socket.gethostname() and process_alive(int(job.id), job.start_time):
            os.kill(int(job.id), signal.SIGTERM)
        return
    from submitit import SlurmJob

    SlurmJob(folder=job.folder, job_id=job.id).cancel(check=False)


def cancel_jobs(
    jobs: Sequence[JobRecord],
    grace: float,
    *,
    since: float | None = None,
    poll: float = 1.0,
    states: Callable[[Sequence[JobRecord]], dict[str, str]] = job_states,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> JobsStopped:
    """Cancel the jobs that are pending now, and those still running ``grace`` seconds after
    ``since`` (a :func:`time.monotonic` reading, default now: the moment the workers were
    asked to stop); returns which. ``states``, ``clock`` and ``sleep`` are for tests.

    SLURM jobs need SLURM's commands here: without ``sacct`` and ``scancel`` (a machine off
    the cluster) a :class:`LaunchError` says so at once, rather than waiting out ``grace``
    on states that cannot be read and failing on the first cancel."""
    missing = [c for c in ("sacct", "scancel") if shutil.which(c) is None]
    if missing and any(job.executor != "local" for job in jobs):
        raise LaunchError(
            f"{' and '.join(missing)} not on PATH: SLURM jobs can be watched and cancelled "
            "only on a machine of the cluster (the workers were asked to stop through the "
            "storage; run `spiketune stop` again on a login node to cancel their jobs)")
    deadline = (clock() if since is None else since) + grace
    pending: list[str] = []
    overdue: list[str] = []
    ended: list[str] = []
    left = list(jobs)
    while left:
        now_states = states(left)
        still: list[JobRecord] = []
        for job in left:
            state = now_states.get(job.id, "UNKNOWN")
            if state in PENDING_STATES:
                cancel(job)
                pending.append(job.id)
            elif state in ENDED_STATES:
                ended.append(job.id)
            else:
                still.append(job)
        left = still
        if left and clock() >= deadline:
            for job in left:
                cancel(job)
                overdue.append(job.id)
            break
        if left:
            sleep(min(poll, max(0.0, deadline - clock())))
    return JobsStopped(tuple(pending), tuple(overdue), tuple(ended))
