"""What Optuna's own tools see: every trial's ``params`` are the values it received.

The stored study is opened with plain Optuna (``optuna.load_study``), as optuna-dashboard,
``optuna.visualization`` and ``study.trials_dataframe()`` open it, after real experiments over
a space with every NNI type; the tuner keeps searching in its own coordinates, rebuilt from
the received values when a session resumes; and a study of the earlier layout (search
coordinates as params) resumes in that layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from _optuna_params import shown, typed
from _storages import dispose, optuna_storage
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from spiketune import Experiment, Outcome
from spiketune.engine.goals import Goal, Objective, sampler_trials
from spiketune.engine.space import SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

U_LOW, U_HIGH = 2.0**-53, 1.0 - 2.0**-53

SPACE: dict[str, Any] = {
    "lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]},
    "x": {"_type": "uniform", "_value": [-1, 1]},
    "hidden": {"_type": "randint", "_value": [16, 65]},
    "tau": {"_type": "quniform", "_value": [0.005, 0.05, 0.005]},
    "decay": {"_type": "qloguniform", "_value": [1, 1000, 10]},
    "gain": {"_type": "normal", "_value": [20.0, 5.0]},
    "bias": {"_type": "qnormal", "_value": [0, 2, 0.5]},
    "scale": {"_type": "lognormal", "_value": [0, 0.5]},
    "steps": {"_type": "qlognormal", "_value": [3, 0.5, 5]},
    "act": {"_type": "choice", "_value": ["relu", "tanh", None, 0.5]},
    "shape": {"_type": "choice", "_value": [[64], [128, 64], [32, 32, 32]]},
    "layer": {"_type": "choice", "_value": [
        {"_name": "lif", "k": {"_type": "quniform", "_value": [1, 4, 1]}},
        {"_name": "alif", "k": {"_type": "normal", "_value": [5, 1]},
         "beta": {"_type": "choice", "_value": [[1, 2], [3]]}},
        {"_name": "none"},
    ]},
}

#: Every trial user attribute spiketune documents; nothing else may show in a dataframe.
DOCUMENTED_ATTRS = {"parameters", "metrics", "intermediate", "outcome", "reason", "trial_dir",
                    "sequence_id", "constraints", "retry_of", "attempt"}

TRIAL = """
    import json, pathlib, sys, time
    import spiketune.trial as st

    p = st.get_next_parameter()
    (st.get_trial_dir() / "received.json").write_text(json.dumps(p))
    if st.get_sequence_id() >= 6 and pathlib.Path({hold!r}).exists():
        time.sleep(60)  # still running when the first session is stopped
    marker = pathlib.Path({marker!r})
    if st.get_sequence_id() == 2 and not marker.exists():
        marker.touch()
        sys.exit(1)  # fails once; its retry runs in the next session
    st.report_final_result(-abs(p["x"]) - abs(p["gain"] - 20) / 10)
