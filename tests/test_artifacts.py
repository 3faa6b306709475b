"""The experiment's best-model keeper: compare-and-replace, concurrency, crash safety."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spiketune.engine import load_best_model, load_predictions
from spiketune.errors import TrialError
from spiketune.trial import _artifacts as artifacts
from spiketune.trial._artifacts import BestModelKeeper, Predictions, offer_best_model

_FORK = multiprocessing.get_context("fork")


def _model(score: tuple[float, ...]) -> bytes:
    return f"model {list(score)}".encode()


def _offer(keeper: BestModelKeeper, score: tuple[float, ...], **kw: object) -> bool:
    return keeper.offer(score, {"best_model.pt": _model(score)}, parameters={"s": list(score)},
                        **kw)  # type: ignore[arg-type]


def _leftovers(exp: Path) -> list[str]:
    return sorted(p.name for p in exp.iterdir() if p.name.startswith(".best_model"))


def test_keeps_only_better_scores_ties_broken_by_second_part(tmp_path: Path) -> None:
    keeper = BestModelKeeper(tmp_path)
    assert keeper.current() is None
    assert _offer(keeper, (0.80, -120.0))
    assert not _offer(keeper, (0.70, -10.0))  # worse validation, however few spikes
    assert not _offer(keeper, (0.80, -120.0))  # a tie keeps the first
    assert not _offer(keeper, (0.80, -130.0))  # same validation, more spikes
    assert _offer(keeper, (0.80, -90.0))  # same validation, fewer spikes
    assert _offer(keeper, (0.85, -500.0))
    best = keeper.current()
    assert best is not None
    assert best.score == (0.85, -500.0)
    assert best.path().read_bytes() == _model((0.85, -500.0))
    assert json.loads((tmp_path / "best_model" / "parameters.json").read_text()) == {
        "s": [0.85, -500.0]
    }
    assert _leftovers(tmp_path) == []


def test_files_from_paths_info_and_predictions_are_kept(tmp_path: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"\x00weights\xff" * 1000)
    preds = Predictions(labels=[0, 1, 2, 2], predictions=[0, 1, 1, 2], class_names=["a", "b", "c"])
    keeper = BestModelKeeper(tmp_path / "exp")
    assert keeper.offer(
        0.9,
        {"best_model.pt": weights, "extra.bin": b"x"},
        parameters={"lr": 0.01, "neuron": {"_name": "alif", "beta": 1.5}},
        info={"epoch": 7, "test": 0.75},
        predictions=preds,
        trial_id="3",
        sequence_id=3,
    )
    best = keeper.current()
    assert best is not None
    assert best.path().read_bytes() == weights.read_bytes()
    assert best.path("extra.bin").read_bytes() == b"x"
    assert best.files == ["best_model.pt", "extra.bin"]
    assert best.info == {"epoch": 7, "test": 0.75}
    assert (best.trial_id, best.sequence_id, best.score) == ("3", 3, (0.9,))
    assert best.parameters["neuron"] == {"_name": "alif", "beta": 1.5}
    assert best.predictions == preds
    stored = json.loads((tmp_path / "exp/best_model/predictions.json").read_text())
    assert stored["split"] == "test"
    assert (stored["n_total"], stored["n_correct"]) == (4, 3)
    assert stored["class_names"] == ["a", "b", "c"]


def test_predictions_validation_and_numbers() -> None:
    p = Predictions(labels=[0, 1, 1], predictions=[0, 0, 1])
    assert p.names == ["0", "1"]
    assert p.accuracy == pytest.approx(2 / 3)
    with pytest.raises(TrialError, match="same length"):
        Predictions(labels=[0, 1], predictions=[0])
    with pytest.raises(TrialError, match="class index 3 has no name"):
        Predictions(labels=[0, 3], predictions=[0, 1], class_names=["a", "b"])
    with pytest.raises(TrialError, match="non-negative"):
        Predictions(labels=[-1], predictions=[0])
    np = pytest.importorskip("numpy")
    q = Predictions(labels=np.array([1, 0]), predictions=np.array([1, 1]))
    assert q.labels == [1, 0] and isinstance(q.labels[0], int)
    # scores or text are not class indices, and are not cut into some
    for bad in (np.array([0.9, 1.6]), [True, False], "01"):
        with pytest.raises(TrialError, match="class indices"):
            Predictions(labels=[0, 1], predictions=bad)
    assert Predictions(labels=[0, 1], predictions=np.array([0.0, 1.0])).predictions == [0, 1]


@pytest.mark.parametrize(
    ("score", "files", "match"),
    [
        (float("nan"), {"m.pt": b""}, "finite"),
        ((), {"m.pt": b""}, "at least one number"),
        (("high",), {"m.pt": b""}, "must be numbers"),
        (1.0, {}, "at least one file"),
        (1.0, {"../m.pt": b""}, "plain file name"),
        (1.0, {"parameters.json": b""}, "reserved"),
        (1.0, {"m.pt": "/nonexistent/file.pt"}, "no file at"),
        (1.0, {"m.pt": 3}, "bytes or a file path"),
    ],
)
def test_invalid_offers_are_refused_before_anything_is_written(
    tmp_path: Path, score: object, files: dict[str, object], match: str
) -> None:
    keeper = BestModelKeeper(tmp_path)
    with pytest.raises(TrialError, match=match):
        keeper.offer(score, files, parameters={})  # type: ignore[arg-type]
    assert not (tmp_path / "best_model").exists()


def test_score_of_another_shape_is_refused(tmp_path: Path) -> None:
    keeper = BestModelKeeper(tmp_path)
    _offer(keeper, (0.5, -1.0))
    with pytest.raises(TrialError, match="one shape"):
        _offer(keeper, (0.9,))
    with pytest.raises(TrialError, match="JSON-able"):
        keeper.offer(0.99, {"m.pt": b""}, parameters={"x": float("inf")})
    current = keeper.current()
    assert current is not None and current.score == (0.5, -1.0)


def _offer_many(directory: str, scores: list[tuple[float, float]], barrier: object) -> None:
    keeper = BestModelKeeper(directory)
    barrier.wait()  # type: ignore[attr-defined]
    for s in scores:
        _offer(keeper, s)


def test_concurrent_processes_keep_the_best_offer(tmp_path: Path) -> None:
    import random

    rng = random.Random(0)
    scores = [(round(rng.random(), 3), -float(rng.randrange(100))) for _ in range(48)]
    chunks = [scores[i::4] for i in range(4)]
    barrier = _FORK.Barrier(4)
    procs = [_FORK.Process(target=_offer_many, args=(str(tmp_path), c, barrier)) for c in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    best = BestModelKeeper(tmp_path).current()
    assert best is not None
    assert best.score == max(scores)
    # Model, parameters and manifest all come from the same offer.
    assert best.path().read_bytes() == _model(max(scores))
    assert tuple(best.parameters["s"]) == max(scores)
    assert _leftovers(tmp_path) == []


def test_concurrent_threads_keep_the_best_offer(tmp_path: Path) -> None:
    """In-process trials run in threads of one process: the lock must hold between them too."""
    import random
    import threading

    rng = random.Random(1)
    scores = [(round(rng.random(), 3), -float(rng.randrange(100))) for _ in range(40)]
    errors: list[BaseException] = []

    def run(chunk: list[tuple[float, float]]) -> None:
        try:
            for s in chunk:
                _offer(BestModelKeeper(tmp_path), s)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(scores[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    best = BestModelKeeper(tmp_path).current()
    assert best is not None and best.score == max(scores)
    assert best.path().read_bytes() == _model(max(scores))


def _crash_at(directory: str, where: str) -> None:
    """Offer a better model and die (as by SIGKILL: no cleanup) at ``where``."""
    if where == "writing":  # after the model file, before the manifest
        real_write = artifacts._write_file

        def write(path: Path, content: bytes | Path) -> None:
            if path.name == artifacts.MANIFEST_FILE:
                with open(path, "wb") as f:
                    f.write(b'{"score": [0.9')  # half a manifest
                os._exit(9)
            real_write(path, content)

        artifacts._write_file = write  # type: ignore[assignment]
    elif where == "between_renames":
        real_replace = os.replace
        calls: list[object] = []

        def replace(src: object, dst: object) -> None:
            if calls:
                os._exit(9)
            calls.append(src)
            real_replace(src, dst)  # type: ignore[arg-type]

        artifacts.os.replace = replace  # type: ignore[assignment]  # this process only
    elif where == "after_renames":
        def fsync_dir(path: Path) -> None:
            if path == Path(directory):
                os._exit(9)

        artifacts._fsync_dir = fsync_dir  # type: ignore[assignment]
    _offer(BestModelKeeper(directory), (0.99, 0.0))
    os._exit(0)


@pytest.mark.parametrize("where", ["writing", "between_renames", "after_renames"])
def test_a_crash_mid_offer_never_destroys_the_kept_model(tmp_path: Path, where: str) -> None:
    keeper = BestModelKeeper(tmp_path)
    _offer(keeper, (0.5, -3.0), predictions=Predictions([0, 1], [0, 0]))
    child = _FORK.Process(target=_crash_at, args=(str(tmp_path), where))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 9
    assert _leftovers(tmp_path) != []  # the crash left something behind to clean up
    best = keeper.current()
    assert best is not None
    if where == "after_renames":  # the new model was complete and in place
        assert best.score == (0.99, 0.0)
        assert best.path().read_bytes() == _model((0.99, 0.0))
    else:  # the offer did not complete: it has no effect
        assert best.score == (0.5, -3.0)
        assert best.path().read_bytes() == _model((0.5, -3.0))
        assert best.predictions is not None and best.predictions.predictions == [0, 0]
    assert _leftovers(tmp_path) == []
    assert _offer(keeper, (1.0, 0.0))  # and the keeper goes on working


def test_offer_from_trials_of_an_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spiketune import Experiment

    def trial(p: dict[str, float]) -> dict[str, float]:
        acc = 1.0 - abs(p["x"] - 0.3)
        kept = offer_best_model(
            (acc,), {"best_model.pt": f"x={p['x']}".encode()}, {"acc": acc},
            Predictions([0, 1, 1], [0, 1, int(acc > 0.9)], ["no", "yes"]),
        )
        return {"default": acc, "kept": float(kept)}

    exp = Experiment(
        trial=trial, name="keep", search_space={"x": {"_type": "uniform", "_value": [0, 1]}},
        max_trials=6, tuner="Random", seed=3, experiment_dir=tmp_path,
    )
    results = exp.run()
    best_record = results.best
    assert best_record is not None
    best = load_best_model(exp.directory)
    assert best is not None
    assert best.trial_id == str(best_record.number)
    assert best.parameters == best_record.parameters
    assert best.path().read_bytes() == f"x={best_record.parameters['x']}".encode()
    assert best.score == (best_record.value,)
    monkeypatch.setenv("SPIKETUNE_EXPERIMENTS", str(tmp_path))
    preds = load_predictions(exp.id)  # by id, as the report finds it
    assert preds is not None and preds.class_names == ["no", "yes"]
    # The first trial is always kept, and the flag says which offers were kept.
    assert results.records[0].metrics is not None and results.records[0].metrics["kept"] == 1.0


def test_outside_an_experiment_nothing_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spiketune import trial as trial_api

    monkeypatch.delenv(artifacts.ENV_EXPERIMENT_DIR, raising=False)
    monkeypatch.delenv(trial_api.ENV_TRIAL_DIR, raising=False)
    monkeypatch.setattr(sys, "argv", ["main_hpo.py"])
    trial_api._reset()
    try:
        assert artifacts.experiment_dir_of_trial() is None
        assert not offer_best_model(1.0, {"m.pt": b"x"})
        monkeypatch.setenv(artifacts.ENV_EXPERIMENT_DIR, str(tmp_path))
        assert offer_best_model(1.0, {"m.pt": b"x"}, parameters={"a": 1})
        kept = BestModelKeeper(tmp_path).current()
        assert kept is not None and kept.parameters == {"a": 1} and kept.trial_id is None
    finally:
        trial_api._reset()


def test_importing_the_keeper_stays_cheap() -> None:
    code = (
        "import sys, spiketune.trial._artifacts; "
        "heavy = [m for m in ('torch', 'numpy', 'optuna', 'pydantic') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_numpy_and_torch_scalars_are_one_number_and_text_is_refused(tmp_path: Path) -> None:
    """A score straight from NumPy or torch (as metrics take them) is one number; a string
    or None is named, not iterated character by character or a TypeError."""
    import numpy as np
    import torch

    keeper = BestModelKeeper(tmp_path)
    assert keeper.offer(np.float32(0.5), {"m.pt": b"a"}, parameters={})
    assert keeper.offer(torch.tensor(0.75), {"m.pt": b"b"}, parameters={})
    assert keeper.offer(np.array(0.8), {"m.pt": b"c"}, parameters={})
    current = keeper.current()
    assert current is not None and current.score == (0.8,)
    for bad in ("0.5", None):
        with pytest.raises(TrialError, match="a number or a tuple of numbers"):
            keeper.offer(bad, {"m.pt": b"d"}, parameters={})  # type: ignore[arg-type]
