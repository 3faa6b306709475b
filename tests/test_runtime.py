"""The engine end to end: trials as processes and as callables, outcomes, budgets, GPU slots."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _processes import alive

from spiketune import Experiment, Outcome
from spiketune.engine.config import load_config
from spiketune.engine.outcome import decide
from spiketune.engine.results import export_results, load_results, records_from_json
from spiketune.engine.runners import Ended, StopReason
from spiketune.engine.scheduler import _GpuSlots
from spiketune.engine.storage import ExperimentPaths, StudyStore, sqlite_url
from spiketune.errors import ConfigError

QUADRATIC_SPACE = {
    "x": {"_type": "uniform", "_value": [-5, 5]},
    "y": {"_type": "uniform", "_value": [-5, 5]},
}




def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


ECHO_TRIAL = """
    import json, os, sys, time
    import spiketune.trial as st
    params = st.get_next_parameter()
    start = time.time()
    time.sleep(float(os.environ.get("TRIAL_SLEEP", "0.3")))
    st.report_intermediate_result(1.0)
    st.report_final_result({
        "default": float(st.get_sequence_id()),
        "echo": params,
        "start": start,
        "end": time.time(),
        "cuda": os.environ["CUDA_VISIBLE_DEVICES"],
        "python": sys.executable,
    })
