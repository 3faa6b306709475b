"""One trial: read the NIR graph, map it to a trainable network, scale its time constants and
threshold by the trial's factors, fine-tune it by surrogate BPTT on the threshold-1 Braille
pool, report every epoch and the result, offer the model as the experiment's best.

::

    python main_hpo.py --graph braille_cuba.nir --data braille_reduced_th1_pool.pt
    python main_hpo.py --params p.json --seed 2 --out chosen/seed2    # one retraining seed

The split is ``stratified_split(labels, (0.8, 0.1, 0.1), seed=0)``; the trial is judged by
its best validation accuracy, and its network at that epoch is tested once on the test part.
Every epoch reports ``{"default": validation accuracy, "train_acc", "train_loss", "val_loss",
"spikes_per_sample"}``; the final result ``{"default", "test", "train", "epoch",
"spikes_per_sample", "split_digest"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

try:
    import nni  # spiketune puts its stand-in for NNI's trial API on a trial's PYTHONPATH
except ImportError:  # run by hand, without NNI installed
    import spiketune.compat.nni as nni

import setup_hpo
import train_hpo

import spiketune.nir
from spiketune.snn import EpochMetrics, Trainer, save_checkpoint
from spiketune.trial import Predictions, offer_best_model, start_trial

#: What a trial uses for any parameter the search space does not give.
DEFAULT_PARAMS: dict[str, Any] = {"lr": 0.003, "batch_size": 16, "epochs": 30}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", default="braille_cuba.nir", help="the NIR graph to fine-tune")
    p.add_argument("--data", default=None, help=f"threshold-1 pool file or its directory "
                   f"(else ${setup_hpo.DATA_ENV})")
    p.add_argument("--epochs-cap", type=int, default=None, help="train at most this many epochs")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="keep N samples per class before splitting (smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--out", default="manual_trial", help="model directory when run by hand")
    p.add_argument("--params", default=None,
                   help="JSON file of parameters, when run by hand (read by `nni`)")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed (order of the samples; the weights are the graph's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    params, device = start_trial({**DEFAULT_PARAMS, **nni.get_next_parameter()},
                                 seed=args.seed, threads=args.threads)
    graph = Path(args.graph).expanduser().resolve()
    dt = spiketune.nir.read(graph).metadata.get("dt")
    if dt is None:
        sys.exit(f"{graph}: the graph's metadata has no 'dt' (the step its time constants are "
                 "written for, seconds, also the data's bin size); write it with a dt")
    dt = float(dt)
    options = setup_hpo.data_options({"bin_size": dt}, pool=True)
    data = setup_hpo.load_data(options, args.data, per_class=args.subset)
    net, train_config = train_hpo.build(graph, params, data.info, device=device,
                                        epochs_cap=args.epochs_cap)
    print(f"trial {nni.get_trial_id()}: {graph.name} -> {net}, {len(data.train)}/"
          f"{len(data.val)}/{len(data.test)} samples, split {data.split_digest[:12]}", flush=True)

    def on_epoch(m: EpochMetrics) -> None:
        print(f"epoch {m.epoch}: train acc {m.train_acc:.3f}, val acc {m.val_acc:.3f}", flush=True)
        nni.report_intermediate_result({
            "default": m.val_acc, "train_acc": m.train_acc, "train_loss": m.train_loss,
            "val_loss": m.val_loss, "spikes_per_sample": m.spikes_per_sample,
        })

    history = Trainer(net, train_config, callback=on_epoch).fit(
        (data.train.inputs, data.train.labels), (data.val.inputs, data.val.labels)
    )
    best = history.best
    if best is None or best.val_acc is None:
        sys.exit(f"training diverged before the first epoch ended ({history.stop_reason})")
    predicted = train_hpo.predict_classes(net, data.test)
    test_acc = int((predicted == data.test.labels).sum()) / len(data.test)
    final = {"default": best.val_acc, "test": test_acc, "train": best.train_acc,
             "epoch": best.epoch, "spikes_per_sample": best.spikes_per_sample,
             "split_digest": data.split_digest}
    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(out_dir / "best_model.pt", net, train_config=train_config,
                                 history=history,
                                 extra={"graph": str(graph), "metrics": final,
                                        "split_digest": data.split_digest, "data": options})
    (out_dir / "result.json").write_text(
        json.dumps({**final, "parameters": params}, indent=2, sort_keys=True, default=str),
        encoding="utf-8")
    offer_best_model(
        (final["default"], -best.spikes_per_sample), {"best_model.pt": checkpoint}, final,
        Predictions(data.test.labels, predicted, list(data.info.classes), split="test"),
        parameters=params,
    )
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
