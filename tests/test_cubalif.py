"""The current-based LIF (CubaLIF): one step against a hand computation, the LIF it becomes
without synaptic memory, its config rules, and exact BPTT gradients of a tiny network."""

from __future__ import annotations

import math

import pytest
import torch

from spiketune.errors import ConfigError
from spiketune.snn import (
    CubaLIFParameters,
    CubaLIFState,
    LIFParameters,
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    Trainer,
    cuba_lif_step,
    initial_state,
    lif_step,
    spike_function,
)


def test_one_step_matches_the_hand_computation() -> None:
    p = CubaLIFParameters(alpha=0.5, alpha_syn=0.25, v_th=1.0, reset="subtract")
    s = CubaLIFState(
        z=torch.tensor([[1.0, 0.0, 0.0]]), v=torch.tensor([[0.4, 0.2, 0.9]]),
        i=torch.tensor([[2.0, 0.4, -1.0]]), refrac=None,
    )
    z, new = cuba_lif_step(torch.tensor([[0.1, 0.6, 0.75]]), s, p)
    # j = 0.25 * i_prev + i;  v = 0.5 v_prev + j - 1.0 * z_prev;  z = v > 1
    j = [0.25 * 2.0 + 0.1, 0.25 * 0.4 + 0.6, 0.25 * -1.0 + 0.75]
    v = [0.5 * 0.4 + j[0] - 1.0, 0.5 * 0.2 + j[1], 0.5 * 0.9 + j[2]]
    torch.testing.assert_close(new.i, torch.tensor([j]))
    torch.testing.assert_close(new.v, torch.tensor([v]))
    assert z.tolist() == [[0.0, 0.0, 0.0]] and new.z is z
    _, after = cuba_lif_step(torch.tensor([[0.0, 0.9, 0.0]]), new, p)
    assert after.z.tolist() == [[0.0, 1.0, 0.0]]  # 0.5 * 0.7 + 0.25 * 0.7 + 0.9 > 1


def test_parameters_from_time_constants_and_their_checks() -> None:
    p = CubaLIFParameters.from_time_constants(tau_mem=20e-3, tau_syn=5e-3, dt=1e-3)
    assert p.alpha == pytest.approx(math.exp(-1 / 20)) and p.alpha_syn == pytest.approx(
        math.exp(-1 / 5)
    )
    with pytest.raises(ConfigError, match="alpha_syn"):
        CubaLIFParameters(alpha=0.5, alpha_syn=1.0)
    with pytest.raises(ConfigError, match="tau_syn"):
        CubaLIFParameters.from_time_constants(tau_mem=20e-3, tau_syn=0.0, dt=1e-3)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_without_synaptic_memory_it_is_the_lif(reset: str) -> None:
    g = torch.Generator().manual_seed(0)
    currents = torch.rand(30, 4, 8, generator=g) * 1.5
    cuba = CubaLIFParameters(alpha=0.9, alpha_syn=0.0, reset=reset)
    lif = LIFParameters(alpha=0.9, reset=reset)
    sc, sl = initial_state(cuba, 4, 8), initial_state(lif, 4, 8)
    assert isinstance(sc, CubaLIFState)
    for i in currents:
        zc, sc = cuba_lif_step(i, sc, cuba)
        zl, sl = lif_step(i, sl, lif)
        assert torch.equal(zc, zl) and torch.equal(sc.v, sl.v)
    # and a network whose synapse forgets within the step spikes like the LIF network
    base = {"n_in": 5, "n_rec": 12, "n_out": 3, "gain_in": 4.0, "rule": "bptt", "reset": reset}
    x = (torch.rand(3, 40, 5, generator=g) < 0.3).float()
    a = RecurrentSNN(SNNConfig(**base, neuron="cuba_lif", alpha_syn=0.0), seed=2)
    b = RecurrentSNN(SNNConfig(**base), seed=2)
    with torch.no_grad():
        ta, tb = a.simulate(x), b.simulate(x)
    assert 0.02 < float(tb.z.mean()) < 0.8
    assert torch.equal(ta.z, tb.z)
    torch.testing.assert_close(ta.y, tb.y)


