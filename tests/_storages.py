"""Optuna's own storage on a test's study (database or journal), to read or write it the way a
plain Optuna user would, beside spiketune."""

from __future__ import annotations

import optuna

from spiketune.engine.storage import journal_file, resolve_url


def optuna_storage(storage_url: str) -> optuna.storages.BaseStorage:
    """An ``RDBStorage`` on the database, or a ``JournalStorage`` on the journal file with the
    lock spiketune takes (as an Optuna user on a shared disk would open it)."""
    path = journal_file(storage_url)
    if path is not None:
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage

        return JournalStorage(JournalFileBackend(str(path),
                                                 lock_obj=JournalFileOpenLock(str(path))))
    return optuna.storages.RDBStorage(resolve_url(storage_url).replace(
        "postgresql://", "postgresql+psycopg://"))


def dispose(storage: optuna.storages.BaseStorage) -> None:
    """Close what ``storage`` holds open (a database's connections; a journal holds none)."""
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.engine.dispose()
