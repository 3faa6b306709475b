"""The training loop: epochs of mini-batches, validation every epoch, best weights kept.

::

    for each epoch:
        for each shuffled batch:  zero grads -> rule.backward (forward + gradients) -> clip -> step
                                  (-> update the moving average of the weights, if ema_decay)
        (anneal the learning rate, if lr_schedule)
        evaluate on the validation set (loss, accuracy, spike statistics), with the averaged
            weights when there are some
        if the monitored metric improved by more than min_delta: keep a copy of the weights
        callback(metrics)            # an HPO trial reports here; it may stop or prune the run
        stop after `patience` epochs without improvement
    restore the best weights

Any :class:`Model` trains here: a :class:`RecurrentSNN` with the rule its config names (e-prop
or BPTT), the LMU and the L²MU by BPTT. A model that does not spike (the LMU) has no spike
figures: they are None in its metrics.

Without a validation set the training metrics are monitored instead. A non-finite training
loss or weight ends the run (``History.stop_reason == "non_finite_loss"``); the weights of the
best epoch so far (the initial ones if no epoch finished) are restored. Exceptions raised by
the callback (say ``optuna.TrialPruned``) propagate.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import TensorDataset

from spiketune.data._base import Dataset
from spiketune.errors import ConfigError, DataError, Problem
from spiketune.snn._config import TrainConfig
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._registry import rule_for
from spiketune.snn._rule import LearningRule
from spiketune.snn._stats import SpikeCounts, SpikeStats, spike_stats
from spiketune.snn._workspace import Workspace

#: What training and evaluation take: ``(inputs, labels)``, a ``TensorDataset``, or a
#: :class:`spiketune.data.Dataset` (what every loader and ``split()`` return).
Data = tuple[Tensor, Tensor] | TensorDataset | Dataset


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and spike statistics (None for a model that does not spike) of a network
    on a data set."""

    loss: float
    accuracy: float
    stats: SpikeStats | None
    n_samples: int


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch. ``val_*`` are None without validation data; spike figures are per sample, from
    the validation set (else the training set), totals over every spiking population, and
    None for a model that does not spike (the LMU); ``seconds`` the epoch's wall-clock time."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    spikes_per_sample: float | None
    rate_hz: float | None
    silent_fraction: float | None
    synops_per_sample: float | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class History:
    """Per-epoch metrics of a run, which epoch was best, and why the run ended
    (``completed``, ``early_stopping``, ``callback``, ``non_finite_loss``, or ``closed``:
    :meth:`Trainer.epochs` closed early)."""

    monitor: str
    epochs: list[EpochMetrics] = field(default_factory=list)
    best_epoch: int | None = None
    stop_reason: str = "completed"

    @property
    def best(self) -> EpochMetrics | None:
        """The metrics of the best epoch (whose weights the network holds after ``fit``)."""
        if self.best_epoch is None:
            return None
        return next(m for m in self.epochs if m.epoch == self.best_epoch)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [m.as_dict() for m in self.epochs]


EpochCallback = Callable[[EpochMetrics], bool | None]


