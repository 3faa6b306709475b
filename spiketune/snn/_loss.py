"""Losses on the readout trace, and the decision read from it.

The readout ``y`` is batch-first (B, T, n_out). The *decision window* is the last ``steps``
steps (None: all steps); the loss and the prediction both look only there.

- ``ce_per_step``: softmax cross-entropy at every step of the window, averaged over batch and
  steps (e-prop's form: every step carries an error, so the learning signal is dense);
- ``ce_summed``: cross-entropy of the readout summed over the window, averaged over the batch;
- ``ce_max``: cross-entropy of each readout unit's maximum over the window (snnTorch's
  ``ce_max_membrane_loss``), averaged over the batch: a class wins by its peak, wherever in
  the window it falls, so a letter pressed early or late scores alike; the error reaches only
  the step of each unit's peak;
- prediction: argmax of the class scores: the readout summed over the window (its maximum for
  ``ce_max``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from spiketune.errors import ConfigError, Problem

LOSSES = ("ce_per_step", "ce_summed", "ce_max")


def window_start(n_steps: int, steps: int | None) -> int:
    """First step of the decision window of the last ``steps`` of ``n_steps``."""
    if steps is None:
        return 0
    if not 1 <= steps <= n_steps:
        raise ConfigError(
            Problem("loss_steps", steps, f"between 1 and the sequence length {n_steps}")
        )
    return n_steps - steps


def per_step_cross_entropy(y: Tensor, labels: Tensor, steps: int | None = None) -> Tensor:
    """Mean over batch and window steps of the per-step softmax cross-entropy."""
    w = y[:, window_start(y.shape[1], steps) :]
    target = labels.to(torch.long).unsqueeze(1).expand(-1, w.shape[1])
    return F.cross_entropy(w.reshape(-1, w.shape[-1]), target.reshape(-1))


def summed_cross_entropy(y: Tensor, labels: Tensor, steps: int | None = None) -> Tensor:
    """Mean over the batch of the cross-entropy of the readout summed over the window."""
    return F.cross_entropy(window_sum(y, steps), labels.to(torch.long))


def window_sum(y: Tensor, steps: int | None = None) -> Tensor:
    """The readout summed over the decision window, (B, n_out): the class scores."""
    return y[:, window_start(y.shape[1], steps) :].sum(1)


def window_max(y: Tensor, steps: int | None = None) -> Tensor:
    """Each readout unit's maximum over the decision window, (B, n_out): ``ce_max``'s scores.
    ``max`` rather than ``amax``: its gradient goes to the one step it picks (as the written-out
    error of :meth:`ReadoutLoss.error` does), where ``amax`` would share it among tied steps."""
    return y[:, window_start(y.shape[1], steps) :].max(1).values


def max_cross_entropy(y: Tensor, labels: Tensor, steps: int | None = None) -> Tensor:
    """Mean over the batch of the cross-entropy of each unit's maximum over the window."""
    return F.cross_entropy(window_max(y, steps), labels.to(torch.long))


def predict(y: Tensor, steps: int | None = None, kind: str = "ce_summed") -> Tensor:
    """Predicted class per sample: argmax of the readout summed over the window (of its
    maximum over the window when ``kind`` is ``ce_max``)."""
    return ReadoutLoss(kind, steps).scores(y).argmax(-1)


@dataclass(frozen=True)
class ReadoutLoss:
    """A loss by name (``ce_per_step``, ``ce_summed`` or ``ce_max``) over the last ``steps``
    steps."""

    kind: str = "ce_per_step"
    steps: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise ConfigError(Problem("loss", self.kind, "one of " + ", ".join(LOSSES)))
        if self.steps is not None and not (isinstance(self.steps, int) and self.steps >= 1):
            raise ConfigError(Problem("loss_steps", self.steps, "an integer >= 1, or None"))

    @property
    def per_step(self) -> bool:
        """True when each step's error is known at that step (what online e-prop needs)."""
        return self.kind == "ce_per_step"

    def __call__(self, y: Tensor, labels: Tensor) -> Tensor:
        """The loss of batch-first readout ``y`` (B, T, n_out)."""
        if self.kind == "ce_per_step":
            return per_step_cross_entropy(y, labels, self.steps)
        if self.kind == "ce_max":
            return max_cross_entropy(y, labels, self.steps)
        return summed_cross_entropy(y, labels, self.steps)

    def error(self, y: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and its gradient ``dE/dy`` for a *time-major* readout ``y`` (T, B, n_out).

        Written out rather than taken from autograd: e-prop needs only this (T, B, n_out)
        error, and the softmax is taken over a class-major copy because a softmax along a
        short last dimension is slow on CPUs.
        """
        n_steps, batch, n_out = y.shape
        start = window_start(n_steps, self.steps)
        labels = labels.to(device=y.device, dtype=torch.long)
        onehot = F.one_hot(labels, n_out).to(y.dtype)  # (B, n_out)
        err = torch.zeros_like(y)
        if self.kind == "ce_per_step":
            w = y[start:].permute(2, 0, 1).contiguous()  # (n_out, W, B)
            logp = torch.log_softmax(w, 0)
            n = batch * (n_steps - start)
            picked = logp.gather(0, labels.view(1, 1, batch).expand(1, w.shape[1], batch))
            loss = -picked.sum() / n
            grad = logp.exp_().sub_(onehot.t().unsqueeze(1)).div_(n)
            err[start:] = grad.permute(1, 2, 0)
        elif self.kind == "ce_max":
            peak, at = y[start:].max(0)  # (B, n_out): each unit's maximum and its step
            logp = torch.log_softmax(peak, 1)
            loss = -(logp * onehot).sum() / batch
            err[start:].scatter_(0, at.unsqueeze(0), logp.exp_().sub_(onehot).div_(batch)
                                 .unsqueeze(0))
        else:
            logp = torch.log_softmax(y[start:].sum(0), 1)  # (B, n_out)
            loss = -(logp * onehot).sum() / batch
            err[start:] = logp.exp_().sub_(onehot).div_(batch)
        return loss, err

    def scores(self, y: Tensor) -> Tensor:
        """Class scores (B, n_out) of a batch-first readout: the readout summed over the
        window, or each unit's maximum over it (``ce_max``)."""
        if self.kind == "ce_max":
            return window_max(y, self.steps)
        return window_sum(y, self.steps)


def rate_regularisation(z: Tensor, strength: float, target_per_step: float) -> Tensor:
    """``strength * sum_j (r_j - r*)^2`` with ``r_j`` neuron j's spikes per step, averaged over
    batch and time of the time-major spikes ``z`` (T, B, n_rec), and ``r*`` the target per step
    (the target in Hz times ``dt``). Pulls every neuron's rate toward the target."""
    rate = z.mean((0, 1))
    return strength * (rate - target_per_step).square().sum()
