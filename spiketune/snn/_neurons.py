"""Neuron dynamics as pure functions over parameter and state records.

One step of a layer of neurons, for a batch, given the synaptic current ``i[t]`` it receives
(``W_in x[t] + W_rec z[t-1]``)::

    a[t] = rho a[t-1] + z[t-1]                                  (ALIF only)
    j[t] = alpha_syn j[t-1] + i[t]                              (CubaLIF only)
    v[t] = alpha v[t-1] + i[t] - v_th z[t-1]                    (reset "subtract")
    v[t] = alpha v[t-1] (1 - z[t-1]) + i[t]                     (reset "zero")
    v[t] = alpha v[t-1] + i[t]                                  (reset "none")
    v[t] = alpha (v[t-1] - v_th z[t-1]) + i[t]                  (reset "subtract_at_spike")
    z[t] = H(v[t] - A[t]),  A = v_th (LIF) or v_th + beta a[t] (ALIF)
    z[t] = 0 while the neuron is refractory: for ``refractory_steps`` steps after a spike

A current-based LIF (CubaLIF) puts a leaky synapse between the current and the membrane: the
membrane then integrates the synaptic current ``j[t]`` in place of ``i[t]`` (same resets,
same threshold). With ``alpha_syn = 0`` (``tau_syn`` -> 0) ``j = i`` and it is the LIF.

Reset "subtract_at_spike" is the neuron of Xylo and of Rockpool's LIFTorch: the membrane drops
by v_th in the step it spikes, so the next leak acts on the lowered value (``"subtract"``
lowers it after the leak). ``max_spikes`` > 1 (or None: no limit) lets a neuron emit several
spikes in one step, as those do: ``z[t] = min(floor(v[t] / v_th), max_spikes)`` where
``v[t] >= v_th`` (at or above, as they compare), and the reset subtracts ``v_th`` per spike.
Its surrogate gradient is a bump at each threshold multiple: that of the one nearest to v.

The membrane keeps integrating while refractory; only spiking is blocked. ``alpha``, ``rho``,
``alpha_syn`` are per-step decay factors; build them from time constants in seconds with
``from_time_constants`` (``alpha = exp(-dt / tau_mem)``).

The spike function is an argument: :func:`~spiketune.snn._surrogate.heaviside` for plain
simulation and e-prop, a surrogate-gradient function for BPTT. ``detach_reset`` stops the
gradient through the reset term (what e-prop assumes), and only matters under autograd.

Reset "none" (no reset) is a model of its own, and also how a network computes a reset by
subtraction without autograd: ``- v_th z[t-1]`` is then a self-connection of weight ``-v_th``
folded into the recurrent weights, which saves one operation per step.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.snn._surrogate import SpikeFn, heaviside

RESETS = ("subtract", "zero", "none", "subtract_at_spike")


@dataclass(frozen=True, kw_only=True)
class LIFParameters:
    """Leaky integrate-and-fire parameters; decays are per step, the threshold in membrane units.

    ``max_spikes``: spikes a neuron may emit in one step (1: binary spikes; None: no limit)."""

    alpha: float
    v_th: float = 1.0
    reset: str = "subtract"
    refractory_steps: int = 0
    max_spikes: int | None = 1

    def __post_init__(self) -> None:
        problems = self._check()
        if problems:
            raise ConfigError(problems)

    def _check(self) -> list[Problem]:
        problems = []
        if not 0.0 <= self.alpha < 1.0:
            problems.append(Problem("alpha", self.alpha, "a decay per step in [0, 1)"))
        if not self.v_th > 0:
            problems.append(Problem("v_th", self.v_th, "greater than 0"))
        if self.reset not in RESETS:
            problems.append(Problem("reset", self.reset, "one of " + ", ".join(RESETS)))
        if not (isinstance(self.refractory_steps, int) and self.refractory_steps >= 0):
            problems.append(
                Problem("refractory_steps", self.refractory_steps, "an integer >= 0 (steps)")
            )
        if self.max_spikes is not None and not (
            isinstance(self.max_spikes, int) and self.max_spikes >= 1
        ):
            problems.append(
                Problem("max_spikes", self.max_spikes, "an integer >= 1 (spikes per step), or None")
            )
        return problems

    @classmethod
    def from_time_constants(
        cls, *, tau_mem: float, dt: float, v_th: float = 1.0, reset: str = "subtract",
        refractory_steps: int = 0, max_spikes: int | None = 1,
    ) -> LIFParameters:
        """``tau_mem`` and ``dt`` in seconds."""
        return cls(
            alpha=_decay("tau_mem", tau_mem, dt), v_th=v_th, reset=reset,
            refractory_steps=refractory_steps, max_spikes=max_spikes,
        )


@dataclass(frozen=True, kw_only=True)
class ALIFParameters(LIFParameters):
    """LIF plus an adaptive threshold ``A = v_th + beta a``; ``a`` decays by ``rho`` per step."""

    rho: float
    beta: float = 1.8

    def _check(self) -> list[Problem]:
        problems = super()._check()
        if not 0.0 <= self.rho < 1.0:
            problems.append(Problem("rho", self.rho, "a decay per step in [0, 1)"))
        if not self.beta >= 0:
            problems.append(Problem("beta", self.beta, "at least 0"))
        return problems

    @classmethod
    def from_time_constants(  # type: ignore[override]
        cls, *, tau_mem: float, tau_adapt: float, dt: float, beta: float = 1.8,
        v_th: float = 1.0, reset: str = "subtract", refractory_steps: int = 0,
    ) -> ALIFParameters:
        """``tau_mem``, ``tau_adapt`` and ``dt`` in seconds."""
        return cls(
            alpha=_decay("tau_mem", tau_mem, dt), rho=_decay("tau_adapt", tau_adapt, dt),
            beta=beta, v_th=v_th, reset=reset, refractory_steps=refractory_steps,
        )


@dataclass(frozen=True, kw_only=True)
class CubaLIFParameters(LIFParameters):
    """Current-based LIF: LIF whose input passes a leaky synapse ``j[t] = alpha_syn j[t-1] +
    i[t]`` first; ``alpha_syn`` is the synaptic decay per step (0: no synaptic memory, LIF)."""

    alpha_syn: float

    def _check(self) -> list[Problem]:
        problems = super()._check()
        if not 0.0 <= self.alpha_syn < 1.0:
            problems.append(Problem("alpha_syn", self.alpha_syn, "a decay per step in [0, 1)"))
        return problems

    @classmethod
    def from_time_constants(  # type: ignore[override]
        cls, *, tau_mem: float, tau_syn: float, dt: float, v_th: float = 1.0,
        reset: str = "subtract", refractory_steps: int = 0, max_spikes: int | None = 1,
    ) -> CubaLIFParameters:
        """``tau_mem``, ``tau_syn`` and ``dt`` in seconds (``alpha_syn = exp(-dt / tau_syn)``)."""
        return cls(
            alpha=_decay("tau_mem", tau_mem, dt), alpha_syn=_decay("tau_syn", tau_syn, dt),
            v_th=v_th, reset=reset, refractory_steps=refractory_steps, max_spikes=max_spikes,
        )


class LIFState(NamedTuple):
    """State after a step: spikes ``z``, membrane ``v``, and refractory steps left (or None)."""

    z: Tensor
    v: Tensor
    refrac: Tensor | None


class ALIFState(NamedTuple):
    """LIF state plus the adaptation variable ``a``."""

    z: Tensor
    v: Tensor
    a: Tensor
    refrac: Tensor | None


class CubaLIFState(NamedTuple):
    """LIF state plus the synaptic current ``i`` (the ``j`` of the module docstring)."""

    z: Tensor
    v: Tensor
    i: Tensor
    refrac: Tensor | None


NeuronParameters = LIFParameters | ALIFParameters | CubaLIFParameters
NeuronState = LIFState | ALIFState | CubaLIFState


def initial_state(
    p: NeuronParameters, batch: int, n: int, *, device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> NeuronState:
    """All zeros: at rest, no spike, not refractory."""

    def zeros() -> Tensor:
        return torch.zeros(batch, n, device=device, dtype=dtype)

    refrac = zeros() if p.refractory_steps > 0 else None
    if isinstance(p, ALIFParameters):
        return ALIFState(zeros(), zeros(), zeros(), refrac)
    if isinstance(p, CubaLIFParameters):
        return CubaLIFState(zeros(), zeros(), zeros(), refrac)
    return LIFState(zeros(), zeros(), refrac)


def lif_step(
    i: Tensor, s: LIFState, p: LIFParameters, spike: SpikeFn = heaviside, *,
    detach_reset: bool = False, out: LIFState | None = None,
) -> tuple[Tensor, LIFState]:
    """One LIF step for input current ``i`` (batch, n). Returns the spikes and the new state.

    ``out``: write the new state into these tensors instead of allocating (no autograd then,
    and the spike must be the plain :func:`heaviside`); used to fill whole trajectories.
    """
    v = _integrate(i, s.v, s.z, p, detach_reset, None if out is None else out.v)
    z, refrac = _fire(v, s.refrac, p, spike, out)
    return z, LIFState(z, v, refrac)


def alif_step(
    i: Tensor, s: ALIFState, p: ALIFParameters, spike: SpikeFn = heaviside, *,
    detach_reset: bool = False, out: ALIFState | None = None,
) -> tuple[Tensor, ALIFState]:
    """One ALIF step: the threshold ``v_th + beta a`` rises by beta per spike, decays by rho."""
    a = torch.add(s.z, s.a, alpha=p.rho, out=None if out is None else out.a)
    v = _integrate(i, s.v, s.z, p, detach_reset, None if out is None else out.v)
    # H(v - v_th - beta a) written as spike(v - beta a, v_th): the same value and gradient.
    z, refrac = _fire(torch.add(v, a, alpha=-p.beta), s.refrac, p, spike, out)
    return z, ALIFState(z, v, a, refrac)


def cuba_lif_step(
    i: Tensor, s: CubaLIFState, p: CubaLIFParameters, spike: SpikeFn = heaviside, *,
    detach_reset: bool = False, out: CubaLIFState | None = None,
) -> tuple[Tensor, CubaLIFState]:
    """One CubaLIF step: the synaptic current ``j = alpha_syn j + i`` first, then the LIF
    membrane driven by ``j`` (see the module docstring); arguments as for :func:`lif_step`."""
    j = torch.add(i, s.i, alpha=p.alpha_syn, out=None if out is None else out.i)
    v = _integrate(j, s.v, s.z, p, detach_reset, None if out is None else out.v)
    z, refrac = _fire(v, s.refrac, p, spike, out)
    return z, CubaLIFState(z, v, j, refrac)


def neuron_step(
    i: Tensor, s: NeuronState, p: NeuronParameters, spike: SpikeFn = heaviside, *,
    detach_reset: bool = False, out: NeuronState | None = None,
) -> tuple[Tensor, NeuronState]:
    """:func:`lif_step`, :func:`alif_step` or :func:`cuba_lif_step`, chosen by the parameter
    record's type."""
    if isinstance(p, ALIFParameters):
        return alif_step(i, s, p, spike, detach_reset=detach_reset, out=out)  # type: ignore[arg-type]
    if isinstance(p, CubaLIFParameters):
        return cuba_lif_step(i, s, p, spike, detach_reset=detach_reset, out=out)  # type: ignore[arg-type]
    return lif_step(i, s, p, spike, detach_reset=detach_reset, out=out)  # type: ignore[arg-type]


