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


@pytest.mark.parametrize("template", ["spike_patterns", "braille_l2mu", "snntorch_braille"])
def test_a_params_file_that_is_no_json_object_is_named_not_a_traceback(
    template: str, tmp_path: Path
) -> None:
    """A missing file, broken JSON or a JSON list given as --params: the reason and exit 1;
    an --out that is a file: a usage error before any training."""
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{bad")
    # each template reads --params through the one path: each kind of bad file once
    cases = {"spike_patterns": [("list.json", "not a JSON list")],
             "braille_l2mu": [("broken.json", "JSON")],
             "snntorch_braille": [("missing.json", "No such file")]}
    for name, reason in cases[template]:
        run = subprocess.run(
            [sys.executable, "main_hpo.py", "--params", str(tmp_path / name),
             "--out", str(tmp_path / "out")],
            cwd=TEMPLATES / template, capture_output=True, text=True, timeout=300,
            check=False, env={**os.environ, "SPIKETUNE_DATA": str(tmp_path / "cache")},
        )
        assert run.returncode == 1, run.stderr
        assert "error:" in run.stderr and "--params" in run.stderr and reason in run.stderr
        assert "Traceback" not in run.stderr, run.stderr
    (tmp_path / "afile").write_text("mine")
    if template != "snntorch_braille":  # its own options: --out is where NNI_OUTPUT_DIR is not
        run = subprocess.run([sys.executable, "main_hpo.py", "--out", str(tmp_path / "afile")],
                             cwd=TEMPLATES / template, capture_output=True, text=True,
                             timeout=300, check=False)
        assert run.returncode == 2 and "is a file; give a directory" in run.stderr
    assert (tmp_path / "afile").read_text() == "mine"
