"""The SNN core: recurrent LIF/ALIF networks trained by e-prop and by BPTT.

Build a network from an :class:`SNNConfig` (or straight from an HPO trial's flat parameter
dict with :func:`configs_from_params`), pick its learning rule with :func:`make_rule`, and
train it with a :class:`Trainer`. Neuron dynamics are pure functions (:func:`lif_step`,
:func:`alif_step`) over parameter records; time constants are in seconds, decays per step.
"""

from __future__ import annotations

from spiketune.snn._bptt import BPTT
from spiketune.snn._checkpoint import Checkpoint, load_checkpoint, load_weights, save_checkpoint
from spiketune.snn._config import SNNConfig, TrainConfig, configs_from_params
from spiketune.snn._eprop import EProp
from spiketune.snn._evaluate import CheckpointScore, evaluate_checkpoint
from spiketune.snn._loss import (
    ReadoutLoss,
    per_step_cross_entropy,
    predict,
    rate_regularisation,
    summed_cross_entropy,
)
from spiketune.snn._network import RecurrentSNN, Trajectory
from spiketune.snn._neurons import (
    ALIFParameters,
    ALIFState,
    LIFParameters,
    LIFState,
    alif_step,
    initial_state,
    lif_step,
    neuron_step,
)
from spiketune.snn._registry import make_rule
from spiketune.snn._rule import LearningRule, StepResult
from spiketune.snn._stats import SpikeCounts, SpikeStats, spike_stats
from spiketune.snn._surrogate import Surrogate, heaviside, spike_function
from spiketune.snn._trainer import EpochMetrics, Evaluation, History, Trainer

__all__ = [
    "BPTT",
    "ALIFParameters",
    "ALIFState",
    "Checkpoint",
    "CheckpointScore",
    "EProp",
    "EpochMetrics",
    "Evaluation",
    "History",
    "LIFParameters",
    "LIFState",
    "LearningRule",
    "ReadoutLoss",
    "RecurrentSNN",
    "SNNConfig",
    "SpikeCounts",
    "SpikeStats",
    "StepResult",
    "Surrogate",
    "TrainConfig",
    "Trainer",
    "Trajectory",
    "alif_step",
    "configs_from_params",
    "evaluate_checkpoint",
    "heaviside",
    "initial_state",
    "lif_step",
    "load_checkpoint",
    "load_weights",
    "make_rule",
    "neuron_step",
    "per_step_cross_entropy",
    "predict",
    "rate_regularisation",
    "save_checkpoint",
    "spike_function",
    "spike_stats",
    "summed_cross_entropy",
]
