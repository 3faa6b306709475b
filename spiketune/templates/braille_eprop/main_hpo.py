"""One trial: train a recurrent spiking network on the Braille letters with the parameters the
tuner chose, report every epoch, report the result, offer the model as the experiment's best.

The trial code of an NNI experiment runs unchanged: ``import nni`` finds spiketune's stand-in
when spiketune launches the trial. By hand, outside any experiment, it runs too::

    python main_hpo.py                          # the defaults below, reports printed
    python main_hpo.py --params p.json --epochs-cap 3 --data ~/data/braille
    python main_hpo.py --params p.json --seed 2 --out chosen/seed2   # one retraining seed

With ``--folds k`` the trial trains k networks in lock-step, one per stratified re-split of
the training pool (the test part never changes), and is judged by their mean validation
accuracy: a steadier signal than one 105-sample validation set. Every epoch reports
``{"default": mean validation accuracy over the folds at that epoch, "train_acc",
"train_loss", "val_loss", "spikes_per_sample"}`` (means too); the final result is
``{"default": mean over the folds of each one's best validation accuracy, "test": test
accuracy of the first fold's network at its best epoch, "train", "epoch",
"spikes_per_sample": of that network, "val_fold<i>": each fold's best validation accuracy,
...}``. The first fold's network is the model saved and offered as the experiment's best; a
``result.json`` beside it holds the final result and the split digest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

try:
    import nni  # spiketune puts its stand-in for NNI's trial API on a trial's PYTHONPATH
except ImportError:  # run by hand, without NNI installed
    import spiketune.compat.nni as nni

import setup_hpo
import torch
import train_hpo

from spiketune import SpiketuneError
from spiketune.snn import EpochMetrics, save_checkpoint
from spiketune.trial import Member, Predictions, in_population, offer_best_model, population

#: What a trial uses for any parameter the search space does not give (and all of them when
#: run by hand): a plain e-prop LIF network on 20 ms bins of event counts (the data defaults of
#: ``setup_hpo``) that reaches about 85-90% test accuracy.
DEFAULT_PARAMS: dict[str, Any] = {
    "n_rec": 128,
    "tau_mem": 0.2,
    "tau_out": 0.2,
    "loss_window": 0.4,
    "v_th": 1.0,
    "gain_in": 3.0,
    "gain_rec": 0.5,
    "reg_strength": 0.1,
    "reg_target_hz": 10.0,
    "lr": 0.003,
    "batch_size": 16,
    "epochs": 40,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"Braille event file or its directory (else ${setup_hpo.DATA_ENV}, "
                             "else spiketune's data cache, downloaded there once)")
    parser.add_argument("--epochs-cap", type=int, default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="keep N samples per class before splitting (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: this trial's share of the cores)")
    parser.add_argument("--out", default="manual_trial",
                        help="where to save the model when run by hand (a trial uses its own "
                             "directory)")
    parser.add_argument("--params", default=None,
                        help="JSON file of parameters, when run by hand")
    parser.add_argument("--folds", type=int, default=1,
                        help="train on this many stratified re-splits and report the mean "
                             "validation accuracy (default 1: the split itself)")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed (weights, shuffling, augmentation); overrides "
                             "the parameters' seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    args = parse_args(argv)
    if args.folds < 1:
        sys.exit(f"--folds must be at least 1, got {args.folds}")
    if in_population():
        return main_population(args)
    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **nni.get_next_parameter()}
    if args.seed is not None:
        params["seed"] = args.seed
    setup_hpo.seed_everything(int(params.get("seed", 0)))
    torch.set_num_threads(setup_hpo.trial_threads(args.threads))
    device = setup_hpo.trial_device()

    pool = setup_hpo.is_pool(setup_hpo.data_location(args.data))
    options = setup_hpo.data_options(params, pool=pool)
    data = setup_hpo.load_data(options, args.data, per_class=args.subset, folds=args.folds)
    built = [train_hpo.build(params, data.info, device=device, epochs_cap=args.epochs_cap)
             for _ in data.folds]
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {len(data.train)}/{len(data.val)}/"
          f"{len(data.test)} samples, {args.folds} fold(s), split {data.split_digest[:12]}, "
          f"{built[0][0]}, {torch.get_num_threads()} thread(s) on {device}", flush=True)

    def on_epoch(epoch: int, latest: list[EpochMetrics]) -> None:
        nni.report_intermediate_result(epoch_report(epoch, latest))

    _, histories = train_hpo.train_folds(built, data.folds, on_epoch)
    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    try:
        return finish(params, data, options, pool, built, histories, args, started, out_dir)
    except TrainingDiverged as e:
        sys.exit(str(e))


def main_population(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Population mode (``population = K`` in the experiment, ``main.py --population K``):
    the trials of this process train as batched populations, each reported as its own trial.
    A member whose parameters are invalid, or whose training diverges, fails alone."""
    started = time.perf_counter()
    members = population()
    torch.set_num_threads(setup_hpo.trial_threads(args.threads))
    device = setup_hpo.trial_device()
    pool = setup_hpo.is_pool(setup_hpo.data_location(args.data))
    loaded: dict[str, setup_hpo.BrailleData] = {}
    ready: list[tuple[Member, dict[str, Any], dict[str, Any], setup_hpo.BrailleData, list]] = []
    for member in members:
        params = {**DEFAULT_PARAMS, **member.parameters}
        try:
            options = setup_hpo.data_options(params, pool=pool)
            key = json.dumps(options, sort_keys=True)
            if key not in loaded:
                loaded[key] = setup_hpo.load_data(options, args.data, per_class=args.subset,
                                                  folds=args.folds)
            data = loaded[key]
            setup_hpo.seed_everything(int(params.get("seed", 0)))
            built = [train_hpo.build(params, data.info, device=device,
                                     epochs_cap=args.epochs_cap) for _ in data.folds]
        except SpiketuneError as e:
            member.fail(f"{type(e).__name__}: {e}")
            continue
        ready.append((member, params, options, data, built))
    print(f"population of {len(members)} trial(s) ({', '.join(m.trial_id for m in members)}), "
          f"{len(loaded)} encoding(s), {args.folds} fold(s), {torch.get_num_threads()} "
          f"thread(s) on {device}", flush=True)
    stopped: set[int] = set()

    def on_epoch(i: int, epoch: int, latest: list[EpochMetrics]) -> bool:
        member = ready[i][0]
        if member.should_stop():  # pruned, timed out, or the experiment is stopping
            stopped.add(i)
            return True
        member.report_intermediate_result(epoch_report(epoch, latest, member.trial_id))
        return False

    histories = train_hpo.train_population(
        [r[4] for r in ready], [r[3].folds for r in ready],
        [json.dumps(r[2], sort_keys=True) for r in ready], on_epoch)
    finals = []
    for i, (member, params, options, data, built) in enumerate(ready):
        if i in stopped or member.should_stop():
            continue
        with member:  # offer_best_model and nni.report_final_result go to this member
            try:
                finals.append(finish(params, data, options, pool, built, histories[i], args,
                                     started, Path(str(member.trial_dir))))
            except TrainingDiverged as e:
                member.fail(str(e))
    return finals


