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

In population mode (``main.py --population K``) one process trains up to K trials, each
reported as its own trial with the same reports, result and model as alone
(:func:`spiketune.trial.train_members`), and takes ``--refills`` more as they end. A CubaLIF
graph's network trains alone there, one epoch in turn with the others (no population batches
CubaLIF neurons: it saves the start of a process and the reading of the graph and data per
trial); the members of a LIF graph with the same batch size train as one batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

try:
    import nni  # spiketune puts its stand-in for NNI's trial API on a trial's PYTHONPATH
except ImportError:  # run by hand, without NNI installed
    import spiketune.compat.nni as nni

import setup_hpo
import torch
import train_hpo

import spiketune.nir
from spiketune import SpiketuneError
from spiketune.data import Dataset
from spiketune.snn import (
    EpochMetrics,
    History,
    RecurrentSNN,
    TrainConfig,
    TrainingDiverged,
    save_checkpoint,
    train_folds,
)
from spiketune.trial import (
    Member,
    Predictions,
    PreparedMember,
    in_population,
    offer_best_model,
    seed_everything,
    start_trial,
    train_members,
    trial_deadline,
    trial_device,
    trial_output_dir,
    trial_threads,
)

#: What a trial uses for any parameter the search space does not give.
DEFAULT_PARAMS: dict[str, Any] = {"lr": 0.003, "batch_size": 16, "epochs": 30}
#: Population mode: new trials each place of a population takes after its first, as members
#: end (``--refills``). A CubaLIF member trains alone in its place, so a refill saves the start
#: of a process (Python, the imports, the graph and the data: a few seconds); after its last
#: refill the process ends and frees what it kept of its finished trials.
REFILLS = 8
#: Seconds a population whose members have all ended waits for the engine to add some.
LINGER = 2.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graph", default="braille_cuba.nir", help="the NIR graph to fine-tune")
    p.add_argument("--data", default=None, help=f"threshold-1 pool file or its directory "
                   f"(else ${setup_hpo.DATA_ENV})")
    p.add_argument("--epochs-cap", type=int, default=None, help="train at most this many epochs")
    p.add_argument("--time-cap", type=float, default=None, metavar="SECONDS",
                   help="end the training in time for the trial to report its best epoch "
                        "within SECONDS of its start (default: the experiment's "
                        "max_trial_duration)")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="keep N samples per class before splitting (smoke runs)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument("--out", default="manual_trial", help="model directory when run by hand")
    p.add_argument("--params", default=None,
                   help="JSON file of parameters, when run by hand (read by `nni`)")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed (order of the samples; the weights are the graph's)")
    p.add_argument("--refills", type=int, default=REFILLS, metavar="R",
                   help=f"population mode: new trials each place of the population takes "
                        f"after its first, as members end (default {REFILLS})")
    return p.parse_args(argv)


def read_graph(path: str) -> tuple[Path, float]:
    """The graph's absolute path and its step ``dt`` (seconds: also the data's bin size)."""
    graph = Path(path).expanduser().resolve()
    dt = spiketune.nir.read(graph).metadata.get("dt")
    if dt is None:
        sys.exit(f"{graph}: the graph's metadata has no 'dt' (the step its time constants are "
                 "written for, seconds, also the data's bin size); write it with a dt")
    return graph, float(dt)


def main(argv: list[str] | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    args = parse_args(argv)
    if args.refills < 0:
        sys.exit(f"error: --refills must be at least 0, got {args.refills}")
    if in_population():
        return main_population(args)
    params, device = start_trial({**DEFAULT_PARAMS, **nni.get_next_parameter()},
                                 seed=args.seed, threads=args.threads)
    graph, dt = read_graph(args.graph)
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

    _, (history,) = train_folds([(net, train_config)], [(data.train, data.val)],
                                lambda epoch, latest: on_epoch(latest[0]),
                                deadline=trial_deadline(time_cap=args.time_cap))
    return finish(params, graph, data, options, net, train_config, history,
                  trial_output_dir(args.out))


def main_population(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Population mode: this process's trials fine-tune the same graph on the same data (read
    once), each reported as its own trial as soon as its training is over; a member whose
    parameters are invalid, or whose training diverges, fails alone."""
    torch.set_num_threads(trial_threads(args.threads))
    device = trial_device()
    graph, dt = read_graph(args.graph)
    options = setup_hpo.data_options({"bin_size": dt}, pool=True)
    data = setup_hpo.load_data(options, args.data, per_class=args.subset)
    print(f"population mode: {graph.name}, {args.refills} refill(s) per place, "
          f"{torch.get_num_threads()} thread(s) on {device}", flush=True)

    def prepare(member: Member) -> PreparedMember:
        params = {**DEFAULT_PARAMS, **member.parameters}
        if args.seed is not None:  # a retraining seed, as start_trial takes it alone
            params["seed"] = args.seed
        seed_everything(int(params.get("seed", 0)))
        built = train_hpo.build(graph, params, data.info, device=device,
                                epochs_cap=args.epochs_cap)
        return PreparedMember([built], [(data.train, data.val)], "pool", context=params)

    def done(member: Member, prepared: PreparedMember, histories: list[History]
             ) -> dict[str, Any]:
        ((net, train_config),) = prepared.built
        return finish(prepared.context, graph, data, options, net, train_config, histories[0],
                      Path(str(member.trial_dir)))

    return train_members(prepare, done, refills=args.refills, linger=LINGER,
                         time_cap=args.time_cap)


def finish(
    params: dict[str, Any], graph: Path, data: Any, options: dict[str, Any], net: RecurrentSNN,
    train_config: TrainConfig, history: History, out_dir: Path,
) -> dict[str, Any]:
    """After training (``net`` holds its best validation weights): test it once, save it with
    its result, offer it as the experiment's best, report the final result (to the channel
    bound to this thread: the trial's, or a population member's). Raises TrainingDiverged
    when no epoch ended with finite figures."""
    best = history.best
    if best is None or best.val_acc is None:
        raise TrainingDiverged(f"training diverged before the first epoch ended "
                               f"({history.stop_reason})")
    test: Dataset = data.test
    predicted = train_hpo.predict_classes(net, test)
    test_acc = int((predicted == test.labels).sum()) / len(test)
    final = {"default": best.val_acc, "test": test_acc, "train": best.train_acc,
             "epoch": best.epoch, "spikes_per_sample": best.spikes_per_sample,
             "split_digest": data.split_digest}
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
        Predictions(test.labels, predicted, list(data.info.classes), split="test"),
        parameters=params,
    )
    print(f"trial {nni.get_trial_id()}: best epoch {best.epoch} of {len(history.epochs)} "
          f"({history.stop_reason}): val {final['default']:.3f}, test {test_acc:.3f}; saved "
          f"{checkpoint}", flush=True)
    nni.report_final_result(final)
    return final


if __name__ == "__main__":
    try:
        main()
    except SpiketuneError as e:  # bad input or data, a diverged training: the reason alone
        sys.exit(f"error: {e}")
