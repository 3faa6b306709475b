"""One trial: train the NIR paper's Braille RSNN (snnTorch) with the parameters the tuner
chose, report every epoch, report the result, save the best-validation weights.

This is NNI trial code: ``import nni``, ``nni.get_next_parameter()``,
``nni.report_intermediate_result`` and ``nni.report_final_result``. Under NNI it runs as it
is; under spiketune too (spiketune puts its stand-in for ``nni`` on the trial's PYTHONPATH).
By hand it needs neither::

    python main_hpo.py --data braille_reduced_th1_pool.pt            # the defaults below
    python main_hpo.py --data pool.pt --params p.json --epochs 5 --out my_run
    python main_hpo.py --data pool.pt --params p.json --seed 2 --out chosen/seed2  # a seed

Without NNI ``import nni`` falls back to ``spiketune.compat.nni`` (reports printed), and
without spiketune either to a stub that prints them. spiketune adds two things where it is
importable: the project's fixed split (see ``setup_hpo``) and, in one guarded call at the end,
the test predictions handed over with the model, for the report's confusion matrix.

Every epoch reports ``{"default": validation accuracy, "train_acc", "train_loss",
"val_loss", "spikes_per_sample"}``; the final result is ``{"default": best validation
accuracy, "test": test accuracy of the weights of that epoch, "train", "epoch",
"spikes_per_sample", "epochs_run", "seconds", "split_digest"}``. The test set is used once,
on the best-validation weights. ``best_model.pt`` (in ``$NNI_OUTPUT_DIR``, else ``--out``)
holds those weights as a plain state_dict with the hyperparameters
(``train_hpo.load_model`` rebuilds the network); ``result.json`` beside it holds the final
result and the parameters. Run as ``--params FILE --seed K --out DIR --threads N`` it is one
seed of the chosen configuration's retraining (``spiketune.engine.retrain``, which
``main.py`` runs after the search): ``--seed`` replaces the parameters' seed, which draws
the initial weights and the order of the training batches.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import nni  # NNI, or spiketune's stand-in that spiketune puts on a trial's PYTHONPATH
except ImportError:  # by hand, without NNI
    try:
        import spiketune.compat.nni as nni
    except ImportError:  # nor spiketune: print what would be reported

        class nni:  # stands in for the module: the four calls this script makes
            @staticmethod
            def get_next_parameter() -> dict[str, Any]:
                return {}

            @staticmethod
            def get_trial_id() -> str:
                return "manual"

            @staticmethod
            def report_intermediate_result(metric: Any) -> None:
                print(f"intermediate result: {metric}", flush=True)

            @staticmethod
            def report_final_result(metric: Any) -> None:
                print(f"final result: {metric}", flush=True)


import setup_hpo
import torch
import train_hpo

#: What a trial uses for a parameter the tuner does not give (all of them by hand): a
#: configuration the NIR paper's authors found for this network (neuromorphs/NIR,
#: paper/03_rnn/parameters_ref_20231006.json), and the epoch budget.
DEFAULT_PARAMS: dict[str, Any] = {
    "nb_hidden": 43,
    "alpha_r": 0.4,
    "alpha_out": 0.35,
    "beta_r": 0.95,
    "beta_out": 0.9,
    "lr": 0.001,
    "reg_l1": 0.0008,
    "reg_l2": 0.000006,
    "slope": 20,
    "epochs": 40,
    "seed": 0,
}


#: The fewest samples per class (``--subset``) whose split has a validation and a test sample
#: of each class (0.8/0.1/0.1 per class, rounded).
MIN_SUBSET = 5


def _whole(least: int) -> Callable[[str], int]:
    """An argument type: a whole number >= ``least``, refused at once otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


#: Epochs, samples, threads: at least 1; ``--seed``: at least 0.
_count, _seed = _whole(1), _whole(0)


