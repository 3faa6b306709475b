"""A template's trial run with bad input (a missing data or graph file, an unknown or invalid
hyperparameter) ends with the reason and exit code 1, not a traceback: the reason is what a
user running it by hand reads, and what the engine records as the failed trial's cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[1] / "spiketune" / "templates"


@pytest.mark.parametrize(
    ("template", "bad", "reason"),
    [
        ("braille_eprop", "--data", "does not exist"),
        ("braille_l2mu", "--data", "does not exist"),
        ("wisdm_l2mu", "--data", "does not exist"),
        ("nir_finetune", "--graph", "does not exist; expected a NIR file"),
        ("spike_patterns", "--params", "n_rec: must be >= 1 (got -3)"),
    ],
)
def test_bad_input_ends_a_template_trial_with_its_reason(
    template: str, bad: str, reason: str, tmp_path: Path
) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"n_rec": -3}))
    value = str(params) if bad == "--params" else str(tmp_path / "missing")
    args = [bad, value] if bad == "--params" else [bad, value, "--params", str(params)]
    run = subprocess.run(
        [sys.executable, "main_hpo.py", *args, "--out", str(tmp_path / "out")],
        cwd=TEMPLATES / template, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "SPIKETUNE_DATA": str(tmp_path / "cache")},
    )
    assert run.returncode == 1, run.stderr
    assert reason in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "out" / "result.json").exists()
