"""The public surface of spiketune.data is exactly its __all__."""

from __future__ import annotations

import spiketune.data as data


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(data) if not name.startswith("_")}
    public -= {"annotations"}  # from __future__
    assert set(data.__all__) == public
    assert len(data.__all__) == len(set(data.__all__))


def test_every_exported_name_resolves() -> None:
    for name in data.__all__:
        assert hasattr(data, name), name


def test_loaders_share_the_base_class() -> None:
    assert issubclass(data.BrailleLoader, data.DatasetLoader)
    assert issubclass(data.SpikePatternLoader, data.DatasetLoader)
    generated = data.SpikePatternLoader(samples_per_class=1, n_steps=10)
    assert generated.locate() is None  # generated: no file to find
    ds = generated.load()
    assert isinstance(ds, data.Dataset) and len(ds) == 20



def test_a_dataset_and_its_description_are_checked_once_at_the_edge() -> None:
    """Every model, split and report sizes itself from these: a bad one is named here, not
    deep in a later step, and nothing is silently converted."""
    import math

    import numpy as np
    import pytest
    import torch

    from spiketune.errors import DataError

    with pytest.raises(DataError) as info:
        data.DatasetInfo("t", "ab", 3, 0, -1.0)
    for part in ("classes: a non-empty sequence", "n_steps: an integer >= 1", "dt: seconds"):
        assert part in str(info.value)
    with pytest.raises(DataError, match="distinct"):
        data.DatasetInfo("t", ("a", "a"), 3, 10, 0.005)
    with pytest.raises(DataError, match="dt"):
        data.DatasetInfo("t", ("a", "b"), 3, 10, math.nan)
    info_ok = data.DatasetInfo("t", ["a", "b"], np.int64(3), 10, 0.005)  # type: ignore[arg-type]
    assert info_ok.classes == ("a", "b") and type(info_ok.n_inputs) is int

    x, y = torch.rand(4, 10, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(DataError, match="integer class indices"):
        data.Dataset(info_ok, x, torch.tensor([0.7, 1.9, 0.2, 1.5]))
    with pytest.raises(DataError, match="integer class indices"):
        data.Dataset(info_ok, x, torch.tensor([True, False, True, False]))
    with pytest.raises(DataError, match="NaN"):
        data.Dataset(info_ok, x.masked_fill(x > 0.9, math.nan), y)
    ds = data.Dataset(info_ok, x, y)
    with pytest.raises(DataError, match="flatnonzero"):
        ds.subset([True, False, False, True])  # not samples 1, 0, 0, 1
    with pytest.raises(DataError, match=r"\[0, 4\)"):
        ds.subset([-1])
    assert ds.subset(np.flatnonzero([True, False, False, True])).labels.tolist() == [0, 1]
    assert len(ds.subset([])) == 0
