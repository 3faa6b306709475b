"""Shared fixtures: an isolated experiments root, trial scripts written on the fly, one torch
thread for tests of small networks, and the storages."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small tensors: one torch thread is faster, and immune to other processes on the cores.
    Test modules of small networks use it for every test (``pytestmark``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def exp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh experiments root, also exported as SPIKETUNE_EXPERIMENTS (so ids resolve)."""
    root = tmp_path / "experiments"
    root.mkdir()
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(root))
    return root


@pytest.fixture
def trial_script(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``code`` (dedented) as ``tmp_path/code/<name>`` and return the code directory."""
    code_dir = tmp_path / "code"
    code_dir.mkdir()

    def write(code: str, name: str = "trial.py") -> Path:
        (code_dir / name).write_text(textwrap.dedent(code), encoding="utf-8")
        return code_dir

    return write


# ----------------------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on 127.0.0.1 for the whole session (see tests/_postgres.py).

    Installed with apt-get when missing; skipped with the reason when that is impossible,
    except in CI (``CI=true``), where it must run.
    """
    import os

    import _postgres

    try:
        server = _postgres.start()
    except _postgres.Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {e}")
        pytest.skip(f"no PostgreSQL server: {e}")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """The URL (with password) of a new, empty database of the session's server."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql", "journal"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on every storage: a SQLite file, a PostgreSQL database, and an Optuna
    journal file (``journal:///...``, the study without a database server)."""
    if request.param == "sqlite":
        from spiketune.engine.storage import sqlite_url

        return sqlite_url(tmp_path / "shared.db")
    if request.param == "journal":
        from spiketune.engine.storage import journal_url

        (tmp_path / "shared").mkdir()
        return journal_url(tmp_path / "shared" / "study.log")
    return request.getfixturevalue("postgres_url")
