"""``spiketune.engine.retrain`` and ``chosen_trial``: the chosen configuration trained again
with several seeds by the trial's own code, recorded in ``retrained.json``."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from spiketune import Experiment, ExperimentResults, Outcome, TrialRecord
from spiketune.engine import chosen_trial, load_retrained, retrain
from spiketune.engine._retrain import trial_split_digest
from spiketune.errors import ConfigError, SpiketuneError, TrialError
from spiketune.trial._artifacts import BestModelKeeper

#: A trial script that follows the retraining protocol: ``--params FILE --seed K --out DIR
#: --threads N``; it writes ``DIR/result.json`` with a test accuracy that depends on the seed
#: and on a parameter, and seed 13 crashes before writing anything. Its split digest is
#: ``abc123``, or ``$RETRAIN_SPLIT`` (another data split), and always ``f00d`` for seed 7.
SCRIPT = textwrap.dedent("""
    import argparse, json, os, pathlib, sys, time
    p = argparse.ArgumentParser()
    for option in ("--params", "--seed", "--out", "--threads", "--folds", "--extra"):
        p.add_argument(option)
    a = p.parse_args()
    params = json.loads(pathlib.Path(a.params).read_text())
    if a.seed == "13":
        sys.exit("seed 13 crashes")
    started = time.time()
    time.sleep(float(os.environ.get("RETRAIN_SLEEP", "0")))
    out = pathlib.Path(a.out)
    (out / "best_model.pt").write_bytes(b"weights")
    (out / "result.json").write_text(json.dumps({
        "default": 0.9, "test": params["x"] / 10 + int(a.seed) / 100,
        "split_digest": "f00d" if a.seed == "7" else os.environ.get("RETRAIN_SPLIT", "abc123"),
        "threads": int(a.threads), "folds": int(a.folds or 0), "extra": a.extra,
        "nni_env": os.environ.get("NNI_TRIAL_JOB_ID"), "cwd": os.getcwd(),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "started": started,
        "ended": time.time()}))
""")


def _trial(p: dict[str, Any]) -> dict[str, float]:
    return {"default": 1 - abs(p["x"] - 5) / 10}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> ExperimentResults:
    root = tmp_path_factory.mktemp("retrain")
    exp = Experiment(trial=_trial, name="retrain-fn", max_trials=3, experiment_dir=root,
                     tuner="Random", seed=1, concurrency=2,
                     search_space={"x": {"_type": "choice", "_value": [1, 5, 9]}})
    out = exp.run()
    assert out.count(Outcome.COMPLETE) == 3
    return out


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    path = tmp_path / "main_hpo.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def test_retrain_runs_each_seed_and_writes_retrained_json(
        results: ExperimentResults, script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNI_TRIAL_JOB_ID", "leftover")  # a launcher run inside a trial
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # a GPU the search's trials never had
    best = chosen_trial(results)
    assert best is not None and best.parameters["x"] == 5
    lines: list[str] = []
    retrained = retrain(results, [sys.executable, str(script), "--folds", "1",
                                  "--extra", "a b"],
                        seeds=[0, 2], cwd=script.parent, echo=lines.append)
    assert retrained.trial == best.number
    assert retrained.parameters == {"x": 5}
    assert [r.seed for r in retrained.runs] == [0, 2]
    assert retrained.values == pytest.approx([0.5, 0.52])
    assert retrained.mean == pytest.approx(0.51)
    assert retrained.split_digest == "abc123"  # the trial recorded none: the seeds'
    assert [r.split_digest for r in retrained.runs] == ["abc123", "abc123"]
    assert retrained.off_split == ()
    assert retrained.runs[0].checkpoint == "chosen/seed0/best_model.pt"
    assert results.directory is not None
    assert (results.directory / "chosen" / "seed0" / "best_model.pt").is_file()
    assert load_retrained(results.directory) == retrained
    assert json.loads((results.directory / "chosen" / "parameters.json").read_text()) == {"x": 5}
    run0 = json.loads((results.directory / "chosen" / "seed0" / "result.json").read_text())
    # the experiment's concurrency (2) shares the cores between the two seeds
    assert run0["threads"] >= 1 and run0["folds"] == 1 and run0["extra"] == "a b"
    assert run0["nni_env"] is None  # a run by hand never reports to a trial
    assert run0["cuda"] == ""  # trials ran without GPUs (gpus none), and so do the seeds
    assert Path(run0["cwd"]).resolve() == script.parent.resolve()
    assert "--seed {seed}" in (retrained.command or "")
    assert any("51.00% ± 1.41%" in line for line in lines), lines


def test_seeds_that_would_leave_cores_idle_start_together(
        results: ExperimentResults, script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3 seeds at the experiment's concurrency 2, on the CPU: one round of 3, not a round of 2
    and a round of 1 with a core idle; a concurrency asked for keeps its rounds."""
    import spiketune.engine._retrain as retrain_module

    monkeypatch.setattr(retrain_module, "_cores", lambda: 2)
    monkeypatch.setenv("RETRAIN_SLEEP", "1.0")
    assert results.directory is not None
    out = results.directory / "chosen"

    def spans(**kwargs: Any) -> list[tuple[float, float, int]]:
        lines: list[str] = []
        retrain(results, [sys.executable, str(script)], seeds=[0, 1, 2], cwd=script.parent,
                echo=lines.append, **kwargs)
        runs = [json.loads((out / f"seed{k}" / "result.json").read_text()) for k in range(3)]
        return [(r["started"], r["ended"], r["threads"]) for r in runs]

    together = spans()
    assert max(start for start, _, _ in together) < min(end for _, end, _ in together)
    assert [threads for *_, threads in together] == [1, 1, 1]
    rounds = spans(concurrency=2)
    assert max(start for start, _, _ in rounds) >= min(end for _, end, _ in rounds)
    assert [threads for *_, threads in rounds] == [1, 1, 1]


