"""The in-process runner: a Python callable as the trial, one thread per running trial."""

from __future__ import annotations

import inspect
import json
import queue
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spiketune.engine.runners._base import Ended, Event, Launch, Reported, Runner, StopReason
from spiketune.errors import TrialError
from spiketune.trial import _protocol as protocol

__all__ = ["InProcessRunner"]


class _InProcessChannel:
    """The :mod:`spiketune.trial` channel of one in-process trial (lives in its thread)."""

    def __init__(self, launch: Launch, events: queue.SimpleQueue[Event],
                 time_limit: float | None = None) -> None:
        self.parameters = launch.parameters
        self.nni_trial_id = str(launch.number)
        self.experiment_id = launch.experiment_id
        self.sequence_id = launch.sequence_id
        self.trial_dir: Path | None = launch.trial_dir
        self.number = launch.number
        self.final: dict[str, Any] | None = None
        self.stop_reason: StopReason | None = None
        self.handled = threading.Event()
        self._events = events
        # What a trial process reads from its environment (spiketune.trial.trial_deadline):
        # this process's environment is the scheduler's, shared by every in-process trial.
        self.limits = protocol.ThreadLimits(
            time_limit=time_limit,
            budget_end=protocol.budget_end_in(launch.environment),
            started=time.perf_counter(),
        )

    def report(self, kind: str, value: dict[str, Any]) -> None:
        if self.stop_reason is not None:
            raise protocol.TrialStopped(self.stop_reason.value)
        if kind == protocol.FINAL:
            if self.final is None:
                self.final = value
                self.keep(kind, value)
            return
        self.keep(kind, value)
        # Wait until the scheduler has seen the report, so that an assessor's verdict takes
        # effect at this step, as it would for the same trial run as a subprocess at speed.
        self.handled.clear()
        self._events.put(Reported(self.number, value))
        self.handled.wait()
        if self.stop_reason is not None:
            raise protocol.TrialStopped(self.stop_reason.value)

    def keep(self, kind: str, value: dict[str, Any]) -> None:
        """Write the report to the trial's ``metrics.jsonl`` too, as a trial process does:
        the scheduler shares this process, and if it is killed, ``resume`` finds there what
        the trial had reported (its intermediate results, a final result that makes it
        COMPLETE)."""
        if self.trial_dir is not None:
            protocol.append_metric(self.trial_dir, kind, value)


class InProcessRunner(Runner):
    """Runs a Python callable as the trial, one thread per running trial.

    The callable is ``fn(parameters)`` (or ``fn()`` that calls
    :func:`spiketune.trial.get_next_parameter`); it reports through :mod:`spiketune.trial`
    and may return its final result instead of reporting it. The engine cannot kill a thread:
    an assessor's stop, a timeout or an experiment stop take effect at the trial's next report
    (where :class:`~spiketune.trial.TrialStopped` is raised) or when it returns its result,
    and ``force`` cannot do more. The trial directory holds ``parameter.json``, the trial's
    reports in ``metrics.jsonl`` (as a trial process writes them) and whatever the trial
    writes there.

    ``max_trial_duration`` (seconds) and the duration budget's end (the launch's
    ``SPIKETUNE_BUDGET_END``) are the trial's own, as its thread sees them through
    :func:`spiketune.trial.trial_time_limit` and :func:`spiketune.trial.trial_deadline`: so
    a trial that ends its training in time does so in-process too.
    """

    def __init__(self, fn: Callable[..., Any], *, max_trial_duration: float | None = None
                 ) -> None:
        if not callable(fn):
            raise TrialError(f"the trial must be callable, got {fn!r}")
        self.fn = fn
        self.max_trial_duration = max_trial_duration
        self._pass_params = _takes_argument(fn)
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._channels: dict[int, _InProcessChannel] = {}
        self._waiting: list[int] = []

    def start(self, launch: Launch) -> None:
        protocol.host_in_process_trials()
        protocol.write_parameters(launch.trial_dir, launch.parameters_json)
        channel = _InProcessChannel(launch, self._events, self.max_trial_duration)
        self._channels[launch.number] = channel
        thread = threading.Thread(
            target=self._run, args=(channel,), name=f"spiketune-trial-{launch.number}", daemon=True
        )
        thread.start()

    def _run(self, channel: _InProcessChannel) -> None:
        protocol.bind(channel)
        error: str | None = None
        stopped = False
        try:
            params = json.loads(json.dumps(channel.parameters))  # the trial may mutate its copy
            result = self.fn(params) if self._pass_params else self.fn()
            if result is not None and channel.final is None:
                # Returning the result is the trial's last report: a stop decided meanwhile
                # (its time limit, the budget's end) takes effect there, as at any report.
                if channel.stop_reason is not None:
                    raise protocol.TrialStopped(channel.stop_reason.value)
                channel.final = protocol.normalize_metric(result)
                channel.keep(protocol.FINAL, channel.final)
        except protocol.TrialStopped:
            stopped = True
        except BaseException as e:  # a failing trial must not take the scheduler down
            lines = traceback.format_exception(e)
            error = "".join(lines[-6:]).rstrip()
        finally:
            protocol.bind(None)
        self._events.put(Ended(channel.number, final=channel.final, error=error, stopped=stopped))

    def poll(self, timeout: float) -> list[Event]:
        # Reports returned by the previous poll() have been handled by now: let them go on.
        for number in self._waiting:
            channel = self._channels.get(number)
            if channel is not None:
                channel.handled.set()
        self._waiting = []
        events: list[Event] = []
        if not self._channels:
            return events
        try:
            events.append(self._events.get(timeout=max(timeout, 0.0)))
        except queue.Empty:
            return events
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for ev in events:
            if isinstance(ev, Reported):
                self._waiting.append(ev.number)
            else:
                self._channels.pop(ev.number, None)
        return events

    def stop(self, number: int, reason: StopReason, *, force: bool = False) -> None:
        channel = self._channels.get(number)
        if channel is not None and channel.stop_reason is None:
            channel.stop_reason = reason
            channel.handled.set()

    def close(self) -> None:
        for number in list(self._channels):
            self.stop(number, StopReason.STOP)


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
            return True
    return False
