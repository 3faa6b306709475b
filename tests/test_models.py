"""Every :class:`~spiketune.snn.Model` through the same machinery: the Trainer trains the LMU
and the L²MU, checkpoints rebuild them, the L²MU's spike statistics and synaptic operations
are its spikes counted by hand, the design rules read its populations; and a RecurrentSNN
trains exactly as the training step written out by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from spiketune.data import Dataset, DatasetInfo
from spiketune.errors import CheckpointError, ConfigError
from spiketune.hardware import (
    NetworkLayout,
    check_config,
    check_layout,
    check_model,
    get_target,
    layout_of,
)
from spiketune.snn import (
    BPTT,
    L2MU,
    LMU,
    EpochMetrics,
    EProp,
    Model,
    RecurrentSNN,
    SNNConfig,
    Surrogate,
    TrainConfig,
    Trainer,
    evaluate_checkpoint,
    load_checkpoint,
    load_weights,
    make_rule,
    predict,
    rate_regularisation,
    save_checkpoint,
    spike_function,
    spike_stats,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N_IN, N_OUT, STEPS, DT = 8, 3, 30, 0.001


def patterns(n: int, noise_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three fixed random spike templates; each sample keeps 80% of its template's spikes and
    gets 2% random extra spikes. Train and validation share templates, not noise."""
    g0 = torch.Generator().manual_seed(0)
    templates = torch.rand(N_OUT, STEPS, N_IN, generator=g0) < 0.15
    g = torch.Generator().manual_seed(noise_seed)
    labels = torch.randint(0, N_OUT, (n,), generator=g)
    keep = torch.rand(n, STEPS, N_IN, generator=g) < 0.8
    extra = torch.rand(n, STEPS, N_IN, generator=g) < 0.02
    return ((templates[labels] & keep) | extra).float(), labels


def as_dataset(data: tuple[torch.Tensor, torch.Tensor]) -> Dataset:
    info = DatasetInfo("patterns", ("a", "b", "c"), N_IN, STEPS, DT)
    return Dataset(info, *data)


def lmu(**kw: Any) -> LMU:
    return LMU(N_IN, N_OUT, order=4, theta=0.03, dt=DT, memory_size=2, hidden_size=16, **kw)


def l2mu(**kw: Any) -> L2MU:
    return L2MU(N_IN, N_OUT, order=4, theta=0.03, dt=DT, memory_size=2, hidden_size=16, **kw)


TRAIN = TrainConfig(epochs=6, batch_size=32, lr=2e-2, ema_decay=0.8, lr_schedule="cosine",
                    patience=3)


# -- training ----------------------------------------------------------------------------------
@pytest.mark.parametrize("build", [l2mu, lmu], ids=["L2MU", "LMU"])
def test_trainer_trains_each_model_well_above_chance(build: Any) -> None:
    """Three classes (chance 1/3): BPTT with weight averaging and a cosine schedule, through
    the L²MU's fused path and surrogate, or through the LMU's plain autograd."""
    train, val = patterns(192, noise_seed=1), patterns(96, noise_seed=2)
    net = build()
    trainer = Trainer(net, TRAIN)
    assert isinstance(trainer.rule, BPTT)
    before = trainer.evaluate(val).accuracy
    history = trainer.fit(train, val)
    assert before < 0.6
    assert history.best is not None and history.best.val_acc > 0.85
    assert trainer.evaluate(val).accuracy == history.best.val_acc  # best weights restored
    spiking = isinstance(net, L2MU)
    for m in history.epochs:
        figures = (m.spikes_per_sample, m.rate_hz, m.silent_fraction, m.synops_per_sample)
        if spiking:
            assert all(isinstance(f, float) for f in figures) and m.spikes_per_sample > 0
        else:  # the LMU does not spike: no figures at all, not zeros
            assert figures == (None, None, None, None)


