"""Application-oriented search: several objectives, constraints, the hardware design check
before a trial starts, and the silent-network assessor."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from _storages import dispose, optuna_storage
from typer.testing import CliRunner

import spiketune.trial as st
from spiketune import Experiment, ExperimentConfig, load_config
from spiketune.engine.goals import CONSTRAINTS, Goal, Objective, pareto_front, sampler_trials
from spiketune.engine.outcome import Outcome, decide
from spiketune.engine.runners import Ended
from spiketune.errors import ConfigError, Problem

SPACE = {"x": {"_type": "uniform", "_value": [0.0, 1.0]}}
TWO = [{"key": "default", "direction": "maximize"}, {"key": "cost", "direction": "minimize"}]


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, Problem]:
    return {p.field: p for p in exc.value.problems}


def two_objectives(p: dict[str, Any]) -> dict[str, float]:
    """Accuracy grows with x, and so does cost: every trial is on the front."""
    return {"default": p["x"], "cost": p["x"] ** 2}


# ------------------------------------------------------------------------ configuration
def test_objectives_validated() -> None:
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=[{"key": "a", "direction": "up"}])
    assert "direction" in str(e.value) and "'up'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=[{"key": "a", "direction": "maximize"},
                                                         {"key": "a", "direction": "minimize"}])
    assert "repeated: a" in problems(e)["objectives"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=[])
    assert "at least one" in problems(e)["objectives"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE,
                         objectives=[{"key": "constraints", "direction": "minimize"}])
    assert "constraint" in problems(e)["objectives"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=[{"key": "a"}])
    assert "objectives[0].direction" in problems(e)


def test_tradeoffs_validated() -> None:
    cost = [{"key": "cost", "direction": "minimize"}]
    cfg = ExperimentConfig(search_space=SPACE, tradeoffs=cost)
    assert cfg.tradeoffs == [Objective(key="cost", direction="minimize")]
    assert cfg.directions == ["maximize"]  # the tuner still optimises one objective
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    assert "tradeoffs" not in ExperimentConfig(search_space=SPACE).to_dict()
    with pytest.raises(ConfigError) as e:  # the implicit objective is "default"
        ExperimentConfig(search_space=SPACE, tradeoffs=[{"key": "default",
                                                         "direction": "minimize"}])
    assert "none an objective; repeated: default" in problems(e)["tradeoffs"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=TWO, tradeoffs=cost)
    assert "repeated: cost" in problems(e)["tradeoffs"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, tradeoffs=[{"key": "constraints",
                                                         "direction": "minimize"}])
    assert "constraint" in problems(e)["tradeoffs"].rule


def test_optimize_mode_follows_the_first_objective() -> None:
    cfg = ExperimentConfig(search_space=SPACE, objectives=TWO[::-1])
    assert cfg.optimize_mode == "minimize" and cfg.directions == ["minimize", "maximize"]
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=TWO, optimize_mode="minimize")
    assert "first objective" in problems(e)["optimize_mode"].rule
    # the canonical form reads back, and leaves unused new fields out
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg
    plain = ExperimentConfig(search_space=SPACE).to_dict()
    assert not {"objectives", "hardware", "constraints"} & set(plain)


def test_several_objectives_refuse_pruning_and_single_objective_tuners() -> None:
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=TWO, assessor="Medianstop")
    rule = problems(e)["assessor"].rule
    assert "cannot prune" in rule and "several objectives" in rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=TWO, assessor="Silent",
                         assessor_args={"wrapped": {"name": "Medianstop"}})
    assert "cannot prune" in problems(e)["assessor"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=TWO, tuner="CmaEs")
    assert "one objective" in problems(e)["tuner"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=SPACE, objectives=TWO, tuner="Hyperband")
    assert "pruning" in problems(e)["tuner"].rule
    for tuner in ("NSGAII", "TPE", "GP", "Random", "QMC", "Evolution"):
        assert ExperimentConfig(search_space=SPACE, objectives=TWO, tuner=tuner).directions == [
            "maximize", "minimize"]
    ok = ExperimentConfig(search_space=SPACE, objectives=TWO, assessor="Silent")
    assert ok.constrained  # the silent rule reports constraint values


def test_hardware_validated() -> None:
    space = {"n_rec": {"_type": "choice", "_value": [16, 100]}}
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=space,
                         hardware={"target": "xylo-audio2", "n_in": 12, "colour": "red"})
    p = problems(e)
    assert "unknown key" in p["hardware.colour"].rule
    assert "search-space parameter named n_out" in p["hardware.n_out"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=space, hardware={"target": "xylo-audio2", "n_in": 12,
                                                       "n_out": 7, "n_rec": 20})
    assert "one place" in problems(e)["hardware.n_rec"].rule
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=space, hardware={"target": "xylo-audio2", "n_in": 12,
                                                       "n_out": 7, "max_hidden": 0})
    assert "hardware.max_hidden" in problems(e)
    with pytest.raises(ConfigError) as e:
        ExperimentConfig(search_space=space, hardware={"target": "tpu", "n_in": 1, "n_out": 1})
    assert "xylo-audio2" in problems(e)["hardware.target"].rule
    cfg = ExperimentConfig(search_space=space, hardware={"target": "Xylo_Audio2", "n_in": 12,
                                                         "n_out": 7, "max_hidden": 500,
                                                         "readout_bias": False})
    assert cfg.to_dict()["hardware"] == {"target": "xylo-audio2", "max_hidden": 500, "n_in": 12,
                                         "n_out": 7, "readout_bias": False}
    assert cfg.constrained
    design = cfg.goal().design
    assert design is not None
    assert design({"n_rec": 16}) is None
    broken = design({"n_rec": 100.0})  # a whole float, as quniform gives
    assert broken is not None and "max_fan_out = 106 exceeds the limit 64" in broken.reason


def test_hardware_that_no_trial_could_fit_is_refused_when_read() -> None:
    """Fixed facts that break a rule at the smallest sizes searched, flags that are not
    true or false, an unknown neuron, and a size the space hands out as fractions would make
    every trial FAILED: named when the config is read."""
    space = {"n_rec": {"_type": "choice", "_value": [16, 32]}}
    fits = {"target": "xylo-audio2", "n_in": 12, "n_out": 7, "readout_bias": False}
    for change, field in (({"n_in": 20}, "hardware.n_in"),
                          ({"readout_bias": "false"}, "hardware.readout_bias"),
                          ({"neuron": "lfi"}, "hardware.neuron"),
                          ({"neuron": "alif"}, "hardware.neuron")):
        with pytest.raises(ConfigError) as e:
            ExperimentConfig(search_space=space, hardware={**fits, **change})
        assert list(problems(e)) == [field], change
    without_bias = {k: v for k, v in fits.items() if k != "readout_bias"}  # default: a bias
    with pytest.raises(ConfigError, match="every trial would break its rule bias"):
        ExperimentConfig(search_space=space, hardware=without_bias)
    searched = {**space, "neuron": {"_type": "choice", "_value": ["alif", "lif"]}}
    ExperimentConfig(search_space=searched, hardware=fits)  # a trial may still fit
    for kind in ({"_type": "uniform", "_value": [10, 50]},
                 {"_type": "choice", "_value": [16.5, 32]}):
        with pytest.raises(ConfigError) as e:
            ExperimentConfig(search_space={"n_rec": kind}, hardware=fits)
        assert "whole numbers" in problems(e)["search_space.n_rec"].rule
    ExperimentConfig(search_space={"n_rec": {"_type": "quniform", "_value": [10, 50, 2]}},
                     hardware=fits)


def test_toml_form(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent("""
        trial_command = "python3 t.py"
        search_space = {n_rec = {_type = "choice", _value = [16, 40]}}
        tuner = "NSGAII"
        objectives = [{key = "default", direction = "maximize"},
                      {key = "synops_per_sample", direction = "minimize"}]
        hardware = {target = "xylo-audio2", n_in = 12, n_out = 7, readout_bias = false}
        assessor = "Silent"
        assessor_args = {lower = {spikes_per_sample = 1}, upper = {rate_per_step = 0.9}}
    """))
    cfg = load_config(path)
    assert cfg.directions == ["maximize", "minimize"]
    assert [o.key for o in cfg.goal().objectives] == ["default", "synops_per_sample"]
    assert cfg.goal().judge is not None and cfg.goal().design is not None


# ------------------------------------------------------------------------ pure parts
def test_pareto_front_by_hand() -> None:
    pts = [(0.9, 10.0), (0.8, 5.0), (0.7, 6.0), (0.9, 12.0), (0.95, 30.0), (0.8, 5.0)]
    assert pareto_front(pts, ["maximize", "minimize"]) == [0, 1, 4, 5]
    assert pareto_front(pts, ["minimize", "minimize"]) == [1, 2, 5]
    assert pareto_front([(1.0,), (3.0,), (3.0,)], ["maximize"]) == [1, 2]


def test_decide_names_a_missing_objective_and_bad_constraints() -> None:
    goal = Goal((Objective(key="default", direction="maximize"),
                 Objective(key="cost", direction="minimize")), constrained=True)
    v = decide(Ended(0, {"default": 0.5}, exit_code=0), stop_reason=None, goal=goal)
    assert v.outcome == Outcome.FAILED and "'cost'" in (v.reason or "")
    v = decide(Ended(0, {"default": 0.5, "cost": float("nan")}, exit_code=0), stop_reason=None,
               goal=goal)
    assert v.outcome == Outcome.FAILED and "cost=nan" in (v.reason or "")
    v = decide(Ended(0, {"default": 0.5, "cost": 1, "constraints": ["x"]}, exit_code=0),
               stop_reason=None, goal=goal)
    assert v.outcome == Outcome.FAILED and "constraints" in (v.reason or "")
    v = decide(Ended(0, {"default": 0.5, "cost": 1, "constraints": [0.2, -1]}, exit_code=0),
               stop_reason=None, goal=goal)
    assert v.outcome == Outcome.COMPLETE
    assert goal.constraints(v.metrics) == [pytest.approx(0.2), 0.0, 0.0]


def test_a_null_objective_fails_the_trial_as_the_docs_say() -> None:
    """``null`` under ``"default"`` (or a bare ``null``) is read as NaN: non-finite; under a
    named objective it is kept as it is: not a number (docs/engine.md)."""
    from spiketune.trial._protocol import parse_metric_line

    goal = Goal((Objective(key="acc", direction="maximize"),
                 Objective(key="energy", direction="minimize")))
    lines = {
        b'{"type": "final", "value": null}': (Goal(), "non-finite metric: default=nan"),
        b'{"type": "final", "value": {"default": null, "acc": 1}}':
            (Goal(), "non-finite metric: default=nan"),
        b'{"type": "final", "value": {"default": 1, "acc": 1, "energy": null}}':
            (goal, "metric not a number: energy=None"),
    }
    for line, (judged_by, reason) in lines.items():
        _, final = parse_metric_line(line)
        v = decide(Ended(0, final, exit_code=0), stop_reason=None, goal=judged_by)
        assert (v.outcome, v.reason) == (Outcome.FAILED, reason)


def test_sampler_view_of_infeasible_trials() -> None:
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    state = optuna.trial.TrialState

    def stored(number: int, s: Any, values: Any, constraints: Any) -> Any:
        t = optuna.trial.create_trial(state=s, values=values, params={"x": 0.1 * number},
                                      distributions=dist,
                                      user_attrs={} if constraints is None
                                      else {"constraints": constraints})
        t.number = number
        return t

    goal = Goal((Objective(key="default", direction="maximize"),
                 Objective(key="cost", direction="minimize")), constrained=True)
    trials = [stored(0, state.COMPLETE, [0.5, 3.0], [0, 0, 0]),
              stored(1, state.COMPLETE, [0.9, 1.0], None),
              stored(2, state.FAIL, None, [0.0, 0.4, 0.0]),  # the design check refused it
              stored(3, state.FAIL, None, None)]               # an ordinary failure
    view = sampler_trials(trials, goal)
    assert [t.state for t in view] == [state.COMPLETE, state.COMPLETE, state.COMPLETE, state.FAIL]
    assert view[2].values == [0.5, 3.0]  # the worst of each objective so far
    assert view[2].constraints == {"reported": 0.0, "design": 0.4, "silent": 0.0}
    assert view[1].constraints == dict.fromkeys(CONSTRAINTS, 0.0)
    assert sampler_trials(trials, Goal()) == trials  # unconstrained: untouched


# ------------------------------------------------------------------------ runs
def test_multi_objective_run_gives_a_pareto_front(exp_root: Path) -> None:
    def trial(p: dict[str, Any]) -> dict[str, float]:
        x, y = p["x"], p["y"]
        return {"default": x - 0.5 * y, "cost": x * x + y}

    space = {"x": {"_type": "uniform", "_value": [0, 1]},
             "y": {"_type": "uniform", "_value": [0, 1]}}
    results = Experiment(trial=trial, search_space=space, objectives=TWO, tuner="NSGAII",
                         tuner_args={"population_size": 6}, max_trials=18, seed=0).run()
    assert results.multi_objective and results.count(Outcome.COMPLETE) == 18
    front = results.pareto_front()
    assert front and results.best_trials == front and results.best in front
    values = {r.number: results.objective_values(r) for r in results.records}

    def dominates(a: list[float], b: list[float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    on = {r.number for r in front}
    for n, v in values.items():
        beaten = any(dominates(o, v) for m, o in values.items() if m != n)
        assert (n in on) == (not beaten), n
    # Optuna's own reading of the stored study agrees
    study = optuna.load_study(study_name=results.id,
                              storage=f"sqlite:///{results.directory / 'study.db'}")
    assert len(study.directions) == 2
    assert {t.number for t in study.best_trials} == on


def test_multi_objective_on_both_storages(storage_url: str, exp_root: Path) -> None:
    results = Experiment(trial=two_objectives, search_space=SPACE, objectives=TWO, tuner="TPE",
                         max_trials=4, seed=1, storage=storage_url).run()
    storage = optuna_storage(storage_url)  # a database or the journal, as Optuna opens it
    stored = optuna.load_study(study_name=results.id, storage=storage)
    dispose(storage)
    for t in stored.trials:
        assert t.values == [pytest.approx(t.user_attrs["metrics"]["default"]),
                            pytest.approx(t.user_attrs["metrics"]["cost"])]
    assert len(results.pareto_front()) >= 1


def test_optuna_reading_the_stored_study_leaves_infeasible_trials_out(
    storage_url: str, exp_root: Path
) -> None:
    """Optuna's ``best_trial`` and ``best_trials`` on the stored study agree with spiketune's
    ``best`` and Pareto front: every finished trial stores its constraint values as Optuna's
    ``Trial.set_constraint`` does, so an infeasible trial is never Optuna's best."""
    space = {"x": {"_type": "choice", "_value": [0.2, 0.9, 0.4, 0.7]}}

    def trial(p: dict[str, Any]) -> dict[str, Any]:
        return {"default": p["x"], "cost": p["x"] ** 2, "constraints": p["x"] - 0.5}

    one = Experiment(trial=trial, search_space=space, tuner="GridSearch", constraints=True,
                     storage=storage_url, name="one").run()
    two = Experiment(trial=trial, search_space=space, tuner="GridSearch", constraints=True,
                     objectives=TWO, storage=storage_url, name="two").run()
    storage = optuna_storage(storage_url)
    single = optuna.load_study(study_name=one.id, storage=storage)
    multi = optuna.load_study(study_name=two.id, storage=storage)
    dispose(storage)
    assert one.best is not None and one.best.parameters["x"] == 0.4
    assert single.best_trial.number == one.best.number
    assert single.best_trial.constraints == {"reported": 0.0, "design": 0.0, "silent": 0.0}
    infeasible = next(t for t in single.trials if t.params["x"] == 0.9)
    assert infeasible.constraints["reported"] == pytest.approx(0.4)
    assert sorted(t.params["x"] for t in multi.best_trials) == [0.2, 0.4]
    assert {t.number for t in multi.best_trials} == {r.number for r in two.pareto_front()}


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_constraints_must_be_true_or_false_not_a_truthy_value(value: Any) -> None:
    with pytest.raises(ConfigError, match="constraints: must be true or false"):
        Experiment(trial=lambda p: 0.0, search_space=SPACE, constraints=value)


