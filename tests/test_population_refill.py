"""Population mode with refills: a running population takes new members in the places of
those that ended (``spiketune.trial.joining``), each still recorded as its own trial."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import alive, wait_for
from test_population_mode import _experiment, _log

from spiketune import Experiment, Outcome
from spiketune.engine.runners import end_trial_leftovers
from spiketune.trial import _protocol as protocol

# Each member trains ``n`` epochs (its own count) and reports x * epoch; after every round the
# script takes the members offered to it, and once it has none left it waits ``LINGER``
# seconds for more before it says it takes no more. ``JOIN=never`` only says it accepts
# (one call of joining()) and never takes any. A ``crash`` file kills the process once a
# joined member has trained an epoch.
JOIN_TRIAL = """
    import json, os, pathlib, time
    import spiketune.trial as st

    log = pathlib.Path(os.environ["POP_LOG"])
    crash = log.with_name("crash")
    never = os.environ.get("JOIN") == "never"

    def note(kind, members):
        with open(log, "a") as f:
            for m in members:
                f.write(json.dumps({"trial": m.trial_id, "kind": kind, "pid": os.getpid()})
                        + "\\n")
        print(kind, [m.trial_id for m in members], flush=True)

    live = {m: 0 for m in st.population()}
    initial = {m.trial_id for m in live}
    note("initial", live)
    if never:
        st.joining()
    linger = float(os.environ.get("LINGER", "3"))
    waited = 0.0
    while True:
        for m in list(live):
            if m.should_stop():
                del live[m]
                continue
            live[m] += 1
            m.report_intermediate_result({"default": m.parameters["x"] * live[m]})
            if live[m] >= m.parameters["n"]:
                m.report_final_result({"default": m.parameters["x"] * live[m],
                                       "pid": os.getpid()})
                del live[m]
        if crash.exists() and any(m.trial_id not in initial for m in live):
            crash.unlink()
            os.kill(os.getpid(), 9)
        time.sleep(0.1)
        new = [] if never else st.joining()
        note("joined", new)
        live.update({m: 0 for m in new})
        if live:
            waited = 0.0
        elif never or waited >= linger:
            break
        else:
            waited += 0.1
    st.stop_joining()
