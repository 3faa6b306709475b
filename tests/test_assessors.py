"""Assessors: NNI's Medianstop and Optuna's pruners, with validated arguments."""

from __future__ import annotations

import optuna
import pytest

from spiketune.engine.assessors import ASSESSORS, canonical_assessor_name, make_assessor
from spiketune.errors import ConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)


# Steps are reported as the scheduler does: the number of results so far, from 1.


def completed(study: optuna.Study, values: list[float]) -> None:
    trial = study.ask()
    for step, value in enumerate(values, start=1):
        trial.report(value, step)
    study.tell(trial, values[-1])


def pruned_at(study: optuna.Study, values: list[float]) -> int | None:
    """The step (results so far) at which the pruner stops a trial reporting ``values``."""
    trial = study.ask()
    for step, value in enumerate(values, start=1):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return step
    study.tell(trial, values[-1])
    return None


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("Medianstop", "Medianstop"), ("medianstop", "Medianstop"), ("MedianPruner", "Medianstop"),
     ("Hyperband", "Hyperband"), ("HyperbandPruner", "Hyperband"),
     ("SuccessiveHalving", "SuccessiveHalving"), ("successive_halving", "SuccessiveHalving"),
     ("Percentile", "Percentile"), ("Threshold", "Threshold"), ("Patient", "Patient"),
     ("Wilcoxon", "Wilcoxon"), ("MedianstopAssessor", "Medianstop")],
)
def test_names(given: str, canonical: str) -> None:
    assert canonical_assessor_name(given) == canonical


def test_curvefitting_is_refused_with_alternatives() -> None:
    with pytest.raises(ConfigError) as info:
        make_assessor("Curvefitting", {"epoch_num": 20})
    (problem,) = info.value.problems
    assert problem.field == "assessor" and "Medianstop" in problem.rule


def test_unknown_assessor_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        make_assessor("Oracle")
    assert all(name in info.value.problems[0].rule for name in ASSESSORS)


def test_no_assessor_is_none_but_arguments_without_one_are_an_error() -> None:
    assert make_assessor(None) is None
    with pytest.raises(ConfigError) as info:
        make_assessor(None, {"start_step": 3})
    assert info.value.problems[0].field == "assessor_args"


@pytest.mark.parametrize(
    ("name", "args", "pruner"),
    [("Medianstop", {}, "MedianPruner"),
     ("Hyperband", {"max_resource": 9}, "HyperbandPruner"),
     ("SuccessiveHalving", {"reduction_factor": 3}, "SuccessiveHalvingPruner"),
     ("Percentile", {"percentile": 25.0}, "PercentilePruner"),
     ("Threshold", {"lower": 0.1}, "ThresholdPruner"),
     ("Patient", {"patience": 2}, "PatientPruner"),
     ("Wilcoxon", {"p_threshold": 0.05}, "WilcoxonPruner")],
)
def test_each_assessor_builds_its_optuna_pruner(name: str, args: dict, pruner: str) -> None:
    assert type(make_assessor(name, args).create_pruner()).__name__ == pruner


@pytest.mark.parametrize(("start_step", "expected"), [(0, 1), (1, 1), (3, 3), (5, 5)])
def test_medianstop_start_step_counts_results_as_nni_does(start_step: int, expected: int) -> None:
    """NNI judges a trial once it has reported ``start_step`` results."""
    pruner = make_assessor("Medianstop", {"start_step": start_step}).create_pruner()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    completed(study, [1.0] * 6)
    assert pruned_at(study, [0.0] * 6) == expected


def test_medianstop_judges_after_one_completed_trial_and_respects_direction() -> None:
    study = optuna.create_study(direction="minimize",
                                pruner=make_assessor("Medianstop").create_pruner())
    completed(study, [1.0, 0.8, 0.6])
    assert pruned_at(study, [0.5, 0.4, 0.3]) is None   # better than the median: kept
    assert pruned_at(study, [2.0, 2.0, 2.0]) == 1      # worse: stopped at its first result