"""


@pytest.mark.slow
def test_concurrent_trials_store_exactly_what_each_received(exp_root: Path, trial_script) -> None:
    code = trial_script(ECHO_TRIAL)
    space = {
        "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
        "q": {"_type": "quniform", "_value": [0, 1, 0.1]},
        "n": {"_type": "randint", "_value": [1, 100]},
        "opt": {"_type": "choice", "_value": [
            {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0, 1]}},
            {"_name": "adam"},
        ]},
    }
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space=space, max_trials=8, concurrency=4, experiment_dir=exp_root,
                     tuner="Random", seed=3)
    results = exp.run()
    assert [r.number for r in results.records] == list(range(8))
    for rec in results.records:
        assert rec.outcome == Outcome.COMPLETE, rec.reason
        assert rec.parameters == rec.metrics["echo"]
        stored = (rec.trial_dir / "parameter.json").read_text()
        assert stored == json.dumps(rec.parameters)  # byte for byte what the trial read
        assert rec.metrics["cuda"] == ""  # no GPUs configured: the trial sees none
        assert rec.intermediate == [{"default": 1.0}]
        # `python3` in the trial command is the interpreter that runs spiketune
        assert Path(rec.metrics["python"]).parent == Path(sys.executable).parent
    intervals = [(r.metrics["start"], r.metrics["end"]) for r in results.records]
    assert 2 <= _max_overlap(intervals) <= 4
    assert sorted(r.sequence_id for r in results.records) == list(range(8))


def test_gpu_slots_balance_and_cap() -> None:
    slots = _GpuSlots([3, 7], per_gpu=2)
    assert slots.capacity == 4
    got = [slots.acquire() for _ in range(4)]
    assert sorted(got) == [3, 3, 7, 7]
    with pytest.raises(RuntimeError):
        slots.acquire()
    slots.release(7)
    assert slots.acquire() == 7
    none = _GpuSlots(None, per_gpu=2)
    assert none.capacity is None and none.acquire() is None


@pytest.mark.slow
def test_gpu_slots_end_to_end(exp_root: Path, trial_script, monkeypatch) -> None:
    monkeypatch.setenv("TRIAL_SLEEP", "0.4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")  # GPUs asked for must exist
    code = trial_script(ECHO_TRIAL)
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space=QUADRATIC_SPACE, max_trials=8, concurrency=8, gpus=[3, 7],
                     trials_per_gpu=2, experiment_dir=exp_root, tuner="Random")
    results = exp.run()
    assert all(r.outcome == Outcome.COMPLETE for r in results.records)
    by_gpu: dict[str, list[tuple[float, float]]] = {}
    for r in results.records:
        by_gpu.setdefault(r.metrics["cuda"], []).append((r.metrics["start"], r.metrics["end"]))
    assert set(by_gpu) == {"3", "7"}  # each trial sees exactly one of the configured GPUs
    assert all(_max_overlap(v) <= 2 for v in by_gpu.values())
    every = [i for v in by_gpu.values() for i in v]
    assert _max_overlap(every) <= 4  # capacity = 2 GPUs x 2 trials, below concurrency 8


def test_a_number_beyond_a_float_fails_its_trial_alone(exp_root: Path, trial_script) -> None:
    """A final result of 10**400, an intermediate one of -1…1 (400 digits) or a report nested
    thousands deep ends that trial as non-finite or broken; the scheduler and the trial
    running beside it go on, and the experiment can be read and resumed."""
    code = trial_script(
        """
        import json, time
        import spiketune.trial as st
        mode = st.get_next_parameter()["mode"]
        if mode == "huge":
            st.report_final_result(10**400)
        if mode == "huge_step":  # as a trial in another language would write it
            with open(st.get_trial_dir() / "metrics.jsonl", "a") as f:
                f.write('{"type": "intermediate", "value": -' + "1" * 400 + "}\\n")
        if mode == "deep":
            with open(st.get_trial_dir() / "metrics.jsonl", "a") as f:
                f.write('{"type": "final", "value": ' + "[" * 100000 + "]" * 100000 + "}\\n")
        if mode == "ok":
            time.sleep(1.5)  # still running when the others end
            st.report_intermediate_result(0.5)
            st.report_final_result({"default": 1.0, "big": 10**400})
        """
    )
    modes = ["ok", "huge", "huge_step", "deep"]
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space={"mode": {"_type": "choice", "_value": modes}},
                     tuner="GridSearch", concurrency=4, experiment_dir=exp_root)
    results = exp.run()
    by_mode = {r.parameters["mode"]: r for r in results.records}
    assert by_mode["ok"].outcome == Outcome.COMPLETE, by_mode["ok"].reason
    assert by_mode["ok"].metrics["default"] == 1.0
    assert by_mode["ok"].metrics["big"] == math.inf  # beyond a float: an infinity
    assert by_mode["huge"].outcome == Outcome.FAILED and "non-finite" in by_mode["huge"].reason
    assert by_mode["huge_step"].outcome == Outcome.FAILED  # no final result after it
    assert by_mode["deep"].outcome == Outcome.FAILED
    assert "nested too deeply" in by_mode["deep"].reason
    assert Experiment.load(exp.id).run().count(Outcome.COMPLETE) == 1  # resumes, nothing lost


@pytest.mark.slow
def test_failures_are_recorded_with_their_reason(exp_root: Path, trial_script) -> None:
    code = trial_script(
        """
        import sys, time
        import spiketune.trial as st
        mode = st.get_next_parameter()["mode"]
        if mode == "crash":
            print("Traceback: something broke in layer 3", file=sys.stderr)
            sys.exit(3)
        if mode == "nan":
            st.report_final_result(float("nan"))
        if mode == "garbage":
            with open(st.get_trial_dir() / "metrics.jsonl", "a") as f:
                f.write("not json\\n")
        if mode == "hang":
            time.sleep(60)
        if mode == "ok":
            st.report_final_result({"default": 1.0, "acc": 0.5})
        """
    )
    modes = ["crash", "nan", "none", "garbage", "hang", "ok"]
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space={"mode": {"_type": "choice", "_value": modes}},
                     tuner="GridSearch", concurrency=6, max_trial_duration=1.5,
                     experiment_dir=exp_root, kill_grace=0.5)
    t0 = time.monotonic()
    results = exp.run()
    assert time.monotonic() - t0 < 20
    by_mode = {r.parameters["mode"]: r for r in results.records}
    assert set(by_mode) == set(modes)  # the grid ran each configuration once, then stopped
    crash = by_mode["crash"]
    assert crash.outcome == Outcome.FAILED
    assert "exit code 3" in crash.reason and "something broke in layer 3" in crash.reason
    assert by_mode["nan"].outcome == Outcome.FAILED
    assert "non-finite" in by_mode["nan"].reason
    assert math.isnan(by_mode["nan"].metrics["default"])
    assert "without reporting a final result" in by_mode["none"].reason
    assert "unreadable line" in by_mode["garbage"].reason
    hang = by_mode["hang"]
    assert hang.outcome == Outcome.FAILED and "timeout" in hang.reason
    assert hang.duration_seconds < 6
    assert by_mode["ok"].outcome == Outcome.COMPLETE and by_mode["ok"].metrics["acc"] == 0.5
    assert results.best is by_mode["ok"] or results.best.number == by_mode["ok"].number


@pytest.mark.slow
def test_pruning_kills_the_whole_process_group(exp_root: Path, trial_script) -> None:
    code = trial_script(
        """
        import os, subprocess, sys, time
        import spiketune.trial as st
        d = st.get_trial_dir()
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time, pathlib, sys\\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
            "pathlib.Path(sys.argv[1]).write_text('ready')\\n"
            "time.sleep(60)", str(d / "ready")])
        (d / "child.pid").write_text(str(child.pid))
        while not (d / "ready").exists():
            time.sleep(0.01)
        st.report_intermediate_result(-1.0)   # below the threshold: the assessor stops us
        time.sleep(60)
        st.report_final_result(1.0)
        """
    )
    exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                     search_space=QUADRATIC_SPACE, max_trials=1, assessor="Threshold",
                     assessor_args={"lower": 0.0}, experiment_dir=exp_root, kill_grace=0.5)
    t0 = time.monotonic()
    results = exp.run()
    assert time.monotonic() - t0 < 15
    (rec,) = results.records
    assert rec.outcome == Outcome.EARLY_STOPPED, rec.reason
    assert "assessor" in rec.reason
    child = int((rec.trial_dir / "child.pid").read_text())
    leader = json.loads((rec.trial_dir / "process.json").read_text())["pid"]
    deadline = time.monotonic() + 5
    while (alive(child) or alive(leader)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(leader)
    assert not alive(child)  # it ignored SIGTERM; the group's SIGKILL ended it


def _in_process_quadratic(params: dict) -> dict:
    import spiketune.trial as st

    for step in (1, 2, 3):
        st.report_intermediate_result(-abs(params["x"]) * step)
    return {"default": -(params["x"] - 1) ** 2 - (params["y"] + 2) ** 2, "aux": params["x"]}


def test_in_process_callable(exp_root: Path) -> None:
    exp = Experiment(trial=_in_process_quadratic, search_space=QUADRATIC_SPACE, max_trials=12,
                     experiment_dir=exp_root, seed=1, tuner="TPE")
    results = exp.run()
    assert len(results.records) == 12
    assert all(r.outcome == Outcome.COMPLETE for r in results.records)
    best = results.best
    assert best.value == max(r.value for r in results.records)
    assert best.metrics["aux"] == best.parameters["x"]
    assert [i["default"] for i in best.intermediate] == pytest.approx(
        [-abs(best.parameters["x"]) * s for s in (1, 2, 3)])
    assert exp.status == "done"
    # the same seed draws the same parameters
    again = Experiment(trial=_in_process_quadratic, search_space=QUADRATIC_SPACE, max_trials=12,
                       experiment_dir=exp_root, seed=1, tuner="TPE").run()
    assert [r.parameters for r in again.records] == [r.parameters for r in results.records]


def test_in_process_failures_and_pruning(exp_root: Path) -> None:
    import spiketune.trial as st

    def trial() -> float | None:
        x = st.get_next_parameter()["x"]
        if x < -3:
            raise RuntimeError("diverged")
        st.report_intermediate_result(x)
        st.report_intermediate_result(x)
        return None if x > 3 else x

    exp = Experiment(trial=trial, search_space={"x": {"_type": "uniform", "_value": [-5, 5]}},
                     max_trials=30, assessor="Threshold", assessor_args={"lower": -1.0},
                     tuner="Random", seed=5, experiment_dir=exp_root)
    records = exp.run().records
    assert len(records) == 30
    for r in records:
        x = r.parameters["x"]
        if x < -3:
            assert r.outcome == Outcome.FAILED and "diverged" in r.reason
        elif x < -1:
            assert r.outcome == Outcome.EARLY_STOPPED and len(r.intermediate) == 1
        elif x > 3:
            assert r.outcome == Outcome.FAILED and "final result" in r.reason
        else:
            assert r.outcome == Outcome.COMPLETE and r.value == x
    assert {r.outcome for r in records} == {Outcome.FAILED, Outcome.EARLY_STOPPED,
                                            Outcome.COMPLETE}


def test_an_in_process_result_returned_after_its_limit_is_a_timeout(exp_root: Path) -> None:
    """A thread cannot be killed: returning its result is the trial's last report, where a
    stop decided meanwhile takes effect, as it would at any report (and as killing a trial
    process at its limit would have ended it)."""
    def slow(params: dict) -> float:
        time.sleep(1.5 if params["x"] > 0 else 0.0)
        return params["x"]

    space = {"x": {"_type": "choice", "_value": [-1.0, 1.0]}}
    records = Experiment(trial=slow, search_space=space, tuner="GridSearch",
                         max_trial_duration=0.5, experiment_dir=exp_root).run().records
    by_x = {r.parameters["x"]: r for r in records}
    assert by_x[-1.0].outcome == Outcome.COMPLETE
    assert by_x[1.0].outcome == Outcome.FAILED and by_x[1.0].reason.startswith("timeout")


def test_minimize_and_max_duration(exp_root: Path) -> None:
    def slow(params: dict) -> float:
        time.sleep(0.1)
        return params["x"] ** 2

    exp = Experiment(trial=slow, search_space=QUADRATIC_SPACE, optimize_mode="minimize",
                     max_duration=1.5, experiment_dir=exp_root, tuner="Random")
    results = exp.run()
    # It ran until the budget (elapsed), and no further (at most 15 trials of 0.1 s). How many
    # fit is the machine's: a fresh clone compiles what the first trial imports (0.9 s in CI);
    # a trial still running at the budget's end is STOPPED, without a value.
    assert 1 <= len(results.records) <= 15
    values = [r.value for r in results.records if r.value is not None]
    assert values and results.best.value == min(values)
    assert results.elapsed_seconds >= 1.5
    assert exp.status == "done"
    # the duration budget is spent: resuming starts nothing more
    again = Experiment.load(exp.id, trial=slow).resume()
    assert len(again.records) == len(results.records)


# Trial 1 runs longer than maxTrialDuration, trial 0 past the duration budget's end.
FINISH_TRIAL = """
    import os, time
    import nni
    nni.get_next_parameter()
    time.sleep(30 if os.environ["NNI_TRIAL_SEQ_ID"] == "1" else 3)
    nni.report_final_result({"default": 1.0,
                             "budget_end": os.environ.get("SPIKETUNE_BUDGET_END")})
