"""A trial that knows its time limit ends its training in time and reports its best epoch.

The engine passes ``max_trial_duration`` to each trial process; the templates' training
(``train_folds``, population mode's ``train_members``) starts no epoch that would end past
the trial's deadline, so a slow trial completes with a result instead of being killed and
recorded FAILED with nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from _toy import TOY_INFO, FakeMember, toy_data

import spiketune.trial._population as population_module
from spiketune import Experiment, Outcome
from spiketune.data import split_parts
from spiketune.snn import RecurrentSNN, SNNConfig, TrainConfig, Trainer, train_folds
from spiketune.trial import PreparedMember, train_members, trial_deadline, trial_time_limit
from spiketune.trial._protocol import ENV_BUDGET_END, ENV_MAX_TRIAL_DURATION
from spiketune.trial._runtime import END_SECONDS, END_SHARE, process_started, trial_budget_end

TEMPLATES = Path(__file__).resolve().parents[1] / "spiketune" / "templates"


def _built(epochs: int) -> list[tuple[RecurrentSNN, TrainConfig]]:
    return [(RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, dt=0.01), seed=i),
             TrainConfig(epochs=epochs, batch_size=8, lr=0.05, seed=i)) for i in range(2)]


def test_the_trials_time_limit_is_read_from_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MAX_TRIAL_DURATION, raising=False)
    monkeypatch.delenv(ENV_BUDGET_END, raising=False)
    assert trial_time_limit() is None and trial_deadline(100.0) is None
    for bad in ("", "soon", "-5", "0", "nan", "inf"):
        monkeypatch.setenv(ENV_MAX_TRIAL_DURATION, bad)
        assert trial_time_limit() is None, bad
    monkeypatch.setenv(ENV_MAX_TRIAL_DURATION, "90.0")
    assert trial_time_limit() == 90.0
    # What is kept for the end: END_SECONDS and END_SHARE of the limit.
    assert trial_deadline(100.0) == pytest.approx(100.0 + 90.0 - END_SECONDS - END_SHARE * 90)
    assert trial_deadline(100.0, time_cap=40.0) == pytest.approx(
        100.0 + 40.0 - END_SECONDS - END_SHARE * 40)  # --time-cap wins over the engine's
    # Without a start, the clock is the process's, which began before this test did.
    started = process_started()
    assert started <= time.perf_counter()
    assert trial_deadline() == pytest.approx(started + 90.0 - END_SECONDS - END_SHARE * 90,
                                             abs=0.05)


def test_the_end_of_the_duration_budget_is_a_deadline_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The earlier of the trial's own limit and the experiment's budget end counts."""
    monkeypatch.delenv(ENV_MAX_TRIAL_DURATION, raising=False)
    for bad in ("", "later", "-1", "nan", "inf"):
        monkeypatch.setenv(ENV_BUDGET_END, bad)
        assert trial_budget_end() is None and trial_deadline(100.0) is None, bad
    now_perf, now_wall = time.perf_counter(), time.time()
    monkeypatch.setenv(ENV_BUDGET_END, repr(now_wall + 60.0))
    assert trial_budget_end() == pytest.approx(now_wall + 60.0)
    started = now_perf - 10.0  # 70 s from the start to the budget's end
    alone = now_perf + 60.0 - END_SECONDS - END_SHARE * 70.0
    assert trial_deadline(started) == pytest.approx(alone, abs=0.05)
    monkeypatch.setenv(ENV_MAX_TRIAL_DURATION, "1000")  # a later limit: the budget decides
    assert trial_deadline(started) == pytest.approx(alone, abs=0.05)
    monkeypatch.setenv(ENV_MAX_TRIAL_DURATION, "30")  # an earlier one decides
    assert trial_deadline(started) == pytest.approx(started + 30 - END_SECONDS - END_SHARE * 30)
    assert trial_deadline(started, time_cap=500.0) == pytest.approx(alone, abs=0.05)


def test_a_past_deadline_ends_the_folds_after_one_epoch_with_their_best_weights() -> None:
    parts = split_parts(toy_data(), folds=2)
    epochs_seen: list[int] = []
    trainers, histories = train_folds(_built(5), parts.folds,
                                      lambda e, latest: epochs_seen.append(e),
                                      deadline=time.perf_counter() - 1.0)
    assert epochs_seen == [1]
    assert [(len(h.epochs), h.stop_reason) for h in histories] == [(1, "time_limit")] * 2
    # Each network holds what one epoch trained alone gives it.
    net, config = _built(1)[1]
    train_set, val_set = parts.folds[1]
    Trainer(net, config).fit(train_set.tensor_dataset(), val_set.tensor_dataset())
    for name, value in net.state_dict().items():
        assert torch.equal(value, trainers[1].net.state_dict()[name]), name


