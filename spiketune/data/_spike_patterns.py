"""The 20-class spike-pattern task of the Mihalas–Niebur neuron (no download needed).

Mihalas & Niebur, "A generalized linear integrate-and-fire neural model produces diverse
spiking behaviors", Neural Computation 21(3):704–718 (2009). With ``C = 1``:

    dV/dt = I_e + I1 + I2 − G (V − E_L)
    dΘ/dt = a (V − E_L) − b (Θ − Θ_inf)
    dI_j/dt = −k_j I_j
    when V ≥ Θ:  I_j ← R_j I_j + A_j,  V ← V_r,  Θ ← max(Θ_r, Θ)

Volts, seconds; currents (``I_e``, ``A_j``) are in V/s since ``C = 1``. Each class is one set of
``(a, A1, A2)`` and one stimulus, from the paper's table as reproduced in the ReScience
replication. A sample is the neuron's output spike train ``[n_steps, 1]`` under that
stimulus (repeated to fill the window), with Gaussian noise on the input current and each
step change of the stimulus delayed by a random jitter. All samples of all classes are
integrated together (forward Euler), so the default 2,000 samples take well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import torch

from spiketune.data._base import Dataset, DatasetInfo, DatasetLoader, validate_options

#: Default train/val/test ratios of the published task.
SPIKE_PATTERN_RATIOS: tuple[float, float, float] = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class MihalasNieburParams:
    """Parameters of the Mihalas–Niebur neuron; fields may be scalars or per-sample arrays.

    ``g`` is G/C and ``b``, ``k1``, ``k2``, ``a`` are rates in 1/s; voltages in V; ``a1``,
    ``a2`` (spike-triggered current jumps) in V/s.
    """

    a: float | np.ndarray = 0.0
    a1: float | np.ndarray = 0.0
    a2: float | np.ndarray = 0.0
    g: float = 50.0
    e_l: float = -0.07
    v_r: float = -0.07
    theta_inf: float = -0.05
    theta_r: float = -0.06
    b: float = 10.0
    k1: float = 200.0
    k2: float = 20.0
    r1: float = 0.0
    r2: float = 1.0


@dataclass
class MihalasNieburState:
    """Membrane potential ``v`` and threshold ``theta`` (V), currents ``i1``, ``i2`` (V/s)."""

    v: np.ndarray
    theta: np.ndarray
    i1: np.ndarray
    i2: np.ndarray


def mihalas_niebur_step(
    state: MihalasNieburState, current: np.ndarray, p: MihalasNieburParams, dt: float
) -> tuple[np.ndarray, MihalasNieburState]:
    """One forward-Euler step of ``dt`` seconds under input ``current`` (V/s).

    Every derivative is taken at the old state; the spike condition is checked on the new
    state, and the reset applied at once. Returns ``(spikes, new_state)``. Accurate only while
    every rate times ``dt`` is small: the generator keeps ``k1 * dt <= 0.2`` (``dt <= 1 ms``).
    """
    s = state
    dv = current + s.i1 + s.i2 - p.g * (s.v - p.e_l)
    dtheta = p.a * (s.v - p.e_l) - p.b * (s.theta - p.theta_inf)
    v = s.v + dt * dv
    theta = s.theta + dt * dtheta
    i1 = s.i1 - dt * p.k1 * s.i1
    i2 = s.i2 - dt * p.k2 * s.i2
    spikes = v >= theta
    i1 = np.where(spikes, p.r1 * i1 + p.a1, i1)
    i2 = np.where(spikes, p.r2 * i2 + p.a2, i2)
    v = np.where(spikes, p.v_r, v)
    theta = np.where(spikes, np.maximum(p.theta_r, theta), theta)
    return spikes, MihalasNieburState(v, theta, i1, i2)


def simulate_mihalas_niebur(
    current: np.ndarray,
    p: MihalasNieburParams,
    dt: float,
    v0: float | np.ndarray | None = None,
    theta0: float | np.ndarray | None = None,
) -> np.ndarray:
    """Spike trains ``[S, T]`` (bool) for input currents ``[S, T]`` (V/s), steps of ``dt`` s.

    The neuron starts at ``V = v0`` (default ``E_L``), ``Θ = theta0`` (default ``Θ_inf``) and
    ``I1 = I2 = 0``.
    """
    current = np.asarray(current, dtype=np.float64)
    n, t = current.shape
    v = np.broadcast_to(np.asarray(p.e_l if v0 is None else v0, dtype=np.float64), (n,)).copy()
    th0 = p.theta_inf if theta0 is None else theta0
    theta = np.broadcast_to(np.asarray(th0, dtype=np.float64), (n,)).copy()
    state = MihalasNieburState(v, theta, np.zeros(n), np.zeros(n))
    out = np.zeros((n, t), dtype=bool)
    for k in range(t):
        out[:, k], state = mihalas_niebur_step(state, current[:, k], p, dt)
    return out


@dataclass(frozen=True)
class SpikePattern:
    """One class: neuron parameters and one period of its stimulus.

    ``stimulus`` is a list of ``(value in V/s, duration in ms)``; the period is their total
    duration, and the stimulus repeats to fill the window.
    """

    letter: str
    name: str
    a: float
    a1: float
    a2: float
    stimulus: tuple[tuple[float, int], ...]
    v0: float | None = None
    theta0: float | None = None
    period_ms: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "period_ms", sum(d for _, d in self.stimulus))


def _pulses(value: float, spans_ms: Sequence[tuple[int, int]], period_ms: int) -> tuple:
    """Stimulus segments for ``value`` on each ``(start, end)`` ms span, 0 elsewhere."""
    segs: list[tuple[float, int]] = []
    t = 0
    for start, end in spans_ms:
        if start > t:
            segs.append((0.0, start - t))
        segs.append((value, end - start))
        t = end
    if period_ms > t:
        segs.append((0.0, period_ms - t))
    return tuple(segs)


_PATTERNS: tuple[SpikePattern, ...] = (
    SpikePattern("A", "tonic spiking", 0, 0, 0, ((1.5, 200),)),
    SpikePattern("B", "class 1", 0, 0, 0, ((1 + 1e-6, 500),)),
    SpikePattern("C", "spike frequency adaptation", 5, 0, 0, ((2.0, 200),)),
    SpikePattern("D", "phasic spiking", 5, 0, 0, ((1.5, 500),)),
    SpikePattern(
        "E",
        "accommodation",
        5,
        0,
        0,
        ((1.5, 100), (0.0, 500), (0.5, 100), (1.0, 100), (1.5, 100), (0.0, 100)),
    ),
    SpikePattern(
        "F",
        "threshold variability",
        5,
        0,
        0,
        ((1.5, 20), (0.0, 180), (-1.5, 25), (0.0, 25), (1.5, 25), (0.0, 125)),
    ),
    SpikePattern("G", "rebound spike", 5, 0, 0, ((0.0, 50), (-3.5, 750), (0.0, 200))),
    SpikePattern("H", "class 2", 5, 0, 0, ((2 * (1 + 1e-6), 300),), v0=-0.03, theta0=-0.03),
    SpikePattern(
        "I", "integrator", 5, 0, 0, _pulses(1.5, [(0, 20), (30, 50), (300, 320), (340, 360)], 400)
    ),
    SpikePattern(
        "J", "input bistability", 5, 0, 0, ((1.5, 100), (1.7, 400), (1.5, 100), (1.7, 400))
    ),
    SpikePattern("K", "hyperpolarization-induced spiking", 30, 0, 0, ((-1.0, 400),)),
    SpikePattern("L", "hyperpolarization-induced bursting", 30, 10, -0.6, ((-1.0, 400),)),
    SpikePattern("M", "tonic bursting", 5, 10, -0.6, ((2.0, 500),)),
    SpikePattern("N", "phasic bursting", 5, 10, -0.6, ((1.5, 500),)),
    SpikePattern("O", "rebound burst", 5, 10, -0.6, ((0.0, 100), (-3.5, 500), (0.0, 400))),
    SpikePattern("P", "mixed mode", 5, 5, -0.3, ((2.0, 500),)),
    SpikePattern("Q", "afterpotentials", 5, 5, -0.3, ((2.0, 15), (0.0, 185))),
    SpikePattern(
        "R", "basal bistability", 0, 8, -0.1, ((5.0, 10), (0.0, 90), (5.0, 10), (0.0, 90))
    ),
    SpikePattern(
        "S",
        "preferred frequency",
        5,
        -3,
        0.5,
        ((5.0, 5), (0.0, 5), (4.0, 5), (0.0, 385), (5.0, 5), (0.0, 45), (4.0, 5), (0.0, 345)),
    ),
    SpikePattern("T", "spike latency", -80, 0, 0, ((8.0, 2), (0.0, 48))),
)

#: The 20 classes by letter, ``"A"`` (tonic spiking) to ``"T"`` (spike latency).
SPIKE_PATTERNS: dict[str, SpikePattern] = {p.letter: p for p in _PATTERNS}


def _changes(pattern: SpikePattern, duration: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Initial value, then times (s) and values of every step change inside ``duration`` s."""
    v0 = pattern.stimulus[0][0]
    times: list[float] = []
    values: list[float] = []
    current = v0
    start_ms = 0
    while start_ms * 1e-3 < duration:
        for value, dur in pattern.stimulus:
            if start_ms * 1e-3 >= duration:
                break
            if value != current:
                times.append(start_ms * 1e-3)
                values.append(value)
                current = value
            start_ms += dur
    return v0, np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)


