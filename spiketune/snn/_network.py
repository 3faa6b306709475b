"""The recurrent spiking network: a thin owner of weights; the time loop is written once here.

Shapes: inputs are batch-first ``(B, T, n_in)`` like the datasets; a :class:`Trajectory` is
time-major ``(T, B, ...)`` because the loop walks time and each step then reads a contiguous
slice. Weights follow ``nn.Linear``'s layout ``(fan_out, fan_in)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from spiketune.errors import ConfigError, Problem
from spiketune.snn._config import SNNConfig
from spiketune.snn._filters import leaky_filter
from spiketune.snn._loss import ReadoutLoss, rate_regularisation
from spiketune.snn._model import Model, check_steps, seeded_generator
from spiketune.snn._neurons import (
    ALIFParameters,
    ALIFState,
    CubaLIFParameters,
    LIFParameters,
    NeuronParameters,
    NeuronState,
    initial_state,
    neuron_step,
)
from spiketune.snn._stats import RECURRENT, SpikeCounts, fan_out
from spiketune.snn._surrogate import SpikeFn, Surrogate, heaviside, spike_function
from spiketune.snn._workspace import Workspace


class Trajectory(NamedTuple):
    """Everything a forward pass produced, time-major.

    ``x`` input (T, B, n_in); ``z`` spikes, ``v`` membrane, ``a`` adaptation (ALIF, else None),
    ``refrac`` refractory steps left after each step (None without a refractory period), all
    (T, B, n_rec); ``y`` readout (T, B, n_out). ``pre`` (T + 1, B, n_in + n_rec), where kept,
    holds in row t what the synapses of step t saw, ``[x[t], z[t-1]]``, and in row T
    ``[0, z[T-1]]`` (``x`` and ``z`` are then views of it).
    """

    x: Tensor
    z: Tensor
    v: Tensor
    a: Tensor | None
    refrac: Tensor | None
    y: Tensor
    pre: Tensor | None = None

    @property
    def readout(self) -> Tensor:
        """The readout batch-first, (B, T, n_out)."""
        return self.y.transpose(0, 1)

    @property
    def spikes(self) -> Tensor:
        """The recurrent layer's spikes batch-first, (B, T, n_rec)."""
        return self.z.transpose(0, 1)


def neuron_parameters(config: SNNConfig) -> NeuronParameters:
    """The neuron record a config describes (decays already per step)."""
    common = {
        "alpha": config.decay_mem, "v_th": config.v_th, "reset": config.reset,
        "refractory_steps": config.refractory_steps, "max_spikes": config.max_spikes,
    }
    if config.neuron == "alif":
        return ALIFParameters(rho=config.decay_adapt, beta=config.beta, **common)
    if config.neuron == "cuba_lif":
        return CubaLIFParameters(alpha_syn=config.decay_syn, **common)
    return LIFParameters(**common)


def surrogate_of(config: SNNConfig) -> Surrogate:
    """The pseudo-derivative a config names."""
    return Surrogate(config.surrogate, config.surrogate_slope, config.surrogate_dampening)