"""


def _nni_config(path: Path, **keys: Any) -> Path:
    """An NNI v2 file of ``keys`` (camelCase, as NNI writes them) on a one-key space."""
    text = json.dumps({"searchSpace": {"x": {"_type": "uniform", "_value": [0, 1]}},
                       "trialCommand": "python3 trial.py", "tuner": {"name": "Random"},
                       "trainingService": {"platform": "local"}, **keys})
    path.write_text(text)  # JSON is YAML
    return path


@pytest.mark.slow
@pytest.mark.parametrize("how", ["nni", "own default", "nni, then spiketune stop"])
def test_max_experiment_duration_lets_running_trials_finish_as_nni_does(
    exp_root: Path, trial_script, tmp_path: Path, how: str
) -> None:
    """NNI's maxExperimentDuration: once it runs out no trial starts, and the running ones run
    to their own end (no budget's end is handed to them), still bounded by maxTrialDuration
    and still ended by a stop. spiketune's own max_duration stops them at once."""
    code = trial_script(FINISH_TRIAL)
    config = load_config(_nni_config(
        tmp_path / "config.yml", experimentName="finish", trialCodeDirectory=str(code),
        trialConcurrency=2, maxTrialNumber=10, maxExperimentDuration="1.5s",
        maxTrialDuration="6s", experimentWorkingDirectory=str(exp_root)))
    assert config.at_max_duration == "finish"
    if how == "own default":
        config = config.model_copy(update={"at_max_duration": "stop"})
    exp = Experiment(config, kill_grace=0.5)
    seen: list[bool] = []

    def progress(p: Any) -> None:
        seen.append(p.finishing)
        if p.finishing and how == "nni, then spiketune stop":
            exp.paths.stop_file.touch()  # what `spiketune stop` does from another process

    results = exp.run(progress=progress)
    by_number = sorted(results.records, key=lambda r: r.number)
    assert len(by_number) == 2  # no trial started after the deadline (10 were allowed)
    if how == "nni":
        assert any(seen) and exp.status == "done"
        quick, slow = sorted(by_number, key=lambda r: r.outcome.value)  # COMPLETE < FAILED
        assert quick.outcome == Outcome.COMPLETE, quick.reason
        assert quick.metrics["budget_end"] is None  # not told to end its training early
        assert slow.outcome == Outcome.FAILED and slow.reason.startswith("timeout")
        assert results.elapsed_seconds > 3.0  # past the budget, by the trials that finished
        again = Experiment.load(exp.directory).resume()  # the budget is spent: nothing starts
        assert len(again.records) == 2 and exp.status == "done"
    else:
        assert [r.outcome for r in by_number] == [Outcome.STOPPED] * 2
        if how == "own default":
            assert not any(seen) and exp.status == "done"
            assert all(r.reason.startswith("stopped: max_duration of 1.5 s reached")
                       for r in by_number)
        else:
            assert exp.status == "stopped"


GPU_ENV_TRIAL = """
    import os
    import nni
    nni.get_next_parameter()
    nni.report_final_result({"default": 1.0, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")})
"""


@pytest.mark.slow
@pytest.mark.parametrize(("form", "parent", "seen"), [
    ("nni, no trialGpuNumber", "3,7", "3,7"),  # the GPUs the scheduler's process sees
    ("nni, no trialGpuNumber", None, None),  # unset: every GPU, as for the scheduler
    ("nni, trialGpuNumber: null", "3,7", "3,7"),  # null is as if not set
    ("nni, trialGpuNumber: 0", "3,7", ""),  # 0 hides every GPU
    ("own, no gpus", "3,7", ""),  # spiketune's own schema: no GPU unless given one
])
def test_a_trial_sees_the_gpus_nni_would_show_it(
    exp_root: Path, trial_script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    form: str, parent: str | None, seen: str | None,
) -> None:
    """NNI's local mode: without trialGpuNumber a trial is scheduled as if it used no GPU,
    but it can use every GPU it finds; trialGpuNumber: 0 empties CUDA_VISIBLE_DEVICES."""
    if parent is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", parent)
    code = trial_script(GPU_ENV_TRIAL)
    keys = {"trialCodeDirectory": str(code), "maxTrialNumber": 1,
            "experimentWorkingDirectory": str(exp_root)}
    if form.startswith("nni"):
        if "null" in form:
            keys["trialGpuNumber"] = None
        elif "0" in form:
            keys["trialGpuNumber"] = 0
        exp = Experiment(load_config(_nni_config(tmp_path / "config.yml", **keys)))
    else:
        exp = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                         search_space=QUADRATIC_SPACE, max_trials=1, experiment_dir=exp_root)
    (record,) = exp.run().records
    assert record.outcome == Outcome.COMPLETE, record.reason
    assert record.metrics["cuda"] == seen