def _directory(text: str) -> str:
    """``--out``: a directory to save into, checked before the training, not after it."""
    path = Path(text).expanduser()
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {place} is a file; give a "
                                                 "directory to save into")
            break
    return str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help=f"the pool file ({setup_hpo.POOL_FILE}) or its directory "
                             f"(else ${setup_hpo.DATA_ENV})")
    parser.add_argument("--epochs", type=_count, default=None,
                        help=f"epochs to train (default {DEFAULT_PARAMS['epochs']}, or the "
                             "parameters' 'epochs')")
    parser.add_argument("--subset", type=_count, default=None, metavar="N",
                        help="keep N samples per class before splitting (smoke runs)")
    parser.add_argument("--threads", type=_count, default=None,
                        help="CPU threads (default: this trial's share of the cores)")
    parser.add_argument("--out", default="manual_trial", type=_directory,
                        help="where to save best_model.pt and result.json when "
                             "$NNI_OUTPUT_DIR is not set")
    parser.add_argument("--params", default=None,
                        help="JSON file of parameters, when run by hand")
    parser.add_argument("--seed", type=_seed, default=None,
                        help="the training seed (initial weights, batch order), in place of "
                             f"the parameters' 'seed' (default {DEFAULT_PARAMS['seed']}): one "
                             "retraining seed of a chosen configuration")
    return parser.parse_args(argv)


