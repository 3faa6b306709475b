"""The two extension points of a storage kind, one base class each: :class:`BaseTrialWrites`
(a trial's start and end, each one transaction, in Optuna's own records) and
:class:`BaseRecords` (spiketune's records beside the study: claims, heartbeats, the experiment
registry). :class:`~spiketune.engine.storage.StudyStore` holds one of each and is the only
caller; its logic (retries, conditional writes, what lands once) is written once, over both.

Implementations:

* a database (SQLite, PostgreSQL): :class:`~spiketune.engine.storage._trials.OptunaTables`
  (Optuna's tables, one SQL transaction) and
  :class:`~spiketune.engine.storage._tables.SpiketuneTables` (three SQL tables);
* a journal file on a shared disk: ``JournalTrials`` and ``JournalRecords``
  (:mod:`~spiketune.engine.storage._journal`: Optuna's ``JournalStorage`` and an append-only
  sidecar file, both written under the journal's own lock file).

Lifecycle, for both: made when a store opens (``create=True`` by a writer, which may make
what is missing; a read-only opening never writes), then :meth:`BaseTrialWrites.begin` opens
a transaction ``tx`` that the writes of a trial and its heartbeat share; everything written
inside lands together or not at all (see each implementation for how far that goes), and
each change of a trial's state is conditional on the state it expects, so of two schedulers
racing to end one trial, one does.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

__all__ = ["BaseRecords", "BaseTrialWrites", "TrialSummary"]


class TrialSummary(NamedTuple):
    """A trial as :meth:`BaseTrialWrites.summaries` reads it: no parameters, intermediate
    values, times or other attributes."""

    number: int
    state: str  # the TrialState's name
    values: list[float] | None  # as FrozenTrial.values: None when none were stored
    attrs: dict[str, Any]  # the user attributes asked for that the trial has


class BaseTrialWrites(abc.ABC):
    """A trial's start and end in the study's Optuna records, in one transaction each.

    :meth:`begin` → ``tx`` → :meth:`create` / :meth:`finish` / :meth:`take` (and the
    heartbeat writes of :class:`BaseRecords`, given the same ``tx``) → end of the ``with``
    block: committed; an exception: nothing written.
    """

    @abc.abstractmethod
    def begin(self) -> AbstractContextManager[Any]:
        """A transaction: ``with writes.begin() as tx:``."""

    def consistent(self) -> AbstractContextManager[Any]:
        """Reads inside this block see a new trial and its first heartbeat together or not at
        all. A database commits them in one transaction, so any read does; a journal writes
        them as two appends under its lock, so a reader takes the lock (see JournalTrials)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def ids(self, study_id: int,
            states: Sequence[str] | None = None) -> list[tuple[int, int, str]]:
        """(trial id, number, state name) of the study's trials (of ``states``), by number."""

    @abc.abstractmethod
    def finished_ids(self, study_id: int) -> list[int]:
        """Ids of the study's finished trials, by number (one light read)."""

    @abc.abstractmethod
    def summaries(self, study_id: int, keys: Collection[str]) -> list[TrialSummary]:
        """Every trial of the study with its state, values and the user attributes among
        ``keys``, by number: what Optuna's ``get_all_trials`` gives of them, read without
        the rest (a listing of experiments that needs counts and best values)."""

    @abc.abstractmethod
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
        """Add a RUNNING (or WAITING) trial in ``tx``; (trial id, number). Its number is how
        many trials of the study came before it; ``trial_dir(number)`` adds the
        ``trial_dir`` attribute."""

    @abc.abstractmethod
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
        """Record a RUNNING trial's end in ``tx``: state, values, intermediate values, user
        attributes and system attributes (Optuna's constraint values; each replacing those of
        the same keys). False, writing nothing, when it is not RUNNING (someone recorded its
        end first)."""

    @abc.abstractmethod
    def take(self, tx: Any, trial_id: int, attrs: Mapping[str, Any]) -> bool:
        """Start the WAITING trial ``trial_id`` (RUNNING, started now) with ``attrs``; False
        when it is not WAITING any more (another scheduler took it)."""

    @abc.abstractmethod
    def set_study_attr(self, study_id: int, key: str, value: Any) -> None:
        """Set a study user attribute (one write of its own)."""


class BaseRecords(abc.ABC):
    """spiketune's records beside a study, database-wide (the registry) or per study:

    * claims: sequence id ``k`` of a study may be claimed once; a trial may start only after
      claiming it, and :meth:`claim` hands out ``0, 1, 2, ...`` exactly once each across
      every process and machine, so ``max_trials`` is exact;
    * heartbeats: one per running trial, ``(owner, beat_at)``, written with the trial's start
      and dropped with its end in the same ``tx``, renewed by its scheduler;
    * the registry: experiment name → study name, first registration wins.

    Reads of records never written answer as if empty (a read-only opening creates nothing).
    """

    # ---------------------------------------------------------------- claims
    @abc.abstractmethod
    def count(self, study_name: str) -> int:
        """How many sequence ids of the study are claimed."""

    @abc.abstractmethod
    def claim(self, study_name: str, limit: int | None, owner: str) -> int | None:
        """The next free sequence id, claimed for ``owner``; None once ``limit`` are
        claimed."""

    @abc.abstractmethod
    def claims_of(self, study_name: str) -> dict[int, str]:
        """sequence id -> owner (``host:pid/token``) of every claim of the study."""

    @abc.abstractmethod
    def take_claim(self, study_name: str, sequence_id: int, owner: str,
                   new_owner: str) -> bool:
        """Give the claim of ``sequence_id`` to ``new_owner`` if ``owner`` still holds it."""

    # ---------------------------------------------------------------- heartbeats
    @abc.abstractmethod
    def insert_beat(self, tx: Any, study_name: str, trial_id: int, owner: str) -> None:
        """The first heartbeat of ``trial_id``, in the caller's transaction ``tx``."""

    @abc.abstractmethod
    def delete_beat(self, tx: Any, trial_id: int) -> None:
        """Drop the heartbeat of ``trial_id`` (its end is being recorded in ``tx``)."""

    @abc.abstractmethod
    def beat(self, trial_ids: Collection[int]) -> set[int]:
        """Renew the heartbeats of ``trial_ids``; return those that have none any more."""

    @abc.abstractmethod
    def beats(self, study_name: str) -> dict[int, tuple[str, float]]:
        """trial id -> (owner, last beat as the owner's ``time.time()``) for the study."""

    # ---------------------------------------------------------------- registry
    @abc.abstractmethod
    def registered(self, name: str) -> str | None:
        """The study registered under the experiment name ``name``, if any."""

    @abc.abstractmethod
    def register(self, name: str, experiment_id: str) -> bool:
        """Record ``name -> experiment_id``; False when the name was registered already."""
