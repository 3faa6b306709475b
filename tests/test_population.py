"""The population trainer: K networks as one batched computation, each member exactly its own.

The exactness tests are what makes the feature trustworthy: in float64 every member's weights
after 20 optimiser steps equal those of the same network trained alone by :class:`Trainer`
with the same seed, to 1e-9, with members that differ in every per-member hyperparameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from spiketune.errors import ConfigError
from spiketune.snn import (
    PopulationTrainer,
    RecurrentSNN,
    SNNConfig,
    TrainConfig,
    Trainer,
    group_members,
)

N_IN, N_REC, N_OUT, STEPS, BATCH = 5, 24, 3, 30, 4
N_TRAIN = 20 * BATCH  # one epoch = 20 optimiser steps

#: Members that differ in every per-member hyperparameter: time constants, thresholds, ALIF
#: adaptation, refractory steps, gains, surrogate slope and dampening, feedback, loss window,
#: regulariser, learning rate and schedule, weight decay, clipping, weight averaging,
#: augmentation, seeds.
MEMBERS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"tau_mem": 0.05, "v_th": 0.6, "gain_in": 3.0, "gain_rec": 0.8},
     {"lr": 3e-3, "seed": 1}),
    ({"tau_mem": 0.1, "tau_adapt": 0.3, "beta": 0.5, "v_th": 0.8, "gain_in": 4.0,
      "refractory_steps": 1, "reg_strength": 0.1, "reg_target_hz": 5.0, "loss_steps": 10,
      "surrogate_slope": 1.5, "surrogate_dampening": 0.5, "feedback": "random"},
     {"lr": 1e-3, "seed": 2, "weight_decay": 1e-3, "augment_shift": 2, "augment_drop": 0.1,
      "augment_stretch": 0.2, "grad_clip": 0.05}),
    ({"tau_mem": 0.2, "tau_out": 0.05, "v_th": 0.4, "gain_in": 2.0, "refractory_steps": 2},
     {"lr": 5e-3, "seed": 3, "ema_decay": 0.9, "lr_schedule": "cosine"}),
]


def _data(n: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, STEPS, N_IN, generator=g) < 0.2).to(dtype)
    return x, torch.randint(0, N_OUT, (n,), generator=g)


def _build(
    rule: str, neurons: list[str], *, dtype: torch.dtype = torch.float64,
    train: dict[str, Any] | None = None, members: list[Any] = MEMBERS,
) -> list[tuple[RecurrentSNN, TrainConfig]]:
    built = []
    for (snn, tc), neuron in zip(members, neurons, strict=True):
        snn = dict(snn)
        if neuron == "lif":
            snn = {k: v for k, v in snn.items() if k not in ("tau_adapt", "beta")}
        if rule == "bptt":
            snn.pop("feedback", None)
        cfg = SNNConfig(n_in=N_IN, n_rec=N_REC, n_out=N_OUT, dt=0.01, rule=rule,
                        neuron=neuron, **snn)
        config = TrainConfig(batch_size=BATCH, **{"epochs": 1, **tc, **(train or {})})
        built.append((RecurrentSNN(cfg, seed=config.seed, dtype=dtype), config))
    return built


def _max_diff(a: RecurrentSNN, b: RecurrentSNN) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((pa - pb).detach().abs().max()) for pa, pb in pairs)


@pytest.mark.parametrize("rule", ["eprop", "bptt"])
@pytest.mark.parametrize("neurons", [["lif"] * 3, ["alif", "alif", "lif"]], ids=["lif", "alif"])
def test_each_member_equals_its_network_trained_alone(rule: str, neurons: list[str]) -> None:
    x, y = _data(N_TRAIN, 0)
    alone = _build(rule, neurons)
    initial = [[p.detach().clone() for p in net.parameters()] for net, _ in alone]
    for net, config in alone:
        Trainer(net, config).fit((x, y))
    together = _build(rule, neurons)
    histories = PopulationTrainer(together).fit((x, y))

    for i, ((a, _), (b, _)) in enumerate(zip(alone, together, strict=True)):
        assert _max_diff(a, b) < 1e-9, f"member {i}"
        pairs = zip(a.parameters(), initial[i], strict=True)
        moved = max(float((p.detach() - p0).abs().max()) for p, p0 in pairs)
        assert moved > 1e-4, "the member must have trained, or the comparison proves nothing"
    assert [h.stop_reason for h in histories] == ["completed"] * 3


@pytest.mark.parametrize("rule", ["eprop", "bptt"])
def test_members_trained_on_the_max_loss_equal_their_networks_alone(rule: str) -> None:
    """``loss="ce_max"`` in a population: each member's peak, inside its own window."""
    members = [({**snn, "loss": "ce_max"}, tc) for snn, tc in MEMBERS]
    x, y = _data(N_TRAIN, 0)
    alone = _build(rule, ["alif", "alif", "lif"], members=members)
    for net, config in alone:
        Trainer(net, config).fit((x, y))
    together = _build(rule, ["alif", "alif", "lif"], members=members)
    PopulationTrainer(together).fit((x, y))
    fresh = _build(rule, ["alif", "alif", "lif"], members=members)
    for i, ((a, _), (b, _), (c, _)) in enumerate(zip(alone, together, fresh, strict=True)):
        assert _max_diff(a, b) < 1e-9, f"member {i}"
        assert _max_diff(a, c) > 1e-4, "the member must have trained"


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("recurrent", [True, False])
def test_population_bptt_equals_autograd(reset: str, detach_reset: bool, recurrent: bool) -> None:
    """The population's written-out BPTT against autograd through the same population (a
    mixed ALIF/LIF one, members differing in every per-member hyperparameter), float64."""
    from spiketune.snn._population_ops import (
        PopulationParameters,
        bptt_step,
        bptt_step_autograd,
        stack_weights,
    )
    from spiketune.snn._workspace import Workspace

    members = [({**snn, "reset": reset, "detach_reset": detach_reset, "recurrent": recurrent},
                tc) for snn, tc in MEMBERS]
    nets = [net for net, _ in _build("bptt", ["alif", "alif", "lif"], members=members)]
    w, _ = stack_weights(nets)
    p = PopulationParameters.of(nets, w["w_in"])
    batches = [_data(BATCH, 10 + k) for k in range(len(nets))]
    x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
    fused = bptt_step(w, p, x, y, Workspace())
    auto = bptt_step_autograd({k: v.clone().requires_grad_(True) for k, v in w.items()}, p, x, y)
    assert set(fused.grads) == set(auto.grads)
    for name, g in auto.grads.items():
        for k in range(len(nets)):
            assert g[k].norm() > 0, (name, k)
            assert float((fused.grads[name][k] - g[k]).norm() / g[k].norm()) < 1e-10, (name, k)
    assert torch.allclose(fused.loss, auto.loss) and torch.equal(fused.spikes, auto.spikes)


