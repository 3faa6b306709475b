"""The ``nir-finetune`` template: ``spiketune init`` writes it, and ``main.py --smoke`` on the
real threshold-1 Braille pool builds the starting NIR graph (12 -> recurrent CubaLIF(40) -> 7),
runs two subprocess trials that map it with ``spiketune.nir.to_network`` and fine-tune it by
BPTT, retrains the chosen configuration with one seed and builds the report."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_braille_example import _load

import spiketune.nir
from spiketune import Outcome
from spiketune._init import TEMPLATES, init_project, template_files
from spiketune.data import load_braille_pool, split_parts
from spiketune.engine import chosen_trial, load_retrained
from spiketune.snn import RecurrentSNN, evaluate_checkpoint, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = "nir-finetune"
#: The shared threshold-1 pool: $SPIKETUNE_BRAILLE_TH1_DATA, else ../shared/data/braille_th1
#: beside the checkout (as tests/test_data_braille_pool.py finds it).
POOL_DIR = Path(os.environ.get("SPIKETUNE_BRAILLE_TH1_DATA")
                or REPO.parent / "shared" / "data" / "braille_th1")
POOL_FILE = POOL_DIR / "braille_reduced_th1_pool.pt" if POOL_DIR.is_dir() else POOL_DIR
NO_POOL = (f"the threshold-1 Braille pool is not at {POOL_FILE} (set "
           "$SPIKETUNE_BRAILLE_TH1_DATA, or put braille_reduced_th1_pool.pt in "
           "../shared/data/braille_th1 beside the checkout)")
FACTORS = ("tau_syn_factor", "tau_mem_factor", "tau_out_factor", "v_th_factor")


def test_template_files_and_search_space(tmp_path: Path) -> None:
    """The four-file pipeline plus the graph builder, registered under its name; the search
    space names the factors the trial applies, and nothing of a checkout leaks in."""
    assert TEMPLATES[TEMPLATE] == "nir_finetune"
    files = template_files(TEMPLATE)
    assert set(files) == {"main.py", "main_hpo.py", "setup_hpo.py", "train_hpo.py",
                          "make_graph.py", "config.toml", "search_space.json", "README.md"}
    for name, content in files.items():
        assert b"parents[" not in content and b"/shared/" not in content, name
    space = json.loads(files["search_space.json"])
    assert set(space) == {*FACTORS, "lr", "epochs"}
    init_project(tmp_path / "p", TEMPLATE)
    train_hpo = _load("train_hpo", tmp_path / "p")
    assert set(FACTORS) == set(train_hpo.FACTORS)


@pytest.mark.parametrize(("args", "message"), [
    (["--hidden", "0"], "--hidden 0: must be >= 1"),
    (["--dt", "-0.01"], "--dt -0.01: must be a number of seconds > 0"),
    (["--dt", "nan"], "--dt nan: must be a number of seconds > 0"),
    (["DIR"], "is a directory"),
    (["NOTES"], "exists and is not a NIR file"),
])
def test_make_graph_refuses_bad_values_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str,
) -> None:
    make_graph = _make_graph(tmp_path)
    (tmp_path / "DIR").mkdir()
    notes = tmp_path / "NOTES"
    notes.write_text("mine")
    where = {"DIR": str(tmp_path / "DIR"), "NOTES": str(notes)}
    argv = [where.get(a, a) for a in args]
    if argv[0].startswith("--"):
        argv = [str(tmp_path / "g.nir"), *argv]
    with pytest.raises(SystemExit) as info:
        make_graph.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert notes.read_text() == "mine" and not (tmp_path / "g.nir").exists()
    make_graph.main([str(tmp_path / "g.nir")])  # a new name: written, and again replaced
    make_graph.main([str(tmp_path / "g.nir"), "--hidden", "8"])
    assert spiketune.nir.to_network(tmp_path / "g.nir").config.n_rec == 8


def _make_graph(tmp_path: Path) -> Any:
    project = tmp_path / "project"
    init_project(project, TEMPLATE)
    return _load("make_graph", project)


@pytest.mark.slow
def test_smoke_run_fine_tunes_the_cuba_lif_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main.py --smoke``: both trials complete, each trains the CubaLIF network mapped from
    the graph with its factors applied, the chosen one is retrained and the report written."""
    if not POOL_FILE.is_file():
        pytest.skip(NO_POOL)
    project = tmp_path / "project"
    init_project(project, TEMPLATE)
    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "2")  # the launcher sets it; restored after
    main = _load("main", project)
    results = main.run(["--smoke", "--data", str(POOL_FILE), "--experiment-dir",
                        str(tmp_path / "experiments"), "--name", "nir_smoke", "-q"])

    graph = project / "braille_cuba.nir"
    assert graph.is_file()  # built by make_graph.py, given to every trial
    assert f"--graph {graph.resolve()}" in results.config["trial_command"]
    start = spiketune.nir.to_network(graph, rule="bptt").config
    assert (start.neuron, start.n_in, start.n_rec, start.n_out) == ("cuba_lif", 12, 40, 7)

    assert len(results.records) == 2
    test_part = split_parts(load_braille_pool(POOL_FILE), per_class=main.SMOKE["subset"]).test
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert rec.metrics["epoch"] == 1 and len(rec.intermediate) == 1
        checkpoint = load_checkpoint(rec.trial_dir / "best_model.pt")
        assert isinstance(checkpoint.network, RecurrentSNN)
        config = checkpoint.network.config
        assert (config.neuron, config.rule) == ("cuba_lif", "bptt")
        assert (config.n_in, config.n_rec, config.n_out) == (12, 40, 7)
        assert checkpoint.extra["graph"] == str(graph.resolve())
        p = rec.parameters
        assert config.tau_syn == pytest.approx(0.02 * p["tau_syn_factor"], rel=1e-6)
        assert config.tau_mem == pytest.approx(0.05 * p["tau_mem_factor"], rel=1e-6)
        assert config.tau_out == pytest.approx(0.05 * p["tau_out_factor"], rel=1e-6)
        assert config.v_th == pytest.approx(start.v_th * p["v_th_factor"], rel=1e-6)
        assert isinstance(rec.metrics["test"], float)
        # the checkpoint names its encoding, so `spiketune evaluate` rebins the pool's 5 ms
        # bins to the network's step and scores the trial's own test part as the trial did
        assert checkpoint.extra["data"]["bin_size"] == pytest.approx(config.dt)
        assert checkpoint.extra["split_digest"] == rec.metrics["split_digest"]
        score = evaluate_checkpoint(checkpoint, test_part)
        assert score.accuracy == pytest.approx(rec.metrics["test"])

    chosen = chosen_trial(results)
    retrained = load_retrained(results.directory)
    assert chosen is not None and retrained is not None
    assert (results.directory / "retrained.json").is_file()
    assert retrained.trial == chosen.number and retrained.parameters == chosen.parameters
    assert [r.seed for r in retrained.runs] == [0] and "test" in retrained.runs[0].metrics
    assert retrained.split_digest == chosen.metrics["split_digest"]
    assert (results.directory / "chosen" / "seed0" / "best_model.pt").is_file()
    assert (results.directory / "report" / "index.html").is_file()


