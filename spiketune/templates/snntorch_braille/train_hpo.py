"""The network and its training, in snnTorch: the NIR paper's Braille RSNN (Pedersen et al.,
Nature Communications 15:8122, 2024; neuromorphs/NIR, paper/03_rnn).

Input spikes (12 taxels) → ``nn.Linear`` → a recurrent layer of ``nb_hidden`` current-based
LIF neurons (``snn.RSynaptic``: synaptic decay ``alpha_r``, membrane decay ``beta_r``,
all-to-all recurrent weights, reset by subtraction) → ``nn.Linear`` → 7 leaky integrators
(``snn.Synaptic`` with ``alpha_out``, ``beta_out`` and no reset: their membranes are the
readout, they never spike). The spike's surrogate derivative is
``surrogate.fast_sigmoid(slope=slope)``.

The loss is the cross-entropy of each readout neuron's membrane at its maximum over the
sample (the readout of the Braille benchmark's RSNN, Müller-Cleve et al. 2022): the maximum
stays on the scale of one membrane whatever the leak, where a sum over 256 steps grows with
``1 / (1 - beta_out)``. Two spike-count regularisers on the hidden layer, as the NIR paper's
code has them: ``reg_l1`` times the mean spike count of a neuron in a sample, plus ``reg_l2``
times the mean square of a sample's total spike count. Adam with ``lr``; the predicted class
is the argmax of the same maximum.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES = 7
#: Not searched: the batch size of the NIR paper's code, and the hidden layer's reset.
BATCH_SIZE = 64
HIDDEN_RESET = "subtract"


class BrailleRSNN(nn.Module):
    """Recurrent spiking layer and leaky readout; ``forward`` runs a whole sample."""

    def __init__(self, n_inputs: int, params: Mapping[str, Any]) -> None:
        super().__init__()
        nb_hidden = int(params["nb_hidden"])  # quniform gives a float
        spike_grad = surrogate.fast_sigmoid(slope=float(params["slope"]))
        self.fc1 = nn.Linear(n_inputs, nb_hidden)
        self.lif1 = snn.RSynaptic(
            alpha=float(params["alpha_r"]), beta=float(params["beta_r"]),
            linear_features=nb_hidden, spike_grad=spike_grad, reset_mechanism=HIDDEN_RESET,
        )
        self.fc2 = nn.Linear(nb_hidden, N_CLASSES)
        self.lif2 = snn.Synaptic(
            alpha=float(params["alpha_out"]), beta=float(params["beta_out"]),
            spike_grad=spike_grad, reset_mechanism="none",
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``[T, B, n_inputs]`` (time first). Returns the readout membranes
        ``[T, B, 7]`` and the hidden layer's spikes ``[T, B, nb_hidden]``."""
        spk1, syn1, mem1 = self.lif1.reset_mem()
        syn2, mem2 = self.lif2.reset_mem()
        mem_rec, spk_rec = [], []
        for step in range(x.shape[0]):
            spk1, syn1, mem1 = self.lif1(self.fc1(x[step]), spk1, syn1, mem1)
            _, syn2, mem2 = self.lif2(self.fc2(spk1), syn2, mem2)
            mem_rec.append(mem2)
            spk_rec.append(spk1)
        return torch.stack(mem_rec), torch.stack(spk_rec)


def scores(mem_out: torch.Tensor) -> torch.Tensor:
    """Class scores ``[B, 7]``: each readout membrane at its maximum over time."""
    return mem_out.max(dim=0).values


def loss_fn(
    mem_out: torch.Tensor, spk_hid: torch.Tensor, labels: torch.Tensor, params: Mapping[str, Any]
) -> torch.Tensor:
    """Cross-entropy of the scores plus the two spike-count regularisers."""
    counts = spk_hid.sum(dim=0)  # [B, nb_hidden]: spikes of each neuron in each sample
    reg = (float(params["reg_l1"]) * counts.mean()
           + float(params["reg_l2"]) * (counts.sum(dim=1) ** 2).mean())
    return F.cross_entropy(scores(mem_out), labels) + reg


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float
    spikes_per_sample: float  # hidden-layer spikes in one sample, on average
    predictions: torch.Tensor  # the predicted class of each sample, in order


def train_epoch(
    net: BrailleRSNN,
    data: TensorDataset,
    optimizer: torch.optim.Optimizer,
    params: Mapping[str, Any],
    device: torch.device,
) -> tuple[float, float]:
    """One pass over ``data`` in shuffled batches; mean loss and accuracy seen while training."""
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in DataLoader(data, batch_size=BATCH_SIZE, shuffle=True):
        x, y = x.to(device).swapaxes(0, 1), y.to(device)  # time first
        mem_out, spk_hid = net(x)
        loss = loss_fn(mem_out, spk_hid, y, params)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(y)
        correct += int((scores(mem_out).argmax(dim=1) == y).sum())
        seen += len(y)
    return total_loss / seen, correct / seen


@torch.no_grad()
def evaluate(
    net: BrailleRSNN, data: TensorDataset, params: Mapping[str, Any], device: torch.device
) -> Evaluation:
    """Loss, accuracy, spikes per sample and predictions on ``data``, in its order."""
    net.eval()
    total_loss, spikes, predictions = 0.0, 0.0, []
    for x, y in DataLoader(data, batch_size=256):
        x, y = x.to(device).swapaxes(0, 1), y.to(device)
        mem_out, spk_hid = net(x)
        total_loss += loss_fn(mem_out, spk_hid, y, params).item() * len(y)
        spikes += float(spk_hid.sum())
        predictions.append(scores(mem_out).argmax(dim=1).cpu())
    predicted = torch.cat(predictions)
    n = len(predicted)
    accuracy = int((predicted == data.tensors[1]).sum()) / n if n else math.nan
    return Evaluation(total_loss / n, accuracy, spikes / n, predicted)


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> BrailleRSNN:
    """The network a trial saved as ``best_model.pt`` (state_dict + hyperparameters)."""
    saved = torch.load(path, map_location=device, weights_only=True)
    net = BrailleRSNN(int(saved["n_inputs"]), saved["parameters"]).to(device)
    net.load_state_dict(saved["state_dict"])
    return net
