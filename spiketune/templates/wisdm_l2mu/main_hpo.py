"""One trial: train an L²MU (or the LMU, or a recurrent SNN) on the WISDM hand activities with
the parameters the tuner chose, report every epoch, report the result, offer the model as the
experiment's best.

The trial code of an NNI experiment runs unchanged: ``import nni`` finds spiketune's stand-in
when spiketune launches the trial. By hand, outside any experiment, it runs too::

    python main_hpo.py                          # the defaults below, reports printed
    python main_hpo.py --params p.json --epochs-cap 3 --data wisdm-dataset.zip
    python main_hpo.py --params p.json --seed 2 --out chosen/seed2   # one retraining seed

With ``--folds k`` the trial trains k networks in lock-step, one per re-split of the
subjects outside the fixed test subjects, and is judged by their mean validation accuracy.
Every epoch reports ``{"default": mean validation accuracy over the folds, "train_acc",
"train_loss", "val_loss"}`` (means too; ``"spikes_per_sample"`` as well for a model that
spikes); the final result is ``{"default": mean over the folds of each one's best validation
accuracy, "test": test accuracy of the first fold's network at its best epoch, "train",
"epoch", "val_fold<i>": each fold's best validation accuracy, ...}`` plus, for a spiking
model, ``"spikes_per_sample"``, ``"rate_hz"``, ``"synops_per_sample"``. The first fold's
network is the model saved and offered as the experiment's best; a ``result.json`` beside it
holds the final result, the split digest and the subjects of each part; the checkpoint's
``extra`` also holds the standardisation (``mean``, ``std`` per channel) that new data need.
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

from spiketune.snn import EpochMetrics, save_checkpoint
from spiketune.trial import Predictions, flat_parameters, offer_best_model

#: What a trial uses for any parameter the search space does not give (and all of them when
#: run by hand): an L²MU whose memory spans the 2 s window, on the standardised values as
#: input currents (the data defaults of ``setup_hpo``).
DEFAULT_PARAMS: dict[str, Any] = {
    "model": {"_name": "l2mu", "order": 8, "theta": 2.0, "memory_size": 16,
              "hidden_size": 128},
    "lr": 0.003,
    "batch_size": 64,
    "epochs": 30,
}
#: Epoch metrics reported, as means over the folds; spike figures only for a spiking model.
EPOCH_KEYS = ("train_acc", "train_loss", "val_acc", "val_loss")
SPIKE_KEYS = ("spikes_per_sample", "rate_hz", "synops_per_sample")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"the UCI archive, wisdm-dataset.zip or the extracted directory "
                             f"(else ${setup_hpo.DATA_ENV}, else spiketune's data cache, "
                             f"downloaded there once)")
    parser.add_argument("--epochs-cap", type=int, default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="keep N windows of each activity of each subject (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: this trial's share of the cores)")
    parser.add_argument("--out", default="manual_trial",
                        help="where to save the model when run by hand (a trial uses its own "
                             "directory)")
    parser.add_argument("--params", default=None,
                        help="JSON file of parameters, when run by hand (read by nni's "
                             "get_next_parameter)")
    parser.add_argument("--folds", type=int, default=1,
                        help="train on this many stratified re-splits and report the mean "
                             "validation accuracy (default 1: the split itself)")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed (weights, shuffling); overrides the parameters' "
                             "seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.folds < 1:
        sys.exit(f"--folds must be at least 1, got {args.folds}")
    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **nni.get_next_parameter()}
    if args.seed is not None:
        params["seed"] = args.seed
    setup_hpo.seed_everything(int(params.get("seed", 0)))
    torch.set_num_threads(setup_hpo.trial_threads(args.threads))
    device = setup_hpo.trial_device()

    options = setup_hpo.data_options(flat_parameters(params))
    data = setup_hpo.load_data(options, args.data, per_class=args.subset, folds=args.folds)
    built = [train_hpo.build(params, data.info, device=device, epochs_cap=args.epochs_cap)
             for _ in data.folds]
    net, train_config = built[0]
    spiking = train_hpo.is_spiking(net)
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {len(data.train)}/{len(data.val)}/"
          f"{len(data.test)} windows, test subjects {list(data.test_subjects)}, "
          f"{args.folds} fold(s), split {data.split_digest[:12]}, "
          f"{net}, {torch.get_num_threads()} thread(s) on {device}", flush=True)

    def on_epoch(epoch: int, latest: list[EpochMetrics]) -> None:
        keys = EPOCH_KEYS + (("spikes_per_sample",) if spiking else ())
        mean = {key: statistics.fmean(getattr(m, key) for m in latest) for key in keys}
        spikes = f", {mean['spikes_per_sample']:.0f} spikes/sample" if spiking else ""
        print(f"epoch {epoch}: train acc {mean['train_acc']:.3f} loss "
              f"{mean['train_loss']:.3f}, val acc {mean['val_acc']:.3f} loss "
              f"{mean['val_loss']:.3f}{spikes}", flush=True)
        nni.report_intermediate_result({"default": mean.pop("val_acc"), **mean})

    _, histories = train_hpo.train_folds(built, data.folds, on_epoch)
    best_per_fold = [h.best for h in histories]
    if any(b is None or b.val_acc is None for b in best_per_fold):
        reasons = ", ".join(h.stop_reason for h in histories)
        sys.exit(f"training diverged before the first epoch ended ({reasons})")
    history = histories[0]
    best = history.best
    assert best is not None and best.val_acc is not None

    # The first fold's network now holds the weights of its best validation epoch: test them
    # once (the other folds' networks only inform the objective).
    predicted = train_hpo.predict_classes(net, data.test)
    test_acc = int((predicted == data.test.labels).sum()) / len(data.test)
    val_folds = [float(b.val_acc) for b in best_per_fold if b is not None and b.val_acc is not None]
    final: dict[str, Any] = {
        "default": statistics.fmean(val_folds),
        "test": test_acc,
        "train": best.train_acc,
        "epoch": best.epoch,
        "epochs_run": len(history.epochs),
        "seconds": time.perf_counter() - started,
    }
    if spiking:
        final.update({key: getattr(best, key) for key in SPIKE_KEYS})
    if args.folds > 1:
        final.update({f"val_fold{i}": v for i, v in enumerate(val_folds)})

    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    subjects = {"test_subjects": list(data.test_subjects),
                "val_subjects": [list(v) for v in data.val_subjects]}
    extra = {"split_digest": data.split_digest, "data": options, "n_steps": data.info.n_steps,
             "classes": list(data.info.classes), "metrics": final, "folds": args.folds,
             "channels": list(data.channels), "mean": list(data.mean), "std": list(data.std),
             **subjects}
    checkpoint = save_checkpoint(
        out_dir / "best_model.pt", net, train_config=train_config, history=history, extra=extra
    )
    (out_dir / "result.json").write_text(
        json.dumps({**final, "split_digest": data.split_digest, "parameters": params,
                    **subjects},
                   indent=2, sort_keys=True, default=str), encoding="utf-8")
    # Kept as the experiment's best model if no trial has done better on validation; ties go
    # to a spiking model, and among those to the one that spikes less.
    score = (final["default"], 1.0, -best.spikes_per_sample) if spiking else (
        final["default"], 0.0, 0.0)
    offer_best_model(
        score,
        {"best_model.pt": checkpoint},
        {**final, "stop_reason": history.stop_reason, "split_digest": data.split_digest},
        Predictions(data.test.labels, predicted, list(data.info.classes), split="test"),
        parameters=params,
    )
    print(f"best epoch {best.epoch} of {len(history.epochs)} ({history.stop_reason}): "
          f"val {final['default']:.3f} (mean of {args.folds} fold(s)), test {test_acc:.3f}; "
          f"saved {checkpoint}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
