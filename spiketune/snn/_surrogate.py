"""The spike nonlinearity and its pseudo-derivatives.

A spike is ``z = H(v - A)`` (strictly above threshold). Its derivative is zero almost
everywhere, so both learning rules replace it by a pseudo-derivative

    psi = (dampening / v_th) * g((v - A) / v_th; slope)

where ``g`` is one of three bumps, each of unit area in the scaled distance ``x = (v - A)/v_th``
(so ``slope`` only sets the width and ``dampening`` alone the total gain):

- ``triangle``:     g = slope * max(0, 1 - slope |x|)           (slope 1, dampening 0.3 is e-prop's
  ``psi = (gamma / v_th) max(0, 1 - |v - A| / v_th)``, DESIGN.md section 3);
- ``fast_sigmoid``: g = slope / (2 (1 + slope |x|)^2);
- ``arctan``:       g = slope / (2 (1 + (pi slope x / 2)^2)).

e-prop uses ``Surrogate.derivative`` directly; BPTT puts it into autograd through
:func:`spike_function`. With the same ``Surrogate`` both rules use the same pseudo-derivative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spiketune.errors import ConfigError, Problem

SURROGATES = ("triangle", "fast_sigmoid", "arctan")

SpikeFn = Callable[[Tensor, Tensor | float], Tensor]


@dataclass(frozen=True)
class Surrogate:
    """Which pseudo-derivative, how sharp (``slope``) and strong (``dampening``, e-prop's gamma)."""

    name: str = "triangle"
    slope: float = 1.0
    dampening: float = 0.3

    def __post_init__(self) -> None:
        problems = []
        if self.name not in SURROGATES:
            problems.append(Problem("surrogate", self.name, "one of " + ", ".join(SURROGATES)))
        if not self.slope > 0:
            problems.append(Problem("surrogate_slope", self.slope, "greater than 0"))
        if not self.dampening > 0:
            problems.append(Problem("surrogate_dampening", self.dampening, "greater than 0"))
        if problems:
            raise ConfigError(problems)

    def derivative(self, u: Tensor, v_th: float, *, inplace: bool = False) -> Tensor:
        """psi for the distance to threshold ``u = v - A`` (same shape as ``u``).

        ``inplace`` overwrites ``u`` (saves passes over large trajectories)."""
        return surrogate_derivative(
            self.name, u, v_th, self.slope, self.dampening, inplace=inplace
        )


def surrogate_derivative(
    name: str, u: Tensor, v_th: float | Tensor, slope: float | Tensor,
    dampening: float | Tensor, *, inplace: bool = False,
) -> Tensor:
    """psi of :class:`Surrogate` ``name`` for the distance to threshold ``u = v - A``.

    The parameters may be tensors that broadcast against ``u``: a population of networks
    (:class:`~spiketune.snn.PopulationTrainer`) gives each member its own threshold, slope and
    dampening, shaped (K, 1, 1). With floats this is exactly :meth:`Surrogate.derivative`.
    """
    k = slope
    x = u.abs_() if inplace else u.abs()
    scale = dampening * k / v_th
    if name == "triangle":  # scale * max(0, 1 - k |u| / v_th)
        return x.mul_(-k / v_th).add_(1.0).clamp_(min=0.0).mul_(scale)
    if name == "fast_sigmoid":  # scale / 2 / (1 + k |u| / v_th)^2
        return x.mul_(k / v_th).add_(1.0).square_().reciprocal_().mul_(scale / 2)
    # arctan: scale / 2 / (1 + (pi k u / (2 v_th))^2)
    return x.mul_(math.pi * k / (2 * v_th)).square_().add_(1.0).reciprocal_().mul_(scale / 2)


def heaviside(v: Tensor, threshold: Tensor | float) -> Tensor:
    """``z = H(v - threshold)``, strictly above, in v's dtype; no gradient."""
    if v.requires_grad and torch.is_grad_enabled():
        return torch.gt(v, threshold).to(v.dtype)
    # Comparing straight into a float tensor is one kernel instead of two (compare, convert):
    # this runs once per time step, so it is a visible part of a forward pass.
    return torch.gt(v, threshold, out=torch.empty_like(v))


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, pseudo-derivative backward (to v and, if a tensor, to the threshold)."""

    @staticmethod
    def forward(
        ctx: Any, v: Tensor, threshold: Tensor | float, surrogate: Surrogate, v_th: float
    ) -> Tensor:
        u = v - threshold
        ctx.save_for_backward(u)
        ctx.surrogate, ctx.v_th = surrogate, v_th
        ctx.threshold_is_tensor = isinstance(threshold, Tensor)
        return torch.gt(u, 0, out=torch.empty_like(u))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (u,) = ctx.saved_tensors
        grad_v = grad * ctx.surrogate.derivative(u, ctx.v_th)
        grad_thr = -grad_v if ctx.threshold_is_tensor and ctx.needs_input_grad[1] else None
        return grad_v, grad_thr, None, None


def spike_function(surrogate: Surrogate, v_th: float) -> SpikeFn:
    """A differentiable spike ``f(v, threshold)`` whose backward pass is ``surrogate``'s psi."""

    def spike(v: Tensor, threshold: Tensor | float) -> Tensor:
        return _SpikeFunction.apply(v, threshold, surrogate, v_th)

    return spike
