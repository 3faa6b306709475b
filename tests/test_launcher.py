"""What the templates' launchers share (spiketune.launcher): the options they add to a trial
command, the choice they narrow, and the lines they print."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import spiketune.engine.results
from spiketune import ConfigError, DataError, Outcome, Problem, Progress
from spiketune.engine.config import PopulationSize
from spiketune.launcher import (
    add_experiment_options,
    config_changes,
    format_duration,
    format_percent,
    launch,
    narrow_choice,
    print_finish,
    print_start,
    print_summary,
    progress_printer,
    with_options,
)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "none"), (0, "0m00s"), (59.4, "0m59s"), (59.6, "1m00s"), (65, "1m05s"),
    (3599, "59m59s"), (3600, "1h00m00s"), (3723.2, "1h02m03s"), (36000, "10h00m00s"),
])
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("value", "text"), [
    (None, "n/a"), (0, "0.0%"), (0.93333, "93.3%"), (1, "100.0%"), ("0.5", "50.0%"),
])
def test_format_percent(value: Any, text: str) -> None:
    assert format_percent(value) == text


def test_with_options_sets_in_place_or_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pool.pt").write_bytes(b"")
    base = ["python3", "main_hpo.py", "--folds", "3"]
    command = with_options(base, {"--epochs-cap": 1, "--subset": None, "--data": "pool.pt",
                                  "--folds": 1}, paths=("--data",))
    assert command == ["python3", "main_hpo.py", "--folds", "1", "--epochs-cap", "1",
                       "--data", str(tmp_path / "pool.pt")]
    assert base == ["python3", "main_hpo.py", "--folds", "3"]  # the given command is kept
    assert with_options(base, {}) == base and with_options(base, {"--x": None}) == base


def test_with_options_paths_are_absolute_and_expanded(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for name in ("pool.pt", "g.nir"):
        (tmp_path / name).write_bytes(b"")
    command = with_options(["t"], {"--data": "~/pool.pt", "--graph": Path("g.nir"),
                                   "--name": "~/x"}, paths=("--data", "--graph"))
    assert command == ["t", "--data", str(tmp_path / "pool.pt"),
                       "--graph", str(Path("g.nir").resolve()), "--name", "~/x"]


def test_with_options_refuses_a_path_that_does_not_exist(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trial would fail on it: the launcher says so before any trial starts."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        with_options(["t"], {"--data": "missing.pt"}, paths=("--data",))
    assert str(info.value).endswith(f"  - --data: an existing file or directory "
                                    f"({tmp_path / 'missing.pt'} is not) (got 'missing.pt')")
    assert with_options(["t"], {"--name": "missing"}, paths=("--data",))[-1] == "missing"


def _failing_launcher(problem: Problem) -> Any:
    def run(argv: list[str]) -> None:
        raise ConfigError([problem, Problem("tuner", "TPE2", "a tuner spiketune knows")],
                          source="config.toml")
    return run


def test_launch_ends_a_launcher_with_the_reason_and_the_option_that_set_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        launch(_failing_launcher(Problem("max_trials", 0, "must be >= 1")), ["--trials", "0"])
    assert info.value.code == ("error: invalid configuration in config.toml:\n"
                               "  - max_trials (--trials): must be >= 1 (got 0)\n"
                               "  - tuner: a tuner spiketune knows (got 'TPE2')")

    def bad_data(argv: list[str]) -> None:
        raise DataError("pool.pt is not a TensorDataset file")

    with pytest.raises(SystemExit) as info:
        launch(bad_data, [])
    assert info.value.code == "error: pool.pt is not a TensorDataset file"
    seen: list[list[str]] = []
    launch(seen.append, ("--trials", "3"))  # a good run returns
    assert seen == [["--trials", "3"]]


def test_launch_exits_1_when_every_trial_failed() -> None:
    """A launcher whose experiment got no result (every trial failed) must not look like a
    success to the script or CI job running it; one result is a success."""
    from spiketune.engine.results import ExperimentResults, TrialRecord

    def results(*outcomes: Outcome) -> ExperimentResults:
        records = [TrialRecord(number=i, outcome=o, parameters={},
                               reason="exit code 2: no such file" if o == Outcome.FAILED
                               else None, metrics=None if o == Outcome.FAILED
                               else {"default": 0.5}) for i, o in enumerate(outcomes)]
        return ExperimentResults(id="x", directory=None, config={}, records=records,
                                 optimize_mode="maximize")

    with pytest.raises(SystemExit) as info:
        launch(lambda argv: results(Outcome.FAILED, Outcome.FAILED), [])
    assert info.value.code == "error: every trial failed (2); trial 0: exit code 2: no such file"
    for fine in ((Outcome.FAILED, Outcome.COMPLETE), (Outcome.FAILED, Outcome.STOPPED), ()):
        launch(lambda argv, fine=fine: results(*fine), [])  # returns
        assert results(*fine).failure() is None


def test_with_options_does_not_take_a_trailing_option_for_one_with_a_value() -> None:
    """An option that ends the command has no value to replace: the new one is appended."""
    assert with_options(["t", "--folds"], {"--folds": 2}) == ["t", "--folds", "--folds", "2"]


def test_config_changes_are_the_options_given() -> None:
    given = argparse.Namespace(trials=5, duration="10m", trial_duration=None, concurrency=2,
                               population=None, seed=0, name=None, experiment_dir=Path("/x"),
                               gpus="0,1", epochs_cap=3)
    assert config_changes(given) == {"max_trials": 5, "max_duration": "10m", "concurrency": 2,
                                     "seed": 0, "experiment_dir": Path("/x"), "gpus": "0,1"}
    assert config_changes(argparse.Namespace(gpus="none", population=4)) == {
        "gpus": None, "population": 4}  # "none": no GPU; options a launcher lacks: unchanged
    assert config_changes(argparse.Namespace()) == {}


def test_start_with_reads_a_chosen_configuration_and_the_search_tries_it_first(
    tmp_path: Path, exp_root: Any
) -> None:
    """``--start-with FILE``: one parameter set (an earlier search's chosen/parameters.json)
    or a list of them becomes the experiment's ``start_with``, tried before the tuner draws."""
    from spiketune import Experiment

    space = {"a": {"_type": "uniform", "_value": [0, 1]},
             "opt": {"_type": "choice", "_value": [
                 {"_name": "adam", "beta": {"_type": "uniform", "_value": [0.5, 0.99]}},
                 {"_name": "sgd"}]}}
    chosen = {"a": 0.125, "opt": {"_name": "adam", "beta": 0.75}}
    one, several = tmp_path / "parameters.json", tmp_path / "points.json"
    one.write_text(json.dumps(chosen))
    several.write_text(json.dumps([{"a": 0.5}, chosen]))
    parser = add_experiment_options(argparse.ArgumentParser())
    assert config_changes(parser.parse_args(["--start-with", str(one)])) == {
        "start_with": [chosen]}
    args = parser.parse_args(["--start-with", str(several), "--seed", "0"])
    results = Experiment(trial=lambda p: p["a"], search_space=space, tuner="TPE", max_trials=3,
                         **config_changes(args)).run()
    received = [t.parameters for t in sorted(results.records, key=lambda t: t.number)]
    assert received[0] == {"a": 0.5, "opt": received[0]["opt"]}  # opt left out: drawn
    assert received[1] == chosen
    assert received[2]["a"] not in (0.5, 0.125)


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot read it"),
    ("{not json", "not JSON"),
    ("[]", "a non-empty list"),
    ('[{"a": 0.5}, 3]', "one parameter set (a JSON object)"),
    ('"a string"', "one parameter set (a JSON object)"),
], ids=["missing", "not-json", "empty", "not-objects", "scalar"])
def test_start_with_a_bad_file_is_a_usage_error_naming_it(
    tmp_path: Path, content: str | None, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "points.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        add_experiment_options(argparse.ArgumentParser()).parse_args(["--start-with", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --start-with: {path}: " in err and says in err


SPACE = {"lr": {"_type": "loguniform", "_value": [1e-4, 1e-2]},
         "model": {"_type": "choice", "_value": [
             {"_name": "l2mu", "order": {"_type": "choice", "_value": [4, 8]}},
             {"_name": "lmu"}]}}


def test_narrow_choice_keeps_one_option_with_its_sub_parameters() -> None:
    assert narrow_choice(SPACE, "model", "l2mu") == {
        "_type": "choice", "_value": [SPACE["model"]["_value"][0]]}
    with pytest.raises(SystemExit, match=r"--model gru: .*'model' choice has no option named "
                                         r"'gru' \(it has \['l2mu', 'lmu'\]\)"):
        narrow_choice(SPACE, "model", "gru")
    with pytest.raises(SystemExit, match=r"it has \[\]"):
        narrow_choice(SPACE, "input", "frame")


def _progress(**changes: Any) -> Progress:
    fields: dict[str, Any] = dict(started=3, running=1, complete=1, early_stopped=1, failed=0,
                                  best_value=0.93333, best_number=2, elapsed_seconds=65.0,
                                  max_trials=10, max_duration=None, stopping=False)
    return Progress(**{**fields, **changes})


def test_progress_printer_prints_when_a_trial_finishes(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    show = progress_printer()
    show(_progress())
    show(_progress(elapsed_seconds=70.0, running=2))  # the same trials done: nothing
    show(_progress(complete=2, best_value=None, best_number=None, elapsed_seconds=3723))
    assert capsys.readouterr().out.splitlines() == [
        "  [1m05s] 2 done (1 complete, 1 early-stopped, 0 failed), 1 running; "
        "best validation accuracy 0.933 (trial 2)",
        "  [1h02m03s] 3 done (2 complete, 1 early-stopped, 0 failed), 1 running; "
        "best validation accuracy -",
    ]
    progress_printer()(_progress())  # each printer counts for itself
    assert capsys.readouterr().out.startswith("  [1m05s] 2 done")


def test_print_start_and_finish(capsys: pytest.CaptureFixture[str]) -> None:
    config = SimpleNamespace(max_trials=40, concurrency=2, population=None, max_duration=600.0,
                             trial_command="python3 main_hpo.py --folds 3",
                             population_sizes=None)
    print_start(SimpleNamespace(id="abc123", directory=Path("/x/abc123"), config=config))
    config.population, config.max_duration = 4, None
    print_start(SimpleNamespace(id="abc123", directory=Path("/x/abc123"), config=config))
    config.population_sizes = [PopulationSize(when={"n_rec": 512}, size=1),
                               PopulationSize(when={"n_rec": 256, "rule": "bptt"}, size=2)]
    print_start(SimpleNamespace(id="abc123", directory=Path("/x/abc123"), config=config))
    counts = {Outcome.COMPLETE: 3, Outcome.EARLY_STOPPED: 1, Outcome.FAILED: 0}
    print_finish(SimpleNamespace(elapsed_seconds=125.2, count=counts.__getitem__))
    assert capsys.readouterr().out.splitlines() == [
        "experiment abc123 in /x/abc123",
        "  40 trials at most, 2 at a time, budget 10m00s; trial command: "
        "python3 main_hpo.py --folds 3",
        "experiment abc123 in /x/abc123",
        "  40 trials at most, populations of 4, 2 at a time, budget none; trial command: "
        "python3 main_hpo.py --folds 3",
        "experiment abc123 in /x/abc123",
        "  40 trials at most, populations of 1 where n_rec=512; 2 where n_rec=256, rule=bptt; "
        "else 4, 2 at a time, budget none; trial command: python3 main_hpo.py --folds 3",
        "finished in 2m05s: 3 complete, 1 early-stopped, 0 failed",
    ]


def _results(tests: list[Any], directory: Path | None) -> SimpleNamespace:
    records = [SimpleNamespace(metrics=None if t == "none" else {"test": t}) for t in tests]
    return SimpleNamespace(id="abc123", directory=directory, records=records)


def test_print_summary_without_a_kept_model(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary(_results([0.5, "none", None, 0.9, 0.8], None), report=False)
    assert capsys.readouterr().out.splitlines() == [
        "no trial kept a model (see `spiketune trials abc123`)",
        "best test accuracy among 3 trials: 90.0% (optimistic: chosen by looking at the test "
        "set; median 80.0%)",
    ]


@pytest.mark.parametrize(("spikes", "text"), [
    (1234.4, "1234 spikes per sample"), (None, "no spikes (a non-spiking model)"),
])
def test_print_summary_of_the_kept_and_the_retrained_model(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    spikes: float | None, text: str,
) -> None:
    info = {"epoch": 7, "default": 0.9, "test": 0.85, "spikes_per_sample": spikes}
    best = SimpleNamespace(trial_id=3, info=info, parameters={"lr": 0.01, "b": 1},
                           path=lambda: tmp_path / "best_model")
    seen: list[Path] = []
    monkeypatch.setattr(spiketune.engine.results, "load_best_model",
                        lambda directory: seen.append(directory) or best)
    retrained = SimpleNamespace(mean=0.8512, std=0.0123, trial=3, split_digest="0123456789abcdef",
                                runs=[SimpleNamespace(seed=0), SimpleNamespace(seed=1)])
    print_summary(_results([], tmp_path), retrained=retrained, report=False)
    assert seen == [tmp_path]
    assert capsys.readouterr().out.splitlines() == [
        f"best model: trial 3, epoch 7, validation accuracy 90.0%, test accuracy 85.0%, {text}",
        'best parameters: {"b": 1, "lr": 0.01}',
        f"best model file: {tmp_path / 'best_model'}",
        "chosen model's test accuracy: 85.12% ± 1.23% (mean ± std over seeds 0, 1, trial 3's "
        "configuration, split 0123456789ab)",
    ]
    alone = SimpleNamespace(mean=0.1429, std=None, trial=3, split_digest="0123456789abcdef",
                            runs=[SimpleNamespace(seed=4)])
    print_summary(_results([], tmp_path), retrained=alone, report=False)
    assert capsys.readouterr().out.splitlines()[-1] == (  # one seed has no spread
        "chosen model's test accuracy: 14.29% (seed 4 alone: no spread to give, trial 3's "
        "configuration, split 0123456789ab)")


def test_print_summary_gives_a_model_judged_on_re_splits_its_own_validation_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """A trial judged on 3 re-splits scores their mean, but keeps the first re-split's network:
    the line gives both, so the kept model is not credited with its siblings' figures."""
    info = {"epoch": 20, "default": 0.9175, "test": 0.8667, "spikes_per_sample": 5396.0,
            "val_fold0": 0.8762, "val_fold1": 0.9238, "val_fold2": 0.9524}
    best = SimpleNamespace(trial_id=3, info=info, parameters={}, path=lambda: tmp_path)
    monkeypatch.setattr(spiketune.engine.results, "load_best_model", lambda directory: best)
    print_summary(_results([], tmp_path), report=False)
    assert capsys.readouterr().out.splitlines()[0] == (
        "best model: trial 3, epoch 20, validation accuracy 91.8% (mean of 3 re-splits; this "
        "model's own 87.6%), test accuracy 86.7%, 5396 spikes per sample")


def test_population_options_parse_k_auto_and_refills_with_errors_naming_the_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from spiketune.launcher import add_population_options

    plain = add_population_options(argparse.ArgumentParser())
    assert plain.parse_args(["--population", "4"]).population == 4
    assert plain.parse_args(["--population", "auto"]).population == "auto"
    assert not hasattr(plain.parse_args([]), "refills")  # only when asked for
    with_refills = add_population_options(argparse.ArgumentParser(), refills=True)
    assert with_refills.parse_args([]).refills is None  # the trial script's own default
    assert with_refills.parse_args(["--refills", "0"]).refills == 0
    cases = ((plain, ["--population", "0"], "a number of trials >= 1 or auto, got '0'"),
             (with_refills, ["--refills", "-2"], "a number of trials >= 0, got '-2'"))
    for parser, argv, rule in cases:
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert rule in capsys.readouterr().err


def test_options_that_would_do_nothing_alone_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--refills without a population, --shape-sizes without --population auto: refused,
    not passed over in silence."""
    from spiketune.launcher import add_population_options, parse_launcher_args

    parser = add_population_options(argparse.ArgumentParser(), refills=True)
    parser.add_argument("--shape-sizes", action="store_true")
    parser.add_argument("--smoke", action="store_true")
    for argv, rule in ((["--refills", "2"], "--refills takes effect in population mode"),
                       (["--shape-sizes"], "--shape-sizes takes effect with --population auto"),
                       (["--population", "4", "--shape-sizes"], "--population auto")):
        with pytest.raises(SystemExit) as exit_info:
            parse_launcher_args(parser, argv, smoke={})
        assert exit_info.value.code == 2 and rule in capsys.readouterr().err
    args = parse_launcher_args(parser, ["--population", "auto", "--shape-sizes", "--refills",
                                        "1"], smoke={})
    assert (args.population, args.shape_sizes, args.refills) == ("auto", True, 1)


def test_a_run_whose_every_retraining_seed_failed_is_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The retrained test accuracy is the figure a launcher exists to give: without any, the
    command ends with exit code 1 (it used to end 0 after `seed 0: no result`)."""
    import sys

    from spiketune import Experiment
    from spiketune.errors import TrialError
    from spiketune.launcher import run_experiment

    exp = Experiment(trial=lambda p: {"default": p["x"]}, name="retrain-fails", max_trials=2,
                     search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
                     experiment_dir=tmp_path, tuner="Random", seed=0)
    args = argparse.Namespace(quiet=True, retrain_seeds=[0], no_report=True)
    with pytest.raises(TrialError, match="no retraining seed of the chosen configuration"):
        run_experiment(exp, args, retrain_seeds=[0], cwd=tmp_path,
                       retrain_command=[sys.executable, "-c", "raise SystemExit(3)"])
    assert "seed 0: no result" in capsys.readouterr().out
