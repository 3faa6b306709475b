"""Train K recurrent networks that differ in their hyperparameters as one batched computation.

A :class:`PopulationTrainer` is K :class:`Trainer` runs in lock-step whose batches are one
``bmm`` over a member dimension instead of K small products: at the sizes of an HPO trial
(batch 8-32, 68 steps, 128-256 neurons) the time of one network goes to dispatching small
kernels, which K members share. Per member and exactly as its own Trainer would (tested in
float64 to 1e-9 after 20 optimiser steps): weights and their initialisation (the member's own
:class:`RecurrentSNN`), time constants, threshold, ALIF adaptation, refractory steps,
surrogate slope and dampening, feedback, loss window, rate regulariser, learning rate and its
schedule, weight decay, gradient clipping, moving average of the weights, shuffling seed and
augmentation, epoch budget, early stopping. What fixes the shapes of the computation (layer
sizes, recurrence, readout bias, reset, surrogate kind, loss kind, rule, batch size,
optimiser) must be the same: :func:`group_members` splits a list of configurations into
populations that can train together.

Lifecycle: build with ``[(net, train_config), ...]``; :meth:`PopulationTrainer.epochs` yields,
after each epoch, ``{member: EpochMetrics}`` for the members that trained in it; a member
stops alone (its epoch budget, its patience, a non-finite loss, ``callback`` returning True,
or :meth:`PopulationTrainer.stop` called between epochs) and then leaves the stacked tensors,
so the others run faster; each network ends with the weights of its best epoch, and
:attr:`PopulationTrainer.histories` holds one :class:`History` per member.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator, Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from spiketune.errors import ConfigError, DataError, Problem
from spiketune.snn._config import SNNConfig, TrainConfig
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._population_ops import (
    PopulationParameters,
    PopulationStep,
    Weights,
    bptt_step,
    eprop_step,
    loss_and_error,
    simulate,
    stack_weights,
)
from spiketune.snn._stats import SpikeCounts, spike_stats
from spiketune.snn._trainer import (
    Data,
    EpochMetrics,
    Evaluation,
    History,
    _spike_figures,
    augment,
    data_tensors,
)
from spiketune.snn._workspace import Workspace

#: Network fields that must be equal within a population: they fix the shapes or the code path.
#: (``neuron`` is not among them: a LIF member trains in an ALIF population with beta = 0.)
SHARED_NETWORK = (
    "n_in", "n_rec", "n_out", "recurrent", "readout_bias", "reset", "rule", "eprop_mode",
    "surrogate", "loss", "dt", "detach_reset",
)
#: Training fields that must be equal: the batch size sets the samples per step of all
#: members, the optimiser the update's code.
SHARED_TRAINING = ("batch_size", "optimizer")

MemberCallback = Callable[[int, EpochMetrics], bool | None]
Member = tuple[RecurrentSNN, TrainConfig]


def population_key(
    snn: SNNConfig, train: TrainConfig, *, mix_neurons: bool = True
) -> tuple[Any, ...]:
    """What must be equal for two members to share a population (see :data:`SHARED_NETWORK`,
    :data:`SHARED_TRAINING`). ``eprop_mode`` and ``detach_reset`` only count for the rule that
    reads them; ``mix_neurons=False`` also keeps LIF and ALIF apart."""
    values = {name: getattr(snn, name) for name in SHARED_NETWORK}
    if snn.rule != "eprop":
        values["eprop_mode"] = None
    if snn.rule != "bptt":
        values["detach_reset"] = None
    if not mix_neurons:
        values["neuron"] = snn.neuron
    values.update({name: getattr(train, name) for name in SHARED_TRAINING})
    return tuple(sorted(values.items()))


def group_members(
    configs: Sequence[tuple[SNNConfig, TrainConfig]], *, mix_neurons: bool = True,
    data_keys: Sequence[Hashable] | None = None, max_size: int | None = None,
) -> list[list[int]]:
    """Split configurations into populations that can train together: lists of indices into
    ``configs``, in order of first appearance.

    ``data_keys`` (one per configuration) separates members that read different data (the
    Braille ``clip`` or ``bin_size``: a different encoding, or a different number of steps);
    ``mix_neurons=False`` keeps LIF members out of ALIF populations (an ALIF population costs
    a few more operations per step for its LIF members); ``max_size`` splits larger groups.
    """
    if data_keys is not None and len(data_keys) != len(configs):
        raise ConfigError(Problem(
            "data_keys", len(data_keys), f"one key per configuration ({len(configs)})"
        ))
    if max_size is not None and max_size < 1:
        raise ConfigError(Problem("max_size", max_size, "at least 1, or None"))
    groups: dict[tuple[Any, ...], list[list[int]]] = {}
    for i, (snn, train) in enumerate(configs):
        key = (population_key(snn, train, mix_neurons=mix_neurons),
               None if data_keys is None else data_keys[i])
        chunks = groups.setdefault(key, [[]])
        if max_size is not None and len(chunks[-1]) >= max_size:
            chunks.append([])
        chunks[-1].append(i)
    return [chunk for chunks in groups.values() for chunk in chunks]


class PopulationTrainer:
    """Trains K :class:`RecurrentSNN` networks with their own :class:`TrainConfig` as one
    batched computation: fused e-prop or BPTT (the rule their configs name). See the module
    docstring for what may differ between members.

    ``callback(member, metrics)`` runs after every epoch of every member (the index into
    ``members``); True stops that member alone. ``eval_batch_size``: validation samples per
    forward pass (None: the training batch size).
    """

    def __init__(
        self, members: Sequence[Member], *, callback: MemberCallback | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        self._check(members)
        if eval_batch_size is not None and not (
            isinstance(eval_batch_size, int) and eval_batch_size >= 1
        ):
            raise ConfigError(Problem("eval_batch_size", eval_batch_size, "an integer >= 1"))
        self.nets = [net for net, _ in members]
        self.configs = [cfg for _, cfg in members]
        self.callback = callback
        self.eval_batch_size = eval_batch_size or self.configs[0].batch_size
        self.rule = self.nets[0].config.rule
        #: One History per member, filled while :meth:`epochs` runs.
        self.histories: list[History] = [
            History(monitor=cfg.monitor) for cfg in self.configs
        ]
        self._rows: list[int] = []  # the members still training, in stacked order
        self._stop_requests: dict[int, str] = {}
        self._workspace = Workspace()

    @property
    def size(self) -> int:
        return len(self.nets)

    @property
    def active(self) -> list[int]:
        """The members still training (indices into ``members``)."""
        return list(self._rows)

    def stop(self, member: int, reason: str = "stopped") -> None:
        """Stop ``member`` after the epoch just yielded (its History then says ``reason``);
        the others go on. Call it between epochs, say when a pruner stops that trial."""
        if not 0 <= member < self.size:
            raise ConfigError(Problem("member", member, f"an index in [0, {self.size})"))
        self._stop_requests[member] = reason

    def fit(self, train: Data, val: Data | None = None) -> list[History]:
        """Train every member to the end; each network ends with its best weights."""
        run = self.epochs(train, val)
        while True:
            try:
                next(run)
            except StopIteration as done:
                histories: list[History] = done.value
                return histories

    def epochs(
        self, train: Data, val: Data | None = None
    ) -> Generator[dict[int, EpochMetrics], None, list[History]]:
        """:meth:`fit` one epoch at a time: yields ``{member: metrics}`` of the members that
        trained in that epoch, returns the Histories. Closing it ends the remaining members
        (``"closed"``), each with its best weights so far."""
        x_train, y_train = self._tensors(train, "train")
        val_tensors = None if val is None else self._tensors(val, "val")
        # Without validation data the training figures are monitored, as by a Trainer.
        self.histories = [
            History(monitor=c.monitor if val is not None else c.monitor.replace("val", "train"))
            for c in self.configs
        ]
        run = _Run(self, val_tensors is not None)
        self._rows = list(range(self.size))
        self._stop_requests = {}
        try:
            for epoch in range(1, max(c.epochs for c in self.configs) + 1):
                start = time.perf_counter()
                losses, accs, counts = run.train_epoch(x_train, y_train)
                run.drop_non_finite(losses)
                if not self._rows:
                    break
                run.anneal()
                evals = run.evaluate(*val_tensors) if val_tensors is not None else None
                seconds = time.perf_counter() - start
                report: dict[int, EpochMetrics] = {}
                stops: dict[int, bool] = {}
                for r, member in enumerate(self._rows):
                    ev = None if evals is None else evals[r]
                    stats = ev.stats if ev is not None else run.train_stats(r, counts)
                    metrics = EpochMetrics(
                        epoch=epoch, train_loss=losses[member], train_acc=accs[member],
                        val_loss=None if ev is None else ev.loss,
                        val_acc=None if ev is None else ev.accuracy,
                        **_spike_figures(stats), seconds=seconds,
                    )
                    self.histories[member].epochs.append(metrics)
                    run.track_best(r, member, metrics)
                    report[member] = metrics
                # Callbacks after every member's epoch is recorded: one that raises (a pruned
                # trial) then leaves every member with this epoch counted.
                if self.callback is not None:
                    for member, metrics in report.items():
                        stops[member] = bool(self.callback(member, metrics))
                yield report
                run.end_epoch(epoch, stops)
                if not self._rows:
                    break
        except GeneratorExit:
            run.finish_all("closed")
            raise
        except BaseException:
            run.finish_all(None)  # a callback's exception (say TrialPruned): best weights kept
            raise
        run.finish_all("completed")
        return self.histories

    # -- checks ---------------------------------------------------------------------------------
    @staticmethod
    def _check(members: Sequence[Member]) -> None:
        if len(members) == 0:
            raise ConfigError(Problem("members", 0, "at least one (network, TrainConfig) pair"))
        problems: list[Problem] = []
        for i, member in enumerate(members):
            if not (isinstance(member, tuple | list) and len(member) == 2
                    and isinstance(member[0], RecurrentSNN)
                    and isinstance(member[1], TrainConfig)):
                problems.append(Problem(
                    f"members[{i}]", type(member).__name__, "a (RecurrentSNN, TrainConfig) pair"
                ))
        if problems:
            raise ConfigError(problems)
        first_net, first_cfg = members[0]
        key = population_key(first_net.config, first_cfg)
        w0 = first_net.w_in
        for i, (net, cfg) in enumerate(members):
            if net.config.rule == "eprop" and net.config.eprop_mode != "fused":
                problems.append(Problem(
                    f"members[{i}].eprop_mode", net.config.eprop_mode,
                    "fused (online e-prop trains one network at a time)",
                ))
            other = population_key(net.config, cfg)
            for (name, mine), (_, theirs) in zip(key, other, strict=True):
                if mine != theirs:
                    problems.append(Problem(
                        f"members[{i}].{name}", theirs,
                        f"the same in one population as members[0] ({mine}); "
                        "split the members with group_members",
                    ))
            if net.w_in.dtype != w0.dtype or net.w_in.device != w0.device:
                problems.append(Problem(
                    f"members[{i}]", f"{net.w_in.dtype} on {net.w_in.device}",
                    f"the dtype and device of members[0] ({w0.dtype} on {w0.device})",
                ))
        if any(m[0] is n[0] for j, m in enumerate(members) for n in members[:j]):
            problems.append(Problem("members", "a network twice", "one network per member"))
        if problems:
            raise ConfigError(problems)

    def _tensors(self, data: Data, name: str) -> tuple[Tensor, Tensor]:
        """Inputs and labels checked as by :class:`Trainer`: every member reads the same
        data, so the first member's shapes, dtype and device stand for all."""
        return data_tensors(self.nets[0], data, name)


