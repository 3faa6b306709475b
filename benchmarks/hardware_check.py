"""Hardware-target figures: cost of the design-rule check, and a Xylo-sized Braille network
after 8-bit quantisation and through a NIR file.

    .venv/bin/python benchmarks/hardware_check.py [--epochs 15] [--seed 0]

Part 1 times :func:`spiketune.hardware.check_design` (and the import it needs) in a fresh
process. Part 2 (skipped without ``../shared/data/braille``) trains a LIF network that fits
Xylo Audio 2 (12 merged input channels, 40 hidden neurons, 7 outputs, reset by subtraction)
with BPTT on the reduced Braille task, then reports validation/test accuracy before and
after quantisation to the target's 8 bits (input and recurrent weights on one grid per tensor
or per channel, as the target says; with and without rounding the decays to bit shifts),
the activity figures, and whether the exported NIR graph, read back from its file and run by
spiketune's NIR simulator, gives the same spikes and predictions on the test split.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "braille"

_TIMING = """
import time
t0 = time.perf_counter()
from spiketune.hardware import check_design, constraints_from
t1 = time.perf_counter()
n = 20000
for i in range(n):
    constraints_from(check_design("xylo-audio2", 12, 1 + i % 2000, 7, neuron="alif"))
t2 = time.perf_counter()
import sys
print(f"{t1 - t0:.3f} {(t2 - t1) / n * 1e6:.2f} {'torch' in sys.modules}")
"""


def timing() -> None:
    cmd = [sys.executable, "-c", _TIMING]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    imp, per_call, torch_loaded = out.stdout.split()
    print(f"design check: import {float(imp) * 1e3:.0f} ms (torch imported: {torch_loaded}), "
          f"{per_call} us per check_design + constraints_from")


def braille(epochs: int, seed: int) -> None:
    import numpy as np
    import torch

    import spiketune.nir
    from spiketune.data import load_braille, stratified_split
    from spiketune.hardware import assess_network, check_config
    from spiketune.snn import RecurrentSNN, SNNConfig, TrainConfig, Trainer, predict

    torch.set_num_threads(2)
    data = load_braille(DATA, channels="merged", download=False, progress=False)
    split = stratified_split(data.labels, (0.8, 0.1, 0.1), seed=seed)
    train, val, test = data.split(split)
    cfg = SNNConfig(
        n_in=data.n_inputs, n_rec=40, n_out=data.n_classes, rule="bptt", reset="subtract",
        tau_mem=20e-3, tau_out=20e-3, dt=data.info.dt, gain_in=2.0, loss="ce_summed",
        readout_bias=False,  # Xylo's neurons take no bias
    )
    print(f"data: {len(train)}/{len(val)}/{len(test)} samples, {data.n_steps} steps, "
          f"{data.n_inputs} channels; design violations on xylo-audio2: "
          f"{[str(v) for v in check_config('xylo-audio2', cfg)] or 'none'}")
    net = RecurrentSNN(cfg, seed=seed)
    start = time.perf_counter()
    trainer = Trainer(net, TrainConfig(epochs=epochs, batch_size=64, lr=5e-3, seed=seed))
    trainer.fit((train.inputs, train.labels), (val.inputs, val.labels))
    print(f"trained {epochs} epochs in {time.perf_counter() - start:.0f} s")
    for per_channel, shifts in ((False, False), (True, False), (False, True), (True, True)):
        a = assess_network(
            net, "xylo-audio2", val=val, test=test, per_channel=per_channel, bitshift_decays=shifts
        )
        m = a.metrics
        print(
            f"{'per channel' if per_channel else 'per tensor'}"
            f"{', bit-shift decays' if shifts else ''}: val {m['val_acc']:.3f} -> "
            f"{m['quant_val_acc']:.3f}, test {m['test_acc']:.3f} -> {m['quant_test_acc']:.3f}; "
            f"max spikes/step {m['max_spikes_per_step']:.0f}, "
            f"mean {m['mean_spikes_per_step']:.2f}, "
            f"state bits needed {m['state_bits_needed']:.0f}, fan-in {m['max_fan_in']:.0f}, "
            f"fan-out {m['max_fan_out']:.0f}; "
            f"violations: {[str(v) for v in a.violations] or 'none'}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = spiketune.nir.export(net, Path(tmp) / "braille.nir")
        start = time.perf_counter()
        run = spiketune.nir.simulate(path, test.inputs, record=["hidden.spike"])
        sim_s = time.perf_counter() - start
        size = path.stat().st_size
    with torch.no_grad():
        tr = net.simulate(test.inputs)
    same = np.array_equal(run.records["hidden.spike"], tr.spikes.numpy())
    agree = torch.equal(predict(torch.from_numpy(run.output)), predict(tr.readout))
    print(f"NIR file {size} bytes; simulated {len(test)} test samples in {sim_s:.2f} s; "
          f"identical hidden spikes: {same}; identical predictions: {agree}; "
          f"max |readout difference| {np.abs(run.output - tr.readout.numpy()).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    timing()
    if DATA.is_dir():
        braille(args.epochs, args.seed)
    else:
        print(f"skipped the Braille part: no data at {DATA}")


if __name__ == "__main__":
    main()
