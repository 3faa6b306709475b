"""Population mode, trial side: one process trains several trials (its *members*) together.

A trial built on :mod:`spiketune.snn` trains many small networks faster as one batched
population (:class:`spiketune.snn.PopulationTrainer`) than one per process. When the
experiment sets ``population = K``, the engine starts the trial command once for up to K
trials and names them in ``population.json``; the command asks for them with
:func:`population`::

    import spiketune.trial as st

    for member in st.population():            # one member when not in population mode
        params = member.parameters
    ...
    member.report_intermediate_result(acc)    # each member reports as its own trial
    if member.should_stop():                  # the assessor pruned it, or a timeout / stop
        ...                                   # train it no further (the others go on)
    with member:                              # st.* calls inside go to this member:
        st.offer_best_model(...)              # offer_best_model, nni.report_*, ...
    member.report_final_result(result)
    member.fail("diverged")                   # this member failed; the others go on

Every member is recorded as its own trial (reports, pruning, outcome, logs); the process's
stdout and stderr are the population's, in ``<experiment>/populations/<first number>/``. A
member with neither a final result nor an end note when the process exits failed with the
process (its exit status and stderr), and is retried once.

A population can also take new members while it runs, so that it stays full when some of
its members were pruned early: a script that calls :func:`joining` between epochs gets the
trials the engine added since the last call (and the engine, seeing it ask, refills the
places of members that ended); :func:`stop_joining` says it takes no more. An offer the
process never claimed when it exits goes to another process: nothing is lost either way::

    for member in st.joining():               # [] outside population mode
        ...                                   # build it and add it to the population
    st.stop_joining()                         # before the last members finish

Outside population mode (launched as one trial, or run by hand), :func:`population` gives
one member: the trial itself, through the usual channel. So the same script runs either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

from spiketune.trial import _protocol as protocol

__all__ = ["Member", "in_population", "joining", "population", "stop_joining"]


class _MemberChannel:
    """The channel of one member: its ``parameter.json`` in, its ``metrics.jsonl`` out."""

    def __init__(self, entry: dict[str, Any], experiment_id: str) -> None:
        self.trial_dir: Path | None = Path(entry["trial_dir"])
        self._dir = Path(entry["trial_dir"])
        self.nni_trial_id = str(entry["number"])
        self.experiment_id = experiment_id
        self.sequence_id = int(entry.get("sequence_id", 0) or 0)
        self.parameters = protocol.read_parameters(self._dir)

    def report(self, kind: str, value: dict[str, Any]) -> None:
        protocol.append_metric(self._dir, kind, value)


class Member:
    """One trial of a population (or the trial itself, outside population mode).

    ``parameters``: what the tuner chose for it; ``trial_id``: its number as text (NNI's
    trial id); ``trial_dir``: its own directory (None when run by hand). Reports go to this
    trial alone; ``with member:`` sends the module-level calls of :mod:`spiketune.trial`
    (and of the ``nni`` stand-in) made in the block to it too.
    """

    def __init__(self, channel: protocol.Channel, *, pooled: bool) -> None:
        self._channel = channel
        self._pooled = pooled  # one of several trials in this process
        self._over = False
        self._previous: list[protocol.Channel | None] = []

    @property
    def parameters(self) -> dict[str, Any]:
        return self._channel.parameters

    @property
    def trial_id(self) -> str:
        return self._channel.nni_trial_id

    @property
    def sequence_id(self) -> int:
        return self._channel.sequence_id

    @property
    def trial_dir(self) -> Path | None:
        return self._channel.trial_dir

    def report_intermediate_result(self, metric: Any) -> None:
        """One intermediate result of this member (see
        :func:`spiketune.trial.report_intermediate_result`)."""
        self._channel.report(protocol.INTERMEDIATE, protocol.normalize_metric(metric))

    def report_final_result(self, metric: Any) -> None:
        """This member's result: the engine records it as soon as it reads it."""
        from spiketune.trial._runtime import quick_exit_after_result

        self._channel.report(protocol.FINAL, protocol.normalize_metric(metric))
        self._over = True
        quick_exit_after_result()

    def should_stop(self) -> bool:
        """Whether the engine asked this member to stop (the assessor pruned it, it ran past
        ``max_trial_duration``, or the experiment is stopping). Once this returns True the
        member is over: the engine records it, and nothing more it reports counts. Cheap (one
        ``stat``): call it after every epoch. Always False outside population mode, where the
        engine ends the process instead."""
        if not self._pooled or self._over:
            return self._over and self._pooled
        trial_dir = self.trial_dir
        assert trial_dir is not None
        if not (trial_dir / protocol.STOP_REQUEST_FILE).exists():
            return False
        protocol.write_member_end(trial_dir, "stopped")
        self._over = True
        return True

    def fail(self, reason: str) -> None:
        """This member failed (``reason`` is recorded); the other members go on. Outside
        population mode it raises ``RuntimeError(reason)``: the trial fails with it."""
        if not self._pooled:
            raise RuntimeError(reason)
        trial_dir = self.trial_dir
        assert trial_dir is not None
        protocol.write_member_end(trial_dir, "failed", reason)
        self._over = True

    def __enter__(self) -> Member:
        self._previous.append(getattr(protocol._bound, "channel", None))
        protocol.bind(self._channel)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        protocol.bind(self._previous.pop())

    def __repr__(self) -> str:
        return f"Member(trial_id={self.trial_id!r}, parameters={self.parameters!r})"


def in_population() -> bool:
    """Whether this process was started for a population (``population = K`` in the
    experiment), rather than for one trial."""
    return bool(os.environ.get(protocol.ENV_POPULATION_FILE))


def population() -> list[Member]:
    """The trials this process trains: the members of its population, in the order the tuner
    chose them; outside population mode, one member that is the trial itself."""
    path = os.environ.get(protocol.ENV_POPULATION_FILE)
    if not path:
        return [Member(protocol.channel(), pooled=False)]
    experiment_id = os.environ.get(protocol.ENV_EXPERIMENT_ID, "")
    entries = protocol.read_population(Path(path))
    return [Member(_MemberChannel(e, experiment_id), pooled=True) for e in entries]


def _population_dir() -> Path | None:
    path = os.environ.get(protocol.ENV_POPULATION_FILE)
    return Path(path).parent if path else None


def joining() -> list[Member]:
    """The trials the engine added to this running population since the last call, in the
    order the tuner chose them; [] outside population mode. The first call tells the engine
    that this process takes new members: from then on it offers one whenever a member of
    this population has ended, so call it between epochs until :func:`stop_joining`. Each
    member returned is this process's to train and report, as those of :func:`population`."""
    directory = _population_dir()
    if directory is None:
        return []
    protocol.set_accepting(directory, True)
    experiment_id = os.environ.get(protocol.ENV_EXPERIMENT_ID, "")
    return [Member(_MemberChannel(e, experiment_id), pooled=True)
            for e in protocol.claim_members(directory)]


def stop_joining() -> None:
    """This process takes no more members (call it once it will not call :func:`joining`
    again); an offer made meanwhile and never claimed is given to another process when this
    one exits. Nothing outside population mode."""
    directory = _population_dir()
    if directory is not None:
        protocol.set_accepting(directory, False)
