"""Pretraining on the Braille archive's other letters: the data (only letters the task leaves
out, in the task's encoding), the weights carried over (input and recurrent, never the
readout) and the Braille template's ``pretrain_epochs``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _benchmarks import write_tiny_event_file, write_tiny_pool
from test_braille_example import EXAMPLE, _load

from spiketune import ConfigError, DataError
from spiketune.data import (
    BRAILLE_LETTERS,
    BRAILLE_REDUCED_LETTERS,
    BRAILLE_TASK_DEFAULTS,
    load_braille,
    load_braille_encoding,
    load_braille_other_letters,
)
from spiketune.snn import (
    L2MU,
    LMU,
    RecurrentSNN,
    SNNConfig,
    load_checkpoint,
    transfer_weights,
)

#: The letters the reduced task leaves out, in the archive's order.
OTHERS = tuple(letter for letter in BRAILLE_LETTERS if letter not in BRAILLE_REDUCED_LETTERS)


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return write_tiny_event_file(tmp_path / "data_braille_letters_th10", BRAILLE_LETTERS,
                                 per_letter=10)


def test_other_letters_are_the_ones_the_task_leaves_out_in_its_encoding(events: Path) -> None:
    options = dict(BRAILLE_TASK_DEFAULTS)  # threshold 10, ON/OFF split, 20 ms counts, reduced
    other = load_braille_other_letters(options, events)
    task = load_braille_encoding(options, events)
    assert other.info.classes == OTHERS and len(OTHERS) == 20
    assert len(other) == 200 and set(other.labels.tolist()) == set(range(20))
    # The same channels and steps as the task's data, so that weights carry over.
    assert other.inputs.shape[1:] == task.inputs.shape[1:] == (68, 24)
    alone = load_braille(events, threshold=10, letters=OTHERS, bin_size=0.02,
                         channels="split", clip=False, progress=False)
    assert torch.equal(other.inputs, alone.inputs) and torch.equal(other.labels, alone.labels)
    # A custom task leaves out every other letter of the archive.
    custom = load_braille_other_letters({**options, "letters": ("A", "B")}, events)
    assert custom.info.classes == tuple(x for x in BRAILLE_LETTERS if x not in ("A", "B"))


def test_other_letters_of_the_threshold_1_encoding_have_the_task_s_steps(tmp_path: Path) -> None:
    path = write_tiny_event_file(tmp_path / "data_braille_letters_th1", BRAILLE_LETTERS,
                                 per_letter=2)
    options = {**BRAILLE_TASK_DEFAULTS, "threshold": 1, "channels": "merged", "clip": True}
    other = load_braille_other_letters(options, path)
    task = load_braille_encoding(options, path)
    assert other.info.classes == OTHERS
    assert other.inputs.shape[1:] == task.inputs.shape[1:] == (64, 12)  # 1.28 s of 20 ms
    assert set(other.inputs.unique().tolist()) <= {0.0, 1.0}


def test_other_letters_need_an_event_file_and_a_letter_left_out(
    tmp_path: Path, events: Path
) -> None:
    pool = write_tiny_pool(tmp_path / "braille_reduced_th1_pool.pt")
    options = {**BRAILLE_TASK_DEFAULTS, "threshold": 1, "channels": "merged", "clip": True}
    with pytest.raises(DataError, match="holds only the task's letters"):
        load_braille_other_letters(options, pool)
    with pytest.raises(DataError, match="letters='full' leaves no other letter"):
        load_braille_other_letters({**BRAILLE_TASK_DEFAULTS, "letters": "full"}, events)


def _net(n_out: int, n_rec: int = 8, seed: int = 0) -> RecurrentSNN:
    return RecurrentSNN(SNNConfig(n_in=4, n_rec=n_rec, n_out=n_out), seed=seed)


def test_other_letters_at_another_threshold_have_the_pool_task_s_shape(events: Path) -> None:
    """The threshold-1 pool task pretrained on the threshold-10 file: its other letters at
    threshold 10, made the pool's way (nearest 5 ms bins over 1.28 s, OR-merged, rebinned);
    never read as threshold 1."""
    pool_task = {"threshold": 1, "channels": "merged", "letters": "reduced", "bin_size": 0.02,
                 "clip": True}
    other = load_braille_other_letters(pool_task, events, threshold=10)
    assert other.info.classes == OTHERS and other.inputs.shape[1:] == (64, 12)  # 1.28 s / 20 ms
    fine = load_braille(events, preset="nir", threshold=10, letters=OTHERS, progress=False)
    assert fine.dt == 0.005 and fine.n_steps == 256
    pooled = fine.rebin(0.02, clip=True)
    assert torch.equal(other.inputs, pooled.inputs) and torch.equal(other.labels, pooled.labels)
    # the 20 ms bins of the pool start 2.5 ms before floor bins of 20 ms would
    floor = load_braille(events, threshold=10, letters=OTHERS, bin_size=0.02, window=1.28,
                         channels="merged", clip=True, progress=False)
    assert not torch.equal(other.inputs, floor.inputs)
    with pytest.raises(DataError, match="its name says sigma-delta threshold 10"):
        load_braille_other_letters(pool_task, events)  # the task's threshold: the name refuses
    # An event-file task keeps its own window at another threshold too.
    split_task = dict(BRAILLE_TASK_DEFAULTS)  # threshold 10: 68 steps of 20 ms (1.35 s)
    th2 = write_tiny_event_file(events.parent / "data_braille_letters_th2", BRAILLE_LETTERS,
                                per_letter=2)
    assert load_braille_other_letters(split_task, th2, threshold=2).inputs.shape[1:] == (68, 24)
    # Bins that do not divide 1.28 s: as many as rebinning the pool keeps (it drops a last
    # partial bin), so that the weights still carry over
    for bin_size, steps in ((0.035, 36), (0.03, 42)):
        odd = load_braille_other_letters({**pool_task, "bin_size": bin_size}, events,
                                         threshold=10)
        assert odd.inputs.shape[1] == steps == 256 // round(bin_size / 0.005)


def test_transfer_weights_carries_input_and_recurrent_weights_not_the_readout() -> None:
    source, target = _net(20, seed=1), _net(7, seed=2)
    readout = target.w_out.detach().clone()
    assert not torch.equal(source.w_rec, target.w_rec)
    assert transfer_weights(source, target) == ("w_in", "w_rec")
    assert torch.equal(target.w_in, source.w_in) and torch.equal(target.w_rec, source.w_rec)
    assert torch.equal(target.w_out, readout)
    # The copy is a copy: training the target leaves the source as it was.
    with torch.no_grad():
        target.w_rec.add_(1.0)
    assert not torch.equal(target.w_rec, source.w_rec)


def test_transfer_weights_refuses_other_shapes_and_leaves_the_target_alone() -> None:
    source, target = _net(20, n_rec=6), _net(7)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ConfigError, match=r"transfer\.w_in.*\(8, 4\).*got \(6, 4\)"):
        transfer_weights(source, target)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    with pytest.raises(ConfigError, match=r"source:.*RecurrentSNN.*\(got 'Linear'\)"):
        transfer_weights(torch.nn.Linear(2, 2), target)


def test_transfer_weights_refuses_another_model_class_and_what_is_no_network() -> None:
    """An L2MU and an LMU share six matrices by name and shape, not by meaning."""
    lmu = LMU(3, 2, order=2, theta=0.1, dt=0.01, hidden_size=4)
    l2mu = L2MU(3, 2, order=2, theta=0.1, dt=0.01, hidden_size=4, seed=1)
    before = {k: v.clone() for k, v in lmu.state_dict().items()}
    with pytest.raises(ConfigError, match=r"source:.*class, LMU.*\(got 'L2MU'\)"):
        transfer_weights(l2mu, lmu)
    assert all(torch.equal(v, before[k]) for k, v in lmu.state_dict().items())
    with pytest.raises(ConfigError, match=r"source: a network.*\(got 'NoneType'\)"):
        transfer_weights(None, lmu)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"target: a network.*\(got 'dict'\)"):
        transfer_weights(lmu, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, 1.5, True, "20", float("nan"), float("inf")])
def test_pretrain_epochs_must_be_a_whole_number(value: object) -> None:
    train_hpo = _load("train_hpo")
    assert train_hpo.pretrain_epochs({}) == 0
    assert train_hpo.pretrain_epochs({"pretrain_epochs": 3.0}) == 3
    with pytest.raises(ConfigError, match="pretrain_epochs"):
        train_hpo.pretrain_epochs({"pretrain_epochs": value})


def _args(data: Path, out: Path, epochs_cap: int | None = 1, time_cap: float | None = None,
          subset: int | None = None) -> argparse.Namespace:
    return argparse.Namespace(data=str(data), pretrain_data=None, epochs_cap=epochs_cap,
                              out=str(out), time_cap=time_cap, subset=subset)


def _template(monkeypatch: pytest.MonkeyPatch, events: Path, *, pretrain_epochs: int,
              folds: int) -> tuple:
    """The template's ``main_hpo`` with small networks of its default parameters (one per
    fold) on ``events``: ``(main_hpo, params, options, data, built)``."""
    monkeypatch.syspath_prepend(str(EXAMPLE))  # main_hpo imports its neighbours
    main_hpo = _load("main_hpo")
    params = {**main_hpo.DEFAULT_PARAMS, "n_rec": 8, "batch_size": 4,
              "pretrain_epochs": pretrain_epochs}
    options = main_hpo.setup_hpo.data_options(params)
    data = main_hpo.setup_hpo.load_data(options, str(events), folds=folds)
    built = [main_hpo.train_hpo.build(params, data.info, device="cpu") for _ in data.folds]
    return main_hpo, params, options, data, built


def test_pretraining_keeps_within_the_trials_time_and_its_subset(
    tmp_path: Path, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under --time-cap, pretraining takes at most half of the time left and ends with its
    best epoch (it used to run all its epochs past the limit, and the trial was killed with
    nothing); --subset shrinks the other letters as it shrinks the task's."""
    import time

    main_hpo, params, options, _, built = _template(monkeypatch, events, pretrain_epochs=4,
                                                    folds=1)
    train_hpo = main_hpo.train_hpo
    seen: dict[str, object] = {}
    real_folds = train_hpo.train_folds

    def spy(built_: list, folds: list, **kw: object) -> object:
        seen["samples"] = len(folds[0][0]) + len(folds[0][1])
        seen["deadline"] = kw["deadline"]
        trainers, histories = real_folds(built_, folds, **kw)
        seen["epochs"] = len(histories[0].epochs)
        seen["stop"] = histories[0].stop_reason
        return trainers, histories

    monkeypatch.setattr(train_hpo, "train_folds", spy)
    before = time.perf_counter()
    main_hpo.pretrain(params, options, False, built,
                      _args(events, tmp_path, epochs_cap=None, time_cap=0.5, subset=1),
                      torch.device("cpu"))
    assert seen["samples"] == 5 * len(OTHERS)  # 5 per letter (one to validate), not 10
    assert isinstance(seen["deadline"], float) and seen["deadline"] < before + 0.5
    assert seen["epochs"] == 1 and seen["stop"] == "time_limit"  # not its 4 epochs


