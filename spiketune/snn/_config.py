"""Hyperparameters of a recurrent spiking network and of its training, validated once.

Two records: :class:`SNNConfig` (the network, its neurons and the learning rule: everything
needed to rebuild a trained network from a checkpoint) and :class:`TrainConfig` (the loop
around it). Both are frozen pydantic models that reject unknown keys, so a typo in a search
space fails when the trial starts, naming the key, never at the first forward pass.

Units: every time constant is in **seconds** and ``dt`` is the simulation step in seconds.
A decay can be given either as a time constant (``tau_mem``) or as the per-step factor
(``alpha``); both spellings are validated and giving both is an error. Counts of steps
(``refractory_steps``, ``loss_steps``) are in steps; the loss window can also be given in
seconds (``loss_window``), which sets ``loss_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spiketune._validation import cross_field as _cross_field
from spiketune._validation import problems_from, validate
from spiketune.errors import ConfigError, Problem

# The three decays and their two spellings: (time-constant field, factor field, default tau in s).
_DECAYS: tuple[tuple[str, str, float], ...] = (
    ("tau_mem", "alpha", 20e-3),
    ("tau_out", "kappa", 20e-3),
    ("tau_adapt", "rho", 200e-3),
)
#: The synaptic time constant of neuron="cuba_lif" when neither tau_syn nor alpha_syn is given, s.
DEFAULT_TAU_SYN = 5e-3


class _Config(BaseModel):
    """Shared behaviour: construction raises ConfigError (never pydantic's own error), and
    every number is finite: an infinite rate, gain or threshold only turns into NaN weights
    or an overflow deep inside training, so it is refused here with the field's name."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            problems = problems_from(err, model=type(self))
            raise ConfigError(problems, source=type(self).__name__) from None


class SNNConfig(_Config):
    """The network, its neurons, and the learning rule.

    Neuron model (DESIGN.md section 3): ``v[t] = alpha v[t-1] + W_in x[t] + W_rec z[t-1] - reset``,
    ``z[t] = H(v[t] - A[t])`` with ``A = v_th`` (LIF) or ``A = v_th + beta a[t]``,
    ``a[t] = rho a[t-1] + z[t-1]`` (ALIF). Readout ``y[t] = kappa y[t-1] + W_out z[t] + b``.
    """

    # architecture
    n_in: int = Field(ge=1, description="input channels")
    n_rec: int = Field(ge=1, description="recurrent (hidden) neurons")
    n_out: int = Field(ge=1, description="readout units = classes")
    neuron: Literal["lif", "alif", "cuba_lif"] = "lif"
    recurrent: bool = Field(True, description="False: no recurrent weights at all")
    readout_bias: bool = True

    # dynamics; seconds
    dt: float = Field(1e-3, gt=0, description="simulation step, seconds")
    tau_mem: float | None = Field(None, gt=0, description="membrane time constant, seconds")
    alpha: float | None = Field(None, ge=0, lt=1, description="membrane decay per step")
    tau_out: float | None = Field(None, gt=0, description="readout time constant, seconds")
    kappa: float | None = Field(None, ge=0, lt=1, description="readout decay per step")
    tau_adapt: float | None = Field(None, gt=0, description="ALIF adaptation time constant, s")
    rho: float | None = Field(None, ge=0, lt=1, description="ALIF adaptation decay per step")
    beta: float = Field(1.8, ge=0, description="ALIF threshold increase per unit of adaptation")
    tau_syn: float | None = Field(
        None, gt=0, description="cuba_lif synaptic time constant, seconds (default 5e-3)"
    )
    alpha_syn: float | None = Field(
        None, ge=0, lt=1, description="cuba_lif synaptic decay per step"
    )
    v_th: float = Field(1.0, gt=0, description="firing threshold (membrane units)")
    reset: Literal["subtract", "zero", "subtract_at_spike"] = Field(
        "subtract",
        description="subtract: v_th after the leak; subtract_at_spike: at the spike, before the "
        "next leak (Xylo, Rockpool); zero",
    )
    max_spikes: int | None = Field(
        1, ge=1,
        description="spikes per neuron and step; more (None: no limit) counts floor(v / v_th) "
        "as Xylo and Rockpool do (BPTT only)",
    )
    refractory_steps: int = Field(0, ge=0, description="steps without spiking after a spike")

    # initialisation: weights ~ N(0, gain^2 / fan_in)
    gain_in: float = Field(1.0, ge=0)
    gain_rec: float = Field(1.0, ge=0)
    gain_out: float = Field(1.0, ge=0)

    # learning rule
    rule: Literal["eprop", "bptt"] = "eprop"
    eprop_mode: Literal["fused", "online"] = "fused"
    feedback: Literal["symmetric", "random"] = "symmetric"
    surrogate: Literal["triangle", "fast_sigmoid", "arctan"] = "triangle"
    surrogate_slope: float = Field(1.0, gt=0, description="sharpness, per unit of (v-A)/v_th")
    surrogate_dampening: float = Field(0.3, gt=0, description="gamma: pseudo-derivative scale")
    detach_reset: bool = Field(False, description="bptt: stop the gradient through the reset")
    reg_strength: float = Field(0.0, ge=0, description="firing-rate regularisation weight")
    reg_target_hz: float = Field(10.0, ge=0, description="target firing rate, Hz")

    # loss and decision
    loss: Literal["ce_per_step", "ce_summed", "ce_max"] = "ce_per_step"
    loss_steps: int | None = Field(None, ge=1, description="last K steps; None: all steps")
    loss_window: float | None = Field(
        None, gt=0, description="the same window in seconds: sets loss_steps = round(window / dt)"
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_per_decay(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for tau_key, factor_key, default_tau in _DECAYS:
            tau, factor = data.get(tau_key), data.get(factor_key)
            if tau is not None and factor is not None:
                raise _cross_field(
                    tau_key, {tau_key: tau, factor_key: factor},
                    f"give either {tau_key} (seconds) or {factor_key} (decay per step), not both",
                )
            if tau is None and factor is None:
                data[tau_key] = default_tau
        return data

    @model_validator(mode="before")
    @classmethod
    def _synapse_of_cuba_lif(cls, data: Any) -> Any:
        """``tau_syn`` / ``alpha_syn``: one spelling, only for ``neuron="cuba_lif"`` (where
        ``tau_syn`` defaults to :data:`DEFAULT_TAU_SYN` seconds)."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        tau, factor = data.get("tau_syn"), data.get("alpha_syn")
        given = {k: v for k, v in (("tau_syn", tau), ("alpha_syn", factor)) if v is not None}
        if data.get("neuron", "lif") != "cuba_lif":
            if given:
                key = next(iter(given))
                raise _cross_field(
                    key, given, f"{key} is the synapse of neuron='cuba_lif'; neuron is "
                    f"{data.get('neuron', 'lif')!r}",
                )
            return data
        if len(given) == 2:
            raise _cross_field(
                "tau_syn", given,
                "give either tau_syn (seconds) or alpha_syn (decay per step), not both",
            )
        if not given:
            data["tau_syn"] = DEFAULT_TAU_SYN
        return data

    @model_validator(mode="before")
    @classmethod
    def _loss_window_in_steps(cls, data: Any) -> Any:
        """A window in seconds becomes ``loss_steps`` (at least 1); both may be given only when
        they agree (a saved config holds both). A bad window or dt is left to its field."""
        if not isinstance(data, Mapping):
            return data
        window = seconds_value(data.get("loss_window"))
        dt = seconds_value(data.get("dt", cls.model_fields["dt"].default))
        if window is None or dt is None:
            return data
        steps = max(1, round(window / dt))
        given = data.get("loss_steps")
        if given is not None and given != steps:
            raise _cross_field(
                "loss_window", {"loss_window": window, "loss_steps": given},
                f"give either loss_window (seconds) or loss_steps (steps), not both; "
                f"{window:g} s is {steps} step(s) of dt={dt:g} s",
            )
        return {**data, "loss_steps": steps}

    @model_validator(mode="after")
    def _cuba_lif_by_bptt(self) -> SNNConfig:
        if self.neuron == "cuba_lif" and self.rule != "bptt":
            raise _cross_field(
                "rule", self.rule,
                "neuron='cuba_lif' trains by BPTT only: set rule='bptt' (e-prop's eligibility "
                "traces are written for LIF and ALIF)",
            )
        return self

    @model_validator(mode="after")
    def _max_loss_after_the_sample(self) -> SNNConfig:
        if self.loss == "ce_max" and self.rule == "eprop" and self.eprop_mode == "online":
            raise _cross_field(
                "loss", self.loss,
                "loss='ce_max' knows where each readout unit peaks only after the sample, "
                "which online e-prop does not wait for: set eprop_mode='fused' (or rule='bptt')",
            )
        return self

    @model_validator(mode="after")
    def _chip_neuron_by_bptt(self) -> SNNConfig:
        """The chip's neuron (reset at the spike, several spikes per step) trains by BPTT:
        e-prop's eligibility traces assume binary spikes and the reset after the leak."""
        chip = (("reset", self.reset) if self.reset == "subtract_at_spike"
                else ("max_spikes", self.max_spikes) if self.max_spikes != 1 else None)
        if chip is not None and self.rule != "bptt":
            key, value = chip
            raise _cross_field(
                key, value,
                f"{key}={value!r} trains by BPTT only: set rule='bptt' (e-prop's "
                "eligibility traces assume binary spikes and the reset after the leak)",
            )
        if self.max_spikes != 1 and (self.neuron == "alif" or self.refractory_steps):
            raise _cross_field(
                "max_spikes", self.max_spikes,
                "several spikes per step are for neuron 'lif' or 'cuba_lif' without a "
                "refractory period: set max_spikes=1",
            )
        return self

    @model_validator(mode="after")
    def _rates_reachable(self) -> SNNConfig:
        max_hz = 1.0 / (self.dt * (self.refractory_steps + 1))
        if self.reg_target_hz > max_hz:
            raise _cross_field(
                "reg_target_hz", self.reg_target_hz,
                f"at most {max_hz:g} Hz (one spike per {self.refractory_steps + 1} step(s) "
                f"of dt={self.dt:g} s)",
            )
        return self

    # -- derived per-step factors -------------------------------------------------------------
    @property
    def decay_mem(self) -> float:
        """alpha = exp(-dt / tau_mem): membrane decay per step."""
        return _factor(self.tau_mem, self.alpha, self.dt)

    @property
    def decay_out(self) -> float:
        """kappa = exp(-dt / tau_out): readout decay per step."""
        return _factor(self.tau_out, self.kappa, self.dt)

    @property
    def decay_adapt(self) -> float:
        """rho = exp(-dt / tau_adapt): ALIF adaptation decay per step."""
        return _factor(self.tau_adapt, self.rho, self.dt)

    @property
    def decay_syn(self) -> float:
        """alpha_syn = exp(-dt / tau_syn): cuba_lif synaptic decay per step (0 for other
        neurons, which have no synapse)."""
        if self.tau_syn is None and self.alpha_syn is None:
            return 0.0
        return _factor(self.tau_syn, self.alpha_syn, self.dt)

    @property
    def target_rate_per_step(self) -> float:
        """The regularisation target in spikes per step (Hz times dt)."""
        return self.reg_target_hz * self.dt

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SNNConfig:
        """Build from a flat dict (an HPO trial's parameters); raises ConfigError on any problem."""
        return validate(cls, params)

    def architecture(self) -> dict[str, Any]:
        """The fields that decide the shapes of the weights: a checkpoint must match them."""
        return {
            k: getattr(self, k)
            for k in ("n_in", "n_rec", "n_out", "neuron", "recurrent", "readout_bias", "feedback")
        }


class TrainConfig(_Config):
    """The training loop: epochs, batches, optimiser, early stopping."""

    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0, description="learning rate")
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm")
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without improvement; None: never"
    )
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    monitor: Literal["val_acc", "val_loss"] = "val_acc"
    seed: int = Field(0, ge=0, lt=2**63,  # what torch.Generator.manual_seed takes
                      description="shuffling seed (and weight seed in Trainer helpers)")
    shuffle: bool = True
    # Training-time augmentation of the input spike trains (never applied to evaluation).
    # Small event datasets overfit fast; shifting samples in time and deleting a fraction of
    # their events are the cheap, label-preserving perturbations that event data allows.
    augment_shift: int = Field(
        0, ge=0, description="max random time shift of a training sample, steps (zero-padded)"
    )
    augment_drop: float = Field(
        0.0, ge=0, lt=1, description="probability of deleting each input event while training"
    )
    # The same gesture made faster or slower (a finger sliding over a Braille letter at another
    # speed) stretches the whole spike train in time, not just moves it.
    augment_stretch: float = Field(
        0.0, ge=0, lt=1,
        description="max relative change of a training sample's time scale: its spike train "
                    "is stretched about step 0 by a factor drawn from [1 - s, 1 + s]",
    )
    # Steadier weights to validate, keep and test. On a few hundred validation samples the
    # accuracy of the raw weights jumps by several points from one epoch to the next, so the
    # "best epoch" is partly luck; an exponential moving average of the weights (updated after
    # every optimiser step) and a learning rate annealed to zero both damp those jumps.
    ema_decay: float | None = Field(
        None, gt=0, lt=1,
        description="weight averaging: the averaged weights are validated, kept and returned; "
                    "decay per optimiser step (0.99 ~ the last 100 steps); None: raw weights",
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: anneal lr to 0 over `epochs`, stepped once per epoch"
    )

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        """Build from a flat dict; raises ConfigError on any problem."""
        return validate(cls, params)


def configs_from_params(
    params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> tuple[SNNConfig, TrainConfig]:
    """Split one flat dict of hyperparameters (an HPO trial's) into the two configs.

    ``defaults`` holds values the search does not choose (``n_in``, ``n_out`` from the data, say);
    ``params`` wins over it. Every key must belong to one of the two configs: an unknown key is a
    ConfigError that names it and lists the known ones. All problems are reported together.
    """
    rule = "a mapping of hyperparameter names to values"
    if not isinstance(params, Mapping):
        raise ConfigError(Problem("params", type(params).__name__, rule))
    if defaults is not None and not isinstance(defaults, Mapping):
        raise ConfigError(Problem("defaults", type(defaults).__name__, rule + ", or None"))
    merged = {**(defaults or {}), **params}
    snn_keys, train_keys = set(SNNConfig.model_fields), set(TrainConfig.model_fields)
    known = "unknown hyperparameter; known: " + ", ".join(sorted(snn_keys | train_keys))
    problems: list[Problem] = [
        Problem(key, value, known)
        for key, value in merged.items()
        if key not in snn_keys and key not in train_keys
    ]
    snn: SNNConfig | None = None
    train: TrainConfig | None = None
    try:
        snn = SNNConfig.from_params({k: v for k, v in merged.items() if k in snn_keys})
    except ConfigError as err:
        problems.extend(err.problems)
    try:
        train = TrainConfig.from_params({k: v for k, v in merged.items() if k in train_keys})
    except ConfigError as err:
        problems.extend(err.problems)
    if problems or snn is None or train is None:
        raise ConfigError(problems)
    return snn, train


def seconds_value(value: Any) -> float | None:
    """``value`` as a finite number of seconds > 0, read as pydantic reads a float field (a
    numpy float, text such as ``"0.005"``); None for anything else, which its field then
    refuses. Why: a window the field accepts must also become its steps, not be ignored."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _factor(tau: float | None, factor: float | None, dt: float) -> float:
    if factor is not None:
        return float(factor)
    if tau is None:  # unreachable after validation; kept for type checkers
        raise ConfigError(Problem("tau", tau, "a time constant or a decay factor is required"))
    return math.exp(-dt / tau)
