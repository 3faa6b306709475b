"""Population training of several trials (``spiketune.snn.train_population``, as the Braille
template's population mode uses it): members join a running population, and each member's
result is given as soon as its own training is over."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch
from test_braille_example import EXAMPLE, _load

import spiketune.snn._folds as folds_module
from spiketune.data import Dataset, DatasetInfo
from spiketune.snn import History, train_folds, train_population

INFO = DatasetInfo(name="tiny", classes=("a", "b", "c"), n_inputs=6, n_steps=12, dt=0.02)


def _data(n: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = (torch.rand(n, INFO.n_steps, INFO.n_inputs, generator=g) < 0.2).float()
    x[torch.arange(n), :, labels * 2] = 1.0  # each class drives its own channel
    return Dataset(INFO, x, labels)


FOLDS = [(_data(24, 0), _data(12, 1))]


@pytest.fixture(scope="module")
def train_hpo() -> ModuleType:
    return _load("train_hpo")


def _member(train_hpo: ModuleType, **params: object) -> list:
    base = {"n_rec": 16, "batch_size": 8, "rule": {"_name": "bptt"}, "lr": 0.01,
            "tau_mem": 0.1, "tau_out": 0.1, "epochs": 4}
    torch.manual_seed(0)
    return [train_hpo.build({**base, **params}, INFO, device=torch.device("cpu"))]


def _weights(built: list) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in built[0][0].state_dict().items()}


def test_a_joined_member_trains_as_alone_and_each_result_comes_when_its_training_ends(
    train_hpo: ModuleType,
) -> None:
    a = _member(train_hpo, epochs=2, seed=1)
    b = _member(train_hpo, epochs=5, seed=2)
    c = _member(train_hpo, epochs=3, seed=3, lr=0.02, tau_mem=0.05)
    alone = _member(train_hpo, epochs=3, seed=3, lr=0.02, tau_mem=0.05)
    _, (alone_history,) = train_folds(alone, FOLDS)

    rounds = 0
    done: dict[int, tuple[int, list[History]]] = {}
    asked: list[bool] = []

    def on_epoch(m: int, epoch: int, latest: list) -> bool:
        assert latest[0].epoch == epoch  # each member counts its own epochs
        return False

    def join(idle: bool) -> list:
        nonlocal rounds
        rounds += 1
        asked.append(idle)
        return [(c, FOLDS, "same data")] if rounds == 1 else []

    def on_done(m: int, histories: list[History]) -> None:
        assert m not in done
        done[m] = (rounds, histories)

    histories = train_population([a, b], [FOLDS, FOLDS], ["same data"] * 2,
                                 on_epoch, join=join, on_done=on_done)
    assert [len(h[0].epochs) for h in histories] == [2, 5, 3]
    # a ends after its 2nd epoch, c (joined after round 1) after its 3rd, b after its 5th;
    # each is told as soon as it has left its population, not when the last one has
    assert done[0][0] < done[2][0] < done[1][0]
    assert [e.epoch for e in done[2][1][0].epochs] == [1, 2, 3]
    assert [e.val_acc for e in histories[2][0].epochs] == pytest.approx(
        [e.val_acc for e in alone_history.epochs], abs=1e-6)
    for key, w in _weights(c).items():  # ends with its best weights, as alone
        torch.testing.assert_close(w, _weights(alone)[key], atol=1e-4, rtol=1e-4)
    assert asked[-1]  # asked once more with no member training, before it ends


def test_a_member_of_another_shape_joins_as_a_population_of_its_own(
    train_hpo: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    real = folds_module.PopulationTrainer

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, members: list, **kwargs: object) -> None:
            made.append(len(members))
            super().__init__(members, **kwargs)

    monkeypatch.setattr(folds_module, "PopulationTrainer", Counting)
    a = _member(train_hpo, epochs=3, seed=1)
    same = _member(train_hpo, epochs=2, seed=2)
    wider = _member(train_hpo, epochs=2, seed=3, n_rec=24)
    joins = iter([[(same, FOLDS, "d"), (wider, FOLDS, "d")]])
    histories = train_population([a], [FOLDS], ["d"], join=lambda idle: next(joins, []))
    assert made == [1, 1]  # ``same`` joined a's trainer; ``wider`` needed its own
    assert [len(h[0].epochs) for h in histories] == [3, 2, 2]


def test_refills_reach_the_trials_only_in_population_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))  # main_hpo imports its neighbours
    main = _load("main")
    main_hpo = _load("main_hpo")
    assert main_hpo.parse_args([]).refills == main_hpo.REFILLS == 0
    assert main_hpo.parse_args(["--refills", "2"]).refills == 2

    def command(*argv: str) -> str:
        args = main.parse_args([*argv, "--experiment-dir", str(tmp_path), "--gpus", "none"])
        return main.experiment(args).config.trial_command

    assert "--refills 0" in command("--population", "4", "--refills", "0")
    assert "--refills" not in command("--population", "4")  # the trial's own default
    with pytest.raises(SystemExit):  # one trial per process: refills would do nothing
        command("--refills", "2")
    for bad in ("-1", "x"):
        with pytest.raises(SystemExit):  # argparse's usage error
            main.parse_args(["--population", "4", "--refills", bad])


def test_the_benchmark_runs_each_population_mode_with_each_refill_setting_and_auto() -> None:
    from _benchmarks import load_benchmark

    bench = load_benchmark("population_search")
    plain = {m["name"]: m for m in bench.modes([4, 8])}
    assert list(plain) == ["process c1 t2", "process c2 t1", "population 4 c2 t1",
                           "population 8 c2 t1", "population 8 c1 t2", "population auto",
                           "population auto shapes"]
    assert plain["population 8 c1 t2"]["refills"] is None  # the template's default
    # auto: the template's probe sets K, sizes by shape, processes and threads
    assert plain["population auto"]["population"] == "auto"
    assert plain["population auto"]["concurrency"] is None
    assert plain["population auto shapes"]["shape_sizes"]
    both = {m["name"]: m for m in bench.modes([8], [1, 0])}
    assert both["population 8 c2 t1 r0"]["refills"] == 0
    assert both["population 8 c2 t1 r1"]["refills"] == 1
    assert len(both) == 2 + 2 * 2 + 2
    # the spike-pattern template's launcher has neither refills nor sizes by shape
    patterns = [m["name"] for m in bench.template_modes("spike_patterns", [8], [1, 0])]
    assert patterns == ["process c1 t2", "process c2 t1", "population auto"]
    assert [m["name"] for m in bench.template_modes("spike_patterns", [8])] == [
        "process c1 t2", "process c2 t1", "population 8 c2 t1", "population 8 c1 t2",
        "population auto"]
    # the L²MU template's: refills, no probe (its members train alone in their process)
    l2mu = [m["name"] for m in bench.template_modes("braille_l2mu", [1, 2], [8])]
    assert l2mu == ["process c1 t2", "process c2 t1", "population 1 c2 t1 r8",
                    "population 2 c2 t1 r8", "population 2 c1 t2 r8"]


def test_the_benchmark_can_fix_keys_of_the_search_space() -> None:
    from _benchmarks import load_benchmark

    bench = load_benchmark("population_search")
    space = {"n_rec": {"_type": "choice", "_value": [128, 256]},
             "rule": {"_type": "choice", "_value": [{"_name": "eprop"}, {"_name": "bptt"}]},
             "lr": {"_type": "loguniform", "_value": [1e-3, 1e-2]}}
    fixed = bench.fixed_space(space, ["n_rec=256", 'rule={"_name": "bptt"}'])
    assert fixed["n_rec"] == {"_type": "choice", "_value": [256]}
    assert fixed["rule"] == {"_type": "choice", "_value": [{"_name": "bptt"}]}
    assert fixed["lr"] == space["lr"] and space["n_rec"]["_value"] == [128, 256]
    for bad in (["n_units=3"], ["n_rec"]):
        with pytest.raises(SystemExit, match="KEY=JSON"):
            bench.fixed_space(space, bad)


def test_the_benchmark_counts_the_network_shapes_its_tuner_drew() -> None:
    from _benchmarks import load_benchmark

    bench = load_benchmark("population_search")
    bptt = {"n_rec": 256, "rule": {"_name": "bptt"}, "batch_size": 16, "bin_size": 0.02}
    eprop = {"n_rec": 512, "rule": {"_name": "eprop", "feedback": "random"},
             "batch_size": 8, "bin_size": 0.01}
    assert bench.shape_of(bptt) == "256 bptt b16 20ms"
    assert bench.shape_of(eprop) == "512 eprop b8 10ms"
    l2mu = {"model": {"_name": "l2mu", "hidden_size": 120, "order": 7, "memory_size": 32},
            "batch_size": 16, "bin_size": 0.005}
    rsnn = {"model": {"_name": "rsnn", "n_rec": 64, "rule": "bptt"}, "batch_size": 8}
    assert bench.shape_of(l2mu) == "120 l2mu/7x32 b16 5ms"  # hidden, order x memory
    assert bench.shape_of(rsnn) == "64 bptt b8 ?"
    assert bench.shape_of({}) == "? ? b? ?"  # a space without these keys still prints
    counts = bench.shape_counts([eprop, bptt, bptt, {**bptt, "lr": 0.01}])
    assert list(counts.items()) == [("256 bptt b16 20ms", 3), ("512 eprop b8 10ms", 1)]


def test_a_trial_s_seed_option_seeds_each_member_of_a_population(tmp_path: Path) -> None:
    """``main_hpo.py --seed K`` (a retraining seed) trains every member with seed K, as it
    trains a trial alone: the two modes give the same network for the same parameters."""
    import json
    import sys

    from torch.utils.data import TensorDataset

    from spiketune import Experiment, Outcome
    from spiketune.snn import load_checkpoint

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(7).repeat_interleave(6)
    inputs = (torch.rand(len(labels), 256, 12, generator=g) < 0.05).float()
    pool = tmp_path / "braille_reduced_th1_pool.pt"
    torch.save(TensorDataset(inputs, labels), pool)
    space = {"n_rec": {"_type": "choice", "_value": [8]},
             "bin_size": {"_type": "choice", "_value": [0.04]},
             "rule": {"_type": "choice", "_value": [
                 {"_name": "eprop", "feedback": {"_type": "choice",
                                                 "_value": ["random", "symmetric"]}}]}}
    command = (f"{sys.executable} main_hpo.py --folds 1 --seed 5 --epochs-cap 1 --threads 1 "
               f"--data {pool}")
    networks = {}
    for population in (2, 1):
        results = Experiment(
            name=f"seeded{population}", trial_command=command, trial_code_directory=EXAMPLE,
            search_space=space, tuner="GridSearch", max_trials=2, concurrency=1,
            population=population, experiment_dir=tmp_path / "exps",
        ).run()
        assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 2
        for rec in results.records:
            checkpoint = load_checkpoint(rec.trial_dir / "best_model.pt")
            assert checkpoint.train_config.seed == 5
            result = json.loads((rec.trial_dir / "result.json").read_text())
            assert result["parameters"]["seed"] == 5
            networks.setdefault(json.dumps(rec.parameters, sort_keys=True), []).append(
                checkpoint.network.w_rec.detach())
    assert len(networks) == 2
    for pair in networks.values():  # float32: the same up to the order of summation
        torch.testing.assert_close(pair[0], pair[1], rtol=0, atol=1e-4)

