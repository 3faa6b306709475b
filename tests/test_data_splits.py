"""Stratified splits: reproducible to the bit, stratified, disjoint, validated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spiketune.data import Dataset, DatasetInfo, stratified_resplits, stratified_split
from spiketune.errors import ConfigError, DataError

# SHA-256 of the index lists for seed 0 on fixed label vectors. A change here means every
# recorded result was measured on a different split: never update these casually.
REDUCED_LIKE_DIGEST = "b0121f27668b45398ed5ca1837b39043d7ae6002338e8ce070a66a9d05946ae2"
PATTERNS_LIKE_DIGEST = "902568cae76c50437a8210dbfcaa8c788b518e9a4a9483925e6070b646dd4743"


def reduced_like_labels() -> np.ndarray:
    return np.arange(1400) % 7  # 7 classes, 200 samples each, interleaved


def test_split_is_exactly_reproducible() -> None:
    split = stratified_split(reduced_like_labels(), (0.8, 0.1, 0.1), seed=0)
    assert split.digest() == REDUCED_LIKE_DIGEST
    patterns = stratified_split(np.repeat(np.arange(20), 100), (0.7, 0.2, 0.1), seed=0)
    assert patterns.digest() == PATTERNS_LIKE_DIGEST


def test_same_seed_same_split_other_seed_other_split() -> None:
    labels = reduced_like_labels()
    a = stratified_split(labels, seed=3)
    b = stratified_split(torch.as_tensor(labels), seed=3)  # tensors give the same split
    c = stratified_split(labels, seed=4)
    assert a.digest() == b.digest()
    assert a.digest() != c.digest()


def test_split_is_stratified_disjoint_and_complete() -> None:
    labels = reduced_like_labels()
    split = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
    for part, per_class in ((split.train, 160), (split.val, 20), (split.test, 20)):
        assert np.bincount(labels[part], minlength=7).tolist() == [per_class] * 7
    everything = np.concatenate([split.train, split.val, split.test])
    assert sorted(everything.tolist()) == list(range(1400))
    assert len(split) == 1400


def test_uneven_classes_round_half_up_per_class() -> None:
    labels = np.array([0] * 15 + [1] * 25 + [2] * 5)
    split = stratified_split(labels, (0.8, 0.1, 0.1), seed=1)
    # 15 -> 1.5 rounds to 2; 25 -> 2.5 rounds to 3; 5 -> 0.5 rounds to 1
    assert np.bincount(labels[split.test], minlength=3).tolist() == [2, 3, 1]
    assert np.bincount(labels[split.val], minlength=3).tolist() == [2, 3, 1]


def test_split_is_not_trivial() -> None:
    labels = reduced_like_labels()
    split = stratified_split(labels, seed=0)
    # A shuffle: the test set is not simply the first samples of each class.
    first = np.sort(np.concatenate([np.flatnonzero(labels == c)[:20] for c in range(7)]))
    assert not np.array_equal(split.test, first)


def test_resplits_share_the_test_set_and_rotate_validation() -> None:
    labels = reduced_like_labels()
    splits = stratified_resplits(labels, k=5, ratios=(0.8, 0.1, 0.1), seed=0)
    assert len(splits) == 5
    assert splits[0].digest() == REDUCED_LIKE_DIGEST  # the first is the plain split
    for s in splits:
        assert np.array_equal(s.test, splits[0].test)
        assert np.bincount(labels[s.val], minlength=7).tolist() == [20] * 7
        assert not set(s.val.tolist()) & set(s.test.tolist())
        assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(1400))
    vals = [set(s.val.tolist()) for s in splits]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not vals[i] & vals[j], "validation folds must be disjoint while they fit"


def test_resplits_wrap_around_when_folds_exceed_the_remainder() -> None:
    labels = np.repeat(np.arange(2), 10)
    splits = stratified_resplits(labels, k=6, ratios=(0.6, 0.2, 0.2), seed=0)
    # remainder of 8 per class, 2 per fold: folds 0-3 disjoint, fold 4 equals fold 0
    assert np.array_equal(splits[4].val, splits[0].val)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ratios": (0.8, 0.1)}, "ratios"),
        ({"ratios": (0.8, 0.3, 0.1)}, "ratios"),
        ({"ratios": (0.0, 0.5, 0.5)}, "ratios.train"),
        ({"ratios": (1.2, -0.1, -0.1)}, "ratios.train"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"ratios": "abc"}, "ratios"),
        ({"ratios": 0.8}, "ratios"),
        ({"ratios": (0.8, None, 0.2)}, "ratios"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        stratified_split(reduced_like_labels(), **kwargs)
    assert field in [p.field for p in info.value.problems]


def test_bad_k_and_too_small_classes() -> None:
    with pytest.raises(ConfigError, match="k"):
        stratified_resplits(reduced_like_labels(), k=0)
    with pytest.raises(DataError, match="too few"):
        stratified_split(np.array([0, 0, 1]), (0.4, 0.3, 0.3))
    with pytest.raises(DataError, match="integers"):
        stratified_split(np.array([0.5, 1.0]))
    with pytest.raises(DataError, match="no samples"):
        stratified_split([])


def test_dataset_split_applies_the_indices() -> None:
    labels = torch.as_tensor(reduced_like_labels())
    inputs = torch.arange(1400, dtype=torch.float32).reshape(1400, 1, 1)
    info = DatasetInfo("toy", tuple("abcdefg"), n_inputs=1, n_steps=1, dt=0.005)
    ds = Dataset(info, inputs, labels)
    split = stratified_split(labels, seed=0)
    train, val, test = ds.split(split)
    assert (len(train), len(val), len(test)) == (1120, 140, 140)
    assert test.inputs[:, 0, 0].long().tolist() == split.test.tolist()
    assert test.class_counts() == dict.fromkeys("abcdefg", 20)
    with pytest.raises(DataError, match="1400"):
        ds.subset(range(10)).split(split)


def test_per_class_keeps_n_of_each_class_in_order() -> None:
    info = DatasetInfo(name="toy", n_inputs=1, n_steps=2, dt=0.01, classes=("a", "b", "c"))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 0])
    data = Dataset(info, torch.arange(18.0).reshape(9, 2, 1), labels)
    small = data.per_class(2, seed=3)
    assert small.labels.bincount().tolist() == [2, 2, 2]
    kept = [int(x) for x in small.inputs[:, 0, 0] / 2]  # each sample's index in data
    assert kept == sorted(kept)  # the original order
    assert data.per_class(2, seed=3).labels.tolist() == small.labels.tolist()  # seeded
    assert len(data.per_class(10)) == 9  # fewer than n: all of that class
    with pytest.raises(DataError, match="n must be an integer >= 1"):
        data.per_class(0)


def test_split_parts_of_too_few_per_class_names_the_fewest_that_split() -> None:
    """``split_parts(per_class=n)`` (a trial's ``--subset``): with 4 samples per class, the
    10 % validation and test parts would be empty, and every evaluation fail on them; the
    error names the option and the fewest samples per class that give each part one (5)."""
    from spiketune.data import split_parts

    info = DatasetInfo(name="toy", n_inputs=1, n_steps=2, dt=0.01, classes=("a", "b"))
    labels = torch.arange(2).repeat(10)
    data = Dataset(info, torch.zeros(20, 2, 1), labels)
    with pytest.raises(DataError, match=r"--subset\): 4 samples per class leave no validation "
                                        r"or test sample in a 0.8/0.1/0.1 split; keep at "
                                        r"least 5"):
        split_parts(data, per_class=4)
    parts = split_parts(data, per_class=5)
    assert (len(parts.train), len(parts.val), len(parts.test)) == (6, 2, 2)
