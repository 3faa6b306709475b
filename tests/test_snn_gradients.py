"""e-prop's gradients checked against an independent autograd reference, and its two modes
against each other.

The reference below is a deliberately plain simulation of DESIGN.md section 3, written from the
equations and not from spiketune's code, differentiated by autograd with e-prop's
pseudo-derivative. With no recurrent weights and the reset's gradient stopped, e-prop's
eligibility traces miss nothing, so its gradients must equal the reference's exactly (up to
rounding). Float64 keeps rounding far below the 1e-5 tolerance.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from spiketune.errors import ConfigError
from spiketune.snn import BPTT, EProp, LearningRule, RecurrentSNN, SNNConfig

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")

B, T, N_IN, N_REC, N_OUT = 5, 40, 4, 12, 3


class _TriangleSpike(torch.autograd.Function):
    """H(u) forward; (gamma k / v_th) max(0, 1 - k |u| / v_th) backward."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, v_th: float, gamma: float, k: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.c = (v_th, gamma, k)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (u,) = ctx.saved_tensors
        v_th, gamma, k = ctx.c
        psi = gamma * k / v_th * torch.clamp(1 - k * u.abs() / v_th, min=0)
        return grad * psi, None, None, None


def reference_gradients(
    net: RecurrentSNN, x: torch.Tensor, labels: torch.Tensor, *, detach_reset: bool
) -> dict[str, torch.Tensor]:
    """Autograd through a direct transcription of the dynamics, one step at a time."""
    c = net.config
    alpha, kappa, rho = c.decay_mem, c.decay_out, c.decay_adapt
    params = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    w_in, w_out = params["w_in"], params["w_out"]
    w_rec = params.get("w_rec")
    b_out = params.get("b_out")
    eye = torch.eye(c.n_rec, dtype=x.dtype, device=x.device)
    batch, steps = x.shape[0], x.shape[1]
    v = torch.zeros(batch, c.n_rec, dtype=x.dtype, device=x.device)
    z = torch.zeros_like(v)
    a = torch.zeros_like(v)
    blocked = torch.zeros_like(v)
    y = torch.zeros(batch, c.n_out, dtype=x.dtype, device=x.device)
    ys, zs = [], []
    for t in range(steps):
        current = x[:, t] @ w_in.T
        if w_rec is not None:
            current = current + z @ (w_rec * (1 - eye)).T
        z_reset = z.detach() if detach_reset else z
        if c.neuron == "alif":
            a = rho * a + z
        if c.reset == "subtract":
            v = alpha * v + current - c.v_th * z_reset
        else:
            v = alpha * v * (1 - z_reset) + current
        threshold = c.v_th + (c.beta * a if c.neuron == "alif" else 0)
        z = _TriangleSpike.apply(v - threshold, c.v_th, c.surrogate_dampening, c.surrogate_slope)
        if c.refractory_steps:
            z = z * (blocked == 0)
            blocked = torch.clamp(blocked - 1, min=0) + c.refractory_steps * z.detach()
        y = kappa * y + z @ w_out.T + (b_out if b_out is not None else 0)
        ys.append(y)
        zs.append(z)
    first = 0 if c.loss_steps is None else steps - c.loss_steps
    window = torch.stack(ys[first:], 1)  # (B, W, K)
    if c.loss == "ce_per_step":
        loss = F.cross_entropy(
            window.reshape(-1, c.n_out), labels.repeat_interleave(window.shape[1])
        )
    elif c.loss == "ce_max":
        loss = F.cross_entropy(window.max(1).values, labels)
    else:
        loss = F.cross_entropy(window.sum(1), labels)
    if c.reg_strength:
        rate = torch.stack(zs).mean((0, 1))
        loss = loss + c.reg_strength * ((rate - c.reg_target_hz * c.dt) ** 2).sum()
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names])
    return dict(zip(names, grads, strict=True))


