"""The Xylo Audio 2 example (examples/braille_xylo) on the threshold-1 pool: a trial's result
and its Rockpool file agree, the data options fail clearly, and the launcher runs the search,
retrains the chosen trial and draws the Pareto front."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from spiketune import DataError

REPO = Path(__file__).resolve().parents[1]
XYLO = REPO / "examples" / "braille_xylo"
#: The threshold-1 pool: $SPIKETUNE_BRAILLE_TH1_DATA, else the shared data beside the checkout.
POOL = Path(os.environ.get("SPIKETUNE_BRAILLE_TH1_DATA")
            or REPO.parent / "shared" / "data" / "braille_th1")
POOL_FILE = POOL if POOL.suffix == ".pt" else POOL / "braille_reduced_th1_pool.pt"
NO_POOL = (f"the threshold-1 Braille pool is not at {POOL_FILE} (set "
           "$SPIKETUNE_BRAILLE_TH1_DATA, or put it in ../shared/data/braille_th1 beside the "
           "checkout)")

#: What every final result of the trial holds (the figures the README and main.py quote).
FINAL_KEYS = {
    "default", "test", "val_acc", "test_acc", "quant_val_acc", "quant_test_acc",
    "rockpool_val_acc", "rockpool_test_acc", "rockpool_val_agreement",
    "rockpool_test_agreement", "synops_per_sample", "max_fan_out", "feasible", "constraints",
    "split_digest", "epoch", "epochs_run",
}


def _load(name: str) -> ModuleType:
    """``examples/braille_xylo/<name>.py`` as a module of its own (the example is no package);
    its directory goes on ``sys.path`` for the duration, as when run from there."""
    spec = importlib.util.spec_from_file_location(f"braille_xylo_{name}", XYLO / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    """This process's environment without any trial's or experiment's variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SPIKETUNE_TRIAL", "SPIKETUNE_EXPERIMENT_", "NNI_"))}
    env.pop("SPIKETUNE_BRAILLE_TH1_DATA", None)
    return env


def test_missing_data_names_every_way_to_give_it(tmp_path: Path) -> None:
    trial = _load("main_hpo")
    with pytest.raises(DataError) as err:
        trial.load_native(tmp_path / "nowhere" / "braille_reduced_th1_pool.pt")
    message = str(err.value)
    assert "--data PATH" in message and trial.DATA_ENV in message and "cache" in message


def test_parameters_that_contradict_the_chip_are_refused() -> None:
    from spiketune import ConfigError
    from spiketune.data import Dataset, DatasetInfo

    trial = _load("main_hpo")
    import torch

    info = DatasetInfo(name="x", classes=tuple("abcdefg"), n_inputs=12, n_steps=4, dt=0.01)
    data = Dataset(info, torch.zeros(7, 4, 12), torch.arange(7))
    net, _ = trial.build(trial.DEFAULT_PARAMS, data)
    c = net.config
    assert (c.neuron, c.reset, c.max_spikes, c.rule) == ("cuba_lif", "subtract_at_spike", None,
                                                         "bptt")
    assert c.refractory_steps == 0 and not c.readout_bias
    for clash in ({"reset": "zero"}, {"rule": {"_name": "eprop", "feedback": "random"}},
                  {"neuron": "lif"}):
        with pytest.raises(ConfigError, match=next(iter(clash))):
            trial.build({**trial.DEFAULT_PARAMS, **clash}, data)