"""


def _three_trials(code: Path, root: Path, epochs: list[int]) -> Experiment:
    """Trials 0, 1, 2 with x = 1, 2, 3 and these epoch counts, two to a population."""
    space = {"x": {"_type": "choice", "_value": [1.0, 2.0, 3.0]},
             "n": {"_type": "choice", "_value": sorted(set(epochs))}}
    return _experiment(code, root, population=2, max_trials=3, search_space=space,
                       tuner="Random", start_with=[{"x": float(i + 1), "n": n}
                                                   for i, n in enumerate(epochs)])


def test_ended_members_are_replaced_in_the_running_process(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    space = {"x": {"_type": "choice", "_value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]},
             "n": {"_type": "choice", "_value": [3]}}
    exp = _experiment(trial_script(JOIN_TRIAL), exp_root, population=2, max_trials=6,
                      search_space=space)
    results = exp.run()

    assert len(results.records) == 6  # max_trials stays exact
    for r in results.records:
        assert r.outcome == Outcome.COMPLETE, r.reason
        x = r.parameters["x"]
        assert [i["default"] for i in r.intermediate] == pytest.approx([x, 2 * x, 3 * x])
        assert r.metrics["default"] == pytest.approx(3 * x)
    entries = _log(log)
    assert {e["pid"] for e in entries} == {entries[0]["pid"]}  # one process trained all six
    assert sorted(e["trial"] for e in entries if e["kind"] == "initial") == ["0", "1"]
    joined = sorted(int(e["trial"]) for e in entries if e["kind"] == "joined")
    assert joined == [2, 3, 4, 5]
    assert {r.metrics["pid"] for r in results.records} == {entries[0]["pid"]}
    population = exp.directory / "populations" / "0"
    assert sorted(p.name for p in (population / "joined").iterdir()) == [
        f"{n}.json" for n in joined]
    assert list((exp.directory / "populations").iterdir()) == [population]
    assert not list((population / "joins").iterdir())  # nothing left offered
    # a joined member's logs are the population's from when it joined
    out = (exp.directory / "trials" / "4" / "stdout.log").read_text()
    assert out.startswith("[spiketune] trial 4 ran in the population of ")
    assert "from when it joined" in out.splitlines()[0]
    assert "initial ['0', '1']" not in out and "'4'" in out
    assert protocol.marked_population(exp.directory / "trials" / "4") == population


def test_an_offer_the_process_never_claims_runs_in_the_next_process(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    monkeypatch.setenv("JOIN", "never")  # it says it accepts members, and takes none
    # the first member ends after 2 epochs, the second after 30: trial 2 is offered to the
    # first process meanwhile, which never claims it
    exp = _three_trials(trial_script(JOIN_TRIAL), exp_root, [2, 30, 2])
    results = exp.run()
    assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 3, [
        r.reason for r in results.records]
    entries = _log(log)
    pids = {e["trial"]: e["pid"] for e in entries if e["kind"] == "initial"}
    assert set(pids) == {"0", "1", "2"}
    assert pids["2"] != pids["0"]  # a second process took the offer the first left
    first = exp.directory / "populations" / "0"
    assert not list((first / "joins").iterdir())
    assert not (first / "joined").exists()


def test_a_crash_takes_its_joined_members_down_and_they_are_retried(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    (tmp_path / "crash").touch()
    results = _three_trials(trial_script(JOIN_TRIAL), exp_root, [1, 5, 5]).run()
    records = {r.number: r for r in results.records}
    assert records[0].outcome == Outcome.COMPLETE  # ended before the crash: kept
    assert records[2].outcome == Outcome.FAILED  # the member that joined, lost with it
    assert "SIGKILL" in records[2].reason, records[2].reason
    assert len(records[2].intermediate) == 1  # what it reported before the crash is kept
    retried = [r for r in results.records if r.number > 2]
    assert sorted(r.sequence_id for r in retried) == [1, 2]  # both lost members run again
    assert all(r.outcome == Outcome.COMPLETE for r in retried)


def test_offers_are_claimed_or_withdrawn_never_both(tmp_path: Path) -> None:
    population, member = tmp_path / "populations" / "0", tmp_path / "trials" / "5"
    protocol.offer_member(population, {"number": 5, "trial_dir": str(member)})
    assert protocol.marked_population(member) == population
    assert protocol.withdraw_member(population, 5)  # not claimed yet: withdrawn
    assert protocol.claim_members(population) == []  # ... so never trained
    protocol.offer_member(population, {"number": 5, "trial_dir": str(member)})
    protocol.offer_member(population, {"number": 12, "trial_dir": str(tmp_path / "t12")})
    assert [e["number"] for e in protocol.claim_members(population)] == [5, 12]
    assert not protocol.withdraw_member(population, 5)  # claimed: it runs there
    assert protocol.claim_members(population) == []
    assert not protocol.is_accepting(population)
    protocol.set_accepting(population, True)
    assert protocol.is_accepting(population)
    protocol.set_accepting(population, False)
    assert not protocol.is_accepting(population)


def test_joining_outside_population_mode_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    import spiketune.trial as st

    monkeypatch.delenv(protocol.ENV_POPULATION_FILE, raising=False)
    assert st.joining() == []
    st.stop_joining()  # nothing to say


def test_a_joined_members_leftover_process_is_found_by_its_population(tmp_path: Path) -> None:
    """After a scheduler crash, settling a member that joined a population ends that
    population's process, which its environment does not name the member in."""
    population, member = tmp_path / "populations" / "0", tmp_path / "trials" / "3"
    population.mkdir(parents=True)
    member.mkdir(parents=True)
    env = {**os.environ, protocol.ENV_TRIAL_DIR: str(population),
           protocol.ENV_POPULATION_MEMBERS: str(tmp_path / "trials" / "0")}
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                            start_new_session=True)
    try:
        wait_for(lambda: alive(proc.pid), 10, "the population's process")
        assert end_trial_leftovers(member, 0.5) == 0  # not marked yet: not its process
        assert alive(proc.pid)
        protocol.mark_member(member, population)
        assert end_trial_leftovers(member, 0.5) == 1
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is not None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