class Trainer:
    """Trains a :class:`Model`: a :class:`RecurrentSNN` with the learning rule its config names,
    any other model by BPTT (or with ``rule``, when the rule supports the model).

    ``config``: a :class:`TrainConfig`, or None for its defaults. A plain dict is refused
    (build one with ``TrainConfig(**d)``, which names a misspelt key), as
    :class:`PopulationTrainer` and :func:`save_checkpoint` refuse it: one typed, validated
    record everywhere. ``callback(metrics)`` runs after every epoch; returning True stops the
    run.
    """

    def __init__(
        self, net: Model, config: TrainConfig | None = None, *,
        rule: LearningRule | None = None, callback: EpochCallback | None = None,
    ) -> None:
        if not isinstance(net, Model):
            rule_text = "a spiketune.snn.Model (RecurrentSNN, LMU, L2MU)"
            raise ConfigError(Problem("net", type(net).__name__, rule_text))
        problem = dtype_problem(net, "net")
        if problem is not None:
            raise ConfigError(problem)
        if config is not None and not isinstance(config, TrainConfig):
            raise ConfigError(Problem("config", type(config).__name__,
                                      "a TrainConfig or None (TrainConfig(**d) builds one)"))
        self.net = net
        self.config = config or TrainConfig()
        self.rule = rule or rule_for(net)
        if not self.rule.supports(net):
            raise ConfigError(Problem(
                "rule", self.rule.name, f"a rule that trains a {type(net).__name__} (bptt)"
            ))
        self.callback = callback
        self.loss_fn = net.readout_loss()
        self.optimizer = self._make_optimizer()
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.config.epochs)
            if self.config.lr_schedule == "cosine" else None
        )
        # The averaged copy of the network that is validated and kept (ema_decay), else None.
        self.averaged: AveragedModel | None = (
            AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(self.config.ema_decay))
            if self.config.ema_decay is not None else None
        )
        self._workspace = Workspace()
        #: The History of the current or last run (also after :meth:`epochs` was closed).
        self.history: History | None = None

    @property
    def eval_net(self) -> Model:
        """The network that is validated and kept: the weight average if any, else ``net``."""
        return self.net if self.averaged is None else self.averaged.module  # type: ignore[return-value]

    def fit(self, train: Data, val: Data | None = None) -> History:
        """Train for ``config.epochs`` epochs at most; the network ends with the best weights."""
        epochs = self.epochs(train, val)
        while True:
            try:
                next(epochs)
            except StopIteration as done:
                history: History = done.value
                return history

    def epochs(
        self, train: Data, val: Data | None = None
    ) -> Generator[EpochMetrics, None, History]:
        """:meth:`fit` one epoch at a time: yields each epoch's metrics, returns the History.

        Several runs can so advance in lock-step (the k re-splits of a cross-validated trial
        report their mean validation accuracy after every epoch). Closing the generator early
        ends the run like an early stop: the network gets the best weights so far, and
        :attr:`history` (which :meth:`close` cannot return) says ``"closed"``.
        """
        cfg = self.config
        x_train, y_train = self._tensors(train, "train")
        val_tensors = None if val is None else self._tensors(val, "val")
        monitor = cfg.monitor if val_tensors is not None else cfg.monitor.replace("val", "train")
        history = History(monitor=monitor)
        self.history = history
        generator = torch.Generator().manual_seed(cfg.seed)
        best_score, best_state, waited = -math.inf, None, 0
        initial_state = copy.deepcopy(self.net.state_dict())

        try:
            for epoch in range(1, cfg.epochs + 1):
                start = time.perf_counter()
                train_loss, train_acc, counts = self._train_epoch(x_train, y_train, generator)
                if not (math.isfinite(train_loss) and self._weights_finite()):
                    history.stop_reason = "non_finite_loss"
                    break
                if self.scheduler is not None:
                    self.scheduler.step()
                if val_tensors is not None:
                    ev = self.evaluate(val_tensors)
                    val_loss, val_acc, stats = ev.loss, ev.accuracy, ev.stats
                else:
                    # Without validation data the figures are the training pass's (raw weights).
                    val_loss, val_acc = None, None
                    stats = None if counts is None else spike_stats(counts, self.net)
                metrics = EpochMetrics(
                    epoch=epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                    val_acc=val_acc, **_spike_figures(stats),
                    seconds=time.perf_counter() - start,
                )
                history.epochs.append(metrics)

                # Higher is better for accuracy; a loss is negated so that the same test applies.
                value = getattr(metrics, monitor)
                score = -value if monitor.endswith("loss") else value
                if score > best_score + cfg.min_delta or best_state is None:
                    best_score, waited, history.best_epoch = score, 0, epoch
                    best_state = copy.deepcopy(self.eval_net.state_dict())
                else:
                    waited += 1
                stop = self.callback is not None and bool(self.callback(metrics))
                yield metrics
                if stop:
                    history.stop_reason = "callback"
                    break
                if cfg.patience is not None and waited >= cfg.patience:
                    history.stop_reason = "early_stopping"
                    break
        except GeneratorExit:
            history.stop_reason = "closed"
            raise
        finally:
            self.net.load_state_dict(best_state if best_state is not None else initial_state)
            if self.averaged is not None:  # so that evaluate() now scores the weights kept
                self.averaged.module.load_state_dict(self.net.state_dict())
        return history

    def evaluate(self, data: Data, batch_size: int | None = None) -> Evaluation:
        """Loss, accuracy and spike statistics on ``data`` (no gradients, weights unchanged), of
        :attr:`eval_net`."""
        x, y = self._tensors(data, "data")
        if len(x) == 0:
            raise DataError("cannot evaluate on an empty data set")
        if batch_size is not None and (type(batch_size) is not int or batch_size < 1):
            raise ConfigError(Problem("batch_size", batch_size, "an integer >= 1 (samples)"))
        net = self.eval_net
        size = batch_size or self.config.batch_size
        loss_sum, correct, counts = 0.0, 0, None
        with torch.no_grad():
            for lo in range(0, len(x), size):
                xb, yb = x[lo : lo + size], y[lo : lo + size]
                tr = self._simulate(net, xb)
                loss_sum += float(self.loss_fn(tr.readout, yb)) * len(xb)
                correct += int((self.loss_fn.scores(tr.readout).argmax(-1) == yb).sum())
                counts = _add(counts, net.spike_counts(tr))
        n = len(x)
        stats = None if counts is None else spike_stats(counts, net)
        return Evaluation(loss_sum / n, correct / n, stats, n)

    # -- helpers ------------------------------------------------------------------------------
    def _simulate(self, net: Model, x: Tensor) -> Any:
        """``net.simulate(x)``; a RecurrentSNN writes into buffers kept across batches."""
        if isinstance(net, RecurrentSNN):
            return net.simulate(x, workspace=self._workspace)
        return net.simulate(x)

    def _train_epoch(
        self, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[float, float, SpikeCounts | None]:
        cfg, net = self.config, self.net
        net.train()
        n = len(x)
        if n == 0:
            raise DataError("the training set is empty")
        order = torch.randperm(n, generator=generator) if cfg.shuffle else torch.arange(n)
        order = order.to(x.device)
        loss_sum, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
        counts: SpikeCounts | None = None
        for lo in range(0, n, cfg.batch_size):
            idx = order[lo : lo + cfg.batch_size]
            xb = augment(x[idx], cfg.augment_shift, cfg.augment_drop, generator,
                         stretch=cfg.augment_stretch)
            yb = y[idx]
            self.optimizer.zero_grad(set_to_none=True)
            result = self.rule.backward(net, xb, yb)
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            self.optimizer.step()
            if self.averaged is not None:
                self.averaged.update_parameters(net)
            loss_sum += result.loss.detach().to("cpu", torch.float64) * len(idx)
            correct += (result.scores.argmax(-1) == yb).sum().cpu()
            counts = _add(counts, result.counts)
        return float(loss_sum) / n, int(correct) / n, counts

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.net.parameters())

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in self.net.parameters() if p.requires_grad]
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _tensors(self, data: Data, name: str) -> tuple[Tensor, Tensor]:
        """Inputs (N, T, n_in) in the network's dtype on its device, and integer labels (N,)."""
        return data_tensors(self.net, data, name)


