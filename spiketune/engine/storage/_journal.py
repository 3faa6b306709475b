"""A study in an Optuna journal file on a shared disk, without a database server
(``journal:///shared/path/study.log``).

Three files, side by side::

    study.log             Optuna's JournalStorage log (JournalFileBackend): one JSON object
                          per line, one line per operation, appended, never rewritten
    study.log.spiketune   spiketune's records (claims, heartbeats, the experiment registry):
                          the same kind of append-only log, one JSON object per line
    study.log.lock        present while one process writes either log (Optuna's lock file)

**One lock for both logs.** Every write to either file happens while the writer holds
``study.log.lock``, taken with Optuna's :class:`~optuna.storages.journal.JournalFileOpenLock`:
``open(O_CREAT | O_EXCL)``, which the file server performs atomically (NFSv3 and later), so of
two processes on any machines exactly one creates the file; released by rename and unlink.
Optuna's own ``JournalFileBackend`` takes the same file for its appends (the symlink lock
Optuna uses by default has the same name, and ``symlink()`` fails on an existing name too), so
a plain Optuna process writing the same log is kept out as well. Nothing relies on ``fcntl()``
locks (broken on many NFS setups, hence SQLite's warnings) or on ``O_APPEND`` (not atomic
across NFS clients).

**Transactions.** A transaction (:meth:`JournalTrials.begin`) holds the lock, reads both logs
to their ends, checks its condition (the trial is still RUNNING, the sequence id is free...),
and appends. The lock makes read-check-append one step: a claim's sequence id, a trial's
number and its id are exactly what the log holds when the lock is released. The operations
of one transaction are written with one ``write()`` and one ``fsync()`` per file (Optuna's log
first, then spiketune's; a new trial lands with everything before it at once, so that Optuna
can read its id back). A process killed between the two writes leaves a trial without its
first heartbeat, which the sweep settles like any other silent trial, or a heartbeat of an
ended trial, which nothing reads. An exception inside a transaction writes nothing.

**Why reads see every write on NFS.** NFS guarantees close-to-open consistency: a file
opened after another client closed it sees everything that client wrote before closing. A
writer appends, flushes, fsyncs and closes each log *before* it releases the lock; every
reader opens the logs anew for each read (Optuna's backend does, and so does
:class:`JournalRecords`), and a writer does so only after it holds the lock. Readers take no
lock: a log only grows, and a reader uses whole lines only (a line still being written is not
read yet). A last line cut short by a writer killed mid-``write()`` was never read by anyone:
the next writer, holding the lock, cuts it off before it appends (Optuna's reader would stop
at the line the two would make).

**Crashes.** A lock whose holder died is taken over by the next writer after its file has not
changed for 30 s (Optuna's grace period); transactions hold it for milliseconds. Heartbeats
are clocks of their owners, compared only with themselves (see
:mod:`~spiketune.engine.workers`), so machines' clocks need not agree.

**Read-only.** Opening read-only needs the log to exist (``JournalFileBackend`` would create
it), writes nothing (its appends raise), and takes no lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from spiketune.engine.storage._base import BaseRecords, BaseTrialWrites, TrialSummary
from spiketune.errors import StorageError

__all__ = [
    "RECORDS_SUFFIX",
    "JournalLock",
    "JournalRecords",
    "JournalTrials",
    "OpenedJournal",
    "journal_problem_of_file",
    "open_journal",
]

#: spiketune's records beside ``study.log``: ``study.log.spiketune``.
RECORDS_SUFFIX = ".spiketune"
#: How every line of an Optuna journal starts (``json.dumps`` of a dict whose first key is
#: the operation code): how a file that is no journal is told apart.
_JOURNAL_START = b'{"op_code":'
#: Seconds a lock file may stay unchanged before the next writer takes it over (its holder
#: died holding it): Optuna's default.
LOCK_GRACE = 30


def journal_problem_of_file(path: Path) -> str | None:
    """What keeps ``path`` from being a study journal (``missing``, ``a directory, not a
    file``, ``not an Optuna journal``...), or None. Reads its first bytes at most; never
    creates or changes it. An empty file is a journal with nothing in it yet."""
    try:
        if not path.exists():
            return "missing"
        if path.is_dir():
            return "a directory, not a file"
        with open(path, "rb") as f:
            start = f.read(len(_JOURNAL_START))
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if start and start != _JOURNAL_START:
        return "not an Optuna journal (its first line is no journal operation)"
    return None


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line without its end off ``path``: what a writer killed in the middle of
    its ``write()`` left (the caller holds the lock, so no live writer is mid-write). Readers
    never used it (they read whole lines only), and Optuna's reader would stop at the line
    it would make with the next append."""
    try:
        f = open(path, "r+b")  # noqa: SIM115 (closed below, on every path)
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":  # the usual case: one byte read
            return
        start = end
        while start > 0:  # back to the end of the last whole line
            step = min(start, 1 << 16)
            f.seek(start - step)
            chunk = f.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())


