"""Leaky (first-order, exponential) filters along the time axis, time-major ``(T, ...)``.

``forward``:  ``y[t] = u[t] + decay * y[t-1]``  (a leaky integrator: readout, traces)
``reverse``:  ``y[t] = u[t] + decay * y[t+1]``  (the same filter run backwards: adjoints)

With a constant decay the recursion is computed in chunks: inside a chunk of ``C`` steps it is
one product with a ``C x C`` triangular matrix of powers of the decay, and only the ``T / C``
chunk boundaries are carried sequentially. That is a handful of large operations instead of
``T`` small ones, and it is differentiable, so BPTT can use it too.
"""

from __future__ import annotations

import torch
from torch import Tensor

_CHUNK = 32


def leaky_filter(u: Tensor, decay: float, *, reverse: bool = False) -> Tensor:
    """Filter ``u`` (time first) with a constant per-step ``decay`` in [0, 1)."""
    n_steps = u.shape[0]
    if u.numel() == 0 or decay == 0.0:  # an empty batch too: nothing to filter
        return u.clone()
    chunk = min(_CHUNK, n_steps)
    n_chunks = -(-n_steps // chunk)
    pad = n_chunks * chunk - n_steps
    flat = u.reshape(n_steps, -1)
    if pad:
        zeros = flat.new_zeros(pad, flat.shape[1])
        flat = torch.cat([zeros, flat] if reverse else [flat, zeros])
    blocks = flat.reshape(n_chunks, chunk, -1)

    idx = torch.arange(chunk, device=u.device)
    lag = idx[:, None] - idx[None, :]  # t - s
    if reverse:
        lag = -lag
    kernel = torch.where(
        lag >= 0, torch.tensor(decay, dtype=u.dtype, device=u.device).pow(lag.clamp(min=0)), 0.0
    ).to(u.dtype)
    inner = torch.matmul(kernel, blocks)  # (n_chunks, C, F): filtered within each chunk

    # Carry across chunk boundaries: the state leaving a chunk decays into the next one.
    powers = torch.tensor(decay, dtype=u.dtype, device=u.device).pow(idx + 1)  # decay^(1..C)
    if reverse:
        powers = powers.flip(0)
    order = range(n_chunks - 1, -1, -1) if reverse else range(n_chunks)
    out: list[Tensor] = []
    carry: Tensor | None = None
    for c in order:
        block = inner[c]
        if carry is not None:
            block = torch.addcmul(block, powers[:, None], carry[None, :])
        carry = block[0] if reverse else block[-1]
        out.append(block)
    if reverse:
        out.reverse()
    result = torch.cat(out).reshape(n_chunks * chunk, *u.shape[1:])
    if pad:
        result = result[pad:] if reverse else result[:n_steps]
    return result


def leaky_filter_loop(
    u: Tensor, decay: float | Tensor, *, reverse: bool = False, out: Tensor | None = None
) -> Tensor:
    """The same recursion step by step; ``decay`` may vary: a tensor shaped like ``u``, where
    ``decay[t]`` multiplies ``y[t-1]`` (forward) or ``y[t+1]`` (reverse). ``out`` may be ``u``
    itself (in place). One small operation per step: for wide ``u`` this beats the chunked
    products of :func:`leaky_filter`."""
    out = torch.empty_like(u) if out is None else out
    if u.shape[0] == 0:
        return out
    # unbind once: per-step indexing would cost a view construction per access.
    us = u.unbind(0)
    outs = us if out is u else out.unbind(0)
    ds = decay.unbind(0) if isinstance(decay, Tensor) else None
    steps = range(u.shape[0] - 1, -1, -1) if reverse else range(u.shape[0])
    prev: Tensor | None = None
    for t in steps:
        if prev is None:
            if outs[t].data_ptr() != us[t].data_ptr():
                outs[t].copy_(us[t])
        elif ds is not None:
            torch.addcmul(us[t], ds[t], prev, out=outs[t])
        else:
            torch.add(us[t], prev, alpha=decay, out=outs[t])  # type: ignore[arg-type]
        prev = outs[t]
    return out