def test_a_far_deadline_changes_nothing() -> None:
    parts = split_parts(toy_data(), folds=2)
    _, histories = train_folds(_built(3), parts.folds, deadline=time.perf_counter() + 3600)
    assert [(len(h.epochs), h.stop_reason) for h in histories] == [(3, "completed")] * 2


def test_the_last_epoch_is_the_one_after_which_another_would_overrun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a clock where each epoch takes 10 s, a deadline 35 s away lets 3 epochs run (the
    fourth would end at 40 s: 10 % spread on the longest epoch counts too)."""
    import spiketune.snn._folds as folds_module

    clock = {"now": 0.0}

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return clock["now"]

    def on_epoch(epoch: int, latest: list) -> None:
        clock["now"] += 10.0  # the epoch just reported took 10 s

    monkeypatch.setattr(folds_module, "time", Clock)
    parts = split_parts(toy_data(), folds=1)
    _, (history,) = train_folds(_built(8)[:1], parts.folds, on_epoch, deadline=35.0)
    # 30 s gone after 3 epochs: 30 + 1.1 * 10 > 35, so no fourth.
    assert (len(history.epochs), history.stop_reason) == (3, "time_limit")


@pytest.mark.parametrize(("time_cap", "epochs"), [(None, 4), (0.0, 1)])
def test_population_members_end_in_time_and_still_finish(
    monkeypatch: pytest.MonkeyPatch, time_cap: float | None, epochs: int
) -> None:
    """A member past its deadline stops after its epoch and finishes with its best epoch (its
    final result is reported); without a cap it trains all its epochs."""
    from spiketune.snn import model_and_config_from_params

    members = [FakeMember(str(i), {"n_rec": 8, "lr": 0.01, "epochs": 4, "seed": i})
               for i in range(2)]
    monkeypatch.setattr(population_module, "population", lambda: list(members))
    monkeypatch.setattr(population_module, "joining", lambda: [])
    monkeypatch.setattr(population_module, "stop_joining", lambda: None)
    monkeypatch.delenv(ENV_MAX_TRIAL_DURATION, raising=False)
    folds = [split_parts(toy_data(), folds=1).folds[0]]

    def prepare(member: Any) -> PreparedMember:
        built = [model_and_config_from_params({**member.parameters, "batch_size": 8}, TOY_INFO)]
        return PreparedMember(built, folds, "toy")

    stops: list[tuple[int, str]] = []

    def finish(member: Any, prepared: PreparedMember, histories: list) -> dict[str, Any]:
        stops.append((len(histories[0].epochs), histories[0].stop_reason))
        return {"default": histories[0].best.val_acc}

    finals = train_members(prepare, finish, time_cap=time_cap)
    assert len(finals) == 2 and all(m.failed is None for m in members)
    assert [len(m.reports) for m in members] == [epochs, epochs]
    reason = "time_limit" if time_cap is not None else "completed"
    assert stops == [(epochs, reason)] * 2


def test_the_engine_gives_each_trial_its_time_limit(
    exp_root: Path, trial_script: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial reads the experiment's max_trial_duration; a limit in the scheduler's own
    environment (say, from an enclosing experiment) never reaches a trial of another."""
    monkeypatch.setenv(ENV_MAX_TRIAL_DURATION, "7")  # not this experiment's
    code = trial_script(
        """
        import spiketune.trial as st
        limit = st.trial_time_limit()
        st.report_final_result({"default": -1.0 if limit is None else limit})
        """
    )
    values = [_one_trial(code, exp_root, max_trial_duration=limit) for limit in (None, 120.0)]
    assert values == [-1.0, 120.0]


def _one_trial(code: Path, root: Path, **limits: Any) -> float:
    """The value one trial of ``code`` reports, run by the engine with ``limits``."""
    exp = Experiment(trial_command=f"{sys.executable} trial.py", trial_code_directory=code,
                     search_space={"x": {"_type": "choice", "_value": [1]}}, max_trials=1,
                     experiment_dir=root, **limits)
    (record,) = exp.run().records
    return float(record.metrics["default"])


