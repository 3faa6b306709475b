"""Hardware target profiles: the limits that decide whether a network can be mapped onto a chip.

Each chip is one small class whose field defaults are its limits; ``None`` means "no limit known,
not checked". Every limit can be overridden by the user (``get_target("xylo-audio2",
max_hidden=500)``), and overrides are validated once, naming the field. Where a figure is
uncertain the class says so in ``notes``, keyed by field.

Counting conventions used by every check (see :mod:`spiketune.hardware._design`):

- *inputs* are the network's input channels, *hidden* its recurrent neurons, *outputs* its
  readout units; *neurons* is hidden plus outputs;
- *fan-in* of a neuron: its incoming synapses (input and recurrent for a hidden neuron, hidden
  for a readout unit); *fan-out* of a hidden neuron: its outgoing recurrent and readout synapses;
- *spikes per step*: spikes of the hidden layer in one time step of one sample;
  *input events per step*: the value of one input channel in one step, read as an event count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from spiketune._validation import validate
from spiketune.errors import ConfigError, Problem

__all__ = [
    "TARGETS",
    "GenericTarget",
    "HardwareTarget",
    "Loihi2",
    "SpiNNaker2",
    "XyloAudio2",
    "XyloIMU",
    "get_target",
]

Count = Annotated[int, Field(ge=1)] | None
Bits = Annotated[int, Field(ge=1, le=64)] | None
#: Weight widths the quantiser can make (``quantise_network``): checked with the target, not
#: after a training that assessment would then refuse.
WeightBits = Annotated[int, Field(ge=2, le=32)] | None
Neuron = Literal["lif", "alif", "cuba_lif"]
Reset = Literal["subtract", "zero", "subtract_at_spike"]


class HardwareTarget(BaseModel):
    """A chip's mapping limits, as plain data.

    Lifecycle: build one with :func:`get_target` (name plus overrides, validated once: a bad
    value or unknown field raises ConfigError naming it); before training,
    :func:`~spiketune.hardware.check_design` compares a trial's hyperparameters with it (cheap,
    no torch); after training, :func:`~spiketune.hardware.assess_network` quantises the weights
    to ``weight_bits``, re-measures accuracy and spike statistics and checks the measured limits.
    A profile never changes after it is built (``with_limits`` returns a new one).

    To add a chip, subclass this with a ``name``, its limits as field defaults and ``notes``
    on where they come from, and register it in ``TARGETS``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str] = "target"
    #: field -> where the figure comes from, or why it is uncertain
    notes: ClassVar[dict[str, str]] = {}

    max_inputs: Count = None
    max_hidden: Count = None
    max_outputs: Count = None
    max_neurons: Count = None
    max_fan_in: Count = None
    max_fan_out: Count = None
    weight_bits: WeightBits = None
    state_bits: Bits = None
    max_spikes_per_step: Count = None
    max_spikes_per_neuron_step: Count = None
    max_input_events_per_step: Count = None
    neurons: frozenset[Neuron] = frozenset({"lif", "alif", "cuba_lif"})
    resets: frozenset[Reset] = frozenset({"subtract", "zero"})
    refractory: bool = Field(True, description="a refractory period can be configured")
    bias: bool = Field(True, description="neurons take a bias (a constant input current)")
    decay: Literal["exponential", "bitshift"] = Field(
        "exponential", description="bitshift: decays are 1 - 2**-k for integer k"
    )
    shared_hidden_scale: bool = Field(
        False, description="a hidden neuron's input and recurrent weights are integers on one "
        "grid, and its threshold a whole number of steps of it"
    )

    def with_limits(self, **overrides: Any) -> HardwareTarget:
        """A copy with some limits changed (validated like :func:`get_target`'s overrides)."""
        return _build(type(self), {**self.model_dump(), **overrides})

    def limits(self) -> dict[str, Any]:
        """Every limit by field name, for reports."""
        return self.model_dump()

    def __str__(self) -> str:
        return self.name


