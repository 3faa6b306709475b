"""Runners: how a trial is executed. The scheduler decides; a runner only carries out.

:class:`SubprocessRunner` runs the trial command once per trial, in its own process group and
trial directory; :class:`InProcessRunner` calls a Python function in a thread of this process.
Both report what trials do as events (:class:`Reported`, :class:`Ended`) that the scheduler
collects with :meth:`Runner.poll`.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
import json
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from spiketune import trial as trial_api
from spiketune.engine.storage import CREDENTIAL_ENVS
from spiketune.errors import TrialError

__all__ = [
    "Ended",
    "Event",
    "InProcessRunner",
    "Launch",
    "Reported",
    "Runner",
    "StopReason",
    "SubprocessRunner",
    "process_alive",
    "process_start_time",
]

STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
PROCESS_FILE = "process.json"
_COMPAT_DIR = Path(__file__).resolve().parents[1] / "compat"


class StopReason(StrEnum):
    """Why the scheduler ends a trial before it finishes by itself."""

    PRUNE = "prune"  # the assessor said so
    TIMEOUT = "timeout"  # max_trial_duration passed
    STOP = "stop"  # the experiment is stopping (user request, max_duration)


@dataclass(frozen=True)
class Launch:
    """Everything a runner needs to start one trial."""

    number: int  # the trial's number in the study; also its id (SPIKETUNE_TRIAL_ID)
    sequence_id: int
    parameters: dict[str, Any]
    parameters_json: str  # exactly what goes into parameter.json
    trial_dir: Path
    experiment_id: str
    gpu: int | None = None  # the GPU index it may see; None: no GPU (CUDA_VISIBLE_DEVICES="")


@dataclass(frozen=True)
class Reported:
    """A trial reported an intermediate result (normalised to a dict with ``"default"``)."""

    number: int
    value: dict[str, Any]


@dataclass(frozen=True)
class Ended:
    """A trial's process (or function) has ended; the facts the scheduler decides from."""

    number: int
    final: dict[str, Any] | None  # the first final result reported, normalised
    exit_code: int | None = None  # subprocess: return code (negative: killed by that signal)
    error: str | None = None  # stderr tail, or the exception of an in-process trial
    protocol_errors: list[str] = field(default_factory=list)  # unreadable reports
    stopped: bool = False  # in-process: the trial obeyed a stop (TrialStopped)


Event = Reported | Ended


class Runner(abc.ABC):
    """Base of every runner (the extension point for where trials execute).

    Lifecycle, all calls from the scheduler's thread:

    1. :meth:`start` once per trial; it returns once the trial is running (not finished).
    2. :meth:`poll` repeatedly: waits up to ``timeout`` seconds for something to happen and
       returns the events since the last call, in the order they happened for each trial;
       a trial's :class:`Ended` comes after all its :class:`Reported`.
    3. :meth:`stop` to end a running trial early (the trial still ends with :class:`Ended`).
    4. :meth:`close` once: ends whatever still runs and frees resources.
    """

    @abc.abstractmethod
    def start(self, launch: Launch) -> None: ...

    @abc.abstractmethod
    def poll(self, timeout: float) -> list[Event]: ...

    @abc.abstractmethod
    def stop(self, number: int, reason: StopReason, *, force: bool = False) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """End every trial still running (default: nothing to do)."""


def _parse_metric_line(line: bytes) -> tuple[str, dict[str, Any]]:
    obj = json.loads(line)
    if not isinstance(obj, dict) or obj.get("type") not in ("intermediate", "final"):
        raise ValueError('expected {"type": "intermediate"|"final", "value": ...}')
    if "value" not in obj:
        raise ValueError("missing 'value'")
    value = obj["value"]
    if isinstance(value, dict) and value.get("default", 0) is None:
        # Another language's way of writing NaN: keep the trial's report, mark it non-finite.
        value = dict(value, default=float("nan"))
    elif value is None:
        value = float("nan")
    return obj["type"], trial_api.normalize_metric(value)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None when unknown.

    With the pid it identifies a process for sure: a pid can be reused, the pair cannot.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] == b"Z"


