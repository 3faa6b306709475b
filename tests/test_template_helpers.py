"""The library helpers the templates share: a trial's folds trained in lock-step and its final
result, a model and its training configuration from a trial's parameters, the data split
with re-splits, the Braille pool as a trial reads it, a trial script's start and end, and a
launcher's options and trial command."""

from __future__ import annotations

import argparse
import json
import pickle
import shlex
from pathlib import Path

import pytest
import torch
from _toy import TOY_INFO, toy_data

from spiketune import ConfigError, DataError, load_config
from spiketune.data import (
    Dataset,
    DatasetInfo,
    data_location,
    is_braille_pool,
    load_braille_encoding,
    load_braille_split,
    split_parts,
)
from spiketune.launcher import (
    add_budget_options,
    add_experiment_options,
    add_selection_options,
    add_smoke_options,
    parse_launcher_args,
    trial_command_change,
)
from spiketune.snn import (
    L2MU,
    LMU,
    EpochMetrics,
    History,
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    TrainingDiverged,
    fold_best,
    fold_result,
    is_spiking,
    model_and_config_from_params,
    predict_classes,
    train_folds,
)
from spiketune.trial import (
    add_trial_options,
    epoch_report,
    keep_trial_model,
    start_trial,
    trial_output_dir,
)


def _epoch(epoch: int, val_acc: float | None, spikes: float = 10.0) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=1.0,
                        val_acc=val_acc, spikes_per_sample=spikes, rate_hz=2.0,
                        silent_fraction=0.0, synops_per_sample=30.0, seconds=0.1)


def _history(*accs: float, stop: str = "completed") -> History:
    """Epochs of these validation accuracies; the best is the most accurate."""
    epochs = [_epoch(i + 1, a, spikes=5.0 * (i + 1)) for i, a in enumerate(accs)]
    best = max(epochs, key=lambda m: m.val_acc or 0.0).epoch if epochs else None
    return History(monitor="val_acc", epochs=epochs, best_epoch=best, stop_reason=stop)


# --- spiketune.snn -----------------------------------------------------------------------


def test_train_folds_trains_each_fold_in_lock_step_like_alone() -> None:
    parts = split_parts(toy_data(), folds=2)
    configs = [TrainConfig(epochs=2, batch_size=8, lr=0.05, seed=s) for s in (0, 1)]

    def built() -> list[tuple[RecurrentSNN, TrainConfig]]:
        return [(RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, dt=0.01), seed=i), c)
                for i, c in enumerate(configs)]

    seen: list[tuple[int, int]] = []
    _, histories = train_folds(built(), parts.folds,
                               lambda e, latest: seen.append((e, len(latest))))
    assert seen == [(1, 2), (2, 2)]
    assert [len(h.epochs) for h in histories] == [2, 2]
    # Each fold's history is what its network would have made trained alone.
    from spiketune.snn import Trainer

    net, config = built()[1]
    train_set, val_set = parts.folds[1]
    alone = Trainer(net, config).fit(train_set.tensor_dataset(), val_set.tensor_dataset())
    assert [m.val_acc for m in alone.epochs] == [m.val_acc for m in histories[1].epochs]


def test_predict_classes_is_the_argmax_of_the_windowed_readout() -> None:
    net = RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, dt=0.01, loss_steps=3), seed=0)
    data = toy_data(n_per_class=5)
    predicted = predict_classes(net, data, batch_size=4)  # batches do not change the answer
    with torch.no_grad():
        expected = net.simulate(data.inputs).readout[:, -3:].sum(1).argmax(-1)
    assert predicted.dtype == torch.long and predicted.tolist() == expected.tolist()
    assert predict_classes(net, Dataset(TOY_INFO, data.inputs[:0], data.labels[:0])).numel() == 0


def test_fold_result_means_the_folds_and_tests_the_first_network() -> None:
    net = RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, dt=0.01), seed=0)
    test = toy_data(n_per_class=4)
    histories = [_history(0.4, 0.8, 0.6), _history(0.5, stop="early_stopping")]
    final, predicted = fold_result(histories, net, test, started=0.0, split_digest="d1g3st")
    assert final["default"] == pytest.approx((0.8 + 0.5) / 2)
    assert (final["epoch"], final["epochs_run"]) == (2, 3)
    assert final["test"] == int((predicted == test.labels).sum()) / len(test)
    assert (final["val_fold0"], final["val_fold1"]) == (0.8, 0.5)
    spikes = {"spikes_per_sample", "rate_hz", "synops_per_sample"}
    assert final["spikes_per_sample"] == 10.0 and spikes <= set(final)
    assert final["seconds"] > 0
    assert final["split_digest"] == "d1g3st"  # the reported metrics name the split
    one, _ = fold_result(histories[:1], net, test, started=0.0, split_digest="d1g3st",
                         spiking=False)
    assert not spikes & set(one) and "val_fold0" not in one
    assert fold_best(histories).epoch == 2