#: The dtypes a network trains in.
TRAIN_DTYPES = (torch.float32, torch.float64)


def dtype_problem(net: Model, where: str) -> Problem | None:
    """What is wrong with ``net``'s dtype for training, or None. A half-precision network
    overflows in its first forward pass and the run would end at once as ``non_finite_loss``
    with no epoch: a wrong result that looks like a diverged trial. So it is refused when the
    trainer is made, naming the dtype."""
    found = sorted({str(p.dtype) for p in net.parameters()} - {str(d) for d in TRAIN_DTYPES})
    if not found:
        return None
    return Problem(where, ", ".join(found), "a network in torch.float32 or torch.float64 "
                   "(convert it first, e.g. net.float())")


def data_tensors(net: Model, data: Data, name: str) -> tuple[Tensor, Tensor]:
    """Inputs (N, T, n_in) in ``net``'s dtype on its device, and integer labels (N,); checked
    against its input and class counts (a DataError or ConfigError otherwise)."""
    if isinstance(data, TensorDataset):
        tensors = data.tensors
    elif isinstance(data, Dataset):
        tensors = (data.inputs, data.labels)
    elif isinstance(data, tuple | list):
        tensors = tuple(data)
    else:
        rule = "(inputs, labels), a TensorDataset or a spiketune.data.Dataset"
        raise ConfigError(Problem(name, type(data).__name__, rule))
    if len(tensors) != 2 or not all(isinstance(t, Tensor) for t in tensors):
        raise ConfigError(Problem(name, len(tensors), "two tensors: inputs and labels"))
    x, y = tensors
    n_in, n_out = net.n_in, net.n_out
    if x.dim() != 3 or x.shape[-1] != n_in or y.dim() != 1 or len(y) != len(x):
        raise DataError(
            f"{name}: inputs must be (N, steps, {n_in}) and labels (N,), "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[1] < 1:
        raise DataError(f"{name}: inputs must have at least one time step, got {tuple(x.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(f"{name}: labels must be integer class indices, got {y.dtype} "
                        "(a float label would be cut to its integer part)")
    if x.is_complex() or not bool(torch.isfinite(x).all()):
        raise DataError(f"{name}: inputs hold NaN, infinite or complex values; a network "
                        "would turn them into a meaningless accuracy")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_out):
        raise DataError(
            f"{name}: labels must lie in [0, {n_out}), got {int(y.min())}..{int(y.max())}"
        )
    w = next(net.parameters())
    return x.to(device=w.device, dtype=w.dtype), y.to(device=w.device, dtype=torch.long)


