"""The chosen configuration retrained with several seeds: ``retrained.json`` and its place in
the report, beside the optimistic best test accuracy among trials."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from spiketune import Experiment, ExperimentResults, Outcome, TrialRecord
from spiketune.engine import Retrained, RetrainedRun, load_retrained, save_retrained
from spiketune.engine.results import RETRAINED_FILE
from spiketune.errors import StorageError
from spiketune.report import build_report
from spiketune.report._html import _optimistic_section


def _retrained(*tests: float | None, trial: int | None = 4, split: str = "d1g3st",
               runs_split: str | None = "d1g3st") -> Retrained:
    runs = tuple(
        RetrainedRun(seed, {} if t is None else {"test": t, "default": 0.9},
                     checkpoint=f"retrained/seed{seed}.pt", split_digest=runs_split)
        for seed, t in enumerate(tests)
    )
    return Retrained(parameters={"lr": 0.01, "neuron": {"_name": "lif", "tau_mem": 20.0}},
                     runs=runs, split_digest=split, trial=trial,
                     command="python main_hpo.py --seed {seed}")


# ------------------------------------------------------------------------------ the file
def test_round_trip(tmp_path: Path) -> None:
    original = _retrained(0.96, 0.97, 0.98)
    path = save_retrained(tmp_path, original)
    assert path == tmp_path / RETRAINED_FILE == tmp_path / "retrained.json"
    assert load_retrained(tmp_path) == original
    plain = Retrained(parameters={}, runs=(RetrainedRun(7, {"test": 0.5}),))
    save_retrained(tmp_path, plain)
    assert load_retrained(tmp_path) == plain
    assert [p.name for p in tmp_path.iterdir()] == ["retrained.json"]  # no temporary left


def test_file_is_strict_json_with_sorted_keys(tmp_path: Path) -> None:
    text = save_retrained(tmp_path, _retrained(0.96, 0.97)).read_text(encoding="utf-8")
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert list(doc["runs"][0]) == sorted(doc["runs"][0])
    assert list(doc["runs"][0]["metrics"]) == ["default", "test"]
    assert doc["runs"][1] == {"seed": 1, "metrics": {"default": 0.9, "test": 0.97},
                              "checkpoint": "retrained/seed1.pt", "split_digest": "d1g3st"}
    assert doc["trial"] == 4 and doc["split_digest"] == "d1g3st" and doc["metric"] == "test"


def test_a_file_without_the_runs_splits_reads_as_not_recorded(tmp_path: Path) -> None:
    """Files written before each run recorded its split still load; nothing is off split."""
    (tmp_path / RETRAINED_FILE).write_text(json.dumps({
        "parameters": {}, "split_digest": "d1g3st",
        "runs": [{"seed": 0, "metrics": {"test": 0.5}, "checkpoint": None}]}))
    loaded = load_retrained(tmp_path)
    assert loaded is not None and loaded.runs[0].split_digest is None
    assert loaded.off_split == ()


def test_off_split_lists_the_runs_on_another_split_than_the_trials() -> None:
    same = _retrained(0.9, 0.8)
    assert same.off_split == ()
    other = _retrained(0.9, 0.8, runs_split="0th3r")
    assert [r.seed for r in other.off_split] == [0, 1]
    mixed = Retrained(parameters={}, split_digest="d1g3st", runs=(
        RetrainedRun(0, {"test": 0.9}, split_digest="d1g3st"),
        RetrainedRun(1, {"test": 0.8}, split_digest="0th3r"),
        RetrainedRun(2, {"test": 0.7})))  # not recorded: not counted
    assert [r.seed for r in mixed.off_split] == [1]
    assert Retrained(parameters={}, runs=mixed.runs).off_split == ()  # no split to hold to


def test_mean_and_sample_std() -> None:
    r = _retrained(0.96, 0.97, 0.98)
    assert r.values == pytest.approx([0.96, 0.97, 0.98])
    assert r.mean == pytest.approx(0.97)
    assert r.std == pytest.approx(0.01)  # ddof=1; the population std would be 0.00816
    one = _retrained(0.9)
    assert (one.mean, one.std) == (pytest.approx(0.9), 0.0)
    none = _retrained()
    assert (none.values, none.mean, none.std) == ([], None, None)


def test_runs_without_the_metric_are_skipped() -> None:
    r = _retrained(0.8, None, 0.9, math.nan)
    assert r.values == pytest.approx([0.8, 0.9])
    assert r.mean == pytest.approx(0.85)
    other = Retrained(parameters={}, runs=r.runs, metric="default")
    assert other.values == pytest.approx([0.9, 0.9, 0.9])


def test_absent_file_is_none(tmp_path: Path) -> None:
    assert load_retrained(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "corrupt"),
        ("", "corrupt"),
        ("[1, 2]", "expected a JSON object"),
        ('{"parameters": {}}', "lacks 'runs'"),
        ('{"parameters": {}, "runs": [], "seeds": 3}', "unknown keys"),
        ('{"parameters": {}, "runs": {}}', "runs must be a list"),
        ('{"parameters": {}, "runs": [{"seed": "one", "metrics": {}}]}', "seed must be"),
        ('{"parameters": {}, "runs": [{"seed": 1, "metrics": {"test": "high"}}]}',
         "metric 'test'"),
        ('{"parameters": {}, "runs": [], "trial": "best"}', "trial must be"),
        ('{"parameters": {}, "runs": [{"seed": 1, "metrics": {}, "split_digest": 5}]}',
         "split_digest must be"),
    ],
)
def test_corrupt_file_raises_and_is_left_alone(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "retrained.json"
    path.write_text(text, encoding="utf-8")
    before = path.stat().st_mtime_ns
    with pytest.raises(StorageError) as caught:
        load_retrained(tmp_path)
    message = str(caught.value)
    assert str(path) in message and problem in message, message
    assert path.read_text(encoding="utf-8") == text and path.stat().st_mtime_ns == before


def test_non_finite_numbers_are_written_as_null(tmp_path: Path) -> None:
    r = Retrained(parameters={"decay": math.inf},
                  runs=(RetrainedRun(0, {"test": math.nan, "loss": -math.inf}),
                        RetrainedRun(1, {"test": 0.5, "loss": 1.0})))
    text = save_retrained(tmp_path, r).read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["runs"][0]["metrics"] == {"loss": None, "test": None}
    assert doc["parameters"] == {"decay": None}
    back = load_retrained(tmp_path)
    assert back is not None and math.isnan(back.runs[0].metrics["test"])
    assert back.values == [0.5] and back.std == 0.0


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_retrained(tmp_path, _retrained(0.9))

    def refuse(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        save_retrained(tmp_path, _retrained(0.1, 0.2))
    monkeypatch.undo()
    assert load_retrained(tmp_path) == _retrained(0.9)
    assert [p.name for p in tmp_path.iterdir()] == ["retrained.json"]


def test_constructors_check_what_they_are_given() -> None:
    with pytest.raises(ValueError, match="seed must be an integer"):
        RetrainedRun(True, {})
    with pytest.raises(ValueError, match="RetrainedRun"):
        Retrained(parameters={}, runs=({"seed": 1},))  # type: ignore[arg-type]
    as_list = Retrained(parameters={}, runs=[RetrainedRun(1, {})])  # type: ignore[arg-type]
    assert as_list.runs == (RetrainedRun(1, {}),)


# ------------------------------------------------------------------------------ the report
def _trial(p: dict[str, Any]) -> dict[str, Any]:
    # validation peaks at x = 1, test grows with x: choosing by test would pick another trial;
    # every trial names its data split, as the templates' trials do
    x = p["x"]
    return {"default": 0.9 - 0.1 * abs(x - 1), "test": 0.8 + 0.05 * x, "train": 0.95,
            "split_digest": "d1g3st"}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> ExperimentResults:
    """A small real experiment of in-process trials that report ``test``."""
    root = tmp_path_factory.mktemp("retrained")
    exp = Experiment(trial=_trial, name="retrain-me", max_trials=4, experiment_dir=root,
                     tuner="Random", seed=3,
                     search_space={"x": {"_type": "uniform", "_value": [0, 2]}})
    results = exp.run()
    assert results.count(Outcome.COMPLETE) == 4
    return results


def _optimistic_line(results: ExperimentResults) -> str:
    best = max(results.records, key=lambda r: (r.metrics["test"], -r.number))
    return (f"Best test accuracy among trials: {best.metrics['test']:.2%} (trial {best.number}) "
            "— optimistic: chosen by looking at the test set")


def test_report_shows_the_retrained_configuration(experiment: ExperimentResults,
                                                  tmp_path: Path) -> None:
    directory = experiment.directory
    assert directory is not None and experiment.best is not None
    chosen = experiment.best.number
    (directory / "retrained").mkdir(exist_ok=True)
    (directory / "retrained" / "seed0.pt").write_bytes(b"weights")
    path = save_retrained(directory, _retrained(0.96, 0.97, 0.98, trial=chosen))
    try:
        files = build_report(directory, out_dir=tmp_path / "out")
    finally:
        path.unlink()
    text = files.index.read_text(encoding="utf-8")
    assert "test accuracy 97.00% ± 1.00% (mean ± sample std over 3 seeds)" in text
    assert _optimistic_line(experiment) in text
    order = [text.index(s) for s in ("<h2>Best trial</h2>",
                                     "<h2>Chosen configuration, retrained with 3 seeds</h2>",
                                     "<h2>Optimistic test accuracy</h2>", "<h2>Best model</h2>")]
    assert order == sorted(order)
    section = text[order[1]:order[2]]
    assert f"trial {chosen}" in section and "d1g3st" in section
    assert "python main_hpo.py --seed {seed}" in section
    assert len(re.findall(r"<tr><td class=\"num\" data-v=\"\d\.0\">\d</td>", section)) == 3
    hrefs = re.findall(r"href='([^']*seed\d\.pt)'", section)
    assert len(hrefs) == 1 and (files.index.parent / unquote(hrefs[0])).resolve() == (
        directory / "retrained" / "seed0.pt").resolve()
    assert "retrained/seed1.pt (missing)" in section
    assert "The best trial by validation is now" not in section
    assert "another data split" not in section and "Not the chosen trial's" not in section


@pytest.mark.parametrize("case", ["file", "runs"])
def test_retrained_on_another_split_is_flagged(experiment: ExperimentResults, tmp_path: Path,
                                               case: str) -> None:
    """A retraining on another split than the chosen trial's (other data, another --subset)
    was tested on other samples: the page says so, whether the file's split (a file written
    before runs recorded theirs) or its runs' splits differ from the trial's."""
    directory = experiment.directory
    assert directory is not None and experiment.best is not None
    chosen = experiment.best.number
    retrained = (_retrained(0.9, 0.8, trial=chosen, split="0th3r", runs_split=None)
                 if case == "file" else _retrained(0.9, 0.8, trial=chosen, runs_split="0th3r"))
    path = save_retrained(directory, retrained)
    try:
        text = build_report(directory, out_dir=tmp_path / "out").index.read_text(encoding="utf-8")
    finally:
        path.unlink()
    if case == "file":
        assert (f"The runs used another data split than trial {chosen} "
                "(split digest d1g3st).") in text
    else:
        assert ("Not the chosen trial's data split: seed 0 (split digest 0th3r), seed 1 "
                "(split digest 0th3r) ran on another split than d1g3st") in text


def test_report_without_retrained_file_still_builds(experiment: ExperimentResults,
                                                    tmp_path: Path) -> None:
    assert experiment.directory is not None
    assert not (experiment.directory / RETRAINED_FILE).exists()
    files = build_report(experiment.directory, out_dir=tmp_path / "out")
    text = files.index.read_text(encoding="utf-8")
    assert "<h2>Best trial</h2>" in text and "retrained with" not in text
    assert _optimistic_line(experiment) in text


def test_corrupt_retrained_file_is_a_note_on_the_page(experiment: ExperimentResults,
                                                     tmp_path: Path) -> None:
    directory = experiment.directory
    assert directory is not None
    path = directory / RETRAINED_FILE
    path.write_text('{"parameters": {}, "runs": [', encoding="utf-8")
    try:
        files = build_report(directory, out_dir=tmp_path / "out")
        assert path.read_text(encoding="utf-8") == '{"parameters": {}, "runs": ['
    finally:
        path.unlink()
    text = files.index.read_text(encoding="utf-8")
    note = re.search(r"<p class='note'>The retrained configuration could not be shown: [^<]*",
                     text)
    assert note is not None and "retrained.json is corrupt" in note.group(0)
    assert "retrained with" not in text and _optimistic_line(experiment) in text


def test_retrained_from_another_trial_is_flagged(experiment: ExperimentResults,
                                                 tmp_path: Path) -> None:
    directory = experiment.directory
    assert directory is not None and experiment.best is not None
    other = next(r.number for r in experiment.records if r.number != experiment.best.number)
    path = save_retrained(directory, _retrained(0.5, trial=other))
    try:
        text = build_report(directory, out_dir=tmp_path / "out").index.read_text(encoding="utf-8")
    finally:
        path.unlink()
    assert "retrained with 1 seed</h2>" in text
    assert "test accuracy 50.00% (one seed)" in text and "± 0.00%" not in text
    assert (f"The best trial by validation is now trial {experiment.best.number}, "
            f"not the retrained trial {other}.") in text


def _record(number: int, metrics: dict[str, Any] | None, outcome: Outcome) -> TrialRecord:
    return TrialRecord(number=number, outcome=outcome, parameters={}, metrics=metrics)


def test_optimistic_line_counts_finished_trials_only() -> None:
    records = [
        _record(0, {"default": 0.9, "test": 0.81}, Outcome.COMPLETE),
        _record(1, {"default": 0.7, "test": 0.85}, Outcome.COMPLETE),
        _record(2, {"default": 0.6, "test": 0.85}, Outcome.EARLY_STOPPED),
        _record(3, {"default": 0.99, "test": 0.99}, Outcome.RUNNING),
        _record(4, {"default": 0.5, "test": math.nan}, Outcome.COMPLETE),
    ]
    results = ExperimentResults(id="x", directory=None, config={}, records=records,
                                optimize_mode="maximize")
    assert "Best test accuracy among trials: 85.00% (trial 1) — optimistic" in (
        _optimistic_section(results))
    no_test = [_record(0, {"default": 0.9}, Outcome.COMPLETE), records[3]]
    assert _optimistic_section(ExperimentResults(
        id="x", directory=None, config={}, records=no_test, optimize_mode="maximize")) == ""

