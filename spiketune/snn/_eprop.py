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

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.snn._config import SNNConfig
from spiketune.snn._filters import leaky_filter, leaky_filter_loop
from spiketune.snn._loss import ReadoutLoss, rate_regularisation, window_start
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN, Trajectory
from spiketune.snn._neurons import ALIFParameters, ALIFState, NeuronState, threshold_distance
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

    def supports(self, net: Model) -> bool:
        """e-prop's traces are written for the LIF/ALIF layer of a :class:`RecurrentSNN`."""
        return isinstance(net, RecurrentSNN)

    def backward(  # type: ignore[override]
        self, net: RecurrentSNN, x: Tensor, labels: Tensor
    ) -> StepResult:
        mode = self.mode or net.config.eprop_mode
        if mode == "online":
            return _online(net, x, labels, self.loss_of(net))
        return _fused(net, x, labels, self.loss_of(net), self._workspace)


# --------------------------------------------------------------------------------------------
# fused


#: An adjoint written over the signal buffer: ``adjoint(net, trajectory, g, workspace)`` turns
#: g (T, B, n_rec), dE/dz[t] through the readout and the regulariser, into dv[t] in place.
Adjoint = Callable[[RecurrentSNN, Trajectory, Tensor, Workspace], None]


def _fused(
    net: RecurrentSNN, x: Tensor, labels: Tensor, loss_fn: ReadoutLoss, ws: Workspace,
    adjoint: Adjoint | None = None,
) -> StepResult:
    """The fused pass. With ``adjoint`` (BPTT's exact one), the readout error reaches the
    neurons through the true ``w_out`` whatever the feedback, and ``adjoint`` replaces
    e-prop's neuron-local recursion; everything else is shared."""
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
        fast_triangle = adjoint is None and lif and net.surrogate.name == "triangle"
        scale = _triangle_scale(net) if fast_triangle else 1.0
        # B as a transposed view of a contiguous (n_rec, n_out): much the faster layout for this
        # product with a short inner dimension.
        feedback = net.feedback_matrix() if adjoint is None else net.w_out.t()
        fb_t = (feedback * scale).contiguous().t()
        if cfg.reg_strength > 0:
            reg = _regulariser_signal(tr.z, cfg.reg_strength, cfg.target_rate_per_step)
            torch.addmm(reg.mul_(scale), err_f.t(), fb_t, out=_flat(g))
        else:
            torch.mm(err_f.t(), fb_t, out=_flat(g))

        if adjoint is not None:
            adjoint(net, tr, g, ws)
        else:
            decay = _membrane_decay(net, tr, ws)
            if not lif:
                _alif_adjoint(p, g, pseudo_derivative(net, tr, inplace=True), decay)
            else:
                if fast_triangle:
                    _times_triangle(net, tr, g)
                    if tr.refrac is not None:
                        g[1:] *= tr.refrac[:-1] == 0
                else:
                    g.mul_(pseudo_derivative(net, tr, inplace=True))
                leaky_filter_loop(g, decay, reverse=True, out=g)

        n_in = cfg.n_in
        if tr.pre is not None:
            product = _flat(big).t() @ _flat(tr.pre)
            add_grad(net.w_in, product[:n_rec, :n_in])
            add_grad(net.w_rec, product[:n_rec, n_in:].mul_(net.rec_mask))
            add_grad(net.w_out, product[n_rec : n_rec + n_out, n_in:])
            spikes = product[-1, n_in:]
        else:  # no recurrence: no presynaptic buffer, separate products
            add_grad(net.w_in, _flat(g).t() @ _flat(tr.x))  # g now holds dv
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
    """d[t+1], the factor by which v[t] enters v[t+1] (stored at index t): alpha (1 - z[t]) for
    reset to zero, alpha for every other reset (subtraction, at the spike, none)."""
    p = net.neuron_params
    if p.reset != "zero":
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
    """Forward in time with per-synapse eligibility vectors; memory does not grow with T.

    Each step: the eligibility vectors advance (:class:`_Eligibility`), the readout advances
    (:class:`_Readout`), and a step inside the loss window adds its error (:class:`_Window`).
    After the last step the summed window is scored and the rate regulariser added.
    """
    xt = net.prepare_input(x, contiguous=False)  # memory must not grow with T: no copy
    n_steps, batch, n_in = xt.shape
    cfg = net.config
    with torch.no_grad():
        traces = _Eligibility.zeros(net, batch, n_in, xt)
        readout = _Readout.zeros(net, batch, xt)
        window = _Window.open(net, labels, loss_fn, xt)
        reg_acc = torch.zeros_like(readout.grad_pre) if cfg.reg_strength > 0 else None
        spikes = xt.new_zeros(cfg.n_rec)
        events = xt.new_zeros(n_in)
        for t, prev, s in net.steps(xt, input_chunk=_ONLINE_CHUNK):
            e = traces.advance(net, _presynaptic(net, xt[t], prev.z), prev.z,
                               _online_psi(net, s, prev))
            if reg_acc is not None:
                reg_acc += e.sum(1)
            readout.advance(net, s.z)
            if t >= window.start:
                window.add_step(readout, traces.e_bar)
            spikes += s.z.sum(0)
            events += torch.count_nonzero(xt[t], dim=0)
        loss = window.finish(readout)
        if reg_acc is not None:
            _add_rate_regulariser(readout.grad_pre, reg_acc, spikes, cfg, batch * n_steps)
    readout.apply(net)
    counts = SpikeCounts(
        input_events=events.to(torch.float64).cpu(), spikes=spikes.to(torch.float64).cpu(),
        n_samples=batch, n_steps=n_steps,
    )
    return StepResult(loss=loss, scores=window.y, counts=counts)