def threshold_distance(
    p: NeuronParameters, v: Tensor, a: Tensor | None, *, inplace: bool = False
) -> Tensor:
    """``v - A``: how far above its threshold each neuron is (any shape).

    ``inplace`` overwrites ``v`` (saves a pass over a whole trajectory)."""
    u = v if inplace else v.clone()
    if isinstance(p, ALIFParameters) and a is not None:
        u.sub_(a, alpha=p.beta)
    return u.sub_(p.v_th)


def _integrate(
    i: Tensor, v: Tensor, z: Tensor, p: LIFParameters, detach_reset: bool, out: Tensor | None
) -> Tensor:
    if detach_reset:
        z = z.detach()
    if p.reset == "subtract":
        return torch.add(i, v, alpha=p.alpha, out=out).sub_(z, alpha=p.v_th)
    if p.reset == "subtract_at_spike":
        return torch.add(i, v, alpha=p.alpha, out=out).sub_(z, alpha=p.alpha * p.v_th)
    if p.reset == "none":
        if p.alpha == 0.0 and out is not None and out.data_ptr() == i.data_ptr():
            return out  # v = i, already in place: a network folded leak and reset into i
        return torch.add(i, v, alpha=p.alpha, out=out)
    return torch.addcmul(i, v, 1.0 - z, value=p.alpha, out=out)


