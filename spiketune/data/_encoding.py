"""From analog samples to events, and from events to time-binned tensors.

``sigma_delta_encode`` is the delta-modulation (sigma-delta) encoding the tactile Braille
events were made with: the signal between two samples is taken as a straight line, an ON
event is emitted when it has risen by ``threshold`` above the reference level and an OFF
event when it has fallen ``threshold`` below it; each event moves the reference one
``threshold`` in its direction, and its time is interpolated on the line. A refractory period
holds further events back: the change keeps accumulating and the held-back event fires as
soon as the period ends, so no event is lost, only delayed.

``bin_events`` turns such per-channel event times into the ``[N, T, C]`` float32 tensors the
models read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from spiketune.errors import ConfigError, DataError, Problem

#: Per sample: one entry per sensor channel (taxel), each ``[on_times, off_times]`` in seconds.
Events = Sequence[Sequence[Sequence[float] | np.ndarray]]


def _encode_channel(
    x: np.ndarray, period: float, threshold: float, refractory: float
) -> tuple[np.ndarray, np.ndarray]:
    on: list[float] = []
    off: list[float] = []
    ref = float(x[0])
    ready = -np.inf  # time from which the next event may fire
    eps = 1e-9 * threshold  # absorbs rounding of sums like 0.1 + 0.2
    for i in range(len(x) - 1):
        ta, tb = i * period, (i + 1) * period
        x0, x1 = float(x[i]), float(x[i + 1])
        slope = (x1 - x0) / period
        while True:
            t0 = max(ta, ready)
            if t0 > tb:
                break
            xs = x0 + slope * (t0 - ta)
            if xs >= ref + threshold - eps:
                t, up = t0, True  # already past a level: a held-back event fires now
            elif xs <= ref - threshold + eps:
                t, up = t0, False
            elif slope > 0:
                t, up = ta + (ref + threshold - x0) / slope, True
            elif slope < 0:
                t, up = ta + (ref - threshold - x0) / slope, False
            else:
                break
            if t > tb + 1e-12 * period:
                break
            t = min(max(t, t0), tb)
            if up:
                on.append(t)
                ref += threshold
            else:
                off.append(t)
                ref -= threshold
            ready = t + refractory if refractory > 0 else t
    return np.asarray(on, dtype=np.float64), np.asarray(off, dtype=np.float64)


def sigma_delta_encode(
    signal: np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    threshold: float,
    *,
    rate: float = 40.0,
    refractory: float = 0.0,
) -> list[list[np.ndarray]]:
    """Encode analog samples as ON/OFF event times (seconds).

    ``signal`` is ``[T]`` (one channel) or ``[T, C]`` sampled at ``rate`` Hz (the Braille
    taxels: 40 Hz), sample ``i`` at ``i / rate`` seconds. ``threshold`` is in the signal's
    own units. ``refractory`` is the minimum time between two events of one channel, in
    seconds; the dataset's description quotes 2.5 ms, while the published event files show
    events closer than that, so the default is none.

    Returns, for each channel, ``[on_times, off_times]``: the layout of the Braille event
    files, ready for ``bin_events``.
    """
    problems = []
    if not (np.isfinite(threshold) and threshold > 0):
        problems.append(Problem("threshold", threshold, "must be a finite number > 0"))
    if not (np.isfinite(rate) and rate > 0):
        problems.append(Problem("rate", rate, "must be a finite number > 0 (Hz)"))
    if not (np.isfinite(refractory) and refractory >= 0):
        problems.append(Problem("refractory", refractory, "must be >= 0 (seconds)"))
    if problems:
        raise ConfigError(problems)
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise DataError(f"signal must be [T] or [T, C] with T >= 1, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError("signal holds NaN or infinite samples")
    period = 1.0 / rate
    out = []
    for c in range(x.shape[1]):
        on, off = _encode_channel(x[:, c], period, float(threshold), float(refractory))
        out.append([on, off])
    return out


def bin_events(
    samples: Sequence[Events],
    *,
    bin_size: float,
    n_steps: int,
    channels: Literal["split", "merged"] = "split",
    clip: bool = True,
    names: Sequence[str] | None = None,
    binning: Literal["floor", "nearest"] = "floor",
) -> torch.Tensor:
    """Count events per time bin: ``[N, n_steps, C]`` float32.

    An event at ``t`` seconds falls in bin ``floor(t / bin_size)`` (``binning="floor"``:
    bin ``k`` holds ``[k, k + 1) * bin_size``), or in the nearest, ``round(t / bin_size)``
    (``"nearest"``: bin ``k`` holds ``[k - 1/2, k + 1/2) * bin_size``, halves to the even
    bin), the rule of the archive's published loaders and so of the NIR paper's 5 ms
    encoding and the threshold-1 pool. Events whose bin is ``n_steps`` or later are dropped,
    and so are negative times.
    With ``channels="split"`` there are ``2 * n_taxels`` channels: ON events of taxels
    ``0..n-1`` first, then OFF events of taxels ``0..n-1``; with ``"merged"`` one channel per
    taxel counts both. ``clip=True`` turns counts into 0/1 spikes (for ``"merged"``, the
    logical OR of ON and OFF). ``names``: how an error names each sample (``record 6 (I)``;
    default ``sample i``), since a sample's place among those chosen is not its place in a
    file.
    """
    if channels not in ("split", "merged"):
        raise ConfigError(Problem("channels", channels, "must be 'split' or 'merged'"))
    if not (np.isfinite(bin_size) and bin_size > 0):
        raise ConfigError(Problem("bin_size", bin_size, "must be > 0 (seconds)"))
    if binning not in ("floor", "nearest"):
        raise ConfigError(Problem("binning", binning, "must be 'floor' or 'nearest'"))
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ConfigError(Problem("n_steps", n_steps, "must be an integer >= 1"))
    n = len(samples)

    def name(i: int) -> str:
        return names[i] if names is not None else f"sample {i}"

    shape = "a list per taxel of [on_times, off_times], each a list of seconds"
    n_taxels = 0
    times: list[float] = []
    counts: list[int] = []
    for i, sample in enumerate(samples):
        try:
            taxels = len(sample)
        except TypeError:
            raise DataError(f"{name(i)}: its events must be {shape}, got "
                            f"{type(sample).__name__}") from None
        if i == 0:
            n_taxels = taxels
        elif taxels != n_taxels:
            raise DataError(f"{name(i)} has {taxels} taxels, {name(0)} has {n_taxels}")
        for taxel, polarities in enumerate(sample):
            try:
                if len(polarities) != 2:
                    raise DataError(f"{name(i)}, taxel {taxel}: expected [on_times, "
                                    f"off_times], got {len(polarities)} lists")
                for ts in polarities:
                    times.extend(ts)
                    counts.append(len(ts))
            except TypeError:
                raise DataError(f"{name(i)}, taxel {taxel}: its events must be {shape}, got "
                                f"{polarities!r:.80}") from None
    n_channels = 2 * n_taxels if channels == "split" else n_taxels
    out = np.zeros((n, n_steps, n_channels), dtype=np.float32)
    if times:
        try:
            t = np.asarray(times, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("event times must be numbers (seconds)") from None
        if not np.all(np.isfinite(t)):
            raise DataError("event times hold NaN or infinite values")
        reps = np.asarray(counts, dtype=np.int64)
        cell = np.arange(len(counts), dtype=np.int64)  # (sample, taxel, polarity) flattened
        sample_idx = np.repeat(cell // (2 * n_taxels), reps)
        taxel = np.repeat((cell // 2) % n_taxels, reps)
        polarity = np.repeat(cell % 2, reps)  # 0 = ON, 1 = OFF
        channel = polarity * n_taxels + taxel if channels == "split" else taxel
        bins = np.floor(t / bin_size + 1e-9) if binning == "floor" else np.rint(t / bin_size)
        keep = (t >= 0) & (bins < n_steps)  # before the cast: 1e300 s would wrap around
        step = bins[keep].astype(np.int64)
        np.add.at(out, (sample_idx[keep], step, channel[keep]), 1.0)
    if clip:
        np.minimum(out, 1.0, out=out)
    return torch.from_numpy(out)
