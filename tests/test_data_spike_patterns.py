"""The Mihalas–Niebur spike-pattern task: class-defining behaviours, determinism, options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiketune.data import (
    SPIKE_PATTERN_RATIOS,
    SPIKE_PATTERNS,
    MihalasNieburParams,
    SpikePattern,
    SpikePatternLoader,
    make_spike_patterns,
    simulate_mihalas_niebur,
    stratified_split,
)
from spiketune.data._spike_patterns import stimulus_currents
from spiketune.errors import ConfigError


def spike_times(letter: str, **options: object) -> list[np.ndarray]:
    """Spike step indices of each sample of one class."""
    ds = make_spike_patterns(classes=[letter], **options)  # type: ignore[arg-type]
    return [np.flatnonzero(row) for row in ds.inputs[:, :, 0].numpy()]


CLEAN = {"noise": 0.0, "jitter": 0.0, "samples_per_class": 1}


def test_default_task_shape_labels_and_description() -> None:
    ds = make_spike_patterns()
    assert ds.inputs.shape == (2000, 1000, 1) and ds.inputs.dtype == torch.float32
    assert ds.labels.dtype == torch.int64
    assert (ds.n_classes, ds.n_inputs, ds.n_steps, ds.dt) == (20, 1, 1000, 0.001)
    assert ds.classes[0] == "tonic spiking" and ds.classes[-1] == "spike latency"
    assert set(ds.class_counts().values()) == {100}
    assert set(ds.inputs.unique().tolist()) == {0.0, 1.0}
    split = stratified_split(ds.labels, SPIKE_PATTERN_RATIOS, seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (1400, 400, 200)


def test_tonic_spiking_fires_regularly() -> None:
    [t] = spike_times("A", **CLEAN)
    isi = np.diff(t)
    assert len(t) >= 40 and t[-1] > 950  # fires until the end of the second
    assert isi.std() / isi.mean() < 0.05
    for t in spike_times("A", samples_per_class=10):  # noise and jitter keep it regular
        isi = np.diff(t)
        assert isi.std() / isi.mean() < 0.1


def test_phasic_spiking_fires_at_onset_then_stops() -> None:
    [t] = spike_times("D", **CLEAN)
    [tonic] = spike_times("A", **CLEAN)
    assert 1 <= len(t) <= 6 and t[0] < 50
    assert t[-1] < 250  # silent for the rest of the constant input ...
    assert (tonic > 250).sum() > 30  # ... while tonic spiking goes on firing
    for t in spike_times("D", samples_per_class=20):
        assert len(t) >= 1 and t[-1] < 300


def test_spike_latency_fires_once_late() -> None:
    # One period of the stimulus: an 8 V/s pulse of 2 ms, then nothing for 48 ms.
    [t] = spike_times("T", n_steps=50, **CLEAN)
    assert len(t) == 1
    assert t[0] >= 10  # long after the pulse has ended
    [t] = spike_times("T", **CLEAN)
    assert len(t) == 20  # once per 50 ms repetition


def test_class_1_at_threshold_current_fires_slowly() -> None:
    [slow] = spike_times("B", **CLEAN)
    [tonic] = spike_times("A", **CLEAN)
    assert 1 <= len(slow) <= 10 < len(tonic)
    assert slow[0] > 100  # the first spike comes late
    assert np.diff(slow).min() > 3 * np.diff(tonic).max()


def test_rebound_spike_fires_only_after_the_negative_step_ends() -> None:
    # -3.5 V/s from 50 ms to 800 ms: no spike before its end, a spike soon after.
    noisy = spike_times("G", samples_per_class=20)  # with noise and jitter
    assert all(len(t) == 0 or t[0] >= 800 for t in noisy)
    assert sum(len(t) >= 1 and t[0] < 900 for t in noisy) >= 15
    [t] = spike_times("G", **CLEAN)
    assert len(t) == 1 and 800 <= t[0] < 900


def test_jitter_delays_each_change_by_up_to_4_ms() -> None:
    rng = np.random.Generator(np.random.PCG64(0))
    current = stimulus_currents(SPIKE_PATTERNS["G"], 200, 1000, 0.001, 0.004, rng)
    onset = (current < 0).argmax(axis=1)  # first step of the -3.5 V/s phase
    offset = 1000 - (current[:, ::-1] < 0).argmax(axis=1)  # first step after it
    assert onset.min() >= 50 and onset.max() <= 54
    assert offset.min() >= 800 and offset.max() <= 804
    assert len(set(onset.tolist())) > 2  # drawn per sample
    assert not np.array_equal(onset - 50, offset - 800)  # and per change
    clean = stimulus_currents(SPIKE_PATTERNS["G"], 1, 1000, 0.001, 0.0, rng)[0]
    assert np.flatnonzero(clean < 0).tolist() == list(range(50, 800))


def _runs(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The value and the length in steps of each run of equal values in ``row``."""
    starts = np.flatnonzero(np.concatenate(([True], row[1:] != row[:-1])))
    return row[starts], np.diff(np.append(starts, len(row)))