class XyloAudio2(HardwareTarget):
    """SynSense Xylo Audio 2 (SYNS61201), as Rockpool's public documentation describes it.

    Source: Rockpool, "Overview of the Xylo family", https://rockpool.ai/devices/xylo-overview.html
    (family table: 16 SNN input channels, 1000 hidden neurons, 8 output neurons, max. fan-out 64;
    architecture list: 8-bit input, recurrent and readout weights, bit-shift decay of synaptic
    and membrane potentials, subtractive reset, up to 15 input events per step per channel,
    up to 31 events per step per hidden neuron). The 16-bit neuron state is from the same
    family's public summaries (open-neuromorphic.org's Xylo page, which links to the page above).
    """

    name: ClassVar[str] = "xylo-audio2"
    notes: ClassVar[dict[str, str]] = {
        "max_fan_out": "the family table's 'max. fanout 64'; counted here over recurrent plus "
        "readout synapses of a hidden neuron (how the table counts readout synapses is not stated)",
        "state_bits": "16-bit synaptic and membrane state: secondary source",
        "refractory": "the cited page describes no refractory period: assumed absent",
        "max_fan_in": "not given on the cited page: not checked",
        "bias": "Rockpool's own Xylo Audio 2 mapper (rockpool 3.1.0, syns61201.mapper) warns "
        "that biases are not transferred to Xylo: none assumed",
        "shared_hidden_scale": "input and recurrent weights add in one integer membrane: "
        "Rockpool's Xylo quantisers (global_quantize, channel_quantize) scale both together "
        "and round the threshold on the same grid",
        "neurons": "the chip's neuron is current-based (cuba_lif) and resets at the spike "
        "(subtract_at_spike), several spikes per step: trained so, the Rockpool export is exact; "
        "a lif with reset 'subtract' is accepted and exported with a synapse and that reset "
        "approximated",
    }

    max_inputs: Count = 16
    max_hidden: Count = 1000
    max_outputs: Count = 8
    max_fan_out: Count = 64
    weight_bits: WeightBits = 8
    state_bits: Bits = 16
    max_input_events_per_step: Count = 15
    max_spikes_per_neuron_step: Count = 31
    neurons: frozenset[Neuron] = frozenset({"lif", "cuba_lif"})
    resets: frozenset[Reset] = frozenset({"subtract", "subtract_at_spike"})
    refractory: bool = False
    bias: bool = False
    decay: Literal["exponential", "bitshift"] = "bitshift"
    shared_hidden_scale: bool = True


class XyloIMU(HardwareTarget):
    """SynSense Xylo IMU, from the same Rockpool page as :class:`XyloAudio2`
    (https://rockpool.ai/devices/xylo-overview.html): 16 SNN input channels, 496 hidden neurons,
    16 output neurons, max. fan-out 512, one synaptic state. The neuron core is the Xylo core
    (bit-shift decays, subtractive reset); weight and state widths are assumed equal to Xylo
    Audio 2's."""

    name: ClassVar[str] = "xylo-imu"
    notes: ClassVar[dict[str, str]] = {
        "weight_bits": "assumed 8 bits like Xylo Audio 2 (not on the cited table)",
        "state_bits": "assumed 16 bits like Xylo Audio 2 (not on the cited table)",
        "max_input_events_per_step": "not given for Xylo IMU: not checked",
        "refractory": "assumed absent, as on Xylo Audio 2",
        "bias": "assumed absent, as on Xylo Audio 2",
        "max_spikes_per_neuron_step": "assumed 31 like Xylo Audio 2 (the same neuron core)",
        "neurons": "as on Xylo Audio 2",
    }

    max_inputs: Count = 16
    max_hidden: Count = 496
    max_outputs: Count = 16
    max_fan_out: Count = 512
    weight_bits: WeightBits = 8
    state_bits: Bits = 16
    max_spikes_per_neuron_step: Count = 31
    neurons: frozenset[Neuron] = frozenset({"lif", "cuba_lif"})
    resets: frozenset[Reset] = frozenset({"subtract", "subtract_at_spike"})
    refractory: bool = False
    bias: bool = False
    decay: Literal["exponential", "bitshift"] = "bitshift"
    shared_hidden_scale: bool = True


