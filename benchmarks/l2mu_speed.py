"""Speed of one training step of spiketune's L²MU against the same cell written with snnTorch.

One step = forward pass + BPTT gradients + Adam step, for an L²MU with order 7, memory_size 16,
hidden_size 120, 12 inputs, 7 classes (spiking readout), T=256, batch 64, on the CPU with 2
threads: the size of the published Braille L²MU. The reference is a plain transcription of the
published cell (Leto et al., neuromorphic-polito/L2MU-Braille): ``nn.Linear`` layers and four
snnTorch ``Leaky`` populations with learnable decay and threshold, one call per layer per step.

Before timing, both networks get the same weights and are run in float64 on the same input:
their readout and every population's spikes must be equal, else the script stops. Timings
interleave the two round by round in one process (a busy machine slows both alike); the ratio
of medians is reported. Target: spiketune at least 3x faster.

Run: ``.venv/bin/python benchmarks/l2mu_speed.py`` (``--rounds N``, ``--threads N``,
``--json``). Needs snnTorch (``pip install -e .[dev]``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spiketune.snn._lmu import L2MU

N_IN, N_OUT, ORDER, MEMORY, HIDDEN, BATCH, STEPS, THREADS = 12, 7, 7, 16, 120, 64, 256, 2
DT, THETA = 5e-3, 0.1
# Low thresholds for the memory and readout so that every population spikes on sparse input
# (the check below must compare spikes, not silence).
BETA = {"u": 0.9, "m": 0.95, "h": 0.9, "out": 0.9}
THRESHOLD = {"u": 0.5, "m": 0.02, "h": 0.3, "out": 0.3}


class SnnTorchL2MU(nn.Module):
    """The published L²MU cell, naively: snnTorch ``Leaky`` neurons and ``nn.Linear`` layers."""

    def __init__(self, net: L2MU) -> None:
        import snntorch

        super().__init__()
        p = net.params
        self.memory_size, self.order = p.memory_size, p.order
        dtype = net.w_x.dtype

        def linear(w: torch.Tensor, b: torch.Tensor | None = None) -> nn.Linear:
            layer = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=dtype)
            layer.weight = nn.Parameter(w.detach().clone())
            if b is not None:
                layer.bias = nn.Parameter(b.detach().clone())
            return layer

        self.e_x, self.e_h, self.e_m = linear(net.e_x), linear(net.e_h), linear(net.e_m)
        self.w_x, self.w_h, self.w_m = linear(net.w_x), linear(net.w_h), linear(net.w_m)
        abar, bbar = p.matrices
        self.a = nn.Linear(p.order, p.order, bias=False, dtype=dtype).requires_grad_(False)
        self.a.weight.copy_(torch.as_tensor(abar))
        self.b = nn.Linear(1, p.order, bias=False, dtype=dtype).requires_grad_(False)
        self.b.weight.copy_(torch.as_tensor(bbar)[:, None])
        self.out = linear(net.w_out, net.b_out)

        def leaky(pop: str) -> Any:
            neuron = snntorch.Leaky(beta=0.5, learn_beta=True, learn_threshold=True,
                                    init_hidden=True)
            neuron.beta = nn.Parameter(getattr(net, f"beta_{pop}").detach().clone())
            neuron.threshold = nn.Parameter(getattr(net, f"threshold_{pop}").detach().clone())
            return neuron

        self.lif_u, self.lif_m, self.lif_h, self.lif_out = map(leaky, ("u", "m", "h", "out"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x (T, B, n_in) -> output spikes and the spikes of u, m, h, each (T, B, n)."""
        for lif in (self.lif_u, self.lif_m, self.lif_h, self.lif_out):
            lif.reset_mem()
        batch, dtype = x.shape[1], x.dtype
        s_h = x.new_zeros(batch, self.w_h.in_features)
        s_m = x.new_zeros(batch, self.memory_size * self.order)
        outs: dict[str, list[torch.Tensor]] = {k: [] for k in ("out", "u", "m", "h")}
        for t in range(x.shape[0]):
            s_u = self.lif_u(self.e_x(x[t]) + self.e_h(s_h) + self.e_m(s_m)).to(dtype)
            m = s_m.reshape(batch, self.memory_size, self.order)
            curr_m = self.a(m) + self.b(s_u.unsqueeze(-1))
            s_m = self.lif_m(curr_m).to(dtype).reshape(batch, -1)
            s_h = self.lif_h(self.w_x(x[t]) + self.w_h(s_h) + self.w_m(s_m)).to(dtype)
            s_out = self.lif_out(self.out(s_h)).to(dtype)
            for k, v in zip(outs, (s_out, s_u, s_m, s_h), strict=True):
                outs[k].append(v)
        return tuple(torch.stack(v) for v in outs.values())


