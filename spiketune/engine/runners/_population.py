"""The population runner: up to K trials trained in one process (``population = K``).

The scheduler still sees one trial per member: it starts each (:meth:`start`), gets its
reports and its end (:meth:`poll`) and stops it alone (:meth:`stop`). The runner batches the
trials it is given, K at a time (a batch the scheduler cannot fill starts at the next poll;
``size_of`` may give a batch a K of its own from its first member's parameters),
into one process of the trial command (run by an inner
:class:`SubprocessRunner`, with all its handling of process groups, grace and leftovers), in
``<experiment>/populations/<first member's number>/``, whose ``population.json`` lists the
members; each member keeps its own trial directory, ``parameter.json`` and ``metrics.jsonl``.
The trial side is :mod:`spiketune.trial._population`.

A population whose process takes new members (its trial called
:func:`spiketune.trial.joining`) is refilled: while it trains fewer than K members, the next
trial the scheduler starts is offered to it (:func:`protocol.offer_member`) rather than
collected for a new process, and :meth:`batch_leader` names its first member, so that the
new trial shares what the population's members share. An offer the process never claimed
when it exits is collected for a new process: it is not a failure.

A member ends when it reports a final result, when it writes its end note (it obeyed a stop
request, or failed alone), or with the process. Stopping a member asks the process to stop
it (a ``stop_request`` file the trial looks for between epochs); only once every member still
running has been asked is the process itself ended. A member the process took down with it
(a signal, a non-zero exit, before its result) is marked ``shared_failure``: the scheduler
retries it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spiketune.engine.runners._base import Ended, Event, Launch, Reported, Runner, StopReason
from spiketune.engine.runners._subprocess import STDERR_FILE, STDOUT_FILE, SubprocessRunner
from spiketune.errors import TrialError
from spiketune.trial import _protocol as protocol

__all__ = ["PopulationRunner"]


@dataclass(eq=False)
class _Member:
    launch: Launch
    reader: protocol.MetricsReader
    population: int | None = None  # key of its population's process, once started
    stop_reason: StopReason | None = None
    offered: bool = False  # offered to a running population (it may not have claimed it yet)
    joined: bool = False  # offered to a running population (claimed or not)
    log_offsets: tuple[int, int] = (0, 0)  # the population's logs' sizes when it joined


@dataclass(eq=False)
class _Population:
    key: int  # its first member's number; the inner runner's trial number
    leader: Launch  # its first member: what a member offered later shares
    directory: Path
    size: int  # the most members it trains at once
    members: list[int] = field(default_factory=list)  # numbers not yet ended


class PopulationRunner(Runner):
    """Runs the trials of ``inner``'s command in populations of up to ``size`` members, at
    most ``processes`` populations at once; ``population_dir(first number)`` is where each
    population's process keeps its files. ``size_of(parameters)``, when given, sets a
    population's size from its first member's parameters instead (sizes by shape)."""

    def __init__(
        self,
        inner: SubprocessRunner,
        *,
        size: int,
        processes: int = 1,
        population_dir: Callable[[int], Path],
        size_of: Callable[[Mapping[str, Any]], int] | None = None,
    ) -> None:
        if size < 1 or processes < 1:
            raise TrialError(f"a population needs size >= 1 and processes >= 1, got {size}, "
                             f"{processes}")
        self.inner = inner
        self.size = size
        self.processes = processes
        self.population_dir = population_dir
        self.size_of = size_of
        self._members: dict[int, _Member] = {}
        self._pending: list[int] = []
        self._populations: dict[int, _Population] = {}
        self._events: list[Event] = []  # ends decided outside poll (stopped before starting)

    # ------------------------------------------------------------------ start
    def accepts(self) -> bool:
        # a batch being collected has room (a full one has started); else a running
        # population that takes members has room, or there is room for a new one
        return (bool(self._pending) or self._refillable() is not None
                or len(self._populations) < self.processes)

    def batch_leader(self) -> Launch | None:
        if self._pending:
            return self._members[self._pending[0]].launch
        population = self._refillable()
        return None if population is None else population.leader

    def _refillable(self) -> _Population | None:
        """A running population with fewer members than its size whose process takes new ones
        (the fullest first: its members' place in the batch is cheapest to fill)."""
        open_ = [p for p in self._populations.values()
                 if len(p.members) < p.size and not self._stopping(p)
                 and protocol.is_accepting(p.directory)]
        return min(open_, key=lambda p: (p.size - len(p.members), p.key), default=None)

    def _size(self, leader: Launch) -> int:
        """The members a population whose first member is ``leader`` takes."""
        if self.size_of is None:
            return self.size
        size = self.size_of(leader.parameters)
        if size < 1:
            raise TrialError(f"a population needs size >= 1, got {size} for trial "
                             f"{leader.number}")
        return size

    def start(self, launch: Launch) -> None:
        d = launch.trial_dir
        protocol.write_parameters(d, launch.parameters_json)
        for stale in (protocol.STOP_REQUEST_FILE, protocol.MEMBER_END_FILE):
            with contextlib.suppress(FileNotFoundError):
                (d / stale).unlink()  # a retry reuses nothing of an earlier run
        metrics = d / protocol.METRICS_FILE
        metrics.write_bytes(b"")
        self._members[launch.number] = _Member(launch, protocol.MetricsReader(metrics))
        if not self._pending and self._offer(launch):
            return
        self._pending.append(launch.number)
        if len(self._pending) >= self._size(self._members[self._pending[0]].launch):
            self._flush()  # full: it starts now, and the next start begins another batch

    def _stopping(self, population: _Population) -> bool:
        """Every member it trains was asked to stop: its process is about to be ended."""
        return bool(population.members) and all(
            self._members[n].stop_reason is not None for n in population.members)

    def _offer(self, launch: Launch) -> bool:
        """Offer ``launch`` to a running population with room; False when none takes it."""
        population = self._refillable()
        if population is None:
            return False
        entry = {"number": launch.number, "sequence_id": launch.sequence_id,
                 "trial_dir": str(launch.trial_dir)}
        try:
            protocol.offer_member(population.directory, entry)
        except OSError:
            return False  # collected for a new process instead
        member = self._members[launch.number]
        member.population, member.offered, member.joined = population.key, True, True
        member.log_offsets = tuple(_size(population.directory / name)  # type: ignore[assignment]
                                   for name in (STDOUT_FILE, STDERR_FILE))
        population.members.append(launch.number)
        return True

    def _flush(self) -> None:
        """Start one process for the batch collected: when it is full, or at the next poll
        (a batch the scheduler could not fill, e.g. the last one of its budget)."""
        numbers, self._pending = self._pending, []
        first = self._members[numbers[0]].launch
        directory = self.population_dir(first.number)
        entries = [{"number": n, "sequence_id": self._members[n].launch.sequence_id,
                    "trial_dir": str(self._members[n].launch.trial_dir)} for n in numbers]
        try:
            path = protocol.write_population(directory, entries)
            for e in entries:
                protocol.mark_member(Path(e["trial_dir"]), directory)
            self.inner.start(Launch(
                number=first.number,
                sequence_id=first.sequence_id,
                parameters={},
                parameters_json="{}",
                trial_dir=directory,
                experiment_id=first.experiment_id,
                gpu=first.gpu,
                environment={
                    **first.environment,  # the budget's end: the same for every member
                    protocol.ENV_POPULATION_FILE: str(path),
                    protocol.ENV_POPULATION_MEMBERS: os.pathsep.join(e["trial_dir"]
                                                                     for e in entries),
                },
            ))
        except (TrialError, OSError) as e:
            for n in numbers:
                member = self._members.pop(n)
                member.reader.close()
                self._events.append(Ended(n, final=None, error=f"could not start its "
                                          f"population (trials {_listed(numbers)}): {e}"))
            return
        population = _Population(first.number, first, directory, self._size(first),
                                 list(numbers))
        self._populations[first.number] = population
        for n in numbers:
            self._members[n].population = first.number
            member = self._members[n]
            member.offered, member.joined, member.log_offsets = False, False, (0, 0)

    # ------------------------------------------------------------------ stop
    def stop(self, number: int, reason: StopReason, *, force: bool = False) -> None:
        member = self._members.get(number)
        if member is None:
            return
        if member.population is None:  # never started: it ends here (told at the next poll)
            self._pending.remove(number)
            self._end(number, Ended(number, final=None, stopped=True), self._events)
            return
        if member.offered and self._withdraw(member):  # never claimed: as never started
            self._end(number, Ended(number, final=None, stopped=True), self._events)
            return
        if member.stop_reason is None:
            member.stop_reason = reason
            with contextlib.suppress(OSError):
                (member.launch.trial_dir / protocol.STOP_REQUEST_FILE).write_text(
                    reason.value, encoding="utf-8")
        population = self._populations[member.population]
        if all(self._members[n].stop_reason is not None for n in population.members):
            self.inner.stop(population.key, reason, force=force)

    def _withdraw(self, member: _Member) -> bool:
        """Take back an offer the process has not claimed; True when it was not (then the
        member belongs to no population any more)."""
        assert member.population is not None
        population = self._populations.get(member.population)
        directory = (population.directory if population is not None
                     else self.population_dir(member.population))
        if not protocol.withdraw_member(directory, member.launch.number):
            member.offered = False  # claimed: a member of that process like the others
            return False
        if population is not None:
            population.members.remove(member.launch.number)
        member.population, member.offered = None, False
        return True

    # ------------------------------------------------------------------ poll
    def poll(self, timeout: float) -> list[Event]:
        if self._pending:
            self._flush()
        events, self._events = self._events, []
        for event in self.inner.poll(timeout):
            if isinstance(event, Ended):
                events += self._population_ended(event)
        for population in list(self._populations.values()):
            for number in list(population.members):
                events += self._look(number, population)
            # a process that trains no member any more is over for this runner (its place
            # is free), unless it takes new members: then it is kept until it exits
            if not population.members and not protocol.is_accepting(population.directory):
                self._populations.pop(population.key, None)
        return events

    def _look(self, number: int, population: _Population) -> list[Event]:
        """A running member's new reports, and its end if it has one."""
        member = self._members[number]
        events: list[Event] = [Reported(number, v) for v in member.reader.read()]
        if member.reader.final is not None:
            self._end(number, Ended(number, final=member.reader.final, exit_code=0,
                                    protocol_errors=member.reader.errors), events)
        else:
            note = protocol.read_member_end(member.launch.trial_dir)
            if note is not None:
                self._end(number, _noted_end(number, note, member), events)
        return events

    def _population_ended(self, ended: Ended) -> list[Event]:
        """The process of a population is over: each member still running ends with it."""
        population = self._populations.pop(ended.number, None)
        if population is None:
            return []
        events: list[Event] = []
        refused = protocol.not_a_population_script(population.directory)
        for number in list(population.members):
            member = self._members[number]
            if member.offered and self._withdraw(member):
                self._pending.append(number)  # never claimed: the next process takes it
                continue
            events += [Reported(number, v) for v in member.reader.read(last=True)]
            note = protocol.read_member_end(member.launch.trial_dir)
            if member.reader.final is not None:
                end = Ended(number, final=member.reader.final, exit_code=0,
                            protocol_errors=member.reader.errors)
            elif note is not None:
                end = _noted_end(number, note, member)
            else:
                died = ended.signal is not None or ended.exit_code not in (None, 0)
                error = ended.error
                if not died:
                    error = ("the population's process exited without a result for this "
                             "trial" + (f"\n{error}" if error else ""))
                elif refused is not None:  # its own failure, the same on every retry
                    error = f"{refused}\n{error}" if error else refused
                end = Ended(number, final=None, exit_code=ended.exit_code, error=error,
                            protocol_errors=member.reader.errors, signal=ended.signal,
                            shared_failure=(died and member.stop_reason is None
                                            and refused is None))
            self._end(number, end, events)
        return events

    def _end(self, number: int, ended: Ended, events: list[Event]) -> None:
        member = self._members.pop(number)
        member.reader.close()
        if member.population is not None:
            population = self._populations.get(member.population)
            if population is not None:
                population.members.remove(number)
            self._copy_logs(member)
        events.append(ended)

    def _copy_logs(self, member: _Member) -> None:
        """Give the member the population's ``stdout.log`` and ``stderr.log`` as they are when
        it ends (its own lines are in them), headed by where they come from: reports, the
        dashboard and ``spiketune`` commands read a trial's logs in its directory."""
        assert member.population is not None
        source = self.population_dir(member.population)
        since = "from when it joined" if member.joined else "from its start"
        head = (f"[spiketune] trial {member.launch.number} ran in the population of "
                f"{source} (population.json and joined/ list its trials); that process's "
                f"output {since} until this trial ended:\n").encode()
        for name, offset in zip((STDOUT_FILE, STDERR_FILE), member.log_offsets, strict=True):
            with contextlib.suppress(OSError), open(source / name, "rb") as f:
                f.seek(offset)
                (member.launch.trial_dir / name).write_bytes(head + f.read())

    def close(self) -> None:
        """End every population still running (see :meth:`SubprocessRunner.close`)."""
        try:
            self.inner.close()
        finally:
            for member in self._members.values():
                member.reader.close()
            self._members.clear()
            self._pending.clear()
            self._populations.clear()


def _noted_end(number: int, note: dict[str, str], member: _Member) -> Ended:
    if note["status"] == "stopped":
        return Ended(number, final=None, stopped=True, protocol_errors=member.reader.errors)
    return Ended(number, final=None, failure=note["reason"] or "failed",
                 protocol_errors=member.reader.errors)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _listed(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)
