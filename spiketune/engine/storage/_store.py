"""The Optuna study of one experiment, opened through Optuna's public storage API, and the only
code that writes it (:class:`StudyStore`); plus the database-wide lookups of experiments.

Two kinds of storage, one code path: a database (SQLite, PostgreSQL: Optuna's
``RDBStorage``) or a journal file (``journal:///path/study.log``: Optuna's ``JournalStorage``
on a shared disk). :func:`_open_storage` opens either as an :class:`_Opened`: Optuna's
storage, for every read, plus the kind's :class:`~spiketune.engine.storage._base.BaseTrialWrites`
and :class:`~spiketune.engine.storage._base.BaseRecords`, through which :class:`StudyStore`
writes.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from spiketune.engine.storage._base import BaseRecords, BaseTrialWrites, TrialSummary
from spiketune.engine.storage._paths import (
    ExperimentPaths,
    find_experiment,
    read_experiment_json,
)
from spiketune.engine.storage._tables import SpiketuneTables
from spiketune.engine.storage._trials import OptunaTables
from spiketune.engine.storage._urls import (
    PASSWORD_ENV,
    journal_file,
    parse_url,
    read_only_sqlite_url,
    redact_url,
    resolve_url,
    scrub,
    sqlite_file,
    sqlite_url,
    strip_password,
    with_driver,
)
from spiketune.errors import StorageError

__all__ = [
    "ATTR_CONFIG",
    "ATTR_ELAPSED",
    "ATTR_EXPERIMENT_DIR",
    "ATTR_STOP",
    "ATTR_VERSION",
    "StudyMatch",
    "StudyStore",
    "Unfinished",
    "database_problem",
    "experiment_location",
    "find_study",
    "is_transient",
    "list_studies",
    "locate_study",
    "study_file_problem",
]

ATTR_CONFIG = "spiketune_config"
ATTR_VERSION = "spiketune_version"
ATTR_EXPERIMENT_DIR = "experiment_dir"
ATTR_ELAPSED = "elapsed_seconds"
ATTR_STOP = "stop_requested"  # set by `spiketune stop`: every worker of the study stops
#: The name of every in-memory working study (see :meth:`StudyStore.working_study`).
WORKING_STUDY_NAME = "spiketune"

#: Seconds a PostgreSQL connection may take to open, unless the URL gives its own
#: ``connect_timeout`` (libpq's default waits for ever; see :func:`_connect_args`).
CONNECT_TIMEOUT_S = 10

_SQLITE_HEADER = b"SQLite format 3\x00"
#: Databases whose schema version this process has checked (Optuna's check reads its
#: migration scripts: tens of ms, most of opening a study; once per database is enough).
_CHECKED: set[str] = set()


#: File errors of a journal on a network disk worth retrying: the server went away for a
#: moment (a stale handle after a failover, an I/O error or timeout of the mount).
_TRANSIENT_ERRNOS = frozenset({errno.ESTALE, errno.EIO, errno.ETIMEDOUT, errno.EAGAIN,
                               errno.EINTR, errno.ENOLCK})


#: SQLite's words for errors that waiting does not cure, though its driver raises them as
#: operational errors like a lock: a full disk, a file it may not write, a damaged file.
_PERMANENT = ("database or disk is full", "attempt to write a readonly database",
              "database disk image is malformed")


def is_transient(error: BaseException) -> bool:
    """True for a storage error worth retrying: a lost connection, a timeout, a lock; for a
    journal, a network disk's passing file errors (:data:`_TRANSIENT_ERRNOS`)."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sa.exc.DBAPIError) and any(
                words in str(e.orig) for words in _PERMANENT):
            return False
        if isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sa.exc.OperationalError | sa.exc.InterfaceError
                      | sa.exc.DisconnectionError | sa.exc.TimeoutError):
            return True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return True
        e = e.__cause__ or e.__context__
    return False


def study_file_problem(path: Path, *, tables: bool = False) -> str | None:
    """What keeps the SQLite file ``path`` from being a study, in a few words (``missing``,
    ``empty (0 bytes)``, ``not an SQLite database``...), or None when it looks like one.
    Reads its first 16 bytes at most; never creates or changes it. ``tables``: a file that
    looks like a database is also opened read-only and looked into (``a database of no
    study``: its experiment's creation was interrupted; ``not a study database``: without
    Optuna's tables)."""
    try:
        if not path.exists():
            return "missing"
        if path.is_dir():
            return "a directory, not a file"
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if not header:
        return "empty (0 bytes)"
    if header != _SQLITE_HEADER:
        return "not an SQLite database"
    if tables:
        url = read_only_sqlite_url(path)
        problem = _tables_problem(url, {"connect_args": _connect_args(url, read_only=True)})
        return {_NO_STUDY: "a database of no study (its experiment's creation was interrupted)",
                _NOT_OPTUNA: "not a study database (no Optuna tables)"}.get(problem or "")
    return None


