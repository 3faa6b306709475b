"""Learning rules by name, as a config spells them."""

from __future__ import annotations

from spiketune.errors import ConfigError, Problem
from spiketune.snn._bptt import BPTT
from spiketune.snn._config import SNNConfig
from spiketune.snn._eprop import EProp
from spiketune.snn._rule import LearningRule

RULES: dict[str, type[LearningRule]] = {"eprop": EProp, "bptt": BPTT}


def make_rule(config: SNNConfig | str) -> LearningRule:
    """The rule a config (or a bare name) asks for; e-prop's mode follows the config."""
    name = config if isinstance(config, str) else config.rule
    if name not in RULES:
        raise ConfigError(Problem("rule", name, "one of " + ", ".join(RULES)))
    if name == "eprop" and isinstance(config, SNNConfig):
        return EProp(config.eprop_mode)
    return RULES[name]()
