"""``benchmarks/braille_baseline.py``: the non-spiking reference on the split the Braille
searches are judged on. It must use that very split, choose its epoch by validation, and
report the test positions it misses consistently with its accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _benchmarks import load_benchmark, write_tiny_pool

from spiketune.data import load_braille_pool, split_parts


def load_script():
    return load_benchmark("braille_baseline")


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return write_tiny_pool(tmp_path / "pool.pt")


def test_baseline_reports_the_split_the_searches_use(pool: Path, capsys) -> None:
    script = load_script()
    assert script.main(["--data", str(pool), "--epochs", "20", "--seeds", "0", "1",
                        "--hidden", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    parts = split_parts(load_braille_pool(pool))
    assert out["split"] == parts.split_digest
    assert out["encoding"].startswith("threshold 1, merged channels, 20 ms")
    n_test = len(parts.test.labels)
    for run in out["runs"]:
        assert 1 <= run["epoch"] <= 20
        # the misses listed are exactly the test accuracy's complement
        assert len(run["mistakes"]) == round((1 - run["test"]) * n_test)
        assert all(0 <= i < n_test for i in run["mistakes"])
    assert out["test_mean"] == pytest.approx(sum(r["test"] for r in out["runs"]) / 2)
    assert out["test_mean"] > 0.5  # chance is 1/7: it learnt


def test_baseline_chooses_the_epoch_by_validation(pool: Path, monkeypatch) -> None:
    """Only the validation part is scored to decide the epoch (the test part is predicted,
    never asked for an accuracy that could decide)."""
    script = load_script()
    parts = split_parts(load_braille_pool(pool).rebin(0.02))
    scored: list[object] = []
    accuracy = script.accuracy

    def spy(model, data):
        scored.append(data)
        return accuracy(model, data)

    monkeypatch.setattr(script, "accuracy", spy)
    script.train_one(parts, hidden=8, epochs=3, seed=0)
    assert len(scored) == 3 and all(d is parts.val for d in scored)


def test_the_cnn_reference_learns_on_the_same_split(pool: Path, capsys) -> None:
    """``--model cnn``: another family on the same parts, with the same report."""
    script = load_script()
    assert script.main(["--data", str(pool), "--model", "cnn", "--epochs", "15", "--seeds",
                        "0", "--hidden", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "cnn"
    assert out["split"] == split_parts(load_braille_pool(pool)).split_digest
    run = out["runs"][0]
    assert len(run["mistakes"]) == round((1 - run["test"]) * len(split_parts(
        load_braille_pool(pool)).test.labels))
    assert out["test_mean"] > 0.5  # chance is 1/7: it learnt
    net = script.CNNClassifier(12, 16, 7)
    assert net(torch.zeros(3, 64, 12)).shape == (3, 7)  # [batch, steps, channels] in


def test_baseline_names_a_missing_file(tmp_path: Path, capsys) -> None:
    script = load_script()
    assert script.main(["--data", str(tmp_path / "nothing.pt")]) == 1
    assert "--data" in capsys.readouterr().err
