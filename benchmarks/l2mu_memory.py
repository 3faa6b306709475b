"""How the L²MU's fused BPTT (and the LMU) apply their memory: the dense block-diagonal
``kron(I, Abar)`` against the product channel by channel, over the memory shapes the L²MU
templates search.

One step = forward pass + BPTT gradients of an L²MU (12 inputs, 7 classes, leaky readout,
hidden 120 by default) on a batch of spikes, for every ``order`` x ``memory_size`` of the
Braille L²MU template's space (order 4, 7, 10, 16; memory 8, 16, 32, 48, 70). Both paths
run in one process, round by round (a busy machine slows both alike), and the ratio of
medians is printed, with the path the size rule picks (``_PER_CHANNEL_FROM``). Before timing,
each shape runs both paths in float64 on the same input: spikes must be equal and gradients
equal to 1e-9, else the script stops.

Run: ``.venv/bin/python benchmarks/l2mu_memory.py`` (``--model l2mu|lmu``, ``--batch``,
``--steps``, ``--hidden``, ``--threads``, ``--rounds``, ``--json``). Defaults: batch 16, 128
steps (10 ms bins of the 1.28 s threshold-1 samples), one thread (the best process setting
of the template's search).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

import spiketune.snn._lmu as lmu
from spiketune.snn import L2MU, LMU

ORDERS = (4, 7, 10, 16)
MEMORIES = (8, 16, 32, 48, 70)


@contextmanager
def memory_path(path: str) -> Iterator[None]:
    """Force the fused path to take ``path`` ("dense", "per_channel"); "rule": as it would."""
    saved = lmu._PER_CHANNEL_FROM
    if path != "rule":
        lmu._PER_CHANNEL_FROM = 0 if path == "per_channel" else 10**18
    try:
        yield
    finally:
        lmu._PER_CHANNEL_FROM = saved


def build(order: int, memory: int, hidden: int, dtype: torch.dtype,
          model: str = "l2mu") -> L2MU | LMU:
    shape: dict[str, Any] = {"order": order, "theta": 0.2, "dt": 0.01, "memory_size": memory,
                             "hidden_size": hidden, "dtype": dtype, "seed": 0}
    net: L2MU | LMU
    if model == "lmu":
        net = LMU(12, 7, **shape)
    else:
        net = L2MU(12, 7, threshold={"u": 0.5, "m": 0.05, "h": 0.3}, **shape)
    with torch.no_grad():  # a non-zero memory encoder, so that every weight gets gradient
        net.e_m.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(1))
    return net


def step(net: L2MU | LMU, x: torch.Tensor, weights: torch.Tensor
         ) -> tuple[Any, list[torch.Tensor]]:
    tr = net.simulate_for_bptt(x)
    loss = (tr.readout * weights).sum()
    return tr, list(torch.autograd.grad(loss, list(net.parameters())))


def check(order: int, memory: int, hidden: int, batch: int, steps: int, model: str) -> None:
    """Both paths in float64: equal spikes (the LMU: readouts to 1e-9), gradients to 1e-9."""
    net = build(order, memory, hidden, torch.float64, model)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, steps, 12, generator=g, dtype=torch.float64) < 0.2).double()
    w = torch.randn(batch, steps, 7, generator=g, dtype=torch.float64)
    runs = {}
    for path in ("dense", "per_channel"):
        with memory_path(path):
            runs[path] = step(net, x, w)
    (tr_a, g_a), (tr_b, g_b) = runs["dense"], runs["per_channel"]
    if model == "lmu":
        scale = float(tr_a.readout.detach().abs().max())
        if float((tr_a.readout - tr_b.readout).detach().abs().max()) > 1e-9 * scale:
            sys.exit(f"order {order}, memory {memory}: the readouts differ")
    for pop in ("z_u", "z_m", "z_h") if model == "l2mu" else ():
        if not torch.equal(getattr(tr_a, pop), getattr(tr_b, pop)):
            sys.exit(f"order {order}, memory {memory}: {pop} differs between the paths")
    if model == "l2mu" and float(tr_a.z_m.detach().sum()) == 0:
        sys.exit(f"order {order}, memory {memory}: the memory never spiked; nothing compared")
    for (name, _), a, b in zip(net.named_parameters(), g_a, g_b, strict=True):
        scale = float(b.abs().max()) or 1.0
        if float((a - b).abs().max()) > 1e-9 * scale:
            sys.exit(f"order {order}, memory {memory}: gradient of {name} differs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--model", choices=("l2mu", "lmu"), default="l2mu",
                    help="the spiking L²MU (fused BPTT) or the LMU (autograd)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.model} fwd+bwd, batch {args.batch}, {args.steps} steps, hidden {args.hidden}, "
          f"{args.threads} thread(s), median of {args.rounds} rounds", file=sys.stderr)
    rows = []
    # a warm-up, so that the first timed shape pays none
    warm = build(7, 32, args.hidden, torch.float32, args.model)
    for _ in range(3):
        step(warm, (torch.rand(args.batch, args.steps, 12) < 0.2).float(),
             torch.randn(args.batch, args.steps, 7))
    for order in ORDERS:
        for memory in MEMORIES:
            check(order, memory, 8, 3, 40, args.model)
            net = build(order, memory, args.hidden, torch.float32, args.model)
            x = (torch.rand(args.batch, args.steps, 12) < 0.2).float()
            w = torch.randn(args.batch, args.steps, 7)
            times: dict[str, list[float]] = {"dense": [], "per_channel": []}
            for path in times:  # warm-up
                with memory_path(path):
                    step(net, x, w)
            for _ in range(args.rounds):
                for path, seconds in times.items():
                    with memory_path(path):
                        start = time.perf_counter()
                        step(net, x, w)
                        seconds.append(time.perf_counter() - start)
            dense, channel = (statistics.median(times[p]) for p in ("dense", "per_channel"))
            with memory_path("rule"):
                a_t, b_t = net.memory_a_t, net.memory_b_t
                rule = lmu._Memory.of(a_t, b_t, memory, args.batch, 0.0, 0.0)
            picked = "per_channel" if rule is not None else "dense"
            chosen = channel if rule is not None else dense
            rows.append({"order": order, "memory_size": memory, "n_memory": order * memory,
                         "dense_ms": dense * 1e3, "per_channel_ms": channel * 1e3,
                         "rule": picked, "speedup_of_rule": dense / chosen})
    if args.json:
        print(json.dumps({"model": args.model, "batch": args.batch, "steps": args.steps,
                          "hidden": args.hidden, "threads": args.threads, "rows": rows},
                         indent=1))
        return
    print(f"{'order':>5} {'memory':>6} {'n_mem':>6} {'dense ms':>9} {'channel ms':>10} "
          f"{'rule':>11} {'rule / dense':>12}")
    for r in rows:
        print(f"{r['order']:>5} {r['memory_size']:>6} {r['n_memory']:>6} {r['dense_ms']:>9.1f} "
              f"{r['per_channel_ms']:>10.1f} {r['rule']:>11} {r['speedup_of_rule']:>11.2f}x")
    total_dense = sum(r["dense_ms"] for r in rows)
    total_rule = sum(r["dense_ms"] / r["speedup_of_rule"] for r in rows)
    print(f"all {len(rows)} shapes, one step each: dense {total_dense:.0f} ms, rule "
          f"{total_rule:.0f} ms ({total_dense / total_rule:.2f}x)")


if __name__ == "__main__":
    main()
