"""One trial: train a recurrent spiking network on the 20 Mihalas–Niebur spike patterns with
the parameters the tuner chose, report every epoch, report the result, offer the model as the
experiment's best.

The trial code of an NNI experiment runs unchanged: ``import nni`` finds spiketune's stand-in
when spiketune launches the trial. By hand, outside any experiment, it runs too::

    python main_hpo.py                          # the defaults below, reports printed
    python main_hpo.py --params p.json --epochs-cap 3
    python main_hpo.py --params p.json --seed 2 --out chosen/seed2   # one retraining seed

With ``--folds k`` the trial trains k networks in lock-step, one per stratified re-split of
the 1,800 samples outside the test part (which never changes), and is judged by their mean
validation accuracy: a steadier signal than one 200-sample validation set. Every epoch reports
``{"default": mean validation accuracy over the folds at that epoch, "train_acc",
"train_loss", "val_loss", "spikes_per_sample"}`` (means too); the final result is
``{"default": mean over the folds of each one's best validation accuracy, "test": test
accuracy of the first fold's network at its best epoch, "train", "epoch",
"spikes_per_sample": of that network, "split_digest": the data split's digest,
"val_fold<i>": each fold's best validation accuracy, ...}``. The first fold's network is the
model saved and offered as the experiment's best; a ``result.json`` beside it holds the
final result, the split digest and the generator's options (the data are always the
generator's defaults, ``setup_hpo.GENERATOR``).

In population mode (``main.py --population K``) one process trains up to K trials together
as batched populations (:func:`spiketune.trial.train_members`), each reported as its own
trial, with the same reports, result and model as alone.
"""

from __future__ import annotations

import argparse
import json
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
from spiketune.snn import EpochMetrics, fold_best, fold_result, train_folds
from spiketune.trial import (
    Member,
    Predictions,
    PreparedMember,
    add_trial_options,
    epoch_report,
    in_population,
    keep_trial_model,
    seed_everything,
    start_trial,
    train_members,
    trial_deadline,
    trial_device,
    trial_output_dir,
    trial_threads,
)

#: What a trial uses for any parameter the search space does not give (and all of them when
#: run by hand): a plain e-prop LIF network on 10 ms bins of spike counts (the data defaults
#: of ``setup_hpo``), the loss summed over the whole sample. Capped at 25 epochs it tested at
#: 89 %, its errors nearly all on the sparse classes (README, "Results"): a starting point that
#: learns, not the configuration to quote.
DEFAULT_PARAMS: dict[str, Any] = {
    "n_rec": 128,
    "tau_mem": 0.05,
    "tau_out": 0.3,
    "v_th": 1.0,
    "gain_in": 2.0,
    "gain_rec": 0.5,
    "reg_strength": 0.1,
    "reg_target_hz": 10.0,
    "lr": 0.002,
    "batch_size": 32,
    "epochs": 40,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_trial_options(parser)  # --epochs-cap, --subset, --threads, --out, --params, --folds...
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    args = parse_args(argv)
    if args.folds < 1:
        sys.exit(f"--folds must be at least 1, got {args.folds}")
    if in_population():
        return main_population(args)
    started = time.perf_counter()
    params, device = start_trial({**DEFAULT_PARAMS, **nni.get_next_parameter()},
                                 seed=args.seed, threads=args.threads)

    options = setup_hpo.data_options(params)
    data = setup_hpo.load_data(options, per_class=args.subset, folds=args.folds)
    built = [train_hpo.build(params, data.info, device=device, epochs_cap=args.epochs_cap)
             for _ in data.folds]
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {len(data.train)}/{len(data.val)}/"
          f"{len(data.test)} samples, {args.folds} fold(s), split {data.split_digest[:12]}, "
          f"{built[0][0]}, {torch.get_num_threads()} thread(s) on {device}", flush=True)

    def on_epoch(epoch: int, latest: list[EpochMetrics]) -> None:
        nni.report_intermediate_result(epoch_report(epoch, latest))

    _, histories = train_folds(built, data.folds, on_epoch,
                               deadline=trial_deadline(time_cap=args.time_cap))
    return finish(params, data, options, built, histories, args, started,
                  trial_output_dir(args.out))


def main_population(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Population mode: the trials of this process train as batched populations, each
    reported as its own trial as soon as its training is over. A member whose parameters are
    invalid, or whose training diverges, fails alone."""
    torch.set_num_threads(trial_threads(args.threads))
    device = trial_device()
    loaded: dict[str, setup_hpo.PatternData] = {}  # one load per encoding asked for
    print(f"population mode: {args.folds} fold(s), {torch.get_num_threads()} thread(s) on "
          f"{device}", flush=True)

    def prepare(member: Member) -> PreparedMember:
        began = time.perf_counter()  # the trial's clock (a refill joins later)
        params = {**DEFAULT_PARAMS, **member.parameters}
        if args.seed is not None:  # a retraining seed, as start_trial takes it alone
            params["seed"] = args.seed
        options = setup_hpo.data_options(params)
        key = json.dumps(options, sort_keys=True)
        if key not in loaded:
            loaded[key] = setup_hpo.load_data(options, per_class=args.subset,
                                              folds=args.folds)
        data = loaded[key]
        seed_everything(int(params.get("seed", 0)))
        built = [train_hpo.build(params, data.info, device=device,
                                 epochs_cap=args.epochs_cap) for _ in data.folds]
        return PreparedMember(built, data.folds, key,
                              context=(params, options, data, began))

    def done(member: Member, prepared: PreparedMember, histories: list) -> dict[str, Any]:
        params, options, data, began = prepared.context
        return finish(params, data, options, list(prepared.built), histories, args, began,
                      Path(str(member.trial_dir)))

    return train_members(prepare, done, time_cap=args.time_cap)


def finish(
    params: dict[str, Any],
    data: setup_hpo.PatternData,
    options: dict[str, Any],
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
    # The first fold's network, with its best validation weights, tested once;
    # TrainingDiverged when a fold has no epoch.
    final, predicted = fold_result(histories, net, data.test, started=started,
                                   split_digest=data.split_digest)
    history, best = histories[0], fold_best(histories)
    # Kept as the experiment's best model if no trial has done better on validation, ties
    # going to the model that spikes less. The data are always the generator's defaults:
    # the checkpoint and the result record them.
    generated = {"data": options, "generator": setup_hpo.GENERATOR, "subset": args.subset}
    checkpoint = keep_trial_model(
        out_dir, net, train_config=train_config, history=history,
        metrics=final, parameters=params, split_digest=data.split_digest,
        predictions=Predictions(data.test.labels, predicted, list(data.info.classes),
                                split="test"),
        score=(final["default"], -best.spikes_per_sample),
        extra={"split_digest": data.split_digest, **generated, "n_steps": data.info.n_steps,
               "classes": list(data.info.classes), "metrics": final, "folds": args.folds},
        result=generated,
    )
    print(f"trial {nni.get_trial_id()}: best epoch {best.epoch} of {len(history.epochs)} "
          f"({history.stop_reason}): val {final['default']:.3f} (mean of {args.folds} "
          f"fold(s)), test {final['test']:.3f}; saved {checkpoint}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    try:
        main()
    except SpiketuneError as e:  # bad input or data, a diverged training: the reason alone
        sys.exit(f"error: {e}")
