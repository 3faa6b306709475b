"""A population of K recurrent networks of the same shape as one batched computation.

The equations are those of :mod:`spiketune.snn._network` and :mod:`spiketune.snn._eprop`; here
every weight carries a leading member dimension K (``w_in`` (K, n_rec, n_in) and so on) and
every per-member hyperparameter is a (K, 1, 1) tensor instead of a Python float, so that one
``bmm`` or one broadcast elementwise operation advances all members at once. Member k's numbers
are those of its own network trained alone, up to the order in which ``bmm`` and ``mm`` sum
(tested to 1e-9 in float64 after 20 optimiser steps).

Shapes are member-major: inputs (K, B, T, n_in) batch-first like the datasets, trajectories
(K, T, B, ...): each member's trajectory is then one contiguous block, so the weight gradients
of all members are one ``bmm`` over batch x time.

A LIF member may share a population with ALIF members: ALIF with ``beta = 0`` is LIF (the
adaptation is computed and ignored). Functions here are pure: weights, parameters and inputs
in, trajectories or gradients out; the training loop lives in :mod:`._population`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.snn._loss import window_start
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._neurons import ALIFParameters, CubaLIFParameters
from spiketune.snn._surrogate import surrogate_derivative
from spiketune.snn._workspace import Workspace

#: Weight names, in the order of ``RecurrentSNN.parameters()`` (the order gradient clipping
#: sums norms in, and the optimiser steps in).
WEIGHTS = ("w_in", "w_rec", "w_out", "b_out")

Weights = dict[str, Tensor]


@dataclass(frozen=True)
class PopulationParameters:
    """Every member's dynamics, loss and regulariser, stacked.

    Tensors are (K, 1, 1) (they broadcast against a (K, B, n) step) unless noted. Decays are
    per step (``alpha`` membrane, ``rho`` adaptation, ``kappa`` readout), thresholds in
    membrane units; ``beta`` is 0 for a LIF member of an ALIF population. ``refractory`` is
    None when no member has a refractory period (steps, as floats). ``symmetric`` marks the
    members whose e-prop feedback is ``w_out`` transposed (None: all of them).
    ``reg_strength`` and ``reg_target`` (spikes per step) are (K,).
    """

    alpha: Tensor
    v_th: Tensor
    beta: Tensor | None
    rho: Tensor | None
    refractory: Tensor | None
    kappa: Tensor
    slope: Tensor
    dampening: Tensor
    reg_strength: Tensor
    reg_target: Tensor
    symmetric: Tensor | None
    loss_steps: tuple[int | None, ...]
    reset: str
    surrogate: str
    loss: str
    detach_reset: bool

    @property
    def size(self) -> int:
        return int(self.alpha.shape[0])

    @property
    def alif(self) -> bool:
        return self.beta is not None

    @property
    def regularised(self) -> bool:
        return bool((self.reg_strength > 0).any())

    @classmethod
    def of(cls, nets: list[RecurrentSNN], like: Tensor) -> PopulationParameters:
        """The parameters of these networks (one population: same reset, surrogate, loss)."""
        cfgs = [n.config for n in nets]
        ps = [n.neuron_params for n in nets]
        if any(isinstance(p, CubaLIFParameters) for p in ps):
            raise ConfigError(Problem(
                "neuron", "cuba_lif", "lif or alif in a population (train a CubaLIF network "
                "alone with a Trainer)",
            ))
        chip = next((p for p in ps if p.reset == "subtract_at_spike" or p.max_spikes != 1), None)
        if chip is not None:
            field, value = (("max_spikes", chip.max_spikes) if chip.max_spikes != 1
                            else ("reset", chip.reset))
            raise ConfigError(Problem(
                field, value, "'subtract' or 'zero' with max_spikes=1 in a population "
                "(train a network with Xylo's neuron alone with a Trainer)",
            ))

        def col(values: list[float]) -> Tensor:
            return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, 1, 1)

        alif = any(isinstance(p, ALIFParameters) for p in ps)
        refractory = [float(p.refractory_steps) for p in ps]
        sym = [c.feedback == "symmetric" for c in cfgs]
        return cls(
            alpha=col([p.alpha for p in ps]), v_th=col([p.v_th for p in ps]),
            beta=col([p.beta if isinstance(p, ALIFParameters) else 0.0 for p in ps])
            if alif else None,
            rho=col([p.rho if isinstance(p, ALIFParameters) else 0.0 for p in ps])
            if alif else None,
            refractory=col(refractory) if any(refractory) else None,
            kappa=col([c.decay_out for c in cfgs]),
            slope=col([n.surrogate.slope for n in nets]),
            dampening=col([n.surrogate.dampening for n in nets]),
            reg_strength=col([c.reg_strength for c in cfgs]).view(-1),
            reg_target=col([c.target_rate_per_step for c in cfgs]).view(-1),
            symmetric=None if all(sym) else torch.tensor(sym, device=like.device).view(-1, 1, 1),
            loss_steps=tuple(c.loss_steps for c in cfgs),
            reset=cfgs[0].reset, surrogate=nets[0].surrogate.name, loss=cfgs[0].loss,
            detach_reset=cfgs[0].detach_reset,
        )

    def select(self, rows: list[int]) -> PopulationParameters:
        """The parameters of members ``rows`` only (a stopped member leaves the stack)."""
        index = torch.tensor(rows, device=self.alpha.device)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                changes[f.name] = value.index_select(0, index)
        changes["loss_steps"] = tuple(self.loss_steps[r] for r in rows)
        return replace(self, **changes)

    def extend(self, other: PopulationParameters) -> PopulationParameters:
        """These members followed by ``other``'s (a member that joins a running population),
        the inverse of :meth:`select`. A field that only one side has (``beta``, ``rho``,
        ``refractory``, ``symmetric``: None when no member needs it) is padded on the other
        with the value that changes nothing (0: no adaptation, no refractory period; True:
        symmetric feedback), as :meth:`of` pads a mixed population. The shared fields (reset,
        surrogate, loss) are the population's; the population key makes them equal."""
        neutral: dict[str, float | bool] = {
            "beta": 0.0, "rho": 0.0, "refractory": 0.0, "symmetric": True,
        }
        changes: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if not isinstance(mine, Tensor) and not isinstance(theirs, Tensor):
                continue
            if mine is None:
                mine = theirs.new_full((self.size, *theirs.shape[1:]), neutral[f.name])
            if theirs is None:
                theirs = mine.new_full((other.size, *mine.shape[1:]), neutral[f.name])
            changes[f.name] = torch.cat([mine, theirs])
        changes["loss_steps"] = self.loss_steps + other.loss_steps
        return replace(self, **changes)