def test_an_objective_that_is_not_a_number_says_so(exp_root: Path) -> None:
    """True or "3" as an objective fails the trial as not a number (not as non-finite)."""
    space = {"x": {"_type": "choice", "_value": [True, "3"]}}
    results = Experiment(trial=lambda p: {"default": 0.5, "cost": p["x"]}, search_space=space,
                         tuner="GridSearch", objectives=TWO).run()
    assert [r.reason for r in results.records] == ["metric not a number: cost=True",
                                                   "metric not a number: cost='3'"]


def test_missing_objective_key_fails_the_trial(exp_root: Path) -> None:
    results = Experiment(trial=lambda p: {"default": p["x"]}, search_space=SPACE,
                         objectives=TWO, max_trials=2, seed=0, constraints=True).run()
    assert all(r.outcome == Outcome.FAILED for r in results.records)
    assert "no 'cost', an objective" in (results.records[0].reason or "")
    assert results.pareto_front() == [] and results.best is None
    # an ordinary failure says nothing about feasibility
    assert all(r.constraints is None and r.feasible is None for r in results.records)


def test_one_objective_named_by_its_key_is_every_records_value(exp_root: Path,
                                                                tmp_path: Path) -> None:
    """``objectives = [{key = "cost", direction = "minimize"}]``: each record's value, the
    exports' ``value`` and the report's objective column are the cost, not ``default``."""
    from spiketune import build_report, export_results

    results = Experiment(trial=lambda p: {"default": p["x"], "cost": 1.0 - p["x"]},
                         search_space=SPACE, max_trials=4, seed=0, tuner="Random",
                         objectives=[{"key": "cost", "direction": "minimize"}]).run()
    assert results.objective_key == "cost"
    assert all(r.value == r.metrics["cost"] != r.metrics["default"] for r in results.records)
    assert results.best is min(results.records, key=lambda r: r.metrics["cost"])
    exported = json.loads(export_results(results, "json"))
    assert [t["value"] for t in exported["trials"]] == [r.metrics["cost"]
                                                        for r in results.records]
    assert results.directory is not None
    page = build_report(results.directory, tmp_path / "report").index.read_text()
    assert "objective (cost)" in page and "objective (default)" not in page
    assert "cost (objective)" in page  # the best trial's row


