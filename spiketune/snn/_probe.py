"""Choose the population size K and the CPU threads of population mode from a short probe.

How fast a :class:`PopulationTrainer` runs depends on the machine more than on the network:
on a CPU, K members share the dispatch of small kernels, but threads help a batched product
only up to a point, and several single-thread processes often beat one process with every
core; on a GPU a larger K is nearly free until the device's memory runs out. No fixed K and
thread count suits every machine, so :func:`probe_population` measures: it trains a few
representative populations for a few timed epochs of a few batches each and keeps the setting
with the highest throughput (member-samples per second over every process the machine runs).

The result is a :class:`PopulationProbe`: K, threads, how many population processes at once,
the measured table, and :meth:`PopulationProbe.summary` to print.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from spiketune.errors import ConfigError, Problem
from spiketune.snn._config import TrainConfig
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._population import PopulationTrainer
from spiketune.snn._trainer import Data

Member = tuple[RecurrentSNN, TrainConfig]
#: A setting whose throughput lies within this fraction of the best counts as a tie.
TIE = 0.10
#: Seconds of timed epochs a setting gets at least (each epoch counts whole), and the most
#: timed epochs it gets: its fastest epoch is its figure.
TIMED_SECONDS = 0.25
TIMED_EPOCHS = 8
_DIVERGED = "no member trained in the timed epoch (non-finite loss)"


class ProbeDevice:
    """What the probe asks of the device the members train on: whether it is a GPU, its memory
    in bytes, how to wait for it, and what it raises when it runs out of memory.

    The default answers for the real ``device``. A test passes a subclass that plays a GPU on
    the CPU (``is_cuda`` True, memory figures of its own, an out-of-memory error at some K),
    so that the CUDA branch of :func:`probe_population` runs without one.
    """

    #: The exception a step raises when the device runs out of memory.
    out_of_memory: type[BaseException] = torch.cuda.OutOfMemoryError

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def total_memory(self) -> int:
        """The device's memory, bytes."""
        return int(torch.cuda.get_device_properties(self.device).total_memory)

    def peak_memory(self) -> int:
        """The most memory allocated since :meth:`reset_peak`, bytes."""
        return int(torch.cuda.max_memory_allocated(self.device))

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def synchronize(self) -> None:
        """Wait for queued kernels: a GPU runs asynchronously, so the clock is read after."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def release(self) -> None:
        """Give cached memory back after a size that did not fit."""
        if self.is_cuda:
            torch.cuda.empty_cache()


@dataclass(frozen=True)
class ProbeRow:
    """One measured setting: ``size`` members on ``threads`` CPU threads per process.

    ``seconds``: the fastest timed epoch's wall-clock time; ``member_rate``: member-samples
    per second of one process (K × samples / seconds); ``throughput``: the same over every
    process the machine runs at once (``processes``). ``stopped`` says why a setting does not
    count (out of memory, peak memory over the limit); its figures are None when it did not
    finish.
    """

    size: int
    threads: int
    processes: int
    seconds: float | None
    member_rate: float | None
    throughput: float | None
    stopped: str | None = None


@dataclass(frozen=True)
class PopulationProbe:
    """The chosen setting and what it was chosen from.

    ``size``: K, the members of one population; ``threads``: CPU threads per population
    process; ``processes``: population processes at once (cores // threads on a CPU, 1 on a
    GPU); ``table``: every setting tried, in the order tried; ``device``: where they trained;
    ``samples``: samples per member in the timed epoch.
    """

    size: int
    threads: int
    processes: int
    table: list[ProbeRow]
    device: str = "cpu"
    samples: int = 0

    @property
    def best(self) -> ProbeRow:
        """The table's row of the chosen setting."""
        return next(r for r in self.table if r.size == self.size and r.threads == self.threads
                    and r.stopped is None)

    def summary(self) -> str:
        """The table and the choice, a few printable lines."""
        lines = [f"population probe on {self.device}: the fastest epoch of {self.samples} "
                 f"samples per member, after a warm-up epoch",
                 f"  {'K':>4} {'threads':>7} {'processes':>9} {'epoch s':>8} "
                 f"{'member-samples/s':>16} {'total/s':>9}"]
        for r in self.table:
            figures = (f"{r.seconds:8.3f} {r.member_rate:16.0f} {r.throughput:9.0f}"
                       if r.seconds is not None and r.member_rate is not None
                       and r.throughput is not None else f"{'-':>8} {'-':>16} {'-':>9}")
            note = f"  ({r.stopped})" if r.stopped else ""
            lines.append(f"  {r.size:4d} {r.threads:7d} {r.processes:9d} {figures}{note}")
        lines.append(
            f"chosen: K = {self.size}, {self.threads} thread(s) per process, {self.processes} "
            f"process(es) at once: {self.best.throughput:.0f} member-samples/s in all "
            f"(the smallest K within {TIE:.0%} of the best)")
        return "\n".join(lines)