def test_patient_wraps_another_assessor() -> None:
    assessor = make_assessor("Patient", {"patience": 1, "wrapped": {"name": "Medianstop",
                                                                    "args": {"start_step": 2}}})
    pruner = assessor.create_pruner()
    assert type(pruner._wrapped_pruner).__name__ == "MedianPruner"
    with pytest.raises(ConfigError) as info:
        make_assessor("Patient", {"patience": 1, "wrapped": {"name": "Medianstop",
                                                             "args": {"bogus": 1}}})
    assert info.value.problems[0].field == "assessor_args.wrapped.args.bogus"


def test_silent_is_the_assessor_not_a_wrapped_one() -> None:
    """Its rule is the experiment's assessor's alone: wrapped, it would be dropped."""
    for outer in ("Patient", "Silent"):
        args = {"wrapped": {"name": "Silent", "args": {"lower": {"spikes": 3.0}}}}
        args |= {"patience": 5} if outer == "Patient" else {"lower": {"spikes": 1.0}}
        with pytest.raises(ConfigError) as info:
            make_assessor(outer, args)
        assert [p.field for p in info.value.problems] == ["assessor_args.wrapped.name"]


def test_silent_reads_no_measured_activity_as_silent_never_as_saturated() -> None:
    silent = make_assessor("Silent", {"lower": {"spikes": 1.0}, "upper": {"rate": 0.9}})
    assert silent.judge({"default": 0.5, "rate": float("nan")}, 3) is None
    judged = silent.judge({"default": 0.5, "spikes": float("nan")}, 3)
    assert judged is not None and judged.reason.startswith("silent network: spikes=0")


