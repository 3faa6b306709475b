"""Tuners: NNI names mapped to Optuna samplers, seeds honoured, refusals that name alternatives."""

from __future__ import annotations

import importlib.util
import statistics
from typing import Any

import optuna
import pytest

from spiketune.engine import assessors, tuners
from spiketune.engine.space import SearchSpace
from spiketune.engine.tuners import TUNERS, canonical_tuner_name, make_tuner
from spiketune.errors import ConfigError

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace.from_nni({
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "x": {"_type": "uniform", "_value": [-1, 1]},
    "n": {"_type": "randint", "_value": [1, 9]},
    "act": {"_type": "choice", "_value": ["relu", "tanh"]},
})
FINITE = SearchSpace.from_nni({
    "a": {"_type": "choice", "_value": [1, 2, 3]},
    "b": {"_type": "quniform", "_value": [0, 1, 0.5]},
})


def run(tuner: tuners.Tuner, space: SearchSpace, n: int, *, seed: int | None,
        direction: str = "maximize", objective: Any = None) -> list[dict]:
    """n trials the way the scheduler drives them: enqueue fixed trials, ask, sample, tell."""
    sampler = tuner.create_sampler(space, seed=seed, directions=[direction])
    study = optuna.create_study(sampler=sampler, direction=direction)
    for params in tuner.fixed_trials(space, seed=seed) or []:
        study.enqueue_trial(params)
    out = []
    for _ in range(n):
        trial = study.ask()
        params = space.sample(trial)
        value = objective(params) if objective else params.get("x", 0.0) ** 2 + params.get("n", 0)
        study.tell(trial, value)
        out.append(params)
    return out


# ------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("TPE", "TPE"), ("tpe", "TPE"), ("Random", "Random"), ("RandomSearch", "Random"),
        ("GridSearch", "GridSearch"), ("gridsearch", "GridSearch"), ("Batch", "Batch"),
        ("BatchTuner", "Batch"), ("Evolution", "Evolution"), ("GP", "GP"), ("GPTuner", "GP"),
        ("Hyperband", "Hyperband"), ("hyperband", "Hyperband"), ("BOHB", "BOHB"),
        ("CmaEs", "CmaEs"), ("CMA-ES", "CmaEs"), ("cma_es", "CmaEs"), ("QMC", "QMC"),
        ("NSGAII", "NSGAII"), ("NSGA-II", "NSGAII"), ("BruteForce", "BruteForce"),
        ("brute_force", "BruteForce"), ("TPESampler", "TPE"),
    ],
)
def test_names_are_matched_as_nni_does(given: str, canonical: str) -> None:
    assert canonical_tuner_name(given) == canonical
    assert make_tuner(given).name == canonical


