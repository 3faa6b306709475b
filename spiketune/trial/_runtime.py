"""What a trial process sets up before it trains: its device, its CPU threads, its seeds, and
the time by which its training should end.

Every template's ``setup_hpo.py`` used to carry its own copy of these; they live here once.
The module imports only the standard library at its top: torch and NumPy are imported by the
functions that need them, so that ``trial_threads`` costs a trial nothing beyond ``os``.
"""

from __future__ import annotations

import atexit
import gc
import json
import math
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
#: What a trial keeps of its time limit for its end (testing, saving, reporting; the engine
#: reads its result within a poll): this many seconds plus END_SHARE of the limit.
END_SECONDS = 3.0
END_SHARE = 0.05


_QUICK_EXIT: list[bool] = []  # one hook per process


def quick_exit_after_result() -> None:
    """Spare this process the garbage collector's passes over its imports when it exits.

    Why: with torch imported, a process spends about a second of CPU at exit in the
    collector's last passes, which walk the hundreds of thousands of objects the imports
    made, all freed with the process anyway. Every trial and every retraining seed paid it
    after its result was written, time a search on a few cores does not spend on trials.
    Called once a trial has its final result: an ``atexit`` hook then moves every object to
    the collector's permanent generation (``gc.freeze``). Other ``atexit`` handlers, weakref
    finalizers and the freeing of objects by reference count are unchanged; only objects kept
    alive by a reference cycle until the end are no longer collected (their ``__del__`` is
    not run, which Python never promises at exit). Idempotent; nothing in a process that runs
    in-process trials (:func:`~spiketune.trial._protocol.host_in_process_trials`), whose exit
    is its owner's.
    """
    from spiketune.trial._protocol import hosts_in_process_trials

    if not _QUICK_EXIT and not hosts_in_process_trials():
        _QUICK_EXIT.append(True)
        atexit.register(gc.freeze)


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
        return _count_variable(ENV_TRIAL_THREADS, env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // _concurrency())


def _concurrency() -> int:
    """Trials at once: ``$SPIKETUNE_CONCURRENCY``, else the running experiment's configured
    ``concurrency``, else 1 (by hand, or an ``experiment.json`` that cannot be read)."""
    env = os.environ.get(ENV_CONCURRENCY)
    if env:
        return _count_variable(ENV_CONCURRENCY, env)
    from spiketune.trial._artifacts import experiment_dir_of_trial

    directory = experiment_dir_of_trial()
    if directory is None:
        return 1
    try:
        meta = json.loads((directory / "experiment.json").read_text(encoding="utf-8"))
        return max(1, int(meta["config"]["concurrency"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def _count_variable(name: str, text: str) -> int:
    """A count read from the environment variable ``name`` (at least 1); a value that is no
    whole number is a ConfigError naming the variable, not int()'s ValueError."""
    try:
        return max(1, int(text))
    except ValueError:
        from spiketune.errors import ConfigError, Problem

        raise ConfigError(Problem(f"${name}", text, "a whole number of threads or trials, "
                                  "at least 1")) from None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (torch: every device) with ``seed``.

    NumPy takes seeds below 2**32 only, so it gets ``seed`` modulo 2**32.
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def trial_time_limit() -> float | None:
    """Seconds this trial may run: the experiment's ``max_trial_duration``, which the engine
    passes to each trial process (``$SPIKETUNE_MAX_TRIAL_DURATION``); None without a limit
    or when run by hand. An in-process trial gets its own (its thread's), since its process is
    the scheduler's."""
    from spiketune.trial._protocol import ENV_MAX_TRIAL_DURATION, thread_limits

    limits = thread_limits()
    if limits is not None:
        return limits.time_limit
    text = os.environ.get(ENV_MAX_TRIAL_DURATION, "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def trial_budget_end() -> float | None:
    """When the experiment's duration budget runs out, as a Unix time (seconds, like
    :func:`time.time`), which the engine passes to each trial process
    (``$SPIKETUNE_BUDGET_END``); None without a budget or when run by hand. An in-process
    trial gets its own (its thread's), reckoned when it started."""
    from spiketune.trial._protocol import budget_end_in, thread_limits

    limits = thread_limits()
    return limits.budget_end if limits is not None else budget_end_in(os.environ)


def trial_deadline(started: float | None = None, time_cap: float | None = None) -> float | None:
    """The :func:`time.perf_counter` instant by which the trial's training should end, or
    None for no limit.

    Why: the engine kills a trial that runs past ``max_trial_duration`` and records it FAILED,
    losing every epoch it trained; at the end of the experiment's duration budget it stops
    every trial still running, and records it STOPPED with nothing. A trial that stops
    training before then reports the best epoch it reached, and the search keeps it (a
    cheaper fidelity of the same trial).

    The limit is ``time_cap`` seconds (a trial's ``--time-cap``) when given, else the
    experiment's (:func:`trial_time_limit`), counted from ``started`` (a ``perf_counter``
    instant: when a population member joined), else from the trial's start, as the engine
    counts it (its process's start; an in-process trial's thread's). The end of the duration
    budget (:func:`trial_budget_end`) is a second deadline; the earlier one counts.
    :data:`END_SECONDS` plus :data:`END_SHARE` of the time allowed are kept for what comes
    after the training (testing, saving, reporting).
    """
    import time

    limit = time_cap if time_cap is not None else trial_time_limit()
    budget_end = trial_budget_end()
    if limit is None and budget_end is None:
        return None
    if started is None:
        started = trial_started()
    deadlines = []
    if limit is not None:
        deadlines.append(started + limit - END_SECONDS - END_SHARE * limit)
    if budget_end is not None:
        end = time.perf_counter() + budget_end - time.time()  # on the perf_counter clock
        deadlines.append(end - END_SECONDS - END_SHARE * max(0.0, end - started))
    return min(deadlines)


def trial_started() -> float:
    """The calling trial's start as a :func:`time.perf_counter` instant: its process's
    (:func:`process_started`), or, for an in-process trial, when the runner started its
    thread."""
    from spiketune.trial._protocol import thread_limits

    limits = thread_limits()
    return limits.started if limits is not None else process_started()


def process_started() -> float:
    """This process's start as a :func:`time.perf_counter` instant (in the past: the
    interpreter's start and imports count too, as they do for the engine's time limit)."""
    import time

    import psutil

    now, wall = time.perf_counter(), time.time()
    try:
        age = wall - psutil.Process().create_time()
    except psutil.Error:
        age = 0.0
    return now - max(0.0, age)
