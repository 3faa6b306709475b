"""Tuners: how the next trial's parameters are chosen, by NNI name, mapped onto Optuna samplers.

Each NNI tuner maps to the Optuna sampler with the same intent, or is refused with the
alternatives named. Names are matched ignoring case, ``-``/``_`` and a trailing
``Tuner``/``Advisor``/``Sampler`` (``GPTuner``, ``gp`` and ``GP`` are one tuner).

================  ================================================================================
name              what runs, and why
================  ================================================================================
TPE               ``TPESampler``: both are the tree-structured Parzen estimator. Optuna's
                  defaults (10 random start-up trials where NNI uses 20; a constant liar for
                  running trials). NNI's ``tpe_args`` (``n_startup_jobs``, ``n_ei_candidates``,
                  ``prior_weight``, ``constant_liar_type: worst``) are honoured.
Random            ``RandomSampler``: the same independent draws.
GridSearch        Every point of :meth:`SearchSpace.grid`, in order, each enqueued once
                  (:meth:`Tuner.fixed_trials`); the experiment ends when they are done. The
                  space must be finite (choice, randint, quniform, qloguniform), where NNI would
                  grid continuous ranges ever finer.
Batch             NNI's BatchTuner: the search space is one ``choice`` whose options are whole
                  parameter sets; each set runs once, in order, as is.
Evolution         ``NSGAIISampler``, Optuna's genetic algorithm (for one objective its
                  non-dominated sort is plain ranking). NNI's ``population_size`` is kept
                  (default 32); NSGA-II breeds by crossover and mutation where NNI mutates a
                  tournament winner: same family, different operators.
GP                ``GPSampler``: Gaussian-process Bayesian optimisation, like NNI's GP tuner.
                  ``cold_start_num`` becomes ``n_startup_trials``; the acquisition is log
                  expected improvement, so ``utility`` accepts only ``ei``. Needs torch and
                  scipy.
Hyperband         NNI's advisor: random configurations plus successive halving, i.e.
                  ``RandomSampler`` with ``HyperbandPruner(min_resource=1, max_resource=R,
                  reduction_factor=eta)`` (:meth:`Tuner.implied_assessor`). NNI hands each trial
                  its budget as ``TRIAL_BUDGET``; here every trial receives ``TRIAL_BUDGET = R``
                  and the pruner stops weak trials early from their intermediate results (one
                  per unit of budget), so no separate assessor may be set. The pruner runs
                  every bracket side by side (NNI's ``exec_mode: parallelism``); NNI's
                  ``serial`` mode, one bracket after another, is refused.
BOHB              TPE in place of random draws: ``TPESampler`` with
                  ``HyperbandPruner(min_budget, max_budget, eta)``, ``TRIAL_BUDGET =
                  max_budget``; ``min_points_in_model`` becomes TPE's ``n_startup_trials``.
CmaEs             Optuna extra: ``CmaEsSampler`` (needs the ``cmaes`` package).
QMC               Optuna extra: ``QMCSampler`` (Sobol or Halton low-discrepancy points).
NSGAII            Optuna extra: ``NSGAIISampler`` with Optuna's parameter names.
BruteForce        Optuna extra: every point of the finite grid once, in an order shuffled by
                  ``seed`` (what ``BruteForceSampler`` does), enqueued like GridSearch.
Anneal            refused: hyperopt's annealing has no Optuna counterpart (CmaEs and TPE also
                  concentrate the search around good points).
Metis, SMAC,      refused: their surrogates (GP with outlier diagnosis, random forests, Bayesian
DNGO              neural networks) do not exist in Optuna; GP and TPE are the closest.
PBT               refused: population-based training swaps checkpoints between running trials,
                  which a one-process-per-trial engine does not do; Evolution, Hyperband or BOHB
                  instead.
PPOTuner,         refused: reinforcement learning and architecture search tuners; TPE or
NetworkMorphism,  Evolution instead.
RegularizedEvol.
================  ================================================================================

``optimize_mode`` and ``seed`` are experiment settings (NNI puts them in ``classArgs``; the
configuration moves them up), so a tuner's ``create_sampler`` receives them.

Several objectives (``objectives`` in the configuration): TPE, Random, GridSearch, Batch,
Evolution, NSGAII, GP, QMC and BruteForce sample multi-objective studies (TPE as MOTPE, GP
with expected hypervolume improvement); CmaEs is single-objective and refused, and so are
Hyperband and BOHB, whose early stopping Optuna cannot do with several objectives.
Constraints: TPE, Evolution, NSGAII, GP and BOHB learn from the constraint values the
scheduler sets on each finished trial (Optuna 5's ``Trial.set_constraint``, which replaces the
deprecated ``constraints_func``); the other tuners record them without steering away from
infeasible regions (CmaEs says so in a warning).
"""