@pytest.mark.parametrize(
    ("name", "alternative"),
    [("Anneal", "CmaEs"), ("Metis", "GP"), ("MetisTuner", "GP"), ("SMAC", "TPE"),
     ("PBT", "Evolution"), ("PBTTuner", "Hyperband"), ("DNGO", "GP"), ("DNGOTuner", "TPE"),
     ("PPOTuner", "TPE"), ("NetworkMorphism", "Evolution")],
)
def test_names_without_a_faithful_equivalent_are_refused_with_alternatives(
    name: str, alternative: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner(name)
    (problem,) = info.value.problems
    assert problem.field == "tuner" and problem.value == name
    assert "not supported" in problem.rule and alternative in problem.rule


def test_unknown_name_lists_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner("Bayes")
    rule = info.value.problems[0].rule
    assert all(name in rule for name in TUNERS)


# ------------------------------------------------------------- samplers


@pytest.mark.parametrize(
    ("name", "sampler"),
    [("TPE", "TPESampler"), ("Random", "RandomSampler"), ("Evolution", "NSGAIISampler"),
     ("NSGAII", "NSGAIISampler"), ("GP", "GPSampler"), ("CmaEs", "CmaEsSampler"),
     ("QMC", "QMCSampler"), ("Hyperband", "RandomSampler"), ("BOHB", "TPESampler")],
)
def test_each_tuner_builds_the_sampler_of_the_same_intent(name: str, sampler: str) -> None:
    built = make_tuner(name).create_sampler(SPACE, seed=0, directions=["maximize"])
    assert type(built).__name__ == sampler


SEEDED = ["TPE", "Random", "Evolution", "NSGAII", "CmaEs", "QMC", "Hyperband", "BOHB",
          "BruteForce"]


@pytest.mark.parametrize("name", SEEDED)
def test_same_seed_gives_the_same_sequence_of_parameters(name: str) -> None:
    space = FINITE if name == "BruteForce" else SPACE
    n = 6 if name == "BruteForce" else 14
    first = run(make_tuner(name), space, n, seed=42)
    again = run(make_tuner(name), space, n, seed=42)
    other = run(make_tuner(name), space, n, seed=7)
    assert first == again
    assert first != other


def test_gp_is_seeded_too() -> None:
    tuner = make_tuner("GP", {"cold_start_num": 3})
    first = run(tuner, SPACE, 5, seed=1)
    assert first == run(make_tuner("GP", {"cold_start_num": 3}), SPACE, 5, seed=1)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_optimize_mode_steers_the_search(direction: str) -> None:
    space = SearchSpace.from_nni({"x": {"_type": "uniform", "_value": [0, 1]}})
    tuner = make_tuner("TPE", {"n_startup_trials": 5})
    xs = [p["x"] for p in run(tuner, space, 40, seed=3, direction=direction,
                              objective=lambda p: p["x"])]
    late = statistics.mean(xs[-15:])
    assert late > 0.7 if direction == "maximize" else late < 0.3


def test_nni_tpe_args_are_honoured() -> None:
    tuner = make_tuner("TPE", {"tpe_args": {"n_startup_jobs": 20, "n_ei_candidates": 12,
                                            "constant_liar_type": None}})
    assert isinstance(tuner, tuners.TPE)
    assert tuner.sampler_kwargs() == {"multivariate": False, "group": False,
                                      "constant_liar": False, "n_startup_trials": 20,
                                      "n_ei_candidates": 12}
    sampler = tuner.create_sampler(SPACE, seed=0, directions=["maximize"])
    assert sampler._n_startup_trials == 20
    with pytest.raises(ConfigError) as info:
        make_tuner("TPE", {"tpe_args": {"constant_liar_type": "mean"}})
    assert info.value.problems[0].field == "tuner_args.tpe_args.constant_liar_type"


def test_evolution_keeps_nni_population_size() -> None:
    sampler = make_tuner("Evolution", {"population_size": 8}).create_sampler(
        SPACE, seed=0, directions=["maximize"])
    assert sampler._population_size == 8
    assert make_tuner("Evolution").create_sampler(
        SPACE, seed=0, directions=["maximize"])._population_size == 32


# ------------------------------------------------------------- fixed trials


def test_grid_search_runs_every_point_once_in_order() -> None:
    tuner = make_tuner("GridSearch")
    assert tuner.check(FINITE) == []
    got = run(tuner, FINITE, 9, seed=None)
    assert got == FINITE.grid()
    assert len(tuner.fixed_trials(FINITE)) == 9


def test_brute_force_runs_every_point_once_in_a_seeded_order() -> None:
    tuner = make_tuner("BruteForce")
    got = run(tuner, FINITE, 9, seed=5)
    assert sorted(map(repr, got)) == sorted(map(repr, FINITE.grid()))
    assert got == run(tuner, FINITE, 9, seed=5)
    assert got != FINITE.grid() or run(tuner, FINITE, 9, seed=6) != FINITE.grid()


@pytest.mark.parametrize("name", ["GridSearch", "BruteForce"])
def test_grid_tuners_refuse_continuous_spaces(name: str) -> None:
    problems = make_tuner(name).check(SPACE)
    assert {p.field for p in problems} == {"search_space.lr", "search_space.x"}
    assert all(p.rule.startswith(f"{name}: ") and "finite" in p.rule for p in problems)


def test_batch_runs_exactly_the_listed_configurations() -> None:
    sets = [{"optimizer": "Adam", "lr": 0.001}, {"optimizer": "Adam", "lr": 0.0001},
            {"optimizer": "SGD", "lr": 0.01}]
    space = SearchSpace.batch({"combine_params": {"_type": "choice", "_value": sets}})
    tuner = make_tuner("BatchTuner")
    assert tuner.batch_space and tuner.check(space) == []
    assert tuner.fixed_trials(space) == [{"combine_params": i} for i in range(3)]
    assert run(tuner, space, 3, seed=None) == sets
    assert tuner.check(SPACE)[0].field == "search_space"


def test_free_tuners_have_no_fixed_trials() -> None:
    assert make_tuner("TPE").fixed_trials(SPACE) is None


# ------------------------------------------------------------- advisors


def test_hyperband_is_random_search_with_a_hyperband_pruner_and_a_trial_budget() -> None:
    tuner = make_tuner("Hyperband", {"R": 27, "eta": 3})
    assessor = tuner.implied_assessor()
    assert isinstance(assessor, assessors.Hyperband)
    assert assessor.arguments() == {"min_resource": 1, "max_resource": 27, "reduction_factor": 3}
    pruner = assessor.create_pruner()
    assert type(pruner).__name__ == "HyperbandPruner"
    assert tuner.constants == {"TRIAL_BUDGET": 27}
    with pytest.raises(ConfigError) as info:
        make_tuner("Hyperband", {"exec_mode": "serial"})
    assert info.value.problems[0].field == "tuner_args.exec_mode"


def test_bohb_is_tpe_with_a_hyperband_pruner() -> None:
    tuner = make_tuner("BOHB", {"min_budget": 2, "max_budget": 18, "eta": 3,
                                "min_points_in_model": 7})
    assert tuner.implied_assessor().arguments() == {
        "min_resource": 2, "max_resource": 18, "reduction_factor": 3}
    assert tuner.constants == {"TRIAL_BUDGET": 18}
    assert tuner.create_sampler(SPACE, seed=0, directions=["maximize"])._n_startup_trials == 7
    bad = make_tuner("BOHB", {"min_budget": 5, "max_budget": 3})
    assert bad.check(SPACE)[0].field == "tuner_args.max_budget"


def _climbing(params: dict[str, Any]) -> float:
    import spiketune.trial as st

    for step in range(1, 10):
        st.report_intermediate_result(params["x"] * step / 9)
    return params["x"]


@pytest.mark.parametrize(("name", "args"), [("Hyperband", {"R": 9}),
                                            ("BOHB", {"max_budget": 9, "min_points_in_model": 3})])
def test_hyperband_brackets_follow_the_seed(name: str, args: dict[str, Any], exp_root: Any) -> None:
    """Optuna's Hyperband puts trials in brackets by a hash of the study's name: the same
    seed must give the same draws and the same pruning in two experiments."""
    from spiketune import Experiment

    def run() -> list[tuple[float, str]]:
        results = Experiment(trial=_climbing, search_space={"x": {"_type": "uniform",
                                                                 "_value": [0, 1]}},
                             tuner=name, tuner_args=args, seed=3, max_trials=12).run()
        return [(r.parameters["x"], r.outcome.value) for r in results.records]

    first = run()
    assert run() == first
    assert "EARLY_STOPPED" in {outcome for _, outcome in first}


@pytest.mark.parametrize(("name", "args", "field"), [
    ("TPE", {"group": True}, "tuner_args.group"),
    ("CmaEs", {"popsize": 1}, "tuner_args.popsize"),
    ("CmaEs", {"with_margin": True, "use_separable_cma": True}, "tuner_args.with_margin"),
    ("CmaEs", {"lr_adapt": True, "use_separable_cma": True}, "tuner_args.lr_adapt"),
    ("CmaEs", {"lr_adapt": True, "with_margin": True}, "tuner_args.lr_adapt"),
])
def test_arguments_optuna_refuses_at_the_start_are_refused_when_read(
    name: str, args: dict[str, Any], field: str
) -> None:
    """Optuna's samplers refuse these when built, at the run's start (after the experiment
    is created); the config names them first. What they allow still builds."""
    with pytest.raises(ConfigError) as info:
        make_tuner(name, args)
    assert [p.field for p in info.value.problems] == [field]
    for fine in ({"group": True, "multivariate": True}, {"popsize": 2}, {"lr_adapt": True},
                 {"with_margin": True}, {"use_separable_cma": True}):
        tuner = "TPE" if "group" in fine else "CmaEs"
        make_tuner(tuner, fine).create_sampler(SPACE, seed=0, directions=["maximize"])


def test_other_tuners_imply_no_assessor_and_no_constants() -> None:
    for name in ("TPE", "Random", "GridSearch", "Evolution"):
        assert make_tuner(name).implied_assessor() is None
        assert make_tuner(name).constants == {}


# ------------------------------------------------------------- arguments


def test_unknown_argument_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner("Evolution", {"population_size": 10, "mutation_rate": 0.2})
    (problem,) = info.value.problems
    assert problem.field == "tuner_args.mutation_rate" and problem.value == 0.2
    assert "population_size" in problem.rule


def test_bad_argument_values_name_the_rule() -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner("NSGAII", {"population_size": 1, "crossover_prob": 2.0})
    fields = {p.field: p for p in info.value.problems}
    assert fields["tuner_args.population_size"].rule == "must be >= 2"
    assert fields["tuner_args.crossover_prob"].rule == "must be <= 1"


def test_experiment_settings_are_not_tuner_arguments() -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner("TPE", {"optimize_mode": "maximize", "seed": 3})
    assert [p.field for p in info.value.problems] == ["tuner_args.optimize_mode",
                                                      "tuner_args.seed"]


def test_gp_utility_other_than_ei_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner("GP", {"utility": "ucb"})
    assert info.value.problems[0].field == "tuner_args.utility"


def test_tuners_needing_missing_packages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("torch", "cmaes") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for name, package in (("GP", "torch"), ("CmaEs", "cmaes")):
        with pytest.raises(ConfigError) as info:
            make_tuner(name)
        assert info.value.problems[0].field == "tuner"
        assert package in info.value.problems[0].rule


def test_unknown_nested_and_oddly_spelled_arguments_are_named_exactly() -> None:
    with pytest.raises(ConfigError) as info:
        make_tuner("Evolution", {"mutation-rate": 0.1})
    assert info.value.problems[0].field == "tuner_args.mutation-rate"
    with pytest.raises(ConfigError) as info:
        make_tuner("TPE", {"tpe_args": {"linear_forgetting": 25}})
    (problem,) = info.value.problems
    assert problem.field == "tuner_args.tpe_args.linear_forgetting"
    assert "n_startup_jobs" in problem.rule and "multivariate" not in problem.rule


# ------------------------------------------------------------- what the study stores


def _stored(results: Any) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=results.id,
                             storage=f"sqlite:///{results.directory / 'study.db'}").trials