def test_jitter_keeps_the_spike_latency_pulse_within_its_bound() -> None:
    # Both edges of each 2 ms pulse are delayed by up to 4 ms: it lasts 0-6 ms (the first,
    # which starts at t = 0, 2-6 ms), never longer, and 8 V/s and 0 keep alternating.
    rng = np.random.Generator(np.random.PCG64(0))
    current = stimulus_currents(SPIKE_PATTERNS["T"], 500, 1000, 0.001, 0.004, rng)
    pulses = 0
    for row in current:
        values, lengths = _runs(row)
        assert values.tolist() == [8.0, 0.0] * (len(values) // 2)
        on = lengths[values == 8.0]
        assert 2 <= on[0] <= 6 and on.max() <= 6
        assert (lengths[values == 0.0][:-1] >= 44).all()
        pulses += len(on)
    # A pulse whose rising edge is delayed 2 ms more than its falling edge is skipped (one
    # in eight); one shorter than a step may also miss the 1 ms grid.
    assert 0.75 < pulses / (500 * 20) < 0.9
    # So the neuron fires about once a pulse, as without jitter (20 spikes a second).
    counts = make_spike_patterns(classes=["T"], samples_per_class=50).inputs.sum((1, 2))
    assert 12 <= counts.median().item() <= 24 and counts.max().item() <= 30


def test_jitter_keeps_the_levels_in_the_recipes_order() -> None:
    # A staircase of 1 ms steps, then 10 V/s for 100 ms, under 4 ms jitter: changes overtake
    # one another, and a level may be skipped, but the current never steps down.
    steps = (*((float(v), 1) for v in range(1, 10)), (10.0, 100))
    stairs = SpikePattern("X", "stairs", 0, 0, 0, steps)
    rng = np.random.Generator(np.random.PCG64(3))
    current = stimulus_currents(stairs, 200, 200, 0.0001, 0.004, rng)  # 20 ms in 0.1 ms
    assert (np.diff(current, axis=1) >= 0).all()
    assert (current[:, 0] == 1.0).all() and (current[:, -1] == 10.0).all()
    assert len({tuple(_runs(row)[0]) for row in current}) > 20  # levels are skipped


def test_short_stimuli_repeat_to_fill_the_window() -> None:
    rng = np.random.Generator(np.random.PCG64(0))
    pulse = stimulus_currents(SPIKE_PATTERNS["T"], 1, 1000, 0.001, 0.0, rng)[0]
    assert np.flatnonzero(pulse > 0).tolist() == [k for k in range(1000) if k % 50 < 2]


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = make_spike_patterns(classes=["A", "P"], samples_per_class=5, seed=11)
    b = make_spike_patterns(classes=["A", "P"], samples_per_class=5, seed=11)
    c = make_spike_patterns(classes=["A", "P"], samples_per_class=5, seed=12)
    assert torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.inputs, c.inputs)


def test_without_noise_and_jitter_all_samples_of_a_class_agree() -> None:
    ds = make_spike_patterns(classes=["M"], samples_per_class=4, noise=0.0, jitter=0.0)
    assert all(torch.equal(ds.inputs[0], ds.inputs[i]) for i in range(4))
    noisy = make_spike_patterns(classes=["M"], samples_per_class=4, noise=0.5, jitter=0.0)
    assert not all(torch.equal(noisy.inputs[0], noisy.inputs[i]) for i in range(4))


