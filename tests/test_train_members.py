"""``spiketune.trial.train_members``: a trial script's population mode. A member whose
``prepare`` raises a SpiketuneError fails alone with the error named; the others train
together, report every epoch to their own channel, and finish with it bound."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _toy import FakeMember

import spiketune.trial._population as population_module
from spiketune.data import Dataset, DatasetInfo
from spiketune.snn import model_and_config_from_params
from spiketune.trial import PreparedMember, train_members

INFO = DatasetInfo(name="tiny", classes=("a", "b"), n_inputs=4, n_steps=10, dt=0.02)


def _data(n: int, seed: int) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = (torch.rand(n, INFO.n_steps, INFO.n_inputs, generator=g) < 0.2).float()
    x[torch.arange(n), :, labels] = 1.0
    return Dataset(INFO, x, labels)


def _process_of(monkeypatch: pytest.MonkeyPatch, *members: FakeMember) -> Any:
    """This process's population is ``members`` (none join); returns a ``prepare`` that
    builds each member's network from its parameters, on tiny data, its trial id as context."""
    monkeypatch.setattr(population_module, "population", lambda: list(members))
    monkeypatch.setattr(population_module, "joining", lambda: [])
    monkeypatch.setattr(population_module, "stop_joining", lambda: None)
    folds = [(_data(16, 0), _data(8, 1))]

    def prepare(member: Any) -> PreparedMember:
        built = [model_and_config_from_params({**member.parameters, "batch_size": 8}, INFO)]
        return PreparedMember(built, folds, "tiny", context=member.trial_id)

    return prepare


def test_a_member_whose_parameters_are_refused_fails_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = FakeMember("0", {"n_rec": 8, "lr": 0.01, "epochs": 3})
    bad = FakeMember("1", {"n_rec": 8, "tau_membrane": 0.1, "epochs": 3})
    prepare = _process_of(monkeypatch, good, bad)

    finished: list[tuple[str, bool, int]] = []

    def finish(member: Any, prepared: PreparedMember, histories: list) -> dict[str, Any]:
        finished.append((prepared.context, member.bound, len(histories[0].epochs)))
        return {"default": histories[0].epochs[-1].val_acc}

    finals = train_members(prepare, finish)
    assert bad.failed is not None and "ConfigError" in bad.failed
    assert "tau_membrane" in bad.failed and bad.reports == []
    assert good.failed is None
    assert len(good.reports) == 3  # one report per epoch, to its own channel
    assert finished == [("0", True, 3)]  # finished once, with its channel bound
    assert len(finals) == 1 and finals[0]["default"] == good.reports[-1]["default"]


def test_members_of_models_no_population_batches_report_as_their_model_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An L²MU and an LMU member train alone in the process (``spiketune.snn.batchable``):
    each reports every epoch, the spiking L²MU with its spikes per sample, the LMU without."""
    lmu = FakeMember("0", {"model": {"_name": "lmu", "order": 4, "theta": 0.2,
                                     "memory_size": 4, "hidden_size": 8}, "epochs": 2})
    l2mu = FakeMember("1", {"model": {"_name": "l2mu", "order": 4, "theta": 0.2,
                                      "memory_size": 4, "hidden_size": 8}, "epochs": 3})
    prepare = _process_of(monkeypatch, lmu, l2mu)

    def finish(member: Any, prepared: PreparedMember, histories: list) -> dict[str, Any]:
        return {"default": histories[0].epochs[-1].val_acc}

    finals = train_members(prepare, finish)
    assert len(finals) == 2 and lmu.failed is None and l2mu.failed is None
    assert [len(lmu.reports), len(l2mu.reports)] == [2, 3]
    assert all("spikes_per_sample" not in r for r in lmu.reports)
    assert all(r["spikes_per_sample"] > 0 for r in l2mu.reports)
