"""Hardware targets: does a network fit a chip, and how does it do once it is made to fit?

- Profiles: :func:`get_target` (``"xylo-audio2"``, ``"xylo-imu"``, ``"loihi2"``,
  ``"spinnaker2"``, ``"generic"``), every limit overridable: ``get_target("xylo-audio2",
  max_hidden=500)``. One small class per chip, base :class:`HardwareTarget`.
- Before training: :func:`check_design` / :func:`check_config` list the broken
  :class:`Violation` s of a trial's hyperparameters (no torch, microseconds);
  :func:`check_layout` those of any :class:`NetworkLayout` (populations of neurons, fan-in,
  fan-out, synapses), and :func:`check_model` those of a built model (a RecurrentSNN or an
  L²MU, whose :func:`layout_of` counts each population);
  :func:`constraints_from` turns them into Optuna constraint values. In a search,
  :class:`ParameterCheck` holds a target and the network facts the search space does not vary,
  and checks each trial's parameters (:data:`NETWORK_KEYS` name the keys it reads).
- After training: :func:`quantise_network` (per tensor or per channel),
  :func:`evaluate` (accuracy and activity) and :func:`assess_network` (all of it for a target:
  metrics and violations).
- A second opinion: :func:`rockpool_check` runs Rockpool's own Xylo Audio 2 mapper on the same
  network (a :class:`RockpoolCheck`: both verdicts, and which toolchain steps could run).

Names are imported on first use, so the design check never pays for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spiketune._lazy import lazy_exports

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "TARGETS",
            "GenericTarget",
            "HardwareTarget",
            "Loihi2",
            "SpiNNaker2",
            "XyloAudio2",
            "XyloIMU",
            "get_target",
        ],
        "spiketune.hardware._targets",
    ),
    **dict.fromkeys(
        ["NETWORK_KEYS", "RULES", "NetworkLayout", "Population", "Violation", "check_config",
         "check_design", "check_layout", "constraints_from"],
        "spiketune.hardware._design",
    ),
    **dict.fromkeys(["check_model", "layout_of"], "spiketune.hardware._layout"),
    "ParameterCheck": "spiketune.hardware._search",
    **dict.fromkeys(
        ["QuantisedNetwork", "bitshift_decay", "quantise_network", "quantise_tensor"],
        "spiketune.hardware._quantise",
    ),
    **dict.fromkeys(
        ["Activity", "HardwareAssessment", "assess_network", "evaluate"],
        "spiketune.hardware._assess",
    ),
    **dict.fromkeys(["RockpoolCheck", "rockpool_check"], "spiketune.hardware._rockpool"),
}

__all__ = [
    "NETWORK_KEYS",
    "RULES",
    "TARGETS",
    "Activity",
    "GenericTarget",
    "HardwareAssessment",
    "HardwareTarget",
    "Loihi2",
    "NetworkLayout",
    "ParameterCheck",
    "Population",
    "QuantisedNetwork",
    "RockpoolCheck",
    "SpiNNaker2",
    "Violation",
    "XyloAudio2",
    "XyloIMU",
    "assess_network",
    "bitshift_decay",
    "check_config",
    "check_design",
    "check_layout",
    "check_model",
    "constraints_from",
    "evaluate",
    "get_target",
    "layout_of",
    "quantise_network",
    "quantise_tensor",
    "rockpool_check",
]

if TYPE_CHECKING:
    from spiketune.hardware._assess import (
        Activity,
        HardwareAssessment,
        assess_network,
        evaluate,
    )
    from spiketune.hardware._design import (
        NETWORK_KEYS,
        RULES,
        NetworkLayout,
        Population,
        Violation,
        check_config,
        check_design,
        check_layout,
        constraints_from,
    )
    from spiketune.hardware._layout import check_model, layout_of
    from spiketune.hardware._quantise import (
        QuantisedNetwork,
        bitshift_decay,
        quantise_network,
        quantise_tensor,
    )
    from spiketune.hardware._rockpool import RockpoolCheck, rockpool_check
    from spiketune.hardware._search import ParameterCheck
    from spiketune.hardware._targets import (
        TARGETS,
        GenericTarget,
        HardwareTarget,
        Loihi2,
        SpiNNaker2,
        XyloAudio2,
        XyloIMU,
        get_target,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
