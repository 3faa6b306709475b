"""Where an experiment lives: its directory, its Optuna study, and the only code that writes it.

Layout (read by reports, dashboards and workers; do not change lightly)::

    <root>/<experiment id>/    root: $SPIKETUNE_EXPERIMENTS or ~/spiketune-experiments
        experiment.json        id, name, created, storage URL (null: study.db here), config
        study.db               the Optuna study (SQLite, WAL journal), unless storage= is given
        scheduler.json         pid, host and status of the scheduler running it (or last to)
        workers/<host>.<pid>.json   the same, for each worker (spiketune worker) run here
        stop                   present while a stop is requested (``spiketune stop``)
        trials/<number>/       parameter.json, metrics.jsonl, stdout.log, stderr.log,
                               process.json

One Optuna study per experiment, named after the experiment id. Study user attributes:
``spiketune_config``, ``spiketune_version``, ``experiment_dir``, ``elapsed_seconds``. Trial user
attributes: ``parameters``, ``metrics``, ``intermediate``, ``outcome``, ``reason``, ``trial_dir``,
``sequence_id``. Read them through :mod:`spiketune.engine.results`, never through Optuna directly.

Speed: the scheduler samples and prunes on an in-memory copy of the study
(:meth:`StudyStore.working_study`) and writes each trial to the database twice: once when it
starts (one transaction with its parameters) and once when it ends (one transaction with its
state, value, intermediate values and attributes). That keeps an in-process trial to a few
milliseconds of storage work where Optuna's call-per-field path costs about 25 ms.

Budget: ``max_trials`` is enforced by *claims*: a trial may start only after inserting row ``k``
into the ``spiketune_claims`` table of the same database, where ``k`` is the number of claims so
far and ``(study_name, k)`` is a primary key. Two schedulers sharing the study cannot both insert
the same ``k``, so between them they never start more than ``max_trials`` trials. The claim
number is the trial's sequence id.

Workers: every running trial has a row in ``spiketune_heartbeats`` that its scheduler renews;
a trial whose heartbeat stops is recorded FAILED (worker lost) by whichever scheduler notices
(:meth:`StudyStore.fail_lost`), in the same transaction as its retry, a WAITING trial with the
same parameters and sequence id that the next free scheduler takes
(:meth:`StudyStore.take_waiting`).
A retry re-runs a lost slot: it does not claim a new one. ``spiketune_experiments`` maps an
experiment name to its study, so that workers given one configuration join one study.

Credentials: URLs are stored and shown without their password (:func:`strip_password`,
:func:`redact_url`); the password comes from the URL given in this process, from
``$SPIKETUNE_DB_PASSWORD``, from the file named by ``$SPIKETUNE_DB_PASSWORD_FILE``, or from
libpq's own ``PGPASSWORD`` / ``~/.pgpass`` (:func:`resolve_url`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from spiketune.errors import StorageError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ATTR_CONFIG",
    "ATTR_ELAPSED",
    "ATTR_EXPERIMENT_DIR",
    "ATTR_STOP",
    "ATTR_VERSION",
    "CREDENTIAL_ENVS",
    "EXPERIMENTS_ENV",
    "PASSWORD_ENV",
    "PASSWORD_FILE_ENV",
    "TRIAL_ATTRS",
    "ExperimentPaths",
    "StudyStore",
    "default_root",
    "find_experiment",
    "is_transient",
    "parse_owner",
    "read_json",
    "read_password_file",
    "redact_url",
    "resolve_url",
    "sqlite_url",
    "strip_password",
    "url_password",
    "with_password",
    "write_json",
]

EXPERIMENTS_ENV = "SPIKETUNE_EXPERIMENTS"

ATTR_CONFIG = "spiketune_config"
ATTR_VERSION = "spiketune_version"
ATTR_EXPERIMENT_DIR = "experiment_dir"
ATTR_ELAPSED = "elapsed_seconds"
ATTR_STOP = "stop_requested"  # set by `spiketune stop`: every worker of the study stops
TRIAL_ATTRS = (
    "parameters",
    "metrics",
    "intermediate",
    "outcome",
    "reason",
    "trial_dir",
    "sequence_id",
)


def default_root() -> Path:
    """Where experiment directories go when the config names none."""
    env = os.environ.get(EXPERIMENTS_ENV)
    return Path(env).expanduser() if env else Path.home() / "spiketune-experiments"


@dataclass(frozen=True)
class ExperimentPaths:
    """The files of one experiment directory."""

    directory: Path

    @property
    def experiment_json(self) -> Path:
        return self.directory / "experiment.json"

    @property
    def study_db(self) -> Path:
        return self.directory / "study.db"

    @property
    def scheduler_json(self) -> Path:
        return self.directory / "scheduler.json"

    @property
    def stop_file(self) -> Path:
        return self.directory / "stop"

    @property
    def trials(self) -> Path:
        return self.directory / "trials"

    @property
    def workers(self) -> Path:
        return self.directory / "workers"

    def worker_json(self, owner: str) -> Path:
        """State file of one worker (``owner`` is ``host:pid/token``) running here."""
        return self.workers / (re.sub(r"[^A-Za-z0-9._-]", ".", owner) + ".json")

    def trial_dir(self, number: int) -> Path:
        return self.trials / str(number)


def find_experiment(ref: str | Path, root: Path | None = None) -> Path:
    """The directory of the experiment ``ref``: a directory path, an id, or a unique id prefix.

    Ids are looked up under ``root`` (default :func:`default_root`). Raises :class:`StorageError`
    naming what was tried.
    """
    path = Path(ref).expanduser()
    if (path / "experiment.json").is_file():
        return path.resolve()
    base = root or default_root()
    exact = base / str(ref)
    if (exact / "experiment.json").is_file():
        return exact.resolve()
    matches = (
        sorted(
            p
            for p in base.iterdir()
            if p.name.startswith(str(ref)) and (p / "experiment.json").is_file()
        )
        if base.is_dir() and "/" not in str(ref)
        else []
    )
    if len(matches) == 1:
        return matches[0].resolve()
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:5])
        raise StorageError(f"experiment {str(ref)!r} is ambiguous under {base}: {names}")
    raise StorageError(
        f"no experiment {str(ref)!r}: not an experiment directory, and no id or id prefix "
        f"under {base} (set {EXPERIMENTS_ENV} or give the directory)"
    )


def parse_owner(owner: str) -> tuple[str, int | None]:
    """``host:pid/token`` (a heartbeat's owner) -> (host, pid or None)."""
    host, _, rest = owner.partition("/")[0].rpartition(":")
    return host, int(rest) if rest.isdigit() else None


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (temporary file, then rename), so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


PASSWORD_ENV = "SPIKETUNE_DB_PASSWORD"
PASSWORD_FILE_ENV = "SPIKETUNE_DB_PASSWORD_FILE"
#: Environment variables that carry database credentials; trial processes never inherit them.
CREDENTIAL_ENVS = (PASSWORD_ENV, PASSWORD_FILE_ENV, "PGPASSWORD", "PGPASSFILE")

_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd)=)([^&#]*)", re.IGNORECASE)
_QUERY_PASSWORD_KEYS = ("password", "passwd", "pwd")


def _without_query_password(url: str) -> tuple[str, str | None]:
    """``url`` without a ``password=`` query parameter, and that password."""
    base, q, query = url.partition("?")
    if not q:
        return url, None
    password = None
    kept = []
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if key.lower() in _QUERY_PASSWORD_KEYS:
            password = value
        else:
            kept.append((key, value))
    if password is None:
        return url, None
    return (base + "?" + urllib.parse.urlencode(kept) if kept else base), password


def _split_url(url: str) -> tuple[str, str, str | None, str] | None:
    """``scheme://user:password@rest`` -> (scheme, user, password or None, rest); None if the
    URL has no credentials part."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    authority_end = len(rest)
    for stop in "/?#":
        i = rest.find(stop)
        if i != -1:
            authority_end = min(authority_end, i)
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" not in authority:
        return None
    creds, _, host = authority.rpartition("@")
    user, colon, password = creds.partition(":")
    return scheme, user, password if colon else None, host + tail


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and files)."""
    parts = _split_url(url)
    if parts is not None and parts[2] is not None:
        scheme, user, _, rest = parts
        url = f"{scheme}://{user}:***@{rest}"
    return _QUERY_PASSWORD.sub(r"\1***", url)


def strip_password(url: str) -> str:
    """``url`` without its password (``postgresql://user@host/db``): the form that is stored."""
    parts = _split_url(url)
    if parts is not None and parts[2] is not None:
        scheme, user, _, rest = parts
        url = f"{scheme}://{user}@{rest}" if user else f"{scheme}://{rest}"
    return _without_query_password(url)[0]


def url_password(url: str) -> str | None:
    """The password written in ``url`` (percent-decoded) or in its query, if any."""
    parts = _split_url(url)
    if parts is not None and parts[2] is not None:
        return urllib.parse.unquote(parts[2])
    return _without_query_password(url)[1]


def with_password(url: str, password: str) -> str:
    """``url`` carrying ``password`` (percent-encoded); for the database driver only."""
    url = strip_password(url)
    parts = _split_url(url)
    quoted = urllib.parse.quote(password, safe="")
    if parts is None:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://:{quoted}@{rest}"
    scheme, user, _, rest = parts
    return f"{scheme}://{user}:{quoted}@{rest}"


def read_password_file(path: str | Path) -> str:
    """The first line of a password file; :class:`StorageError` naming the file otherwise."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise StorageError(f"cannot read the password file {path}: {e.strerror or e}") from e
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise StorageError(f"the password file {path} is empty")
    return lines[0]


def resolve_url(url: str) -> str:
    """The URL to connect with: its own password, else ``$SPIKETUNE_DB_PASSWORD``, else the
    first line of the file named by ``$SPIKETUNE_DB_PASSWORD_FILE`` (``--password-file``);
    else the URL as it is (PostgreSQL's driver then reads ``PGPASSWORD`` or ``~/.pgpass``)."""
    if url.startswith("sqlite") or url_password(url) is not None:
        return url
    password = os.environ.get(PASSWORD_ENV)
    if not password and os.environ.get(PASSWORD_FILE_ENV):
        password = read_password_file(os.environ[PASSWORD_FILE_ENV])
    return with_password(url, password) if password else url


class _Tables:
    """spiketune's own tables, beside Optuna's in the same database.

    * ``spiketune_claims``: one row per trial slot allowed to start (see module docstring).
    * ``spiketune_heartbeats``: one row per running trial, ``beat_at`` rewritten by its
      scheduler every ``heartbeat_interval``; the row goes with the trial's end.
    * ``spiketune_experiments``: experiment name -> id, so workers started with the same
      configuration find (or create, once) the same study.
    """

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._engine = engine
        meta = sa.MetaData()
        self.claims = sa.Table(
            "spiketune_claims",
            meta,
            sa.Column("study_name", sa.String(512), primary_key=True),
            sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("claimed_at", sa.Float, nullable=False),
            sa.Column("owner", sa.String(256), nullable=False),
        )
        self.heartbeats = sa.Table(
            "spiketune_heartbeats",
            meta,
            sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("study_name", sa.String(512), nullable=False, index=True),
            sa.Column("owner", sa.String(256), nullable=False),
            sa.Column("beat_at", sa.Float, nullable=False),
        )
        self.experiments = sa.Table(
            "spiketune_experiments",
            meta,
            sa.Column("name", sa.String(512), primary_key=True),
            sa.Column("experiment_id", sa.String(512), nullable=False),
            sa.Column("created", sa.Float, nullable=False),
        )
        for table in meta.sorted_tables:
            try:
                table.create(engine, checkfirst=True)
            except sa.exc.DatabaseError:
                # Another scheduler created it between our check and our CREATE: fine if it
                # exists now.
                if not sa.inspect(engine).has_table(table.name):
                    raise

    # ---------------------------------------------------------------- claims
    def count(self, study_name: str) -> int:
        sa, t = self._sa, self.claims
        with self._engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(t).where(t.c.study_name == study_name)
            return int(conn.execute(stmt).scalar_one())

    def claim(self, study_name: str, limit: int | None, owner: str) -> int | None:
        """The next free slot, or ``None`` when ``limit`` slots are taken. Safe across processes."""
        sa, t = self._sa, self.claims
        for attempt in range(200):
            try:
                with self._engine.begin() as conn:
                    stmt = sa.select(sa.func.coalesce(sa.func.max(t.c.slot), -1)).where(
                        t.c.study_name == study_name
                    )
                    slot = int(conn.execute(stmt).scalar_one()) + 1
                    if limit is not None and slot >= limit:
                        return None
                    conn.execute(
                        t.insert().values(
                            study_name=study_name, slot=slot, claimed_at=time.time(), owner=owner
                        )
                    )
                    return slot
            except (sa.exc.IntegrityError, sa.exc.OperationalError):
                # Another scheduler took this slot, or held the write lock: try the next one.
                time.sleep(min(0.002 * (attempt + 1), 0.1))
        raise StorageError(f"could not claim a trial slot in study {study_name!r} after 200 tries")

    # ---------------------------------------------------------------- heartbeats
    def beat_rows(self, study_name: str, trial_id: int, owner: str) -> dict[str, Any]:
        return {"trial_id": trial_id, "study_name": study_name, "owner": owner,
                "beat_at": time.time()}

    def beat(self, trial_ids: Collection[int]) -> set[int]:
        """Renew the heartbeats of ``trial_ids``; return those that have no row any more."""
        sa, t = self._sa, self.heartbeats
        ids = list(trial_ids)
        if not ids:
            return set()
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(t).where(t.c.trial_id.in_(ids)).values(beat_at=time.time())
            )
            if done.rowcount == len(ids):
                return set()
            present = conn.execute(sa.select(t.c.trial_id).where(t.c.trial_id.in_(ids)))
            return set(ids) - {int(r[0]) for r in present}

    def beats(self, study_name: str) -> dict[int, tuple[str, float]]:
        """trial id -> (owner, last beat as the owner's time.time()) for the study."""
        sa, t = self._sa, self.heartbeats
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.trial_id, t.c.owner, t.c.beat_at).where(t.c.study_name == study_name)
            )
            return {int(r[0]): (str(r[1]), float(r[2])) for r in rows}

    # ---------------------------------------------------------------- experiments
    def registered(self, name: str) -> str | None:
        sa, t = self._sa, self.experiments
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(t.c.experiment_id).where(t.c.name == name)).first()
        return None if row is None else str(row[0])

    def register(self, name: str, experiment_id: str) -> bool:
        """Record ``name -> experiment_id``; False when the name was registered already."""
        sa, t = self._sa, self.experiments
        try:
            with self._engine.begin() as conn:
                conn.execute(t.insert().values(name=name, experiment_id=experiment_id,
                                               created=time.time()))
        except sa.exc.IntegrityError:
            return False
        return True


