"""The storage conformance suite: every path of :class:`StudyStore`, run on SQLite, on
PostgreSQL and on an Optuna journal file (``storage_url``), and read back through Optuna's
public API only.

What a trial's start and end write is compared with the same trial written by Optuna's own
public calls (``create_new_trial``, ``set_trial_user_attr``, ``set_trial_state_values``...), so
the one-transaction writes store exactly what Optuna would.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from _storages import dispose, optuna_storage
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from spiketune import StorageError
from spiketune.engine.storage import StudyStore, journal_file, journal_url, sqlite_url

DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "tau": FloatDistribution(0.005, 0.05, step=0.005),
    "x": FloatDistribution(-1.0, 1.0),
    "n": IntDistribution(16, 256, step=16),
    "k": IntDistribution(1, 64, log=True),
    "cell": CategoricalDistribution(["lif", "alif", None, True, 3]),
}
PARAMS = {"lr": 0.0123, "tau": 0.025, "x": -0.5, "n": 128, "k": 7, "cell": None}
START_ATTRS = {"parameters": {"lr": 0.0123, "layer": {"_name": "lif", "k": [1, 2]}},
               "sequence_id": 4}
END_ATTRS = {"metrics": {"default": 0.5, "spikes": 1200}, "intermediate": [{"default": 0.1}],
             "outcome": "COMPLETE", "reason": None}
#: Constraint values as Optuna's ``Trial.set_constraint`` stores them.
END_SYSTEM_ATTRS = {"constraints:reported": 0.25, "constraints:design": 0.0,
                    "constraints:silent": 0.0}


@pytest.fixture(autouse=True)
def _not_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local time zone far from UTC, so a datetime stored in the wrong zone shows."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # UTC+05:45
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(storage_url: str) -> StudyStore:
    s = StudyStore.open(storage_url, "conformance", create=True)
    yield s
    s.close()


def _reference(storage_url: str, name: str) -> tuple[optuna.storages.BaseStorage, int]:
    """Optuna's own storage on the same database, with a study of its own."""
    rdb = optuna_storage(storage_url)
    return rdb, rdb.create_new_study([optuna.study.StudyDirection.MAXIMIZE], name)


def _shape(t: FrozenTrial) -> dict[str, Any]:
    """What a reader sees of a trial, ids and exact times aside."""
    return {
        "number": t.number,
        "state": t.state,
        "values": t.values,
        "params": t.params,
        "distributions": t.distributions,
        "user_attrs": t.user_attrs,
        "system_attrs": t.system_attrs,
        "intermediate": {k: "nan" if math.isnan(v) else v
                         for k, v in t.intermediate_values.items()},
        "started": t.datetime_start is not None,
        "completed": t.datetime_complete is not None,
    }


def _recent(when: datetime | None) -> bool:
    return when is not None and abs(datetime.now() - when) < timedelta(minutes=1)


# ------------------------------------------------------------------------------ start
def test_start_writes_what_optuna_writes(store: StudyStore, storage_url: str) -> None:
    tid, number = store.start_trial(PARAMS, DISTRIBUTIONS, START_ATTRS,
                                    trial_dir=lambda n: Path("/runs/trials") / str(n))
    assert number == 0
    mine = store.trial(tid)
    rdb, ref_study = _reference(storage_url, "reference-start")
    template = FrozenTrial(
        number=0, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params=PARAMS, distributions=DISTRIBUTIONS,
        user_attrs={**START_ATTRS, "trial_dir": "/runs/trials/0"}, system_attrs={},
        intermediate_values={}, trial_id=0,
    )
    theirs = rdb.get_trial(rdb.create_new_trial(ref_study, template_trial=template))
    assert _shape(mine) == _shape(theirs)
    assert _recent(mine.datetime_start) and mine.datetime_complete is None
    # the first heartbeat came with it, in this store's name
    (row,) = store.unfinished()
    assert (row.trial_id, row.number, row.waiting, row.owner) == (tid, 0, False, store.owner)
    assert abs(row.beat_at - time.time()) < 60
    dispose(rdb)