def test_float32_members_stay_close_to_their_networks_alone() -> None:
    """In float32 bmm and mm may sum in another order; the weights still agree closely."""
    x, y = _data(N_TRAIN, 0, torch.float32)
    alone = _build("eprop", ["lif"] * 3, dtype=torch.float32)
    for net, config in alone:
        Trainer(net, config).fit((x, y))
    together = _build("eprop", ["lif"] * 3, dtype=torch.float32)
    PopulationTrainer(together).fit((x, y))
    for (a, _), (b, _) in zip(alone, together, strict=True):
        assert _max_diff(a, b) < 1e-4


def test_stopped_members_leave_and_the_others_stay_exact() -> None:
    """Epoch budget, patience, stop() and a non-finite member end members one by one; the
    survivors' weights and validation figures still equal their own Trainer's."""
    x, y = _data(N_TRAIN, 0)
    val = _data(24, 5)
    train = {"epochs": 3}

    def build() -> list[tuple[RecurrentSNN, TrainConfig]]:
        built = _build("eprop", ["lif"] * 3, train=train)
        built.append(_build("eprop", ["lif"], train={"epochs": 1}, members=MEMBERS[:1])[0])
        return built

    alone = build()
    single_histories = [Trainer(net, cfg).fit((x, y), val) for net, cfg in alone[:3]]
    together = build()
    with torch.no_grad():  # member 3 diverges at once: it must not disturb the others
        together[3][0].w_in.fill_(float("nan"))
    trainer = PopulationTrainer(together)
    run = trainer.epochs((x, y), val)
    seen = []
    for report in run:
        seen.append(sorted(report))
        if len(seen) == 1:
            trainer.stop(1, "pruned")
    histories = trainer.histories

    assert seen == [[0, 1, 2], [0, 2], [0, 2]]
    assert [h.stop_reason for h in histories] == [
        "completed", "pruned", "completed", "non_finite_loss"
    ]
    assert histories[3].epochs == []
    assert trainer.active == []
    for i in (0, 2):
        assert _max_diff(alone[i][0], together[i][0]) < 1e-9
        ours, theirs = histories[i], single_histories[i]
        assert ours.best_epoch == theirs.best_epoch
        for m, s in zip(ours.epochs, theirs.epochs, strict=True):
            assert m.val_acc == s.val_acc and m.train_acc == s.train_acc
            assert m.val_loss == pytest.approx(s.val_loss, abs=1e-9)
            assert m.spikes_per_sample == pytest.approx(s.spikes_per_sample, abs=1e-9)