def test_decide_is_the_single_rulebook() -> None:
    ok = {"default": 1.0}
    assert decide(Ended(0, ok, 0), stop_reason=None).outcome == Outcome.COMPLETE
    # a valid result reported before the engine ended the trial still counts
    assert decide(Ended(0, ok, -15), stop_reason=StopReason.STOP).outcome == Outcome.COMPLETE
    pruned = decide(Ended(0, None, -15), stop_reason=StopReason.PRUNE, steps=2)
    assert pruned.outcome == Outcome.EARLY_STOPPED and "step 2" in pruned.reason
    assert "timeout" in decide(Ended(0, None, -9), stop_reason=StopReason.TIMEOUT,
                               stop_detail="x").reason
    signalled = decide(Ended(0, None, -11, error="Segmentation fault"), stop_reason=None)
    assert "SIGSEGV" in signalled.reason and "Segmentation fault" in signalled.reason
    assert decide(Ended(0, ok, 1, error="oops"), stop_reason=None).outcome == Outcome.FAILED
    inf = decide(Ended(0, {"default": math.inf}, 0), stop_reason=None)
    assert inf.outcome == Outcome.FAILED and "non-finite" in inf.reason
    # a line it could not read is named whether the trial exited or its scheduler died
    garbled = ["unreadable line in metrics.jsonl (Expecting value): {\"type\": \"fin"]
    exited = decide(Ended(0, None, 0, protocol_errors=garbled), stop_reason=None)
    lost = decide(Ended(0, None, protocol_errors=garbled), stop_reason=None,
                  interrupted="interrupted: the scheduler ended")
    for verdict in (exited, lost):
        assert verdict.outcome == Outcome.FAILED and garbled[0] in verdict.reason
    assert lost.reason.startswith("interrupted: the scheduler ended; ")


