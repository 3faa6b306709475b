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
"epoch", "split_digest": the data split's digest, "val_fold<i>": each fold's best
validation accuracy, ...}`` plus, for a spiking model, ``"spikes_per_sample"``,
``"rate_hz"``, ``"synops_per_sample"``. The first fold's network is the model saved and
offered as the experiment's best; a ``result.json`` beside it holds the final result, the
split digest and the subjects of each part; the checkpoint's ``extra`` also holds the
standardisation (``mean``, ``std`` per channel) that new data need.

In population mode (``main.py --population K``) one process trains up to K trials, each
reported as its own trial with the same reports, result and model as alone
(:func:`spiketune.trial.train_members`), and takes ``--refills`` more as they end. An L²MU or
an LMU trains alone there, one epoch in turn with the others (no population batches it: it
saves the start of a process per trial); recurrent SNNs of one shape train as one batch.
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
from spiketune.snn import (
    EpochMetrics,
    fold_best,
    fold_result,
    is_spiking,
    train_folds,
)
from spiketune.trial import (
    Member,
    Predictions,
    PreparedMember,
    add_trial_options,
    epoch_report,
    flat_parameters,
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
#: run by hand): an L²MU whose memory spans the 2 s window, on the standardised values as
#: input currents (the data defaults of ``setup_hpo``).
DEFAULT_PARAMS: dict[str, Any] = {
    "model": {"_name": "l2mu", "order": 8, "theta": 2.0, "memory_size": 16,
              "hidden_size": 128},
    "lr": 0.003,
    "batch_size": 64,
    "epochs": 30,
}


#: Population mode: new trials each place of a population takes after its first, as members
#: end (``--refills``). An L²MU trains alone in its place, so a refill only saves the start
#: of a process (Python and the imports: about 3 s); after its last refill the process
#: ends and frees what it kept of its finished trials.
REFILLS = 8
#: Seconds a population whose members have all ended waits for the engine to add some.
LINGER = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"the UCI archive, wisdm-dataset.zip or the extracted directory "
                             f"(else ${setup_hpo.DATA_ENV}, else spiketune's data cache, "
                             f"downloaded there once)")
    parser.add_argument("--refills", type=int, default=REFILLS, metavar="R",
                        help=f"population mode: new trials each place of the population "
                             f"takes after its first, as members end (default {REFILLS})")
    # --epochs-cap, --subset, --threads, --out, --params, --folds, --seed
    add_trial_options(parser, subset_help="keep N windows of each activity of each subject "
                                          "(smoke runs)")
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

    options = setup_hpo.data_options(flat_parameters(params))
    data = setup_hpo.load_data(options, args.data, per_class=args.subset, folds=args.folds)
    built = [train_hpo.build(params, data.info, device=device, epochs_cap=args.epochs_cap)
             for _ in data.folds]
    spiking = is_spiking(built[0][0])
    print(f"trial {nni.get_trial_id()}: {data.info.name}, {len(data.train)}/{len(data.val)}/"
          f"{len(data.test)} windows, test subjects {list(data.test_subjects)}, "
          f"{args.folds} fold(s), split {data.split_digest[:12]}, "
          f"{built[0][0]}, {torch.get_num_threads()} thread(s) on {device}", flush=True)

    def on_epoch(epoch: int, latest: list[EpochMetrics]) -> None:
        nni.report_intermediate_result(epoch_report(epoch, latest, spiking=spiking))

    _, histories = train_folds(built, data.folds, on_epoch,
                               deadline=trial_deadline(time_cap=args.time_cap))
    return finish(params, data, options, built, histories, args, started,
                  trial_output_dir(args.out))


def main_population(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Population mode: this process's trials train together, each reported as its own trial
    as soon as its training is over; a member whose parameters are invalid, or whose
    training diverges, fails alone."""
    torch.set_num_threads(trial_threads(args.threads))
    device = trial_device()
    loaded: dict[str, Any] = {}  # one load per encoding asked for
    print(f"population mode: {args.folds} fold(s), {args.refills} refill(s) per place, "
          f"{torch.get_num_threads()} thread(s) on {device}", flush=True)

    def prepare(member: Member) -> PreparedMember:
        began = time.perf_counter()  # the trial's clock (a refill joins later)
        params = {**DEFAULT_PARAMS, **member.parameters}
        if args.seed is not None:  # a retraining seed, as start_trial takes it alone
            params["seed"] = args.seed
        options = setup_hpo.data_options(flat_parameters(params))
        key = json.dumps(options, sort_keys=True)
        if key not in loaded:
            loaded[key] = setup_hpo.load_data(options, args.data, per_class=args.subset,
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

    return train_members(prepare, done, refills=args.refills, linger=LINGER,
                         time_cap=args.time_cap)


def finish(
    params: dict[str, Any],
    data: Any,
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
    spiking = is_spiking(net)
    # The first fold's network, with its best validation weights, tested once;
    # TrainingDiverged when a fold has no epoch.
    final, predicted = fold_result(histories, net, data.test, started=started,
                                   split_digest=data.split_digest, spiking=spiking)
    history, best = histories[0], fold_best(histories)
    # Kept as the experiment's best model if no trial has done better on validation; ties go
    # to a spiking model, and among those to the one that spikes less.
    subjects = {"test_subjects": list(data.test_subjects),
                "val_subjects": [list(v) for v in data.val_subjects]}
    score = (final["default"], 1.0, -best.spikes_per_sample) if spiking else (
        final["default"], 0.0, 0.0)
    checkpoint = keep_trial_model(
        out_dir, net, train_config=train_config, history=history,
        metrics=final, parameters=params, split_digest=data.split_digest,
        predictions=Predictions(data.test.labels, predicted, list(data.info.classes),
                                split="test"),
        score=score,
        extra={"split_digest": data.split_digest, "data": options,
               "n_steps": data.info.n_steps, "classes": list(data.info.classes),
               "metrics": final, "folds": args.folds, "channels": list(data.channels),
               "mean": list(data.mean), "std": list(data.std), **subjects},
        result=subjects,
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