def test_with_several_named_objectives_the_first_is_every_records_value(
    exp_root: Path, tmp_path: Path,
) -> None:
    """The trial still reports ``default`` (the protocol asks for it), but it is no
    objective: records, exports, the report and its history show the first objective; an
    infeasible trial is drawn apart and is never the best so far."""
    from spiketune import build_report, export_results
    from spiketune.report._figures import best_so_far

    def trial(p: dict[str, Any]) -> dict[str, Any]:
        return {"default": 1.0 - p["x"], "acc": p["x"], "cost": 10 * p["x"],
                "constraints": p["x"] - 0.7}

    results = Experiment(trial=trial, search_space=SPACE, max_trials=6, seed=1,
                         tuner="Random", constraints=True,
                         objectives=[{"key": "acc", "direction": "maximize"},
                                     {"key": "cost", "direction": "minimize"}]).run()
    assert results.objective_key == "acc"
    assert all(r.value == r.metrics["acc"] for r in results.records)
    exported = json.loads(export_results(results, "json"))
    assert [t["value"] for t in exported["trials"]] == [r.metrics["acc"]
                                                        for r in results.records]
    feasible = [r.metrics["acc"] for r in results.records if r.feasible]
    assert any(r.feasible is False for r in results.records) and feasible
    assert best_so_far(results)[-1][1] == max(feasible)  # never an infeasible trial's
    page = build_report(results.directory, tmp_path / "report").index.read_text()
    assert "objective (acc)" in page and "acc (first objective)" in page
    assert "objective (default)" not in page and "objective, default" not in page
    none_feasible = Experiment(trial=lambda p: {**trial(p), "constraints": 1.0},
                               search_space=SPACE, max_trials=2, seed=1, tuner="Random",
                               constraints=True, objectives=[{"key": "acc",
                                                              "direction": "maximize"}]).run()
    page = build_report(none_feasible.directory, tmp_path / "none").index.read_text()
    assert "No feasible trial: 2 complete trials broke the constraints" in page