def test_the_graph_and_the_data_are_read_before_the_search(tmp_path: Path) -> None:
    """A --graph that is no NIR file, or data that cannot be binned at the graph's step,
    stops the run with the reason before any experiment is made."""
    from spiketune import DataError, ExportError

    if not POOL_FILE.is_file():
        pytest.skip(NO_POOL)
    project = tmp_path / "project"
    init_project(project, TEMPLATE)
    main = _load("main", project)
    (project / "bad.nir").write_text("not HDF5")
    _make_graph(project).main([str(project / "g7.nir"), "--dt", "0.007"])
    root = tmp_path / "experiments"
    cases = ((["--graph", str(project / "bad.nir")], ExportError, "--graph: "),
             (["--graph", str(project / "g7.nir")], DataError, "graph's step 0.007 s"),
             (["--subset", "1"], DataError, "--data "))
    for argv, error, words in cases:
        with pytest.raises(error, match=words):
            main.run(["--smoke", "--data", str(POOL_FILE), "--experiment-dir", str(root),
                      *argv])
    assert not root.exists() or not any(root.iterdir())


def test_population_options_reach_the_trials_and_auto_is_refused(tmp_path: Path) -> None:
    """``--population K --refills R`` become the experiment's population and the trials'
    ``--refills`` (not the retraining's); ``auto`` (a probe of batched LIF/ALIF networks) is
    refused with the reason."""
    project = tmp_path / "p"
    init_project(project, TEMPLATE)
    main = _load("main", project)
    graph = project / "g.nir"
    graph.write_bytes(b"")  # only its path travels

    def experiment(*argv: str) -> tuple[Any, argparse.Namespace]:
        args = main.parse_args([*argv, "--experiment-dir", str(tmp_path / "e")])
        return main.experiment(args, graph), args

    exp, args = experiment("--population", "2", "--refills", "3", "--concurrency", "1")
    assert exp.config.population == 2 and exp.config.concurrency == 1
    assert "--refills 3" in exp.config.trial_command
    assert not exp.config.population_group  # members are drawn as independent trials
    retrain = main._with_trial_options(["python", "main_hpo.py"], args, graph, population=False)
    assert "--refills" not in retrain
    with pytest.raises(SystemExit):  # refills without a population would do nothing
        experiment("--refills", "3")
    with pytest.raises(SystemExit, match="--population auto: not for this template"):
        experiment("--population", "auto")