def stimulus_currents(
    pattern: SpikePattern,
    n_samples: int,
    n_steps: int,
    dt: float,
    jitter: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The stimulus of ``pattern`` for ``n_samples`` samples: ``[n_samples, n_steps]`` V/s.

    Each step change after ``t = 0`` is delayed by its own ``U(0, jitter)`` seconds in each
    sample, but never to before the change that precedes it: the levels keep the recipe's
    order, and a segment the delays shorten to nothing is skipped. A segment of ``d`` seconds
    thus lasts between ``max(0, d - jitter)`` and ``d + jitter``. The value at step ``k`` is
    the one in force at ``k * dt``.
    """
    v0, times, values = _changes(pattern, n_steps * dt)
    t = np.arange(n_steps) * dt
    out = np.full((n_samples, n_steps), v0, dtype=np.float64)
    if len(times) == 0:
        return out
    level = np.concatenate(([v0], values))
    shifted = np.broadcast_to(times, (n_samples, len(times)))
    if jitter > 0:
        # Sorting the delayed times would reorder the levels (a pulse's falling edge drawn
        # before its rising edge would hold the pulse until the next change); a running
        # maximum keeps them in order and lets a later change overtake an earlier one.
        delays = rng.uniform(0.0, jitter, size=(n_samples, len(times)))
        shifted = np.maximum.accumulate(times + delays, axis=1)
    for s in range(n_samples):
        # Small tolerance: a change at exactly k * dt is in force at step k.
        out[s] = level[np.searchsorted(shifted[s], t + 1e-12, side="right")]
    return out


#: The largest ``rate * dt`` the generator allows, for its fastest rate constant (k1 = 200 1/s):
#: 0.2, at the task's own 1 ms step. Forward Euler multiplies a decaying current by
#: ``1 - rate * dt`` each step, so coarser steps change the classes (noise-free, spikes in 1 s
#: against 1 ms: input bistability 22 against 14 and basal bistability 156 against 129 at
#: 1.25 ms, 223 at 2 ms); at 5 ms ``k1 * dt = 1`` wipes the spike-triggered current ``I1`` in
#: one step and tonic bursting fires 198 spikes against 49; at 20 ms every class fires at every
#: step. Finer steps are allowed.
_MAX_RATE_DT = 0.2
_FASTEST_RATE = max(
    MihalasNieburParams.g, MihalasNieburParams.k1, MihalasNieburParams.k2, MihalasNieburParams.b
)
#: The coarsest step (s) the generator integrates at: 1 ms.
_MAX_DT = _MAX_RATE_DT / _FASTEST_RATE


class SpikePatternOptions(pydantic.BaseModel):
    """Options of ``make_spike_patterns``; see its docstring."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    classes: Literal["all"] | tuple[str, ...] = "all"
    samples_per_class: int = pydantic.Field(default=100, ge=1)
    noise: float = pydantic.Field(default=0.1, ge=0, allow_inf_nan=False)
    jitter: float = pydantic.Field(default=0.004, ge=0, allow_inf_nan=False)
    n_steps: int = pydantic.Field(default=1000, ge=1)
    dt: float = pydantic.Field(default=0.001, gt=0, allow_inf_nan=False)
    seed: int = pydantic.Field(default=0, ge=0)

    @pydantic.field_validator("classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> Any:
        if value == "all":
            return value
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            raise ValueError("must be 'all' or a non-empty list of class letters or names")
        by_name = {p.name: p.letter for p in _PATTERNS}
        out = []
        for item in value:
            text = item if isinstance(item, str) else ""
            letter = text.upper() if text.upper() in SPIKE_PATTERNS else by_name.get(text.lower())
            if letter is None:
                raise ValueError(
                    f"unknown class {item!r}; classes are letters A..T or names such as "
                    "'tonic spiking'"
                )
            if letter in out:
                raise ValueError(f"class {letter!r} is listed twice")
            out.append(letter)
        return tuple(out)

    @pydantic.field_validator("dt", mode="after")
    @classmethod
    def _dt(cls, value: float) -> float:
        if value > _MAX_DT:
            raise ValueError(
                f"must be at most {_MAX_DT:g} s: the neuron is integrated by forward Euler, "
                f"and its fastest rate, k1 = {_FASTEST_RATE:g} 1/s, needs k1 * dt <= "
                f"{_MAX_RATE_DT:g} (here {_FASTEST_RATE * value:g}); coarser steps change the "
                "classes. Generate at 1 ms and bin with Dataset.rebin"
            )
        return value

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(SPIKE_PATTERNS) if self.classes == "all" else tuple(self.classes)


class SpikePatternLoader(DatasetLoader):
    """Generates the Mihalas–Niebur spike-pattern task; options as for ``make_spike_patterns``."""

    name = "spike_patterns"

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(SpikePatternOptions, options)

    def build(self, path: Path | None = None) -> Dataset:
        o = self.options
        rng = np.random.Generator(np.random.PCG64(o.seed))
        patterns = [SPIKE_PATTERNS[c] for c in o.letters]
        m = o.samples_per_class
        current = np.concatenate(
            [stimulus_currents(p, m, o.n_steps, o.dt, o.jitter, rng) for p in patterns]
        )
        if o.noise > 0:
            current += o.noise * rng.standard_normal(current.shape)

        def per_sample(values: list[float | None], default: float) -> np.ndarray:
            return np.repeat([default if v is None else v for v in values], m)

        params = MihalasNieburParams(
            a=per_sample([p.a for p in patterns], 0.0),
            a1=per_sample([p.a1 for p in patterns], 0.0),
            a2=per_sample([p.a2 for p in patterns], 0.0),
        )
        v0 = per_sample([p.v0 for p in patterns], params.e_l)
        theta0 = per_sample([p.theta0 for p in patterns], params.theta_inf)
        spikes = simulate_mihalas_niebur(current, params, o.dt, v0, theta0)
        inputs = torch.from_numpy(spikes.astype(np.float32)).unsqueeze(-1)
        labels = torch.arange(len(patterns), dtype=torch.int64).repeat_interleave(m)
        info = DatasetInfo(
            name="spike_patterns",
            classes=tuple(p.name for p in patterns),
            n_inputs=1,
            n_steps=o.n_steps,
            dt=o.dt,
        )
        return Dataset(info, inputs, labels)


def make_spike_patterns(
    *,
    classes: Literal["all"] | Sequence[str] = "all",
    samples_per_class: int = 100,
    noise: float = 0.1,
    jitter: float = 0.004,
    n_steps: int = 1000,
    dt: float = 0.001,
    seed: int = 0,
) -> Dataset:
    """The Mihalas–Niebur spike-pattern task: inputs ``[N, n_steps, 1]``, int64 labels.

    ``classes``: ``"all"`` (20 classes, A..T) or a list of letters or names (label order
    follows the list). ``noise``: standard deviation (V/s) of the Gaussian noise added to the
    input current at each step. ``jitter``: each step change of the stimulus after ``t = 0``
    is delayed by ``U(0, jitter)`` seconds, drawn per change and per sample, but never to
    before the change that precedes it (the levels keep their order; a segment shortened to
    nothing is skipped, so one of ``d`` seconds lasts ``max(0, d - jitter)`` to
    ``d + jitter``). ``n_steps`` steps of ``dt`` seconds (default 1000 × 1 ms); ``dt`` is at
    most 1 ms, since forward Euler with the neuron's fastest rate (k1 = 200 1/s) needs
    ``k1 * dt <= 0.2``: for coarser bins, generate at 1 ms and use ``Dataset.rebin``. The same
    ``seed`` and options give the same samples. Split it with
    ``stratified_split(labels, SPIKE_PATTERN_RATIOS)``.
    """
    return SpikePatternLoader(
        classes=classes,
        samples_per_class=samples_per_class,
        noise=noise,
        jitter=jitter,
        n_steps=n_steps,
        dt=dt,
        seed=seed,
    ).load()