def test_numbers_follow_the_order_of_starts(store: StudyStore, storage_url: str) -> None:
    others = StudyStore.open(storage_url, "conformance")
    dist = {"x": FloatDistribution(0, 1)}
    numbers = []
    for i in range(6):
        writer = store if i % 2 else others
        tid, number = writer.start_trial({"x": i / 10}, dist, {"sequence_id": i})
        numbers.append(number)
        assert store.trial_id(number) == tid
    assert numbers == list(range(6))
    assert [t.number for t in store.trials()] == list(range(6))
    assert [store.trial_id(t) for t in store.trials()] == [
        others.trial_id(t.number) for t in others.trials()]
    others.close()


# ------------------------------------------------------------------------------ finish
@pytest.mark.parametrize(
    ("state", "value", "intermediate"),
    [
        (TrialState.COMPLETE, 0.75, {1: 0.1, 2: float("nan"), 3: float("inf")}),
        (TrialState.COMPLETE, [0.5, float("-inf")], {}),
        (TrialState.PRUNED, 0.2, {1: 0.3, 2: 0.2}),
        (TrialState.FAIL, None, {1: -float("inf")}),
    ],
)
def test_finish_writes_what_optuna_writes(store: StudyStore, storage_url: str,
                                          state: TrialState, value: Any,
                                          intermediate: dict[int, float]) -> None:
    tid, _ = store.start_trial(PARAMS, DISTRIBUTIONS, START_ATTRS)
    assert store.finish_trial(tid, state, value, END_ATTRS, intermediate, END_SYSTEM_ATTRS)
    mine = store.trial(tid)
    assert mine.constraints == {"reported": 0.25, "design": 0.0, "silent": 0.0}
    rdb, ref_study = _reference(storage_url, "reference-finish")
    template = FrozenTrial(
        number=0, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
        datetime_complete=None, params=PARAMS, distributions=DISTRIBUTIONS,
        user_attrs=START_ATTRS, system_attrs={}, intermediate_values={}, trial_id=0,
    )
    ref = rdb.create_new_trial(ref_study, template_trial=template)
    for step, v in intermediate.items():
        rdb.set_trial_intermediate_value(ref, step, v)
    for key, v in END_ATTRS.items():
        rdb.set_trial_user_attr(ref, key, v)
    for key, v in END_SYSTEM_ATTRS.items():
        rdb.set_trial_system_attr(ref, key, v)
    values = None if value is None else value if isinstance(value, list) else [value]
    assert rdb.set_trial_state_values(ref, state, values)
    assert _shape(mine) == _shape(rdb.get_trial(ref))
    assert _recent(mine.datetime_complete) and mine.datetime_start <= mine.datetime_complete
    assert store.unfinished() == []  # its heartbeat went with it
    dispose(rdb)


def test_a_trial_ends_once(store: StudyStore) -> None:
    tid, _ = store.start_trial({}, {}, {"sequence_id": 0})
    assert store.finish_trial(tid, TrialState.COMPLETE, 1.0, END_ATTRS, {1: 0.5})
    again = {**END_ATTRS, "outcome": "FAILED", "reason": "late"}
    assert not store.finish_trial(tid, TrialState.FAIL, None, again, {2: 0.1})
    t = store.trial(tid)
    assert (t.state, t.value, t.intermediate_values) == (TrialState.COMPLETE, 1.0, {1: 0.5})
    assert t.user_attrs["outcome"] == "COMPLETE" and t.user_attrs["reason"] is None


def test_finish_replaces_an_attribute_written_at_start(store: StudyStore) -> None:
    tid, _ = store.start_trial({}, {}, {"sequence_id": 0, "reason": "starting"})
    assert store.finish_trial(tid, TrialState.COMPLETE, 1.0, {"reason": "done"}, {})
    assert store.trial(tid).user_attrs == {"sequence_id": 0, "reason": "done"}


