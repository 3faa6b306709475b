"""One trial: train a recurrent spiking network on the Braille letters with the parameters the
tuner chose, report every epoch, report the result, offer the model as the experiment's best.

The trial code of an NNI experiment runs unchanged: ``import nni`` finds spiketune's stand-in
when spiketune launches the trial. By hand, outside any experiment, it runs too::

    python main_hpo.py                          # the defaults below, reports printed
    python main_hpo.py --params p.json --epochs-cap 3 --data ~/data/braille

Every epoch reports ``{"default": val_acc, "train_acc", "train_loss", "val_loss",
"spikes_per_sample"}``; the final result is ``{"default": best validation accuracy, "test":
test accuracy of the weights of that epoch, "train": training accuracy at that epoch, "epoch":
that epoch, "spikes_per_sample": recurrent spikes per validation sample at that epoch, ...}``.
"""

from __future__ import annotations

import argparse
import os
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
from spiketune.trial import Predictions, offer_best_model

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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **nni.get_next_parameter()}
    setup_hpo.seed_everything(int(params.get("seed", 0)))
    torch.set_num_threads(setup_hpo.trial_threads(args.threads))
    device = setup_hpo.trial_device()

    data = setup_hpo.load_data(
        setup_hpo.data_options(params), args.data, per_class=args.subset
    )
    net, train_config = train_hpo.build(
        params, data.info, device=device, epochs_cap=args.epochs_cap
    )
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {len(data.train)}/{len(data.val)}/"
          f"{len(data.test)} samples, {net}, {torch.get_num_threads()} thread(s) on {device}",
          flush=True)

    def on_epoch(m: EpochMetrics) -> None:
        print(f"epoch {m.epoch}: train acc {m.train_acc:.3f} loss {m.train_loss:.3f}, "
              f"val acc {m.val_acc:.3f} loss {m.val_loss:.3f}, "
              f"{m.spikes_per_sample:.0f} spikes/sample ({m.seconds:.1f} s)", flush=True)
        nni.report_intermediate_result({
            "default": m.val_acc,
            "train_acc": m.train_acc,
            "train_loss": m.train_loss,
            "val_loss": m.val_loss,
            "spikes_per_sample": m.spikes_per_sample,
        })

    _, history = train_hpo.train(net, train_config, data.train, data.val, on_epoch)
    best = history.best
    if best is None or best.val_acc is None:
        sys.exit(f"training diverged before the first epoch ended ({history.stop_reason})")

    # The network now holds the weights of its best validation epoch: test them once.
    predicted = train_hpo.predict_classes(net, data.test)
    test_acc = int((predicted == data.test.labels).sum()) / len(data.test)
    final = {
        "default": best.val_acc,
        "test": test_acc,
        "train": best.train_acc,
        "epoch": best.epoch,
        "spikes_per_sample": best.spikes_per_sample,
        "rate_hz": best.rate_hz,
        "synops_per_sample": best.synops_per_sample,
        "epochs_run": len(history.epochs),
        "seconds": time.perf_counter() - started,
    }

    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(
        out_dir / "best_model.pt", net, train_config=train_config, history=history,
        extra={"split_digest": data.split_digest, "data": setup_hpo.data_options(params),
               "classes": list(data.info.classes), "metrics": final},
    )
    # Kept as the experiment's best model if no trial has done better on validation, ties
    # going to the model that spikes less.
    offer_best_model(
        (best.val_acc, -best.spikes_per_sample),
        {"best_model.pt": checkpoint},
        {**final, "stop_reason": history.stop_reason, "split_digest": data.split_digest},
        Predictions(data.test.labels, predicted, list(data.info.classes), split="test"),
        parameters=params,
    )
    print(f"best epoch {best.epoch} of {len(history.epochs)} ({history.stop_reason}): "
          f"val {best.val_acc:.3f}, test {test_acc:.3f}; saved {checkpoint}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