def test_the_engine_gives_each_trial_the_end_of_its_budget(
    exp_root: Path, trial_script: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial started with 60 s of budget left sees its end about 60 s ahead; without a
    budget, or one inherited from the scheduler's own environment, it sees none."""
    monkeypatch.setenv(ENV_BUDGET_END, repr(time.time() + 5))  # not this experiment's
    code = trial_script(
        """
        import time
        import spiketune.trial as st
        from spiketune.trial._runtime import trial_budget_end
        end = trial_budget_end()
        st.report_final_result({"default": -1.0 if end is None else end - time.time()})
        """
    )
    values = [_one_trial(code, exp_root, max_duration=budget) for budget in (None, 60.0)]
    assert values[0] == -1.0
    assert 45.0 < values[1] <= 60.0
    # left to finish at the budget's end (NNI's rule): it has no reason to end its training
    assert _one_trial(code, exp_root, max_duration=60.0, at_max_duration="finish") == -1.0


def test_an_in_process_trial_sees_its_own_limits(
    exp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-process trial shares the scheduler's process and environment: its time limit,
    its budget's end and its deadline are its own, counted from its own start, and whatever
    the scheduler's environment holds never reaches it."""
    monkeypatch.setenv(ENV_MAX_TRIAL_DURATION, "7")  # not this experiment's
    monkeypatch.setenv(ENV_BUDGET_END, repr(time.time() + 5))
    seen: list[dict[str, Any]] = []

    def trial(params: dict[str, Any]) -> float:
        time.sleep(0.3)  # one at a time: the second trial starts 0.3 s after the first
        seen.append({"x": params["x"], "limit": trial_time_limit(),
                     "end": trial_budget_end(), "deadline": trial_deadline(),
                     "now": time.perf_counter(), "wall": time.time()})
        return 0.0

    def run(**limits: float | None) -> list[dict[str, Any]]:
        seen.clear()
        exp = Experiment(trial=trial, search_space={"x": {"_type": "choice", "_value": [0, 1]}},
                         tuner="GridSearch", max_trials=2, concurrency=1,
                         experiment_dir=exp_root / str(len(limits)), **limits)
        exp.run()
        return sorted(seen, key=lambda s: s["x"])

    assert [(s["limit"], s["end"], s["deadline"]) for s in run()] == [(None, None, None)] * 2
    first, second = run(max_trial_duration=120.0)
    for s in (first, second):
        assert s["limit"] == 120.0 and s["end"] is None
        # counted from the trial's start (its thread's), not from the scheduler's process
        assert s["deadline"] == pytest.approx(
            s["now"] - 0.3 + 120.0 - END_SECONDS - END_SHARE * 120.0, abs=0.25)
    assert second["deadline"] - first["deadline"] >= 0.3
    (*_, last) = run(max_trial_duration=120.0, max_duration=60.0)
    assert last["limit"] == 120.0
    assert 50.0 < last["end"] - last["wall"] <= 60.0  # the budget's end comes first
    assert last["deadline"] < last["now"] + 60.0 - END_SECONDS


@pytest.mark.slow
def test_population_members_in_flight_at_the_budgets_end_complete(exp_root: Path) -> None:
    """The spike-pattern template in population mode, 400 epochs asked and a 15 s budget:
    both members end their training before the budget does and are COMPLETE, where the
    budget's end used to stop them with nothing."""
    exp = Experiment(
        trial_command="python3 main_hpo.py --subset 12",
        trial_code_directory=TEMPLATES / "spike_patterns",
        search_space={"epochs": {"_type": "choice", "_value": [400]},
                      "n_rec": {"_type": "choice", "_value": [16, 32]},
                      "patience": {"_type": "choice", "_value": [1000]}},  # no early stop
        tuner="GridSearch", population=2, max_trials=2, max_duration=15,
        experiment_dir=exp_root,
    )
    records = exp.run().records
    assert [r.outcome for r in records] == [Outcome.COMPLETE] * 2, [r.reason for r in records]
    assert all(1 <= r.metrics["epochs_run"] < 400 for r in records)


@pytest.mark.slow
def test_a_template_trial_slower_than_its_limit_completes_with_its_best_epoch(
    exp_root: Path,
) -> None:
    """The spike-pattern template, 400 epochs asked and 15 s allowed: the trial ends its
    training in time and is COMPLETE, where it used to be killed and FAILED."""
    exp = Experiment(
        trial_command="python3 main_hpo.py --subset 12",
        trial_code_directory=TEMPLATES / "spike_patterns",
        search_space={"epochs": {"_type": "choice", "_value": [400]},
                      "n_rec": {"_type": "choice", "_value": [32]},
                      "patience": {"_type": "choice", "_value": [1000]}},  # no early stop
        max_trials=1, max_trial_duration=15, experiment_dir=exp_root,
    )
    (record,) = exp.run().records
    assert record.outcome == Outcome.COMPLETE, record.reason
    assert 1 <= record.metrics["epochs_run"] < 400
    result = json.loads((exp.paths.trial_dir(record.number) / "result.json")
                        .read_text(encoding="utf-8"))
    assert result["epochs_run"] == record.metrics["epochs_run"]
    stdout = (exp.paths.trial_dir(record.number) / "stdout.log").read_text()
    assert f"of {record.metrics['epochs_run']} (time_limit)" in stdout


def test_time_cap_by_hand_ends_the_training_in_time(tmp_path: Path) -> None:
    """``main_hpo.py --time-cap 0``: the first epoch only, then the trial's result."""
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"epochs": 50, "n_rec": 16}))
    run = subprocess.run(
        [sys.executable, "main_hpo.py", "--params", str(params), "--subset", "8",
         "--time-cap", "0", "--out", str(tmp_path / "out")],
        cwd=TEMPLATES / "spike_patterns", capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "best epoch 1 of 1 (time_limit)" in run.stdout, run.stdout
    result = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert result["epochs_run"] == 1