@dataclass(frozen=True)
class Unfinished:
    """A RUNNING or WAITING trial of the study, with its heartbeat (what a sweep looks at)."""

    trial_id: int  # Optuna's storage id of the trial
    number: int
    waiting: bool
    owner: str | None  # "host:pid/token" of the scheduler running it; None without a heartbeat
    beat_at: float | None  # its last heartbeat, in the owner's clock (time.time())


# ==================================================================== opening a database
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (``spiketune trials`` in another terminal) run beside the scheduler;
    # synchronous=NORMAL drops the per-commit fsync (a process crash still loses nothing).
    # Switching a new file to WAL takes a lock that SQLite may refuse at once while another
    # process creates the tables; the file keeps the mode once one connection has set it.
    cursor = dbapi_connection.cursor()
    deadline = time.monotonic() + 30.0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as e:  # sqlite3.OperationalError: database is locked
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _where(url: str) -> str:
    """How a message names the database: a SQLite file or a journal by its path, another by
    its URL without the password."""
    journal = journal_file(url)
    if journal is not None:
        return f"the study journal {journal}"
    path = sqlite_file(url)
    return f"the study database {path}" if path is not None else redact_url(url)


def _driver_message(error: BaseException, url: str) -> str:
    """The driver's own words (without SQLAlchemy's SQL echo and links, even when Optuna
    wrapped the error), first line only, password masked."""
    source: BaseException = error
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sa.exc.DBAPIError) and e.orig is not None:
            source = e.orig
            break
        e = e.__cause__ or e.__context__
    text = str(source).strip().splitlines()
    return scrub(text[0] if text else type(source).__name__, url)


