"""Post-training checks: weight quantisation, re-evaluation, activity against a target's limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from spiketune.errors import ConfigError
from spiketune.hardware import (
    RULES,
    assess_network,
    bitshift_decay,
    evaluate,
    get_target,
    quantise_network,
    quantise_tensor,
)
from spiketune.snn import RecurrentSNN, SNNConfig, predict

torch.set_num_threads(1)


def _net(**kw: object) -> RecurrentSNN:
    cfg = SNNConfig(n_in=6, n_rec=24, n_out=4, gain_in=3.0, **kw)  # type: ignore[arg-type]
    return RecurrentSNN(cfg, seed=3)


def _data(n: int = 32, steps: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, steps, 6, generator=g) < 0.3).float()
    return x, torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_per_tensor_codes_lie_on_a_symmetric_grid(bits: int) -> None:
    w = torch.randn(10, 7, generator=torch.Generator().manual_seed(1))
    wq, scale = quantise_tensor(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert scale.shape == () and scale == pytest.approx(float(w.abs().max()) / qmax)
    codes = wq / scale
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.abs().max() <= qmax + 1e-4
    # round to nearest: the error is at most half a step, the largest weight is exact
    assert (wq - w).abs().max() <= scale / 2 + 1e-6
    assert float(wq.abs().max()) == pytest.approx(float(w.abs().max()))


@pytest.mark.parametrize("bits", [8, 25, 31, 32])
def test_integer_codes_stay_within_the_grid_at_every_width(bits: int) -> None:
    """float32 cannot hold every code above 24 bits: the codes are made in float64."""
    net = RecurrentSNN(SNNConfig(n_in=6, n_rec=10, n_out=4), seed=0)
    codes = quantise_network(net, bits).integer_weights()
    qmax = 2 ** (bits - 1) - 1
    assert max(int(c.abs().max()) for c in codes.values()) == qmax


def test_per_channel_scales_each_row_and_is_never_worse() -> None:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(8, 5, generator=g) * torch.logspace(-2, 0, 8).unsqueeze(1)  # rows differ
    wq_t, _ = quantise_tensor(w, 4)
    wq_c, scales = quantise_tensor(w, 4, per_channel=True)
    assert scales.shape == (8,)
    assert torch.allclose(scales, w.abs().amax(1) / 7)
    assert (wq_c - w).abs().sum() < (wq_t - w).abs().sum()
    # with few bits the small rows vanish per tensor but survive per channel
    assert (wq_t[0] == 0).all() and (wq_c[0] != 0).any()


def test_zero_rows_and_bad_bits() -> None:
    w = torch.zeros(3, 4)
    wq, scales = quantise_tensor(w, 8, per_channel=True)
    assert (wq == 0).all() and (scales == 1).all()
    with pytest.raises(ConfigError) as err:
        quantise_tensor(w, 1)
    assert err.value.problems[0].field == "weight_bits"


def test_numpy_integer_bits_are_taken_as_python_ints() -> None:
    q = quantise_network(_net(), np.int64(4))
    assert q.bits == 4 and type(q.bits) is int
    assert torch.equal(quantise_tensor(torch.ones(2, 2), np.int64(4))[1], torch.tensor(1 / 7))


def test_quantise_network_copies_and_keeps_the_original() -> None:
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    q = quantise_network(net, 4, per_channel=True)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])  # untouched
    assert q.network is not net and q.bits == 4 and q.per_channel
    codes = q.integer_weights()
    assert set(codes) == {"w_in", "w_rec", "w_out"}
    for name, c in codes.items():
        assert int(c.abs().max()) <= 7
        scale = q.scales[name].unsqueeze(-1)
        assert torch.allclose(getattr(q.network, name), c * scale, atol=1e-6)
    assert torch.equal(torch.diagonal(q.network.recurrent_weight()), torch.zeros(24))


def test_many_bits_change_nothing_and_few_bits_change_spikes() -> None:
    net = _net()
    x, _ = _data()
    with torch.no_grad():
        ref = net.simulate(x).z
        fine = quantise_network(net, 24).network.simulate(x).z
        coarse = quantise_network(net, 2).network.simulate(x).z
    assert torch.equal(ref, fine)
    assert not torch.equal(ref, coarse)


def test_bitshift_decays() -> None:
    assert bitshift_decay(0.0) == 0.0
    assert bitshift_decay(0.95) == 1 - 2**-4  # 1/(1-0.95) = 20 ~ 2**4.3
    assert bitshift_decay(0.9375) == 0.9375  # already a shift
    with pytest.raises(ConfigError):
        bitshift_decay(1.0)
    q = quantise_network(_net(tau_mem=20e-3, tau_out=5e-3), 8, bitshift_decays=True)
    cfg = q.network.config
    assert cfg.decay_mem == q.decays["alpha"][1] == bitshift_decay(math.exp(-1 / 20))
    assert cfg.decay_out == q.decays["kappa"][1] == bitshift_decay(math.exp(-1 / 5))
    assert q.network.neuron_params.alpha == cfg.decay_mem


def test_evaluate_matches_predict_for_every_data_form() -> None:
    net = _net(loss_steps=10)
    x, y = _data(n=20)
    with torch.no_grad():
        tr = net.simulate(x)
    expected = float((predict(tr.readout, 10) == y).float().mean())
    per_step = tr.z.sum(-1)
    for data in ((x, y), DataLoader(TensorDataset(x, y), batch_size=7)):
        act = evaluate(net, data, batch_size=8)
        assert act.accuracy == pytest.approx(expected)
        assert act.n_samples == 20
        assert act.max_spikes_per_step == int(per_step.max())
        assert act.mean_spikes_per_step == pytest.approx(float(per_step.float().mean()))
        assert act.max_input_events_per_step == 1.0
        assert act.max_abs_membrane == pytest.approx(float(tr.v.abs().max()))
    with pytest.raises(ConfigError):
        evaluate(net, 42)


def test_evaluate_and_assess_name_a_model_or_batch_size_they_cannot_take() -> None:
    from spiketune.snn import L2MU

    data = _data(n=4)
    l2mu = L2MU(5, 3, order=2, theta=0.1, dt=0.01, hidden_size=4)
    with pytest.raises(ConfigError, match=r"model: a RecurrentSNN \(got 'L2MU'\)"):
        evaluate(l2mu, data)  # type: ignore[arg-type]
    for batch_size in (0, "8", 2.0):
        with pytest.raises(ConfigError, match=r"batch_size: an integer >= 1"):
            evaluate(_net(), data, batch_size=batch_size)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"batch_size: an integer >= 1"):
            assess_network(_net(), "generic", val=data, batch_size=batch_size)  # type: ignore[arg-type]


def test_assess_reports_metrics_and_measured_violations() -> None:
    net = _net()
    x, y = _data()
    x[0, 3, 2] = 5.0  # a step with 5 events on one channel
    target = get_target(
        "generic", weight_bits=4, max_spikes_per_step=2, max_input_events_per_step=3
    )
    a = assess_network(net, target, val=(x, y), test=(x[:8], y[:8]))
    m = a.metrics
    for key in (
        "val_acc", "test_acc", "quant_val_acc", "quant_test_acc", "quant_val_drop",
        "max_spikes_per_step", "max_input_events_per_step", "synops_per_sample",
        "state_bits_needed", "max_fan_in", "max_fan_out",
    ):
        assert key in m, key
    assert m["quant_val_drop"] == pytest.approx(m["val_acc"] - m["quant_val_acc"])
    quant = evaluate(a.quantised.network, (x, y))
    assert m["quant_val_acc"] == quant.accuracy
    assert m["max_spikes_per_step"] == quant.max_spikes_per_step
    rules = {v.rule: v for v in a.violations}
    assert rules["max_input_events_per_step"].value == 5.0
    assert rules["max_spikes_per_step"].value == quant.max_spikes_per_step > 2
    assert not a.feasible and m["n_violations"] == len(a.violations)
    cons = dict(zip(RULES, a.constraints, strict=True))
    assert cons["max_input_events_per_step"] == pytest.approx((5 - 3) / 3)


def test_assess_counts_nonzero_weights_and_state_bits() -> None:
    net = _net()
    with torch.no_grad():
        net.w_in[:, 3:] = 0.0  # half the inputs unused
    a = assess_network(net, "xylo-audio2", val=_data())
    assert a.metrics["max_fan_in"] == 3 + 23  # 3 inputs + 23 other hidden neurons
    assert a.metrics["max_fan_out"] == 23 + 4
    assert a.metrics["weight_bits"] == 8 and a.quantised is not None
    assert a.quantised.decays  # Xylo decays are bit shifts
    assert 2 <= a.metrics["state_bits_needed"] <= 32
    tight = get_target("xylo-audio2", state_bits=4)
    rules = {v.rule for v in assess_network(net, tight, val=_data()).violations}
    assert "state_bits" in rules


def test_assess_without_weight_bits_does_not_quantise() -> None:
    a = assess_network(_net(), "generic", val=_data())
    assert a.quantised is None and "quant_val_acc" not in a.metrics
    assert a.metrics["weight_bits"] == 0 and a.feasible
    assert a.constraints == [0.0] * len(RULES)


def test_shared_hidden_scale_puts_input_and_recurrent_weights_on_one_grid() -> None:
    """Xylo adds input and recurrent weights in one integer membrane (Rockpool's quantisers
    scale them together): one grid for both, set by the larger, and the threshold a whole
    number of its steps. The readout keeps its own grid."""
    from spiketune.hardware import get_target, quantise_network
    from spiketune.snn import RecurrentSNN, SNNConfig

    net = RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, gain_rec=0.1, v_th=0.77), seed=0)
    q = quantise_network(net, 8, shared_hidden_scale=True)
    s = float(q.scales["w_in"])
    assert float(q.scales["w_rec"]) == s != float(q.scales["w_out"])
    ints = q.integer_weights()
    assert int(ints["w_in"].abs().max()) == 127 > int(ints["w_rec"].abs().max())  # in is larger
    torch.testing.assert_close(ints["w_rec"].double() * s, q.network.w_rec.double())
    steps = q.network.config.v_th / s
    assert abs(steps - round(steps)) < 1e-6 and abs(q.network.config.v_th - 0.77) <= s / 2
    separate = quantise_network(net, 8)
    assert float(separate.scales["w_rec"]) < s and separate.network.config.v_th == 0.77
    assert get_target("xylo-audio2").shared_hidden_scale
    assert not get_target("loihi2").shared_hidden_scale
    assert quantise_network(net, 8, dtype=torch.float64).network.w_in.dtype == torch.float64
    from spiketune.hardware import assess_network

    x, y = torch.rand(3, 5, 4), torch.tensor([0, 1, 2])
    deployed = assess_network(net, "xylo-audio2", val=(x, y)).quantised
    assert deployed is not None and deployed.network.w_in.dtype == torch.float64
