"""After training: quantise, re-measure accuracy and activity, and check the measured limits.

:func:`evaluate` runs a network on a data set once (no gradients) and returns its accuracy
with the activity figures hardware limits are about. :func:`assess_network` does the whole
post-training check for a target and returns metrics (for the trial's report) and the
violations (for Optuna's constraints).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.hardware._design import (
    Violation,
    check_config,
    constraints_from,
    is_integer,
    limit_violations,
)
from spiketune.hardware._quantise import QuantisedNetwork, quantise_network
from spiketune.hardware._targets import HardwareTarget, get_target
from spiketune.snn import RecurrentSNN, SpikeCounts, predict, spike_stats

__all__ = ["Activity", "HardwareAssessment", "assess_network", "evaluate"]

#: data a network can be evaluated on: a Dataset (``.inputs``, ``.labels``), a pair of tensors
#: ``(x [N, T, C], y [N])``, or an iterable of such batches (a DataLoader)
Data = Any


@dataclass(frozen=True)
class Activity:
    """One pass of a network over a data set.

    ``max_spikes_per_step``: most hidden spikes in one step of one sample;
    ``max_spikes_per_neuron_step``: most spikes of one hidden neuron in one step (above 1
    only for a neuron with ``max_spikes`` > 1);
    ``mean_spikes_per_step``: their mean over samples and steps;
    ``max_input_events_per_step``: largest input value of one channel in one step (inputs
    read as event counts); ``max_abs_membrane`` / ``max_abs_readout``: largest ``|v|`` of a
    hidden neuron and ``|y|`` of a readout unit (membrane units); ``counts``: spike totals for
    :func:`spiketune.snn.spike_stats`.
    """

    accuracy: float
    n_samples: int
    max_spikes_per_step: int
    max_spikes_per_neuron_step: int
    mean_spikes_per_step: float
    max_input_events_per_step: float
    max_abs_membrane: float
    max_abs_readout: float
    counts: SpikeCounts


@dataclass(frozen=True)
class HardwareAssessment:
    """The post-training check of a network on a target.

    ``metrics``: numbers for the trial's report (keys in :func:`assess_network`);
    ``violations``: every broken rule, design and measured; ``quantised``: the quantised
    copy (None when the target sets no weight width).
    """

    target: HardwareTarget
    metrics: dict[str, float]
    violations: list[Violation]
    quantised: QuantisedNetwork | None

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def constraints(self) -> list[float]:
        """Optuna constraint values (see :func:`spiketune.hardware.constraints_from`)."""
        return constraints_from(self.violations)


def evaluate(model: RecurrentSNN, data: Data, *, batch_size: int = 256) -> Activity:
    """Accuracy and activity of ``model`` on ``data`` (see :data:`Data`), in one pass.

    Predictions are :func:`spiketune.snn.predict` of the readout over the network's decision
    window (``config.loss_steps``)."""
    _check_arguments(model, batch_size)
    correct = n = max_spikes = max_per_neuron = 0
    spike_sum = 0.0
    steps = 0
    max_in = max_v = max_y = 0.0
    counts: SpikeCounts | None = None
    with torch.no_grad():
        for x, y in _batches(data, batch_size):
            tr = model.simulate(x)
            pred = predict(tr.readout, model.config.loss_steps, model.config.loss)
            correct += int((pred.cpu() == y.cpu().to(torch.long)).sum())
            n += int(y.shape[0])
            per_step = tr.z.sum(-1)  # (T, B): hidden spikes in each step of each sample
            max_spikes = max(max_spikes, int(per_step.max()))
            max_per_neuron = max(max_per_neuron, int(tr.z.max()) if tr.z.numel() else 0)
            spike_sum += float(per_step.sum())
            steps += per_step.numel()
            max_in = max(max_in, float(tr.x.max()) if tr.x.numel() else 0.0)
            max_v = max(max_v, float(tr.v.abs().max()))
            max_y = max(max_y, float(tr.y.abs().max()))
            c = SpikeCounts.from_trajectory(tr)
            counts = c if counts is None else counts + c
    if counts is None or n == 0:
        raise ConfigError(Problem("data", type(data).__name__, "at least one sample"))
    return Activity(
        accuracy=correct / n,
        n_samples=n,
        max_spikes_per_step=max_spikes,
        max_spikes_per_neuron_step=max_per_neuron,
        mean_spikes_per_step=spike_sum / max(steps, 1),
        max_input_events_per_step=max_in,
        max_abs_membrane=max_v,
        max_abs_readout=max_y,
        counts=counts,
    )


def assess_network(
    model: RecurrentSNN,
    target: str | HardwareTarget,
    *,
    val: Data = None,
    test: Data = None,
    per_channel: bool = False,
    bitshift_decays: bool | None = None,
    batch_size: int = 256,
) -> HardwareAssessment:
    """Quantise ``model`` to ``target``'s weight width, re-measure, and check every rule.

    ``val`` / ``test``: data to measure on (either may be None). Activity limits are checked on
    ``val`` (or ``test`` when there is no ``val``) with the quantised network: the one the chip
    would run. ``bitshift_decays``: round the decays to bit shifts (default: when the target's
    decays are bit shifts). A target with ``shared_hidden_scale`` quantises the input and
    recurrent weights on one grid, rounds the threshold to it, and simulates the copy in
    float64 (exact integer sums: ties with the threshold fire as on the chip).

    Metrics (present when their data is given): ``val_acc``, ``test_acc``, ``quant_val_acc``,
    ``quant_test_acc``, ``quant_val_drop`` (``val_acc - quant_val_acc``),
    ``max_spikes_per_step``, ``max_spikes_per_neuron_step``, ``mean_spikes_per_step``,
    ``max_input_events_per_step``,
    ``synops_per_sample``, ``state_bits_needed``; always: ``max_fan_in``, ``max_fan_out``
    (non-zero quantised weights), ``weight_bits`` (0: not quantised), ``n_violations``.
    """
    tgt = get_target(target)
    _check_arguments(model, batch_size)
    if bitshift_decays is None:
        bitshift_decays = tgt.decay == "bitshift"
    quantised = None
    deployed = model
    if tgt.weight_bits is not None:
        quantised = quantise_network(
            model, tgt.weight_bits, per_channel=per_channel, bitshift_decays=bitshift_decays,
            shared_hidden_scale=tgt.shared_hidden_scale,
            dtype=torch.float64 if tgt.shared_hidden_scale else None,
        )
        deployed = quantised.network

    metrics: dict[str, float] = {"weight_bits": float(tgt.weight_bits or 0)}
    fan_in, fan_out = _fan_in_out(deployed)
    metrics |= {"max_fan_in": float(fan_in), "max_fan_out": float(fan_out)}
    dense = {"max_fan_in", "max_fan_out"}
    violations = [v for v in check_config(tgt, model.config) if v.rule not in dense]
    violations += limit_violations(tgt, {"max_fan_in": fan_in, "max_fan_out": fan_out})

    activity: Activity | None = None
    for split, data in (("val", val), ("test", test)):
        if data is None:
            continue
        metrics[f"{split}_acc"] = evaluate(model, data, batch_size=batch_size).accuracy
        act = evaluate(deployed, data, batch_size=batch_size)
        if quantised is not None:
            metrics[f"quant_{split}_acc"] = act.accuracy
        if activity is None:
            activity = act
    if quantised is not None and "val_acc" in metrics:
        metrics["quant_val_drop"] = metrics["val_acc"] - metrics["quant_val_acc"]

    if activity is not None:
        stats = spike_stats(activity.counts, deployed)
        metrics |= {
            "max_spikes_per_step": float(activity.max_spikes_per_step),
            "max_spikes_per_neuron_step": float(activity.max_spikes_per_neuron_step),
            "mean_spikes_per_step": activity.mean_spikes_per_step,
            "max_input_events_per_step": activity.max_input_events_per_step,
            "synops_per_sample": stats.synops_per_sample,
        }
        measured: dict[str, float] = {
            "max_spikes_per_step": activity.max_spikes_per_step,
            "max_spikes_per_neuron_step": activity.max_spikes_per_neuron_step,
            "max_input_events_per_step": activity.max_input_events_per_step,
        }
        if quantised is not None:
            needed = _state_bits_needed(deployed, quantised, activity)
            metrics["state_bits_needed"] = float(needed)
            measured["state_bits"] = needed
        violations += limit_violations(tgt, measured)
    metrics["n_violations"] = float(len(violations))
    return HardwareAssessment(tgt, metrics, violations, quantised)


def _check_arguments(model: object, batch_size: object) -> None:
    """The model a chip runs here (a RecurrentSNN: quantisation and the activity figures
    read its recurrent layer) and a batch size, named when wrong."""
    problems = []
    if not isinstance(model, RecurrentSNN):
        problems.append(Problem("model", type(model).__name__, "a RecurrentSNN"))
    if not (is_integer(batch_size) and batch_size >= 1):  # type: ignore[operator]
        problems.append(Problem("batch_size", batch_size, "an integer >= 1"))
    if problems:
        raise ConfigError(problems)


def _fan_in_out(net: RecurrentSNN) -> tuple[int, int]:
    """Largest number of non-zero incoming synapses of any neuron, and of outgoing synapses of
    any hidden neuron."""
    with torch.no_grad():
        w_in, w_out = net.w_in != 0, net.w_out != 0
        rec = net.recurrent_weight()
        hidden_in = w_in.sum(1)
        hidden_out = w_out.sum(0)
        if rec is not None:
            hidden_in = hidden_in + (rec != 0).sum(1)
            hidden_out = hidden_out + (rec != 0).sum(0)
        fan_in = max(int(hidden_in.max()), int(w_out.sum(1).max()))
    return fan_in, int(hidden_out.max())


def _state_bits_needed(net: RecurrentSNN, q: QuantisedNetwork, act: Activity) -> int:
    """Signed bits to hold the threshold and the largest state seen, in units of the finest
    weight step feeding each layer (the integer domain a fixed-point chip computes in)."""
    hidden_step = min(float(q.scales[k].min()) for k in ("w_in", "w_rec") if k in q.scales)
    out_step = float(q.scales["w_out"].min())
    hidden = max(net.config.v_th, act.max_abs_membrane) / hidden_step
    readout = act.max_abs_readout / out_step
    largest = max(hidden, readout)
    return math.ceil(math.log2(largest + 1.0)) + 1


def _batches(data: Data, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    if hasattr(data, "inputs") and hasattr(data, "labels"):
        data = (data.inputs, data.labels)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        for i in range(0, x.shape[0], batch_size):
            yield x[i : i + batch_size], y[i : i + batch_size]
        return
    if not isinstance(data, Iterable):
        raise ConfigError(
            Problem("data", type(data).__name__, "a Dataset, a pair (x, y) or a DataLoader")
        )
    for batch in data:
        x, y = batch[0], batch[1]
        yield x, y