def _acc(params: dict) -> dict:
    return {"default": 0.0, "acc": params["x"]}


def test_an_export_of_a_named_objective_reads_back_its_values(exp_root: Path) -> None:
    results = Experiment(trial=_acc, search_space=QUADRATIC_SPACE, max_trials=2,
                         objectives=[{"key": "acc", "direction": "maximize"}],
                         experiment_dir=exp_root).run()
    back = records_from_json(export_results(results, "json"))
    assert [r.value for r in back] == [r.value for r in results.records] != [0.0, 0.0]
    assert back == results.records


def test_export_round_trip(exp_root: Path) -> None:
    def trial(params: dict) -> dict:
        import spiketune.trial as st

        st.report_intermediate_result({"default": 0.5, "loss": 2.0})
        return {"default": params["x"], "spikes": 12, "opt": params["opt"]}

    space = {"x": {"_type": "uniform", "_value": [0, 1]},
             "opt": {"_type": "choice", "_value": [{"_name": "sgd", "m": {"_type": "choice",
                                                                             "_value": [0.5]}}]}}
    exp = Experiment(trial=trial, search_space=space, max_trials=3, experiment_dir=exp_root)
    results = exp.run()
    back = records_from_json(export_results(results, "json", intermediate=True))
    assert back == results.records
    csv_text = export_results(results, "csv")
    header, *rows = csv_text.strip().splitlines()
    assert header.split(",")[:4] == ["number", "sequence_id", "outcome", "value"]
    assert {"param.x", "param.opt._name", "param.opt.m", "metric.default", "metric.spikes"} <= set(
        header.split(","))
    assert len(rows) == 3
    long = export_results(results, "csv", intermediate=True).strip().splitlines()
    assert len(long) == 1 + 3 * 2 and "metric.loss" in long[0]


