"""What a refused or unreadable ``torch.load(weights_only=True)`` means, in spiketune's words.

torch's own messages advise loading the file again with ``weights_only=False``, which would run
whatever code the file holds. Neither a checkpoint nor a dataset file ever needs that, so the
advice is never passed on: only the object the file asked for, or torch's finding, is quoted.
"""

from __future__ import annotations

import pickle
import re

#: What the weights-only unpickler names when a file asks for an object to be built.
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")

#: Lines of torch's messages that are advice, not a finding.
_ADVICE = ("weights_only", "check the documentation", "please file an issue", "trust")


#: The pickle opcode (FRAME) of protocols 4 and 5, which the weights-only unpickler lacks.
_FRAME = "Unsupported operand 149"


def finding(err: Exception) -> str:
    """The first line of ``err``'s message that reports a finding, never torch's advice."""
    if _FRAME in str(err):
        return ("it was pickled with protocol 4 or 5, which torch's safe loader cannot read; "
                "save it again with torch.save(obj, path) at torch's default protocol")
    for raw in str(err).splitlines():
        line = raw.strip().removeprefix("WeightsUnpickler error:").strip()
        if line and not any(a in line.lower() for a in _ADVICE):
            return line
    return type(err).__name__


def refused_global(err: Exception) -> str | None:
    """The object (``module.name``) a refused file asked to build, if torch named one."""
    if not isinstance(err, pickle.UnpicklingError):
        return None
    found = _GLOBAL.search(str(err))
    return None if found is None else found.group(1)
