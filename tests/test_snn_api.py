"""The public surface of spiketune.snn is exactly what __all__ says."""

from __future__ import annotations

import spiketune.snn as snn

PUBLIC = {
    "ALIFParameters", "ALIFState", "BPTT", "Checkpoint", "CheckpointScore", "CubaLIFParameters",
    "CubaLIFState", "EProp",
    "EpochMetrics", "Evaluation", "History", "L2MU", "L2MUParameters", "L2MUState",
    "L2MUWeights", "LIFParameters", "LIFState", "LMU", "LMUParameters", "LMUState",
    "LMUWeights", "LearningRule", "Model", "PopulationProbe", "PopulationTrainer",
    "ProbeDevice", "ProbeRow", "ReadoutLoss",
    "RecurrentSNN", "SNNConfig", "SpikeCounts", "SpikeStats", "StepResult", "Surrogate",
    "TrainConfig", "Trainer", "Trajectory", "alif_step", "configs_from_params", "cuba_lif_step",
    "as_trained", "discretise", "evaluate_checkpoint", "group_members", "population_key",
    "heaviside",
    "batchable", "initial_state",
    "l2mu_initial_state", "l2mu_step", "legendre_matrices", "lif_step",
    "lmu_initial_state", "lmu_step", "load_checkpoint", "load_weights", "make_rule",
        "model_from_params",
    "neuron_step", "per_step_cross_entropy", "predict", "probe_population",
    "rate_regularisation",
    "TrainingDiverged", "fold_best", "fold_result", "is_spiking",
    "model_and_config_from_params", "predict_classes", "train_folds", "train_population",
    "transfer_weights",
    "save_checkpoint", "spike_function", "spike_stats", "summed_cross_entropy",
}


def test_all_is_the_public_api() -> None:
    assert set(snn.__all__) == PUBLIC
    for name in snn.__all__:
        assert getattr(snn, name).__module__.startswith("spiketune.snn")
    exported = {n for n in dir(snn) if not n.startswith("_")}
    assert exported - PUBLIC <= {"annotations"}  # nothing public beyond __all__


def test_rules_by_name() -> None:
    cfg = snn.SNNConfig(n_in=1, n_rec=2, n_out=2, eprop_mode="online")
    rule = snn.make_rule(cfg)
    assert isinstance(rule, snn.EProp) and rule.mode == "online"
    assert isinstance(snn.make_rule("bptt"), snn.BPTT)