def _spike_figures(stats: SpikeStats | None) -> dict[str, float | None]:
    """The spike figures of an epoch's metrics; None each for a model that does not spike."""
    names = ("spikes_per_sample", "rate_hz", "silent_fraction", "synops_per_sample")
    return {k: None if stats is None else getattr(stats, k) for k in names}


def _add(total: SpikeCounts | None, counts: SpikeCounts | None) -> SpikeCounts | None:
    """Counts summed over batches; None while there are none (a model that does not spike)."""
    if counts is None:
        return total
    return counts if total is None else total + counts


def augment(
    x: Tensor, shift: int, drop: float, generator: torch.Generator, *, stretch: float = 0.0
) -> Tensor:
    """A perturbed copy of a batch ``x`` ``[B, T, C]`` for training (``x`` itself is untouched).

    With ``stretch`` > 0 each sample's time axis is first scaled by a factor ``f`` drawn
    uniformly from ``[1 - stretch, 1 + stretch]`` about step 0: the events of input step ``s``
    move to step ``floor(s * f)``. Events are neither invented nor dropped inside the window:
    a sigma-delta encoder emits an event per change of the signal, so the same gesture made at
    another speed gives the same events at scaled times. ``f > 1`` (slower) spreads them out
    and pushes the last ones out of the window; ``f < 1`` (faster) gathers them into fewer
    steps, where counts add (0/1 inputs stay 0/1: events that meet merge), and the window ends
    in silence. Then each sample is shifted by a whole number of steps drawn uniformly from
    ``[-shift, shift]`` (steps moved out of the window are lost, the steps moved in are
    silent), then every input
    value is zeroed with probability ``drop``. Draws come from ``generator`` (on the CPU), so a
    seeded run is repeatable on any device; without ``stretch`` the draws are those of earlier
    versions, so seeded runs repeat across the change.
    """
    if shift == 0 and drop == 0.0 and stretch == 0.0:
        return x
    b, t = x.shape[0], x.shape[1]
    out = x
    if stretch > 0.0:
        u = torch.rand(b, generator=generator, dtype=torch.float64)
        factors = 1.0 + stretch * (2.0 * u - 1.0)
        steps = torch.arange(t, dtype=torch.float64)
        dst = torch.floor(steps.unsqueeze(0) * factors.unsqueeze(1)).long()  # [B, T]
        out = _scale_time(out, dst)
    if shift > 0:
        offsets = torch.randint(-shift, shift + 1, (b,), generator=generator)
        out = _read_steps(out, torch.arange(t).unsqueeze(0) - offsets.unsqueeze(1))
    if drop > 0.0:
        keep = torch.rand(x.shape, generator=generator) >= drop
        out = out * keep.to(x.device, x.dtype)
    return out


def _scale_time(x: Tensor, dst: Tensor) -> Tensor:
    """``x`` ``[B, T, C]`` with the values of step ``s`` of sample ``b`` added to step
    ``dst[b, s]`` (dropped past ``T - 1``); 0/1 input stays 0/1."""
    t = x.shape[1]
    inside = (dst < t).to(x.device, x.dtype).unsqueeze(-1)
    index = dst.clamp(max=t - 1).to(x.device).unsqueeze(-1).expand(-1, -1, x.shape[2])
    out = torch.zeros_like(x).scatter_add_(1, index, x * inside)
    binary = bool(((x == 0) | (x == 1)).all())
    return out.clamp(max=1) if binary else out


def _read_steps(x: Tensor, src: Tensor) -> Tensor:
    """``x`` ``[B, T, C]`` with output step ``t`` of sample ``b`` read from step ``src[b, t]``;
    a step read from outside ``0..T-1`` is silent."""
    t = x.shape[1]
    valid = (src >= 0) & (src < t)
    src = src.clamp(0, t - 1).to(x.device)
    out = torch.gather(x, 1, src.unsqueeze(-1).expand(-1, -1, x.shape[2]))
    return out * valid.to(x.device, x.dtype).unsqueeze(-1)
