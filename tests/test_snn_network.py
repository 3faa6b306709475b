"""The recurrent network: the loop, the weights it owns, determinism, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiketune.errors import ConfigError, DataError
from spiketune.snn import RecurrentSNN, SNNConfig, initial_state, neuron_step
from spiketune.snn._filters import leaky_filter, leaky_filter_loop

pytestmark = pytest.mark.usefixtures("one_thread")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def config(**kw: object) -> SNNConfig:
    base: dict[str, object] = {"n_in": 5, "n_rec": 16, "n_out": 3, "gain_in": 3.0}
    base.update(kw)
    return SNNConfig(**base)


def inputs(batch: int = 4, steps: int = 30, n_in: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, n_in, generator=g) < 0.3).float()


@pytest.mark.parametrize("neuron", ["lif", "alif"])
@pytest.mark.parametrize("refractory", [0, 2])
def test_simulate_is_the_step_function_composed(neuron: str, refractory: int) -> None:
    """Fed the same currents, the network's loop and a hand loop over neuron_step agree."""
    net = RecurrentSNN(config(neuron=neuron, refractory_steps=refractory, reset="zero"), seed=3)
    x = inputs()
    with torch.no_grad():
        tr = net.simulate(x)
        p, w_rec = net.neuron_params, net.w_rec * (1 - torch.eye(16))
        state = initial_state(p, 4, 16)
        zs, ys, y = [], [], torch.zeros(4, 3)
        for t in range(x.shape[1]):
            i = x[:, t] @ net.w_in.T + state.z @ w_rec.T
            z, state = neuron_step(i, state, p)
            y = net.config.decay_out * y + z @ net.w_out.T + net.b_out
            zs.append(z)
            ys.append(y)
    assert torch.equal(tr.z, torch.stack(zs))
    assert torch.allclose(tr.y, torch.stack(ys), atol=1e-5)
    assert tr.z.sum() > 0
    assert tr.readout.shape == (4, 30, 3) and tr.spikes.shape == (4, 30, 16)


def test_buffered_and_autograd_paths_agree() -> None:
    net = RecurrentSNN(config(neuron="alif", refractory_steps=1), seed=1)
    x = inputs()
    with torch.no_grad():
        buffered = net.simulate(x)
    listed = net.simulate(x)  # gradients enabled: the list-and-stack path
    assert torch.equal(buffered.z, listed.z)
    assert torch.allclose(buffered.v, listed.v.detach(), atol=1e-5)  # reset folded: rounding
    assert torch.equal(buffered.a, listed.a.detach())
    assert buffered.pre is not None
    assert torch.equal(buffered.pre[1:, :, 5:], buffered.z)
    assert torch.equal(buffered.pre[:-1, :, :5], buffered.x)
    assert torch.all(buffered.pre[0, :, 5:] == 0) and torch.all(buffered.pre[-1, :, :5] == 0)


def test_no_self_connections() -> None:
    net = RecurrentSNN(config(), seed=0)
    assert torch.all(torch.diagonal(net.w_rec) == 0)
    x = inputs()
    with torch.no_grad():
        before = net.simulate(x).z.clone()
        net.w_rec.fill_diagonal_(5.0)  # even if the diagonal is written, it is never used
        after = net.simulate(x).z
    assert torch.equal(before, after)


def test_no_recurrence_option() -> None:
    net = RecurrentSNN(config(recurrent=False), seed=0)
    assert net.w_rec is None
    assert "w_rec" not in dict(net.named_parameters())
    with torch.no_grad():
        tr = net.simulate(inputs())
    assert tr.pre is None and tr.z.sum() > 0


def test_readout_without_bias_and_random_feedback_buffer() -> None:
    net = RecurrentSNN(config(readout_bias=False, feedback="random"), seed=0)
    assert net.b_out is None
    assert net.feedback is not None and net.feedback.shape == (16, 3)
    assert "feedback" in net.state_dict()
    sym = RecurrentSNN(config(), seed=0)
    assert torch.equal(sym.feedback_matrix(), sym.w_out.t())


