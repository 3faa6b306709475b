"""Population mode: several trials trained in one process, each recorded as its own trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _processes import alive, wait_for

import spiketune.trial as st
from spiketune import ConfigError, Experiment, Outcome, build_report, export_results

# A population trial, standard library only: each member reports x * epoch for 5 epochs.
# ``fail_at`` makes one member fail alone; a ``crash`` file kills the whole process once.
POP_TRIAL = """
    import json, os, pathlib, sys, time
    import spiketune.trial as st

    members = st.population()
    line = json.dumps({"members": [m.trial_id for m in members], "pooled": st.in_population(),
                       "pid": os.getpid()})
    print(line, flush=True)
    with open(os.environ["POP_LOG"], "a") as f:
        f.write(line + "\\n")
    crash = pathlib.Path(os.environ["POP_LOG"]).with_name("crash")
    live = list(members)
    for epoch in range(1, 6):
        for m in list(live):
            if m.should_stop():
                live.remove(m)
                continue
            if m.parameters.get("fail_at") == epoch:
                m.fail(f"member {m.trial_id} diverged at epoch {epoch}")
                live.remove(m)
                continue
            m.report_intermediate_result({"default": m.parameters["x"] * epoch, "epoch": epoch})
        if epoch == 3 and crash.exists() and live:
            crash.unlink()
            os.kill(os.getpid(), 9)
        time.sleep(float(os.environ.get("POP_DELAY", "0.05")))
    for m in live:
        with m:  # the module-level API goes to this member
            st.report_final_result({"default": m.parameters["x"] * 5, "who": st.get_trial_id()})
