"""The L²MU templates, ``braille-l2mu`` and ``wisdm-l2mu``: each template's files stand alone,
the launcher's ``--model`` narrows the search space's model choice, trial parameters become an
L²MU, LMU or RecurrentSNN (every problem named), the data keep a fixed test part and re-split
the rest, and (slow) each launcher's smoke run end to end on tiny fixtures (Braille's reduced
task on a pool file, WISDM's L²MU on an archive in the real layout), with one trial of each
other model and task (Braille's full task on an event file; WISDM's LMU and recurrent SNN).
The templates are loaded from their directories, not through ``spiketune init``."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from test_braille_th1 import PER_CLASS, id_pool
from test_data_braille_pool import save_pool, th1_records
from test_data_wisdm import outer_zip, raw_files

from spiketune import ConfigError, DataError, Experiment, Outcome, load_config
from spiketune.data import (
    BRAILLE_LETTERS,
    BRAILLE_REDUCED_LETTERS,
    DatasetInfo,
    load_braille_pool,
    load_wisdm,
    stratified_split,
)
from spiketune.engine import ExperimentResults, chosen_trial, load_best_model
from spiketune.snn import L2MU, LMU, RecurrentSNN, is_spiking

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "spiketune" / "templates"
BRAILLE = TEMPLATES / "braille_l2mu"
WISDM = TEMPLATES / "wisdm_l2mu"
FILES = {"main.py", "main_hpo.py", "setup_hpo.py", "train_hpo.py", "config.toml",
         "search_space.json", "README.md"}
MODEL_CLASSES = {"l2mu": L2MU, "lmu": LMU, "rsnn": RecurrentSNN}
#: Five subjects: with the 0.8/0.1/0.1 subject split, 3 train, 1 validation, 1 test.
SUBJECTS = (1600, 1601, 1602, 1603, 1604)


def _load(template: Path, name: str) -> ModuleType:
    """``<template>/<name>.py`` as a module of its own (a template is not a package)."""
    spec = importlib.util.spec_from_file_location(f"{template.name}_{name}",
                                                  template / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _first_values(space: dict[str, Any]) -> dict[str, Any]:
    """A point of a search space: each choice's first option (nested ones with their own
    sub-parameters), each range's lower end."""
    point: dict[str, Any] = {}
    for key, spec in space.items():
        value = spec["_value"][0]
        if isinstance(value, dict) and "_name" in value:
            sub = {k: v for k, v in value.items() if k != "_name"}
            value = {"_name": value["_name"], **_first_values(sub)}
        point[key] = value
    return point


def _model_option(space: dict[str, Any], model: str) -> dict[str, Any]:
    """The space with its model choice narrowed to ``model`` (what ``--model`` does)."""
    options = [o for o in space["model"]["_value"] if o["_name"] == model]
    return {**space, "model": {"_type": "choice", "_value": options}}


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """A tiny threshold-1 pool (10 samples of each of the 7 letters, 5 ms bins)."""
    return save_pool(tmp_path / "braille_reduced_th1_pool.pt", *id_pool())


@pytest.fixture
def events_th10(tmp_path: Path) -> Path:
    """A tiny event file of all 27 letters (10 samples each) under the threshold-10 name."""
    path = tmp_path / "events" / "data_braille_letters_th10"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(th1_records(per_letter=PER_CLASS), protocol=2))
    return path


@pytest.fixture
def wisdm_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The UCI download's layout (outer zip wrapping wisdm-dataset.zip) for 5 subjects; the
    loader unwraps it into spiketune's cache, here a temporary one."""
    monkeypatch.setenv("SPIKETUNE_DATA", str(tmp_path / "cache"))
    path = tmp_path / "wisdm.zip"
    path.write_bytes(outer_zip(raw_files(SUBJECTS)))
    return path