def rule_gradients(
    rule: LearningRule, net: RecurrentSNN, x: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    for p in net.parameters():
        p.grad = None
    rule.backward(net, x, labels)
    return {n: p.grad.clone() for n, p in net.named_parameters()}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def make(
    device: str, seed: int = 0, **overrides: Any
) -> tuple[RecurrentSNN, torch.Tensor, torch.Tensor]:
    params = dict(
        n_in=N_IN, n_rec=N_REC, n_out=N_OUT, gain_in=3.0, gain_rec=1.0, tau_mem=0.01,
        tau_adapt=0.05, beta=0.5, loss_steps=15,
    )
    params.update(overrides)
    net = RecurrentSNN(SNNConfig(**params), seed=seed, device=device, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(B, T, N_IN, generator=g) < 0.3).double().to(device)
    labels = torch.randint(0, N_OUT, (B,), generator=g).to(device)
    return net, x, labels


VARIANTS = list(
    itertools.product(["lif", "alif"], ["subtract", "zero"], [0, 2], ["ce_per_step", "ce_summed"])
)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("neuron", "reset", "refractory", "loss"), VARIANTS)
def test_eprop_equals_bptt_without_recurrence(
    device: str, neuron: str, reset: str, refractory: int, loss: str
) -> None:
    net, x, labels = make(
        device, neuron=neuron, reset=reset, refractory_steps=refractory, loss=loss,
        reg_strength=0.3, reg_target_hz=20.0,
    )
    with torch.no_grad():
        net.w_rec.zero_()
    ref = reference_gradients(net, x, labels, detach_reset=True)
    for mode in ("fused", "online"):
        got = rule_gradients(EProp(mode), net, x, labels)
        for name in ("w_in", "w_out", "b_out", "w_rec"):
            assert ref[name].norm() > 0, name  # a zero gradient would make the check empty
            assert rel_err(got[name], ref[name]) < TOL, (mode, name)
    # The spikes must actually happen and the threshold machinery matter: the test would be
    # vacuous if the network were silent or saturated.
    with torch.no_grad():
        rate = net.simulate(x).z.mean()
    assert 0.02 < float(rate) < 0.6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("neuron", "reset", "refractory", "loss"), VARIANTS)
def test_fused_equals_online_with_recurrence(
    device: str, neuron: str, reset: str, refractory: int, loss: str
) -> None:
    net, x, labels = make(
        device, neuron=neuron, reset=reset, refractory_steps=refractory, loss=loss,
        reg_strength=0.2 if refractory else 0.0, reg_target_hz=15.0,
    )
    fused = rule_gradients(EProp("fused"), net, x, labels)
    online = rule_gradients(EProp("online"), net, x, labels)
    for name in fused:
        assert fused[name].norm() > 0, name
        assert rel_err(online[name], fused[name]) < TOL, name


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_fused_equals_online_float32_random_feedback(neuron: str) -> None:
    net, x, labels = make("cpu", neuron=neuron, feedback="random", reg_strength=0.1)
    net = net.float()
    x = x.float()
    fused = rule_gradients(EProp("fused"), net, x, labels)
    online = rule_gradients(EProp("online"), net, x, labels)
    for name in fused:
        assert rel_err(online[name], fused[name]) < TOL, name


def test_bptt_rule_equals_reference_with_recurrence() -> None:
    for neuron, detach in [("lif", False), ("alif", False), ("alif", True)]:
        net, x, labels = make(
            "cpu", neuron=neuron, rule="bptt", detach_reset=detach, reg_strength=0.1,
            refractory_steps=1,
        )
        ref = reference_gradients(net, x, labels, detach_reset=detach)
        got = rule_gradients(BPTT(), net, x, labels)
        for name in ref:
            assert rel_err(got[name], ref[name]) < TOL, (neuron, name)


def test_eprop_is_an_approximation_once_recurrence_matters() -> None:
    """With recurrent weights e-prop drops the indirect paths: its input gradient must differ
    from the full BPTT gradient (while the readout gradient, which is local, still agrees)."""
    net, x, labels = make("cpu", gain_rec=2.0)
    ref = reference_gradients(net, x, labels, detach_reset=True)
    got = rule_gradients(EProp("fused"), net, x, labels)
    assert rel_err(got["w_in"], ref["w_in"]) > 1e-3
    assert rel_err(got["w_out"], ref["w_out"]) < TOL