def test_grid_points_are_stored_as_the_values_each_trial_received(exp_root: Any) -> None:
    from spiketune import Experiment

    space = {"b": {"_type": "quniform", "_value": [0.2, 1.0, 0.5]},
             "opt": {"_type": "choice", "_value": [
                 {"_name": "adam", "beta": {"_type": "choice", "_value": [[0.9, 0.99], [0.5]]}},
                 {"_name": "sgd"}]}}
    results = Experiment(trial=lambda p: p["b"], search_space=space, tuner="GridSearch",
                         max_trials=10).run()
    trials = _stored(results)
    assert len(trials) == 3 * 3
    assert [t.user_attrs["parameters"] for t in trials] == SearchSpace.from_nni(space).grid()
    assert [t.params for t in trials[:4]] == [
        {"b": 0.2, "opt": "adam", "opt/adam/beta": "[0.9, 0.99]"},
        {"b": 0.2, "opt": "adam", "opt/adam/beta": "[0.5]"},
        {"b": 0.2, "opt": "sgd"},
        {"b": 0.5, "opt": "adam", "opt/adam/beta": "[0.9, 0.99]"},
    ]
    assert trials[-1].params == {"b": 1.0, "opt": "sgd"}
    assert trials[0].distributions["b"] == optuna.distributions.FloatDistribution(0.2, 1.0)


