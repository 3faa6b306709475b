"""A study in an Optuna journal file (``journal:///path/study.log``), beyond the conformance
suite (test_storage.py) and the worker tests (test_workers.py), which run on it too: the URL's
rules at the edge, reading commands that never create or change the journal, the lock shared
with Optuna, transactions, and a line left unfinished by a killed writer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from _storages import optuna_storage
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from typer.testing import CliRunner

from spiketune import ConfigError, Experiment, ExperimentConfig, StorageError
from spiketune.cli import app
from spiketune.engine.storage import StudyStore, check_url, journal_file, journal_url

SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}
READING = [["trials", "{ref}"], ["best", "{ref}"], ["export", "{ref}"], ["report", "{ref}"],
           ["view", "{ref}"], ["ls"]]


def _files(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of ``directory``: contents and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def journal_experiment(exp_root: Path, tmp_path: Path) -> tuple[Experiment, Path]:
    """An experiment of 3 trials stored in ``tmp_path/shared/study.log``."""
    (tmp_path / "shared").mkdir()
    log = tmp_path / "shared" / "study.log"
    exp = Experiment(trial=lambda p: p["x"], search_space=SPACE, max_trials=3,
                     storage=journal_url(log), name="onjournal")
    exp.run()
    return exp, log


# ------------------------------------------------------------------------------ the URL
@pytest.mark.parametrize(("url", "rule"), [
    ("journal://nfs-server/shared/study.log", "names no host"),
    ("journal:///shared/study.log?lock=none", "no ?query"),
    ("journal:///shared/study#1.log", "percent-encode"),
    ("journal:///shared/", "names a file, not a directory"),
    ("journal:study.log", "starts with journal://"),
])
def test_a_journal_url_that_breaks_a_rule_is_refused_at_the_edge(url: str, rule: str) -> None:
    assert rule in (check_url(url) or "")
    with pytest.raises(ConfigError) as refused:
        ExperimentConfig(search_space=SPACE, storage=url)
    (problem,) = refused.value.problems
    assert problem.field == "storage" and problem.value == url and rule in problem.rule
    with pytest.raises(StorageError, match=rule.replace("?", r"\?")):
        StudyStore.open(url, "x", create=True)


def test_a_journal_url_round_trips_odd_file_names(tmp_path: Path) -> None:
    path = tmp_path / "a b?c#d%e" / "study.log"
    url = journal_url(path)
    assert check_url(url) is None and journal_file(url) == path
    config = ExperimentConfig(search_space=SPACE, storage=url)
    assert config.to_dict()["storage"] == url  # no password to strip: stored as given


def test_a_new_journal_needs_its_directory(tmp_path: Path) -> None:
    url = journal_url(tmp_path / "not-made" / "study.log")
    with pytest.raises(StorageError, match="does not exist"):
        StudyStore.open(url, "x", create=True)
    assert not (tmp_path / "not-made").exists()


def test_a_file_that_is_no_journal_is_named_as_such(tmp_path: Path) -> None:
    log = tmp_path / "study.log"
    log.write_bytes(b"SQLite format 3\x00")
    with pytest.raises(StorageError, match="not an Optuna journal"):
        StudyStore.open(journal_url(log), "x", read_only=True)
    assert log.read_bytes() == b"SQLite format 3\x00"


# ------------------------------------------------------------------------------ reading
@pytest.mark.parametrize("command", READING, ids=[c[0] for c in READING])
def test_reading_a_missing_journal_creates_nothing(journal_experiment, command: list[str],
                                                   tmp_path: Path) -> None:
    """The experiment's directory is here, its journal is gone (a disk not mounted): every
    reading command says which file is missing, exits 1, and creates none of its files."""
    exp, log = journal_experiment
    for p in log.parent.iterdir():
        p.unlink()
    args = [a.format(ref=exp.id) for a in command]
    if command[0] == "report":
        args += ["--out", str(tmp_path / "report")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, KeyError)
    assert f"the study journal {log} is missing" in result.output.replace("\n", "")
    assert list(log.parent.iterdir()) == []
    if command[0] == "ls":  # the table says what is wrong, as for a missing study.db
        row = next(line for line in result.output.splitlines() if exp.id[:8] in line)
        assert "missing" in row and "unreadable" not in row, row


@pytest.mark.parametrize("command", [["ls"], ["trials", "anything"], ["best", "anything"],
                                     ["export", "anything"], ["stop", "anything"],
                                     ["view", "anything"]],
                         ids=["ls", "trials", "best", "export", "stop", "view"])
def test_a_storage_option_naming_a_missing_journal_creates_nothing(
        exp_root: Path, tmp_path: Path, command: list[str]) -> None:
    log = tmp_path / "study.log"
    result = CliRunner().invoke(app, [*command, "--storage", journal_url(log)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"the study journal {log} is missing" in result.output.replace("\n", "")
    assert list(tmp_path.iterdir()) == [exp_root]


def test_reading_commands_leave_the_journal_as_it_was(journal_experiment) -> None:
    exp, log = journal_experiment
    before = _files(log.parent)
    assert set(before) == {"study.log", "study.log.spiketune"}  # no lock left behind
    runner = CliRunner()
    storage = ["--storage", journal_url(log)]
    for args in (["ls", *storage], ["trials", exp.id, *storage], ["best", exp.id, "--json"],
                 ["export", "onjournal", "--format", "json", *storage]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert exp.id in result.output or '"value"' in result.output
    assert _files(log.parent) == before
    reader = StudyStore.open(journal_url(log), exp.id, read_only=True)
    assert [t.state for t in reader.trials()] == [TrialState.COMPLETE] * 3
    with pytest.raises(StorageError, match="read-only"):
        reader.storage.set_study_user_attr(reader.study_id, "sneaky", 1)
    with pytest.raises(StorageError, match="read-only"):
        reader._tables().register("sneaky", exp.id)
    reader.close()
    assert _files(log.parent) == before


# ------------------------------------------------------------------------------ the lock
def test_the_lock_is_the_one_optuna_takes(tmp_path: Path) -> None:
    """While spiketune writes, Optuna's own lock file is taken: a plain Optuna process
    (symlink or open lock, both on study.log.lock) waits for it."""
    log = tmp_path / "study.log"
    store = StudyStore.open(journal_url(log), "lock", create=True)
    lock_file = tmp_path / "study.log.lock"
    with store._optuna().begin():
        assert lock_file.exists()
        with pytest.raises(FileExistsError):
            os.symlink(log, lock_file)  # what JournalFileSymlinkLock tries
        with pytest.raises(FileExistsError):
            os.close(os.open(lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        assert store.claim(None) == 0  # re-entrant within the store that holds it
    assert not lock_file.exists()
    store.close()


def test_a_transaction_that_fails_writes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "study.log"
    store = StudyStore.open(journal_url(log), "atomic", create=True)
    tid, _ = store.start_trial({"x": 0.5}, {"x": FloatDistribution(0, 1)}, {"sequence_id": 0})
    before = _files(tmp_path)
    writes, records = store._optuna(), store._tables()
    with pytest.raises(RuntimeError), writes.begin() as tx:
        assert writes.finish(tx, tid, TrialState.COMPLETE, [1.0], {"k": 1}, {1: 0.5})
        records.delete_beat(tx, tid)
        raise RuntimeError("the scheduler fails mid-write")
    assert _files(tmp_path) == before
    assert store.trial(tid).state == TrialState.RUNNING and store.beat([tid]) == set()
    store.close()


@pytest.mark.parametrize("log_name", ["study.log", "study.log.spiketune"])
def test_a_line_cut_short_by_a_killed_writer_is_cut_off(tmp_path: Path, log_name: str) -> None:
    """A writer killed mid-write leaves half a line; the next writer (under the lock) cuts
    it off before appending, so every line stays whole and Optuna's reader does not stop."""
    log = tmp_path / "study.log"
    store = StudyStore.open(journal_url(log), "torn", create=True)
    assert store.claim(None) == 0
    tid, _ = store.start_trial({}, {}, {"sequence_id": 0})
    torn = tmp_path / log_name
    whole = torn.read_bytes()
    with open(torn, "ab") as f:
        f.write(b'{"op_code":8,"worker_id":"gone","trial_id":0,"user_at')  # killed mid-write
    other = StudyStore.open(journal_url(log), "torn")  # reads past it: not a whole line
    assert other.trial(tid).state == TrialState.RUNNING and other.claims_used() == 1
    assert other.claim(None) == 1
    assert other.finish_trial(tid, TrialState.COMPLETE, 1.0, {"outcome": "COMPLETE"}, {})
    assert torn.read_bytes().startswith(whole) and b"gone" not in torn.read_bytes()
    assert torn.read_bytes().endswith(b"\n")
    plain = optuna_storage(journal_url(log))  # Optuna itself reads the whole log
    (trial,) = plain.get_all_trials(plain.get_study_id_from_name("torn"))
    assert trial.state == TrialState.COMPLETE and trial.user_attrs == {
        "sequence_id": 0, "outcome": "COMPLETE"}
    assert store.claims() == {0: store.owner, 1: other.owner}
    store.close()
    other.close()


def test_heartbeats_are_kept_apart_from_optuna_log(tmp_path: Path) -> None:
    """Renewing heartbeats writes spiketune's log only: readers of Optuna's log (every
    results command) do not replay them."""
    log = tmp_path / "study.log"
    store = StudyStore.open(journal_url(log), "beats", create=True)
    tid, _ = store.start_trial({}, {}, {"sequence_id": 0})
    size = log.stat().st_size
    first = store.unfinished()[0].beat_at
    time.sleep(0.01)
    for _ in range(5):
        assert store.beat([tid]) == set()
    assert log.stat().st_size == size
    assert store.unfinished()[0].beat_at > first
    store.close()