"""


def _experiment(code: Path, root: Path, **config) -> Experiment:
    config.setdefault("tuner", "GridSearch")
    config.setdefault("search_space", {"x": {"_type": "choice",
                                             "_value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]}})
    return Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                      experiment_dir=root, **config)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_member_is_its_own_trial_and_max_trials_is_exact(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    exp = _experiment(trial_script(POP_TRIAL), exp_root, population=3, max_trials=7)
    results = exp.run()

    runs = _log(log)
    assert [r["members"] for r in runs] == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert all(r["pooled"] for r in runs)
    assert len({r["pid"] for r in runs}) == 3  # one process per population
    assert len(results.records) == 7
    for r in results.records:
        assert r.outcome == Outcome.COMPLETE, r.reason
        x = r.parameters["x"]
        assert r.metrics["default"] == pytest.approx(5 * x)
        assert r.metrics["who"] == str(r.number)  # ``with member`` bound the channel
        assert [i["default"] for i in r.intermediate] == pytest.approx([x * e for e in
                                                                        range(1, 6)])
        assert r.trial_dir == exp.directory / "trials" / str(r.number)
        log = (r.trial_dir / "stdout.log").read_text()  # what the report and dashboard show
        assert log.startswith(f"[spiketune] trial {r.number} ran in the population of ")
        assert f'"{r.number}"' in log  # the population's own output follows
    # The same records as with one process per trial: exports and the report read them.
    rows = export_results(results).splitlines()
    assert len(rows) == 8 and rows[0].startswith("number,sequence_id,outcome,value,param.x")
    files = build_report(exp.directory)
    for path in (files.index, files.exploration_png, files.intermediate):
        assert path is not None and path.stat().st_size > 0
    assert sorted((exp.directory / "populations").iterdir()) == [
        exp.directory / "populations" / n for n in ("0", "3", "6")]
    assert json.loads((exp.directory / "populations" / "3" / "population.json").read_text())[
        "members"][1]["trial_dir"] == str(exp.directory / "trials" / "4")


def test_a_pruned_member_stops_alone(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POP_LOG", str(tmp_path / "pop.log"))
    monkeypatch.setenv("POP_DELAY", "0.3")
    space = {"x": {"_type": "choice", "_value": [1.0, 2.0, 3.0, 0.01, 4.0, 5.0]}}
    exp = _experiment(trial_script(POP_TRIAL), exp_root, population=3, max_trials=6,
                      search_space=space, assessor="Medianstop",
                      assessor_args={"start_step": 2, "n_startup_trials": 3})
    results = exp.run()
    by_x = {r.parameters["x"]: r for r in results.records}
    pruned = by_x[0.01]
    assert pruned.outcome == Outcome.EARLY_STOPPED, pruned.reason
    assert 2 <= len(pruned.intermediate) < 5
    for x in (1.0, 2.0, 3.0, 4.0, 5.0):  # its population's other members went on
        assert by_x[x].outcome == Outcome.COMPLETE
        assert len(by_x[x].intermediate) == 5


def test_a_failing_member_fails_alone(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POP_LOG", str(tmp_path / "pop.log"))
    space = {"x": {"_type": "choice", "_value": [1.0, 2.0]},
             "fail_at": {"_type": "choice", "_value": [0, 2]}}
    exp = _experiment(trial_script(POP_TRIAL), exp_root, population=4, max_trials=4,
                      search_space=space)
    results = exp.run()
    assert len(_log(tmp_path / "pop.log")) == 1
    for r in results.records:
        if r.parameters["fail_at"] == 2:
            assert r.outcome == Outcome.FAILED
            assert r.reason == f"member {r.number} diverged at epoch 2"  # its words alone
            assert len(r.intermediate) == 1
        else:
            assert r.outcome == Outcome.COMPLETE, r.reason


def test_a_crashed_population_is_recorded_per_member_and_retried(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    (tmp_path / "crash").touch()  # the first population kills itself at epoch 3
    exp = _experiment(trial_script(POP_TRIAL), exp_root, population=3, max_trials=3)
    results = exp.run()
    first, retries = results.records[:3], results.records[3:]
    for r in first:
        assert r.outcome == Outcome.FAILED
        assert "SIGKILL" in r.reason, r.reason
        assert len(r.intermediate) == 3  # what it reported before the crash is kept
    assert len(retries) == 3  # retried once each, outside max_trials
    for r in retries:  # a retry runs the lost trial's claim again: same sequence id
        assert r.outcome == Outcome.COMPLETE, r.reason
        assert r.parameters == first[r.sequence_id].parameters
    assert [r["members"] for r in _log(log)] == [["0", "1", "2"], ["3", "4", "5"]]


def test_a_trial_without_the_population_api_fails_with_a_clear_message(
    tmp_path: Path, exp_root: Path, trial_script
) -> None:
    code = trial_script("""
        import spiketune.trial as st
        st.report_final_result(st.get_next_parameter()["x"])
    """)
    results = _experiment(code, exp_root, population=2, max_trials=2).run()
    # the script's own failure, which a retry would repeat: not retried as a crash of the
    # shared process would be (the test above)
    assert len(results.records) == 2
    assert [r.sequence_id for r in results.records] == [0, 1]
    for r in results.records:
        assert r.outcome == Outcome.FAILED
        assert r.reason.startswith("exit code 1; stderr tail:\nthis process trains a "
                                   "population of trials"), r.reason
        assert "spiketune.trial.population()" in r.reason


def test_the_population_api_runs_as_one_trial_outside_population_mode(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    results = _experiment(trial_script(POP_TRIAL), exp_root, max_trials=2,
                          concurrency=2).run()
    assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 2
    runs = _log(log)
    assert sorted(r["members"][0] for r in runs) == ["0", "1"]
    assert not any(r["pooled"] for r in runs)


def test_population_needs_a_trial_command(exp_root: Path) -> None:
    exp = Experiment(trial=lambda p: 1.0, search_space={"x": {"_type": "uniform",
                                                              "_value": [0, 1]}},
                     population=2, max_trials=1)
    with pytest.raises(ConfigError, match="population"):
        exp.run()


def test_population_by_hand_is_one_member(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKETUNE_TRIAL_DIR", raising=False)
    monkeypatch.setenv("SPIKETUNE_PARAMETERS", '{"x": 2}')
    st._reset()
    try:
        members = st.population()
        assert len(members) == 1 and members[0].parameters == {"x": 2}
        assert not members[0].should_stop()
        with pytest.raises(RuntimeError, match="went wrong"):
            members[0].fail("went wrong")
    finally:
        st._reset()


SLOW_POPULATION = """
    import os, pathlib, time
    import spiketune.trial as st
    members = st.population()
    (pathlib.Path(os.environ["POP_LOG"]).parent / f"pid{os.getpid()}").write_text("")
    for m in members:
        m.report_intermediate_result(0.5)
    if pathlib.Path(os.environ["SLOW_MARKER"]).exists():
        time.sleep(120)
    for m in members:
        m.report_final_result(m.parameters["x"])
