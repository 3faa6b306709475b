"""e-prop (Bellec et al., Nature Communications 11:3625, 2020), exact and fast.

Notation (DESIGN.md section 3): ``psi`` pseudo-derivative, ``B`` feedback (n_rec, n_out),
``err[t] = dE/dy[t]`` the readout error, ``L[t] = B err[t]`` the learning signal. e-prop's
gradient is ``dE/dW_ji = sum_t L_j[t] ebar_ji[t]`` with the eligibility ``e`` filtered by kappa.
Eligibilities only follow each neuron's own dynamics (the reset's gradient is stopped and
recurrent paths are dropped), so:

**fused** (whole sequence): move the kappa filter onto the signal, ``Ltilde[t] = L[t] + kappa
Ltilde[t+1]``, and run each neuron's eligibility recursion backwards as an adjoint ``dv``:

    LIF:   dv[t] = psi[t] g[t] + d[t+1] dv[t+1]           with g = Ltilde + regulariser
    ALIF:  dz[t] = g[t] - beta h[t+1];  dv[t] = psi[t] dz[t] + d[t+1] dv[t+1];
           h[t]  = psi[t] dz[t] + rho h[t+1]
                 (h = -dE/da / beta, from a[t+1] = rho a[t] + z[t])

with ``d[t+1] = alpha`` (reset by subtraction) or ``alpha (1 - z[t])`` (reset to zero). Then
``dE/dW_in = sum_{b,t} dv[t]^T x[t]`` and ``dE/dW_rec = sum_{b,t} dv[t]^T z[t-1]``: one matrix
product each over batch x time. Nothing of size B x N x N_pre x T exists. Summing ``dv`` against
the presynaptic input equals summing ``Ltilde psi`` against the filtered trace ``zbar``: it is the
same double sum in the other order.

**online** (forward in time): the eligibility vectors themselves, per synapse and sample
(N, B, N_pre; memory independent of T), updated each step, and the gradient accumulated as
``L[t] ebar[t]``. Same numbers as fused up to rounding.

The readout gradient is exact in both: ``dE/dW_out = sum_t err[t] zbar_kappa[t]^T``. The rate
regulariser ``c sum_j (r_j - r*)^2`` adds ``2 c (r_j - r*) / (B T)`` to the learning signal
(it acts on z directly, so it is not filtered by kappa).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.snn._filters import leaky_filter, leaky_filter_loop
from spiketune.snn._loss import ReadoutLoss, rate_regularisation, window_start
from spiketune.snn._network import RecurrentSNN, Trajectory
from spiketune.snn._neurons import ALIFParameters, threshold_distance
from spiketune.snn._rule import LearningRule, StepResult, add_grad
from spiketune.snn._stats import SpikeCounts
from spiketune.snn._workspace import Workspace

MODES = ("fused", "online")
_ONLINE_CHUNK = 32  # steps of input currents computed at once by online e-prop


class EProp(LearningRule):
    """e-prop; ``mode`` ``"fused"`` or ``"online"`` (None: the network config's ``eprop_mode``)."""

    name = "eprop"

    def __init__(self, mode: str | None = None) -> None:
        if mode is not None and mode not in MODES:
            raise ConfigError(Problem("eprop_mode", mode, "one of " + ", ".join(MODES)))
        self.mode = mode
        self._workspace = Workspace()  # scratch reused across batches, never read across them

    def backward(self, net: RecurrentSNN, x: Tensor, labels: Tensor) -> StepResult:
        mode = self.mode or net.config.eprop_mode
        if mode == "online":
            return _online(net, x, labels, self.loss_of(net))
        return _fused(net, x, labels, self.loss_of(net), self._workspace)


# --------------------------------------------------------------------------------------------
# fused


def _fused(
    net: RecurrentSNN, x: Tensor, labels: Tensor, loss_fn: ReadoutLoss, ws: Workspace
) -> StepResult:
    cfg, p = net.config, net.neuron_params
    n_rec, n_out = cfg.n_rec, cfg.n_out
    with torch.no_grad():
        tr = net.simulate(x, workspace=ws)
        loss, err = loss_fn.error(tr.y, labels)  # err = dE/dy, (T, B, n_out)
        n_steps, batch, _ = err.shape
        # dE/d(w_out z[t] + b), class-major (n_out, T*B): skinny products run faster this way.
        err_f = ws.get("err_f", (n_out, n_steps * batch), err)
        err_f.copy_(_flat(leaky_filter(err, cfg.decay_out, reverse=True)).t())
        if net.b_out is not None:
            add_grad(net.b_out, err_f.sum(1))

        # One buffer L (T + 1, B, n_rec + n_out + 1) holds, in row t, the adjoint dv[t], the
        # readout error of step t - 1 and a one. Its product with pre = [x[t], z[t-1]] then
        # gives, at once, the input and recurrent gradients (sum dv[t]^T [x[t], z[t-1]]), the
        # readout gradient (sum err[t-1]^T z[t-1]) and the spike counts (sum z[t-1]).
        width = n_rec + n_out + 1
        big = ws.get("signal", (n_steps + 1, batch, width), err)
        big[0, :, n_rec:] = 0.0
        big[1:, :, n_rec : n_rec + n_out] = err_f.t().view(n_steps, batch, n_out)
        big[1:, :, -1] = 1.0
        big[-1, :, :n_rec] = 0.0
        g = big[:-1, :, :n_rec]  # (T, B, n_rec), row-strided

        # Learning signal g = B err_f (kappa-filtered) + the regulariser's dE/dz. For a LIF
        # layer with the triangle, psi's constant factor is folded into this small product.
        lif = not isinstance(p, ALIFParameters)
        fast_triangle = lif and net.surrogate.name == "triangle"
        scale = _triangle_scale(net) if fast_triangle else 1.0
        # B as a transposed view of a contiguous (n_rec, n_out): much the faster layout for this
        # product with a short inner dimension.
        fb_t = (net.feedback_matrix() * scale).contiguous().t()
        if cfg.reg_strength > 0:
            reg = _regulariser_signal(tr.z, cfg.reg_strength, cfg.target_rate_per_step)
            torch.addmm(reg.mul_(scale), err_f.t(), fb_t, out=_flat(g))
        else:
            torch.mm(err_f.t(), fb_t, out=_flat(g))

        decay = _membrane_decay(net, tr, ws)
        if lif:
            if fast_triangle:
                _times_triangle(net, tr, g)
                if tr.refrac is not None:
                    g[1:] *= tr.refrac[:-1] == 0
            else:
                g.mul_(pseudo_derivative(net, tr, inplace=True))
            dv = leaky_filter_loop(g, decay, reverse=True, out=g)
        else:
            dv = _alif_adjoint(p, g, pseudo_derivative(net, tr, inplace=True), decay)

        n_in = cfg.n_in
        if tr.pre is not None:
            product = _flat(big).t() @ _flat(tr.pre)
            add_grad(net.w_in, product[:n_rec, :n_in])
            add_grad(net.w_rec, product[:n_rec, n_in:].mul_(net.rec_mask))
            add_grad(net.w_out, product[n_rec : n_rec + n_out, n_in:])
            spikes = product[-1, n_in:]
        else:  # no recurrence: no presynaptic buffer, separate products
            add_grad(net.w_in, _flat(dv).t() @ _flat(tr.x))
            add_grad(net.w_out, err_f @ _flat(tr.z))
            spikes = tr.z.sum((0, 1))
        counts = SpikeCounts(
            input_events=x.abs().sign_().sum((0, 1)).to(torch.float64).cpu(),
            spikes=spikes.to(torch.float64).cpu(), n_samples=batch, n_steps=n_steps,
        )
    return StepResult(loss=loss, scores=loss_fn.scores(tr.readout), counts=counts)


def pseudo_derivative(net: RecurrentSNN, tr: Trajectory, *, inplace: bool = False) -> Tensor:
    """psi (T, B, n_rec) of a trajectory; zero while a neuron is refractory (it cannot spike).

    ``inplace`` computes it in the storage of ``tr.v`` (which is then lost)."""
    p = net.neuron_params
    u = threshold_distance(p, tr.v, tr.a, inplace=inplace)
    psi = net.surrogate.derivative(u, p.v_th, inplace=True)
    if tr.refrac is not None:
        psi[1:] *= tr.refrac[:-1] == 0
    return psi


def _triangle_scale(net: RecurrentSNN) -> float:
    sg = net.surrogate
    return sg.dampening * sg.slope / net.neuron_params.v_th


def _times_triangle(net: RecurrentSNN, tr: Trajectory, g: Tensor) -> None:
    """g *= max(0, 1 - k |v - v_th| / v_th), in place, in three passes over the trajectory
    (the constant factor of the triangle is already in g): with m = min(|u|, v_th / k),
    g - (k / v_th) m g is exactly that product. Consumes ``tr.v``."""
    p, k = net.neuron_params, net.surrogate.slope
    u = threshold_distance(p, tr.v, None, inplace=True)
    u.abs_().clamp_(max=p.v_th / k)
    g.addcmul_(u, g, value=-k / p.v_th)


def _membrane_decay(net: RecurrentSNN, tr: Trajectory, ws: Workspace) -> float | Tensor:
    """d[t+1], the factor by which v[t] enters v[t+1] (stored at index t): alpha for reset by
    subtraction, alpha (1 - z[t]) for reset to zero."""
    p = net.neuron_params
    if p.reset == "subtract":
        return p.alpha
    buf = ws.get("decay", tuple(tr.z.shape), tr.z)
    return torch.mul(tr.z, -p.alpha, out=buf).add_(p.alpha)


def _alif_adjoint(p: ALIFParameters, g: Tensor, psi: Tensor, decay: float | Tensor) -> Tensor:
    """dv for ALIF, written over ``g``: per step, with h carrying -dE/da / beta backwards,
    pz = psi (g - beta h'), h = pz + rho h', dv = pz + d dv'."""
    gs, psis = g.unbind(0), psi.unbind(0)
    ds = decay.unbind(0) if isinstance(decay, Tensor) else None
    h = torch.zeros_like(gs[0])
    dv_next: Tensor | None = None
    for t in range(len(gs) - 1, -1, -1):
        pz = gs[t].sub_(h, alpha=p.beta).mul_(psis[t])
        h = torch.add(pz, h, alpha=p.rho)
        if dv_next is not None:
            if ds is None:
                pz.add_(dv_next, alpha=decay)  # type: ignore[arg-type]
            else:
                pz.addcmul_(ds[t], dv_next)
        dv_next = pz
    return g


def _regulariser_signal(z: Tensor, strength: float, target: float) -> Tensor:
    """d/dz[t] of ``rate_regularisation``: the same for every step and sample, (n_rec,)."""
    n = z.shape[0] * z.shape[1]
    return (z.mean((0, 1)) - target).mul_(2.0 * strength / n)


def _flat(t: Tensor) -> Tensor:
    return t.reshape(-1, t.shape[-1])


# --------------------------------------------------------------------------------------------
# online


def _online(net: RecurrentSNN, x: Tensor, labels: Tensor, loss_fn: ReadoutLoss) -> StepResult:
    """Forward in time with per-synapse eligibility vectors; memory does not grow with T."""
    cfg, p = net.config, net.neuron_params
    alif = isinstance(p, ALIFParameters)
    xt = net.prepare_input(x, contiguous=False)  # memory must not grow with T: no copy
    n_steps, batch, n_in = xt.shape
    labels = labels.to(xt.device).to(torch.long)
    n_rec, n_out = cfg.n_rec, cfg.n_out
    start = window_start(n_steps, loss_fn.steps)
    n_window = n_steps - start
    recurrent = net.w_rec is not None
    n_pre = n_in + (n_rec if recurrent else 0)
    kappa = cfg.decay_out
    opts = {"device": xt.device, "dtype": xt.dtype}
    onehot = F.one_hot(labels, n_out).to(xt.dtype)

    with torch.no_grad():
        fb_t = net.feedback_matrix().t()  # (n_out, n_rec)
        w_out_t = net.w_out.t()
        # Eligibility vectors, post-neuron first (n_rec, B, n_pre) so that the per-step
        # contraction with the learning signal is one batched product. With reset by
        # subtraction the membrane part depends on the presynaptic side only: (1, B, n_pre).
        per_synapse_v = p.reset == "zero"
        eps_v = torch.zeros(n_rec if per_synapse_v else 1, batch, n_pre, **opts)
        eps_a = torch.zeros(n_rec, batch, n_pre, **opts) if alif else None
        e_prev = torch.zeros(n_rec, batch, n_pre, **opts) if alif else None
        e_bar = torch.zeros(n_rec, batch, n_pre, **opts)
        grad_pre = torch.zeros(n_rec, n_pre, **opts)
        reg_acc = torch.zeros(n_rec, n_pre, **opts) if cfg.reg_strength > 0 else None
        win_e = None if loss_fn.per_step else torch.zeros(n_rec, batch, n_pre, **opts)
        win_zk = torch.zeros(batch, n_rec, **opts)
        win_bk = 0.0
        y = torch.zeros(batch, n_out, **opts)
        y_win = torch.zeros(batch, n_out, **opts)
        z_kappa = torch.zeros(batch, n_rec, **opts)
        b_kappa = 0.0
        g_out = torch.zeros(n_out, n_rec, **opts)
        g_b = torch.zeros(n_out, **opts)
        loss_sum = torch.zeros((), **opts)
        spikes = torch.zeros(n_rec, **opts)
        events = torch.zeros(n_in, **opts)

        for t, prev, s in net.steps(xt, input_chunk=_ONLINE_CHUNK):
            pre = torch.cat([xt[t], prev.z], 1) if recurrent else xt[t]  # (B, n_pre)
            if per_synapse_v:
                keep = (1.0 - prev.z).mul_(p.alpha).t().unsqueeze(2)  # (n_rec, B, 1)
                eps_v = torch.addcmul(pre.unsqueeze(0), keep, eps_v)
            else:
                eps_v = torch.add(pre.unsqueeze(0), eps_v, alpha=p.alpha)
            psi = net.surrogate.derivative(
                threshold_distance(p, s.v, s.a if alif else None), p.v_th  # type: ignore[union-attr]
            )
            if prev.refrac is not None:
                psi *= prev.refrac == 0
            psi_t = psi.t().unsqueeze(2)  # (n_rec, B, 1)
            if eps_a is not None and e_prev is not None:
                eps_a.mul_(p.rho).add_(e_prev)  # a[t] = rho a[t-1] + z[t-1]
                e = torch.add(eps_v, eps_a, alpha=-p.beta).mul_(psi_t)
                e_prev = e
            else:
                e = psi_t * eps_v
            e_bar.mul_(kappa).add_(e)
            if reg_acc is not None:
                reg_acc += e.sum(1)

            y = torch.addmm(y, s.z, w_out_t, beta=kappa)
            if net.b_out is not None:
                y += net.b_out
            z_kappa.mul_(kappa).add_(s.z)
            b_kappa = kappa * b_kappa + 1.0
            if t >= start:
                y_win += y
                if win_e is not None:
                    win_e += e_bar
                    win_zk += z_kappa
                    win_bk += b_kappa
                else:
                    logp = torch.log_softmax(y, 1)
                    loss_sum -= (logp * onehot).sum()
                    err = (logp.exp_() - onehot).div_(batch * n_window)  # dE/dy[t]
                    _accumulate_signal(grad_pre, err @ fb_t, e_bar)
                    g_out.addmm_(err.t(), z_kappa)
                    g_b.add_(err.sum(0), alpha=b_kappa)
            spikes += s.z.sum(0)
            events += torch.count_nonzero(xt[t], dim=0)

        if win_e is not None:
            logp = torch.log_softmax(y_win, 1)
            loss = -(logp * onehot).sum() / batch
            err = (logp.exp_() - onehot).div_(batch)
            _accumulate_signal(grad_pre, err @ fb_t, win_e)
            g_out.addmm_(err.t(), win_zk)
            g_b.add_(err.sum(0), alpha=win_bk)
        else:
            loss = loss_sum / (batch * n_window)
        if reg_acc is not None:
            rate = spikes / (batch * n_steps)
            coef = (rate - cfg.target_rate_per_step).mul_(
                2.0 * cfg.reg_strength / (batch * n_steps)
            )
            grad_pre.addcmul_(coef.unsqueeze(1), reg_acc)

    add_grad(net.w_out, g_out)
    if net.b_out is not None:
        add_grad(net.b_out, g_b)
    add_grad(net.w_in, grad_pre[:, :n_in])
    if net.w_rec is not None:
        add_grad(net.w_rec, grad_pre[:, n_in:] * net.rec_mask)
    counts = SpikeCounts(
        input_events=events.to(torch.float64).cpu(), spikes=spikes.to(torch.float64).cpu(),
        n_samples=batch, n_steps=n_steps,
    )
    return StepResult(loss=loss, scores=y_win, counts=counts)


def _accumulate_signal(grad: Tensor, signal: Tensor, traces: Tensor) -> None:
    """grad[j, i] += sum_b signal[b, j] traces[j, b, i] as one batched product."""
    grad.unsqueeze(1).baddbmm_(signal.t().unsqueeze(1), traces)


__all__ = ["EProp", "pseudo_derivative", "rate_regularisation"]
