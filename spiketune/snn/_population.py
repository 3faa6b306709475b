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
:meth:`PopulationTrainer.add` lets a new member join between epochs (an HPO engine refilling
the places of pruned members, so the batch stays full); it trains from its own first epoch,
with its own step count, schedule, average, generator and budget, exactly as alone.
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from collections.abc import Callable, Generator, Hashable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from spiketune.errors import ConfigError, DataError, Problem
from spiketune.snn._config import SNNConfig, TrainConfig
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._neurons import CubaLIFParameters
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
    dtype_problem,
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


def batchable(net: object) -> bool:
    """Whether ``net`` can train in a :class:`PopulationTrainer`: a :class:`RecurrentSNN` of
    LIF or ALIF neurons with reset by subtraction or to zero, one spike per step, trained by
    BPTT or fused e-prop. Why: :func:`spiketune.snn.train_population` trains any other model
    (an L²MU, an LMU, a CubaLIF or chip-neuron network, online e-prop) alone, by its own
    :class:`Trainer`, in the same process."""
    if not isinstance(net, RecurrentSNN):
        return False
    cfg, p = net.config, net.neuron_params
    if cfg.rule == "eprop" and cfg.eprop_mode != "fused":
        return False
    if isinstance(p, CubaLIFParameters):
        return False
    return p.reset in ("subtract", "zero") and p.max_spikes == 1


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
    configs, data_keys = _check_grouping(configs, data_keys, max_size)
    groups: dict[tuple[Any, ...], list[list[int]]] = {}
    for i, (snn, train) in enumerate(configs):
        key = (population_key(snn, train, mix_neurons=mix_neurons),
               None if data_keys is None else data_keys[i])
        chunks = groups.setdefault(key, [[]])
        if max_size is not None and len(chunks[-1]) >= max_size:
            chunks.append([])
        chunks[-1].append(i)
    return [chunk for chunks in groups.values() for chunk in chunks]


def _check_grouping(
    configs: object, data_keys: object, max_size: object
) -> tuple[list[tuple[SNNConfig, TrainConfig]], list[Hashable] | None]:
    """:func:`group_members`'s arguments as lists, each problem named: the keys become dict
    keys and the configs are unpacked, so a wrong type would fail deep inside with a bare
    TypeError. Any iterable (a generator too) is taken, once."""
    pairs = _as_list(configs, "configs", "(SNNConfig, TrainConfig) pairs")
    problems = [
        Problem(f"configs[{i}]", type(pair).__name__, "an (SNNConfig, TrainConfig) pair")
        for i, pair in enumerate(pairs)
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and isinstance(pair[0], SNNConfig) and isinstance(pair[1], TrainConfig))
    ]
    keys = None if data_keys is None else _as_list(data_keys, "data_keys", "keys, or None")
    if keys is not None and len(keys) != len(pairs):
        problems.append(Problem("data_keys", len(keys),
                                f"one key per configuration ({len(pairs)})"))
    for i, key in enumerate(keys or []):
        try:
            hash(key)
        except TypeError:
            problems.append(Problem(f"data_keys[{i}]", key,
                                    "a hashable key (a string, number or tuple)"))
    if max_size is not None and not (_is_integer(max_size) and int(max_size) >= 1):  # type: ignore[call-overload]
        problems.append(Problem("max_size", max_size, "an integer >= 1, or None"))
    if problems:
        raise ConfigError(problems)
    return pairs, keys


