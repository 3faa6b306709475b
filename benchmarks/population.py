"""Speed of one training step of K networks as one population, against the same K one by one.

One step = forward pass, gradients and Adam step of every member, on a batch of its own
(members differ in their hyperparameters as a Braille search draws them: time constants,
threshold, gains, learning rate, regulariser, weight decay, feedback). Sizes are those of a
Braille trial: N_in 12, N_out 7, T 68 steps of 20 ms, batch 8 and 16, N_rec 128 and 256,
CPU, 2 threads; fused e-prop and BPTT. The population step and the K single steps run
interleaved round by round in one process, so a busy machine slows both alike; the figures
are medians over the rounds and the ratio is population / one-by-one samples per second.

Also printed: how often a float32 spike flips between a member in the population and the
same network alone (``bmm`` and ``mm`` may sum in a different order), over one forward
pass; a mixed LIF/ALIF population (LIF as ALIF with beta = 0) against the two neuron
kinds grouped into two populations; and why a large network gains nothing on a CPU: the
recurrent product of one time step, K members as one ``bmm`` against K ``mm`` one by one, on
one thread, in GFLOP/s (each member has weights of its own, so a population brings no reuse
of them; it only shares the dispatch, and K weight matrices that overflow a core's cache
stream from further away at every step).

Run: ``.venv/bin/python benchmarks/population.py`` (``--members 4 16``, ``--rounds N``,
``--threads N``, ``--device cuda``, ``--json``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

import torch

from spiketune.snn import RecurrentSNN, SNNConfig, TrainConfig, make_rule
from spiketune.snn._population import _Optimiser
from spiketune.snn._population_ops import (
    PopulationParameters,
    bptt_step,
    eprop_step,
    simulate,
    stack_weights,
)
from spiketune.snn._workspace import Workspace

N_IN, N_OUT, STEPS, DT = 12, 7, 68, 0.02


def member_configs(k: int, n_rec: int, rule: str, batch: int, neurons: list[str] | None = None,
                   seed: int = 0) -> list[tuple[SNNConfig, TrainConfig]]:
    """K configurations drawn from (roughly) the Braille example's search space."""
    rng = random.Random(seed)
    out = []
    for i in range(k):
        neuron = neurons[i] if neurons else "lif"
        adapt = {"tau_adapt": rng.uniform(0.1, 2.0), "beta": rng.uniform(0.05, 2.0)}
        snn = SNNConfig(
            n_in=N_IN, n_rec=n_rec, n_out=N_OUT, dt=DT, rule=rule, loss="ce_summed",
            neuron=neuron, tau_mem=rng.uniform(0.03, 0.4), tau_out=rng.uniform(0.03, 0.5),
            v_th=rng.uniform(0.3, 1.5), gain_in=rng.uniform(1.0, 8.0),
            gain_rec=rng.uniform(0.0, 1.5), reg_strength=rng.uniform(1e-3, 1.0),
            reg_target_hz=rng.uniform(2.0, 20.0),
            feedback=rng.choice(["symmetric", "random"]) if rule == "eprop" else "symmetric",
            **(adapt if neuron == "alif" else {}),
        )
        train = TrainConfig(batch_size=batch, lr=rng.uniform(5e-4, 1e-2), seed=i,
                            weight_decay=rng.uniform(1e-5, 1e-2))
        out.append((snn, train))
    return out


class Alone:
    """K networks, each stepped by its own rule and torch Adam (what K trials do today)."""

    def __init__(self, configs: list[tuple[SNNConfig, TrainConfig]], device: str,
                 dtype: torch.dtype = torch.float32) -> None:
        self.nets = [RecurrentSNN(s, seed=t.seed, device=device, dtype=dtype) for s, t in configs]
        self.rules = [make_rule(s) for s, _ in configs]
        self.opts = [torch.optim.Adam(n.parameters(), lr=t.lr, weight_decay=t.weight_decay)
                     for n, (_, t) in zip(self.nets, configs, strict=True)]

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
        for k, (net, rule, opt) in enumerate(zip(self.nets, self.rules, self.opts, strict=True)):
            opt.zero_grad(set_to_none=True)
            rule.backward(net, xs[k], ys[k])
            opt.step()


