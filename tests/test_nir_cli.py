"""`spiketune export-model --format nir --for ...`, in-process: the importer profile, the
refusal naming the approximation, and the accuracy of the model next to its export's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

from spiketune.cli import app
from spiketune.nir import read
from spiketune.snn import RecurrentSNN, SNNConfig, save_checkpoint

torch.set_num_threads(1)


def _experiment(tmp_path: Path, **kw: Any) -> Path:
    exp = tmp_path / "exp"
    (exp / "best_model").mkdir(parents=True)
    (exp / "experiment.json").write_text(json.dumps({"name": "nir-cli"}))
    cfg = SNNConfig(n_in=12, n_rec=16, n_out=7, tau_mem=10e-3, tau_out=15e-3, gain_in=3.0, **kw)
    save_checkpoint(exp / "best_model" / "best_model.pt", RecurrentSNN(cfg, seed=4))
    return exp


def _test_file(tmp_path: Path) -> Path:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(21, 30, 12, generator=g) < 0.2).float()
    path = tmp_path / "test.pt"
    torch.save(TensorDataset(x, torch.arange(21) % 7), path)
    return path


def test_export_for_an_importer_reports_both_accuracies(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, reset="subtract")
    runner = CliRunner()
    out = tmp_path / "rp.nir"
    refused = runner.invoke(app, ["export-model", str(exp), "--for", "rockpool", "-o", str(out)])
    assert refused.exit_code != 0 and "approximate" in refused.output and not out.exists()
    result = runner.invoke(app, [
        "export-model", str(exp), "--for", "rockpool", "-o", str(out), "--approximate",
        "synapse", "--approximate", "reset", "--data", str(_test_file(tmp_path)),
    ])
    assert result.exit_code == 0, result.output
    assert read(out).metadata["target"] == "rockpool"
    assert "approximations: synaptic current" in result.output
    assert "accuracy on 21 samples: model" in result.output and "--for rockpool" in result.output
    exact = runner.invoke(app, ["export-model", str(exp), "-o", str(tmp_path / "g.nir"),
                                "--data", str(_test_file(tmp_path))])
    assert exact.exit_code == 0, exact.output
    assert "same prediction on 100.0%" in exact.output and "approximations: none" in exact.output


@pytest.mark.parametrize("importer", ["snntorch", "norse"])
def test_export_for_zero_reset_importers(tmp_path: Path, importer: str) -> None:
    exp = _experiment(tmp_path, reset="zero")
    out = tmp_path / f"{importer}.nir"
    result = CliRunner().invoke(app, ["export-model", str(exp), "--for", importer, "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = read(out).metadata
    assert meta["target"] == importer and meta["approximations"] == "none"
    assert float(meta["dt"]) == {"snntorch": 1e-4, "norse": 1e-3}[importer]
    usage = CliRunner().invoke(app, ["export-model", str(exp), "--for", "loihi"])
    assert usage.exit_code == 2
