"""Backpropagation through time with a surrogate gradient: autograd over the same time loop.

The spike's derivative is the configured pseudo-derivative (fast sigmoid, arctan or triangle,
with its slope and dampening). ``detach_reset`` stops the gradient through the reset term; with
it and without recurrent weights, BPTT's input and readout gradients equal e-prop's, which is
how the e-prop implementation is checked. The random feedback matrix plays no part: BPTT
follows the true weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spiketune.snn._loss import rate_regularisation
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._rule import LearningRule, StepResult
from spiketune.snn._stats import SpikeCounts
from spiketune.snn._surrogate import spike_function


class BPTT(LearningRule):
    """Surrogate-gradient BPTT through the whole sequence."""

    name = "bptt"

    def backward(self, net: RecurrentSNN, x: Tensor, labels: Tensor) -> StepResult:
        cfg = net.config
        loss_fn = self.loss_of(net)
        spike = spike_function(net.surrogate, cfg.v_th)
        with torch.enable_grad():
            tr = net.simulate(x, spike=spike, detach_reset=cfg.detach_reset)
            loss = loss_fn(tr.readout, labels.to(tr.y.device))
            total = loss
            if cfg.reg_strength > 0:
                reg = rate_regularisation(tr.z, cfg.reg_strength, cfg.target_rate_per_step)
                total = total + reg
            total.backward()
        return StepResult(
            loss=loss.detach(), scores=loss_fn.scores(tr.readout.detach()),
            counts=SpikeCounts.from_spikes(tr.x, tr.z.detach()),
        )
