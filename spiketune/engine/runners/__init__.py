"""Runners: how a trial is executed. The scheduler decides; a runner only carries out.

:class:`SubprocessRunner` runs the trial command once per trial, in its own session and trial
directory; :class:`PopulationRunner` runs it once for up to K trials trained together
(population mode); :class:`InProcessRunner` calls a Python function in a thread of this process. All
follow the lifecycle of :class:`Runner` and report what trials do as events
(:class:`Reported`, :class:`Ended`) that the scheduler collects with :meth:`Runner.poll`.
How processes are watched and ended lives in :mod:`._processes`; the files and variables a
trial reads and writes, in :mod:`spiketune.trial._protocol`.
"""

from __future__ import annotations

from spiketune.engine.runners._base import (
    Ended,
    Event,
    Launch,
    Reported,
    Runner,
    StopReason,
    signal_from_status,
    signal_name,
)
from spiketune.engine.runners._inprocess import InProcessRunner
from spiketune.engine.runners._population import PopulationRunner
from spiketune.engine.runners._processes import (
    become_subreaper,
    count_trial_leftovers,
    end_trial_leftovers,
    is_subreaper,
    process_alive,
    process_start_time,
)
from spiketune.engine.runners._subprocess import (
    PROCESS_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    SubprocessRunner,
)

__all__ = [
    "PROCESS_FILE",
    "STDERR_FILE",
    "STDOUT_FILE",
    "Ended",
    "Event",
    "InProcessRunner",
    "Launch",
    "PopulationRunner",
    "Reported",
    "Runner",
    "StopReason",
    "SubprocessRunner",
    "become_subreaper",
    "count_trial_leftovers",
    "end_trial_leftovers",
    "is_subreaper",
    "process_alive",
    "process_start_time",
    "signal_from_status",
    "signal_name",
]
