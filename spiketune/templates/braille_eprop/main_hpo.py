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
"spikes_per_sample": of that network, "split_digest": the data split's digest,
"val_fold<i>": each fold's best validation accuracy, ...}``. The first fold's network is the
model saved and offered as the experiment's best; a ``result.json`` beside it holds the
final result and the split digest.
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

from spiketune import ConfigError, Problem, SpiketuneError
from spiketune.data import SplitParts
from spiketune.snn import (
    EpochMetrics,
    fold_best,
    fold_result,
    train_folds,
    transfer_weights,
)
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
    parser.add_argument("--pretrain-data", default=None, metavar="PATH",
                        help="event file of the archive (or its directory) whose letters "
                             "outside the task pretrain the networks (pretrain_epochs); "
                             "default --data. Needed with pool data; a file named for "
                             "another threshold is read at that threshold")
    add_trial_options(parser)  # --epochs-cap, --subset, --threads, --out, --params, --folds...
    parser.add_argument("--refills", type=int, default=REFILLS, metavar="R",
                        help="population mode: new trials each place of this population "
                             f"takes after its first, as members end (default {REFILLS}; "
                             "0: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    args = parse_args(argv)
    if args.folds < 1:
        sys.exit(f"--folds must be at least 1, got {args.folds}")
    if args.refills < 0:
        sys.exit(f"error: --refills must be at least 0, got {args.refills}")
    if in_population():
        return main_population(args)
    started = time.perf_counter()
    params, device = start_trial({**DEFAULT_PARAMS, **nni.get_next_parameter()},
                                 seed=args.seed, threads=args.threads)

    pool = setup_hpo.is_pool(setup_hpo.data_location(args.data))
    options = setup_hpo.data_options(params, pool=pool)
    data = setup_hpo.load_data(options, args.data, per_class=args.subset, folds=args.folds)
    built = [train_hpo.build(params, data.info, device=device, epochs_cap=args.epochs_cap)
             for _ in data.folds]
    pretrain(params, options, pool, built, args, device)
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {len(data.train)}/{len(data.val)}/"
          f"{len(data.test)} samples, {args.folds} fold(s), split {data.split_digest[:12]}, "
          f"{built[0][0]}, {torch.get_num_threads()} thread(s) on {device}", flush=True)

    def on_epoch(epoch: int, latest: list[EpochMetrics]) -> None:
        nni.report_intermediate_result(epoch_report(epoch, latest))

    _, histories = train_folds(built, data.folds, on_epoch,
                               deadline=trial_deadline(time_cap=args.time_cap))
    out_dir = trial_output_dir(args.out)
    return finish(params, data, options, pool, built, histories, args, started, out_dir)


#: Population mode: new trials each place of a population takes after its first, as members
#: end (``--refills``). Then the process takes no more and ends with its last members, and the
#: engine starts a fresh one, whose first member's shape the tuner draws anew (refills share
#: the shape of the population they join); what a process kept of its finished trials (their
#: networks and weights) is freed that way. None by default: on this example's search (an
#: 8-epoch cap, Medianstop from epoch 5) refills made each shape the tuner drew cost twice as
#: many trials, and searches with refills finished fewer trials per hour (README).
REFILLS = 0
#: Seconds a population whose members have all ended waits for the engine to add some.
LINGER = 2.0