def test_a_member_stopped_before_the_run_trains_no_epoch() -> None:
    """stop() before fit(): that member trains nothing (as a member alone would), the others
    train exactly as alone."""
    x, y = _data(N_TRAIN, 0)
    val = _data(24, 5)
    alone = _build("eprop", ["lif"] * 3, train={"epochs": 2})
    Trainer(*alone[0]).fit((x, y), val)
    together = _build("eprop", ["lif"] * 3, train={"epochs": 2})
    untouched = {k: v.clone() for k, v in together[1][0].state_dict().items()}
    trainer = PopulationTrainer(together)
    trainer.stop(1, "pruned before its start")
    histories = trainer.fit((x, y), val)
    assert [h.stop_reason for h in histories] == [
        "completed", "pruned before its start", "completed"]
    assert histories[1].epochs == [] and [len(h.epochs) for h in histories] == [2, 0, 2]
    for k, v in together[1][0].state_dict().items():
        assert torch.equal(v, untouched[k]), k
    assert _max_diff(alone[0][0], together[0][0]) < 1e-9


def test_patience_and_callback_stop_one_member_alone() -> None:
    x, y = _data(N_TRAIN, 0)
    val = _data(24, 5)
    built = _build("bptt", ["lif"] * 3, train={"epochs": 4})
    patient = TrainConfig.from_params({**built[0][1].model_dump(), "patience": 1,
                                      "min_delta": 10.0})
    built[0] = (built[0][0], patient)
    calls: list[tuple[int, int]] = []

    def callback(member: int, metrics: Any) -> bool:
        calls.append((member, metrics.epoch))
        return member == 2 and metrics.epoch == 2

    histories = PopulationTrainer(built, callback=callback).fit((x, y), val)
    assert [h.stop_reason for h in histories] == ["early_stopping", "completed", "callback"]
    assert [len(h.epochs) for h in histories] == [2, 4, 2]
    assert (1, 4) in calls and (2, 3) not in calls


def test_group_members_splits_by_what_fixes_the_computation() -> None:
    def pair(**kw: Any) -> tuple[SNNConfig, TrainConfig]:
        train = {k: kw.pop(k) for k in ("batch_size", "lr") if k in kw}
        return SNNConfig(n_in=4, n_rec=kw.pop("n_rec", 16), n_out=2, **kw), TrainConfig(**train)

    configs = [
        pair(), pair(tau_mem=0.3, lr=1e-2), pair(neuron="alif"), pair(batch_size=8),
        pair(n_rec=32), pair(rule="bptt"), pair(rule="bptt", eprop_mode="online"),
        pair(refractory_steps=2, loss_steps=5, feedback="random"),
    ]
    assert group_members(configs) == [[0, 1, 2, 7], [3], [4], [5, 6]]
    assert group_members(configs, mix_neurons=False) == [[0, 1, 7], [2], [3], [4], [5, 6]]
    assert group_members(configs, max_size=2) == [[0, 1], [2, 7], [3], [4], [5, 6]]
    keys = ["a", "b", "a", "a", "a", "a", "a", "a"]
    assert group_members(configs, data_keys=keys)[:2] == [[0, 2, 7], [1]]
    with pytest.raises(ConfigError, match="data_keys"):
        group_members(configs, data_keys=["a"])
    assert group_members(iter(configs), max_size=np.int64(2)) == group_members(configs, max_size=2)


