"""NNI v2 configuration files, read unchanged: one table from NNI key to handler.

Every key NNI v2 accepts, and the v1 keys configurations still carry over, has one entry in a
table: a handler that moves its value into spiketune's schema and remembers how the file
spelled it (so problems name the key as written), or a refusal that says why and what to write
instead. Keys compare without case or ``_``, as NNI's own loader does (``trialConcurrency`` and
``trial_concurrency`` are one key), and an NNI v2 key set to ``null`` is read as not set, as
NNI's reference says (at the top level and inside ``trainingService``, ``tuner``,
``assessor`` and ``advisor``). Three tables: :data:`TOP` (the top level), :data:`ALGORITHM`
(inside ``tuner`` / ``assessor`` / ``advisor``: ``{name, classArgs}``) and :data:`SERVICE`
(inside ``trainingService``). After the keys, :func:`translate` settles what needs them all:
the GPU request, the one tuner, the required ``name`` and ``platform``.

GPUs: ``trialGpuNumber: 1`` gives each trial one GPU, among ``trainingService.gpuIndices``
when given (those must exist when the experiment starts), else among every GPU found, at
least one (``gpus = "all"`` with ``require_gpus``); ``0``: no GPU (``CUDA_VISIBLE_DEVICES``
empty); no key: no GPU given out, and trials see the GPUs spiketune's process sees
(``gpus = "inherit"``), as NNI's local mode leaves them.

``maxExperimentDuration`` is NNI's: when it runs out no trial starts, and the running ones
finish (``at_max_duration = "finish"``), where spiketune's own ``max_duration`` stops them.

NNI also puts two experiment settings among an algorithm's arguments (``classArgs:
{optimize_mode: maximize, seed: 42}``); :func:`lift_class_args` moves them to the experiment,
for every form of configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spiketune.errors import Problem

__all__ = ["ALGORITHM", "SERVICE", "TOP", "is_nni", "lift_class_args", "translate"]


def norm(key: str) -> str:
    """A key as NNI compares it: without ``_``, in lower case."""
    return key.replace("_", "").lower()


@dataclass
class Translation:
    """An NNI configuration on its way into spiketune's schema.

    ``data`` holds spiketune's fields; ``names`` maps each field to the key as the file spells
    it (``"trials_per_gpu": "trainingService.maxTrialNumberPerGpu"``); ``problems`` name keys
    as the file spells them already.
    """

    base: Path
    own_keys: frozenset[str]
    data: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: (key as spelled, value) of trialGpuNumber, found at the top or in trainingService.
    gpu_number: tuple[str, Any] | None = None
    #: tuner, assessor, advisor: (key as spelled, value), read after the top level.
    algorithms: dict[str, tuple[str, Any]] = field(default_factory=dict)
    service_key: str = "trainingService"
    service: Mapping[str, Any] = field(default_factory=dict)

    def refuse(self, where: str, value: Any, rule: str) -> None:
        self.problems.append(Problem(where, value, rule))

    def put(self, target: str, where: str, value: Any) -> None:
        """Set the field ``target`` from the key ``where``, unless another key set it."""
        if target in self.data:
            self.refuse(where, value, f"{self.names[target]} is given already")
        else:
            self.data[target] = value
            self.names[target] = where

    def put_path(self, target: str, where: str, value: Any) -> None:
        """As :meth:`put`, a path relative to the file's directory (the schema reports a
        value that is not a string)."""
        self.put(target, where, self.base / Path(value).expanduser()
                 if isinstance(value, str) else value)


#: A handler of one key: (translation, the key as spelled, its value).
Handler = Callable[[Translation, str, Any], None]


# ------------------------------------------------------------------------------ the top level
def _to(target: str) -> Handler:
    """The key is spiketune's field ``target``, value unchanged."""
    return lambda t, where, value: t.put(target, where, value)


def _path_to(target: str) -> Handler:
    """The key is spiketune's field ``target``, a path relative to the file."""
    return lambda t, where, value: t.put_path(target, where, value)


def _refused(rule: str) -> Handler:
    return lambda t, where, value: t.refuse(where, value, rule)


def _no_effect_bool(t: Translation, where: str, value: Any) -> None:
    # NNI's debug mode keeps its own dispatcher's logs; spiketune's logs are always kept
    if not isinstance(value, bool):
        t.refuse(where, value, "must be true or false")


