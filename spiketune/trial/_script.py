"""What a template's trial script (``main_hpo.py``) shares with the others: its command-line
options, its start (parameters, seeds, threads, device) and its end (the model saved beside
its result and offered as the experiment's best).

::

    parser = argparse.ArgumentParser()
    parser.add_argument("--data")                     # the template's own options first
    add_trial_options(parser)                         # --epochs-cap ... --seed
    args = parser.parse_args()
    params, device = start_trial({**DEFAULTS, **nni.get_next_parameter()},
                                 seed=args.seed, threads=args.threads)
    ...                                               # load, build, train, test
    keep_trial_model(out_dir, net, train_config=..., history=..., metrics=final, ...)

torch is imported by the functions that need it, not with this module.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from spiketune.snn import History, Model, TrainConfig
    from spiketune.trial._artifacts import Predictions

#: Where a trial run by hand saves its model, unless ``--out`` says otherwise.
MANUAL_OUT = "manual_trial"


def add_trial_options(
    parser: argparse.ArgumentParser,
    *,
    subset_help: str = "keep N samples per class before splitting (smoke runs)",
) -> argparse.ArgumentParser:
    """Add the options every template's trial script takes to ``parser``, in this order:
    ``--epochs-cap`` (an epoch budget that caps the parameters'), ``--subset N`` (fewer
    samples, ``subset_help`` says which), ``--threads`` (CPU threads; default this trial's
    share, see :func:`trial_threads`), ``--out`` (where a trial run by hand saves its model),
    ``--params`` (a JSON file of parameters, run by hand), ``--folds`` (how many re-splits
    the trial is judged on, default 1) and ``--seed`` (the training seed, over the
    parameters'). Returns ``parser``."""
    parser.add_argument("--epochs-cap", type=int, default=None,
                        help="train at most this many epochs, whatever the parameters say")
    parser.add_argument("--subset", type=int, default=None, metavar="N", help=subset_help)
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: this trial's share of the cores)")
    parser.add_argument("--out", default=MANUAL_OUT,
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
    return parser


def start_trial(
    params: Mapping[str, Any], *, seed: int | None = None, threads: int | None = None
) -> tuple[dict[str, Any], torch.device]:
    """Set a trial up before it loads anything: its parameters (``params`` with ``seed`` as
    their ``"seed"`` when given: a retraining seed), every generator seeded with the
    parameters' seed (default 0, see :func:`seed_everything`), torch's CPU threads set to
    ``threads`` or this trial's share (:func:`trial_threads`). Returns the parameters and
    the device to train on (:func:`trial_device`)."""
    import torch

    from spiketune.trial._runtime import seed_everything, trial_device, trial_threads

    chosen = dict(params)
    if seed is not None:
        chosen["seed"] = seed
    seed_everything(int(chosen.get("seed", 0)))
    torch.set_num_threads(trial_threads(threads))
    return chosen, trial_device()


def trial_output_dir(out: str | os.PathLike[str] = MANUAL_OUT) -> Path:
    """Where the trial saves its model: the directory NNI's stand-in gives a launched trial
    (``$NNI_OUTPUT_DIR``), else ``out`` (``--out``, run by hand)."""
    return Path(os.environ.get("NNI_OUTPUT_DIR") or out)


def keep_trial_model(
    out_dir: str | os.PathLike[str],
    net: Model,
    *,
    train_config: TrainConfig,
    history: History,
    metrics: Mapping[str, Any],
    parameters: Mapping[str, Any],
    split_digest: str,
    predictions: Predictions,
    score: Sequence[float] | float,
    extra: Mapping[str, Any] | None = None,
    result: Mapping[str, Any] | None = None,
) -> Path:
    """Save the trial's model and result in ``out_dir`` and offer it as the experiment's best.

    ``out_dir/best_model.pt``: the checkpoint (``net`` with its training configuration,
    ``history`` and ``extra``, see :func:`spiketune.snn.save_checkpoint`);
    ``out_dir/result.json``: ``metrics`` with the ``split_digest``, the ``parameters`` and
    ``result``'s keys. The checkpoint is then offered (:func:`offer_best_model`) with
    ``score`` (larger is better), ``metrics`` with the history's stop reason and the split
    digest as its information, and the test ``predictions``: the experiment keeps it if no
    trial has offered a better one. Returns the checkpoint's path.
    """
    from spiketune.snn import save_checkpoint
    from spiketune.trial._artifacts import offer_best_model

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = save_checkpoint(directory / "best_model.pt", net, train_config=train_config,
                                 history=history, extra=dict(extra or {}))
    (directory / "result.json").write_text(
        json.dumps({**metrics, "split_digest": split_digest, "parameters": parameters,
                    **(result or {})}, indent=2, sort_keys=True, default=str),
        encoding="utf-8")
    offer_best_model(
        score,
        {"best_model.pt": checkpoint},
        {**metrics, "stop_reason": history.stop_reason, "split_digest": split_digest},
        predictions,
        parameters=parameters,
    )
    return checkpoint


#: What a trial reports after each epoch, as means over its folds (``val_acc`` as
#: ``"default"``, the objective), and the spike figure added for a spiking model.
EPOCH_KEYS = ("train_acc", "train_loss", "val_acc", "val_loss")


def epoch_report(
    epoch: int, latest: Sequence[Any], *, spiking: bool = True, trial_id: str | None = None
) -> dict[str, float]:
    """What a trial reports after an epoch, from each fold's latest metrics ``latest``
    (:class:`spiketune.snn.EpochMetrics`): ``{"default": mean validation accuracy, "train_acc",
    "train_loss", "val_loss"}`` and, when ``spiking``, ``"spikes_per_sample"``, each the mean
    over the folds. The same figures are printed as one line, ``epoch 3: train acc 0.812 loss
    0.534, val acc 0.771 loss 0.640, 5321 spikes/sample``, after ``trial <trial_id> `` when
    given (a population's members share one log)."""
    import statistics

    keys = EPOCH_KEYS + (("spikes_per_sample",) if spiking else ())
    mean = {key: statistics.fmean(getattr(m, key) for m in latest) for key in keys}
    who = f"trial {trial_id} " if trial_id is not None else ""
    spikes = f", {mean['spikes_per_sample']:.0f} spikes/sample" if spiking else ""
    print(f"{who}epoch {epoch}: train acc {mean['train_acc']:.3f} loss "
          f"{mean['train_loss']:.3f}, val acc {mean['val_acc']:.3f} loss "
          f"{mean['val_loss']:.3f}{spikes}", flush=True)
    return {"default": mean.pop("val_acc"), **mean}