class RecurrentSNN(Model):
    """Input -> one recurrent layer of LIF/ALIF/CubaLIF neurons -> leaky-integrator readout.

    Owns ``w_in`` (n_rec, n_in), ``w_rec`` (n_rec, n_rec; zero diagonal, absent without
    recurrence), ``w_out`` (n_out, n_rec), ``b_out`` (n_out; absent without bias), and for random
    e-prop the fixed ``feedback`` matrix (n_rec, n_out). Initialisation: N(0, gain^2 / fan_in),
    drawn on the CPU from ``seed`` so a seed gives the same weights on every device.
    Every hyperparameter is in its :class:`SNNConfig` (``config``), which also names the
    learning rule (e-prop or BPTT) and the loss.
    """

    name: ClassVar[str] = "RecurrentSNN"
    rec_mask: Tensor
    feedback: Tensor | None

    def __init__(
        self, config: SNNConfig, *, seed: int | None = 0, device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not isinstance(config, SNNConfig):
            raise ConfigError(Problem("config", type(config).__name__, "an SNNConfig"))
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(Problem("dtype", str(dtype), "torch.float32 or torch.float64"))
        self.config = config
        self.neuron_params = neuron_parameters(config)
        self.surrogate = surrogate_of(config)
        gen = seeded_generator(seed)

        def normal(rows: int, cols: int, gain: float) -> nn.Parameter:
            w = torch.randn(rows, cols, generator=gen, dtype=torch.float64) * (gain / cols**0.5)
            return nn.Parameter(w.to(device=device, dtype=dtype))

        n_in, n_rec, n_out = config.n_in, config.n_rec, config.n_out
        self.w_in = normal(n_rec, n_in, config.gain_in)
        self.w_rec: nn.Parameter | None = None
        mask = 1.0 - torch.eye(n_rec, dtype=dtype, device=device)
        self.register_buffer("rec_mask", mask, persistent=False)
        if config.recurrent:
            self.w_rec = normal(n_rec, n_rec, config.gain_rec)
            with torch.no_grad():
                self.w_rec.mul_(self.rec_mask)
        self.w_out = normal(n_out, n_rec, config.gain_out)
        self.b_out: nn.Parameter | None = None
        if config.readout_bias:
            self.b_out = nn.Parameter(torch.zeros(n_out, device=device, dtype=dtype))
        fb = None
        if config.feedback == "random":
            fb = torch.randn(n_rec, n_out, generator=gen, dtype=torch.float64) / n_rec**0.5
            fb = fb.to(device=device, dtype=dtype)
        self.register_buffer("feedback", fb)

    # -- the Model interface ------------------------------------------------------------------
    @property
    def n_in(self) -> int:  # type: ignore[override]
        return self.config.n_in

    @property
    def n_out(self) -> int:  # type: ignore[override]
        return self.config.n_out

    @property
    def dt(self) -> float:  # type: ignore[override]
        return self.config.dt

    def to_config(self) -> dict[str, Any]:
        return self.config.model_dump()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | SNNConfig, *, device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> RecurrentSNN:
        cfg = config if isinstance(config, SNNConfig) else SNNConfig.model_validate(config)
        return cls(cfg, seed=0, device=device, dtype=dtype)

    def architecture(self) -> dict[str, Any]:
        return self.config.architecture()

    def readout_loss(self) -> ReadoutLoss:
        return ReadoutLoss(self.config.loss, self.config.loss_steps)

    def simulate_for_bptt(self, x: Tensor) -> Trajectory:
        """:meth:`simulate` through the config's surrogate, the reset's gradient stopped when
        ``detach_reset``."""
        spike = spike_function(self.surrogate, self.config.v_th)
        return self.simulate(x, spike=spike, detach_reset=self.config.detach_reset)

    def regularisation(self, trajectory: Trajectory) -> Tensor | None:
        """The firing-rate regulariser (``reg_strength``, ``reg_target_hz``), or None."""
        cfg = self.config
        if cfg.reg_strength > 0:
            return rate_regularisation(trajectory.z, cfg.reg_strength, cfg.target_rate_per_step)
        return None

    def spike_counts(self, trajectory: Trajectory) -> SpikeCounts:
        return SpikeCounts.from_trajectory(trajectory)

    def fan_out(self) -> dict[str, Tensor]:
        """Per input channel (``x``) and recurrent neuron (``recurrent``): non-zero outgoing
        input weights, and recurrent plus readout weights."""
        f_in, f_rec = fan_out(self)
        return {"x": f_in, RECURRENT: f_rec}

    # -- the time loop ----------------------------------------------------------------------
    def steps(
        self, x: Tensor, *, spike: SpikeFn = heaviside, detach_reset: bool = False,
        out: NeuronState | None = None, workspace: Workspace | None = None,
        input_chunk: int | None = None, pre: Tensor | None = None,
    ) -> Iterator[tuple[int, NeuronState, NeuronState]]:
        """Run the recurrent layer over time-major input ``x`` (T, B, n_in).

        Yields ``(t, state before, state after)`` for each step. Every forward pass (plain,
        BPTT, fused and online e-prop) goes through this loop. The input currents of all steps
        are one matrix product up front; each step then costs one product with ``w_rec``.
        ``out``: a state record of (T, B, n_rec) tensors that step t writes into (no autograd);
        ``workspace``: where to keep the input currents (no autograd). ``input_chunk``: compute
        the input currents this many steps at a time, so that memory does not grow with T.
        ``pre`` (with ``out``, no autograd): a (T + 1, B, n_in + n_rec) buffer whose row t holds
        ``[x[t], z[t-1]]``, with ``out.z`` the view ``pre[1:, :, n_in:]``; each step's whole
        synaptic current is then one product of that row with ``[w_in, w_rec]``.
        """
        p = self.neuron_params
        n_steps, batch, _ = x.shape
        w_rec = self.recurrent_weight()
        # A CubaLIF's currents pass its synapse: neither the reset nor the leak may be folded
        # into them, so it takes the plain loop below.
        cuba = isinstance(p, CubaLIFParameters)
        subtracts = p.reset in ("subtract", "subtract_at_spike")
        if w_rec is not None and subtracts and not torch.is_grad_enabled() and not cuba:
            # The reset by subtraction, -v_th z[t-1], is a self-connection of weight -v_th
            # (-alpha v_th at the spike, before the leak): fold it into the product with w_rec
            # that each step computes anyway. (Not under autograd, where detach_reset must be
            # able to stop the reset's gradient alone.)
            own = p.v_th * (p.alpha if p.reset == "subtract_at_spike" else 1.0)
            eye = torch.eye(w_rec.shape[0], dtype=w_rec.dtype, device=w_rec.device)
            w_rec = w_rec - own * eye
            p = dataclasses.replace(p, reset="none")
        state = initial_state(p, batch, self.config.n_rec, device=x.device, dtype=x.dtype)
        buffers: list[Any] = [None] * n_steps
        if out is not None:
            fields = [f.unbind(0) if f is not None else [None] * n_steps for f in out]
            buffers = [type(out)(*step) for step in zip(*fields, strict=True)]
        if pre is not None and w_rec is not None and out is not None and not cuba:
            # [w_in, w_rec] transposed and contiguous: the faster layout for the step's product
            w_pre_t = torch.cat([self.w_in, w_rec], 1).t().contiguous()
            rows = pre.unbind(0)
            # With no reset left in the neuron (it was folded above), the leak is linear too:
            # alpha v[t-1] + current is then one addmm, and the neuron integrates nothing more.
            leak, p = (p.alpha, dataclasses.replace(p, alpha=0.0)) if p.reset == "none" else (0, p)
            for t in range(n_steps):
                if leak:
                    i = torch.addmm(state.v, rows[t], w_pre_t, beta=leak, out=buffers[t].v)
                else:
                    i = torch.mm(rows[t], w_pre_t, out=buffers[t].v)
                _, new = neuron_step(i, state, p, spike, detach_reset=detach_reset, out=buffers[t])
                yield t, state, new
                state = new
            return
        w_rec_t = None if w_rec is None else w_rec.t()
        if w_rec_t is not None and not torch.is_grad_enabled():
            w_rec_t = w_rec_t.contiguous()
        for t, current in enumerate(self._input_currents(x, workspace, input_chunk)):
            i = current if w_rec_t is None else torch.addmm(current, state.z, w_rec_t)
            _, new = neuron_step(i, state, p, spike, detach_reset=detach_reset, out=buffers[t])
            yield t, state, new
            state = new

    def _input_currents(
        self, x: Tensor, workspace: Workspace | None, chunk: int | None
    ) -> Iterator[Tensor]:
        """``w_in x[t]`` for each step, from one matrix product per chunk of steps.

        unbind, not ``currents[t]``: under autograd each index would scatter back into a full
        (T, B, n_rec) gradient, O(T^2); unbind's backward is one stack."""
        n_steps, batch, _ = x.shape
        w_in_t = self.w_in.t()
        if chunk is None:
            if workspace is None:
                yield from torch.matmul(x, w_in_t).unbind(0)
            else:
                buf = workspace.get("currents", (n_steps, batch, self.config.n_rec), x)
                yield from torch.matmul(x, w_in_t, out=buf).unbind(0)
            return
        for start in range(0, n_steps, chunk):
            yield from torch.matmul(x[start : start + chunk], w_in_t).unbind(0)

    def simulate(
        self, x: Tensor, *, spike: SpikeFn = heaviside, detach_reset: bool = False,
        workspace: Workspace | None = None,
    ) -> Trajectory:
        """Run the whole network on batch-first ``x`` (B, T, n_in) and keep every state.

        Differentiable when called with a surrogate ``spike`` and gradients enabled (BPTT);
        call it under ``torch.no_grad()`` for inference and for e-prop (then every state is
        written straight into preallocated (T, B, n_rec) tensors, taken from ``workspace``
        when one is given: the trajectory is then overwritten by the workspace's next use).
        """
        if spike is heaviside and not torch.is_grad_enabled():
            return self._simulate_into_buffers(self.prepare_input(x, contiguous=False), workspace)
        xt = self.prepare_input(x)
        zs, vs, as_, rs = [], [], [], []
        for _, _, s in self.steps(xt, spike=spike, detach_reset=detach_reset):
            zs.append(s.z)
            vs.append(s.v)
            if isinstance(s, ALIFState):
                as_.append(s.a)  # type: ignore[union-attr]
            if s.refrac is not None:
                rs.append(s.refrac)
        z = torch.stack(zs)
        return Trajectory(
            x=xt, z=z, v=torch.stack(vs), a=torch.stack(as_) if as_ else None,
            refrac=torch.stack(rs) if rs else None, y=self.readout(z),
        )

    def _simulate_into_buffers(self, xt: Tensor, workspace: Workspace | None) -> Trajectory:
        """The no-autograd forward pass: each step writes into (T, B, .) buffers.

        Spikes are written into a presynaptic buffer ``pre`` (T + 1, B, n_in + n_rec) whose row
        t holds ``[x[t], z[t-1]]``, so that e-prop's input and recurrent weight gradients are
        a single product with it.
        """
        n_steps, batch, n_in = xt.shape
        n_rec = self.config.n_rec

        def buffer(name: str, shape: tuple[int, ...]) -> Tensor:
            return xt.new_empty(shape) if workspace is None else workspace.get(name, shape, xt)

        pre: Tensor | None = None
        if self.w_rec is not None:
            pre = buffer("pre", (n_steps + 1, batch, n_in + n_rec))
            pre[:n_steps, :, :n_in] = xt  # the one copy of the input, straight from (B, T, n_in)
            pre[n_steps, :, :n_in] = 0.0
            pre[0, :, n_in:] = 0.0
            z = pre[1:, :, n_in:]
            xt = pre[:n_steps, :, :n_in]
        else:
            xt = xt.contiguous()
            z = buffer("z", (n_steps, batch, n_rec))
        init = initial_state(self.neuron_params, 1, 1)  # only for the record's fields
        fields = {"z": z}
        for name, f in zip(init._fields, init, strict=True):
            if name != "z":
                fields[name] = None if f is None else buffer(name, (n_steps, batch, n_rec))
        out = type(init)(**fields)  # type: ignore[arg-type]
        for _ in self.steps(xt, out=out, workspace=workspace, pre=pre):
            pass
        a = out.a if isinstance(out, ALIFState) else None
        return Trajectory(
            x=xt, z=z, v=out.v, a=a, refrac=out.refrac, y=self.readout(z),
            pre=pre,
        )

    def forward(self, x: Tensor) -> Tensor:
        """Readout (B, T, n_out) for batch-first input; differentiable through the surrogate."""
        spike = heaviside
        if torch.is_grad_enabled():
            spike = spike_function(self.surrogate, self.config.v_th)
        return self.simulate(x, spike=spike).readout

    # -- pieces shared by the learning rules ------------------------------------------------
    def prepare_input(self, x: Tensor, *, contiguous: bool = True) -> Tensor:
        """Check a batch-first input and return it time-major in the network's dtype/device
        (a view, without ``contiguous``). An empty batch gives empty results; no time steps
        is a DataError (:func:`~spiketune.snn._model.check_steps`)."""
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.config.n_in:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(Problem("input", shape, f"shape (batch, steps, {self.config.n_in})"))
        check_steps(x)
        xt = x.to(device=self.w_in.device, dtype=self.w_in.dtype).transpose(0, 1)
        return xt.contiguous() if contiguous else xt

    def recurrent_weight(self) -> Tensor | None:
        """``w_rec`` with its diagonal forced to zero (no self-connections), or None."""
        return None if self.w_rec is None else self.w_rec * self.rec_mask

    def readout(self, z: Tensor) -> Tensor:
        """Leaky-integrator readout ``y[t] = kappa y[t-1] + w_out z[t] + b`` of time-major z."""
        # Through a (T*B, n_rec) view: z may be a strided view whose 3-d matmul would copy it.
        flat = z.reshape(-1, z.shape[-1])
        if self.b_out is None:
            u = torch.mm(flat, self.w_out.t())
        else:
            u = torch.addmm(self.b_out, flat, self.w_out.t())
        return leaky_filter(u.view(*z.shape[:-1], u.shape[-1]), self.config.decay_out)

    def feedback_matrix(self) -> Tensor:
        """B (n_rec, n_out): ``w_out`` transposed (symmetric e-prop) or the fixed random one."""
        return self.w_out.t() if self.feedback is None else self.feedback

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"n_in={c.n_in}, n_rec={c.n_rec}, n_out={c.n_out}, neuron={c.neuron}, "
            f"recurrent={c.recurrent}, rule={c.rule}"
        )