def _presynaptic(net: RecurrentSNN, x_t: Tensor, z_prev: Tensor) -> Tensor:
    """The presynaptic vector of step t, (B, n_pre): the input, then last step's spikes."""
    return torch.cat([x_t, z_prev], 1) if net.w_rec is not None else x_t


def _online_psi(net: RecurrentSNN, s: NeuronState, prev: NeuronState) -> Tensor:
    """psi[t] from the state after step t, post-neuron first (n_rec, B, 1); zero while a
    neuron is refractory (it cannot spike)."""
    p = net.neuron_params
    a = s.a if isinstance(s, ALIFState) else None
    psi = net.surrogate.derivative(threshold_distance(p, s.v, a), p.v_th)
    if prev.refrac is not None:
        psi *= prev.refrac == 0
    return psi.t().unsqueeze(2)


def _membrane_trace(net: RecurrentSNN, eps_v: Tensor, pre: Tensor, z_prev: Tensor) -> Tensor:
    """The membrane eligibility vector of step t from that of step t - 1: ``alpha eps + pre``
    (reset by subtraction: the same for every post-neuron, (1, B, n_pre)), or with reset to
    zero ``alpha (1 - z[t-1]) eps + pre`` per post-neuron (n_rec, B, n_pre)."""
    p = net.neuron_params
    if p.reset == "zero":
        keep = (1.0 - z_prev).mul_(p.alpha).t().unsqueeze(2)  # (n_rec, B, 1)
        return torch.addcmul(pre.unsqueeze(0), keep, eps_v)
    return torch.add(pre.unsqueeze(0), eps_v, alpha=p.alpha)


