"""Hardware target profiles, overrides and the design-rule check (no torch needed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

import spiketune.hardware as hw
from spiketune.errors import ConfigError, HardwareError
from spiketune.hardware import (
    NETWORK_KEYS,
    RULES,
    TARGETS,
    HardwareTarget,
    ParameterCheck,
    Violation,
    XyloAudio2,
    check_config,
    check_design,
    constraints_from,
    get_target,
)


def test_public_api_is_exactly_all() -> None:
    public = {n for n in dir(hw) if not n.startswith("_") and n not in {"annotations"}}
    public -= {"importlib", "TYPE_CHECKING", "Any"}
    assert set(hw.__all__) == public
    for name in hw.__all__:
        assert getattr(hw, name) is not None


def test_every_required_target_is_registered() -> None:
    assert {"xylo-audio2", "xylo-imu", "loihi2", "spinnaker2", "generic"} <= set(TARGETS)
    for name, cls in TARGETS.items():
        target = get_target(name)
        assert isinstance(target, HardwareTarget) and type(target) is cls
        assert str(target) == name


def test_xylo_audio2_limits_as_documented() -> None:
    t = get_target("xylo-audio2")
    assert (t.max_inputs, t.max_hidden, t.max_outputs) == (16, 1000, 8)
    assert (t.weight_bits, t.state_bits, t.decay) == (8, 16, "bitshift")
    assert t.resets == frozenset({"subtract", "subtract_at_spike"})
    assert t.neurons == frozenset({"lif", "cuba_lif"}) and t.max_spikes_per_neuron_step == 31
    assert "rockpool.ai/devices/xylo-overview" in (XyloAudio2.__doc__ or "")
    assert get_target("Xylo_Audio2") == t  # case and underscore forgiven


def test_overrides_apply_and_keep_the_rest() -> None:
    t = get_target("xylo-audio2", max_hidden=500, weight_bits=4)
    assert (t.max_hidden, t.weight_bits, t.max_inputs) == (500, 4, 16)
    assert get_target(t) is t
    assert get_target(t, max_inputs=8).max_inputs == 8
    assert t.with_limits(max_hidden=None).max_hidden is None
    with pytest.raises(ValidationError):  # frozen: a profile never changes in place
        t.max_hidden = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"max_hidden": 0}, "max_hidden", ">= 1"),
        ({"weight_bits": 100}, "weight_bits", "<= 32"),
        ({"weight_bits": 1}, "weight_bits", ">= 2"),  # the quantiser's range, not later
        ({"state_bits": 100}, "state_bits", "<= 64"),
        ({"max_hiden": 10}, "max_hiden", "unknown key"),
        ({"neurons": ["lif", "izhikevich"]}, "neurons", "lif"),
        ({"decay": "linear"}, "decay", "bitshift"),
    ],
)
def test_bad_overrides_name_the_field(overrides: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        get_target("xylo-audio2", **overrides)
    problems = {p.field.split("[")[0]: p for p in err.value.problems}
    assert field in problems
    assert words in problems[field].rule


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        get_target("truenorth")
    assert err.value.problems[0].field == "target"
    assert "xylo-audio2" in err.value.problems[0].rule


def test_design_fits_and_breaks_xylo() -> None:
    assert check_design("xylo-audio2", 12, 50, 7) == []  # fan-out 49 + 7 = 56 <= 64
    broken = {v.rule: v for v in check_design("xylo-audio2", 20, 1200, 10)}
    assert broken["max_inputs"].value == 20 and broken["max_inputs"].limit == 16
    assert broken["max_hidden"].value == 1200 and broken["max_hidden"].limit == 1000
    assert broken["max_outputs"].value == 10
    assert broken["max_fan_out"].value == 1199 + 10
    # without recurrence a hidden neuron only projects to the readout
    assert check_design("xylo-audio2", 12, 900, 7, recurrent=False) == []


def test_categorical_rules() -> None:
    rules = {
        v.rule: v
        for v in check_design("xylo-audio2", 12, 32, 7, neuron="alif", reset="zero", refractory=3)
    }
    assert set(rules) == {"neuron", "reset", "refractory"}
    assert rules["neuron"].value == "alif" and rules["neuron"].limit == ["cuba_lif", "lif"]
    assert "not supported" in str(rules["reset"])
    assert rules["refractory"].value == 3
    # Loihi 2 is programmable: the same design fits
    assert check_design("loihi2", 12, 32, 7, neuron="alif", reset="zero", refractory=3) == []


def test_generic_target_checks_only_what_the_user_sets() -> None:
    assert check_design("generic", 1000, 5000, 100) == []
    tight = get_target("generic", max_neurons=64, max_fan_in=20)
    rules = {v.rule: v for v in check_design(tight, 12, 60, 7)}
    assert rules["max_neurons"].value == 67
    assert rules["max_fan_in"].value == 12 + 59  # inputs + other hidden neurons


def test_bad_shapes_raise_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        check_design("generic", 0, 10, 2.5, refractory=-1)  # type: ignore[arg-type]
    assert {p.field for p in err.value.problems} == {"n_in", "n_out", "refractory"}


def test_a_neuron_or_reset_that_is_no_name_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as err:
        check_design("generic", 3, 6, 2, neuron=["lif"], reset={})  # type: ignore[arg-type]
    assert [p.field for p in err.value.problems] == ["neuron", "reset"]


def test_numpy_integers_are_counts_as_in_snn_config() -> None:
    sizes = [np.int64(n) for n in (12, 60, 7)]
    assert check_design("generic", *sizes, refractory=np.int64(1)) == check_design(
        "generic", 12, 60, 7, refractory=1)


def test_check_config_reads_a_trial_dict_and_an_snn_config() -> None:
    params = {"n_in": 12, "n_rec": 128, "n_out": 7, "lr": 1e-3, "neuron": "alif"}
    rules = {v.rule for v in check_config("xylo-audio2", params)}
    # readout_bias is missing: SNNConfig's default (True) is what the trial builds
    assert rules == {"max_fan_out", "neuron", "bias"}
    assert "bias" not in {v.rule for v in check_config("xylo-audio2",
                                                        {**params, "readout_bias": False})}
    with pytest.raises(ConfigError):
        check_config("xylo-audio2", {"n_in": 12})
    # quniform's whole floats are counts, as in a search; a fraction is not
    assert check_config("xylo-audio2", {**params, "n_rec": 128.0}) == check_config(
        "xylo-audio2", params)
    with pytest.raises(ConfigError, match=r"n_rec: an integer >= 1 \(got 64\.5\)"):
        check_config("xylo-audio2", {**params, "n_rec": 64.5})

    class Cfg:  # anything with the attributes, e.g. an SNNConfig
        n_in, n_rec, n_out, recurrent = 12, 20, 7, True
        neuron, refractory_steps, reset, readout_bias = "lif", 0, "zero", False

    assert [v.rule for v in check_config("xylo-audio2", Cfg())] == ["reset"]


def test_constraints_are_fixed_length_and_normalised() -> None:
    assert constraints_from([]) == [0.0] * len(RULES)
    violations = check_design("xylo-audio2", 32, 1500, 7, neuron="alif")
    values = dict(zip(RULES, constraints_from(violations), strict=True))
    assert values["max_inputs"] == pytest.approx((32 - 16) / 16)
    assert values["max_hidden"] == pytest.approx(0.5)
    assert values["neuron"] == 1.0
    assert values["max_outputs"] == 0.0 and values["max_spikes_per_step"] == 0.0
    assert all(v >= 0 for v in values.values())
    with pytest.raises(HardwareError):
        constraints_from([Violation("no_such_rule", 1, 2)])


def test_design_check_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from spiketune.hardware import check_design, constraints_from\n"
        "v = check_design('xylo-audio2', 12, 128, 7)\n"
        "assert constraints_from(v)[5] > 0\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ a search's parameter check
def test_parameter_check_maps_a_trials_parameters_to_the_network() -> None:
    check = ParameterCheck.from_table({"target": "Xylo_Audio2", "n_in": 12, "n_out": 7,
                                       "readout_bias": False, "max_hidden": 500},
                                      ["n_rec", "neuron", "lr"])
    assert check.table() == {"target": "xylo-audio2", "max_hidden": 500, "n_in": 12, "n_out": 7,
                             "readout_bias": False}
    assert check.target.max_hidden == 500
    # a nested choice counts as its name; quniform's whole floats as ints; other keys ignored
    params = {"n_rec": 40.0, "neuron": {"_name": "alif", "beta": 1.5}, "lr": 0.01}
    assert check.network(params) == {"n_in": 12, "n_out": 7, "readout_bias": False, "n_rec": 40,
                                     "neuron": "alif"}
    assert [v.rule for v in check.violations(params)] == ["neuron"]
    assert check.violations({"n_rec": 16}) == []
    with pytest.raises(ConfigError) as err:
        check.violations({"n_rec": 0})
    assert err.value.problems[0].field == "n_rec"


def test_parameter_check_table_problems_name_their_keys() -> None:
    with pytest.raises(ConfigError) as err:
        ParameterCheck.from_table({"target": "xylo-audio2", "n_in": 12, "n_rec": 8,
                                   "colour": "red", "max_hidden": 0, "neuron": 3},
                                  ["n_rec"], name="hw")
    found = {p.field: p.rule for p in err.value.problems}
    assert set(found) == {"hw.n_rec", "hw.colour", "hw.n_out", "hw.max_hidden", "hw.neuron"}
    assert "one place" in found["hw.n_rec"] and "max_fan_out" in found["hw.colour"]
    assert "parameter named n_out" in found["hw.n_out"] and ">= 1" in found["hw.max_hidden"]
    assert "one of lif, alif, cuba_lif" in found["hw.neuron"]  # 3 is no neuron
    # A bad limit and a bad fact are said together, not one after the other's fix.
    with pytest.raises(ConfigError) as err:
        ParameterCheck.from_table({"target": "xylo-audio2", "n_in": -12, "n_out": 7,
                                   "max_hidden": -5}, ["n_rec"])
    assert [p.field for p in err.value.problems] == ["hardware.max_hidden", "hardware.n_in"]
    with pytest.raises(ConfigError) as err:
        ParameterCheck.from_table({"n_in": 1, "n_rec": 1, "n_out": 1})
    assert [p.field for p in err.value.problems] == ["hardware.target"]
    assert set(NETWORK_KEYS) >= {"n_in", "n_rec", "n_out", "neuron", "reset"}


def _imports(path: Path) -> set[str]:
    """Every module a source file imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_layers_meet_only_at_public_names() -> None:
    """The engine reaches hardware through its public names only, and hardware reaches no
    engine module: the package-level helpers are all the two share."""
    package = Path(hw.__file__).resolve().parents[1]
    for path in (package / "engine").rglob("*.py"):
        private = {m for m in _imports(path) if m.startswith("spiketune.hardware._")}
        assert not private, f"{path.name} imports {private}"
    for path in (package / "hardware").rglob("*.py"):
        engine = {m for m in _imports(path) if m.startswith("spiketune.engine")}
        assert not engine, f"{path.name} imports {engine}"


