"""Legendre Memory Units: the delay system, its discretisation, the memory's reconstruction of
the past, one L²MU step by hand, the fused BPTT path against autograd, gradients against
finite differences, and configuration errors.

Everything checked for exactness runs in float64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from numpy.polynomial import legendre
from torch import nn

from spiketune.errors import ConfigError, DataError
from spiketune.snn._lmu import (
    L2MU,
    LMU,
    L2MUParameters,
    L2MUState,
    L2MUWeights,
    LMUParameters,
    LMUWeights,
    discretise,
    l2mu_initial_state,
    l2mu_step,
    legendre_matrices,
    lmu_initial_state,
    lmu_step,
)
from spiketune.snn._surrogate import Surrogate, heaviside, spike_function

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


def t64(values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def smooth_spike(v: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """A differentiable stand-in for the spike, so that finite differences see the gradient."""
    return torch.sigmoid(4.0 * (v - threshold))


def small_l2mu(**kw: Any) -> L2MU:
    """A tiny L²MU whose populations all spike on dense random input (low thresholds), with a
    non-zero memory encoder (its default is zero) so that every weight carries gradient."""
    base: dict[str, Any] = {
        "order": 3, "theta": 0.05, "dt": 0.005, "memory_size": 2, "hidden_size": 6,
        "beta": {"u": 0.8, "m": 0.9, "h": 0.7, "out": 0.85},
        "threshold": {"u": 0.1, "m": 0.02, "h": 0.3, "out": 0.1},
        "dtype": F64, "seed": 1,
    }
    base.update(kw)
    net = L2MU(4, 3, **base)
    with torch.no_grad():
        net.e_m.copy_(torch.randn(net.e_m.shape, generator=torch.Generator().manual_seed(2),
                                  dtype=F64) * 0.3)
    return net


def spike_input(batch: int = 3, steps: int = 45, n_in: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, n_in, generator=g, dtype=F64) < 0.3).to(F64)


# -- the delay system ------------------------------------------------------------------------
def test_legendre_matrices_order_3_written_out() -> None:
    a, b = legendre_matrices(3)
    assert a.dtype == np.float64 and b.dtype == np.float64
    np.testing.assert_array_equal(a, [[-1, -1, -1], [3, -3, -3], [-5, 5, -5]])
    np.testing.assert_array_equal(b, [1, -3, 5])


def test_legendre_matrices_match_the_closed_form() -> None:
    order = 7
    a, b = legendre_matrices(order)
    for i in range(order):
        assert b[i] == (2 * i + 1) * (-1) ** i
        for j in range(order):
            sign = -1 if i < j else (-1) ** (i - j + 1)
            assert a[i, j] == (2 * i + 1) * sign, (i, j)


def _rk4(f: Any, m: np.ndarray, dt: float, n: int) -> np.ndarray:
    h = dt / n
    for _ in range(n):
        k1 = f(m)
        k2 = f(m + h / 2 * k1)
        k3 = f(m + h / 2 * k2)
        k4 = f(m + h * k3)
        m = m + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return m


def test_zero_order_hold_matches_fine_integration() -> None:
    """Abar's column j is where m = e_j goes in dt with u = 0; Bbar is where m = 0 goes with
    u = 1 held, both for theta dm/dt = A m + B u (integrated by RK4 in 2000 substeps)."""
    order, theta, dt = 6, 0.2, 0.013
    a, b = legendre_matrices(order)
    abar, bbar = discretise(a, b, theta, dt)
    for j in range(order):
        col = _rk4(lambda m: a @ m / theta, np.eye(order)[j], dt, 2000)
        np.testing.assert_allclose(abar[:, j], col, atol=1e-12)
    held = _rk4(lambda m: (a @ m + b) / theta, np.zeros(order), dt, 2000)
    np.testing.assert_allclose(bbar, held, atol=1e-12)


def test_zero_order_hold_composes_over_steps() -> None:
    """Two steps of dt are one step of 2 dt: Abar(2dt) = Abar(dt)^2, Bbar(2dt) = (Abar + I) Bbar."""
    a, b = legendre_matrices(5)
    a1, b1 = discretise(a, b, 0.1, 0.004)
    a2, b2 = discretise(a, b, 0.1, 0.008)
    np.testing.assert_allclose(a2, a1 @ a1, atol=1e-13)
    np.testing.assert_allclose(b2, a1 @ b1 + b1, atol=1e-13)
    # theta sets the time scale only: (theta, dt) and (2 theta, 2 dt) are the same step
    np.testing.assert_allclose(discretise(a, b, 0.2, 0.008)[0], a1, atol=1e-13)


@pytest.mark.parametrize("order", [6, 8, 12])
def test_memory_reconstructs_the_delayed_input(order: int) -> None:
    """With u = x, the memory holds the last theta seconds of u:
    u(t - theta') ~ sum_i m_i(t) P_i(2 theta'/theta - 1), P_i Legendre (so at theta' = 0 the
    weights are (-1)^i, at theta' = theta all 1). Input: 3 Hz and 7 Hz sines, amplitude up to
    1.5, theta 0.1 s, dt 1 ms. The memory after step k stands for time (k + 1) dt and saw the
    input held over each step, so the comparison is with u half a step earlier. Tolerance
    0.02 (1.3 % of the amplitude), once the first 0.2 s have passed."""
    theta, dt, steps = 0.1, 1e-3, 600

    def u(t: np.ndarray) -> np.ndarray:
        return np.where(t >= 0, np.sin(2 * np.pi * 3 * t) + 0.5 * np.sin(2 * np.pi * 7 * t + 1),
                        0.0)

    p = LMUParameters(order=order, theta=theta, dt=dt)
    zeros = torch.zeros
    w = LMUWeights(e_x=torch.ones(1, 1, dtype=F64), e_h=zeros(1, 1, dtype=F64),
                   e_m=zeros(1, order, dtype=F64), w_x=zeros(1, 1, dtype=F64),
                   w_h=zeros(1, 1, dtype=F64), w_m=zeros(1, order, dtype=F64))
    state = lmu_initial_state(p, 1, 1, dtype=F64)
    inputs = u(np.arange(steps) * dt)
    memory = []
    for k in range(steps):
        state = lmu_step(t64([[inputs[k]]]), state, w, p)
        memory.append(state.m[0].numpy().copy())
    m = np.array(memory)
    k = np.arange(200, steps)
    for r in (0.0, 0.3, 0.5, 0.8, 1.0):
        decoder = np.array([legendre.legval(2 * r - 1, np.eye(order)[i]) for i in range(order)])
        error = np.abs(m[k] @ decoder - u((k + 1) * dt - r * theta - dt / 2)).max()
        assert error < 0.02, (r, error)


# -- one step by hand ------------------------------------------------------------------------
def test_one_l2mu_step_by_hand() -> None:
    """n_in 1, two memory channels of order 2, one hidden neuron; theta 1 s, dt 0.1 s.

    u first (previous h and m spikes), then m (its previous spikes, u's spikes *now*), then h
    (m's spikes *now*), each U = beta U + I - Theta S[t-1], S = U > Theta.
    """
    p = L2MUParameters(order=2, theta=1.0, dt=0.1, memory_size=2)
    abar, bbar = discretise(*legendre_matrices(2), 1.0, 0.1)
    w = L2MUWeights(
        e_x=t64([[1.0], [0.5]]), e_h=t64([[0.2], [-0.3]]),
        e_m=t64([[0.1, 0.2, 0.3, 0.4], [-0.1, 0.0, 0.5, 0.0]]),
        w_x=t64([[0.7]]), w_h=t64([[0.4]]), w_m=t64([[1.0, 0.5, 0.5, 2.0]]),
        beta_u=t64(0.5), beta_m=t64(0.8), beta_h=t64(0.25),
        threshold_u=t64(1.0), threshold_m=t64(0.1), threshold_h=t64(0.6),
    )
    before = L2MUState(
        v_u=t64([[0.4, 0.9]]), v_m=t64([[0.05, 0.2, -0.1, 0.08]]), v_h=t64([[0.3]]),
        z_u=t64([[1.0, 0.0]]), z_m=t64([[0.0, 1.0, 1.0, 0.0]]), z_h=t64([[1.0]]),
    )
    s = l2mu_step(t64([[1.0]]), before, w, p)
    # I_u = e_x x + e_h z_h + e_m z_m = [1, .5] + [.2, -.3] + [.5, .5] = [1.7, .7]
    # U_u = .5 [.4, .9] + I_u - 1 [1, 0] = [.9, 1.15]  ->  S_u = [0, 1]
    np.testing.assert_allclose(s.v_u.numpy(), [[0.9, 1.15]], atol=1e-12)
    assert s.z_u.tolist() == [[0.0, 1.0]]
    # I_m, per channel: Abar z_m[k] + Bbar S_u[k]; channel 0 sees z_m [0, 1] and S_u 0,
    # channel 1 sees z_m [1, 0] and S_u 1 (this step's spike)
    i_m = np.concatenate([abar[:, 1], abar[:, 0] + bbar])
    v_m = 0.8 * np.array([0.05, 0.2, -0.1, 0.08]) + i_m - 0.1 * np.array([0, 1, 1, 0])
    np.testing.assert_allclose(s.v_m.numpy()[0], v_m, atol=1e-12)
    # = [-0.0416, 0.789, 0.82, 0.064]  ->  S_m = [0, 1, 1, 0]
    assert s.z_m.tolist() == [[0.0, 1.0, 1.0, 0.0]]
    # I_h = .7 x + .4 z_h + W_m S_m = .7 + .4 + (.5 + .5) = 2.1; U_h = .25 .3 + 2.1 - .6 = 1.575
    np.testing.assert_allclose(s.v_h.numpy(), [[1.575]], atol=1e-12)
    assert s.z_h.tolist() == [[1.0]]


def test_lmu_step_by_hand() -> None:
    """u = e_x x + e_h h + e_m m; m' = Abar m + Bbar u; h' = tanh(W_x x + W_h h + W_m m')."""
    p = LMUParameters(order=2, theta=0.5, dt=0.05)
    abar, bbar = p.matrices
    w = LMUWeights(e_x=t64([[2.0]]), e_h=t64([[0.5]]), e_m=t64([[1.0, -1.0]]), w_x=t64([[0.3]]),
                   w_h=t64([[-0.2]]), w_m=t64([[0.4, 0.1]]))
    m0, h0 = np.array([0.2, -0.4]), 0.5
    s = lmu_step(t64([[1.5]]), lmu_initial_state(p, 1, 1, dtype=F64)._replace(
        m=t64([m0.tolist()]), h=t64([[h0]])), w, p)
    u = 2.0 * 1.5 + 0.5 * h0 + (0.2 + 0.4)
    m1 = abar @ m0 + bbar * u
    np.testing.assert_allclose(s.m.numpy()[0], m1, atol=1e-12)
    np.testing.assert_allclose(s.h.item(), math.tanh(0.3 * 1.5 - 0.2 * h0 + 0.4 * m1[0]
                                                     + 0.1 * m1[1]), atol=1e-12)


@pytest.fixture(params=["dense", "per_channel"])
def memory_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fused path's two ways to apply the memory's Abar and Bbar: the dense
    block-diagonal product, or channel by channel (chosen by size; forced here, so that the
    tests' small networks take each)."""
    import spiketune.snn._lmu as lmu

    limit = 0 if request.param == "per_channel" else 10**18
    monkeypatch.setattr(lmu, "_PER_CHANNEL_FROM", limit)
    return str(request.param)


def test_large_memories_take_the_channel_by_channel_product() -> None:
    """The rule that picks the path: batch x n_memory^2 multiply-adds a step."""
    from spiketune.snn._lmu import _PER_CHANNEL_FROM, _Memory

    def path(order: int, memory_size: int, batch: int) -> str:
        a_t, b_t = LMUParameters(order=order, theta=0.1, dt=0.01,
                                 memory_size=memory_size).memory_operators()
        memory = _Memory.of(a_t, b_t, memory_size, batch, 0.5, 0.0)
        if memory is None:
            return "dense"
        abar_t = a_t[:order, :order]
        torch.testing.assert_close(memory.forward, abar_t - 0.5 * torch.eye(order))
        torch.testing.assert_close(memory.backward, abar_t.t())
        torch.testing.assert_close(memory.bbar, b_t[0, :order])
        return "per_channel"

    assert _PER_CHANNEL_FROM == 1_500_000
    assert path(4, 8, 16) == path(7, 32, 16) == "dense"  # 32 and 224 memory neurons
    assert path(16, 32, 16) == path(16, 70, 16) == path(10, 48, 8) == "per_channel"
    assert path(7, 32, 64) == "per_channel"  # a larger batch costs the dense product more


# -- the modules -----------------------------------------------------------------------------
@pytest.mark.parametrize("readout", ["leaky", "spiking"])
def test_module_loop_is_the_step_function_composed(readout: str, memory_path: str) -> None:
    net = small_l2mu(readout=readout)
    x = spike_input()
    with torch.no_grad():
        fused = net.simulate(x)  # heaviside from rest: the fused path
        stepped = net.simulate(x, spike_fn=lambda v, thr: heaviside(v, thr))  # step by step
        state = l2mu_initial_state(net.params, 3, 6, dtype=F64)
        zs = []
        for t in range(x.shape[1]):
            state = l2mu_step(x[:, t], state, net.weights(), net.params)
            zs.append(state)
    by_hand = {k: torch.stack([getattr(s, f"z_{k}") for s in zs], 1) for k in "umh"}
    for k, z in by_hand.items():
        assert torch.equal(fused.spikes[k], z), k
        assert torch.equal(stepped.spikes[k], z), k
        assert z.sum() > 0, f"population {k} never spiked: the test compares nothing"
    assert torch.equal(fused.y, stepped.y)
    assert fused.readout.shape == (3, 45, 3)
    for a, b in zip(fused.final, state, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_leaky_readout_integrates_hidden_spikes() -> None:
    net = small_l2mu(readout="leaky", beta={"out": 0.6})
    x = spike_input(steps=70)  # more than two chunks of the readout's filter
    with torch.no_grad():
        tr = net.simulate(x)
        y, ys = torch.zeros(3, 3, dtype=F64), []
        for t in range(70):
            y = 0.6 * y + tr.z_h[t] @ net.w_out.T + net.b_out
            ys.append(y)
    torch.testing.assert_close(tr.y, torch.stack(ys), rtol=0, atol=1e-12)


def test_spiking_readout_is_a_lif_population() -> None:
    net = small_l2mu(readout="spiking")
    x = spike_input()
    with torch.no_grad():
        tr = net.simulate(x)
        v, z, zs = torch.zeros(3, 3, dtype=F64), torch.zeros(3, 3, dtype=F64), []
        for t in range(45):
            v = 0.85 * v + tr.z_h[t] @ net.w_out.T + net.b_out - 0.1 * z
            z = (v > 0.1).to(F64)
            zs.append(z)
    assert torch.equal(tr.y, torch.stack(zs))
    assert tr.y.sum() > 0 and set(tr.spikes) == {"u", "m", "h", "out"}


def test_lmu_module_is_the_step_function_composed(memory_path: str) -> None:
    net = LMU(4, 3, order=5, theta=0.05, dt=0.005, memory_size=2, hidden_size=6, dtype=F64)
    x = spike_input()
    with torch.no_grad():
        tr = net.simulate(x)
        state = lmu_initial_state(net.params, 3, 6, dtype=F64)
        hs = []
        for t in range(45):
            state = lmu_step(x[:, t], state, net.weights(), net.params)
            hs.append(state.h)
    torch.testing.assert_close(tr.h, torch.stack(hs), rtol=0, atol=1e-12)
    torch.testing.assert_close(tr.y, tr.h @ net.w_out.T + net.b_out, rtol=0, atol=1e-12)
    assert net(x).shape == (3, 45, 3)


def test_synops_count_every_spike_by_its_fan_out() -> None:
    net = small_l2mu(readout="leaky")
    x = spike_input()
    with torch.no_grad():
        tr = net.simulate(x)
    # every matrix is dense here: x -> M + H, u -> order, m -> M + order + H, h -> M + H + out
    m, order, h = 2, 3, 6
    expected = (tr.x.sum() * (m + h) + tr.z_u.sum() * order + tr.z_m.sum() * (m + order + h)
                + tr.z_h.sum() * (m + h + 3)) / 3
    assert net.synops(tr) == pytest.approx(float(expected))


# -- gradients -------------------------------------------------------------------------------
@pytest.mark.parametrize(("readout", "detach_reset"),
                         [("leaky", True), ("leaky", False), ("spiking", True),
                          ("spiking", False)])
def test_fused_bptt_equals_autograd_through_the_steps(
    readout: str, detach_reset: bool, memory_path: str
) -> None:
    """The written-out backward pass against autograd through l2mu_step's dynamics with the
    same surrogate: spikes equal, every gradient (weights, decays, thresholds, input) equal to
    rounding. The loss reads the readout and the u and m spikes, so that gradient flows in
    at every population."""
    net = small_l2mu(readout=readout, detach_reset=detach_reset)
    surrogate = Surrogate("fast_sigmoid", slope=2.0, dampening=0.7)
    x = spike_input(steps=70).requires_grad_(True)  # 70: chunks of 32, the last one short
    weights = torch.randn(3, 70, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    grads = []
    for spike in (surrogate, spike_function(surrogate, 1.0)):
        tr = net.simulate(x, spike_fn=spike)
        loss = (tr.readout * weights).sum() + 0.3 * tr.z_u.sum() - 0.2 * tr.z_m.sum()
        grads.append((tr, torch.autograd.grad(loss, [x, *net.parameters()])))
    (fused, g_fused), (stepped, g_stepped) = grads
    for k in fused.spikes:
        assert torch.equal(fused.spikes[k], stepped.spikes[k]), k
    names = ["x"] + [n for n, _ in net.named_parameters()]
    for name, a, b in zip(names, g_fused, g_stepped, strict=True):
        assert b.abs().max() > 0, f"{name}: no gradient, the comparison is empty"
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()),
                                   msg=name)


class _Simulate(nn.Module):
    """net.simulate(x, spike_fn=...).y as a module, for torch.func.functional_call."""

    def __init__(self, net: nn.Module, **kw: Any) -> None:
        super().__init__()
        self.net, self.kw = net, kw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.simulate(x, **self.kw).y


def _gradcheck(module: nn.Module, x: torch.Tensor) -> None:
    names = [f"net.{n}" for n, _ in module.net.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.net.parameters()]

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("readout", ["leaky", "spiking"])
def test_l2mu_gradients_match_finite_differences(readout: str) -> None:
    """With a smooth spike (a sigmoid in the forward pass too), the dynamics are a
    differentiable function: autograd through them must match finite differences."""
    net = small_l2mu(readout=readout, detach_reset=False, hidden_size=3)
    x = spike_input(batch=2, steps=6).requires_grad_(True)
    _gradcheck(_Simulate(net, spike_fn=smooth_spike), x)


def test_lmu_gradients_match_finite_differences(memory_path: str) -> None:
    net = LMU(3, 2, order=3, theta=0.03, dt=0.01, memory_size=2, hidden_size=3, dtype=F64)
    with torch.no_grad():
        net.e_m.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    x = torch.rand(2, 5, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    _gradcheck(_Simulate(net), x.requires_grad_(True))


def test_forward_trains_through_the_surrogate() -> None:
    """forward() under autograd: binary spikes, and a gradient for every parameter."""
    net = small_l2mu(readout="spiking").float()
    x = spike_input().float()
    y = net(x)
    assert set(y.detach().unique().tolist()) <= {0.0, 1.0}
    y.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    with torch.no_grad():
        assert torch.equal(net(x), y.detach())


@pytest.mark.parametrize("make", [
    lambda: LMU(3, 2, order=2, theta=0.1, dt=0.01, hidden_size=4),
    lambda: L2MU(3, 2, order=2, theta=0.1, dt=0.01, hidden_size=4),
    lambda: L2MU(3, 2, order=2, theta=0.1, dt=0.01, hidden_size=4, readout="spiking"),
])
def test_an_empty_batch_gives_empty_results_and_no_steps_a_data_error(make: Any) -> None:
    net = make()
    assert net.simulate_for_bptt(torch.zeros(0, 5, 3)).readout.shape == (0, 5, 2)
    with torch.no_grad():
        assert net(torch.zeros(0, 5, 3)).shape == (0, 5, 2)
    with pytest.raises(DataError, match=r"\(2, 0, 3\)"):
        net.simulate(torch.zeros(2, 0, 3))


# -- configuration ---------------------------------------------------------------------------
def _fields(excinfo: pytest.ExceptionInfo[ConfigError]) -> set[str]:
    return {p.field for p in excinfo.value.problems}


@pytest.mark.parametrize(("kw", "field"), [
    ({"order": 0}, "order"), ({"order": 2.5}, "order"), ({"theta": 0.0}, "theta"),
    ({"theta": -1.0}, "theta"), ({"dt": 0.0}, "dt"), ({"dt": float("nan")}, "dt"),
    ({"memory_size": 0}, "memory_size"),
])
def test_parameter_errors_name_the_field(kw: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {"order": 4, "theta": 0.1, "dt": 0.001}
    for cls in (LMUParameters, L2MUParameters):
        with pytest.raises(ConfigError) as excinfo:
            cls(**{**base, **kw})
        assert _fields(excinfo) == {field}
        assert repr(kw[field]) in str(excinfo.value)


@pytest.mark.parametrize("cls", [LMU, L2MU])
def test_a_seed_that_is_no_generator_seed_is_refused_by_name(cls: Any) -> None:
    with pytest.raises(ConfigError, match=r"seed: an integer.*\(got 'a'\)"):
        cls(2, 2, order=3, theta=0.1, dt=0.001, seed="a")


@pytest.mark.parametrize("cls", [LMU, L2MU])
def test_readout_bias_must_be_a_bool(cls: Any) -> None:
    with pytest.raises(ConfigError) as excinfo:
        cls(2, 2, order=3, theta=0.1, dt=0.001, readout_bias="no")
    assert _fields(excinfo) == {"readout_bias"}


@pytest.mark.parametrize("threshold", [math.inf, {"h": math.inf}, math.nan])
def test_an_infinite_threshold_is_refused_as_snn_config_refuses_it(threshold: Any) -> None:
    with pytest.raises(ConfigError, match=r"threshold\.h: a finite number"):
        L2MU(2, 2, order=3, theta=0.1, dt=0.001, threshold=threshold)


@pytest.mark.parametrize("cls", [LMU, L2MU])
def test_numpy_sizes_are_taken_as_snn_config_takes_them(cls: Any) -> None:
    i = np.int64
    net = cls(i(3), i(2), order=i(2), theta=np.float32(0.125), dt=0.01, memory_size=i(2),
              hidden_size=i(4))
    plain = cls(3, 2, order=2, theta=0.125, dt=0.01, memory_size=2, hidden_size=4)
    assert net.to_config() == plain.to_config()
    assert all(type(v) in (int, float, bool, str, dict, type(None))
               for v in net.to_config().values())
    assert torch.equal(net(torch.ones(1, 5, 3)), plain(torch.ones(1, 5, 3)))


def test_module_errors_are_collected_and_name_the_field() -> None:
    with pytest.raises(ConfigError) as excinfo:
        L2MU(0, 2, order=0, theta=0.1, dt=0.001, beta={"u": 1.5, "x": 0.5},
             threshold={"h": 0.0}, readout="membrane")
    assert _fields(excinfo) == {"n_in", "order", "beta.u", "beta.x", "threshold.h", "readout"}
    with pytest.raises(ConfigError) as excinfo:
        LMU(2, 2, order=3, theta=0.1, dt=-0.001, hidden_size=0)
    assert _fields(excinfo) == {"dt", "hidden_size"}
    with pytest.raises(ConfigError) as excinfo:
        legendre_matrices(0)
    assert _fields(excinfo) == {"order"}
    with pytest.raises(ConfigError) as excinfo:
        discretise(*legendre_matrices(2), theta=0.0, dt=0.001)
    assert _fields(excinfo) == {"theta"}
    net = L2MU(2, 2, order=3, theta=0.1, dt=0.001)
    with pytest.raises(ConfigError) as excinfo:
        net(torch.zeros(4, 10, 3))
    assert _fields(excinfo) == {"input"}
