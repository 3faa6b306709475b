"""A trial's runtime (spiketune.trial: trial_threads, trial_device, seed_everything): the share
of the cores a trial takes, the device it trains on, and seeds that repeat a run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import spiketune.trial as st


@pytest.fixture(autouse=True)
def _no_experiment(monkeypatch: pytest.MonkeyPatch):
    """By hand: no variable of an experiment set, a machine of 8 cores."""
    for var in (st.ENV_TRIAL_THREADS, st.ENV_CONCURRENCY, st.ENV_EXPERIMENT_DIR, st.ENV_TRIAL_DIR,
                st.ENV_PARAMETERS, st.ENV_PARAMETER_FILE):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "argv", ["trial.py"])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    st._reset()
    yield
    st._reset()


def test_by_hand_a_trial_takes_every_core() -> None:
    assert st.trial_threads() == 8


@pytest.mark.parametrize(("concurrency", "threads"), [("1", 8), ("3", 2), ("8", 1), ("1000", 1)])
def test_the_cores_are_divided_by_the_concurrency(
    monkeypatch: pytest.MonkeyPatch, concurrency: str, threads: int
) -> None:
    monkeypatch.setenv(st.ENV_CONCURRENCY, concurrency)
    assert st.trial_threads() == threads  # at least 1 when trials outnumber the cores


def test_the_threads_variable_wins_over_the_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(st.ENV_CONCURRENCY, "4")
    monkeypatch.setenv(st.ENV_TRIAL_THREADS, "3")
    assert st.trial_threads() == 3
    monkeypatch.setenv(st.ENV_TRIAL_THREADS, "0")
    assert st.trial_threads() == 1


def test_a_variable_that_is_no_count_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from spiketune.errors import ConfigError

    for name in (st.ENV_TRIAL_THREADS, st.ENV_CONCURRENCY):
        monkeypatch.delenv(st.ENV_TRIAL_THREADS, raising=False)
        monkeypatch.setenv(name, "auto")
        with pytest.raises(ConfigError) as info:
            st.trial_threads()
        assert info.value.problems[0].field == f"${name}"
        monkeypatch.delenv(name)


def test_an_explicit_count_wins_over_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(st.ENV_CONCURRENCY, "4")
    monkeypatch.setenv(st.ENV_TRIAL_THREADS, "3")
    assert st.trial_threads(5) == 5
    assert st.trial_threads(0) == 1


def test_the_concurrency_is_read_from_the_experiment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Launched by ``spiketune run`` (no launcher sets the variable): the experiment's
    ``experiment.json`` says how many trials share the machine; one that cannot be read
    counts as 1."""
    monkeypatch.setenv(st.ENV_EXPERIMENT_DIR, str(tmp_path))
    (tmp_path / "experiment.json").write_text(json.dumps({"config": {"concurrency": 4}}))
    assert st.trial_threads() == 2
    monkeypatch.setenv(st.ENV_CONCURRENCY, "2")  # the variable comes first
    assert st.trial_threads() == 4
    monkeypatch.delenv(st.ENV_CONCURRENCY)
    (tmp_path / "experiment.json").write_text("{not json")
    assert st.trial_threads() == 8
    (tmp_path / "experiment.json").unlink()
    assert st.trial_threads() == 8


def test_an_empty_cuda_visible_devices_means_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", " ")  # the engine's "no GPU for this trial"
    assert st.trial_device() == torch.device("cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # the trial's GPU, seen as cuda:0
    assert st.trial_device() == torch.device("cuda")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # by hand: any visible GPU
    assert st.trial_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert st.trial_device() == torch.device("cpu")


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_repeats_every_generator() -> None:
    st.seed_everything(7)
    first = _draws()
    st.seed_everything(7)
    assert _draws() == first
    st.seed_everything(8)
    assert all(a != b for a, b in zip(_draws(), first, strict=True))
    st.seed_everything(2**32 + 7)  # NumPy takes seeds below 2**32 only: it gets 7
    assert float(np.random.rand()) == first[1]


def test_threads_cost_a_trial_no_torch() -> None:
    """``import spiketune.trial`` and sizing the threads import neither torch nor NumPy: a
    trial decides its threads before it imports them."""
    code = (
        "import sys, spiketune.trial as st\n"
        "st.trial_threads(), st.ENV_CONCURRENCY\n"
        "print([m for m in ('torch', 'numpy') if m in sys.modules])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKETUNE_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, env=env)
    assert out.stdout.strip() == "[]"


_EXIT_PROBE = """
import atexit, gc, sys
import spiketune.trial as st
# registered first, so it runs last: it sees what the other exit handlers left
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
{body}
"""


@pytest.mark.parametrize(("body", "frozen"), [
    ("st.report_final_result(0.5)", True),
    ("st.report_intermediate_result(0.5)", False),  # no result yet: a plain exit
    ("st.population()[0].report_final_result(0.5)", True),  # by hand: one member
    ("from spiketune.trial import _protocol\n_protocol.host_in_process_trials()\n"
     "st.report_final_result(0.5)", False),  # the process of in-process trials is not theirs
])
def test_a_trial_process_with_its_result_skips_the_last_collections(
    body: str, frozen: bool
) -> None:
    """Once a trial process has its final result, its exit leaves its objects to the end of
    the process instead of collecting them (with torch imported, about a second of CPU)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKETUNE_")}
    out = subprocess.run([sys.executable, "-c", _EXIT_PROBE.format(body=body)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert f"frozen at exit: {frozen}" in out.stdout, out.stdout
