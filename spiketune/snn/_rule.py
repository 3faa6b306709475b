"""The extension point for learning rules: how one batch's gradients are computed.

Lifecycle of a :class:`LearningRule`:

1. built once per training run: for a :class:`RecurrentSNN` by name from its config
   (:func:`make_rule`), for any other :class:`Model` it is BPTT; the trainer refuses a rule
   whose :meth:`LearningRule.supports` says no to the model;
2. for each batch the training loop calls ``optimizer.zero_grad()``, then
   ``rule.backward(net, x, labels)``, which runs the forward pass and *adds* the gradient of
   the loss to ``.grad`` of the network's parameters (exactly like ``loss.backward()``), and
   returns a :class:`StepResult`; then ``optimizer.step()``.

A rule keeps no state between batches; every hyperparameter it needs (surrogate, feedback,
regularisation, loss) is read from the model (``net.config`` for a RecurrentSNN), so a
checkpoint rebuilds the same rule.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from spiketune.snn._loss import ReadoutLoss
from spiketune.snn._model import Model
from spiketune.snn._stats import SpikeCounts


@dataclass(frozen=True)
class StepResult:
    """What one batch's forward pass produced, all detached.

    ``loss`` is the task loss (without the rate regulariser), a 0-dim tensor; ``scores`` the
    readout summed over the decision window (B, n_out), whose argmax is the prediction;
    ``counts`` the spike counts (for :func:`spike_stats`; None for a model that does not
    spike). Rules do not hand back whole trajectories (online e-prop never holds one): call
    ``net.simulate`` for those.
    """

    loss: Tensor
    scores: Tensor
    counts: SpikeCounts | None


class LearningRule(ABC):
    """Computes gradients of a :class:`Model` for one batch; see the module docstring."""

    name: ClassVar[str]

    @abstractmethod
    def backward(self, net: Model, x: Tensor, labels: Tensor) -> StepResult:
        """Forward ``x`` (B, T, n_in), add d(loss)/d(parameter) to each ``.grad``."""

    def supports(self, net: Model) -> bool:
        """Whether this rule can train ``net`` (default: any model)."""
        return True

    @staticmethod
    def loss_of(net: Model) -> ReadoutLoss:
        return net.readout_loss()


def add_grad(param: Tensor | None, grad: Tensor) -> None:
    """Accumulate ``grad`` into ``param.grad`` the way autograd does."""
    if param is None:
        return
    grad = grad.to(dtype=param.dtype, device=param.device)
    if param.grad is None:
        param.grad = grad.clone() if grad.data_ptr() == param.data_ptr() else grad.contiguous()
    else:
        param.grad.add_(grad)
