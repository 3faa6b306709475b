"""A trial's start and end, each written as one short transaction into the tables of Optuna's
RDB schema.

Why not Optuna's public storage calls: they commit once per field and read the trial back
before each write, so a trial's start and end cost about 11 ms of storage work on SQLite
where these two transactions cost about 1.5 ms; on an in-process trial that is the
difference between about 6 ms and about 19 ms of engine overhead per trial, and 1.4 against
2.8 times a plain ``subprocess.run`` at concurrency 2 (``benchmarks/overhead.py``; the figures
are in ``docs/engine.md``).

What makes this safe:

* the tables are *reflected* from the database (SQLAlchemy reads their columns and types), never
  imported from Optuna's private modules, and only a schema revision listed in
  :data:`KNOWN_SCHEMAS` (``RDBStorage.get_current_version()``, public) is written;
* what is written is what Optuna writes for the same trial: the storage conformance suite
  (``tests/test_storage.py``) reads every write back through Optuna's public API, on SQLite
  and PostgreSQL, and compares it with the same trial written by ``create_new_trial``;
* trial numbers are counted under the lock Optuna takes (the study's row, ``FOR UPDATE``;
  SQLite serialises writers by itself), as ``count of the study's trials with a smaller id``;
* every change of state is conditional (``WHERE state = RUNNING`` / ``WAITING``) and lands in
  the same transaction as the rest of the write, so a trial is ended once, by one scheduler.

Values follow Optuna's stored forms: datetimes as naive UTC (Optuna 5), states by name,
objective values and intermediate values as (value or NULL, ``FINITE`` / ``INF_POS`` /
``INF_NEG`` / ``NAN``), attributes as JSON text, parameters in their distribution's internal
representation with the distribution as JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.trial import TrialState

from spiketune.engine.storage._base import BaseTrialWrites, TrialSummary
from spiketune.errors import StorageError

__all__ = ["KNOWN_SCHEMAS", "OptunaTables"]

#: Revisions of Optuna's RDB schema (alembic) these writes were checked against.
KNOWN_SCHEMAS = frozenset({"v3.2.0.a"})

_TABLES: dict[str, tuple[str, ...]] = {
    "studies": ("study_id",),
    "trials": ("trial_id", "number", "study_id", "state", "datetime_start",
               "datetime_complete"),
    "trial_params": ("trial_id", "param_name", "param_value", "distribution_json"),
    "trial_user_attributes": ("trial_id", "key", "value_json"),
    "trial_system_attributes": ("trial_id", "key", "value_json"),
    "trial_values": ("trial_id", "objective", "value", "value_type"),
    "trial_intermediate_values": ("trial_id", "step", "intermediate_value",
                                  "intermediate_value_type"),
}
_FINISHED = tuple(s.name for s in TrialState if s.is_finished())

#: Reflected tables, per kind of database and schema revision (a reflection costs about 10 ms).
_REFLECTED: dict[str, dict[str, sa.Table]] = {}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _stored_value(value: float) -> tuple[float | None, str]:
    if value == math.inf:
        return None, "INF_POS"
    if value == -math.inf:
        return None, "INF_NEG"
    return value, "FINITE"


def _read_value(value: float | None, kind: Any) -> float:
    """An objective value from its stored form (see :func:`_stored_value`)."""
    kind = getattr(kind, "name", str(kind))  # an enum's member, or its name as text
    if kind == "INF_POS":
        return math.inf
    if kind == "INF_NEG":
        return -math.inf
    return float(value)  # type: ignore[arg-type]


def _stored_intermediate(value: float) -> tuple[float | None, str]:
    if math.isnan(value):
        return None, "NAN"
    return _stored_value(value)


class OptunaTables(BaseTrialWrites):
    """The trial tables of one Optuna study database, for :class:`StudyStore`'s writes: the
    database's :class:`~spiketune.engine.storage._base.BaseTrialWrites` (``tx`` is a
    SQLAlchemy connection in a transaction, from :meth:`begin`).

    Raises :class:`StorageError` when the database lacks a table or column written here, or
    (with ``check_version``, for writers) holds a schema revision other than those of
    :data:`KNOWN_SCHEMAS`. The reflected tables are kept per kind of database and schema
    revision: every SQLite file of one revision has the same tables.
    """

    def __init__(self, rdb: optuna.storages.RDBStorage, *, check_version: bool = True) -> None:
        version = rdb.get_current_version()
        if check_version and version not in KNOWN_SCHEMAS:
            raise StorageError(
                f"the study database has Optuna schema {version!r}; this spiketune writes "
                f"trials into schema {', '.join(sorted(KNOWN_SCHEMAS))} only (install the "
                f"Optuna release spiketune declares, or a spiketune that knows {version!r})"
            )
        self._rdb = rdb
        key = f"{rdb.engine.dialect.name}/{version}"
        tables = _REFLECTED.get(key)
        if tables is None:
            tables = _reflect(rdb.engine)
            _REFLECTED[key] = tables
        self.studies = tables["studies"]
        self.trials = tables["trials"]
        self.params = tables["trial_params"]
        self.user_attrs = tables["trial_user_attributes"]
        self.system_attrs = tables["trial_system_attributes"]
        self.values = tables["trial_values"]
        self.intermediate = tables["trial_intermediate_values"]

    def begin(self) -> AbstractContextManager[sa.Connection]:
        """One SQL transaction (committed at the end of the ``with`` block)."""
        return self._rdb.engine.begin()

    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        self._rdb.set_study_user_attr(study_id, key, value)

    # ---------------------------------------------------------------- reads
    def ids(self, study_id: int,
            states: Sequence[str] | None = None) -> list[tuple[int, int, str]]:
        """(trial id, number, state name) of the study's trials (of ``states``), by number."""
        t = self.trials
        stmt = sa.select(t.c.trial_id, t.c.number, t.c.state).where(t.c.study_id == study_id)
        if states is not None:
            stmt = stmt.where(t.c.state.in_(list(states)))
        with self._rdb.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.c.number))
            return [(int(r[0]), int(r[1]), _state_name(r[2])) for r in rows]

    def finished_ids(self, study_id: int) -> list[int]:
        return [i for i, _, _ in self.ids(study_id, _FINISHED)]

    def summaries(self, study_id: int, keys: Collection[str]) -> list[TrialSummary]:
        """Three light queries (trials, their values, the attributes of ``keys``) where
        Optuna's ``get_all_trials`` loads parameters, distributions, intermediate values and
        every attribute: 0.07 s against about 1.5 s for 3,000 trials on SQLite."""
        t, v, a = self.trials, self.values, self.user_attrs
        of_study = t.c.study_id == study_id
        with self._rdb.engine.connect() as conn:
            trials = conn.execute(sa.select(t.c.trial_id, t.c.number, t.c.state)
                                  .where(of_study).order_by(t.c.number)).all()
            values = conn.execute(
                sa.select(v.c.trial_id, v.c.objective, v.c.value, v.c.value_type)
                .join(t, t.c.trial_id == v.c.trial_id).where(of_study)
                .order_by(v.c.trial_id, v.c.objective)).all()
            attrs = conn.execute(
                sa.select(a.c.trial_id, a.c.key, a.c.value_json)
                .join(t, t.c.trial_id == a.c.trial_id)
                .where(of_study, a.c.key.in_(list(keys)))).all()
        by_trial: dict[int, list[float]] = {}
        for trial_id, _objective, value, kind in values:
            by_trial.setdefault(trial_id, []).append(_read_value(value, kind))
        attrs_of: dict[int, dict[str, Any]] = {}
        for trial_id, key, text in attrs:
            attrs_of.setdefault(trial_id, {})[key] = json.loads(text)
        return [TrialSummary(int(number), _state_name(state), by_trial.get(trial_id),
                             attrs_of.get(trial_id, {}))
                for trial_id, number, state in trials]

    # ---------------------------------------------------------------- writes
    def create(
        self,
        conn: sa.Connection,
        study_id: int,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        attrs: Mapping[str, Any],
        *,
        waiting: bool = False,
        trial_dir: Callable[[int], Path] | None = None,
    ) -> tuple[int, int]:
        """Insert a RUNNING (or WAITING) trial in the transaction ``conn``; (trial id,
        number). ``trial_dir(number)`` adds the ``trial_dir`` attribute."""
        trials = self.trials
        if conn.dialect.name != "sqlite":  # SQLite serialises writers by itself
            conn.execute(sa.select(self.studies.c.study_id)
                         .where(self.studies.c.study_id == study_id).with_for_update())
        state = TrialState.WAITING if waiting else TrialState.RUNNING
        inserted = conn.execute(
            sa.insert(trials)
            .values(study_id=study_id, number=None, state=state.name,
                    datetime_start=None if waiting else _now())
            .returning(trials.c.trial_id)
        )
        trial_id = int(inserted.scalar_one())
        # As Optuna does: the number is how many trials of the study came before this one.
        number = int(conn.execute(
            sa.select(sa.func.count()).select_from(trials)
            .where(trials.c.study_id == study_id, trials.c.trial_id < trial_id)
        ).scalar_one())
        conn.execute(sa.update(trials).where(trials.c.trial_id == trial_id)
                     .values(number=number))
        if trial_dir is not None:
            attrs = {**attrs, "trial_dir": str(trial_dir(number))}
        self._insert(conn, self.user_attrs, [  # a new trial: nothing to replace
            {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()
        ])
        self._insert(conn, self.params, [
            {"trial_id": trial_id, "param_name": name,
             "param_value": distributions[name].to_internal_repr(value),
             "distribution_json": distribution_to_json(distributions[name])}
            for name, value in params.items()
        ])
        return trial_id, number

    def finish(
        self,
        conn: sa.Connection,
        trial_id: int,
        state: TrialState,
        values: Sequence[float] | None,
        attrs: Mapping[str, Any],
        intermediate: Mapping[int, float],
        system_attrs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a RUNNING trial's end in the transaction ``conn``: its state, objective
        values, intermediate values, user and system attributes. False, writing nothing, when
        the trial is not RUNNING (someone recorded its end first)."""
        if not self._move(conn, trial_id, TrialState.RUNNING, state,
                          datetime_complete=_now()):
            return False
        rows = []
        for step, v in intermediate.items():
            stored, kind = _stored_intermediate(float(v))
            rows.append({"trial_id": trial_id, "step": int(step), "intermediate_value": stored,
                         "intermediate_value_type": kind})
        self._insert(conn, self.intermediate, rows)
        rows = []
        for objective, v in enumerate(values or ()):
            stored, kind = _stored_value(float(v))
            rows.append({"trial_id": trial_id, "objective": objective, "value": stored,
                         "value_type": kind})
        self._insert(conn, self.values, rows)
        self._set_attrs(conn, self.user_attrs, trial_id, attrs)
        self._set_attrs(conn, self.system_attrs, trial_id, system_attrs or {})
        return True

    def take(self, conn: sa.Connection, trial_id: int, attrs: Mapping[str, Any]) -> bool:
        """Start the WAITING trial ``trial_id`` (RUNNING, started now) with ``attrs``; False
        when it is not WAITING any more (another scheduler took it)."""
        if not self._move(conn, trial_id, TrialState.WAITING, TrialState.RUNNING,
                          datetime_start=_now()):
            return False
        self._set_attrs(conn, self.user_attrs, trial_id, attrs)
        return True

    # ---------------------------------------------------------------- helpers
    def _move(self, conn: sa.Connection, trial_id: int, old: TrialState, new: TrialState,
              **times: datetime) -> bool:
        t = self.trials
        done = conn.execute(
            sa.update(t).where(t.c.trial_id == trial_id, t.c.state == old.name)
            .values(state=new.name, **times)
        )
        return done.rowcount == 1

    def _set_attrs(self, conn: sa.Connection, t: sa.Table, trial_id: int,
                   attrs: Mapping[str, Any]) -> None:
        """Write attributes into ``t`` (user or system attributes), replacing those of the
        same keys (one per key, as Optuna's ``set_trial_user_attr`` and
        ``set_trial_system_attr``)."""
        if not attrs:
            return
        conn.execute(t.delete().where(t.c.trial_id == trial_id, t.c.key.in_(list(attrs))))
        self._insert(conn, t, [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                               for k, v in attrs.items()])

    @staticmethod
    def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(sa.insert(table), rows)


def _state_name(value: Any) -> str:
    return value.name if isinstance(value, TrialState) else str(value)


def _reflect(engine: sa.Engine) -> dict[str, sa.Table]:
    meta = sa.MetaData()
    try:
        meta.reflect(engine, only=list(_TABLES))
    except sa.exc.InvalidRequestError as e:  # a table is missing
        raise StorageError(f"the study database lacks one of Optuna's tables: {e}") from None
    tables = {name: meta.tables[name] for name in _TABLES}
    for name, columns in _TABLES.items():
        missing = [c for c in columns if c not in tables[name].c]
        if missing:
            raise StorageError(f"the study database's Optuna table {name!r} lacks the "
                               f"columns {', '.join(missing)}")
    return tables
