"""Experiment configuration: three input forms, one schema, every problem reported at once."""

from __future__ import annotations

import json
import os
import pickle
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest

from spiketune.engine.config import ExperimentConfig, load_config
from spiketune.errors import ConfigError, Problem

GOLDEN = Path(__file__).resolve().parent / "golden"
SPACE = {"x": {"_type": "uniform", "_value": [0, 1]}}
UPDATE = os.environ.get("SPIKETUNE_UPDATE_GOLDEN") == "1"


def machine_independent(data: dict[str, Any]) -> dict[str, Any]:
    """Paths under the golden folder or the home folder written relative to them."""
    text = json.dumps(data, indent=2, sort_keys=True)
    text = text.replace(str(GOLDEN), "<golden>").replace(str(Path.home()), "<home>")
    return json.loads(text)


def check_golden(config: ExperimentConfig, expected: Path) -> None:
    got = machine_independent(config.to_dict())
    if UPDATE:
        expected.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(expected.read_text())
    # the canonical form reads back to the same configuration
    assert ExperimentConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, Problem]:
    return {p.field: p for p in exc.value.problems}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------- golden files


def test_golden_python_form() -> None:
    kwargs = runpy.run_path(str(GOLDEN / "python" / "kwargs.py"))["KWARGS"]
    check_golden(ExperimentConfig(**kwargs), GOLDEN / "python" / "expected.json")


def test_golden_own_toml_form() -> None:
    check_golden(load_config(GOLDEN / "own_toml" / "config.toml"),
                 GOLDEN / "own_toml" / "expected.json")


def test_golden_own_yaml_form() -> None:
    check_golden(load_config(GOLDEN / "own_yaml" / "config.yaml"),
                 GOLDEN / "own_yaml" / "expected.json")


def test_golden_nni_form() -> None:
    check_golden(load_config(GOLDEN / "nni" / "config.yml"), GOLDEN / "nni" / "expected.json")


def test_nni_config_reads_like_nni_does() -> None:
    config = load_config(GOLDEN / "nni" / "config.yml")
    assert config.name == "snn_braille"
    assert config.trial_code_directory == GOLDEN / "nni"
    assert config.experiment_dir == GOLDEN / "nni" / "experiments"
    assert config.search_space == json.loads((GOLDEN / "nni" / "search_space.json").read_text())
    assert (config.max_duration, config.max_trial_duration) == (7200.0, 600.0)
    assert (config.max_trials, config.concurrency) == (50, 4)
    assert (config.gpus, config.trials_per_gpu) == ([0, 1], 2)
    assert (config.tuner, config.tuner_args, config.seed) == ("TPE", {}, 42)
    assert (config.assessor, config.assessor_args) == ("Medianstop", {"start_step": 5})
    assert config.optimize_mode == "maximize"


# ------------------------------------------------------------- the Python form


def test_defaults_and_derived_objects() -> None:
    config = ExperimentConfig(search_space=SPACE)
    assert config.name == "experiment" and config.tuner == "TPE" and config.assessor is None
    assert config.trial_code_directory == Path.cwd()
    assert config.directions == ["maximize"]
    assert config.gpus is None and config.gpu_indices(4) == []
    assert config.space().names == ["x"]
    assert config.create_tuner().name == "TPE"
    assert config.create_assessor() is None
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()


def test_python_errors_are_config_errors_listing_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(
            name="a/b", search_space={"x": {"_type": "uniform", "_value": [1, 0]}},
            tuner="Anneal", assessor="Curvefitting", optimize_mode="max", max_trials=0,
            max_duration="2 weeks", max_trial_duration=-5, concurrency=-1, gpus=[0, 0],
            trials_per_gpu=1.5, seed=-1, storage="study.db", bogus=True,
        )
    assert not isinstance(info.value, pydantic.ValidationError)
    found = problems(info)
    assert list(found) == [
        "name", "search_space.x._value", "tuner", "assessor", "optimize_mode", "max_trials",
        "max_duration", "max_trial_duration", "concurrency", "gpus", "trials_per_gpu", "seed",
        "storage", "bogus",
    ]
    assert found["concurrency"] == Problem("concurrency", -1, "must be >= 1")
    assert found["max_duration"].value == "2 weeks"
    assert '"2h"' in found["max_duration"].rule
    assert "CmaEs" in found["tuner"].rule
    assert "max_trials" in found["bogus"].rule  # the accepted keys are listed
    assert "concurrency: must be >= 1 (got -1)" in str(info.value)


