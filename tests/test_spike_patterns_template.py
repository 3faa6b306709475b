"""The spike-patterns template (``spiketune/templates/spike_patterns``): its launcher smoke-runs
the whole chain on the generator (subprocess trials, the chosen configuration retrained,
``retrained.json``, the report), on the generator's default data, and a trial refuses a
misspelt parameter by name. The template is loaded from its directory (a copy of it, as
``spiketune init`` would write), not through the template registry."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from spiketune import ConfigError, ExperimentResults, Outcome
from spiketune.engine import chosen_trial, load_best_model

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "spiketune" / "templates" / "spike_patterns"
#: The generator's defaults, written out: the data every trial must use.
GENERATOR_DEFAULTS = {"classes": "all", "samples_per_class": 100, "noise": 0.1,
                      "jitter": 0.004, "n_steps": 1000, "dt": 0.001, "seed": 0}
#: ``stratified_split(labels, (0.8, 0.1, 0.1), seed=0).digest()`` of the full task (README).
FULL_SPLIT_DIGEST = "d0e287dab1e8beffb15becf0c0f202754a6e96f00858ae21227b495543c24ef3"
FINAL_KEYS = {"default", "test", "train", "epoch", "spikes_per_sample", "split_digest"}


def _load(name: str, directory: Path) -> ModuleType:
    """``<directory>/<name>.py`` as a module of its own (the template is not a package)."""
    path = directory / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"spike_patterns_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _trial_env() -> dict[str, str]:
    """The environment of a trial run by hand: nothing of an experiment, and this checkout's
    spiketune first (the interpreter's installed one may be another checkout's)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NNI_", "SPIKETUNE_TRIAL", "SPIKETUNE_EXPERIMENT_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the template, as ``spiketune init`` writes it."""
    target = tmp_path_factory.mktemp("spike_patterns") / "project"
    shutil.copytree(TEMPLATE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


@pytest.fixture(scope="module")
def smoke(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExperimentResults]:
    """``python main.py --smoke``: 2 subprocess trials of 1 epoch on 10 samples per class,
    then the chosen configuration retrained with seed 0 (the report is built by its test)."""
    experiments = tmp_path_factory.mktemp("experiments")
    env = _trial_env()
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k not in env]:
            mp.delenv(key)
        mp.setenv("PYTHONPATH", env["PYTHONPATH"])
        mp.setenv("SPIKETUNE_CONCURRENCY", "2")  # the launcher sets it; restored after
        main = _load("main", project)
        yield main.run(["--smoke", "--experiment-dir", str(experiments), "--gpus", "none",
                        "--no-report", "-q"])


def test_launcher_smoke_runs_the_chain_and_retrains_the_chosen_configuration(
    smoke: ExperimentResults,
) -> None:
    from spiketune.engine import load_retrained

    assert len(smoke.records) == 2
    for rec in smoke.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert set(rec.metrics) >= FINAL_KEYS
        assert 0.0 <= rec.metrics["default"] <= 1.0 and 0.0 <= rec.metrics["test"] <= 1.0
        assert rec.metrics["epoch"] == 1 and len(rec.intermediate) == 1
        assert rec.metrics["default"] == rec.intermediate[0]["default"]
        assert (rec.trial_dir / "best_model.pt").is_file()
        written = json.loads((rec.trial_dir / "result.json").read_text("utf-8"))
        assert rec.metrics["split_digest"] == written["split_digest"]

    assert smoke.directory is not None and smoke.best is not None
    assert (smoke.directory / "retrained.json").is_file()
    retrained = load_retrained(smoke.directory)
    assert retrained is not None and retrained.trial == _kept_trial(smoke)
    assert [r.seed for r in retrained.runs] == [0]
    assert (smoke.directory / "chosen" / "seed0" / "best_model.pt").is_file()
    assert retrained.mean == retrained.runs[0].metrics["test"]
    # The retrained run was tested on the very split the trials were judged around.
    trial_result = json.loads((smoke.best.trial_dir / "result.json").read_text("utf-8"))
    assert retrained.split_digest == trial_result["split_digest"]
    chosen = json.loads((smoke.directory / "chosen" / "parameters.json").read_text("utf-8"))
    best = chosen_trial(smoke)
    assert best is not None and chosen == best.parameters


def test_a_retraining_on_another_split_is_refused_and_marked(
    smoke: ExperimentResults, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The smoke run's choice retrained on other data (--subset 5, not the search's 10): its
    test part is other samples, so ``retrain`` refuses it naming both splits, and the report
    of a copy of the experiment marks the run."""
    from spiketune import TrialError, load_results
    from spiketune.engine import load_retrained, retrain
    from spiketune.report import build_report

    assert smoke.directory is not None
    copy = tmp_path / smoke.directory.name
    shutil.copytree(smoke.directory, copy)
    results = load_results(copy)
    chosen = chosen_trial(results)
    assert chosen is not None and results.directory == copy
    trial_digest = chosen.metrics["split_digest"]
    monkeypatch.setenv("PYTHONPATH", _trial_env()["PYTHONPATH"])
    with pytest.raises(TrialError, match=f"another data split than trial {chosen.number} "
                                         f"\\(split {trial_digest}\\): seed 0 on "):
        retrain(results, [sys.executable, "main_hpo.py", "--folds", "1", "--epochs-cap", "1",
                          "--subset", "5"], seeds=[0], cwd=project, echo=None)
    retrained = load_retrained(copy)
    assert retrained is not None and retrained.split_digest == trial_digest
    (run,) = retrained.off_split
    seed_result = json.loads((copy / "chosen" / "seed0" / "result.json").read_text("utf-8"))
    assert run.split_digest == seed_result["split_digest"] != trial_digest
    text = build_report(copy, out_dir=tmp_path / "report").index.read_text(encoding="utf-8")
    assert f"Not the chosen trial's data split: seed 0 (split digest {run.split_digest})" in text


