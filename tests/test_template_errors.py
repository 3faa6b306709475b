"""A template's trial run with bad input (a missing data or graph file, an unknown or invalid
hyperparameter) ends with the reason and exit code 1, not a traceback: the reason is what a
user running it by hand reads, and what the engine records as the failed trial's cause.

Each case is its own process (Python and torch start in each, about 3 s); the cases of a test
run side by side, and each is judged on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from _benchmarks import write_tiny_pool

TEMPLATES = Path(__file__).resolve().parents[1] / "spiketune" / "templates"


@dataclass
class Run:
    """A finished ``main_hpo.py`` process of one case."""

    case: str
    returncode: int
    stderr: str


def _run_side_by_side(cases: dict[str, tuple[str, list[str]]], tmp_path: Path) -> list[Run]:
    """``main_hpo.py ARGS`` in each case's template, all started at once; their ends."""
    env = {**os.environ, "SPIKETUNE_DATA": str(tmp_path / "cache")}
    started = {
        case: subprocess.Popen([sys.executable, "main_hpo.py", *args],
                               cwd=TEMPLATES / template, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=env)
        for case, (template, args) in cases.items()
    }
    runs = []
    for case, proc in started.items():
        _, err = proc.communicate(timeout=300)
        runs.append(Run(case, proc.returncode, err))
    return runs


def test_bad_input_ends_a_template_trial_with_its_reason(tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"n_rec": -3}))
    missing = str(tmp_path / "missing")
    reasons = {
        "braille_eprop": ("--data", "does not exist"),
        "braille_l2mu": ("--data", "does not exist"),
        "wisdm_l2mu": ("--data", "does not exist"),
        "nir_finetune": ("--graph", "does not exist; expected a NIR file"),
        "spike_patterns": ("--params", "n_rec: must be >= 1 (got -3)"),
        # 2 samples per class leave the split's 10 % for validation and test empty
        "snntorch_braille": ("--subset", "--subset 2: leaves no validation and no test "
                                         "sample"),
    }
    cases = {}
    for template, (bad, _) in reasons.items():
        if bad == "--subset":
            args = [bad, "2", "--data", str(write_tiny_pool(tmp_path / "pool.pt"))]
        elif bad == "--params":
            args = [bad, str(params)]
        else:
            args = [bad, missing, "--params", str(params)]
        cases[template] = (template, [*args, "--out", str(tmp_path / template)])
    for run in _run_side_by_side(cases, tmp_path):
        reason = reasons[run.case][1]
        assert run.returncode == 1, (run.case, run.stderr)
        assert reason in run.stderr, (run.case, run.stderr)
        assert "Traceback" not in run.stderr, (run.case, run.stderr)
        assert not (tmp_path / run.case / "result.json").exists(), run.case


def test_a_params_file_that_is_no_json_object_is_named_not_a_traceback(tmp_path: Path) -> None:
    """A missing file, broken JSON or a JSON list given as --params: the reason and exit 1;
    an --out that is a file: a usage error before any training."""
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{bad")
    (tmp_path / "afile").write_text("mine")
    # each template reads --params through the one path: each kind of bad file once
    bad_params = {"spike_patterns": ("list.json", "not a JSON list"),
                  "braille_l2mu": ("broken.json", "JSON"),
                  "snntorch_braille": ("missing.json", "No such file")}
    cases = {template: (template, ["--params", str(tmp_path / name), "--out",
                                   str(tmp_path / "out")])
             for template, (name, _) in bad_params.items()}
    # snntorch_braille has its own options: --out is where NNI_OUTPUT_DIR is not
    out_is_a_file = ("spike_patterns", "braille_l2mu")
    cases.update({f"{template} --out": (template, ["--out", str(tmp_path / "afile")])
                  for template in out_is_a_file})
    for run in _run_side_by_side(cases, tmp_path):
        if run.case.endswith(" --out"):
            assert run.returncode == 2, (run.case, run.stderr)
            assert "is a file; give a directory" in run.stderr, (run.case, run.stderr)
            continue
        reason = bad_params[run.case][1]
        assert run.returncode == 1, (run.case, run.stderr)
        assert "error:" in run.stderr and "--params" in run.stderr, (run.case, run.stderr)
        assert reason in run.stderr, (run.case, run.stderr)
        assert "Traceback" not in run.stderr, (run.case, run.stderr)
    assert (tmp_path / "afile").read_text() == "mine"
    assert not (tmp_path / "out" / "result.json").exists()