class _FastWrites:
    """One-transaction trial writes, in SQL, into Optuna's own tables.

    Optuna's public storage API commits once per field and reads the trial back before each
    write (about 1 ms per field on SQLite); here a trial's start and its end are one short
    transaction each. The tables, their column types and the datetime conversion come from
    Optuna's models (``optuna.storages._rdb.models``), so what is stored is what Optuna would
    store; trial numbers are counted under the same lock Optuna takes. Used only when the
    installed Optuna has every table and column needed; otherwise :class:`StudyStore` falls
    back to the public calls.
    """

    _COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "StudyModel": ("study_id",),
        "TrialModel": ("trial_id", "number", "study_id", "state", "datetime_start",
                       "datetime_complete"),
        "TrialParamModel": ("trial_id", "param_name", "param_value", "distribution_json"),
        "TrialUserAttributeModel": ("trial_id", "key", "value_json"),
        "TrialValueModel": ("trial_id", "objective", "value", "value_type"),
        "TrialIntermediateValueModel": ("trial_id", "step", "intermediate_value",
                                        "intermediate_value_type"),
    }

    def __init__(self, rdb: Any) -> None:
        import sqlalchemy as sa
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models

        self._sa = sa
        self._engine = rdb.engine
        self._m = models
        self._to_json = distribution_to_json
        self._studies = models.StudyModel.__table__
        self._trials = models.TrialModel.__table__
        mapper = sa.inspect(models.TrialModel)
        # The attribute that holds each datetime column as stored (Optuna 5 stores naive UTC
        # behind a property; earlier versions stored local time in a plain column).
        self._time_attr = {
            col: mapper.get_property_by_column(self._trials.c[col]).key
            for col in ("datetime_start", "datetime_complete")
        }

    @classmethod
    def available(cls, rdb: Any) -> bool:
        try:
            import sqlalchemy as sa
            from optuna.storages._rdb import models

            mapper = sa.inspect(models.TrialModel)
            for col in ("datetime_start", "datetime_complete"):
                mapper.get_property_by_column(models.TrialModel.__table__.c[col])
            for name, columns in cls._COLUMNS.items():
                table = getattr(models, name).__table__
                if not all(c in table.c for c in columns):
                    return False
            models.TrialValueModel.value_to_stored_repr  # noqa: B018 - presence check
            models.TrialIntermediateValueModel.intermediate_value_to_stored_repr  # noqa: B018
        except Exception:  # any mismatch means: use the public API
            return False
        return hasattr(rdb, "engine")

    def _stored_time(self, column: str, when: datetime) -> Any:
        obj = self._m.TrialModel()
        setattr(obj, column, when)  # Optuna's own conversion
        return getattr(obj, self._time_attr[column])

    def _insert(self, conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self._sa.insert(model.__table__), rows)

    def create(
        self,
        conn: Any,
        study_id: int,
        params: Mapping[str, Any],
        distributions: Mapping[str, Any],
        attrs: Mapping[str, Any],
        *,
        waiting: bool = False,
        trial_dir: Callable[[int], Path] | None = None,
    ) -> tuple[int, int]:
        """Insert a RUNNING (or WAITING) trial in the transaction ``conn``; (trial_id, number).
        ``trial_dir(number)`` adds the ``trial_dir`` attribute."""
        import optuna

        sa, m, trials = self._sa, self._m, self._trials
        if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
            conn.execute(
                sa.select(self._studies.c.study_id)
                .where(self._studies.c.study_id == study_id)
                .with_for_update()
            )
        state = optuna.trial.TrialState.WAITING if waiting else optuna.trial.TrialState.RUNNING
        result = conn.execute(
            sa.insert(trials).values(
                study_id=study_id,
                number=None,
                state=state,
                datetime_start=None if waiting else self._stored_time("datetime_start",
                                                                      datetime.now()),
            )
        )
        tid = int(result.inserted_primary_key[0])
        # As Optuna does: the number is how many trials of the study came before this one.
        number = int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(trials)
                .where(trials.c.study_id == study_id, trials.c.trial_id < tid)
            ).scalar_one()
        )
        conn.execute(sa.update(trials).where(trials.c.trial_id == tid).values(number=number))
        if trial_dir is not None:
            attrs = {**attrs, "trial_dir": str(trial_dir(number))}
        self._insert(conn, m.TrialParamModel, [
            {
                "trial_id": tid,
                "param_name": name,
                "param_value": distributions[name].to_internal_repr(value),
                "distribution_json": self._to_json(distributions[name]),
            }
            for name, value in params.items()
        ])
        self._insert(conn, m.TrialUserAttributeModel, [
            {"trial_id": tid, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ])
        return tid, number

    def finish(
        self,
        conn: Any,
        trial_id: int,
        state: optuna.trial.TrialState,
        value: float | Sequence[float] | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
    ) -> bool:
        """Record a trial's end in the transaction ``conn``; False if it is not running."""
        import optuna

        sa, m, trials = self._sa, self._m, self._trials
        done = conn.execute(
            sa.update(trials)
            .where(
                trials.c.trial_id == trial_id,
                trials.c.state == optuna.trial.TrialState.RUNNING,
            )
            .values(
                state=state,
                datetime_complete=self._stored_time("datetime_complete", datetime.now()),
            )
        )
        if done.rowcount != 1:
            return False
        rows = []
        for step, v in intermediate.items():
            stored, kind = m.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v)
            rows.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                         "intermediate_value_type": kind})
        self._insert(conn, m.TrialIntermediateValueModel, rows)
        self._insert(conn, m.TrialUserAttributeModel, [
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
            for k, v in attrs.items()
        ])
        values = [] if value is None else [value] if isinstance(value, int | float) else value
        rows = []
        for objective, v in enumerate(values):
            stored, kind = m.TrialValueModel.value_to_stored_repr(v)
            rows.append({"trial_id": trial_id, "objective": objective, "value": stored,
                         "value_type": kind})
        self._insert(conn, m.TrialValueModel, rows)
        return True