def test_without_validation_a_non_spiking_model_reports_no_spike_figures() -> None:
    history = Trainer(lmu(), TrainConfig(epochs=1, batch_size=32)).fit(patterns(64, 1))
    assert history.epochs[0].val_acc is None and history.epochs[0].spikes_per_sample is None
    assert Trainer(lmu()).evaluate(patterns(8, 1)).stats is None


def test_bptt_step_of_an_l2mu_goes_through_its_surrogate() -> None:
    """The rule's gradients (the fused path) are those of autograd through the step function
    with the model's own surrogate, for every parameter, and none of them is zero."""
    net = l2mu(dtype=torch.float64, readout="spiking", loss="ce_summed",
               surrogate=Surrogate("fast_sigmoid", slope=3.0, dampening=0.5),
               threshold={"u": 0.2, "m": 0.05, "h": 0.3, "out": 0.2})
    with torch.no_grad():
        net.e_m.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    x, y = patterns(12, noise_seed=5)
    x = x.double()
    result = BPTT().backward(net, x, y)
    fused = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    tr = net.simulate(x, spike_fn=spike_function(net.surrogate, 1.0))  # step by step
    loss = net.readout_loss()(tr.readout, y)
    loss.backward()
    torch.testing.assert_close(result.loss, loss.detach(), rtol=1e-12, atol=0)
    assert fused.keys() == {name for name, _ in net.named_parameters()}
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name
        torch.testing.assert_close(fused[name], p.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_trainer_refuses_what_it_cannot_train() -> None:
    with pytest.raises(ConfigError, match="rule") as info:
        Trainer(l2mu(), rule=EProp())  # e-prop's traces exist for the RecurrentSNN only
    assert "eprop" in str(info.value)
    with pytest.raises(ConfigError, match="net"):
        Trainer(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    assert isinstance(Trainer(l2mu(), rule=BPTT()).rule, BPTT)


# -- checkpoints -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [lambda: l2mu(readout="spiking", loss="ce_summed", loss_steps=10,
                  beta={"u": 0.8}, threshold={"h": 0.7}), lmu],
    ids=["L2MU", "LMU"],
)
def test_checkpoint_rebuilds_the_model_and_its_predictions(build: Any, tmp_path: Path) -> None:
    train, val = patterns(96, noise_seed=1), patterns(48, noise_seed=2)
    net = build()
    config = TrainConfig(epochs=2, batch_size=32, lr=2e-2)
    trainer = Trainer(net, config)
    history = trainer.fit(train, val)
    path = save_checkpoint(tmp_path / "net.pt", net, train_config=config, history=history)
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == type(net).name and raw["config"] == net.to_config()

    ck = load_checkpoint(path)
    assert type(ck.network) is type(net) and ck.model == type(net).__name__
    assert ck.config == net.to_config() and ck.train_config == config
    assert ck.history == history.as_dicts()
    saved, loaded = net.state_dict(), ck.network.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    x, y = val
    with torch.no_grad():
        expected = predict(net.simulate(x).readout, net.readout_loss().steps)
        assert torch.equal(ck.network.simulate(x).readout, net.simulate(x).readout)
    score = evaluate_checkpoint(path, as_dataset(val), batch_size=20)
    assert torch.equal(score.matrix, torch.bincount(y * 3 + expected, minlength=9).view(3, 3))
    assert score.accuracy == trainer.evaluate(val).accuracy