def test_class_subset_order_length_and_dt() -> None:
    ds = make_spike_patterns(
        classes=["spike latency", "a"], samples_per_class=3, n_steps=200, dt=0.0005
    )
    assert ds.classes == ("spike latency", "tonic spiking")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.inputs.shape == (6, 200, 1) and ds.dt == 0.0005
    assert ds.info.duration == pytest.approx(0.1)


def test_every_class_is_distinct_in_the_default_task() -> None:
    ds = make_spike_patterns(samples_per_class=1, noise=0.0, jitter=0.0)
    rows = {tuple(np.flatnonzero(r).tolist()) for r in ds.inputs[:, :, 0].numpy()}
    assert len(rows) == 20


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"classes": ["A", "Z"]}, "classes"),
        ({"classes": ["A", "tonic spiking"]}, "classes"),
        ({"classes": []}, "classes"),
        ({"samples_per_class": 0}, "samples_per_class"),
        ({"noise": -0.1}, "noise"),
        ({"jitter": float("nan")}, "jitter"),
        ({"n_steps": 0}, "n_steps"),
        ({"dt": 0.0}, "dt"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_options_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_spike_patterns(**options)
    assert info.value.problems[0].field == field


@pytest.mark.parametrize("dt", [0.00101, 0.002, 0.005, 0.02])
def test_a_step_too_coarse_for_forward_euler_is_refused(dt: float) -> None:
    # k1 = 200 1/s: at 5 ms k1 * dt = 1 and tonic bursting fires four times as often; at 20 ms
    # every class spikes at every step. The bound is the task's own 1 ms (k1 * dt = 0.2).
    with pytest.raises(ConfigError) as info:
        make_spike_patterns(dt=dt, n_steps=100)
    [problem] = info.value.problems
    assert (problem.field, problem.value) == ("dt", dt)
    assert "at most 0.001 s" in problem.rule and "k1 * dt <= 0.2" in problem.rule


def test_steps_of_1_ms_and_finer_are_allowed() -> None:
    coarse = make_spike_patterns(classes=["M"], dt=0.001, **CLEAN)
    fine = make_spike_patterns(classes=["M"], dt=0.0001, n_steps=10000, **CLEAN)
    assert (coarse.dt, fine.dt) == (0.001, 0.0001)
    # Tonic bursting: 49 spikes at 1 ms, 42 at 0.1 ms (198 at 5 ms, were it allowed).
    assert abs(coarse.inputs.sum().item() - fine.inputs.sum().item()) <= 0.2 * 42


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ConfigError, match="length"):
        SpikePatternLoader(length=10)


def _reference_run(current: np.ndarray, a: float, a1: float, a2: float) -> list[int]:
    """A scalar transcription of the model equations, step by step (dt = 1 ms)."""
    dt, v, theta, i1, i2 = 0.001, -0.07, -0.05, 0.0, 0.0
    out = []
    for k, ie in enumerate(current):
        dv = ie + i1 + i2 - 50.0 * (v + 0.07)
        dtheta = a * (v + 0.07) - 10.0 * (theta + 0.05)
        v, theta = v + dt * dv, theta + dt * dtheta
        i1, i2 = i1 - dt * 200.0 * i1, i2 - dt * 20.0 * i2
        if v >= theta:
            out.append(k)
            i1, i2 = 0.0 * i1 + a1, 1.0 * i2 + a2
            v, theta = -0.07, max(-0.06, theta)
    return out


def test_vectorised_dynamics_match_a_scalar_transcription() -> None:
    rng = np.random.default_rng(5)
    letters = ["A", "D", "L", "M", "R", "S"]
    current = 2.0 + 0.5 * rng.standard_normal((len(letters), 400))
    patterns = [SPIKE_PATTERNS[c] for c in letters]
    p = MihalasNieburParams(
        a=np.array([q.a for q in patterns], dtype=float),
        a1=np.array([q.a1 for q in patterns], dtype=float),
        a2=np.array([q.a2 for q in patterns], dtype=float),
    )
    spikes = simulate_mihalas_niebur(current, p, dt=0.001)
    for row, q, drive in zip(spikes, patterns, current, strict=True):
        assert np.flatnonzero(row).tolist() == _reference_run(drive, q.a, q.a1, q.a2)
    assert spikes.sum() > 50