def test_config_errors_before_anything_runs(exp_root: Path) -> None:
    with pytest.raises(ConfigError, match="trial_command"):
        Experiment(search_space=QUADRATIC_SPACE, experiment_dir=exp_root)
    with pytest.raises(ConfigError, match="not both"):
        Experiment(trial=_in_process_quadratic, trial_command="python3 x.py",
                   search_space=QUADRATIC_SPACE, experiment_dir=exp_root)
    assert list(exp_root.iterdir()) == []
    for grace in ("x", -1, True):
        with pytest.raises(ConfigError, match="kill_grace"):
            Experiment(trial=_in_process_quadratic, search_space=QUADRATIC_SPACE,
                       experiment_dir=exp_root, kill_grace=grace)
    exp = Experiment(trial=_in_process_quadratic, search_space=QUADRATIC_SPACE,
                     experiment_dir=exp_root)
    with pytest.raises(ConfigError, match="progress"):
        exp.run(progress=5)  # type: ignore[arg-type]
    assert list(exp_root.iterdir()) == []
    # the fields as one mapping are the same as keywords; what else is given is named
    as_dict = Experiment({"search_space": QUADRATIC_SPACE, "max_trials": 3},
                         trial=_in_process_quadratic, experiment_dir=exp_root)
    assert as_dict.config.max_trials == 3 and as_dict.config.search_space == QUADRATIC_SPACE
    with pytest.raises(ConfigError, match="max_trials"):
        Experiment({"search_space": QUADRATIC_SPACE, "max_trials": -1},
                   trial=_in_process_quadratic)
    for wrong in ("config.toml", 5):
        with pytest.raises(ConfigError, match="an ExperimentConfig") as info:
            Experiment(wrong, trial=_in_process_quadratic)  # type: ignore[arg-type]
        assert info.value.problems[0].field == "config"
    assert list(exp_root.iterdir()) == []