"""


def on_grid(value: float, low: float, high: float, q: float) -> bool:
    return value == min(max(round(value / q) * q, low), high)


def check_distribution(name: str, spec: dict[str, Any], dist: Any, value: Any) -> None:
    """The stored distribution of a top-level parameter holds its received value on the
    scale a user expects."""
    t, v = spec["_type"], spec["_value"]
    if t == "choice":
        assert isinstance(dist, CategoricalDistribution), name
    elif t == "randint":
        assert dist == IntDistribution(v[0], v[1] - 1), name
    elif t in ("uniform", "loguniform", "quniform", "qloguniform"):
        assert dist == FloatDistribution(v[0], v[1], log="log" in t), name
        if t.startswith("q"):
            assert on_grid(value, *v), (name, value)  # NNI's rounded value, not its draw
    else:  # the normal types: their reachable range, never u's (0, 1)
        assert isinstance(dist, FloatDistribution) and dist.low <= value <= dist.high, name
        mu, sigma = v[0], v[1]
        if t in ("normal", "qnormal"):
            assert dist.low < mu - 8 * sigma and dist.high > mu + 8 * sigma, (name, dist)
        if t == "lognormal":
            assert dist.log and dist.high == pytest.approx(math.exp(mu + 8.2095 * sigma), 1e-3)
        if t.startswith("q"):
            assert on_grid(value, -math.inf, math.inf, v[2]), (name, value)


def add_retry_by_hand(url: str, study_name: str, lost: optuna.trial.FrozenTrial) -> None:
    """Queue a retry of ``lost`` as spiketune does for a lost trial: a WAITING trial with its
    params and distributions copied, and the retry attributes."""
    storage = optuna.storages.RDBStorage(url)
    template = optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.WAITING, value=None, datetime_start=None,
        datetime_complete=None, params=dict(lost.params),
        distributions=dict(lost.distributions),
        user_attrs={"parameters": lost.user_attrs["parameters"],
                    "sequence_id": lost.user_attrs["sequence_id"], "retry_of": lost.number,
                    "attempt": 1},
        system_attrs={}, intermediate_values={}, trial_id=0,
    )
    storage.create_new_trial(storage.get_study_id_from_name(study_name), template_trial=template)
    storage.engine.dispose()


def test_plain_optuna_finds_what_every_trial_received(
    tmp_path: Path, exp_root: Path, trial_script: Any
) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    code = trial_script(TRIAL.format(marker=str(tmp_path / "failed-once"), hold=str(hold)))
    exp = Experiment(name="view", trial_command="python3 trial.py",
                     trial_code_directory=str(code), search_space=SPACE, tuner="TPE",
                     tuner_args={"n_startup_trials": 3}, max_trials=12, concurrency=2, seed=0)

    def stop_midway(progress: Any) -> None:
        if progress.done >= 6:
            exp.stop()

    exp.run(progress=stop_midway)
    url = f"sqlite:///{exp.directory / 'study.db'}"
    first = optuna.load_study(study_name=exp.id, storage=url).trials
    (lost,) = [t for t in first if t.user_attrs.get("sequence_id") == 2]
    assert lost.state == optuna.trial.TrialState.FAIL
    add_retry_by_hand(url, exp.id, lost)
    hold.unlink()
    # The second session's tuner learns from the first session's trials, rebuilt in its own
    # coordinates from the stored ones; and it runs the retry with the same parameters.
    results = Experiment.load(exp.id).resume()
    assert results.count(Outcome.COMPLETE) > len([t for t in first if t.state.is_finished()])

    study = optuna.load_study(study_name=exp.id, storage=url)
    trials = study.trials
    ran = 0
    for t in trials:
        received_file = Path(t.user_attrs["trial_dir"]) / "received.json"
        if not received_file.exists():
            continue  # stopped before its process read its parameters
        received = json.loads(received_file.read_text())
        ran += 1
        assert t.user_attrs["parameters"] == received
        assert typed(t.params) == typed(shown(received)), t.number
        for name, spec in SPACE.items():
            check_distribution(name, spec, t.distributions[name], t.params[name])
        if received["layer"]["_name"] == "alif":
            alif_k = t.distributions["layer/alif/k"]
            assert alif_k.low < 5 - 8 and alif_k.high > 5 + 8  # the sub-parameter's own range
    assert ran >= 12

    (retry,) = [t for t in trials if "retry_of" in t.user_attrs]
    assert retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.params == lost.params and retry.distributions == lost.distributions
    retried = json.loads((Path(retry.user_attrs["trial_dir"]) / "received.json").read_text())
    assert retried == lost.user_attrs["parameters"]

    frame = study.trials_dataframe()
    param_columns = {c for c in frame.columns if c.startswith("params_")}
    assert param_columns == {f"params_{k}" for t in trials for k in t.params}
    assert not [c for c in frame.columns if c.startswith("system_attrs")]
    assert {c.removeprefix("user_attrs_") for c in frame.columns
            if c.startswith("user_attrs_")} <= DOCUMENTED_ATTRS
    for t in trials:
        row = frame[frame["number"] == t.number].iloc[0]
        for column in param_columns:
            name = column.removeprefix("params_")
            if name in t.params:
                assert row[column] == t.params[name], (t.number, name)
            else:
                assert row[column] is None or row[column] != row[column]  # None or NaN


def test_both_storages_record_the_received_values(storage_url: str, exp_root: Path) -> None:
    received: list[dict[str, Any]] = []

    def trial(p: dict[str, Any]) -> float:
        received.append(p)
        return -abs(p["x"])

    results = Experiment(trial=trial, search_space=SPACE, tuner="TPE",
                         tuner_args={"n_startup_trials": 2}, max_trials=6, seed=3,
                         storage=storage_url).run()
    storage = optuna_storage(storage_url)  # a database or the journal, as Optuna opens it
    trials = optuna.load_study(study_name=results.id, storage=storage).trials
    dispose(storage)
    assert len(trials) == len(received) == 6
    for t, p in zip(trials, received, strict=True):
        assert typed(t.params) == typed(shown(p))


def test_resumed_constrained_multi_objective_search_sees_its_own_coordinates(
    exp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NSGA-II over two objectives with constraints: on resume its view of the stored trials
    holds the space's search coordinates (u for the normals), with the constraint values."""
    space = SearchSpace.from_nni(SPACE)
    seen: list[list[optuna.trial.FrozenTrial]] = []

    class Recording(optuna.samplers.NSGAIISampler):
        def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            seen.append([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
            super().before_trial(study, trial)

    monkeypatch.setattr("spiketune.engine.tuners.NSGAII.create_sampler",
                        lambda self, space, *, seed, directions: Recording(population_size=4,
                                                                           seed=seed))
    calls: list[dict[str, Any]] = []

    def trial(p: dict[str, Any]) -> dict[str, Any]:
        calls.append(p)
        if len(calls) == 5:
            exp.stop()
        return {"default": -abs(p["gain"] - 20), "cost": p["scale"],
                "constraints": [p["x"] - 0.5]}

    objectives = [{"key": "default", "direction": "maximize"},
                  {"key": "cost", "direction": "minimize"}]
    exp = Experiment(trial=trial, search_space=SPACE, tuner="NSGAII", objectives=objectives,
                     constraints=True, max_trials=12, seed=1)
    exp.run()
    first = len(calls)
    seen.clear()
    results = Experiment.load(exp.id, trial=trial).resume()
    assert len(calls) > first and results.count(Outcome.COMPLETE) >= 10
    view = seen[0]  # before the first trial of the resumed session
    assert len(view) >= first - 1
    known = space.search_distributions
    for t in view:
        assert t.distributions == {k: known[k] for k in t.params}
        assert U_LOW <= t.params["gain"] <= U_HIGH and U_LOW <= t.params["scale"] <= U_HIGH
        assert set(t.constraints) == {"reported", "design", "silent"}
        received = space.sample(optuna.trial.FixedTrial(t.params))
        assert received["gain"] == pytest.approx(
            next(c for c in calls if c["x"] == received["x"])["gain"], rel=1e-9)


def test_the_tuner_learns_from_a_view_rebuilt_from_received_values() -> None:
    """TPE on the rebuilt view of stored trials (received values) concentrates where the
    stored trials were good, as it would on its own draws."""
    space = SearchSpace.from_nni({"bias": {"_type": "qnormal", "_value": [0, 2, 0.5]},
                                  "tau": {"_type": "quniform", "_value": [0, 1, 0.05]}})

    def objective(p: dict[str, Any]) -> float:
        return -abs(p["bias"] - 2.0) - abs(p["tau"] - 0.8)

    stored = optuna.create_study(direction="maximize",
                                 sampler=optuna.samplers.RandomSampler(seed=0))
    records = []
    for _ in range(40):
        handle = stored.ask()
        received = space.sample(handle)
        stored.tell(handle, objective(received))
        params, dists = space.stored_params(received)
        records.append(optuna.trial.create_trial(params=params, distributions=dists,
                                                 value=objective(received),
                                                 user_attrs={"parameters": received}))
    goal = Goal((Objective(key="default", direction="maximize"),))

    def mean_regret(sampler: optuna.samplers.BaseSampler) -> float:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials(sampler_trials(records, goal, space=space))
        regrets = []
        for _ in range(20):
            handle = study.ask()
            received = space.sample(handle)
            study.tell(handle, objective(received))
            regrets.append(-objective(received))
        return sum(regrets) / len(regrets)

    tpe = mean_regret(optuna.samplers.TPESampler(seed=0, n_startup_trials=0))
    random = mean_regret(optuna.samplers.RandomSampler(seed=0))
    assert tpe < 0.6 * random, (tpe, random)


def test_a_study_of_the_earlier_layout_resumes_in_it(
    exp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spiketune 0.1.0 stored the search coordinates as params (a normal's u, a quantised
    type's continuous draw). Such a study resumes, and keeps that layout: Optuna refuses a
    second distribution kind or log setting for a name (lognormal's u is not on a log scale),
    so mixing layouts would fail."""
    calls: list[dict[str, Any]] = []

    def trial(p: dict[str, Any]) -> dict[str, Any]:
        calls.append(p)
        if len(calls) == 5:
            exp.stop()
        return {"default": -abs(p["gain"] - 20) - abs(p["tau"] - 0.02) * 100}

    with monkeypatch.context() as patch:  # what the earlier scheduler wrote
        patch.setattr(SearchSpace, "stores_search_coordinates", lambda self, trials: True)
        exp = Experiment(trial=trial, search_space=SPACE, tuner="TPE",
                         tuner_args={"n_startup_trials": 2}, max_trials=12, seed=0)
        exp.run()
    url = f"sqlite:///{exp.directory / 'study.db'}"
    old = optuna.load_study(study_name=exp.id, storage=url).trials
    u = FloatDistribution(U_LOW, U_HIGH)
    for t in old:  # the fixture really is the earlier layout
        assert t.distributions["gain"] == u and t.distributions["scale"] == u
        assert t.params != shown(t.user_attrs["parameters"])

    space = SearchSpace.from_nni(SPACE)
    params, dists = space.stored_params(old[0].user_attrs["parameters"])
    template = optuna.trial.create_trial(params=params, distributions=dists, value=0.0)
    storage = optuna.storages.RDBStorage(url)
    with pytest.raises(ValueError, match="log configuration"):
        storage.create_new_trial(storage.get_study_id_from_name(exp.id), template_trial=template)
    storage.engine.dispose()

    first = len(calls)
    results = Experiment.load(exp.id, trial=trial).resume()
    assert len(calls) > first
    assert results.count(Outcome.COMPLETE) == len(calls)
    trials = optuna.load_study(study_name=exp.id, storage=url).trials
    assert len(trials) == len(calls)
    for t in trials:
        received = t.user_attrs["parameters"]
        assert received in calls
        assert t.distributions["gain"] == u and t.distributions["scale"] == u
        # its params are search coordinates that hand out what it received
        again = space.sample(optuna.trial.FixedTrial(t.params))
        assert again["gain"] == pytest.approx(received["gain"], rel=1e-12)
        assert again["tau"] == received["tau"] and again["layer"]["_name"] == \
            received["layer"]["_name"]
