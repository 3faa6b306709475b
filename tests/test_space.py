"""Search spaces: NNI's value semantics per type, reachable sets, grids and clear errors."""

from __future__ import annotations

import json
import math
from statistics import NormalDist
from typing import Any

import optuna
import pytest
from _optuna_params import shown, typed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import FixedTrial

from spiketune.engine.space import GRID_LIMIT, SearchSpace
from spiketune.errors import SearchSpaceError

optuna.logging.set_verbosity(optuna.logging.WARNING)

U_LOW, U_HIGH = 2.0**-53, 1.0 - 2.0**-53
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def draw(space: SearchSpace, n: int, sampler: optuna.samplers.BaseSampler) -> list[dict]:
    """n parameter sets through a real study (ask, sample, tell with a made-up objective)."""
    study = optuna.create_study(sampler=sampler)
    out = []
    for i in range(n):
        trial = study.ask()
        params = space.sample(trial)
        out.append(params)
        study.tell(trial, float(i % 7))
    return out


# ------------------------------------------------------------- reachable sets, written out
# independently of spiketune.engine.space: what NNI can hand a trial for each type.


def reachable(spec: dict[str, Any], value: Any) -> bool:
    t, v = spec["_type"], spec["_value"]
    if t == "choice":
        return any(type(value) is type(o) and value == o for o in v)
    if t == "randint":
        return type(value) is int and v[0] <= value < v[1]
    if type(value) is not float or not math.isfinite(value):
        return False
    if t in ("uniform", "loguniform"):
        return v[0] <= value <= v[1]
    if t in ("quniform", "qloguniform"):
        low, high, q = v
        if not low <= value <= high:
            return False
        # a multiple of q as NNI computes it (round(x / q) * q), or a clipped end
        return value in (low, high) or value == round(value / q) * q
    if t == "normal":
        return abs(value - v[0]) <= 8.25 * v[1]
    if t == "qnormal":
        return value == round(value / v[2]) * v[2] and abs(value - v[0]) <= 8.25 * v[1] + v[2]
    if t == "lognormal":
        return value > 0
    if t == "qlognormal":
        return value >= 0 and value == round(value / v[2]) * v[2]
    raise AssertionError(t)


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def specs(draw_: st.DrawFn) -> dict[str, Any]:
    kind = draw_(st.sampled_from(["choice", "randint", "uniform", "quniform", "loguniform",
                                  "qloguniform", "normal", "qnormal", "lognormal", "qlognormal"]))
    if kind == "choice":
        options = draw_(st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3),
                                           st.floats(-10, 10, allow_nan=False)),
                                 min_size=1, max_size=5, unique_by=lambda o: (repr(o), o)))
        # distinct also under == (1 == 1.0): the space refuses such pairs
        unique: list[Any] = []
        for o in options:
            if all(o != u for u in unique):
                unique.append(o)
        return {"_type": "choice", "_value": unique}
    if kind == "randint":
        low = draw_(st.integers(-100, 100))
        return {"_type": kind, "_value": [low, low + draw_(st.integers(1, 50))]}
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        low = draw_(positive if "log" in kind else finite)
        high = low + draw_(positive)
        values = [low, high]
        if kind.startswith("q"):
            values.append(draw_(st.floats(min_value=(high - low) / 200, max_value=2 * (high - low),
                                          allow_nan=False)))
        return {"_type": kind, "_value": values}
    mu = draw_(st.floats(-3, 3) if "log" in kind else finite)
    sigma = draw_(st.floats(0.01, 3) if "log" in kind else positive)
    values = [mu, sigma]
    if kind.startswith("q"):
        values.append(draw_(st.floats(0.01, 2)))
    return {"_type": kind, "_value": values}


# ------------------------------------------------------------- property tests


@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**31))
def test_random_draws_stay_in_the_reachable_set(spec: dict, seed: int) -> None:
    space = SearchSpace.from_nni({"p": spec})
    for params in draw(space, 25, optuna.samplers.RandomSampler(seed=seed)):
        assert reachable(spec, params["p"]), (spec, params)
        json.dumps(params)  # plain JSON types