def test_a_fold_without_a_validated_epoch_is_training_diverged() -> None:
    histories = [_history(0.7), History(monitor="val_acc", stop_reason="non_finite_loss")]
    with pytest.raises(TrainingDiverged, match=r"before the first epoch .*non_finite_loss"):
        fold_best(histories)
    net = RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, dt=0.01), seed=0)
    with pytest.raises(TrainingDiverged):
        fold_result(histories, net, toy_data(2), started=0.0, split_digest="d1g3st")


def test_model_and_config_from_params_builds_each_model() -> None:
    info = DatasetInfo("toy", tuple("abcdefg"), 12, 64, 0.02)
    fixed = {"loss": "ce_summed", "patience": 7}
    net, config = model_and_config_from_params(
        {"n_rec": 16, "tau_mem": 0.05, "lr": 0.01, "bin_size": 0.02, "seed": 2}, info,
        fixed=fixed, data_keys={"bin_size"}, epochs_cap=3)
    assert isinstance(net, RecurrentSNN) and is_spiking(net)
    assert (net.config.n_in, net.config.n_out, net.config.dt, net.config.loss) == (
        12, 7, 0.02, "ce_summed")
    assert (config.lr, config.patience, config.seed, config.epochs) == (0.01, 7, 2, 3)
    same, _ = model_and_config_from_params(
        {"n_rec": 16, "tau_mem": 0.05, "lr": 0.01, "seed": 2}, info, fixed=fixed)
    assert torch.equal(net.w_in, same.w_in)  # the weights are drawn from the training seed
    lmu, _ = model_and_config_from_params(
        {"model": {"_name": "lmu", "order": 4, "theta": 1.0}}, info, default_model="l2mu")
    assert isinstance(lmu, LMU) and not is_spiking(lmu)
    l2mu, _ = model_and_config_from_params({"order": 4, "theta": 1.0}, info,
                                           default_model="l2mu")
    assert isinstance(l2mu, L2MU) and is_spiking(l2mu)
    with pytest.raises(ConfigError) as err:
        model_and_config_from_params({"model": "l2mu", "ordr": 3, "lr": -1.0}, info)
    assert "ordr" in str(err.value) and "lr" in str(err.value)
    with pytest.raises(ConfigError, match="tau_membrane"):
        model_and_config_from_params({"n_rec": 8, "tau_membrane": 0.1}, info)


# --- spiketune.data ----------------------------------------------------------------------


def test_split_parts_fixes_the_test_part_and_makes_disjoint_resplits() -> None:
    data = toy_data(n_per_class=20)
    parts = split_parts(data, folds=3)
    assert parts.info == TOY_INFO and len(parts.folds) == 3
    assert (len(parts.train), len(parts.val), len(parts.test)) == (48, 6, 6)
    assert torch.equal(parts.folds[0][1].inputs, parts.val.inputs)  # the first is the split
    assert split_parts(data, folds=3).split_digest == parts.split_digest
    test_rows = {tuple(x.flatten().tolist()) for x in parts.test.inputs}
    for train, val in parts.folds:
        assert len(train) + len(val) == 54
        assert not test_rows & {tuple(x.flatten().tolist()) for x in val.inputs}
    small = split_parts(data, per_class=10)
    assert len(small.train) + len(small.val) + len(small.test) == 30
    assert small.split_digest != parts.split_digest


def test_data_location_prefers_the_path_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOME_DATA", str(tmp_path))
    assert data_location("~/x", "SOME_DATA") == Path("~/x").expanduser()
    assert data_location(None, "SOME_DATA") == tmp_path
    monkeypatch.delenv("SOME_DATA")
    assert data_location(None, "SOME_DATA") is None


def _save_pool(path: Path, per_class: int = 10) -> Path:
    labels = torch.arange(7).repeat_interleave(per_class)
    inputs = torch.zeros(len(labels), 8, 12)
    inputs[torch.arange(len(labels)), ::2, labels] = 1.0  # a spike every 10 ms
    torch.save(torch.utils.data.TensorDataset(inputs, labels), path)
    return path


