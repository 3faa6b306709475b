"""Backpropagation through time with a surrogate gradient: autograd over the same time loop.

The spike's derivative is the model's pseudo-derivative: for a :class:`RecurrentSNN` the
configured fast sigmoid, arctan or triangle, with its slope and dampening (the L²MU takes its
fused path, whose backward pass is written out; the LMU has no spikes). For a RecurrentSNN,
``detach_reset`` stops the gradient through the reset term; with it and without recurrent
weights, BPTT's input and readout gradients equal e-prop's, which is how the e-prop
implementation is checked. The random feedback matrix plays no part: BPTT follows the true
weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spiketune.snn._model import Model
from spiketune.snn._rule import LearningRule, StepResult


class BPTT(LearningRule):
    """Surrogate-gradient BPTT through the whole sequence, for any :class:`Model`: autograd
    through ``net.simulate_for_bptt``."""

    name = "bptt"

    def backward(self, net: Model, x: Tensor, labels: Tensor) -> StepResult:
        loss_fn = self.loss_of(net)
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