@pytest.mark.slow
def test_trial_reports_the_accuracy_of_its_rockpool_file(tmp_path: Path) -> None:
    """A smoke trial on the real pool, run by hand as spiketune.engine.retrain runs it; the
    Rockpool file it keeps, scored again here and by check_nir.py, gives its reported figures."""
    if not POOL_FILE.is_file():
        pytest.skip(NO_POOL)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"n_rec": 24, "bin_size": 0.02}))
    out = tmp_path / "trial"
    run = subprocess.run(
        [sys.executable, "main_hpo.py", "--data", str(POOL), "--epochs-cap", "1", "--subset",
         "10", "--params", str(params), "--seed", "1", "--out", str(out), "--threads", "1"],
        cwd=XYLO, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads((out / "result.json").read_text())
    assert set(result) >= FINAL_KEYS
    assert result["default"] == result["rockpool_val_acc"]
    assert result["test"] == result["rockpool_test_acc"]
    assert result["parameters"]["seed"] == 1 and result["parameters"]["n_rec"] == 24
    assert result["feasible"] == float(all(c <= 0 for c in result["constraints"]))
    # trained with the chip's neuron, the exported file is the 8-bit network itself
    assert result["rockpool_val_agreement"] == result["rockpool_test_agreement"] == 1.0
    assert result["rockpool_test_acc"] == pytest.approx(result["quant_test_acc"])

    import spiketune.nir
    from spiketune.snn import load_checkpoint

    trial = _load("main_hpo")
    checkpoint = load_checkpoint(out / "best_model.pt")
    data = trial.load_data(checkpoint.extra["data"], POOL, per_class=10)
    assert data.split_digest == result["split_digest"] == checkpoint.extra["split_digest"]
    graph = spiketune.nir.read(out / "rockpool.nir")
    assert graph.metadata["target"] == "rockpool" and graph.metadata["approximations"] == "none"
    check = spiketune.nir.check_export(checkpoint.network, graph, data.test)
    assert check.export_accuracy == pytest.approx(result["rockpool_test_acc"])
    assert check.model_accuracy == pytest.approx(result["quant_test_acc"])

    experiment = tmp_path / "experiment"
    (experiment / "best_model").mkdir(parents=True)
    (experiment / "experiment.json").write_text("{}")
    (experiment / "best_model" / "best_model.pt").write_bytes((out / "best_model.pt").read_bytes())
    printed = subprocess.run(
        [sys.executable, "check_nir.py", str(out / "rockpool.nir"), str(experiment), "--data",
         str(POOL)], cwd=XYLO, env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert printed.returncode == 0, printed.stderr
    assert f"exported --for rockpool {result['rockpool_test_acc']:.4f}" in printed.stdout


@pytest.mark.slow
def test_launcher_searches_retrains_and_draws_the_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main.py --smoke: 2 trials of 1 epoch on a subset (the trial's defaults first), the
    chosen one retrained with one seed, its Rockpool test accuracy and the split digest
    printed, the Pareto front drawn."""
    if not POOL_FILE.is_file():
        pytest.skip(NO_POOL)
    for key in [k for k in os.environ
                if k.startswith(("SPIKETUNE_TRIAL", "SPIKETUNE_EXPERIMENT_", "NNI_"))]:
        monkeypatch.delenv(key)
    launcher = _load("main")
    outcome = launcher.run(["--smoke", "--data", str(POOL), "--experiment-dir", str(tmp_path),
                            "--name", "xylo_smoke", "-q"])
    assert outcome["trial"] is not None, outcome
    directory = Path(outcome["experiment"])
    # the first trial ran the trial's own defaults (start_with), which fit after one epoch
    first = json.loads((directory / "trials" / "0" / "parameter.json").read_text())
    defaults = _load("main_hpo").DEFAULT_PARAMS
    assert first == {key: defaults[key] for key in first} and len(first) >= 10
    retrained = json.loads((directory / "retrained.json").read_text())
    assert retrained["metric"] == "rockpool_test_acc"
    assert [r["seed"] for r in retrained["runs"]] == [0]
    seed0 = json.loads((directory / "chosen" / "seed0" / "result.json").read_text())
    assert outcome["runs"] == [pytest.approx(seed0["rockpool_test_acc"])]
    assert outcome["split_digest"] == seed0["split_digest"]
    printed = capsys.readouterr().out
    assert "(one seed: no spread to give; 8-bit in spiketune" in printed and "± 0" not in printed
    assert outcome["pareto_front"] is not None and Path(outcome["pareto_front"]).is_file()
    # the finalists were scored again on re-splits 1 and 2, and the chosen one is theirs
    finalists = json.loads((directory / "finalists" / "finalists.json").read_text())
    assert [len(row["runs"]) for row in finalists] == [3] * len(finalists)
    assert outcome["trial"] in [row["trial"] for row in finalists]
    best = max(row["mean"] for row in finalists)
    assert [row["mean"] for row in finalists if row["trial"] == outcome["trial"]] == [best]

    # choosing again from the finished search runs no new trial
    again = launcher.run(["--experiment", str(directory), "--data", str(POOL), "--subset", "10",
                          "--epochs-cap", "1", "--finalists", "0", "--retrain-seeds"])
    assert again["experiment"] == str(directory) and "finalists" not in again
    assert len(list((directory / "trials").iterdir())) == 2


def test_no_finalist_to_score_is_an_empty_list_on_record(tmp_path: Path) -> None:
    """A search in which no trial fits the chip has no finalists: the launcher records none
    (and goes on to say there is nothing to retrain) instead of failing on the missing
    folder."""
    launcher = _load("main")
    results = SimpleNamespace(directory=str(tmp_path / "exp"))
    args = launcher.parse_args(["--smoke"])
    assert launcher.score_finalists(results, [], args, 1) == []
    assert json.loads((tmp_path / "exp" / "finalists" / "finalists.json").read_text()) == []


def test_a_fold_is_another_validation_part_around_the_same_test_part() -> None:
    if not POOL_FILE.is_file():
        pytest.skip(NO_POOL)
    trial = _load("main_hpo")
    options = {"bin_size": 0.02, "clip": True}
    fixed, fold = (trial.load_data(options, POOL, fold=k) for k in (0, 1))
    assert fixed.split_digest.startswith("51c1adac36a0")  # the fixed split of every example
    assert fold.split_digest != fixed.split_digest
    assert (fold.test.inputs == fixed.test.inputs).all() and len(fold.val) == len(fixed.val)
    def samples(part: object) -> set[bytes]:
        return {x.numpy().tobytes() for x in part.inputs}  # type: ignore[attr-defined]

    assert not samples(fold.val) & samples(fixed.val)  # disjoint validation parts
    assert samples(fold.train) >= samples(fixed.val)  # the search's validation now trains
