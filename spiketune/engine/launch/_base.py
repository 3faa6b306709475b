"""What every launcher shares: the description of the workers to start (:class:`WorkerSpec`),
what a launch gives back (:class:`Launched`), the base class, and the storage rules.

The storage rules, and why:

* **a database every worker reaches.** Workers find each other through the study, so a
  launch without a storage URL (``--storage`` or ``storage`` in the config) is refused;
* **no SQLite off this machine.** SQLite's locks are ``fcntl`` locks on one file; on a
  network filesystem they are not reliable, and a ``study.db`` on one node's local disk is not
  seen by the others. Jobs on other machines would each write their own study, or corrupt a
  shared one, and the exact ``max_trials`` (a primary key in one database) would no longer
  hold. Launchers whose workers may run elsewhere refuse it and name PostgreSQL, or a journal
  file on a shared filesystem, instead; the local executor (workers on this machine, as
  ``spiketune worker`` started here several times) accepts it;
* **no password in what is written.** A job's pickled task, a manifest or a job script is a
  file others may read; the password reaches the workers through their environment
  (``$SPIKETUNE_DB_PASSWORD``, ``--password-file`` on a shared disk, a Kubernetes Secret),
  so a URL that holds one is refused with a message that says how to give it instead.
"""

from __future__ import annotations

import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from spiketune.errors import ConfigError, Problem, StorageError

if TYPE_CHECKING:
    from spiketune.engine.config import ExperimentConfig

__all__ = ["Launched", "Launcher", "WorkerSpec", "storage_scheme"]


@dataclass(frozen=True)
class WorkerSpec:
    """The workers to start: ``workers`` of them, each ``spiketune worker <config_path>
    --storage <storage>``.

    ``config_path`` is the config file as the workers see it (absolute; a shared filesystem
    for SLURM), ``config`` the configuration read from it, ``storage`` the database URL every
    worker reaches (never holding a password: see the module docstring).
    """

    config_path: Path
    config: ExperimentConfig
    storage: str
    workers: int


@dataclass(frozen=True)
class Launched:
    """What a launch did, for the user: the ids of the jobs submitted (none when only a file
    was written), the experiment they work on when known, and the files written."""

    kind: str
    job_ids: tuple[str, ...] = ()
    experiment_id: str | None = None
    files: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default=())


class Launcher(ABC):
    """Starts the workers of one experiment somewhere other than this process.

    Lifecycle, one call each, in this order:

    1. ``__init__(**options)``: every option is checked here, so that a misspelt or unknown
       one fails before anything else (:class:`~spiketune.errors.ConfigError` naming it and
       what is accepted);
    2. :meth:`check` (``spec``): what this launcher needs of the experiment, before anything
       is written or submitted; the base checks the storage rules of the module docstring;
    3. :meth:`launch` (``spec``): submit (or write) the workers; returns a :class:`Launched`.
    """

    #: The launcher's name in messages and records (``slurm``, ``local``, ``k8s``).
    kind: ClassVar[str]
    #: Whether the workers may run on other machines (then a SQLite storage is refused).
    remote: ClassVar[bool] = True

    def check(self, spec: WorkerSpec) -> None:
        """Refuse a storage the workers cannot share (see the module docstring)."""
        scheme = storage_scheme(spec.storage)
        if scheme == "sqlite" and self.remote:
            raise StorageError(
                f"{self.kind} workers run on other machines, and a SQLite study cannot be "
                "shared between machines (its file locks do not hold on a network filesystem, "
                "and a local file is not seen by the other nodes): give a PostgreSQL database "
                "(--storage postgresql://user@db-host/hpo), or a journal file on a shared "
                "filesystem (--storage journal:///shared/path/study.log); see "
                "docs/scaleout.md")
        _refuse_password(spec.storage, self._password_hint())

    def _password_hint(self) -> str:
        """How this launcher's workers get the password instead (for the refusal)."""
        return ("export it as $SPIKETUNE_DB_PASSWORD, or give --password-file FILE with the "
                "file on a filesystem the jobs see: the jobs inherit both")

    @abstractmethod
    def launch(self, spec: WorkerSpec) -> Launched:
        """Submit or write ``spec.workers`` workers; see the class docstring."""


def storage_scheme(url: str) -> str:
    """The kind of database a URL names, without its driver: ``postgresql``, ``sqlite``,
    ``journal``... (read from the scheme alone, so that kinds this module does not know are
    passed on to the storage layer, which judges them)."""
    return urllib.parse.urlsplit(url).scheme.split("+", 1)[0].lower()


def _refuse_password(url: str, hint: str) -> None:
    from spiketune.engine.storage import check_url, url_password

    if storage_scheme(url) in ("sqlite", "journal") or check_url(url) is not None:
        return  # no password in such URLs; a URL that cannot be parsed fails at the storage
    if url_password(url) is not None:
        raise ConfigError(Problem(
            "storage", "<a URL with a password, not shown>",
            "must not hold the password: what is submitted is written to files others may "
            f"read; give the URL without it and the password another way: {hint}"))