def test_batch_sets_and_tuner_constants_are_stored_as_received(exp_root: Any) -> None:
    from spiketune import Experiment

    sets = [{"optimizer": "Adam", "lr": 0.001}, {"optimizer": "SGD", "lr": 0.01, "m": 0.9}]
    batch = Experiment(trial=lambda p: p["lr"], tuner="Batch",
                       search_space={"combine_params": {"_type": "choice", "_value": sets}},
                       max_trials=5).run()
    assert [t.params for t in _stored(batch)] == sets
    hyperband = Experiment(trial=lambda p: p["x"], tuner="Hyperband", tuner_args={"R": 9},
                           search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
                           max_trials=2, seed=0).run()
    for t in _stored(hyperband):
        assert t.params == {"x": t.user_attrs["parameters"]["x"], "TRIAL_BUDGET": 9}


# ------------------------------------------------------------- known points first

START_SPACE = {
    "a": {"_type": "uniform", "_value": [0, 1]},
    "b": {"_type": "choice", "_value": [8, 16, 32]},
    "opt": {"_type": "choice", "_value": [
        {"_name": "adam", "beta": {"_type": "uniform", "_value": [0.5, 0.99]}},
        {"_name": "sgd"}]},
}


def test_start_points_run_first_in_order_and_the_tuner_draws_the_rest(exp_root: Any) -> None:
    from spiketune import Experiment

    start = [{"a": 0.25, "b": 16}, {"opt": {"_name": "adam", "beta": 0.75}, "a": 1.0}]
    results = Experiment(trial=lambda p: p["a"], search_space=START_SPACE, tuner="TPE",
                         start_with=start, max_trials=5, seed=0).run()
    received = [t.user_attrs["parameters"] for t in _stored(results)]
    assert len(received) == 5
    assert received[0]["a"] == 0.25 and received[0]["b"] == 16
    assert received[0]["opt"]["_name"] in ("adam", "sgd")  # drawn: the set left it out
    assert received[1]["a"] == 1.0 and received[1]["opt"] == {"_name": "adam", "beta": 0.75}
    assert received[1]["b"] in (8, 16, 32)
    # the tuner draws every later trial, and learns from the start points like from any other
    assert all(r["a"] not in (0.25, 1.0) for r in received[2:])
    assert [t.value for t in _stored(results)][:2] == [0.25, 1.0]