@pytest.mark.slow
def test_population_mode_fine_tunes_each_trial_as_alone_in_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--population 1 --refills 1``: one process fine-tunes two trials one after the other
    (the graph and the data read once), each recorded as its own complete trial with its
    checkpoint; the second one's result equals its parameters fine-tuned alone by
    ``main_hpo.py``."""
    import subprocess
    import sys

    if not POOL_FILE.is_file():
        pytest.skip(NO_POOL)
    project = tmp_path / "project"
    init_project(project, TEMPLATE)
    monkeypatch.setenv("SPIKETUNE_CONCURRENCY", "1")  # the launcher sets it; restored after
    monkeypatch.setenv("SPIKETUNE_TRIAL_THREADS", "1")  # as the trial alone below sums
    main = _load("main", project)
    results = main.run(["--smoke", "--data", str(POOL_FILE), "--experiment-dir",
                        str(tmp_path / "experiments"), "--name", "nir_population", "-q",
                        "--population", "1", "--refills", "1", "--concurrency", "1",
                        "--retrain-seeds", "--no-report"])
    assert results.directory is not None
    (population,) = (results.directory / "populations").iterdir()
    log = (population / "stdout.log").read_text()
    assert "population of 1 trial(s) (0)" in log and "trial 1 joined the population" in log
    assert "1 refill(s) per place, 1 thread(s)" in log
    assert len(results.records) == 2
    for rec in results.records:
        assert rec.outcome is Outcome.COMPLETE, rec.reason
        assert rec.metrics["epoch"] == 1 and len(rec.intermediate) == 1
        checkpoint = load_checkpoint(rec.trial_dir / "best_model.pt")
        assert checkpoint.network.config.neuron == "cuba_lif"
        result = json.loads((rec.trial_dir / "result.json").read_text(encoding="utf-8"))
        assert result["parameters"] == {**result["parameters"], **rec.parameters}

    rec = results.records[-1]
    params = tmp_path / "params.json"
    params.write_text(json.dumps(rec.parameters), encoding="utf-8")
    alone = subprocess.run(
        [sys.executable, "main_hpo.py", "--params", str(params), "--data", str(POOL_FILE),
         "--graph", str(project / "braille_cuba.nir"), "--subset", "10", "--epochs-cap", "1",
         "--threads", "1", "--out", str(tmp_path / "alone")],
        cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=300,
    )
    assert alone.returncode == 0, alone.stderr
    final = json.loads((tmp_path / "alone" / "result.json").read_text(encoding="utf-8"))
    for key in ("default", "test", "epoch"):
        assert final[key] == pytest.approx(rec.metrics[key], abs=1e-6), key
