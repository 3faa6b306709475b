"""``probe_population``: the setting it chooses from its table, the table itself, the threads it
restores, the GPU branch (played on the CPU by a fake device), its argument errors, and the
Braille launcher's ``--population auto``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

import spiketune.snn._probe as probe_module
from spiketune.errors import ConfigError
from spiketune.snn import (
    PopulationProbe,
    ProbeDevice,
    ProbeRow,
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    probe_population,
)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "braille_eprop"
POOL = REPO.parent / "shared" / "data" / "braille_th1" / "braille_reduced_th1_pool.pt"

BATCH, STEPS = 4, 4
SAMPLES = BATCH * STEPS  # per member in the timed epoch


def members(k: int, built: list[int] | None = None) -> list[tuple[RecurrentSNN, TrainConfig]]:
    """k tiny networks (4 inputs, 8 neurons, 2 classes) that differ in their seed and lr."""
    if built is not None:
        built.append(k)
    return [(RecurrentSNN(SNNConfig(n_in=4, n_rec=8, n_out=2), seed=i),
             TrainConfig(batch_size=BATCH, epochs=1, seed=i, lr=1e-3 * (i + 1)))
            for i in range(k)]


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    """20 samples of 5 steps: more than the 16 a timed epoch reads."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(20, 5, 4, generator=g) < 0.3).float(), torch.randint(0, 2, (20,),
                                                                             generator=g)


def done(probe: PopulationProbe) -> list[ProbeRow]:
    return [r for r in probe.table if r.stopped is None]


