"""Hyperparameters: validated once, from an HPO trial's flat dict, errors that name the field."""

from __future__ import annotations

import math

import pytest

from spiketune.errors import ConfigError
from spiketune.snn import SNNConfig, TrainConfig, configs_from_params


def test_time_constants_or_factors() -> None:
    by_tau = SNNConfig(n_in=2, n_rec=3, n_out=2, tau_mem=0.02, dt=1e-3)
    assert by_tau.decay_mem == pytest.approx(math.exp(-0.05))
    by_factor = SNNConfig(n_in=2, n_rec=3, n_out=2, alpha=0.9, kappa=0.8, rho=0.99)
    assert (by_factor.decay_mem, by_factor.decay_out, by_factor.decay_adapt) == (0.9, 0.8, 0.99)
    default = SNNConfig(n_in=2, n_rec=3, n_out=2)
    assert default.tau_mem == 20e-3 and default.decay_out == pytest.approx(math.exp(-1e-3 / 20e-3))


def test_both_spellings_at_once_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        SNNConfig.from_params({"n_in": 2, "n_rec": 3, "n_out": 2, "tau_mem": 0.02, "alpha": 0.9})
    assert "either tau_mem" in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("alpha", 1.2, "must be < 1"),
        ("tau_out", -1.0, "must be > 0"),
        ("neuron", "izhikevich", "'lif', 'alif' or 'cuba_lif'"),
        ("n_rec", 0, "must be >= 1"),
        ("loss_steps", 0, "must be >= 1"),
        ("loss_window", 0, "must be > 0"),
        ("loss_window", "long", "must be a number"),
        ("loss_window", math.inf, "finite"),
        ("surrogate", "relu", "triangle"),
    ],
)
def test_bad_values_name_field_value_and_rule(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        SNNConfig.from_params({"n_in": 2, "n_rec": 3, "n_out": 2, key: value})
    (problem,) = info.value.problems
    assert problem.field == key and problem.value == value and words in problem.rule


@pytest.mark.parametrize(
    ("config", "key"),
    [(SNNConfig, "tau_mem"), (SNNConfig, "v_th"), (SNNConfig, "gain_rec"),
     (TrainConfig, "lr"), (TrainConfig, "weight_decay"), (TrainConfig, "grad_clip")],
)
def test_an_infinite_number_is_refused_by_name(config: type, key: str) -> None:
    """An infinite learning rate or threshold would only surface as NaN weights or an
    overflow mid-training; it is the field's error when the trial starts."""
    base = {"n_in": 2, "n_rec": 3, "n_out": 2} if config is SNNConfig else {}
    with pytest.raises(ConfigError) as info:
        config.from_params({**base, key: math.inf})
    (problem,) = info.value.problems
    assert problem.field == key and problem.value == math.inf
    assert "finite" in problem.rule


def test_unknown_and_missing_keys_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        SNNConfig.from_params({"n_in": 2, "n_out": 2, "tau_membrane": 0.02})
    fields = {p.field: p for p in info.value.problems}
    assert set(fields) == {"n_rec", "tau_membrane"}
    assert "unknown key" in fields["tau_membrane"].rule and "tau_mem" in fields["tau_membrane"].rule


def test_unreachable_target_rate() -> None:
    with pytest.raises(ConfigError, match="reg_target_hz"):
        SNNConfig(n_in=1, n_rec=1, n_out=1, dt=5e-3, refractory_steps=1, reg_target_hz=150.0)


def test_configs_from_one_trial_dict() -> None:
    params = {"n_rec": 64, "tau_mem": 0.03, "lr": 2e-3, "batch_size": 32, "neuron": "alif"}
    snn, train = configs_from_params(params, defaults={"n_in": 12, "n_out": 7, "dt": 5e-3})
    assert (snn.n_in, snn.n_rec, snn.neuron, snn.dt) == (12, 64, "alif", 5e-3)
    assert (train.lr, train.batch_size) == (2e-3, 32)
    # ints that arrive as floats (quantised uniform) are accepted when whole
    snn2, _ = configs_from_params({"n_rec": 64.0}, defaults={"n_in": 12, "n_out": 7})
    assert snn2.n_rec == 64


def test_configs_from_params_reports_everything() -> None:
    with pytest.raises(ConfigError) as info:
        configs_from_params({"n_in": 2, "n_rec": 3, "n_out": 2, "lr": -1.0, "bogus": 1})
    fields = sorted(p.field for p in info.value.problems)
    assert fields == ["bogus", "lr"]


@pytest.mark.parametrize(("window", "dt", "steps"), [(0.4, 0.02, 20), (0.005, 0.02, 1),
                                                     (0.1, 1e-3, 100)])
def test_loss_window_in_seconds_sets_loss_steps(window: float, dt: float, steps: int) -> None:
    """The window is a duration, whatever the step; the network counts steps (at least one)."""
    cfg = SNNConfig(n_in=2, n_rec=3, n_out=2, dt=dt, loss_window=window)
    assert cfg.loss_steps == steps
    assert SNNConfig.model_validate(cfg.model_dump()) == cfg  # a saved config holds both


def test_a_window_the_field_reads_becomes_steps() -> None:
    """A numpy float or a number as text (which the field takes, as pydantic reads floats)
    sets its steps too, rather than leaving the loss on every step."""
    import numpy as np

    for window in (np.float32(0.4), "0.4", np.float64(0.4)):
        assert SNNConfig(n_in=2, n_rec=3, n_out=2, dt=0.02, loss_window=window).loss_steps == 20
    assert SNNConfig(n_in=2, n_rec=3, n_out=2, dt=np.float32(0.02), loss_window=0.4
                     ).loss_steps == 20
    with pytest.raises(ConfigError, match="20 step"):
        SNNConfig(n_in=2, n_rec=3, n_out=2, dt=0.02, loss_window="0.4", loss_steps=1)


def test_model_from_params_reads_windows_and_steps_alike() -> None:
    import numpy as np

    from spiketune.snn import model_from_params

    sizes = {"n_in": 3, "n_out": 2, "dt": 1e-3, "n_steps": 12}
    lmu = model_from_params("lmu", {"order": 4, "theta": 0.1, "loss_window": np.float32(0.005)},
                            **sizes)
    assert lmu.to_config()["loss_steps"] == 5
    for model, params in (("rsnn", {"n_rec": 4}), ("lmu", {"order": 4, "theta": 0.1}),
                          ("l2mu", {"order": 4, "theta": 0.1})):
        for window in (math.inf, math.nan, "long"):
            with pytest.raises(ConfigError) as info:
                model_from_params(model, {**params, "loss_window": window}, **sizes)
            assert "loss_window" in [p.field for p in info.value.problems]
    with pytest.raises(ConfigError, match="dt: seconds per step"):
        model_from_params("lmu", {"order": 4, "theta": 0.1}, **{**sizes, "dt": 0})


def test_a_loss_window_that_contradicts_loss_steps_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        SNNConfig.from_params({"n_in": 2, "n_rec": 3, "n_out": 2, "dt": 0.02,
                               "loss_window": 0.4, "loss_steps": 5})
    (problem,) = info.value.problems
    assert problem.field == "loss_window" and "20 step(s)" in problem.rule


def test_round_trip_through_a_dump() -> None:
    cfg = SNNConfig(n_in=2, n_rec=3, n_out=2, alpha=0.9, neuron="alif", loss_steps=5)
    assert SNNConfig.model_validate(cfg.model_dump()) == cfg
    train = TrainConfig(epochs=3, patience=2)
    assert TrainConfig.from_params(train.model_dump()) == train
    with pytest.raises(ConfigError):
        TrainConfig.from_params({"epochs": 0})


@pytest.mark.parametrize("params", [None, [("n_in", 3)], "n_in=3"])
def test_params_that_are_not_a_mapping_are_refused_by_name(params: object) -> None:
    with pytest.raises(ConfigError, match=r"params: a mapping"):
        configs_from_params(params)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"defaults: a mapping .* or None"):
        configs_from_params({}, defaults=[("n_in", 3)])  # type: ignore[arg-type]


def test_a_seed_beyond_what_a_generator_takes_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(seed=2**70)
    (problem,) = info.value.problems
    assert problem.field == "seed" and problem.value == 2**70
    assert TrainConfig(seed=2**63 - 1).seed == 2**63 - 1