class _Recording(optuna.samplers.RandomSampler):
    """Remembers, before each trial, what the finished trials of its study look like."""

    seen: list[list[tuple[str, dict[str, float]]]]

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.seen.append([(t.state.name, dict(t.constraints))
                          for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
        super().before_trial(study, trial)


def test_constraints_reach_the_sampler(exp_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sampler = _Recording(seed=0)
    sampler.seen = []
    monkeypatch.setattr("spiketune.engine.tuners.Random.create_sampler",
                        lambda self, space, *, seed, directions: sampler)

    def trial(p: dict[str, Any]) -> dict[str, Any]:
        return {"default": p["x"], "constraints": [p["x"] - 0.5]}  # x > 0.5 is infeasible

    results = Experiment(trial=trial, search_space=SPACE, tuner="Random", constraints=True,
                         max_trials=6, seed=3).run()
    last = sampler.seen[-1]
    assert len(last) == 5
    recorded = {r.number: r for r in results.records}
    for (state, constraints), number in zip(last, range(5), strict=True):
        x = recorded[number].parameters["x"]
        assert state == "COMPLETE"
        assert constraints == {"reported": pytest.approx(max(0.0, x - 0.5)), "design": 0.0,
                               "silent": 0.0}
        assert recorded[number].feasible == (x <= 0.5)
    # the best trial is the best feasible one
    feasible = [r for r in results.records if r.feasible]
    assert results.best is not None and results.best.feasible
    assert results.best.value == max(r.value for r in feasible)


def test_feasibility_aware_tuner_learns_to_stay_feasible(exp_root: Path) -> None:
    def trial(p: dict[str, Any]) -> dict[str, Any]:
        # the objective pulls towards x = 1, but only x <= 0.3 is feasible
        return {"default": p["x"], "constraints": [p["x"] - 0.3]}

    def late_feasible(constraints: bool) -> tuple[float, Any]:
        results = Experiment(trial=trial, search_space=SPACE, tuner="TPE",
                             tuner_args={"n_startup_trials": 8}, constraints=constraints,
                             max_trials=40, seed=0).run()
        late = [r.parameters["x"] <= 0.3 for r in results.records if r.number >= 20]
        return sum(late) / len(late), results

    learned, results = late_feasible(True)
    blind, _ = late_feasible(False)
    # TPE samples around the best feasible point, on the boundary: about half of its draws
    # land inside; without the constraints it chases x = 1 and almost never does
    assert learned >= 0.4 and blind <= 0.15, (learned, blind)
    assert 0.25 <= results.best.value <= 0.3


def test_design_check_skips_infeasible_trials_without_launching_them(
    exp_root: Path, trial_script: Callable[..., Path]
) -> None:
    code = trial_script("""
        import os, pathlib
        import spiketune.trial as st
        p = st.get_next_parameter()
        pathlib.Path(os.environ["SPIKETUNE_TRIAL_DIR"], "ran").write_text("yes")
        st.report_final_result({"default": p["n_rec"] / 100, "synops": p["n_rec"] * 3.0})
    """)
    space = {"n_rec": {"_type": "choice", "_value": [16, 100, 40, 200]}}
    start = time.monotonic()
    results = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                         search_space=space, tuner="GridSearch",
                         hardware={"target": "xylo-audio2", "n_in": 12, "n_out": 7,
                                   "readout_bias": False}).run()
    elapsed = time.monotonic() - start
    by_n = {r.parameters["n_rec"]: r for r in results.records}
    for n in (100, 200):
        r = by_n[n]
        assert r.outcome == Outcome.FAILED and r.feasible is False
        assert (r.reason or "").startswith("infeasible: xylo-audio2: max_fan_out")
        assert r.constraints is not None and r.constraints[1] > 0 and r.constraints[0] == 0
        assert r.duration_seconds is not None and r.duration_seconds < 0.5
        trial_dir = results.directory / "trials" / str(r.number)  # type: ignore[operator]
        assert not (trial_dir / "ran").exists() and not (trial_dir / "stdout.log").exists()
    for n in (16, 40):
        r = by_n[n]
        assert r.outcome == Outcome.COMPLETE and r.feasible is True
        assert (results.directory / "trials" / str(r.number) / "ran").exists()  # type: ignore[operator]
    assert results.best is not None and results.best.parameters["n_rec"] == 40
    assert elapsed < 30


def test_silent_assessor_stops_a_silent_trial(exp_root: Path) -> None:
    reached: list[int] = []

    def trial(p: dict[str, Any]) -> float:
        for epoch in range(1, 4):
            spikes = 0.0 if p["x"] < 0.5 else 40.0
            st.report_intermediate_result({"default": 0.1 * epoch, "spikes_per_sample": spikes})
            reached.append(epoch)
        return 0.5

    space = {"x": {"_type": "choice", "_value": [0.2, 0.8]}}
    results = Experiment(trial=trial, search_space=space, tuner="GridSearch",
                         assessor="Silent").run()
    silent, lively = sorted(results.records, key=lambda r: r.parameters["x"])
    assert silent.outcome == Outcome.EARLY_STOPPED
    assert "silent network: spikes_per_sample=0 < 1" in (silent.reason or "")
    assert silent.constraints == [0.0, 0.0, pytest.approx(1.0)] and silent.feasible is False
    assert lively.outcome == Outcome.COMPLETE and lively.feasible is True
    assert reached.count(2) == 1  # the silent trial never reported a second epoch


def test_an_infeasible_complete_trial_says_why(
    exp_root: Path, trial_script: Callable[..., Path]
) -> None:
    """A trial that broke a constraint and still ended COMPLETE (its reported constraints, or
    a silent report whose stop it outlived) carries the reason, and ``trials``, its JSON and
    the CSV export show it infeasible."""
    from spiketune import export_results
    from spiketune.cli import app

    code = trial_script("""
        import signal, time
        import spiketune.trial as st
        p = st.get_next_parameter()
        if p["x"] == 0.3:  # silent, and deaf to the stop: it ends with its result all the same
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            st.report_intermediate_result({"default": 0.1, "spikes_per_sample": 0.25})
            time.sleep(0.5)
        st.report_final_result({"default": p["x"], "constraints": [p["x"] - 0.6, -1.0]})
    """)
    space = {"x": {"_type": "choice", "_value": [0.2, 0.9, 0.3]}}
    results = Experiment(trial_command="python3 trial.py", trial_code_directory=code,
                         search_space=space, tuner="GridSearch", assessor="Silent",
                         constraints=True).run()
    by_x = {r.parameters["x"]: r for r in results.records}
    assert all(r.outcome == Outcome.COMPLETE for r in results.records)
    assert by_x[0.2].feasible and by_x[0.2].reason is None
    assert by_x[0.9].feasible is False
    assert by_x[0.9].reason == "infeasible: its reported constraints 0.3, -1 (> 0 is broken)"
    assert by_x[0.3].feasible is False
    assert by_x[0.3].reason == "infeasible: silent network: spikes_per_sample=0.25 < 1"
    runner = CliRunner()
    table = runner.invoke(app, ["trials", results.id])
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): line for line in table.output.splitlines()
            if line.startswith("│")}
    number = {x: str(r.number) for x, r in by_x.items()}
    assert "COMPLETE (infeasible)" in rows[number[0.9]]
    assert "infeasible: its reported constraints" in rows[number[0.9]]
    assert "COMPLETE (infeasible)" in rows[number[0.3]] and "silent network" in rows[number[0.3]]
    assert "infeasible" not in rows[number[0.2]]
    shown = json.loads(runner.invoke(app, ["trials", results.id, "--json"]).output)
    assert {t["number"]: (t["feasible"], t["cause"]) for t in shown}[by_x[0.3].number] == (
        False, "infeasible: silent network: spikes_per_sample=0.25 < 1")
    csv_rows = export_results(results, "csv").splitlines()
    assert any("silent network" in row and row.startswith(f"{by_x[0.3].number},")
               for row in csv_rows)