class PopulationTrajectory(NamedTuple):
    """A forward pass of every member, member-major: ``x`` (K, T, B, n_in), ``z``, ``v``,
    ``a`` (ALIF, else None), ``refrac`` (None without refractory period) (K, T, B, n_rec),
    ``y`` (K, T, B, n_out); ``pre`` (K, T + 1, B, n_in + n_rec) as in :class:`Trajectory`
    (row t holds ``[x[t], z[t-1]]``), None under autograd."""

    x: Tensor
    z: Tensor
    v: Tensor
    a: Tensor | None
    refrac: Tensor | None
    y: Tensor
    pre: Tensor | None = None


class PopulationStep(NamedTuple):
    """One batch of every member: ``loss`` (K,) without the regulariser, ``scores``
    (K, B, n_out), ``spikes`` per neuron (K, n_rec) and ``events`` per input channel
    (K, n_in), summed over batch and time; gradients are in the ``grads`` dict."""

    grads: Weights
    loss: Tensor
    scores: Tensor
    spikes: Tensor
    events: Tensor


def stack_weights(nets: list[RecurrentSNN]) -> tuple[Weights, Tensor | None]:
    """The members' trainable weights stacked (copies), and their random feedback matrices
    (K, n_rec, n_out; zeros for a symmetric member; None when all are symmetric)."""
    weights = {
        name: torch.stack([getattr(n, name).detach() for n in nets]).clone()
        for name in WEIGHTS if getattr(nets[0], name) is not None
    }
    if all(n.feedback is None for n in nets):
        return weights, None
    ref = weights["w_out"]
    feedback = torch.stack([
        n.feedback if n.feedback is not None else ref.new_zeros(ref.shape[2], ref.shape[1])
        for n in nets
    ])
    return weights, feedback