def _as_list(value: object, name: str, what: str) -> list[Any]:
    """``value``'s items, or a ConfigError naming ``name`` when it is no collection of them."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ConfigError(Problem(name, type(value).__name__, f"a list of {what}"))
    return list(value)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class PopulationTrainer:
    """Trains K :class:`RecurrentSNN` networks with their own :class:`TrainConfig` as one
    batched computation: fused e-prop or BPTT (the rule their configs name). See the module
    docstring for what may differ between members.

    ``members``: (network, TrainConfig) pairs, a list or any iterable (read once).
    ``callback(member, metrics)`` runs after every epoch of every member (the index into
    ``members``, or the index :meth:`add` returned); True stops that member alone.
    ``eval_batch_size``: validation samples per forward pass (None: the training batch size).
    """

    def __init__(
        self, members: Sequence[Member], *, callback: MemberCallback | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        members = _as_list(members, "members", "(RecurrentSNN, TrainConfig) pairs")
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
        # The run in progress (None before epochs() starts and after it ends), and whether one
        # has ended: add() joins the first, refuses the second.
        self._run: _Run | None = None
        self._over = False

    @property
    def size(self) -> int:
        return len(self.nets)

    @property
    def active(self) -> list[int]:
        """The members still training (indices into ``members``)."""
        return list(self._rows)

    def stop(self, member: int, reason: str = "stopped") -> None:
        """Stop ``member`` after the epoch just yielded (its History then says ``reason``);
        the others go on. Call it between epochs, say when a pruner stops that trial; called
        before the run starts, the member trains no epoch."""
        if not (_is_integer(member) and 0 <= member < self.size):  # type: ignore[operator]
            raise ConfigError(Problem("member", member, f"an index in [0, {self.size})"))
        self._stop_requests[member] = reason

    def add(self, member: Member) -> int:
        """A new ``(network, TrainConfig)`` member; returns its index (into :attr:`histories`,
        :attr:`active`, the reports, :meth:`stop`).

        Why: an HPO engine whose pruner stopped members refills the population between epochs,
        so the batched computation stays full. Before :meth:`epochs` starts it is simply one
        more member. During a run (between a yield and the next ``next()``) it joins the
        stacked tensors and trains from the population's next epoch on exactly as its own
        :class:`Trainer` would train it from scratch: its own epoch numbers (1, 2, ...), epoch
        budget, patience, learning-rate schedule, Adam step count (bias correction), moving
        average, generator and best weights. It must fit the population as in the
        constructor (a ConfigError naming ``member`` otherwise); after the run has ended (the
        generator returned, raised or was closed) a ConfigError says the run is over.
        """
        if self._over:
            raise ConfigError(Problem(
                "member", _describe(member),
                "a population whose run is still going: the run is over (its epochs() "
                "generator returned or was closed); start a new PopulationTrainer",
            ))
        problems = _member_problems(member, self.nets[0], self.configs[0], "member", flat=True)
        if not problems and any(member[0] is net for net in self.nets):
            problems.append(Problem("member", "a network already in the population",
                                    "one network per member"))
        if problems:
            raise ConfigError(problems)
        net, cfg = member
        index = self.size
        run = self._run
        if run is None:
            self.nets.append(net)
            self.configs.append(cfg)
            self.histories.append(History(monitor=cfg.monitor))
            return index
        window = _window_problems(net, run.n_steps, "member")
        if window:  # it would end every member at its first loss
            raise ConfigError([Problem(p.field, p.value, f"loss_steps: {p.rule}")
                               for p in window])
        joining = run.prepare(net)  # may raise (a CubaLIF network): nothing changed yet
        self.nets.append(net)
        self.configs.append(cfg)
        self.histories.append(History(monitor=_monitor(cfg, run.has_val)))
        run.join(index, net, cfg, joining)
        return index

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
        (``"closed"``), each with its best weights so far. It runs while any member trains,
        members that :meth:`add` joined between epochs included; each member counts its own
        epochs."""
        x_train, y_train = self._tensors(train, "train")
        val_tensors = None if val is None else self._tensors(val, "val")
        n_steps = min(x.shape[1] for x in (x_train, *(val_tensors or ())[:1]))
        # A window longer than the samples would fail at the first loss, ending every member:
        # named here, before anything trains.
        problems = [p for i, net in enumerate(self.nets)
                    for p in _window_problems(net, n_steps, f"members[{i}].loss_steps")]
        if problems:
            raise ConfigError(problems)
        # Without validation data the training figures are monitored, as by a Trainer.
        self.histories = [History(monitor=_monitor(c, val is not None)) for c in self.configs]
        run = _Run(self, val_tensors is not None)
        run.n_steps = n_steps
        self._rows = list(range(self.size))
        self._run, self._over = run, False
        try:
            if self._stop_requests:  # stopped before the run: they train no epoch
                run.end_epoch({})
            while self._rows:
                start = time.perf_counter()
                run.begin_epoch()
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
                        epoch=run.epoch[member], train_loss=losses[member], train_acc=accs[member],
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
                run.end_epoch(stops)
        except GeneratorExit:
            run.finish_all("closed")
            raise
        except BaseException:
            run.finish_all(None)  # a callback's exception (say TrialPruned): best weights kept
            raise
        else:
            run.finish_all("completed")
        finally:
            self._run, self._over = None, True
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
        problem = dtype_problem(first_net, "members[0]")
        if problem is not None:  # every other member must share its dtype
            raise ConfigError(problem)
        for i, member in enumerate(members):
            problems += _member_problems(member, first_net, first_cfg, f"members[{i}]")
        if any(m[0] is n[0] for j, m in enumerate(members) for n in members[:j]):
            problems.append(Problem("members", "a network twice", "one network per member"))
        if problems:
            raise ConfigError(problems)

    def _tensors(self, data: Data, name: str) -> tuple[Tensor, Tensor]:
        """Inputs and labels checked as by :class:`Trainer`: every member reads the same
        data, so the first member's shapes, dtype and device stand for all."""
        return data_tensors(self.nets[0], data, name)


