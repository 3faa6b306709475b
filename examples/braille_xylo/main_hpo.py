"""One trial of the Xylo-constrained Braille search: train a recurrent LIF network that fits
Xylo Audio 2, quantise it to the chip's 8-bit weights and bit-shift decays, export it for
Rockpool and score the exported graph: the figure that counts is the accuracy of that graph.

It stands on spiketune's public API alone: the threshold-1 Braille letters and a fixed split
from ``spiketune.data``, the network and its training from ``spiketune.snn``, the chip from
``spiketune.hardware``, the export from ``spiketune.nir``. Run by hand it works too::

    python main_hpo.py --data braille_reduced_th1_pool.pt --epochs-cap 3
    python main_hpo.py --params p.json --seed 2 --out chosen/seed2   # one retraining seed

**Data** (first hit wins): ``--data PATH`` (the pool file ``braille_reduced_th1_pool.pt``, a
directory holding it, or the archive's threshold-1 event file), else
``$SPIKETUNE_BRAILLE_TH1_DATA`` (the same), else the archive's threshold-1 event file from
spiketune's data cache (``load_braille(preset="nir")``, downloaded there once). All give 12
channels (ON | OFF of each taxel), 0/1 in 5 ms bins, 256 steps; a trial rebins them to
``bin_size`` (10 ms as searched, 20 ms by hand) as event counts, or 0/1 with ``clip``. The split is
``stratified_split(labels, (0.8, 0.1, 0.1), seed=0)``, named by its digest in every result.

Every epoch reports ``{"default": val_acc, "spikes_per_sample", ...}`` of the float network
(the ``Silent`` assessor reads ``spikes_per_sample``). The final result holds, for the
network of the best validation epoch: the float network's ``val_acc``/``test_acc``, the 8-bit
network's ``quant_val_acc``/``quant_test_acc`` (spiketune's simulation), the exported graph's
``rockpool_val_acc``/``rockpool_test_acc`` (run as Rockpool's LIFTorch runs it),
``default`` = ``rockpool_val_acc`` and ``test`` = ``rockpool_test_acc``, ``synops_per_sample``
(8-bit network, validation part), every other figure of ``assess_network``, ``constraints``
(one value per chip rule, > 0 = broken) and ``split_digest``. The same goes to
``<out>/result.json`` with the parameters (the protocol of ``spiketune.engine.retrain``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import nni  # spiketune puts its stand-in for NNI's trial API on a trial's PYTHONPATH
except ImportError:  # run by hand
    import spiketune.compat.nni as nni

import torch

import spiketune.nir
from spiketune import ConfigError, DataError, Problem
from spiketune.data import (
    Dataset,
    load_braille,
    load_braille_pool,
    stratified_resplits,
    stratified_split,
)
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
from spiketune.trial import Predictions, flat_parameters, offer_best_model

TARGET = "xylo-audio2"
#: The importer the network is exported for. The network is trained with the chip's own
#: neuron (below), so the export needs no approximation: Rockpool's LIFTorch gives the 8-bit
#: network's spikes exactly (docs/hardware.md, "NIR export").
EXPORT_TARGET = "rockpool"
APPROXIMATE: frozenset[str] = frozenset()

#: Environment variable naming the threshold-1 pool file, its directory or an event file.
DATA_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"
#: The pool's file name, looked for in a directory given as the data.
POOL_FILE = "braille_reduced_th1_pool.pt"
#: The fixed split: stratified 80/10/10 with seed 0, for every trial and every seed.
SPLIT_RATIOS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0
#: Parameters that describe the encoding, not the network: ``bin_size`` in seconds (also the
#: network's time step ``dt``), ``clip``: 0/1 per bin instead of event counts.
DATA_KEYS = ("bin_size", "clip")

#: What the chip fixes, whatever the parameters say: Xylo's neuron (current-based LIF whose
#: membrane drops by v_th at the spike, several spikes in a step, as Rockpool's LIFTorch runs
#: it), no refractory period, no readout bias; that neuron trains by BPTT.
CHIP: dict[str, Any] = {
    "neuron": "cuba_lif",
    "reset": "subtract_at_spike",
    "max_spikes": None,
    "refractory_steps": 0,
    "readout_bias": False,
    "rule": "bptt",
}
#: Training choices the search leaves alone (those of the braille_eprop template): the
#: cross-entropy of the readout summed over the sample (or its last ``loss_window`` seconds),
#: a moving average of the weights under a cosine-annealed learning rate (the best epoch on
#: 105 validation samples is less a matter of luck), early stopping after 15 flat epochs.
FIXED: dict[str, Any] = {
    "loss": "ce_summed",
    "ema_decay": 0.995,
    "lr_schedule": "cosine",
    "patience": 15,
    "monitor": "val_acc",
}

#: What a trial uses for any parameter the search space does not give (all of them by hand).
#: ``alpha``/``kappa``/``alpha_syn`` are the membrane, readout and synaptic decays per step,
#: chosen among bit shifts ``1 - 2**-k`` so that the chip's decays are the trained ones. A
#: rate regulariser (about 1 Hz) and weak initial recurrence keep the activity, and with it
#: the synaptic operations and the spikes per step, low.
DEFAULT_PARAMS: dict[str, Any] = {
    "bin_size": 0.01,
    "clip": True,
    "n_rec": 58,
    "alpha_syn": 0.5,
    "alpha": 0.9375,
    "kappa": 0.9375,
    "loss_window": 0.4,
    "v_th": 1.2,
    "gain_in": 3.0,
    "gain_rec": 0.2,
    "reg_strength": 5.0,
    "reg_target_hz": 1.0,
    "weight_decay": 1e-4,
    "lr": 0.003,
    "batch_size": 16,
    "epochs": 40,
}


@dataclass(frozen=True)
class BrailleSplit:
    """The three parts of the fixed split, and the digest that names it."""

    train: Dataset
    val: Dataset
    test: Dataset
    split_digest: str


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"threshold-1 pool file, its directory, or the archive's threshold-1 "
                             f"event file (else ${DATA_ENV}, else spiketune's data cache)")
    parser.add_argument("--epochs-cap", type=int, default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="keep N samples per class before splitting (smoke runs)")
    parser.add_argument("--fold", type=int, default=0,
                        help="train/validation re-split around the fixed test part (default 0: "
                             "the fixed split; the launcher scores finalists on 1 and 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (default 1: these networks are small, and trials run "
                             "side by side)")
    parser.add_argument("--params", default=None,
                        help="JSON file of parameters, when run by hand")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed (weights, shuffling); overrides the parameters'")
    parser.add_argument("--out", default="manual_trial",
                        help="where to save the model when run by hand (a trial uses its own "
                             "directory)")
    return parser.parse_args(argv)


def load_native(path: str | os.PathLike[str] | None = None) -> Dataset:
    """The threshold-1 letters as the pool holds them (5 ms, 0/1, 256 steps, 12 channels).

    ``path``, else ``$SPIKETUNE_BRAILLE_TH1_DATA``: a ``.pt`` pool file or a directory holding
    :data:`POOL_FILE` is read by ``load_braille_pool``; anything else is taken for the
    archive's threshold-1 event file (or its directory). Neither: the event file from
    spiketune's data cache, downloaded there once. A DataError names all three ways.
    """
    given = path or os.environ.get(DATA_ENV) or None
    location = Path(given).expanduser() if given else None
    try:
        if location is not None and (location.suffix == ".pt" or (location / POOL_FILE).is_file()):
            return load_braille_pool(location)
        return load_braille(location, preset="nir", progress=False)
    except DataError as err:
        raise DataError(
            f"no threshold-1 Braille data ({err}). Give the pool file {POOL_FILE} (or its "
            f"directory, or the archive's threshold-1 event file) with --data PATH, or set "
            f"${DATA_ENV}, or let spiketune download the event file once into its data cache"
        ) from None


def load_data(
    options: Mapping[str, Any], path: str | os.PathLike[str] | None = None, *,
    per_class: int | None = None, fold: int = 0,
) -> BrailleSplit:
    """Load, rebin (``options``: the keys of :data:`DATA_KEYS`) and split the letters.

    ``per_class`` keeps N samples of each class, drawn by a shuffle of seed 0, before the
    split (smoke runs: the digest then names that smaller split). ``fold`` > 0 takes the
    fold-th train/validation re-split around the same test part (``stratified_resplits``;
    fold 0 is the fixed split itself): the launcher scores its finalists on other validation
    samples than the search's.
    """
    dataset = load_native(path).rebin(float(options["bin_size"]), clip=bool(options["clip"]))
    if per_class is not None:
        dataset = dataset.per_class(per_class, seed=SPLIT_SEED)
    if fold:
        split = stratified_resplits(dataset.labels, fold + 1, SPLIT_RATIOS, seed=SPLIT_SEED)[fold]
    else:
        split = stratified_split(dataset.labels, SPLIT_RATIOS, seed=SPLIT_SEED)
    train, val, test = dataset.split(split)
    return BrailleSplit(train, val, test, split.digest())


def build(params: Mapping[str, Any], train: Dataset, *, epochs_cap: int | None = None
          ) -> tuple[RecurrentSNN, TrainConfig]:
    """The network and its training configuration: parameters name fields of ``SNNConfig``
    and ``TrainConfig``; sizes and the time step come from the data; :data:`CHIP` wins over
    everything (a parameter that contradicts it is an error, not silently replaced)."""
    flat = flat_parameters(params)
    clash = [Problem(k, flat[k], f"{CHIP[k]!r}: Xylo Audio 2 has no other")
             for k in CHIP if k in flat and flat[k] != CHIP[k]]
    if clash:
        raise ConfigError(clash)
    chosen = {k: v for k, v in flat.items() if k not in DATA_KEYS}
    info = train.info
    defaults = {**FIXED, "n_in": info.n_inputs, "n_out": info.n_classes, "dt": info.dt}
    snn_config, train_config = configs_from_params({**chosen, **CHIP}, defaults)
    if epochs_cap is not None and train_config.epochs > epochs_cap:
        train_config = TrainConfig.from_params({**train_config.model_dump(),
                                                "epochs": epochs_cap})
    return RecurrentSNN(snn_config, seed=train_config.seed), train_config


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    params = {**DEFAULT_PARAMS, **nni.get_next_parameter()}
    if args.seed is not None:
        params["seed"] = args.seed
    torch.manual_seed(int(params.get("seed", 0)))
    torch.set_num_threads(max(1, args.threads))

    options = {key: params[key] for key in DATA_KEYS}
    data = load_data(options, args.data, per_class=args.subset, fold=args.fold)
    net, train_config = build(params, data.train, epochs_cap=args.epochs_cap)
    print(f"trial {nni.get_trial_id()}: {data.train.info.name}, {len(data.train)}/"
          f"{len(data.val)}/{len(data.test)} samples, split {data.split_digest[:12]}, {net}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)

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
        (data.train.inputs, data.train.labels), (data.val.inputs, data.val.labels)
    )
    best = history.best
    if best is None or best.val_acc is None:
        sys.exit(f"training diverged before the first epoch ended ({history.stop_reason})")

    # The network holds the weights of its best validation epoch. What would the chip do?
    assessment = assess_network(net, TARGET, val=data.val, test=data.test)
    assert assessment.quantised is not None  # Xylo has 8-bit weights: always quantised
    deployed = assessment.quantised.network
    m = assessment.metrics

    # Export the 8-bit network for Rockpool and score the file as Rockpool would run it.
    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    nir_file = spiketune.nir.export(deployed, out_dir / "rockpool.nir", target=EXPORT_TARGET,
                                    approximate=APPROXIMATE)
    on_val = spiketune.nir.check_export(deployed, nir_file, data.val)
    on_test = spiketune.nir.check_export(deployed, nir_file, data.test)

    final: dict[str, Any] = {
        "default": on_val.export_accuracy,
        "test": on_test.export_accuracy,
        "rockpool_val_acc": on_val.export_accuracy,
        "rockpool_test_acc": on_test.export_accuracy,
        "rockpool_val_agreement": on_val.agreement,
        "rockpool_test_agreement": on_test.agreement,
        "epoch": best.epoch,
        "epochs_run": len(history.epochs),
        **m,
        "feasible": float(assessment.feasible),
        "constraints": assessment.constraints,
        "split_digest": data.split_digest,
        "fold": args.fold,
        "seconds": time.perf_counter() - started,
    }
    for v in assessment.violations:
        print(f"violation: {v}", flush=True)

    checkpoint = save_checkpoint(
        out_dir / "best_model.pt", deployed, train_config=train_config, history=history,
        extra={"split_digest": data.split_digest, "data": options, "subset": args.subset,
               "classes":
               list(data.train.info.classes), "metrics": final, "target": TARGET,
               "export": {"target": EXPORT_TARGET, "approximate": sorted(APPROXIMATE)}},
    )
    (out_dir / "result.json").write_text(
        json.dumps({**final, "parameters": params}, indent=2, sort_keys=True, default=str),
        encoding="utf-8")
    # Keep the 8-bit network (and its Rockpool file) as the experiment's best model if it fits
    # and no fitting one validated better on Rockpool (ties: fewer synaptic operations). The
    # predictions shown in the report are the 8-bit network's in spiketune's simulation.
    if assessment.feasible:
        with torch.no_grad():
            predicted = predict(deployed.simulate(data.test.inputs).readout,
                                deployed.config.loss_steps)
        offer_best_model(
            (final["rockpool_val_acc"], -final["synops_per_sample"]),
            {"best_model.pt": checkpoint, "rockpool.nir": nir_file},
            {k: final[k] for k in ("rockpool_val_acc", "rockpool_test_acc", "quant_val_acc",
                                   "quant_test_acc", "synops_per_sample", "split_digest")},
            Predictions(data.test.labels, predicted, list(data.train.info.classes),
                        split="test"),
            parameters=params,
        )
    print(f"val {m['val_acc']:.3f} -> 8-bit {m['quant_val_acc']:.3f} -> rockpool "
          f"{final['rockpool_val_acc']:.3f}; test {m['test_acc']:.3f} -> 8-bit "
          f"{m['quant_test_acc']:.3f} -> rockpool {final['rockpool_test_acc']:.3f}; "
          f"{m['synops_per_sample']:.0f} synops/sample, "
          f"{'fits' if assessment.feasible else 'does not fit'} {TARGET}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
