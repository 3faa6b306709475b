"""A member that joins a running population trains exactly as it would alone.

:meth:`PopulationTrainer.add` is how an HPO engine refills a population whose members were
pruned. The joined member has its own epoch count, Adam step count, moving average, schedule,
generator and budget: in float64 its weights, per-epoch validation figures and best epoch
equal those of its network trained alone from scratch by :class:`Trainer`, to 1e-9, and the
members that were there before it still equal their own Trainer runs.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from spiketune.errors import ConfigError
from spiketune.snn import History, PopulationTrainer, RecurrentSNN, SNNConfig, TrainConfig, Trainer

N_IN, N_REC, N_OUT, STEPS, BATCH = 4, 12, 3, 20, 4
N_TRAIN = 4 * BATCH  # one epoch = 4 optimiser steps; C's 5 epochs = 20 steps

Spec = tuple[dict[str, Any], dict[str, Any]]

#: "plain": A and B have none of what C brings (an average, clipping, weight decay, random
#: feedback, refractory steps, ALIF adaptation), so the join must add each to the stack.
#: "rich": A and B already have them, and C joins the existing tensors.
SCENARIOS: dict[str, tuple[Spec, Spec, Spec]] = {
    "plain": (
        ({"tau_mem": 0.05, "v_th": 0.6, "gain_in": 3.0}, {"lr": 3e-3, "seed": 1, "epochs": 6}),
        ({"tau_mem": 0.1, "v_th": 0.8, "gain_in": 4.0}, {"lr": 1e-3, "seed": 2, "epochs": 4}),
        ({"neuron": "alif", "tau_mem": 0.2, "tau_adapt": 0.3, "beta": 0.5, "v_th": 0.4,
          "gain_in": 2.0, "refractory_steps": 2, "feedback": "random", "loss_steps": 8},
         {"lr": 5e-3, "seed": 7, "epochs": 5, "ema_decay": 0.9, "lr_schedule": "cosine",
          "grad_clip": 0.5, "weight_decay": 1e-3}),
    ),
    "rich": (
        ({"neuron": "alif", "tau_mem": 0.05, "tau_adapt": 0.2, "beta": 0.3, "v_th": 0.6,
          "gain_in": 3.0, "refractory_steps": 1, "feedback": "random"},
         {"lr": 3e-3, "seed": 1, "epochs": 6, "ema_decay": 0.8, "grad_clip": 0.05}),
        ({"tau_mem": 0.1, "v_th": 0.8, "gain_in": 4.0, "reg_strength": 0.1,
          "reg_target_hz": 5.0},
         {"lr": 1e-3, "seed": 2, "epochs": 4, "weight_decay": 1e-3, "lr_schedule": "cosine",
          "augment_shift": 2, "augment_drop": 0.1}),
        ({"tau_mem": 0.2, "tau_out": 0.05, "v_th": 0.4, "gain_in": 2.0},
         {"lr": 5e-3, "seed": 7, "epochs": 5, "ema_decay": 0.9, "lr_schedule": "cosine",
          "augment_stretch": 0.2}),
    ),
}


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, STEPS, N_IN, generator=g) < 0.25).to(torch.float64)
    return x, torch.randint(0, N_OUT, (n,), generator=g)


def _member(rule: str, spec: Spec, **snn_extra: Any) -> tuple[RecurrentSNN, TrainConfig]:
    snn, train = dict(spec[0]), spec[1]
    if rule == "bptt":
        snn.pop("feedback", None)
    cfg = SNNConfig(**{"n_in": N_IN, "n_rec": N_REC, "n_out": N_OUT, "dt": 0.01, "rule": rule,
                       **snn, **snn_extra})
    config = TrainConfig(batch_size=BATCH, **train)
    return RecurrentSNN(cfg, seed=config.seed, dtype=torch.float64), config


def _max_diff(a: RecurrentSNN, b: RecurrentSNN) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((pa - pb).detach().abs().max()) for pa, pb in pairs)


def _assert_same_run(ours: History, theirs: History, label: str) -> None:
    """The population's History of a member equals its Trainer's, epoch by epoch."""
    assert [m.epoch for m in ours.epochs] == [m.epoch for m in theirs.epochs], label
    assert ours.best_epoch == theirs.best_epoch, label
    assert ours.stop_reason == theirs.stop_reason, label
    for m, s in zip(ours.epochs, theirs.epochs, strict=True):
        assert m.val_acc == s.val_acc and m.train_acc == s.train_acc, (label, m.epoch)
        assert m.val_loss == pytest.approx(s.val_loss, abs=1e-9), (label, m.epoch)
        assert m.train_loss == pytest.approx(s.train_loss, abs=1e-9), (label, m.epoch)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("rule", ["eprop", "bptt"])
def test_a_member_added_after_two_epochs_trains_as_alone(rule: str, scenario: str) -> None:
    train, val = _data(N_TRAIN, 0), _data(12, 5)
    specs = SCENARIOS[scenario]
    alone = [_member(rule, spec) for spec in specs]
    initial_c = [p.detach().clone() for p in alone[2][0].parameters()]
    single = [Trainer(net, cfg).fit(train, val) for net, cfg in alone]

    together = [_member(rule, spec) for spec in specs]
    trainer = PopulationTrainer(together[:2])
    seen: list[dict[int, int]] = []
    c = None
    for report in trainer.epochs(train, val):
        seen.append({m: metrics.epoch for m, metrics in report.items()})
        if len(seen) == 2:
            c = trainer.add(together[2])
    assert c == 2 and trainer.size == 3

    # C trains from the population's third epoch on, counting its own epochs from 1; B's
    # budget (4) and A's (6) end them while C goes on to its fifth.
    assert seen == [
        {0: 1, 1: 1}, {0: 2, 1: 2}, {0: 3, 1: 3, 2: 1}, {0: 4, 1: 4, 2: 2},
        {0: 5, 2: 3}, {0: 6, 2: 4}, {2: 5},
    ]
    assert trainer.active == []
    moved = max(float((p.detach() - p0).abs().max())
                for p, p0 in zip(together[2][0].parameters(), initial_c, strict=True))
    assert moved > 1e-4, "C must have trained, or the comparison proves nothing"
    for i, label in enumerate("ABC"):
        assert _max_diff(alone[i][0], together[i][0]) < 1e-9, label
        _assert_same_run(trainer.histories[i], single[i], label)


def test_a_member_added_when_every_other_has_stopped_keeps_the_run_going() -> None:
    """A and B end in the epoch just yielded (their budget, and stop()); the generator has not
    returned yet, so a member added now continues the run alone, exactly as its Trainer."""
    train, val = _data(N_TRAIN, 0), _data(12, 5)
    a_spec, b_spec, c_spec = SCENARIOS["plain"]
    short = {**a_spec[1], "epochs": 2}
    a, b, c = (_member("eprop", (a_spec[0], short)), _member("eprop", b_spec),
               _member("eprop", c_spec))
    c_alone = _member("eprop", c_spec)
    single = Trainer(*c_alone).fit(train, val)

    trainer = PopulationTrainer([a, b])
    seen: list[list[int]] = []
    for report in trainer.epochs(train, val):
        seen.append(sorted(report))
        if len(seen) == 2:
            trainer.stop(1, "pruned")
            assert trainer.add(c) == 2
    assert seen == [[0, 1], [0, 1], [2], [2], [2], [2], [2]]
    assert [h.stop_reason for h in trainer.histories] == ["completed", "pruned", "completed"]
    assert _max_diff(c_alone[0], c[0]) < 1e-9
    _assert_same_run(trainer.histories[2], single, "C")


def test_add_refuses_a_member_that_does_not_fit_and_a_run_that_is_over() -> None:
    train = _data(N_TRAIN, 0)
    a_spec, b_spec, _ = SCENARIOS["plain"]
    one_epoch = {**a_spec[1], "epochs": 1}
    a = _member("eprop", (a_spec[0], one_epoch))
    trainer = PopulationTrainer([a])

    wider = _member("eprop", b_spec, n_rec=N_REC + 1)
    with pytest.raises(ConfigError, match="n_rec") as err:
        trainer.add(wider)
    assert [p.field for p in err.value.problems] == ["member"]
    assert err.value.problems[0].value == N_REC + 1
    with pytest.raises(ConfigError, match="member"):
        trainer.add(_member("bptt", b_spec))
    with pytest.raises(ConfigError, match="one network per member"):
        trainer.add((a[0], a[1]))
    with pytest.raises(ConfigError, match="member"):
        trainer.add("not a pair")  # type: ignore[arg-type]
    online = _member("eprop", b_spec, eprop_mode="online")
    with pytest.raises(ConfigError, match="eprop_mode"):
        trainer.add(online)
    float32 = (RecurrentSNN(a[0].config, seed=3), a[1])
    with pytest.raises(ConfigError, match="dtype"):
        trainer.add(float32)
    assert trainer.size == 1, "a refused member must not be half added"

    run = trainer.epochs(train)
    for _ in run:
        pass
    with pytest.raises(ConfigError, match="run is over") as err:
        trainer.add(_member("eprop", b_spec))
    assert err.value.problems[0].field == "member"
    assert trainer.size == 1

    closed = PopulationTrainer([_member("eprop", b_spec)])
    epochs = closed.epochs(train)
    next(epochs)
    epochs.close()
    with pytest.raises(ConfigError, match="run is over"):
        closed.add(_member("eprop", a_spec))


def test_a_window_longer_than_the_samples_is_refused_before_it_ends_the_run() -> None:
    """A member whose loss window exceeds the samples' steps is named, at the start or when
    it joins; the others train on."""
    train = _data(N_TRAIN, 0)
    a_spec, b_spec, _ = SCENARIOS["plain"]
    too_long = _member("eprop", b_spec, loss_steps=STEPS + 5)
    with pytest.raises(ConfigError) as err:
        next(PopulationTrainer([_member("eprop", a_spec), too_long]).epochs(train))
    assert [p.field for p in err.value.problems] == ["members[1].loss_steps"]

    trainer = PopulationTrainer([_member("eprop", a_spec)])
    run = trainer.epochs(train)
    next(run)
    with pytest.raises(ConfigError, match=f"loss_steps: between 1 and the sequence length "
                                          f"{STEPS}") as err:
        trainer.add(_member("eprop", b_spec, loss_steps=STEPS + 5))
    assert [p.field for p in err.value.problems] == ["member"] and trainer.size == 1
    for _ in run:
        pass
    (history,) = trainer.histories
    assert len(history.epochs) == a_spec[1]["epochs"]  # the member already in trained on


def test_added_member_counts_its_own_epochs_and_can_be_stopped() -> None:
    train, val = _data(N_TRAIN, 0), _data(12, 5)
    a_spec, b_spec, c_spec = SCENARIOS["rich"]
    early = _member("bptt", b_spec)  # added before the run starts: simply one more member
    early_alone = _member("bptt", b_spec)
    early_history = Trainer(*early_alone).fit(train, val)

    trainer = PopulationTrainer([_member("bptt", a_spec)])
    assert trainer.add(early) == 1
    run = trainer.epochs(train, val)
    first = next(run)
    assert {m: x.epoch for m, x in first.items()} == {0: 1, 1: 1}
    c = trainer.add(_member("bptt", c_spec))
    assert c == 2 and trainer.active == [0, 1, 2]
    second = next(run)
    assert {m: x.epoch for m, x in second.items()} == {0: 2, 1: 2, 2: 1}
    trainer.stop(c, "pruned")
    third = next(run)
    assert sorted(third) == [0, 1]
    assert c not in trainer.active
    history = trainer.histories[c]
    assert history.stop_reason == "pruned"
    assert [m.epoch for m in history.epochs] == [1] and history.best_epoch == 1
    for _ in run:
        pass
    assert _max_diff(early_alone[0], early[0]) < 1e-9
    _assert_same_run(trainer.histories[1], early_history, "added before the run")