def _monitor(cfg: TrainConfig, has_val: bool) -> str:
    """The figure a member's History monitors: without validation data the training figure,
    as a Trainer does."""
    return cfg.monitor if has_val else cfg.monitor.replace("val", "train")


def _describe(member: object) -> str:
    """A short text for a member that is refused (its network's size, else its type)."""
    if isinstance(member, tuple | list) and len(member) == 2 and isinstance(
        member[0], RecurrentSNN
    ):
        c = member[0].config
        return f"RecurrentSNN(n_in={c.n_in}, n_rec={c.n_rec}, n_out={c.n_out})"
    return type(member).__name__


def _window_problems(net: RecurrentSNN, n_steps: int, where: str) -> list[Problem]:
    """A loss window (``loss_steps``) longer than the ``n_steps`` of the data."""
    steps = net.config.loss_steps
    if steps is None or steps <= n_steps:
        return []
    return [Problem(where, steps, f"between 1 and the sequence length {n_steps}")]


def _member_problems(
    member: object, first_net: RecurrentSNN, first_cfg: TrainConfig, where: str, *,
    flat: bool = False,
) -> list[Problem]:
    """What keeps ``member`` out of a population whose first member is ``(first_net,
    first_cfg)``: not a pair, online e-prop, a field of the population key that differs,
    another dtype or device. The constructor names each problem ``members[i].field``;
    ``flat`` (:meth:`PopulationTrainer.add`) names them all ``where`` and puts the field in
    the rule, so the caller sees the argument it passed."""

    def problem(name: str | None, value: Any, rule: str) -> Problem:
        if name is None:
            return Problem(where, value, rule)
        if flat:
            return Problem(where, value, f"{name}: {rule}")
        return Problem(f"{where}.{name}", value, rule)

    if not (isinstance(member, tuple | list) and len(member) == 2
            and isinstance(member[0], RecurrentSNN) and isinstance(member[1], TrainConfig)):
        return [problem(None, type(member).__name__, "a (RecurrentSNN, TrainConfig) pair")]
    net, cfg = member
    problems: list[Problem] = []
    if net.config.rule == "eprop" and net.config.eprop_mode != "fused":
        problems.append(problem(
            "eprop_mode", net.config.eprop_mode,
            "fused (online e-prop trains one network at a time)",
        ))
    params = net.neuron_params
    alone = "train it alone with a Trainer, or let train_population do so"
    if isinstance(params, CubaLIFParameters):
        problems.append(problem("neuron", "cuba_lif", f"lif or alif in a population ({alone})"))
    elif params.reset not in ("subtract", "zero"):
        problems.append(problem("reset", params.reset,
                                f"'subtract' or 'zero' in a population ({alone})"))
    elif params.max_spikes != 1:
        problems.append(problem("max_spikes", params.max_spikes,
                                f"1 in a population (one spike per step: {alone})"))
    key = population_key(first_net.config, first_cfg)
    other = population_key(net.config, cfg)
    for (name, mine), (_, theirs) in zip(key, other, strict=True):
        if mine != theirs:
            problems.append(problem(
                name, theirs,
                f"the same in one population as members[0] ({mine}); "
                "split the members with group_members",
            ))
    w0 = first_net.w_in
    if net.w_in.dtype != w0.dtype or net.w_in.device != w0.device:
        problems.append(problem(
            None, f"{net.w_in.dtype} on {net.w_in.device}",
            f"the dtype and device of members[0] ({w0.dtype} on {w0.device})",
        ))
    return problems