class Together:
    """The same K networks as one population (what PopulationTrainer runs per batch)."""

    def __init__(self, alone: Alone, configs: list[tuple[SNNConfig, TrainConfig]]) -> None:
        self.weights, self.feedback = stack_weights(alone.nets)
        self.params = PopulationParameters.of(alone.nets, self.weights["w_in"])
        self.optimiser = _Optimiser([t for _, t in configs], self.weights)
        self.rule = configs[0][0].rule
        self.workspace = Workspace()

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
        x = torch.stack(list(xs))  # the members' batches are separate tensors in training too
        if self.rule == "bptt":
            grads = bptt_step(self.weights, self.params, x, ys, self.workspace).grads
        else:
            grads = eprop_step(self.weights, self.feedback, self.params, x, ys,
                               self.workspace).grads
        self.optimiser.step(self.weights, grads)


def _batches(k: int, batch: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(k, batch, STEPS, N_IN, generator=g) < 0.05).float()  # ~Braille density
    return x.to(device), torch.randint(0, N_OUT, (k, batch), generator=g).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(runners: dict[str, Any], xs: torch.Tensor, ys: torch.Tensor, rounds: int,
               device: str, warmup: int = 2) -> dict[str, float]:
    """Median seconds per step of each runner, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(warmup + rounds):
        for name, runner in runners.items():
            _sync(device)
            start = time.perf_counter()
            runner.step(xs, ys)
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def speed(k: int, batch: int, n_rec: int, rule: str, rounds: int, device: str) -> dict[str, Any]:
    configs = member_configs(k, n_rec, rule, batch)
    alone = Alone(configs, device)
    together = Together(Alone(configs, device), configs)
    xs, ys = _batches(k, batch, device)
    t = time_steps({"alone": alone, "population": together}, xs, ys, rounds, device)
    samples = k * batch
    return {
        "rule": rule, "members": k, "batch": batch, "n_rec": n_rec,
        "alone_samples_per_s": samples / t["alone"],
        "population_samples_per_s": samples / t["population"],
        "ratio": t["alone"] / t["population"],
    }


def mixed_neurons(k: int, batch: int, n_rec: int, rounds: int, device: str) -> dict[str, Any]:
    """K/2 LIF and K/2 ALIF members: one population (LIF as ALIF with beta = 0) against two
    populations grouped by neuron kind."""
    neurons = ["lif", "alif"] * (k // 2)
    configs = member_configs(k, n_rec, "eprop", batch, neurons)
    mixed = Together(Alone(configs, device), configs)
    lif = [c for c, n in zip(configs, neurons, strict=True) if n == "lif"]
    alif = [c for c, n in zip(configs, neurons, strict=True) if n == "alif"]
    groups = [Together(Alone(g, device), g) for g in (lif, alif)]
    xs, ys = _batches(k, batch, device)
    half = k // 2

    class Grouped:
        def step(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
            groups[0].step(xs[:half], ys[:half])
            groups[1].step(xs[half:], ys[half:])

    t = time_steps({"mixed": mixed, "grouped": Grouped()}, xs, ys, rounds, device)
    samples = k * batch
    return {"members": k, "batch": batch, "n_rec": n_rec,
            "mixed_samples_per_s": samples / t["mixed"],
            "grouped_samples_per_s": samples / t["grouped"]}


def float32_flips(k: int, batch: int, n_rec: int, device: str) -> dict[str, Any]:
    """Spikes that differ between each member in a float32 population and the same network
    alone, over one forward pass; with and without recurrence's divergence counted (a flip at
    step t changes what the network does afterwards, so later flips follow the first)."""
    configs = member_configs(k, n_rec, "eprop", batch)
    nets = Alone(configs, device).nets
    weights, _ = stack_weights(nets)
    params = PopulationParameters.of(nets, weights["w_in"])
    xs, _ = _batches(k, batch, device, seed=1)
    with torch.no_grad():
        z_pop = simulate(weights, params, xs).z  # (K, T, B, n_rec)
        z_one = torch.stack([n.simulate(xs[i]).z for i, n in enumerate(nets)])
    differ = z_pop != z_one
    first = differ.flatten(2).any(2)  # (K, T): a flip anywhere at step t
    samples_hit = differ.any(-1).any(1)  # (K, B): samples where a spike ever flips
    return {
        "members": k, "batch": batch, "n_rec": n_rec,
        "spikes": int(z_one.sum()), "flipped": int(differ.sum()),
        "flip_rate_per_spike": float(differ.sum()) / max(float(z_one.sum()), 1.0),
        "samples_with_a_flip": float(samples_hit.float().mean()),
        "members_with_a_flip": int(first.any(1).sum()),
    }


def recurrent_product(k: int, batch: int, n_rec: int, rounds: int, device: str,
                      repeats: int = 50) -> dict[str, Any]:
    """One step's recurrent product ``z[t-1] @ W_rec`` of K members: one ``bmm`` over the
    population against K separate ``mm`` (what K networks alone do), medians of ``rounds``
    timings of ``repeats`` products each, on the current thread setting. ``shared`` is the
    ceiling a population cannot reach: one ``mm`` of all K·batch rows with one weight matrix,
    as if the members shared their weights. GFLOP/s count 2·K·batch·n_rec² floating-point
    operations per product."""
    g = torch.Generator().manual_seed(0)
    z = (torch.rand(k, batch, n_rec, generator=g) < 0.1).float().to(device)
    w = (torch.randn(k, n_rec, n_rec, generator=g) / n_rec**0.5).to(device)
    flat = z.reshape(k * batch, n_rec)

    class Product:
        def __init__(self, how: str) -> None:
            self.how = how

        def step(self, xs: torch.Tensor, ys: torch.Tensor) -> None:
            for _ in range(repeats):
                if self.how == "population":
                    torch.bmm(z, w)
                elif self.how == "shared":
                    torch.mm(flat, w[0])
                else:
                    for i in range(k):
                        torch.mm(z[i], w[i])

    t = time_steps({how: Product(how) for how in ("alone", "population", "shared")}, z, z,
                   rounds, device)
    flops = 2.0 * k * batch * n_rec * n_rec * repeats
    return {"members": k, "batch": batch, "n_rec": n_rec,
            "weights_mib": k * n_rec * n_rec * 4 / 2**20,
            "alone_gflops": flops / t["alone"] / 1e9,
            "population_gflops": flops / t["population"] / 1e9,
            "shared_gflops": flops / t["shared"] / 1e9,
            "ratio": t["alone"] / t["population"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--n-rec", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--rules", nargs="+", default=["eprop", "bptt"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = [speed(k, b, n, rule, args.rounds, args.device)
            for rule in args.rules for n in args.n_rec for b in args.batches
            for k in args.members]
    mixed = [mixed_neurons(max(args.members), b, 128, args.rounds, args.device)
             for b in args.batches]
    flips = [float32_flips(max(args.members), b, n, args.device)
             for n in args.n_rec for b in args.batches]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    products = [recurrent_product(max(args.members), b, n, args.rounds, args.device)
                for n in args.n_rec for b in args.batches]
    torch.set_num_threads(threads)
    if args.json:
        print(json.dumps({"speed": rows, "mixed_neurons": mixed, "float32_flips": flips,
                          "recurrent_product": products,
                          "threads": args.threads, "device": args.device,
                          "torch": torch.__version__}, indent=2))
        return
    print(f"# one training step, T={STEPS}, N_in={N_IN}, N_out={N_OUT}, "
          f"{args.threads} thread(s), {args.device}, torch {torch.__version__}; medians of "
          f"{args.rounds} interleaved rounds")
    print("| rule | K | batch | N_rec | one by one, samples/s | population, samples/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rule = "fused e-prop" if r["rule"] == "eprop" else "BPTT"
        print(f"| {rule} | {r['members']} | {r['batch']} | {r['n_rec']} | "
              f"{r['alone_samples_per_s']:,.0f} | {r['population_samples_per_s']:,.0f} | "
              f"{r['ratio']:.2f}x |")
    print("\n# LIF and ALIF members (half each), fused e-prop: one mixed population or two")
    for m in mixed:
        print(f"K {m['members']}, batch {m['batch']}, N_rec {m['n_rec']}: mixed "
              f"{m['mixed_samples_per_s']:,.0f} samples/s, grouped "
              f"{m['grouped_samples_per_s']:,.0f} samples/s")
    print("\n# float32: spikes that differ between the population and each network alone")
    for f in flips:
        print(f"K {f['members']}, batch {f['batch']}, N_rec {f['n_rec']}: {f['flipped']} of "
              f"{f['spikes']} spikes ({f['flip_rate_per_spike']:.2e}); samples with any flip "
              f"{f['samples_with_a_flip']:.1%}; members with any flip "
              f"{f['members_with_a_flip']}/{f['members']}")
    print("\n# one step's recurrent product z @ W_rec, one thread: K members as one bmm or "
          "one by one")
    print("| K | batch | N_rec | weights, MiB | one by one, GFLOP/s | bmm, GFLOP/s | ratio | "
          "shared weights (ceiling), GFLOP/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in products:
        print(f"| {p['members']} | {p['batch']} | {p['n_rec']} | {p['weights_mib']:.1f} | "
              f"{p['alone_gflops']:.1f} | {p['population_gflops']:.1f} | {p['ratio']:.2f}x | "
              f"{p['shared_gflops']:.1f} |")


if __name__ == "__main__":
    main()
