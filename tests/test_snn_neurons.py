"""Neuron dynamics against traces computed by hand."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch

from spiketune.errors import ConfigError
from spiketune.snn import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    Surrogate,
    alif_step,
    heaviside,
    initial_state,
    lif_step,
    neuron_step,
    spike_function,
)


def run(p: LIFParameters, currents: list[float], **kw: Any) -> tuple[list[int], list[Any]]:
    """Drive one neuron with a known current; return its spikes and states per step."""
    state = initial_state(p, 1, 1, dtype=torch.float64)
    spikes, states = [], []
    for c in currents:
        z, state = neuron_step(torch.tensor([[c]], dtype=torch.float64), state, p, **kw)
        spikes.append(int(z.item()))
        states.append(state)
    return spikes, states


def steps_of(spikes: list[int]) -> list[int]:
    return [t for t, s in enumerate(spikes) if s]


def test_lif_spikes_at_the_expected_steps_reset_by_subtraction() -> None:
    # v: 0.6, 0.9, 1.05 (spike), 0.125, 0.6625, 0.93125, 1.065625 (spike), ...
    p = LIFParameters(alpha=0.5, v_th=1.0, reset="subtract")
    spikes, states = run(p, [0.6] * 12)
    assert steps_of(spikes) == [2, 6, 10]
    assert [round(s.v.item(), 6) for s in states[:7]] == [
        0.6, 0.9, 1.05, 0.125, 0.6625, 0.93125, 1.065625,
    ]


def test_lif_reset_to_zero_differs_from_subtraction() -> None:
    # after the spike at step 2 the membrane restarts from 0: 0.6, 0.9, 1.05 (spike), ...
    p = LIFParameters(alpha=0.5, v_th=1.0, reset="zero")
    spikes, states = run(p, [0.6] * 12)
    assert steps_of(spikes) == [2, 5, 8, 11]
    assert states[3].v.item() == pytest.approx(0.6)


def test_refractory_period_blocks_spikes_for_n_steps() -> None:
    # A current of 2 would make the neuron fire every step; with 2 refractory steps it fires
    # every third step, while the membrane keeps integrating (v = 2, 2, 3, 3.5, 2.75, ...).
    free, _ = run(LIFParameters(alpha=0.5, reset="subtract"), [2.0] * 9)
    assert steps_of(free) == list(range(9))
    p = LIFParameters(alpha=0.5, reset="subtract", refractory_steps=2)
    spikes, states = run(p, [2.0] * 9)
    assert steps_of(spikes) == [0, 3, 6]
    assert [s.v.item() for s in states[:5]] == [2.0, 2.0, 3.0, 3.5, 2.75]
    assert [int(s.refrac.item()) for s in states[:4]] == [2, 1, 0, 2]


def test_alif_threshold_grows_with_spikes_and_decays() -> None:
    # a[t] = rho a[t-1] + z[t-1]; threshold 1 + a (beta 1). With current 2:
    # t0: v 2 > 1 spike; t1: a 1, v 2, not > 2; t2: a .5, v 3 > 1.5 spike;
    # t3: a 1.25, v 2.5 > 2.25 spike; t4: a 1.625, v 2.25 < 2.625.
    p = ALIFParameters(alpha=0.5, rho=0.5, beta=1.0, v_th=1.0)
    spikes, states = run(p, [2.0] * 5 + [0.0] * 4)
    assert spikes[:5] == [1, 0, 1, 1, 0]
    assert [s.a.item() for s in states[:5]] == [0.0, 1.0, 0.5, 1.25, 1.625]
    # no spikes any more: the adaptation decays by rho each step
    tail = [s.a.item() for s in states[5:]]
    assert all(b == pytest.approx(a * 0.5) for a, b in itertools.pairwise(tail))
    # with beta = 0 the same neuron is a LIF neuron
    lif_spikes, _ = run(LIFParameters(alpha=0.5, v_th=1.0), [2.0] * 5)
    alif0, _ = run(ALIFParameters(alpha=0.5, rho=0.5, beta=0.0), [2.0] * 5)
    assert lif_spikes == alif0 == [1] * 5


def test_time_constants_are_seconds() -> None:
    p = LIFParameters.from_time_constants(tau_mem=20e-3, dt=1e-3)
    assert p.alpha == pytest.approx(math.exp(-1 / 20))
    q = ALIFParameters.from_time_constants(tau_mem=0.02, tau_adapt=0.2, dt=5e-3, beta=0.7)
    assert q.rho == pytest.approx(math.exp(-5e-3 / 0.2))
    assert q.beta == 0.7


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 1.0}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": 0.5, "v_th": 0.0}, "v_th"),
        ({"alpha": 0.5, "reset": "bounce"}, "reset"),
        ({"alpha": 0.5, "refractory_steps": -1}, "refractory_steps"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        LIFParameters(**kwargs)
    assert [p.field for p in info.value.problems] == [field]


def test_bad_time_constant_is_refused() -> None:
    with pytest.raises(ConfigError, match="tau_mem"):
        LIFParameters.from_time_constants(tau_mem=0.0, dt=1e-3)
    with pytest.raises(ConfigError, match="rho"):
        ALIFParameters(alpha=0.5, rho=1.5)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("refractory", [0, 3])
def test_writing_into_buffers_gives_the_same_states(reset: str, refractory: int) -> None:
    p = ALIFParameters(alpha=0.8, rho=0.9, beta=0.3, reset=reset, refractory_steps=refractory)
    g = torch.Generator().manual_seed(0)
    currents = torch.rand(20, 4, 6, generator=g) * 0.8
    s1 = initial_state(p, 4, 6)
    s2 = initial_state(p, 4, 6)
    for i in currents:
        out = ALIFState(*(torch.empty(4, 6) if f is not None else None for f in s2))
        _, s1 = alif_step(i, s1, p)
        _, s2 = alif_step(i, s2, p, out=out)
        assert s2.v.data_ptr() == out.v.data_ptr()
        for a, b in zip(s1, s2, strict=True):
            assert (a is None and b is None) or torch.equal(a, b)


def test_surrogate_spike_is_heaviside_forward_and_psi_backward() -> None:
    p = LIFParameters(alpha=0.5, v_th=1.0)
    sg = Surrogate("triangle", slope=1.0, dampening=0.3)
    v0 = torch.tensor([[0.2, 0.9, 1.5]], requires_grad=True)
    state = LIFState(torch.zeros(1, 3), torch.zeros(1, 3), None)
    z, new = lif_step(v0, state, p, spike_function(sg, 1.0))
    assert z.tolist() == heaviside(new.v.detach(), 1.0).tolist() == [[0.0, 0.0, 1.0]]
    z.sum().backward()
    # psi = 0.3 max(0, 1 - |v - 1|): 0.3 * (0.2, 0.9, 0.5)
    assert v0.grad[0].tolist() == pytest.approx([0.06, 0.27, 0.15])


# ------------------------------------------------------------ Xylo's neuron (reset at the spike)
def test_reset_at_the_spike_subtracts_before_the_next_leak() -> None:
    """v[t] = alpha (v[t-1] - v_th z[t-1]) + i[t]; "subtract" lowers it after the leak."""
    at_spike = LIFParameters(alpha=0.5, v_th=1.0, reset="subtract_at_spike")
    after_leak = LIFParameters(alpha=0.5, v_th=1.0, reset="subtract")
    currents = [1.5, 0.0, 0.0]
    _, states = run(at_spike, currents)
    assert [float(s.v) for s in states] == [1.5, 0.25, 0.125]  # 0.5 * (1.5 - 1)
    _, states = run(after_leak, currents)
    assert [float(s.v) for s in states] == [1.5, -0.25, -0.125]  # 0.5 * 1.5 - 1


def test_several_spikes_per_step_count_floor_of_v_over_threshold() -> None:
    """At or above v_th (as Xylo and Rockpool compare), floor(v / v_th) spikes, capped by
    max_spikes; the reset removes v_th per spike."""
    p = LIFParameters(alpha=0.0, v_th=0.5, reset="subtract_at_spike", max_spikes=None)
    spikes, _ = run(p, [0.5, 0.49, 1.74, 40.0])
    assert spikes == [1, 0, 3, 80]
    capped = LIFParameters(alpha=0.0, v_th=0.5, reset="subtract_at_spike", max_spikes=31)
    assert run(capped, [40.0])[0] == [31]
    binary = LIFParameters(alpha=0.0, v_th=0.5)
    assert run(binary, [0.5, 40.0])[0] == [0, 1]  # strictly above, one spike


def test_several_spikes_per_step_are_the_same_into_buffers_and_under_autograd() -> None:
    p = LIFParameters(alpha=0.75, v_th=0.3, reset="subtract_at_spike", max_spikes=None)
    g = torch.Generator().manual_seed(0)
    currents = torch.rand(20, 3, 4, generator=g, dtype=torch.float64) * 1.5
    out = LIFState(*(torch.empty(20, 3, 4, dtype=torch.float64) for _ in range(2)), None)
    plain = initial_state(p, 3, 4, dtype=torch.float64)
    buffered = plain
    spike = spike_function(Surrogate(), p.v_th)
    graded = initial_state(p, 3, 4, dtype=torch.float64)
    w = torch.ones(4, dtype=torch.float64, requires_grad=True)
    for t in range(20):
        _, plain = neuron_step(currents[t], plain, p)
        buffers = LIFState(out.z[t], out.v[t], None)
        _, buffered = neuron_step(currents[t], buffered, p, out=buffers)
        _, graded = neuron_step(currents[t] * w, graded, p, spike)
        assert torch.equal(plain.z, buffered.z) and torch.equal(plain.z, graded.z.detach())
    assert float(out.z.max()) >= 2
    graded.z.sum().backward()
    assert w.grad is not None and bool(torch.isfinite(w.grad).all())
    assert float(w.grad.abs().sum()) > 0


def test_the_gradient_of_several_spikes_is_a_bump_at_each_threshold() -> None:
    """d count / dv: the surrogate of the nearest threshold multiple (1, 2, ... v_th)."""
    p = LIFParameters(alpha=0.0, v_th=1.0, reset="subtract_at_spike", max_spikes=None)
    spike = spike_function(Surrogate("triangle", 1.0, 0.3), p.v_th)
    v = torch.tensor([[1.0, 2.0, 3.0, 2.5]], dtype=torch.float64, requires_grad=True)
    state = initial_state(p, 1, 4, dtype=torch.float64)
    z, _ = neuron_step(v, state, p, spike)
    assert z.detach().tolist() == [[1.0, 2.0, 3.0, 2.0]]
    z.sum().backward()
    assert v.grad is not None
    # at each threshold the triangle's peak 0.3 / v_th; half-way between two, half of it
    torch.testing.assert_close(v.grad, torch.tensor([[0.3, 0.3, 0.3, 0.15]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"rule": "eprop", "reset": "subtract_at_spike"}, "reset"),
        ({"rule": "eprop", "max_spikes": None}, "max_spikes"),
        ({"rule": "bptt", "neuron": "alif", "max_spikes": 4}, "max_spikes"),
        ({"rule": "bptt", "refractory_steps": 2, "max_spikes": None}, "max_spikes"),
        ({"rule": "bptt", "max_spikes": 0}, "max_spikes"),
    ],
)
def test_the_chip_neuron_config_is_checked(kw: dict[str, Any], field: str) -> None:
    from spiketune.snn import SNNConfig

    with pytest.raises(ConfigError) as err:
        SNNConfig(n_in=2, n_rec=3, n_out=2, **kw)
    assert field in str(err.value)
    with pytest.raises(ConfigError, match="max_spikes"):
        LIFParameters(alpha=0.5, max_spikes=0)