def test_the_report_of_the_smoke_run_builds(smoke: ExperimentResults) -> None:
    from spiketune import load_best_model
    from spiketune.report import build_report

    assert smoke.directory is not None
    files = build_report(smoke.directory)
    for path in (files.index, files.exploration_png, files.confusion_matrix, files.history):
        assert path is not None and path.is_file() and path.stat().st_size > 0
    best = load_best_model(smoke.directory)
    assert best is not None and best.predictions is not None
    # 10 samples per class, 10 % of each in the test part: one of each of the 20 classes.
    assert sorted(best.predictions.labels) == list(range(20))


def test_trials_train_on_the_generator_defaults(smoke: ExperimentResults, project: Path) -> None:
    import torch

    from spiketune.data import make_spike_patterns, stratified_split
    from spiketune.snn import load_checkpoint

    setup_hpo = _load("setup_hpo", project)
    assert setup_hpo.GENERATOR == GENERATOR_DEFAULTS
    for rec in smoke.records:  # what each trial recorded it used
        extra = load_checkpoint(rec.trial_dir / "best_model.pt").extra
        assert extra["generator"] == GENERATOR_DEFAULTS and extra["subset"] == 10
        result = json.loads((rec.trial_dir / "result.json").read_text("utf-8"))
        assert result["generator"] == GENERATOR_DEFAULTS

    # The full task, at the generator's own 1 ms: exactly make_spike_patterns with the
    # default options spelt out, split by the fixed seed-0 split the README names.
    data = setup_hpo.load_data({"bin_size": 0.001, "clip": False})
    reference = make_spike_patterns(noise=0.1, jitter=0.004, samples_per_class=100, seed=0)
    split = stratified_split(reference.labels, (0.8, 0.1, 0.1), seed=0)
    assert data.split_digest == split.digest() == FULL_SPLIT_DIGEST
    for part, expected in zip((data.train, data.val, data.test), reference.split(split),
                              strict=True):
        assert torch.equal(part.inputs, expected.inputs)
        assert torch.equal(part.labels, expected.labels)
    assert (len(data.train), len(data.val), len(data.test)) == (1600, 200, 200)

    # A smoke run's subset is samples of that same task, not a smaller, different draw.
    small = setup_hpo.load_data({"bin_size": 0.001, "clip": False}, per_class=10)
    rows = {tuple(x.flatten().tolist()) for x in reference.inputs}
    assert all(tuple(x.flatten().tolist()) in rows for x in small.test.inputs)