def _data(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(BATCH, STEPS, N_IN, generator=g) < 0.1).to(dtype)  # ~Braille density
    return x, torch.randint(0, N_OUT, (BATCH,), generator=g)


def _net(dtype: torch.dtype) -> L2MU:
    return L2MU(N_IN, N_OUT, order=ORDER, theta=THETA, dt=DT, memory_size=MEMORY,
                hidden_size=HIDDEN, beta=BETA, threshold=THRESHOLD, readout="spiking",
                seed=0, dtype=dtype)


def check_equal() -> dict[str, float]:
    """Same weights, float64: every spike of every population must match. Returns rates."""
    net = _net(torch.float64)
    ref = SnnTorchL2MU(net)
    x, _ = _data(torch.float64)
    with torch.no_grad():
        tr = net.simulate(x)
        out, z_u, z_m, z_h = ref(x.transpose(0, 1))
    ours = {"out": tr.y, "u": tr.z_u, "m": tr.z_m, "h": tr.z_h}
    theirs = {"out": out, "u": z_u, "m": z_m, "h": z_h}
    for k, z in ours.items():
        if not torch.equal(z, theirs[k]):
            diff = int((z != theirs[k]).sum())
            sys.exit(f"outputs differ: population {k}, {diff} spikes of {z.numel()}")
    rates = {k: float(z.mean()) for k, z in ours.items()}
    if min(rates.values()) == 0:
        sys.exit(f"a population is silent, the check compared nothing: {rates}")
    return rates


def _loss(spikes_out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the output spike counts (B, n_out)."""
    return F.cross_entropy(spikes_out, labels)


def time_both(rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per training step of each implementation, interleaved round by round."""
    net = _net(torch.float32)
    ref = SnnTorchL2MU(net)
    x, labels = _data(torch.float32)
    xt = x.transpose(0, 1).contiguous()

    def ours() -> None:
        opt_ours.zero_grad(set_to_none=True)
        _loss(net(x).sum(1), labels).backward()
        opt_ours.step()

    def snntorch_step() -> None:
        opt_ref.zero_grad(set_to_none=True)
        _loss(ref(xt)[0].sum(0), labels).backward()
        opt_ref.step()

    opt_ours = torch.optim.Adam(net.parameters(), lr=1e-3)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)
    steps = {"spiketune": ours, "snnTorch": snntorch_step}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(warmup + rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import snntorch  # noqa: F401
    except ImportError:
        sys.exit("snnTorch is not installed: pip install -e .[dev]")
    torch.set_num_threads(args.threads)
    rates = check_equal()
    print("equal outputs on the same weights (float64); spikes per neuron per step: "
          + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
    times = time_both(args.rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["snnTorch"] / med["spiketune"]
    print(f"one training step, order={ORDER} memory={MEMORY} hidden={HIDDEN} n_in={N_IN} "
          f"n_out={N_OUT} T={STEPS} batch={BATCH}, CPU, {args.threads} threads "
          f"(torch {torch.__version__})")
    for k, v in times.items():
        print(f"{k:10s} median {med[k] * 1e3:8.1f} ms   best {min(v) * 1e3:8.1f} ms")
    print(f"spiketune vs snnTorch: {ratio:.2f}x faster (median)   target >= 3x: "
          f"{'met' if ratio >= 3 else 'NOT met'}")
    if args.json:
        print(json.dumps({"median_ms": {k: v * 1e3 for k, v in med.items()}, "ratio": ratio,
                          "rates": rates}))


if __name__ == "__main__":
    main()
