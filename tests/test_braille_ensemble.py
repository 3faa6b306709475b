"""``benchmarks/braille_ensemble.py``: several checkpoints' mean class probabilities on the
fixed split's validation part (test part only when asked), and the figures the README quotes
for the handed-over seeds."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from _benchmarks import load_benchmark, write_tiny_pool

from spiketune.data import load_braille_pool, split_parts
from spiketune.snn import RecurrentSNN, SNNConfig, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
POOL = REPO.parent / "shared" / "data" / "braille_th1"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_benchmark("braille_ensemble")


def _checkpoint(path: Path, seed: int) -> Path:
    net = RecurrentSNN(SNNConfig(n_in=12, n_rec=16, n_out=7, dt=0.005, loss_steps=20),
                       seed=seed)
    return save_checkpoint(path, net)


def test_the_ensemble_is_the_mean_of_its_members_probabilities(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pool = write_tiny_pool(tmp_path / "pool.pt")
    a, b = _checkpoint(tmp_path / "a.pt", 0), _checkpoint(tmp_path / "b.pt", 1)
    val = split_parts(load_braille_pool(pool)).val
    (pa, labels), (pb, _) = script.probabilities(a, val), script.probabilities(b, val)
    assert torch.equal(labels, val.labels)
    assert torch.allclose(pa.sum(-1), torch.ones(len(val), dtype=torch.float64))
    monkeypatch.setattr("sys.argv", ["braille_ensemble.py", str(a), str(b), "--data", str(pool)])
    script.main()
    out = capsys.readouterr().out
    assert "test:" not in out  # decided on validation; the test part only with --test
    wrong = ((pa + pb).argmax(-1) != labels).nonzero().flatten().tolist()
    assert f"their ensemble {1 - len(wrong) / len(labels):.2%} (misses {wrong})" in out
    monkeypatch.setattr("sys.argv", ["braille_ensemble.py", str(a), str(a), "--data", str(pool),
                                     "--test"])
    script.main()
    out = capsys.readouterr().out
    single = (pa.argmax(-1) != labels).nonzero().flatten().tolist()
    assert f"their ensemble {1 - len(single) / len(labels):.2%} (misses {single})" in out
    assert "test: single networks" in out


@pytest.mark.skipif(not POOL.exists(), reason=f"needs the threshold-1 pool in {POOL} "
                    "(../shared/data beside the clone)")
def test_the_readme_figures_of_the_seeds_ensemble(
    script: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoints = sorted((REPO / "results" / "braille_th1" / "chosen").glob("seed*/best_model.pt"))
    monkeypatch.setattr("sys.argv", ["braille_ensemble.py", *map(str, checkpoints)])
    script.main()
    out = capsys.readouterr().out
    assert "single networks 95.24% on average; their ensemble 94.29%" in out
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "It validates at 94.29 %, against 95.24 % for its single networks" in readme