def process_alive(pid: Any, start_time: Any) -> bool:
    """True while the process ``pid`` that started at ``start_time`` (see
    :func:`process_start_time`) still runs. Without ``/proc``, only the pid is checked."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    now = process_start_time(pid)
    if now is not None:
        if _is_zombie(pid):
            return False  # it has exited; only its parent has not collected it yet
        return start_time is None or now == start_time
    if Path("/proc/self/stat").exists():
        return False  # /proc works and has no such process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stderr_tail(path: Path, lines: int = 12, max_bytes: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _Proc:
    launch: Launch
    popen: subprocess.Popen[bytes]
    pgid: int
    metrics: Any  # binary file object of metrics.jsonl, read incrementally
    pidfd: int | None
    buffer: bytes = b""
    final: dict[str, Any] | None = None
    protocol_errors: list[str] = field(default_factory=list)
    term_at: float | None = None  # monotonic time SIGTERM was sent


class SubprocessRunner(Runner):
    """One process per trial: the trial command, run by ``/bin/sh`` in ``cwd``.

    Each trial gets its own process group (so that ending it ends everything it started), its
    trial directory with ``parameter.json`` (in), ``metrics.jsonl`` (out), ``stdout.log``,
    ``stderr.log`` and ``process.json`` (pid, process group, host: what a resumed scheduler needs
    to end leftovers), and the protocol's environment variables. ``python``/``python3`` resolve
    to the interpreter running spiketune (its directory comes first on ``PATH``), and
    ``spiketune/compat`` comes first on ``PYTHONPATH`` so that ``import nni`` finds the shim.

    Ending a trial sends SIGTERM to its group and, ``kill_grace`` seconds later, SIGKILL. When a
    trial's main process exits, whatever it left running in its group is killed.
    """

    def __init__(
        self,
        command: str,
        cwd: Path,
        *,
        kill_grace: float = 5.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not command.strip():
            raise TrialError("the trial command is empty")
        self.command = command
        self.cwd = Path(cwd)
        self.kill_grace = float(kill_grace)
        self._procs: dict[int, _Proc] = {}
        self._selector = selectors.DefaultSelector()
        self._base_env = self._make_base_env(env)
        self._scheduler = {
            "scheduler_pid": os.getpid(),
            "scheduler_start": process_start_time(os.getpid()),
            "host": socket.gethostname(),
        }

    @staticmethod
    def _make_base_env(extra: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        for name in CREDENTIAL_ENVS:  # trials never open the study: no database password
            env.pop(name, None)
        if extra:
            env.update(extra)
        exe_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([exe_dir, *([env["PATH"]] if env.get("PATH") else [])])
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join([str(_COMPAT_DIR), *([old] if old else [])])
        env.setdefault("PYTHONUNBUFFERED", "1")  # stdout.log follows the trial live
        return env

    def trial_env(self, launch: Launch) -> dict[str, str]:
        """The environment of one trial process."""
        env = dict(self._base_env)
        tid, exp, seq = str(launch.number), launch.experiment_id, str(launch.sequence_id)
        env.update(
            {
                trial_api.ENV_TRIAL_DIR: str(launch.trial_dir),
                trial_api.ENV_TRIAL_ID: tid,
                trial_api.ENV_EXPERIMENT_ID: exp,
                trial_api.ENV_SEQUENCE_ID: seq,
                # trial dirs are <experiment dir>/trials/<number>
                trial_api.ENV_EXPERIMENT_DIR: str(launch.trial_dir.parent.parent),
                "CUDA_VISIBLE_DEVICES": "" if launch.gpu is None else str(launch.gpu),
                # What NNI's own trial runtime sets; some scripts read them directly.
                "NNI_PLATFORM": "local",
                "NNI_EXP_ID": exp,
                "NNI_TRIAL_JOB_ID": tid,
                "NNI_TRIAL_SEQ_ID": seq,
                "NNI_SYS_DIR": str(launch.trial_dir),
                "NNI_OUTPUT_DIR": str(launch.trial_dir),
            }
        )
        env.pop(trial_api.ENV_PARAMETERS, None)
        env.pop(trial_api.ENV_PARAMETER_FILE, None)
        return env

    def start(self, launch: Launch) -> None:
        d = launch.trial_dir
        d.mkdir(parents=True, exist_ok=True)
        (d / trial_api.PARAMETER_FILE).write_text(launch.parameters_json, encoding="utf-8")
        metrics_path = d / trial_api.METRICS_FILE
        metrics_path.write_bytes(b"")
        with open(d / STDOUT_FILE, "wb") as out, open(d / STDERR_FILE, "wb") as err:
            try:
                popen = subprocess.Popen(
                    self.command,
                    shell=True,
                    cwd=self.cwd,
                    env=self.trial_env(launch),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # own session and process group: pgid == pid
                )
            except OSError as e:
                raise TrialError(f"cannot start trial {launch.number}: {e}") from e
        pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            pidfd = os.pidfd_open(popen.pid)
            self._selector.register(pidfd, selectors.EVENT_READ, launch.number)
        info = {
            "pid": popen.pid,
            "pgid": popen.pid,
            "start_time": process_start_time(popen.pid),
            "trial_dir": str(d),
            **self._scheduler,
        }
        _write_small_json(d / PROCESS_FILE, info)
        self._procs[launch.number] = _Proc(
            launch=launch,
            popen=popen,
            pgid=popen.pid,
            metrics=open(metrics_path, "rb"),  # noqa: SIM115 - closed when the trial ends
            pidfd=pidfd,
        )

    def running(self) -> list[int]:
        return list(self._procs)

    def stop(self, number: int, reason: StopReason, *, force: bool = False) -> None:
        proc = self._procs.get(number)
        if proc is None:
            return
        if force:
            _killpg(proc.pgid, signal.SIGKILL)
            proc.term_at = proc.term_at or time.monotonic()
        elif proc.term_at is None:
            _killpg(proc.pgid, signal.SIGTERM)
            proc.term_at = time.monotonic()

    def poll(self, timeout: float) -> list[Event]:
        if not self._procs:
            time.sleep(max(0.0, timeout))
            return []
        now = time.monotonic()
        pending = [p.term_at + self.kill_grace - now for p in self._procs.values() if p.term_at]
        wait = max(0.0, min([timeout, *pending]))
        if self._selector.get_map():
            self._selector.select(wait)
        elif wait > 0:
            time.sleep(min(wait, 0.02))
        events: list[Event] = []
        now = time.monotonic()
        for number, proc in list(self._procs.items()):
            self._read_metrics(proc, events)
            if _has_exited(proc.popen.pid):
                # The leader is a zombie until reaped, so its pgid cannot be reused yet: kill
                # whatever it left behind in its group, then reap it.
                _killpg(proc.pgid, signal.SIGKILL)
                proc.popen.wait()
                events.append(self._finish(number, proc, events))
            elif proc.term_at is not None and now - proc.term_at >= self.kill_grace:
                _killpg(proc.pgid, signal.SIGKILL)
        return events

    def _read_metrics(self, proc: _Proc, events: list[Event]) -> None:
        data = proc.metrics.read()
        if not data:
            return
        proc.buffer += data
        *lines, proc.buffer = proc.buffer.split(b"\n")
        for raw in lines:
            if raw.strip():
                self._handle_line(proc, raw, events)

    def _handle_line(self, proc: _Proc, raw: bytes, events: list[Event]) -> None:
        try:
            kind, value = _parse_metric_line(raw)
        except (ValueError, TypeError) as e:
            text = raw[:200].decode("utf-8", errors="replace")
            proc.protocol_errors.append(f"unreadable line in metrics.jsonl ({e}): {text}")
            return
        if kind == "intermediate":
            events.append(Reported(proc.launch.number, value))
        elif proc.final is None:
            proc.final = value

    def _finish(self, number: int, proc: _Proc, events: list[Event]) -> Ended:
        self._read_metrics(proc, events)
        if proc.buffer.strip():  # a last line without its newline
            self._handle_line(proc, proc.buffer, events)
            proc.buffer = b""
        proc.metrics.close()
        if proc.pidfd is not None:
            self._selector.unregister(proc.pidfd)
            os.close(proc.pidfd)
        del self._procs[number]
        code = proc.popen.returncode
        tail = _stderr_tail(proc.launch.trial_dir / STDERR_FILE) if code != 0 else None
        return Ended(
            number=number,
            final=proc.final,
            exit_code=code,
            error=tail or None,
            protocol_errors=proc.protocol_errors,
        )

    def close(self) -> None:
        """SIGTERM every trial left, SIGKILL after ``kill_grace``, reap them all."""
        for number in list(self._procs):
            self.stop(number, StopReason.STOP)
        deadline = time.monotonic() + self.kill_grace
        while self._procs and time.monotonic() < deadline:
            self.poll(0.05)
        for number in list(self._procs):
            self.stop(number, StopReason.STOP, force=True)
        while self._procs:
            self.poll(0.05)
        self._selector.close()


def _has_exited(pid: int) -> bool:
    """True once ``pid`` (our child) has exited, without reaping it."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _write_small_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ in-process