class JournalLock:
    """Optuna's :class:`~optuna.storages.journal.JournalFileOpenLock` on ``study.log.lock``,
    re-entrant within one store: a transaction holds it while Optuna's backend appends (which
    takes the same lock object), and the backend's acquire is then a no-op. Threads of one
    process queue on a thread lock first; processes and machines on the lock file."""

    def __init__(self, log: Path) -> None:
        self._file = JournalFileOpenLock(str(log), grace_period=LOCK_GRACE)
        self._thread = threading.RLock()
        self._depth = 0

    def acquire(self) -> bool:
        self._thread.acquire()
        if self._depth == 0:
            try:
                self._file.acquire()
            except BaseException:
                self._thread.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                self._file.release()
        finally:
            self._thread.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


class _Batch:
    """Appends made inside a transaction by the thread that opened it, kept until it ends
    (then written at once) or fails (then dropped)."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] | None = None
        self.thread: int | None = None

    def open(self) -> None:
        self.pending, self.thread = [], threading.get_ident()

    def close(self) -> list[dict[str, Any]]:
        pending, self.pending, self.thread = self.pending or [], None, None
        return pending

    def active(self) -> bool:
        return self.pending is not None and self.thread == threading.get_ident()


class _Backend(JournalFileBackend):
    """Optuna's file backend, with the transactions of the module docstring: inside one,
    appends wait for its end and land as one write (a new trial's with everything before
    it, see :meth:`land_with_next`); opened read-only, every append raises."""

    def __init__(self, path: Path, lock: JournalLock, *, read_only: bool) -> None:
        self._path = path
        self._read_only = read_only
        self._batch = _Batch()
        self._land_next = False
        self._held = lock.held
        # Duck-typed lock: JournalFileBackend only calls acquire() and release().
        super().__init__(str(path), lock_obj=lock)  # type: ignore[arg-type]

    @property
    def path(self) -> Path:
        return self._path

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self._read_only:
            raise StorageError(f"the study journal {self._path} was opened read-only: "
                               "nothing is written")
        if not self._batch.active():
            with self._held():
                self._append_whole(logs)
            return
        assert self._batch.pending is not None
        self._batch.pending.extend(logs)
        if self._land_next:  # Optuna reads this append back at once (a new trial's id)
            self._land_next = False
            self.flush()

    def land_with_next(self) -> None:
        """Write the next append at once, with everything pending before it."""
        self._land_next = True

    def open_batch(self) -> None:
        self._batch.open()

    def flush(self) -> None:
        """Write what is pending (one append), and go on keeping appends."""
        if self._batch.pending:
            logs, self._batch.pending = self._batch.pending, []
            self._append_whole(logs)

    def _append_whole(self, logs: list[dict[str, Any]]) -> None:
        """Optuna's append (under the lock, which the caller holds), after cutting off a line
        a killed writer left unfinished."""
        _drop_torn_tail(self._path)
        super().append_logs(logs)

    def drop_batch(self) -> None:
        self._batch.close()
        self._land_next = False


class JournalRecords(BaseRecords):
    """spiketune's records in ``study.log.spiketune``, for one store: replayed into memory
    (claims, heartbeats, the registry) from where the last read ended, before every read and
    under the lock before every write. Lines (one JSON object each)::

        {"op": "claim", "study": S, "seq": K, "owner": O, "at": T}   sequence id K is O's
        {"op": "owner", "study": S, "seq": K, "owner": O}            the claim passes to O
        {"op": "beat", "study": S, "trials": [ID], "owner": O, "at": T}   first heartbeat
        {"op": "beat", "trials": [ID, ...], "at": T}                 heartbeats renewed
        {"op": "end", "trials": [ID]}                                the heartbeat goes
        {"op": "register", "name": N, "experiment_id": S, "at": T}   first one wins
    """

    def __init__(self, path: Path, lock: JournalLock, *, read_only: bool) -> None:
        self._path = path
        self._lock = lock
        self._read_only = read_only
        self._batch = _Batch()
        self._offset = 0
        self._claims: dict[str, dict[int, str]] = {}
        self._beats: dict[int, tuple[str, str, float]] = {}  # trial id -> (study, owner, at)
        self._registry: dict[str, str] = {}

    # ---------------------------------------------------------------- the log
    def sync(self) -> None:
        """Apply the whole lines written since the last read (opened anew: see the module
        docstring on NFS)."""
        try:
            with open(self._path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size <= self._offset:
                    return
                f.seek(self._offset)
                data = f.read(size - self._offset)
        except FileNotFoundError:  # nothing written yet
            return
        end = data.rfind(b"\n") + 1  # a last line without its end is not whole yet
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # not spiketune's: a line of this file is one JSON object
            if isinstance(record, dict):
                self._apply(record)
        self._offset += end

    def _apply(self, r: dict[str, Any]) -> None:
        op = r.get("op")
        if op == "claim":
            self._claims.setdefault(r["study"], {}).setdefault(int(r["seq"]), r["owner"])
        elif op == "owner":
            self._claims.setdefault(r["study"], {})[int(r["seq"])] = r["owner"]
        elif op == "beat" and "owner" in r:
            for tid in r["trials"]:
                self._beats[int(tid)] = (r["study"], r["owner"], float(r["at"]))
        elif op == "beat":
            for tid in r["trials"]:
                row = self._beats.get(int(tid))
                if row is not None:
                    self._beats[int(tid)] = (row[0], row[1], float(r["at"]))
        elif op == "end":
            for tid in r["trials"]:
                self._beats.pop(int(tid), None)
        elif op == "register":
            self._registry.setdefault(r["name"], r["experiment_id"])

    def _append(self, *records: dict[str, Any]) -> None:
        """Write ``records`` (the caller holds the lock), or keep them for the end of the
        transaction this thread is in."""
        if self._read_only:
            raise StorageError(f"the records {self._path} were opened read-only: nothing is "
                               "written")
        if self._batch.active():
            assert self._batch.pending is not None
            self._batch.pending.extend(records)
            return
        self._write(list(records))

    def _write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        _drop_torn_tail(self._path)
        with open(self._path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def open_batch(self) -> None:
        self._batch.open()

    def write_batch(self) -> None:
        """Write what is pending (one append) and keep no more."""
        self._write(self._batch.close())

    def drop_batch(self) -> None:
        self._batch.close()

    # ---------------------------------------------------------------- claims
    def count(self, study_name: str) -> int:
        self.sync()
        return len(self._claims.get(study_name, {}))

    def claim(self, study_name: str, limit: int | None, owner: str) -> int | None:
        with self._lock.held():
            self.sync()
            sequence_id = max(self._claims.get(study_name, {}), default=-1) + 1
            if limit is not None and sequence_id >= limit:
                return None
            self._append({"op": "claim", "study": study_name, "seq": sequence_id,
                          "owner": owner, "at": time.time()})
            return sequence_id

    def claims_of(self, study_name: str) -> dict[int, str]:
        self.sync()
        return dict(self._claims.get(study_name, {}))

    def take_claim(self, study_name: str, sequence_id: int, owner: str,
                   new_owner: str) -> bool:
        with self._lock.held():
            self.sync()
            if self._claims.get(study_name, {}).get(sequence_id) != owner:
                return False
            self._append({"op": "owner", "study": study_name, "seq": sequence_id,
                          "owner": new_owner})
            return True

    # ---------------------------------------------------------------- heartbeats
    def insert_beat(self, tx: Any, study_name: str, trial_id: int, owner: str) -> None:
        self._append({"op": "beat", "study": study_name, "trials": [trial_id],
                      "owner": owner, "at": time.time()})

    def delete_beat(self, tx: Any, trial_id: int) -> None:
        self._append({"op": "end", "trials": [trial_id]})

    def beat(self, trial_ids: Collection[int]) -> set[int]:
        ids = set(trial_ids)
        if not ids:
            return set()
        with self._lock.held():
            self.sync()
            present = sorted(ids & self._beats.keys())
            if present:
                self._append({"op": "beat", "trials": present, "at": time.time()})
        return ids - set(present)

    def beats(self, study_name: str) -> dict[int, tuple[str, float]]:
        self.sync()
        return {tid: (owner, at) for tid, (study, owner, at) in self._beats.items()
                if study == study_name}

    # ---------------------------------------------------------------- registry
    def registered(self, name: str) -> str | None:
        self.sync()
        return self._registry.get(name)

    def register(self, name: str, experiment_id: str) -> bool:
        with self._lock.held():
            self.sync()
            if name in self._registry:
                return False
            self._append({"op": "register", "name": name, "experiment_id": experiment_id,
                          "at": time.time()})
            return True


class JournalTrials(BaseTrialWrites):
    """A trial's start and end in the journal, written through Optuna's own
    :class:`~optuna.storages.journal.JournalStorage` calls (so every line is what Optuna
    writes for them), grouped into the transactions of the module docstring."""

    def __init__(self, storage: JournalStorage, backend: _Backend, records: JournalRecords,
                 lock: JournalLock) -> None:
        self._storage = storage
        self._backend = backend
        self._records = records
        self._lock = lock

    def consistent(self) -> contextlib.AbstractContextManager[None]:
        """Hold the lock while reading: a writer appends a new trial to Optuna's log and its
        first heartbeat to spiketune's records as two writes under the lock, and a reader
        between them would take the trial for one without an owner (an interrupted one)."""
        return self._lock.held()

    @contextlib.contextmanager
    def begin(self) -> Iterator[JournalTrials]:
        """Hold the lock; keep every append until the block ends; then Optuna's log, then
        spiketune's records, one write each. An exception writes nothing."""
        with self._lock.held():
            self._backend.open_batch()
            self._records.open_batch()
            try:
                yield self
                self._backend.flush()
                self._records.write_batch()
            finally:
                self._backend.drop_batch()
                self._records.drop_batch()

    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        # Inside a transaction: the lock is taken before Optuna's thread lock, in this order
        # everywhere, so threads of one store never wait for each other the other way round.
        with self.begin():
            self._storage.set_study_user_attr(study_id, key, value)

    # ---------------------------------------------------------------- reads
    def ids(self, study_id: int,
            states: Sequence[str] | None = None) -> list[tuple[int, int, str]]:
        wanted = None if states is None else tuple(TrialState[s] for s in states)
        trials = self._storage.get_all_trials(study_id, deepcopy=False, states=wanted)
        # The storage id Optuna keys trials by, through its public lookup (one dictionary read
        # once the log is replayed) rather than FrozenTrial's private attribute.
        lookup = self._storage.get_trial_id_from_study_id_trial_number
        return [(lookup(study_id, t.number), t.number, t.state.name) for t in trials]

    def finished_ids(self, study_id: int) -> list[int]:
        return [i for i, _, _ in self.ids(study_id, [s.name for s in TrialState
                                                     if s.is_finished()])]

    def summaries(self, study_id: int, keys: Collection[str]) -> list[TrialSummary]:
        """From the replayed log (in memory): the trials as Optuna holds them, not copied."""
        trials = self._storage.get_all_trials(study_id, deepcopy=False)
        return [TrialSummary(t.number, t.state.name, None if t.values is None else
                             list(t.values),
                             {k: t.user_attrs[k] for k in keys if k in t.user_attrs})
                for t in trials]

    # ---------------------------------------------------------------- writes
    def create(
        self,
        tx: Any,
        study_id: int,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        attrs: Mapping[str, Any],
        *,
        waiting: bool = False,
        trial_dir: Callable[[int], Path] | None = None,
    ) -> tuple[int, int]:
        # Under the lock, after a read to the end of the log: the number Optuna will give
        # the trial is how many the study has now.
        number = len(self._storage.get_all_trials(study_id, deepcopy=False))
        if trial_dir is not None:
            attrs = {**attrs, "trial_dir": str(trial_dir(number))}
        template = FrozenTrial(
            number=number, state=TrialState.WAITING if waiting else TrialState.RUNNING,
            value=None, datetime_start=None if waiting else datetime.now(),
            datetime_complete=None, params=dict(params), distributions=dict(distributions),
            user_attrs=dict(attrs), system_attrs={}, intermediate_values={}, trial_id=-1,
        )
        self._backend.land_with_next()
        trial_id = self._storage.create_new_trial(study_id, template_trial=template)
        got = self._storage.get_trial(trial_id).number
        if got != number:
            raise StorageError(f"trial {got} of the journal {self._backend.path} was "
                               f"numbered {number} when it started: a process wrote the "
                               "journal without its lock")
        return trial_id, number

    def finish(
        self,
        tx: Any,
        trial_id: int,
        state: TrialState,
        values: Sequence[float] | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
        system_attrs: Mapping[str, Any] | None = None,
    ) -> bool:
        if self._storage.get_trial(trial_id).state != TrialState.RUNNING:
            return False
        for step, value in intermediate.items():
            self._storage.set_trial_intermediate_value(trial_id, int(step), float(value))
        for key, value in attrs.items():
            self._storage.set_trial_user_attr(trial_id, key, value)
        for key, value in (system_attrs or {}).items():
            self._storage.set_trial_system_attr(trial_id, key, value)
        # Last: Optuna refuses every change of a finished trial.
        self._storage.set_trial_state_values(
            trial_id, state, None if values is None else [float(v) for v in values])
        return True

    def take(self, tx: Any, trial_id: int, attrs: Mapping[str, Any]) -> bool:
        if self._storage.get_trial(trial_id).state != TrialState.WAITING:
            return False
        # Its answer (whether this process popped the trial) cannot be known before the
        # transaction lands; the check above, under the lock, is what decides.
        self._storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        for key, value in attrs.items():
            self._storage.set_trial_user_attr(trial_id, key, value)
        return True


@dataclass(frozen=True)
class OpenedJournal:
    """A journal opened by :func:`open_journal`: Optuna's storage and spiketune's two
    implementations over it."""

    storage: JournalStorage
    writes: JournalTrials
    records: JournalRecords


def open_journal(path: Path, *, create: bool = False, read_only: bool = False) -> OpenedJournal:
    """The journal ``path`` (created, with ``create``, when missing; its directory must
    exist). :class:`StorageError` naming the file and what is wrong with it otherwise."""
    problem = journal_problem_of_file(path)
    if problem == "missing" and create and not read_only:
        if not path.parent.is_dir():
            raise StorageError(f"the directory {path.parent} of the study journal {path} does "
                               "not exist (make it first; spiketune creates only the file)")
    elif problem is not None:
        raise StorageError(f"the study journal {path} is {problem}")
    lock = JournalLock(path)
    backend = _Backend(path, lock, read_only=read_only)
    storage = JournalStorage(backend)
    records = JournalRecords(path.with_name(path.name + RECORDS_SUFFIX), lock,
                             read_only=read_only)
    return OpenedJournal(storage, JournalTrials(storage, backend, records, lock), records)
