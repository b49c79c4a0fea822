"""Proposers: where a study's points come from, behind one interface.

Every proposer hands out several points at once for parallel evaluation, and is told each
point's outcome exactly once. Points handed out but not evaluated yet are *pending*:

- Optuna samplers keep them as RUNNING trials of the head's in-memory study, which is how
  Optuna itself treats pending trials; TPE runs with ``constant_liar=True`` (a pending point
  counts as if it had the worst value seen), which spreads parallel proposals.
- scikit-optimize models are refitted with each pending point told a lie (its ``liar``
  strategy: ``cl_max``, the worst value seen, by default; ``cl_mean`` or ``cl_min``), then
  asked for a batch with the same strategy.

Names: ``optuna:tpe``, ``optuna:gp``, ``optuna:cmaes``, ``optuna:nsga2``, ``optuna:nsga3``,
``optuna:qmc``, ``optuna:random``, ``optuna:grid``, any Optuna sampler by import path
(``package.module:SamplerClass``), ``skopt:gp``, ``skopt:rf``, ``skopt:et``,
``skopt:gbrt``, ``nevergrad:NAME`` and ``bayes_opt:ucb|ei`` (:mod:`hpo.foreign`), and
``auto``, the default, which chooses among them as the study grows (:mod:`hpo.auto`).
``proposer_options`` in the spec go to the sampler's constructor.
"""

from __future__ import annotations

import abc
import importlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import json_to_distribution

from idds.errors import SpecError

if TYPE_CHECKING:
    from hpo.spec import StudySpec


@dataclass(frozen=True)
class Point:
    """A proposed point: the parameters, and the proposer's handle to tell its outcome;
    ``by``, what made it where a proposer chooses among others, and ``note``, why it
    changed to that one here."""

    params: dict[str, Any]
    handle: Any
    by: str | None = None
    note: str | None = None


class Proposer(abc.ABC):
    """Proposes points for one study; lives in the head, called from one thread.

    Contract: :meth:`ask` returns at most ``n`` points (fewer only when the space is
    exhausted, as a finished grid); each point asked, or restored as pending, is told
    exactly once with :meth:`tell`. ``values`` is None for a failed point. Values are in the
    study's own directions; a proposer converts them as its model needs.
    """

    def __init__(self, spec: StudySpec, seed: int | None) -> None:
        self.spec = spec
        self.seed = seed

    @abc.abstractmethod
    def ask(self, n: int) -> list[Point]:
        """Up to ``n`` new points."""

    @abc.abstractmethod
    def tell(
        self,
        point: Point,
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pruned: bool = False,
    ) -> None:
        """The outcome of a point handed out by :meth:`ask` or :meth:`restore` (``pruned``:
        it was stopped early at the value given)."""

    @abc.abstractmethod
    def restore(
        self,
        params: dict[str, Any],
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pending: bool = False,
        pruned: bool = False,
        intermediate: dict[int, float] | None = None,
        distributions: dict[str, Any] | None = None,
    ) -> Point | None:
        """Rebuild from the database: a finished point (told at once), or a pending one
        (returned, to be told later)."""

    def report(self, point: Point, step: int, value: float) -> bool:
        """A progress report of a pending point; True if it should stop (be pruned)."""
        return False

    @property
    def replicable(self) -> bool:
        """Whether copies of this proposer, each told the same outcomes and the others'
        points as pending, may ask at once (:mod:`hpo.replicas`): their asks are independent
        enough given the pending points."""
        return False

    @property
    def learns(self) -> bool:
        """Whether its points depend on the results told (not so for random and
        quasi-random sampling, whose sequence the seed alone fixes)."""
        return True

    def observe(self, run_s: float) -> None:  # noqa: B027 - an optional hook
        """An evaluation's run time on its worker (a proposer may weigh its own cost)."""


# --- Optuna ------------------------------------------------------------------------------


def _needs(package: str, proposer: str, extra: str) -> None:
    try:
        importlib.import_module(package)
    except ImportError:
        raise SpecError(
            f"proposer {proposer} needs the {package} package: pip install 'idds[{extra}]'"
        ) from None


