"""Legendre Memory Units: the LMU (Voelker, Kajić, Eliasmith, NeurIPS 2019) and its spiking
version, the L²MU (Leto, Urgese, Macii, Fra; ICANN 2024, NICE 2025).

The memory is the linear system that keeps a sliding window of length ``theta`` of its input
``u`` as the coefficients of ``u``'s projection on shifted Legendre polynomials::

    theta dm/dt = A m + B u,   A[i, j] = (2i + 1) (-1 if i < j else (-1)^(i - j + 1)),
                               B[i]    = (2i + 1) (-1)^i
    u(t - theta') ~ sum_i P_i(2 theta'/theta - 1) m_i(t),   0 <= theta' <= theta

(``P_i`` the Legendre polynomials; at ``theta' = 0`` the weights are ``(-1)^i``, at
``theta' = theta`` all ones). A step of ``dt`` seconds holding ``u`` constant is exact with
zero-order hold: ``m[t] = Abar m[t-1] + Bbar u[t]`` (:func:`discretise`). Times are in
seconds (``theta``, ``dt``); ``theta / dt`` is the window in steps.

A cell has ``memory_size`` memory channels of ``order`` dimensions each, and ``Abar``,
``Bbar`` act on each channel alone. The channels are stored flat, channel-major: neuron
``k * order + i`` is dimension ``i`` of channel ``k``.

LMU, one step (:func:`lmu_step`)::

    u[t] = e_x x[t] + e_h h[t-1] + e_m m[t-1]          (memory_size)
    m[t] = Abar m[t-1] + Bbar u[t]                      (per channel)
    h[t] = tanh(W_x x[t] + W_h h[t-1] + W_m m[t])       (hidden_size)

L²MU, one step (:func:`l2mu_step`): u, m and h are populations of LIF neurons, each with its
own decay ``beta`` and threshold ``Theta`` (learnable tensors, clipped to [0, 1] for beta as
snnTorch does)::

    U[t] = beta U[t-1] + I[t] - Theta S[t-1],   S[t] = H(U[t] - Theta)

    I_u[t] = e_x x[t] + e_h S_h[t-1] + e_m S_m[t-1]
    I_m[t] = Abar S_m[t-1] + Bbar S_u[t]                (per channel)
    I_h[t] = W_x x[t] + W_h S_h[t-1] + W_m S_m[t]

Update order within a step (the LMU's, and the published L²MU's): first u, from the input
and the hidden and memory spikes of the previous step; then m, from its own previous spikes
and the encoder spikes *of this step*; then h, from the input, its own previous spikes and
the memory spikes *of this step*. So an input reaches h in the same step, through W_x and
through u -> m. The readout follows h, also in the same step: ``leaky`` (a non-spiking
leaky integrator ``y[t] = beta_out y[t-1] + W_out S_h[t] + b``) or ``spiking`` (one more LIF
population on that current; its spikes are the readout).

The step functions are the dynamics; the modules (:class:`LMU`, :class:`L2MU`, both a
:class:`~spiketune.snn.Model`, so :class:`~spiketune.snn.Trainer` trains them by BPTT and
checkpoints rebuild them) own the weights and run the loop, projecting the input of all
steps with one product up front and applying the readout to the whole trajectory after it.
For the L²MU's plain simulation and BPTT training the module takes a fused path instead
(:class:`_L2MUBPTT`): the same update, written into preallocated buffers without autograd,
with its backward pass written out. Tests hold both paths equal, spikes and gradients.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
import torch
from torch import Tensor, nn

from spiketune.errors import ConfigError, Problem
from spiketune.snn._filters import leaky_filter, leaky_filter_loop
from spiketune.snn._loss import ReadoutLoss
from spiketune.snn._model import Model, check_keys, check_steps, seeded_generator
from spiketune.snn._stats import SpikeCounts
from spiketune.snn._surrogate import SpikeFn, Surrogate, heaviside, spike_function

READOUTS = ("leaky", "spiking")
POPULATIONS = ("u", "m", "h", "out")


# -- the Legendre delay system -----------------------------------------------------------------
def legendre_matrices(order: int) -> tuple[np.ndarray, np.ndarray]:
    """``A`` (order, order) and ``B`` (order,), float64, of ``theta dm/dt = A m + B u``.

    Dimensionless: the time scale is ``theta`` (seconds), applied by :func:`discretise`.
    """
    _check_order(order)
    q = np.arange(order, dtype=np.float64)
    r = (2 * q + 1)[:, None]
    i, j = np.meshgrid(q, q, indexing="ij")
    a = np.where(i < j, -1.0, (-1.0) ** (i - j + 1)) * r
    b = (-1.0) ** q * (2 * q + 1)
    return a, b


def discretise(
    a: np.ndarray | Tensor, b: np.ndarray | Tensor, theta: float, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order hold of ``theta dm/dt = A m + B u`` for a step of ``dt`` seconds.

    ``theta`` and ``dt`` in seconds. Returns ``Abar`` (order, order) and ``Bbar`` (order,),
    float64, with ``m[t] = Abar m[t-1] + Bbar u[t]`` exact when ``u`` is constant over the
    step: both are blocks of ``expm([[A, B], [0, 0]] dt / theta)``.
    """
    problems = _check_times(theta, dt)
    if problems:
        raise ConfigError(problems)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    n = a.shape[0]
    if a.shape != (n, n) or b.shape != (n,):
        raise ValueError(f"A must be square and B a vector of its size, got {a.shape}, {b.shape}")
    aug = np.zeros((n + 1, n + 1))
    aug[:n, :n] = a / theta
    aug[:n, n] = b / theta
    import scipy.linalg  # here, not at the top: it costs every trial process 0.2 s to import

    e = scipy.linalg.expm(aug * dt)
    return e[:n, :n], e[:n, n].copy()


