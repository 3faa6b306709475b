"""Population mode for models no population can batch (``spiketune.snn.batchable``): an
L²MU, an LMU or a CubaLIF network in ``train_population`` trains alone by its own Trainer,
in step with the batched members, and ends exactly as ``train_folds`` would leave it."""

from __future__ import annotations

import pytest
import torch
from test_braille_population import FOLDS, INFO

from spiketune.snn import (
    History,
    Model,
    TrainConfig,
    batchable,
    model_and_config_from_params,
    train_folds,
    train_population,
)

L2MU = {"model": {"_name": "l2mu", "order": 4, "theta": 0.2, "memory_size": 6,
                  "hidden_size": 10}, "lr": 0.01, "batch_size": 8, "epochs": 4, "seed": 3}
LMU = {"model": {"_name": "lmu", "order": 4, "theta": 0.2, "memory_size": 6,
                 "hidden_size": 10}, "lr": 0.01, "batch_size": 8, "epochs": 3, "seed": 4}
RSNN = {"model": {"_name": "rsnn", "n_rec": 16, "tau_mem": 0.1, "tau_out": 0.1,
                  "rule": "bptt"}, "lr": 0.01, "batch_size": 8, "epochs": 3, "seed": 5}
CUBA = {"model": {"_name": "rsnn", "n_rec": 16, "tau_mem": 0.1, "tau_out": 0.1,
                  "neuron": "cuba_lif", "tau_syn": 0.05, "rule": "bptt"},
        "lr": 0.01, "batch_size": 8, "epochs": 2, "seed": 6}


def _built(params: dict) -> list[tuple[Model, TrainConfig]]:
    torch.manual_seed(0)
    net, cfg = model_and_config_from_params(params, INFO, device=torch.device("cpu"))
    return [(net, cfg)]


def _weights(built: list) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in built[0][0].state_dict().items()}


def test_batchable_says_which_models_a_population_can_take() -> None:
    assert batchable(_built(RSNN)[0][0])
    for params in (L2MU, LMU, CUBA):
        assert not batchable(_built(params)[0][0])
    assert not batchable("a network")


def test_members_no_population_can_take_train_alone_in_step_and_end_as_alone() -> None:
    members = [_built(p) for p in (L2MU, RSNN, LMU, CUBA)]
    references = [_built(p) for p in (L2MU, RSNN, LMU, CUBA)]
    expected = [train_folds(ref, FOLDS)[1][0] for ref in references]
    done: dict[int, list[History]] = {}
    histories = train_population(members, [FOLDS] * 4, ["d"] * 4,
                                 on_done=lambda m, h: done.setdefault(m, h))
    assert [len(h[0].epochs) for h in histories] == [4, 3, 3, 2]
    assert sorted(done) == [0, 1, 2, 3]
    for got, want, member, ref in zip(histories, expected, members, references, strict=True):
        assert [e.val_acc for e in got[0].epochs] == pytest.approx(
            [e.val_acc for e in want.epochs], abs=1e-6)
        assert got[0].stop_reason == want.stop_reason == "completed"
        for key, w in _weights(member).items():  # its best weights, as alone
            torch.testing.assert_close(w, _weights(ref)[key], atol=1e-5, rtol=1e-5)


def test_the_engine_stops_a_member_that_trains_alone_with_its_best_weights_so_far() -> None:
    member, other = _built(L2MU), _built(RSNN)
    seen: list[tuple[int, int]] = []

    def on_epoch(m: int, epoch: int, latest: list) -> bool:
        seen.append((m, epoch))
        return m == 0 and epoch == 2  # pruned after its 2nd epoch

    ended: dict[int, int] = {}
    histories = train_population(
        [member, other], [FOLDS, FOLDS], ["d", "d"], on_epoch,
        on_done=lambda m, h: ended.setdefault(m, len(seen)))
    first = histories[0][0]
    assert len(first.epochs) == 2 and first.stop_reason == "stopped by the engine"
    assert (0, 3) not in seen and (1, 3) in seen  # the other member goes on
    assert ended[0] < ended[1]  # told as soon as it stopped
    # the same member trained alone for 2 epochs ends with the same best weights
    ref = _built({**L2MU, "epochs": 2})
    train_folds(ref, FOLDS)
    for key, w in _weights(member).items():
        torch.testing.assert_close(w, _weights(ref)[key], atol=1e-5, rtol=1e-5)


def test_a_member_stopped_before_its_first_epoch_has_an_empty_history_with_the_reason() -> None:
    from spiketune.snn._folds import _Alone

    member = _built(L2MU)
    before = _weights(member)
    alone = _Alone(member[0])
    alone.stop(0, "stopped by the engine")
    assert alone.active == []
    assert list(alone.epochs(*(d.tensor_dataset() for d in FOLDS[0]))) == []
    (history,) = alone.histories
    assert history.epochs == [] and history.stop_reason == "stopped by the engine"
    for key, w in _weights(member).items():  # never trained: its initial weights
        torch.testing.assert_close(w, before[key])