class _Run:
    """The state of one :meth:`PopulationTrainer.epochs` run: stacked weights and optimiser
    state of the members still training (row r is member ``rows[r]``), and per member its
    generator, learning-rate schedule, best score and weights."""

    def __init__(self, owner: PopulationTrainer, has_val: bool) -> None:
        self.owner = owner
        nets, cfgs = owner.nets, owner.configs
        self.has_val = has_val
        self.weights, self.feedback = stack_weights(nets)
        like = self.weights["w_in"]
        self.params = PopulationParameters.of(nets, like)
        self.generators = [torch.Generator().manual_seed(c.seed) for c in cfgs]
        self.optimiser = _Optimiser(cfgs, self.weights)
        self.average = _Average(cfgs, self.weights) if any(c.ema_decay for c in cfgs) else None
        self.schedules = [_Schedule(c) for c in cfgs]
        self.clip = None
        if any(c.grad_clip is not None for c in cfgs):
            self.clip = torch.tensor(
                [math.inf if c.grad_clip is None else c.grad_clip for c in cfgs],
                dtype=like.dtype, device=like.device,
            )
        self.best_score = [-math.inf] * len(nets)
        self.best: list[dict[str, Tensor] | None] = [None] * len(nets)
        self.waited = [0] * len(nets)
        self.initial = [copy.deepcopy(n.state_dict()) for n in nets]

    @property
    def rows(self) -> list[int]:
        return self.owner._rows

    # -- one epoch ------------------------------------------------------------------------------
    def train_epoch(
        self, x: Tensor, y: Tensor
    ) -> tuple[dict[int, float], dict[int, float], tuple[Tensor, Tensor, int, int]]:
        """One epoch of every active member: its own shuffled order and augmentation (from its
        own generator, drawn in the order its Trainer draws them), one batched step per batch.
        Returns per member the mean loss and accuracy, and the spike counts (K, n_rec), input
        events (K, n_in), samples and steps (for statistics without validation data)."""
        cfgs = [self.owner.configs[m] for m in self.rows]
        n = len(x)
        if n == 0:
            raise DataError("the training set is empty")
        batch = cfgs[0].batch_size
        orders = [
            (torch.randperm(n, generator=g) if c.shuffle else torch.arange(n)).to(x.device)
            for c, g in zip(cfgs, self._generators(), strict=True)
        ]
        k = len(self.rows)
        loss_sum = torch.zeros(k, dtype=torch.float64)
        correct = torch.zeros(k, dtype=torch.long)
        spikes = torch.zeros(k, self.weights["w_in"].shape[1], dtype=torch.float64)
        events = torch.zeros(k, x.shape[-1], dtype=torch.float64)
        for lo in range(0, n, batch):
            idx = [order[lo : lo + batch] for order in orders]
            xb = torch.stack([
                augment(x[i], c.augment_shift, c.augment_drop, g, stretch=c.augment_stretch)
                for i, c, g in zip(idx, cfgs, self._generators(), strict=True)
            ])
            yb = torch.stack([y[i] for i in idx])
            step = self._step(xb, yb)
            grads = step.grads
            if self.clip is not None:
                _clip(grads, self.clip)
            self.optimiser.step(self.weights, grads)
            if self.average is not None:
                self.average.update(self.weights)
            loss_sum += step.loss.detach().to("cpu", torch.float64) * len(idx[0])
            correct += (step.scores.argmax(-1) == yb).sum(1).cpu()
            spikes += step.spikes.to("cpu", torch.float64)
            events += step.events.to("cpu", torch.float64)
        losses = {m: float(loss_sum[r]) / n for r, m in enumerate(self.rows)}
        accs = {m: int(correct[r]) / n for r, m in enumerate(self.rows)}
        return losses, accs, (spikes, events, n, x.shape[1])

    def _generators(self) -> list[torch.Generator]:
        return [self.generators[m] for m in self.rows]

    def _step(self, x: Tensor, labels: Tensor) -> PopulationStep:
        if self.owner.rule == "bptt":
            for w in self.weights.values():
                w.requires_grad_(True)
            return bptt_step(self.weights, self.params, x, labels)
        return eprop_step(self.weights, self.feedback, self.params, x, labels,
                          self.owner._workspace)

    def drop_non_finite(self, losses: dict[int, float]) -> None:
        """End members whose loss or weights are not finite, as their Trainer would."""
        with torch.no_grad():
            finite = torch.stack([
                torch.isfinite(w).flatten(1).all(1) for w in self.weights.values()
            ]).all(0)
        bad = [m for r, m in enumerate(self.rows)
               if not (math.isfinite(losses[m]) and bool(finite[r]))]
        for m in bad:
            self.owner.histories[m].stop_reason = "non_finite_loss"
        self._remove(bad)

    def anneal(self) -> None:
        """Each member's learning-rate schedule, stepped once per epoch."""
        lrs = [self.schedules[m].step() for m in self.rows]
        self.optimiser.set_lr(lrs)

    def evaluate(self, x: Tensor, y: Tensor) -> list[Evaluation]:
        """Loss, accuracy and spike statistics of every active member's validated weights (the
        moving average where there is one) on ``(x, y)``, as :meth:`Trainer.evaluate`."""
        if len(x) == 0:
            raise DataError("cannot evaluate on an empty data set")
        weights = self.eval_weights()
        k, n = len(self.rows), len(x)
        loss_sum = torch.zeros(k, dtype=torch.float64)
        correct = torch.zeros(k, dtype=torch.long)
        spikes = torch.zeros(k, weights["w_in"].shape[1], dtype=torch.float64)
        size = self.owner.eval_batch_size
        with torch.no_grad():
            for lo in range(0, n, size):
                xb, yb = x[lo : lo + size], y[lo : lo + size]
                tr = simulate(weights, self.params, xb.expand(k, *xb.shape), self.owner._workspace)
                labels = yb.expand(k, len(yb))
                loss, scores, _ = loss_and_error(tr.y, labels, self.params, error=False)
                loss_sum += loss.to("cpu", torch.float64) * len(xb)
                correct += (scores.argmax(-1) == labels).sum(1).cpu()
                spikes += tr.z.sum((1, 2)).to("cpu", torch.float64)
            events = torch.count_nonzero(x, dim=(0, 1)).to(torch.float64).cpu()
        out = []
        for r in range(k):
            counts = SpikeCounts(input_events=events, spikes=spikes[r], n_samples=n,
                                 n_steps=x.shape[1])
            stats = spike_stats(counts, self._net_with(r, weights))
            out.append(Evaluation(float(loss_sum[r]) / n, int(correct[r]) / n, stats, n))
        return out

    def train_stats(self, r: int, counts: tuple[Tensor, Tensor, int, int]) -> Any:
        """Without validation data: the training pass's spike statistics (raw weights)."""
        spikes, events, n, steps = counts
        sc = SpikeCounts(input_events=events[r], spikes=spikes[r], n_samples=n, n_steps=steps)
        return spike_stats(sc, self._net_with(r, self.weights))

    def eval_weights(self) -> Weights:
        return self.weights if self.average is None else self.average.weights

    def _net_with(self, r: int, weights: Weights) -> RecurrentSNN:
        """Member ``rows[r]``'s network holding row r of ``weights`` (for its fan-out)."""
        net = self.owner.nets[self.rows[r]]
        with torch.no_grad():
            for name, w in weights.items():
                getattr(net, name).copy_(w[r])
        return net

    def track_best(self, r: int, member: int, metrics: EpochMetrics) -> None:
        """Keep member's validated weights when its monitored figure improved (min_delta)."""
        history, cfg = self.owner.histories[member], self.owner.configs[member]
        value = getattr(metrics, history.monitor)
        score = -value if history.monitor.endswith("loss") else value
        if score > self.best_score[member] + cfg.min_delta or self.best[member] is None:
            self.best_score[member], self.waited[member] = score, 0
            history.best_epoch = metrics.epoch
            self.best[member] = {k: w[r].detach().clone() for k, w in self.eval_weights().items()}
        else:
            self.waited[member] += 1

    def end_epoch(self, epoch: int, stops: dict[int, bool]) -> None:
        """After the epoch was yielded: end the members that the callback or :meth:`stop`
        stopped, that ran out of patience or of epochs; they leave the stack."""
        requests = self.owner._stop_requests
        done: list[int] = []
        for m in self.rows:
            cfg, history = self.owner.configs[m], self.owner.histories[m]
            if m in requests or stops.get(m):
                history.stop_reason = requests.get(m, "callback")
            elif cfg.patience is not None and self.waited[m] >= cfg.patience:
                history.stop_reason = "early_stopping"
            elif epoch >= cfg.epochs:
                history.stop_reason = "completed"
            else:
                continue
            done.append(m)
        requests.clear()
        self._remove(done)

    def finish_all(self, reason: str | None) -> None:
        """End every member still training (``reason`` None: leave its stop reason)."""
        for m in self.rows:
            if reason is not None:
                self.owner.histories[m].stop_reason = reason
        self._remove(list(self.rows))

    def _remove(self, members: list[int]) -> None:
        """Give each member its best weights (the initial ones if no epoch finished) and drop
        it from every stacked tensor."""
        if not members:
            return
        for m in members:
            net = self.owner.nets[m]
            net.load_state_dict(self.initial[m])
            best = self.best[m]
            if best is not None:
                with torch.no_grad():
                    for name, w in best.items():
                        getattr(net, name).copy_(w)
            net.zero_grad(set_to_none=True)
        keep = [r for r, m in enumerate(self.rows) if m not in members]
        self.owner._rows = [self.rows[r] for r in keep]
        if not keep:
            return
        index = torch.tensor(keep, device=self.weights["w_in"].device)
        self.weights = {k: w.detach().index_select(0, index) for k, w in self.weights.items()}
        if self.feedback is not None:
            self.feedback = self.feedback.index_select(0, index)
        self.params = self.params.select(keep)
        self.optimiser.select(index)
        if self.average is not None:
            self.average.select(index)
        if self.clip is not None:
            self.clip = self.clip.index_select(0, index)


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """A (K,) tensor shaped to broadcast against a stacked (K, ...) weight."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _clip(grads: Weights, max_norm: Tensor) -> None:
    """Each member's gradients scaled to a global norm of at most its ``grad_clip`` (inf: no
    clip), as ``torch.nn.utils.clip_grad_norm_`` over its own parameters."""
    norms = torch.stack([
        torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads.values()
    ], 1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads.values():
        g.mul_(_per_member(coef, g))


class _Optimiser:
    """Adam or SGD (no momentum) with each member's learning rate and weight decay: the
    update of ``torch.optim.Adam``/``SGD``'s single-tensor path, with the member's numbers in
    (K, 1, 1) tensors. Adam's state is elementwise, so one state over the stacked weights is
    each member's own; every member steps together, so the step count is shared."""

    def __init__(self, cfgs: list[TrainConfig], weights: Weights) -> None:
        like = weights["w_in"]
        self.kind = cfgs[0].optimizer
        self.lr = [c.lr for c in cfgs]
        self.weight_decay = torch.tensor([c.weight_decay for c in cfgs], dtype=like.dtype,
                                         device=like.device)
        self.decays = any(c.weight_decay != 0 for c in cfgs)
        self.count = 0
        self.exp_avg = {k: torch.zeros_like(w) for k, w in weights.items()}
        self.exp_avg_sq = {k: torch.zeros_like(w) for k, w in weights.items()}
        self.betas, self.eps = (0.9, 0.999), 1e-8

    def set_lr(self, lrs: list[float]) -> None:
        self.lr = lrs

    def select(self, index: Tensor) -> None:
        rows = index.tolist()
        self.lr = [self.lr[r] for r in rows]
        self.weight_decay = self.weight_decay.index_select(0, index)
        for state in (self.exp_avg, self.exp_avg_sq):
            for k in state:
                state[k] = state[k].index_select(0, index)

    def step(self, weights: Weights, grads: Weights) -> None:
        self.count += 1
        like = weights["w_in"]
        lr = torch.tensor(self.lr, dtype=torch.float64)
        beta1, beta2 = self.betas
        if self.kind == "adam":
            bias1, bias2 = 1 - beta1**self.count, 1 - beta2**self.count
            neg_step = (-(lr / bias1)).to(like.dtype).to(like.device)
        else:
            neg_step = (-lr).to(like.dtype).to(like.device)
        with torch.no_grad():
            for name, w in weights.items():
                g = grads[name]
                if self.decays:
                    g = torch.addcmul(g, _per_member(self.weight_decay, w), w.detach())
                if self.kind == "sgd":
                    w.add_(g * _per_member(neg_step, w))
                    continue
                m, v = self.exp_avg[name], self.exp_avg_sq[name]
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (v.sqrt() / bias2**0.5).add_(self.eps)
                w.addcdiv_(m * _per_member(neg_step, w), denom)