# -- parameter records -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LMUParameters:
    """The fixed memory of a cell: ``memory_size`` channels of ``order`` Legendre dimensions,
    a window of ``theta`` seconds, steps of ``dt`` seconds."""

    order: int
    theta: float
    dt: float
    memory_size: int = 1

    def __post_init__(self) -> None:
        problems = self._check()
        if problems:
            raise ConfigError(problems)
        # numpy's integers and floats are accepted, and kept as Python's (configs, JSON)
        for name, kind in (("order", int), ("memory_size", int), ("theta", float),
                           ("dt", float)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def _check(self) -> list[Problem]:
        problems = [Problem(name, value, "an integer >= 1")
                    for name, value in (("order", self.order), ("memory_size", self.memory_size))
                    if not _is_count(value)]
        return problems + _check_times(self.theta, self.dt)

    @property
    def n_memory(self) -> int:
        """Memory neurons (or dimensions): ``memory_size * order``."""
        return self.memory_size * self.order

    @functools.cached_property
    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(Abar, Bbar)`` of one channel, float64 (:func:`discretise`), computed once."""
        return discretise(*legendre_matrices(self.order), self.theta, self.dt)

    def memory_operators(
        self, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> tuple[Tensor, Tensor]:
        """``Abar`` and ``Bbar`` for all channels at once, transposed for ``state @ op``.

        Returns ``kron(I, Abar).T`` (n_memory, n_memory) and ``kron(I, Bbar).T`` (memory_size,
        n_memory). Block-diagonal and mostly zeros: one dense product per step is one call
        instead of one per channel, and for memories of up to a few hundred neurons it is
        about as fast as ``W_m``'s product of the same width. The fused path applies larger
        memories channel by channel (``_PER_CHANNEL_FROM``), where the dense product's
        n_memory^2 dominates a step.
        """
        abar, bbar = self.matrices
        eye = np.eye(self.memory_size)
        a_t = np.kron(eye, abar).T
        b_t = np.kron(eye, bbar[:, None]).T
        return (torch.as_tensor(a_t, dtype=dtype, device=device).contiguous(),
                torch.as_tensor(b_t, dtype=dtype, device=device).contiguous())


@dataclass(frozen=True, kw_only=True)
class L2MUParameters(LMUParameters):
    """The LMU's memory plus how spikes reset: ``detach_reset`` stops the gradient through the
    reset term ``-Theta S[t-1]`` (what snnTorch, and so the published L²MU, does)."""

    detach_reset: bool = True

    def _check(self) -> list[Problem]:
        problems = super()._check()
        if not isinstance(self.detach_reset, bool):
            problems.append(Problem("detach_reset", self.detach_reset, "true or false"))
        return problems


# -- weights and states ------------------------------------------------------------------------
class LMUWeights(NamedTuple):
    """Learnable matrices in ``nn.Linear``'s layout (fan_out, fan_in); M = memory_size,
    H = hidden_size, n_memory = M * order."""

    e_x: Tensor  # (M, n_in)
    e_h: Tensor  # (M, H)
    e_m: Tensor  # (M, n_memory)
    w_x: Tensor  # (H, n_in)
    w_h: Tensor  # (H, H)
    w_m: Tensor  # (H, n_memory)


class L2MUWeights(NamedTuple):
    """The LMU's matrices plus each population's decay per step and threshold (0-d tensors,
    or any shape that broadcasts over the population's neurons)."""

    e_x: Tensor
    e_h: Tensor
    e_m: Tensor
    w_x: Tensor
    w_h: Tensor
    w_m: Tensor
    beta_u: Tensor
    beta_m: Tensor
    beta_h: Tensor
    threshold_u: Tensor
    threshold_m: Tensor
    threshold_h: Tensor


class LMUState(NamedTuple):
    """Memory ``m`` (batch, n_memory), flat and channel-major; hidden ``h`` (batch, H)."""

    m: Tensor
    h: Tensor


class L2MUState(NamedTuple):
    """Membranes ``v_*`` and spikes ``z_*`` after a step, per population (batch, n)."""

    v_u: Tensor
    v_m: Tensor
    v_h: Tensor
    z_u: Tensor
    z_m: Tensor
    z_h: Tensor


def lmu_initial_state(
    p: LMUParameters, batch: int, hidden_size: int, *, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> LMUState:
    """Empty memory, zero hidden state."""
    return LMUState(torch.zeros(batch, p.n_memory, dtype=dtype, device=device),
                    torch.zeros(batch, hidden_size, dtype=dtype, device=device))


def l2mu_initial_state(
    p: LMUParameters, batch: int, hidden_size: int, *, dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> L2MUState:
    """Every neuron at rest, no spike."""

    def zeros(n: int) -> Tensor:
        return torch.zeros(batch, n, dtype=dtype, device=device)

    sizes = (p.memory_size, p.n_memory, hidden_size)
    return L2MUState(*(zeros(n) for n in sizes), *(zeros(n) for n in sizes))


# -- one step ----------------------------------------------------------------------------------
class _Operators(NamedTuple):
    """What the step multiplies by, transposed once per forward pass (``state @ w_t``)."""

    e_h_t: Tensor
    e_m_t: Tensor
    w_h_t: Tensor
    w_m_t: Tensor
    a_t: Tensor  # kron(I, Abar).T
    b_t: Tensor  # kron(I, Bbar).T
    memory: _Memory | None = None  # the memory channel by channel (LMU module, large memories)


def _operators(w: LMUWeights | L2MUWeights, a_t: Tensor, b_t: Tensor) -> _Operators:
    return _Operators(w.e_h.t(), w.e_m.t(), w.w_h.t(), w.w_m.t(), a_t, b_t)


def lmu_step(x: Tensor, state: LMUState, weights: LMUWeights, params: LMUParameters) -> LMUState:
    """One LMU step for input ``x`` (batch, n_in); returns the new state (module docstring)."""
    a_t, b_t = params.memory_operators(dtype=x.dtype, device=x.device)
    ops = _operators(weights, a_t, b_t)
    return _lmu_core(x @ weights.e_x.t(), x @ weights.w_x.t(), state, ops)


def _lmu_core(xu: Tensor, xh: Tensor, s: LMUState, k: _Operators) -> LMUState:
    """One LMU step given the input's projections ``e_x x`` and ``W_x x``."""
    u = torch.addmm(torch.addmm(xu, s.h, k.e_h_t), s.m, k.e_m_t)
    c = k.memory
    if c is None:
        m = torch.addmm(torch.mm(s.m, k.a_t), u, k.b_t)
    else:  # Abar^T and Bbar on each channel alone (see _PER_CHANNEL_FROM)
        rows = torch.mm(s.m.reshape(-1, c.order), c.forward).view(*u.shape, c.order)
        m = torch.addcmul(rows, u.unsqueeze(-1), c.bbar).view_as(s.m)
    h = torch.addmm(torch.addmm(xh, s.h, k.w_h_t), m, k.w_m_t).tanh_()
    return LMUState(m, h)


class _Neurons(NamedTuple):
    """Decay (already clipped to [0, 1]) and threshold of one population."""

    beta: Tensor
    threshold: Tensor


def l2mu_step(
    x: Tensor, state: L2MUState, weights: L2MUWeights, params: L2MUParameters,
    spike: SpikeFn = heaviside,
) -> L2MUState:
    """One L²MU step for input ``x`` (batch, n_in); returns the new state.

    ``spike(v, threshold)``: :func:`heaviside` to simulate, a surrogate-gradient function
    (:func:`spike_function`) under autograd. Update order: see the module docstring.
    """
    a_t, b_t = params.memory_operators(dtype=x.dtype, device=x.device)
    ops = _operators(weights, a_t, b_t)
    w = weights
    pops = tuple(
        _Neurons(beta.clamp(0.0, 1.0), thr)
        for beta, thr in ((w.beta_u, w.threshold_u), (w.beta_m, w.threshold_m),
                          (w.beta_h, w.threshold_h))
    )
    return _l2mu_core(x @ w.e_x.t(), x @ w.w_x.t(), state, ops, pops, spike, params.detach_reset)


def _l2mu_core(
    xu: Tensor, xh: Tensor, s: L2MUState, k: _Operators, pops: tuple[_Neurons, ...],
    spike: SpikeFn, detach_reset: bool,
) -> L2MUState:
    """One L²MU step given the input's projections ``e_x x`` and ``W_x x``: u, then m, then h."""
    nu, nm, nh = pops
    i_u = torch.addmm(torch.addmm(xu, s.z_h, k.e_h_t), s.z_m, k.e_m_t)
    v_u, z_u = _lif(i_u, s.v_u, s.z_u, nu, spike, detach_reset)
    i_m = torch.addmm(torch.mm(s.z_m, k.a_t), z_u, k.b_t)
    v_m, z_m = _lif(i_m, s.v_m, s.z_m, nm, spike, detach_reset)
    i_h = torch.addmm(torch.addmm(xh, s.z_h, k.w_h_t), z_m, k.w_m_t)
    v_h, z_h = _lif(i_h, s.v_h, s.z_h, nh, spike, detach_reset)
    return L2MUState(v_u, v_m, v_h, z_u, z_m, z_h)


def _lif(
    i: Tensor, v: Tensor, z: Tensor, n: _Neurons, spike: SpikeFn, detach_reset: bool
) -> tuple[Tensor, Tensor]:
    """``U = beta U[t-1] + I - Theta S[t-1]``, ``S = spike(U, Theta)``: each population's step."""
    reset = z.detach() if detach_reset else z
    # in place on addcmul's fresh output: its backward needs only its inputs
    v = torch.addcmul(i, n.beta, v).addcmul_(reset, n.threshold, value=-1.0)
    return v, spike(v, n.threshold)


def _leaky_integrate(c: Tensor, beta: Tensor, chunk: int = 32) -> Tensor:
    """``y[t] = beta y[t-1] + c[t]`` along the first (time) axis, differentiable in ``c`` and
    in the 0-d ``beta``.

    Inside a chunk of ``C`` steps the recursion is one product with the ``C x C`` matrix
    ``beta^(t-s)``; only the chunk boundaries are carried step by step (as in
    :mod:`spiketune.snn._filters`, which takes a fixed float decay). The powers come from a
    cumulative product, whose gradient is finite even at ``beta = 0``.
    """
    n_steps = c.shape[0]
    if c.numel() == 0:  # no steps, or an empty batch
        return c.clone()
    size = min(chunk, n_steps)
    n_chunks = -(-n_steps // size)
    flat = c.reshape(n_steps, -1)
    pad = n_chunks * size - n_steps
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad, flat.shape[1])])
    blocks = flat.reshape(n_chunks, size, -1)
    powers = torch.cumprod(beta.reshape(1).expand(size), 0)  # beta^1 .. beta^C
    with_one = torch.cat([powers.new_ones(1), powers])
    idx = torch.arange(size, device=c.device)
    lag = idx[:, None] - idx[None, :]
    kernel = with_one[lag.clamp(min=0)] * (lag >= 0).to(c.dtype)
    inner = torch.matmul(kernel, blocks)
    out: list[Tensor] = []
    carry: Tensor | None = None
    for block in inner.unbind(0):
        if carry is not None:
            block = torch.addcmul(block, powers[:, None], carry[None, :])
        carry = block[-1]
        out.append(block)
    return torch.cat(out)[:n_steps].reshape(c.shape)


# -- the fused path ----------------------------------------------------------------------------
_CHUNK = 32  # steps the fused path projects, differentiates and reduces at once
#: Multiply-adds per step (batch x n_memory^2) from which the fused path applies the memory's
#: ``Abar`` and ``Bbar`` channel by channel instead of as the dense block-diagonal
#: ``kron(I, Abar)``. Why: that matrix is ``memory_size`` times larger than its blocks, and at
#: 16 x 70 memory neurons its product took 40 % of a training step. A product channel by
#: channel costs a fixed 20-40 us (small odd shapes are slow in BLAS), the dense one grows as
#: n_memory^2: measured on one core they cross near batch 16 x 300 memory neurons.
_PER_CHANNEL_FROM = 1_500_000


class _Memory(NamedTuple):
    """One channel's ``Abar`` and ``Bbar``, for the memory taken channel by channel: rows
    ``(batch * memory_size, order)`` times ``forward`` (``Abar^T``, less ``Theta_m`` on the
    diagonal for the reset) or ``backward`` (``Abar``, less ``Theta_m`` on the diagonal only
    where the reset is differentiated), and ``bbar`` (order,)."""

    order: int
    forward: Tensor
    backward: Tensor
    bbar: Tensor

    @classmethod
    def of(cls, a_t: Tensor, b_t: Tensor, n_u: int, batch: int, reset: float,
           backward_reset: float) -> _Memory | None:
        """The channel matrices from the dense ``a_t`` (kron(I, Abar^T)) and ``b_t``, or None
        when the dense product is the cheaper (:data:`_PER_CHANNEL_FROM`)."""
        n_m = a_t.shape[0]
        if batch * n_m * n_m < _PER_CHANNEL_FROM or n_u < 2:
            return None
        order = n_m // n_u
        block = a_t[:order, :order]  # Abar^T
        eye = torch.eye(order, dtype=a_t.dtype, device=a_t.device)
        return cls(order, (block - reset * eye).contiguous(),
                   (block.t() - backward_reset * eye).contiguous(),
                   b_t[0, :order].contiguous())

    def apply(self, rows: Tensor, matrix: Tensor, out: Tensor) -> Tensor:
        """``rows`` (batch, n_memory) times ``matrix`` channel by channel, into ``out``
        (batch * memory_size, order); returns it viewed (batch, n_memory)."""
        torch.mm(rows.reshape(-1, self.order), matrix, out=out)
        return out.view(rows.shape[0], -1)


class _Layout(NamedTuple):
    """Columns of a step's row ``[m | u | h]`` in the fused path's buffers."""

    m: slice
    u: slice
    h: slice

    @classmethod
    def of(cls, n_m: int, n_u: int, n_h: int) -> _Layout:
        return cls(slice(0, n_m), slice(n_m, n_m + n_u), slice(n_m + n_u, n_m + n_u + n_h))


def _l2mu_forward_buffers(
    x: Tensor, e_x: Tensor, w_x: Tensor, e_h: Tensor, e_m: Tensor, w_h: Tensor, w_m: Tensor,
    a_t: Tensor, b_t: Tensor, beta_m: Tensor, beta_u: Tensor, beta_h: Tensor, thr_m: Tensor,
    thr_u: Tensor, thr_h: Tensor,
) -> tuple[Tensor, Tensor]:
    """The L²MU's loop on time-major ``x`` (T, B, n_in) without autograd, into buffers.

    The same dynamics as :func:`_l2mu_core` (tests hold them equal), rearranged to cost ten
    operations a step: the spikes and membranes of a step are rows ``[m | u | h]`` of ``Z``
    and ``V``; the reset ``-Theta z[t-1]`` is a diagonal folded into the product each
    population computes anyway, and the leak ``beta v[t-1]`` is that product's ``beta`` term.
    The input's projections ``e_x x``, ``W_x x`` are one product per chunk of steps. Returns
    ``Z`` and ``V``, (T + 1, B, N); row 0 is the rest state, row t + 1 the state after step t.
    """
    n_steps, batch, _ = x.shape
    n_u, n_h, n_m = e_x.shape[0], w_x.shape[0], a_t.shape[0]
    lay = _Layout.of(n_m, n_u, n_h)
    bm, bu, bh, tm, tu, th = map(_number, (beta_m, beta_u, beta_h, thr_m, thr_u, thr_h))
    z = x.new_empty(n_steps + 1, batch, n_m + n_u + n_h)
    v = torch.empty_like(z)
    z[0] = 0.0  # every later row is written whole by the loop
    v[0] = 0.0

    def eye(n: int) -> Tensor:
        return torch.eye(n, dtype=x.dtype, device=x.device)

    # u reads the whole previous row: e_m z_m + (-Theta_u) z_u + e_h z_h
    w_u = torch.cat([e_m.t(), -tu * eye(n_u), e_h.t()]).contiguous()
    memory = _Memory.of(a_t, b_t, n_u, batch, tm, 0.0)
    w_mm = None if memory is not None else (a_t - tm * eye(n_m)).contiguous()
    scratch = None if memory is None else x.new_empty(batch * n_u, memory.order)
    w_hh = (w_h.t() - th * eye(n_h)).contiguous()
    w_mh = w_m.t().contiguous()
    w_in = torch.cat([e_x, w_x]).t().contiguous()
    proj = x.new_empty(min(_CHUNK, n_steps), batch, n_u + n_h)
    zr = z.unbind(0)
    zm, zu, zh = (z[..., sl].unbind(0) for sl in lay)
    vm, vu, vh = (v[..., sl].unbind(0) for sl in lay)
    thr = [torch.tensor(c, dtype=x.dtype, device=x.device) for c in (tm, tu, th)]
    for start in range(0, n_steps, _CHUNK):
        stop = min(start + _CHUNK, n_steps)
        p = torch.matmul(x[start:stop], w_in, out=proj[: stop - start])
        xu, xh = p[..., :n_u].unbind(0), p[..., n_u:].unbind(0)
        for t in range(start, stop):
            torch.addmm(vu[t], zr[t], w_u, beta=bu, out=vu[t + 1]).add_(xu[t - start])
            torch.gt(vu[t + 1], thr[1], out=zu[t + 1])
            if memory is None:
                torch.addmm(vm[t], zm[t], w_mm, beta=bm, out=vm[t + 1]).addmm_(zu[t + 1], b_t)
            else:
                product = memory.apply(zm[t], memory.forward, scratch)
                torch.add(product, vm[t], alpha=bm, out=vm[t + 1])
                vm[t + 1].view(batch, n_u, -1).addcmul_(zu[t + 1].unsqueeze(-1), memory.bbar)
            torch.gt(vm[t + 1], thr[0], out=zm[t + 1])
            torch.addmm(vh[t], zh[t], w_hh, beta=bh, out=vh[t + 1]).addmm_(zm[t + 1], w_mh)
            vh[t + 1].add_(xh[t - start])
            torch.gt(vh[t + 1], thr[2], out=zh[t + 1])
    return z, v


class _L2MUBPTT(torch.autograd.Function):
    """BPTT through the L²MU cell, with the backward pass written out.

    Forward: :func:`_l2mu_forward_buffers`; returns the spikes of m, u, h (T, B, n) (views of
    one buffer) and the membranes ``V`` (T + 1, B, N), not differentiable. Backward, with
    ``g[t] = dL/dv[t]`` (= dL/dI[t]), ``psi`` the surrogate at ``v - Theta`` and ``D[t] =
    dL/dz[t]`` (the spikes' total gradient), walked from the last step back, h before m
    before u (the reverse of the update order)::

        g[t] = D[t] psi[t] + beta g[t+1]
        D_h[t] = dL/dz_h[t] + e_h^T g_u[t+1] + W_h^T g_h[t+1]
        D_m[t] = dL/dz_m[t] + e_m^T g_u[t+1] + Abar^T g_m[t+1] + W_m^T g_h[t]
        D_u[t] = dL/dz_u[t] + Bbar^T g_m[t]
        (each D_p[t] also - Theta_p g_p[t+1] when the reset is not detached)

    The gradients of the weights are sums over steps of ``g`` times what it met (``dW_h =
    sum_t g_h[t] z_h[t-1]^T``), ``dbeta = sum g[t] v[t-1]``, ``dTheta = -sum g[t] z[t-1] -
    sum D psi`` with ``sum_t D[t] psi[t] = sum_t (g[t] - beta g[t+1])``. All are taken a
    chunk of steps at a time, as products over the chunk, so that ``g`` is only ever held for
    one chunk: nothing of the size of the whole run is allocated (and first touched) here.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, e_x: Tensor, w_x: Tensor, e_h: Tensor, e_m: Tensor, w_h: Tensor,
        w_m: Tensor, a_t: Tensor, b_t: Tensor, beta_m: Tensor, beta_u: Tensor, beta_h: Tensor,
        thr_m: Tensor, thr_u: Tensor, thr_h: Tensor, surrogate: Surrogate, detach_reset: bool,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        z, v = _l2mu_forward_buffers(x, e_x, w_x, e_h, e_m, w_h, w_m, a_t, b_t, beta_m, beta_u,
                                     beta_h, thr_m, thr_u, thr_h)
        ctx.save_for_backward(x, e_x, w_x, e_h, e_m, w_h, w_m, a_t, b_t, z, v)
        ctx.constants = list(map(_number, (beta_m, beta_u, beta_h, thr_m, thr_u, thr_h)))
        ctx.surrogate, ctx.detach_reset = surrogate, detach_reset
        ctx.shapes = [c.shape for c in (beta_m, beta_u, beta_h, thr_m, thr_u, thr_h)]
        ctx.set_materialize_grads(False)  # spikes nothing reads get None, not zeros
        ctx.mark_non_differentiable(v)
        lay = _Layout.of(a_t.shape[0], e_x.shape[0], w_x.shape[0])
        return z[1:, :, lay.m], z[1:, :, lay.u], z[1:, :, lay.h], v

    @staticmethod
    def backward(
        ctx: Any, up_m: Tensor | None, up_u: Tensor | None, up_h: Tensor | None, _: Any
    ) -> tuple[Tensor | None, ...]:
        x, e_x, w_x, e_h, e_m, w_h, w_m, a_t, b_t, z, v = ctx.saved_tensors
        bm, bu, bh, tm, tu, th = ctx.constants
        n_rows, batch, n = z.shape
        n_steps, n_u, n_h, n_m = n_rows - 1, e_x.shape[0], w_x.shape[0], a_t.shape[0]
        lay = _Layout.of(n_m, n_u, n_h)
        thr = torch.cat([z.new_full((n_m,), tm), z.new_full((n_u,), tu), z.new_full((n_h,), th)])
        r_h = torch.cat([e_h, w_h])  # [g_u | g_h][t+1] -> D_h[t]
        memory = _Memory.of(a_t, b_t, n_u, batch, 0.0, 0.0 if ctx.detach_reset else tm)
        # [g_m | g_u][t+1] -> D_m[t]; channel by channel, g_m's share apart
        r_m = torch.cat([a_t.t(), e_m]) if memory is None else e_m
        if not ctx.detach_reset:
            r_h[n_u:].diagonal().sub_(th)
            if memory is None:
                r_m[:n_m].diagonal().sub_(tm)
        b_tt = b_t.t()
        scratch = None if memory is None else z.new_empty(batch * n_u, memory.order)
        ups = [None if a is None else a.unbind(0) for a in (up_m, up_u, up_h)]
        needs = ctx.needs_input_grad
        # accumulated over chunks: d e_x, d W_x, d e_h, d e_m, d W_h, d W_m
        acc = [torch.zeros_like(w) for w in (e_x, w_x, e_h, e_m, w_h, w_m)]
        sums = z.new_zeros(3, n)  # per column: sum g v[t-1], sum g z[t-1], sum g
        grad_x = torch.empty_like(x) if needs[0] else None
        size = min(_CHUNK, max(n_steps, 1))
        g_buf = z.new_empty(size + 1, batch, n)  # g of a chunk's steps, then g[stop]
        psi = z.new_empty(size, batch, n)
        g_buf[-1] = 0.0  # g[T]: nothing after the last step
        for stop in range(n_steps, 0, -_CHUNK):
            start = max(stop - _CHUNK, 0)
            k_end = stop - start
            if k_end < size:  # the first chunk is the short one: move g[stop] to its row
                g_buf[k_end] = g_buf[size]
            g_chunk = g_buf[: k_end + 1]
            # psi of the chunk's steps: their membranes are rows start+1 .. stop
            p = psi[:k_end]
            ctx.surrogate.derivative(torch.sub(v[start + 1 : stop + 1], thr, out=p), 1.0,
                                     inplace=True)
            pm, pu, ph = (p[..., sl].unbind(0) for sl in lay)
            gm, gu, gh = (g_chunk[..., sl].unbind(0) for sl in lay)
            g_uh = g_chunk[..., lay.u.start :].unbind(0)
            g_mu = g_chunk[..., : lay.u.stop].unbind(0)
            for k in range(k_end - 1, -1, -1):
                t = start + k
                d_h = _addmm(ups[2], t, g_uh[k + 1], r_h)
                torch.mul(d_h, ph[k], out=gh[k]).add_(gh[k + 1], alpha=bh)
                if memory is None:
                    d_m = _addmm(ups[0], t, g_mu[k + 1], r_m).addmm_(gh[k], w_m)
                else:
                    d_m = _addmm(ups[0], t, gu[k + 1], r_m).addmm_(gh[k], w_m)
                    d_m.add_(memory.apply(gm[k + 1], memory.backward, scratch))
                torch.mul(d_m, pm[k], out=gm[k]).add_(gm[k + 1], alpha=bm)
                if memory is None:
                    d_u = _addmm(ups[1], t, gm[k], b_tt)
                else:
                    d_u = torch.mv(gm[k].reshape(-1, memory.order), memory.bbar).view(batch, n_u)
                    if ups[1] is not None:
                        d_u.add_(ups[1][t])
                if not ctx.detach_reset:
                    d_u.add_(gu[k + 1], alpha=-tu)
                torch.mul(d_u, pu[k], out=gu[k]).add_(gu[k + 1], alpha=bu)
            _reduce_chunk(g_buf[:k_end], x[start:stop], z[start : stop + 1], v[start:stop],
                          lay, acc, sums, p)
            if grad_x is not None:
                g_flat = g_buf[:k_end].reshape(-1, n)
                gx = grad_x[start:stop].view(-1, x.shape[2])
                torch.mm(g_flat[:, lay.u], e_x, out=gx).addmm_(g_flat[:, lay.h], w_x)
            g_buf[size] = g_buf[0]  # g[start], the next chunk's g[stop]

        first = g_buf[size]  # g[0]
        betas, thresholds = [], []
        for sl, beta in zip(lay, (bm, bu, bh), strict=True):
            s_v, s_z, s_g = sums[:, sl].sum(1)
            betas.append(s_v)
            thresholds.append(-s_z - (s_g - beta * (s_g - first[:, sl].sum())))
        weights = [a if need else None for a, need in zip(acc, needs[1:7], strict=True)]
        scalars = [c.reshape(shape) for c, shape in zip(betas + thresholds, ctx.shapes,
                                                        strict=True)]
        return (grad_x, *weights, None, None, *scalars, None, None)


class _LIFSequence(torch.autograd.Function):
    """One LIF population over a whole run, driven by a known current ``c`` (T, B, n): the
    spiking readout. The same update as :func:`_lif`; the backward pass written out, as in
    :class:`_L2MUBPTT` (``g[t] = D[t] psi[t] + beta g[t+1]``, a linear recursion backwards,
    so one filter over the run when the reset is detached)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, c: Tensor, beta: Tensor, thr: Tensor, surrogate: Surrogate,
        detach_reset: bool,
    ) -> tuple[Tensor, Tensor]:
        ctx.constants = (_number(beta), _number(thr))
        z, v = _lif_sequence(c, *ctx.constants)
        ctx.save_for_backward(z, v)
        ctx.surrogate, ctx.detach_reset = surrogate, detach_reset
        ctx.shapes = (beta.shape, thr.shape)
        ctx.mark_non_differentiable(v)
        return z[1:], v

    @staticmethod
    def backward(ctx: Any, up: Tensor, _: Any) -> tuple[Tensor | None, ...]:
        z, v = ctx.saved_tensors
        beta, thr = ctx.constants
        psi = ctx.surrogate.derivative(v[1:] - thr, 1.0, inplace=True)
        if ctx.detach_reset:
            g = leaky_filter(up * psi, beta, reverse=True)
        else:  # D[t] = up[t] - thr g[t+1]: g[t] = up psi + (beta - thr psi[t]) g[t+1]
            decay = torch.mul(psi, -thr).add_(beta)
            g = leaky_filter_loop(up * psi, decay, reverse=True)
        total = g.sum()
        d_beta = torch.sum(g * v[:-1])
        d_thr = -torch.sum(g * z[:-1]) - (total - beta * (total - g[0].sum()))
        return g, d_beta.reshape(ctx.shapes[0]), d_thr.reshape(ctx.shapes[1]), None, None


def _lif_sequence(c: Tensor, beta: float, thr: float) -> tuple[Tensor, Tensor]:
    """Spikes and membranes (T + 1, B, n) of a LIF population driven by ``c``; row 0 at rest."""
    n_steps = c.shape[0]
    z = c.new_empty(n_steps + 1, *c.shape[1:])
    v = torch.empty_like(z)
    z[0] = 0.0
    v[0] = 0.0
    zr, vr, cr = z.unbind(0), v.unbind(0), c.unbind(0)
    threshold = torch.tensor(thr, dtype=c.dtype, device=c.device)
    for t in range(n_steps):
        torch.add(cr[t], vr[t], alpha=beta, out=vr[t + 1]).add_(zr[t], alpha=-thr)
        torch.gt(vr[t + 1], threshold, out=zr[t + 1])
    return z, v


def _reduce_chunk(
    g: Tensor, x: Tensor, z: Tensor, v: Tensor, lay: _Layout, acc: list[Tensor], sums: Tensor,
    scratch: Tensor,
) -> None:
    """Add one chunk's share to the weight gradients ``acc`` and the column sums ``sums``.

    ``g`` (C, B, N) the chunk's ``dL/dv``, ``x`` (C, B, n_in) its input, ``z`` (C + 1, B, N)
    the spikes from the step before the chunk to its last, ``v`` (C, B, N) the membranes
    before each step; ``scratch`` (C, B, N) may be overwritten.
    """
    n = g.shape[-1]
    g2, zp = g.reshape(-1, n), z[:-1].reshape(-1, n)
    g_u, g_h = g2[:, lay.u].t(), g2[:, lay.h].t()
    x2 = x.reshape(-1, x.shape[-1])
    acc[0].addmm_(g_u, x2)
    acc[1].addmm_(g_h, x2)
    acc[2].addmm_(g_u, zp[:, lay.h])
    acc[3].addmm_(g_u, zp[:, lay.m])
    acc[4].addmm_(g_h, zp[:, lay.h])
    acc[5].addmm_(g_h, z[1:].reshape(-1, n)[:, lay.m])
    s = scratch[: g.shape[0]]
    sums[0] += torch.mul(g, v, out=s).sum((0, 1))
    sums[1] += torch.mul(g, z[:-1], out=s).sum((0, 1))
    sums[2] += g.sum((0, 1))


def _addmm(up: tuple[Tensor, ...] | None, t: int, a: Tensor, b: Tensor) -> Tensor:
    """``up[t] + a @ b``, or ``a @ b`` when nothing flows in from above."""
    return torch.mm(a, b) if up is None else torch.addmm(up[t], a, b)


# -- modules -----------------------------------------------------------------------------------
class LMUTrajectory(NamedTuple):
    """An LMU forward pass, time-major: ``x`` (T, B, n_in), ``m`` (T, B, n_memory), ``h``
    (T, B, H), ``y`` (T, B, n_out); ``final`` the state after the last step."""

    x: Tensor
    m: Tensor
    h: Tensor
    y: Tensor
    final: LMUState

    @property
    def readout(self) -> Tensor:
        """The readout batch-first, (B, T, n_out)."""
        return self.y.transpose(0, 1)


class L2MUTrajectory(NamedTuple):
    """An L²MU forward pass, time-major: input ``x`` (T, B, n_in); spikes ``z_u`` (T, B, M),
    ``z_m`` (T, B, n_memory), ``z_h`` (T, B, H); readout ``y`` (T, B, n_out): the leaky
    integrator's potential, or the output population's spikes (then ``v_out`` holds its
    membrane, else None); ``final`` the state after the last step."""

    x: Tensor
    z_u: Tensor
    z_m: Tensor
    z_h: Tensor
    y: Tensor
    v_out: Tensor | None
    final: L2MUState

    @property
    def readout(self) -> Tensor:
        """The readout batch-first, (B, T, n_out)."""
        return self.y.transpose(0, 1)

    @property
    def spikes(self) -> dict[str, Tensor]:
        """Each population's spikes, batch-first (B, T, n): ``u``, ``m``, ``h`` and, with a
        spiking readout, ``out``."""
        pops = {"u": self.z_u, "m": self.z_m, "h": self.z_h}
        if self.v_out is not None:
            pops["out"] = self.y
        return {k: z.transpose(0, 1) for k, z in pops.items()}


class _LegendreCell(Model):
    """What the LMU and L²MU modules share: sizes, weights, the input projection, the loss,
    the config.

    Initialisation as in keras-lmu and the published L²MU: encoders of the input and hidden
    state LeCun-uniform, the memory's encoder zero, the kernels ``W_*`` Glorot-normal, the
    readout like ``nn.Linear``. Drawn on the CPU in float64 from ``seed``, so that a seed gives
    the same weights on every device and dtype.
    """

    memory_a_t: Tensor
    memory_b_t: Tensor
    #: The config keys that shape the learnt weights (see ``Model.architecture``).
    _ARCHITECTURE: ClassVar[tuple[str, ...]] = (
        "n_in", "n_out", "order", "memory_size", "hidden_size", "readout_bias",
    )

    def __init__(
        self, params: LMUParameters, n_in: int, n_out: int, hidden_size: int,
        readout_bias: bool, loss: ReadoutLoss, seed: int | None, dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> None:
        super().__init__()
        problems = _size_problems(n_in, n_out, hidden_size, dtype, readout_bias)
        if problems:
            raise ConfigError(problems)
        self.params = params
        self.n_in, self.n_out, self.hidden_size = int(n_in), int(n_out), int(hidden_size)
        n_in, n_out, hidden_size = self.n_in, self.n_out, self.hidden_size
        self._readout_loss = loss
        gen = seeded_generator(seed)

        def param(w: Tensor) -> nn.Parameter:
            return nn.Parameter(w.to(device=device, dtype=dtype))

        def lecun_uniform(rows: int, cols: int) -> nn.Parameter:
            bound = math.sqrt(3.0 / cols)
            return param((torch.rand(rows, cols, generator=gen, dtype=torch.float64) * 2 - 1)
                         * bound)

        def glorot_normal(rows: int, cols: int) -> nn.Parameter:
            std = math.sqrt(2.0 / (rows + cols))
            return param(torch.randn(rows, cols, generator=gen, dtype=torch.float64) * std)

        m, n_mem, h = params.memory_size, params.n_memory, hidden_size
        self.e_x = lecun_uniform(m, n_in)
        self.e_h = lecun_uniform(m, h)
        self.e_m = param(torch.zeros(m, n_mem, dtype=torch.float64))
        self.w_x = glorot_normal(h, n_in)
        self.w_h = glorot_normal(h, h)
        self.w_m = glorot_normal(h, n_mem)
        bound = 1.0 / math.sqrt(h)
        self.w_out = param((torch.rand(n_out, h, generator=gen, dtype=torch.float64) * 2 - 1)
                           * bound)
        self.b_out: nn.Parameter | None = None
        if readout_bias:
            self.b_out = param((torch.rand(n_out, generator=gen, dtype=torch.float64) * 2 - 1)
                               * bound)
        a_t, b_t = params.memory_operators(dtype=dtype, device=device)
        # Fixed, derived from params: not learnt, not saved, but moved by .to() with the rest.
        self.register_buffer("memory_a_t", a_t, persistent=False)
        self.register_buffer("memory_b_t", b_t, persistent=False)

    # -- the Model interface ------------------------------------------------------------------
    @property
    def dt(self) -> float:  # type: ignore[override]
        """The step, seconds."""
        return self.params.dt

    def readout_loss(self) -> ReadoutLoss:
        return self._readout_loss

    def to_config(self) -> dict[str, Any]:
        p = self.params
        return {
            "n_in": self.n_in, "n_out": self.n_out, "order": p.order, "theta": p.theta,
            "dt": p.dt, "memory_size": p.memory_size, "hidden_size": self.hidden_size,
            "readout_bias": self.b_out is not None, "loss": self._readout_loss.kind,
            "loss_steps": self._readout_loss.steps,
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Self:
        if not isinstance(config, Mapping):
            raise ConfigError(Problem("config", type(config).__name__, "a mapping"))
        signature = inspect.signature(cls.__init__).parameters
        names = {k for k in signature if k not in ("self", "seed", "dtype", "device")}
        required = {k for k in names if signature[k].default is inspect.Parameter.empty}
        problems = check_keys(config, names, required)
        if problems:
            raise ConfigError(problems, source=f"{cls.__name__} config")
        return cls(**cls._arguments(config), seed=0, dtype=dtype, device=device)

    @classmethod
    def _arguments(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Constructor arguments from a config's plain values."""
        return dict(config)

    def architecture(self) -> dict[str, Any]:
        config = self.to_config()
        return {k: config[k] for k in self._ARCHITECTURE}

    # -- pieces of the forward pass -------------------------------------------------------------
    def prepare_input(self, x: Tensor) -> Tensor:
        """Check a batch-first input (B, T, n_in); return it time-major, contiguous, in the
        module's dtype and device. An empty batch gives empty results; no time steps is a
        DataError, as for a :class:`~spiketune.snn.RecurrentSNN`."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.n_in:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(Problem("input", shape, f"shape (batch, steps, {self.n_in})"))
        check_steps(x)
        return x.to(device=self.w_x.device, dtype=self.w_x.dtype).transpose(0, 1).contiguous()

    def _projections(self, xt: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """``e_x x[t]`` and ``W_x x[t]`` of every step: one product each, then per-step views.
        (unbind rather than indexing: under autograd, T indexings would each scatter back
        into a whole (T, B, n) gradient.)"""
        return (torch.matmul(xt, self.e_x.t()).unbind(0),
                torch.matmul(xt, self.w_x.t()).unbind(0))

    def _operators(self) -> _Operators:
        return _Operators(self.e_h.t(), self.e_m.t(), self.w_h.t(), self.w_m.t(),
                          self.memory_a_t, self.memory_b_t)

    def _linear_readout(self, z: Tensor) -> Tensor:
        """``W_out z[t] + b`` for time-major ``z`` (T, B, H), as one product."""
        flat = z.reshape(-1, z.shape[-1])
        y = (torch.mm(flat, self.w_out.t()) if self.b_out is None
             else torch.addmm(self.b_out, flat, self.w_out.t()))
        return y.view(*z.shape[:-1], y.shape[-1])


class LMU(_LegendreCell):
    """The (non-spiking) Legendre Memory Unit with a linear readout of the hidden state.

    ``theta`` (window) and ``dt`` (step) in seconds. Owns ``e_x`` (M, n_in), ``e_h`` (M, H),
    ``e_m`` (M, n_memory), ``w_x`` (H, n_in), ``w_h`` (H, H), ``w_m`` (H, n_memory), ``w_out``
    (n_out, H) and ``b_out`` (n_out, absent without ``readout_bias``); the memory's Abar and
    Bbar are fixed buffers built from ``params``. ``loss`` and ``loss_steps``: the training
    loss and the decision window, as :class:`~spiketune.snn.ReadoutLoss` takes them.

    The non-spiking baseline: it has no spike counts, so no spike statistics or synaptic
    operations (``spike_counts`` is None), and no hardware layout.
    """

    name: ClassVar[str] = "LMU"

    def __init__(
        self, n_in: int, n_out: int, *, order: int, theta: float, dt: float,
        memory_size: int = 1, hidden_size: int = 64, readout_bias: bool = True,
        loss: str = "ce_per_step", loss_steps: int | None = None,
        seed: int | None = 0, dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        params, problems = _parameters(LMUParameters, order=order, theta=theta, dt=dt,
                                       memory_size=memory_size)
        problems += _size_problems(n_in, n_out, hidden_size, dtype, readout_bias)
        readout_loss, more = _parameters(ReadoutLoss, kind=loss, steps=loss_steps)
        problems += more
        if problems:
            raise ConfigError(problems)
        super().__init__(params, n_in, n_out, hidden_size, readout_bias, readout_loss, seed,
                         dtype, device)

    def weights(self) -> LMUWeights:
        """The learnable matrices as the record :func:`lmu_step` takes."""
        return LMUWeights(self.e_x, self.e_h, self.e_m, self.w_x, self.w_h, self.w_m)

    def simulate(self, x: Tensor, *, state: LMUState | None = None) -> LMUTrajectory:
        """Run on batch-first ``x`` (B, T, n_in) from ``state`` (default: empty memory)."""
        xt = self.prepare_input(x)
        n_steps, batch, _ = xt.shape
        s = state or lmu_initial_state(self.params, batch, self.hidden_size, dtype=xt.dtype,
                                       device=xt.device)
        ops = self._operators()
        ops = ops._replace(memory=_Memory.of(ops.a_t, ops.b_t, self.params.memory_size, batch,
                                             0.0, 0.0))
        ms, hs = [], []
        for xu, xh in zip(*self._projections(xt), strict=True):
            s = _lmu_core(xu, xh, s, ops)
            ms.append(s.m)
            hs.append(s.h)
        m, h = _stack(ms, s.m, n_steps), _stack(hs, s.h, n_steps)
        return LMUTrajectory(x=xt, m=m, h=h, y=self._linear_readout(h), final=s)

    def simulate_for_bptt(self, x: Tensor) -> LMUTrajectory:
        """:meth:`simulate`, which is differentiable as it is."""
        return self.simulate(x)

    def forward(self, x: Tensor) -> Tensor:
        """Readout (B, T, n_out) for batch-first input; differentiable."""
        return self.simulate(x).readout

    def extra_repr(self) -> str:
        p = self.params
        return (f"n_in={self.n_in}, n_out={self.n_out}, order={p.order}, theta={p.theta}, "
                f"dt={p.dt}, memory_size={p.memory_size}, hidden_size={self.hidden_size}")


class L2MU(_LegendreCell):
    """The L²MU: an LMU whose encoder, memory and hidden state are populations of LIF neurons.

    ``theta`` (window) and ``dt`` (step) in seconds. ``beta`` (decay per step, in [0, 1]) and
    ``threshold`` (> 0) are the initial values of each population's learnable scalars: one
    number for all populations, or a mapping over ``u``, ``m``, ``h`` and ``out`` (the readout;
    its threshold is used only by a spiking readout); populations not named get ``0.9`` and
    ``1.0``. ``readout``: ``leaky`` or ``spiking`` (module docstring). Owns the LMU's matrices
    (see :class:`LMU`) and ``beta_<pop>``, ``threshold_<pop>``.

    Under autograd the spikes' pseudo-derivative is ``surrogate``, by default the arctan of
    snnTorch's default (``atan``, alpha 2: ``1 / (1 + (pi (v - Theta))^2)``). Its width is in
    membrane units, not relative to the threshold, since the thresholds are learnt.
    ``loss`` and ``loss_steps``: as for :class:`LMU`.

    Spike statistics (:meth:`spike_counts`) count the input events and the spikes of ``u``,
    ``m`` and ``h``; a spiking readout's spikes are the output, not counted (they cost no
    synaptic operation). In the config, ``beta`` and ``threshold`` are the initial values
    per population; the learnt ones are weights, in the state dict.
    """

    name: ClassVar[str] = "L2MU"
    _ARCHITECTURE: ClassVar[tuple[str, ...]] = (*_LegendreCell._ARCHITECTURE, "readout")

    def __init__(
        self, n_in: int, n_out: int, *, order: int, theta: float, dt: float,
        memory_size: int = 1, hidden_size: int = 64,
        beta: float | Mapping[str, float] = 0.9, threshold: float | Mapping[str, float] = 1.0,
        readout: str = "leaky", readout_bias: bool = True, detach_reset: bool = True,
        surrogate: Surrogate | None = None, loss: str = "ce_per_step",
        loss_steps: int | None = None, seed: int | None = 0,
        dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
    ) -> None:
        params, problems = _parameters(L2MUParameters, order=order, theta=theta, dt=dt,
                                       memory_size=memory_size, detach_reset=detach_reset)
        problems += _size_problems(n_in, n_out, hidden_size, dtype, readout_bias)
        betas, thresholds, more = _population_constants(beta, threshold)
        problems += more
        if readout not in READOUTS:
            problems.append(Problem("readout", readout, "one of " + ", ".join(READOUTS)))
        if surrogate is not None and not isinstance(surrogate, Surrogate):
            problems.append(Problem("surrogate", surrogate, "a Surrogate"))
        readout_loss, more = _parameters(ReadoutLoss, kind=loss, steps=loss_steps)
        problems += more
        if problems:
            raise ConfigError(problems)
        super().__init__(params, n_in, n_out, hidden_size, readout_bias, readout_loss, seed,
                         dtype, device)
        self.params: L2MUParameters = params  # type: ignore[assignment]
        self.readout_kind = readout
        self.surrogate = surrogate or Surrogate("arctan", slope=2.0, dampening=1.0)
        self._initial = {"beta": betas, "threshold": thresholds}
        for pop in POPULATIONS:
            if pop == "out" and readout == "leaky":
                self.register_parameter("threshold_out", None)
            else:
                self.register_parameter(
                    f"threshold_{pop}",
                    nn.Parameter(torch.tensor(thresholds[pop], dtype=dtype, device=device)))
            self.register_parameter(
                f"beta_{pop}", nn.Parameter(torch.tensor(betas[pop], dtype=dtype, device=device)))

    def weights(self) -> L2MUWeights:
        """The learnable tensors of the cell as the record :func:`l2mu_step` takes."""
        return L2MUWeights(
            self.e_x, self.e_h, self.e_m, self.w_x, self.w_h, self.w_m,
            self.beta_u, self.beta_m, self.beta_h,
            self.threshold_u, self.threshold_m, self.threshold_h,
        )

    def simulate(
        self, x: Tensor, *, spike_fn: SpikeFn | Surrogate = heaviside,
        state: L2MUState | None = None,
    ) -> L2MUTrajectory:
        """Run on batch-first ``x`` (B, T, n_in) from ``state`` (default: at rest).

        ``spike_fn``: :func:`heaviside` simulates (no gradient through the spikes); a
        :class:`Surrogate` trains by BPTT with that pseudo-derivative (width in membrane
        units, as :func:`spike_function` with ``v_th=1``); any other ``SpikeFn`` is used as
        given. The first two, from rest, take the fused path (:class:`_L2MUBPTT`): the loop
        writes into preallocated buffers without autograd and the backward pass is written
        out, its weight gradients one product per chunk of steps. The rest, and any run from
        a given ``state``, go step by step through :func:`l2mu_step`'s dynamics under autograd.
        Both give the same spikes and, for the same surrogate, the same gradients.
        """
        xt = self.prepare_input(x)
        fused = state is None and (spike_fn is heaviside or isinstance(spike_fn, Surrogate))
        if fused:
            z_u, z_m, z_h, s = self._run_fused(xt, spike_fn)
        else:
            if isinstance(spike_fn, Surrogate):
                spike_fn = spike_function(spike_fn, 1.0)
            z_u, z_m, z_h, s = self._run_steps(xt, spike_fn, state)
        current = self._linear_readout(z_h)
        v_out = None
        if self.readout_kind == "leaky":
            y = _leaky_integrate(current, self.beta_out.clamp(0.0, 1.0))
        else:
            y, v_out = self._spiking_readout(current, spike_fn)
        return L2MUTrajectory(x=xt, z_u=z_u, z_m=z_m, z_h=z_h, y=y, v_out=v_out, final=s)

    def forward(self, x: Tensor) -> Tensor:
        """Readout (B, T, n_out) for batch-first input; differentiable through the surrogate."""
        spike = self.surrogate if torch.is_grad_enabled() else heaviside
        return self.simulate(x, spike_fn=spike).readout

    def simulate_for_bptt(self, x: Tensor) -> L2MUTrajectory:
        """:meth:`simulate` through ``surrogate``: the fused path with its written-out
        backward pass."""
        return self.simulate(x, spike_fn=self.surrogate)

    def spike_counts(self, trajectory: L2MUTrajectory) -> SpikeCounts:
        """Input events and the spikes of each neuron of ``u``, ``m``, ``h`` (in that order,
        named in ``populations``), summed over samples and steps."""
        tr = trajectory
        spikes = torch.cat([z.detach().sum((0, 1), dtype=torch.float64)
                            for z in (tr.z_u, tr.z_m, tr.z_h)])
        return SpikeCounts(
            input_events=torch.count_nonzero(tr.x, dim=(0, 1)).to(torch.float64).cpu(),
            spikes=spikes.cpu(),
            n_samples=int(tr.x.shape[1]),
            n_steps=int(tr.x.shape[0]),
            populations=(("u", self.params.memory_size), ("m", self.params.n_memory),
                         ("h", self.hidden_size)),
        )

    def to_config(self) -> dict[str, Any]:
        return {
            **super().to_config(), "readout": self.readout_kind,
            "detach_reset": self.params.detach_reset, "surrogate": asdict(self.surrogate),
            "beta": dict(self._initial["beta"]), "threshold": dict(self._initial["threshold"]),
        }

    @classmethod
    def _arguments(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(config)
        surrogate = out.get("surrogate")
        if isinstance(surrogate, Mapping):
            fields = {"name", "slope", "dampening"}
            problems = [Problem(f"surrogate.{k}", v, "unknown; known: dampening, name, slope")
                        for k, v in surrogate.items() if k not in fields]
            if problems:
                raise ConfigError(problems, source=f"{cls.__name__} config")
            out["surrogate"] = Surrogate(**surrogate)
        return out

    def _run_steps(
        self, xt: Tensor, spike_fn: SpikeFn, state: L2MUState | None
    ) -> tuple[Tensor, Tensor, Tensor, L2MUState]:
        """The loop over :func:`l2mu_step`'s dynamics, under autograd."""
        n_steps, batch, _ = xt.shape
        s = state or l2mu_initial_state(self.params, batch, self.hidden_size, dtype=xt.dtype,
                                        device=xt.device)
        ops = self._operators()
        pops = tuple(self._neurons(p) for p in ("u", "m", "h"))
        detach = self.params.detach_reset
        zu, zm, zh = [], [], []
        for xu, xh in zip(*self._projections(xt), strict=True):
            s = _l2mu_core(xu, xh, s, ops, pops, spike_fn, detach)
            zu.append(s.z_u)
            zm.append(s.z_m)
            zh.append(s.z_h)
        return (_stack(zu, s.z_u, n_steps), _stack(zm, s.z_m, n_steps),
                _stack(zh, s.z_h, n_steps), s)

    def _run_fused(
        self, xt: Tensor, spike_fn: SpikeFn | Surrogate
    ) -> tuple[Tensor, Tensor, Tensor, L2MUState]:
        """The fused path (:class:`_L2MUBPTT`): spikes of u, m, h and the final state."""
        pops = [self._neurons(p) for p in ("m", "u", "h")]
        args = (xt, self.e_x, self.w_x, self.e_h, self.e_m, self.w_h, self.w_m, self.memory_a_t,
                self.memory_b_t, *(n.beta for n in pops), *(n.threshold for n in pops))
        lay = _Layout.of(self.params.n_memory, self.params.memory_size, self.hidden_size)
        if isinstance(spike_fn, Surrogate) and torch.is_grad_enabled():
            z_m, z_u, z_h, v = _L2MUBPTT.apply(*args, spike_fn, self.params.detach_reset)
        else:
            with torch.no_grad():
                z, v = _l2mu_forward_buffers(*args)
            z_m, z_u, z_h = (z[1:, :, sl] for sl in lay)
        last_z = [a[-1].detach() if a.shape[0] else v.new_zeros(a.shape[1:])
                  for a in (z_u, z_m, z_h)]
        final = L2MUState(v[-1, :, lay.u], v[-1, :, lay.m], v[-1, :, lay.h], *last_z)
        return z_u, z_m, z_h, final

    def fan_out(self) -> dict[str, Tensor]:
        """Non-zero outgoing synapses of each input channel and neuron, per population
        (``x``, ``u``, ``m``, ``h``; float64, CPU): the cost of one spike in synaptic
        operations (``sum(spikes * fan_out)``)."""
        with torch.no_grad():
            def nz(*ws: Tensor) -> Tensor:
                return sum((w != 0).sum(0) for w in ws).to(torch.float64).cpu()  # type: ignore[return-value]

            return {"x": nz(self.e_x, self.w_x), "u": nz(self.memory_b_t.t()),
                    "m": nz(self.e_m, self.memory_a_t.t(), self.w_m),
                    "h": nz(self.e_h, self.w_h, self.w_out)}

    def synops(self, trajectory: L2MUTrajectory) -> float:
        """Synaptic operations per sample of a forward pass: every input event and spike costs
        one operation per non-zero outgoing weight (readout spikes cost none)."""
        fan = self.fan_out()
        events = {"x": trajectory.x != 0, "u": trajectory.z_u, "m": trajectory.z_m,
                  "h": trajectory.z_h}
        total = sum(float(e.detach().to(torch.float64).sum((0, 1)).cpu() @ fan[k])
                    for k, e in events.items())
        return total / max(int(trajectory.x.shape[1]), 1)

    def _neurons(self, pop: str) -> _Neurons:
        return _Neurons(getattr(self, f"beta_{pop}").clamp(0.0, 1.0),
                        getattr(self, f"threshold_{pop}"))

    def _spiking_readout(
        self, current: Tensor, spike_fn: SpikeFn | Surrogate
    ) -> tuple[Tensor, Tensor]:
        """The output population, after the loop: its input is known for every step.
        Returns its spikes and membranes, (T, B, n_out)."""
        n = self._neurons("out")
        detach = self.params.detach_reset
        if spike_fn is heaviside or isinstance(spike_fn, Surrogate):
            if isinstance(spike_fn, Surrogate) and torch.is_grad_enabled():
                z, v = _LIFSequence.apply(current, n.beta, n.threshold, spike_fn, detach)
                return z, v[1:]
            with torch.no_grad():
                z, v = _lif_sequence(current, _number(n.beta), _number(n.threshold))
            return z[1:], v[1:]
        v = torch.zeros_like(current[0])
        z = torch.zeros_like(current[0])
        vs, zs = [], []
        for i in current.unbind(0):
            v, z = _lif(i, v, z, n, spike_fn, detach)
            vs.append(v)
            zs.append(z)
        return torch.stack(zs), torch.stack(vs)

    def extra_repr(self) -> str:
        p = self.params
        return (f"n_in={self.n_in}, n_out={self.n_out}, order={p.order}, theta={p.theta}, "
                f"dt={p.dt}, memory_size={p.memory_size}, hidden_size={self.hidden_size}, "
                f"readout={self.readout_kind}")


# -- helpers -----------------------------------------------------------------------------------
def _number(t: Tensor) -> float:
    """A one-element tensor as a Python number (the fused path's decays and thresholds are
    per population: a product's ``beta`` argument and the ``alpha`` of an add)."""
    return float(t.detach())


def _stack(items: list[Tensor], last: Tensor, n_steps: int) -> Tensor:
    """Stack per-step tensors along a new time axis; (0, ...) when there were no steps."""
    if n_steps == 0:
        return last.new_zeros(0, *last.shape)
    return torch.stack(items)


def _parameters(cls: type[Any], **kw: Any) -> tuple[Any, list[Problem]]:
    """``cls(**kw)``, or None and its problems: a module reports them with its own."""
    try:
        return cls(**kw), []
    except ConfigError as error:
        return None, list(error.problems)


def _is_count(value: object) -> bool:
    """An integer >= 1: Python's or numpy's (``np.int64`` from an array or a search space, as
    :class:`~spiketune.snn.SNNConfig` takes them), never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _is_real(value: object) -> bool:
    """A finite real number, Python's or numpy's, not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _size_problems(
    n_in: object, n_out: object, hidden_size: object, dtype: object, readout_bias: object
) -> list[Problem]:
    problems = [
        Problem(name, value, "an integer >= 1")
        for name, value in (("n_in", n_in), ("n_out", n_out), ("hidden_size", hidden_size))
        if not _is_count(value)
    ]
    if dtype not in (torch.float32, torch.float64):
        problems.append(Problem("dtype", str(dtype), "torch.float32 or torch.float64"))
    if not isinstance(readout_bias, bool):  # "no" would be truthy: a bias nobody asked for
        problems.append(Problem("readout_bias", readout_bias, "true or false"))
    return problems


def _check_order(order: object) -> None:
    if not _is_count(order):
        raise ConfigError(Problem("order", order, "an integer >= 1"))


def _check_times(theta: object, dt: object) -> list[Problem]:
    problems = []
    for name, value, what in (("theta", theta, "a window"), ("dt", dt, "a step")):
        ok = _is_real(value) and value > 0  # type: ignore[operator]
        if not ok:
            problems.append(Problem(name, value, f"{what} in seconds, greater than 0"))
    return problems


def _population_constants(
    beta: float | Mapping[str, float], threshold: float | Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float], list[Problem]]:
    """Each population's initial decay and threshold, and what is wrong with them."""
    problems: list[Problem] = []

    def per_population(name: str, value: float | Mapping[str, float], default: float
                       ) -> dict[str, float]:
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(POPULATIONS))
            problems.extend(Problem(f"{name}.{k}", value[k], "one of the populations "
                                    + ", ".join(POPULATIONS)) for k in unknown)
            return {p: value.get(p, default) for p in POPULATIONS}
        return dict.fromkeys(POPULATIONS, value)

    betas = per_population("beta", beta, 0.9)
    thresholds = per_population("threshold", threshold, 1.0)
    for p in POPULATIONS:
        b, t = betas[p], thresholds[p]
        if _is_real(b) and 0.0 <= b <= 1.0:
            betas[p] = float(b)
        else:
            problems.append(Problem(f"beta.{p}", b, "a decay per step in [0, 1]"))
        # finite, as SNNConfig's v_th: an infinite threshold is a population that never fires
        if _is_real(t) and t > 0:
            thresholds[p] = float(t)
        else:
            problems.append(Problem(f"threshold.{p}", t, "a finite number greater than 0"))
    return betas, thresholds, problems