def is_transient(error: BaseException) -> bool:
    """True for a database error worth retrying: a lost connection, a timeout, a lock."""
    import sqlalchemy as sa

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sa.exc.OperationalError | sa.exc.InterfaceError
                      | sa.exc.DisconnectionError | sa.exc.TimeoutError):
            return True
        e = e.__cause__ or e.__context__
    return False


_CHECKED: set[str] = set()  # storage URLs whose schema version this process has checked


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (``spiketune trials`` in another terminal) run beside the scheduler;
    # synchronous=NORMAL drops the per-commit fsync (a process crash still loses nothing).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@dataclass(frozen=True)
class Unfinished:
    """A RUNNING or WAITING trial of the study, with its heartbeat (what a sweep looks at)."""

    trial_id: int
    number: int
    waiting: bool
    owner: str | None  # "host:pid" of the scheduler running it; None without a heartbeat row
    beat_at: float | None  # its last heartbeat, in the owner's clock (time.time())


def _open_rdb(url: str) -> Any:
    """Optuna's RDBStorage for ``url`` (password resolved, SQLite tuned, schema checked once)."""
    import optuna
    import sqlalchemy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    full = _with_driver(resolve_url(url))
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    # Optuna checks the schema version against its migration scripts (tens of ms, most
    # of opening a study): once per database per process is enough.
    new_file = url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists()
    for attempt in range(5):
        try:
            rdb = optuna.storages.RDBStorage(
                full, engine_kwargs=kwargs, skip_compatibility_check=full in _CHECKED or new_file
            )
            break
        except sqlalchemy.exc.DatabaseError:
            # Workers starting at once on a new database race to create Optuna's tables; the
            # losers find them made on the next try.
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
    _CHECKED.add(full)
    if rdb.engine.name == "sqlite":
        sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()  # reconnect so every pooled connection gets the pragmas
    return rdb