@dataclass
class _Eligibility:
    """Online e-prop's eligibility vectors, post-neuron first (n_rec, B, n_pre) so that the
    per-step contraction with the learning signal is one batched product."""

    eps_v: Tensor  # membrane part; (1, B, n_pre) with reset by subtraction
    e_bar: Tensor  # the eligibility filtered by kappa (what the learning signal meets)
    eps_a: Tensor | None = None  # ALIF: adaptation part
    e_prev: Tensor | None = None  # ALIF: the eligibility of the previous step

    @classmethod
    def zeros(cls, net: RecurrentSNN, batch: int, n_in: int, like: Tensor) -> _Eligibility:
        n_rec = net.config.n_rec
        n_pre = n_in + (n_rec if net.w_rec is not None else 0)
        alif = isinstance(net.neuron_params, ALIFParameters)
        per_synapse_v = net.neuron_params.reset == "zero"
        full = (n_rec, batch, n_pre)
        return cls(
            eps_v=like.new_zeros(n_rec if per_synapse_v else 1, batch, n_pre),
            e_bar=like.new_zeros(full),
            eps_a=like.new_zeros(full) if alif else None,
            e_prev=like.new_zeros(full) if alif else None,
        )

    def advance(self, net: RecurrentSNN, pre: Tensor, z_prev: Tensor, psi_t: Tensor) -> Tensor:
        """e[t] = psi[t] (eps_v - beta eps_a) (LIF: psi[t] eps_v); updates the traces."""
        p = net.neuron_params
        self.eps_v = _membrane_trace(net, self.eps_v, pre, z_prev)
        if self.eps_a is not None and self.e_prev is not None:
            assert isinstance(p, ALIFParameters)
            self.eps_a.mul_(p.rho).add_(self.e_prev)  # a[t] = rho a[t-1] + z[t-1]
            e = torch.add(self.eps_v, self.eps_a, alpha=-p.beta).mul_(psi_t)
            self.e_prev = e
        else:
            e = psi_t * self.eps_v
        self.e_bar.mul_(net.config.decay_out).add_(e)
        return e


@dataclass
class _Readout:
    """The readout run forward, its input spikes filtered by kappa (what the readout
    gradient needs), and the gradients accumulated so far."""

    y: Tensor  # (B, n_out)
    z_kappa: Tensor  # (B, n_rec)
    grad_pre: Tensor  # (n_rec, n_pre): input and recurrent weights together
    grad_out: Tensor  # (n_out, n_rec)
    grad_b: Tensor  # (n_out,)
    fb_t: Tensor  # the feedback matrix B, transposed: (n_out, n_rec)
    b_kappa: float = 0.0  # the bias's kappa-filtered input (a constant 1)

    @classmethod
    def zeros(cls, net: RecurrentSNN, batch: int, like: Tensor) -> _Readout:
        cfg = net.config
        n_pre = like.shape[-1] + (cfg.n_rec if net.w_rec is not None else 0)
        return cls(
            y=like.new_zeros(batch, cfg.n_out), z_kappa=like.new_zeros(batch, cfg.n_rec),
            grad_pre=like.new_zeros(cfg.n_rec, n_pre),
            grad_out=like.new_zeros(cfg.n_out, cfg.n_rec), grad_b=like.new_zeros(cfg.n_out),
            fb_t=net.feedback_matrix().t(),
        )

    def advance(self, net: RecurrentSNN, z: Tensor) -> None:
        """y[t] = kappa y[t-1] + W_out z[t] + b, and the kappa-filtered spikes."""
        kappa = net.config.decay_out
        self.y = torch.addmm(self.y, z, net.w_out.t(), beta=kappa)
        if net.b_out is not None:
            self.y += net.b_out
        self.z_kappa.mul_(kappa).add_(z)
        self.b_kappa = kappa * self.b_kappa + 1.0

    def add_error(self, err: Tensor, traces: Tensor, z_kappa: Tensor, b_kappa: float) -> None:
        """Gradients of an error ``err = dE/dy`` (B, n_out) met by these traces: the learning
        signal ``B err`` against the eligibility, ``err`` against the filtered spikes."""
        _accumulate_signal(self.grad_pre, err @ self.fb_t, traces)
        self.grad_out.addmm_(err.t(), z_kappa)
        self.grad_b.add_(err.sum(0), alpha=b_kappa)

    def apply(self, net: RecurrentSNN) -> None:
        """Add the accumulated gradients to the network's weights."""
        n_in = net.config.n_in
        add_grad(net.w_out, self.grad_out)
        if net.b_out is not None:
            add_grad(net.b_out, self.grad_b)
        add_grad(net.w_in, self.grad_pre[:, :n_in])
        if net.w_rec is not None:
            add_grad(net.w_rec, self.grad_pre[:, n_in:] * net.rec_mask)