def test_the_template_pretrains_on_the_other_letters_then_trains_the_task(
    tmp_path: Path, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main_hpo, params, options, data, built = _template(monkeypatch, events, pretrain_epochs=2,
                                                       folds=2)
    train_hpo = main_hpo.train_hpo
    fresh = [net.state_dict() for net, _ in built]
    fresh = [{k: v.clone() for k, v in state.items()} for state in fresh]

    seen: list[tuple[tuple[str, ...], int]] = []
    real_pretrain = train_hpo.pretrain

    def spy(p: dict, other: object, **kw: object) -> object:
        seen.append((other.info.classes, int(kw["epochs_cap"])))  # type: ignore[attr-defined]
        return real_pretrain(p, other, **kw)

    monkeypatch.setattr(train_hpo, "pretrain", spy)
    main_hpo.pretrain(params, options, False, built, _args(events, tmp_path), torch.device("cpu"))
    assert seen == [(OTHERS, 1)]  # only the letters the task leaves out, epochs capped
    first = built[0][0]
    for (net, _), before in zip(built, fresh, strict=True):
        assert not torch.equal(net.w_rec, before["w_rec"])  # started from the pretraining
        assert torch.equal(net.w_rec, first.w_rec) and torch.equal(net.w_in, first.w_in)
        assert torch.equal(net.w_out, before["w_out"])  # a fresh readout for the 7 letters
        assert net.config.n_out == 7

    # Without pretrain_epochs nothing is loaded or changed.
    again = [train_hpo.build(params, data.info, device="cpu") for _ in data.folds]
    main_hpo.pretrain({**params, "pretrain_epochs": 0}, options, False, again,
                      _args(events, tmp_path), torch.device("cpu"))
    assert len(seen) == 1 and torch.equal(again[0][0].w_rec, fresh[0]["w_rec"])


def test_the_template_refuses_pretraining_on_pool_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    main_hpo = _load("main_hpo")
    pool = write_tiny_pool(tmp_path / "braille_reduced_th1_pool.pt")
    params = {**main_hpo.DEFAULT_PARAMS, "n_rec": 8, "pretrain_epochs": 5}
    options = main_hpo.setup_hpo.data_options(params, pool=True)
    with pytest.raises(ConfigError, match=r"pretrain_epochs.*--pretrain-data.*pool file holds "
                                          r"only.*got 5"):
        main_hpo.pretrain(params, options, True, [], _args(pool, tmp_path),
                          torch.device("cpu"))


def test_the_template_pretrains_a_pool_task_on_another_event_file(
    tmp_path: Path, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pool data with --pretrain-data: the other letters come from that file, at the
    threshold its name gives, shaped as the pool task's data."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    main_hpo = _load("main_hpo")
    setup_hpo, train_hpo = main_hpo.setup_hpo, main_hpo.train_hpo
    pool = write_tiny_pool(tmp_path / "braille_reduced_th1_pool.pt")
    params = {**main_hpo.DEFAULT_PARAMS, "n_rec": 8, "batch_size": 4, "pretrain_epochs": 1}
    options = setup_hpo.data_options(params, pool=True)
    data = setup_hpo.load_data(options, str(pool))
    built = [train_hpo.build(params, data.info, device="cpu") for _ in data.folds]
    before = built[0][0].w_rec.clone()
    seen: list[tuple[str, tuple[int, ...]]] = []
    real_pretrain = train_hpo.pretrain

    def spy(p: dict, other: object, **kw: object) -> object:
        seen.append((other.info.name, tuple(other.inputs.shape[1:])))  # type: ignore[attr-defined]
        return real_pretrain(p, other, **kw)

    monkeypatch.setattr(train_hpo, "pretrain", spy)
    args = argparse.Namespace(data=str(pool), pretrain_data=str(events), epochs_cap=1,
                              out=str(tmp_path), time_cap=None, subset=None)
    main_hpo.pretrain(params, options, True, built, args, torch.device("cpu"))
    shape = (data.info.n_steps, data.info.n_inputs)  # 64 steps of 20 ms, 12 channels
    assert seen == [("braille_th10_custom_merged", shape)]
    assert not torch.equal(built[0][0].w_rec, before)


@pytest.mark.parametrize("pool", [False, True], ids=["event-file", "pool-and-pretrain-data"])
def test_a_trial_with_pretraining_runs_end_to_end(tmp_path: Path, events: Path,
                                                  pool: bool) -> None:
    """``main_hpo.py --params`` with ``pretrain_epochs``, run by hand: the trial says what it
    pretrained on, trains the task and saves its result with the parameters that say so. On
    pool data the other letters come from ``--pretrain-data`` (here a threshold-10 file, read
    at threshold 10 in the pool's shape)."""
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"n_rec": 8, "batch_size": 8, "pretrain_epochs": 1}))
    out = tmp_path / "out"
    data = ["--data", str(events)]
    name = "braille_th10_custom_split"
    if pool:
        pool_file = write_tiny_pool(tmp_path / "braille_reduced_th1_pool.pt")
        data = ["--data", str(pool_file), "--pretrain-data", str(events)]
        name = "braille_th10_custom_merged"
    run = subprocess.run(
        [sys.executable, "main_hpo.py", *data, "--params", str(params),
         "--epochs-cap", "1", "--threads", "1", "--out", str(out)],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    assert f"pretrained on 20 other letters (200 samples, {name}): val" in run.stdout
    saved = json.loads((out / "result.json").read_text())
    assert saved["parameters"]["pretrain_epochs"] == 1 and 0.0 <= saved["test"] <= 1.0
    assert load_checkpoint(out / "best_model.pt").network.n_out == 7  # the task's readout


#: Runs main_hpo.py as a script whose pretraining diverges (no real training can be relied
#: on to diverge at once), the way a trial process runs it.
_DIVERGING = """
import runpy, sys
import train_hpo
from spiketune.snn import TrainingDiverged

def diverged(*args, **kwargs):
    raise TrainingDiverged("pretraining on the other letters diverged (non_finite_loss)")

train_hpo.pretrain = diverged
sys.argv = ["main_hpo.py", *sys.argv[1:]]
runpy.run_path("main_hpo.py", run_name="__main__")
"""


def test_a_diverged_pretraining_ends_the_trial_with_one_line(
    tmp_path: Path, events: Path
) -> None:
    """As a diverged task training does: exit code 1 and the reason, no traceback."""
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"n_rec": 8, "batch_size": 8, "pretrain_epochs": 1}))
    run = subprocess.run(
        [sys.executable, "-c", _DIVERGING, "--data", str(events), "--params", str(params),
         "--epochs-cap", "1", "--threads", "1", "--out", str(tmp_path / "out")],
        cwd=EXAMPLE, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 1
    assert run.stderr.strip() == ("error: pretraining on the other letters diverged "
                                  "(non_finite_loss)")
    assert not (tmp_path / "out" / "result.json").exists()


def test_a_population_member_is_pretrained_before_it_joins(
    tmp_path: Path, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Population mode prepares each member as the process path does: pretrained first."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    main_hpo = _load("main_hpo")
    params = {"n_rec": 8, "batch_size": 8, "pretrain_epochs": 1}
    prepared: list[object] = []

    def fake_train_members(prepare: object, done: object, **_: object) -> list:
        member = SimpleNamespace(parameters=params, trial_dir=tmp_path)
        prepared.append(prepare(member))  # type: ignore[operator]
        return []

    monkeypatch.setattr(main_hpo, "train_members", fake_train_members)
    args = argparse.Namespace(data=str(events), pretrain_data=None, folds=2, subset=None,
                              epochs_cap=1, time_cap=None, threads=1, refills=0,
                              out=str(tmp_path), seed=None)
    assert main_hpo.main_population(args) == []
    (member,) = prepared
    built = list(member.built)  # type: ignore[attr-defined]
    data = main_hpo.setup_hpo.load_data(main_hpo.setup_hpo.data_options(params), str(events))
    fresh, _ = main_hpo.train_hpo.build({**main_hpo.DEFAULT_PARAMS, **params}, data.info,
                                        device="cpu")
    assert len(built) == 2
    for net, _ in built:
        assert not torch.equal(net.w_rec, fresh.w_rec)  # pretrained, not as built
        assert torch.equal(net.w_rec, built[0][0].w_rec)
        assert torch.equal(net.w_out, fresh.w_out)