def _with_driver(url: str) -> str:
    """A plain ``postgresql://`` URL names the psycopg (3) driver, which spiketune installs
    (SQLAlchemy before 2.1 would look for psycopg2 instead)."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def _scrubbed(error: BaseException, url: str) -> str:
    """``str(error)`` with the URL's password masked wherever it appears."""
    text = str(error)
    secrets = {url_password(url)}
    with contextlib.suppress(Exception):
        secrets.add(url_password(resolve_url(url)))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***").replace(urllib.parse.quote(secret, safe=""), "***")
    return text


def _storage_errors(url: str, what: str) -> Any:
    """Context manager turning driver errors into :class:`StorageError` (password masked)."""

    @contextlib.contextmanager
    def wrap() -> Any:
        try:
            yield
        except StorageError:
            raise
        except Exception as e:  # driver missing, bad URL, unreachable server, corrupt file...
            raise StorageError(f"{what} {redact_url(url)}: {_scrubbed(e, url)}") from None

    return wrap()


def list_studies(url: str) -> list[dict[str, Any]]:
    """The spiketune experiments stored in the database ``url``: ``{"id", "config", ...}``
    (their study user attributes), oldest first."""
    with _storage_errors(url, "cannot read the studies of"):
        rdb = _open_rdb(url)
        try:
            studies = sorted(rdb.get_all_studies(), key=lambda s: s._study_id)
        finally:
            rdb.engine.dispose()
    return [dict(s.user_attrs, id=s.study_name) for s in studies if ATTR_CONFIG in s.user_attrs]