def test_gradients_depend_on_what_they_should() -> None:
    """Perturbing the rule changes the gradient: the checks above cannot pass on a constant."""
    net, x, labels = make("cpu")
    base = rule_gradients(EProp("fused"), net, x, labels)
    sharper = make("cpu", surrogate_slope=2.0)[0]
    got = rule_gradients(EProp("fused"), sharper, x, labels)
    assert rel_err(got["w_in"], base["w_in"]) > 1e-3
    random_fb = make("cpu", feedback="random")[0]
    got = rule_gradients(EProp("fused"), random_fb, x, labels)
    assert rel_err(got["w_in"], base["w_in"]) > 1e-2
    assert rel_err(got["w_out"], base["w_out"]) < TOL  # the readout gradient needs no feedback
    regularised = make("cpu", reg_strength=1.0, reg_target_hz=100.0)[0]
    got = rule_gradients(EProp("fused"), regularised, x, labels)
    assert rel_err(got["w_in"], base["w_in"]) > 1e-3


def test_gradients_accumulate_like_autograd() -> None:
    net, x, labels = make("cpu")
    once = rule_gradients(EProp("fused"), net, x, labels)
    EProp("fused").backward(net, x, labels)  # .grad already holds one batch's gradient
    for name, p in net.named_parameters():
        assert torch.allclose(p.grad, 2 * once[name])


def test_no_self_connections_get_gradient() -> None:
    net, x, labels = make("cpu")
    for rule in (EProp("fused"), EProp("online"), BPTT()):
        g = rule_gradients(rule, net, x, labels)["w_rec"]
        assert torch.all(torch.diagonal(g) == 0)


def test_every_mode_reports_the_same_loss_scores_and_spike_counts() -> None:
    """The Trainer's figures come from StepResult: all rules must agree with a plain forward."""
    net, x, labels = make("cpu", neuron="alif", refractory_steps=1)
    with torch.no_grad():
        tr = net.simulate(x)
    spikes = tr.z.sum((0, 1))
    events = (x != 0).sum((0, 1)).double()
    results = [r.backward(net, x, labels) for r in (EProp("fused"), EProp("online"), BPTT())]
    for res in results:
        assert torch.allclose(res.counts.spikes, spikes)
        assert torch.equal(res.counts.input_events, events)
        assert res.counts.n_samples == B and res.counts.n_steps == T
        assert torch.allclose(res.scores, tr.readout[:, -15:].sum(1))
        assert float(res.loss) == pytest.approx(float(results[0].loss), rel=1e-9)
    no_rec = make("cpu", recurrent=False)[0]
    res = EProp("fused").backward(no_rec, x, labels)
    with torch.no_grad():
        assert torch.allclose(res.counts.spikes, no_rec.simulate(x).z.sum((0, 1)))


BPTT_VARIANTS = [
    (neuron, reset, refractory, detach, recurrent)
    for neuron, reset, refractory, detach, recurrent in itertools.product(
        ["lif", "alif"], ["subtract", "zero", "subtract_at_spike"], [0, 2], [False, True],
        [True, False],
    )
    if not (neuron == "alif" and reset == "subtract_at_spike")  # the chip's neuron is a LIF
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("neuron", "reset", "refractory", "detach", "recurrent"), BPTT_VARIANTS)
def test_fused_bptt_equals_autograd_and_the_reference(
    device: str, neuron: str, reset: str, refractory: int, detach: bool, recurrent: bool
) -> None:
    """BPTT's written-out backward pass against autograd through the same network, and (for
    the resets the reference knows) against the independent transcription, float64."""
    net, x, labels = make(
        device, neuron=neuron, reset=reset, refractory_steps=refractory, rule="bptt",
        detach_reset=detach, recurrent=recurrent, reg_strength=0.2, reg_target_hz=15.0,
        gain_rec=1.5, loss="ce_summed" if refractory else "ce_per_step",
    )
    fused = rule_gradients(BPTT("fused"), net, x, labels)
    auto = rule_gradients(BPTT("autograd"), net, x, labels)
    assert set(fused) == set(auto)
    for name in auto:
        assert auto[name].norm() > 0, name
        assert rel_err(fused[name], auto[name]) < 1e-10, name
    if reset != "subtract_at_spike":
        ref = reference_gradients(net, x, labels, detach_reset=detach)
        for name in ref:
            assert rel_err(fused[name], ref[name]) < 1e-10, name


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan"])
def test_fused_bptt_follows_the_surrogate(surrogate: str) -> None:
    net, x, labels = make("cpu", neuron="alif", rule="bptt", surrogate=surrogate,
                          surrogate_slope=1.7, surrogate_dampening=0.6)
    fused = rule_gradients(BPTT(), net, x, labels)
    auto = rule_gradients(BPTT("autograd"), net, x, labels)
    triangle = rule_gradients(BPTT(), make("cpu", neuron="alif", rule="bptt")[0], x, labels)
    for name in auto:
        assert rel_err(fused[name], auto[name]) < 1e-10, name
    assert rel_err(fused["w_in"], triangle["w_in"]) > 1e-2  # the surrogate is not ignored


