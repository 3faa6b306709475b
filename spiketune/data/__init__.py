"""Datasets as spike tensors: the tactile Braille letters, the Mihalas–Niebur patterns and
the WISDM smartphone and smartwatch activities.

Every loader returns a ``Dataset``: float32 inputs ``[N, T, C]``, int64 labels ``[N]`` and a
``DatasetInfo`` (name, class names, input channels, time steps, step length in seconds).
``stratified_split`` and ``stratified_resplits`` give reproducible train/val/test index
lists; ``Dataset.split`` applies them.
"""

from __future__ import annotations

from spiketune.data._base import Dataset, DatasetInfo, DatasetLoader
from spiketune.data._braille import (
    BRAILLE_ARCHIVE,
    BRAILLE_ARCHIVE_MD5,
    BRAILLE_LETTERS,
    BRAILLE_PRESETS,
    BRAILLE_REDUCED_LETTERS,
    BRAILLE_THRESHOLDS,
    BrailleLoader,
    BrailleOptions,
    braille_frames_from_array,
    load_braille,
    load_braille_pool,
    load_nir_braille,
    read_braille_events,
)
from spiketune.data._download import CACHE_ENV, RemoteFile, cache_dir, download, extract_member
from spiketune.data._encoding import bin_events, sigma_delta_encode
from spiketune.data._safe_pickle import safe_load
from spiketune.data._spike_patterns import (
    SPIKE_PATTERN_RATIOS,
    SPIKE_PATTERNS,
    MihalasNieburParams,
    MihalasNieburState,
    SpikePattern,
    SpikePatternLoader,
    SpikePatternOptions,
    make_spike_patterns,
    mihalas_niebur_step,
    simulate_mihalas_niebur,
)
from spiketune.data._splits import Split, stratified_resplits, stratified_split
from spiketune.data._wisdm import (
    WISDM_ACTIVITIES,
    WISDM_ARCHIVE,
    WISDM_HAND_ACTIVITIES,
    WisdmData,
    WisdmLoader,
    WisdmOptions,
    load_wisdm,
)

__all__ = [
    "BRAILLE_ARCHIVE",
    "BRAILLE_ARCHIVE_MD5",
    "BRAILLE_LETTERS",
    "BRAILLE_PRESETS",
    "BRAILLE_REDUCED_LETTERS",
    "BRAILLE_THRESHOLDS",
    "CACHE_ENV",
    "SPIKE_PATTERNS",
    "SPIKE_PATTERN_RATIOS",
    "WISDM_ACTIVITIES",
    "WISDM_ARCHIVE",
    "WISDM_HAND_ACTIVITIES",
    "BrailleLoader",
    "BrailleOptions",
    "Dataset",
    "DatasetInfo",
    "DatasetLoader",
    "MihalasNieburParams",
    "MihalasNieburState",
    "RemoteFile",
    "SpikePattern",
    "SpikePatternLoader",
    "SpikePatternOptions",
    "Split",
    "WisdmData",
    "WisdmLoader",
    "WisdmOptions",
    "bin_events",
    "braille_frames_from_array",
    "cache_dir",
    "download",
    "extract_member",
    "load_braille",
    "load_braille_pool",
    "load_nir_braille",
    "load_wisdm",
    "make_spike_patterns",
    "mihalas_niebur_step",
    "read_braille_events",
    "safe_load",
    "sigma_delta_encode",
    "simulate_mihalas_niebur",
    "stratified_resplits",
    "stratified_split",
]