class _Run:
    """The state of one :meth:`PopulationTrainer.epochs` run: stacked weights and optimiser
    state of the members still training (row r is member ``rows[r]``), and per member (lists
    indexed by member, one entry appended by :meth:`join`) its epochs trained, generator,
    learning-rate schedule, best score and weights."""

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
        #: Epochs each member has trained (its EpochMetrics.epoch, its budget's count).
        self.epoch = [0] * len(nets)
        #: Steps of the run's samples (the shorter of training and validation data).
        self.n_steps = 0

    @property
    def rows(self) -> list[int]:
        return self.owner._rows

    # -- a member joins -------------------------------------------------------------------------
    def prepare(self, net: RecurrentSNN) -> _Joining:
        """What a joining member adds to the stack, computed before anything changes (its
        parameters may be refused, say a CubaLIF network)."""
        like = self.weights["w_in"]
        weights, feedback = stack_weights([net])
        return _Joining(weights, feedback, PopulationParameters.of([net], like))

    def join(self, member: int, net: RecurrentSNN, cfg: TrainConfig, new: _Joining) -> None:
        """Append ``member`` (already in the owner's nets, configs, histories) as the last row
        of every stacked tensor, with the state its own Trainer starts from: zero Adam
        moments and step count, an average that its first update copies, a fresh generator
        and schedule, no best weights, no epochs."""
        like = self.weights["w_in"]
        k = len(self.rows)
        if self.average is None and cfg.ema_decay is not None:
            # The first member with an average: the others get one of weight 1 (a copy of
            # their raw weights after every step, which is what they validate today).
            self.average = _Average([self.owner.configs[m] for m in self.rows], self.weights)
        self.weights = {
            name: torch.cat([w.detach(), new.weights[name]]) for name, w in self.weights.items()
        }
        if self.feedback is not None or new.feedback is not None:
            n_rec, n_out = like.shape[1], self.weights["w_out"].shape[1]
            old = self.feedback if self.feedback is not None else like.new_zeros(k, n_rec, n_out)
            row = new.feedback if new.feedback is not None else like.new_zeros(1, n_rec, n_out)
            self.feedback = torch.cat([old, row])
        self.params = self.params.extend(new.params)
        self.optimiser.join(cfg, new.weights)
        if self.average is not None:
            self.average.join(cfg, new.weights)
        if self.clip is not None or cfg.grad_clip is not None:
            old_clip = self.clip if self.clip is not None else like.new_full((k,), math.inf)
            value = math.inf if cfg.grad_clip is None else cfg.grad_clip
            self.clip = torch.cat([old_clip, like.new_full((1,), value)])
        self.generators.append(torch.Generator().manual_seed(cfg.seed))
        self.schedules.append(_Schedule(cfg))
        self.best_score.append(-math.inf)
        self.best.append(None)
        self.waited.append(0)
        self.initial.append(copy.deepcopy(net.state_dict()))
        self.epoch.append(0)
        self.rows.append(member)

    # -- one epoch ------------------------------------------------------------------------------
    def begin_epoch(self) -> None:
        """Every active member starts its next epoch (its own count: a member that joined
        late is at its first while the others are further on)."""
        for m in self.rows:
            self.epoch[m] += 1

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
            return bptt_step(self.weights, self.params, x, labels, self.owner._workspace)
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

    def end_epoch(self, stops: dict[int, bool]) -> None:
        """After the epoch was yielded: end the members that the callback or :meth:`stop`
        stopped, that ran out of patience or of their own epochs; they leave the stack. A
        member that joined during the yield has trained no epoch: only stop() ends it."""
        requests = self.owner._stop_requests
        done: list[int] = []
        for m in self.rows:
            cfg, history = self.owner.configs[m], self.owner.histories[m]
            if m in requests or stops.get(m):
                history.stop_reason = requests.get(m, "callback")
            elif self.epoch[m] == 0:
                continue
            elif cfg.patience is not None and self.waited[m] >= cfg.patience:
                history.stop_reason = "early_stopping"
            elif self.epoch[m] >= cfg.epochs:
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