"""


@pytest.mark.slow
def test_kill_9_of_the_scheduler_then_resume_retries_the_unfinished_members(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = trial_script(SLOW_POPULATION)
    marker = tmp_path / "slow"
    marker.touch()
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("SLOW_MARKER", str(marker))
    monkeypatch.setenv("POP_LOG", str(pids / "log"))
    cfg = tmp_path / "experiment.toml"
    cfg.write_text(f'name = "pop"\ntrial_command = "python3 trial.py"\n'
                   f'trial_code_directory = "{code}"\nexperiment_dir = "{exp_root}"\n'
                   'max_trials = 2\npopulation = 2\ntuner = "Random"\n'
                   '[search_space]\nx = {_type = "uniform", _value = [0, 1]}\n')
    scheduler = subprocess.Popen([sys.executable, "-m", "spiketune.cli", "run", str(cfg), "-q"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
    try:
        def reported() -> bool:
            found = sorted(exp_root.glob("*/trials/*/metrics.jsonl"))
            return len(found) == 2 and all(f.read_text() for f in found)

        wait_for(reported, 30, "both members' first reports")
        time.sleep(1.2)
    finally:
        os.kill(scheduler.pid, signal.SIGKILL)
        scheduler.wait()
    (population_pid,) = [int(p.name[3:]) for p in pids.glob("pid*")]
    assert alive(population_pid)  # an orphan now
    (directory,) = [p for p in exp_root.iterdir() if (p / "experiment.json").exists()]

    marker.unlink()
    results = Experiment.load(directory, kill_grace=0.5).resume()
    assert not alive(population_pid)  # found by its members' directories and ended
    assert [r.outcome for r in results.records] == [Outcome.FAILED, Outcome.FAILED,
                                                    Outcome.COMPLETE, Outcome.COMPLETE]
    for lost in results.records[:2]:
        assert "interrupted" in lost.reason and lost.intermediate == [{"default": 0.5}]
    for retry in results.records[2:]:  # population mode retries a lost member (max_retries 0)
        assert retry.parameters == results.records[retry.sequence_id].parameters
        assert retry.metrics["default"] == retry.parameters["x"]


GROUPED_TRIAL = """
    import spiketune.trial as st
    for m in st.population():
        m.report_final_result(m.parameters["x"])
"""


@pytest.mark.parametrize("tuner", ["TPE", "Random"])
def test_population_group_makes_members_share_those_keys(
    exp_root: Path, trial_script, tuner: str
) -> None:
    space = {
        "x": {"_type": "uniform", "_value": [0, 1]},
        "size": {"_type": "choice", "_value": [64, 128, 256, 512]},
        "rule": {"_type": "choice", "_value": [
            {"_name": "eprop", "feedback": {"_type": "choice", "_value": ["random", "sym"]}},
            {"_name": "bptt"}]},
    }
    results = _experiment(trial_script(GROUPED_TRIAL), exp_root, population=4, max_trials=16,
                          search_space=space, tuner=tuner, seed=3,
                          population_group=["size", "rule"]).run()
    records = results.records
    assert [r.outcome for r in records] == [Outcome.COMPLETE] * 16
    batches = [records[i:i + 4] for i in range(0, 16, 4)]
    for batch in batches:
        assert len({r.parameters["size"] for r in batch}) == 1
        assert len({r.parameters["rule"]["_name"] for r in batch}) == 1
        assert len({r.parameters["x"] for r in batch}) == 4  # the rest is drawn per member
    # the batches' leaders are drawn freely: not every batch gets the same shape
    assert len({(b[0].parameters["size"], b[0].parameters["rule"]["_name"])
                for b in batches}) > 1


def test_population_group_is_checked(exp_root: Path, trial_script) -> None:
    code = trial_script(GROUPED_TRIAL)
    with pytest.raises(ConfigError) as err:
        _experiment(code, exp_root, population=2, population_group=["x", "n_rec"])
    assert "population_group[1]" in str(err.value) and "n_rec" in str(err.value)
    with pytest.raises(ConfigError, match="population mode only"):
        _experiment(code, exp_root, population_group=["x"])


SIZED_TRIAL = """
    import json, os
    import spiketune.trial as st
    members = st.population()
    with open(os.environ["POP_LOG"], "a") as f:
        f.write(json.dumps([m.parameters for m in members]) + "\\n")
    for m in members:
        m.report_final_result(m.parameters["x"])
