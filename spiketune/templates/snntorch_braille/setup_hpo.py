"""What a trial sets up before it trains: the data and their split, the device, the seeds and
the CPU threads. Plain torch: nothing here needs spiketune, which only lends its split.

The data are the reduced tactile Braille letters (Müller-Cleve et al., Frontiers in
Neuroscience 16:951164, 2022; Zenodo record 7050094, CC BY 4.0) in the NIR paper's encoding:
sigma-delta threshold 1, ON | OFF merged into the 12 taxels, 0/1 spikes in 5 ms bins, 256
steps. They come as one ``TensorDataset`` file of inputs ``[N, 256, 12]`` and labels ``[N]``
in ``0..6`` = Space, A, E, I, O, U, Y (``braille_reduced_th1_pool.pt``), named by
``--data`` (the file or its directory), else by ``$SPIKETUNE_BRAILLE_TH1_DATA``.

**The split** is 80/10/10, stratified, seed 0. With spiketune importable it is
``spiketune.data.stratified_split(labels, (0.8, 0.1, 0.1), seed=0)``, the project's fixed
split, named in every result by ``split.digest()``. Without spiketune the same ratios are cut
by :func:`local_split`, a seeded per-class split written here: a valid split, but not the
project's one, and its digest says so (``local:`` in front).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

#: Environment variable naming the pool file or the directory holding it.
DATA_ENV = "SPIKETUNE_BRAILLE_TH1_DATA"
#: The pool's file name, looked for in a directory given as the data.
POOL_FILE = "braille_reduced_th1_pool.pt"
CLASSES = ("Space", "A", "E", "I", "O", "U", "Y")
SPLIT_RATIOS = (0.8, 0.1, 0.1)
SPLIT_SEED = 0


@dataclass(frozen=True)
class BrailleData:
    """The three parts of the split, and the digest that names the split."""

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    split_digest: str
    #: "spiketune" (the project's split) or "local" (:func:`local_split`).
    split_source: str

    @property
    def n_inputs(self) -> int:
        return int(self.train.tensors[0].shape[2])


def pool_path(data: str | os.PathLike[str] | None = None) -> Path:
    """The pool file: ``data`` (a file, or a directory holding :data:`POOL_FILE`), else
    ``$SPIKETUNE_BRAILLE_TH1_DATA``; a clear error when neither names an existing file."""
    given = data or os.environ.get(DATA_ENV)
    if not given:
        raise SystemExit(f"error: no Braille data: give the pool file ({POOL_FILE}) or its "
                         f"directory with --data PATH, or set ${DATA_ENV}")
    path = Path(given).expanduser()
    if path.is_dir():
        path = path / POOL_FILE
    if not path.is_file():
        raise SystemExit(f"error: no Braille pool file at {path} (from "
                         f"{'--data' if data else '$' + DATA_ENV})")
    return path


def load_pool(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[N, T, 12]`` (float32) and labels ``[N]`` (int64) of a pool file.

    ``weights_only=True`` with ``TensorDataset`` as the one allowed class: the file cannot
    run code when it is read.
    """
    try:
        if hasattr(torch.serialization, "safe_globals"):
            with torch.serialization.safe_globals([TensorDataset]):
                pool = torch.load(path, weights_only=True, map_location="cpu")
        else:  # torch < 2.5: the allowed class for the whole process
            torch.serialization.add_safe_globals([TensorDataset])
            pool = torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:  # an event file
        raise SystemExit(f"error: {path}: not a pool file of encoded samples (a TensorDataset "
                         f"saved by torch.save): {str(e).splitlines()[0]}") from None
    if not isinstance(pool, TensorDataset) or len(pool.tensors) != 2:
        raise SystemExit(f"error: {path}: expected a TensorDataset of (inputs, labels), "
                         f"got {type(pool).__name__}")
    inputs, labels = pool.tensors
    if inputs.ndim != 3 or labels.shape != (inputs.shape[0],):
        raise SystemExit(f"error: {path}: expected inputs [N, T, C] and labels [N], got "
                         f"{tuple(inputs.shape)} and {tuple(labels.shape)}")
    return inputs.float(), labels.long()