# ------------------------------------------------------------------------------ the files
@pytest.mark.parametrize("template", [BRAILLE, WISDM], ids=lambda t: t.name)
def test_each_template_is_the_four_file_pipeline_and_stands_alone(template: Path) -> None:
    on_disk = {p.name for p in template.iterdir() if p.is_file()}
    assert on_disk == FILES
    for name in FILES:
        text = (template / name).read_text(encoding="utf-8")
        # `spiketune init` copies one directory: nothing may reach outside it
        for foreign in ("braille_eprop", "parents[", "../", "shared/data"):
            assert foreign not in text, f"{template.name}/{name} mentions {foreign!r}"
    config = load_config(template / "config.toml")
    assert config.trial_command == "python3 main_hpo.py --folds 3"
    assert config.search_space == json.loads((template / "search_space.json").read_text())
    assert (config.tuner, config.optimize_mode, config.assessor) == ("TPE", "maximize",
                                                                     "Medianstop")
    names = [o["_name"] for o in config.search_space["model"]["_value"]]
    assert names == ["l2mu", "lmu", "rsnn"]


@pytest.mark.parametrize("template", [BRAILLE, WISDM], ids=lambda t: t.name)
def test_the_model_option_narrows_the_spaces_model_choice(
    template: Path, tmp_path: Path
) -> None:
    main = _load(template, "main")
    config = load_config(template / "config.toml")
    # --model all is config.toml's experiment, as `spiketune run config.toml` runs it
    assert main.experiment(main.parse_args(["--model", "all"])).config == (
        Experiment(config).config)
    for argv, model in (([], "l2mu"), (["--model", "lmu"], "lmu"),
                        (["--model", "rsnn"], "rsnn")):
        space = main.experiment(main.parse_args(argv)).config.search_space
        assert space == _model_option(config.search_space, model)
    smoke = main.parse_args(["--smoke", "--data", str(tmp_path), "--gpus", "none"])
    assert (smoke.trials, smoke.epochs_cap, smoke.folds, smoke.retrain_seeds) == (2, 1, 1, [0])
    command = main.experiment(smoke).config.trial_command
    assert command == (f"python3 main_hpo.py --folds 1 --epochs-cap 1 --subset {smoke.subset} "
                       f"--data {tmp_path.resolve()}")
    with pytest.raises(SystemExit):  # argparse's usage error
        main.parse_args(["--model", "gru"])


def test_the_braille_task_and_the_wisdm_input_are_recorded_as_parameters() -> None:
    braille = _load(BRAILLE, "main")
    space = braille.experiment(braille.parse_args(["--task", "full"])).config.search_space
    assert space["task"] == {"_type": "choice", "_value": ["full"]}
    assert "task" not in braille.experiment(braille.parse_args([])).config.search_space
    wisdm = _load(WISDM, "main")
    space = wisdm.experiment(wisdm.parse_args(["--input", "events"])).config.search_space
    assert [o["_name"] for o in space["input"]["_value"]] == ["events"]
    assert set(space["input"]["_value"][0]) == {"_name", "event_threshold", "clip"}


# ------------------------------------------------------------------------------ networks
@pytest.mark.parametrize("template", [BRAILLE, WISDM], ids=lambda t: t.name)
@pytest.mark.parametrize("model", ["l2mu", "lmu", "rsnn"])
def test_each_models_parameters_build_its_network(template: Path, model: str) -> None:
    train_hpo = _load(template, "train_hpo")
    space = json.loads((template / "search_space.json").read_text(encoding="utf-8"))
    params = _first_values(_model_option(space, model))
    params["seed"] = 3
    info = DatasetInfo("data", tuple("abcdefg"), 12, 64, 0.02)
    net, train_config = train_hpo.build(params, info, device=torch.device("cpu"), epochs_cap=2)
    assert type(net) is MODEL_CLASSES[model]
    assert (net.n_in, net.n_out, net.dt) == (12, 7, 0.02)
    assert (train_config.epochs, train_config.seed, train_config.lr) == (2, 3, params["lr"])
    assert train_config.batch_size == params["batch_size"]
    assert is_spiking(net) == (model != "lmu")
    chosen = params["model"]
    if model == "rsnn":
        assert (net.config.n_rec, net.config.rule, net.config.loss) == (
            chosen["n_rec"], chosen["rule"], "ce_summed")
        return
    config = net.to_config()
    assert {k: config[k] for k in ("order", "theta", "memory_size", "hidden_size", "loss")} == (
        {**{k: chosen[k] for k in ("order", "theta", "memory_size", "hidden_size")},
         "loss": "ce_summed"})
    if model == "l2mu":  # each population's initial decay and threshold
        for pop in ("u", "m", "h", "out"):
            beta = float(getattr(net, f"beta_{pop}").detach())
            assert beta == pytest.approx(chosen[f"beta_{pop}"])
        for pop in ("u", "m", "h"):
            threshold = float(getattr(net, f"threshold_{pop}").detach())
            assert threshold == pytest.approx(chosen[f"threshold_{pop}"])
        assert net.readout_kind == "leaky"
        spiking = {**params, "model": {**chosen, "readout": {"_name": "spiking",
                                                             "threshold_out": 0.7}}}
        net, _ = train_hpo.build(spiking, info, device=torch.device("cpu"))
        assert net.readout_kind == "spiking"
        assert float(net.threshold_out.detach()) == pytest.approx(0.7)