def trial_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The defaults, then ``--params``, then what the tuner chose (``--epochs`` and
    ``--seed`` last)."""
    params = dict(DEFAULT_PARAMS)
    if args.params:
        try:
            given = json.loads(Path(args.params).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # missing, unreadable, not JSON
            raise SystemExit(f"error: --params {args.params}: not a readable JSON file of "
                             f"parameters ({e})") from None
        if not isinstance(given, dict):
            raise SystemExit(f"error: --params {args.params}: must hold a JSON object of "
                             f"parameters, not a JSON {type(given).__name__}")
        params.update(given)
    params.update(nni.get_next_parameter() or {})  # NNI by hand gives None
    if args.epochs is not None:
        params["epochs"] = args.epochs
    if args.seed is not None:
        params["seed"] = args.seed
    problems = parameter_problems(params)
    if problems:  # the reasons, as the trial's cause, not a traceback from deep in torch
        raise SystemExit("error: invalid parameters:\n" + "\n".join(f"  - {p}" for p in problems))
    for key in ("nb_hidden", "epochs", "seed"):
        params[key] = int(params[key])  # quniform gives a whole float
    return params


#: What each parameter may be: its rule, and the test of a value (a number, not a flag).
_RULES: dict[str, tuple[str, Any]] = {
    "nb_hidden": ("a whole number >= 1", lambda v: v >= 1 and float(v).is_integer()),
    "epochs": ("a whole number >= 1", lambda v: v >= 1 and float(v).is_integer()),
    "seed": ("a whole number >= 0", lambda v: v >= 0 and float(v).is_integer()),
    "lr": ("a number > 0", lambda v: v > 0),
    "slope": ("a number > 0", lambda v: v > 0),
    "reg_l1": ("a number >= 0", lambda v: v >= 0),
    "reg_l2": ("a number >= 0", lambda v: v >= 0),
    **{k: ("a decay in [0, 1]", lambda v: 0 <= v <= 1)
       for k in ("alpha_r", "alpha_out", "beta_r", "beta_out")},
}


def parameter_problems(params: dict[str, Any]) -> list[str]:
    """Every parameter that is unknown or out of range, as ``key: rule (got value)``."""
    problems = [f"{key}: unknown parameter (known: {', '.join(sorted(_RULES))})"
                for key in params if key not in _RULES]
    for key, (rule, fits) in _RULES.items():
        value = params[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and fits(value)):
            problems.append(f"{key}: {rule} (got {value!r})")
    return problems


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    params = trial_parameters(args)
    setup_hpo.seed_everything(int(params["seed"]))
    torch.set_num_threads(setup_hpo.trial_threads(args.threads))
    device = setup_hpo.trial_device()

    if args.subset is not None and args.subset < 1:
        raise SystemExit(f"error: --subset must be at least 1 sample per class, got {args.subset}")
    data = setup_hpo.load_data(args.data, per_class=args.subset)
    empty = [name for name, part in (("training", data.train), ("validation", data.val),
                                     ("test", data.test)) if len(part) == 0]
    if empty:  # a split of a few samples per class leaves the small parts without any
        raise SystemExit(f"error: --subset {args.subset}: leaves no {' and no '.join(empty)} "
                         f"sample (the split keeps 10 % of each class, rounded, for validation "
                         f"and for test): give at least {MIN_SUBSET} samples per class")
    net = train_hpo.BrailleRSNN(data.n_inputs, params).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(params["lr"]))
    print(f"trial {nni.get_trial_id()}: {len(data.train)}/{len(data.val)}/{len(data.test)} "
          f"samples, split {data.split_digest[:18]} ({data.split_source}), "
          f"{params['nb_hidden']} hidden neurons, {torch.get_num_threads()} thread(s) on "
          f"{device}", flush=True)

    # Validate every epoch; keep the weights of the best validation accuracy (the first on
    # ties) and what was measured at that epoch.
    best: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] = {}
    epochs_run = 0
    for epoch in range(1, int(params["epochs"]) + 1):
        train_loss, train_acc = train_hpo.train_epoch(net, data.train, optimizer, params, device)
        if not math.isfinite(train_loss):  # lr = 0.1 can do this: the trial ends here
            print(f"epoch {epoch}: the training loss is {train_loss}; stopping", flush=True)
            break
        val = train_hpo.evaluate(net, data.val, params, device)
        epochs_run = epoch
        metrics = {"default": val.accuracy, "train_acc": train_acc, "train_loss": train_loss,
                   "val_loss": val.loss, "spikes_per_sample": val.spikes_per_sample}
        print(f"epoch {epoch}: train acc {train_acc:.3f} loss {train_loss:.3f}, val acc "
              f"{val.accuracy:.3f} loss {val.loss:.3f}, {val.spikes_per_sample:.0f} "
              "spikes/sample", flush=True)
        nni.report_intermediate_result(metrics)
        if best is None or val.accuracy > best["default"]:
            best = {**metrics, "epoch": epoch}
            best_state = copy.deepcopy(net.state_dict())
    if best is None:
        sys.exit("training diverged in the first epoch: no weights to keep")

    # The test set, once, on the best-validation weights.
    net.load_state_dict(best_state)
    test = train_hpo.evaluate(net, data.test, params, device)
    final = {
        "default": best["default"],
        "test": test.accuracy,
        "train": best["train_acc"],
        "epoch": best["epoch"],
        "spikes_per_sample": best["spikes_per_sample"],
        "epochs_run": epochs_run,
        "seconds": time.perf_counter() - started,
        "split_digest": data.split_digest,
    }

    out_dir = Path(os.environ.get("NNI_OUTPUT_DIR") or args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_file = out_dir / "best_model.pt"
    torch.save({"state_dict": best_state, "parameters": params, "n_inputs": data.n_inputs,
                "classes": list(setup_hpo.CLASSES), "metrics": final}, model_file)
    # The final result beside the model, where a retraining seed's run is read from.
    (out_dir / "result.json").write_text(
        json.dumps({**final, "parameters": params}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8")

    # spiketune, where present, keeps the best model of the experiment with its test
    # predictions (the report's confusion matrix); elsewhere this is skipped.
    try:
        from spiketune.trial import Predictions, offer_best_model
    except ImportError:
        pass
    else:
        offer_best_model(
            (final["default"], -final["spikes_per_sample"]),  # fewer spikes break ties
            {"best_model.pt": model_file},
            final,
            Predictions(data.test.tensors[1], test.predictions, list(setup_hpo.CLASSES)),
            parameters=params,
        )

    print(f"best epoch {best['epoch']} of {epochs_run}: val {final['default']:.3f}, test "
          f"{final['test']:.3f}; saved {model_file}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    main()
