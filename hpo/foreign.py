"""Proposers of other libraries behind :class:`hpo.proposers.Proposer`: nevergrad and
bayesian-optimization, so that a study written for a service that used them finds them here.

- ``nevergrad:NAME``: any optimizer of nevergrad's registry (``OnePlusOne``, ``NGOpt``,
  ``TwoPointsDE``, ``CMA``, ...), told the study's budget (``max_points``) and its number
  of workers (``parallel``); its own batch asks (several candidates pending at once).
- ``bayes_opt:ucb`` and ``bayes_opt:ei``: a Gaussian process (the ``bayesian-optimization``
  package) with the upper confidence bound (``kappa``, 2.576 by default) or expected
  improvement (``xi``, 0.01) acquisition; a batch is made one point after another, each
  pending point told the worst value seen (a constant liar). Integers are rounded,
  categorical parameters are the index of their choice, log-scale ones are fitted in log.

Both handle one objective and no conditional parameters; a failed or infeasible point is
not told to them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hpo.proposers import Point, Proposer, _feasible, _needs, _plain
from idds.errors import SpecError

if TYPE_CHECKING:
    from hpo.spec import StudySpec


def _check_space(spec: StudySpec) -> None:
    for name, p in spec.space.items():
        if p.when:
            raise SpecError(
                f"proposer {spec.proposer} cannot handle conditional parameter {name!r}"
            )


def _loss(spec: StudySpec, values: list[float]) -> float:
    """The value to minimise."""
    return -values[0] if spec.directions[0] == "maximize" else values[0]


class NevergradProposer(Proposer):
    """A nevergrad optimizer (``nevergrad:NAME``); ``proposer_options`` go to its
    constructor."""

    def __init__(self, spec: StudySpec, seed: int | None) -> None:
        super().__init__(spec, seed)
        _needs("nevergrad", spec.proposer, "nevergrad")
        import nevergrad as ng
        import numpy as np

        _check_space(spec)
        name = spec.proposer.partition(":")[2]
        if name not in ng.optimizers.registry:
            raise SpecError(f"unknown proposer {spec.proposer!r} (not in nevergrad's registry)")
        self.param = ng.p.Dict(**{n: _ng_param(ng, p) for n, p in spec.space.items()})
        if seed is not None:
            self.param.random_state = np.random.RandomState(seed)
        self.optimizer = ng.optimizers.registry[name](
            parametrization=self.param, budget=spec.max_points,
            num_workers=max(spec.parallel, 1), **dict(spec.proposer_options),
        )  # fmt: skip

    def ask(self, n: int) -> list[Point]:
        return [self._point(self.optimizer.ask()) for _ in range(max(n, 0))]

    def _point(self, candidate: Any) -> Point:
        params = {k: _plain(v) for k, v in candidate.value.items()}
        return Point(params, candidate)

    def tell(
        self,
        point: Point,
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pruned: bool = False,
    ) -> None:
        if values is not None and not pruned and _feasible(constraints):
            self.optimizer.tell(point.handle, _loss(self.spec, values))

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
        candidate = self.param.spawn_child(new_value=dict(params))
        if pending:
            return Point(dict(params), candidate)
        self.tell(Point(dict(params), candidate), values, constraints, pruned=pruned)
        return None


def _ng_param(ng: Any, p: Any) -> Any:
    if p.type == "categorical":
        return ng.p.Choice(list(p.choices))
    if p.step not in (None, 1):
        raise SpecError("nevergrad proposers cannot handle a step")
    param = ng.p.Log(lower=p.low, upper=p.high) if p.log else ng.p.Scalar(lower=p.low, upper=p.high)
    return param.set_integer_casting() if p.type == "int" else param


class BayesOptProposer(Proposer):
    """bayesian-optimization's GP (``bayes_opt:ucb`` or ``bayes_opt:ei``). Options:
    ``kappa``, ``xi``, ``init_points`` (random points first, 5 by default)."""

    def __init__(self, spec: StudySpec, seed: int | None) -> None:
        super().__init__(spec, seed)
        _needs("bayes_opt", spec.proposer, "bayes_opt")
        _check_space(spec)
        self.kind = spec.proposer.partition(":")[2]
        if self.kind not in ("ucb", "ei"):
            raise SpecError(f"unknown proposer {spec.proposer!r} (bayes_opt:ucb or bayes_opt:ei)")
        options = dict(spec.proposer_options)
        self.kappa = float(options.pop("kappa", 2.576))
        self.xi = float(options.pop("xi", 0.01))
        self.init_points = int(options.pop("init_points", 5))
        if options:
            raise SpecError(f"proposer_options for {spec.proposer}: unknown {sorted(options)}")
        if any(getattr(p, "step", None) not in (None, 1) for p in spec.space.values()):
            raise SpecError(f"proposer {spec.proposer} cannot handle a step")
        self.bounds = {n: _bo_bounds(p) for n, p in spec.space.items()}
        self._seen: list[tuple[dict[str, float], float]] = []  # encoded point, target
        self._pending: dict[int, dict[str, float]] = {}
        self._asked = 0

    def ask(self, n: int) -> list[Point]:
        return [self._ask_one() for _ in range(max(n, 0))]

    def _ask_one(self) -> Point:
        seed = None if self.seed is None else self.seed + self._asked
        optimizer = _bo_optimizer(self.bounds, seed)
        lie = min((t for _, t in self._seen), default=0.0)  # the worst value seen
        observed = [*self._seen, *((x, lie) for x in self._pending.values())]
        for x, target in observed:
            optimizer.register(params=x, target=target)
        if len(observed) < self.init_points:
            x = optimizer.space.array_to_params(optimizer.space.random_sample())
        else:
            x = _bo_suggest(optimizer, self.kind, self.kappa, self.xi)
        x = {k: float(v) for k, v in x.items()}
        self._asked += 1
        return self._hand_out(x)

    def _hand_out(self, x: dict[str, float]) -> Point:
        key = self._asked  # counts every point handed out
        self._pending[key] = x
        return Point(self._decode(x), key)

    def _decode(self, x: dict[str, float]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.spec.space.items():
            v = x[name]
            if p.type == "categorical":
                out[name] = p.choices[min(int(v), len(p.choices) - 1)]
                continue
            v = math.exp(v) if p.log else v
            v = min(max(v, p.low), p.high)
            out[name] = int(round(v)) if p.type == "int" else v
        return out

    def _encode(self, params: dict[str, Any]) -> dict[str, float]:
        out = {}
        for name, p in self.spec.space.items():
            v = params[name]
            if p.type == "categorical":
                out[name] = p.choices.index(v) + 0.5
            else:
                out[name] = math.log(v) if p.log else float(v)
        return out

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
            self._seen.append((x, -_loss(self.spec, values)))  # bayes_opt maximises

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
        x = self._encode(params)
        if pending:
            self._asked += 1
            return self._hand_out(x)
        if values is not None and not pruned and _feasible(constraints):
            self._seen.append((x, -_loss(self.spec, values)))
        return None


def _bo_bounds(p: Any) -> tuple[float, float]:
    if p.type == "categorical":
        return (0.0, float(len(p.choices)) - 1e-9)
    if p.log:
        return (math.log(p.low), math.log(p.high))
    if p.type == "int":
        return (p.low - 0.5 + 1e-9, p.high + 0.5 - 1e-9)
    return (float(p.low), float(p.high))


def _bo_optimizer(bounds: dict[str, tuple[float, float]], seed: int | None) -> Any:
    from bayes_opt import BayesianOptimization

    return BayesianOptimization(
        f=None, pbounds=bounds, random_state=seed, verbose=0, allow_duplicate_points=True
    )


def _bo_suggest(optimizer: Any, kind: str, kappa: float, xi: float) -> dict[str, float]:
    """The next point, through the API of the installed release (1.x or 2.x and later)."""
    import bayes_opt

    if hasattr(bayes_opt, "acquisition"):  # 2.0 and later: the acquisition is fixed at creation
        acq = bayes_opt.acquisition
        optimizer._acquisition_function = (
            acq.UpperConfidenceBound(kappa=kappa) if kind == "ucb" else acq.ExpectedImprovement(xi)
        )
        return dict(optimizer.suggest())
    utility = bayes_opt.UtilityFunction(kind=kind, kappa=kappa, xi=xi)
    return dict(optimizer.suggest(utility))