def load_data(
    data: str | os.PathLike[str] | None = None, per_class: int | None = None
) -> BrailleData:
    """Load the pool, keep ``per_class`` samples of each class if asked (smoke runs), split."""
    inputs, labels = load_pool(pool_path(data))
    if per_class is not None:
        keep = first_per_class(labels, per_class, SPLIT_SEED)
        inputs, labels = inputs[keep], labels[keep]
    try:
        from spiketune.data import stratified_split
    except ImportError:  # no spiketune: a split of the same ratios, but not the project's
        train, val, test = local_split(labels, SPLIT_RATIOS, SPLIT_SEED)
        digest, source = "local:" + split_digest(train, val, test), "local"
    else:
        split = stratified_split(labels, SPLIT_RATIOS, seed=SPLIT_SEED)
        train, val, test = (torch.tensor(part.tolist(), dtype=torch.long)
                            for part in (split.train, split.val, split.test))
        digest, source = split.digest(), "spiketune"
    parts = (TensorDataset(inputs[idx], labels[idx]) for idx in (train, val, test))
    return BrailleData(*parts, split_digest=digest, split_source=source)


def first_per_class(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of ``n`` samples of each class, the first of a seeded shuffle, ascending."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    kept = torch.cat([order[labels[order] == c][:n] for c in labels.unique()])
    return kept.sort().values


def local_split(
    labels: torch.Tensor, ratios: tuple[float, float, float], seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train/validation/test indices, stratified: each class shuffled with a generator seeded
    by ``seed``, its first ``round(n * test)`` samples to test, the next ``round(n * val)`` to
    validation, the rest to training (halves round up). Used only without spiketune."""
    generator = torch.Generator().manual_seed(seed)
    parts: tuple[list[torch.Tensor], ...] = ([], [], [])
    for c in labels.unique():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = int(len(members) * ratios[2] + 0.5)
        n_val = int(len(members) * ratios[1] + 0.5)
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test:n_test + n_val])
        parts[0].append(members[n_test + n_val:])
    train, val, test = (torch.cat(p).sort().values for p in parts)
    return train, val, test


def split_digest(train: torch.Tensor, val: torch.Tensor, test: torch.Tensor) -> str:
    """SHA-256 of the three index lists (the text spiketune's ``Split.digest`` hashes)."""
    text = ";".join(f"{name}:" + ",".join(str(int(i)) for i in part)
                    for name, part in (("train", train), ("val", val), ("test", test)))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def trial_device() -> torch.device:
    """CUDA when this trial was given a GPU and torch can use it, else the CPU.

    spiketune sets ``CUDA_VISIBLE_DEVICES`` to the trial's GPU, or to ``""`` when trials get
    none; by hand (variable unset) any visible GPU is used.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return torch.device("cpu")
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def trial_threads(explicit: int | None = None) -> int:
    """CPU threads: ``--threads``, else ``$SPIKETUNE_TRIAL_THREADS``, else this trial's share
    of the cores (the experiment's concurrency from ``$SPIKETUNE_CONCURRENCY`` or from the
    ``experiment.json`` of ``$SPIKETUNE_EXPERIMENT_DIR``; 1 by hand). Trials that each take
    every core slow each other down."""
    if explicit is not None:
        return max(1, explicit)
    if os.environ.get("SPIKETUNE_TRIAL_THREADS"):
        return max(1, int(os.environ["SPIKETUNE_TRIAL_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // _concurrency())


def _concurrency() -> int:
    if os.environ.get("SPIKETUNE_CONCURRENCY"):
        return max(1, int(os.environ["SPIKETUNE_CONCURRENCY"]))
    directory = os.environ.get("SPIKETUNE_EXPERIMENT_DIR")
    if not directory:
        return 1
    try:
        meta = json.loads((Path(directory) / "experiment.json").read_text(encoding="utf-8"))
        return max(1, int(meta["config"]["concurrency"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def seed_everything(seed: int) -> None:
    """Seed Python's and torch's generators (all devices)."""
    random.seed(seed)
    torch.manual_seed(seed)