@PROPERTY
@given(spec=specs(), fraction=st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1)))
def test_every_latent_value_maps_into_the_reachable_set(spec: dict, fraction: float) -> None:
    """The latent's whole range, ends included (FixedTrial hands the value to suggest_*)."""
    space = SearchSpace.from_nni({"p": spec})
    t, v = spec["_type"], spec["_value"]
    if t == "choice":
        latent: Any = v[min(int(fraction * len(v)), len(v) - 1)]
    elif t == "randint":
        latent = v[0] + min(int(fraction * (v[1] - v[0])), v[1] - v[0] - 1)
    elif "normal" in t:
        latent = U_LOW + fraction * (U_HIGH - U_LOW)
    elif "log" in t:
        latent = math.exp(math.log(v[0]) + fraction * (math.log(v[1]) - math.log(v[0])))
        latent = min(max(latent, v[0]), v[1])
    else:
        latent = min(v[0] + fraction * (v[1] - v[0]), v[1])
    params = space.sample(FixedTrial({"p": latent}))
    assert reachable(spec, params["p"]), (spec, latent, params)


def test_tpe_draws_on_a_mixed_nested_space_stay_reachable() -> None:
    spec = {
        "lr": {"_type": "qloguniform", "_value": [1e-4, 1e-1, 1e-4]},
        "hidden": {"_type": "randint", "_value": [16, 129]},
        "tau": {"_type": "qnormal", "_value": [20.0, 5.0, 0.5]},
        "opt": {"_type": "choice", "_value": [
            {"_name": "adam", "beta": {"_type": "uniform", "_value": [0.8, 0.99]}},
            {"_name": "sgd", "momentum": {"_type": "quniform", "_value": [0.0, 0.9, 0.1]}},
        ]},
    }
    space = SearchSpace.from_nni(spec)
    for params in draw(space, 40, optuna.samplers.TPESampler(seed=0, n_startup_trials=5)):
        for name in ("lr", "hidden", "tau"):
            assert reachable(spec[name], params[name]), (name, params)
        opt = params["opt"]
        if opt["_name"] == "adam":
            assert set(opt) == {"_name", "beta"}
            assert reachable(spec["opt"]["_value"][0]["beta"], opt["beta"])
        else:
            assert set(opt) == {"_name", "momentum"}
            assert reachable(spec["opt"]["_value"][1]["momentum"], opt["momentum"])


# ------------------------------------------------------------- exact NNI semantics