def test_a_stop_while_run_is_starting_is_not_lost(
    exp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() from another thread before the scheduler exists (run() still creating the
    experiment) stops the run as soon as it starts: it used to be dropped."""
    exp = Experiment(trial=_in_process_quadratic, search_space=QUADRATIC_SPACE, max_trials=20,
                     experiment_dir=exp_root)
    create = Experiment._create

    def create_then_stop(self: Experiment) -> object:
        store = create(self)
        assert self.stop() == "created"  # as another thread would see it, mid-start
        return store

    monkeypatch.setattr(Experiment, "_create", create_then_stop)
    results = exp.run()
    assert exp.status == "stopped"
    assert not any(r.outcome == Outcome.COMPLETE for r in results.records)
    monkeypatch.undo()
    again = Experiment.load(exp.directory, trial=_in_process_quadratic)
    assert again.stop() in ("stopped", "done")  # no run under way: nothing to remember
    assert len(again.resume().records) == 20  # and the resume is not stopped by it


def test_layout_on_disk(exp_root: Path) -> None:
    exp = Experiment(trial=_in_process_quadratic, search_space=QUADRATIC_SPACE, max_trials=2,
                     experiment_dir=exp_root, name="layout")
    exp.run()
    paths = ExperimentPaths(exp.directory)
    assert exp.directory.parent == exp_root and exp.id.startswith("layout-")
    assert len(exp.id) == len("layout-") + 8
    meta = json.loads(paths.experiment_json.read_text())
    assert meta["id"] == exp.id and meta["storage"] is None
    assert paths.study_db.is_file() and not paths.stop_file.exists()
    assert json.loads(paths.scheduler_json.read_text())["status"] == "done"
    import optuna

    study = optuna.load_study(study_name=exp.id, storage=sqlite_url(paths.study_db))
    attrs = study.user_attrs
    assert attrs["spiketune_config"]["max_trials"] == 2
    assert attrs["experiment_dir"] == str(exp.directory)
    assert attrs["elapsed_seconds"] > 0
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert t.value == t.user_attrs["metrics"]["default"]
    assert set(t.user_attrs) == {"parameters", "metrics", "intermediate", "outcome", "reason",
                                 "trial_dir", "sequence_id"}
    assert t.intermediate_values == {1: -abs(t.params["x"]), 2: -2 * abs(t.params["x"]),
                                     3: -3 * abs(t.params["x"])}
    assert os.path.isdir(t.user_attrs["trial_dir"])
    assert t.datetime_start <= t.datetime_complete
    assert abs((datetime.now() - t.datetime_complete).total_seconds()) < 60
    assert load_results(exp.id).records[0].parameters == t.user_attrs["parameters"]


def test_public_api_resolves() -> None:
    """Every lazily re-exported name of ``spiketune`` exists (a typo would hide until used)."""
    import spiketune

    for name in spiketune.__all__:
        assert getattr(spiketune, name) is not None
    assert sorted(spiketune.__all__) == sorted(set(spiketune.__all__))
    with pytest.raises(AttributeError):
        spiketune.NoSuchThing  # noqa: B018


def test_two_schedulers_sharing_a_study_start_exactly_max_trials(tmp_path: Path) -> None:
    """Two schedulers on one study (as workers will be): 20 trials between them, not more."""
    import threading

    import optuna

    from spiketune.engine.runners import InProcessRunner
    from spiketune.engine.scheduler import Budget, Scheduler
    from spiketune.engine.space import SearchSpace

    url = sqlite_url(tmp_path / "study.db")
    StudyStore.open(url, "shared", create=True).close()
    space = SearchSpace.from_nni(QUADRATIC_SPACE)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            store = StudyStore.open(url, "shared")
            Scheduler(
                store=store,
                runner=InProcessRunner(lambda p: (time.sleep(0.01), p["x"])[1]),
                paths=ExperimentPaths(tmp_path / f"worker{i}"),
                experiment_id="shared",
                space=space,
                sampler=optuna.samplers.RandomSampler(seed=i),
                pruner=None,
                budget=Budget(max_trials=20),
                concurrency=2,
                sync_interval=0.0,
            ).run()
            store.close()
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = StudyStore.open(url, "shared")
    trials = store.trials()
    store.close()
    assert len(trials) == 20
    assert sorted(t.number for t in trials) == list(range(20))
    assert sorted(t.user_attrs["sequence_id"] for t in trials) == list(range(20))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    workers = {Path(t.user_attrs["trial_dir"]).parents[1].name for t in trials}
    assert workers == {"worker0", "worker1"}  # both took part


# ------------------------------------------------------------------------------ ending trials
TESTS = Path(__file__).resolve().parent
CHECKPOINT_TRIAL = f"python3 {TESTS / '_trials.py'} checkpoint_on_sigterm"


def _ready_trial_dir(root: Path, timeout: float = 60.0) -> Path:
    """The directory of the first trial under ``root`` once its SIGTERM handler is in place."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = list(root.glob("*/trials/0/ready"))
        if ready:
            return ready[0].parent
        time.sleep(0.05)
    raise AssertionError("the trial never got ready")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["timeout", "assessor", "stop"])
