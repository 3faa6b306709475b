"""The trial side: parameters in, reports out, in each of its three settings."""

from __future__ import annotations

import json
import math
import os
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


def test_the_trial_side_never_imports_the_engine() -> None:
    """The engine may import the trial package, never the reverse: a trial process must not
    depend on what only the scheduler's machine needs. Every import, also inside functions
    and of the artefacts keeper, is checked, offering a best model included."""
    code = (
        "import sys, spiketune.trial as st, spiketune.compat.nni\n"
        "st.offer_best_model, st.Predictions, st.experiment_dir_of_trial\n"
        "print([m for m in sys.modules if m.startswith(('spiketune.engine', 'spiketune.snn'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    package = Path(st.__file__).resolve().parent
    for path in [*package.glob("*.py"), *(package.parent / "compat").rglob("*.py")]:
        text = path.read_text()
        assert "spiketune.engine" not in text and "from spiketune import engine" not in text, path


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


def test_a_script_run_by_hand_with_bad_parameters_stops_with_one_line(tmp_path: Path) -> None:
    """A missing file, a JSON list, bad inline JSON, ``--params`` without its path: one
    ``error:`` line naming where the parameters came from, exit code 1, no traceback."""
    script = tmp_path / "t.py"
    script.write_text("import spiketune.trial as st\nprint(st.get_next_parameter())\n")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    cases = [(["--params", str(tmp_path / "missing.json")], {}, "--params"),
             (["--params", str(listed)], {}, "not a JSON list"),
             (["--params"], {}, "--params"),
             ([], {st.ENV_PARAMETERS: "{bad"}, f"${st.ENV_PARAMETERS}")]
    for argv, env, words in cases:
        done = subprocess.run([sys.executable, str(script), *argv], capture_output=True,
                              text=True, env={**os.environ, **env}, timeout=60)
        assert done.returncode == 1, done
        assert done.stderr.startswith("error: ") and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


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
    # NumPy's and torch's booleans are refused as Python's is; several values are not one
    np, torch = pytest.importorskip("numpy"), pytest.importorskip("torch")
    for boolean in (np.bool_(True), torch.tensor(True)):
        with pytest.raises(TypeError, match="must be a number"):
            st.normalize_metric({"default": boolean})
    for several in (np.array([1.0, 2.0]), torch.tensor([1.0, 2.0])):
        with pytest.raises(TypeError, match="metric must be one number"):
            st.normalize_metric(several)


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


# ------------------------------------------------------------------------------ the protocol
def test_metric_lines_round_trip() -> None:
    from spiketune.trial import _protocol as protocol

    value = {"default": 0.5, "spikes": [1, 2], "name": "lif"}
    line = protocol.metric_line("final", value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.parse_metric_line(line) == ("final", value)
    assert protocol.parse_metric_line('{"type": "intermediate", "value": 3}') == (
        "intermediate", {"default": 3})
    with pytest.raises(ValueError, match="type"):
        protocol.metric_line("other", value)


def test_parse_metric_line_reads_null_as_nan_and_refuses_the_rest() -> None:
    from spiketune.trial._protocol import parse_metric_line

    kind, value = parse_metric_line(b'{"type": "final", "value": null}')
    assert kind == "final" and math.isnan(value["default"])
    _, value = parse_metric_line(b'{"type": "final", "value": {"default": null, "k": 1}}')
    assert math.isnan(value["default"]) and value["k"] == 1
    for bad, match in [(b"not json", "Expecting"), (b"[1]", "type"),
                       (b'{"type": "final"}', "missing 'value'"),
                       (b'{"type": "done", "value": 1}', "type"),
                       (b'{"type": "final", "value": {"acc": 1}}', "'default'")]:
        with pytest.raises(ValueError, match=match):
            parse_metric_line(bad)
    with pytest.raises(TypeError):
        parse_metric_line(b'{"type": "final", "value": "0.5"}')
    # too many digits for Python to read as an int: beyond a float's range all the same
    huge = parse_metric_line('{"type": "final", "value": {"default": 1, "x": -' + "9" * 5000
                             + "}}")
    assert huge == ("final", {"default": 1, "x": -math.inf})


def test_metrics_reader_takes_whole_lines_as_they_come(tmp_path: Path) -> None:
    from spiketune.trial._protocol import MetricsReader

    path = tmp_path / st.METRICS_FILE
    path.write_bytes(b"")
    reader = MetricsReader(path)
    with open(path, "ab") as f:
        f.write(b'{"type": "intermediate", "value": 1}\n{"type": "intermediate", "val')
        f.flush()
        assert reader.read() == [{"default": 1}]  # half a line waits for its newline
        f.write(b'ue": 2}\ngarbage\n{"type": "final", "value": 5}\n')
        f.write(b'{"type": "final", "value": 6}\n{"type": "intermediate", "value": 3}')
        f.flush()
        assert reader.read() == [{"default": 2}]
        assert reader.read(last=True) == [{"default": 3}]  # the trial is over: take it all
    reader.close()
    assert reader.final == {"default": 5}  # only the first final counts
    assert len(reader.errors) == 1 and "garbage" in reader.errors[0]


def test_metrics_reader_reads_a_rewritten_file_again(tmp_path: Path) -> None:
    """A trial that rewrites ``metrics.jsonl`` rather than appending (a file moved over it,
    or the old one truncated and written again) keeps its final result, and no intermediate
    result is reported twice."""
    from spiketune.trial._protocol import MetricsReader

    def line(kind: str, value: float) -> bytes:
        return json.dumps({"type": kind, "value": value}).encode() + b"\n"

    path = tmp_path / st.METRICS_FILE
    path.write_bytes(line("intermediate", 1) + line("intermediate", 2))
    moved = MetricsReader(path)
    assert moved.read() == [{"default": 1}, {"default": 2}]
    new = tmp_path / "metrics.jsonl.tmp"  # the whole file again, plus what is new
    new.write_bytes(path.read_bytes() + line("intermediate", 3) + line("final", 0.9))
    os.replace(new, path)
    assert moved.read(last=True) == [{"default": 3}]
    assert moved.final == {"default": 0.9} and moved.errors == []
    moved.close()

    path.write_bytes(line("intermediate", 1) + line("intermediate", 2))
    truncated = MetricsReader(path)
    assert len(truncated.read()) == 2
    path.write_bytes(line("final", 0.8))  # opened with "w": shorter than what was read
    assert truncated.read(last=True) == []
    assert truncated.final == {"default": 0.8}
    truncated.close()


def test_read_metrics_of_a_finished_or_missing_trial(tmp_path: Path) -> None:
    from spiketune.trial._protocol import append_metric, read_metrics

    assert read_metrics(tmp_path / "nowhere") == ([], None)
    append_metric(tmp_path, "intermediate", {"default": 0.1})
    append_metric(tmp_path, "final", {"default": 0.9, "acc": 0.8})
    append_metric(tmp_path, "intermediate", {"default": 0.2})
    assert read_metrics(tmp_path) == ([{"default": 0.1}, {"default": 0.2}],
                                      {"default": 0.9, "acc": 0.8})


def test_parameters_are_written_byte_for_byte_and_read_back(tmp_path: Path) -> None:
    from spiketune.trial._protocol import read_parameters, write_parameters

    text = '{"lr": 0.30000000000000004, "name": "\\u03c4"}'
    path = write_parameters(tmp_path / "t" / "0", text)
    assert path.read_bytes() == text.encode()
    assert read_parameters(tmp_path / "t" / "0") == {"lr": 0.30000000000000004, "name": "τ"}
    write_parameters(tmp_path, "[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_parameters(tmp_path)


def test_flat_parameters_flattens_nested_choices() -> None:
    params = {"lr": 0.1, "rule": {"_name": "eprop", "feedback": "random",
                                  "inner": {"_name": "x", "k": 2}}, "sizes": {"a": 1}}
    assert st.flat_parameters(params) == {"lr": 0.1, "rule": "eprop", "feedback": "random",
                                          "inner": "x", "k": 2, "sizes": {"a": 1}}


def test_two_parameters_with_one_flat_name_are_named_not_overwritten() -> None:
    from spiketune.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        st.flat_parameters({"lr": 0.5, "rule": {"_name": "eprop", "lr": 5.5}})
    (problem,) = info.value.problems
    assert problem.field == "rule/eprop/lr" and "also that of lr" in problem.rule
    with pytest.raises(ConfigError, match="also that of rule"):
        st.flat_parameters({"rule": {"_name": "eprop", "rule": 5.4}})


def test_reports_from_a_thread_the_in_process_trial_started_are_refused(
    tmp_path: Path,
) -> None:
    """They used to be printed as if run by hand, and the trial failed without them."""
    from concurrent.futures import ThreadPoolExecutor

    from spiketune import Experiment, Outcome

    def trial(params: dict) -> float:
        with ThreadPoolExecutor(1) as pool:
            try:
                pool.submit(st.report_intermediate_result, 0.5).result()
            except Exception as e:  # handed back to the trial's own thread
                st.report_final_result({"default": 1.0, "error": str(e)})
        return 0.0

    results = Experiment(trial=trial, search_space={"x": {"_type": "choice", "_value": [1]}},
                         max_trials=1, experiment_dir=tmp_path).run()
    (record,) = results.records
    assert record.outcome == Outcome.COMPLETE, record.reason
    assert "not the trial's own" in record.metrics["error"]
    # by hand, with no in-process trial running, any thread may report
    with ThreadPoolExecutor(1) as pool:
        pool.submit(st.report_intermediate_result, 0.5).result()