#: NNI's log levels (``logLevel``); spiketune logs the same whichever is given.
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "fatal")


def _log_level(t: Translation, where: str, value: Any) -> None:
    if value not in LOG_LEVELS:
        t.refuse(where, value, f"must be one of {', '.join(LOG_LEVELS)}")


def _manager_ip(t: Translation, where: str, value: Any) -> None:
    # how remote training machines reach NNI's manager; NNI does not use it in local mode
    if not isinstance(value, str) or not value.strip():
        t.refuse(where, value, "must be an IP address or host name (not used: trials run on "
                 "this machine, as in NNI's local mode)")


def _experiment_duration(t: Translation, where: str, value: Any) -> None:
    # NNI starts no trial once it runs out and lets the running ones finish
    t.put("max_duration", where, value)
    t.data["at_max_duration"] = "finish"


def _space_file(t: Translation, where: str, value: Any) -> None:
    if "search_space" in t.data and "search_space_file" not in t.data:
        t.refuse(where, value, "give searchSpace or searchSpaceFile, not both")
        return
    t.names["search_space_file"] = where
    t.names["search_space"] = f"{where}[{value}]"  # problems inside the file's space
    t.data["search_space_file"] = t.base / Path(str(value)).expanduser()


def _gpu_number(t: Translation, where: str, value: Any) -> None:
    if t.gpu_number is not None:
        t.refuse(where, value, f"{t.gpu_number[0]} is given already")
    else:
        t.gpu_number = (where, value)


def _algorithm(t: Translation, where: str, value: Any) -> None:
    t.algorithms[norm(where)] = (where, value)


def _service(t: Translation, where: str, value: Any) -> None:
    t.service_key = where
    if isinstance(value, Mapping):
        t.service = value
    elif isinstance(value, list):
        t.refuse(where, "[...]", "a single local training service only (hybrid lists are not "
                 "supported)")
    else:
        t.refuse(where, value, "must be a mapping {platform: local, ...}")


def _experiment_type(t: Translation, where: str, value: Any) -> None:
    if value != "hpo":
        t.refuse(where, value, "only hpo experiments are supported")


def _annotation(t: Translation, where: str, value: Any) -> None:
    if value is not False:
        t.refuse(where, value, "NNI annotations are not supported; use a search space and set "
                 "it to false")


#: NNI v2's top-level keys, as NNI's documentation spells them (listed in "unknown key").
TOP_KEYS = [
    "experimentName", "searchSpaceFile", "searchSpace", "trialCommand", "trialCodeDirectory",
    "trialConcurrency", "trialGpuNumber", "maxExperimentDuration", "maxTrialNumber",
    "maxTrialDuration", "experimentWorkingDirectory", "experimentType", "useAnnotation",
    "tuner", "assessor", "advisor", "trainingService", "nniManagerIp", "debug", "logLevel",
]

_REMOTE_ONLY = "only for remote training services; spiketune runs trials on this machine"
_NO_V2 = "NNI v1 key with no v2 equivalent; remove it"