@pytest.mark.parametrize(("n_seeds", "concurrency", "on_cpu", "at_once"), [
    (3, 2, True, 3),  # a short second round: all together
    (3, 2, False, 2),  # one GPU a run: rounds
    (4, 2, True, 2),  # two full rounds
    (5, 2, True, 2),  # three rounds: the oversubscription would be too much
    (2, 4, True, 2),
    (5, 4, True, 5),
    (1, 1, True, 1),
])
def test_seeds_at_once(n_seeds: int, concurrency: int, on_cpu: bool, at_once: int) -> None:
    from spiketune.engine._retrain import seeds_at_once

    assert seeds_at_once(n_seeds, concurrency, on_cpu=on_cpu) == at_once


def test_a_crashed_seed_is_reported_and_the_others_kept(
        results: ExperimentResults, script: Path) -> None:
    lines: list[str] = []
    retrained = retrain(results, [sys.executable, str(script)], seeds=[1, 13],
                        cwd=script.parent, echo=lines.append, concurrency=1)
    assert [r.seed for r in retrained.runs] == [1]
    assert any("seed 13: no result" in line for line in lines), lines
    assert any("test of its one seed: 51.00%" in line for line in lines), lines  # no "± 0.00%"
    assert results.directory is not None
    log = (results.directory / "chosen" / "seed13" / "train.log").read_text()
    assert "seed 13 crashes" in log


def _with_split(record: TrialRecord, where: str, tmp_path: Path) -> TrialRecord:
    """``record`` as a trial that ran on split ``abc123``, which it names in its reported
    metrics (``where == "metrics"``) or only in its directory's ``result.json`` (trials of
    templates that reported it only there)."""
    if where == "metrics":
        return dataclasses.replace(record, metrics={**(record.metrics or {}),
                                                    "split_digest": "abc123"})
    trial_dir = tmp_path / "trial"
    trial_dir.mkdir()
    (trial_dir / "result.json").write_text(json.dumps({"test": 0.5, "split_digest": "abc123"}))
    return dataclasses.replace(record, trial_dir=trial_dir)


