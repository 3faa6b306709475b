"""The training loop, and a small learning test: e-prop learns a separable spike-pattern task."""

from __future__ import annotations

import math

import pytest
import torch

from spiketune.errors import ConfigError, DataError
from spiketune.snn import EpochMetrics, History, RecurrentSNN, SNNConfig, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def patterns(n: int, noise_seed: int, steps: int = 40, n_in: int = 10) -> tuple[torch.Tensor, ...]:
    """Two fixed random spike templates; each sample keeps 80% of its template's spikes and
    gets 2% random extra spikes. Train and validation share templates, not noise."""
    templates = torch.rand(2, steps, n_in, generator=torch.Generator().manual_seed(0)) < 0.1
    g = torch.Generator().manual_seed(noise_seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    keep = torch.rand(n, steps, n_in, generator=g) < 0.8
    extra = torch.rand(n, steps, n_in, generator=g) < 0.02
    return ((templates[labels] & keep) | extra).float(), labels


def network(**kw: object) -> RecurrentSNN:
    params: dict[str, object] = {
        "n_in": 10, "n_rec": 32, "n_out": 2, "gain_in": 2.0, "tau_out": 0.01,
    }
    params.update(kw)
    return RecurrentSNN(SNNConfig(**params), seed=0)


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_eprop_learns_a_two_class_spike_pattern_task(neuron: str) -> None:
    train, val = patterns(256, noise_seed=1), patterns(128, noise_seed=2)
    net = network(neuron=neuron)
    trainer = Trainer(net, TrainConfig(epochs=6, batch_size=32, lr=5e-3))
    before = trainer.evaluate(val).accuracy
    history = trainer.fit(train, val)
    assert before < 0.75
    assert history.best is not None and history.best.val_acc > 0.9
    assert trainer.evaluate(val).accuracy == history.best.val_acc  # best weights restored
    assert history.epochs[-1].spikes_per_sample > 0
    assert [m.epoch for m in history.epochs] == list(range(1, 7))


def test_online_mode_trains_like_fused() -> None:
    train = patterns(64, noise_seed=1)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=5e-3, shuffle=False)
    fused = Trainer(network(), cfg).fit(train)
    online = Trainer(network(eprop_mode="online"), cfg).fit(train)
    for a, b in zip(fused.epochs, online.epochs, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4)
        assert a.train_acc == b.train_acc


def test_early_stopping_on_a_plateau_keeps_the_best_weights() -> None:
    train, val = patterns(64, noise_seed=1), patterns(32, noise_seed=2)
    net = network()
    seen: list[EpochMetrics] = []
    weights: dict[int, torch.Tensor] = {}

    def record(m: EpochMetrics) -> None:
        seen.append(m)
        weights[m.epoch] = net.w_in.detach().clone()

    # lr so small nothing improves by min_delta: the first epoch stays best
    cfg = TrainConfig(epochs=20, batch_size=32, lr=1e-9, patience=3, min_delta=0.01)
    history = Trainer(net, cfg, callback=record).fit(train, val)
    assert history.stop_reason == "early_stopping"
    assert len(history.epochs) == 4 and history.best_epoch == 1
    assert seen == history.epochs
    assert torch.equal(net.w_in, weights[1])


def test_monitor_val_loss_and_callback_stop() -> None:
    train, val = patterns(64, noise_seed=1), patterns(32, noise_seed=2)
    cfg = TrainConfig(epochs=10, batch_size=32, lr=5e-3, monitor="val_loss")
    history = Trainer(network(), cfg, callback=lambda m: m.epoch >= 2).fit(train, val)
    assert history.stop_reason == "callback" and len(history.epochs) == 2
    assert history.monitor == "val_loss"
    best = min(history.epochs, key=lambda m: m.val_loss)
    assert history.best_epoch == best.epoch


def test_callback_exceptions_propagate() -> None:
    class Pruned(Exception):
        pass

    def prune(m: EpochMetrics) -> None:
        raise Pruned

    with pytest.raises(Pruned):
        Trainer(network(), TrainConfig(epochs=3), callback=prune).fit(patterns(16, 1))


def test_non_finite_loss_ends_the_run() -> None:
    x, y = patterns(32, noise_seed=1)
    net = network()
    with torch.no_grad():
        net.w_out[0, 0] = math.nan  # a network gone wrong, on good data
    initial = net.w_in.detach().clone()
    history = Trainer(net, TrainConfig(epochs=3, batch_size=32)).fit((x, y))
    assert history.stop_reason == "non_finite_loss" and history.epochs == []
    assert torch.equal(net.w_in, initial)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_inputs_are_refused_as_data(value: float) -> None:
    """NaN in the data is the data's fault, not the training's: named before any step."""
    x, y = patterns(32, noise_seed=1)
    x[0, 0, 0] = value
    trainer = Trainer(network(), TrainConfig(epochs=1, batch_size=32))
    with pytest.raises(DataError, match="train: inputs hold NaN, infinite"):
        trainer.fit((x, y))
    with pytest.raises(DataError, match="data: inputs hold NaN"):
        trainer.evaluate((x, y))