#: Top-level key (as :func:`norm` gives it) -> handler.
TOP: dict[str, Handler] = {
    "experimentname": _to("name"),
    "searchspace": _to("search_space"),
    "searchspacefile": _space_file,
    "trialcommand": _to("trial_command"),
    "trialcodedirectory": _path_to("trial_code_directory"),
    "trialconcurrency": _to("concurrency"),
    "trialgpunumber": _gpu_number,
    "maxexperimentduration": _experiment_duration,
    "maxtrialnumber": _to("max_trials"),
    "maxtrialduration": _to("max_trial_duration"),
    "experimentworkingdirectory": _path_to("experiment_dir"),
    "experimenttype": _experiment_type,
    "useannotation": _annotation,
    "tuner": _algorithm,
    "assessor": _algorithm,
    "advisor": _algorithm,
    "trainingservice": _service,
    # NNI v2 keys with no spiketune equivalent
    "sharedstorage": _refused(f"not supported: {_REMOTE_ONLY}"),
    "tunergpuindices": _refused("not supported: spiketune's tuners run in the scheduler, "
                                "without a GPU"),
    # NNI v2 keys that change only NNI's own logging, or that NNI's local mode does not use:
    # accepted, checked, without effect
    "debug": _no_effect_bool,
    "loglevel": _log_level,
    "nnimanagerip": _manager_ip,
    # NNI v1 keys
    "authorname": _refused("no v2 equivalent; remove it"),
    "maxexecduration": _refused("NNI v1 key; NNI v2 spells it maxExperimentDuration"),
    "maxtrialnum": _refused("NNI v1 key; NNI v2 spells it maxTrialNumber"),
    "trainingserviceplatform": _refused("NNI v1 key; NNI v2 uses trainingService: "
                                        "{platform: local}"),
    "searchspacepath": _refused("NNI v1 key; NNI v2 spells it searchSpaceFile"),
    "trial": _refused("NNI v1 key; NNI v2 uses trialCommand, trialCodeDirectory and "
                      "trialGpuNumber"),
    "localconfig": _refused("NNI v1 key; NNI v2 uses trainingService"),
    "logdir": _refused("NNI v1 key; NNI v2 spells it experimentWorkingDirectory"),
    "multiphase": _refused(_NO_V2),
    "multithread": _refused(_NO_V2),
}

#: NNI v2's top-level keys (as :func:`norm` gives them): set to ``null``, one is not set.
_V2_TOP = frozenset(norm(k) for k in (*TOP_KEYS, "sharedStorage", "tunerGpuIndices"))


def set_items(mapping: Mapping[Any, Any], v2_keys: frozenset[str]) -> list[tuple[Any, Any]]:
    """The items of an NNI mapping that are set. NNI's reference: "Setting a field to None or
    null is equivalent to not setting the field", so a v2 key with ``null`` is left out (a
    key NNI v2 does not have is kept, to be refused whatever its value)."""
    return [(key, value) for key, value in mapping.items()
            if not (value is None and isinstance(key, str) and norm(key) in v2_keys)]


#: Keys of :data:`TOP` that do not tell an NNI file from one in spiketune's own schema: keys
#: both schemas have (``search_space``, ``tuner``, ...), and lower-case words too plain to be a
#: sign of NNI (``debug: true`` in an own file is a mistake there).
_NOT_A_SIGN = frozenset({"searchspace", "trialcommand", "trialcodedirectory", "tuner", "assessor",
                         "debug", "localconfig", "logdir", "multiphase", "multithread"})

#: What a key of spiketune's own schema is called in NNI, for an own key met in an NNI file.
_OWN_IN_NNI = {
    "name": "NNI spells it experimentName",
    "experiment_dir": "NNI spells it experimentWorkingDirectory",
    "trial_code_directory": "NNI spells it trialCodeDirectory",
    "max_trials": "NNI spells it maxTrialNumber",
    "max_duration": "NNI spells it maxExperimentDuration",
    "at_max_duration": "NNI's maxExperimentDuration always lets the running trials finish",
    "max_trial_duration": "NNI spells it maxTrialDuration",
    "concurrency": "NNI spells it trialConcurrency",
    "gpus": "NNI uses trialGpuNumber and trainingService.gpuIndices",
    "require_gpus": "NNI uses trialGpuNumber",
    "trials_per_gpu": "NNI spells it trainingService.maxTrialNumberPerGpu",
    "tuner_args": "NNI uses tuner.classArgs",
    "assessor_args": "NNI uses assessor.classArgs",
    "optimize_mode": "NNI puts it in tuner.classArgs",
    "seed": "NNI puts it in tuner.classArgs",
    **dict.fromkeys(
        ("storage", "max_retries", "heartbeat_interval", "grace_period"),
        "NNI has no equivalent: write the file in spiketune's own schema to use it"),
}


def _not_in_table(t: Translation, where: str, value: Any) -> None:
    """A top-level key that is not NNI's: one of spiketune's own schema, or unknown."""
    own = {norm(k): k for k in t.own_keys}
    if norm(where) in own:
        hint = _OWN_IN_NNI.get(own[norm(where)], "not in NNI configs")
        t.refuse(where, value, f"a key of spiketune's own schema in an NNI config; {hint}")
    else:
        t.refuse(where, value, "unknown key; accepted: " + ", ".join(TOP_KEYS))