def test_trial_refuses_a_misspelt_parameter_by_name(project: Path, tmp_path: Path) -> None:
    params = tmp_path / "bad.json"
    params.write_text(json.dumps({"tau_membrane": 0.1}), encoding="utf-8")
    out = tmp_path / "trial"
    trial = subprocess.run(
        [sys.executable, "main_hpo.py", "--params", str(params), "--subset", "5",
         "--epochs-cap", "1", "--threads", "1", "--out", str(out)],
        cwd=project, env=_trial_env(), capture_output=True, text=True, timeout=120,
    )
    assert trial.returncode == 1
    assert "invalid configuration" in trial.stderr and "tau_membrane" in trial.stderr
    assert "Traceback" not in trial.stderr, trial.stderr
    assert not (out / "best_model.pt").exists()

    # The same refusal in-process, and for a generator option: the search cannot change the
    # data it is judged on.
    import torch

    from spiketune.data import DatasetInfo

    train_hpo = _load("train_hpo", project)
    info = DatasetInfo("spike_patterns", tuple("ABCDEFGHIJKLMNOPQRST"), 1, 100, 0.01)
    for name in ("tau_membrane", "noise"):
        with pytest.raises(ConfigError, match=name):
            train_hpo.build({name: 0.1}, info, device=torch.device("cpu"))
    net, _ = train_hpo.build({"n_rec": 8, "bin_size": 0.01}, info, device=torch.device("cpu"))
    assert (net.config.n_in, net.config.n_out, net.config.dt) == (1, 20, 0.01)


def test_bias_input_adds_a_constant_channel_and_leaves_the_samples(project: Path) -> None:
    """``bias_input`` gives the network a bias current as a second input channel that is 1
    at every step; the spike trains, labels and split stay those of the task."""
    import torch

    setup_hpo = _load("setup_hpo", project)
    train_hpo = _load("train_hpo", project)
    plain = setup_hpo.load_data({"bin_size": 0.02, "clip": False}, per_class=5, folds=2)
    biased = setup_hpo.load_data({"bin_size": 0.02, "clip": False, "bias_input": True},
                                 per_class=5, folds=2)
    assert biased.split_digest == plain.split_digest
    assert biased.info.n_inputs == 2 and plain.info.n_inputs == 1
    for a, b in [(plain.train, biased.train), (plain.test, biased.test),
                 *zip((v for _, v in plain.folds), (v for _, v in biased.folds), strict=True)]:
        assert torch.equal(b.inputs[..., :1], a.inputs) and torch.equal(b.labels, a.labels)
        assert torch.equal(b.inputs[..., 1], torch.ones_like(b.inputs[..., 1]))
    # a data option, not a network field: build() takes it from the parameters silently
    net, _ = train_hpo.build({"n_rec": 8, "bin_size": 0.02, "bias_input": True}, biased.info,
                             device=torch.device("cpu"))
    assert net.config.n_in == 2
    space = json.loads((TEMPLATE / "search_space.json").read_text(encoding="utf-8"))
    assert space["bias_input"] == {"_type": "choice", "_value": [True, False]}


def test_search_space_bins_fit_the_generator_steps_and_the_window() -> None:
    """Every searched bin is a whole number of the generator's 1 ms steps, and the searched
    loss window fits in the 1 s sample at each bin."""
    space = json.loads((TEMPLATE / "search_space.json").read_text(encoding="utf-8"))
    bins = space["bin_size"]["_value"]
    windows = [w for w in space["loss_window"]["_value"] if w is not None]
    assert bins == [0.005, 0.01, 0.02] and windows == [0.5]
    assert not {"noise", "jitter", "samples_per_class", "seed"} & set(space)
    for b in bins:
        assert b / 0.001 == pytest.approx(round(b / 0.001), abs=1e-9)
        assert all(round(w / b) <= round(1.0 / b) for w in windows)


def _kept_trial(results: ExperimentResults) -> int:
    """The trial whose model the experiment kept: the one retrained (ties: fewer spikes)."""
    assert results.directory is not None
    kept = load_best_model(results.directory)
    assert kept is not None and kept.trial_id is not None
    chosen = chosen_trial(results)
    assert chosen is not None and str(chosen.number) == str(kept.trial_id)
    return chosen.number