def test_start_points_are_handed_out_exactly_as_given(exp_root: Any) -> None:
    """A normal type's value goes through its search coordinate and back, to within
    rounding: the trial receives the value given, not 0.6999999999999998."""
    from spiketune import Experiment

    space = {"nm": {"_type": "normal", "_value": [0, 1]},
             "ln": {"_type": "lognormal", "_value": [0, 1]},
             "q": {"_type": "quniform", "_value": [0, 1, 0.1]}}
    start = [{"nm": 0.7, "ln": 2.0, "q": 0.3}]
    results = Experiment(trial=lambda p: p["nm"], search_space=space, start_with=start,
                         max_trials=2, seed=0).run()
    first = _stored(results)[0]
    assert first.user_attrs["parameters"] == start[0]
    assert first.value == 0.7


def test_start_points_are_checked_against_the_space() -> None:
    from spiketune.engine import ExperimentConfig

    def problems(start: Any, **extra: Any) -> list[str]:
        with pytest.raises(ConfigError) as err:
            ExperimentConfig(search_space=START_SPACE, start_with=start, **extra)
        return [f"{p.field} {p.value!r} {p.rule}" for p in err.value.problems]

    assert problems([{"a": 2.0}]) == [
        "start_with[0].a 2.0 a value the search space hands out (uniform [0, 1])"]
    assert problems([{"b": 16}, {"c": 1}]) == [
        "start_with[1].c 1 a top-level key of the search space (a, b, opt)"]
    assert problems([{"b": 12}])[0].startswith("start_with[0].b 12 a value the search space")
    # a nested option's sub-parameter out of its range, and an option that does not exist
    assert [p.split(" ")[0] for p in problems([{"opt": {"_name": "adam", "beta": 2.0}},
                                               {"opt": {"_name": "rmsprop"}}])] == [
        "start_with[0].opt", "start_with[1].opt"]
    assert problems([3])[0].startswith("start_with[0] 3 ")
    grid = {"b": START_SPACE["b"]}
    with pytest.raises(ConfigError, match="GridSearch runs fixed points of its own"):
        ExperimentConfig(search_space=grid, tuner="GridSearch", start_with=[{"b": 8}])
    # values the trial would not receive as given: off a quantised grid, below a lognormal's
    # zero, past what a normal's clipped coordinate reaches, a nested value two levels down
    odd = {"q": {"_type": "quniform", "_value": [0, 1, 0.25]},
           "ln": {"_type": "lognormal", "_value": [0, 1]},
           "qn": {"_type": "qnormal", "_value": [0, 1, 0.5]},
           "n": {"_type": "choice", "_value": [{"_name": "l1", "b": {"_type": "choice", "_value": [
               {"_name": "l2", "d": {"_type": "uniform", "_value": [0, 1]}}]}}]}}
    for bad in ({"q": 0.3}, {"ln": -1.0}, {"ln": 0.0}, {"qn": 1e6},
                {"n": {"_name": "l1", "b": {"_name": "l2", "d": 5}}}):
        (key,) = bad
        with pytest.raises(ConfigError) as err:
            ExperimentConfig(search_space=odd, start_with=[bad])
        assert [p.field for p in err.value.problems] == [f"start_with[0].{key}"], bad
    for good in ({"q": 0.75}, {"ln": 2.0}, {"qn": 1.5},
                 {"n": {"_name": "l1", "b": {"_name": "l2", "d": 0.5}}}, {"n": {"_name": "l1"}}):
        ExperimentConfig(search_space=odd, start_with=[good])
    fine = ExperimentConfig(search_space=START_SPACE, start_with=[{"b": 8}])
    assert fine.to_dict()["start_with"] == [{"b": 8}]
    assert "start_with" not in ExperimentConfig(search_space=START_SPACE).to_dict()
