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