# ------------------------------------------------------------------------------ lost trials
def test_fail_lost_records_the_failure_and_queues_the_retry(store: StudyStore,
                                                           storage_url: str) -> None:
    tid, number = store.start_trial(PARAMS, DISTRIBUTIONS, START_ATTRS,
                                    trial_dir=lambda n: Path(f"/t/{n}"))
    lost = store.trial(tid)
    other = StudyStore.open(storage_url, "conformance")  # the worker that noticed
    failed = {"metrics": None, "intermediate": [], "outcome": "FAILED", "reason": "lost"}
    retry = {"parameters": START_ATTRS["parameters"], "sequence_id": 4, "retry_of": number,
             "attempt": 1}
    retry_number = other.fail_lost(lost, failed, retry, {1: 0.25})
    assert retry_number == number + 1
    t = store.trial(tid)
    assert (t.state, t.user_attrs["reason"], t.intermediate_values) == (
        TrialState.FAIL, "lost", {1: 0.25})
    queued = store.trial(store.trial_id(retry_number))
    assert queued.state == TrialState.WAITING and queued.datetime_start is None
    assert (queued.params, queued.distributions, queued.user_attrs) == (
        PARAMS, DISTRIBUTIONS, retry)
    assert [(r.number, r.waiting, r.owner) for r in store.unfinished()] == [
        (retry_number, True, None)]
    # the scheduler that ran it learns it lost the trial; its late result is refused
    assert store.beat([tid]) == {tid}
    assert not store.finish_trial(tid, TrialState.COMPLETE, 1.0, END_ATTRS, {})
    # recorded once: a second worker noticing too writes nothing
    assert other.fail_lost(lost, failed, retry) is None
    assert len(store.trials()) == 2
    other.close()


def test_fail_lost_without_a_retry(store: StudyStore) -> None:
    tid, _ = store.start_trial({}, {}, {"sequence_id": 0})
    attrs = {"outcome": "FAILED", "reason": "lost"}
    assert store.fail_lost(store.trial(tid), attrs, None) == -1
    assert [t.state for t in store.trials()] == [TrialState.FAIL]


