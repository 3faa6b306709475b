"""The runner extension point: what a runner is given, what it reports, and when.

The scheduler decides; a runner only carries out. It starts a trial from a :class:`Launch`,
reports what the trial does as events (:class:`Reported`, then one :class:`Ended`), and ends
a trial early when told (:class:`StopReason`).
"""

from __future__ import annotations

import abc
import signal as _signal
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["Ended", "Event", "Launch", "Reported", "Runner", "StopReason", "signal_name"]


class StopReason(StrEnum):
    """Why the scheduler ends a trial before it finishes by itself."""

    PRUNE = "prune"  # the assessor said so
    TIMEOUT = "timeout"  # max_trial_duration passed
    STOP = "stop"  # the experiment is stopping (user request, Ctrl-C, max_duration)


@dataclass(frozen=True)
class Launch:
    """Everything a runner needs to start one trial."""

    number: int  # the trial's number in the study; as text, its NNI trial id (get_trial_id)
    sequence_id: int
    parameters: dict[str, Any]
    parameters_json: str  # exactly what goes into parameter.json
    trial_dir: Path
    experiment_id: str
    # the GPU index it may see; None: no GPU of its own (CUDA_VISIBLE_DEVICES="", or the
    # scheduler's own value with the config's gpus = "inherit")
    gpu: int | None = None
    environment: dict[str, str] = field(default_factory=dict)  # more variables for its process


@dataclass(frozen=True)
class Reported:
    """A trial reported an intermediate result (normalised to a dict with ``"default"``)."""

    number: int
    value: dict[str, Any]


@dataclass(frozen=True)
class Ended:
    """A trial's process (or function) has ended; the facts the scheduler decides from.

    ``exit_code`` is the status of the process the runner started, as :mod:`subprocess` gives
    it (negative: killed by that signal). ``signal`` is the signal that ended the trial's
    program, where one did: ``-exit_code``, or ``exit_code - 128`` when the shell that runs the
    trial command reports its child's death by signal ``n`` as status ``128 + n`` (see
    :func:`signal_from_status`); None for a normal exit.
    """

    number: int
    final: dict[str, Any] | None  # the first final result reported, normalised
    exit_code: int | None = None  # subprocess: return code (negative: killed by that signal)
    error: str | None = None  # stderr tail, or the exception of an in-process trial
    protocol_errors: list[str] = field(default_factory=list)  # unreadable reports
    stopped: bool = False  # in-process: the trial obeyed a stop (TrialStopped)
    signal: int | None = None  # the signal that ended the trial's program, if any
    # The trial ended with a process it shared with other trials (population mode) that died
    # (a signal, a non-zero exit) before the trial had a result: no fault of its own
    # parameters is known, so it is retried.
    shared_failure: bool = False
    # The trial's own word for why it failed (a population member's ``fail(reason)``): the
    # reason recorded as it is, with no exit code or exception that did not happen.
    failure: str | None = None


Event = Reported | Ended


def signal_name(number: int) -> str:
    """``"SIGSEGV"`` for 11; the number as text for one this system does not name."""
    try:
        return _signal.Signals(number).name
    except ValueError:
        return str(number)


def signal_from_status(exit_code: int | None, *, shell: bool) -> int | None:
    """The signal that ended a program, from its process's exit status.

    A negative status is a death by that signal. Through a shell that runs the command as
    its child (``bash -c 'cd src && python3 train.py'``, or any command under ``/bin/sh``,
    which as dash does not exec), a child killed by signal ``n`` makes the shell exit with
    ``128 + n``: with ``shell=True`` a status of 129 to 128 + ``SIGRTMAX`` is
    read as that signal. A program that itself exits with such a status reads the same;
    shells, and the convention they set, mean exactly that by it.
    """
    if exit_code is None or exit_code == 0:
        return None
    if exit_code < 0:
        return -exit_code
    if shell and 128 < exit_code <= 128 + _signal.SIGRTMAX:
        return exit_code - 128
    return None


class Runner(abc.ABC):
    """Base of every runner: where and how trials execute.

    Lifecycle, every call from the scheduler's thread:

    1. :meth:`start` once per trial: it writes the trial's ``parameter.json`` and returns once
       the trial runs (not once it has finished). It raises
       :class:`~spiketune.errors.TrialError` when the trial cannot be started at all.
    2. :meth:`poll` again and again: it waits up to ``timeout`` seconds for something to
       happen and returns the events since the last call, in the order they happened for each
       trial. A trial's :class:`Ended` comes once, after all its :class:`Reported`.
    3. :meth:`stop` to end a running trial early, with its reason. The trial still ends with
       :class:`Ended` from a later :meth:`poll`; ``force`` asks for an immediate end where the
       runner can give one (a second Ctrl-C). Stopping a trial that has ended does nothing.
    4. :meth:`close` once, at the end: ends whatever still runs (with the same grace as
       :meth:`stop`) and frees resources; the events of those endings are dropped.

    :meth:`accepts` tells the scheduler, before each :meth:`start`, whether the runner takes
    another trial now (a runner that batches trials waits for a batch to end).
    """

    def accepts(self) -> bool:
        """Whether :meth:`start` may be called now (default: always, up to the concurrency)."""
        return True

    def batch_leader(self) -> Launch | None:
        """The first trial of the batch this runner is collecting (the next :meth:`start`
        joins it: it shares that trial's process and GPU), or None: no batch, or a runner that
        does not batch."""
        return None

    @abc.abstractmethod
    def start(self, launch: Launch) -> None:
        """Start the trial ``launch`` describes."""

    @abc.abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """The events since the last call, waiting up to ``timeout`` seconds for one."""

    @abc.abstractmethod
    def stop(self, number: int, reason: StopReason, *, force: bool = False) -> None:
        """End trial ``number`` early, for ``reason``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """End every trial still running (default: nothing to do)."""
