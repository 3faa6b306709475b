"""Backpropagation through time with a surrogate gradient.

The spike's derivative is the model's pseudo-derivative: for a :class:`RecurrentSNN` the
configured fast sigmoid, arctan or triangle, with its slope and dampening (the L²MU takes its
fused path, whose backward pass is written out; the LMU has no spikes). For a RecurrentSNN,
``detach_reset`` stops the gradient through the reset term; with it and without recurrent
weights, BPTT's gradients equal e-prop's, which is how the e-prop implementation is checked.
The random feedback matrix plays no part: BPTT follows the true weights.

Two modes, the same gradients (tested against each other and against an independent
transcription of the dynamics, float64):

**autograd**: autograd through ``net.simulate_for_bptt``, for any :class:`Model`. Under
autograd every time step records a dozen small operations and replays them backwards, so on
the short, narrow sequences of a search the bookkeeping costs more than the arithmetic.

**fused** (the default, for the LIF/ALIF layer of a RecurrentSNN with binary spikes): the
forward pass runs without autograd into preallocated buffers (as e-prop's), and the adjoint
recursion is written out and run backwards in time, with ``dz[t] = dE/dz[t]`` (readout and
regulariser) plus the paths through step t + 1::

    dz[t] += dv[t+1] W_eff        W_eff = W_rec (zero diagonal) - c I, c the reset's own weight:
                                  v_th (subtract), alpha v_th (subtract_at_spike), 0 (none,
                                  zero, or detach_reset)
    dz[t] += -alpha v[t] dv[t+1]  (reset to zero, unless detach_reset)
    dz[t] += -beta h[t+1]         (ALIF: a[t+1] = rho a[t] + z[t]; h = -dE/da / beta)
    dv[t]  = psi[t] dz[t] + d[t+1] dv[t+1],   h[t] = psi[t] dz[t] + rho h[t+1]

with ``d[t+1] = alpha`` or ``alpha (1 - z[t])`` (reset to zero). This is e-prop's fused
adjoint plus the recurrent and reset paths e-prop drops: one product with ``W_eff`` per step.
The weight gradients are then e-prop's single product of ``[dv, readout error, 1]`` with the
presynaptic buffer ``[x[t], z[t-1]]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.snn._eprop import _fused as eprop_fused
from spiketune.snn._eprop import _membrane_decay, pseudo_derivative
from spiketune.snn._loss import ReadoutLoss
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN, Trajectory
from spiketune.snn._neurons import ALIFParameters, CubaLIFParameters
from spiketune.snn._rule import LearningRule, StepResult
from spiketune.snn._workspace import Workspace

MODES = ("fused", "autograd")


class BPTT(LearningRule):
    """Surrogate-gradient BPTT through the whole sequence, for any :class:`Model`.

    ``mode`` ``"fused"`` (default) writes the backward pass out for the LIF/ALIF layer of a
    :class:`RecurrentSNN` with binary spikes (see the module docstring) and falls back to
    autograd for every other model; ``"autograd"`` always differentiates
    ``net.simulate_for_bptt``."""

    name = "bptt"

    def __init__(self, mode: str = "fused") -> None:
        if mode not in MODES:
            raise ConfigError(Problem("bptt_mode", mode, "one of " + ", ".join(MODES)))
        self.mode = mode
        self._workspace = Workspace()  # scratch reused across batches, never read across them

    def backward(self, net: Model, x: Tensor, labels: Tensor) -> StepResult:
        if self.mode == "fused" and fused_supported(net):
            assert isinstance(net, RecurrentSNN)
            return _fused(net, x, labels, self.loss_of(net), self._workspace)
        return _autograd(net, x, labels, self.loss_of(net))


def fused_supported(net: Model) -> bool:
    """Whether the written-out backward pass covers ``net``: a RecurrentSNN of LIF or ALIF
    neurons with binary spikes (a CubaLIF layer, or several spikes per step, go through
    autograd)."""
    if not isinstance(net, RecurrentSNN):
        return False
    p = net.neuron_params
    return not isinstance(p, CubaLIFParameters) and p.max_spikes == 1


def _autograd(net: Model, x: Tensor, labels: Tensor, loss_fn: ReadoutLoss) -> StepResult:
    with torch.enable_grad():
        tr = net.simulate_for_bptt(x)
        loss = loss_fn(tr.readout, labels.to(tr.readout.device))
        total = loss
        reg = net.regularisation(tr)
        if reg is not None:
            total = total + reg
        total.backward()
    return StepResult(
        loss=loss.detach(), scores=loss_fn.scores(tr.readout.detach()),
        counts=net.spike_counts(tr),
    )


def _reset_weight(net: RecurrentSNN) -> float:
    """c: how much a spike lowers its own neuron's next membrane (0 where no gradient flows
    that way: no reset, reset to zero (its path is elementwise), or ``detach_reset``)."""
    p = net.neuron_params
    if net.config.detach_reset:
        return 0.0
    if p.reset == "subtract":
        return p.v_th
    if p.reset == "subtract_at_spike":
        return p.alpha * p.v_th
    return 0.0


def _fused(
    net: RecurrentSNN, x: Tensor, labels: Tensor, loss_fn: ReadoutLoss, ws: Workspace
) -> StepResult:
    """e-prop's fused pass with BPTT's exact adjoint (the true ``w_out`` carries the error)."""
    return eprop_fused(net, x, labels, loss_fn, ws, adjoint=_adjoint)


def _adjoint(net: RecurrentSNN, tr: Trajectory, g: Tensor, ws: Workspace) -> None:
    """dv (T, B, n_rec) written over ``g`` (which holds dE/dz[t] through the readout and the
    regulariser), backwards in time; see the module docstring. Consumes ``tr.v``."""
    p = net.neuron_params
    zero_path = None  # -alpha v[t]: how z[t] lowers v[t+1] under reset to zero
    if p.reset == "zero" and not net.config.detach_reset:
        zero_path = torch.mul(tr.v, -p.alpha)
    decay = _membrane_decay(net, tr, ws)
    psi = pseudo_derivative(net, tr, inplace=True)  # consumes tr.v
    own = _reset_weight(net)
    w_rec = net.recurrent_weight()
    w_eff: Tensor | None = None
    if w_rec is not None:
        if own:
            w_rec = w_rec - own * torch.eye(w_rec.shape[0], dtype=w_rec.dtype, device=w_rec.device)
        w_eff = w_rec.contiguous()
    alif = isinstance(p, ALIFParameters)
    gs, psis = g.unbind(0), psi.unbind(0)
    ds = decay.unbind(0) if isinstance(decay, Tensor) else None
    zs = zero_path.unbind(0) if zero_path is not None else None
    h: Tensor | None = None
    dv_next: Tensor | None = None
    for t in range(len(gs) - 1, -1, -1):
        dz = gs[t]
        if dv_next is not None:
            if w_eff is not None:
                dz.addmm_(dv_next, w_eff)
            elif own:
                dz.sub_(dv_next, alpha=own)
            if zs is not None:
                dz.addcmul_(zs[t], dv_next)
        if alif and h is not None:
            dz.sub_(h, alpha=p.beta)  # type: ignore[union-attr]
        pz = dz.mul_(psis[t])
        if alif:
            h = pz.clone() if h is None else torch.add(pz, h, alpha=p.rho)  # type: ignore[union-attr]
        if dv_next is not None:
            if ds is None:
                pz.add_(dv_next, alpha=decay)  # type: ignore[arg-type]
            else:
                pz.addcmul_(ds[t], dv_next)
        dv_next = pz
