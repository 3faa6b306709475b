"""The worker entry point, shared by ``spiketune worker`` and by every submitted job.

A submitted job runs :class:`WorkerTask`: the same :func:`join_worker` the command runs, in
the job's own process (submitit pickles the task, the job unpickles and calls it). The task
holds paths and the URL without its password, never a secret: the job reads the password from
its environment, which SLURM and submitit's local executor pass on from the submitting shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiketune.errors import LaunchError

if TYPE_CHECKING:
    from spiketune.engine.config import ExperimentConfig
    from spiketune.engine.experiment import Experiment

__all__ = ["WorkerTask", "join_worker", "worker_config"]


def worker_config(config: ExperimentConfig, **overrides: Any) -> ExperimentConfig:
    """``config`` with this machine's worker fields changed (``concurrency``, ``gpus``,
    ``experiment_dir``...; None leaves a field as it is). The password of ``storage`` is
    kept, unlike :meth:`~ExperimentConfig.to_dict`'s form."""
    from spiketune.engine.config import ExperimentConfig

    updates = {key: value for key, value in overrides.items() if value is not None}
    if not updates:
        return config
    return ExperimentConfig(**{**config.to_dict(), "storage": config.storage, **updates})


def join_worker(
    config: ExperimentConfig | str | Path,
    *,
    storage: str | None = None,
    experiment: str | None = None,
    submitted: str | None = None,
    **overrides: Any,
) -> Experiment:
    """A worker of the shared experiment ``config`` describes (a config or its file), with
    :func:`worker_config`'s ``overrides``, joined and ready to :meth:`~Experiment.run`.
    ``submitted``: when a launcher submitted it (see :meth:`Experiment.join`)."""
    from spiketune.engine.config import load_config
    from spiketune.engine.experiment import Experiment

    cfg = config if not isinstance(config, str | Path) else load_config(config)
    return Experiment.join(worker_config(cfg, **overrides), storage=storage,
                           experiment=experiment, submitted=submitted)


def stop_request(url: str, experiment_id: str) -> str | None:
    """When ``spiketune stop`` last asked the experiment's workers to stop (ISO time), or
    None: the request a new session clears."""
    from spiketune.engine.storage import ATTR_STOP, StudyStore

    store = StudyStore.open(url, experiment_id, read_only=True)
    try:
        value = store.study_attrs().get(ATTR_STOP)
    finally:
        store.close()
    return None if value is None else str(value)


@dataclass(frozen=True)
class WorkerTask:
    """What one submitted job runs: ``spiketune worker CONFIG --storage URL --experiment ID``.

    ``config``: the config file as the job sees it; ``storage``: the URL without a password;
    ``experiment``: the id the submission registered (so that every job joins that
    experiment, even if another one takes the name meanwhile); ``gpus``: ``"all"`` when the
    job was given GPUs, so that its trials use exactly the job's allocation (the
    ``CUDA_VISIBLE_DEVICES`` SLURM sets), else None (the config's own setting);
    ``submitted``: when the job was submitted (ISO time, this machine's clock).

    Why ``submitted``: a new session of an experiment clears its stop request (that is how a
    stopped experiment resumes). A job that starts late (queued, or still importing) after
    ``spiketune stop`` would so restart the experiment its user just stopped. A job ends
    without running when the stop request is as recent as its submission or more. It asks
    twice: before it joins the study (so that a late job writes nothing), and again as its
    session starts, in the read that would clear the request (a stop that came while the
    job joined). Both through one store at a time: a second store opened beside the joined
    one disturbed the worker's session.
    """

    config: str
    storage: str
    experiment: str
    gpus: str | None = None
    submitted: str | None = None

    def __call__(self) -> str:
        """Run the worker until the experiment's budget is spent or it is stopped; returns
        its final status line (submitit keeps it as the job's result)."""
        from spiketune.engine.outcome import Outcome
        from spiketune.engine.runners import become_subreaper

        # The job's process is the worker's own: orphans of its trials come back to it.
        become_subreaper()
        from spiketune.engine.scheduler import stopped_since

        stop = None if self.submitted is None else stop_request(self.storage, self.experiment)
        if stopped_since(stop, self.submitted):
            return (f"{self.experiment}: stop requested at {stop}, after this job was "
                    f"submitted ({self.submitted}); not started")
        exp = join_worker(self.config, storage=self.storage, experiment=self.experiment,
                          gpus=self.gpus, submitted=self.submitted)
        results = exp.run()
        failure = results.failure()
        if failure is not None:  # the job fails, as `spiketune worker` exits 1
            raise LaunchError(f"{exp.id}: {failure}")
        return (f"{exp.id}: {exp.status}, {len(results.records)} trials, "
                f"{results.count(Outcome.COMPLETE)} complete")
