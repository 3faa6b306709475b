"""The Braille examples: the e-prop template's files, ``init_project``, where a project finds
its data, the demo, and the whole chain on real data (engine with subprocess trials, best
model, report, confusion matrix, NIR export; the Xylo example: test_braille_xylo.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

import spiketune
from spiketune import ConfigError, DataError, Experiment, Outcome, load_config
from spiketune._init import TEMPLATES, init_project, template_files
from spiketune.engine import ExperimentResults, chosen_trial, load_best_model
from spiketune.trial import flat_parameters

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "braille_eprop"
#: The real Braille event file: where `make test` says ($SPIKETUNE_BRAILLE_DATA), else the
#: shared data directory beside the checkout.
BRAILLE = Path(os.environ.get("SPIKETUNE_BRAILLE_DATA")
               or REPO.parent / "shared" / "data" / "braille")
NO_BRAILLE = (f"the Braille event file is not at {BRAILLE} (set $SPIKETUNE_BRAILLE_DATA, or put "
              "it in ../shared/data/braille beside the checkout)")

FINAL_KEYS = {"default", "test", "train", "epoch", "spikes_per_sample", "split_digest"}
#: What main.py adds to config.toml's trial command by default: trials judged on 3 re-splits.
DEFAULT_COMMAND = "python3 main_hpo.py --folds 3"
EPOCH_KEYS = {"default", "train_acc", "train_loss", "val_loss", "spikes_per_sample"}


def _load(name: str, directory: Path = EXAMPLE) -> ModuleType:
    """``<directory>/<name>.py`` as a module of its own (the example is not a package)."""
    path = directory / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"braille_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ files
def test_example_is_the_packaged_template() -> None:
    """``spiketune init`` writes exactly what examples/braille_eprop holds."""
    files = template_files("braille-eprop")
    expected = {"main.py", "main_hpo.py", "setup_hpo.py", "train_hpo.py", "config.toml",
                "search_space.json", "README.md"}
    assert expected <= set(files)
    on_disk = {p.name for p in EXAMPLE.iterdir() if p.is_file() and not p.name.endswith(".pyc")}
    assert set(files) == on_disk
    for name, content in files.items():
        assert (EXAMPLE / name).read_bytes() == content, f"{name} differs from the template"


def test_init_project_writes_a_runnable_copy(tmp_path: Path) -> None:
    target = tmp_path / "project"
    written = init_project(target, "braille-eprop")
    assert {p.name for p in written} == set(template_files())
    config = load_config(target / "config.toml")
    assert config.trial_code_directory == target.resolve()
    assert config.trial_command == DEFAULT_COMMAND  # trials judged on 3 re-splits
    assert config.search_space == json.loads((target / "search_space.json").read_text())
    assert (config.tuner, config.optimize_mode, config.assessor) == ("TPE", "maximize",
                                                                     "Medianstop")
    # The launcher of the copy describes the experiment of its config.toml.
    launcher = _load("main", target)
    assert launcher.experiment(launcher.parse_args([])).config == Experiment(config).config

    with pytest.raises(ConfigError, match=r"already holds .*main\.py"):
        init_project(target, "braille-eprop")
    (target / "main.py").write_text("changed")
    init_project(target, "braille-eprop", force=True)
    assert (target / "main.py").read_bytes() == template_files()["main.py"]
    with pytest.raises(ConfigError, match="one of braille-eprop"):
        init_project(tmp_path / "other", "no-such-template")
    assert set(TEMPLATES) == {
        "braille-eprop", "braille-l2mu", "nir-finetune", "snntorch-braille", "spike-patterns",
        "wisdm-l2mu",
    }


def test_spiketune_init_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from spiketune.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--template", "braille-eprop"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "main_hpo.py").read_bytes() == template_files()["main_hpo.py"]
    again = runner.invoke(app, ["init", str(tmp_path / "p")])
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(app, ["init", str(tmp_path / "p"), "--force"]).exit_code == 0
    # An empty name (an unset "$DIR") is not the working directory.
    monkeypatch.chdir(tmp_path / "p")
    (tmp_path / "p" / "main.py").write_text("the user's own launcher")
    for empty in ("", "  "):
        refused = runner.invoke(app, ["init", empty, "--force"])
        assert refused.exit_code == 1 and "must name a directory" in refused.output
    assert (tmp_path / "p" / "main.py").read_text() == "the user's own launcher"
    assert not (tmp_path / "p" / "  ").exists()


# ------------------------------------------------------------------------------ launcher
def test_launcher_and_config_are_one_experiment(tmp_path: Path) -> None:
    main = _load("main")
    config = load_config(EXAMPLE / "config.toml")
    assert config.trial_command == DEFAULT_COMMAND
    assert main.experiment(main.parse_args([])).config == Experiment(config).config

    smoke_args = main.parse_args(
        ["--smoke", "--channels", "merged", "--data", str(tmp_path), "--gpus", "none",
         "--experiment-dir", str(tmp_path)]
    )
    assert (smoke_args.folds, smoke_args.retrain_seeds) == (1, [0])
    smoke = main.experiment(smoke_args).config
    assert smoke.max_trials == 2
    assert smoke.trial_command == (
        f"python3 main_hpo.py --folds 1 --epochs-cap 1 --subset 20 --data {tmp_path.resolve()}"
    )
    assert smoke.search_space["channels"] == {"_type": "choice", "_value": ["merged"]}
    assert smoke.gpus is None and smoke.experiment_dir == tmp_path
    # Everything else is config.toml's.
    assert {k: v for k, v in smoke.search_space.items() if k != "channels"} == (
        config.search_space
    )
    assert main.experiment(main.parse_args(["--smoke", "--trials", "5"])).config.max_trials == 5
    # The other letters' file for pretraining travels to every trial, made absolute.
    events = tmp_path / "data_braille_letters_th10"
    events.mkdir()
    (tmp_path / "pool.pt").write_bytes(b"")
    pretrain = main.experiment(main.parse_args(
        ["--smoke", "--data", str(tmp_path / "pool.pt"), "--pretrain-data", str(events)])).config
    assert pretrain.trial_command.endswith(f"--pretrain-data {events.resolve()}")

    # Folds and retraining seeds: the defaults, given ones (over --smoke's), and none at all.
    plain = main.parse_args([])
    assert (plain.folds, plain.retrain_seeds) == (None, None)
    assert (main.FOLDS, main.RETRAIN_SEEDS) == (3, [0, 1, 2])
    given = main.parse_args(["--smoke", "--folds", "2", "--retrain-seeds", "4", "5"])
    assert (given.folds, given.retrain_seeds) == (2, [4, 5])
    assert main.experiment(given).config.trial_command.startswith("python3 main_hpo.py --folds 2 ")
    with pytest.raises(SystemExit):  # argparse's usage error
        main.parse_args(["--folds", "0"])
    assert main.parse_args(["--retrain-seeds"]).retrain_seeds == []


def test_search_space_bins_are_whole_multiples_of_the_threshold_1_steps() -> None:
    """The searched bin sizes rebin the 5 ms threshold-1 data (and are the network's dt), and
    every searched loss window fits in a 1.28 s sample at each of them."""
    space = json.loads((EXAMPLE / "search_space.json").read_text(encoding="utf-8"))
    bins = space["bin_size"]["_value"]
    assert space["bin_size"]["_type"] == "choice" and bins == [0.01, 0.02]
    windows = [w for w in space["loss_window"]["_value"] if w is not None]
    assert windows == [0.4, 0.8] and None in space["loss_window"]["_value"]
    for b in bins:
        assert b / 0.005 == pytest.approx(round(b / 0.005), abs=1e-9)
        assert all(round(w / b) <= round(1.28 / b) for w in windows)


def test_trial_parameters_become_network_and_training_configs() -> None:
    import torch

    from spiketune.data import DatasetInfo

    train_hpo = _load("train_hpo")
    params = {
        "bin_size": 0.02, "channels": "merged", "n_rec": 16, "tau_mem": 0.05, "lr": 0.01,
        "epochs": 40, "batch_size": 16,
        "neuron": {"_name": "alif", "tau_adapt": 0.5, "beta": 0.2},
        "rule": {"_name": "eprop", "feedback": "random"},
    }
    assert flat_parameters(params)["neuron"] == "alif"
    info = DatasetInfo("braille", tuple("abcdefg"), 12, 68, 0.02)
    net, train_config = train_hpo.build(params, info, device=torch.device("cpu"), epochs_cap=3)
    c = net.config
    assert (c.n_in, c.n_out, c.n_rec, c.dt) == (12, 7, 16, 0.02)
    assert (c.neuron, c.tau_adapt, c.beta, c.feedback, c.rule) == ("alif", 0.5, 0.2, "random",
                                                                   "eprop")
    assert c.loss == "ce_summed"
    assert (train_config.epochs, train_config.lr, train_config.patience) == (3, 0.01, 15)
    assert (train_config.ema_decay, train_config.lr_schedule) == (0.995, "cosine")
    with pytest.raises(ConfigError, match="tau_membrane"):
        train_hpo.build({"tau_membrane": 0.1}, info, device=torch.device("cpu"))


def test_the_searched_loss_window_reaches_the_network_in_steps() -> None:
    import torch

    from spiketune.data import DatasetInfo

    train_hpo = _load("train_hpo")
    info = DatasetInfo("braille", tuple("abcdefg"), 24, 68, 0.02)
    net, _ = train_hpo.build({"n_rec": 8, "loss_window": 0.4}, info, device=torch.device("cpu"))
    assert net.config.loss_steps == 20  # 0.4 s of 20 ms bins


def test_data_location_and_threads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    setup_hpo = _load("setup_hpo")
    monkeypatch.setenv(setup_hpo.DATA_ENV, str(tmp_path))
    assert setup_hpo.data_location(None) == tmp_path
    assert setup_hpo.data_location("/elsewhere") == Path("/elsewhere")
    monkeypatch.delenv(setup_hpo.DATA_ENV)
    assert setup_hpo.data_location(None) is None  # spiketune's cache: no checkout layout

    monkeypatch.delenv(setup_hpo.THREADS_ENV, raising=False)
    monkeypatch.setenv(setup_hpo.CONCURRENCY_ENV, "1000")
    assert setup_hpo.trial_threads() == 1
    monkeypatch.setenv(setup_hpo.THREADS_ENV, "3")
    assert setup_hpo.trial_threads() == 3
    assert setup_hpo.trial_threads(2) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert setup_hpo.trial_device().type == "cpu"


def test_an_installed_project_finds_data_without_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project made by ``spiketune init`` far from any checkout: no data anywhere is one
    error naming the three ways to give it; each of the three is then used."""
    project = tmp_path / "far" / "away"
    init_project(project)
    for name, content in template_files().items():
        assert b"parents[" not in content and b"shared" not in content, name
    setup_hpo = _load("setup_hpo", project)
    monkeypatch.delenv(setup_hpo.DATA_ENV, raising=False)
    monkeypatch.setenv("SPIKETUNE_DATA", str(tmp_path / "empty_cache"))
    with pytest.raises(DataError) as err:
        setup_hpo.load_data(setup_hpo.DATA_DEFAULTS, None, download=False)
    message = str(err.value)
    for way in ("--data PATH", "$SPIKETUNE_BRAILLE_DATA", str(tmp_path / "empty_cache")):
        assert way in message
    with pytest.raises(DataError, match="does not exist"):
        setup_hpo.load_data(setup_hpo.DATA_DEFAULTS, tmp_path / "typo", download=False)
    if not BRAILLE.is_dir():
        pytest.skip(NO_BRAILLE)
    by_option = setup_hpo.load_data(setup_hpo.DATA_DEFAULTS, BRAILLE, per_class=5)
    monkeypatch.setenv(setup_hpo.DATA_ENV, str(BRAILLE))
    by_env = setup_hpo.load_data(setup_hpo.DATA_DEFAULTS, per_class=5, download=False)
    assert by_option.split_digest == by_env.split_digest and len(by_env.train) > 0
    monkeypatch.delenv(setup_hpo.DATA_ENV)
    cache = tmp_path / "cache"
    (cache / "braille").mkdir(parents=True)
    for f in BRAILLE.iterdir():
        (cache / "braille" / f.name).symlink_to(f)
    monkeypatch.setenv("SPIKETUNE_DATA", str(cache))
    by_cache = setup_hpo.load_data(setup_hpo.DATA_DEFAULTS, per_class=5, download=False)
    assert by_cache.split_digest == by_option.split_digest


def test_the_demo_runs_the_packaged_template(monkeypatch: pytest.MonkeyPatch) -> None:
    from spiketune import demo

    ran: list[tuple[Path, list[str]]] = []

    def launcher(directory: Path) -> SimpleNamespace:
        return SimpleNamespace(run=lambda argv: ran.append((directory, argv)) or "results")

    monkeypatch.setattr(demo, "_launcher", launcher)
    assert demo.run_demo(["--data", "/d", "--trials", "3"]) == "results"
    ((directory, argv),) = ran
    packaged = Path(spiketune.__file__).resolve().parent / "templates" / "braille_eprop"
    assert directory.resolve() == packaged
    assert argv == [*demo.DEMO_ARGS, "--data", "/d", "--trials", "3"]  # later ones win
    assert "examples" not in Path(demo.__file__).read_text(encoding="utf-8")

    # The template's launcher takes the demo's budget: 8.5 minutes of search, then the chosen
    # configuration retrained with the default seeds, trials judged on the default folds.
    args = _load("main", packaged).parse_args([*demo.DEMO_ARGS, "--trials", "3"])
    assert (args.duration, args.trials, args.concurrency, args.epochs_cap) == ("8.5m", 3, 2, 20)
    assert (args.folds, args.retrain_seeds) == (None, None)
    # The README's line for the demo's run gives its budget as the demo does (its name aside,
    # and the concurrency the config already has).
    line = next(t for t in (packaged / "README.md").read_text(encoding="utf-8").splitlines()
                if "what `make demo` runs" in t)
    given = dict(zip(demo.DEMO_ARGS[::2], demo.DEMO_ARGS[1::2], strict=True))
    for flag, value in given.items():
        if flag not in ("--name", "--concurrency"):
            assert f"{flag} {value}" in line, flag


# ------------------------------------------------------------------------------ the chain
@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2 subprocess trials of 1 epoch on 20 samples per class of the real data (one fold each),
    the chosen configuration retrained with seed 0, then the best model, the report, the
    confusion matrix and the NIR export."""
    if not BRAILLE.is_dir():
        pytest.skip(NO_BRAILLE)
    import nir
    from typer.testing import CliRunner

    from spiketune import load_best_model
    from spiketune.cli import app
    from spiketune.engine import load_retrained
    from spiketune.report import build_report, plot_confusion_matrix
    from spiketune.snn import RecurrentSNN, load_checkpoint, predict_classes

    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "2")  # the launcher sets it; restored after
    main = _load("main")
    results = main.run(["--smoke", "--experiment-dir", str(tmp_path), "--data", str(BRAILLE),
                        "--no-report", "-q"])

    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert set(rec.metrics) >= FINAL_KEYS
        assert rec.metrics["epoch"] == 1 and 0.0 <= rec.metrics["test"] <= 1.0
        assert len(rec.intermediate) == 1 and set(rec.intermediate[0]) >= EPOCH_KEYS
        assert rec.metrics["default"] == rec.intermediate[0]["default"]
        assert "val_fold0" not in rec.metrics  # one fold: the split itself
        # every trial saved its weights
        assert load_checkpoint(rec.trial_dir / "best_model.pt").extra["folds"] == 1
        # the recorded metrics name the split, as the trial's result.json does
        written = json.loads((rec.trial_dir / "result.json").read_text(encoding="utf-8"))
        assert rec.metrics["split_digest"] == written["split_digest"]

    # --smoke retrains the chosen configuration with seed 0 alone.
    retrained = load_retrained(results.directory)
    assert retrained is not None and results.best is not None
    assert [r.seed for r in retrained.runs] == [0] and retrained.trial == _kept_trial(results)
    assert (results.directory / "chosen" / "seed0" / "best_model.pt").is_file()
    assert retrained.runs[0].checkpoint == "chosen/seed0/best_model.pt"
    assert retrained.mean == retrained.runs[0].metrics["test"] and retrained.std == 0.0
    assert retrained.split_digest == results.records[0].metrics["split_digest"]
    assert retrained.runs[0].split_digest == retrained.split_digest and not retrained.off_split

    # The kept model is the trial with the best (validation accuracy, -spikes).
    best = load_best_model(results.directory)
    assert best is not None
    winner = max(results.records,
                 key=lambda r: (r.metrics["default"], -r.metrics["spikes_per_sample"]))
    assert best.score == (winner.metrics["default"], -winner.metrics["spikes_per_sample"])
    assert best.info["test"] == winner.metrics["test"]
    checkpoint = load_checkpoint(best.path())
    net = checkpoint.network
    assert isinstance(net, RecurrentSNN) and (net.config.n_in, net.config.n_out) == (24, 7)

    # Rebuilt from the file, the network makes the predictions the report draws.
    setup_hpo = _load("setup_hpo")
    data = setup_hpo.load_data(setup_hpo.data_options(best.parameters), BRAILLE, per_class=20)
    predictions = best.predictions
    assert predictions is not None and predictions.split == "test"
    assert predictions.labels == data.test.labels.tolist()
    assert predict_classes(net, data.test).tolist() == predictions.predictions
    assert predictions.accuracy == pytest.approx(winner.metrics["test"])

    files = build_report(results.directory)
    for path in (files.index, files.exploration_png, files.exploration_html,
                 files.confusion_matrix, files.history, files.intermediate):
        assert path is not None and path.is_file() and path.stat().st_size > 0
    matrix = plot_confusion_matrix(predictions, tmp_path / "confusion.png")
    assert matrix.sum() == len(data.test) == 14
    assert matrix.trace() == predictions.n_correct

    # NIR: a LIF layer with subtract reset is a subgraph; ALIF and refractory periods are
    # refused unless their approximation is asked for.
    runner = CliRunner()
    out = tmp_path / "best.nir"
    args = ["export-model", str(results.directory), "--format", "nir", "-o", str(out)]
    needs = [name for name, needed in (("adaptation", net.config.neuron == "alif"),
                                       ("refractory", net.config.refractory_steps > 0)) if needed]
    if needs:
        refused = runner.invoke(app, args)
        assert refused.exit_code == 1 and "approximate" in refused.output
        assert not out.exists()
        for name in needs:
            args += ["--approximate", name]
    exported = runner.invoke(app, args)
    assert exported.exit_code == 0, exported.output
    graph = nir.read(out)
    hidden = [n for n in graph.nodes.values() if isinstance(n, nir.NIRGraph)]
    assert len(hidden) == 1
    assert any(isinstance(n, nir.Threshold) for n in hidden[0].nodes.values())


def test_population_mode_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``main.py --population 3``: three trials of the real search space trained in one
    process (grouped by what they can share, two re-splits each), each recorded as its own
    trial with the reports, result, checkpoint and logs of a trial run alone."""
    if not BRAILLE.is_dir():
        pytest.skip(NO_BRAILLE)
    from spiketune.snn import load_checkpoint

    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "1")
    main = _load("main")
    results = main.run(["--smoke", "--trials", "3", "--population", "3", "--concurrency", "1",
                        "--epochs-cap", "2", "--folds", "2", "--retrain-seeds",
                        "--experiment-dir", str(tmp_path), "--data", str(BRAILLE),
                        "--no-report", "-q"])
    assert results.directory is not None
    (population,) = (results.directory / "populations").iterdir()
    members = json.loads((population / "population.json").read_text())["members"]
    assert [m["number"] for m in members] == [0, 1, 2]
    assert "population of 3 trial(s) (0, 1, 2)" in (population / "stdout.log").read_text()
    assert len(results.records) == 3
    shapes = {json.dumps([rec.parameters[k] for k in main.POPULATION_GROUP
                          if k in rec.parameters]) for rec in results.records}
    assert len(shapes) == 1  # one batch: the members share what fixes its shape
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert set(rec.metrics) >= FINAL_KEYS | {"val_fold0", "val_fold1"}
        assert rec.metrics["default"] == pytest.approx(
            (rec.metrics["val_fold0"] + rec.metrics["val_fold1"]) / 2)
        assert 1 <= len(rec.intermediate) <= 2 and set(rec.intermediate[0]) >= EPOCH_KEYS
        checkpoint = load_checkpoint(rec.trial_dir / "best_model.pt")
        assert checkpoint.extra["metrics"]["test"] == rec.metrics["test"]
        assert f"trial {rec.number} epoch 1" in (rec.trial_dir / "stdout.log").read_text()
    best = load_best_model(results.directory)
    assert best is not None and best.trial_id == str(_kept_trial(results))


def _kept_trial(results: ExperimentResults) -> int:
    """The trial whose model the experiment kept: the one retrained (ties: fewer spikes)."""
    assert results.directory is not None
    kept = load_best_model(results.directory)
    assert kept is not None and kept.trial_id is not None
    chosen = chosen_trial(results)
    assert chosen is not None and str(chosen.number) == str(kept.trial_id)
    return chosen.number


def test_a_wrong_data_file_stops_the_launcher_before_any_trial(tmp_path: Path) -> None:
    """Every trial would fail on it in turn (200 by default): the launcher reads the data
    once first and stops with the reason."""
    from spiketune.errors import SpiketuneError

    main = _load("main")
    text = tmp_path / "README.md"
    text.write_text("not data\n")
    root = tmp_path / "exps"
    with pytest.raises(SpiketuneError):
        main.run(["--smoke", "--data", str(text), "--experiment-dir", str(root), "-q"])
    assert not root.exists() or not any(root.iterdir())  # no experiment was started
