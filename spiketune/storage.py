"""Where an experiment lives: its directory, its Optuna study, and the only code that writes it.

Layout (read by reports, dashboards and workers; do not change lightly)::

    <root>/<experiment id>/    root: $SPIKETUNE_EXPERIMENTS or ~/spiketune-experiments
        experiment.json        id, name, created, storage URL (null: study.db here), config
        study.db               the Optuna study (SQLite, WAL journal), unless storage= is given
        scheduler.json         pid, host and status of the scheduler running it (or last to)
        stop                   present while a stop is requested (``spiketune stop``)
        trials/<number>/       parameter.json, metrics.jsonl, stdout.log, stderr.log,
                               process.json

One Optuna study per experiment, named after the experiment id. Study user attributes:
``spiketune_config``, ``spiketune_version``, ``experiment_dir``, ``elapsed_seconds``. Trial user
attributes: ``parameters``, ``metrics``, ``intermediate``, ``outcome``, ``reason``, ``trial_dir``,
``sequence_id``. Read them through :mod:`spiketune.results`, never through Optuna directly.

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
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping
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
    "ATTR_VERSION",
    "EXPERIMENTS_ENV",
    "TRIAL_ATTRS",
    "ExperimentPaths",
    "StudyStore",
    "default_root",
    "find_experiment",
    "read_json",
    "redact_url",
    "sqlite_url",
    "write_json",
]

EXPERIMENTS_ENV = "SPIKETUNE_EXPERIMENTS"

ATTR_CONFIG = "spiketune_config"
ATTR_VERSION = "spiketune_version"
ATTR_EXPERIMENT_DIR = "experiment_dir"
ATTR_ELAPSED = "elapsed_seconds"
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


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and files)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, at, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***{at}{host}" if ":" in creds else url


class _Claims:
    """The ``spiketune_claims`` table: one row per trial allowed to start (see module docstring)."""

    def __init__(self, engine: Any) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._engine = engine
        meta = sa.MetaData()
        self.table = sa.Table(
            "spiketune_claims",
            meta,
            sa.Column("study_name", sa.String(512), primary_key=True),
            sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("claimed_at", sa.Float, nullable=False),
            sa.Column("owner", sa.String(256), nullable=False),
        )
        try:
            meta.create_all(engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # Another scheduler created it between our check and our CREATE: fine if it exists.
            if not sa.inspect(engine).has_table("spiketune_claims"):
                raise

    def count(self, study_name: str) -> int:
        sa, t = self._sa, self.table
        with self._engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(t).where(t.c.study_name == study_name)
            return int(conn.execute(stmt).scalar_one())

    def claim(self, study_name: str, limit: int | None, owner: str) -> int | None:
        """The next free slot, or ``None`` when ``limit`` slots are taken. Safe across processes."""
        sa, t = self._sa, self.table
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
        study_id: int,
        params: Mapping[str, Any],
        distributions: Mapping[str, Any],
        attrs: Mapping[str, Any],
    ) -> tuple[int, int]:
        import optuna

        sa, m, trials = self._sa, self._m, self._trials
        with self._engine.begin() as conn:
            if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
                conn.execute(
                    sa.select(self._studies.c.study_id)
                    .where(self._studies.c.study_id == study_id)
                    .with_for_update()
                )
            result = conn.execute(
                sa.insert(trials).values(
                    study_id=study_id,
                    number=None,
                    state=optuna.trial.TrialState.RUNNING,
                    datetime_start=self._stored_time("datetime_start", datetime.now()),
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
        trial_id: int,
        state: optuna.trial.TrialState,
        value: float | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
    ) -> None:
        import optuna

        sa, m, trials = self._sa, self._m, self._trials
        with self._engine.begin() as conn:
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
                raise StorageError(f"trial id {trial_id} is not running: its end is recorded")
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
            if value is not None:
                stored, kind = m.TrialValueModel.value_to_stored_repr(value)
                self._insert(conn, m.TrialValueModel, [
                    {"trial_id": trial_id, "objective": 0, "value": stored, "value_type": kind}
                ])


_CHECKED: set[str] = set()  # storage URLs whose schema version this process has checked


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (``spiketune trials`` in another terminal) run beside the scheduler;
    # synchronous=NORMAL drops the per-commit fsync (a process crash still loses nothing).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class StudyStore:
    """The Optuna study of one experiment. The scheduler is the only caller of its write methods.

    Lifecycle: :meth:`open` (creating the study when asked) → reads and, for the scheduler,
    :meth:`claim` / :meth:`start_trial` / :meth:`finish_trial` / :meth:`set_study_attr` →
    :meth:`close`.
    """

    def __init__(self, rdb: Any, study_name: str, study_id: int, *, fast: bool = True) -> None:
        import optuna

        self.url = rdb.url
        self.study_name = study_name
        self._optuna = optuna
        self._rdb = rdb
        self._study_id = study_id
        self._fast = _FastWrites(rdb) if fast and _FastWrites.available(rdb) else None
        self._claims: _Claims | None = None
        self._reader = optuna.storages._CachedStorage(rdb)
        self._owner = f"{socket.gethostname()}:{os.getpid()}"

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        url: str,
        study_name: str,
        *,
        create: bool = False,
        direction: str = "maximize",
        fast: bool = True,
    ) -> StudyStore:
        """Open the study (``create=True``: create it, failing if it exists).

        Raises :class:`StorageError` when the database cannot be reached or the study is
        missing (or already there, for ``create``).
        """
        try:
            import optuna
            import sqlalchemy

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite"):
                kwargs = {"connect_args": {"timeout": 60}}
            # Optuna checks the schema version against its migration scripts (tens of ms, most
            # of opening a study): once per database per process is enough.
            new_file = url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists()
            rdb = optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, skip_compatibility_check=url in _CHECKED or new_file
            )
            _CHECKED.add(url)
            if rdb.engine.name == "sqlite":
                sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_pragmas)
                rdb.engine.dispose()  # reconnect so every pooled connection gets the pragmas
            if create:
                study_id = rdb.create_new_study(
                    [optuna.study.StudyDirection.MAXIMIZE if direction == "maximize"
                     else optuna.study.StudyDirection.MINIMIZE],
                    study_name,
                )
                _Claims(rdb.engine)  # created with the study, before any scheduler races for it
            else:
                study_id = rdb.get_study_id_from_name(study_name)
        except optuna.exceptions.DuplicatedStudyError as e:
            raise StorageError(f"study {study_name!r} already exists in {redact_url(url)}") from e
        except KeyError as e:
            raise StorageError(f"no study {study_name!r} in {redact_url(url)}") from e
        except StorageError:
            raise
        except Exception as e:  # driver missing, bad URL, unreachable server, corrupt file...
            raise StorageError(f"cannot open study storage {redact_url(url)}: {e}") from e
        return cls(rdb, study_name, study_id, fast=fast)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._rdb.engine.dispose()

    # ---------------------------------------------------------------- reads
    @property
    def direction(self) -> str:
        d = self._rdb.get_study_directions(self._study_id)[0]
        return "maximize" if d == self._optuna.study.StudyDirection.MAXIMIZE else "minimize"

    def study_attrs(self) -> dict[str, Any]:
        return self._rdb.get_study_user_attrs(self._study_id)

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """Every trial of the study, by number (fresh from the database)."""
        return self._rdb.get_all_trials(self._study_id, deepcopy=False)

    def claims_used(self) -> int:
        """How many trials have been allowed to start, by any scheduler, ever."""
        return self._claims_table().count(self.study_name)

    def new_finished_trials(self, known: set[int]) -> list[optuna.trial.FrozenTrial]:
        """Finished trials whose ids are not in ``known`` (incremental read; other schedulers')."""
        trials = self._reader.get_all_trials(self._study_id, deepcopy=False)
        return [t for t in trials if t.state.is_finished() and t._trial_id not in known]

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
            direction=self.direction,
        )
        study.add_trials([t for t in trials if t.state.is_finished()])
        return study

    # ---------------------------------------------------------------- writes (scheduler only)
    def _claims_table(self) -> _Claims:
        if self._claims is None:
            self._claims = _Claims(self._rdb.engine)
        return self._claims

    def claim(self, limit: int | None) -> int | None:
        """Claim the next trial slot (its sequence id); ``None`` once ``limit`` are claimed."""
        return self._claims_table().claim(self.study_name, limit, self._owner)

    def set_study_attr(self, key: str, value: Any) -> None:
        self._rdb.set_study_user_attr(self._study_id, key, value)

    def start_trial(
        self,
        params: Mapping[str, Any],
        distributions: Mapping[str, Any],
        attrs: Mapping[str, Any],
    ) -> tuple[int, int]:
        """Record a RUNNING trial with its Optuna parameters and ``attrs``; ``(trial_id, number)``.

        ``attrs`` and the ``attrs`` of :meth:`finish_trial` must not share keys (each attribute is
        written once, by a plain insert).
        """
        if self._fast is not None:
            return self._fast.create(self._study_id, params, distributions, attrs)
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
        trial_id = self._rdb.create_new_trial(self._study_id, template_trial=template)
        return trial_id, self._rdb.get_trial_number_from_id(trial_id)

    def finish_trial(
        self,
        trial_id: int,
        state: optuna.trial.TrialState,
        value: float | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
    ) -> None:
        """Record how a trial ended: state, value, intermediate values and attributes at once."""
        if self._fast is not None:
            self._fast.finish(trial_id, state, value, attrs, intermediate)
            return
        rdb = self._rdb
        for step, v in intermediate.items():
            rdb.set_trial_intermediate_value(trial_id, step, v)
        for key, v in attrs.items():
            rdb.set_trial_user_attr(trial_id, key, v)
        rdb.set_trial_state_values(trial_id, state, None if value is None else [value])

