"""One trial of the Xylo-constrained Braille search: train a recurrent LIF network that fits
Xylo Audio 2, then quantise it to the chip's 8-bit weights and bit-shift decays, re-measure it
and report what the chip would do.

Data, seeds and training come from the Braille e-prop example (``../braille_eprop``:
``setup_hpo.py``, ``train_hpo.py``); only what the chip changes is here. Run by hand, outside
any experiment, it works too::

    python main_hpo.py --epochs-cap 3        # default parameters, reports printed

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
from pathlib import Path
from typing import Any

try:
    import nni  # spiketune puts its stand-in for NNI's trial API on a trial's PYTHONPATH
except ImportError:  # run by hand
    import spiketune.compat.nni as nni

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "braille_eprop"))

import setup_hpo  # from the Braille e-prop example
import torch
import train_hpo

from spiketune.hardware import assess_network
from spiketune.snn import EpochMetrics, save_checkpoint
from spiketune.trial import Predictions, offer_best_model

TARGET = "xylo-audio2"

#: What a trial uses for any parameter the search space does not give: the 12 merged taxel
#: channels (ON | OFF events of one taxel in one channel; Xylo Audio 2 has 16 inputs), a
#: 40-neuron LIF layer with reset by subtraction (the chip's neuron), e-prop, 20 epochs. The
#: binning and the training loop are pinned to those of the measured front in README.md (binary
#: 10 ms bins, raw weights, constant learning rate, patience 10), not the shared defaults.
DEFAULT_PARAMS: dict[str, Any] = {
    "channels": "merged",
    "bin_size": 0.01,
    "clip": True,
    "ema_decay": None,
    "lr_schedule": "constant",
    "patience": 10,
    "n_rec": 40,
    "neuron": "lif",
    "reset": "subtract",
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
    parser.add_argument("--data", default=None, help="Braille event file or its directory")
    parser.add_argument("--epochs-cap", type=int, default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="keep N samples per class before splitting (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: this trial's share of the cores)")
    parser.add_argument("--out", default="manual_trial",
                        help="where to save the model when run by hand")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **nni.get_next_parameter()}
    setup_hpo.seed_everything(int(params.get("seed", 0)))
    torch.set_num_threads(setup_hpo.trial_threads(args.threads))
    device = setup_hpo.trial_device()

    data = setup_hpo.load_data(setup_hpo.data_options(params), args.data, per_class=args.subset)
    net, train_config = train_hpo.build(params, data.info, device=device,
                                        epochs_cap=args.epochs_cap)
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {net}, "
          f"{torch.get_num_threads()} thread(s) on {device}", flush=True)

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

    _, history = train_hpo.train(net, train_config, data.train, data.val, on_epoch)
    best = history.best
    if best is None or best.val_acc is None:
        sys.exit(f"training diverged before the first epoch ended ({history.stop_reason})")

    # The network holds the weights of its best validation epoch. What would the chip do?
    net = net.cpu()
    assessment = assess_network(net, TARGET, val=data.val, test=data.test)
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
        extra={"split_digest": data.split_digest, "data": setup_hpo.data_options(params),
               "classes": list(data.info.classes), "metrics": final, "target": TARGET},
    )
    if assessment.feasible:
        predicted = train_hpo.predict_classes(deployed, data.test)
        offer_best_model(
            (m["quant_val_acc"], -m["synops_per_sample"]),
            {"best_model.pt": checkpoint},
            {k: final[k] for k in ("quant_val_acc", "quant_test_acc", "synops_per_sample")},
            Predictions(data.test.labels, predicted, list(data.info.classes), split="test"),
            parameters=params,
        )
    print(f"val {m['val_acc']:.3f} -> 8-bit {m['quant_val_acc']:.3f}, test {m['test_acc']:.3f} "
          f"-> {m['quant_test_acc']:.3f}, {m['synops_per_sample']:.0f} synops/sample, "
          f"{'fits' if assessment.feasible else 'does not fit'} {TARGET}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