@pytest.mark.parametrize(("kw", "fields"), [
    ({"configs": [1, 2]}, ["configs[0]", "configs[1]"]),
    ({"configs": None}, ["configs"]),
    ({"max_size": "2"}, ["max_size"]),
    ({"data_keys": [["a"]]}, ["data_keys[0]"]),
    ({"data_keys": 3}, ["data_keys"]),
])
def test_group_members_names_arguments_of_the_wrong_type(
    kw: dict[str, Any], fields: list[str]
) -> None:
    args = {"configs": [(SNNConfig(n_in=4, n_rec=8, n_out=2), TrainConfig())], **kw}
    with pytest.raises(ConfigError) as err:
        group_members(**args)
    assert [p.field for p in err.value.problems] == fields


def test_incompatible_members_are_refused_by_name() -> None:
    built = _build("eprop", ["lif"] * 2, members=MEMBERS[:2])
    other = SNNConfig(n_in=N_IN, n_rec=N_REC + 1, n_out=N_OUT, dt=0.01)
    built.append((RecurrentSNN(other, dtype=torch.float64), built[0][1]))
    with pytest.raises(ConfigError) as err:
        PopulationTrainer(built)
    assert any(p.field == "members[2].n_rec" and p.value == N_REC + 1
               for p in err.value.problems)

    chip = SNNConfig(n_in=N_IN, n_rec=N_REC, n_out=N_OUT, rule="bptt",
                     reset="subtract_at_spike", max_spikes=None)
    with pytest.raises(ConfigError, match="subtract_at_spike"):
        PopulationTrainer([(RecurrentSNN(chip, seed=k), TrainConfig(epochs=1))
                           for k in range(2)]).fit(_data(8, 0, torch.float32))
    # refused when built, each member named, not at the first step without an index
    bptt = SNNConfig(n_in=N_IN, n_rec=N_REC, n_out=N_OUT, rule="bptt")
    cuba = bptt.model_copy(update={"neuron": "cuba_lif", "tau_syn": 0.005})
    many = bptt.model_copy(update={"max_spikes": 3})
    with pytest.raises(ConfigError) as err:
        PopulationTrainer([(RecurrentSNN(c), TrainConfig()) for c in (bptt, cuba, many)])
    assert [(p.field, p.value) for p in err.value.problems] == [
        ("members[1].neuron", "cuba_lif"), ("members[2].max_spikes", 3)]

    online = SNNConfig(n_in=N_IN, n_rec=N_REC, n_out=N_OUT, eprop_mode="online")
    with pytest.raises(ConfigError, match="eprop_mode"):
        PopulationTrainer([(RecurrentSNN(online), TrainConfig())])
    with pytest.raises(ConfigError, match="members"):
        PopulationTrainer([])
    trainer = PopulationTrainer(_build("eprop", ["lif"], members=MEMBERS[:1]))
    with pytest.raises(ConfigError, match="member"):
        trainer.stop(3)
    with pytest.raises(ConfigError, match=r"member: an index in \[0, 1\) \(got 'a'\)"):
        trainer.stop("a")  # type: ignore[arg-type]
    trainer.stop(np.int64(0))
    assert PopulationTrainer(iter(_build("eprop", ["lif"], members=MEMBERS[:1]))).size == 1
    with pytest.raises(ConfigError, match=r"members: a list .*\(got 'NoneType'\)"):
        PopulationTrainer(None)  # type: ignore[arg-type]
    half = [(net.half(), cfg) for net, cfg in _build("eprop", ["lif"] * 2, members=MEMBERS[:2])]
    with pytest.raises(ConfigError, match=r"members\[0\]: a network in torch.float32"):
        PopulationTrainer(half)


def test_an_exception_from_the_callback_ends_every_member_with_its_best_weights() -> None:
    x, y = _data(N_TRAIN, 0)
    built = _build("eprop", ["lif"] * 2, members=MEMBERS[:2], train={"epochs": 3})
    initial = [net.w_in.detach().clone() for net, _ in built]

    def callback(member: int, metrics: Any) -> None:
        raise RuntimeError("pruned from outside")

    trainer = PopulationTrainer(built, callback=callback)
    with pytest.raises(RuntimeError, match="pruned from outside"):
        trainer.fit((x, y))
    assert trainer.active == []
    for (net, _), w0 in zip(built, initial, strict=True):
        assert float((net.w_in.detach() - w0).abs().max()) > 1e-4  # epoch 1's weights
        assert net.w_in.grad is None