def test_fused_bptt_is_not_eprop_once_recurrence_matters() -> None:
    """The recurrent and reset paths are what separates the two: dropping them (e-prop)
    changes the input gradient; the fused BPTT keeps them and equals the reference."""
    net, x, labels = make("cpu", gain_rec=2.0, rule="bptt")
    ref = reference_gradients(net, x, labels, detach_reset=False)
    fused = rule_gradients(BPTT(), net, x, labels)
    eprop = rule_gradients(EProp("fused"), net, x, labels)
    assert rel_err(fused["w_in"], ref["w_in"]) < 1e-10
    assert rel_err(eprop["w_in"], ref["w_in"]) > 1e-3


@pytest.mark.parametrize("neuron", ["lif", "alif"])
@pytest.mark.parametrize("loss_steps", [None, 6])
def test_max_loss_gradients_of_every_rule(neuron: str, loss_steps: int | None) -> None:
    """``loss="ce_max"``: fused BPTT and autograd BPTT equal the independent transcription;
    fused e-prop equals it where e-prop is exact (no recurrence), float64."""
    net, x, labels = make("cpu", neuron=neuron, rule="bptt", loss="ce_max",
                          loss_steps=loss_steps, reg_strength=0.2, reg_target_hz=15.0)
    ref = reference_gradients(net, x, labels, detach_reset=False)
    for rule in (BPTT("fused"), BPTT("autograd")):
        got = rule_gradients(rule, net, x, labels)
        for name in ref:
            assert ref[name].norm() > 0, name
            assert rel_err(got[name], ref[name]) < 1e-10, (rule, name)
    with torch.no_grad():
        net.w_rec.zero_()
    ref = reference_gradients(net, x, labels, detach_reset=True)
    got = rule_gradients(EProp("fused"), net, x, labels)
    for name in ("w_in", "w_out", "b_out"):
        assert rel_err(got[name], ref[name]) < TOL, name


def test_max_loss_is_refused_to_online_eprop() -> None:
    with pytest.raises(ConfigError, match=r"loss.*ce_max.*eprop_mode"):
        SNNConfig(n_in=2, n_rec=4, n_out=2, loss="ce_max", eprop_mode="online")
    SNNConfig(n_in=2, n_rec=4, n_out=2, loss="ce_max")  # fused e-prop: fine


def test_bptt_falls_back_to_autograd_where_the_fused_pass_does_not_reach() -> None:
    """A CubaLIF layer and several spikes per step are differentiated by autograd."""
    from spiketune.snn._bptt import fused_supported

    cuba, x, labels = make("cpu", neuron="cuba_lif", tau_syn=0.02, rule="bptt")
    chip = make("cpu", reset="subtract_at_spike", max_spikes=4, rule="bptt")[0]
    assert fused_supported(make("cpu")[0])
    for net in (cuba, chip):
        assert not fused_supported(net)
        fused = rule_gradients(BPTT(), net, x, labels)
        auto = rule_gradients(BPTT("autograd"), net, x, labels)
        for name in auto:
            assert torch.equal(fused[name], auto[name]), name


def test_bptt_mode_is_checked() -> None:
    from spiketune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"bptt_mode.*fused, autograd"):
        BPTT("online")
