"""The ``spiketune`` command, run in-process with typer's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spiketune.cli import app

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["run", "resume", "stop", "ls", "trials", "best", "export", "report", "export-model"]


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


def test_usage_errors_exit_2(runner: CliRunner, exp_root: Path) -> None:
    assert runner.invoke(app, ["run"]).exit_code == 2  # missing CONFIG
    assert runner.invoke(app, ["export", "x", "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2
    assert runner.invoke(app, ["trials", "x", "--no-such-option"]).exit_code == 2


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


def test_unknown_experiment_is_clean(runner: CliRunner, exp_root: Path) -> None:
    for command in ("trials", "best", "export", "resume", "stop"):
        result = runner.invoke(app, [command, "nope"])
        assert result.exit_code == 1, command
        assert "no experiment 'nope'" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


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

    table = runner.invoke(app, ["trials", exp_id[:12]])  # a unique prefix is enough
    assert table.exit_code == 0
    for column in ("outcome", "x", "y", "shift", "default", "distance"):
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