class Loihi2(HardwareTarget):
    """Intel Loihi 2, one chip, as Intel describes it publicly: up to about one million neurons
    per chip, programmable neuron models (so ALIF and refractory periods can be written as
    microcode), synaptic weights of up to 8 bits. These figures were not checked against a
    datasheet here (see ``notes``). Per-core fan-in and state widths depend on how the compiler
    packs cores: not checked unless set."""

    name: ClassVar[str] = "loihi2"
    notes: ClassVar[dict[str, str]] = {
        "max_neurons": "'up to 1 million neurons' per chip, taken as 2**20",
        "weight_bits": "up to 8 bits (uncertain); fewer bits per core are possible",
        "state_bits": "24-bit membrane state as on Loihi 1: uncertain for Loihi 2",
    }

    max_neurons: Count = 1_048_576
    weight_bits: WeightBits = 8
    state_bits: Bits = 24


class SpiNNaker2(HardwareTarget):
    """SpiNNaker2: 152 ARM cores per chip simulate the neurons in software, so any neuron model
    and reset can be written; the limits come from the toolchain's synapse format and memory.
    The figures here are uncertain (marked in ``notes``): override them for your toolchain."""

    name: ClassVar[str] = "spinnaker2"
    notes: ClassVar[dict[str, str]] = {
        "weight_bits": "uncertain: a signed 4-bit magnitude per synapse word (5 bits with the "
        "sign) is assumed for the standard LIF synapse format",
        "neurons": "LIF is the standard model; other models need their own core code",
        "resets": "the public NIR importer offers reset to zero and by subtraction",
        "refractory": "uncertain: assumed not in the standard LIF model",
        "max_hidden": "depends on neurons per core and cores used: not checked unless set",
    }

    weight_bits: WeightBits = 5
    neurons: frozenset[Neuron] = frozenset({"lif"})
    refractory: bool = False


class GenericTarget(HardwareTarget):
    """No limits until the user sets them: ``get_target("generic", max_neurons=256,
    max_fan_in=64, weight_bits=4, max_spikes_per_step=20)``."""

    name: ClassVar[str] = "generic"

    resets: frozenset[Reset] = frozenset({"subtract", "zero", "subtract_at_spike"})


#: name -> profile class
TARGETS: dict[str, type[HardwareTarget]] = {
    cls.name: cls for cls in (XyloAudio2, XyloIMU, Loihi2, SpiNNaker2, GenericTarget)
}


def get_target(target: str | HardwareTarget, **overrides: Any) -> HardwareTarget:
    """The profile named ``target`` (see ``TARGETS``), with ``overrides`` applied.

    A profile instance is accepted too (overrides then give a modified copy). Names are
    case-insensitive and ``_`` may stand for ``-``. Raises ConfigError naming an unknown
    target, an unknown field or a value that breaks a field's rule.
    """
    if isinstance(target, HardwareTarget):
        return target.with_limits(**overrides) if overrides else target
    if not isinstance(target, str):
        raise ConfigError(Problem("target", target, "a target name: " + ", ".join(TARGETS)))
    key = target.strip().lower().replace("_", "-")
    cls = TARGETS.get(key)
    if cls is None:
        raise ConfigError(Problem("target", target, "one of " + ", ".join(TARGETS)))
    return _build(cls, overrides)


def _build(cls: type[HardwareTarget], values: Mapping[str, Any]) -> HardwareTarget:
    return validate(cls, values, source=f"hardware target {cls.name!r}")
