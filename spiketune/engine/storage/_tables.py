"""spiketune's own tables, beside Optuna's in the same database (SQLAlchemy Core, on an engine
of the study's database):

* ``spiketune_claims``: one row per trial allowed to start. A trial may start only after
  inserting row ``k``, where ``k`` is the number of claims so far and ``(study_name, k)`` is a
  primary key: two schedulers sharing the study cannot both insert the same ``k``, so between
  them they never start more than ``max_trials`` trials. ``k`` is the trial's sequence id
  (stored in the column ``slot``, its name since the first release).
* ``spiketune_heartbeats``: one row per running trial, ``beat_at`` (seconds, the owner's
  ``time.time()``) rewritten by its scheduler every ``heartbeat_interval``; the row goes with
  the trial's end, in the same transaction.
* ``spiketune_experiments``: experiment name -> study name, so workers started with the same
  configuration find (or create, once) the same study.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from spiketune.engine.storage._base import BaseRecords
from spiketune.errors import StorageError

__all__ = ["SpiketuneTables"]

_METADATA = sa.MetaData()
_CLAIMS = sa.Table(
    "spiketune_claims",
    _METADATA,
    sa.Column("study_name", sa.String(512), primary_key=True),
    # "slot" in the database (studies already stored keep their schema); sequence_id in code
    sa.Column("slot", sa.Integer, key="sequence_id", primary_key=True, autoincrement=False),
    sa.Column("claimed_at", sa.Float, nullable=False),
    sa.Column("owner", sa.String(256), nullable=False),
)
_HEARTBEATS = sa.Table(
    "spiketune_heartbeats",
    _METADATA,
    sa.Column("trial_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("study_name", sa.String(512), nullable=False, index=True),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("beat_at", sa.Float, nullable=False),
)
_EXPERIMENTS = sa.Table(
    "spiketune_experiments",
    _METADATA,
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("experiment_id", sa.String(512), nullable=False),
    sa.Column("created", sa.Float, nullable=False),
)
#: Tries of one claim: each failed try means another scheduler took the sequence id or held
#: the lock.
_CLAIM_TRIES = 200


class SpiketuneTables(BaseRecords):
    """The three tables of the module docstring, on ``engine``: the database's
    :class:`~spiketune.engine.storage._base.BaseRecords` (``tx`` is a SQLAlchemy connection
    in a transaction).

    ``create``: make the tables that are missing (a writer does, before any scheduler races
    for them); a read-only opening never does, and reads of a table that is not there answer
    as if it were empty.
    """

    claims = _CLAIMS
    heartbeats = _HEARTBEATS
    experiments = _EXPERIMENTS

    def __init__(self, engine: sa.Engine, *, create: bool = True) -> None:
        self._engine = engine
        if not create:
            return
        for table in _METADATA.sorted_tables:
            try:
                table.create(engine, checkfirst=True)
            except sa.exc.DatabaseError:
                # Another scheduler created it between our check and our CREATE: fine if it
                # exists now.
                if not sa.inspect(engine).has_table(table.name):
                    raise

    def _read(self, stmt: sa.Executable) -> list[sa.Row[Any]]:
        """Rows of ``stmt``; none when its table does not exist (a database no spiketune
        scheduler has written, opened read-only)."""
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(stmt))
        except sa.exc.ProgrammingError:
            return []
        except sa.exc.OperationalError as e:
            if "no such table" in str(e):
                return []
            raise

    # ---------------------------------------------------------------- claims
    def count(self, study_name: str) -> int:
        t = self.claims
        stmt = sa.select(sa.func.count()).select_from(t).where(t.c.study_name == study_name)
        rows = self._read(stmt)
        return int(rows[0][0]) if rows else 0

    def claim(self, study_name: str, limit: int | None, owner: str) -> int | None:
        """The next free sequence id, claimed for ``owner``, or ``None`` when ``limit`` are
        claimed. Safe across processes and machines (the primary key decides between racing
        schedulers)."""
        t = self.claims
        for attempt in range(_CLAIM_TRIES):
            try:
                with self._engine.begin() as conn:
                    stmt = sa.select(sa.func.coalesce(sa.func.max(t.c.sequence_id), -1)).where(
                        t.c.study_name == study_name
                    )
                    sequence_id = int(conn.execute(stmt).scalar_one()) + 1
                    if limit is not None and sequence_id >= limit:
                        return None
                    conn.execute(t.insert().values(study_name=study_name, sequence_id=sequence_id,
                                                   claimed_at=time.time(), owner=owner))
                    return sequence_id
            except (sa.exc.IntegrityError, sa.exc.OperationalError):
                # Another scheduler took this sequence id, or held the write lock: try again.
                time.sleep(min(0.002 * (attempt + 1), 0.1))
        raise StorageError(f"could not claim a sequence id in study {study_name!r} after "
                           f"{_CLAIM_TRIES} tries (the database stayed locked)")

    def claims_of(self, study_name: str) -> dict[int, str]:
        """sequence id -> owner (``host:pid/token``) of every claim of the study."""
        t = self.claims
        rows = self._read(
            sa.select(t.c.sequence_id, t.c.owner).where(t.c.study_name == study_name))
        return {int(r[0]): str(r[1]) for r in rows}

    def take_claim(self, study_name: str, sequence_id: int, owner: str,
                   new_owner: str) -> bool:
        """Give the claim of ``sequence_id`` to ``new_owner`` if ``owner`` still holds it (so
        that, of schedulers racing for it, one gets it)."""
        t = self.claims
        with self._engine.begin() as conn:
            done = conn.execute(sa.update(t).where(
                t.c.study_name == study_name, t.c.sequence_id == sequence_id,
                t.c.owner == owner,
            ).values(owner=new_owner))
        return done.rowcount == 1

    # ---------------------------------------------------------------- heartbeats
    def insert_beat(self, conn: sa.Connection, study_name: str, trial_id: int,
                    owner: str) -> None:
        """The first heartbeat of ``trial_id``, in the caller's transaction ``conn``."""
        conn.execute(self.heartbeats.insert().values(
            trial_id=trial_id, study_name=study_name, owner=owner, beat_at=time.time()))

    def delete_beat(self, conn: sa.Connection, trial_id: int) -> None:
        """Drop the heartbeat of ``trial_id`` (its end is being recorded in ``conn``)."""
        t = self.heartbeats
        conn.execute(t.delete().where(t.c.trial_id == trial_id))

    def beat(self, trial_ids: Collection[int]) -> set[int]:
        """Renew the heartbeats of ``trial_ids``; return those that have no row any more."""
        t = self.heartbeats
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
        t = self.heartbeats
        rows = self._read(
            sa.select(t.c.trial_id, t.c.owner, t.c.beat_at).where(t.c.study_name == study_name)
        )
        return {int(r[0]): (str(r[1]), float(r[2])) for r in rows}

    # ---------------------------------------------------------------- experiments
    def registered(self, name: str) -> str | None:
        """The study registered under the experiment name ``name``, if any."""
        t = self.experiments
        rows = self._read(sa.select(t.c.experiment_id).where(t.c.name == name))
        return None if not rows else str(rows[0][0])

    def register(self, name: str, experiment_id: str) -> bool:
        """Record ``name -> experiment_id``; False when the name was registered already."""
        t = self.experiments
        try:
            with self._engine.begin() as conn:
                conn.execute(t.insert().values(name=name, experiment_id=experiment_id,
                                               created=time.time()))
        except sa.exc.IntegrityError:
            return False
        return True