@pytest.mark.parametrize(
    ("spec", "latent", "expected"),
    [
        # quniform = clip(round(x / q) * q, low, high)
        ({"_type": "quniform", "_value": [0, 10, 2.5]}, 3.7, 2.5),
        ({"_type": "quniform", "_value": [0, 10, 2.5]}, 3.8, 5.0),
        ({"_type": "quniform", "_value": [0.2, 3, 0.5]}, 0.2, 0.2),   # round -> 0, clipped up
        ({"_type": "quniform", "_value": [0.2, 3, 0.5]}, 3.0, 3.0),   # exact multiple
        ({"_type": "quniform", "_value": [0.0, 1.0, 0.1]}, 0.31, 3 * 0.1),  # NNI's float
        ({"_type": "quniform", "_value": [1, 9.9, 4]}, 9.9, 8.0),     # round(2.475) = 2
        ({"_type": "quniform", "_value": [0, 11, 4]}, 11.0, 11.0),    # round -> 12, clipped down
        ({"_type": "qloguniform", "_value": [0.5, 100, 10]}, 0.6, 0.5),  # round -> 0, clipped
        ({"_type": "qloguniform", "_value": [0.5, 100, 10]}, 44.0, 40.0),
        ({"_type": "randint", "_value": [3, 7]}, 6, 6),  # upper end excluded: 6 is the last
        ({"_type": "uniform", "_value": [-1, 1]}, 0.25, 0.25),
        ({"_type": "loguniform", "_value": [1e-3, 1]}, 0.01, 0.01),
        # normal = mu + sigma * Phi^-1(u)
        ({"_type": "normal", "_value": [3, 2]}, 0.5, 3.0),
        ({"_type": "normal", "_value": [3, 2]}, NormalDist().cdf(1.0), 5.0),
        ({"_type": "qnormal", "_value": [0, 1, 0.5]}, NormalDist().cdf(0.8), 1.0),
        ({"_type": "lognormal", "_value": [1, 1]}, 0.5, math.e),
        ({"_type": "qlognormal", "_value": [0, 1, 0.5]}, NormalDist().cdf(math.log(1.3)), 1.5),
    ],
)
def test_values_follow_nni_formulas(spec: dict, latent: float, expected: float) -> None:
    params = SearchSpace.from_nni({"p": spec}).sample(FixedTrial({"p": latent}))
    assert params["p"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert type(params["p"]) is type(expected)


def test_randint_excludes_its_upper_end() -> None:
    space = SearchSpace.from_nni({"p": {"_type": "randint", "_value": [0, 2]}})
    assert {p["p"] for p in draw(space, 60, optuna.samplers.RandomSampler(seed=0))} == {0, 1}
    assert space.grid() == [{"p": 0}, {"p": 1}]


def test_quantised_values_are_nni_multiples_not_decimal_roundings() -> None:
    params = SearchSpace.from_nni({"p": {"_type": "quniform", "_value": [0, 1, 0.1]}}).sample(
        FixedTrial({"p": 0.3})
    )
    assert params["p"] == round(0.3 / 0.1) * 0.1 == 0.30000000000000004


def test_choice_returns_options_as_written_with_their_types() -> None:
    space = SearchSpace.from_nni({
        "n": {"_type": "choice", "_value": [16, 32]},
        "act": {"_type": "choice", "_value": ["relu", "tanh", None, True, 0.5]},
        "shape": {"_type": "choice", "_value": [[64, 64], [128]]},
    })
    seen = draw(space, 60, optuna.samplers.RandomSampler(seed=1))
    assert {type(p["n"]) for p in seen} == {int}
    assert {json.dumps(p["act"]) for p in seen} == {'"relu"', '"tanh"', "null", "true", "0.5"}
    assert {tuple(p["shape"]) for p in seen} == {(64, 64), (128,)}


def test_nested_choice_gives_name_and_sub_parameters_with_stable_optuna_names() -> None:
    spec = {"opt": {"_type": "choice", "_value": [
        {"_name": "adam", "lr": {"_type": "loguniform", "_value": [1e-4, 1e-2]}},
        {"_name": "sgd", "lr": {"_type": "loguniform", "_value": [1e-3, 1e-1]},
         "momentum": {"_type": "uniform", "_value": [0, 1]}},
        {"_name": "none"},
    ]}}
    space = SearchSpace.from_nni(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    names = set()
    for _ in range(40):
        trial = study.ask()
        params = space.sample(trial)
        study.tell(trial, 0.0)
        opt = params["opt"]
        names |= set(trial.params)
        expected = {"adam": {"_name", "lr"}, "sgd": {"_name", "lr", "momentum"}, "none": {"_name"}}
        assert set(opt) == expected[opt["_name"]]
        if opt["_name"] == "adam":
            assert 1e-4 <= opt["lr"] <= 1e-2 and trial.params["opt/adam/lr"] == opt["lr"]
    assert names == {"opt", "opt/adam/lr", "opt/sgd/lr", "opt/sgd/momentum"}


def test_normal_types_reach_both_tails_and_centre() -> None:
    space = SearchSpace.from_nni({"x": {"_type": "normal", "_value": [0, 1]}})
    xs = [p["x"] for p in draw(space, 400, optuna.samplers.RandomSampler(seed=5))]
    assert min(xs) < -2 and max(xs) > 2
    assert abs(sum(xs) / len(xs)) < 0.2
    assert abs(sum(x * x for x in xs) / len(xs) - 1) < 0.25


# ------------------------------------------------------------- grids


def test_grid_enumerates_finite_spaces_in_order() -> None:
    space = SearchSpace.from_nni({
        "a": {"_type": "choice", "_value": ["x", "y"]},
        "b": {"_type": "randint", "_value": [0, 3]},
        "c": {"_type": "quniform", "_value": [0.2, 1.0, 0.5]},
    })
    grid = space.grid()
    assert space.grid_size() == len(grid) == 2 * 3 * 3
    assert grid[0] == {"a": "x", "b": 0, "c": 0.2}
    assert grid[1] == {"a": "x", "b": 0, "c": 0.5}
    assert grid[-1] == {"a": "y", "b": 2, "c": 1.0}
    assert len({json.dumps(g, sort_keys=True) for g in grid}) == len(grid)


@PROPERTY
@given(low=st.floats(0.01, 50), width=st.floats(0.1, 50), steps=st.integers(1, 30),
       log=st.booleans())
def test_quantised_grid_is_exactly_the_set_of_reachable_values(
    low: float, width: float, steps: int, log: bool
) -> None:
    high = low + width
    q = width / steps * 1.37
    spec = {"_type": "qloguniform" if log else "quniform", "_value": [low, high, q]}
    space = SearchSpace.from_nni({"p": spec})
    grid = {g["p"] for g in space.grid()}
    # every latent on a fine mesh over [low, high] lands on a grid value, and every grid value
    # is hit by some latent
    mesh = [low + width * i / 4000 for i in range(4001)]
    hit = {space.sample(FixedTrial({"p": min(x, high)}))["p"] for x in mesh}
    assert hit == grid


def test_grid_follows_nested_choices_and_round_trips_through_enqueue() -> None:
    space = SearchSpace.from_nni({
        "opt": {"_type": "choice", "_value": [
            {"_name": "adam", "lr": {"_type": "choice", "_value": [0.1, 0.01]}},
            {"_name": "sgd"},
        ]},
        "n": {"_type": "qloguniform", "_value": [1, 100, 50]},
    })
    grid = space.grid()
    assert grid == [
        {"opt": {"_name": "adam", "lr": 0.1}, "n": 1.0},
        {"opt": {"_name": "adam", "lr": 0.1}, "n": 50.0},
        {"opt": {"_name": "adam", "lr": 0.1}, "n": 100.0},
        {"opt": {"_name": "adam", "lr": 0.01}, "n": 1.0},
        {"opt": {"_name": "adam", "lr": 0.01}, "n": 50.0},
        {"opt": {"_name": "adam", "lr": 0.01}, "n": 100.0},
        {"opt": {"_name": "sgd"}, "n": 1.0},
        {"opt": {"_name": "sgd"}, "n": 50.0},
        {"opt": {"_name": "sgd"}, "n": 100.0},
    ]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for optuna_params in space.grid_optuna_params():
        study.enqueue_trial(optuna_params)
    received = []
    for _ in grid:
        trial = study.ask()
        received.append(space.sample(trial))
        study.tell(trial, 1.0)
    assert received == grid


def test_grid_refuses_continuous_and_oversized_spaces() -> None:
    space = SearchSpace.from_nni({
        "ok": {"_type": "choice", "_value": [1, 2]},
        "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    })
    assert space.grid_size() is None
    with pytest.raises(SearchSpaceError) as info:
        space.grid()
    assert [p.field for p in info.value.problems] == ["search_space.lr"]
    assert "finite" in info.value.problems[0].rule
    big = SearchSpace.from_nni(
        {f"p{i}": {"_type": "randint", "_value": [0, 100]} for i in range(4)}
    )
    assert big.grid_size() == 100**4 > GRID_LIMIT
    with pytest.raises(SearchSpaceError, match="at most"):
        big.grid()
    # more points than a machine word counts: the same refusal, not an OverflowError
    huge = SearchSpace.from_nni({"x": {"_type": "quniform", "_value": [0, 1e10, 1e-10]}})
    assert huge.grid_size() == 10**20 + 1
    with pytest.raises(SearchSpaceError, match="at most"):
        huge.grid()


def test_batch_form_hands_out_each_parameter_set_as_is() -> None:
    sets = [{"optimizer": "Adam", "lr": 0.001}, {"optimizer": "SGD", "lr": 0.01, "m": 0.9}]
    space = SearchSpace.batch({"combine_params": {"_type": "choice", "_value": sets}})
    assert space.is_batch and space.names == ["optimizer", "lr", "m"]
    assert space.grid() == sets
    study = optuna.create_study()
    for p in space.grid_optuna_params():
        study.enqueue_trial(p)
    got = [space.sample(study.ask()) for _ in sets]
    assert got == sets


@pytest.mark.parametrize(
    "spec",
    [
        {"a": {"_type": "choice", "_value": [1]}, "b": {"_type": "choice", "_value": [2]}},
        {"combine_params": {"_type": "uniform", "_value": [0, 1]}},
        {"combine_params": {"_type": "choice", "_value": []}},
        {"combine_params": {"_type": "choice", "_value": [1, 2]}},
    ],
)
def test_batch_form_errors(spec: dict) -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.batch(spec)
    assert all(p.field.startswith("search_space") for p in info.value.problems)


def test_constants_are_added_and_may_not_clash() -> None:
    space = SearchSpace.from_nni({"x": {"_type": "uniform", "_value": [0, 1]}})
    with_budget = space.with_constants({"TRIAL_BUDGET": 27})
    assert with_budget.sample(FixedTrial({"x": 0.5})) == {"x": 0.5, "TRIAL_BUDGET": 27}
    assert with_budget.to_nni() == space.to_nni()
    with pytest.raises(SearchSpaceError, match="rename"):
        space.with_constants({"x": 1})


def test_to_nni_is_the_canonical_json_form() -> None:
    spec = {"a": {"_type": "uniform", "_value": (0, 1)},
            "b": {"_type": "choice", "_value": [{"_name": "x", "c": {"_type": "randint",
                                                                     "_value": (1, 3)}}]}}
    space = SearchSpace.from_nni(spec)
    assert space.to_nni() == json.loads(json.dumps(spec))
    assert SearchSpace.from_nni(space.to_nni()) == space


# ------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "field", "rule"),
    [
        ({"x": {"_type": "uniformm", "_value": [0, 1]}}, "search_space.x._type", "unknown _type"),
        ({"x": {"_type": "uniform", "_value": [0, 1, 2]}}, "search_space.x._value", "exactly 2"),
        ({"x": {"_type": "quniform", "_value": [0, 1]}}, "search_space.x._value", "exactly 3"),
        ({"x": {"_type": "uniform", "_value": [1, 1]}}, "search_space.x._value", "low < high"),
        ({"x": {"_type": "uniform", "_value": [-1.7e308, 1.7e308]}}, "search_space.x._value",
         "high - low within a float's range"),
        ({"x": {"_type": "loguniform", "_value": [0, 1]}}, "search_space.x._value", "low > 0"),
        ({"x": {"_type": "qloguniform", "_value": [-1, 1, 0.1]}}, "search_space.x._value",
         "low > 0"),
        ({"x": {"_type": "quniform", "_value": [0, 1, 0]}}, "search_space.x._value", "q > 0"),
        ({"x": {"_type": "qnormal", "_value": [0, 1, -1]}}, "search_space.x._value", "q > 0"),
        ({"x": {"_type": "normal", "_value": [0, 0]}}, "search_space.x._value", "sigma > 0"),
        ({"x": {"_type": "lognormal", "_value": [0, 500]}}, "search_space.x._value", "overflow"),
        ({"x": {"_type": "randint", "_value": [0.5, 3]}}, "search_space.x._value", "integers"),
        ({"x": {"_type": "randint", "_value": [3, 3]}}, "search_space.x._value", "lower < upper"),
        ({"x": {"_type": "uniform", "_value": [0, "1"]}}, "search_space.x._value", "numbers"),
        ({"x": {"_type": "uniform", "_value": [0, float("inf")]}}, "search_space.x._value",
         "finite"),
        ({"x": {"_type": "uniform", "_value": "0,1"}}, "search_space.x._value", "a list"),
        ({"x": {"_type": "choice", "_value": []}}, "search_space.x._value", "at least one"),
        ({"x": {"_type": "choice", "_value": [1, 1.0]}}, "search_space.x._value", "distinct"),
        ({"x": {"_type": "choice", "_value": [{"_name": "a"}, {"_name": "a"}]}},
         "search_space.x._value", "unique"),
        ({"x": {"_type": "choice", "_value": [{"_name": "a", "lr": 0.1}]}},
         "search_space.x._value[0].lr", "_type"),
        ({"x": {"_type": "choice", "_value": [{"_name": "a", "lr": {"_type": "uniform",
                                                                     "_value": [1, 0]}}]}},
         "search_space.x._value[0].lr._value", "low < high"),
        ({"x": [0, 1]}, "search_space.x", "_type"),
        ({"x": {"_type": "uniform", "_value": [0, 1], "_default": 0}}, "search_space.x",
         "unknown keys"),
        ({"_name": {"_type": "uniform", "_value": [0, 1]}}, "search_space._name", "reserved"),
        ({"a/b/lr": {"_type": "uniform", "_value": [0, 1]},
          "a": {"_type": "choice", "_value": [{"_name": "b", "lr": {"_type": "uniform",
                                                                    "_value": [0, 1]}}]}},
         "search_space.a._value[0].lr", "Optuna name"),
        # two parameters shown under one dotted name: one column, one value lost
        ({"opt.lr": {"_type": "uniform", "_value": [0, 1]},
          "opt": {"_type": "choice", "_value": [{"_name": "sgd"}, {"_name": "adam", "lr": {
              "_type": "uniform", "_value": [0, 1]}}]}},
         "search_space.opt", "would be shown as 'opt.lr', as are those of 'opt.lr'"),
        ({"x": {"_type": "choice", "_value": [{"a": {"b": 1}}, {"a": {"b": 2}}]},
          "x.a.b": {"_type": "choice", "_value": [1, 2]}},
         "search_space.x.a.b", "would be shown as 'x.a.b', as are those of 'x'"),
        ({"n": {"_type": "choice", "_value": [{"_name": "a", "k": {"_type": "choice", "_value": [
            {"_name": "b", "z": {"_type": "choice", "_value": [1]}}]}}]},
          "n.k.z": {"_type": "choice", "_value": [1]}},
         "search_space.n.k.z", "would be shown as 'n.k.z'"),
    ],
)
def test_bad_spaces_name_the_parameter_value_and_rule(spec: dict, field: str, rule: str) -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_nni(spec)
    problems = info.value.problems
    assert any(p.field == field and rule in p.rule for p in problems), problems
    assert field in str(info.value)


@pytest.mark.parametrize("options", [
    [{"lr": 0.1}, {"lr": 0.01}],
    [{"_name": "a"}, {"lr": 1}],
    [{"_name": "a"}, 3],
])
def test_a_choice_is_nested_only_when_every_option_has_a_name(options: list) -> None:
    """NNI's rule: any other choice hands its options to the trial as they are, mappings too."""
    space = SearchSpace.from_nni({"x": {"_type": "choice", "_value": options}})
    seen = [p["x"] for p in draw(space, 30, optuna.samplers.RandomSampler(seed=0))]
    assert all(v in options for v in seen)
    assert {json.dumps(v, sort_keys=True) for v in seen} == {
        json.dumps(o, sort_keys=True) for o in options}


def test_options_of_one_nested_choice_share_their_shown_names() -> None:
    """Two options with a key of the same name are one column, not a clash (only one of them
    is a trial's)."""
    space = SearchSpace.from_nni({"neuron": {"_type": "choice", "_value": [
        {"_name": "lif", "tau": {"_type": "uniform", "_value": [1, 2]}},
        {"_name": "alif", "tau": {"_type": "uniform", "_value": [1, 2]}}]},
        "neuron_tau": {"_type": "uniform", "_value": [1, 2]}})
    assert space.names == ["neuron", "neuron_tau"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_nni({
            "a": {"_type": "uniform", "_value": [2, 1]},
            "b": {"_type": "foo", "_value": [1]},
            "c": {"_type": "choice", "_value": []},
            "ok": {"_type": "randint", "_value": [0, 2]},
        })
    assert [p.field for p in info.value.problems] == [
        "search_space.a._value", "search_space.b._type", "search_space.c._value",
    ]
    assert info.value.problems[0].value == [2, 1]


def test_a_space_is_not_built_by_hand() -> None:
    with pytest.raises(TypeError):
        SearchSpace()


# ------------------------------------------------------------- Optuna's stored and search forms

EVERY_TYPE = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "x": {"_type": "uniform", "_value": [-1, 1]},
    "hidden": {"_type": "randint", "_value": [16, 65]},
    "tau": {"_type": "quniform", "_value": [0.005, 0.05, 0.005]},
    "decay": {"_type": "qloguniform", "_value": [1, 1000, 10]},
    "gain": {"_type": "normal", "_value": [1.0, 0.2]},
    "bias": {"_type": "qnormal", "_value": [0, 2, 0.5]},
    "scale": {"_type": "lognormal", "_value": [0, 0.5]},
    "steps": {"_type": "qlognormal", "_value": [3, 0.5, 5]},
    "act": {"_type": "choice", "_value": ["relu", "tanh", None, True, 0.5]},
    "shape": {"_type": "choice", "_value": [[64], [128, 64]]},
    "layer": {"_type": "choice", "_value": [
        {"_name": "lif", "k": {"_type": "quniform", "_value": [1, 4, 1]}},
        {"_name": "alif", "k": {"_type": "normal", "_value": [5, 1]},
         "beta": {"_type": "choice", "_value": [[1, 2], [3]]}},
        {"_name": "none"},
    ]},
}


def test_stored_params_are_the_received_values() -> None:
    space = SearchSpace.from_nni(EVERY_TYPE)
    for received in draw(space, 60, optuna.samplers.RandomSampler(seed=2)):
        params, distributions = space.stored_params(received)
        assert typed(params) == typed(shown(received))
        # Optuna accepts the record: every value lies in its distribution
        optuna.trial.create_trial(params=params, distributions=distributions, value=0.0)


def test_stored_distributions_by_type() -> None:
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    space = SearchSpace.from_nni(EVERY_TYPE)
    received = {"lr": 0.01, "x": 0.5, "hidden": 20, "tau": 0.01, "decay": 10.0, "gain": 1.0,
                "bias": 0.5, "scale": 1.0, "steps": 20.0, "act": None, "shape": [64],
                "layer": {"_name": "alif", "k": 5.5, "beta": [3]}}
    _, dists = space.stored_params(received)
    assert dists["lr"] == Float(1e-4, 1e-1, log=True)
    assert dists["x"] == Float(-1, 1)
    assert dists["hidden"] == Int(16, 64)
    assert dists["tau"] == Float(0.005, 0.05)  # the q-types: their range, no step
    assert dists["decay"] == Float(1, 1000, log=True)
    assert dists["act"] == Cat(["relu", "tanh", None, True, 0.5])
    assert dists["shape"] == Cat(["[64]", "[128, 64]"])
    assert dists["layer"] == Cat(["lif", "alif", "none"])
    assert dists["layer/alif/beta"] == Cat(["[1, 2]", "[3]"])
    # normal types: the range u's clipped interval reaches, about mu +- 8.2 sigma
    z = NormalDist().inv_cdf(U_HIGH)
    gain = dists["gain"]
    assert isinstance(gain, Float) and not gain.log
    assert gain.low == pytest.approx(1.0 - 0.2 * z) and gain.high == pytest.approx(1.0 + 0.2 * z)
    assert dists["layer/alif/k"].low == pytest.approx(5 - z)
    bias = dists["bias"]
    assert bias.low == round(-2 * z / 0.5) * 0.5 and bias.high == round(2 * z / 0.5) * 0.5
    scale = dists["scale"]
    assert scale.log and scale.low == pytest.approx(math.exp(-0.5 * z))
    steps = dists["steps"]  # qlognormal reaches 0 here, so no log scale
    assert steps.low == 0.0 and not steps.log
    assert steps.high == round(math.exp(3 + 0.5 * z) / 5) * 5


@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**31))
def test_every_drawn_value_fits_its_stored_distribution(spec: dict, seed: int) -> None:
    space = SearchSpace.from_nni({"p": spec})
    drawn = draw(space, 20, optuna.samplers.RandomSampler(seed=seed))
    if "normal" in spec["_type"]:  # and the very ends of u
        drawn += [space.sample(FixedTrial({"p": u})) for u in (U_LOW, U_HIGH)]
    for received in drawn:
        params, distributions = space.stored_params(received)
        optuna.trial.create_trial(params=params, distributions=distributions, value=0.0)
        assert params == shown(received)


@PROPERTY
@given(spec=specs(), seed=st.integers(0, 2**31))
def test_search_coordinates_hand_out_the_same_values_again(spec: dict, seed: int) -> None:
    """The tuner's view of a stored trial is rebuilt from what it received: sampling at those
    coordinates gives the trial's values back (the normal types to within rounding)."""
    space = SearchSpace.from_nni({"p": spec})
    for received in draw(space, 20, optuna.samplers.RandomSampler(seed=seed)):
        search, distributions = space.search_params(received)
        assert distributions == space.search_distributions
        again = space.sample(FixedTrial(search))["p"]
        if spec["_type"] in ("normal", "lognormal"):
            assert again == pytest.approx(received["p"], rel=1e-9, abs=1e-9)
        else:
            assert again == received["p"] and type(again) is type(received["p"])


def test_search_coordinates_of_every_type_and_of_nested_choices() -> None:
    space = SearchSpace.from_nni(EVERY_TYPE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4))
    for _ in range(30):
        trial = study.ask()
        received = space.sample(trial)
        search, distributions = space.search_params(received)
        assert set(search) == set(trial.params)  # the same names as the sampler's own draw
        assert distributions == trial.distributions
        for name in ("lr", "x", "hidden", "act", "shape", "layer"):
            assert search[name] == trial.params[name]
        for name in ("gain", "scale"):  # u, back through the normal CDF
            assert search[name] == pytest.approx(trial.params[name], rel=1e-9, abs=1e-15)
        again = space.sample(FixedTrial(search))
        for name in ("gain", "scale"):
            assert again.pop(name) == pytest.approx(received.pop(name), rel=1e-9)
        if received["layer"]["_name"] == "alif":
            k = again["layer"].pop("k")
            assert k == pytest.approx(received["layer"].pop("k"), rel=1e-9)
        assert again == received
        study.tell(trial, 0.0)