@pytest.mark.parametrize(
    ("name", "args", "field", "rule"),
    [("Medianstop", {"start_step": -1}, "assessor_args.start_step", "must be >= 0"),
     ("Medianstop", {"start_steps": 2}, "assessor_args.start_steps", "start_step"),
     ("Medianstop", {"start_step": 2, "n_warmup_steps": 1}, "assessor_args", "not both"),
     ("Percentile", {}, "assessor_args.percentile", "required"),
     ("Percentile", {"percentile": 120}, "assessor_args.percentile", "<= 100"),
     ("Threshold", {}, "assessor_args", "lower, upper"),
     ("Threshold", {"lower": 2, "upper": 1}, "assessor_args", "lower must be <= upper"),
     ("Hyperband", {"reduction_factor": 1}, "assessor_args.reduction_factor", ">= 2"),
     ("Hyperband", {"min_resource": 5, "max_resource": 3}, "assessor_args", "max_resource"),
     ("SuccessiveHalving", {"bootstrap_count": 2}, "assessor_args", "integer min_resource"),
     ("Wilcoxon", {"p_threshold": 1.5}, "assessor_args.p_threshold", "<= 1"),
     ("Patient", {"patience": 1.5}, "assessor_args.patience", "integer"),
     # an experiment setting: the configuration lifts it out of classArgs, an assessor refuses it
     ("Medianstop", {"optimize_mode": "minimize"}, "assessor_args.optimize_mode", "unknown key")],
)
def test_bad_arguments_name_key_value_and_rule(name: str, args: dict, field: str,
                                               rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_assessor(name, args)
    assert any(p.field == field and rule in p.rule for p in info.value.problems), \
        info.value.problems


def test_union_and_nested_argument_errors_read_as_one_rule() -> None:
    with pytest.raises(ConfigError) as info:
        make_assessor("Hyperband", {"max_resource": "lots"})
    (problem,) = info.value.problems
    assert problem.field == "assessor_args.max_resource"
    assert problem.rule == "must be an integer, or one of 'auto'"
    with pytest.raises(ConfigError) as info:
        make_assessor("Patient", {"patience": 1, "wrapped": {"nam": "Medianstop"}})
    found = {p.field: p.rule for p in info.value.problems}
    assert found["assessor_args.wrapped.nam"] == "unknown key; accepted: args, name"
    assert found["assessor_args.wrapped.name"] == "required"


def _low_unless_first(params: dict) -> float:
    import spiketune.trial as st

    value = 0.9 if params["x"] == 0.9 else 0.1
    for _ in range(4):
        st.report_intermediate_result(value)
    return value


@pytest.mark.parametrize(("name", "args"), [
    ("Threshold", {"lower": 0.5}),
    ("Percentile", {"percentile": 50.0, "n_startup_trials": 0}),
    ("Medianstop", {}),
])
@pytest.mark.parametrize("warmup", [0, 1, 2])
def test_n_warmup_steps_skips_that_many_reports_as_in_optuna(
    name: str, args: dict, warmup: int, exp_root
) -> None:
    """Optuna counts steps from 0 and spiketune from 1: ``n_warmup_steps = N`` still skips
    the first N reports, and the trial is stopped at the next one (the first trial, better,
    is what the second is compared with)."""
    from spiketune import Experiment, Outcome

    results = Experiment(
        trial=_low_unless_first, search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
        start_with=[{"x": 0.9}], max_trials=2, assessor=name,
        assessor_args={**args, "n_warmup_steps": warmup}).run()
    stopped = results.records[-1]
    assert stopped.outcome == Outcome.EARLY_STOPPED, stopped.reason
    assert len(stopped.intermediate) == warmup + 1


def _loss_falls_as_accuracy_rises(params: dict) -> dict:
    import spiketune.trial as st

    x = params["x"]
    for _ in range(4):
        st.report_intermediate_result({"default": x, "loss": 1.0 - x})
    return {"default": x, "loss": 1.0 - x}


@pytest.mark.parametrize(("assessor", "tuner"), [("Medianstop", "GridSearch"),
                                                 (None, "Hyperband")])
def test_one_named_objective_is_judged_on_its_own_key(assessor: str | None, tuner: str,
                                                      exp_root) -> None:
    """With ``objectives = [{key = "loss", direction = "minimize"}]`` the pruner judges each
    report's ``loss`` (falling is better), not its ``default`` (an accuracy, rising): the best
    trials run to the end and the worst are stopped."""
    from spiketune import Experiment, Outcome

    space = {"x": {"_type": "choice", "_value": [0.5, 0.1, 0.9, 0.2, 0.8, 0.3]}}
    if tuner == "Hyperband":  # samples at random: the same values, as start points
        args = {"start_with": [{"x": v} for v in space["x"]["_value"]], "max_trials": 6,
                "tuner_args": {"R": 4, "eta": 2}}
    else:
        args = {"assessor": assessor, "assessor_args": {"start_step": 2}}
    results = Experiment(trial=_loss_falls_as_accuracy_rises, search_space=space, tuner=tuner,
                         objectives=[{"key": "loss", "direction": "minimize"}], seed=0,
                         **args).run()
    outcome = {r.parameters["x"]: r.outcome for r in results.records}
    assert outcome[0.9] == Outcome.COMPLETE and results.best.parameters["x"] == 0.9
    stopped = [x for x, o in outcome.items() if o == Outcome.EARLY_STOPPED]
    assert stopped and max(stopped) < 0.5, outcome
    # Optuna's intermediate values are the objective's too
    import optuna

    study = optuna.load_study(study_name=results.id,
                              storage=f"sqlite:///{results.directory / 'study.db'}")
    trial = next(t for t in study.trials if t.params["x"] == 0.1)
    assert set(trial.intermediate_values.values()) == {0.9}


def test_reports_without_the_named_objective_are_not_judged(exp_root) -> None:
    """A pruner judges the objective's key in the objective's direction: reports that lack it
    give it nothing to judge, and it says so once rather than judge ``default``."""
    from spiketune import Experiment, Outcome

    def accuracy_only(params: dict) -> dict:
        import spiketune.trial as st

        for _ in range(3):
            st.report_intermediate_result({"default": params["x"]})
        return {"default": params["x"], "loss": 1.0 - params["x"]}

    space = {"x": {"_type": "choice", "_value": [0.5, 0.1, 0.9, 0.2]}}
    with pytest.warns(UserWarning, match="without 'loss', the objective the assessor judges"):
        results = Experiment(trial=accuracy_only, search_space=space, tuner="GridSearch",
                             objectives=[{"key": "loss", "direction": "minimize"}],
                             assessor="Medianstop", assessor_args={"start_step": 1}).run()
    assert all(r.outcome == Outcome.COMPLETE for r in results.records)