def _tpe(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    # Pending points count as bad ones (spreads parallel proposals); the multivariate model
    # sees correlations between parameters (Optuna recommends it; it is off in Optuna's default).
    opts.setdefault("constant_liar", True)
    opts.setdefault("multivariate", True)
    return optuna.samplers.TPESampler(seed=seed, **opts)


def _gp(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    _needs("torch", "optuna:gp", "gp")
    warping = opts.pop("output_warping", True)
    if warping not in (True, False):
        raise SpecError(f"proposer_options.output_warping: {warping!r} is not true or false")
    sampler = WarpedGPSampler if warping and len(spec.directions) == 1 else None
    return (sampler or optuna.samplers.GPSampler)(seed=seed, **opts)


class WarpedGPSampler(optuna.samplers.GPSampler):
    """Optuna's GP sampler fitted to the values after a Yeo-Johnson transform (output
    warping, which Optuna's own notes list as missing): the transform's power is fitted to
    the values seen, so that a few very bad points (a diverged training, a corner of a
    badly scaled space) do not flatten the model where the good points are. One objective;
    the ranking of the points is kept."""

    def _sample_relative_impl(
        self, study: Any, completed: list[Any], running: list[Any], space: Any
    ) -> dict[str, Any]:
        return super()._sample_relative_impl(  # type: ignore[no-any-return]
            study, _warped(study, completed), running, space
        )


def _warped(study: Any, trials: list[Any]) -> list[Any]:
    """Copies of ``trials`` with their values Yeo-Johnson transformed (lower is better kept)."""
    import copy

    import numpy as np
    from sklearn.preprocessing import PowerTransformer

    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    y = sign * np.array([t.values[0] for t in trials], dtype=float)
    if len(y) < 3 or not np.all(np.isfinite(y)) or np.ptp(y) == 0:
        return trials
    z = ((y - y.mean()) / y.std())[:, None]
    with warnings.catch_warnings():  # a power that overflows on odd values: keep z
        warnings.simplefilter("ignore", RuntimeWarning)
        warped = PowerTransformer(method="yeo-johnson").fit_transform(z)[:, 0]
    if not np.all(np.isfinite(warped)):
        return trials
    out = []
    for trial, value in zip(trials, warped, strict=True):
        twin = copy.copy(trial)
        twin._values = [float(sign * value)]
        out.append(twin)
    return out


def _cmaes(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    _needs("cmaes", "optuna:cmaes", "cmaes")
    categorical = [n for n, p in spec.space.items() if p.type == "categorical"]
    if categorical:
        raise SpecError(
            f"proposer optuna:cmaes cannot handle categorical parameters ({', '.join(categorical)})"
        )
    return optuna.samplers.CmaEsSampler(seed=seed, **opts)


def _nsga2(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    return optuna.samplers.NSGAIISampler(seed=seed, **opts)


def _nsga3(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    return optuna.samplers.NSGAIIISampler(seed=seed, **opts)


def _qmc(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    return optuna.samplers.QMCSampler(seed=seed, **opts)


def _random(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    return optuna.samplers.RandomSampler(seed=seed, **opts)


def _grid(spec: StudySpec, seed: int | None, **opts: Any) -> Any:
    return optuna.samplers.GridSampler(grid_space(spec), seed=seed, **opts)


def grid_space(spec: StudySpec) -> dict[str, list[Any]]:
    """Every value of every parameter, for a grid (floats need a ``step``)."""
    grid: dict[str, list[Any]] = {}
    for name, p in spec.space.items():
        if p.type == "categorical":
            grid[name] = list(p.choices)
        elif p.type == "int" and not p.log:
            grid[name] = list(range(p.low, p.high + 1, p.step))
        elif p.type == "float" and p.step is not None:
            n = int(math.floor((p.high - p.low) / p.step + 1e-9))
            grid[name] = [round(p.low + i * p.step, 12) for i in range(n + 1)]
        else:
            raise SpecError(
                f"proposer optuna:grid cannot handle parameter {name!r}: give it a step "
                "(floats) or no log scale (ints)"
            )
    return grid


_OPTUNA: dict[str, Callable[..., Any]] = {
    "tpe": _tpe,
    "gp": _gp,
    "cmaes": _cmaes,
    "nsga2": _nsga2,
    "nsga3": _nsga3,
    "qmc": _qmc,
    "random": _random,
    "grid": _grid,
}
_SINGLE_OBJECTIVE = {"optuna:cmaes", "skopt:gp", "skopt:rf", "skopt:et", "skopt:gbrt"}


class OptunaProposer(Proposer):
    """An Optuna sampler over the head's in-memory Optuna study (define-by-run, so
    conditional parameters work)."""

    def __init__(self, spec: StudySpec, seed: int | None) -> None:
        super().__init__(spec, seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from hpo.pruners import make_pruner

        sampler = _optuna_sampler(spec, seed)
        pruner = make_pruner(spec.pruner, dict(spec.pruner_options))
        self.study = optuna.create_study(
            directions=list(spec.directions),  # type: ignore[arg-type]
            sampler=sampler,
            pruner=pruner,
        )
        self._dists = distributions(spec.space)
        self._grid_left = math.prod(len(v) for v in grid_space(spec).values()) if (
            spec.proposer == "optuna:grid") else None  # fmt: skip

    def ask(self, n: int) -> list[Point]:
        if self._grid_left is not None:
            n = min(n, self._grid_left)
            self._grid_left -= n
        return [self._ask_one() for _ in range(n)]

    def _ask_one(self) -> Point:
        trial = self.study.ask()
        params: dict[str, Any] = {}
        for name in self.spec.space:
            if active(self.spec, name, params):
                params[name] = trial._suggest(name, self._dists[name])
        return Point(params, trial)

    def tell(
        self,
        point: Point,
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pruned: bool = False,
    ) -> None:
        trial = point.handle
        for i, c in enumerate(constraints or ()):
            trial.set_constraint(f"c{i}", c)
        try:
            if pruned:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            elif values is None:
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, values)
        except RuntimeError as exc:
            # Grid-like samplers call study.stop() once their space is covered, which Optuna
            # allows only inside its own loop; the trial is recorded all the same.
            if "Study.stop" not in str(exc):
                raise

    def restore(
        self,
        params: dict[str, Any],
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pending: bool = False,
        pruned: bool = False,
        intermediate: dict[int, float] | None = None,
        distributions: dict[str, Any] | None = None,
    ) -> Point | None:
        if self._grid_left is not None:
            self._grid_left = max(self._grid_left - 1, 0)
        if pending:
            self.study.enqueue_trial(params)
            point = self._ask_one()
            for step, value in (intermediate or {}).items():
                point.handle.report(value, step)
            return point
        state = optuna.trial.TrialState.COMPLETE if values is not None else TrialFail
        if pruned:
            state = optuna.trial.TrialState.PRUNED
        named = {f"c{i}": c for i, c in enumerate(constraints)} if constraints else None
        asked = {k: json_to_distribution(v) for k, v in (distributions or {}).items()}
        dists = {k: self._dists.get(k) or asked[k] for k in params}
        self.study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dists, values=None if pruned else values,
                state=state, constraints=named, intermediate_values=intermediate or None,
            )
        )  # fmt: skip
        return None

    def suggest(self, point: Point, name: str, distribution: str) -> Any:
        """A value for a parameter an Optuna-style objective asks for (define-by-run)."""
        value = point.handle._suggest(name, json_to_distribution(distribution))
        point.params[name] = _plain(value)
        return _plain(value)

    @property
    def learns(self) -> bool:
        return self.spec.proposer not in ("optuna:random", "optuna:qmc")

    @property
    def replicable(self) -> bool:
        # TPE with its constant liar: a pending point counts as a bad one, so that copies
        # asking at once spread their points, as workers sharing an Optuna storage do.
        options = self.spec.proposer_options
        return self.spec.proposer == "optuna:tpe" and options.get("constant_liar", True)

    def finished(self, point: Point) -> optuna.trial.FrozenTrial:
        """The trial of a point told its outcome, as the study holds it."""
        trial = point.handle
        return trial.storage.get_trial(trial._trial_id)  # type: ignore[no-any-return]

    def report(self, point: Point, step: int, value: float) -> bool:
        trial = point.handle
        if step not in trial.storage.get_trial(trial._trial_id).intermediate_values:
            trial.report(value, step)
        return bool(trial.should_prune())


TrialFail = optuna.trial.TrialState.FAIL


def _optuna_sampler(spec: StudySpec, seed: int | None) -> optuna.samplers.BaseSampler:
    name = spec.proposer
    options = dict(spec.proposer_options)
    with warnings.catch_warnings():  # the user chose the sampler, experimental or not
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name.startswith("optuna:") and name[7:] in _OPTUNA:
            return _OPTUNA[name[7:]](spec, seed, **options)  # type: ignore[no-any-return]
        cls = _import_sampler(name)
        try:
            return cls(seed=seed, **options)  # type: ignore[no-any-return]
        except TypeError:
            return cls(**options)  # type: ignore[no-any-return]


def _import_sampler(name: str) -> type:
    module_name, _, attr = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise SpecError(f"unknown proposer {name!r} ({_known()})") from None
    if not (isinstance(cls, type) and issubclass(cls, optuna.samplers.BaseSampler)):
        raise SpecError(f"proposer {name!r} is not an Optuna sampler class")
    return cls


# --- scikit-optimize ---------------------------------------------------------------------


class SkoptProposer(Proposer):
    """A scikit-optimize ``Optimizer`` (GP, RF, ET or GBRT surrogate); batches through its
    liar strategies. Options: ``acq_func``, ``acq_optimizer``, ``n_initial_points``,
    ``liar`` (``cl_max`` default, ``cl_mean``, ``cl_min``), ``acq_func_kwargs``."""

    def __init__(self, spec: StudySpec, seed: int | None) -> None:
        super().__init__(spec, seed)
        options = dict(spec.proposer_options)
        # The pessimistic lie (the worst value seen) by default, as Optuna's constant liar:
        # an optimistic one draws the next points next to the pending ones.
        self.liar = options.pop("liar", "cl_max")
        if self.liar not in ("cl_min", "cl_mean", "cl_max"):
            raise SpecError(f"proposer_options.liar: {self.liar!r} is not cl_min/cl_mean/cl_max")
        self.names = list(spec.space)
        self.optimizer = _skopt_optimizer(spec, seed, options)
        self.sign = -1.0 if spec.directions[0] == "maximize" else 1.0
        self._pending: dict[int, list[Any]] = {}
        self._next = 0

    def ask(self, n: int) -> list[Point]:
        if n <= 0:
            return []
        opt = self.optimizer
        if self._pending:  # one refit with every pending point told the lie
            opt = opt.copy(random_state=opt.rng)
            xs = list(self._pending.values())
            opt.tell(xs, [self._lie(opt)] * len(xs))
        xs = opt.ask(n_points=n, strategy=self.liar) if n > 1 else [opt.ask()]
        return [self._hand_out(x) for x in xs]

    def _lie(self, opt: Any) -> float:
        ys = opt.yi
        if not ys:
            return 0.0
        lie: dict[str, Any] = {"cl_min": min, "cl_max": max, "cl_mean": lambda v: sum(v) / len(v)}
        return float(lie[self.liar](ys))

    def _hand_out(self, x: Sequence[Any]) -> Point:
        x = [_plain(v) for v in x]
        key = self._next
        self._next += 1
        self._pending[key] = x
        return Point(dict(zip(self.names, x, strict=True)), key)

    def tell(
        self,
        point: Point,
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pruned: bool = False,
    ) -> None:
        x = self._pending.pop(point.handle)
        if values is not None and not pruned and _feasible(constraints):
            self.optimizer.tell(x, self.sign * values[0])

    def restore(
        self,
        params: dict[str, Any],
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pending: bool = False,
        pruned: bool = False,
        intermediate: dict[int, float] | None = None,
        distributions: dict[str, Any] | None = None,
    ) -> Point | None:
        x = [params[n] for n in self.names]
        if pending:
            return self._hand_out(x)
        if values is not None and not pruned and _feasible(constraints):
            self.optimizer.tell(x, self.sign * values[0])
        return None


def _feasible(constraints: list[float] | None) -> bool:
    return constraints is None or all(c <= 0 for c in constraints)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _skopt_optimizer(spec: StudySpec, seed: int | None, options: dict[str, Any]) -> Any:
    _needs("skopt", spec.proposer, "skopt")
    import skopt
    from skopt.space import Categorical, Integer, Real

    dims = []
    for name, p in spec.space.items():
        if p.when:
            raise SpecError(
                f"proposer {spec.proposer} cannot handle conditional parameter {name!r}"
            )
        if p.type == "categorical":
            dims.append(Categorical(list(p.choices), name=name))
        elif p.step not in (None, 1):
            raise SpecError(f"proposer {spec.proposer} cannot handle a step (parameter {name!r})")
        else:
            kind = Real if p.type == "float" else Integer
            prior = "log-uniform" if p.log else "uniform"
            dims.append(kind(p.low, p.high, prior=prior, name=name))
    model: Any = spec.proposer.partition(":")[2].upper()
    if model == "GBRT":
        model = _gbrt(seed)
    options.setdefault("n_initial_points", 10)
    return skopt.Optimizer(dims, base_estimator=model, random_state=seed, **options)


def _gbrt(seed: int | None) -> Any:
    """scikit-optimize's quantile GBRT, mended for current scikit-learn and NumPy.

    scikit-optimize 0.10.2 lists BaseEstimator before RegressorMixin (scikit-learn >= 1.6
    then does not see a regressor) and calls ``np.in1d`` (gone in NumPy 2.4). If it still
    fails here, the error says so at submission instead of in the middle of a study.
    """
    import numpy as np
    from sklearn.base import BaseEstimator
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.utils import RegressorTags
    from skopt.learning import GradientBoostingQuantileRegressor

    class QuantileGBRT(GradientBoostingQuantileRegressor):  # type: ignore[misc]
        def __sklearn_tags__(self) -> Any:
            tags = BaseEstimator.__sklearn_tags__(self)
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
            return tags

        def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
            by_q = {q: r.predict(X) for q, r in zip(self.quantiles, self.regressors_, strict=True)}
            if return_quantiles:
                return np.asarray(list(by_q.values())).T
            if return_std:
                return by_q[0.5], (by_q[0.84] - by_q[0.16]) / 2.0
            return by_q[0.5]

    base = GradientBoostingRegressor(n_estimators=30, loss="quantile")
    gbrt = QuantileGBRT(base_estimator=base, random_state=seed)
    try:
        gbrt.fit(np.c_[[0.0, 1.0, 2.0, 3.0]], [0.0, 1.0, 2.0, 3.0])
        gbrt.predict(np.c_[[0.5]], return_std=True)
    except Exception as exc:  # its failure depends on the installed libraries
        import sklearn

        raise SpecError(
            f"proposer skopt:gbrt does not work with scikit-learn {sklearn.__version__} here "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}); use skopt:rf or skopt:et"
        ) from None
    return gbrt


# --- names --------------------------------------------------------------------------------

#: The proposers known by name (any of nevergrad's optimizers as ``nevergrad:NAME``).
PROPOSERS = tuple(
    ["auto"]
    + [f"optuna:{k}" for k in _OPTUNA]
    + ["skopt:gp", "skopt:rf", "skopt:et", "skopt:gbrt"]
    + ["nevergrad:NGOpt", "nevergrad:OnePlusOne", "bayes_opt:ucb", "bayes_opt:ei"]
)
#: Proposers of other libraries: one objective, a space given in the spec, no pruning.
FOREIGN = ("skopt:", "nevergrad:", "bayes_opt:")


def _known() -> str:
    return "known: " + ", ".join(PROPOSERS) + ", or an Optuna sampler as module:Class"


def check_proposer(name: str) -> None:
    """Raise :class:`SpecError` unless ``name`` names a proposer."""
    if name in PROPOSERS or name.startswith("nevergrad:") and len(name) > 10:
        return
    if name.startswith(("optuna:", *FOREIGN)) or ":" not in name:
        raise SpecError(f"unknown proposer {name!r} ({_known()})")
    _import_sampler(name)


def make_proposer(spec: StudySpec, seed: int | None) -> Proposer:
    """The proposer the spec names, checked against its space and objectives.

    Raises:
        SpecError: the proposer is unknown, lacks its package, or cannot handle the space
            or the number of objectives.
    """
    check_proposer(spec.proposer)
    single = spec.proposer in _SINGLE_OBJECTIVE or spec.proposer.startswith(FOREIGN)
    if len(spec.directions) > 1 and single:
        raise SpecError(f"proposer {spec.proposer} handles one objective, not several")
    kind = _kind(spec.proposer)
    try:
        return kind(spec, seed)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise
        first = str(exc).strip().splitlines()[0]
        raise SpecError(f"proposer_options for {spec.proposer}: {first}") from None


def _kind(name: str) -> Callable[[StudySpec, int | None], Proposer]:
    from hpo.auto import AutoProposer
    from hpo.foreign import BayesOptProposer, NevergradProposer

    by_prefix: dict[str, Callable[[StudySpec, int | None], Proposer]] = {
        "skopt": SkoptProposer, "nevergrad": NevergradProposer, "bayes_opt": BayesOptProposer,
    }  # fmt: skip
    if name == "auto":
        return AutoProposer
    return by_prefix.get(name.partition(":")[0], OptunaProposer)


def active(spec: StudySpec, name: str, params: dict[str, Any]) -> bool:
    """Whether parameter ``name`` exists given the parameters chosen before it."""
    when = spec.space[name].when
    return all(params.get(k) in allowed for k, allowed in when.items())


def distributions(space: dict[str, Any]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions for a validated search space."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, p in space.items():
        if p.type == "float":
            out[name] = optuna.distributions.FloatDistribution(
                p.low, p.high, log=p.log, step=p.step
            )
        elif p.type == "categorical":
            out[name] = optuna.distributions.CategoricalDistribution(p.choices)
        else:
            out[name] = optuna.distributions.IntDistribution(p.low, p.high, log=p.log, step=p.step)
    return out