def main_population(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Population mode (``population = K`` in the experiment, ``main.py --population K``):
    the trials of this process train as batched populations, each reported as its own trial
    as soon as its training is over (:func:`spiketune.trial.train_members`). While it trains,
    members the engine adds (in the places of members that ended) join the population. A
    member whose parameters are invalid, or whose training diverges, fails alone."""
    torch.set_num_threads(trial_threads(args.threads))
    device = trial_device()
    pool = setup_hpo.is_pool(setup_hpo.data_location(args.data))
    loaded: dict[str, SplitParts] = {}  # one load per encoding the members ask for
    print(f"population mode: {args.folds} fold(s), {torch.get_num_threads()} thread(s) on "
          f"{device}", flush=True)

    def prepare(member: Member) -> PreparedMember:
        """Load the member's data (once per encoding) and build its networks (a ConfigError
        for invalid parameters fails the member alone)."""
        began = time.perf_counter()  # the trial's clock (a refill joins later)
        params = {**DEFAULT_PARAMS, **member.parameters}
        if args.seed is not None:  # a retraining seed, as start_trial takes it alone
            params["seed"] = args.seed
        options = setup_hpo.data_options(params, pool=pool)
        key = json.dumps(options, sort_keys=True)
        if key not in loaded:
            loaded[key] = setup_hpo.load_data(options, args.data, per_class=args.subset,
                                              folds=args.folds)
        data = loaded[key]
        seed_everything(int(params.get("seed", 0)))
        built = [train_hpo.build(params, data.info, device=device,
                                 epochs_cap=args.epochs_cap) for _ in data.folds]
        pretrain(params, options, pool, built, args, device, began)  # alone, before it joins
        return PreparedMember(built, data.folds, key,
                              context=(params, options, data, began))

    def done(member: Member, prepared: PreparedMember, histories: list) -> dict[str, Any]:
        params, options, data, began = prepared.context
        return finish(params, data, options, pool, list(prepared.built), histories, args,
                      began, Path(str(member.trial_dir)))

    return train_members(prepare, done, refills=args.refills, linger=LINGER,
                         time_cap=args.time_cap)


#: The fewest samples of each other letter ``--subset`` leaves to pretraining: its 10 %
#: validation part then holds one of each (half a sample rounds up).
PRETRAIN_MIN_PER_LETTER = 5


def pretrain(
    params: dict[str, Any], options: dict[str, Any], pool: bool, built: list,
    args: argparse.Namespace, device: torch.device, began: float | None = None,
) -> None:
    """With ``pretrain_epochs`` > 0: train a network of the trial's parameters on the archive's
    other letters first (``train_hpo.pretrain``), then start every fold's network from its
    input and recurrent weights. Only an event file of the archive has other letters: the
    task's own (``--data``), or ``--pretrain-data``, which pool data need.

    Under a time limit (``--time-cap``, the experiment's trial duration or its budget's end,
    counted from ``began``, a ``perf_counter`` instant), pretraining takes at most half of
    the time left, so that the task's own training still ends with its best epoch.
    ``--subset`` takes as many samples of each other letter as of the task's (at least
    :data:`PRETRAIN_MIN_PER_LETTER`)."""
    epochs = train_hpo.pretrain_epochs(params)
    if not epochs:
        return
    location = args.pretrain_data
    if pool and location is None:
        raise ConfigError(Problem(
            "pretrain_epochs", epochs, "0 with pool data unless --pretrain-data names an event "
            "file of the archive: the pool file holds only the task's 7 letters"))
    deadline = trial_deadline(began, time_cap=args.time_cap)
    now = time.perf_counter()
    if deadline is not None:
        deadline = now + max(0.0, deadline - now) / 2
    other = setup_hpo.load_other_letters(options, location or args.data)
    if args.subset is not None:  # at least one sample of each letter to validate on
        other = other.per_class(max(args.subset, PRETRAIN_MIN_PER_LETTER))
    source, val_acc, epoch = train_hpo.pretrain(params, other, device=device,
                                                epochs_cap=args.epochs_cap, deadline=deadline)
    for net, _ in built:
        transfer_weights(source, net)
    print(f"trial {nni.get_trial_id()}: pretrained on {len(other.info.classes)} other letters "
          f"({len(other)} samples, {other.info.name}): val {val_acc:.3f} at epoch {epoch}, "
          f"{time.perf_counter() - now:.0f} s", flush=True)


def finish(
    params: dict[str, Any],
    data: SplitParts,
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
    # The first fold's network, with its best validation weights, tested once (the other
    # folds' networks only inform the objective); TrainingDiverged when a fold has no epoch.
    final, predicted = fold_result(histories, net, data.test, started=started,
                                   split_digest=data.split_digest)
    history, best = histories[0], fold_best(histories)
    # Kept as the experiment's best model if no trial has done better on validation, ties
    # going to the model that spikes less.
    checkpoint = keep_trial_model(
        out_dir, net, train_config=train_config, history=history, metrics=final,
        parameters=params, split_digest=data.split_digest,
        predictions=Predictions(data.test.labels, predicted, list(data.info.classes),
                                split="test"),
        score=(final["default"], -best.spikes_per_sample),
        extra={"split_digest": data.split_digest, "data": options, "pool": pool,
               "n_steps": data.info.n_steps, "classes": list(data.info.classes),
               "metrics": final, "folds": args.folds},
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