def probe_population(
    build: Callable[[int], Sequence[Member]],
    data: Data,
    *,
    sizes: Sequence[int] = (1, 2, 4, 8, 16),
    threads: Sequence[int] | None = None,
    steps: int = 4,
    cores: int | None = None,
    memory_fraction: float = 0.8,
    device: ProbeDevice | None = None,
) -> PopulationProbe:
    """Measure populations of each size in ``sizes`` and choose K, threads and processes.

    ``build(k)`` returns k ``(RecurrentSNN, TrainConfig)`` members that stand for the trials
    (the caller decides what a representative member is); ``data`` is training data as a
    :class:`PopulationTrainer` takes it, of which the first ``steps × batch_size`` samples are
    used. Every setting trains one warm-up epoch, then timed epochs of ``steps`` batches
    (until :data:`TIMED_SECONDS` have passed, the fastest counts), without validation;
    ``torch.get_num_threads()`` is restored afterwards.

    **On a CPU** each thread count of ``threads`` (default: 1 and every core this process may
    use, ``cores`` or ``os.sched_getaffinity``) is tried with each K, and a setting's
    throughput is the member-samples per second of one process times the processes the cores
    allow (``cores // threads``). **On a GPU** (members on a CUDA device) threads are not
    probed (the first of ``threads``, default every core: the one process has the machine)
    and K grows through ``sizes`` until a population runs out of memory or its peak memory
    exceeds ``memory_fraction`` of the device's; the sizes below it compete.

    The setting with the highest throughput wins, except that the smallest K (then the fewest
    threads) within 10 % of it is preferred: a larger population waits longer for its slowest
    member and ties more trials to one draw of the tuner, for little gain. ``device`` replaces
    the real device's facts (tests). Bad arguments raise a ConfigError naming the field.
    """
    _check_arguments(sizes, threads, steps, cores, memory_fraction)
    available = cores if cores is not None else _available_cores()
    wanted = sorted(set(sizes))
    first = _build(build, wanted[0])
    facts = device if device is not None else ProbeDevice(first[0][0].w_in.device)
    batch = first[0][1].batch_size
    subset = _subset(data, steps * batch)
    if threads is not None:
        counts = list(dict.fromkeys(threads))
    else:  # a GPU's one process takes every core; a CPU's cores are shared out, or not
        counts = [available] if facts.is_cuda else sorted({1, available})
    for t in counts:
        if t > available:
            raise ConfigError(Problem("threads", t, f"at most the {available} cores available"))
    table: list[ProbeRow] = []
    before = torch.get_num_threads()
    try:
        if facts.is_cuda:
            _probe_gpu(build, subset, wanted, counts[0], first, facts, memory_fraction, table)
        else:
            for t in counts:
                torch.set_num_threads(t)
                for k in wanted:
                    members = first if (k == wanted[0] and t == counts[0]) else _build(build, k)
                    seconds, trained = _timed_epoch(members, subset, facts)
                    rate = trained * len(subset[0]) / seconds
                    processes = available // t
                    table.append(ProbeRow(k, t, processes, seconds, rate, rate * processes,
                                          None if trained else _DIVERGED))
    finally:
        torch.set_num_threads(before)
    done = [r for r in table if r.stopped is None]
    if not done:
        raise ConfigError(Problem(
            "sizes", list(sizes),
            f"a size whose population trains within the device's memory ({table[0].stopped})",
        ))
    top = max(r.throughput or 0.0 for r in done)
    chosen = min((r for r in done if (r.throughput or 0.0) >= (1 - TIE) * top),
                 key=lambda r: (r.size, r.threads))
    return PopulationProbe(chosen.size, chosen.threads, chosen.processes, table,
                           device=str(facts.device), samples=len(subset[0]))