def test_search_params_leave_out_values_the_space_cannot_give() -> None:
    space = SearchSpace.from_nni(EVERY_TYPE)
    search, _ = space.search_params({"lr": 5.0, "hidden": 16.5, "act": "gelu", "shape": [1],
                                     "layer": {"_name": "gone"}, "x": 0.0, "other": 1})
    assert search == {"x": 0.0}


def test_tuner_constants_are_stored_as_one_choice() -> None:
    space = SearchSpace.from_nni({"x": {"_type": "uniform", "_value": [0, 1]}})
    budget = space.with_constants({"TRIAL_BUDGET": 27})
    params, dists = budget.stored_params(budget.sample(FixedTrial({"x": 0.5})))
    assert params == {"x": 0.5, "TRIAL_BUDGET": 27}
    assert dists["TRIAL_BUDGET"] == optuna.distributions.CategoricalDistribution([27])
    assert budget.search_params({"x": 0.5, "TRIAL_BUDGET": 27})[0] == {"x": 0.5}


def test_batch_sets_are_stored_by_key_and_searched_by_index() -> None:
    sets = [{"optimizer": "Adam", "lr": 0.001, "flag": 1},
            {"optimizer": "SGD", "lr": 0.01, "m": 0.9, "flag": True},
            {"optimizer": "SGD", "lr": 0.001, "layers": [2, 3]}]
    space = SearchSpace.batch({"combine_params": {"_type": "choice", "_value": sets}})
    stored = [space.stored_params(s) for s in sets]
    assert stored[0][0] == {"optimizer": "Adam", "lr": 0.001, "flag": "1"}
    assert stored[1][0] == {"optimizer": "SGD", "lr": 0.01, "m": 0.9, "flag": "true"}
    assert stored[2][0] == {"optimizer": "SGD", "lr": 0.001, "layers": "[2, 3]"}
    dists = stored[1][1]
    assert dists["optimizer"].choices == ("Adam", "SGD")
    assert dists["flag"].choices == ("1", "true")  # 1 == True to Optuna: JSON text instead
    for params, distributions in stored:
        optuna.trial.create_trial(params=params, distributions=distributions, value=0.0)
    assert [space.search_params(s)[0] for s in sets] == [{"combine_params": i} for i in range(3)]


def test_a_layout_of_search_coordinates_is_recognised() -> None:
    space = SearchSpace.from_nni({"tau": {"_type": "quniform", "_value": [0, 1, 0.1]},
                                  "gain": {"_type": "normal", "_value": [1, 0.2]}})
    study = optuna.create_study()
    old, new = [], []
    for _ in range(3):
        trial = study.ask()
        received = space.sample(trial)
        study.tell(trial, 0.0)
        attrs = {"parameters": received}
        old.append(optuna.trial.create_trial(params=trial.params,
                                             distributions=trial.distributions,
                                             user_attrs=attrs, value=0.0))
        params, dists = space.stored_params(received)
        new.append(optuna.trial.create_trial(params=params, distributions=dists,
                                             user_attrs=attrs, value=0.0))
    assert space.stores_search_coordinates(old)
    assert not space.stores_search_coordinates(new)
    assert not space.stores_search_coordinates([])


def test_quantised_normals_whose_range_overflows_are_refused() -> None:
    with pytest.raises(SearchSpaceError, match="overflow"):
        SearchSpace.from_nni({"x": {"_type": "qnormal", "_value": [0, 1e307, 1e-3]}})
