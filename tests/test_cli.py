"""The ``spiketune`` command, run in-process with typer's CliRunner."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from spiketune import Experiment
from spiketune.cli import _cause, app

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["run", "resume", "stop", "ls", "trials", "best", "export", "report", "export-model",
            "evaluate", "init", "worker", "view"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def nni_example(tmp_path: Path) -> Path:
    """The NNI example, copied and cut to 4 trials so the test stays quick."""
    target = tmp_path / "nni_style"
    shutil.copytree(REPO / "examples" / "nni_style", target)
    cfg = target / "config.yml"
    cfg.write_text(cfg.read_text().replace("maxTrialNumber: 12", "maxTrialNumber: 4"))
    return cfg


def test_help_everywhere(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0, command
        assert "Usage" in sub.output


def test_version_from_the_command_and_from_python_m(runner: CliRunner) -> None:
    import subprocess
    import sys

    from spiketune import __version__

    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"spiketune {__version__}\n")
    # python -m spiketune: the same command where the scripts directory is not on the PATH
    done = subprocess.run([sys.executable, "-m", "spiketune", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, f"spiketune {__version__}\n"), done.stderr


def test_progress_line() -> None:
    from spiketune.cli import _progress_text
    from spiketune.engine.scheduler import Progress

    p = Progress(started=7, running=2, complete=3, early_stopped=1, failed=1, best_value=0.875,
                 best_number=4, elapsed_seconds=65.0, max_trials=10, max_duration=3600.0,
                 stopping=False)
    text = _progress_text(p).plain
    for part in ("7/10", "5 done", "2 running", "1 failed", "1 early-stopped", "0.875 (trial 4)",
                 "elapsed 0:01:05", "0:58:55 left"):
        assert part in text
    assert "running trials finish" not in text
    finishing = _progress_text(dataclasses.replace(p, finishing=True)).plain
    assert finishing.endswith(" | max_duration reached: the running trials finish")


def test_usage_errors_exit_2(runner: CliRunner, exp_root: Path) -> None:
    assert runner.invoke(app, ["run"]).exit_code == 2  # missing CONFIG
    assert runner.invoke(app, ["export", "x", "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2
    assert runner.invoke(app, ["trials", "x", "--no-such-option"]).exit_code == 2
    assert runner.invoke(app, ["init"]).exit_code == 2  # missing DIRECTORY
    assert runner.invoke(app, ["export-model", "x", "--format", "onnx"]).exit_code == 2
    assert runner.invoke(app, ["stop", "x", "--wait", "soon"]).exit_code == 2
    for option, value in (("--wait", "-1"), ("--wait", "nan")):
        out = runner.invoke(app, ["stop", "x", option, value])
        assert out.exit_code == 2 and "Invalid value for '--wait'" in out.output
    grace = runner.invoke(app, ["stop", "x", "--grace", "bogus"])
    assert grace.exit_code == 2 and "(got 'bogus')" in grace.output
    for value in ("99999", "-1"):
        out = runner.invoke(app, ["view", "x", "--port", value])
        assert out.exit_code == 2 and "Invalid value for '--port'" in out.output
    usage = runner.invoke(app, ["view", "x", "--port", "http"])
    assert usage.exit_code == 2 and "Usage" in usage.output


def test_a_workers_bad_option_values_are_usage_errors_naming_the_option(
    runner: CliRunner, tmp_path: Path, exp_root: Path,
) -> None:
    """`worker --gpus abc`, `--submitted yesterday`, `--concurrency 0`: exit 2 with the
    option named (they used to exit 1 naming the config's field); nothing is created."""
    cfg = tmp_path / "worker.toml"
    cfg.write_text(f'name = "w"\ntrial_command = "python3 trial.py"\n'
                   f'storage = "sqlite:///{tmp_path / "study.db"}"\n'
                   '[search_space]\nx = {_type = "uniform", _value = [0, 1]}\n')
    for option, value, rule in (
        ("--gpus", "abc", "must be a list of GPU indices"),
        ("--submitted", "yesterday", "an ISO date and time"),
        ("--concurrency", "0", "must be >= 1 (got 0)"),
    ):
        result = runner.invoke(app, ["worker", str(cfg), option, value])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert f"Invalid value for '{option}': {rule}" in text, text
    assert not (tmp_path / "study.db").exists() and not any(exp_root.iterdir())


def test_config_errors_are_clean(runner: CliRunner, tmp_path: Path, exp_root: Path) -> None:
    bad = tmp_path / "config.yml"
    bad.write_text(
        "experimentName: bad\n"
        "trialCommand: python3 trial.py\n"
        "maxTrialNumber: -3\n"
        "maxExperimentDuration: 2 fortnights\n"
        "searchSpace: {x: {_type: uniform, _value: [0, 1]}}\n"
        "trainingService: {platform: remote}\n"
    )
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for key in ("maxTrialNumber", "maxExperimentDuration", "trainingService.platform"):
        assert key in result.output
    assert not any(exp_root.iterdir())  # nothing ran


# ------------------------------------------------------------------------------ bad paths
def _one_error(result: Result, *words: str, one_line: bool = True) -> None:
    """Exit code 1 and one ``error:`` message holding ``words``, on a single line unless it is
    a ConfigError's list of problems; no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    assert len(lines) == 1 or not one_line, result.output
    for word in words:
        assert word in result.output, (word, result.output)


#: every command that reads or writes experiments under a root, with its arguments
ROOTED = [["ls"], ["trials", "x"], ["best", "x"], ["export", "x"], ["report", "x"],
          ["export-model", "x"], ["resume", "x"], ["stop", "x"], ["view", "x"]]


@pytest.mark.parametrize("args", ROOTED, ids=lambda a: a[0])
def test_an_experiments_root_that_is_a_file_is_one_message(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    a_file = tmp_path / "not_a_directory"
    a_file.write_text("")
    _one_error(runner.invoke(app, [*args, "--root", str(a_file)]), str(a_file),
               "is not a directory")
    _one_error(runner.invoke(app, args, env={"SPIKETUNE_EXPERIMENTS": str(a_file)}),
               "is not a directory")


@pytest.mark.parametrize("args", [a for a in ROOTED if a[0] not in ("report", "export-model")]
                         + [["worker", "missing.toml"]], ids=lambda a: a[0])
def test_a_missing_password_file_is_one_message(
    runner: CliRunner, tmp_path: Path, exp_root: Path, args: list[str]
) -> None:
    missing = tmp_path / "no_such_password_file"
    _one_error(runner.invoke(app, [*args, "--password-file", str(missing)]), str(missing))


@pytest.fixture
def quick_config(tmp_path: Path, trial_script: Callable[..., Path]) -> Path:
    code = trial_script("import spiketune.trial as st\nst.report_final_result(1.0)\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'name = "paths"\ntrial_command = "python3 trial.py"\n'
        f'trial_code_directory = "{code}"\nmax_trials = 1\n'
        '[search_space]\nx = {_type = "uniform", _value = [0, 1]}\n'
    )
    return config


def test_run_and_worker_refuse_a_root_they_cannot_write(
    runner: CliRunner, tmp_path: Path, exp_root: Path, quick_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    _one_error(runner.invoke(app, ["run", str(tmp_path / "missing.toml")]), "missing.toml",
               one_line=False)
    for command in ("run", "worker"):
        _one_error(runner.invoke(app, [command, str(quick_config), "--experiment-dir",
                                       str(a_file)]), str(a_file), "is not a directory")
    _one_error(runner.invoke(app, ["run", str(quick_config)],
                             env={"SPIKETUNE_EXPERIMENTS": str(a_file / "below")}),
               "cannot be created")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: make the check see what others see
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if Path(p) == locked and mode & os.W_OK else real(p, mode, **kw)))
    _one_error(runner.invoke(app, ["run", str(quick_config), "--experiment-dir", str(locked)]),
               str(locked), "is not writable")
    assert not any(exp_root.iterdir())  # nothing ran
    # From Python (a launcher, a notebook) too: said, not a NotADirectoryError traceback.
    from spiketune import StorageError

    with pytest.raises(StorageError, match="is not a directory"):
        Experiment(trial=lambda p: 0.0, search_space={"x": {"_type": "choice", "_value": [1]}},
                   max_trials=1, experiment_dir=a_file).run()


def test_output_paths_are_checked_before_any_work(
    runner: CliRunner, tmp_path: Path, exp_root: Path
) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    missing_dir = tmp_path / "no" / "such" / "directory"
    for command in ("export", "export-model"):
        _one_error(runner.invoke(app, [command, "x", "-o", str(missing_dir / "out")]),
                   "--output", str(missing_dir), "does not exist")
        _one_error(runner.invoke(app, [command, "x", "-o", str(tmp_path)]),
                   "--output", "is a directory")
        _one_error(runner.invoke(app, [command, "x", "-o", str(a_file / "out")]),
                   "is not a directory")
    _one_error(runner.invoke(app, ["report", "x", "--out", str(a_file)]), "--out", "is a file")
    _one_error(runner.invoke(app, ["report", "x", "--out", str(missing_dir / "report")]),
               "does not exist")
    _one_error(runner.invoke(app, ["init", str(a_file / "project")]), str(a_file), "is a file",
               one_line=False)
    _one_error(runner.invoke(app, ["init", str(a_file)]), "must be a directory", one_line=False)


@pytest.mark.parametrize(("text", "problem"), [
    ('{"id": ', "not JSON"), ("[1]", "a JSON list, not an object"),
    ('{"id": 5, "config": {}}', "its id is 5, not text"),
    ('{"id": "x"}', "it has no configuration ('config')"),
])
def test_a_damaged_experiment_json_is_named_by_every_command(
    runner: CliRunner, exp_root: Path, quick_config: Path, text: str, problem: str
) -> None:
    """Each command ends with the file and what is wrong with it, no traceback; ``ls`` lists
    the experiment as damaged rather than leave it out."""
    assert runner.invoke(app, ["run", str(quick_config), "-q"]).exit_code == 0
    (directory,) = exp_root.iterdir()
    meta = directory / "experiment.json"
    kept = meta.read_text()
    meta.write_text(text)
    said = f"{meta} is damaged ({problem}"
    for command in ("trials", "best", "export", "report", "stop", "resume"):
        result = runner.invoke(app, [command, directory.name])
        _one_error(result, said, one_line=False)
    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 1 and "damaged" in listed.output
    assert said in listed.output
    meta.write_text(kept)  # restored, the trial is all there
    assert "1.0" in runner.invoke(app, ["best", directory.name]).output


@pytest.mark.parametrize("page", [4, 6, 10])
def test_a_damaged_page_of_the_study_database_is_named_not_a_traceback(
    runner: CliRunner, exp_root: Path, quick_config: Path, page: int
) -> None:
    """A page of study.db zeroed (a disk fault): every command ends with the driver's words
    (``database disk image is malformed``) and exit code 1; ``ls`` still lists the rest."""
    assert runner.invoke(app, ["run", str(quick_config), "-q"]).exit_code == 0
    (directory,) = exp_root.iterdir()
    with open(directory / "study.db", "r+b") as f:
        f.seek(4096 * page)
        f.write(bytes(4096))
    for command in ("trials", "best", "export", "report", "resume"):
        result = runner.invoke(app, [command, directory.name, *(["-q"] if command == "resume"
                                                                   else [])])
        assert result.exit_code == 1, (command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            command, result.exception)
        assert "error: " in result.output and "malformed" in result.output, result.output
    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 1 and "malformed" in listed.output and directory.name in (
        listed.output)


def test_export_writes_into_an_existing_directory(
    runner: CliRunner, tmp_path: Path, exp_root: Path, quick_config: Path
) -> None:
    assert runner.invoke(app, ["run", str(quick_config), "-q"]).exit_code == 0
    out = tmp_path / "trials.json"
    result = runner.invoke(app, ["export", "paths", "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["trials"]) == 1


def test_export_never_replaces_the_experiments_own_files(
    runner: CliRunner, exp_root: Path, quick_config: Path
) -> None:
    """``export -o`` naming the study, the experiment's state or a trial's file is refused,
    and the file is left as it was; a file of the user's own in that directory is written."""
    assert runner.invoke(app, ["run", str(quick_config), "-q"]).exit_code == 0
    (directory,) = [p for p in exp_root.iterdir() if p.is_dir()]
    for owned in (directory / "study.db", directory / "experiment.json",
                  directory / "trials" / "0" / "metrics.jsonl"):
        before = owned.read_bytes()
        result = runner.invoke(app, ["export", str(directory), "-o", str(owned)])
        assert result.exit_code == 1, (owned, result.output)
        assert "error: --output" in result.output and "spiketune keeps" in result.output
        assert owned.read_bytes() == before
    assert runner.invoke(app, ["trials", str(directory)]).exit_code == 0
    mine = directory / "trials.csv"
    assert runner.invoke(app, ["export", str(directory), "-o", str(mine)]).exit_code == 0
    assert mine.read_text().startswith("number,")


def test_report_refusing_its_out_names_the_option(
    runner: CliRunner, tmp_path: Path, exp_root: Path, quick_config: Path
) -> None:
    assert runner.invoke(app, ["run", str(quick_config), "-q"]).exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<html><title>my notes</title></html>")
    result = runner.invoke(app, ["report", "paths", "--out", str(mine)])
    assert result.exit_code == 1
    assert f"error: --out {mine.resolve()}: must be a directory without a page" in " ".join(
        result.output.split())
    assert "out_dir" not in result.output
    assert (mine / "index.html").read_text() == "<html><title>my notes</title></html>"


def test_a_damaged_scheduler_state_reads_unknown_and_resume_goes_on(
    runner: CliRunner, exp_root: Path, quick_config: Path
) -> None:
    assert runner.invoke(app, ["run", str(quick_config), "-q"]).exit_code == 0
    (directory,) = [p for p in exp_root.iterdir() if p.is_dir()]
    (directory / "scheduler.json").write_text('{"status": "do')
    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 0 and "│ unknown │" in listed.output
    assert "not running (unknown)" in runner.invoke(app, ["stop", directory.name]).output
    assert runner.invoke(app, ["resume", directory.name, "-q"]).exit_code == 0
    assert "done" in runner.invoke(app, ["ls"]).output


def _markup_like(params: dict) -> dict:
    return {"default": 0.0, "acc[/x]": params["x"], "[bold]b": 1.0, "ünïcode": 2.0}


def test_names_that_look_like_markup_are_shown_as_they_are(
    runner: CliRunner, exp_root: Path
) -> None:
    """Experiment names, parameter names and metric keys are the user's text: ``[/x]`` must
    not end a view with rich's MarkupError, nor ``[bold]`` vanish into formatting."""
    Experiment(trial=_markup_like, name="[bold]x[red]", max_trials=2,
               objectives=[{"key": "acc[/x]", "direction": "maximize"}],
               search_space={"x": {"_type": "uniform", "_value": [0, 1]},
                             "p[/y]": {"_type": "choice", "_value": ["[i]a"]}}).run()
    (directory,) = [p for p in exp_root.iterdir() if p.is_dir()]
    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 0 and directory.name in listed.output
    best = runner.invoke(app, ["best", str(directory)])
    assert best.exit_code == 0, best.output
    assert "acc[/x] =" in best.output and '"p[/y]": "[i]a"' in best.output
    assert '"ünïcode": 2.0' in best.output  # as written, not as JSON escapes
    table = runner.invoke(app, ["trials", str(directory), "--params", "--metrics"])
    assert table.exit_code == 0, table.output
    for text in (directory.name, "acc[/x]", "p[/y]", "[i]a", "[bold]b"):
        assert text in table.output, text


def test_unknown_experiment_is_clean(runner: CliRunner, exp_root: Path) -> None:
    for command in ("trials", "best", "export", "resume", "stop"):
        result = runner.invoke(app, [command, "nope"])
        assert result.exit_code == 1, command
        assert "no experiment 'nope'" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def _judged(p: dict) -> dict:
    return {"default": p["x"], "cost": p["x"] ** 2, "constraints": p["x"] - 0.5}


def test_ls_counts_and_best_read_no_trial_whole(runner: CliRunner, exp_root: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``ls`` shows each experiment's trial count and best value as the reading commands
    count them (the best feasible trial, a front's size, a trial that plain Optuna wrote)
    without reading any trial whole: seconds with thousands of trials."""
    import optuna

    from spiketune.cli import _best_text
    from spiketune.engine.results import load_results
    from spiketune.engine.storage import StudyStore, sqlite_url

    space = {"x": {"_type": "choice", "_value": [0.2, 0.9, 0.4, 0.7]}}
    front = [{"key": "default", "direction": "maximize"},
             {"key": "cost", "direction": "minimize"}]
    made = [Experiment(trial=_judged, search_space=space, tuner="GridSearch", name=name,
                       constraints=constrained, objectives=objectives)
            for name, constrained, objectives in (("one", True, None), ("front", True, front),
                                                  ("plain", False, None))]
    for exp in made:
        exp.run()
    plain = made[2]  # a trial that plain Optuna wrote, with no spiketune attributes, is best
    study = optuna.load_study(study_name=plain.id,
                              storage=sqlite_url(plain.directory / "study.db"))
    study.add_trial(optuna.trial.create_trial(
        params={}, distributions={}, value=5.0))
    shown = {exp.id: load_results(exp.id) for exp in made}
    assert [_best_text(r) for r in shown.values()] == ["0.4", "front: 2", "5"]

    def whole(*_args: object) -> object:
        raise AssertionError("a trial read whole")

    monkeypatch.setattr(StudyStore, "trials", whole)
    listed = runner.invoke(app, ["ls"])
    assert listed.exit_code == 0, listed.output
    for exp_id, results in shown.items():
        (row,) = [line for line in listed.output.splitlines() if exp_id in line]
        cells = [c.strip() for c in row.strip("│ ").split("│")]
        assert cells[2:4] == [str(len(results.records)), _best_text(results)], row


@pytest.mark.slow
def test_run_then_read_it_back(runner: CliRunner, nni_example: Path, exp_root: Path,
                               tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(nni_example)])
    assert result.exit_code == 0, result.output
    assert "done: 4 trials" in result.output
    assert "best trial" in result.output and "parameters:" in result.output
    (directory,) = [p for p in exp_root.iterdir() if p.is_dir()]
    exp_id = directory.name

    ls = runner.invoke(app, ["ls"])
    assert ls.exit_code == 0 and exp_id in ls.output and "done" in ls.output

    table = runner.invoke(app, ["trials", exp_id[:12], "--params", "--metrics"])
    assert table.exit_code == 0  # a unique prefix is enough
    for column in ("state", "x", "y", "shift", "value", "distance", "duration", "cause"):
        assert column in table.output
    assert table.output.count("COMPLETE") == 4

    best = runner.invoke(app, ["best", exp_id, "--json"])
    assert best.exit_code == 0
    best_trial = json.loads(best.output)
    assert best_trial["outcome"] == "COMPLETE" and set(best_trial["metrics"]) == {
        "default", "distance"}

    exported = runner.invoke(app, ["export", str(directory), "--format", "json",
                                   "--intermediate"])
    doc = json.loads(exported.output)
    assert doc["best"] == best_trial["number"]
    assert all(len(t["intermediate"]) == 3 for t in doc["trials"])

    out = tmp_path / "trials.csv"
    assert runner.invoke(app, ["export", exp_id, "-f", "csv", "-o", str(out)]).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 4
    by_number = {t["number"]: t for t in doc["trials"]}
    for row in rows:
        t = by_number[int(row["number"])]
        assert float(row["param.x"]) == t["parameters"]["x"]
        assert float(row["metric.distance"]) == t["metrics"]["distance"]

    stopped = runner.invoke(app, ["stop", exp_id])
    assert stopped.exit_code == 0 and "not running (done)" in stopped.output
    resumed = runner.invoke(app, ["resume", exp_id])  # budget used: nothing more to run
    assert resumed.exit_code == 0 and "done: 4 trials" in resumed.output

    report = runner.invoke(app, ["report", exp_id, "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    index = tmp_path / "report" / "index.html"
    assert str(index) in report.output and index.is_file()
    assert (tmp_path / "report" / "exploration.png").stat().st_size > 1000


# ------------------------------------------------------------------------------ trials
TRIALS_CODE = """
import subprocess, sys
import spiketune.trial as st
n = st.get_sequence_id()
if n == 1:
    sys.exit(subprocess.call("nosuchcmd", shell=True))  # the shell: 'nosuchcmd: not found', 127
if n == 2:
    raise ValueError("the learning rate is negative")
st.report_final_result({"default": 0.5, "test": 0.25})
"""


@pytest.fixture
def failing_trials(exp_root: Path, trial_script: Callable[..., Path]) -> str:
    """Three trials (complete, exit 127, a Python exception) over six parameters with long
    names: the old table was far wider than a terminal."""
    space = {"x": {"_type": "uniform", "_value": [0, 1]}}
    space |= {f"a_rather_long_parameter_name_{i}": {"_type": "uniform", "_value": [0, 1]}
              for i in range(5)}
    exp = Experiment(name="causes", trial_command="python3 trial.py",
                     trial_code_directory=trial_script(TRIALS_CODE), search_space=space,
                     max_trials=3, concurrency=1, seed=0)
    exp.run()
    return exp.id


def test_a_run_whose_every_trial_failed_exits_1(runner: CliRunner, tmp_path: Path,
                                                exp_root: Path) -> None:
    """``spiketune run`` and ``resume`` end with exit code 1 and the first cause when no
    trial reached a result, so that a script or CI job running them sees it; one trial with
    a result is success."""
    (tmp_path / "trial.py").write_text(
        "import spiketune.trial as st\n"
        "x = st.get_next_parameter()['x']\n"
        "if x < 0.5:\n"
        "    raise SystemExit('x is too small')\n"
        "st.report_final_result(x)\n")
    for name, low, high, code in (("broken", 0.0, 0.4, 1), ("mixed", 0.0, 1.0, 0)):
        cfg = tmp_path / f"{name}.yml"
        cfg.write_text(f"experimentName: {name}\ntrialCommand: python3 trial.py\n"
                       f"trialCodeDirectory: {tmp_path}\nmaxTrialNumber: 3\n"
                       f"searchSpace: {{x: {{_type: uniform, _value: [{low}, {high}]}}}}\n"
                       "tuner: {name: Random, classArgs: {seed: 1}}\n")
        result = runner.invoke(app, ["run", str(cfg)])
        assert result.exit_code == code, result.output
        if code:
            assert "done: 3 trials, 0 complete, 0 early-stopped, 3 failed" in result.output
            assert "error: every trial failed (3); trial 0: exit code 1" in result.output
            assert "x is too small" in result.output and "Traceback" not in result.output
            (directory,) = [p for p in exp_root.iterdir() if p.is_dir()]
            again = runner.invoke(app, ["resume", directory.name])
            assert again.exit_code == 1 and "every trial failed (3)" in again.output
        else:
            assert "error:" not in result.output


def test_trials_fit_100_columns_and_show_the_cause(runner: CliRunner,
                                                   failing_trials: str) -> None:
    result = runner.invoke(app, ["trials", failing_trials], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100, result.output
    text = result.output
    assert "exit code 127: /bin/sh: 1: nosuchcmd: not found" in text
    assert "exit code 1: ValueError: the learning rate is negative" in text
    assert "stderr tail" not in text
    assert "a_rather_long_parameter_name_0" not in text and "test" not in text
    for column in ("#", "state", "value", "duration", "cause"):
        assert column in lines[2], lines[2]
    piped = runner.invoke(app, ["trials", failing_trials])  # no terminal, no $COLUMNS
    assert max(len(line) for line in piped.output.splitlines()) <= 100

    wide = runner.invoke(app, ["trials", failing_trials, "--params", "--metrics"])
    assert wide.exit_code == 0
    assert all(f"a_rather_long_parameter_name_{i}" in wide.output for i in range(5))
    assert "test" in wide.output and "nosuchcmd: not found" in wide.output


def test_a_long_cause_leaves_the_number_state_and_value_readable(
    runner: CliRunner, exp_root: Path, trial_script: Callable[..., Path]
) -> None:
    """The cause is cut to what the other columns leave, never the trial's number or state."""
    code = trial_script(
        """
        import sys
        import spiketune.trial as st
        if st.get_sequence_id() == 1:
            sys.exit("error: the data file /some/long/path/to/a/dataset/file.pt does not "
                     "exist; give it with --data PATH or set $SOME_DATA_VARIABLE to it")
        st.report_final_result(0.8125)
        """
    )
    exp = Experiment(name="long", trial_command="python3 trial.py", trial_code_directory=code,
                     search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
                     max_trials=2, seed=0)
    exp.run()
    result = runner.invoke(app, ["trials", exp.id], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "FAILED" in line or "COMPLETE" in line]
    assert len(rows) == 2 and all(len(line) <= 100 for line in result.output.splitlines())
    complete, failed = sorted(rows, key=lambda line: "FAILED" in line)
    assert "│ 0 │ COMPLETE │" in complete and "0.8125" in complete
    assert "│ 1 │ FAILED   │" in failed
    assert "exit code 1: error: the data file /some/long/path" in failed and "…" in failed


def test_trials_json_holds_everything(runner: CliRunner, failing_trials: str) -> None:
    result = runner.invoke(app, ["trials", failing_trials, "--json"])
    assert result.exit_code == 0, result.output
    trials = json.loads(result.output)
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert [t["outcome"] for t in trials] == ["COMPLETE", "FAILED", "FAILED"]
    assert trials[0]["metrics"] == {"default": 0.5, "test": 0.25} and trials[0]["cause"] == ""
    assert trials[1]["cause"] == "exit code 127: /bin/sh: 1: nosuchcmd: not found"
    assert "stderr tail" in trials[1]["reason"]  # the whole reason is kept
    assert len(trials[2]["parameters"]) == 6


def test_cause_is_the_last_meaningful_line() -> None:
    traceback = (
        "exit code 1; stderr tail:\n"
        "Traceback (most recent call last):\n"
        '  File "trial.py", line 3, in <module>\n'
        "    1 / 0\n"
        "    ~~^~~\n"
        "ZeroDivisionError: division by zero\n"
        "\n"
    )
    assert _cause(traceback) == "exit code 1: ZeroDivisionError: division by zero"
    assert _cause("exception:\nTraceback...\nKeyError: 'lr'") == "exception: KeyError: 'lr'"
    progress = "exit code 2; stderr tail:\n\x1b[31merror: no data\x1b[0m\n 10%|#  \r100%|####|\n"
    assert _cause(progress) == "exit code 2: error: no data"
    assert _cause("timeout: 600 s") == "timeout: 600 s"
    assert _cause("exit code 3") == "exit code 3"
    assert _cause(None) == "" and _cause("") == ""
    # an exception whose message goes on over several lines: its first line, with its type
    several = ("exception:\nTraceback (most recent call last):\n"
               '  File "t.py", line 2, in trial\n    raise RuntimeError(text)\n'
               "RuntimeError: boom, with comma\nand newline")
    assert _cause(several) == "exception: RuntimeError: boom, with comma"


def test_a_full_disk_reports_the_first_failure_and_names_each_file(
    runner: CliRunner, tmp_path: Path, exp_root: Path, monkeypatch
) -> None:
    """A full disk fails the study's write of a trial's end, then the scheduler's state file
    written on the way out: the first is the error (naming the database), the second is
    added to it (naming its file), not raised in its place as a bare 'No space left on
    device'."""
    import errno
    import sqlite3

    import sqlalchemy as sa

    from spiketune.engine.storage import _paths
    from spiketune.engine.storage._trials import OptunaTables

    def full_database(*_: object, **__: object) -> bool:
        raise sa.exc.OperationalError("UPDATE", {}, sqlite3.OperationalError(
            "database or disk is full"))

    dump = json.dump

    def full_disk(obj: object, f: object, **kwargs: object) -> None:
        if isinstance(obj, dict) and obj.get("status") not in (None, "running"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() raises it
        dump(obj, f, **kwargs)

    monkeypatch.setattr(OptunaTables, "finish", full_database)
    monkeypatch.setattr(_paths.json, "dump", full_disk)
    (tmp_path / "trial.py").write_text("import spiketune.trial as st\n"
                                       "st.report_final_result(1.0)\n")
    cfg = tmp_path / "full.toml"
    cfg.write_text(f'name = "full"\ntrial_command = "python3 trial.py"\n'
                   f'trial_code_directory = "{tmp_path}"\nmax_trials = 1\n'
                   '[search_space]\nx = {_type = "uniform", _value = [0, 1]}\n')
    result = runner.invoke(app, ["run", str(cfg), "-q"])
    assert result.exit_code == 1, result.output
    (directory,) = [p for p in exp_root.iterdir() if p.is_dir()]
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [f"error: recording a trial's end: the study database "
                      f"{directory / 'study.db'}: database or disk is full"], result.output
    assert f"also: {directory / 'scheduler.json'}: No space left on device" in lines
    assert not list(directory.glob(".scheduler.json.*"))  # no temporary file left behind


def test_a_ctrl_c_while_run_creates_the_experiment_says_nothing_was_kept(
    runner: CliRunner, quick_config: Path, exp_root: Path, monkeypatch
) -> None:
    """The id was announced, then Ctrl-C came while the study was being created: the
    directory is removed with what was begun of it, and the command says so."""
    from spiketune.engine import experiment

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment.StudyStore, "open", interrupted)
    result = runner.invoke(app, ["run", str(quick_config), "-q"])
    assert result.exit_code == 130, result.output
    said = " ".join(result.output.split())
    (exp_id,) = re.findall(r"experiment (paths-[0-9a-f]{8}) in", said)
    assert f"interrupted before experiment {exp_id} was created: nothing was kept" in said
    assert list(exp_root.iterdir()) == []


def test_a_stopped_or_interrupted_session_says_resume_continues_it(
    runner: CliRunner, quick_config: Path, exp_root: Path, monkeypatch
) -> None:
    """After a stop (or a Ctrl-C the scheduler took), and after a Ctrl-C that came before the
    scheduler could take it, run and resume both name the command that goes on."""
    from spiketune.engine.scheduler import Scheduler

    monkeypatch.setattr(Scheduler, "run", lambda self: "stopped")
    result = runner.invoke(app, ["run", str(quick_config), "-q"])
    assert result.exit_code == 0, result.output
    (directory,) = exp_root.iterdir()
    hint = f"`spiketune resume {directory.name}` continues it"
    assert "stopped: 0 trials" in result.output and hint in result.output.splitlines()
    result = runner.invoke(app, ["resume", directory.name, "-q"])
    assert result.exit_code == 0 and hint in result.output.splitlines(), result.output

    def interrupted(self: Scheduler) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(Scheduler, "run", interrupted)
    result = runner.invoke(app, ["resume", directory.name, "-q"])
    assert result.exit_code == 130, result.output
    assert f"interrupted; {hint}" in result.output.splitlines()
    monkeypatch.setattr(Scheduler, "run", lambda self: "done")
    result = runner.invoke(app, ["resume", directory.name, "-q"])
    assert result.exit_code == 0 and "continues it" not in result.output, result.output
