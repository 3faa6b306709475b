"""Finding an experiment by path, id, name or prefix; and reading one never writes: a missing,
empty or corrupt study is one clear message and exit code 1, never a fresh study.db."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spiketune import Experiment, StorageError
from spiketune.cli import app
from spiketune.engine.results import load_results
from spiketune.engine.storage import (
    ExperimentPaths,
    StudyStore,
    find_experiment,
    find_study,
    list_studies,
    locate_experiment,
    sqlite_url,
    study_file_problem,
)

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}


def _trial(params: dict) -> float:
    return params["x"]


def _run(exp_root: Path, name: str, trials: int = 2) -> Experiment:
    exp = Experiment(trial=_trial, search_space=SPACE, max_trials=trials, name=name,
                     experiment_dir=exp_root, tuner="Random", seed=0)
    exp.run()
    return exp


def _fake(root: Path, exp_id: str, name: str, created: str) -> Path:
    """An experiment directory with only its experiment.json (enough to be found)."""
    d = root / exp_id
    d.mkdir()
    (d / "experiment.json").write_text(json.dumps({"id": exp_id, "name": name,
                                                   "created": created}))
    return d


# ------------------------------------------------------------------------------ names
def test_an_exact_name_wins_over_a_prefix(exp_root: Path) -> None:
    faults = _fake(exp_root, "faults-1a2b3c4d", "faults", "2025-01-01T10:00:00")
    _fake(exp_root, "faults2-5e6f7a8b", "faults2", "2025-01-02T10:00:00")
    found = locate_experiment("faults")
    assert (found.directory, found.notice) == (faults.resolve(), None)
    assert find_experiment("faults2") == (exp_root / "faults2-5e6f7a8b").resolve()
    with pytest.raises(StorageError, match="ambiguous"):
        find_experiment("fault")  # a prefix of both, and the name of neither
    assert find_experiment("faults-1a") == faults.resolve()  # a unique id prefix still works


def test_an_exact_id_wins_over_a_name(exp_root: Path) -> None:
    named = _fake(exp_root, "other-00000000", "alpha-11111111", "2025-01-02T10:00:00")
    by_id = _fake(exp_root, "alpha-11111111", "alpha", "2025-01-01T10:00:00")
    assert find_experiment("alpha-11111111") == by_id.resolve() != named.resolve()


def test_a_shared_name_takes_the_most_recent_and_says_so(exp_root: Path) -> None:
    old = _fake(exp_root, "same-aaaaaaaa", "same", "2025-01-01T10:00:00")
    new = _fake(exp_root, "same-bbbbbbbb", "same", "2025-03-01T10:00:00")
    mid = _fake(exp_root, "same-cccccccc", "same", "2025-02-01T10:00:00")
    found = locate_experiment("same")
    assert found.directory == new.resolve()
    assert found.notice is not None
    assert "3 experiments are named 'same'" in found.notice
    assert "same-bbbbbbbb" in found.notice
    assert found.notice.index(mid.name) < found.notice.index(old.name)  # newest first
    with pytest.warns(UserWarning, match="3 experiments are named 'same'"):
        assert find_experiment("same") == new.resolve()


def test_the_cli_finds_by_name_and_prints_the_notice(exp_root: Path) -> None:
    faults = _run(exp_root, "faults")
    _run(exp_root, "faults2")
    runner = CliRunner()
    result = runner.invoke(app, ["trials", "faults"])
    assert result.exit_code == 0, result.output
    assert faults.id in result.output and "note:" not in result.output
    again = _run(exp_root, "faults")
    os.utime(again.paths.experiment_json)  # the most recent, even within one second
    result = runner.invoke(app, ["trials", "faults"])
    assert result.exit_code == 0, result.output
    assert "note: 2 experiments are named 'faults'" in " ".join(result.output.split())
    assert again.id in result.output and faults.id in result.output


# ------------------------------------------------------------------------------ read-only
def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _break(study_db: Path, how: str) -> None:
    for extra in (study_db.with_name("study.db-wal"), study_db.with_name("study.db-shm")):
        extra.unlink(missing_ok=True)
    if how == "removed":
        study_db.unlink()
    elif how == "empty":
        study_db.write_bytes(b"")
    else:
        study_db.write_bytes(b"not a database, but some text\n" * 100)


PROBLEMS = {"removed": "is missing", "empty": "is empty (0 bytes)",
            "garbage": "is not an SQLite database"}


@pytest.mark.parametrize("how", sorted(PROBLEMS))
def test_reading_commands_never_create_or_change_a_study(exp_root: Path, how: str) -> None:
    exp = _run(exp_root, "broken")
    study_db = ExperimentPaths(exp.directory).study_db
    _break(study_db, how)
    before = (_digest(study_db), sorted(p.name for p in exp.directory.iterdir()))
    runner = CliRunner()
    for command in (["trials", exp.id], ["best", exp.id], ["export", exp.id, "-f", "json"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
        assert str(study_db) in " ".join(result.output.split()) and PROBLEMS[how] in errors[0]
        assert (_digest(study_db), sorted(p.name for p in exp.directory.iterdir())) == before
    with pytest.raises(StorageError, match=r"is (missing|empty|not an SQLite)"):
        load_results(exp.id)
    assert (_digest(study_db), sorted(p.name for p in exp.directory.iterdir())) == before


@pytest.mark.parametrize("how", sorted(PROBLEMS))
def test_ls_shows_a_broken_study_and_fails(exp_root: Path, how: str) -> None:
    good = _run(exp_root, "good")
    broken = _run(exp_root, "broken")
    _break(ExperimentPaths(broken.directory).study_db, how)
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 1, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines()
            if line.startswith("│") and len(line.split()) > 2}
    assert ("missing" if how == "removed" else "corrupt") in rows[broken.id]
    assert "done" in rows[good.id]
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and broken.id in errors[0]
    assert not (how == "removed" and ExperimentPaths(broken.directory).study_db.exists())


@pytest.mark.parametrize("left", ["without its study", "without Optuna's version",
                                  "without Optuna's revision"])
def test_a_study_whose_creation_was_killed_is_named_so_by_the_reading_commands(
    exp_root: Path, left: str
) -> None:
    """``spiketune run`` killed between Optuna's tables and its study (or before Optuna
    recorded its schema version, which a read-only opening cannot write): every command says
    what resume says, not the driver's refusal of a write; ls lists it as corrupt."""
    import sqlite3

    import optuna

    exp = _run(exp_root, "half")
    study_db = ExperimentPaths(exp.directory).study_db
    storage = optuna.storages.RDBStorage(sqlite_url(study_db))
    storage.delete_study(storage.get_study_id_from_name(exp.id))
    storage.engine.dispose()
    table = {"without Optuna's version": "version_info",
             "without Optuna's revision": "alembic_version"}.get(left)
    conn = sqlite3.connect(study_db, isolation_level=None)
    if table is not None:
        conn.execute(f"DELETE FROM {table}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in study.db: its digest says it all
    conn.close()
    before = _digest(study_db)
    said = (f"no study '{exp.id}' in the study database {study_db}; it holds no study: the "
            "experiment's creation was interrupted before anything was recorded, so run its "
            "configuration again")
    runner = CliRunner()
    for command in (["trials", exp.id], ["best", exp.id], ["ls"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1, (command, result.output)
        errors = " ".join(result.output.split()).split("error: ")[1:]
        assert len(errors) == 1 and said in errors[0], (command, result.output)
    rows = [line for line in result.output.splitlines() if exp.id in line and "│" in line]
    assert "corrupt" in rows[0]
    assert _digest(study_db) == before
    with pytest.raises(StorageError, match="interrupted before anything was recorded"):
        Experiment.load(exp.id, trial=_trial).resume()


def test_reading_a_healthy_study_leaves_its_file_as_it_was(exp_root: Path) -> None:
    exp = _run(exp_root, "healthy", trials=3)
    study_db = ExperimentPaths(exp.directory).study_db
    before = _digest(study_db)
    assert len(load_results(exp.id).records) == 3
    assert CliRunner().invoke(app, ["trials", exp.id]).exit_code == 0
    assert _digest(study_db) == before


def test_study_file_problems(tmp_path: Path) -> None:
    assert study_file_problem(tmp_path / "none.db") == "missing"
    assert study_file_problem(tmp_path) == "a directory, not a file"
    (tmp_path / "empty.db").write_bytes(b"")
    assert study_file_problem(tmp_path / "empty.db") == "empty (0 bytes)"
    (tmp_path / "text.db").write_text("hello")
    assert study_file_problem(tmp_path / "text.db") == "not an SQLite database"
    StudyStore.open(sqlite_url(tmp_path / "ok.db"), "s", create=True).close()
    assert study_file_problem(tmp_path / "ok.db") is None


def test_database_lookups_never_create_a_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "none.db")
    for lookup in (lambda: find_study(url, "x"), lambda: list_studies(url),
                   lambda: StudyStore.open(url, "x"),
                   lambda: StudyStore.open(url, "x", read_only=True)):
        with pytest.raises(StorageError, match=r"none\.db is missing"):
            lookup()
    assert not (tmp_path / "none.db").exists()


def test_database_lookups_on_postgresql_create_no_table(postgres_url: str) -> None:
    import psycopg

    from spiketune.engine.storage import parse_url

    with pytest.raises(StorageError, match="holds no Optuna study"):
        find_study(postgres_url, "x")
    with pytest.raises(StorageError, match="holds no Optuna study"):
        list_studies(postgres_url)
    parsed = parse_url(postgres_url)
    with psycopg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                         password=parsed.password, dbname=parsed.database) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchall() == []


def test_an_sqlite_file_of_something_else_is_named_and_left_alone(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    before = _digest(other)
    url = sqlite_url(other)
    for lookup in (lambda: find_study(url, "x"), lambda: list_studies(url),
                   lambda: StudyStore.open(url, "x", read_only=True)):
        with pytest.raises(StorageError, match=r"other\.db holds no Optuna study"):
            lookup()
    assert _digest(other) == before
    with sqlite3.connect(other) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["notes"]


def test_experiments_in_a_database_are_found_by_name_over_prefix(storage_url: str) -> None:
    from spiketune.engine.storage import ATTR_CONFIG, locate_study

    for study, name in (("faults-00000001", "faults"), ("faults2-00000002", "faults2"),
                        ("same-00000003", "same"), ("same-00000004", "same")):
        store = StudyStore.open(storage_url, study, create=True)
        store.set_study_attr(ATTR_CONFIG, {"name": name})
        store.close()
    assert locate_study(storage_url, "faults").experiment_id == "faults-00000001"
    assert locate_study(storage_url, "faults").notice is None
    assert find_study(storage_url, "faults2-0") == "faults2-00000002"
    same = locate_study(storage_url, "same")
    assert same.experiment_id == "same-00000004"
    assert same.notice is not None and "same-00000003" in same.notice
    with pytest.raises(StorageError, match="ambiguous"):
        find_study(storage_url, "fault")
    assert [s["id"] for s in list_studies(storage_url)] == [
        "faults-00000001", "faults2-00000002", "same-00000003", "same-00000004"]