def test_deterministic_for_a_seed() -> None:
    a, b, c = (RecurrentSNN(config(), seed=s) for s in (7, 7, 8))
    params = zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True)
    for (name, pa), pb, pc in params:
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc) or name == "b_out"
    x = inputs()
    with torch.no_grad():
        assert torch.equal(a.simulate(x).y, b.simulate(x).y)


@pytest.mark.parametrize("seed", ["a", 1.5, True, 2**64])
def test_a_seed_that_is_no_generator_seed_is_refused_by_name(seed: object) -> None:
    with pytest.raises(ConfigError, match=r"seed: an integer"):
        RecurrentSNN(config(), seed=seed)  # type: ignore[arg-type]
    np_seeded = RecurrentSNN(config(), seed=np.int64(3))
    assert torch.equal(np_seeded.w_in, RecurrentSNN(config(), seed=3).w_in)


def test_initialisation_gains() -> None:
    net = RecurrentSNN(SNNConfig(n_in=400, n_rec=300, n_out=200, gain_in=2.0, gain_rec=0.5), seed=0)
    with torch.no_grad():
        assert float(net.w_in.std()) == pytest.approx(2.0 / 400**0.5, rel=0.05)
        assert float(net.w_rec.std()) == pytest.approx(0.5 / 300**0.5, rel=0.05)
        assert float(net.w_out.std()) == pytest.approx(1.0 / 300**0.5, rel=0.05)


def test_forward_is_differentiable_and_float32() -> None:
    net = RecurrentSNN(config(), seed=0)
    y = net(inputs())
    assert y.shape == (4, 30, 3) and y.dtype == torch.float32
    y.square().mean().backward()
    assert net.w_in.grad is not None and net.w_in.grad.abs().sum() > 0
    with torch.no_grad():
        assert not net(inputs()).requires_grad


def test_bad_input_shape_is_a_config_error() -> None:
    net = RecurrentSNN(config(), seed=0)
    with pytest.raises(ConfigError, match="input"):
        net.simulate(torch.zeros(4, 30, 6))
    with pytest.raises(ConfigError):
        RecurrentSNN(config(), dtype=torch.float16)


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_an_empty_batch_gives_empty_results_and_no_steps_a_data_error(neuron: str) -> None:
    net = RecurrentSNN(config(neuron=neuron), seed=0)
    empty = torch.zeros(0, 30, 5)
    with torch.no_grad():
        tr = net.simulate(empty)
    assert tr.readout.shape == (0, 30, 3) and tr.spikes.shape == (0, 30, 16)
    assert net.simulate_for_bptt(empty).readout.shape == (0, 30, 3)
    for grad in (False, True):
        with torch.set_grad_enabled(grad), pytest.raises(DataError, match=r"\(4, 0, 5\)"):
            net.simulate(torch.zeros(4, 0, 5))


@pytest.mark.parametrize("device", DEVICES)
def test_devices_give_the_same_spikes(device: str) -> None:
    net_cpu = RecurrentSNN(config(neuron="alif"), seed=2, dtype=torch.float64)
    net_dev = RecurrentSNN(config(neuron="alif"), seed=2, device=device, dtype=torch.float64)
    x = inputs().double()
    with torch.no_grad():
        a = net_cpu.simulate(x)
        b = net_dev.simulate(x.to(device))
    assert b.z.device.type == device
    assert torch.equal(a.z, b.z.cpu())


@pytest.mark.parametrize("steps", [1, 7, 32, 33, 100])
@pytest.mark.parametrize("reverse", [False, True])
def test_leaky_filter_chunks_match_the_recursion(steps: int, reverse: bool) -> None:
    u = torch.randn(steps, 3, 2, dtype=torch.float64)
    expected = torch.empty_like(u)
    acc = torch.zeros(3, 2, dtype=torch.float64)
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        acc = 0.9 * acc + u[t]
        expected[t] = acc
    assert torch.allclose(leaky_filter(u, 0.9, reverse=reverse), expected)
    assert torch.allclose(leaky_filter_loop(u, 0.9, reverse=reverse), expected)
    decay = torch.full_like(u, 0.9)
    assert torch.allclose(leaky_filter_loop(u, decay, reverse=reverse), expected)
