"""Launchers: start an experiment's workers on a cluster instead of by hand.

``spiketune worker`` joins one machine to a shared study; a launcher starts many of them
where the cluster runs its work, each one the same worker:

* :class:`SlurmLauncher`: SLURM jobs through submitit (one job array), or local processes
  through submitit's local executor; the jobs are recorded in ``<experiment dir>/jobs.json``
  (:func:`read_jobs`), their states read from the cluster (:func:`job_states`), and cancelled
  by ``spiketune stop`` when pending or still running after a grace period
  (:func:`cancel_jobs`);
* :class:`KubernetesLauncher`: a batch/v1 Job manifest (and its ConfigMap), written or
  applied with ``kubectl``.

Each is a :class:`Launcher` (its lifecycle is in its docstring); :func:`submit` runs one.
What every job runs is :class:`WorkerTask`, over :func:`join_worker`, the worker entry point
``spiketune worker`` uses too. submitit is imported only when a job is submitted or asked
about (it is the optional extra ``spiketune[slurm]``).
"""

from __future__ import annotations

from spiketune.engine.launch._base import Launched, Launcher, WorkerSpec, storage_scheme
from spiketune.engine.launch._jobs import (
    JOBS_FILE,
    JobRecord,
    JobsStopped,
    cancel_jobs,
    job_states,
    read_jobs,
    record_jobs,
)
from spiketune.engine.launch._k8s import KubernetesLauncher, job_manifest
from spiketune.engine.launch._slurm import EXECUTORS, OPTIONS, SlurmLauncher
from spiketune.engine.launch._submit import submit
from spiketune.engine.launch._worker import WorkerTask, join_worker, worker_config

__all__ = [
    "EXECUTORS",
    "JOBS_FILE",
    "OPTIONS",
    "JobRecord",
    "JobsStopped",
    "KubernetesLauncher",
    "Launched",
    "Launcher",
    "SlurmLauncher",
    "WorkerSpec",
    "WorkerTask",
    "cancel_jobs",
    "job_manifest",
    "job_states",
    "join_worker",
    "read_jobs",
    "record_jobs",
    "storage_scheme",
    "submit",
    "worker_config",
]
