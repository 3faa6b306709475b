"""Processes of trials: who is alive, which processes belong to a trial, how to end them.

A trial command runs in a session and process group of its own (its leader's pid is both
ids). Everything the trial starts stays in that session unless it leaves on purpose
(``setsid``, ``start_new_session=True``); such a process is still a descendant of the trial
while its parent lives, and an orphan once its parent has exited. Orphans go to the nearest
ancestor that is a *child subreaper* (:func:`become_subreaper`; the ``spiketune`` command
line is one), else to init, where no one can tell whose they were.

:class:`ProcessTable` is one look at every process of the machine (through psutil), and
answers which live processes belong to a trial: the members of its session, the
descendants seen earlier and still alive (pid and start time both match), the orphans this
process adopted that carry the trial's ``SPIKETUNE_TRIAL_DIR``, and every descendant of
those.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from spiketune.trial._protocol import ENV_POPULATION_MEMBERS, ENV_TRIAL_DIR, marked_population

__all__ = [
    "ProcessEntry",
    "ProcessTable",
    "become_subreaper",
    "count_trial_leftovers",
    "end_trial_leftovers",
    "forget_leader",
    "has_exited",
    "is_subreaper",
    "killpg",
    "process_alive",
    "process_start_time",
    "register_leader",
    "signal_outside_group",
]

# Two start times of one process, read by two processes, differ only if the wall clock was
# stepped in between (psutil counts from boot time, read from the wall clock). A pid comes
# back only after the kernel has handed out every other pid, far longer than this.
_SAME_START_S = 1.0
# Start times written before they were seconds since the epoch were clock ticks since boot.
_LEGACY_TICKS_BELOW = 1e9

#: Seconds to wait for a trial's leftovers to be gone after SIGKILL.
_KILLED_WAIT_S = 5.0

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

# The pids of the processes the runners of this process started (each a trial's leader): the
# subprocess module collects their exit status, so reaping adopted orphans must leave them be.
_leaders: set[int] = set()


# ------------------------------------------------------------------------------ liveness
def process_start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch; None when there is no such process.

    With the pid it names a process for sure: a pid is reused, the pair is not.
    """
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, ValueError):
        return None


