"""Weights carried from one network to another: pretraining on other classes.

A network trained first on related data (the Braille archive's 20 letters outside the
7-letter task, say) has input and recurrent weights that already follow the taxels'
dynamics; a network for the task starts from them and learns a fresh readout for its own
classes. Only weights move: neuron parameters (time constants, thresholds) come from each
network's own configuration, which is why both must be built from the same parameters.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from spiketune.errors import ConfigError, Problem

#: The readout of a :class:`~spiketune.snn.RecurrentSNN`: sized by the classes, so it is
#: learnt afresh for the task rather than carried over.
READOUT = ("w_out", "b_out")


def transfer_weights(
    source: nn.Module, target: nn.Module, *, skip: Collection[str] = READOUT
) -> tuple[str, ...]:
    """Copy ``source``'s parameters into ``target``'s by name, all but those in ``skip``;
    returns the names copied.

    Both must be modules of the same class, and every parameter of ``target`` outside
    ``skip`` must exist in ``source`` with the same shape: a network built with other sizes
    (``n_rec``, inputs) or another model cannot give its weights (an L²MU and an LMU share
    the names and shapes of six matrices, but not what they mean), and a
    :class:`~spiketune.errors.ConfigError` names the class or the first parameter that
    differs rather than leaving the target half initialised. ``target`` is left unchanged then.
    """
    for name, net in (("source", source), ("target", target)):
        if not isinstance(net, nn.Module):
            raise ConfigError(Problem(name, type(net).__name__, "a network (a torch Module)"))
    if type(source) is not type(target):
        raise ConfigError(Problem(
            "source", type(source).__name__,
            f"a network of the target's class, {type(target).__name__}: another model "
            "cannot give its weights"))
    given = dict(source.named_parameters())
    wanted = [(name, p) for name, p in target.named_parameters() if name not in skip]
    for name, p in wanted:
        if name not in given:
            raise ConfigError(Problem(
                f"transfer.{name}", "missing", f"a parameter of the source network "
                f"({type(source).__name__}) of shape {tuple(p.shape)}"))
        if given[name].shape != p.shape:
            raise ConfigError(Problem(
                f"transfer.{name}", tuple(given[name].shape),
                f"the target's shape {tuple(p.shape)} (build both from the same parameters)"))
    with torch.no_grad():
        for name, p in wanted:
            p.copy_(given[name].to(device=p.device, dtype=p.dtype))
    return tuple(name for name, _ in wanted)
