"""Datasets as spike tensors: the tactile Braille letters, the Mihalas–Niebur patterns and
the WISDM smartphone and smartwatch activities.

Every loader returns a ``Dataset``: float32 inputs ``[N, T, C]``, int64 labels ``[N]`` and a
``DatasetInfo`` (name, class names, input channels, time steps, step length in seconds).
``stratified_split`` and ``stratified_resplits`` give reproducible train/val/test index
lists; ``Dataset.split`` applies them, and ``split_parts`` does both at once for a trial
(the fixed split's three parts and its re-splits, as ``SplitParts``). ``data_location`` says
where a trial's data are read from (``--data``, else an environment variable, else the
cache); ``load_braille_split`` reads, encodes and splits the Braille letters the way the
Braille templates' trials do.
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
    braille_file_threshold,
    braille_frames_from_array,
    load_braille,
    load_braille_pool,
    load_nir_braille,
    read_braille_events,
)
from spiketune.data._braille_task import (
    BRAILLE_DATA_ENV,
    BRAILLE_TASK_DEFAULTS,
    is_braille_pool,
    load_braille_encoding,
    load_braille_other_letters,
    load_braille_split,
)
from spiketune.data._download import CACHE_ENV, RemoteFile, cache_dir, download, extract_member
from spiketune.data._encoding import bin_events, sigma_delta_encode
from spiketune.data._parts import SPLIT_RATIOS, SPLIT_SEED, SplitParts, data_location, split_parts
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
    "BRAILLE_DATA_ENV",
    "BRAILLE_LETTERS",
    "BRAILLE_PRESETS",
    "BRAILLE_REDUCED_LETTERS",
    "BRAILLE_TASK_DEFAULTS",
    "BRAILLE_THRESHOLDS",
    "CACHE_ENV",
    "SPIKE_PATTERNS",
    "SPIKE_PATTERN_RATIOS",
    "SPLIT_RATIOS",
    "SPLIT_SEED",
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
    "SplitParts",
    "WisdmData",
    "WisdmLoader",
    "WisdmOptions",
    "bin_events",
    "braille_file_threshold",
    "braille_frames_from_array",
    "cache_dir",
    "data_location",
    "download",
    "extract_member",
    "is_braille_pool",
    "load_braille",
    "load_braille_encoding",
    "load_braille_other_letters",
    "load_braille_pool",
    "load_braille_split",
    "load_nir_braille",
    "load_wisdm",
    "make_spike_patterns",
    "mihalas_niebur_step",
    "read_braille_events",
    "safe_load",
    "sigma_delta_encode",
    "simulate_mihalas_niebur",
    "split_parts",
    "stratified_resplits",
    "stratified_split",
]
