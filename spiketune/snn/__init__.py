"""The SNN core: recurrent LIF/ALIF/CubaLIF networks trained by e-prop and by BPTT, and the Legendre
Memory Units (the non-spiking :class:`LMU` and the spiking :class:`L2MU`) trained by BPTT.

Build a network from an :class:`SNNConfig` (or straight from an HPO trial's flat parameter
dict with :func:`configs_from_params`, or any model and its training configuration with
:func:`model_and_config_from_params`), pick its learning rule with :func:`make_rule`, and
train it with a :class:`Trainer` (one network per fold of a trial, in lock-step:
:func:`train_folds`, then :func:`fold_result`; K networks that
differ in their hyperparameters: as one batched computation with a
:class:`PopulationTrainer`, K and its CPU threads measured by :func:`probe_population`;
several trials' fold networks as populations that members join and leave:
:func:`train_population`); the
Trainer, checkpoints and spike statistics take any :class:`Model`. Dynamics are pure
functions (:func:`lif_step`, :func:`alif_step`, :func:`cuba_lif_step`, :func:`lmu_step`,
:func:`l2mu_step`) over parameter records; times are in seconds, decays per step.
"""

from __future__ import annotations

from spiketune.snn._bptt import BPTT
from spiketune.snn._checkpoint import Checkpoint, load_checkpoint, load_weights, save_checkpoint
from spiketune.snn._config import SNNConfig, TrainConfig, configs_from_params
from spiketune.snn._eprop import EProp
from spiketune.snn._evaluate import CheckpointScore, as_trained, evaluate_checkpoint
from spiketune.snn._folds import (
    TrainingDiverged,
    fold_best,
    fold_result,
    predict_classes,
    train_folds,
    train_population,
)
from spiketune.snn._from_params import (
    is_spiking,
    model_and_config_from_params,
    model_from_params,
)
from spiketune.snn._lmu import (
    L2MU,
    LMU,
    L2MUParameters,
    L2MUState,
    L2MUWeights,
    LMUParameters,
    LMUState,
    LMUWeights,
    discretise,
    l2mu_initial_state,
    l2mu_step,
    legendre_matrices,
    lmu_initial_state,
    lmu_step,
)
from spiketune.snn._loss import (
    ReadoutLoss,
    per_step_cross_entropy,
    predict,
    rate_regularisation,
    summed_cross_entropy,
)
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN, Trajectory
from spiketune.snn._neurons import (
    ALIFParameters,
    ALIFState,
    CubaLIFParameters,
    CubaLIFState,
    LIFParameters,
    LIFState,
    alif_step,
    cuba_lif_step,
    initial_state,
    lif_step,
    neuron_step,
)
from spiketune.snn._population import (
    PopulationTrainer,
    batchable,
    group_members,
    population_key,
)
from spiketune.snn._probe import PopulationProbe, ProbeDevice, ProbeRow, probe_population
from spiketune.snn._registry import make_rule
from spiketune.snn._rule import LearningRule, StepResult
from spiketune.snn._stats import SpikeCounts, SpikeStats, spike_stats
from spiketune.snn._surrogate import Surrogate, heaviside, spike_function
from spiketune.snn._trainer import EpochMetrics, Evaluation, History, Trainer
from spiketune.snn._transfer import transfer_weights

__all__ = [
    "BPTT",
    "L2MU",
    "LMU",
    "ALIFParameters",
    "ALIFState",
    "Checkpoint",
    "CheckpointScore",
    "CubaLIFParameters",
    "CubaLIFState",
    "EProp",
    "EpochMetrics",
    "Evaluation",
    "History",
    "L2MUParameters",
    "L2MUState",
    "L2MUWeights",
    "LIFParameters",
    "LIFState",
    "LMUParameters",
    "LMUState",
    "LMUWeights",
    "LearningRule",
    "Model",
    "PopulationProbe",
    "PopulationTrainer",
    "ProbeDevice",
    "ProbeRow",
    "ReadoutLoss",
    "RecurrentSNN",
    "SNNConfig",
    "SpikeCounts",
    "SpikeStats",
    "StepResult",
    "Surrogate",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "Trajectory",
    "alif_step",
    "as_trained",
    "batchable",
    "configs_from_params",
    "cuba_lif_step",
    "discretise",
    "evaluate_checkpoint",
    "fold_best",
    "fold_result",
    "group_members",
    "heaviside",
    "initial_state",
    "is_spiking",
    "l2mu_initial_state",
    "l2mu_step",
    "legendre_matrices",
    "lif_step",
    "lmu_initial_state",
    "lmu_step",
    "load_checkpoint",
    "load_weights",
    "make_rule",
    "model_and_config_from_params",
    "model_from_params",
    "neuron_step",
    "per_step_cross_entropy",
    "population_key",
    "predict",
    "predict_classes",
    "probe_population",
    "rate_regularisation",
    "save_checkpoint",
    "spike_function",
    "spike_stats",
    "summed_cross_entropy",
    "train_folds",
    "train_population",
    "transfer_weights",
]
