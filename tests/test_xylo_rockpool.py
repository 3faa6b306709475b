"""spiketune's Xylo Audio 2 design rules against Rockpool's own mapper (``rockpool_check``).

Rockpool 3.1.0's ``syns61201.mapper`` runs without SynSense's ``samna``/``xylosim``; the
configuration and simulator steps need them and must be reported, not raised. Where the two
checks differ (fan-out, more than 16 inputs) the difference is asserted, so a change in
either check shows up here."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest
import torch

from spiketune.errors import ConfigError, HardwareError
from spiketune.hardware import RockpoolCheck, rockpool_check
from spiketune.snn import RecurrentSNN, SNNConfig

torch.set_num_threads(1)

needs_rockpool = pytest.mark.skipif(
    importlib.util.find_spec("rockpool") is None,
    reason="rockpool is not installed (pip install rockpool==3.1.0)",
)


def _net(n_in: int = 5, n_rec: int = 20, n_out: int = 4, **kw: Any) -> RecurrentSNN:
    base = {"tau_mem": 10e-3, "tau_out": 15e-3, "readout_bias": False}
    config = SNNConfig(n_in=n_in, n_rec=n_rec, n_out=n_out, **{**base, **kw})
    return RecurrentSNN(config, seed=1, dtype=torch.float32)


@needs_rockpool
def test_a_xylo_sized_network_passes_both_checks_and_they_agree() -> None:
    check = rockpool_check(_net())
    assert isinstance(check, RockpoolCheck)
    assert check.spiketune_problems == () and check.rockpool_problems == ()
    assert check.fits and check.agree
    assert (check.inputs, check.hidden, check.outputs) == (5, 20, 4)
    assert dict(check.weight_shapes) == {
        "weights_in": (5, 20), "weights_rec": (20, 20), "weights_out": (20, 4),
    }
    assert any(step.startswith("mapper") for step in check.ran)
    assert any(step.startswith("quantise") for step in check.ran)
    # the readout had to be given a membrane memory for Rockpool's conversion: said, not hidden
    assert any("readout tau_mem raised" in n for n in check.notes)
    # the never-firing readout's threshold sets channel_quantize's scale: weights round to 0
    assert any("every weights_out rounds to 0" in n for n in check.notes)
    assert "fits" in check.summary()


@needs_rockpool
def test_too_many_hidden_neurons_are_refused_by_both() -> None:
    check = rockpool_check(_net(n_rec=1001, recurrent=False))
    assert any("max_hidden = 1001 exceeds the limit 1000" in p for p in check.spiketune_problems)
    assert len(check.rockpool_problems) == 1
    assert "Failed to allocate HW resources for hidden neurons" in check.rockpool_problems[0]
    assert check.agree and not check.fits
    assert check.hidden is None and dict(check.weight_shapes) == {}
    assert check.not_run["quantise"] == "the mapper refused the network"


@needs_rockpool
def test_too_many_outputs_are_refused_by_both_rockpool_also_warns() -> None:
    check = rockpool_check(_net(n_out=9))
    assert any("max_outputs = 9" in p for p in check.spiketune_problems)
    assert "Failed to allocate HW resources for output neurons" in check.rockpool_problems[0]
    assert any("up to 8 output channels" in w for w in check.rockpool_warnings)
    assert check.agree


@needs_rockpool
def test_fan_out_is_checked_by_spiketune_only() -> None:
    """Rockpool 3.1's mapper has no fan-out rule: a dense recurrent layer of 100 neurons maps,
    while spiketune's 64-synapse fan-out limit (Rockpool's own overview table) refuses it."""
    check = rockpool_check(_net(n_rec=100))
    assert [p for p in check.spiketune_problems if "max_fan_out" in p] == [
        "xylo-audio2: max_fan_out = 103 exceeds the limit 64"
    ]
    assert check.rockpool_problems == ()
    assert check.hidden == 100
    assert not check.agree and "disagree" in check.summary()


@needs_rockpool
def test_more_than_16_inputs_only_warn_in_rockpool() -> None:
    check = rockpool_check(_net(n_in=17))
    assert any("max_inputs = 17" in p for p in check.spiketune_problems)
    assert check.rockpool_problems == ()
    assert check.rockpool_warnings == (
        "Xylo only supports up to 16 input channels. The network requires 17 input channels.",
    )
    assert check.inputs == 17 and not check.agree


@needs_rockpool
def test_a_readout_bias_is_refused_by_spiketune_and_a_rockpool_warning_only() -> None:
    check = rockpool_check(_net(readout_bias=True))
    # The chip would run the network without its bias: spiketune refuses it, Rockpool maps it.
    assert not check.agree and not check.rockpool_problems
    assert any("bias" in p for p in check.spiketune_problems)
    assert any("Bias parameters of LinearWeights modules are *not* transferred" in w
               for w in check.rockpool_warnings)


@needs_rockpool
@pytest.mark.skipif(importlib.util.find_spec("samna") is not None,
                    reason="samna is installed: the config step runs")
def test_steps_needing_the_vendor_packages_report_their_reason() -> None:
    check = rockpool_check(_net())
    assert check.not_run["config"] == (
        "ModuleNotFoundError: Missing the `samna` backend. `config_from_specification` "
        "objects, and others relying on `samna` are not available."
    )
    if importlib.util.find_spec("xylosim") is None:
        assert "Missing the `xylosim, samna` backend" in check.not_run["simulator"]
    assert not any(step.startswith(("config", "simulator")) for step in check.ran)
    assert "not run: config" in check.summary()


def test_a_non_xylo_target_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="target: one of xylo-audio2") as err:
        rockpool_check(_net(), "xylo-imu")
    assert err.value.problems[0].field == "target"
    assert err.value.problems[0].value == "xylo-imu"


def test_without_rockpool_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rockpool.nn.modules", None)  # import now fails
    with pytest.raises(HardwareError, match=r"pip install rockpool==3\.1\.0"):
        rockpool_check(_net())