def test_a_trial_ended_by_the_engine_gets_its_grace(exp_root: Path, how: str) -> None:
    """A trial that saves a checkpoint on SIGTERM (1 s) finishes saving, whatever ends it."""
    import threading

    kwargs: dict = {"timeout": {"max_trial_duration": 1.5},
                    "assessor": {"assessor": "Threshold", "assessor_args": {"lower": 0.0}},
                    "stop": {}}[how]
    exp = Experiment(trial_command=CHECKPOINT_TRIAL, trial_code_directory=TESTS,
                     search_space=QUADRATIC_SPACE, max_trials=1, experiment_dir=exp_root,
                     kill_grace=10.0, **kwargs)
    if how == "stop":
        threading.Thread(target=lambda: (_ready_trial_dir(exp_root), exp.stop()),
                         daemon=True).start()
    (rec,) = exp.run().records
    assert (rec.trial_dir / "sigterm.log").read_text() == "saving\nsaved\n", rec.reason
    expected = {"timeout": "timeout", "assessor": "assessor", "stop": "stop"}[how]
    assert expected in rec.reason


@pytest.mark.slow
def test_ctrl_c_gives_trials_their_grace(exp_root: Path, tmp_path: Path) -> None:
    """Ctrl-C at ``spiketune run``: the trial's checkpoint handler runs to its end."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f'name = "ctrlc"\ntrial_command = "{CHECKPOINT_TRIAL}"\n'
        f'trial_code_directory = "{TESTS}"\nexperiment_dir = "{exp_root}"\nmax_trials = 1\n'
        f'[search_space]\nx = {{_type = "uniform", _value = [0, 1]}}\n'
    )
    cli = subprocess.Popen([sys.executable, "-m", "spiketune.cli", "run", str(cfg), "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        trial_dir = _ready_trial_dir(exp_root)
        cli.send_signal(signal.SIGINT)
        _out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert (trial_dir / "sigterm.log").read_text() == "saving\nsaved\n", err.decode()
    (rec,) = load_results(trial_dir.parents[1]).records
    assert "SIGINT" in rec.reason


@pytest.mark.slow
def test_a_segfault_is_reported_as_a_signal(exp_root: Path) -> None:
    exp = Experiment(trial_command=f"python3 {TESTS / '_trials.py'} segfault",
                     trial_code_directory=TESTS, search_space=QUADRATIC_SPACE, max_trials=1,
                     experiment_dir=exp_root)
    (rec,) = exp.run().records
    assert rec.outcome == Outcome.FAILED
    assert "killed by signal SIGSEGV" in rec.reason and "139" not in rec.reason.splitlines()[0]


@pytest.mark.slow
def test_the_command_line_ends_orphans_of_its_trials(exp_root: Path, tmp_path: Path) -> None:
    """``spiketune run`` is a child subreaper: a daemon a trial double-forks (orphaned at
    once, out of the trial's session) comes back to it and is ended with the trial."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f'name = "orphans"\ntrial_command = "python3 {TESTS / "_trials.py"} escaped_child"\n'
        f'trial_code_directory = "{TESTS}"\nexperiment_dir = "{exp_root}"\nmax_trials = 1\n'
        f'[search_space]\ndouble_fork = {{_type = "choice", _value = [true]}}\n'
    )
    subprocess.run([sys.executable, "-m", "spiketune.cli", "run", str(cfg), "--quiet"],
                   check=True, capture_output=True, timeout=120)
    (pid_file,) = exp_root.glob("*/trials/0/escaped.pid")
    pid = int(pid_file.read_text())
    try:
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_experiment_run_leaves_its_process_no_subreaper(exp_root: Path) -> None:
    """In a user's own program, orphans are not adopted (their exit status is not ours)."""
    from spiketune.engine.runners import is_subreaper

    exp = Experiment(trial_command="python3 -c 'import nni; nni.report_final_result(1.0)'",
                     trial_code_directory=exp_root, search_space=QUADRATIC_SPACE,
                     max_trials=1, experiment_dir=exp_root)
    (rec,) = exp.run().records
    assert rec.outcome == Outcome.COMPLETE, rec.reason
    assert not is_subreaper()