# ------------------------------------------------------------------------ CLI and report
@pytest.fixture
def front_experiment(exp_root: Path) -> Any:
    def trial(p: dict[str, Any]) -> dict[str, float]:
        st.report_intermediate_result({"default": p["x"] / 2, "spikes_per_sample": 3})
        return {"default": p["x"], "cost": (p["x"] - 0.2) ** 2}

    return Experiment(trial=trial, search_space=SPACE, objectives=TWO, tuner="NSGAII",
                      assessor="Silent", max_trials=8, seed=2).run()


def test_best_lists_the_front(front_experiment: Any) -> None:
    from spiketune.cli import app

    runner = CliRunner()
    front = [r.number for r in front_experiment.pareto_front()]
    out = runner.invoke(app, ["best", front_experiment.id])
    assert out.exit_code == 0, out.output
    assert f"Pareto front: {len(front)} trial" in out.output
    assert "cost" in out.output and "maximize default" in out.output
    shown = runner.invoke(app, ["best", front_experiment.id, "--json"])
    assert [t["number"] for t in json.loads(shown.output)] == front
    listed = runner.invoke(app, ["ls"])
    assert f"front: {len(front)}" in listed.output


def test_report_draws_the_front(front_experiment: Any) -> None:
    from spiketune.report import build_report

    files = build_report(front_experiment.directory)
    assert files.pareto is not None and files.pareto.stat().st_size > 1000
    page = files.index.read_text()
    assert "<h2>Pareto front</h2>" in page and "pareto_front.png" in page
    for r in front_experiment.pareto_front():
        assert f'data-v="{float(r.number)!r}"' in page