def test_checkpoints_refuse_another_model_or_architecture(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "l2mu.pt", l2mu())
    with pytest.raises(CheckpointError, match="checkpoint model 'L2MU', network model 'LMU'"):
        load_weights(lmu(), path)
    with pytest.raises(CheckpointError, match="hidden_size: checkpoint has 16, network has 8"):
        load_checkpoint(path, expect=L2MU(N_IN, N_OUT, order=4, theta=0.03, dt=DT,
                                          memory_size=2, hidden_size=8))
    with pytest.raises(CheckpointError, match="RecurrentSNN"):
        load_checkpoint(path, expect=SNNConfig(n_in=N_IN, n_rec=4, n_out=N_OUT))
    other = l2mu(seed=5)
    assert load_weights(other, path) is other  # the same architecture loads
    assert torch.equal(other.w_h, load_checkpoint(path).network.w_h)
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "model": "Transformer"}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="'Transformer'; the known models are"):
        load_checkpoint(tmp_path / "odd.pt")
    torch.save({**raw, "config": {**raw["config"], "colour": "red"}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="colour"):
        load_checkpoint(tmp_path / "bad.pt")


def test_a_checkpoint_without_a_model_key_holds_a_recurrent_snn(tmp_path: Path) -> None:
    """Files written before there were other models name none."""
    net = RecurrentSNN(SNNConfig(n_in=4, n_rec=6, n_out=2), seed=3)
    raw = torch.load(save_checkpoint(tmp_path / "net.pt", net), weights_only=True)
    assert raw.pop("model") == "RecurrentSNN"
    torch.save(raw, tmp_path / "old.pt")
    ck = load_checkpoint(tmp_path / "old.pt")
    assert isinstance(ck.network, RecurrentSNN) and ck.config == net.config
    assert torch.equal(ck.network.w_in, net.w_in)


@pytest.mark.parametrize("build", [l2mu, lmu], ids=["L2MU", "LMU"])
def test_config_round_trip_and_unknown_keys(build: Any) -> None:
    net = build()
    again = type(net).from_config(net.to_config())
    assert again.to_config() == net.to_config()
    assert again.architecture() == net.architecture()
    with pytest.raises(ConfigError) as info:
        type(net).from_config({**net.to_config(), "colour": "red"})
    assert {p.field for p in info.value.problems} == {"colour"}
    config = net.to_config()
    del config["order"]
    with pytest.raises(ConfigError) as info:
        type(net).from_config(config)
    assert {p.field for p in info.value.problems} == {"order"}
    with pytest.raises(ConfigError) as info:
        type(net).from_config({**net.to_config(), "order": 0, "loss": "mse"})
    assert {p.field for p in info.value.problems} == {"order", "loss"}


# -- spike statistics --------------------------------------------------------------------------
def test_l2mu_spike_statistics_and_synops_are_its_spikes_counted_by_hand() -> None:
    net = l2mu(threshold={"u": 0.2, "m": 0.05, "h": 0.3})
    with torch.no_grad():  # a non-zero memory encoder: every population is heard
        net.e_m.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    x, _ = patterns(10, noise_seed=3)
    with torch.no_grad():
        tr = net.simulate(x)
    counts = net.spike_counts(tr)
    stats = spike_stats(counts, net)

    zu, zm, zh = (z.to(torch.float64) for z in (tr.z_u, tr.z_m, tr.z_h))
    b, t = x.shape[0], x.shape[1]
    assert all(float(z.sum()) > 0 for z in (zu, zm, zh)), "a population is silent: weak test"
    per_neuron = torch.cat([zu.sum((0, 1)), zm.sum((0, 1)), zh.sum((0, 1))]) / b
    assert torch.equal(stats.spikes_per_neuron, per_neuron)
    layers = stats.spikes_per_layer
    assert layers["input"] == pytest.approx(float((x != 0).sum()) / b)
    assert layers["u"] == pytest.approx(float(zu.sum()) / b)
    assert layers["m"] == pytest.approx(float(zm.sum()) / b)
    assert layers["h"] == pytest.approx(float(zh.sum()) / b)
    n_neurons = 2 + 8 + 16
    assert stats.spikes_per_sample == pytest.approx(float(zu.sum() + zm.sum() + zh.sum()) / b)
    assert stats.rate_per_step == pytest.approx(stats.spikes_per_sample / n_neurons / t)
    assert stats.rate_hz == pytest.approx(stats.rate_per_step / DT)
    silent = sum(int((z.sum((0, 1)) == 0).sum()) for z in (zu, zm, zh))
    assert stats.silent_fraction == pytest.approx(silent / n_neurons)

    # synaptic operations, dense encoders and kernels, memory connected within a channel:
    # x -> M + H, u -> order, m -> M + order + H, h -> M + H + n_out
    m, order, h = 2, 4, 16
    by_layer = {
        "input": float((x != 0).sum()) * (m + h) / b,
        "u": float(zu.sum()) * order / b,
        "m": float(zm.sum()) * (m + order + h) / b,
        "h": float(zh.sum()) * (m + h + N_OUT) / b,
    }
    assert stats.synops_per_layer == pytest.approx(by_layer)
    assert stats.synops_per_sample == pytest.approx(sum(by_layer.values()))
    assert stats.synops_per_sample == pytest.approx(net.synops(tr))

    # the Trainer's figures are the same counts, added up over batches
    evaluation = Trainer(net, TrainConfig(batch_size=3)).evaluate((x, torch.zeros(10).long()))
    assert evaluation.stats is not None
    assert evaluation.stats.spikes_per_sample == pytest.approx(stats.spikes_per_sample)
    assert evaluation.stats.synops_per_sample == pytest.approx(stats.synops_per_sample)


def test_lmu_has_no_spike_counts() -> None:
    net = lmu()
    with torch.no_grad():
        assert net.spike_counts(net.simulate(patterns(2, 1)[0])) is None
    with pytest.raises(NotImplementedError, match="does not spike"):
        net.fan_out()


# -- hardware design rules ---------------------------------------------------------------------
def test_design_rules_read_each_l2mu_population() -> None:
    net = L2MU(6, 4, order=3, theta=0.03, dt=DT, memory_size=2, hidden_size=10)
    layout = layout_of(net)
    by_name = {p.name: p for p in layout.hidden}
    # u: n_in + H + n_memory in, order out; m: order + 1 in, M + order + H out;
    # h: n_in + H + n_memory in, M + H + n_out out
    assert [(p.name, p.neurons, p.fan_in, p.fan_out) for p in layout.hidden] == [
        ("u", 2, 6 + 10 + 6, 3), ("m", 6, 4, 2 + 3 + 10), ("h", 10, 22, 2 + 10 + 4)]
    assert (layout.readout.neurons, layout.readout.fan_in) == (4, 10)
    assert layout.n_hidden == 18
    # every synapse: each population's incoming weights, the memory's block-diagonal ones
    weights = 2 * 22 + 6 * 4 + 10 * 22 + 4 * 10
    assert layout.synapses == weights
    assert by_name["m"].synapses == 6 * 4
    with torch.no_grad():  # the memory encoder starts at zero; with it filled, the fan-outs of
        net.e_m.fill_(0.1)  # the non-zero weights are the layout's
    fan_out = net.fan_out()
    assert int(fan_out["u"].max()) == by_name["u"].fan_out
    assert int(fan_out["m"].max()) == by_name["m"].fan_out
    assert int(fan_out["h"].max()) == by_name["h"].fan_out

    assert check_model(get_target("generic"), net) == []
    over = check_model(get_target("generic", max_fan_in=20), net)
    assert [(v.rule, v.limit, v.value) for v in over] == [("max_fan_in", 20, 22)]
    assert over[0].detail == "populations u 22, h 22"
    # 18 hidden neurons, 22 with the readout (at the limit), fan-out of h 16
    limits = get_target("generic", max_hidden=17, max_neurons=22, max_fan_out=15)
    broken = check_model(limits, net)
    assert [(v.rule, v.value, v.detail) for v in broken] == [
        ("max_hidden", 18, ""), ("max_fan_out", 16, "populations h 16")]
    assert check_layout("xylo-imu", layout) == []


def test_design_rules_for_a_recurrent_snn_are_check_config() -> None:
    config = SNNConfig(n_in=20, n_rec=60, n_out=7, refractory_steps=2)
    net = RecurrentSNN(config)
    assert check_model("xylo-audio2", net) == check_config("xylo-audio2", config)
    assert check_model("xylo-audio2", net) != []  # fan-out 59 + 7 > 64, 20 inputs > 16
    assert layout_of(net) == NetworkLayout.recurrent(20, 60, 7, refractory=2, bias=True)


def test_the_lmu_has_no_hardware_layout() -> None:
    with pytest.raises(ConfigError, match="does not spike"):
        check_model("generic", lmu())


# -- a RecurrentSNN trains as before -----------------------------------------------------------
def _old_bptt_step(net: RecurrentSNN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BPTT's step as it was written for the RecurrentSNN alone, before the Model base."""
    cfg = net.config
    spike = spike_function(net.surrogate, cfg.v_th)
    tr = net.simulate(x, spike=spike, detach_reset=cfg.detach_reset)
    loss = net.readout_loss()(tr.readout, y)
    total = loss
    if cfg.reg_strength > 0:
        total = total + rate_regularisation(tr.z, cfg.reg_strength, cfg.target_rate_per_step)
    total.backward()
    return loss.detach()


@pytest.mark.parametrize("rule", ["eprop", "bptt"])
def test_a_recurrent_snn_trains_exactly_as_the_step_written_out(rule: str) -> None:
    """The Trainer's epochs on a RecurrentSNN equal, bit for bit, the loop written out: the
    seeded shuffle, the rule's step (BPTT's as it was written before the Model base), Adam.
    Weights are compared after every epoch, and the epoch's training loss."""
    snn = SNNConfig(n_in=N_IN, n_rec=12, n_out=N_OUT, rule=rule, reg_strength=0.05,
                    detach_reset=rule == "bptt", gain_in=2.0, tau_out=0.01)
    train = patterns(64, noise_seed=1)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-2, seed=7)

    trained: list[dict[str, torch.Tensor]] = []
    losses: list[float] = []
    net = RecurrentSNN(snn, seed=2)

    def record(m: EpochMetrics) -> None:
        trained.append({k: v.clone() for k, v in net.state_dict().items()})
        losses.append(m.train_loss)

    # BPTT's autograd mode: the written-out (fused) mode equals it up to rounding, tested in
    # test_snn_gradients; bit for bit is what this test asks of the Trainer's loop.
    rule_used = BPTT("autograd") if rule == "bptt" else None
    Trainer(net, cfg, rule=rule_used, callback=record).fit(train)

    ref = RecurrentSNN(snn, seed=2)
    optimizer = torch.optim.Adam(ref.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    eprop = make_rule(snn)
    x, y = train
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=generator)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for lo in range(0, len(x), cfg.batch_size):
            idx = order[lo : lo + cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            if rule == "bptt":
                loss = _old_bptt_step(ref, x[idx], y[idx])
            else:
                loss = eprop.backward(ref, x[idx], y[idx]).loss
            optimizer.step()
            loss_sum += loss.to(torch.float64) * len(idx)
        state = ref.state_dict()
        assert all(torch.equal(state[k], trained[epoch][k]) for k in state), f"epoch {epoch + 1}"
        assert losses[epoch] == float(loss_sum) / len(x)
    assert math.isfinite(losses[-1]) and losses[-1] < losses[0]


def test_bptt_on_a_recurrent_snn_is_the_old_step_exactly() -> None:
    """One batch: the gradients of the rule's autograd mode equal those of the step as it was
    written, bit for bit; the fused mode's equal them up to float32 rounding."""
    snn = SNNConfig(n_in=N_IN, n_rec=12, n_out=N_OUT, rule="bptt", reg_strength=0.1,
                    neuron="alif", gain_in=2.0)
    x, y = patterns(16, noise_seed=4)
    a, b, c = (RecurrentSNN(snn, seed=1) for _ in range(3))
    result = BPTT("autograd").backward(a, x, y)
    loss = _old_bptt_step(b, x, y)
    assert torch.equal(result.loss, loss)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert p.grad is not None and torch.equal(p.grad, q.grad), name
    assert isinstance(a, Model) and result.counts is not None
    fused = BPTT().backward(c, x, y)
    assert float(fused.loss) == pytest.approx(float(loss), rel=1e-6)
    for (name, p), q in zip(c.named_parameters(), b.parameters(), strict=True):
        assert p.grad is not None and torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name


# ------------------------------------------------------------------ model_from_params
def test_model_from_params_builds_each_model_from_flat_search_parameters() -> None:
    from spiketune.snn import L2MU, LMU, RecurrentSNN, model_from_params

    sizes = {"n_in": 12, "n_out": 7, "dt": 0.02, "n_steps": 64}
    l2mu = model_from_params("l2mu", {"order": 4.0, "theta": 0.5, "memory_size": 8.0,
                                      "hidden_size": 16, "beta_u": 0.7, "threshold_h": 0.4,
                                      "loss_window": 0.4}, **sizes)
    config = l2mu.to_config()
    assert isinstance(l2mu, L2MU) and config["order"] == 4 and isinstance(config["order"], int)
    assert config["memory_size"] == 8 and config["loss_steps"] == 20  # 0.4 s of 20 ms steps
    lmu = model_from_params("lmu", {"order": 3, "theta": 1.0, "memory_size": 2,
                                    "hidden_size": 5}, **sizes)
    assert type(lmu) is LMU
    rsnn = model_from_params("rsnn", {"n_rec": 9, "tau_mem": 0.05}, **sizes)
    assert isinstance(rsnn, RecurrentSNN) and (rsnn.config.n_in, rsnn.config.n_rec) == (12, 9)


def test_model_from_params_names_every_problem() -> None:
    from spiketune.snn import model_from_params

    sizes = {"n_in": 12, "n_out": 7, "dt": 0.02, "n_steps": 64}
    with pytest.raises(ConfigError) as info:
        model_from_params("l2mu", {"order": 4, "tau_mem": 0.1, "loss_window": 5.0}, **sizes)
    fields = {p.field for p in info.value.problems}
    assert {"tau_mem", "loss_window", "theta"} <= fields
    with pytest.raises(ConfigError, match=r"model.*one of l2mu, lmu, rsnn"):
        model_from_params("gru", {}, **sizes)
    with pytest.raises(ConfigError, match=r"params: a mapping .*\(got 'list'\)"):
        model_from_params("lmu", [("order", 2)], **sizes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"threshold\.h: a finite number .*\(got inf\)"):
        model_from_params("l2mu", {"order": 4, "theta": 0.5, "threshold_h": math.inf}, **sizes)


def test_a_recurrent_snn_takes_its_sizes_and_time_step_from_the_data() -> None:
    """A network at another dt than its data would read every time constant wrong: refused,
    as a loss window outside the sample is, by both builders."""
    from spiketune.snn import model_and_config_from_params, model_from_params

    sizes = {"n_in": 4, "n_out": 3, "dt": 0.005, "n_steps": 20}
    with pytest.raises(ConfigError) as info:
        model_from_params("rsnn", {"n_rec": 5, "n_in": 9, "dt": 0.001}, **sizes)
    assert {(p.field, p.value) for p in info.value.problems} == {("n_in", 9), ("dt", 0.001)}
    assert "comes from the data (0.005 s bins)" in str(info.value)
    same = model_from_params("rsnn", {"n_rec": 5, "n_in": 4, "dt": 0.005}, **sizes)
    assert (same.config.n_in, same.config.dt) == (4, 0.005)  # the data's own values may repeat

    data = DatasetInfo("t", ("a", "b", "c"), 4, 20, 0.005)
    for params, fixed, field in [
        ({"n_out": 9}, {"n_rec": 5}, "n_out"),
        ({}, {"n_rec": 5, "dt": 0.001}, "dt"),  # a fixed value is no exception
        ({"loss_window": 1.0}, {"n_rec": 5}, "loss_window"),  # 200 steps of a 20-step sample
        ({"loss_window": 0.001}, {"n_rec": 5}, "loss_window"),  # under half a step
    ]:
        with pytest.raises(ConfigError) as info:
            model_and_config_from_params(params, data, fixed=fixed)
        assert [p.field for p in info.value.problems] == [field], info.value
    net, _ = model_and_config_from_params({"loss_window": 0.05}, data, fixed={"n_rec": 5})
    assert net.config.loss_steps == 10