def test_spiketunes_own_datasets_train_as_their_tensors_do() -> None:
    """What every loader and ``split()`` return is taken as it is, with the same result."""
    from spiketune.data import Dataset, DatasetInfo

    x, y = patterns(64, noise_seed=1)
    own = Dataset(DatasetInfo("patterns", ("a", "b"), n_inputs=10, n_steps=40, dt=1e-3), x, y)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=5e-3, seed=0)
    a, b = network(), network()
    from_own = Trainer(a, cfg).fit(own, own)
    from_tensors = Trainer(b, cfg).fit((x, y), (x, y))
    assert [m.train_loss for m in from_own.epochs] == [m.train_loss for m in from_tensors.epochs]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_a_config_that_is_not_a_train_config_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"config: a TrainConfig or None .*\(got 'dict'\)"):
        Trainer(network(), {"epochs": 1})  # type: ignore[arg-type]
    assert Trainer(network(), None).config == TrainConfig()


def test_a_half_precision_network_is_refused_when_the_trainer_is_made() -> None:
    """Trained, it would overflow at once and end as non_finite_loss with no epoch."""
    with pytest.raises(ConfigError, match=r"net: a network in torch.float32 .*float16"):
        Trainer(network().half(), TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match=r"bfloat16"):
        Trainer(network().bfloat16(), TrainConfig(epochs=1))


def test_bad_data_is_refused() -> None:
    trainer = Trainer(network(), TrainConfig(epochs=1))
    x, y = patterns(8, noise_seed=1)
    with pytest.raises(DataError, match="labels must lie"):
        trainer.fit((x, y + 5))
    with pytest.raises(DataError, match="inputs must be"):
        trainer.fit((x[..., :3], y))
    with pytest.raises(ConfigError):
        trainer.fit([x])  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"integer class indices, got torch\.float32"):
        trainer.fit((x, y.float() + 0.7))  # not cut to 0 and 1
    with pytest.raises(DataError, match="at least one time step"):
        trainer.evaluate((x[:, :0], y))
    with pytest.raises(ConfigError, match="batch_size"):
        trainer.evaluate((x, y), batch_size=0)  # not the config's batch size in its place


def test_weight_averaging_keeps_the_moving_average_of_the_weights() -> None:
    """With ema_decay the kept weights are the exponential moving average of the weights after
    each optimiser step (the first step's weights start it), and validation scores them."""
    train, val = patterns(96, noise_seed=1), patterns(32, noise_seed=2)
    decay = 0.9
    net = network()
    trainer = Trainer(net, TrainConfig(epochs=1, batch_size=32, lr=5e-3, ema_decay=decay))
    after_each_step: list[torch.Tensor] = []
    step = trainer.optimizer.step

    def recording_step(*args: object, **kwargs: object) -> None:
        step(*args, **kwargs)
        after_each_step.append(net.w_in.detach().clone())

    trainer.optimizer.step = recording_step  # type: ignore[method-assign]
    history = trainer.fit(train, val)
    assert len(after_each_step) == 3
    expected = after_each_step[0]
    for w in after_each_step[1:]:
        expected = decay * expected + (1 - decay) * w
    assert not torch.allclose(expected, after_each_step[-1])  # the average is not the raw weights
    assert torch.allclose(net.w_in, expected, atol=1e-6)
    assert history.best is not None
    assert trainer.evaluate(val).accuracy == history.best.val_acc


def test_after_fit_with_averaging_the_kept_weights_are_the_ones_evaluated() -> None:
    train, val = patterns(64, noise_seed=1), patterns(32, noise_seed=2)
    net = network()
    # min_delta so large that only the first epoch counts as best: the average moves on after it
    cfg = TrainConfig(epochs=4, batch_size=16, lr=2e-2, ema_decay=0.8, min_delta=1.0)
    trainer = Trainer(net, cfg)
    history = trainer.fit(train, val)
    assert history.best is not None and history.best_epoch == 1
    assert history.epochs[-1].val_loss != pytest.approx(history.best.val_loss, rel=1e-3)
    assert trainer.evaluate(val).loss == pytest.approx(history.best.val_loss, rel=1e-6)
    assert torch.equal(trainer.eval_net.w_in, net.w_in)


def test_cosine_schedule_anneals_the_learning_rate_to_zero() -> None:
    lrs: list[float] = []
    cfg = TrainConfig(epochs=4, batch_size=32, lr=0.01, lr_schedule="cosine")
    trainer = Trainer(network(), cfg)
    trainer.callback = lambda m: lrs.append(trainer.optimizer.param_groups[0]["lr"]) and None
    trainer.fit(patterns(32, noise_seed=1))
    expected = [0.01 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 5)]
    assert lrs == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("field", "value"), [("ema_decay", 1.0), ("lr_schedule", "step")])