# ------------------------------------------------------------------ tuner, assessor, advisor
#: A handler inside an algorithm: (translation, the key as spelled, its value, the field the
#: algorithm fills: "tuner" or "assessor").
AlgorithmHandler = Callable[[Translation, str, Any, str], None]


def _name(t: Translation, where: str, value: Any, target: str) -> None:
    t.data[target] = value
    t.names[target] = where


def _class_args(t: Translation, where: str, value: Any, target: str) -> None:
    if value is not None:
        t.data[f"{target}_args"] = value
    t.names[f"{target}_args"] = where
    if isinstance(value, Mapping):
        for lifted in ("optimize_mode", "seed"):
            if lifted in value and lifted not in t.names:
                t.names[lifted] = f"{where}.{lifted}"


def _custom_class(t: Translation, where: str, value: Any, target: str) -> None:
    kind = norm(where.split(".")[0])  # tuner, assessor or advisor
    t.refuse(where, value, f"custom {kind} classes are not supported; use a built-in name")


def _v1_name(t: Translation, where: str, value: Any, target: str) -> None:
    t.refuse(where, value, "NNI v1 key; NNI v2 spells it name")


#: NNI v2's keys inside ``tuner`` / ``assessor`` / ``advisor`` (normalised).
_V2_ALGORITHM = frozenset({"name", "classargs", "classname", "codedirectory"})

#: Key inside ``tuner`` / ``assessor`` / ``advisor`` (normalised) -> handler.
ALGORITHM: dict[str, AlgorithmHandler] = {
    "name": _name,
    "classargs": _class_args,
    **dict.fromkeys(("classname", "codedirectory", "classfilename", "codedir"), _custom_class),
    **dict.fromkeys(("builtintunername", "builtinassessorname", "builtinadvisorname"), _v1_name),
}


def _read_algorithms(t: Translation) -> None:
    if "advisor" in t.algorithms and "tuner" in t.algorithms:
        where, value = t.algorithms["advisor"]
        t.refuse(where, value, "give tuner or advisor, not both")
    for kind in ("tuner", "advisor", "assessor"):
        if kind not in t.algorithms:
            continue
        key, value = t.algorithms[kind]
        target = "assessor" if kind == "assessor" else "tuner"
        if value is None:
            continue
        if not isinstance(value, Mapping):
            t.refuse(key, value, "must be a mapping {name: ..., classArgs: {...}}")
            continue
        for sub, subvalue in set_items(value, _V2_ALGORITHM):
            handler = ALGORITHM.get(norm(str(sub)))
            if handler is None:
                t.refuse(f"{key}.{sub}", subvalue, "unknown key; accepted: name, classArgs")
            else:
                handler(t, f"{key}.{sub}", subvalue, target)
        if target not in t.data:
            t.refuse(f"{key}.name", None, "required")


# ------------------------------------------------------------------------ trainingService
def _platform(t: Translation, where: str, value: Any) -> None:
    if value != "local":
        t.refuse(where, value, "unsupported platform; spiketune runs trials on this machine "
                 "(platform: local)")


def _use_active_gpu(t: Translation, where: str, value: Any) -> None:
    # spiketune gives trials GPU slots without looking at other processes on the GPU
    if not isinstance(value, bool):
        t.refuse(where, value, "must be true or false")


def _reuse_mode(t: Translation, where: str, value: Any) -> None:
    if value is not False:
        t.refuse(where, value, "reuse mode is not supported; set false")


#: trainingService's keys, as NNI's documentation spells them (listed in "unknown key").
SERVICE_KEYS = ["platform", "useActiveGpu", "maxTrialNumberPerGpu", "gpuIndices", "reuseMode",
                "trialCommand", "trialCodeDirectory", "trialGpuNumber"]

#: Key inside ``trainingService`` (normalised) -> handler.
SERVICE: dict[str, Handler] = {
    "platform": _platform,
    "useactivegpu": _use_active_gpu,
    "maxtrialnumberpergpu": _to("trials_per_gpu"),
    "gpuindices": _to("gpus"),
    "reusemode": _reuse_mode,
    "trialcommand": _to("trial_command"),
    "trialcodedirectory": _path_to("trial_code_directory"),
    "trialgpunumber": _gpu_number,
}