def test_model_validate_never_leaks_pydantic_errors() -> None:
    with pytest.raises(ConfigError):
        ExperimentConfig.model_validate({"search_space": SPACE, "concurrency": "many"})
    with pytest.raises(ConfigError):
        ExperimentConfig.model_validate(["not", "a", "mapping"])


@pytest.mark.parametrize(
    ("given", "seconds"),
    [("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("1d", 86400.0), ("1.5h", 5400.0),
     (" 45 S ", 45.0), (90, 90.0), (0.5, 0.5)],
)
def test_durations(given: Any, seconds: float) -> None:
    assert ExperimentConfig(search_space=SPACE, max_duration=given).max_duration == seconds


@pytest.mark.parametrize("bad", ["2 weeks", "1w", "h", "-1h", "0s", 0, -3, True, [1], "inf",
                                 float("nan")])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, max_trial_duration=bad)
    assert list(problems(info)) == ["max_trial_duration"]


@pytest.mark.parametrize("field", ["max_trials", "concurrency", "trials_per_gpu"])
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_counts_must_be_positive_integers(field: str, bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, **{field: bad})
    assert problems(info)[field].value == bad


@pytest.mark.parametrize(
    ("given", "expected"),
    [([0, 1], [0, 1]), ("0,1", [0, 1]), ("2", [2]), (3, [3]), ("all", "all"), ([], None),
     (None, None)],
)
def test_gpus(given: Any, expected: Any) -> None:
    assert ExperimentConfig(search_space=SPACE, gpus=given).gpus == expected


def test_gpu_indices_resolve_all_against_the_machine() -> None:
    assert ExperimentConfig(search_space=SPACE, gpus="all").gpu_indices(3) == [0, 1, 2]
    assert ExperimentConfig(search_space=SPACE, gpus=[2, 0]).gpu_indices(3) == [2, 0]
    assert ExperimentConfig(search_space=SPACE).gpu_indices(3) == []


@pytest.mark.parametrize("bad", [[0, 0], [-1], "a,b", [True], 1.5, "0;1"])
def test_bad_gpus(bad: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, gpus=bad)
    assert list(problems(info)) == ["gpus"]


def test_search_space_is_required_and_validated_with_its_parameter_named() -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig()
    assert problems(info)["search_space"].rule.startswith("required")
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space={"lr": {"_type": "loguniform", "_value": [0, 1]}})
    assert problems(info)["search_space.lr._value"].value == [0, 1]


def test_search_space_file(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    (tmp_path / "space.yaml").write_text("x: {_type: uniform, _value: [0, 1]}\n")
    for name in ("space.json", "space.yaml"):
        config = ExperimentConfig(search_space_file=tmp_path / name)
        assert config.search_space == SPACE
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space_file=tmp_path / "missing.json")
    assert "readable file" in problems(info)["search_space_file"].rule
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, search_space_file=tmp_path / "space.json")
    assert "not both" in problems(info)["search_space_file"].rule