class _Average:
    """Each member's exponential moving average of its weights (``ema_decay``), updated after
    every optimiser step as ``AveragedModel`` with ``get_ema_multi_avg_fn`` does (the first
    update copies); a member without one follows its raw weights (a weight of 1 copies)."""

    def __init__(self, cfgs: list[TrainConfig], weights: Weights) -> None:
        like = weights["w_in"]
        self.weight = torch.tensor(
            [1.0 if c.ema_decay is None else 1 - c.ema_decay for c in cfgs],
            dtype=like.dtype, device=like.device,
        )
        self.weights = {k: w.detach().clone() for k, w in weights.items()}
        self.started = False

    def update(self, weights: Weights) -> None:
        with torch.no_grad():
            for k, w in weights.items():
                if self.started:
                    self.weights[k].lerp_(w, _per_member(self.weight, w))
                else:
                    self.weights[k].copy_(w)
        self.started = True

    def select(self, index: Tensor) -> None:
        self.weight = self.weight.index_select(0, index)
        self.weights = {k: w.index_select(0, index) for k, w in self.weights.items()}


class _Schedule:
    """One member's learning rate per epoch: constant, or torch's ``CosineAnnealingLR`` over
    its own epoch budget (run on a stand-in optimiser, so the rates are torch's own)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.lr = cfg.lr
        self._optimizer: torch.optim.Optimizer | None = None
        self._scheduler: Any = None
        if cfg.lr_schedule == "cosine":
            self._optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
            self._scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self._optimizer, T_max=cfg.epochs
            )

    def step(self) -> float:
        if self._scheduler is not None and self._optimizer is not None:
            self._optimizer.step()  # no gradient: nothing moves; keeps torch's order check quiet
            self._scheduler.step()
            self.lr = float(self._optimizer.param_groups[0]["lr"])
        return self.lr


__all__ = ["PopulationTrainer", "group_members"]
