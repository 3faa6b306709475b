"""Post-training weight quantisation to a target's bit width, as fixed-point chips store weights.

Symmetric, round-to-nearest with clipping: ``q = clip(round(w / s), -qmax, qmax)`` with
``qmax = 2**(bits-1) - 1`` (the most negative code is left unused so the grid is symmetric) and
the scale ``s = max|w| / qmax`` over the whole tensor (per tensor) or over each row, i.e. each
postsynaptic neuron (per channel). ``torch.round`` rounds halves to even. The network keeps
float arithmetic with the dequantised weights ``q * s``: for integer hardware that is the same
network up to the scale, which the chip folds into each neuron's threshold and state.

Biases and thresholds are left in float (they live in the wider neuron-state range), except
with ``shared_hidden_scale``: a chip whose hidden neurons add input and recurrent weights in
one integer membrane (Xylo; Rockpool's ``global_quantize`` scales both together, and the
threshold with them) gets one grid for ``w_in`` and ``w_rec``, and its threshold rounded to a
whole number of steps of that grid (per tensor; per channel, each neuron would need its own
threshold, which a spiketune network does not have, so it is left in float). On a chip
with bit-shift decays (Xylo) the membrane and readout decays can be rounded too: ``alpha``
becomes the nearest ``1 - 2**-k`` in the log domain, ``k = round(log2(1 / (1 - alpha)))``,
``k`` in 0..15.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from spiketune.errors import ConfigError, Problem
from spiketune.hardware._design import is_integer
from spiketune.snn import RecurrentSNN, SNNConfig

__all__ = ["QuantisedNetwork", "bitshift_decay", "quantise_network", "quantise_tensor"]

_WEIGHTS = ("w_in", "w_rec", "w_out")
_MAX_SHIFT = 15


@dataclass(frozen=True)
class QuantisedNetwork:
    """A quantised copy of a network and how it was made.

    ``network``: the copy, with weights ``q * scale`` (the original is untouched);
    ``scales``: per weight name, a 0-d tensor (per tensor) or one scale per row (per channel);
    ``bits``: the weight width; ``decays``: for each decay that was rounded to a bit shift,
    ``(original, rounded)`` per-step factors.
    """

    network: RecurrentSNN
    scales: dict[str, Tensor]
    bits: int
    per_channel: bool
    decays: dict[str, tuple[float, float]] = field(default_factory=dict)

    def integer_weights(self) -> dict[str, Tensor]:
        """The integer codes ``round(w / scale)`` of each quantised weight (int32), within
        ``±qmax``: computed in float64, since float32 cannot hold every code above 24 bits
        (at 31 bits ``qmax = 2**30 - 1`` would round up to ``2**30``)."""
        qmax = 2 ** (self.bits - 1) - 1
        out = {}
        for name, scale in self.scales.items():
            w = getattr(self.network, name).detach().double()
            s = (scale.unsqueeze(-1) if scale.dim() == 1 else scale).double()
            out[name] = torch.round(w / s).clamp(-qmax, qmax).to(torch.int32)
        return out


def quantise_tensor(w: Tensor, bits: int, *, per_channel: bool = False) -> tuple[Tensor, Tensor]:
    """``(q * s, s)`` for a weight ``w`` (rows = postsynaptic neurons) at ``bits`` bits.

    ``s`` is 0-d (per tensor) or has one entry per row (per channel). An all-zero tensor or
    row gets scale 1 (its codes are all 0)."""
    _check_bits(bits)
    bits = int(bits)
    qmax = 2 ** (bits - 1) - 1
    w = w.detach()
    if per_channel:
        amax = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) if w.dim() > 1 else w.abs()
    else:
        amax = w.abs().amax()
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = torch.clamp(torch.round(w / scale), -qmax, qmax)
    return q * scale, scale.reshape(-1) if per_channel else scale.reshape(())


def bitshift_decay(decay: float) -> float:
    """The bit-shift decay ``1 - 2**-k`` nearest to ``decay`` (in log(1 / (1 - decay)))."""
    if not 0.0 <= decay < 1.0:
        raise ConfigError(Problem("decay", decay, "a decay per step in [0, 1)"))
    k = round(math.log2(1.0 / (1.0 - decay)))
    return 1.0 - 2.0 ** -min(max(k, 0), _MAX_SHIFT)


def quantise_network(
    model: RecurrentSNN, bits: int, *, per_channel: bool = False, bitshift_decays: bool = False,
    shared_hidden_scale: bool = False, dtype: torch.dtype | None = None,
) -> QuantisedNetwork:
    """A copy of ``model`` with ``w_in``, ``w_rec`` and ``w_out`` quantised to ``bits`` bits.

    ``bitshift_decays``: also round the membrane decay ``alpha``, the readout decay ``kappa``
    and a CubaLIF's synaptic decay ``alpha_syn`` to bit shifts (see the module docstring). The
    copy is in eval mode on the model's device and dtype. ``shared_hidden_scale``: ``w_in`` and
    ``w_rec`` on one grid and ``v_th`` rounded to it (see the module docstring). ``dtype``: the
    copy's (default the model's); float64 keeps a chip's integer sums exact, so that a membrane
    that sits exactly on a threshold multiple fires as on the chip (float32 may round it below).
    """
    if not isinstance(model, RecurrentSNN):
        raise ConfigError(Problem("model", type(model).__name__, "a RecurrentSNN"))
    _check_bits(bits)
    bits = int(bits)  # numpy's integers too, kept as Python's
    cfg = model.config
    decays: dict[str, tuple[float, float]] = {}
    if bitshift_decays:
        updates: dict[str, float | None] = {}
        rounded_decays = [("tau_mem", "alpha", cfg.decay_mem), ("tau_out", "kappa", cfg.decay_out)]
        if cfg.neuron == "cuba_lif":  # the chip's synaptic decay is a bit shift too
            rounded_decays.append(("tau_syn", "alpha_syn", cfg.decay_syn))
        for tau_key, factor_key, value in rounded_decays:
            rounded = bitshift_decay(value)
            decays[factor_key] = (value, rounded)
            updates |= {tau_key: None, factor_key: rounded}
        cfg = SNNConfig.model_validate({**cfg.model_dump(), **updates})
    ref = model.w_in
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if state.get("w_rec") is not None:
        state["w_rec"] = state["w_rec"] * model.rec_mask  # never used: keep it out of the scale
    scales: dict[str, Tensor] = {}
    names = [n for n in _WEIGHTS if state.get(n) is not None]
    if shared_hidden_scale:
        hidden = [n for n in ("w_in", "w_rec") if n in names]
        joined, scale = quantise_tensor(torch.cat([state[n] for n in hidden], 1), bits,
                                        per_channel=per_channel)
        for name, part in zip(hidden, joined.split([state[n].shape[1] for n in hidden], 1),
                              strict=True):
            state[name], scales[name] = part, scale
        names = [n for n in names if n not in hidden]
        if not per_channel:
            steps = max(1, round(cfg.v_th / float(scale)))
            cfg = SNNConfig.model_validate({**cfg.model_dump(), "v_th": steps * float(scale)})
    for name in names:
        state[name], scales[name] = quantise_tensor(state[name], bits, per_channel=per_channel)
    copy = RecurrentSNN(cfg, seed=0, device=ref.device, dtype=dtype or ref.dtype)
    copy.load_state_dict(state)
    return QuantisedNetwork(copy.eval(), scales, bits, per_channel, decays)


def _check_bits(bits: int) -> None:
    if not (is_integer(bits) and 2 <= bits <= 32):
        raise ConfigError(Problem("weight_bits", bits, "an integer from 2 to 32"))