def _fire(
    u: Tensor, refrac: Tensor | None, p: LIFParameters, spike: SpikeFn, out: NeuronState | None
) -> tuple[Tensor, Tensor | None]:
    """Spikes where ``u`` (v, or v - beta a) exceeds v_th and the neuron is not refractory."""
    if p.max_spikes != 1:
        z = _spike_count(u, p, spike, out)
    elif out is None:
        z = spike(u, p.v_th)
    elif spike is heaviside:
        z = torch.gt(u, _scalar(p.v_th, u.dtype, u.device), out=out.z)
    else:
        raise ValueError("out= buffers are for plain simulation: the spike must be heaviside")
    if refrac is None:
        return z, None
    if out is None:
        z = z * (refrac == 0).to(z.dtype)
        return z, (refrac - 1.0).clamp_(min=0.0).add_(z.detach(), alpha=p.refractory_steps)
    z.mul_(refrac == 0)
    new = torch.sub(refrac, 1.0, out=out.refrac).clamp_(min=0.0)
    return z, new.add_(z, alpha=p.refractory_steps)


def _spike_count(u: Tensor, p: LIFParameters, spike: SpikeFn, out: NeuronState | None) -> Tensor:
    """``min(floor(u / v_th), max_spikes)`` where ``u >= v_th``, else 0; under autograd the
    value of that count with the gradient of ``spike`` at the threshold multiple nearest u."""
    count = torch.div(u.detach(), p.v_th).floor_().clamp_(min=0.0)
    if p.max_spikes is not None:
        count.clamp_(max=float(p.max_spikes))
    if out is not None:
        if spike is not heaviside:
            raise ValueError("out= buffers are for plain simulation: the spike must be heaviside")
        return out.z.copy_(count)
    if spike is heaviside or not (u.requires_grad and torch.is_grad_enabled()):
        return count
    # The gradient of the spike nearest to v: the count is a staircase of spikes at v_th,
    # 2 v_th, ..., and each step contributes its own surrogate bump around its threshold.
    nearest = torch.div(u.detach(), p.v_th).round_().clamp_(min=1.0)
    if p.max_spikes is not None:
        nearest.clamp_(max=float(p.max_spikes))
    first = spike(u - (nearest - 1.0) * p.v_th, p.v_th)
    return first + (count - first.detach())


@functools.lru_cache(maxsize=64)
def _scalar(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A 0-d tensor for a threshold: comparing with it skips wrapping a Python number into a
    tensor at every step (measurable when it happens once per step of a long loop)."""
    return torch.tensor(value, dtype=dtype, device=device)


def _decay(name: str, tau: float, dt: float) -> float:
    if not (isinstance(dt, int | float) and dt > 0):
        raise ConfigError(Problem("dt", dt, "a step in seconds, greater than 0"))
    if not (isinstance(tau, int | float) and tau > 0):
        raise ConfigError(Problem(name, tau, "a time constant in seconds, greater than 0"))
    return math.exp(-dt / tau)