# --------------------------------------------------------------------------------------------
# forward


def _eye(n: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def recurrent_weight(w: Weights, n_rec: int) -> Tensor | None:
    """``w_rec`` with every member's diagonal forced to zero, or None without recurrence."""
    if "w_rec" not in w:
        return None
    return w["w_rec"] * (1.0 - _eye(n_rec, w["w_rec"]))


def simulate(
    w: Weights, p: PopulationParameters, x: Tensor, ws: Workspace | None = None
) -> PopulationTrajectory:
    """Run every member on its input ``x`` (K, B, T, n_in), no autograd, writing each step into
    (K, T, B, .) buffers (from ``ws`` when given: then overwritten by its next use).

    As in :meth:`RecurrentSNN.steps`, the reset by subtraction is a self-connection of weight
    ``-v_th`` folded into the recurrent product, and each step's whole synaptic current is one
    ``bmm`` of ``[x[t], z[t-1]]`` with ``[w_in, w_rec]``; a member without recurrence has a
    zero ``w_rec`` there."""
    n_members, batch, n_steps, n_in = x.shape
    n_rec = w["w_in"].shape[1]

    def buffer(name: str, shape: tuple[int, ...]) -> Tensor:
        return x.new_empty(shape) if ws is None else ws.get(name, shape, x)

    pre = buffer("pre", (n_members, n_steps + 1, batch, n_in + n_rec))
    pre[:, :n_steps, :, :n_in] = x.transpose(1, 2)
    pre[:, n_steps, :, :n_in] = 0.0
    pre[:, 0, :, n_in:] = 0.0
    z = pre[:, 1:, :, n_in:]
    v = buffer("v", (n_members, n_steps, batch, n_rec))
    a = buffer("a", (n_members, n_steps, batch, n_rec)) if p.alif else None
    refrac = None
    if p.refractory is not None:
        refrac = buffer("refrac", (n_members, n_steps, batch, n_rec))
    w_rec = recurrent_weight(w, n_rec)
    if w_rec is None:
        w_rec = w["w_in"].new_zeros(n_members, n_rec, n_rec)
    if p.reset == "subtract":
        w_rec = w_rec - p.v_th * _eye(n_rec, w_rec)
    w_pre_t = torch.cat([w["w_in"], w_rec], 2).transpose(1, 2).contiguous()
    scratch = buffer("scratch", (n_members, batch, n_rec)) if p.alif or p.reset == "zero" else None
    # unbind once: indexing [:, t] would build several views per access, every step
    pres, vs, zs = pre.unbind(1), v.unbind(1), z.unbind(1)
    as_ = a.unbind(1) if a is not None else None
    rs = refrac.unbind(1) if refrac is not None else None
    for t in range(n_steps):
        vt = torch.bmm(pres[t], w_pre_t, out=vs[t])
        if t > 0:
            if p.reset == "subtract":
                vt.addcmul_(p.alpha, vs[t - 1])
            else:  # alpha (1 - z[t-1]) v[t-1]
                keep = torch.mul(zs[t - 1], -1.0, out=scratch).add_(1.0).mul_(p.alpha)
                vt.addcmul_(keep, vs[t - 1])
        u = vt
        if as_ is not None and p.beta is not None and p.rho is not None:
            if t == 0:
                as_[0].zero_()
            else:
                torch.addcmul(zs[t - 1], p.rho, as_[t - 1], out=as_[t])
            u = torch.addcmul(vt, p.beta, as_[t], value=-1.0, out=scratch)
        zt = torch.gt(u, p.v_th, out=zs[t])
        if rs is not None and p.refractory is not None:
            if t == 0:
                torch.mul(zt, p.refractory, out=rs[0])
            else:
                zt.mul_(rs[t - 1] == 0)
                torch.sub(rs[t - 1], 1.0, out=rs[t]).clamp_(min=0.0)
                rs[t].addcmul_(zt, p.refractory)
    return PopulationTrajectory(
        x=pre[:, :n_steps, :, :n_in], z=z, v=v, a=a, refrac=refrac,
        y=readout(w, p, z), pre=pre,
    )


class _Spike(torch.autograd.Function):
    """H(u) forward; each member's pseudo-derivative backward (u = v - A, A the threshold)."""

    @staticmethod
    def forward(ctx: Any, u: Tensor, p: PopulationParameters) -> Tensor:
        ctx.save_for_backward(u)
        ctx.p = p
        return torch.gt(u, 0, out=torch.empty_like(u))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        (u,) = ctx.saved_tensors
        p: PopulationParameters = ctx.p
        psi = surrogate_derivative(p.surrogate, u, p.v_th, p.slope, p.dampening)
        return grad * psi, None


def simulate_for_bptt(w: Weights, p: PopulationParameters, x: Tensor) -> PopulationTrajectory:
    """:func:`simulate` under autograd, spikes through each member's surrogate (the reset's
    gradient stopped when ``detach_reset``), as :meth:`RecurrentSNN.simulate_for_bptt`."""
    n_members, batch, n_steps, n_in = x.shape
    n_rec = w["w_in"].shape[1]
    xt = x.transpose(1, 2)
    currents = torch.bmm(xt.reshape(n_members, n_steps * batch, n_in), w["w_in"].transpose(1, 2))
    w_rec = recurrent_weight(w, n_rec)
    w_rec_t = None if w_rec is None else w_rec.transpose(1, 2)
    zero = x.new_zeros(n_members, batch, n_rec)
    z, v, a, refrac = zero, zero, zero, zero
    zs: list[Tensor] = []
    for t, current in enumerate(currents.view(n_members, n_steps, batch, n_rec).unbind(1)):
        i = current if w_rec_t is None else torch.baddbmm(current, z, w_rec_t)
        z_reset = z.detach() if p.detach_reset else z
        if p.reset == "subtract":
            v = i + p.alpha * v - p.v_th * z_reset
        else:
            v = i + p.alpha * v * (1.0 - z_reset)
        u = v
        if p.beta is not None and p.rho is not None:
            a = p.rho * a + z
            u = v - p.beta * a
        z = _Spike.apply(u - p.v_th, p)
        if p.refractory is not None:
            z = z * (refrac == 0).to(z.dtype) if t else z
            refrac = (refrac - 1.0).clamp(min=0.0) + z.detach() * p.refractory
        zs.append(z)
    zt = torch.stack(zs, 1)
    return PopulationTrajectory(x=xt, z=zt, v=zt, a=None, refrac=None, y=readout(w, p, zt))


# --------------------------------------------------------------------------------------------
# readout and loss


def leaky_filter(u: Tensor, kappa: Tensor, *, reverse: bool = False) -> Tensor:
    """Each member's leaky filter along time, ``y[t] = u[t] + kappa y[t-1]`` (reverse:
    ``y[t+1]``), for member-major ``u`` (K, T, ...): one ``bmm`` with a (K, T, T) matrix of
    powers of kappa (fine for the narrow readout; differentiable)."""
    n_members, n_steps = u.shape[0], u.shape[1]
    idx = torch.arange(n_steps, device=u.device)
    lag = idx[:, None] - idx[None, :]
    if reverse:
        lag = -lag
    powers = kappa.view(-1, 1, 1).pow(lag.clamp(min=0).to(u.dtype))
    kernel = torch.where(lag >= 0, powers, torch.zeros((), dtype=u.dtype, device=u.device))
    return torch.bmm(kernel, u.reshape(n_members, n_steps, -1)).view(u.shape)


def readout(w: Weights, p: PopulationParameters, z: Tensor) -> Tensor:
    """``y[t] = kappa y[t-1] + w_out z[t] + b`` of member-major spikes ``z`` (K, T, B, n_rec)."""
    n_members, n_steps, batch, n_rec = z.shape
    flat = z.reshape(n_members, n_steps * batch, n_rec)
    w_out_t = w["w_out"].transpose(1, 2)
    if "b_out" in w:
        u = torch.baddbmm(w["b_out"].unsqueeze(1), flat, w_out_t)
    else:
        u = torch.bmm(flat, w_out_t)
    return leaky_filter(u.view(n_members, n_steps, batch, -1), p.kappa)


@functools.lru_cache(maxsize=32)
def _window_starts(n_steps: int, loss_steps: tuple[int | None, ...]) -> tuple[int, ...]:
    return tuple(window_start(n_steps, s) for s in loss_steps)


def window_mask(p: PopulationParameters, n_steps: int, like: Tensor) -> Tensor:
    """(K, T): 1 on each member's decision window (its last ``loss_steps`` steps), else 0."""
    starts = torch.tensor(_window_starts(n_steps, p.loss_steps), device=like.device)
    return (torch.arange(n_steps, device=like.device) >= starts[:, None]).to(like.dtype)


def loss_and_error(
    y: Tensor, labels: Tensor, p: PopulationParameters, *, error: bool = True
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Each member's loss (K,), scores (K, B, n_out) and, with ``error``, ``dE/dy`` (K, T, B,
    n_out), for member-major readouts ``y`` (K, T, B, n_out) and labels (K, B).

    :class:`ReadoutLoss` per member: ``ce_summed`` scores the readout summed over the window,
    ``ce_max`` each unit's maximum over it (steps outside a member's window never peak),
    ``ce_per_step`` averages every window step's cross-entropy. Each member's window is a
    mask, so members with different ``loss_steps`` share one computation. Differentiable
    (BPTT); e-prop takes the error written out."""
    _, n_steps, batch, n_out = y.shape
    mask = window_mask(p, n_steps, y)
    onehot = F.one_hot(labels.to(torch.long), n_out).to(y.dtype)  # (K, B, n_out)
    err: Tensor | None = None
    if p.loss == "ce_max":
        scores, at = y.masked_fill(mask[:, :, None, None] == 0, -torch.inf).max(1)  # (K, B, n_out)
        logp = torch.log_softmax(scores, -1)
        loss = -(logp * onehot).sum((1, 2)) / batch
        if error:
            err = torch.zeros_like(y).scatter_(
                1, at.unsqueeze(1), (logp.detach().exp() - onehot).div_(batch).unsqueeze(1))
        return loss, scores, err
    scores = (y * mask[:, :, None, None]).sum(1)
    if p.loss == "ce_summed":
        logp = torch.log_softmax(scores, -1)
        loss = -(logp * onehot).sum((1, 2)) / batch
        if error:
            err = (logp.detach().exp() - onehot).div_(batch).unsqueeze(1) * mask[:, :, None, None]
    else:
        logp = torch.log_softmax(y, -1)
        n = batch * mask.sum(1)  # (K,): samples times window steps
        picked = (logp * onehot.unsqueeze(1)).sum(-1)  # (K, T, B)
        loss = -(picked * mask.unsqueeze(2)).sum((1, 2)) / n
        if error:
            err = (logp.detach().exp() - onehot.unsqueeze(1)).div_(n.view(-1, 1, 1, 1))
            err.mul_(mask[:, :, None, None])
    return loss, scores, err


# --------------------------------------------------------------------------------------------
# gradients


def eprop_step(
    w: Weights, feedback: Tensor | None, p: PopulationParameters, x: Tensor, labels: Tensor,
    ws: Workspace,
) -> PopulationStep:
    """Fused e-prop for every member at once (see :mod:`spiketune.snn._eprop`): the forward
    pass, the kappa-filtered learning signal, each neuron's adjoint run backwards, then one
    ``bmm`` of the signal buffer with ``[x[t], z[t-1]]`` that gives the input, recurrent and
    readout gradients and the spike counts of every member."""
    return _fused_step(w, feedback, p, x, labels, ws, exact=False)


def bptt_step(
    w: Weights, p: PopulationParameters, x: Tensor, labels: Tensor, ws: Workspace
) -> PopulationStep:
    """Fused BPTT for every member at once (see :mod:`spiketune.snn._bptt`): e-prop's fused
    pass with the true readout weights as feedback and the recurrent and reset paths in the
    adjoint (one ``bmm`` with each member's ``W_eff`` per step). The same gradients as
    :func:`bptt_step_autograd`, without autograd's per-step bookkeeping."""
    return _fused_step(w, None, p, x, labels, ws, exact=True)


def _fused_step(
    w: Weights, feedback: Tensor | None, p: PopulationParameters, x: Tensor, labels: Tensor,
    ws: Workspace, *, exact: bool,
) -> PopulationStep:
    """e-prop (``exact`` False) or BPTT (``exact`` True): they share all but the adjoint."""
    with torch.no_grad():
        tr = simulate(w, p, x, ws)
        assert tr.pre is not None
        n_members, n_steps, batch, n_rec = tr.z.shape
        n_in, n_out = x.shape[-1], w["w_out"].shape[1]
        loss, scores, err = loss_and_error(tr.y, labels, p)
        assert err is not None
        err_f = leaky_filter(err, p.kappa, reverse=True)  # (K, T, B, n_out)
        grads: Weights = {}
        if "b_out" in w:
            grads["b_out"] = err_f.sum((1, 2))

        width = n_rec + n_out + 1
        big = ws.get("signal", (n_members, n_steps + 1, batch, width), err)
        big[:, 0, :, n_rec:] = 0.0
        big[:, 1:, :, n_rec : n_rec + n_out] = err_f
        big[:, 1:, :, -1] = 1.0
        big[:, -1, :, :n_rec] = 0.0
        g = big[:, :-1, :, :n_rec]  # (K, T, B, n_rec), row-strided

        # learning signal B err_f, B = w_out^T (symmetric) or the member's fixed random matrix
        fb_t = w["w_out"]  # (K, n_out, n_rec): B transposed
        if not exact and feedback is not None and p.symmetric is not None:
            fb_t = torch.where(p.symmetric, w["w_out"], feedback.transpose(1, 2))
        flat_g = g.reshape(n_members, n_steps * batch, n_rec)
        torch.bmm(err_f.reshape(n_members, n_steps * batch, n_out), fb_t, out=flat_g)
        if p.regularised:
            rate = tr.z.mean((1, 2))  # (K, n_rec), spikes per step
            coef = (2.0 * p.reg_strength / (n_steps * batch)).unsqueeze(1)
            g.add_(((rate - p.reg_target.unsqueeze(1)) * coef)[:, None, None, :])

        zero_path = None  # -alpha v[t]: how z[t] lowers v[t+1] under reset to zero
        if exact and p.reset == "zero" and not p.detach_reset:
            zero_path = tr.v * -p.alpha.unsqueeze(1)
        psi = _pseudo_derivative(p, tr)
        decay = p.alpha if p.reset == "subtract" else (1.0 - tr.z) * p.alpha.unsqueeze(1)
        if exact:
            _bptt_adjoint(w, p, g, psi, decay, zero_path)
        elif p.alif:
            _alif_adjoint(p, g, psi, decay)
        else:
            g.mul_(psi)
            _lif_adjoint(g, decay)

        pre = tr.pre
        product = torch.bmm(
            big.view(n_members, (n_steps + 1) * batch, width).transpose(1, 2),
            pre.view(n_members, (n_steps + 1) * batch, n_in + n_rec),
        )
        grads["w_in"] = product[:, :n_rec, :n_in]
        if "w_rec" in w:
            grads["w_rec"] = product[:, :n_rec, n_in:] * (1.0 - _eye(n_rec, product))
        grads["w_out"] = product[:, n_rec : n_rec + n_out, n_in:]
        spikes = product[:, -1, n_in:]
        events = x.abs().sign_().sum((1, 2))
    return PopulationStep(grads, loss, scores, spikes, events)


def _pseudo_derivative(p: PopulationParameters, tr: PopulationTrajectory) -> Tensor:
    """psi (K, T, B, n_rec), computed in the storage of ``tr.v``; zero while refractory."""
    u = tr.v
    if tr.a is not None and p.beta is not None:
        u.sub_(tr.a * p.beta.unsqueeze(1))
    u.sub_(p.v_th.unsqueeze(1))
    psi = surrogate_derivative(
        p.surrogate, u, p.v_th.unsqueeze(1), p.slope.unsqueeze(1), p.dampening.unsqueeze(1),
        inplace=True,
    )
    if tr.refrac is not None:
        psi[:, 1:] *= tr.refrac[:, :-1] == 0
    return psi


def _lif_adjoint(g: Tensor, decay: Tensor) -> None:
    """dv[t] = g[t] + d[t] dv[t+1] in place over g (K, T, B, n); ``decay`` (K, 1, 1) or, for
    reset to zero, (K, T, B, n) holding at t the factor by which v[t] enters v[t+1]."""
    gs = g.unbind(1)
    ds = decay.unbind(1) if decay.dim() == 4 else None
    for t in range(len(gs) - 2, -1, -1):
        gs[t].addcmul_(decay if ds is None else ds[t], gs[t + 1])


def _bptt_adjoint(
    w: Weights, p: PopulationParameters, g: Tensor, psi: Tensor, decay: Tensor,
    zero_path: Tensor | None,
) -> None:
    """BPTT's dv over g (K, T, B, n), per step backwards (see :mod:`spiketune.snn._bptt`):
    dz = g + dv' W_eff (+ zero_path dv') - beta h', pz = psi dz, h = pz + rho h',
    dv = pz + d dv'; ``W_eff`` is each member's ``w_rec`` less its reset's own weight
    (``v_th`` I for reset by subtraction, unless ``detach_reset``)."""
    n_rec = g.shape[-1]
    w_eff = recurrent_weight(w, n_rec)
    own = p.reset == "subtract" and not p.detach_reset
    if w_eff is not None:
        w_eff = (w_eff - p.v_th * _eye(n_rec, g) if own else w_eff).contiguous()
    gs, psis = g.unbind(1), psi.unbind(1)
    ds = decay.unbind(1) if decay.dim() == 4 else None
    zs = zero_path.unbind(1) if zero_path is not None else None
    h: Tensor | None = None
    dv_next: Tensor | None = None
    for t in range(len(gs) - 1, -1, -1):
        dz = gs[t]
        if dv_next is not None:
            if w_eff is not None:
                dz.baddbmm_(dv_next, w_eff)
            elif own:
                dz.addcmul_(p.v_th, dv_next, value=-1.0)
            if zs is not None:
                dz.addcmul_(zs[t], dv_next)
        if h is not None and p.beta is not None:
            dz.addcmul_(p.beta, h, value=-1.0)
        pz = dz.mul_(psis[t])
        if p.alif and p.rho is not None:
            h = pz.clone() if h is None else torch.addcmul(pz, p.rho, h)
        if dv_next is not None:
            pz.addcmul_(decay if ds is None else ds[t], dv_next)
        dv_next = pz


def _alif_adjoint(p: PopulationParameters, g: Tensor, psi: Tensor, decay: Tensor) -> None:
    """dv for ALIF over g, per step (h carries -dE/da / beta backwards):
    pz = psi (g - beta h'), h = pz + rho h', dv = pz + d dv'."""
    assert p.beta is not None and p.rho is not None
    gs, psis = g.unbind(1), psi.unbind(1)
    ds = decay.unbind(1) if decay.dim() == 4 else None
    h = torch.zeros_like(gs[0])
    for t in range(len(gs) - 1, -1, -1):
        pz = gs[t].addcmul_(p.beta, h, value=-1.0).mul_(psis[t])
        h = torch.addcmul(pz, p.rho, h)
        if t < len(gs) - 1:
            pz.addcmul_(decay if ds is None else ds[t], gs[t + 1])


def bptt_step_autograd(
    w: Weights, p: PopulationParameters, x: Tensor, labels: Tensor
) -> PopulationStep:
    """Surrogate-gradient BPTT of every member: autograd through :func:`simulate_for_bptt`
    of the sum of the members' losses (their weights are disjoint, so each member's gradient
    is that of its own loss). ``w``'s tensors must require gradients. The reference that
    :func:`bptt_step` is tested against."""
    with torch.enable_grad():
        tr = simulate_for_bptt(w, p, x)
        loss, scores, _ = loss_and_error(tr.y, labels, p, error=False)
        total = loss.sum()
        if p.regularised:
            rate = tr.z.mean((1, 2))
            penalty = (rate - p.reg_target.unsqueeze(1)).square().sum(1)
            total = total + (p.reg_strength * penalty).sum()
        grads = torch.autograd.grad(total, [w[name] for name in w])
    spikes = tr.z.detach().sum((1, 2))
    events = torch.count_nonzero(x, dim=(1, 2)).to(x.dtype)
    return PopulationStep(
        dict(zip(w, grads, strict=True)), loss.detach(), scores.detach(), spikes, events
    )