#: The database's own errors: what a read of an open study translates (see
#: :meth:`StudyStore.reading`), leaving any other error as it is.
_DATABASE_ERRORS = (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


@contextlib.contextmanager
def _storage_errors(
    url: str, what: str, kinds: tuple[type[Exception], ...] = (Exception,)
) -> Iterator[None]:
    """Driver errors (missing driver, unreachable server, corrupt file...) of the ``kinds``
    given become one :class:`StorageError` naming the database (never its password) and
    the problem."""
    try:
        yield
    except StorageError:
        raise
    except kinds as e:
        raise StorageError(f"{what} {_where(url)}: {_driver_message(e, url)}") from None


def database_problem(error: BaseException) -> str | None:
    """What a command says of a database error nothing before it translated (a damaged
    page of a SQLite file met in the middle of a session): the driver's words, password
    masked; None for an error that is not the database's."""
    if not isinstance(error, _DATABASE_ERRORS):
        return None
    text = _driver_message(error, "")
    for name in (PASSWORD_ENV, "PGPASSWORD"):  # a password a driver could echo
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return f"the study database failed: {text}"


def _connect_args(url: str, *, read_only: bool) -> dict[str, Any]:
    """The driver's connection arguments for the database ``url`` (password resolved, driver
    named). SQLite waits up to 60 s for a lock. PostgreSQL gives up a connection after
    :data:`CONNECT_TIMEOUT_S` unless the URL sets its own ``connect_timeout``: libpq's default,
    0, waits for ever on a server that accepts the connection and never answers (a stuck
    server or pooler, a half-open NAT path), and every command with it. ``read_only``: a
    PostgreSQL session whose transactions are read-only (SQLite's is in its URL)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"timeout": 60}
    args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        if "connect_timeout" not in parsed.query:
            args["connect_timeout"] = CONNECT_TIMEOUT_S
        if read_only and "options" not in parsed.query:
            args["options"] = "-c default_transaction_read_only=on"
    return args


def _connect_timeout(error: BaseException, url: str,
                     engine_kwargs: dict[str, Any]) -> str | None:
    """What to say of ``error`` when it is a connection that timed out (psycopg's
    ``ConnectionTimeout``, psycopg2's ``timeout expired``): the server, by host and port, and
    the seconds waited; None for any other error."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__name__ == "ConnectionTimeout" or (
                isinstance(e, sa.exc.OperationalError) and "timeout expired" in str(e.orig)):
            break
        e = e.__cause__ or e.__context__
    else:
        return None
    parsed = parse_url(url)
    seconds = engine_kwargs.get("connect_args", {}).get(
        "connect_timeout", parsed.query.get("connect_timeout"))
    port = f":{parsed.port}" if parsed.port else ""
    return (f"cannot open {redact_url(url)}: no answer from {parsed.host}{port} within "
            f"{seconds} s (connect_timeout: a stuck server or connection pooler, or a lost "
            "network path; ?connect_timeout=SECONDS in the URL waits longer)")


def _open_rdb(url: str, *, create: bool = False, read_only: bool = False,
              study: str | None = None) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage for ``url``: password resolved, SQLite tuned, schema checked once.

    A SQLite file must exist and look like a database unless ``create``. ``read_only``: the
    driver refuses every write (SQLite ``mode=ro``, PostgreSQL read-only transactions) and
    no table is created, so reading never changes, or creates, a database; a database that
    holds no study is said to be one (naming ``study``, the one looked for), not the
    driver's refusal of the writes Optuna's opening would make in it.
    """
    parse_url(url)  # refuses what cannot be used, without quoting it
    path = sqlite_file(url)
    if path is not None and not create:
        problem = study_file_problem(path)
        if problem is not None:
            raise StorageError(f"the study database {path} is {problem}")
    if path is not None and create and not path.parent.is_dir():
        what = "is not a directory" if path.parent.exists() else "does not exist"
        raise StorageError(f"the study database {path} cannot be created: its directory "
                           f"{path.parent} {what}")
    full = with_driver(resolve_url(url))
    if path is not None and read_only:
        full = read_only_sqlite_url(path)
    kwargs: dict[str, Any] = {"connect_args": _connect_args(full, read_only=read_only)}
    new_file = path is not None and not path.exists()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Workers starting at once on a new database race to create Optuna's tables (and, on
    # SQLite, to switch the file to WAL: a lock that SQLite refuses at once rather than waits
    # for); the losers find them made on a later try. Under load the race can last seconds.
    deadline = time.monotonic() + 30.0
    for attempt in itertools.count():
        try:
            rdb = optuna.storages.RDBStorage(
                full, engine_kwargs=kwargs, skip_table_creation=read_only,
                skip_compatibility_check=full in _CHECKED or new_file,
            )
            break
        except Exception as e:
            timeout = _connect_timeout(e, url, kwargs)
            if timeout is not None:  # waiting again would only wait as long again
                raise StorageError(timeout) from None
            problem = _tables_problem(full, kwargs) if read_only else None
            if problem is not None:
                raise StorageError(_no_study(url, study) if problem == _NO_STUDY
                                   else f"{_where(url)} {problem}") from None
            if read_only or not isinstance(e, sa.exc.DatabaseError):
                raise
            # A lock is waited out; anything else (a file that is no database) fails fast.
            locked = "locked" in str(e)
            if (time.monotonic() > deadline) if locked else attempt >= 4:
                raise
            time.sleep(min(1.0, 0.1 * (attempt + 1)))
    _CHECKED.add(full)
    if rdb.engine.name == "sqlite" and not read_only:
        sa.event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()  # reconnect so every pooled connection gets the pragmas
    return rdb


#: What a database of Optuna's tables and no study is: an experiment whose creation was cut
#: short (killed before its study was written), so that nothing was recorded in it.
_NO_STUDY = ("holds no study: the experiment's creation was interrupted before anything was "
             "recorded, so run its configuration again")
_NOT_OPTUNA = "holds no Optuna study (it was not written by spiketune or Optuna)"


def _no_study(url: str, study: str | None) -> str:
    """The message for a database of no study (:data:`_NO_STUDY`), naming ``study`` if given."""
    if study is None:
        return f"{_where(url)} {_NO_STUDY}"
    return f"no study {study!r} in {_where(url)}; it {_NO_STUDY}"


def _tables_problem(url: str, engine_kwargs: dict[str, Any]) -> str | None:
    """Why the database ``url`` holds no study, read without writing: :data:`_NO_STUDY` for
    Optuna's tables without a study in them (a creation killed early, perhaps before Optuna
    had recorded its schema version, which a read-only opening cannot write for it),
    :data:`_NOT_OPTUNA` without Optuna's tables; None when it holds a study, or when that
    cannot be told."""
    try:
        engine = sa.create_engine(url, **engine_kwargs)
        try:
            tables = set(sa.inspect(engine).get_table_names())
            if "studies" in tables:
                with engine.connect() as conn:
                    count = conn.execute(sa.text("SELECT count(*) FROM studies")).scalar()
                return _NO_STUDY if count == 0 else None
            return _NOT_OPTUNA if "version_info" not in tables else None
        finally:
            engine.dispose()
    except Exception:
        return None


@dataclass(frozen=True)
class _Opened:
    """A storage opened by :func:`_open_storage`: Optuna's storage (every read goes through
    its public API) and factories of the kind's trial writes (``check_version``: for a
    writer) and records (``create``: a writer may make what is missing)."""

    storage: optuna.storages.BaseStorage
    writes: Callable[[bool], BaseTrialWrites]
    records: Callable[[bool], BaseRecords]
    close: Callable[[], None]


def _open_storage(url: str, *, create: bool = False, read_only: bool = False,
                  study: str | None = None) -> _Opened:
    """The storage ``url`` names: a journal file, or a database (:func:`_open_rdb`). Either
    must exist unless ``create``; ``read_only`` never writes, or creates, anything.
    ``study``: the study looked for, named if the database holds none."""
    path = journal_file(url)
    if path is not None:
        from spiketune.engine.storage._journal import open_journal

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        journal = open_journal(path, create=create, read_only=read_only)
        return _Opened(journal.storage, lambda _check: journal.writes,
                       lambda _create: journal.records, lambda: None)
    rdb = _open_rdb(url, create=create, read_only=read_only, study=study)

    def close() -> None:
        rdb.remove_session()
        rdb.engine.dispose()

    return _Opened(rdb, lambda check: OptunaTables(rdb, check_version=check),
                   lambda create: SpiketuneTables(rdb.engine, create=create), close)


def _directions(direction: str | Sequence[str]) -> list[optuna.study.StudyDirection]:
    names = [direction] if isinstance(direction, str) else list(direction)
    return [optuna.study.StudyDirection.MAXIMIZE if d == "maximize"
            else optuna.study.StudyDirection.MINIMIZE for d in names]


# ==================================================================== experiments of a database
def _studies(storage: optuna.storages.BaseStorage) -> list[tuple[int, str, dict[str, Any]]]:
    """(study id, name, user attributes) of each spiketune study, oldest first."""
    out = []
    for s in storage.get_all_studies():
        if ATTR_CONFIG in s.user_attrs:
            out.append((storage.get_study_id_from_name(s.study_name), s.study_name,
                        dict(s.user_attrs)))
    return sorted(out, key=lambda entry: entry[0])


def list_studies(url: str) -> list[dict[str, Any]]:
    """The spiketune experiments stored in the database ``url``: ``{"id", "config", ...}``
    (their study user attributes), oldest first. Opens it read-only."""
    with _storage_errors(url, "cannot read the studies of"):
        opened = _open_storage(url, read_only=True)
        try:
            studies = _studies(opened.storage)
        finally:
            opened.close()
    return [dict(attrs, id=name) for _, name, attrs in studies]


@dataclass(frozen=True)
class StudyMatch:
    """The experiment a reference found in a database, and what to tell the user about the
    choice (set when several experiments share the name given)."""

    experiment_id: str
    notice: str | None = None


def locate_study(url: str, ref: str) -> StudyMatch:
    """The experiment ``ref`` names in the database ``url``, tried in this order: an
    experiment id; an experiment name registered by workers; the name in an experiment's
    stored configuration (the most recent of that name, with a notice when there are
    several); a unique id prefix. Opens the database read-only; :class:`StorageError`
    otherwise."""
    with _storage_errors(url, "cannot look up experiments in"):
        opened = _open_storage(url, read_only=True)
        try:
            registered = opened.records(False).registered(ref)
            studies = _studies(opened.storage)
        finally:
            opened.close()
    ids = [name for _, name, _ in studies]
    if ref in ids:
        return StudyMatch(ref)
    if registered is not None and registered in ids:
        return StudyMatch(registered)
    named = [name for _, name, attrs in studies
             if isinstance(attrs.get(ATTR_CONFIG), dict) and attrs[ATTR_CONFIG].get("name") == ref]
    if named:
        notice = None
        if len(named) > 1:
            others = ", ".join(reversed(named[:-1]))
            notice = (f"{len(named)} experiments are named {ref!r}; using the most recent, "
                      f"{named[-1]}. Name another by its id: {others}")
        return StudyMatch(named[-1], notice)
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return StudyMatch(matches[0])
    where = redact_url(url)
    if matches:
        raise StorageError(f"experiment {ref!r} is ambiguous in {where}: {', '.join(matches[:5])}")
    raise StorageError(f"no experiment {ref!r} in {where} (no such id, name or id prefix)")


def find_study(url: str, ref: str) -> str:
    """The id of the experiment ``ref`` in the database ``url`` (see :func:`locate_study`,
    whose notice this leaves out)."""
    return locate_study(url, ref).experiment_id


def experiment_location(experiment: str | Path,
                        storage: str | None = None) -> tuple[Path | None, str, str]:
    """Where the study of ``experiment`` is: ``(its directory here or None, experiment id,
    database URL)``, for readers (results, the dashboard).

    ``experiment`` is a directory, id, name or id prefix (:func:`find_experiment`); the URL
    is ``storage``, else the one its ``experiment.json`` records, else its ``study.db``.
    With ``storage``, an experiment that has no directory here is looked up in that database
    (:func:`find_study`).
    """
    try:
        directory = find_experiment(experiment)
    except StorageError:
        if storage is None:
            raise
        return None, find_study(storage, str(experiment)), storage
    paths = ExperimentPaths(directory)
    meta = read_experiment_json(paths.experiment_json)
    return directory, meta["id"], storage or meta.get("storage") or sqlite_url(paths.study_db)


# ==================================================================== one study
class StudyStore:
    """The Optuna study of one experiment. The scheduler is the only caller of its write methods.

    Lifecycle: :meth:`open` (creating the study when asked, or read-only) or
    :meth:`join_or_create` (workers) → reads and, for the scheduler, :meth:`claim` /
    :meth:`start_trial` / :meth:`beat` / :meth:`finish_trial` / :meth:`fail_lost` /
    :meth:`take_waiting` / :meth:`set_study_attr` → :meth:`close`.

    Reads go through Optuna's public storage API. A trial's start, its end and a lost trial's
    retry are each one transaction (see :mod:`spiketune.engine.storage._trials` for why, and
    what keeps it equal to what Optuna writes). Writes that end a trial survive a short loss
    of the database: they are retried with backoff for up to ``retry_seconds`` and land
    exactly once (a retry after a commit whose answer was lost finds the trial recorded and
    stops).
    """

    #: Seconds a write is retried after a lost connection before the error is raised.
    retry_seconds: float = 60.0

    def __init__(self, opened: _Opened, study_name: str, study_id: int, *,
                 url: str, read_only: bool = False) -> None:
        self.url = strip_password(url)  # for messages; never holds the password
        self._given_url = url  # may hold the password: used to mask it in driver errors only
        self.study_name = study_name
        self.read_only = read_only
        self._opened = opened
        self._rdb = opened.storage  # Optuna's storage: RDBStorage or JournalStorage
        self._study_id = study_id
        self._spiketune: BaseRecords | None = None
        self._optuna_tables: BaseTrialWrites | None = None
        self._ids: dict[int, int] = {}  # trial number -> storage id (never changes)
        # host:pid/token: the token tells two stores of one process apart (workers in threads)
        self._owner = f"{socket.gethostname()}:{os.getpid()}/{secrets.token_hex(3)}"

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        url: str,
        study_name: str,
        *,
        create: bool = False,
        direction: str | Sequence[str] = "maximize",
        read_only: bool = False,
    ) -> StudyStore:
        """Open the study (``create=True``: create it, failing if it exists, with one
        ``direction`` or a list of them, one per objective; ``read_only=True``: for reading,
        the database is never changed or created).

        Raises :class:`StorageError` when the database cannot be reached, is missing or is
        not a study database, or the study is missing (or already there, for ``create``).
        """
        if create and read_only:
            raise StorageError("a study cannot be created read-only")
        with _storage_errors(url, "cannot open"):
            opened = _open_storage(url, create=create, read_only=read_only,
                                   study=study_name)
            rdb = opened.storage
            try:
                if create:
                    study_id = rdb.create_new_study(_directions(direction), study_name)
                else:
                    study_id = rdb.get_study_id_from_name(study_name)
            except optuna.exceptions.DuplicatedStudyError:
                opened.close()
                raise StorageError(
                    f"study {study_name!r} already exists in {_where(url)}") from None
            except KeyError:
                empty = not rdb.get_all_studies()
                opened.close()
                raise StorageError(_no_study(url, study_name) if empty else
                                   f"no study {study_name!r} in {_where(url)}") from None
            store = cls(opened, study_name, study_id, url=url, read_only=read_only)
            if not read_only:  # tables made before schedulers race; Optuna's schema checked
                store._tables()
                store._optuna()
        return store

    @classmethod
    def join_or_create(
        cls,
        url: str,
        name: str,
        new_id: str,
        *,
        direction: str | Sequence[str],
        attrs: Mapping[str, Any],
    ) -> tuple[StudyStore, bool]:
        """The study registered under the experiment ``name`` in ``url``, or a new one.

        The first worker creates study ``new_id`` with its user ``attrs`` and then registers
        ``name -> new_id`` (a primary key); a worker that loses that race deletes the study it
        made and joins the winner's. Returns (store, created).
        """
        with _storage_errors(url, "cannot open"):
            opened = _open_storage(url, create=True)
            rdb = opened.storage
            tables = opened.records(True)
            existing = tables.registered(name)
            created = False
            if existing is None:
                study_id = rdb.create_new_study(_directions(direction), new_id)
                for key, value in attrs.items():
                    rdb.set_study_user_attr(study_id, key, value)
                if tables.register(name, new_id):
                    existing, created = new_id, True
                else:
                    rdb.delete_study(study_id)
                    existing = tables.registered(name)
            if existing is None:  # registrations are never deleted: a broken database
                raise StorageError(f"experiment {name!r} could not be registered in "
                                   f"{redact_url(url)}")
            try:
                study_id = rdb.get_study_id_from_name(existing)
            except KeyError:
                raise StorageError(
                    f"experiment {name!r} is registered in {redact_url(url)} as {existing!r}, "
                    "but that study is gone; give the workers another name"
                ) from None
            store = cls(opened, existing, study_id, url=url)
            store._spiketune = tables
            store._optuna()
        return store, created

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._opened.close()

    @property
    def owner(self) -> str:
        """``host:pid/token``: who holds the heartbeats of this store's trials (see
        :func:`~spiketune.engine.storage.parse_owner`)."""
        return self._owner

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """Optuna's storage of the study (``RDBStorage`` or ``JournalStorage``), for
        public-API readers (the dashboard)."""
        return self._rdb

    @property
    def study_id(self) -> int:
        """The study's id in Optuna's storage."""
        return self._study_id

    # ---------------------------------------------------------------- reads
    @property
    def direction(self) -> str:
        """The direction of the (first) objective."""
        return self.directions[0]

    @property
    def directions(self) -> list[str]:
        """One direction per objective."""
        maximize = optuna.study.StudyDirection.MAXIMIZE
        return ["maximize" if d == maximize else "minimize"
                for d in self._rdb.get_study_directions(self._study_id)]

    def reading(self) -> contextlib.AbstractContextManager[None]:
        """Database errors met while reading (a damaged page of a SQLite file, a server
        gone) as one :class:`StorageError` naming the database and the driver's words; for
        what reads before any retry could judge them (the reading commands, a resumed
        session's recovery of its interrupted trials)."""
        return _storage_errors(self._given_url, "cannot read the study in", _DATABASE_ERRORS)

    def study_attrs(self) -> dict[str, Any]:
        return self._rdb.get_study_user_attrs(self._study_id)

    def trials(self) -> list[FrozenTrial]:
        """Every trial of the study, by number (fresh from the database)."""
        return self._rdb.get_all_trials(self._study_id, deepcopy=False)

    def trial(self, trial_id: int) -> FrozenTrial:
        return self._rdb.get_trial(trial_id)

    def summaries(self, keys: Collection[str]) -> list[TrialSummary]:
        """Every trial's number, state, values and the user attributes among ``keys``, by
        number (fresh from the database): one light read, for what needs no more of them
        (the count and best value ``spiketune ls`` shows)."""
        return self._optuna().summaries(self._study_id, keys)

    def trial_id(self, trial: FrozenTrial | int) -> int:
        """The storage id of ``trial`` (a trial of this study, or its number): what
        :meth:`finish_trial`, :meth:`beat` and the heartbeats use. Cached; the first miss
        reads the ids of every trial of the study at once."""
        number = trial if isinstance(trial, int) else trial.number
        found = self._ids.get(number)
        if found is None:
            self._read_ids()
            found = self._ids.get(number)
        if found is None:
            found = self._rdb.get_trial_id_from_study_id_trial_number(self._study_id, number)
            self._ids[number] = found
        return found

    def _read_ids(self, states: Sequence[str] | None = None) -> list[tuple[int, int, str]]:
        rows = self._optuna().ids(self._study_id, states)
        self._ids.update((number, tid) for tid, number, _ in rows)
        return rows

    def claims_used(self) -> int:
        """How many trials have been allowed to start, by any scheduler, ever."""
        return self._tables().count(self.study_name)

    def new_finished_trials(self, known: set[int]) -> list[FrozenTrial]:
        """Finished trials whose ids are not in ``known`` (other schedulers' trials), by
        number: one light query for the ids, then each new trial read whole."""
        ids = self._optuna().finished_ids(self._study_id)
        return [self._rdb.get_trial(i) for i in ids if i not in known]

    def consistent_reads(self) -> contextlib.AbstractContextManager[Any]:
        """A block whose reads see a new trial and its first heartbeat together (a lock held
        on a journal; nothing to do on a database). For readers that decide from both, e.g.
        that a RUNNING trial without an owner was interrupted. A read-only store takes no
        lock (reading never writes, not even a lock file) and decides nothing from them."""
        if self.read_only:
            return contextlib.nullcontext()
        return self._optuna().consistent()

    def unfinished(self) -> list[Unfinished]:
        """The study's RUNNING and WAITING trials with their heartbeats."""
        with self.consistent_reads():
            rows = self._read_ids((TrialState.RUNNING.name, TrialState.WAITING.name))
            beats = self._tables().beats(self.study_name) if rows else {}
        out = []
        for tid, number, state in rows:
            owner, beat_at = beats.get(tid, (None, None))
            out.append(Unfinished(tid, number, state == TrialState.WAITING.name, owner, beat_at))
        return out

    def working_study(
        self,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        trials: list[FrozenTrial],
    ) -> optuna.Study:
        """An in-memory study holding ``trials`` (finished ones), for fast sampling and pruning.

        Named, always alike: Optuna's Hyperband puts each trial in a bracket by a hash of the
        study's name and the trial's number, so a name drawn anew each time (Optuna's default)
        would give the same seed other brackets, other pruning and, under BOHB, other draws;
        and the schedulers of one study (a resumed session, workers) would disagree."""
        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            sampler=sampler,
            pruner=pruner,
            directions=self.directions,
            study_name=WORKING_STUDY_NAME,
        )
        study.add_trials([t for t in trials if t.state.is_finished()])
        return study

    # ---------------------------------------------------------------- writes (scheduler only)
    def _tables(self) -> BaseRecords:
        if self._spiketune is None:
            self._spiketune = self._opened.records(not self.read_only)
        return self._spiketune

    def _optuna(self) -> BaseTrialWrites:
        if self._optuna_tables is None:
            self._optuna_tables = self._opened.writes(not self.read_only)
        return self._optuna_tables

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise StorageError(f"{what}: the study {self.study_name!r} was opened read-only")

    def _retrying(self, what: str, write: Callable[[], Any],
                  landed: Callable[[], bool] | None = None) -> Any:
        """Run ``write``, again after transient database errors (backoff up to
        :attr:`retry_seconds`). ``landed``: after a retry whose write found nothing to do,
        says whether an earlier try committed after all (then the write counts as done)."""
        self._writable(what)
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        retried = False
        while True:
            try:
                result = write()
            except Exception as e:
                if not is_transient(e) or time.monotonic() + delay > deadline:
                    if is_transient(e):
                        raise StorageError(f"{what}: the database at {self.url} did not "
                                           f"answer for {self.retry_seconds:g} s: "
                                           f"{_driver_message(e, self._given_url)}") from None
                    if isinstance(e, _DATABASE_ERRORS):  # a full disk: which database
                        raise StorageError(f"{what}: {_where(self._given_url)}: "
                                           f"{_driver_message(e, self._given_url)}") from e
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                retried = True
                continue
            if result is False and retried and landed is not None and landed():
                return True
            return result

    def claim(self, limit: int | None) -> int | None:
        """Claim the next sequence id (the right to start one trial); ``None`` once ``limit``
        are claimed."""
        self._writable("claiming a sequence id")
        return self._tables().claim(self.study_name, limit, self._owner)

    def claims(self) -> dict[int, str]:
        """Every claimed sequence id of the study, with the owner (``host:pid/token``) holding
        the claim."""
        return self._tables().claims_of(self.study_name)

    def take_claim(self, sequence_id: int, owner: str) -> bool:
        """Take over the claim of ``sequence_id`` from ``owner``, a scheduler that died
        between claiming it and starting its trial; True if ``owner`` still held it (of
        schedulers racing for it, one gets it)."""
        self._writable("taking over a claim")
        tables = self._tables()
        return bool(self._retrying(
            "taking over a claim",
            lambda: tables.take_claim(self.study_name, sequence_id, owner, self._owner),
            lambda: tables.claims_of(self.study_name).get(sequence_id) == self._owner,
        ))

    def set_study_attr(self, key: str, value: Any) -> None:
        writes = self._optuna()
        self._retrying(f"study attribute {key}",
                       lambda: writes.set_study_attr(self._study_id, key, value))

    def start_trial(
        self,
        params: Mapping[str, Any],
        distributions: Mapping[str, Any],
        attrs: Mapping[str, Any],
        trial_dir: Callable[[int], Path] | None = None,
    ) -> tuple[int, int]:
        """Record a RUNNING trial with its Optuna parameters, ``attrs`` and its first heartbeat,
        in one transaction; ``(trial_id, number)``. ``trial_dir(number)`` is stored as the
        ``trial_dir`` attribute."""
        optuna_tables, tables = self._optuna(), self._tables()

        def write() -> tuple[int, int]:
            with optuna_tables.begin() as conn:
                tid, number = optuna_tables.create(conn, self._study_id, params, distributions,
                                                   attrs, trial_dir=trial_dir)
                tables.insert_beat(conn, self.study_name, tid, self._owner)
            return tid, number

        tid, number = self._retrying("starting a trial", write)
        self._ids[number] = tid
        return tid, number

    def beat(self, trial_ids: Collection[int]) -> set[int]:
        """Renew the heartbeats of this scheduler's running trials. Returns the ids that have
        lost theirs: trials another worker recorded as lost (their results are not wanted)."""
        self._writable("heartbeat")
        return self._tables().beat(trial_ids)

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        value: float | Sequence[float] | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
        system_attrs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record how a trial ended: state, value (a list: one per objective), intermediate
        values, user attributes and ``system_attrs`` (Optuna's constraint values, see
        :func:`spiketune.engine.outcome.stored_form`) at once, and drop its heartbeat.
        Returns False, writing nothing, when the trial is no longer running (another worker
        recorded it lost)."""
        optuna_tables, tables = self._optuna(), self._tables()
        values = None if value is None else [value] if isinstance(value, int | float) \
            else list(value)

        def write() -> bool:
            with optuna_tables.begin() as conn:
                if not optuna_tables.finish(conn, trial_id, state, values, attrs, intermediate,
                                            system_attrs):
                    return False
                tables.delete_beat(conn, trial_id)
            return True

        def landed() -> bool:
            t = self.trial(trial_id)
            return t.state == state and all(
                t.user_attrs.get(k) == json.loads(json.dumps(v)) for k, v in attrs.items())

        return bool(self._retrying("recording a trial's end", write, landed))

    def fail_lost(
        self,
        trial: FrozenTrial,
        attrs: Mapping[str, Any],
        retry_attrs: Mapping[str, Any] | None,
        intermediate: Mapping[int, float] | None = None,
    ) -> int | None:
        """Record the RUNNING ``trial`` FAILED with ``attrs`` and, with ``retry_attrs``, queue
        its retry: a WAITING trial with the same parameters and those attributes. One
        transaction, so a lost trial is never left without its retry. Returns the retry's
        number (-1 without a retry), or None when the trial was no longer running (another
        worker recorded it first)."""
        optuna_tables, tables = self._optuna(), self._tables()
        trial_id = self.trial_id(trial)

        def write() -> int | None:
            with optuna_tables.begin() as conn:
                if not optuna_tables.finish(conn, trial_id, TrialState.FAIL, None, attrs,
                                            intermediate or {}):
                    return None
                tables.delete_beat(conn, trial_id)
                if retry_attrs is None:
                    return -1
                tid, number = optuna_tables.create(conn, self._study_id, trial.params,
                                                   trial.distributions, retry_attrs,
                                                   waiting=True)
            self._ids[number] = tid
            return number

        return self._retrying("recording a lost trial", write)

    def take_waiting(self, trial_dir: Callable[[int], Path]) -> FrozenTrial | None:
        """Take the first WAITING trial (a queued retry) and start it as this scheduler's:
        RUNNING, with a heartbeat and its ``trial_dir(number)`` attribute, in one transaction.
        None when there is none left (the change of state is conditional, so each is taken
        once, by one worker)."""
        self._writable("taking a queued trial")
        optuna_tables, tables = self._optuna(), self._tables()
        for tid, number, _ in self._read_ids((TrialState.WAITING.name,)):
            def write(tid: int = tid, number: int = number) -> bool:
                with optuna_tables.begin() as conn:
                    if not optuna_tables.take(conn, tid, {"trial_dir": str(trial_dir(number))}):
                        return False
                    tables.insert_beat(conn, self.study_name, tid, self._owner)
                return True

            if self._retrying("taking a queued trial", write):
                return self._rdb.get_trial(tid)
        return None
