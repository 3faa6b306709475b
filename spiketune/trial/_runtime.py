"""What a trial process sets up before it trains: its device, its CPU threads, its seeds.

Every template's ``setup_hpo.py`` used to carry its own copy of these; they live here once.
The module imports only the standard library at its top: torch and NumPy are imported by the
functions that need them, so that ``trial_threads`` costs a trial nothing beyond ``os``.
"""

from __future__ import annotations

import json
import os
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Environment variable that fixes a trial's CPU threads (see :func:`trial_threads`).
ENV_TRIAL_THREADS = "SPIKETUNE_TRIAL_THREADS"
#: Environment variable holding how many trials run at once: a template's launcher sets it
#: from the experiment's ``concurrency`` so that its trials share the cores.
ENV_CONCURRENCY = "SPIKETUNE_CONCURRENCY"


def trial_device() -> torch.device:
    """CUDA when this trial was given a GPU and torch can use it, else the CPU.

    The engine sets ``CUDA_VISIBLE_DEVICES`` to the trial's GPU, or to ``""`` when the
    experiment gives trials no GPU; run by hand (variable unset), any visible GPU is used.
    """
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return torch.device("cpu")
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def trial_threads(explicit: int | None = None) -> int:
    """CPU threads for this trial: its share of the machine's cores, at least 1.

    ``explicit`` (a trial's ``--threads``) wins, then ``$SPIKETUNE_TRIAL_THREADS``; otherwise
    the cores this process may use divided by the experiment's concurrency, read from
    ``$SPIKETUNE_CONCURRENCY`` or from the experiment's ``experiment.json`` (1 when run by
    hand). Trials that each take every core slow each other down.
    """
    if explicit is not None:
        return max(1, explicit)
    env = os.environ.get(ENV_TRIAL_THREADS)
    if env:
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // _concurrency())


def _concurrency() -> int:
    """Trials at once: ``$SPIKETUNE_CONCURRENCY``, else the running experiment's configured
    ``concurrency``, else 1 (by hand, or an ``experiment.json`` that cannot be read)."""
    env = os.environ.get(ENV_CONCURRENCY)
    if env:
        return max(1, int(env))
    from spiketune.trial._artifacts import experiment_dir_of_trial

    directory = experiment_dir_of_trial()
    if directory is None:
        return 1
    try:
        meta = json.loads((directory / "experiment.json").read_text(encoding="utf-8"))
        return max(1, int(meta["config"]["concurrency"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (torch: every device) with ``seed``.

    NumPy takes seeds below 2**32 only, so it gets ``seed`` modulo 2**32.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