def test_bad_averaging_or_schedule_is_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        TrainConfig.from_params({field: value})


# ------------------------------------------------------------------------------ epochs()
def _without_seconds(history: History) -> list[dict[str, object]]:
    return [{k: v for k, v in m.as_dict().items() if k != "seconds"} for m in history.epochs]


@pytest.mark.parametrize(
    "config",
    [
        # shuffling, augmentation, weight averaging and annealing: every seeded draw
        TrainConfig(epochs=3, batch_size=16, lr=1e-2, augment_shift=2, augment_drop=0.1,
                    ema_decay=0.9, lr_schedule="cosine", seed=5),
        # only the first epoch counts as best: an early stop after `patience` more
        TrainConfig(epochs=8, batch_size=16, lr=2e-2, min_delta=1.0, patience=2),
    ],
    ids=["completed", "early_stopping"],
)
def test_draining_epochs_is_fit(config: TrainConfig) -> None:
    """``fit`` and a loop over ``epochs()`` train alike, epoch by epoch, to the same weights;
    the generator yields the History's own metrics and returns the History."""
    train, val = patterns(64, noise_seed=1), patterns(32, noise_seed=2)
    fitted_net, stepped_net = network(), network()
    fitted = Trainer(fitted_net, config).fit(train, val)

    run = Trainer(stepped_net, config).epochs(train, val)
    yielded: list[EpochMetrics] = []
    with pytest.raises(StopIteration) as done:
        while True:
            yielded.append(next(run))
    stepped = done.value.value
    assert isinstance(stepped, History)
    assert len(yielded) == len(stepped.epochs)
    assert all(a is b for a, b in zip(yielded, stepped.epochs, strict=True))
    assert _without_seconds(stepped) == _without_seconds(fitted)
    assert (stepped.best_epoch, stepped.stop_reason) == (fitted.best_epoch, fitted.stop_reason)
    expected_reason = "early_stopping" if config.patience == 2 else "completed"
    assert fitted.stop_reason == expected_reason
    assert len(fitted.epochs) == (3 if expected_reason == "early_stopping" else config.epochs)
    fitted_state, stepped_state = fitted_net.state_dict(), stepped_net.state_dict()
    assert fitted_state.keys() == stepped_state.keys()
    for key, value in fitted_state.items():
        assert torch.equal(value, stepped_state[key]), key


def test_closing_epochs_early_keeps_the_best_weights_so_far() -> None:
    train, val = patterns(64, noise_seed=1), patterns(32, noise_seed=2)
    net = network()
    # min_delta so large that only the first epoch counts as best; the average moves on after
    cfg = TrainConfig(epochs=10, batch_size=16, lr=2e-2, min_delta=1.0, ema_decay=0.8)
    trainer = Trainer(net, cfg)
    run = trainer.epochs(train, val)
    kept: dict[int, torch.Tensor] = {}
    for _ in range(3):
        metrics = next(run)
        kept[metrics.epoch] = trainer.eval_net.w_in.detach().clone()
    assert not torch.equal(kept[3], kept[1])  # closing now must change the weights
    assert run.close() is None  # close() hands nothing back: the trainer keeps the History
    history = trainer.history
    assert isinstance(history, History)
    assert history.stop_reason == "closed"
    assert [m.epoch for m in history.epochs] == [1, 2, 3] and history.best_epoch == 1
    assert torch.equal(net.w_in, kept[1])
    assert torch.equal(trainer.eval_net.w_in, net.w_in)  # evaluate() scores the weights kept
    assert history.best is not None
    assert trainer.evaluate(val).loss == pytest.approx(history.best.val_loss, rel=1e-6)
    with pytest.raises(StopIteration):
        next(run)


def test_epochs_yields_the_epoch_a_callback_stops() -> None:
    train, val = patterns(32, noise_seed=1), patterns(16, noise_seed=2)
    trainer = Trainer(network(), TrainConfig(epochs=5), callback=lambda m: m.epoch >= 2)
    yielded = [m.epoch for m in trainer.epochs(train, val)]
    assert yielded == [1, 2]
    assert trainer.history is not None and trainer.history.stop_reason == "callback"


def test_time_stretch_reaches_the_training_batches() -> None:
    """``augment_stretch`` changes what a seeded run trains on (and so its weights); 0 keeps
    the run of a config without it."""
    train, val = patterns(32, noise_seed=1), patterns(16, noise_seed=2)
    weights = {}
    for stretch in (0.0, 0.3):
        net = network()
        Trainer(net, TrainConfig(epochs=1, batch_size=8, lr=1e-2, seed=3,
                                 augment_stretch=stretch)).fit(train, val)
        weights[stretch] = net.w_rec.detach().clone()
    plain = network()
    Trainer(plain, TrainConfig(epochs=1, batch_size=8, lr=1e-2, seed=3)).fit(train, val)
    assert torch.equal(weights[0.0], plain.w_rec.detach())
    assert not torch.allclose(weights[0.3], weights[0.0])