@pytest.mark.parametrize("where", ["metrics", "result.json"])
def test_seeds_on_the_trials_split_pass_and_record_it(
        results: ExperimentResults, script: Path, tmp_path: Path, where: str) -> None:
    chosen = chosen_trial(results)
    assert chosen is not None and results.directory is not None
    assert trial_split_digest(chosen) is None  # the function trial names no split
    trial = _with_split(chosen, where, tmp_path)
    assert trial_split_digest(trial) == "abc123"
    retrained = retrain(results, [sys.executable, str(script)], seeds=[0, 1], trial=trial,
                        cwd=script.parent, echo=None)
    assert retrained.split_digest == "abc123" and retrained.off_split == ()
    assert load_retrained(results.directory) == retrained


@pytest.mark.parametrize("where", ["metrics", "result.json"])
def test_seeds_on_another_split_than_the_trial_are_refused(
        results: ExperimentResults, script: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Other data or another --subset for the retraining: its test part is other samples, so
    its figure is not the search's estimate. retrained.json records each seed's split (the
    report marks them), and retrain raises naming the splits."""
    monkeypatch.setenv("RETRAIN_SPLIT", "5eed5p1it")
    chosen = chosen_trial(results)
    assert chosen is not None and results.directory is not None
    trial = _with_split(chosen, where, tmp_path)
    lines: list[str] = []
    with pytest.raises(TrialError) as caught:
        retrain(results, [sys.executable, str(script)], seeds=[0, 1], trial=trial,
                cwd=script.parent, echo=lines.append)
    message = str(caught.value)
    assert f"another data split than trial {chosen.number} (split abc123)" in message
    assert "seed 0 on 5eed5p1it, seed 1 on 5eed5p1it" in message
    assert "retrained.json records each seed's split" in message
    assert not any("mean ± sample std" in line for line in lines)  # no figure to quote
    written = load_retrained(results.directory)
    assert written is not None and written.split_digest == "abc123"
    assert [(r.seed, r.split_digest) for r in written.off_split] == [(0, "5eed5p1it"),
                                                                      (1, "5eed5p1it")]


def test_seeds_on_different_splits_are_refused(results: ExperimentResults,
                                               script: Path) -> None:
    """No split recorded by the trial: the seeds must still agree with each other."""
    with pytest.raises(TrialError, match=r"another data split than seed 0 \(split abc123\): "
                                         r"seed 7 on f00d;"):
        retrain(results, [sys.executable, str(script)], seeds=[0, 7], cwd=script.parent,
                echo=None)
    assert results.directory is not None
    written = load_retrained(results.directory)
    assert written is not None
    assert [r.split_digest for r in written.runs] == ["abc123", "f00d"]


def test_a_stale_result_is_never_read(results: ExperimentResults, script: Path,
                                      tmp_path: Path) -> None:
    assert results.directory is not None
    stale = results.directory / "chosen" / "seed13"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "result.json").write_text(json.dumps({"test": 1.0}))
    retrained = retrain(results, [sys.executable, str(script)], seeds=[13],
                        cwd=script.parent, echo=None)
    assert retrained.runs == () and retrained.mean is None


def test_chosen_trial_is_the_kept_models_trial(results: ExperimentResults,
                                               tmp_path: Path) -> None:
    assert results.directory is not None and results.best is not None
    other = next(r for r in results.records if r.number != results.best.number)
    keeper = BestModelKeeper(results.directory)
    assert keeper.offer((2.0,), {"model.pt": b"w"}, parameters=other.parameters,
                        trial_id=str(other.number))
    try:
        assert chosen_trial(results) == other
    finally:
        import shutil
        shutil.rmtree(results.directory / "best_model")
    assert chosen_trial(results) == results.best


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"command": []}, "command"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"seeds": [True]}, "seeds"),
    ({"concurrency": 0}, "concurrency"),
])
def test_bad_arguments_name_the_field(results: ExperimentResults, kwargs: dict[str, Any],
                                      field: str) -> None:
    args: dict[str, Any] = {"command": [sys.executable, "x.py"], **kwargs}
    with pytest.raises(ConfigError) as info:
        retrain(results, args.pop("command"), echo=None, **args)
    assert [p.field for p in info.value.problems] == [field]


def test_no_directory_or_no_trial_is_a_clear_error() -> None:
    empty = ExperimentResults(id="empty", directory=None, config={}, records=[],
                              optimize_mode="maximize")
    with pytest.raises(SpiketuneError, match="no directory"):
        retrain(empty, [sys.executable, "x.py"], echo=None)