class _Joining(NamedTuple):
    """A joining member's rows: weights (1, ...), feedback (1, n_rec, n_out) or None,
    parameters of one member."""

    weights: Weights
    feedback: Tensor | None
    params: PopulationParameters


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
    each member's own; the step count is per member (one that joined late has taken fewer
    steps, and its bias correction is that of its own count)."""

    def __init__(self, cfgs: list[TrainConfig], weights: Weights) -> None:
        like = weights["w_in"]
        self.kind = cfgs[0].optimizer
        self.lr = [c.lr for c in cfgs]
        self.weight_decay = torch.tensor([c.weight_decay for c in cfgs], dtype=like.dtype,
                                         device=like.device)
        self.decays = any(c.weight_decay != 0 for c in cfgs)
        self.count = [0] * len(cfgs)
        self.exp_avg = {k: torch.zeros_like(w) for k, w in weights.items()}
        self.exp_avg_sq = {k: torch.zeros_like(w) for k, w in weights.items()}
        self.betas, self.eps = (0.9, 0.999), 1e-8

    def set_lr(self, lrs: list[float]) -> None:
        self.lr = lrs

    def select(self, index: Tensor) -> None:
        rows = index.tolist()
        self.lr = [self.lr[r] for r in rows]
        self.count = [self.count[r] for r in rows]
        self.weight_decay = self.weight_decay.index_select(0, index)
        for state in (self.exp_avg, self.exp_avg_sq):
            for k in state:
                state[k] = state[k].index_select(0, index)

    def join(self, cfg: TrainConfig, row: Weights) -> None:
        """One more member (last row): its learning rate and decay, no steps, zero moments."""
        self.lr = [*self.lr, cfg.lr]
        self.count = [*self.count, 0]
        self.weight_decay = torch.cat([self.weight_decay, self.weight_decay.new_full(
            (1,), cfg.weight_decay)])
        self.decays = self.decays or cfg.weight_decay != 0
        for state in (self.exp_avg, self.exp_avg_sq):
            for k in state:
                state[k] = torch.cat([state[k], torch.zeros_like(row[k])])

    def step(self, weights: Weights, grads: Weights) -> None:
        self.count = [c + 1 for c in self.count]
        like = weights["w_in"]
        lr = torch.tensor(self.lr, dtype=torch.float64)
        beta1, beta2 = self.betas
        bias2_sqrt: float | Tensor = 1.0
        if self.kind == "adam":
            if len(set(self.count)) == 1:
                # Every member at the same step: torch's Python scalars, as before any join.
                bias1: float | Tensor = 1 - beta1**self.count[0]
                bias2_sqrt = (1 - beta2**self.count[0]) ** 0.5
            else:
                bias1 = torch.tensor([1 - beta1**c for c in self.count], dtype=torch.float64)
                bias2_sqrt = torch.tensor([(1 - beta2**c) ** 0.5 for c in self.count],
                                          dtype=like.dtype, device=like.device)
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
                root = bias2_sqrt if isinstance(bias2_sqrt, float) else _per_member(bias2_sqrt, w)
                denom = (v.sqrt() / root).add_(self.eps)
                w.addcdiv_(m * _per_member(neg_step, w), denom)


class _Average:
    """Each member's exponential moving average of its weights (``ema_decay``), updated after
    every optimiser step as ``AveragedModel`` with ``get_ema_multi_avg_fn`` does (the first
    update copies, per member: one that joined late copies at its own first step); a member
    without one follows its raw weights (a weight of 1 copies)."""

    def __init__(self, cfgs: list[TrainConfig], weights: Weights) -> None:
        like = weights["w_in"]
        self.weight = torch.tensor(
            [1.0 if c.ema_decay is None else 1 - c.ema_decay for c in cfgs],
            dtype=like.dtype, device=like.device,
        )
        self.weights = {k: w.detach().clone() for k, w in weights.items()}
        self.started = [False] * len(cfgs)

    def update(self, weights: Weights) -> None:
        fresh = [r for r, started in enumerate(self.started) if not started]
        with torch.no_grad():
            for k, w in weights.items():
                if len(fresh) == len(self.started):
                    self.weights[k].copy_(w)
                    continue
                self.weights[k].lerp_(w, _per_member(self.weight, w))
                if fresh:  # members at their first step copy, whatever the lerp gave
                    index = torch.tensor(fresh, device=w.device)
                    self.weights[k].index_copy_(0, index, w.detach().index_select(0, index))
        self.started = [True] * len(self.started)

    def select(self, index: Tensor) -> None:
        self.started = [self.started[r] for r in index.tolist()]
        self.weight = self.weight.index_select(0, index)
        self.weights = {k: w.index_select(0, index) for k, w in self.weights.items()}

    def join(self, cfg: TrainConfig, row: Weights) -> None:
        """One more member (last row), whose first update will copy its weights."""
        weight = 1.0 if cfg.ema_decay is None else 1 - cfg.ema_decay
        self.weight = torch.cat([self.weight, self.weight.new_full((1,), weight)])
        self.weights = {k: torch.cat([w, row[k].clone()]) for k, w in self.weights.items()}
        self.started = [*self.started, False]


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