# ------------------------------------------------------------------------------ CPU
def test_real_probe_table_and_choice(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One row per (K, threads), figures that agree with each other, and the chosen row the
    best one or the smallest K within 10 % of it."""
    probe = probe_population(members, data, sizes=(4, 1, 2), threads=(1, 2), steps=STEPS,
                             cores=2)
    assert [(r.size, r.threads) for r in probe.table] == [
        (1, 1), (2, 1), (4, 1), (1, 2), (2, 2), (4, 2)]
    for r in probe.table:
        assert r.stopped is None and r.seconds is not None and r.seconds > 0
        assert r.processes == 2 // r.threads
        assert r.member_rate == pytest.approx(r.size * SAMPLES / r.seconds)
        assert r.throughput == pytest.approx(r.member_rate * r.processes)
    best = max(r.throughput or 0.0 for r in probe.table)
    chosen = probe.best
    assert (chosen.size, chosen.threads, chosen.processes) == (
        probe.size, probe.threads, probe.processes)
    assert (chosen.throughput or 0.0) >= 0.9 * best
    for r in probe.table:  # no smaller setting was close enough
        if (r.size, r.threads) < (chosen.size, chosen.threads):
            assert (r.throughput or 0.0) < 0.9 * best
    text = probe.summary()
    assert len(text.splitlines()) == 2 + len(probe.table) + 1
    assert "member-samples/s" in text and f"K = {probe.size}" in text


class FakeClock:
    """``time.perf_counter`` whose timed epochs last what ``seconds[(K, threads)]`` says: the
    probe reads the clock once before and once after each timed epoch."""

    def __init__(self, seconds: dict[tuple[int, int], float], built: list[int]) -> None:
        self.seconds, self.built, self.now, self.calls = seconds, built, 0.0, 0

    def perf_counter(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # the end of a timed epoch
            self.now += self.seconds[(self.built[-1], torch.get_num_threads())]
        return self.now


@pytest.mark.parametrize(("k2_total", "chosen"), [(95.0, (2, 1)), (85.0, (4, 1))])
def test_prefers_the_smaller_k_within_ten_percent(
    data: tuple[torch.Tensor, torch.Tensor], monkeypatch: pytest.MonkeyPatch,
    k2_total: float, chosen: tuple[int, int],
) -> None:
    """Total throughputs (member-samples/s over every process) set by a fake clock: the best
    is K=4 on 1 thread (100); K=2 on 1 thread wins at 95 (within 10 %), not at 85. K=4 on 2
    threads (99) is as close but larger."""
    totals = {(1, 1): 40.0, (2, 1): k2_total, (4, 1): 100.0,
              (1, 2): 30.0, (2, 2): 60.0, (4, 2): 99.0}
    processes = {1: 2, 2: 1}
    seconds = {(k, t): k * SAMPLES * processes[t] / total for (k, t), total in totals.items()}
    built: list[int] = []
    clock = FakeClock(seconds, built)
    monkeypatch.setattr(probe_module, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    probe = probe_population(lambda k: members(k, built), data, sizes=(1, 2, 4),
                             threads=(1, 2), steps=STEPS, cores=2)
    assert clock.calls == 2 * len(totals)
    assert {(r.size, r.threads): r.throughput for r in probe.table} == pytest.approx(totals)
    assert (probe.size, probe.threads, probe.processes) == (*chosen, 2)


def test_threads_are_set_per_row_and_restored(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    before = torch.get_num_threads()
    seen: list[int] = []

    def build(k: int) -> list[tuple[RecurrentSNN, TrainConfig]]:
        seen.append(torch.get_num_threads())
        return members(k)

    target = 2 if before != 2 else 1
    probe_population(build, data, sizes=(1, 2), threads=(target,), steps=STEPS, cores=2)
    assert seen[1:] == [target]  # the first build comes before any thread count is set
    assert torch.get_num_threads() == before

    def failing(k: int) -> list[tuple[RecurrentSNN, TrainConfig]]:
        if k == 2:
            raise RuntimeError("boom")
        return members(k)

    with pytest.raises(RuntimeError, match="boom"):
        probe_population(failing, data, sizes=(1, 2), threads=(target,), steps=STEPS, cores=2)
    assert torch.get_num_threads() == before


def test_default_threads_are_one_and_every_core(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    probe = probe_population(members, data, sizes=(1,), steps=1, cores=3)
    assert [(r.threads, r.processes) for r in probe.table] == [(1, 3), (3, 1)]
    assert probe.table[0].member_rate == pytest.approx(BATCH / (probe.table[0].seconds or 0))


# ------------------------------------------------------------------------------ GPU, faked
class FakeGpu(ProbeDevice):
    """A GPU of 1000 bytes on the CPU: a population of K members peaks at ``per_member × K``
    bytes, and one of ``oom_at`` members or more runs out of memory in its timed epoch."""

    def __init__(self, built: list[int], per_member: int, oom_at: int | None) -> None:
        super().__init__("cpu")
        self.built, self.per_member, self.oom_at = built, per_member, oom_at
        self.resets = self.released = self.syncs = 0

    @property
    def is_cuda(self) -> bool:
        return True

    def total_memory(self) -> int:
        return 1000

    def peak_memory(self) -> int:
        return self.per_member * self.built[-1]

    def reset_peak(self) -> None:
        self.resets += 1

    def synchronize(self) -> None:
        self.syncs += 1
        if self.oom_at is not None and self.built[-1] >= self.oom_at and self.syncs % 2 == 0:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    def release(self) -> None:
        self.released += 1


def test_fake_gpu_stops_at_the_size_that_runs_out_of_memory(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    built: list[int] = []
    gpu = FakeGpu(built, per_member=10, oom_at=8)
    before = torch.get_num_threads()
    probe = probe_population(lambda k: members(k, built), data, steps=STEPS, cores=2,
                             device=gpu)
    assert [r.size for r in probe.table] == [1, 2, 4, 8]  # 16 never tried
    assert built == [1, 2, 4, 8]
    assert probe.table[-1].stopped == "out of memory" and probe.table[-1].throughput is None
    assert gpu.released == 1 and gpu.resets == 4
    assert all(r.stopped is None and r.processes == 1 and r.threads == 2
               for r in probe.table[:-1])
    assert probe.size in (1, 2, 4) and probe.processes == 1 and probe.threads == 2
    best = max(r.throughput or 0.0 for r in done(probe))
    assert (probe.best.throughput or 0.0) >= 0.9 * best
    assert torch.get_num_threads() == before
    assert "out of memory" in probe.summary()


def test_fake_gpu_stops_where_peak_memory_passes_the_fraction(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    built: list[int] = []
    gpu = FakeGpu(built, per_member=150, oom_at=None)  # K=4: 600 > 0.5 × 1000
    probe = probe_population(lambda k: members(k, built), data, steps=STEPS, cores=2,
                             memory_fraction=0.5, device=gpu)
    assert [r.size for r in probe.table] == [1, 2, 4]
    stopped = probe.table[-1].stopped
    assert stopped is not None and "peak memory" in stopped and "50%" in stopped
    assert probe.size in (1, 2)


def test_fake_gpu_that_fits_nothing_is_an_error(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    built: list[int] = []
    with pytest.raises(ConfigError) as err:
        probe_population(lambda k: members(k, built), data, steps=STEPS,
                         device=FakeGpu(built, per_member=10, oom_at=1))
    assert err.value.problems[0].field == "sizes"
    assert "out of memory" in err.value.problems[0].rule


# ------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sizes": ()}, "sizes"),
    ({"sizes": (1, 0)}, "sizes"),
    ({"steps": 0}, "steps"),
    ({"threads": (0,)}, "threads"),
    ({"threads": ()}, "threads"),
    ({"threads": (3,), "cores": 2}, "threads"),
    ({"cores": 0}, "cores"),
    ({"memory_fraction": 0.0}, "memory_fraction"),
    ({"memory_fraction": 1.5}, "memory_fraction"),
    ({"steps": 6}, "data"),  # 6 batches of 4: 24 samples, the data hold 20
])
def test_bad_arguments_name_their_field(
    data: tuple[torch.Tensor, torch.Tensor], kwargs: dict[str, Any], field: str,
) -> None:
    with pytest.raises(ConfigError) as err:
        probe_population(members, data, **{"sizes": (1,), "threads": (1,), **kwargs})
    assert [p.field for p in err.value.problems] == [field]


def test_build_returning_the_wrong_number_is_an_error(
    data: tuple[torch.Tensor, torch.Tensor],
) -> None:
    with pytest.raises(ConfigError) as err:
        probe_population(lambda k: members(k + 1 if k == 2 else k), data, sizes=(1, 2),
                         threads=(1,), steps=STEPS)
    (problem,) = err.value.problems
    assert (problem.field, problem.value) == ("build", 3)


def test_takes_a_tensor_dataset(data: tuple[torch.Tensor, torch.Tensor]) -> None:
    probe = probe_population(members, TensorDataset(*data), sizes=(1,), threads=(1,),
                             steps=STEPS, cores=1)
    assert (probe.size, probe.threads, probe.processes, probe.samples) == (1, 1, 1, SAMPLES)


# ------------------------------------------------------------------------------ launcher
def _load(name: str) -> ModuleType:
    """``examples/braille_eprop/<name>.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"probe_example_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def trial_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The template's directory on the path (main.py imports the trial's modules from beside
    it, as when it runs as a script), and those modules forgotten afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield
    for name in ("main_hpo", "setup_hpo", "train_hpo"):
        sys.modules.pop(name, None)