def _probe_gpu(
    build: Callable[[int], Sequence[Member]], data: tuple[Tensor, Tensor], sizes: list[int],
    threads: int, first: Sequence[Member], facts: ProbeDevice, memory_fraction: float,
    table: list[ProbeRow],
) -> None:
    """Grow K until a population does not fit; one process, so throughput = member rate."""
    torch.set_num_threads(threads)
    limit = memory_fraction * facts.total_memory()
    for k in sizes:
        facts.reset_peak()
        try:
            members = first if k == sizes[0] else _build(build, k)
            seconds, trained = _timed_epoch(members, data, facts)
        except facts.out_of_memory:
            facts.release()
            table.append(ProbeRow(k, threads, 1, None, None, None, "out of memory"))
            return
        rate = trained * len(data[0]) / seconds
        peak = facts.peak_memory()
        if not trained:
            table.append(ProbeRow(k, threads, 1, seconds, rate, rate, _DIVERGED))
        elif peak > limit:
            table.append(ProbeRow(
                k, threads, 1, seconds, rate, rate,
                f"peak memory {peak / 2**30:.2f} GiB over {memory_fraction:.0%} of "
                f"{facts.total_memory() / 2**30:.2f} GiB",
            ))
            return
        else:
            table.append(ProbeRow(k, threads, 1, seconds, rate, rate))


def _timed_epoch(members: Sequence[Member], data: tuple[Tensor, Tensor],
                 facts: ProbeDevice) -> tuple[float, int]:
    """Seconds of the fastest timed epoch after a warm-up epoch (which warms caches and
    allocators), and how many members trained in it (a member whose loss turned non-finite
    has left). Epochs are timed until :data:`TIMED_SECONDS` have passed (at most
    :data:`TIMED_EPOCHS`): a small population's epoch lasts milliseconds, and one such
    reading is mostly the noise of the machine."""
    # Enough epochs whatever the members' budgets, and no early stop in between.
    many = [(net, TrainConfig.from_params({**cfg.model_dump(), "epochs": 1 + TIMED_EPOCHS,
                                           "patience": None}))
            for net, cfg in members]
    run = PopulationTrainer(many).epochs(data)
    best: tuple[float, int] | None = None
    spent = 0.0
    try:
        next(run)
        for _ in range(TIMED_EPOCHS):
            facts.synchronize()
            start = time.perf_counter()
            report = next(run, None)
            facts.synchronize()
            seconds = max(time.perf_counter() - start, 1e-9)
            trained = len(report or {})
            spent += seconds
            if best is None or trained / seconds > best[1] / best[0]:
                best = (seconds, trained)
            if not trained or spent >= TIMED_SECONDS:
                break
        assert best is not None
        return best
    finally:
        run.close()


def _build(build: Callable[[int], Sequence[Member]], k: int) -> Sequence[Member]:
    members = build(k)
    if len(members) != k:
        raise ConfigError(Problem("build", len(members), f"build({k}) returns {k} members"))
    return members


def _subset(data: Data, n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` samples of ``data`` (inputs, labels)."""
    tensors = data.tensors if isinstance(data, TensorDataset) else tuple(data)
    if len(tensors) != 2:
        raise ConfigError(Problem("data", len(tensors), "two tensors: inputs and labels"))
    x, y = tensors
    if len(x) < n:
        raise ConfigError(Problem(
            "data", len(x), f"at least steps × batch_size = {n} samples"
        ))
    return x[:n], y[:n]


def _check_arguments(sizes: Sequence[int], threads: Sequence[int] | None, steps: int,
                     cores: int | None, memory_fraction: float) -> None:
    problems: list[Problem] = []
    if len(sizes) == 0:
        problems.append(Problem("sizes", list(sizes), "at least one population size"))
    problems += [Problem("sizes", k, "population sizes of at least 1")
                 for k in sizes if not isinstance(k, int) or k < 1]
    if threads is not None:
        if len(threads) == 0:
            problems.append(Problem("threads", list(threads), "at least one thread count"))
        problems += [Problem("threads", t, "thread counts of at least 1")
                     for t in threads if not isinstance(t, int) or t < 1]
    if not isinstance(steps, int) or steps < 1:
        problems.append(Problem("steps", steps, "at least 1 batch per timed epoch"))
    if cores is not None and (not isinstance(cores, int) or cores < 1):
        problems.append(Problem("cores", cores, "at least 1, or None (the cores available)"))
    if not 0 < memory_fraction <= 1:
        problems.append(Problem("memory_fraction", memory_fraction, "in (0, 1]"))
    if problems:
        raise ConfigError(problems)


def _available_cores() -> int:
    """The cores this process may run on (its affinity, where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