@dataclass
class _Window:
    """The loss window (the last steps). Per step, each step's cross-entropy error meets the
    traces of that step at once; summed, the readout summed over the window is scored once
    at the end, so the traces are summed over the window instead."""

    start: int  # the window's first step
    onehot: Tensor  # the labels, (B, n_out)
    y: Tensor  # the readout summed over the window: the scores
    scale: float  # per step: B times the window's length (a mean); summed: B
    loss_sum: Tensor  # per step: the summed cross-entropy so far
    e: Tensor | None = None  # summed: the filtered eligibility summed over the window
    z_kappa: Tensor | None = None  # summed: the filtered spikes summed over the window
    b_kappa: float = 0.0  # summed: the bias's filtered input summed over the window

    @classmethod
    def open(cls, net: RecurrentSNN, labels: Tensor, loss_fn: ReadoutLoss,
             like: Tensor) -> _Window:
        """The window of a sequence ``like`` (T, B, n_in) for ``labels`` (B,)."""
        n_steps, batch = like.shape[0], like.shape[1]
        n_out = net.config.n_out
        start = window_start(n_steps, loss_fn.steps)
        onehot = F.one_hot(labels.to(like.device).to(torch.long), n_out).to(like.dtype)
        window = cls(start=start, onehot=onehot, y=like.new_zeros(batch, n_out),
                     scale=float(batch * (n_steps - start)), loss_sum=like.new_zeros(()))
        if not loss_fn.per_step:
            n_pre = like.shape[-1] + (net.config.n_rec if net.w_rec is not None else 0)
            window.e = like.new_zeros(net.config.n_rec, batch, n_pre)
            window.z_kappa = like.new_zeros(batch, net.config.n_rec)
            window.scale = float(batch)
        return window

    def add_step(self, readout: _Readout, e_bar: Tensor) -> None:
        """Step t of the window: its error now (per step), or its traces summed (summed)."""
        self.y += readout.y
        if self.e is not None and self.z_kappa is not None:
            self.e += e_bar
            self.z_kappa += readout.z_kappa
            self.b_kappa += readout.b_kappa
        else:
            loss, err = _cross_entropy(readout.y, self.onehot, self.scale)
            self.loss_sum += loss
            readout.add_error(err, e_bar, readout.z_kappa, readout.b_kappa)

    def finish(self, readout: _Readout) -> Tensor:
        """The loss; a summed window's error is added to the gradients now."""
        if self.e is None or self.z_kappa is None:
            return self.loss_sum / self.scale
        loss, err = _cross_entropy(self.y, self.onehot, self.scale)
        readout.add_error(err, self.e, self.z_kappa, self.b_kappa)
        return loss / self.scale


def _cross_entropy(y: Tensor, onehot: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """(the cross-entropy of scores ``y`` (B, n_out) summed over the batch, its gradient
    dE/dy divided by ``scale``)."""
    logp = torch.log_softmax(y, 1)
    return -(logp * onehot).sum(), (logp.exp_() - onehot).div_(scale)


def _add_rate_regulariser(
    grad: Tensor, reg_acc: Tensor, spikes: Tensor, cfg: SNNConfig, n_samples_steps: int
) -> None:
    """Add the rate regulariser's gradient: its learning signal ``2 c (r_j - r*) / (B T)`` is
    the same at every step, so it meets the eligibility summed over time (``reg_acc``, not
    kappa-filtered: it acts on z directly). ``spikes``: per neuron, over the batch."""
    rate = spikes / n_samples_steps
    coef = (rate - cfg.target_rate_per_step).mul_(2.0 * cfg.reg_strength / n_samples_steps)
    grad.addcmul_(coef.unsqueeze(1), reg_acc)
def _accumulate_signal(grad: Tensor, signal: Tensor, traces: Tensor) -> None:
    """grad[j, i] += sum_b signal[b, j] traces[j, b, i] as one batched product."""
    grad.unsqueeze(1).baddbmm_(signal.t().unsqueeze(1), traces)


__all__ = ["EProp", "pseudo_derivative", "rate_regularisation"]