from __future__ import annotations

import abc
import importlib.util
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from spiketune._validation import cross_field, validate_args
from spiketune.engine import assessors
from spiketune.engine._algorithm import ArgumentsOwner, canonical_name
from spiketune.engine.space import SearchSpace
from spiketune.errors import ConfigError, Problem, SearchSpaceError

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler

__all__ = ["TUNERS", "Tuner", "canonical_tuner_name", "make_tuner"]

_Int0 = Annotated[int, Strict(), Field(ge=0)]
_Int1 = Annotated[int, Strict(), Field(ge=1)]
_Prob = Annotated[float, Field(ge=0, le=1)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tuner(ArgumentsOwner, abc.ABC):
    """Base of every tuner (the extension point for choosing parameters).

    Lifecycle:

    1. :func:`make_tuner` validates the arguments once, when the configuration is read
       (``Args`` is the pydantic model of the accepted ``classArgs``); nothing of Optuna is
       imported yet.
    2. The configuration calls :meth:`check` with the search space (e.g. a grid must be finite)
       and builds the space with :attr:`batch_space` and :attr:`constants`.
    3. When :meth:`fixed_trials` is not None, the scheduler enqueues point ``i`` on its
       working study (``enqueue_trial``) for the trial of sequence id ``i``, and stops when
       they are used up.
    4. The scheduler calls :meth:`create_sampler` each time it opens the study, and uses
       :meth:`implied_assessor` when the tuner decides early stopping itself.

    A subclass sets ``name`` and ``Args`` and implements :meth:`create_sampler`.
    """

    name: ClassVar[str]
    Args: ClassVar[type[BaseModel]] = _Args
    #: The search space is NNI's Batch form (see :meth:`SearchSpace.batch`).
    batch_space: ClassVar[bool] = False
    #: Its sampler handles several objectives (``directions`` longer than one).
    multi_objective: ClassVar[bool] = True
    #: Its sampler reads the trials' constraint values and steers away from infeasible ones.
    learns_constraints: ClassVar[bool] = False

    def __init__(self, args: BaseModel) -> None:
        self.args = args

    @abc.abstractmethod
    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        """A new Optuna sampler for a study over ``space``; same ``seed``, same draws."""

    def check(self, space: SearchSpace) -> list[Problem]:
        """Problems with using this tuner on ``space`` (none by default)."""
        return []

    def fixed_trials(self, space: SearchSpace, *, seed: int | None = None) -> list[dict] | None:
        """Points to enqueue, in order, in the space's search coordinates (see
        :meth:`SearchSpace.grid_optuna_params`), or None when the tuner samples freely.

        When not None these are *all* the trials the tuner wants: the experiment ends when they
        have run. ``space.sample(trial)`` turns each into the parameters the trial receives
        (which the study stores as the trial's params).
        """
        return None

    @property
    def constants(self) -> dict[str, Any]:
        """Parameters every trial receives on top of the search space (e.g. ``TRIAL_BUDGET``)."""
        return {}

    def implied_assessor(self) -> assessors.Assessor | None:
        """The early-stopping rule that is part of this tuner (Hyperband, BOHB), or None."""
        return None


class _NniTpeArgs(_Args):
    """NNI's ``tpe_args``; its constant liar ``best``/``mean`` have no Optuna equivalent."""

    n_startup_jobs: _Int0 | None = None
    n_ei_candidates: _Int1 | None = None
    prior_weight: Annotated[float, Field(gt=0)] | None = None
    constant_liar_type: Literal["worst"] | None = "worst"


class TPE(Tuner):
    name = "TPE"

    class Args(_Args):
        n_startup_trials: _Int0 | None = None
        n_ei_candidates: _Int1 | None = None
        prior_weight: Annotated[float, Field(gt=0)] | None = None
        multivariate: bool = False
        group: bool = False
        constant_liar: bool = True
        tpe_args: _NniTpeArgs | None = None

        @model_validator(mode="after")
        def _group_needs_multivariate(self) -> TPE.Args:
            # Optuna refuses it only when the run starts: said here, when the config is read
            if self.group and not self.multivariate:
                raise cross_field("group", self.group, "group=true needs multivariate=true "
                                  "(groups are of the multivariate TPE)")
            return self

    def sampler_kwargs(self) -> dict[str, Any]:
        args = self.args
        assert isinstance(args, TPE.Args)
        nni = args.tpe_args or _NniTpeArgs()
        kwargs: dict[str, Any] = {
            "multivariate": args.multivariate,
            "group": args.group,
            "constant_liar": args.constant_liar and nni.constant_liar_type is not None,
        }
        startup = args.n_startup_trials if args.n_startup_trials is not None else nni.n_startup_jobs
        candidates = args.n_ei_candidates or nni.n_ei_candidates
        prior = args.prior_weight or nni.prior_weight
        if startup is not None:
            kwargs["n_startup_trials"] = startup
        if candidates is not None:
            kwargs["n_ei_candidates"] = candidates
        if prior is not None:
            kwargs["prior_weight"] = prior
        return kwargs

    learns_constraints = True

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import TPESampler

        return TPESampler(seed=seed, **self.sampler_kwargs())


class Random(Tuner):
    name = "Random"

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import RandomSampler

        return RandomSampler(seed=seed)


def _grid_problems(tuner: str, space: SearchSpace) -> list[Problem]:
    try:
        space.check_grid()
    except SearchSpaceError as exc:
        return [Problem(p.field, p.value, f"{tuner}: {p.rule}") for p in exc.problems]
    return []


class GridSearch(Tuner):
    name = "GridSearch"

    def check(self, space: SearchSpace) -> list[Problem]:
        return _grid_problems(self.name, space)

    def fixed_trials(self, space: SearchSpace, *, seed: int | None = None) -> list[dict] | None:
        return space.grid_optuna_params()

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        # Only reached if more trials are asked than the grid has; the scheduler stops first.
        from optuna.samplers import RandomSampler

        return RandomSampler(seed=seed)


class BruteForce(GridSearch):
    name = "BruteForce"

    def fixed_trials(self, space: SearchSpace, *, seed: int | None = None) -> list[dict] | None:
        return space.shuffled_grid_optuna_params(seed)


class Batch(GridSearch):
    """Runs exactly the listed configurations, in order (each is one point of the batch form)."""

    name = "Batch"
    batch_space = True

    def check(self, space: SearchSpace) -> list[Problem]:
        if not space.is_batch:
            return [Problem("search_space", space.to_nni(), "the Batch tuner needs its batch form")]
        return []


class Evolution(Tuner):
    name = "Evolution"

    class Args(_Args):
        population_size: Annotated[int, Strict(), Field(ge=2)] = 32

    learns_constraints = True

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import NSGAIISampler

        args = self.args
        assert isinstance(args, Evolution.Args)
        return NSGAIISampler(population_size=args.population_size, seed=seed)


class NSGAII(Tuner):
    name = "NSGAII"

    class Args(_Args):
        population_size: Annotated[int, Strict(), Field(ge=2)] = 50
        mutation_prob: _Prob | None = None
        crossover_prob: _Prob = 0.9
        swapping_prob: _Prob = 0.5

    learns_constraints = True

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import NSGAIISampler

        return NSGAIISampler(seed=seed, **self.args.model_dump())


def _missing_modules(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


class GP(Tuner):
    name = "GP"
    requires: ClassVar[tuple[str, ...]] = ("torch", "scipy")

    class Args(_Args):
        cold_start_num: _Int0 | None = None
        n_startup_trials: _Int0 | None = None
        utility: Literal["ei"] | None = None
        deterministic_objective: bool = False

    learns_constraints = True

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import GPSampler

        args = self.args
        assert isinstance(args, GP.Args)
        startup = args.n_startup_trials
        if startup is None:
            startup = args.cold_start_num
        kwargs: dict[str, Any] = {"deterministic_objective": args.deterministic_objective}
        if startup is not None:
            kwargs["n_startup_trials"] = startup
        return GPSampler(seed=seed, **kwargs)


class CmaEs(Tuner):
    name = "CmaEs"
    multi_objective = False  # CMA-ES ranks one value per trial
    requires: ClassVar[tuple[str, ...]] = ("cmaes",)

    class Args(_Args):
        sigma0: Annotated[float, Field(gt=0)] | None = None
        n_startup_trials: _Int0 = 1
        restart_strategy: Literal["ipop", "bipop"] | None = None
        # CMA-ES's update needs two samples per generation (one fails its first update)
        popsize: Annotated[int, Strict(), Field(ge=2)] | None = None
        use_separable_cma: bool = False
        with_margin: bool = False
        lr_adapt: bool = False
        consider_pruned_trials: bool = False

        @model_validator(mode="after")
        def _variants_that_go_together(self) -> CmaEs.Args:
            # Optuna's CmaEsSampler refuses these only when the run starts
            if self.lr_adapt and (self.use_separable_cma or self.with_margin):
                raise cross_field("lr_adapt", self.lr_adapt, "lr_adapt=true cannot be combined "
                                  "with use_separable_cma or with_margin")
            if self.use_separable_cma and self.with_margin:
                raise cross_field("with_margin", self.with_margin, "with_margin=true cannot be "
                                  "combined with use_separable_cma=true")
            return self

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import CmaEsSampler

        # Categorical and conditional parameters fall back to independent random draws.
        return CmaEsSampler(seed=seed, warn_independent_sampling=False, **self.args.model_dump())


class QMC(Tuner):
    name = "QMC"

    class Args(_Args):
        qmc_type: Literal["sobol", "halton"] = "sobol"
        scramble: bool = False

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.exceptions import ExperimentalWarning
        from optuna.samplers import QMCSampler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # chosen on purpose by name
            return QMCSampler(seed=seed, warn_independent_sampling=False, **self.args.model_dump())


class Hyperband(Tuner):
    name = "Hyperband"

    class Args(_Args):
        R: _Int1 = 60
        eta: Annotated[int, Strict(), Field(ge=2)] = 3
        exec_mode: str = "parallelism"

        @field_validator("exec_mode")
        @classmethod
        def _brackets_side_by_side(cls, value: str) -> str:
            if value == "serial":
                raise ValueError(
                    "not supported: Optuna's HyperbandPruner, which runs Hyperband here, runs "
                    "every bracket side by side (NNI's parallelism mode), never one bracket "
                    "after another; use parallelism (the default)"
                )
            if value != "parallelism":
                raise ValueError("must be parallelism (NNI's other mode, serial, is not "
                                 "supported)")
            return value

    @property
    def max_budget(self) -> int:
        assert isinstance(self.args, Hyperband.Args)
        return self.args.R

    @property
    def constants(self) -> dict[str, Any]:
        return {"TRIAL_BUDGET": self.max_budget}

    def implied_assessor(self) -> assessors.Assessor | None:
        assert isinstance(self.args, Hyperband.Args)
        return assessors.make_assessor(
            "Hyperband",
            {"min_resource": 1, "max_resource": self.args.R, "reduction_factor": self.args.eta},
        )

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import RandomSampler

        return RandomSampler(seed=seed)


class BOHB(Tuner):
    name = "BOHB"

    class Args(_Args):
        min_budget: _Int1 = 1
        max_budget: _Int1 = 3
        eta: Annotated[int, Strict(), Field(ge=2)] = 3
        min_points_in_model: _Int0 | None = None

    @property
    def constants(self) -> dict[str, Any]:
        assert isinstance(self.args, BOHB.Args)
        return {"TRIAL_BUDGET": self.args.max_budget}

    def implied_assessor(self) -> assessors.Assessor | None:
        args = self.args
        assert isinstance(args, BOHB.Args)
        return assessors.make_assessor(
            "Hyperband",
            {"min_resource": args.min_budget, "max_resource": args.max_budget,
             "reduction_factor": args.eta},
        )

    def check(self, space: SearchSpace) -> list[Problem]:
        args = self.args
        assert isinstance(args, BOHB.Args)
        if args.max_budget < args.min_budget:
            return [Problem("tuner_args.max_budget", args.max_budget, "must be >= min_budget")]
        return []

    learns_constraints = True

    def create_sampler(
        self, space: SearchSpace, *, seed: int | None, directions: Sequence[str]
    ) -> BaseSampler:
        from optuna.samplers import TPESampler

        args = self.args
        assert isinstance(args, BOHB.Args)
        kwargs: dict[str, Any] = {}
        if args.min_points_in_model is not None:
            kwargs["n_startup_trials"] = args.min_points_in_model
        return TPESampler(seed=seed, **kwargs)


#: Tuners by canonical name.
TUNERS: dict[str, type[Tuner]] = {
    cls.name: cls
    for cls in (TPE, Random, GridSearch, Batch, Evolution, GP, Hyperband, BOHB,
                CmaEs, QMC, NSGAII, BruteForce)
}

_ALIASES = {
    "batchtuner": "Batch",
    "grid": "GridSearch",
    "randomsearch": "Random",
    "naiveevolution": "Evolution",
    "cma": "CmaEs",
    "nsga2": "NSGAII",
    "tpesampler": "TPE",
}

_REFUSED: dict[str, tuple[str, list[str]]] = {
    "anneal": ("hyperopt's simulated annealing has no Optuna counterpart", ["CmaEs", "TPE"]),
    "metis": ("its GP with outlier diagnosis has no Optuna counterpart", ["GP", "TPE"]),
    "smac": ("its random-forest surrogate has no Optuna counterpart", ["TPE", "GP"]),
    "dngo": ("its Bayesian neural-network surrogate has no Optuna counterpart", ["GP", "TPE"]),
    "pbt": (
        "population-based training swaps checkpoints between running trials, which "
        "one-process-per-trial runs do not do",
        ["Evolution", "Hyperband", "BOHB"],
    ),
    "ppo": ("a reinforcement-learning tuner has no Optuna counterpart", ["TPE", "Evolution"]),
    "networkmorphism": ("it searches network architectures, not hyperparameters",
                        ["TPE", "Evolution"]),
    "regularizedevolution": ("it is an architecture-search tuner", ["Evolution", "TPE"]),
}


def canonical_tuner_name(name: str) -> str:
    """The canonical spelling of an accepted tuner name; ConfigError naming alternatives."""
    return canonical_name(
        "tuner", name, TUNERS, suffixes=("tuner", "advisor", "sampler"), aliases=_ALIASES,
        refused=_REFUSED,
    )


def make_tuner(name: str, args: Mapping[str, Any] | None = None) -> Tuner:
    """Build the tuner ``name`` with validated ``args`` (NNI ``classArgs``).

    ``optimize_mode`` and ``seed`` are settings of the experiment, not arguments of a tuner:
    the configuration takes them out of NNI's ``classArgs`` before it calls this. Raises
    :class:`ConfigError` naming ``tuner`` or ``tuner_args.<key>``.
    """
    cls = TUNERS[canonical_tuner_name(name)]
    args = {} if args is None else args
    problems: list[Problem] = []
    missing = _missing_modules(*getattr(cls, "requires", ()))
    if missing:
        problems.append(Problem("tuner", name, f"needs the Python packages {', '.join(missing)}; "
                                               "install them or choose another tuner"))
    parsed, arg_problems = validate_args(cls.Args, args, "tuner_args")
    problems += arg_problems
    if problems:
        raise ConfigError(problems)
    assert parsed is not None
    return cls(parsed)