def test_network_with_a_synapse_differs_and_the_fast_path_equals_autograd() -> None:
    cfg = SNNConfig(n_in=5, n_rec=12, n_out=3, gain_in=4.0, neuron="cuba_lif", tau_syn=10e-3,
                    rule="bptt")
    net = RecurrentSNN(cfg, seed=2)
    x = (torch.rand(3, 40, 5, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with torch.no_grad():
        fast = net.simulate(x)  # into preallocated buffers
    slow = net.simulate(x, spike=spike_function(net.surrogate, cfg.v_th))  # the autograd loop
    assert 0.02 < float(fast.z.mean()) < 0.8
    assert torch.equal(fast.z, slow.z.detach())
    torch.testing.assert_close(fast.y, slow.y.detach())
    lif = RecurrentSNN(SNNConfig(**{**cfg.model_dump(), "neuron": "lif", "tau_syn": None}),
                       seed=2)
    with torch.no_grad():
        assert not torch.equal(lif.simulate(x).z, fast.z)


def test_config_rules_for_the_synapse() -> None:
    cfg = SNNConfig(n_in=2, n_rec=3, n_out=2, neuron="cuba_lif", rule="bptt", dt=1e-3)
    assert cfg.tau_syn == 5e-3 and cfg.decay_syn == pytest.approx(math.exp(-1e-3 / 5e-3))
    assert SNNConfig(n_in=2, n_rec=3, n_out=2).decay_syn == 0.0
    with pytest.raises(ConfigError, match="rule"):
        SNNConfig(n_in=2, n_rec=3, n_out=2, neuron="cuba_lif")  # e-prop is the default rule
    with pytest.raises(ConfigError, match="tau_syn"):
        SNNConfig(n_in=2, n_rec=3, n_out=2, tau_syn=5e-3)  # a LIF has no synapse
    with pytest.raises(ConfigError, match="not both"):
        SNNConfig(n_in=2, n_rec=3, n_out=2, neuron="cuba_lif", rule="bptt", tau_syn=5e-3,
                  alpha_syn=0.5)
    # a saved config (both spellings None for a LIF, the default filled in) round-trips
    assert SNNConfig.model_validate(cfg.model_dump()) == cfg


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_bptt_gradients_of_a_tiny_network_pass_gradcheck(reset: str) -> None:
    """Surrogate BPTT is autograd over the step function: its gradients with respect to every
    weight equal finite differences of the (surrogate-smooth) loss, in float64."""
    cfg = SNNConfig(n_in=3, n_rec=4, n_out=2, neuron="cuba_lif", tau_syn=4e-3, tau_mem=8e-3,
                    rule="bptt", reset=reset, gain_in=3.0)
    net = RecurrentSNN(cfg, seed=0, dtype=torch.float64)
    x = torch.rand(2, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    names = ["w_in", "w_rec", "w_out", "b_out"]
    weights = tuple(getattr(net, n).detach().clone().requires_grad_(True) for n in names)
    with torch.enable_grad():
        assert torch.autograd.gradcheck(
            lambda *w: _simulate_loss(net, dict(zip(names, w, strict=True)), x), weights
        )


def _spike(u: torch.Tensor, v_th: float) -> torch.Tensor:
    """A smooth spike, so that finite differences see the gradient autograd computes."""
    return torch.sigmoid(4.0 * (u - v_th) / v_th)


def _simulate_loss(
    net: RecurrentSNN, params: dict[str, torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    class _Sim(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.simulate(x, spike=_spike).y

    out = torch.func.functional_call(_Sim(), {f"net.{k}": v for k, v in params.items()}, (x,),
                                     strict=False)
    return out.square().sum()


def test_a_cuba_lif_network_learns_by_bptt() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    x = (torch.rand(40, 20, 4, generator=g) < 0.05).float()
    x[labels == 1, :, 0] = (torch.rand(20, 20, generator=g) < 0.5).float()
    x[labels == 0, :, 1] = (torch.rand(20, 20, generator=g) < 0.5).float()
    cfg = SNNConfig(n_in=4, n_rec=8, n_out=2, neuron="cuba_lif", rule="bptt", tau_syn=5e-3,
                    gain_in=3.0, loss="ce_summed")
    net = RecurrentSNN(cfg, seed=0)
    history = Trainer(net, TrainConfig(epochs=8, batch_size=10, lr=0.02)).fit(
        (x[:30], labels[:30]), (x[30:], labels[30:])
    )
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert max(e.val_acc for e in history.epochs) >= 0.9