@pytest.mark.parametrize("template", [BRAILLE, WISDM], ids=lambda t: t.name)
def test_bad_parameters_fail_the_trial_naming_each_one(template: Path) -> None:
    train_hpo = _load(template, "train_hpo")
    info = DatasetInfo("data", tuple("abcdefg"), 12, 64, 0.02)
    cpu = torch.device("cpu")
    bad = {"model": {"_name": "l2mu", "order": 8, "theta": 1.0, "ordr": 4, "beta_u": 1.5},
           "lr": -1.0, "loss_window": 5.0}
    with pytest.raises(ConfigError) as err:
        train_hpo.build(bad, info, device=cpu)
    message = str(err.value)
    for name in ("ordr", "lr", "loss_window", "beta.u"):
        assert name in message, name
    with pytest.raises(ConfigError, match="one of l2mu, lmu, rsnn"):
        train_hpo.build({"model": {"_name": "gru"}}, info, device=cpu)
    with pytest.raises(ConfigError, match="tau_membrane"):
        train_hpo.build({"model": {"_name": "rsnn", "tau_membrane": 0.1}}, info, device=cpu)
    with pytest.raises(ConfigError, match="beta_u"):  # the LMU has no neurons
        train_hpo.build({"model": {"_name": "lmu", "order": 4, "theta": 1.0, "beta_u": 0.9}},
                        info, device=cpu)
    # a loss window in seconds becomes steps of the data's bins
    net, _ = train_hpo.build({"model": {"_name": "lmu", "order": 4, "theta": 1.0},
                              "loss_window": 0.4}, info, device=cpu)
    assert net.readout_loss().steps == 20


# ------------------------------------------------------------------------------ data
def test_braille_reduced_task_rebins_the_pool_around_a_fixed_test_part(pool: Path) -> None:
    setup_hpo = _load(BRAILLE, "setup_hpo")
    options = setup_hpo.data_options({"bin_size": 0.01, "clip": True})
    assert options == {"task": "reduced", "bin_size": 0.01, "clip": True}
    data = setup_hpo.load_data(options, pool, folds=3)
    whole = load_braille_pool(pool).rebin(0.01, clip=True)
    split = stratified_split(whole.labels, (0.8, 0.1, 0.1), seed=0)
    assert data.split_digest == split.digest()
    assert torch.equal(data.test.inputs, whole.split(split)[2].inputs)
    assert (data.info.n_steps, data.info.dt, data.info.classes) == (128, 0.01,
                                                                    BRAILLE_REDUCED_LETTERS)
    assert len(data.folds) == 3 and torch.equal(data.folds[0][1].inputs, data.val.inputs)
    vals = [{tuple(x.flatten().tolist()) for x in val.inputs} for _, val in data.folds]
    assert not (vals[0] & vals[1] or vals[1] & vals[2])  # disjoint validation parts


