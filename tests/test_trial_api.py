"""The trial side: parameters in, reports out, in each of its three settings."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import spiketune.trial as st

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_channel(monkeypatch: pytest.MonkeyPatch):
    for var in (st.ENV_TRIAL_DIR, st.ENV_PARAMETERS, st.ENV_PARAMETER_FILE, st.ENV_TRIAL_ID,
                st.ENV_EXPERIMENT_ID, st.ENV_SEQUENCE_ID):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", ["trial.py"])
    st._reset()
    yield
    st._reset()


def test_import_is_light() -> None:
    code = (
        "import sys, spiketune.trial, spiketune.compat.nni\n"
        "heavy = [m for m in ('optuna', 'numpy', 'torch', 'pydantic', 'sqlalchemy', 'yaml') "
        "if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_file_channel_reads_parameters_and_appends_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / st.PARAMETER_FILE).write_text('{"lr": 0.1, "opt": {"_name": "sgd", "m": 0.9}}')
    monkeypatch.setenv(st.ENV_TRIAL_DIR, str(tmp_path))
    monkeypatch.setenv(st.ENV_TRIAL_ID, "7")
    monkeypatch.setenv(st.ENV_EXPERIMENT_ID, "exp-1234abcd")
    monkeypatch.setenv(st.ENV_SEQUENCE_ID, "3")
    params = st.get_next_parameter()
    assert params == {"lr": 0.1, "opt": {"_name": "sgd", "m": 0.9}}
    params["lr"] = 5  # the caller's copy; the trial's parameters stay as received
    assert st.get_current_parameter("lr") == 0.1
    assert (st.get_trial_id(), st.get_experiment_id(), st.get_sequence_id()) == (
        "7", "exp-1234abcd", 3)
    st.report_intermediate_result(0.5)
    st.report_final_result({"default": 0.75, "train_acc": 0.9, "spikes": [1, 2]})
    lines = [json.loads(x) for x in (tmp_path / st.METRICS_FILE).read_text().splitlines()]
    assert lines == [
        {"type": "intermediate", "value": {"default": 0.5}},
        {"type": "final", "value": {"default": 0.75, "train_acc": 0.9, "spikes": [1, 2]}},
    ]


def test_manual_mode_reads_params_flag_and_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"x": 2}')
    monkeypatch.setattr(sys, "argv", ["trial.py", "--params", str(f)])
    assert st.get_next_parameter() == {"x": 2}
    assert st.get_trial_id() == "manual"
    st.report_intermediate_result(1)
    st.report_final_result({"default": 2.5, "acc": 0.5})
    out = capsys.readouterr().out
    assert "intermediate result 1: 1" in out
    assert 'final result: {"default": 2.5, "acc": 0.5}' in out


def test_manual_mode_env_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert st.get_next_parameter() == {}
    st._reset()
    monkeypatch.setenv(st.ENV_PARAMETERS, '{"a": [1, 2]}')
    assert st.get_next_parameter() == {"a": [1, 2]}


def test_normalize_metric() -> None:
    assert st.normalize_metric(3) == {"default": 3}
    assert st.normalize_metric({"default": 1.5, "k": "v"}) == {"default": 1.5, "k": "v"}
    assert math.isnan(st.normalize_metric(float("nan"))["default"])

    class Scalar:  # what a numpy scalar or 0-d tensor offers
        def __float__(self) -> float:
            return 0.25

    assert st.normalize_metric({"default": Scalar(), "other": Scalar()}) == {
        "default": 0.25, "other": 0.25}
    with pytest.raises(ValueError, match="'default'"):
        st.normalize_metric({"acc": 1.0})
    with pytest.raises(TypeError):
        st.normalize_metric("0.5")
    with pytest.raises(TypeError):
        st.normalize_metric(True)


def test_script_runs_by_hand_outside_an_experiment(tmp_path: Path) -> None:
    """The NNI example trial, run by hand with a parameter file: reports are printed."""
    params = tmp_path / "p.json"
    params.write_text('{"x": 1.0, "y": -2.0, "shift": 0}')
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "spiketune" / "compat")}
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "nni_style" / "trial.py"), "--params",
         str(params)],
        capture_output=True, text=True, env=env, check=True,
    )
    assert "intermediate result 3: -0.0" in out.stdout
    assert 'final result: {"default": -0.0, "distance": 0.0}' in out.stdout