def test_tradeoffs_give_a_single_objective_search_a_front(exp_root: Path) -> None:
    """Accuracy alone is optimised; the front of accuracy against cost is still drawn."""
    from spiketune.cli import app
    from spiketune.report import build_report

    space = {"x": {"_type": "choice", "_value": [0.1, 0.3, 0.5, 0.7, 0.9]},
             "y": {"_type": "choice", "_value": [0.0, 1.0]}}

    def trial(p: dict[str, Any]) -> dict[str, float]:
        return {"default": p["x"] - 0.1 * p["y"], "cost": p["x"] ** 2 + p["y"]}

    results = Experiment(trial=trial, search_space=space, tuner="GridSearch",
                         tradeoffs=[{"key": "cost", "direction": "minimize"}]).run()
    assert not results.multi_objective and results.has_front
    assert results.best is not None and results.best.parameters == {"x": 0.9, "y": 0.0}
    front = results.pareto_front(tradeoffs=True)
    # y = 1 costs more and scores less: never on the front; every x with y = 0 is
    assert sorted(r.parameters["x"] for r in front) == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert all(r.parameters["y"] == 0.0 for r in front)
    assert [r.number for r in results.pareto_front()] == [results.best.number]
    files = build_report(results.directory)
    assert files.pareto is not None and files.pareto.stat().st_size > 1000
    page = files.index.read_text()
    assert "<h2>Pareto front</h2>" in page and "not optimised: minimize cost" in page
    out = CliRunner().invoke(app, ["best", results.id])
    assert out.exit_code == 0, out.output
    assert f"best trial {results.best.number}" in out.output
    assert "Pareto front: 5 trials" in out.output and "minimize cost" in out.output


