"""Scratch tensors reused from one batch to the next.

A fused e-prop step needs a few (T, B, n_rec) tensors. Allocating them afresh for every batch
costs more than the arithmetic on some machines: the C allocator hands blocks of megabytes
back to the operating system when they are freed, so each new one is page-faulted in again.
A :class:`Workspace` keeps them; tensors it hands out are overwritten by its next use.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Workspace:
    """Named, reusable, uninitialised buffers."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        buf = self._buffers.get(name)
        stale = buf is None or buf.shape != shape
        if stale or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf

    def clear(self) -> None:
        self._buffers.clear()
