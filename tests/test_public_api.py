"""The public surface: the exact ``__all__`` of every public package, names that resolve, lazy
packages that list what they export, deprecated paths that warn and forward, and examples and
templates that import only public names."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: package -> its public names, exactly
PUBLIC: dict[str, set[str]] = {
    "spiketune": {
        "CheckpointError", "ConfigError", "DataError", "Experiment", "ExperimentConfig",
        "ExperimentResults", "ExportError", "HardwareError", "Outcome", "Predictions", "Problem",
        "Progress", "SearchSpace", "SearchSpaceError", "SpiketuneError", "StorageError",
        "TrialError", "TrialRecord", "__version__", "build_report", "export_results",
        "load_best_model", "load_config", "load_results", "offer_best_model",
    },
    "spiketune.trial": {
        "ENV_CONCURRENCY", "ENV_EXPERIMENT_DIR", "ENV_EXPERIMENT_ID", "ENV_PARAMETERS",
        "ENV_PARAMETER_FILE", "ENV_SEQUENCE_ID", "ENV_TRIAL_DIR", "ENV_TRIAL_ID",
        "ENV_TRIAL_THREADS", "METRICS_FILE", "PARAMETER_FILE",
        "BestModel", "Member", "Predictions", "TrialStopped", "experiment_dir_of_trial",
        "flat_parameters",
        "get_current_parameter", "get_experiment_id", "get_next_parameter",
        "get_next_parameters", "get_sequence_id", "get_trial_dir", "get_trial_id",
        "in_population", "joining", "normalize_metric", "offer_best_model", "population",
        "stop_joining", "report_final_result", "report_intermediate_result", "seed_everything",
        "trial_deadline", "trial_device", "trial_time_limit",
        "trial_threads", "add_trial_options", "epoch_report", "keep_trial_model", "start_trial",
        "trial_output_dir", "PreparedMember", "train_members", "with_defaults",
    },
    "spiketune.engine": {
        "Experiment", "ExperimentConfig", "ExperimentResults", "Outcome", "Progress",
        "Retrained", "RetrainedRun", "SearchSpace", "TrialRecord", "chosen_trial",
        "export_results", "find_experiment", "load_best_model", "load_config",
        "load_predictions", "load_results", "load_retrained", "retrain", "save_retrained",
    },
    "spiketune.snn": {
        "ALIFParameters", "ALIFState", "BPTT", "Checkpoint", "CheckpointScore", "CubaLIFParameters",
        "CubaLIFState", "EProp",
        "EpochMetrics", "Evaluation", "History", "L2MU", "L2MUParameters", "L2MUState",
        "L2MUWeights", "LIFParameters", "LIFState", "LMU", "LMUParameters", "LMUState",
        "LMUWeights", "LearningRule", "Model", "PopulationProbe", "PopulationTrainer",
        "ProbeDevice", "ProbeRow", "ReadoutLoss",
        "RecurrentSNN", "SNNConfig", "SpikeCounts", "SpikeStats", "StepResult", "Surrogate",
        "TrainConfig", "Trainer", "Trajectory", "alif_step", "configs_from_params", "cuba_lif_step",
        "as_trained", "discretise", "evaluate_checkpoint", "group_members", "heaviside",
        "initial_state",
        "l2mu_initial_state", "l2mu_step", "legendre_matrices", "lif_step",
        "lmu_initial_state", "lmu_step", "load_checkpoint", "load_weights", "make_rule",
        "model_from_params", "TrainingDiverged", "fold_best", "fold_result",
        "is_spiking", "model_and_config_from_params", "predict_classes", "train_folds",
        "train_population", "neuron_step", "per_step_cross_entropy", "population_key", "predict",
        "batchable", "probe_population",
        "rate_regularisation",
        "save_checkpoint", "spike_function", "spike_stats", "summed_cross_entropy",
        "transfer_weights",
    },
    "spiketune.data": {
        "BRAILLE_ARCHIVE", "BRAILLE_ARCHIVE_MD5", "BRAILLE_LETTERS", "BRAILLE_PRESETS",
        "BRAILLE_REDUCED_LETTERS", "BRAILLE_THRESHOLDS", "CACHE_ENV", "SPIKE_PATTERNS",
        "SPIKE_PATTERN_RATIOS", "WISDM_ACTIVITIES", "WISDM_ARCHIVE", "WISDM_HAND_ACTIVITIES",
        "BrailleLoader", "BrailleOptions", "Dataset", "DatasetInfo", "DatasetLoader",
        "MihalasNieburParams", "MihalasNieburState", "RemoteFile", "SpikePattern",
        "SpikePatternLoader", "SpikePatternOptions", "Split", "WisdmData", "WisdmLoader",
        "WisdmOptions", "bin_events", "braille_file_threshold", "braille_frames_from_array",
        "cache_dir", "download", "extract_member", "load_braille",
        "load_braille_pool", "load_nir_braille", "load_wisdm", "make_spike_patterns",
        "mihalas_niebur_step", "read_braille_events", "safe_load", "sigma_delta_encode",
        "simulate_mihalas_niebur", "stratified_resplits", "stratified_split",
        "BRAILLE_DATA_ENV", "BRAILLE_TASK_DEFAULTS", "SPLIT_RATIOS", "SPLIT_SEED", "SplitParts",
        "data_location", "is_braille_pool", "load_braille_encoding", "load_braille_other_letters",
        "load_braille_split",
        "split_parts",
    },
    "spiketune.hardware": {
        "NETWORK_KEYS", "RULES", "TARGETS", "Activity", "GenericTarget", "HardwareAssessment",
        "HardwareTarget", "Loihi2", "NetworkLayout", "ParameterCheck", "Population",
        "QuantisedNetwork", "RockpoolCheck", "SpiNNaker2", "Violation", "XyloAudio2", "XyloIMU",
        "assess_network", "bitshift_decay", "check_config", "check_design", "check_layout",
        "check_model", "constraints_from", "evaluate", "get_target", "layout_of",
        "quantise_network", "quantise_tensor", "rockpool_check",
    },
    "spiketune.launcher": {
        "config_changes", "format_duration", "format_percent", "narrow_choice", "print_finish",
        "print_start", "print_summary", "progress_printer", "with_options",
        "add_budget_options", "add_experiment_options", "add_selection_options",
        "add_smoke_options", "parse_launcher_args", "run_experiment", "trial_command_change",
        "add_population_options", "population_size", "use_population_probe", "refill_count",
        "launch", "trial_module",
    },
    "spiketune.report": {
        "ACCURACY_AXES", "Importances", "ReportFiles", "accuracy_axes", "build_report",
        "confusion_matrix", "param_importances", "plot_confusion_matrix", "report_command",
    },
    "spiketune.nir": {
        "APPROXIMATIONS", "TARGETS", "ExportCheck", "GraphTypeWarning", "Simulation",
        "check_export", "export", "export_best_model", "read", "simulate", "to_graph",
        "to_network",
    },
}

#: packages whose names are imported on first use (PEP 562): dir() is their __all__
LAZY = ["spiketune", "spiketune.engine", "spiketune.hardware", "spiketune.nir"]
#: packages that import their names eagerly: nothing public in them beyond __all__
EAGER = ["spiketune.snn", "spiketune.data", "spiketune.report", "spiketune.launcher"]

#: what examples and templates may import from spiketune
IMPORTABLE = {*PUBLIC, "spiketune.compat.nni"}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_exactly_the_public_api(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == PUBLIC[package]
    assert len(module.__all__) == len(set(module.__all__)), "a name is listed twice"
    for name in module.__all__:
        value = getattr(module, name)  # every name resolves
        owner = getattr(value, "__module__", None)
        if isinstance(value, type | types.FunctionType):
            assert owner is not None and owner.startswith("spiketune."), (name, owner)


@pytest.mark.parametrize("package", LAZY)
def test_lazy_packages_list_their_all(package: str) -> None:
    module = importlib.import_module(package)
    assert dir(module) == sorted(module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("package", EAGER)
def test_eager_packages_export_nothing_beyond_all(package: str) -> None:
    module = importlib.import_module(package)
    extra = {
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    } - set(module.__all__) - {"annotations"}
    assert extra == set()


def test_lazy_packages_import_nothing_heavy() -> None:
    """A trial imports ``spiketune`` first: the lazy packages must not pull in the engine's or
    the SNN core's dependencies until a name is used."""
    code = (
        "import sys, spiketune, spiketune.engine, spiketune.hardware, spiketune.nir, "
        "spiketune.trial\n"
        "print(sorted(m for m in ('optuna', 'torch', 'pydantic', 'sqlalchemy', 'nir', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ deprecated paths
MOVED = [
    ("spiketune.artifacts", "offer_best_model", "spiketune.trial"),
    ("spiketune.artifacts", "load_best_model", "spiketune.engine"),
    ("spiketune.artifacts", "Predictions", "spiketune.trial"),
    ("spiketune.artifacts", "BestModel", "spiketune.trial"),
    ("spiketune.artifacts", "load_predictions", "spiketune.engine"),
    ("spiketune.artifacts", "experiment_dir_of_trial", "spiketune.trial"),
    ("spiketune.storage", "find_experiment", "spiketune.engine"),
    ("spiketune.scheduler", "Progress", "spiketune"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_deprecated_paths_warn_and_forward(old: str, name: str, new: str) -> None:
    """Projects written by an earlier ``spiketune init`` import these paths."""
    with pytest.warns(DeprecationWarning) as warned:
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)
    message = str(warned[0].message)
    assert f"{old}.{name}" in message  # what moved...
    after = message.split(f"{old}.{name}", 1)[1]
    assert re.search(rf"(?<![\w.]){re.escape(new)}(?![\w.])", after), message  # ...and where
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old}.{name}")):
        exec(f"from {old} import {name}", namespace)  # the form old projects use
    assert namespace[name] is value


def test_deprecated_paths_serve_nothing_new() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Experiment'"):
        importlib.import_module("spiketune.scheduler").Experiment  # noqa: B018


# ------------------------------------------------------------------------------ examples
def _python_files() -> list[Path]:
    files = {p.resolve() for p in (REPO / "examples").rglob("*.py")}
    files |= {p.resolve() for p in (REPO / "spiketune" / "templates").rglob("*.py")}
    files.add((REPO / "spiketune" / "demo.py").resolve())
    return sorted(files)


def _spiketune_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [m for m in found if m == "spiketune" or m.startswith("spiketune.")]


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: p.name)
def test_examples_and_templates_import_only_public_names(path: Path) -> None:
    private = [m for m in _spiketune_imports(path) if m not in IMPORTABLE]
    assert private == [], f"{path} imports {private}; import from {sorted(IMPORTABLE)}"
    assert "sys.path" not in path.read_text(encoding="utf-8"), f"{path} edits sys.path"
