"""One trial of the Xylo-constrained Braille search: train a recurrent LIF network that fits
Xylo Audio 2, then quantise it to the chip's 8-bit weights and bit-shift decays, re-measure it
and report what the chip would do.

It stands on spiketune's public API alone: the Braille letters and the split of the Braille
e-prop example (stratified 80/10/10, seed 0) from ``spiketune.data``, the network and its
training from ``spiketune.snn``, the chip from ``spiketune.hardware``. Run by hand, outside any
experiment, it works too::

    python main_hpo.py --epochs-cap 3        # default parameters, reports printed

The event file comes from ``--data PATH``, else ``$SPIKETUNE_BRAILLE_DATA``, else spiketune's
data cache (downloaded there once).

Every epoch reports ``{"default": val_acc, "spikes_per_sample", "silent_fraction", ...}``
(the ``Silent`` assessor reads ``spikes_per_sample``). The final result holds the float
network's ``default`` (validation accuracy) and ``test``, the quantised network's
``quant_val_acc`` and ``quant_test_acc``, its ``synops_per_sample`` on the validation split
(the two objectives), every other figure of ``spiketune.hardware.assess_network`` and its
``constraints`` (one value per design rule, > 0 = broken: the tuner learns from them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import nni  # spiketune puts its stand-in for NNI's trial API on a trial's PYTHONPATH
except ImportError:  # run by hand
    import spiketune.compat.nni as nni

import torch

from spiketune.data import Dataset, load_braille, stratified_split
from spiketune.hardware import assess_network
from spiketune.snn import (
    EpochMetrics,
    RecurrentSNN,
    TrainConfig,
    Trainer,
    configs_from_params,
    predict,
    save_checkpoint,
)
from spiketune.trial import Predictions, offer_best_model

TARGET = "xylo-audio2"

#: Environment variable naming the Braille event file or its directory (as in braille_eprop).
DATA_ENV = "SPIKETUNE_BRAILLE_DATA"
#: The split of the Braille e-prop example: stratified 80/10/10 with seed 0, for every trial.
SPLIT_RATIOS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0
#: Parameters that describe the data (options of ``spiketune.data.load_braille``).
DATA_KEYS = ("threshold", "letters", "channels", "bin_size", "clip")

#: What a trial uses for any parameter the search space does not give: the 7 letters of the
#: reduced task at threshold 10 in 12 merged taxel channels (ON | OFF events of one taxel in
#: one channel; Xylo Audio 2 has 16 inputs), a 40-neuron LIF layer with reset by subtraction
#: (the chip's neuron), e-prop, 20 epochs. The binning and the training loop are those of the
#: measured front in README.md (binary 10 ms bins, the cross-entropy of the readout summed over
#: the sample, raw weights, constant learning rate, patience 10).
DEFAULT_PARAMS: dict[str, Any] = {
    "threshold": 10,
    "letters": "reduced",
    "channels": "merged",
    "bin_size": 0.01,
    "clip": True,
    "loss": "ce_summed",
    "ema_decay": None,
    "lr_schedule": "constant",
    "patience": 10,
    "n_rec": 40,
    "neuron": "lif",
    "reset": "subtract",
    "readout_bias": False,  # Xylo takes no bias (Rockpool's mapper drops it)
    "tau_mem": 0.02,
    "tau_out": 0.02,
    "v_th": 1.0,
    "gain_in": 2.0,
    "gain_rec": 0.5,
    "reg_strength": 0.05,
    "reg_target_hz": 10.0,
    "lr": 0.005,
    "batch_size": 32,
    "epochs": 20,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"Braille event file or its directory (else ${DATA_ENV}, else "
                             "spiketune's data cache, downloaded there once)")
    parser.add_argument("--epochs-cap", type=int, default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="keep N samples per class before splitting (smoke runs)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: these networks are small, and trials run "
                             "side by side)")
    parser.add_argument("--out", default="manual_trial",
                        help="where to save the model when run by hand")
    return parser.parse_args(argv)


def load_data(
    options: Mapping[str, Any], path: str | None = None, *, per_class: int | None = None
) -> tuple[Dataset, Dataset, Dataset, str]:
    """Train, validation and test parts of the Braille letters binned as ``options`` say (the
    keys of :data:`DATA_KEYS`), and the digest naming the split. ``per_class`` keeps the first
    N samples of each class (smoke runs)."""
    dataset = load_braille(path or os.environ.get(DATA_ENV) or None, progress=False,
                           **{key: options[key] for key in DATA_KEYS})
    if per_class is not None:
        keep = [int(i) for c in range(dataset.info.n_classes)
                for i in (dataset.labels == c).nonzero().flatten()[:per_class]]
        dataset = dataset.subset(sorted(keep))
    split = stratified_split(dataset.labels, SPLIT_RATIOS, seed=SPLIT_SEED)
    train, val, test = dataset.split(split)
    return train, val, test, split.digest()


def build(params: Mapping[str, Any], train: Dataset) -> tuple[RecurrentSNN, TrainConfig]:
    """The network and its training configuration: every parameter that is not about the data
    names a field of ``SNNConfig`` or ``TrainConfig``; sizes and time step come from the data."""
    chosen = {k: v for k, v in params.items() if k not in DATA_KEYS}
    info = train.info
    snn_config, train_config = configs_from_params(
        chosen, {"n_in": info.n_inputs, "n_out": info.n_classes, "dt": info.dt}
    )
    return RecurrentSNN(snn_config, seed=train_config.seed), train_config


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **nni.get_next_parameter()}
    if args.epochs_cap is not None:
        params["epochs"] = min(int(params["epochs"]), args.epochs_cap)
    torch.manual_seed(int(params.get("seed", 0)))
    torch.set_num_threads(max(1, args.threads))

    options = {key: params[key] for key in DATA_KEYS}
    train, val, test, digest = load_data(options, args.data, per_class=args.subset)
    net, train_config = build(params, train)
    print(f"trial {nni.get_trial_id()}: {train.info.name}, {net}, "
          f"{torch.get_num_threads()} thread(s) on the CPU", flush=True)

    def on_epoch(m: EpochMetrics) -> None:
        print(f"epoch {m.epoch}: val acc {m.val_acc:.3f}, {m.spikes_per_sample:.1f} "
              f"spikes/sample ({m.seconds:.1f} s)", flush=True)
        nni.report_intermediate_result({
            "default": m.val_acc,
            "train_acc": m.train_acc,
            "spikes_per_sample": m.spikes_per_sample,
            "silent_fraction": m.silent_fraction,
            "synops_per_sample": m.synops_per_sample,
        })

    history = Trainer(net, train_config, callback=on_epoch).fit(
        (train.inputs, train.labels), (val.inputs, val.labels)
    )
    best = history.best
    if best is None or best.val_acc is None:
        sys.exit(f"training diverged before the first epoch ended ({history.stop_reason})")

    # The network holds the weights of its best validation epoch. What would the chip do?
    assessment = assess_network(net, TARGET, val=val, test=test)
    m = assessment.metrics
    final: dict[str, Any] = {
        "default": m["val_acc"],
        "test": m["test_acc"],
        "epoch": best.epoch,
        "epochs_run": len(history.epochs),
        **{k: v for k, v in m.items() if k not in ("val_acc", "test_acc")},
        "feasible": float(assessment.feasible),
        "constraints": assessment.constraints,
        "seconds": time.perf_counter() - started,
    }
    for v in assessment.violations:
        print(f"violation: {v}", flush=True)

    # Keep the quantised network (the one the chip would run) as the experiment's best model if
    # it fits and no fitting one was more accurate (ties: fewer synaptic operations).
    deployed = assessment.quantised.network if assessment.quantised is not None else net
    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(
        out_dir / "best_model.pt", deployed, train_config=train_config, history=history,
        extra={"split_digest": digest, "data": options, "classes": list(train.info.classes),
               "metrics": final, "target": TARGET},
    )
    if assessment.feasible:
        with torch.no_grad():
            predicted = predict(deployed.simulate(test.inputs).readout,
                                deployed.config.loss_steps)
        offer_best_model(
            (m["quant_val_acc"], -m["synops_per_sample"]),
            {"best_model.pt": checkpoint},
            {k: final[k] for k in ("quant_val_acc", "quant_test_acc", "synops_per_sample")},
            Predictions(test.labels, predicted, list(train.info.classes), split="test"),
            parameters=params,
        )
    print(f"val {m['val_acc']:.3f} -> 8-bit {m['quant_val_acc']:.3f}, test {m['test_acc']:.3f} "
          f"-> {m['quant_test_acc']:.3f}, {m['synops_per_sample']:.0f} synops/sample, "
          f"{'fits' if assessment.feasible else 'does not fit'} {TARGET}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