def test_launcher_population_auto_reaches_the_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    trial_modules: None,
) -> None:
    if not POOL.is_file():
        pytest.skip(f"the threshold-1 pool file is not at {POOL}")
    main = _load("main")
    calls: list[dict[str, Any]] = []
    # K by shape, as this fake probe measures it: the default network (128, e-prop) gets 3
    sizes = {(128, "eprop"): 3, (128, "bptt"): 6, (256, "eprop"): 2, (256, "bptt"): 2,
             (512, "eprop"): 1, (512, "bptt"): 1}

    def fake_probe(build: Any, data: Any, **kwargs: Any) -> PopulationProbe:
        pair = build(2)
        assert len(pair) == 2 and all(isinstance(n, RecurrentSNN) for n, _ in pair)
        assert [c.seed for _, c in pair] == [0, 1]  # one seed per member
        x, y = data.tensors
        assert x.shape[-1] == pair[0][0].n_in and len(x) == len(y) == 7 * 16  # 80 % of 20/class
        calls.append(kwargs)
        k = sizes[(pair[0][0].config.n_rec, pair[0][0].config.rule)]
        return PopulationProbe(size=k, threads=1, processes=2,
                               table=[ProbeRow(k, 1, 2, 1.0, 48.0, 96.0)], samples=16)

    monkeypatch.setattr(main, "probe_population", fake_probe)
    plain = main.experiment(main.parse_args(["--population", "auto", "--smoke", "--data",
                                             str(POOL), "--experiment-dir", str(tmp_path),
                                             "--no-report", "-q"]))
    assert len(calls) == 1 and plain.config.population_sizes is None
    calls.clear()
    args = main.parse_args(["--population", "auto", "--shape-sizes", "--smoke", "--data",
                            str(POOL), "--experiment-dir", str(tmp_path), "--no-report", "-q"])
    assert args.population == "auto"
    exp = main.experiment(args)
    assert (exp.config.population, exp.config.concurrency) == (3, 2)
    assert args.trial_threads == 1
    assert exp.config.population_group  # members share what fixes their shape
    out = capsys.readouterr().out
    assert "chosen: K = 3, 1 thread(s) per process, 2 process(es)" in out
    # then each shape of the space at the threads chosen: a K of its own
    assert len(calls) == 1 + len(sizes)
    assert all(c["threads"] == [1] for c in calls[1:])
    rules = {(r.when["n_rec"], r.when["rule"]): r.size for r in exp.config.population_sizes}
    assert rules == sizes
    assert exp.config.population_size_of({"n_rec": 512, "rule": {"_name": "bptt"}}) == 1
    assert exp.config.population_size_of({"n_rec": 128, "rule": {"_name": "bptt"}}) == 6
    assert "{'n_rec': 128, 'rule': 'bptt'}: K = 6" in out

    assert main.parse_args(["--population", "4"]).population == 4
    with pytest.raises(SystemExit) as exit_:
        main.parse_args(["--population", "many"])
    assert exit_.value.code == 2