def test_a_trial_without_its_trade_off_metric_is_named_off_the_front(exp_root: Path) -> None:
    """It is complete (its objective is there) but cannot be placed on the front: the
    report says which trials were left off, and the figure counts every complete trial."""
    from spiketune.report._pareto import pareto_caption

    space = {"x": {"_type": "choice", "_value": [0.1, 0.5, 0.9]}}

    def trial(p: dict[str, Any]) -> dict[str, Any]:
        return {"default": p["x"], **({} if p["x"] == 0.9 else {"cost": p["x"]})}

    results = Experiment(trial=trial, search_space=space, tuner="GridSearch",
                         tradeoffs=[{"key": "cost", "direction": "minimize"}]).run()
    assert all(r.outcome == Outcome.COMPLETE for r in results.records)
    best = results.best
    assert best is not None and best.parameters == {"x": 0.9}
    assert best not in results.pareto_front(tradeoffs=True)
    assert f"1 complete trial without a finite cost (trial {best.number})" in pareto_caption(
        results)


def test_braille_xylo_example_config() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "examples" / "braille_xylo"
                         / "config.toml")
    assert config.directions == ["maximize"] and config.tuner == "TPE"
    assert [(o.key, o.direction) for o in config.tradeoffs or []] == [
        ("synops_per_sample", "minimize")]  # the front: accuracy against synaptic operations
    design = config.goal().design
    assert design is not None
    # The hidden layer is fixed at 58 neurons, the largest a dense recurrent layer with 7
    # readouts fits (fan-out n_rec - 1 recurrent + 7 readout synapses <= 64); a trial that sets
    # one more neuron is refused before any training, one fewer is checked as it is.
    assert "n_rec" not in config.space().to_nni()
    assert design({}) is None and design({"n_rec": 24}) is None
    assert design({"n_rec": 59}) is not None


def test_the_front_is_drawn_on_a_log_axis_where_an_objective_spans_decades() -> None:
    from spiketune.report._pareto import axis_scale

    assert axis_scale([0.1, 0.5, 0.9]) == "linear"
    assert axis_scale([6e3, 1.3e4, 5.9e28]) == "log"  # a run-away network among the trials
    assert axis_scale([0.0, 1e9]) == "linear" and axis_scale([]) == "linear"
