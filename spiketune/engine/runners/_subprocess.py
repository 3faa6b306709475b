"""The subprocess runner: one process (group, session) per trial, files for the protocol."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from spiketune.engine.runners._base import (
    Ended,
    Event,
    Launch,
    Reported,
    Runner,
    StopReason,
    signal_from_status,
)
from spiketune.engine.runners._processes import (
    ProcessEntry,
    ProcessTable,
    forget_leader,
    has_exited,
    is_subreaper,
    killpg,
    may_have_leftovers,
    process_start_time,
    register_leader,
    signal_outside_group,
)
from spiketune.engine.storage import CREDENTIAL_ENVS
from spiketune.errors import TrialError
from spiketune.trial import _protocol as protocol

__all__ = ["PROCESS_FILE", "STDERR_FILE", "STDOUT_FILE", "SubprocessRunner"]

STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
PROCESS_FILE = "process.json"
_COMPAT_DIR = Path(__file__).resolve().parents[2] / "compat"
# Seconds between two looks at the running trials' descendants (~3 ms a look, taken once a
# trial has run this long): one that leaves its trial's session is ended with the trial if it
# was seen while its parent still ran. A child subreaper also collects adopted orphans then.
_TRACK_INTERVAL = 1.0
# Seconds between two looks at a trial whose leader has exited while others of its
# processes still run (in their grace period).
_DRAIN_STEP = 0.05
# Seconds to wait for processes that survive SIGKILL (stuck in the kernel, e.g. on a hung
# file system) before the trial is reported ended without them.
_UNKILLABLE_WAIT = 10.0


@dataclass(eq=False)
class _Proc:
    launch: Launch
    popen: subprocess.Popen[bytes]
    metrics: protocol.MetricsReader
    pidfd: int | None
    started: float = field(default_factory=time.monotonic)
    term_at: float | None = None  # monotonic time SIGTERM was sent
    kill_at: float | None = None  # monotonic time SIGKILL was first sent
    exited: bool = False  # the leader has exited (it stays unreaped until the trial is over)
    known: set[psutil.Process] = field(default_factory=set)  # descendants seen
    signalled: set[psutil.Process] = field(default_factory=set)  # sent SIGTERM one by one

    @property
    def pgid(self) -> int:
        return self.popen.pid  # its own session and process group: pgid == sid == pid

    @property
    def trial_dir(self) -> str:
        return str(self.launch.trial_dir)


def trial_shell() -> str:
    """The shell that runs trial commands: ``bash``, as NNI's local training service runs
    them (``source env/bin/activate && ...``, ``[[ ]]`` and ``&>`` work), else ``/bin/sh``
    on a machine without bash."""
    return shutil.which("bash") or "/bin/sh"


class SubprocessRunner(Runner):
    """One process per trial: the trial command, run by ``bash -c`` (:func:`trial_shell`) in
    ``cwd``.

    Each trial gets its own session and process group (so that ending it ends everything it
    started), its trial directory with ``parameter.json`` (in), ``metrics.jsonl`` (out),
    ``stdout.log``, ``stderr.log`` and ``process.json`` (pid, process group, host: what a
    resumed scheduler needs to end leftovers), and the protocol's environment variables.
    ``python``/``python3`` resolve to the interpreter running spiketune (its directory comes
    first on ``PATH``), and ``spiketune/compat`` comes first on ``PYTHONPATH`` so that
    ``import nni`` finds the shim. ``CUDA_VISIBLE_DEVICES`` is the trial's GPU (the launch's),
    or ``""`` for a trial without one: no GPU, unless ``hide_gpus`` is False (the config's
    ``gpus = "inherit"``), which leaves it as this process has it.

    Ending a trial sends SIGTERM to all its processes and, ``kill_grace`` seconds later,
    SIGKILL to those still there. The grace runs until every process of the trial is gone,
    not until the leader is: a shell that runs the program as its child (``python3 train.py;
    echo done``: bash execs only a last command) dies of SIGTERM at once while the program
    may be saving a checkpoint. When the leader exits by itself and processes of the trial
    are left, they get the same SIGTERM and grace. The trial's processes are its session
    and their descendants, also those that left the session (seen while their parent ran, or,
    in a child subreaper, adopted with the trial's ``SPIKETUNE_TRIAL_DIR``). The trial's
    :class:`Ended` comes once they are all gone.
    """

    def __init__(
        self,
        command: str,
        cwd: Path,
        *,
        kill_grace: float = 5.0,
        env: Mapping[str, str] | None = None,
        hide_gpus: bool = True,
    ) -> None:
        if not command.strip():
            raise TrialError("the trial command is empty")
        if not kill_grace >= 0:
            raise TrialError(f"kill_grace must be >= 0 seconds, got {kill_grace!r}")
        self.command = command
        self.shell = trial_shell()
        self.cwd = Path(cwd)
        self.kill_grace = float(kill_grace)
        self.hide_gpus = hide_gpus
        self._procs: dict[int, _Proc] = {}
        self._selector = selectors.DefaultSelector()
        self._base_env = self._make_base_env(env)
        self._tracked_at = time.monotonic()
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
        for name in (protocol.ENV_MAX_TRIAL_DURATION, protocol.ENV_BUDGET_END):
            env.pop(name, None)  # this experiment's own (set here or per trial), or none
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
        number, exp, seq = str(launch.number), launch.experiment_id, str(launch.sequence_id)
        env.update(
            {
                protocol.ENV_TRIAL_DIR: str(launch.trial_dir),
                protocol.ENV_TRIAL_ID: number,
                protocol.ENV_EXPERIMENT_ID: exp,
                protocol.ENV_SEQUENCE_ID: seq,
                # trial dirs are <experiment dir>/trials/<number>
                protocol.ENV_EXPERIMENT_DIR: str(launch.trial_dir.parent.parent),
                # What NNI's own trial runtime sets; some scripts read them directly.
                "NNI_PLATFORM": "local",
                "NNI_EXP_ID": exp,
                "NNI_TRIAL_JOB_ID": number,
                "NNI_TRIAL_SEQ_ID": seq,
                "NNI_SYS_DIR": str(launch.trial_dir),
                "NNI_OUTPUT_DIR": str(launch.trial_dir),
            }
        )
        if launch.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(launch.gpu)
        elif self.hide_gpus:  # else the GPUs this process sees, as NNI without trialGpuNumber
            env["CUDA_VISIBLE_DEVICES"] = ""
        env.pop(protocol.ENV_PARAMETERS, None)
        env.pop(protocol.ENV_PARAMETER_FILE, None)
        env.pop(protocol.ENV_POPULATION_FILE, None)
        env.pop(protocol.ENV_POPULATION_MEMBERS, None)
        env.update(launch.environment)
        return env

    # ------------------------------------------------------------------ start
    def start(self, launch: Launch) -> None:
        d = launch.trial_dir
        protocol.write_parameters(d, launch.parameters_json)
        metrics_path = d / protocol.METRICS_FILE
        metrics_path.write_bytes(b"")
        with open(d / STDOUT_FILE, "wb") as out, open(d / STDERR_FILE, "wb") as err:
            try:
                popen = subprocess.Popen(
                    [self.shell, "-c", self.command],  # argv[0] bash, not sh: no POSIX mode
                    cwd=self.cwd,
                    env=self.trial_env(launch),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # own session and process group: pgid == pid
                )
            except OSError as e:
                raise TrialError(f"cannot start trial {launch.number}: {e}") from e
        register_leader(popen.pid)
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
        (d / PROCESS_FILE).write_text(json.dumps(info) + "\n", encoding="utf-8")
        self._procs[launch.number] = _Proc(
            launch=launch,
            popen=popen,
            metrics=protocol.MetricsReader(metrics_path),
            pidfd=pidfd,
        )

    # ------------------------------------------------------------------ stop
    def stop(self, number: int, reason: StopReason, *, force: bool = False) -> None:
        proc = self._procs.get(number)
        if proc is None:
            return
        if force:
            self._kill(proc, ProcessTable())
        elif proc.term_at is None:
            self._terminate(proc, None)

    def _members(self, proc: _Proc, table: ProcessTable) -> dict[int, ProcessEntry]:
        """The live processes of ``proc``'s trial. With no other trial running, orphans that
        no trial claims are counted as its own too (only in a subreaper; see
        :meth:`ProcessTable.stray`)."""
        members = table.trial(proc.pgid, proc.known, proc.trial_dir)
        if len(self._procs) == 1:
            members.update(table.stray())
        return members

    def _terminate(self, proc: _Proc, table: ProcessTable | None) -> None:
        """SIGTERM every process of the trial, once; the grace period starts now."""
        killpg(proc.pgid, signal.SIGTERM)  # first, so that no process is spared by the look
        proc.term_at = time.monotonic()
        self._term_outside_group(proc, self._members(proc, table or ProcessTable()))

    def _term_outside_group(self, proc: _Proc, members: Mapping[int, ProcessEntry]) -> None:
        proc.signalled.update(
            signal_outside_group(members, signal.SIGTERM, proc.pgid, skip=proc.signalled))

    def _kill(self, proc: _Proc, table: ProcessTable) -> None:
        """SIGKILL every process of the trial (the leader too, if it still runs)."""
        proc.term_at = proc.term_at or time.monotonic()
        proc.kill_at = proc.kill_at or time.monotonic()
        killpg(proc.pgid, signal.SIGKILL)
        signal_outside_group(self._members(proc, table), signal.SIGKILL, proc.pgid)

    # ------------------------------------------------------------------ poll
    def poll(self, timeout: float) -> list[Event]:
        if not self._procs:
            time.sleep(max(0.0, timeout))
            return []
        self._wait(timeout)
        events: list[Event] = []
        now = time.monotonic()
        table: ProcessTable | None = None
        for number, proc in list(self._procs.items()):
            events += [Reported(number, v) for v in proc.metrics.read()]
            if not proc.exited and has_exited(proc.popen.pid):
                self._leader_exited(proc)
            if proc.exited:
                if not may_have_leftovers(proc.pgid, proc.known):
                    events += self._finish(number, proc)
                    continue
                table = table or ProcessTable()
                members = self._members(proc, table)
                if not members:
                    events += self._finish(number, proc)
                elif proc.kill_at is not None and now - proc.kill_at >= _UNKILLABLE_WAIT:
                    events += self._finish(number, proc, unkillable=sorted(members))
                elif proc.term_at is None:
                    self._terminate(proc, table)  # leftovers of a trial that ended by itself
                elif now - proc.term_at >= self.kill_grace:
                    self._kill(proc, table)
                else:  # started meanwhile: they get their SIGTERM too
                    self._term_outside_group(proc, members)
            elif proc.term_at is not None and now - proc.term_at >= self.kill_grace:
                table = table or ProcessTable()
                self._kill(proc, table)
        if table is not None:
            table.reap_adopted()
        if now - self._tracked_at >= _TRACK_INTERVAL and (
            any(now - p.started >= _TRACK_INTERVAL for p in self._procs.values())
            or is_subreaper()
        ):
            self._track(table or ProcessTable())
        return events

    def _wait(self, timeout: float) -> None:
        """Sleep until a leader exits, a grace period ends, or ``timeout`` seconds pass."""
        now = time.monotonic()
        waits = [timeout]
        waits += [p.term_at + self.kill_grace - now for p in self._procs.values() if p.term_at]
        if any(p.exited for p in self._procs.values()):
            waits.append(_DRAIN_STEP)
        wait = max(0.0, min(waits))
        if self._selector.get_map():
            self._selector.select(wait)
        elif wait > 0:
            time.sleep(min(wait, 0.02))

    def _leader_exited(self, proc: _Proc) -> None:
        proc.exited = True
        if proc.pidfd is not None:  # readable from now on: select() must not wake on it
            self._selector.unregister(proc.pidfd)
            os.close(proc.pidfd)
            proc.pidfd = None

    def _track(self, table: ProcessTable) -> None:
        """Remember each running trial's descendants outside its session; reap adopted
        orphans that have exited."""
        self._tracked_at = time.monotonic()
        for proc in self._procs.values():
            members = table.trial(proc.pgid, proc.known, proc.trial_dir)
            proc.known = {e.proc for e in members.values() if e.sid != proc.pgid}
        table.reap_adopted()

    def _finish(self, number: int, proc: _Proc, unkillable: list[int] | None = None
                ) -> list[Event]:
        """The trial is over: read its last reports, reap its leader, say how it ended.
        ``unkillable``: pids of the trial that outlived SIGKILL, named in the error."""
        events: list[Event] = [Reported(number, v) for v in proc.metrics.read(last=True)]
        proc.metrics.close()
        if proc.pidfd is not None:
            self._selector.unregister(proc.pidfd)
            os.close(proc.pidfd)
        code = proc.popen.wait()
        forget_leader(proc.popen.pid)
        del self._procs[number]
        tail = _stderr_tail(proc.launch.trial_dir / STDERR_FILE) if code != 0 else None
        if unkillable:
            note = (f"processes {unkillable} of the trial did not end {_UNKILLABLE_WAIT:g} s "
                    "after SIGKILL")
            tail = f"{tail}\n{note}" if tail else note
        events.append(Ended(
            number=number,
            final=proc.metrics.final,
            exit_code=code,
            error=tail or None,
            protocol_errors=proc.metrics.errors,
            signal=signal_from_status(code, shell=True),
        ))
        return events

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
        strays = [e.proc for e in ProcessTable().stray().values()]  # now that no trial runs
        for stray in strays:
            with contextlib.suppress(psutil.Error):
                stray.send_signal(signal.SIGKILL)
        psutil.wait_procs(strays, timeout=1.0)  # reaps those that are children of this process
        ProcessTable().reap_adopted()
        self._selector.close()


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
