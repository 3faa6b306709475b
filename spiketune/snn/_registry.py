"""Learning rules and models by name, as a config and a checkpoint spell them."""

from __future__ import annotations

from spiketune.errors import ConfigError, Problem
from spiketune.snn._bptt import BPTT
from spiketune.snn._config import SNNConfig
from spiketune.snn._eprop import EProp
from spiketune.snn._lmu import L2MU, LMU
from spiketune.snn._model import Model
from spiketune.snn._network import RecurrentSNN
from spiketune.snn._rule import LearningRule

RULES: dict[str, type[LearningRule]] = {"eprop": EProp, "bptt": BPTT}

#: Every model a checkpoint can rebuild, by ``Model.name``.
MODELS: dict[str, type[Model]] = {cls.name: cls for cls in (RecurrentSNN, LMU, L2MU)}


def make_rule(config: SNNConfig | str) -> LearningRule:
    """The rule a config (or a bare name) asks for; e-prop's mode follows the config."""
    name = config if isinstance(config, str) else config.rule
    if name not in RULES:
        raise ConfigError(Problem("rule", name, "one of " + ", ".join(RULES)))
    if name == "eprop" and isinstance(config, SNNConfig):
        return EProp(config.eprop_mode)
    return RULES[name]()


def rule_for(net: Model) -> LearningRule:
    """The rule that trains ``net`` by default: the one a RecurrentSNN's config names, BPTT
    for every other model."""
    return make_rule(net.config) if isinstance(net, RecurrentSNN) else BPTT()