def test_the_braille_pool_is_read_rebinned_and_split(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pool = _save_pool(tmp_path / "braille_reduced_th1_pool.pt")
    assert is_braille_pool(pool) and is_braille_pool(tmp_path) and is_braille_pool(str(pool))
    assert not is_braille_pool(None) and not is_braille_pool(tmp_path / "missing.pt")
    # A TensorDataset file under another name is a pool too; a pickle (an event file) is not.
    other = tmp_path / "other"
    other.mkdir()
    renamed = _save_pool(other / "my_test_samples.bin")
    assert is_braille_pool(renamed) and is_braille_pool(_save_pool(other / "s.pth"))
    events = other / "data_braille_letters_th1.pkl"
    events.write_bytes(pickle.dumps({"letter": ["A"]}))
    assert not is_braille_pool(events)
    options = {"threshold": 1, "channels": "merged", "letters": "reduced", "bin_size": 0.01,
               "clip": False}
    data = load_braille_encoding(options, pool)
    assert (data.n_steps, data.dt, float(data.inputs.max())) == (4, 0.01, 1.0)
    counted = load_braille_encoding({**options, "bin_size": 0.02}, pool)
    assert float(counted.inputs.max()) == 2.0  # two spikes in a 20 ms bin
    with pytest.raises(DataError, match=r"threshold=10.*must be 1"):
        load_braille_encoding({**options, "threshold": 10}, pool)
    monkeypatch.setenv("POOL_HERE", str(tmp_path))
    parts = load_braille_split(options, env="POOL_HERE", folds=2)
    assert len(parts.folds) == 2 and len(parts.train) + len(parts.val) + len(parts.test) == 70
    assert parts.split_digest == split_parts(data).split_digest
    with pytest.raises(DataError, match=r"no Braille data .*\$NOWHERE"):
        load_braille_split(options, tmp_path / "absent", env="NOWHERE", download=False)


# --- spiketune.trial ---------------------------------------------------------------------


def test_trial_options_and_start(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = add_trial_options(argparse.ArgumentParser(), subset_help="N windows")
    args = parser.parse_args(["--folds", "3", "--seed", "5", "--threads", "1"])
    assert (args.folds, args.seed, args.threads, args.out, args.subset) == (
        3, 5, 1, "manual_trial", None)
    assert "N windows" in parser.format_help()
    # Values every trial run would fail on (or train on for nothing) are usage errors at once.
    for option, value, message in (("--folds", "0", "must be at least 1, got 0"),
                                   ("--subset", "-2", "must be at least 1, got -2"),
                                   ("--epochs-cap", "x", "'x' is not a whole number"),
                                   ("--seed", "-1", "must be at least 0, got -1"),
                                   ("--time-cap", "-5", "seconds >= 0, got -5")):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([option, value])
        assert info.value.code == 2
        assert message in capsys.readouterr().err
    # --out in a file's path is refused before the training, not after it; ~ is expanded
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for out in (a_file, a_file / "sub"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--out", str(out)])
        assert "give a directory to save into" in capsys.readouterr().err
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parser.parse_args(["--out=~/seed3"]).out == str(tmp_path / "seed3")
    params, device = start_trial({"lr": 0.1, "seed": 1}, seed=args.seed, threads=args.threads)
    assert params == {"lr": 0.1, "seed": 5} and torch.get_num_threads() == 1
    first = torch.rand(3)
    start_trial({"seed": 5})
    assert torch.equal(torch.rand(3), first)  # seeded with the parameters' seed
    assert device.type in ("cpu", "cuda")
    monkeypatch.delenv("NNI_OUTPUT_DIR", raising=False)
    assert trial_output_dir("here") == Path("here")
    monkeypatch.setenv("NNI_OUTPUT_DIR", "/trial/dir")
    assert trial_output_dir("here") == Path("/trial/dir")


def _own_dirs(params: dict) -> float:
    import time

    import spiketune.trial as st

    time.sleep(0.2)  # the two trials overlap
    assert trial_output_dir("shared") == st.get_trial_dir()
    st.get_current_parameter("opt").pop("_name")  # an edit of its copy only
    assert st.get_next_parameter()["opt"] == {"_name": "adam"}
    return 1.0


def test_in_process_trials_save_into_their_own_directories(exp_root: Path) -> None:
    """Trials sharing a process share its environment: each saves into its own directory,
    and the parameters it edits are its copy, not what the engine recorded."""
    from spiketune import Experiment, Outcome

    space = {"x": {"_type": "choice", "_value": [1, 2]},
             "opt": {"_type": "choice", "_value": [{"_name": "adam"}]}}
    results = Experiment(trial=_own_dirs, search_space=space, tuner="GridSearch",
                         concurrency=2, experiment_dir=exp_root).run()
    assert [r.outcome for r in results.records] == [Outcome.COMPLETE] * 2, [
        r.reason for r in results.records]
    assert all(r.parameters["opt"] == {"_name": "adam"} for r in results.records)


def test_epoch_report_means_the_folds_and_prints_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    latest = [_epoch(2, 0.5, spikes=10.0), _epoch(2, 0.7, spikes=30.0)]
    report = epoch_report(2, latest, trial_id="4")
    assert report == pytest.approx({"default": 0.6, "train_acc": 0.5, "train_loss": 1.0,
                                    "val_loss": 1.0, "spikes_per_sample": 20.0})
    assert capsys.readouterr().out == ("trial 4 epoch 2: train acc 0.500 loss 1.000, val acc "
                                       "0.600 loss 1.000, 20 spikes/sample\n")
    assert "spikes_per_sample" not in epoch_report(2, latest, spiking=False)
    assert capsys.readouterr().out.endswith("val acc 0.600 loss 1.000\n")


def test_keep_trial_model_saves_the_checkpoint_and_the_result(tmp_path: Path) -> None:
    from spiketune.snn import load_checkpoint
    from spiketune.trial import Predictions

    net = RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=3, dt=0.01), seed=0)
    history = _history(0.5, 0.75)
    final = {"default": 0.75, "test": 0.5}
    path = keep_trial_model(
        tmp_path / "out", net, train_config=TrainConfig(), history=history, metrics=final,
        parameters={"lr": 0.1}, split_digest="abc",
        predictions=Predictions([0, 1], [0, 0], ["a", "b"], split="test"),
        score=(0.75,), extra={"folds": 1}, result={"subset": 3})
    assert path == tmp_path / "out" / "best_model.pt"
    assert load_checkpoint(path).extra == {"folds": 1}
    result = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert result == {"default": 0.75, "test": 0.5, "split_digest": "abc",
                      "parameters": {"lr": 0.1}, "subset": 3}


# --- spiketune.launcher ------------------------------------------------------------------


def _launcher() -> argparse.ArgumentParser:
    p = add_budget_options(argparse.ArgumentParser())
    add_smoke_options(p, smoke_help="tiny")
    add_selection_options(p, folds=3, retrain_seeds=[0, 1])
    return add_experiment_options(p)


def test_launcher_options_parse_and_smoke_fills_what_was_not_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    smoke = {"trials": 2, "epochs_cap": 1, "folds": 1, "retrain_seeds": [0]}
    args = parse_launcher_args(_launcher(), ["--smoke", "--folds", "2", "-q"], smoke=smoke)
    assert (args.trials, args.epochs_cap, args.folds, args.retrain_seeds) == (2, 1, 2, [0])
    assert args.quiet and not args.no_report and args.gpus is None
    plain = parse_launcher_args(_launcher(), ["--trials", "5"], smoke=smoke)
    assert (plain.trials, plain.folds, plain.retrain_seeds) == (5, None, None)
    assert "default 0 1" in _launcher().format_help()
    with pytest.raises(SystemExit) as exit_info:
        parse_launcher_args(_launcher(), ["--folds", "0"], smoke=smoke)
    assert exit_info.value.code == 2
    # Trial options every trial would fail on are refused before any starts.
    for option in ("--epochs-cap", "--subset"):
        with pytest.raises(SystemExit) as exit_info:
            parse_launcher_args(_launcher(), [option, "0"], smoke=smoke)
        assert exit_info.value.code == 2
        assert f"{option} must be at least 1, got 0" in capsys.readouterr().err
    # A negative retraining seed would fail every retraining after the whole search.
    with pytest.raises(SystemExit) as exit_info:
        parse_launcher_args(_launcher(), ["--retrain-seeds", "0", "-1"], smoke=smoke)
    assert exit_info.value.code == 2
    assert "--retrain-seeds must be seeds >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # as would a seed given twice
        parse_launcher_args(_launcher(), ["--retrain-seeds", "0", "1", "0"], smoke=smoke)
    assert exit_info.value.code == 2
    assert "--retrain-seeds must be distinct seeds, got 0 twice" in capsys.readouterr().err
    epochs = argparse.ArgumentParser()
    epochs.add_argument("--epochs", type=int)
    epochs.add_argument("--smoke", action="store_true")
    with pytest.raises(SystemExit):  # the snnTorch template's own --epochs
        parse_launcher_args(epochs, ["--epochs", "0"], smoke={})
    assert "--epochs must be at least 1, got 0" in capsys.readouterr().err
    no_folds = add_selection_options(argparse.ArgumentParser(), folds=None, retrain_seeds=[0])
    assert "--folds" not in no_folds.format_help()


def test_trial_command_change_adds_only_given_options(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "d").mkdir()
    (tmp_path / "config.toml").write_text(
        'name = "t"\nsearch_space = {lr = {_type = "choice", _value = [0.1]}}\n'
        'trial_command = "python3 main_hpo.py --folds 3"\nmax_trials = 1\n', encoding="utf-8")
    config = load_config(tmp_path / "config.toml")
    assert trial_command_change(config, {"--folds": None, "--data": None}) == {}
    change = trial_command_change(config, {"--folds": 1, "--data": "~/d"}, paths=("--data",))
    assert shlex.split(change["trial_command"]) == [
        "python3", "main_hpo.py", "--folds", "1", "--data", str(Path("~/d").expanduser())]

