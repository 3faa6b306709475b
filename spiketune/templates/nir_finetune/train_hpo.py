"""The network of a trial: the NIR graph read by ``spiketune.nir.to_network``, its time
constants and threshold scaled by the trial's factors, trained by surrogate-gradient BPTT.

Parameters: ``tau_syn_factor``, ``tau_mem_factor``, ``tau_out_factor`` (multiply the graph's
time constants, seconds), ``v_th_factor`` (multiplies its threshold), and any field of
:class:`spiketune.snn.TrainConfig` (``lr``, ``epochs``, ``batch_size``...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import spiketune.nir
from spiketune.data import Dataset, DatasetInfo
from spiketune.snn import RecurrentSNN, SNNConfig, TrainConfig, predict

#: Factors on the graph's dynamics that a trial may choose (1: as the graph has it).
FACTORS = ("tau_syn_factor", "tau_mem_factor", "tau_out_factor", "v_th_factor")
#: Training values the search does not choose.
FIXED: dict[str, Any] = {"lr_schedule": "cosine", "monitor": "val_acc", "patience": 15}
#: Network values for fine-tuning: BPTT on the summed readout.
NETWORK: dict[str, Any] = {"rule": "bptt", "loss": "ce_summed"}


def _tau(decay: float, dt: float) -> float:
    """The time constant (s) whose exact decay per step of ``dt`` is ``decay``."""
    return -dt / math.log(decay) if decay > 0 else dt * 1e-3


def build(
    graph: str | Path, params: Mapping[str, Any], info: DatasetInfo, *,
    device: torch.device, epochs_cap: int | None = None,
) -> tuple[RecurrentSNN, TrainConfig]:
    """The graph's network with the trial's factors applied, and its training config."""
    net = spiketune.nir.to_network(graph, dtype=torch.float32, **NETWORK)
    cfg = net.config
    if (cfg.n_in, cfg.n_out) != (info.n_inputs, info.n_classes) or not math.isclose(
        cfg.dt, info.dt, rel_tol=1e-9
    ):
        raise SystemExit(
            f"{graph}: the graph reads {cfg.n_in} inputs into {cfg.n_out} classes at dt="
            f"{cfg.dt:g} s; the data have {info.n_inputs} channels, {info.n_classes} classes, "
            f"bins of {info.dt:g} s"
        )
    f = {k: float(params.get(k, 1.0)) for k in FACTORS}
    changes: dict[str, Any] = {
        "alpha": None, "tau_mem": _tau(cfg.decay_mem, cfg.dt) * f["tau_mem_factor"],
        "kappa": None, "tau_out": _tau(cfg.decay_out, cfg.dt) * f["tau_out_factor"],
        "v_th": cfg.v_th * f["v_th_factor"],
    }
    if cfg.neuron == "cuba_lif":
        changes.update(alpha_syn=None,
                       tau_syn=_tau(cfg.decay_syn, cfg.dt) * f["tau_syn_factor"])
    tuned = RecurrentSNN(SNNConfig(**{**cfg.model_dump(), **changes}), seed=0, device=device)
    tuned.load_state_dict(net.state_dict())
    train = {k: v for k, v in params.items() if k not in FACTORS}
    train_config = TrainConfig.from_params({**FIXED, **train})
    if epochs_cap is not None and train_config.epochs > epochs_cap:
        train_config = TrainConfig.from_params({**train_config.model_dump(), "epochs": epochs_cap})
    return tuned, train_config


def predict_classes(net: RecurrentSNN, dataset: Dataset, batch_size: int = 128) -> torch.Tensor:
    """The class ``net`` predicts for each sample (argmax of its class scores), on the CPU."""
    out = []
    with torch.no_grad():
        for lo in range(0, len(dataset), batch_size):
            readout = net.simulate(dataset.inputs[lo : lo + batch_size]).readout
            out.append(predict(readout, net.config.loss_steps, net.config.loss).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)