def test_files_of_windows_editors_read_or_are_refused_by_name(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark is skipped; a UTF-16 search space is refused, naming it."""
    (tmp_path / "bom.json").write_bytes(json.dumps(SPACE).encode("utf-8-sig"))
    assert ExperimentConfig(search_space_file=tmp_path / "bom.json").search_space == SPACE
    (tmp_path / "config.toml").write_bytes(
        'search_space_file = "bom.json"\ntrial_command = "true"\nmax_trials = 2\n'
        .encode("utf-8-sig"))
    assert load_config(tmp_path / "config.toml").max_trials == 2
    (tmp_path / "wide.json").write_bytes(json.dumps(SPACE).encode("utf-16"))
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space_file=tmp_path / "wide.json")
    assert problems(info)["search_space_file"].rule == (
        "must be UTF-8 text (byte 0 is not; this file is UTF-16)")


def test_optimize_mode_and_seed_may_come_from_tuner_arguments_once() -> None:
    config = ExperimentConfig(search_space=SPACE,
                              tuner_args={"optimize_mode": "minimize", "seed": 9},
                              assessor="Medianstop", assessor_args={"optimize_mode": "minimize"})
    assert (config.optimize_mode, config.seed, config.tuner_args) == ("minimize", 9, {})
    assert config.directions == ["minimize"]
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, optimize_mode="maximize",
                         tuner_args={"optimize_mode": "minimize"})
    assert "set it once" in problems(info)["tuner_args.optimize_mode"].rule


def test_names_and_arguments_are_stored_canonical() -> None:
    config = ExperimentConfig(search_space=SPACE, tuner="gp_tuner",
                              tuner_args={"cold_start_num": 4}, assessor="median_pruner",
                              assessor_args={"start_step": 3})
    assert (config.tuner, config.tuner_args) == ("GP", {"cold_start_num": 4})
    assert (config.assessor, config.assessor_args) == ("Medianstop", {"start_step": 3})
    assert config.create_assessor().warmup_steps() == 3


@pytest.mark.parametrize("args", [5, [1], {"start_step": 2}])
def test_assessor_arguments_without_an_assessor_are_refused_by_name(args: Any) -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, assessor_args=args)
    problem = problems(info)["assessor_args"]
    assert "without an assessor" in problem.rule or "only with an assessor" in problem.rule
    if not isinstance(args, dict):
        assert "a mapping" in problem.rule and problem.value == args


def test_tuner_and_assessor_argument_errors_name_their_keys() -> None:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, tuner="Evolution", tuner_args={"pop": 3},
                         assessor="Percentile", assessor_args={})
    found = problems(info)
    assert "population_size" in found["tuner_args.pop"].rule
    assert found["assessor_args.percentile"].rule == "required"


def test_hyperband_brings_its_own_pruner_and_trial_budget() -> None:
    config = ExperimentConfig(search_space=SPACE, tuner="Hyperband", tuner_args={"R": 9})
    assert config.create_assessor().arguments()["max_resource"] == 9
    assert config.space().names == ["x", "TRIAL_BUDGET"]
    assert config.to_dict()["search_space"] == SPACE
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, tuner="Hyperband", assessor="Medianstop")
    assert "remove the assessor" in problems(info)["assessor"].rule
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space={"TRIAL_BUDGET": {"_type": "randint", "_value": [1, 3]}},
                         tuner="BOHB")
    assert "rename" in problems(info)["search_space.TRIAL_BUDGET"].rule


def test_batch_and_grid_tuners_check_the_space() -> None:
    sets = [{"a": 1}, {"a": 2, "b": "x"}]
    config = ExperimentConfig(search_space={"p": {"_type": "choice", "_value": sets}},
                              tuner="BatchTuner")
    assert config.space().grid() == sets
    assert config.create_tuner().fixed_trials(config.space()) == [{"p": 0}, {"p": 1}]
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, tuner="Batch")
    assert "Batch tuner" in problems(info)["search_space.x"].rule
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, tuner="GridSearch")
    assert problems(info)["search_space.x"].rule.startswith("GridSearch: ")


def test_trial_command_is_required_to_run(tmp_path: Path) -> None:
    config = ExperimentConfig(search_space=SPACE)
    with pytest.raises(ConfigError) as info:
        config.require_trial_command()
    assert problems(info)["trial_command"].value is None
    with pytest.raises(ConfigError):
        config.check_runnable()
    config.check_runnable(python_trial=True)
    assert ExperimentConfig.for_run(python_trial=True, search_space=SPACE).trial_command is None
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.for_run(search_space=SPACE, concurrency=0)
    assert list(problems(info)) == ["trial_command", "concurrency"]
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.for_run(search_space=SPACE, trial_command="python3 t.py",
                                 trial_code_directory=tmp_path / "nowhere")
    assert "existing directory" in problems(info)["trial_code_directory"].rule
    ok = ExperimentConfig.for_run(search_space=SPACE, trial_command="python3 t.py",
                                  trial_code_directory=tmp_path)
    assert ok.require_trial_command() == "python3 t.py"
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, trial_command="  ")
    assert list(problems(info)) == ["trial_command"]


def test_config_is_frozen_and_storage_is_an_url() -> None:
    config = ExperimentConfig(search_space=SPACE, storage="postgresql://u@h/db")
    with pytest.raises(pydantic.ValidationError):
        config.concurrency = 3  # type: ignore[misc]
    assert config.storage == "postgresql://u@h/db"


def test_importing_config_does_not_import_torch() -> None:
    code = "import sys, spiketune.engine.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------- files: spiketune's own schema


def test_own_toml_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    path = write(tmp_path, "exp.toml", """
        trial_command = "python3 t.py"
        trial_code_directory = "code"
        search_space_file = "space.json"
        experiment_dir = "out"
    """)
    config = load_config(path)
    assert config.trial_code_directory == tmp_path / "code"
    assert config.experiment_dir == tmp_path / "out"
    assert config.search_space == SPACE


def test_own_file_defaults_the_code_directory_to_the_files_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", """
        trial_command: python3 t.py
        search_space: {lr: {_type: loguniform, _value: [1e-4, 1e-1]}}
    """)
    config = load_config(path)
    assert config.trial_code_directory == tmp_path
    assert config.search_space["lr"]["_value"] == [1e-4, 1e-1]  # YAML 1e-4 read as a number


def test_own_file_errors_list_every_problem_with_the_source(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", """
        search_space: {x: {_type: uniform, _value: [0, 1]}}
        max_trial: 3
        concurrency: 0
        max_duration: soon
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == str(path)
    # in the order of the file's keys; the missing one last
    assert list(problems(info)) == ["max_trial", "concurrency", "max_duration", "trial_command"]
    assert "max_trials" in problems(info)["max_trial"].rule
    assert str(path) in str(info.value)


def test_a_file_config_may_leave_the_command_to_a_python_trial(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.toml", 'search_space = {x = {_type = "uniform", _value = [0, 1]}}')
    assert load_config(path, python_trial=True).trial_command is None


@pytest.mark.parametrize(
    ("name", "text", "rule"),
    [("a.yaml", "a: [1, 2\n", "could not be parsed"),
     ("a.toml", "a = \n", "could not be parsed"),
     ("a.ini", "[a]\n", ".toml, .yaml"),
     ("a.yaml", "- 1\n- 2\n", "mapping")],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, name, text))
    assert rule in info.value.problems[0].rule
    with pytest.raises(ConfigError, match="readable file"):
        load_config(tmp_path / "missing.yaml")


# ------------------------------------------------------------- files: NNI v2


NNI_MINIMAL = """
    searchSpace:
      lr: {_type: loguniform, _value: [1e-4, 1e-1]}
    trialCommand: python3 mnist.py
    trialConcurrency: 2
    tuner:
      name: TPE
      classArgs:
        optimize_mode: minimize
    trainingService:
      platform: local
"""


def test_nni_minimal_inline_space(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "config.yml", NNI_MINIMAL))
    assert config.optimize_mode == "minimize"
    assert config.concurrency == 2 and config.gpus == "inherit"  # no trialGpuNumber
    assert config.trial_code_directory == tmp_path
    assert config.search_space == {"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}}


def test_nni_errors_name_keys_as_the_file_spells_them(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", """
        experimentName: broken
        searchSpaceFile: space.json
        trialConcurrency: -1
        maxExperimentDuration: 2weeks
        maxTrialNumber: 0
        logLevel: verbose
        authorName: me
        max_trials: 5
        tuner:
          name: Anneal
          classArgs: {optimize_mode: maximize}
        assessor:
          name: Medianstop
          classArgs: {optimize_mode: minimize, start_step: -2}
        trainingService:
          platform: remote
          gpuIndices: [0]
          foo: 1
    """)
    (tmp_path / "space.json").write_text(json.dumps({"lr": {"_type": "loguniform",
                                                            "_value": [0, 1]}}))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = problems(info)
    assert set(found) == {
        "trialCommand", "trialConcurrency", "maxExperimentDuration", "maxTrialNumber",
        "logLevel", "authorName", "max_trials", "tuner.name", "assessor.classArgs.optimize_mode",
        "assessor.classArgs.start_step", "trainingService.platform", "trainingService.gpuIndices",
        "trainingService.foo", "searchSpaceFile[space.json].lr._value",
    }
    assert found["trialConcurrency"] == Problem("trialConcurrency", -1, "must be >= 1")
    assert found["maxExperimentDuration"].value == "2weeks"
    assert "platform: local" in found["trainingService.platform"].rule
    assert "trialGpuNumber" in found["trainingService.gpuIndices"].rule
    assert "own schema" in found["max_trials"].rule
    assert "NNI v1" not in found["max_trials"].rule
    assert "CmaEs" in found["tuner.name"].rule
    assert "gpuIndices" in found["trainingService.foo"].rule  # the accepted keys are listed
    assert info.value.source == str(path)


def test_nni_logging_keys_are_accepted_without_effect(tmp_path: Path) -> None:
    """debug and logLevel change only NNI's own logs: a copied NNI file keeps them; their
    values are still checked."""
    plain = load_config(write(tmp_path, "plain.yml", NNI_MINIMAL))
    kept = load_config(write(tmp_path, "kept.yml",
                             NNI_MINIMAL + "    debug: true\n    logLevel: info\n"))
    assert kept.model_dump() == plain.model_dump()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "bad.yml",
                          NNI_MINIMAL + "    debug: 'yes'\n    logLevel: 3\n"))
    found = problems(info)
    assert found["debug"] == Problem("debug", "yes", "must be true or false")
    assert "info" in found["logLevel"].rule and found["logLevel"].value == 3


def test_nni_keys_set_to_null_are_not_set(tmp_path: Path) -> None:
    """NNI's reference: "Setting a field to None or null is equivalent to not setting the
    field", at the top level and inside trainingService, tuner, assessor and advisor."""
    plain = load_config(write(tmp_path, "plain.yml", NNI_MINIMAL))
    nulls = load_config(write(tmp_path, "nulls.yml", """
        experimentName: null
        searchSpaceFile: null
        searchSpace:
          lr: {_type: loguniform, _value: [1e-4, 1e-1]}
        trialCommand: python3 mnist.py
        trialCodeDirectory: null
        trialConcurrency: 2
        trialGpuNumber: null
        maxExperimentDuration: null
        maxTrialNumber: null
        maxTrialDuration: null
        experimentWorkingDirectory: null
        nniManagerIp: null
        debug: null
        logLevel: null
        tunerGpuIndices: null
        sharedStorage: null
        tuner:
          name: TPE
          className: null
          codeDirectory: null
          classArgs:
            optimize_mode: minimize
        assessor: null
        advisor: null
        trainingService:
          platform: local
          useActiveGpu: null
          maxTrialNumberPerGpu: null
          gpuIndices: null
          reuseMode: null
    """))
    assert nulls.model_dump() == plain.model_dump()
    # a key NNI v2 does not have is refused whatever its value; a required one stays required
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "bad.yml", NNI_MINIMAL.replace("name: TPE", "name: null")
                          .replace("platform: local", "platform: null") + "    authorName: null\n"))
    found = problems(info)
    assert found["authorName"].rule == "no v2 equivalent; remove it"
    assert found["tuner.name"].rule == "required"
    assert found["trainingService.platform"].rule == "required (local)"