def _race(stores: list[StudyStore], take: Callable[[int, StudyStore], Any]) -> list[list[Any]]:
    """What each of ``stores`` got from ``take(i, store)``, called until it returns None; the
    stores start at once, one thread each."""
    got: list[list[Any]] = [[] for _ in stores]
    barrier = threading.Barrier(len(stores))

    def take_all(i: int) -> None:
        barrier.wait()
        while (item := take(i, stores[i])) is not None:
            got[i].append(item)

    threads = [threading.Thread(target=take_all, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return got


def test_each_waiting_trial_is_taken_once(storage_url: str) -> None:
    StudyStore.open(storage_url, "queue", create=True).close()
    stores = [StudyStore.open(storage_url, "queue") for _ in range(3)]
    first = stores[0]
    lost = []
    for i in range(6):
        tid, _ = first.start_trial({"x": i / 10}, {"x": FloatDistribution(0, 1)},
                                   {"sequence_id": i})
        lost.append(first.trial(tid))
    for t in lost:
        first.fail_lost(t, {"outcome": "FAILED"}, {"sequence_id": t.user_attrs["sequence_id"],
                                                   "attempt": 1})
    taken = _race(stores, lambda i, store: store.take_waiting(lambda n: Path(f"/w{i}/{n}")))
    got = sorted((t.number, i) for i, part in enumerate(taken) for t in part)
    assert [n for n, _ in got] == list(range(6, 12))  # every retry, each by one store
    owners = {r.number: r.owner for r in first.unfinished()}
    for number, i in got:
        t = first.trial(first.trial_id(number))
        assert t.state == TrialState.RUNNING and _recent(t.datetime_start)
        assert t.user_attrs["trial_dir"] == f"/w{i}/{number}"
        assert owners[number] == stores[i].owner
        assert t.params == {"x": (number - 6) / 10}
    assert all(s.take_waiting(lambda n: Path("/x")) is None for s in stores)
    for s in stores:
        s.close()


# ------------------------------------------------------------------------------ claims, beats
def test_claims_are_exact_between_racing_stores(storage_url: str) -> None:
    StudyStore.open(storage_url, "claims", create=True).close()
    stores = [StudyStore.open(storage_url, "claims") for _ in range(4)]
    got = _race(stores, lambda _, store: store.claim(30))
    assert sorted(s for part in got for s in part) == list(range(30))
    assert stores[0].claims_used() == 30 and stores[0].claim(30) is None
    assert stores[1].claim(None) == 30  # no limit: the next sequence id
    for s in stores:
        s.close()


def test_heartbeats_are_renewed_and_end_with_the_trial(store: StudyStore) -> None:
    a, _ = store.start_trial({}, {}, {"sequence_id": 0})
    b, _ = store.start_trial({}, {}, {"sequence_id": 1})
    before = {r.trial_id: r.beat_at for r in store.unfinished()}
    time.sleep(0.05)
    assert store.beat([a, b]) == set()
    after = {r.trial_id: r.beat_at for r in store.unfinished()}
    assert after[a] > before[a] and after[b] > before[b]
    assert store.finish_trial(a, TrialState.COMPLETE, 1.0, {}, {})
    assert [r.trial_id for r in store.unfinished()] == [b]
    assert store.beat([a, b]) == {a}  # a's row is gone: it is no longer this store's


def test_new_finished_trials_reads_only_what_is_new(store: StudyStore, storage_url: str) -> None:
    other = StudyStore.open(storage_url, "conformance")
    mine, _ = store.start_trial({}, {}, {"sequence_id": 0})
    theirs, _ = other.start_trial({}, {}, {"sequence_id": 1})
    running, _ = other.start_trial({}, {}, {"sequence_id": 2})
    store.finish_trial(mine, TrialState.COMPLETE, 1.0, {}, {})
    other.finish_trial(theirs, TrialState.COMPLETE, 2.0, {}, {})
    new = store.new_finished_trials({mine})
    assert [(store.trial_id(t), t.value) for t in new] == [(theirs, 2.0)]
    assert store.new_finished_trials({mine, theirs}) == []
    assert running not in {store.trial_id(t) for t in store.new_finished_trials(set())}
    other.close()


def test_summaries_are_what_optuna_reads(store: StudyStore, storage_url: str) -> None:
    """The light read of a listing (``StudyStore.summaries``) gives of every trial what
    Optuna's ``get_all_trials`` gives: number, state, values (infinite ones, several), and
    the user attributes asked for, of spiketune's trials and of one Optuna wrote itself."""
    dist = {"x": FloatDistribution(0, 1)}
    keys = ("outcome", "metrics", "constraints")
    ended = [(TrialState.COMPLETE, 0.75, END_ATTRS),
             (TrialState.COMPLETE, [0.5, float("-inf")], {**END_ATTRS, "constraints": [0.2]}),
             (TrialState.PRUNED, 0.2, {"outcome": "EARLY_STOPPED", "metrics": None}),
             (TrialState.FAIL, None, {"outcome": "FAILED", "reason": "boom"})]
    for i, (state, value, attrs) in enumerate(ended):
        tid, _ = store.start_trial({"x": i / 10}, dist, {**START_ATTRS, "sequence_id": i})
        assert store.finish_trial(tid, state, value, attrs, {1: 0.1})
    store.start_trial({"x": 0.9}, dist, {"sequence_id": 9})  # still running
    rdb = optuna_storage(storage_url)
    rdb.create_new_trial(store.study_id, template_trial=optuna.trial.create_trial(
        params={"x": 0.5}, distributions=dist, value=float("inf"), user_attrs={"note": 1}))
    dispose(rdb)
    read = store.summaries(keys)
    assert [(s.number, s.state, s.values, s.attrs) for s in read] == [
        (t.number, t.state.name, t.values, {k: t.user_attrs[k] for k in keys
                                             if k in t.user_attrs})
        for t in store.trials()]
    assert [s.values for s in read] == [[0.75], [0.5, float("-inf")], [0.2], None, None,
                                        [float("inf")]]
    assert read[1].attrs == {"metrics": END_ATTRS["metrics"], "outcome": "COMPLETE",
                             "constraints": [0.2]}


# ------------------------------------------------------------------------------ opening
def test_opening_errors_name_the_study(storage_url: str) -> None:
    StudyStore.open(storage_url, "there", create=True).close()
    with pytest.raises(StorageError, match="already exists"):
        StudyStore.open(storage_url, "there", create=True)
    with pytest.raises(StorageError, match="no study 'elsewhere'"):
        StudyStore.open(storage_url, "elsewhere")
    with pytest.raises(StorageError, match="no study 'elsewhere'") as info:
        StudyStore.open(storage_url, "elsewhere", read_only=True)
    assert "interrupted" not in str(info.value)  # the database holds another study


def test_a_sqlite_database_in_a_directory_that_does_not_exist_is_named(tmp_path: Path) -> None:
    """As a journal's: the directory, not the driver's 'unable to open database file'."""
    for parent, what in ((tmp_path / "nodir", "does not exist"),
                         (tmp_path / "afile", "is not a directory")):
        if what == "is not a directory":
            parent.write_text("a file")
        url = f"sqlite:///{parent / 'study.db'}"
        with pytest.raises(StorageError, match=f"its directory {parent} {what}"):
            StudyStore.open(url, "s", create=True)
        with pytest.raises(StorageError, match=f"its directory {parent} {what}"):
            StudyStore.join_or_create(url, "s", "s-1", direction="maximize", attrs={})


def test_a_database_of_no_study_says_its_creation_was_interrupted(tmp_path: Path) -> None:
    """Killed between its tables and its study (a ``spiketune run`` cut short at its start):
    resuming it says what happened and what to do, not only that the study is missing."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    StudyStore.open(url, "gone", create=True).close()
    optuna.delete_study(study_name="gone", storage=url)
    with pytest.raises(StorageError, match="no study 'early'") as info:
        StudyStore.open(url, "early")
    assert "creation was interrupted before anything was recorded" in str(info.value)


def test_read_only_store_reads_and_refuses_every_write(store: StudyStore,
                                                       storage_url: str) -> None:
    tid, _ = store.start_trial(PARAMS, DISTRIBUTIONS, START_ATTRS)
    store.finish_trial(tid, TrialState.COMPLETE, 0.5, END_ATTRS, {1: 0.2})
    running, _ = store.start_trial({}, {}, {"sequence_id": 1})
    reader = StudyStore.open(storage_url, "conformance", read_only=True)
    assert [_shape(t) for t in reader.trials()] == [_shape(t) for t in store.trials()]
    assert reader.trial_id(1) == running
    assert [r.trial_id for r in reader.unfinished()] == [running]
    assert reader.claims_used() == 0 and reader.directions == ["maximize"]
    writes = [
        lambda: reader.claim(None),
        lambda: reader.start_trial({}, {}, {}),
        lambda: reader.finish_trial(running, TrialState.COMPLETE, 1.0, {}, {}),
        lambda: reader.fail_lost(reader.trial(running), {}, None),
        lambda: reader.take_waiting(lambda n: Path("/x")),
        lambda: reader.beat([running]),
        lambda: reader.set_study_attr("k", 1),
    ]
    for write in writes:
        with pytest.raises(StorageError, match="read-only"):
            write()
    reader.close()
    assert store.trial(running).state == TrialState.RUNNING


def test_a_database_refuses_writes_of_a_read_only_opening(store: StudyStore,
                                                          storage_url: str) -> None:
    """Not only the store's own checks: the driver itself refuses (SQLite mode=ro,
    PostgreSQL read-only transactions)."""
    reader = StudyStore.open(storage_url, "conformance", read_only=True)
    with pytest.raises(Exception) as refused:
        reader.storage.set_study_user_attr(reader.study_id, "sneaky", 1)
    reader.close()
    causes = [refused.value, refused.value.__cause__, refused.value.__context__]
    assert any(re.search(r"(?i)read-?only", str(e)) for e in causes if e is not None)
    assert "sneaky" not in store.study_attrs()


def test_an_unknown_optuna_schema_is_refused_for_writing(storage_url: str,
                                                        monkeypatch) -> None:
    if journal_file(storage_url) is not None:
        pytest.skip("a journal has no schema revision: its lines are Optuna's own calls")
    StudyStore.open(storage_url, "schema", create=True).close()
    monkeypatch.setattr(optuna.storages.RDBStorage, "get_current_version",
                        lambda self: "v99.0.0.a")
    with pytest.raises(StorageError, match=r"v99\.0\.0\.a"):
        StudyStore.open(storage_url, "schema")
    reader = StudyStore.open(storage_url, "schema", read_only=True)  # reading still works
    assert reader.trials() == []
    reader.close()


def test_sqlite_paths_with_url_characters(tmp_path: Path) -> None:
    odd = tmp_path / "a b?c#d%e"
    odd.mkdir()
    url = sqlite_url(odd / "study.db")
    StudyStore.open(url, "odd", create=True).close()
    assert (odd / "study.db").is_file()
    reader = StudyStore.open(url, "odd", read_only=True)
    assert reader.trials() == []
    reader.close()


def test_journal_paths_with_url_characters(tmp_path: Path) -> None:
    odd = tmp_path / "a b?c#d%e"
    odd.mkdir()
    url = journal_url(odd / "study.log")
    assert journal_file(url) == odd / "study.log"
    StudyStore.open(url, "odd", create=True).close()
    assert (odd / "study.log").is_file()
    reader = StudyStore.open(url, "odd", read_only=True)
    assert reader.trials() == []
    reader.close()