def process_alive(pid: Any, start_time: Any) -> bool:
    """True while the process ``pid`` that started at ``start_time`` still runs.

    ``start_time`` comes from :func:`process_start_time` (seconds since the epoch; an older
    record's clock ticks since boot are read too); None checks the pid alone. A zombie (exited,
    not yet collected by its parent) counts as gone.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; whether it is the same one cannot be checked
    if not isinstance(start_time, int | float) or isinstance(start_time, bool):
        return True
    if start_time < _LEGACY_TICKS_BELOW:
        start_time = psutil.boot_time() + start_time / os.sysconf("SC_CLK_TCK")
    return abs(started - start_time) <= _SAME_START_S


def has_exited(pid: int) -> bool:
    """True once ``pid``, a child of this process, has exited; it is left to be reaped.

    Until it is reaped the child stays a zombie, so its pid (and the process group id it
    names) cannot be reused meanwhile.
    """
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def killpg(pgid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pgid``; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def register_leader(pid: int) -> None:
    """Note a trial leader this process started (its exit status is the runner's to collect)."""
    _leaders.add(pid)


def forget_leader(pid: int) -> None:
    """The runner has collected the leader ``pid``."""
    _leaders.discard(pid)


# ------------------------------------------------------------------------------ subreaper
def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux), so that orphaned trial descendants come
    back to it and can be ended with their trial. Returns whether it is one now.

    Only for a process that exists to run trials (the ``spiketune`` command line): a subreaper
    adopts every orphan below it, and the runners reap the adopted ones, which would take the
    exit status of a grandchild from a program that waits for it. ``Experiment.run()`` in a
    user's own program therefore never calls it. On other systems this does nothing and
    returns False: a trial's descendants that leave its session are then ended only if the
    runner saw them while their parent still ran (see docs/engine.md).
    """
    if not sys.platform.startswith("linux"):
        return False
    prctl = _prctl()
    return prctl is not None and prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def is_subreaper() -> bool:
    """Whether this process is a child subreaper (always False off Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    prctl = _prctl()
    if prctl is None:
        return False
    flag = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        return False
    return bool(flag.value)


@functools.cache
def _prctl() -> Any:
    """libc's ``prctl``, or None; looked up once, in the symbols already loaded (no
    ``find_library``, which would start ``ldconfig``)."""
    for name in (None, "libc.so.6"):
        with contextlib.suppress(OSError, AttributeError):
            return ctypes.CDLL(name, use_errno=True).prctl
    return None


def may_have_leftovers(session: int, known: Iterable[psutil.Process]) -> bool:
    """Whether a trial whose leader ``session`` has exited may have processes left: a cheap
    look (one ``getsid`` per pid, no ``/proc`` reads) before the full :class:`ProcessTable`.

    False is sure: no other member of its session, no ``known`` descendant and, in a
    subreaper, no adopted orphan is alive.
    """
    for pid in psutil.pids():
        if pid == session:
            continue
        try:
            if os.getsid(pid) == session and not _zombie(pid):
                return True
        except OSError:
            continue
    if any(p.is_running() and not _zombie(p.pid) for p in known):
        return True
    if not is_subreaper():
        return False
    own_group = os.getpgrp()
    for child in psutil.Process().children():
        try:
            if (child.pid not in _leaders and os.getpgid(child.pid) != own_group
                    and child.status() != psutil.STATUS_ZOMBIE):
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True  # gone


# ------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class ProcessEntry:
    """One process as :class:`ProcessTable` saw it."""

    proc: psutil.Process
    ppid: int
    pgid: int
    sid: int
    zombie: bool


class ProcessTable:
    """One look at every process of this machine: parent, process group, session, state.

    Orphans adopted by this process are looked at only when it is a child subreaper: in any
    other process, a child outside its process group is someone else's business.
    """

    def __init__(self) -> None:
        self.me = os.getpid()
        self.entries: dict[int, ProcessEntry] = {}
        self._children: dict[int, list[int]] = {}
        self._own_group = os.getpgrp()
        self._subreaper = is_subreaper()
        for proc in psutil.process_iter(["ppid", "status"]):
            ppid, status = proc.info["ppid"], proc.info["status"]
            if ppid is None:
                continue  # gone while we looked
            try:
                pgid, sid = os.getpgid(proc.pid), os.getsid(proc.pid)
            except OSError:
                continue
            entry = ProcessEntry(proc, ppid, pgid, sid, status == psutil.STATUS_ZOMBIE)
            self.entries[proc.pid] = entry
            self._children.setdefault(ppid, []).append(proc.pid)

    def trial(
        self, session: int, known: Iterable[psutil.Process] = (), trial_dir: str | None = None
    ) -> dict[int, ProcessEntry]:
        """The live processes of the trial whose leader is ``session``, by pid.

        Members of its session; ``known`` processes (seen earlier as its descendants) that are
        still the same processes (pid and start time); orphans this process adopted whose
        environment names ``trial_dir``; and all their descendants. Zombies and this process
        are left out.
        """
        roots = [pid for pid, e in self.entries.items() if e.sid == session]
        roots += [p.pid for p in known if self._same(p)]
        if trial_dir is not None:
            roots += [pid for pid in self._adopted(alive=True)
                      if _names_trial(_environ_of(pid), trial_dir)]
        return self.closure(roots)

    def closure(self, roots: Iterable[int]) -> dict[int, ProcessEntry]:
        """``roots`` and all their descendants, alive, without this process, by pid."""
        found: dict[int, ProcessEntry] = {}
        stack = list(roots)
        while stack:
            pid = stack.pop()
            if pid in found or pid == self.me or pid not in self.entries:
                continue
            found[pid] = self.entries[pid]
            stack += self._children.get(pid, [])
        return {pid: e for pid, e in found.items() if not e.zombie}

    def _same(self, proc: psutil.Process) -> bool:
        entry = self.entries.get(proc.pid)
        return entry is not None and entry.proc == proc  # psutil compares pid and start time

    def _adopted(self, *, alive: bool) -> list[int]:
        """Children of this process, alive or exited, that it did not start as trial leaders
        (only in a subreaper; a trial's processes never share this process's group)."""
        if not self._subreaper:
            return []
        return [pid for pid in self._children.get(self.me, [])
                if pid not in _leaders and self.entries[pid].zombie != alive
                and self.entries[pid].pgid != self._own_group]

    def stray(self) -> dict[int, ProcessEntry]:
        """Live adopted orphans, with their descendants: processes of trials that are over."""
        return self.closure(self._adopted(alive=True))

    def leftovers(self, trial_dir: str) -> dict[int, ProcessEntry]:
        """The live processes of a trial whose runner is gone, by pid: those whose environment
        names ``trial_dir``, the members of their sessions, and all their descendants (see
        :func:`end_trial_leftovers`). This process is left out.

        A member that joined a running population is not named in its process's environment
        (which was set before it joined); its directory names the population's instead
        (:func:`spiketune.trial._protocol.marked_population`), whose process is then its."""
        population = marked_population(Path(trial_dir))
        marked = [pid for pid, e in self.entries.items()
                  if not e.zombie and pid != self.me
                  and _names_trial(_environ_of(pid), trial_dir, population)]
        found = self.closure(marked)
        for session in {self.entries[pid].sid for pid in marked}:
            found.update(self.trial(session))
        return found

    def reap_adopted(self) -> int:
        """Collect the exit status of adopted orphans that have exited; returns how many.

        Never a leader a runner started, nor a child in this process's own group (a program
        it runs itself): their status belongs to whoever waits for them.
        """
        reaped = 0
        for pid in self._adopted(alive=False):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
        return reaped


def _environ_of(pid: int) -> Mapping[str, str]:
    try:
        return psutil.Process(pid).environ()
    except psutil.Error:
        return {}


def _names_trial(
    environ: Mapping[str, str], trial_dir: str, population: Path | None = None
) -> bool:
    """Whether a process with ``environ`` belongs to the trial of ``trial_dir``: its own
    trial directory, one of the members of the population it trains, or (``population``) the
    directory of the population the trial joined."""
    own = environ.get(ENV_TRIAL_DIR)
    if own == trial_dir or (population is not None and own == str(population)):
        return True
    members = environ.get(ENV_POPULATION_MEMBERS)
    return bool(members) and trial_dir in members.split(os.pathsep)


def signal_outside_group(members: Mapping[int, ProcessEntry], sig: int, pgid: int,
                         skip: Iterable[psutil.Process] = ()) -> list[psutil.Process]:
    """Send ``sig`` to each of ``members`` outside the process group ``pgid`` (which the caller
    signals as a whole with :func:`killpg`), except those in ``skip``; returns those signalled.

    One signal per process: a second SIGTERM would run a trial's handler twice. psutil checks
    that each pid is still the process seen, so a pid reused meanwhile is never hit.
    """
    skipped = set(skip)
    sent = []
    for entry in members.values():
        if entry.pgid == pgid or entry.proc in skipped:
            continue
        with contextlib.suppress(psutil.Error):
            entry.proc.send_signal(sig)
            sent.append(entry.proc)
    return sent


def end_trial_leftovers(trial_dir: str | os.PathLike[str], grace: float) -> int:
    """End what is left of a trial whose scheduler is gone, as a stop would: SIGTERM to each
    of its processes (once), and ``grace`` seconds later SIGKILL to whatever of the trial
    still runs, also what it started meanwhile. Returns once they are gone (a trial that saves
    a checkpoint on SIGTERM has written it, and its ``metrics.jsonl`` no longer changes), with
    how many processes it found.

    ``trial_dir`` is the trial's directory (as recorded in the study or its ``process.json``).
    A process is the trial's when its environment names ``trial_dir``
    (``SPIKETUNE_TRIAL_DIR``, which every process of the trial inherits unless it clears it),
    when it shares the session of such a process, or when it descends from one. A pid or a
    process group is never trusted alone: after a crash, a recorded id may name someone
    else's processes.
    """
    trial_dir = os.fspath(trial_dir)
    termed = ProcessTable().leftovers(trial_dir)
    for entry in termed.values():
        with contextlib.suppress(psutil.Error):
            entry.proc.send_signal(signal.SIGTERM)
    remaining = _wait_gone([e.proc for e in termed.values()], grace)
    killed = ProcessTable().leftovers(trial_dir)
    # and those of the first look that no rule reaches any more (an exec that cleared the
    # environment); psutil checks that each is still the process seen
    victims = {e.proc for e in killed.values()} | set(remaining)
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    _wait_gone(list(victims), _KILLED_WAIT_S)
    return len(termed.keys() | killed.keys())


def count_trial_leftovers(trial_dir: str | os.PathLike[str]) -> int:
    """How many processes of a trial whose scheduler is gone still run, found as
    :func:`end_trial_leftovers` finds them: after it, those it could not end (another
    user's processes, say)."""
    return len(ProcessTable().leftovers(os.fspath(trial_dir)))


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``procs`` to end; return those still running. A
    zombie counts as ended: it runs no more code, and its parent (not us) reaps it."""
    deadline = time.monotonic() + max(0.0, timeout)
    alive = list(procs)
    while True:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