def test_nni_manager_ip_is_accepted_in_local_mode(tmp_path: Path) -> None:
    """NNI's reference: nniManagerIp is "Not used in local mode"; a copied file keeps it."""
    plain = load_config(write(tmp_path, "plain.yml", NNI_MINIMAL))
    kept = load_config(write(tmp_path, "kept.yml", NNI_MINIMAL + "    nniManagerIp: 10.0.0.5\n"))
    assert kept.model_dump() == plain.model_dump()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "bad.yml", NNI_MINIMAL + "    nniManagerIp: 5\n"))
    assert problems(info)["nniManagerIp"].value == 5


def test_nni_v1_keys_get_their_v2_spelling(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", """
        authorName: someone
        maxExecDuration: 1h
        maxTrialNum: 10
        trainingServicePlatform: local
        searchSpacePath: search_space.json
        trial: {command: python3 t.py, codeDir: ., gpuNum: 0}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = problems(info)
    assert "maxExperimentDuration" in found["maxExecDuration"].rule
    assert "maxTrialNumber" in found["maxTrialNum"].rule
    assert "searchSpaceFile" in found["searchSpacePath"].rule


@pytest.mark.parametrize(
    ("service", "gpu_number", "gpus", "per_gpu"),
    [({"platform": "local", "useActiveGpu": True, "gpuIndices": "0,2"}, 1, [0, 2], 1),
     ({"platform": "local", "gpuIndices": [1], "maxTrialNumberPerGpu": 3}, 1, [1], 3),
     ({"platform": "local"}, 1, "all", 1),
     ({"platform": "local"}, 0, None, 1),
     ({"platform": "local", "useActiveGpu": False}, None, "inherit", 1)],
)
def test_nni_gpu_settings(tmp_path: Path, service: dict, gpu_number: int | None, gpus: Any,
                          per_gpu: int) -> None:
    raw: dict[str, Any] = {"searchSpace": SPACE, "trialCommand": "python3 t.py",
                           "trainingService": service}
    if gpu_number is not None:
        raw["trialGpuNumber"] = gpu_number
    config = load_config(write(tmp_path, "config.yml", json.dumps(raw)))
    assert (config.gpus, config.trials_per_gpu) == (gpus, per_gpu)


def test_nni_more_than_one_gpu_per_trial_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", NNI_MINIMAL + "    trialGpuNumber: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "one GPU per trial" in problems(info)["trialGpuNumber"].rule


def test_nni_advisor_becomes_the_tuner(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", """
        searchSpace: {x: {_type: uniform, _value: [0, 1]}}
        trialCommand: python3 t.py
        advisor:
          name: Hyperband
          classArgs: {optimize_mode: maximize, R: 27, eta: 3, exec_mode: parallelism}
    """)
    config = load_config(path)
    assert config.tuner == "Hyperband"
    assert config.tuner_args == {"R": 27, "eta": 3, "exec_mode": "parallelism"}
    assert config.create_assessor().arguments()["max_resource"] == 27


def test_nni_keys_may_be_snake_case_as_nni_accepts(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", """
        search_space: {x: {_type: uniform, _value: [0, 1]}}
        trial_command: python3 t.py
        trial_concurrency: 3
        max_experiment_duration: 5m
        tuner: {name: random}
        training_service: {platform: local}
    """)
    config = load_config(path)
    assert (config.concurrency, config.max_duration, config.tuner) == (3, 300.0, "Random")


def test_at_max_duration_is_checked_and_nni_durations_let_trials_finish(tmp_path: Path) -> None:
    default = ExperimentConfig(search_space=SPACE, max_duration="1h")
    assert default.at_max_duration == "stop"
    assert "at_max_duration" not in default.to_dict()  # stored forms of before compare equal
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, at_max_duration="end")
    assert problems(info)["at_max_duration"] == Problem(
        "at_max_duration", "end", "must be one of 'stop' or 'finish'")
    own = load_config(write(tmp_path, "own.toml", 'trial_command = "python3 t.py"\n'
                            'max_duration = "1h"\nat_max_duration = "finish"\n'
                            '[search_space]\nx = {_type = "uniform", _value = [0, 1]}\n'))
    assert own.at_max_duration == "finish" and own.to_dict()["at_max_duration"] == "finish"
    nni = load_config(write(tmp_path, "config.yml",
                            NNI_MINIMAL + "    maxExperimentDuration: 1h\n"))
    assert (nni.max_duration, nni.at_max_duration) == (3600.0, "finish")
    # without a duration, an NNI file's stored form is what it was
    assert "at_max_duration" not in load_config(write(tmp_path, "c.yml", NNI_MINIMAL)).to_dict()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "own_key.yml", NNI_MINIMAL + "    at_max_duration: stop\n"))
    assert "lets the running trials finish" in problems(info)["at_max_duration"].rule


def test_nni_custom_algorithm_classes_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", NNI_MINIMAL.replace(
        "      name: TPE\n", "      className: my_tuner.MyTuner\n      codeDirectory: .\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = problems(info)
    assert {"tuner.className", "tuner.codeDirectory", "tuner.name"} <= set(found)


def test_nni_space_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    path = write(tmp_path, "config.yml", NNI_MINIMAL + "    searchSpaceFile: space.json\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not both" in problems(info)["searchSpaceFile"].rule


def test_configs_compare_equal_after_a_round_trip() -> None:
    config = load_config(GOLDEN / "nni" / "config.yml")
    assert pickle.loads(pickle.dumps(config)) == config
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    assert ExperimentConfig.from_dict({**config.to_dict(), "seed": 1}) != config


def test_every_nni_key_has_one_handler() -> None:
    from spiketune.engine.config import _nni

    assert {_nni.norm(k) for k in _nni.TOP_KEYS} <= set(_nni.TOP)
    assert {_nni.norm(k) for k in _nni.SERVICE_KEYS} == set(_nni.SERVICE)


def test_nni_gpu_number_alone_asks_for_at_least_one_gpu(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", NNI_MINIMAL + "    trialGpuNumber: 1\n")
    config = load_config(path)
    assert (config.gpus, config.require_gpus) == ("all", True)
    assert "require_gpus" not in load_config(write(tmp_path, "c.yml", NNI_MINIMAL)).to_dict()
    empty = NNI_MINIMAL.replace("platform: local", "platform: local\n      gpuIndices: []")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "e.yml", empty + "    trialGpuNumber: 1\n"))
    assert "at least one GPU index" in problems(info)["trainingService.gpuIndices"].rule


def test_require_gpus_needs_gpus() -> None:
    assert ExperimentConfig(search_space=SPACE, gpus="all", require_gpus=True).require_gpus
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space=SPACE, require_gpus=True)
    assert "gpus is not set" in problems(info)["require_gpus"].rule
    with pytest.raises(ConfigError) as info:  # "inherit" gives out no GPU either
        ExperimentConfig(search_space=SPACE, gpus="inherit", require_gpus=True)
    assert "gpus gives none out" in problems(info)["require_gpus"].rule
    assert ExperimentConfig(search_space=SPACE, gpus="inherit").gpu_indices(4) == []


# ------------------------------------------------------------- messages that help


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [("own.yaml", "name: x\nsearch_space: {x: [1, 2}\n", "line 2, column 24"),
     ("config.yml", "experimentName: x\ntrialCommand: 'python3 t.py\n", "line 3, column 1"),
     ("own.toml", 'name = "x"\nconcurrency = \n', "line 2, column 15"),
     ("own.json", '{"name": "x",\n "concurrency": }', "line 2, column 17")],
)
def test_parse_errors_give_line_and_column(tmp_path: Path, name: str, text: str,
                                           where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, name, text))
    (problem,) = info.value.problems
    assert problem.rule.startswith(f"could not be parsed: {where}: ")


@pytest.mark.parametrize(("name", "text", "words"), [
    ("space.yaml", "x:\n  _type: uniform\n  _value: [0, 1\n",
     ["line 4, column 1", "line 3, column 11"]),
    # a key twice: JSON's reader would keep the last silently
    ("space.json", '{"x": {"_type": "uniform", "_value": [0, 1]},\n'
                   ' "x": {"_type": "choice", "_value": [5]}}',
     ["key 'x' given twice (first at line 1, column 2)"]),
])
def test_search_space_file_problems_give_line_and_column(tmp_path: Path, name: str, text: str,
                                                         words: list[str]) -> None:
    (tmp_path / name).write_text(text)
    path = write(tmp_path, "config.yml", NNI_MINIMAL.replace(
        "    searchSpace:\n      lr: {_type: loguniform, _value: [1e-4, 1e-1]}\n",
        f"    searchSpaceFile: {name}\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.field == "searchSpaceFile"
    assert all(w in problem.rule for w in words), problem.rule


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [("own.yaml", "name: x\nmax_trials: 2\nmax_trials: 200\n", "line 3, column 1"),
     ("config.yml", "trialCommand: python3 t.py\nmaxTrialNumber: 2\nmaxTrialNumber: 3\n",
      "line 3, column 1"),
     ("own.json", '{"name": "x",\n "max_trials": 2,\n "max_trials": 3}', "line 3, column 2"),
     ("own.toml", 'name = "x"\nmax_trials = 2\nmax_trials = 3\n', "line 3, column")],
)
def test_a_key_given_twice_is_refused_where_it_repeats(tmp_path: Path, name: str, text: str,
                                                       where: str) -> None:
    """YAML and JSON readers keep the last of two equal keys; a config must not run 200
    trials where the user read 2."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, name, text))
    (problem,) = info.value.problems
    assert problem.rule.startswith(f"could not be parsed: {where}")
    assert "max_trials" in problem.rule or "maxTrialNumber" in problem.rule or name.endswith(
        ".toml")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    from spiketune.engine.config._files import read_config_file

    path = write(tmp_path, "merge.yml", "base: &b\n  a: 1\n  b: 2\nother:\n  <<: *b\n  a: 3\n")
    assert read_config_file(path)["other"] == {"a": 3, "b": 2}


def test_a_missing_search_space_file_is_one_problem(tmp_path: Path) -> None:
    nni = write(tmp_path, "config.yml", "searchSpaceFile: nowhere.json\n"
                                        "trialCommand: python3 t.py\n")
    own = write(tmp_path, "own.toml", 'search_space_file = "nowhere.json"\n'
                                      'trial_command = "python3 t.py"\n')
    for path, field in ((nni, "searchSpaceFile"), (own, "search_space_file")):
        with pytest.raises(ConfigError) as info:
            load_config(path)
        (problem,) = info.value.problems
        assert problem.field == field and "readable file" in problem.rule
    with pytest.raises(ConfigError) as info:
        ExperimentConfig(search_space_file=tmp_path / "nowhere.json")
    assert list(problems(info)) == ["search_space_file"]


def test_hyperband_serial_mode_is_refused_with_its_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "config.yml", """
        searchSpace: {x: {_type: uniform, _value: [0, 1]}}
        trialCommand: python3 t.py
        advisor:
          name: Hyperband
          classArgs: {optimize_mode: maximize, R: 27, eta: 3, exec_mode: serial}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert (problem.field, problem.value) == ("advisor.classArgs.exec_mode", "serial")
    assert problem.rule.startswith("not supported: ")
    assert "side by side" in problem.rule and "use parallelism" in problem.rule


def test_every_package_words_validation_problems_alike() -> None:
    """One translator from pydantic's errors: the same rule reads the same everywhere."""
    from spiketune.data import BrailleLoader
    from spiketune.hardware import get_target
    from spiketune.snn import SNNConfig

    builds = [lambda: ExperimentConfig(search_space=SPACE, concurrency=0, bogus=1),
              lambda: SNNConfig(n_in=0, n_rec=1, n_out=1, bogus=1),
              lambda: get_target("generic", max_hidden=0, bogus=1),
              lambda: BrailleLoader(bin_size=0.0, bogus=1)]
    for build in builds:
        with pytest.raises(ConfigError) as info:
            build()
        rules = {p.field: p.rule for p in info.value.problems}
        assert rules["bogus"].startswith("unknown key; accepted: ")
        bound = [r for f, r in rules.items() if f != "bogus"]
        assert bound in (["must be >= 1"], ["must be > 0"])


# ------------------------------------------------------------- GPU requests meet the machine


def _quadratic(p: dict[str, Any]) -> float:
    return -((p["x"] - 0.5) ** 2)


def test_gpu_indices_the_machine_lacks_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spiketune import Experiment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,7")  # the GPUs this machine is said to have
    exp = Experiment(trial=_quadratic, search_space=SPACE, gpus=[0, 7], max_trials=1,
                     experiment_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        exp.run()
    (problem,) = info.value.problems
    assert (problem.field, problem.value) == ("gpus", [0, 7])
    assert "GPU 0 not found" in problem.rule and "it has 3, 7" in problem.rule
    assert not any(tmp_path.iterdir())  # nothing written
    results = Experiment(trial=_quadratic, search_space=SPACE, gpus=[7], max_trials=1,
                         experiment_dir=tmp_path).run()
    assert len(results.records) == 1


def test_nni_gpu_number_on_a_machine_without_gpus_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spiketune import Experiment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    path = write(tmp_path, "config.yml", NNI_MINIMAL + "    trialGpuNumber: 1\n"
                 f"    experimentWorkingDirectory: {tmp_path / 'runs'}\n")
    exp = Experiment(load_config(path))  # the file itself is valid: it may be for another machine
    with pytest.raises(ConfigError) as info:
        exp.run()
    (problem,) = info.value.problems
    assert problem.field == "require_gpus" and "trialGpuNumber: 1" in problem.rule
    assert "has none" in problem.rule
    assert not (tmp_path / "runs").exists()


def test_all_gpus_without_a_gpu_runs_on_the_cpu_with_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spiketune import Experiment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    results = Experiment(trial=_quadratic, search_space=SPACE, gpus="all", max_trials=3,
                         experiment_dir=tmp_path).run()
    assert len(results.records) == 3
    err = capsys.readouterr().err
    assert err.count('gpus = "all" found no GPU') == 1 and "trials run on the CPU" in err
