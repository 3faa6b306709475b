"""``benchmarks/braille_splits.py``: the fixed recipes trained on other splits of the pool. It
must train on exactly the splits it names (split 0 being the fixed one the example is judged
on), choose each epoch by validation, and summarise what it ran."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from _benchmarks import load_benchmark, write_tiny_event_file, write_tiny_pool

from spiketune.data import (
    BRAILLE_REDUCED_LETTERS,
    BRAILLE_TASK_DEFAULTS,
    load_braille_encoding,
    load_braille_pool,
    split_parts,
)

REPO = Path(__file__).resolve().parents[1]


def load_script():
    return load_benchmark("braille_splits")


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return write_tiny_pool(tmp_path / "pool.pt")


@pytest.fixture
def params(tmp_path: Path) -> Path:
    """A small, quick configuration of the example (the handed-over one has 512 neurons)."""
    chosen = json.loads((REPO / "results" / "braille_th1" / "chosen" / "parameters.json")
                        .read_text())
    path = tmp_path / "parameters.json"
    path.write_text(json.dumps({**chosen, "n_rec": 16, "epochs": 4}))
    return path


def test_each_split_is_the_one_named_and_split_0_is_the_fixed_one(
    pool: Path, params: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = load_script()
    monkeypatch.setattr(script, "GRU_EPOCHS", 20)  # the tiny pool's GRU has learnt by then
    assert script.main(["--data", str(pool), "--params", str(params), "--splits", "0", "3",
                        "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    dataset = load_braille_pool(pool)
    digests = {s: split_parts(dataset, seed=s).split_digest for s in (0, 3)}
    assert digests[0] != digests[3]
    for model in ("snn", "gru"):
        runs = out["runs"][model]
        assert [r["split"] for r in runs] == [0, 3]
        assert [r["digest"] for r in runs] == [digests[0], digests[3]]
        cap = 4 if model == "snn" else 20
        assert all(1 <= r["epoch"] <= cap for r in runs)
        summary = out["summary"][model]
        assert summary["test_mean"] == pytest.approx(statistics.mean(r["test"] for r in runs))
        assert summary["fixed_test"] == runs[0]["test"]
        assert summary["fixed_rank"] in (1, 2)
    assert out["summary"]["gru"]["test_mean"] > 0.5  # chance is 1/7: it learnt


def test_a_missing_parameters_file_is_named(pool: Path, tmp_path: Path, capsys) -> None:
    script = load_script()
    missing = tmp_path / "nope.json"
    assert script.main(["--data", str(pool), "--params", str(missing)]) == 1
    assert f"--params {missing}: no such file" in capsys.readouterr().err


def test_default_trains_the_untuned_network_a_trial_builds(pool: Path, capsys) -> None:
    script = load_script()
    assert script.main(["--data", str(pool), "--params", "default", "--models", "snn",
                        "--splits", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"] == script.main_hpo.DEFAULT_PARAMS
    assert list(out["runs"]) == ["snn"] and out["runs"]["snn"][0]["split"] == 1
    assert "fixed_test" not in out["summary"]["snn"]  # split 0 was not run


def test_an_archive_event_file_is_split_and_encoded_at_threshold_10(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``--data`` an event file: the threshold-10 split (ON/OFF channels), whose split 0 is the
    one the example's threshold-10 results are judged on, and by default the configuration
    handed over for threshold 10."""
    script = load_script()
    events = write_tiny_event_file(tmp_path / "data_braille_letters_th10",
                                   BRAILLE_REDUCED_LETTERS)
    th10 = json.loads(script.CHOSEN_TH10.read_text())
    small = tmp_path / "th10.json"
    small.write_text(json.dumps({**th10, "n_rec": 16, "epochs": 3}))
    monkeypatch.setattr(script, "CHOSEN_TH10", small)  # the default, made small
    monkeypatch.setattr(script, "GRU_EPOCHS", 20)
    assert script.main(["--data", str(events), "--splits", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == str(small) and out["parameters"]["n_rec"] == 16
    gru_options = {**BRAILLE_TASK_DEFAULTS, "bin_size": 0.02}
    encoded = load_braille_encoding(gru_options, events, download=False)
    assert encoded.n_inputs == 24  # ON and OFF of 12 taxels, not merged
    expected = split_parts(encoded, seed=0).split_digest
    assert [r["digest"] for r in out["runs"]["gru"]] == [expected]
    assert [r["digest"] for r in out["runs"]["snn"]] == [expected]
    assert 1 <= out["runs"]["snn"][0]["epoch"] <= 3
    assert out["summary"]["gru"]["test_mean"] > 0.5  # chance is 1/7: it learnt


def test_missing_data_is_named(tmp_path: Path, capsys) -> None:
    script = load_script()
    missing = tmp_path / "nowhere"
    assert script.main(["--data", str(missing)]) == 1
    assert f"--data {missing}: no such file or directory" in capsys.readouterr().err
