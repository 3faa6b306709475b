"""Speed and memory of one training step of the SNN core: fused e-prop, online e-prop, BPTT
(autograd and fused).

One step = forward pass + gradients + Adam step, for a recurrent LIF network with
N_in=12, N_rec=128, N_out=7, T=256, batch 64 (the size of the published Braille pipeline), on
the CPU with 2 threads. Timings interleave the four rules round by round in one process, so
a busy machine slows them alike, and report the median (and the best) over the rounds; the
ratios (fused e-prop and fused BPTT against autograd BPTT) are taken from the same run. Peak
memory is measured for each configuration in fresh subprocesses (median of three) as the
growth of peak RSS over one step, after the network and the data exist, with the C allocator
told to return freed blocks to the system (so that RSS tracks live memory); online e-prop is
measured at T=256 and T=1024.

Targets: fused e-prop at least 3x faster than BPTT by autograd (the textbook implementation) in
the same run; online e-prop peak memory at T=1024 within 1.2x of T=256. Fused BPTT's speed-up
over autograd BPTT is printed beside them (same gradients, tested to 1e-10 in float64).

``--shape N_REC BATCH STEPS`` times other sizes instead (a Braille search's trial, e.g.
``--shape 512 8 64 --threads 1``): speeds and ratios only, the targets and the memory
figures are the published size's.

Run: ``.venv/bin/python benchmarks/snn_speed.py`` (``--rounds N``, ``--threads N``,
``--device cuda`` for a GPU, where memory is the peak of ``torch.cuda.max_memory_allocated``,
``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from spiketune.snn import BPTT, RecurrentSNN, SNNConfig, make_rule

N_IN, N_REC, N_OUT, BATCH, STEPS, THREADS = 12, 128, 7, 64, 256, 2
RULES = {"fused e-prop": ("eprop", "fused"), "online e-prop": ("eprop", "online"),
         "BPTT (autograd)": ("bptt", "autograd"), "BPTT (fused)": ("bptt", "fused")}


def _setup(rule: str, mode: str, steps: int, device: str = "cpu", seed: int = 0) -> tuple[Any, ...]:
    torch.manual_seed(seed)
    config = SNNConfig(
        n_in=N_IN, n_rec=N_REC, n_out=N_OUT, rule=rule,
        eprop_mode=mode if rule == "eprop" else "fused", dt=5e-3, tau_mem=0.1, tau_out=0.1,
        gain_in=3.0,
    )
    net = RecurrentSNN(config, seed=seed, device=device)
    x = (torch.rand(BATCH, steps, N_IN) < 0.05).float().to(device)  # ~Braille event density
    labels = torch.randint(0, N_OUT, (BATCH,)).to(device)
    learning_rule = BPTT(mode) if rule == "bptt" else make_rule(config)
    return net, learning_rule, torch.optim.Adam(net.parameters(), lr=1e-3), x, labels


def _train_step(net: Any, rule: Any, opt: Any, x: torch.Tensor, labels: torch.Tensor) -> Any:
    opt.zero_grad(set_to_none=True)
    result = rule.backward(net, x, labels)
    opt.step()
    return result


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_rules(rounds: int, device: str = "cpu", warmup: int = 4) -> dict[str, list[float]]:
    """Seconds per step of every rule, interleaved round by round."""
    setups = {name: _setup(*spec, steps=STEPS, device=device) for name, spec in RULES.items()}
    times: dict[str, list[float]] = {name: [] for name in RULES}
    for r in range(warmup + rounds):
        for name, setup in setups.items():
            if name == "online e-prop" and r % 3 and r >= warmup:
                continue  # online is slow; a third of the rounds gives a stable median
            _sync(device)
            start = time.perf_counter()
            _train_step(*setup)
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(field + ":")))


def memory_probe(rule: str, mode: str, steps: int, threads: int) -> dict[str, float]:
    """Run in a fresh process: peak RSS growth (MB) over one training step.

    Linux keeps the peak RSS of a process; writing 5 to /proc/self/clear_refs resets it, so the
    peak read afterwards belongs to the step alone, not to imports and setup. Where that file
    is missing, the lifetime peak from getrusage is used (an over-estimate of the baseline).
    A step of 8 time steps first sets up the libraries' own scratch space (thread pools,
    matrix-product buffers), which does not depend on the sequence length.
    """
    torch.set_num_threads(threads)
    setup = _setup(rule, mode, steps)
    _train_step(*_setup(rule, mode, 8))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _rss_kb("VmRSS")
        _train_step(*setup)
        after = _rss_kb("VmHWM")
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _train_step(*setup)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_delta_mb": (after - before) / 1024}


def peak_memory_mb(rule: str, mode: str, steps: int, threads: int, device: str) -> float:
    """Peak memory of one step: RSS growth on the CPU (median of 3 fresh processes),
    peak allocated GPU memory on CUDA."""
    if device.startswith("cuda"):
        setup = _setup(rule, mode, steps, device=device)
        _train_step(*setup)  # the optimizer's state exists from here on, as in training
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _train_step(*setup)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    # Every block of 64 KiB or more is mapped from the system and handed back when freed, so
    # RSS follows the live memory: without this the C allocator's reuse of freed blocks makes
    # the peak jump by whole buffers from run to run.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, __file__, "--probe", rule, mode, str(steps), str(threads)],
            check=True, capture_output=True, text=True, env=env,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1])["peak_delta_mb"])
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--shape", nargs=3, type=int, metavar=("N_REC", "BATCH", "STEPS"),
                        help="time these sizes instead (speeds and ratios only)")
    parser.add_argument(
        "--probe", nargs=4, metavar=("RULE", "MODE", "STEPS", "THREADS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.probe:
        rule, mode, steps, threads = args.probe
        print(json.dumps(memory_probe(rule, mode, int(steps), int(threads))))
        return

    torch.set_num_threads(args.threads)
    if args.shape:
        _time_shape(args)
        return
    times = time_rules(args.rounds, args.device)
    memory = {
        name: peak_memory_mb(*spec, STEPS, args.threads, args.device)
        for name, spec in RULES.items()
    }
    online_long = peak_memory_mb("eprop", "online", 4 * STEPS, args.threads, args.device)

    where = (f"CPU, {args.threads} threads" if args.device == "cpu"
             else torch.cuda.get_device_name(args.device))
    report: dict[str, Any] = {"config": {"n_in": N_IN, "n_rec": N_REC, "n_out": N_OUT,
                                         "batch": BATCH, "steps": STEPS, "threads": args.threads,
                                         "device": args.device, "torch": torch.__version__}}
    print(f"one training step, N_in={N_IN} N_rec={N_REC} N_out={N_OUT} T={STEPS} "
          f"batch={BATCH}, {where} (torch {torch.__version__})")
    print(f"{'rule':16s} {'median ms':>10s} {'best ms':>8s} {'samples/s':>10s} {'peak MB':>8s}")
    for name in RULES:
        med, best = statistics.median(times[name]), min(times[name])
        report[name] = {"median_ms": med * 1e3, "best_ms": best * 1e3,
                        "samples_per_s": BATCH / med, "peak_mb": memory[name]}
        print(f"{name:16s} {med * 1e3:10.1f} {best * 1e3:8.1f} {BATCH / med:10.0f} "
              f"{memory[name]:8.1f}")
    autograd = times["BPTT (autograd)"]
    ratio = statistics.median(autograd) / statistics.median(times["fused e-prop"])
    ratio_best = min(autograd) / min(times["fused e-prop"])
    bptt_ratio = statistics.median(autograd) / statistics.median(times["BPTT (fused)"])
    online_mb = memory["online e-prop"]
    mem_ratio = online_long / online_mb
    report.update(fused_speedup_over_bptt=ratio, fused_speedup_best=ratio_best,
                  fused_bptt_speedup=bptt_ratio,
                  online_peak_mb_t1024=online_long, online_memory_ratio=mem_ratio)
    print(f"fused e-prop vs BPTT (autograd): {ratio:.2f}x faster (median), {ratio_best:.2f}x"
          f" (best)   target >= 3x: {'met' if ratio >= 3 else 'NOT met'}")
    print(f"fused BPTT vs BPTT (autograd): {bptt_ratio:.2f}x faster (median)")
    print(f"online e-prop peak memory: T={STEPS}: {online_mb:.1f} MB, "
          f"T={4 * STEPS}: {online_long:.1f} MB, ratio {mem_ratio:.2f}"
          f"   target <= 1.2: {'met' if mem_ratio <= 1.2 else 'NOT met'}")
    if args.json:
        print(json.dumps(report))


def _time_shape(args: argparse.Namespace) -> None:
    """Speeds of every rule at ``args.shape`` and fused BPTT's ratio to autograd BPTT."""
    global N_REC, BATCH, STEPS
    N_REC, BATCH, STEPS = args.shape
    times = time_rules(args.rounds, args.device)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"N_rec={N_REC} batch={BATCH} T={STEPS}, {args.threads} thread(s): " + ", ".join(
        f"{name} {BATCH / med:.0f}" for name, med in medians.items()) + " samples/s; fused "
        f"BPTT {medians['BPTT (autograd)'] / medians['BPTT (fused)']:.2f}x autograd BPTT")
    if args.json:
        print(json.dumps({"shape": args.shape, "threads": args.threads,
                          "samples_per_s": {n: BATCH / m for n, m in medians.items()}}))


if __name__ == "__main__":
    main()