def test_population_mode_records_each_member_as_the_same_trial_alone(
    project: Path, tmp_path: Path
) -> None:
    """``main.py --population 3``: three trials of the real search space trained in one
    process, each recorded as its own trial (reports, result, checkpoint, log), and a member's
    result equal to its parameters trained alone by ``main_hpo.py``."""
    from spiketune.snn import load_checkpoint

    env = _trial_env()
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k not in env]:
            mp.delenv(key)
        mp.setenv("PYTHONPATH", env["PYTHONPATH"])
        mp.setenv("SPIKETUNE_CONCURRENCY", "1")
        main = _load("main", project)
        results = main.run(["--smoke", "--trials", "3", "--population", "3", "--concurrency",
                            "1", "--epochs-cap", "2", "--folds", "2", "--retrain-seeds",
                            "--experiment-dir", str(tmp_path / "exp"), "--gpus", "none",
                            "--no-report", "-q"])
    assert results.directory is not None
    (population,) = (results.directory / "populations").iterdir()
    assert "population of 3 trial(s) (0, 1, 2)" in (population / "stdout.log").read_text()
    assert len(results.records) == 3
    shapes = {json.dumps([rec.parameters[k] for k in main.POPULATION_GROUP
                          if k in rec.parameters]) for rec in results.records}
    assert len(shapes) == 1  # one batch: the members share what fixes its shape
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert set(rec.metrics) >= FINAL_KEYS | {"val_fold0", "val_fold1"}
        assert 1 <= len(rec.intermediate) <= 2
        checkpoint = load_checkpoint(rec.trial_dir / "best_model.pt")
        assert checkpoint.extra["metrics"]["test"] == rec.metrics["test"]
        assert f"trial {rec.number} epoch 1" in (rec.trial_dir / "stdout.log").read_text()

    # The last member, trained alone by hand on the same folds, gives the same result.
    rec = results.records[-1]
    params = tmp_path / "params.json"
    params.write_text(json.dumps(rec.parameters), encoding="utf-8")
    alone = subprocess.run(
        [sys.executable, "main_hpo.py", "--params", str(params), "--subset", "10",
         "--epochs-cap", "2", "--folds", "2", "--threads", "1", "--out", str(tmp_path / "a")],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert alone.returncode == 0, alone.stderr
    final = json.loads((tmp_path / "a" / "result.json").read_text(encoding="utf-8"))
    for key in ("default", "val_fold0", "val_fold1", "test", "epoch"):
        assert final[key] == pytest.approx(rec.metrics[key], abs=1e-6), key


def test_population_auto_probes_the_default_network(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--population auto``: the probe's choice becomes K, the processes and their threads."""
    monkeypatch.syspath_prepend(str(project))  # main imports its neighbours for the probe
    main = _load("main", project)
    monkeypatch.setattr(main, "PROBE_SIZES", (1, 2))
    args = main.parse_args(["--population", "auto", "--subset", "10", "--gpus", "none"])
    neighbours = ("main_hpo", "setup_hpo", "train_hpo")  # other templates have their own
    before = {name: sys.modules.pop(name) for name in neighbours if name in sys.modules}
    try:
        probe = main.choose_population(args)
    finally:
        for name in neighbours:
            sys.modules.pop(name, None)
        sys.modules.update(before)
    assert args.population == probe.size in (1, 2)
    assert args.concurrency == probe.processes and args.trial_threads == probe.threads
    assert {r.size for r in probe.table} == {1, 2}
    for bad in ("0", "x"):
        with pytest.raises(SystemExit):  # argparse's usage error
            main.parse_args(["--population", bad])


@pytest.mark.parametrize(("template", "flag"), [("spike_patterns", "bias_input"),
                                                ("braille_l2mu", "clip"), ("wisdm_l2mu", "clip"),
                                                ("braille_eprop", "clip")])
def test_a_flag_given_as_text_is_refused_not_read_as_true(template: str, flag: str) -> None:
    """``"no"`` or ``"false"`` in --params used to switch the option on (any non-empty text
    is true in Python); a flag must be true or false."""
    from spiketune.trial import with_defaults

    path = REPO / "spiketune" / "templates" / template / "setup_hpo.py"
    spec = importlib.util.spec_from_file_location(f"flag_test_{template}_setup_hpo", path)
    assert spec is not None and spec.loader is not None
    setup = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = setup  # dataclasses look their module up there
    spec.loader.exec_module(setup)
    params = {flag: "no", **({"input": "events"} if template == "wisdm_l2mu" else {})}
    with pytest.raises(ConfigError, match=f"{flag}: must be true or false \\(got 'no'\\)"):
        setup.data_options(params)
    assert setup.data_options({**params, flag: False})[flag] is False
    assert with_defaults({"x": 1}, {"x": 0, "y": True}) == {"x": 1, "y": True}