class TrainingDiverged(RuntimeError):
    """No epoch of the trial ended with finite figures: it has no model to keep."""


def epoch_report(epoch: int, latest: list[EpochMetrics], trial_id: str | None = None
                 ) -> dict[str, Any]:
    """What a trial reports after each epoch: means over its folds, printed too."""
    mean = {key: statistics.fmean(getattr(m, key) for m in latest)
            for key in ("train_acc", "train_loss", "val_acc", "val_loss",
                        "spikes_per_sample")}
    who = f"trial {trial_id} " if trial_id is not None else ""
    print(f"{who}epoch {epoch}: train acc {mean['train_acc']:.3f} loss "
          f"{mean['train_loss']:.3f}, val acc {mean['val_acc']:.3f} loss "
          f"{mean['val_loss']:.3f}, {mean['spikes_per_sample']:.0f} spikes/sample", flush=True)
    return {"default": mean.pop("val_acc"), **mean}


def finish(
    params: dict[str, Any],
    data: setup_hpo.BrailleData,
    options: dict[str, Any],
    pool: bool,
    built: list,
    histories: list,
    args: argparse.Namespace,
    started: float,
    out_dir: Path,
) -> dict[str, Any]:
    """After training: test the first fold's network once, save it with its result, offer it
    as the experiment's best, report the final result (to the channel bound to this thread:
    the trial's, or a population member's)."""
    net, train_config = built[0]
    best_per_fold = [h.best for h in histories]
    if any(b is None or b.val_acc is None for b in best_per_fold):
        reasons = ", ".join(h.stop_reason for h in histories)
        raise TrainingDiverged(f"training diverged before the first epoch ended ({reasons})")
    history = histories[0]
    best = history.best
    assert best is not None and best.val_acc is not None

    # The first fold's network now holds the weights of its best validation epoch: test them
    # once (the other folds' networks only inform the objective).
    predicted = train_hpo.predict_classes(net, data.test)
    test_acc = int((predicted == data.test.labels).sum()) / len(data.test)
    val_folds = [float(b.val_acc) for b in best_per_fold if b is not None and b.val_acc is not None]
    final = {
        "default": statistics.fmean(val_folds),
        "test": test_acc,
        "train": best.train_acc,
        "epoch": best.epoch,
        "spikes_per_sample": best.spikes_per_sample,
        "rate_hz": best.rate_hz,
        "synops_per_sample": best.synops_per_sample,
        "epochs_run": len(history.epochs),
        "seconds": time.perf_counter() - started,
    }
    if args.folds > 1:
        final.update({f"val_fold{i}": v for i, v in enumerate(val_folds)})

    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {"split_digest": data.split_digest, "data": options, "pool": pool,
             "n_steps": data.info.n_steps, "classes": list(data.info.classes),
             "metrics": final, "folds": args.folds}
    checkpoint = save_checkpoint(
        out_dir / "best_model.pt", net, train_config=train_config, history=history, extra=extra
    )
    (out_dir / "result.json").write_text(
        json.dumps({**final, "split_digest": data.split_digest, "parameters": params},
                   indent=2, sort_keys=True, default=str), encoding="utf-8")
    # Kept as the experiment's best model if no trial has done better on validation, ties
    # going to the model that spikes less.
    offer_best_model(
        (final["default"], -best.spikes_per_sample),
        {"best_model.pt": checkpoint},
        {**final, "stop_reason": history.stop_reason, "split_digest": data.split_digest},
        Predictions(data.test.labels, predicted, list(data.info.classes), split="test"),
        parameters=params,
    )
    print(f"trial {nni.get_trial_id()}: best epoch {best.epoch} of {len(history.epochs)} "
          f"({history.stop_reason}): val {final['default']:.3f} (mean of {args.folds} "
          f"fold(s)), test {test_acc:.3f}; saved {checkpoint}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
