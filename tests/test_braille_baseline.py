"""``benchmarks/braille_baseline.py``: the non-spiking reference on the split the Braille
searches are judged on. It must use that very split, choose its epoch by validation, and
report the test positions it misses consistently with its accuracy."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from spiketune.data import load_braille_pool, split_parts

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("braille_baseline",
                                                  REPO / "benchmarks" / "braille_baseline.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """70 samples of 7 classes a GRU tells apart at once: class c fires taxel c, and every
    sample has background events on the other taxels."""
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(70) % 7
    inputs = (torch.rand(70, 256, 12, generator=g) < 0.01).float()
    for i, c in enumerate(labels.tolist()):
        inputs[i, 8::8, c] = 1.0
    path = tmp_path / "pool.pt"
    torch.save(TensorDataset(inputs, labels), path)
    return path


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


def test_baseline_names_a_missing_file(tmp_path: Path, capsys) -> None:
    script = load_script()
    assert script.main(["--data", str(tmp_path / "nothing.pt")]) == 1
    assert "--data" in capsys.readouterr().err
