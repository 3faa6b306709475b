"""Where an experiment lives: its directory, its Optuna study, and the only code that writes it.

Layout (read by reports, dashboards and workers; do not change lightly)::

    <root>/<experiment id>/    root: $SPIKETUNE_EXPERIMENTS or ~/spiketune-experiments
        experiment.json        id, name, created, storage URL (null: study.db here; never
                               a password), config
        study.db               the Optuna study (SQLite, WAL journal), unless storage= is given
                               (a PostgreSQL URL, or journal:///shared/path/study.log: see
                               ``_journal`` for the files beside such a log)
        scheduler.json         pid, host and status of the scheduler running it (or last to)
        workers/<host>.<pid>.json   the same, for each worker (spiketune worker) run here
        stop                   present while a stop is requested (``spiketune stop``)
        trials/<number>/       parameter.json, metrics.jsonl, stdout.log, stderr.log,
                               process.json

One Optuna study per experiment, named after the experiment id. Study user attributes:
``spiketune_config``, ``spiketune_version``, ``experiment_dir``, ``elapsed_seconds``. Trial user
attributes: ``parameters``, ``metrics``, ``intermediate``, ``outcome``, ``reason``, ``trial_dir``,
``sequence_id``. Read them through :mod:`spiketune.engine.results`, never through Optuna directly.

Modules, each owning one thing:

* ``_paths``: experiment directories, their files, finding one by path, id, name or prefix;
* ``_urls``: storage URLs (SQLAlchemy's ``make_url``; journal URLs): checks, masking, passwords;
* ``_base``: the two extension points of a storage kind, :class:`BaseTrialWrites` (a trial's
  start and end, one transaction each) and :class:`BaseRecords` (claims, heartbeats, the
  experiment registry);
* ``_tables``: spiketune's own tables, the records of a database;
* ``_trials``: a trial's start and end as one transaction each in Optuna's tables;
* ``_journal``: both for a journal file on a shared disk (one lock file, two append-only logs);
* ``_store``: :class:`StudyStore`, opening (read-write, read-only, joining) and lookups.

Speed: the scheduler samples and prunes on an in-memory copy of the study
(:meth:`StudyStore.working_study`) and writes each trial to the database twice: once when it
starts and once when it ends, one transaction each (see ``_trials`` for the figures).

Reading never writes: :meth:`StudyStore.open` with ``read_only=True``, :func:`list_studies` and
:func:`find_study` open the database so that the driver refuses every write, and a SQLite file
that is missing, empty or not a database is reported as such (:func:`study_file_problem`),
never created; so is a journal file (a read-only opening checks it exists before Optuna's
backend, which would create it, is made).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiketune._lazy import lazy_exports

_PATHS = "spiketune.engine.storage._paths"
_URLS = "spiketune.engine.storage._urls"
_STORE = "spiketune.engine.storage._store"

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ["EXPERIMENTS_ENV", "ExperimentMatch", "ExperimentPaths", "default_root",
         "find_experiment", "locate_experiment", "parse_owner", "read_experiment_json",
         "read_json", "write_json"],
        _PATHS),
    **dict.fromkeys(
        ["CREDENTIAL_ENVS", "PASSWORD_ENV", "PASSWORD_FILE_ENV", "check_url", "journal_file",
         "journal_url", "parse_url", "read_password_file", "redact_url", "resolve_url",
         "sqlite_url", "strip_password", "url_password", "with_password"],
        _URLS),
    **dict.fromkeys(
        ["ATTR_CONFIG", "ATTR_ELAPSED", "ATTR_EXPERIMENT_DIR", "ATTR_STOP", "ATTR_VERSION",
         "StudyMatch", "StudyStore", "Unfinished", "database_problem", "experiment_location",
         "find_study",
         "is_transient",
         "list_studies", "locate_study", "study_file_problem"],
        _STORE),
}

if TYPE_CHECKING:
    from spiketune.engine.storage._paths import (
        EXPERIMENTS_ENV,
        ExperimentMatch,
        ExperimentPaths,
        default_root,
        find_experiment,
        locate_experiment,
        parse_owner,
        read_experiment_json,
        read_json,
        write_json,
    )
    from spiketune.engine.storage._store import (
        ATTR_CONFIG,
        ATTR_ELAPSED,
        ATTR_EXPERIMENT_DIR,
        ATTR_STOP,
        ATTR_VERSION,
        StudyMatch,
        StudyStore,
        Unfinished,
        database_problem,
        experiment_location,
        find_study,
        is_transient,
        list_studies,
        locate_study,
        study_file_problem,
    )
    from spiketune.engine.storage._urls import (
        CREDENTIAL_ENVS,
        PASSWORD_ENV,
        PASSWORD_FILE_ENV,
        check_url,
        journal_file,
        journal_url,
        parse_url,
        read_password_file,
        redact_url,
        resolve_url,
        sqlite_url,
        strip_password,
        url_password,
        with_password,
    )

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

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
    "ExperimentMatch",
    "ExperimentPaths",
    "StudyMatch",
    "StudyStore",
    "Unfinished",
    "check_url",
    "database_problem",
    "default_root",
    "experiment_location",
    "find_experiment",
    "find_study",
    "is_transient",
    "journal_file",
    "journal_url",
    "list_studies",
    "locate_experiment",
    "locate_study",
    "parse_owner",
    "parse_url",
    "read_experiment_json",
    "read_json",
    "read_password_file",
    "redact_url",
    "resolve_url",
    "sqlite_url",
    "strip_password",
    "study_file_problem",
    "url_password",
    "with_password",
    "write_json",
]