def find_study(url: str, ref: str) -> str:
    """The id of the experiment ``ref`` in the database ``url``: an id, a unique id prefix, or
    an experiment name registered by workers. :class:`StorageError` otherwise."""
    with _storage_errors(url, "cannot look up experiments in"):
        rdb = _open_rdb(url)
        try:
            registered = _Tables(rdb.engine).registered(ref)
        finally:
            rdb.engine.dispose()
    ids = [s["id"] for s in list_studies(url)]
    if ref in ids:
        return ref
    if registered is not None and registered in ids:
        return registered
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    where = redact_url(url)
    if matches:
        raise StorageError(f"experiment {ref!r} is ambiguous in {where}: {', '.join(matches[:5])}")
    raise StorageError(f"no experiment {ref!r} in {where} (no such id, id prefix or name)")


class StudyStore:
    """The Optuna study of one experiment. The scheduler is the only caller of its write methods.

    Lifecycle: :meth:`open` (creating the study when asked) or :meth:`join_or_create` (workers)
    → reads and, for the scheduler, :meth:`claim` / :meth:`start_trial` / :meth:`beat` /
    :meth:`finish_trial` / :meth:`fail_lost` / :meth:`take_waiting` / :meth:`set_study_attr` →
    :meth:`close`.

    Writes that end a trial survive a short loss of the database: they are retried with
    backoff for up to ``retry_seconds`` and land exactly once (a retry after a commit whose
    answer was lost finds the trial recorded and stops).
    """

    #: Seconds a write is retried after a lost connection before the error is raised.
    retry_seconds: float = 60.0

    def __init__(self, rdb: Any, study_name: str, study_id: int, *, fast: bool = True) -> None:
        import optuna

        self.url = strip_password(str(rdb.url))  # for messages; never holds the password
        self._full_url = str(rdb.url)
        self.study_name = study_name
        self._optuna = optuna
        self._rdb = rdb
        self._study_id = study_id
        self._fast = _FastWrites(rdb) if fast and _FastWrites.available(rdb) else None
        self._tables_: _Tables | None = None
        self._reader = optuna.storages._CachedStorage(rdb)
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
        fast: bool = True,
    ) -> StudyStore:
        """Open the study (``create=True``: create it, failing if it exists, with one
        ``direction`` or a list of them, one per objective).

        Raises :class:`StorageError` when the database cannot be reached or the study is
        missing (or already there, for ``create``).
        """
        import optuna

        try:
            with _storage_errors(url, "cannot open study storage"):
                rdb = _open_rdb(url)
                if create:
                    study_id = rdb.create_new_study(_directions(direction), study_name)
                    _Tables(rdb.engine)  # created with the study, before schedulers race for it
                else:
                    study_id = rdb.get_study_id_from_name(study_name)
        except optuna.exceptions.DuplicatedStudyError as e:
            raise StorageError(f"study {study_name!r} already exists in {redact_url(url)}") from e
        except KeyError as e:
            raise StorageError(f"no study {study_name!r} in {redact_url(url)}") from e
        return cls(rdb, study_name, study_id, fast=fast)

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
        with _storage_errors(url, "cannot open study storage"):
            rdb = _open_rdb(url)
            tables = _Tables(rdb.engine)
            existing = tables.registered(name)
            if existing is None:
                study_id = rdb.create_new_study(_directions(direction), new_id)
                for key, value in attrs.items():
                    rdb.set_study_user_attr(study_id, key, value)
                if tables.register(name, new_id):
                    return cls(rdb, new_id, study_id), True
                rdb.delete_study(study_id)
                existing = tables.registered(name)
            assert existing is not None  # registered rows are never deleted
            try:
                study_id = rdb.get_study_id_from_name(existing)
            except KeyError:
                raise StorageError(
                    f"experiment {name!r} is registered in {redact_url(url)} as {existing!r}, "
                    "but that study is gone; give the workers another name"
                ) from None
        return cls(rdb, existing, study_id), False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._rdb.engine.dispose()

    @property
    def owner(self) -> str:
        """``host:pid/token``: who holds the heartbeats of this store's trials (see
        :func:`parse_owner`)."""
        return self._owner

    # ---------------------------------------------------------------- reads
    @property
    def direction(self) -> str:
        """The direction of the (first) objective."""
        return self.directions[0]

    @property
    def directions(self) -> list[str]:
        """One direction per objective."""
        maximize = self._optuna.study.StudyDirection.MAXIMIZE
        return ["maximize" if d == maximize else "minimize"
                for d in self._rdb.get_study_directions(self._study_id)]

    def study_attrs(self) -> dict[str, Any]:
        return self._rdb.get_study_user_attrs(self._study_id)

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """Every trial of the study, by number (fresh from the database)."""
        return self._rdb.get_all_trials(self._study_id, deepcopy=False)

    def trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        return self._rdb.get_trial(trial_id)

    def claims_used(self) -> int:
        """How many trials have been allowed to start, by any scheduler, ever."""
        return self._tables().count(self.study_name)

    def new_finished_trials(self, known: set[int]) -> list[optuna.trial.FrozenTrial]:
        """Finished trials whose ids are not in ``known`` (incremental read; other schedulers')."""
        trials = self._reader.get_all_trials(self._study_id, deepcopy=False)
        return [t for t in trials if t.state.is_finished() and t._trial_id not in known]

    def unfinished(self) -> list[Unfinished]:
        """The study's RUNNING and WAITING trials with their heartbeats."""
        state = self._optuna.trial.TrialState
        trials = self._rdb.get_all_trials(
            self._study_id, deepcopy=False, states=(state.RUNNING, state.WAITING)
        )
        beats = self._tables().beats(self.study_name) if trials else {}
        out = []
        for t in trials:
            owner, beat_at = beats.get(t._trial_id, (None, None))
            out.append(Unfinished(t._trial_id, t.number, t.state == state.WAITING, owner,
                                  beat_at))
        return out

    def working_study(
        self,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        trials: list[optuna.trial.FrozenTrial],
    ) -> optuna.Study:
        """An in-memory study holding ``trials`` (finished ones), for fast sampling and pruning."""
        optuna = self._optuna
        study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(),
            sampler=sampler,
            pruner=pruner,
            directions=self.directions,
        )
        study.add_trials([t for t in trials if t.state.is_finished()])
        return study

    # ---------------------------------------------------------------- writes (scheduler only)
    def _tables(self) -> _Tables:
        if self._tables_ is None:
            self._tables_ = _Tables(self._rdb.engine)
        return self._tables_

    def _retrying(self, what: str, write: Callable[[], Any],
                  landed: Callable[[], bool] | None = None) -> Any:
        """Run ``write``, again after transient database errors (backoff up to
        :attr:`retry_seconds`). ``landed``: after a retry whose write found nothing to do,
        says whether an earlier try committed after all (then the write counts as done)."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        retried = False
        while True:
            try:
                result = write()
            except Exception as e:
                if not is_transient(e) or time.monotonic() + delay > deadline:
                    if is_transient(e):
                        raise StorageError(f"{what}: the database at {redact_url(self.url)} "
                                           f"did not answer for {self.retry_seconds:g} s: "
                                           f"{_scrubbed(e, self._full_url)}") from None
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                retried = True
                continue
            if result is False and retried and landed is not None and landed():
                return True
            return result

    def claim(self, limit: int | None) -> int | None:
        """Claim the next trial slot (its sequence id); ``None`` once ``limit`` are claimed."""
        return self._tables().claim(self.study_name, limit, self._owner)

    def set_study_attr(self, key: str, value: Any) -> None:
        self._retrying(f"study attribute {key}",
                       lambda: self._rdb.set_study_user_attr(self._study_id, key, value))

    def start_trial(
        self,
        params: Mapping[str, Any],
        distributions: Mapping[str, Any],
        attrs: Mapping[str, Any],
        trial_dir: Callable[[int], Path] | None = None,
    ) -> tuple[int, int]:
        """Record a RUNNING trial with its Optuna parameters, ``attrs`` and its first heartbeat;
        ``(trial_id, number)``. ``trial_dir(number)`` is stored as the ``trial_dir`` attribute.

        ``attrs`` and the ``attrs`` of :meth:`finish_trial` must not share keys (each attribute is
        written once, by a plain insert).
        """
        tables = self._tables()
        if self._fast is not None:
            fast = self._fast

            def write() -> tuple[int, int]:
                with self._rdb.engine.begin() as conn:
                    tid, number = fast.create(conn, self._study_id, params, distributions, attrs,
                                              trial_dir=trial_dir)
                    conn.execute(tables.heartbeats.insert().values(
                        tables.beat_rows(self.study_name, tid, self._owner)))
                return tid, number

            return self._retrying("starting a trial", write)
        optuna = self._optuna
        template = optuna.trial.FrozenTrial(
            number=0,
            state=optuna.trial.TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params=dict(params),
            distributions=dict(distributions),
            user_attrs=dict(attrs),
            system_attrs={},
            intermediate_values={},
            trial_id=0,
        )
        trial_id = self._retrying("starting a trial", lambda: self._rdb.create_new_trial(
            self._study_id, template_trial=template))
        self._insert_beat(trial_id)
        number = self._rdb.get_trial_number_from_id(trial_id)
        if trial_dir is not None:
            self._rdb.set_trial_user_attr(trial_id, "trial_dir", str(trial_dir(number)))
        return trial_id, number

    def _insert_beat(self, trial_id: int) -> None:
        tables = self._tables()

        def write() -> None:
            with self._rdb.engine.begin() as conn:
                conn.execute(tables.heartbeats.insert().values(
                    tables.beat_rows(self.study_name, trial_id, self._owner)))

        self._retrying("heartbeat", write)

    def beat(self, trial_ids: Collection[int]) -> set[int]:
        """Renew the heartbeats of this scheduler's running trials. Returns the ids that have
        lost theirs: trials another worker recorded as lost (their results are not wanted)."""
        return self._tables().beat(trial_ids)

    def finish_trial(
        self,
        trial_id: int,
        state: optuna.trial.TrialState,
        value: float | Sequence[float] | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
    ) -> bool:
        """Record how a trial ended: state, value (a list: one per objective), intermediate
        values and attributes at once, and drop its heartbeat. Returns False, writing
        nothing, when the trial is no longer running (another worker recorded it lost)."""
        tables = self._tables()
        hb = tables.heartbeats

        def landed() -> bool:
            t = self.trial(trial_id)
            return t.state.is_finished() and all(
                t.user_attrs.get(k) == json.loads(json.dumps(v)) for k, v in attrs.items()
            )

        if self._fast is not None:
            fast = self._fast

            def write() -> bool:
                with self._rdb.engine.begin() as conn:
                    if not fast.finish(conn, trial_id, state, value, attrs, intermediate):
                        return False
                    conn.execute(hb.delete().where(hb.c.trial_id == trial_id))
                return True

            return bool(self._retrying("recording a trial's end", write, landed))
        rdb = self._rdb

        def write_public() -> bool:
            if rdb.get_trial(trial_id).state != self._optuna.trial.TrialState.RUNNING:
                return False
            for step, v in intermediate.items():
                rdb.set_trial_intermediate_value(trial_id, step, v)
            for key, v in attrs.items():
                rdb.set_trial_user_attr(trial_id, key, v)
            values = None if value is None else [value] if isinstance(value, int | float) \
                else list(value)
            if not rdb.set_trial_state_values(trial_id, state, values):
                return False
            with rdb.engine.begin() as conn:
                conn.execute(hb.delete().where(hb.c.trial_id == trial_id))
            return True

        return bool(self._retrying("recording a trial's end", write_public, landed))

    def fail_lost(
        self,
        trial: optuna.trial.FrozenTrial,
        attrs: Mapping[str, Any],
        retry_attrs: Mapping[str, Any] | None,
        intermediate: Mapping[int, float] | None = None,
    ) -> int | None:
        """Record the RUNNING ``trial`` FAILED with ``attrs`` and, with ``retry_attrs``, queue
        its retry: a WAITING trial with the same parameters and those attributes. One
        transaction (on Optuna's current tables), so a lost trial is never left without its
        retry. Returns the retry's number (-1 without a retry), or None when the trial was no
        longer running (another worker recorded it first)."""
        state = self._optuna.trial.TrialState.FAIL
        hb = self._tables().heartbeats
        if self._fast is not None:
            fast = self._fast

            def write() -> int | None:
                with self._rdb.engine.begin() as conn:
                    if not fast.finish(conn, trial._trial_id, state, None, attrs,
                                       intermediate or {}):
                        return None
                    conn.execute(hb.delete().where(hb.c.trial_id == trial._trial_id))
                    if retry_attrs is None:
                        return -1
                    _, number = fast.create(conn, self._study_id, trial.params,
                                            trial.distributions, retry_attrs, waiting=True)
                    return number

            return self._retrying("recording a lost trial", write)
        if not self.finish_trial(trial._trial_id, state, None, attrs, intermediate or {}):
            return None
        if retry_attrs is None:
            return -1
        template = self._optuna.trial.FrozenTrial(
            number=0, state=self._optuna.trial.TrialState.WAITING, value=None,
            datetime_start=None, datetime_complete=None, params=dict(trial.params),
            distributions=dict(trial.distributions), user_attrs=dict(retry_attrs),
            system_attrs={}, intermediate_values={}, trial_id=0,
        )
        tid = self._rdb.create_new_trial(self._study_id, template_trial=template)
        return self._rdb.get_trial_number_from_id(tid)

    def take_waiting(
        self, trial_dir: Callable[[int], Path]
    ) -> optuna.trial.FrozenTrial | None:
        """Take the first WAITING trial (a queued retry) and start it as this scheduler's:
        RUNNING, with a heartbeat and its ``trial_dir(number)`` attribute. None when there is
        none left (the state change is conditional, so each is taken once, by one worker)."""
        state = self._optuna.trial.TrialState
        waiting = self._rdb.get_all_trials(self._study_id, deepcopy=False,
                                           states=(state.WAITING,))
        for t in sorted(waiting, key=lambda t: t.number):
            if self._rdb.set_trial_state_values(t._trial_id, state.RUNNING):
                self._insert_beat(t._trial_id)
                self._rdb.set_trial_user_attr(t._trial_id, "trial_dir",
                                              str(trial_dir(t.number)))
                return self._rdb.get_trial(t._trial_id)
        return None


def _directions(direction: str | Sequence[str]) -> list[Any]:
    import optuna

    names = [direction] if isinstance(direction, str) else list(direction)
    return [optuna.study.StudyDirection.MAXIMIZE if d == "maximize"
            else optuna.study.StudyDirection.MINIMIZE for d in names]