def _read_service(t: Translation) -> None:
    items = set_items(t.service, frozenset(SERVICE))
    for sub, value in items:
        where = f"{t.service_key}.{sub}"
        handler = SERVICE.get(norm(str(sub)))
        if handler is None:
            t.refuse(where, value, "unknown key; accepted: " + ", ".join(SERVICE_KEYS))
        else:
            handler(t, where, value)
    if t.service and not any(norm(str(sub)) == "platform" for sub, _ in items):
        t.refuse(f"{t.service_key}.platform", None, "required (local)")


def _settle_gpus(t: Translation) -> None:
    """trialGpuNumber: 0 = no GPU (``CUDA_VISIBLE_DEVICES`` empty); absent = no GPU given out,
    the GPUs this process sees left visible, as NNI's local mode does; 1 = one GPU per trial,
    among gpuIndices when given, else among every GPU found, which must be at least one."""
    where, number = t.gpu_number or ("trialGpuNumber", None)
    if number in (0, None):
        if t.data.get("gpus") not in (None, [], ""):
            t.refuse(t.names["gpus"], t.data["gpus"],
                     f"has no effect unless {where} is 1; set {where}: 1 to give each trial one "
                     "of these GPUs")
        t.data.pop("gpus", None)
        if number is None:
            t.data["gpus"] = "inherit"
            t.names["gpus"] = where
    elif number == 1 and not isinstance(number, bool):
        if t.data.get("gpus", "all") in ([], ""):
            t.refuse(t.names["gpus"], t.data["gpus"], "must list at least one GPU index, or be "
                     "left out for every GPU found")
        elif "gpus" not in t.data:
            t.data["gpus"], t.data["require_gpus"] = "all", True
            t.names["gpus"] = t.names["require_gpus"] = where
    else:
        t.refuse(where, number, "must be 0 (no GPU) or 1 (one GPU per trial)")


# ------------------------------------------------------------------------------ the whole
def is_nni(raw: Mapping[str, Any], own_keys: frozenset[str]) -> bool:
    """Whether a configuration file is in NNI's form: a camelCase key, a key only NNI uses,
    or a ``tuner`` / ``assessor`` given as a mapping ``{name: ..., classArgs: ...}``."""
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        if key != key.lower():
            return True
        if key not in own_keys and norm(key) in TOP and norm(key) not in _NOT_A_SIGN:
            return True
        if key in ("tuner", "assessor") and isinstance(value, Mapping):
            return True
    return False


def translate(
    raw: Mapping[str, Any], base: Path, own_keys: frozenset[str]
) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """An NNI v2 configuration in spiketune's schema: (fields, field -> key as the file
    spells it, problems naming keys as the file spells them). ``base``: the file's directory,
    which relative paths start from; ``own_keys``: the keys of spiketune's own schema."""
    t = Translation(base, own_keys)
    for key, value in set_items(raw, _V2_TOP):
        if not isinstance(key, str):
            t.refuse(str(key), value, "keys must be strings")
            continue
        TOP.get(norm(key), _not_in_table)(t, key, value)
    _read_algorithms(t)
    _read_service(t)
    _settle_gpus(t)
    t.data.setdefault("trial_code_directory", base)
    t.names.setdefault("trial_command", "trialCommand")
    t.names.setdefault("search_space", "searchSpace")
    return t.data, t.names, t.problems


def lift_class_args(data: dict[str, Any]) -> list[Problem]:
    """Move ``optimize_mode`` and ``seed`` out of ``tuner_args`` (and ``optimize_mode`` out of
    ``assessor_args``) into the experiment's fields, where NNI's ``classArgs`` puts them; a
    value that differs from the experiment's own is a problem: set it once."""
    problems = []
    for args_key, keys in (("tuner_args", ("optimize_mode", "seed")),
                           ("assessor_args", ("optimize_mode",))):
        args = data.get(args_key)
        if not isinstance(args, Mapping):
            continue
        args = dict(args)
        for key in keys:
            if key not in args:
                continue
            value = args.pop(key)
            if key in data and data[key] != value:
                problems.append(Problem(f"{args_key}.{key}", value,
                                        f"differs from the experiment's {key} ({data[key]!r}); "
                                        "set it once"))
            else:
                data[key] = value
        data[args_key] = args
    return problems