def test_spikes_of_one_neuron_in_one_step_are_checked_against_the_chip() -> None:
    """Xylo's neuron emits up to 31 spikes per step: a network trained with several spikes per
    step (max_spikes=None) that needs more is reported, one that needs fewer fits."""
    import torch

    from spiketune.hardware import assess_network
    from spiketune.snn import RecurrentSNN, SNNConfig

    cfg = {"n_in": 4, "n_rec": 8, "n_out": 3, "neuron": "cuba_lif", "alpha_syn": 0.5,
           "reset": "subtract_at_spike", "max_spikes": None, "rule": "bptt",
           "readout_bias": False, "recurrent": False, "v_th": 1.0}
    x = torch.ones(2, 10, 4)
    y = torch.tensor([0, 1])
    loud = RecurrentSNN(SNNConfig(**cfg, gain_in=200.0), seed=0)
    metrics = assess_network(loud, "xylo-audio2", val=(x, y))
    assert metrics.metrics["max_spikes_per_neuron_step"] > 31
    assert any(v.rule == "max_spikes_per_neuron_step" for v in metrics.violations)
    assert metrics.constraints[-1] > 0  # the last of the tuner's constraint values
    quiet = RecurrentSNN(SNNConfig(**cfg, gain_in=2.0), seed=0)
    fine = assess_network(quiet, "xylo-audio2", val=(x, y))
    assert 1 < fine.metrics["max_spikes_per_neuron_step"] <= 31
    assert not any(v.rule == "max_spikes_per_neuron_step" for v in fine.violations)