def test_braille_full_task_reads_all_letters_from_the_threshold_10_file(
    events_th10: Path, pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_hpo = _load(BRAILLE, "setup_hpo")
    options = setup_hpo.data_options({"task": "full"})
    data = setup_hpo.load_data(options, events_th10.parent, download=False)
    assert data.info.classes == BRAILLE_LETTERS and data.info.n_inputs == 24  # ON/OFF split
    assert (data.info.dt, data.info.n_steps) == (0.02, 68)  # 1.35 s
    assert (len(data.train), len(data.val), len(data.test)) == (216, 27, 27)
    with pytest.raises(DataError, match=r"task='full'.*pool"):
        setup_hpo.load_data(options, pool)
    with pytest.raises(DataError, match="task='sideways'"):
        setup_hpo.load_data({**options, "task": "sideways"}, events_th10)
    # nothing anywhere: one error naming the three ways to give the file
    for env in setup_hpo.DATA_ENVS.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("SPIKETUNE_DATA", str(tmp_path / "empty_cache"))
    for task, env in setup_hpo.DATA_ENVS.items():
        with pytest.raises(DataError) as err:
            setup_hpo.load_data({**options, "task": task}, None, download=False)
        for way in ("--data PATH", f"${env}", str(tmp_path / "empty_cache")):
            assert way in str(err.value)
    monkeypatch.setenv("SPIKETUNE_BRAILLE_DATA", str(events_th10))  # the full task's variable
    assert setup_hpo.load_data(options, download=False).split_digest == data.split_digest


def test_wisdm_test_subjects_are_fixed_and_each_fold_is_standardised_on_its_own(
    wisdm_archive: Path,
) -> None:
    setup_hpo = _load(WISDM, "setup_hpo")
    loaded = load_wisdm(wisdm_archive, progress=False)
    frames = setup_hpo.load_data(setup_hpo.data_options({}), wisdm_archive, folds=2)
    assert frames.test_subjects == loaded.test_subjects and len(frames.test_subjects) == 1
    assert frames.split_digest == loaded.split_digest
    # the split itself is the first re-split, and standardised as the loader does it
    assert torch.allclose(frames.test.inputs, loaded.test.inputs, atol=1e-5)
    assert frames.mean == pytest.approx(loaded.mean)
    first, second = frames.val_subjects
    assert first != second and not set(first + second) & set(frames.test_subjects)
    for train, _ in frames.folds:  # each re-split's training windows: mean 0, std 1
        flat = train.inputs.double().reshape(-1, 6)
        assert torch.allclose(flat.mean(0), torch.zeros(6, dtype=torch.float64), atol=1e-5)
        assert torch.allclose(flat.std(0, correction=0), torch.ones(6, dtype=torch.float64),
                              atol=1e-4)
    assert not torch.equal(frames.folds[0][0].inputs[:5], frames.folds[1][0].inputs[:5])

    options = setup_hpo.data_options({"input": "events", "event_threshold": 0.3})
    assert options == {"input": "events", "event_threshold": 0.3, "clip": True}
    assert setup_hpo.data_options({"input": "frame", "event_threshold": 0.3}) == {
        "input": "frame"}
    events = setup_hpo.load_data(options, wisdm_archive, per_class=1)
    assert events.info.n_inputs == 12 and set(events.train.inputs.unique().tolist()) <= {0, 1}
    assert len(events.train) + len(events.val) + len(events.test) == len(SUBJECTS) * 7
    assert events.test_subjects == loaded.test_subjects
    with pytest.raises(DataError, match="input='audio'"):
        setup_hpo.load_data({"input": "audio"}, wisdm_archive)


def test_wisdm_without_data_names_the_three_ways_to_give_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_hpo = _load(WISDM, "setup_hpo")
    monkeypatch.delenv(setup_hpo.DATA_ENV, raising=False)
    monkeypatch.setenv("SPIKETUNE_DATA", str(tmp_path / "empty_cache"))
    with pytest.raises(DataError) as err:
        setup_hpo.load_data(setup_hpo.DATA_DEFAULTS, None, download=False)
    for way in ("--data PATH", "$SPIKETUNE_WISDM_DATA", str(tmp_path / "empty_cache")):
        assert way in str(err.value)


# ------------------------------------------------------------------------------ the chain
def _smoke(
    template: Path, argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``main.py --smoke`` with the report; trials import this checkout's spiketune."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "2")  # the launcher sets it; restored after
    main = _load(template, "main")
    return main.run(["--smoke", "--gpus", "none", "--experiment-dir",
                     str(tmp_path / "experiments"), "-q", *argv])


def _check_chain(results: Any, model: str, n_in: int, digest: str) -> None:
    """Two complete trials of ``model``; the chosen configuration retrained with seed 0 on the
    split ``digest``; the kept model rebuilt from its file; the report built."""
    from spiketune import load_best_model
    from spiketune.engine import load_retrained
    from spiketune.snn import load_checkpoint

    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert rec.parameters["model"]["_name"] == model
        m = rec.metrics
        assert 0.0 <= m["default"] <= 1.0 and 0.0 <= m["test"] <= 1.0 and m["epoch"] == 1
        assert ("spikes_per_sample" in m) == (model != "lmu")
        assert len(rec.intermediate) == 1 and rec.intermediate[0]["default"] == m["default"]
        saved = load_checkpoint(rec.trial_dir / "best_model.pt")
        assert type(saved.network) is MODEL_CLASSES[model] and saved.network.n_in == n_in
        assert saved.extra["split_digest"] == m["split_digest"] == digest

    retrained = load_retrained(results.directory)
    assert retrained is not None and results.best is not None
    assert [r.seed for r in retrained.runs] == [0] and retrained.trial == _kept_trial(results)
    chosen = chosen_trial(results)
    assert chosen is not None and retrained.parameters == chosen.parameters
    assert retrained.split_digest == digest
    assert (results.directory / "chosen" / "seed0" / "best_model.pt").is_file()
    assert retrained.mean == retrained.runs[0].metrics["test"]

    best = load_best_model(results.directory)
    assert best is not None and best.predictions is not None
    assert type(load_checkpoint(best.path()).network) is MODEL_CLASSES[model]
    index = results.directory / "report" / "index.html"
    assert index.is_file() and "retrained with 1 seed" in index.read_text(encoding="utf-8")


@pytest.mark.slow
def test_braille_smoke_run_reduced_task(
    pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _smoke(BRAILLE, ["--data", str(pool)], tmp_path, monkeypatch)
    labels = load_braille_pool(pool).labels
    _check_chain(results, "l2mu", 12, stratified_split(labels, (0.8, 0.1, 0.1), 0).digest())


def _trial_alone(template: Path, params: dict[str, Any], out: Path,
                 options: list[str]) -> subprocess.Popen[str]:
    """``main_hpo.py --params`` started by hand in ``template`` (one epoch, one fold, one
    thread), writing into ``out``: a trial outside any experiment. The launcher's chain is
    the same for every model and task; each smoke run covers it once."""
    out.mkdir(parents=True)
    (out / "params.json").write_text(json.dumps(params), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "main_hpo.py", "--params", str(out / "params.json"),
         "--epochs-cap", "1", "--folds", "1", "--threads", "1", "--out", str(out), *options],
        cwd=template, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def _finished(trial: subprocess.Popen[str], out: Path) -> dict[str, Any]:
    """The result a trial started by :func:`_trial_alone` wrote, once it ended well."""
    _, err = trial.communicate(timeout=300)
    assert trial.returncode == 0, err
    result: dict[str, Any] = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["epoch"] == 1 and 0.0 <= result["default"] <= 1.0
    assert 0.0 <= result["test"] <= 1.0
    return result


def test_wisdm_launcher_reads_the_data_before_the_search(
    tmp_path: Path, exp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPIKETUNE_DATA", str(tmp_path / "cache"))
    not_wisdm = tmp_path / "notes.zip"
    not_wisdm.write_text("not an archive")
    with pytest.raises(DataError, match="--data: "):
        _load(WISDM, "main").run(["--smoke", "--data", str(not_wisdm)])
    assert not any(exp_root.iterdir())


def test_braille_launcher_reads_the_data_before_the_search(
    events_th10: Path, tmp_path: Path, exp_root: Path
) -> None:
    """The threshold-10 event file for the reduced task, or a --subset too small to split,
    stops the run naming --data before any experiment is made."""
    launcher = _load(BRAILLE, "main")
    for argv in (["--data", str(events_th10)], ["--data", str(events_th10), "--task", "full",
                                                "--subset", "1"]):
        with pytest.raises(DataError, match="--data: "):
            launcher.run(["--smoke", *argv])
    assert not any(exp_root.iterdir())


@pytest.mark.slow
def test_braille_full_task_trial_trains_on_all_letters(
    events_th10: Path, tmp_path: Path
) -> None:
    """A full-task trial: the threshold-10 file's 27 letters, ON/OFF split (24 inputs), on
    the fixed split of the records' order."""
    from spiketune.snn import load_checkpoint

    space = json.loads((BRAILLE / "search_space.json").read_text(encoding="utf-8"))
    params = {**_first_values(_model_option(space, "l2mu")), "task": "full"}
    out = tmp_path / "full"
    result = _finished(_trial_alone(BRAILLE, params, out,
                                    ["--data", str(events_th10), "--subset", "20"]), out)
    labels = torch.arange(len(BRAILLE_LETTERS)).repeat(PER_CLASS)  # the records' order
    digest = stratified_split(labels, (0.8, 0.1, 0.1), 0).digest()
    assert result["parameters"]["task"] == "full"
    saved = load_checkpoint(out / "best_model.pt")
    assert type(saved.network) is L2MU and saved.network.n_in == 24
    assert saved.network.n_out == len(BRAILLE_LETTERS)
    assert saved.extra["split_digest"] == digest
    # the checkpoint records its encoding whole: `spiketune evaluate` encodes the event file
    # as it was trained (threshold 10, ON/OFF split, every letter)
    from typer.testing import CliRunner

    from spiketune.cli import app

    scored = CliRunner().invoke(app, ["evaluate", str(out / "best_model.pt"), "--data",
                                      str(events_th10), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.output)["total"] == len(BRAILLE_LETTERS) * PER_CLASS


@pytest.mark.slow
def test_wisdm_smoke_run_of_the_l2mu_on_events(
    wisdm_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = _smoke(WISDM, ["--model", "l2mu", "--input", "events", "--data",
                             str(wisdm_archive)], tmp_path, monkeypatch)
    loaded = load_wisdm(wisdm_archive, progress=False)
    # --smoke keeps 3 windows of each activity of each subject: the fixture has 2, so all
    _check_chain(results, "l2mu", 12, loaded.split_digest)
    result = json.loads((results.directory / "chosen" / "seed0" / "result.json").read_text())
    assert result["test_subjects"] == list(loaded.test_subjects)
    assert result["parameters"]["input"]["_name"] == "events"
    assert np.isfinite(result["test"])


@pytest.mark.slow
def test_wisdm_trials_of_the_other_models_on_frames(
    wisdm_archive: Path, tmp_path: Path
) -> None:
    """The LMU and the recurrent SNN, each as one trial on the accelerometer and gyroscope
    frames (6 inputs), side by side: the fixed test subjects, the split, their networks."""
    from spiketune.snn import load_checkpoint

    loaded = load_wisdm(wisdm_archive, progress=False)
    space = json.loads((WISDM / "search_space.json").read_text(encoding="utf-8"))
    started = {}
    for model in ("lmu", "rsnn"):
        params = _first_values(_model_option(space, model))
        assert params["input"] == {"_name": "frame"}
        out = tmp_path / model
        started[model] = (out, _trial_alone(WISDM, params, out,
                                            ["--data", str(wisdm_archive), "--subset", "3"]))
    for model, (out, trial) in started.items():
        result = _finished(trial, out)
        assert result["test_subjects"] == list(loaded.test_subjects)
        assert result["parameters"]["model"]["_name"] == model
        assert ("spikes_per_sample" in result) == (model == "rsnn")
        saved = load_checkpoint(out / "best_model.pt")
        assert type(saved.network) is MODEL_CLASSES[model] and saved.network.n_in == 6
        assert saved.extra["split_digest"] == loaded.split_digest


def _kept_trial(results: ExperimentResults) -> int:
    """The trial whose model the experiment kept: the one retrained (ties: fewer spikes)."""
    assert results.directory is not None
    kept = load_best_model(results.directory)
    assert kept is not None and kept.trial_id is not None
    chosen = chosen_trial(results)
    assert chosen is not None and str(chosen.number) == str(kept.trial_id)
    return chosen.number


# ------------------------------------------------------------------------- population mode
def test_population_options_reach_the_trials_and_auto_is_refused(tmp_path: Path) -> None:
    """``--population K --refills R`` become the experiment's population and the trial's
    ``--refills``; ``auto`` (a probe of batched recurrent SNNs) is refused with the reason."""
    neighbours = ("setup_hpo", "train_hpo")  # main_hpo imports them by these plain names
    for template in (BRAILLE, WISDM):
        main = _load(template, "main")
        before = {name: sys.modules.pop(name) for name in neighbours if name in sys.modules}
        sys.path.insert(0, str(template))
        try:
            main_hpo = _load(template, "main_hpo")
            assert main_hpo.parse_args([]).refills == main_hpo.REFILLS
            assert main_hpo.parse_args(["--refills", "0"]).refills == 0
        finally:
            sys.path.remove(str(template))
            for name in neighbours:
                sys.modules.pop(name, None)
            sys.modules.update(before)

        def experiment(*argv: str, main: ModuleType = main) -> Experiment:
            args = main.parse_args([*argv, "--experiment-dir", str(tmp_path), "--gpus", "none"])
            return main.experiment(args)

        exp = experiment("--population", "2", "--refills", "3")
        assert exp.config.population == 2 and "--refills 3" in exp.config.trial_command
        assert not exp.config.population_group  # members are drawn as independent trials
        with pytest.raises(SystemExit):  # refills without a population would do nothing
            experiment("--refills", "3")
        with pytest.raises(SystemExit, match="--population auto: not for this template"):
            experiment("--population", "auto")
        with pytest.raises(SystemExit):  # argparse's usage error
            main.parse_args(["--population", "2", "--refills", "-1"])


@pytest.mark.slow
def test_braille_population_mode_trains_each_trial_as_alone_in_one_process(
    pool: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--population 2 --refills 1`` over all three models: one process trains three trials
    (two at first, one joining as a place frees), each recorded as its own complete trial;
    the last one's result equals its parameters trained alone by ``main_hpo.py``."""
    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "1")
    results = _smoke(BRAILLE, ["--data", str(pool), "--model", "all", "--trials", "3",
                               "--population", "2", "--refills", "1", "--concurrency", "1",
                               "--epochs-cap", "1", "--no-report"], tmp_path, monkeypatch)
    assert results.directory is not None
    (population,) = (results.directory / "populations").iterdir()
    log = (population / "stdout.log").read_text()
    assert "population of 2 trial(s) (0, 1)" in log and "trial 2 joined the population" in log
    assert len(results.records) == 3
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert len(rec.intermediate) == 1
        assert f"trial {rec.number} epoch 1" in (rec.trial_dir / "stdout.log").read_text()
        # its own wall time, from its place in the process (not from the process's start)
        assert rec.started is not None and rec.finished is not None
        assert rec.metrics["seconds"] <= (rec.finished - rec.started).total_seconds() + 0.5

    rec = results.records[-1]
    params = tmp_path / "params.json"
    params.write_text(json.dumps(rec.parameters), encoding="utf-8")
    alone = subprocess.run(
        [sys.executable, "main_hpo.py", "--params", str(params), "--data", str(pool),
         "--subset", "20", "--epochs-cap", "1", "--folds", "1", "--threads", "1",
         "--out", str(tmp_path / "alone")],
        cwd=BRAILLE, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=300,
    )
    assert alone.returncode == 0, alone.stderr
    final = json.loads((tmp_path / "alone" / "result.json").read_text(encoding="utf-8"))
    for key in ("default", "test", "epoch"):
        assert final[key] == pytest.approx(rec.metrics[key], abs=1e-6), key
    assert rec.metrics["split_digest"] == final["split_digest"]


@pytest.mark.slow
def test_wisdm_population_mode_keeps_each_trials_subjects_and_standardisation(
    wisdm_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--population 1 --refills 1``: one process trains two LMU trials one after the other;
    each trial's checkpoint and result carry the subjects and standardisation as alone."""
    from spiketune.snn import load_checkpoint

    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "1")
    results = _smoke(WISDM, ["--model", "lmu", "--input", "frame", "--data", str(wisdm_archive),
                             "--population", "1", "--refills", "1", "--concurrency", "1",
                             "--retrain-seeds", "--no-report"], tmp_path, monkeypatch)
    assert results.directory is not None
    (population,) = (results.directory / "populations").iterdir()
    assert "trial 1 joined the population" in (population / "stdout.log").read_text()
    loaded = load_wisdm(wisdm_archive, progress=False)
    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert "spikes_per_sample" not in rec.metrics  # the LMU does not spike
        extra = load_checkpoint(rec.trial_dir / "best_model.pt").extra
        assert extra["test_subjects"] == list(loaded.test_subjects)
        assert len(extra["mean"]) == len(extra["std"]) == len(extra["channels"])
        result = json.loads((rec.trial_dir / "result.json").read_text(encoding="utf-8"))
        assert result["test_subjects"] == list(loaded.test_subjects)