class _InProcessChannel:
    """The :mod:`spiketune.trial` channel of one in-process trial (lives in its thread)."""

    def __init__(self, launch: Launch, events: queue.SimpleQueue[Event]) -> None:
        self.parameters = launch.parameters
        self.trial_id = str(launch.number)
        self.experiment_id = launch.experiment_id
        self.sequence_id = launch.sequence_id
        self.trial_dir: Path | None = launch.trial_dir
        self.final: dict[str, Any] | None = None
        self.stop_reason: StopReason | None = None
        self.handled = threading.Event()
        self._number = launch.number
        self._events = events

    def report(self, kind: str, value: dict[str, Any]) -> None:
        if self.stop_reason is not None:
            raise trial_api.TrialStopped(self.stop_reason.value)
        if kind == "final":
            if self.final is None:
                self.final = value
            return
        # Wait until the scheduler has seen the report, so that an assessor's verdict takes
        # effect at this step, as it would for the same trial run as a subprocess at speed.
        self.handled.clear()
        self._events.put(Reported(self._number, value))
        self.handled.wait()
        if self.stop_reason is not None:
            raise trial_api.TrialStopped(self.stop_reason.value)


class InProcessRunner(Runner):
    """Runs a Python callable as the trial, one thread per running trial.

    The callable is ``fn(parameters)`` (or ``fn()`` that calls
    :func:`spiketune.trial.get_next_parameter`);
    it reports through :mod:`spiketune.trial` and may return its final result instead of
    reporting it. The engine cannot kill a thread: an assessor's stop, a timeout or an
    experiment stop take effect at the trial's next report (where :class:`TrialStopped` is
    raised). The trial directory holds ``parameter.json`` and whatever the trial writes there.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TrialError(f"the trial must be callable, got {fn!r}")
        self.fn = fn
        self._pass_params = _takes_argument(fn)
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._channels: dict[int, _InProcessChannel] = {}
        self._waiting: list[int] = []

    def start(self, launch: Launch) -> None:
        launch.trial_dir.mkdir(parents=True, exist_ok=True)
        (launch.trial_dir / trial_api.PARAMETER_FILE).write_text(
            launch.parameters_json, encoding="utf-8"
        )
        channel = _InProcessChannel(launch, self._events)
        self._channels[launch.number] = channel
        thread = threading.Thread(
            target=self._run, args=(channel,), name=f"spiketune-trial-{launch.number}", daemon=True
        )
        thread.start()

    def _run(self, channel: _InProcessChannel) -> None:
        trial_api._bind(channel)
        error: str | None = None
        stopped = False
        try:
            params = json.loads(json.dumps(channel.parameters))  # the trial may mutate its copy
            result = self.fn(params) if self._pass_params else self.fn()
            if result is not None and channel.final is None:
                channel.final = trial_api.normalize_metric(result)
        except trial_api.TrialStopped:
            stopped = True
        except BaseException as e:  # a failing trial must not take the scheduler down
            lines = traceback.format_exception(e)
            error = "".join(lines[-6:]).rstrip()
        finally:
            trial_api._bind(None)
        self._events.put(
            Ended(channel._number, final=channel.final, error=error, stopped=stopped)
        )

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