"""


def test_population_sizes_give_each_shape_its_own_k(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    space = {
        "x": {"_type": "uniform", "_value": [0, 1]},
        "size": {"_type": "choice", "_value": [64, 512]},
        "rule": {"_type": "choice", "_value": [
            {"_name": "eprop", "feedback": {"_type": "choice", "_value": ["random", "sym"]}},
            {"_name": "bptt"}]},
    }
    exp = _experiment(trial_script(SIZED_TRIAL), exp_root, population=4, max_trials=30,
                      search_space=space, tuner="Random", seed=1,
                      population_group=["size", "rule"],
                      population_sizes=[{"when": {"size": 512}, "size": 1},
                                        {"when": {"size": 64, "rule": "bptt"}, "size": 2}])
    results = exp.run()
    assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 30  # max_trials exact

    def k(parameters: dict) -> int:
        if parameters["size"] == 512:
            return 1
        return 2 if parameters["rule"]["_name"] == "bptt" else 4  # else population

    populations = _log(log)
    assert sum(len(p) for p in populations) == 30
    for members in populations[:-1]:  # the last one may be cut short by max_trials
        assert len({(m["size"], m["rule"]["_name"]) for m in members}) == 1
        assert len(members) == k(members[0])
    assert len(populations[-1]) <= k(populations[-1][0])
    # every kind of population ran: the sizes came from the rules, not from chance
    assert {(k(p[0]), len(p)) for p in populations[:-1]} == {(1, 1), (2, 2), (4, 4)}


def test_population_sizes_are_checked(exp_root: Path, trial_script) -> None:
    code = trial_script(SIZED_TRIAL)
    space = {"x": {"_type": "uniform", "_value": [0, 1]},
             "size": {"_type": "choice", "_value": [64, 512]}}
    with pytest.raises(ConfigError) as err:
        _experiment(code, exp_root, population=2, population_group=["size"], search_space=space,
                    population_sizes=[{"when": {"size": 500}, "size": 1},
                                      {"when": {"x": 0.5}, "size": 2}])
    text = str(err.value)
    assert "population_sizes[0].when.size" in text and "[64, 512]" in text
    assert "population_sizes[1].when.x" in text and "population_group" in text
    with pytest.raises(ConfigError) as err:
        _experiment(code, exp_root, population=2, population_group=["size"], search_space=space,
                    population_sizes=[{"when": {"size": 64}, "size": 0}, {"when": {}, "size": 2}])
    text = str(err.value)
    assert "population_sizes[0].size" in text and ">= 1" in text
    assert "population_sizes[1].when" in text and "at least one key" in text
    with pytest.raises(ConfigError, match="population mode only"):
        _experiment(code, exp_root, population_group=None, search_space=space,
                    population_sizes=[{"when": {"size": 64}, "size": 2}])


GPU_TRIAL = """
    import json, os
    import spiketune.trial as st
    for m in st.population():
        m.report_final_result({"default": m.parameters["x"],
                               "gpu": os.environ["CUDA_VISIBLE_DEVICES"], "pid": os.getpid()})
"""


def test_a_population_runs_on_one_gpu_and_populations_spread_over_gpus(
    exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")  # the GPUs this machine is said to have
    results = _experiment(trial_script(GPU_TRIAL), exp_root, population=4, concurrency=2,
                          max_trials=16, gpus=[3, 7], tuner="Random").run()
    by_process: dict[int, set[str]] = {}
    for r in results.records:
        assert r.outcome == Outcome.COMPLETE, r.reason
        by_process.setdefault(r.metrics["pid"], set()).add(r.metrics["gpu"])
    assert len(by_process) == 4  # populations of 4
    assert all(len(gpus) == 1 for gpus in by_process.values())  # one GPU per population
    assert {g for gpus in by_process.values() for g in gpus} == {"3", "7"}


def test_a_population_running_at_max_duration_finishes_with_at_max_duration_finish(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running population's members complete past the budget's end; no population
    starts after it (7 trials were allowed, in populations of 3)."""
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    monkeypatch.setenv("POP_DELAY", "0.5")  # 5 epochs: 2.5 s
    exp = _experiment(trial_script(POP_TRIAL), exp_root, population=3, max_trials=7,
                      max_duration="1s", at_max_duration="finish")
    results = exp.run()
    assert [r["members"] for r in _log(log)] == [["0", "1", "2"]]
    assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 3
    assert exp.status == "done"


def test_a_huge_population_starts_with_the_members_it_has_and_keeps_its_budget(
    tmp_path: Path, exp_root: Path, trial_script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A population of 100,000 members is collected one tuner draw at a time: the batch
    starts with the members one heartbeat gave it, and the duration budget still ends the
    run (it used to claim trials without end, never starting a process)."""
    log = tmp_path / "pop.log"
    monkeypatch.setenv("POP_LOG", str(log))
    t0 = time.monotonic()
    exp = _experiment(trial_script(POP_TRIAL), exp_root, population=100_000, tuner="Random",
                      search_space={"x": {"_type": "uniform", "_value": [0.0, 1.0]}},
                      max_duration="6s", heartbeat_interval=0.5, grace_period=30)
    results = exp.run()
    assert time.monotonic() - t0 < 60
    runs = _log(log)
    assert runs and 0 < len(runs[0]["members"]) < 100_000
    assert any(r.outcome == Outcome.COMPLETE for r in results.records)
