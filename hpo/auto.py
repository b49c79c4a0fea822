"""``proposer: auto``: a proposer chosen per study, and again as the study grows.

The policy (:func:`choose`), from what is known before each ask:

- several objectives: TPE while the study has fewer finished points than ten NSGA-II
  generations (500), then NSGA-II;
- an objective that asks for its own parameters (define-by-run), a conditional parameter or
  constraints: TPE (it models each of them; the Gaussian processes here do not model
  conditional spaces);
- otherwise (floats, integers and categorical parameters), one objective: a Gaussian process
  (Optuna's GP on warped values, :class:`hpo.proposers.WarpedGPSampler`) while the study has
  fewer than 200 finished points and an ask costs less than a second a point or less than
  one evaluation's run time (both measured as the study runs); then CMA-ES, started at the
  best point so far, where the space is numeric with at least two parameters and the budget
  left holds ten of its generations; TPE otherwise. A study with a ``seed`` (and
  ``deterministic``, the default) ignores the measured costs, so that its points do not
  depend on timing: only the number of finished points changes its proposer.

Each role's proposer can be replaced in ``proposer_options`` (``{"numeric": "bayes_opt:ei",
"long": "nevergrad:NGOpt"}``; roles ``numeric``, ``long``, ``mixed``, ``multi``,
``multi_long``). The proposer that made a point is recorded with it, and the first point
after a change says why (``idds hpo show``). A new proposer is told every finished point
first; a pending point is told to the proposer that made it.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.proposers import Point, Proposer
from idds.errors import SpecError

if TYPE_CHECKING:
    from hpo.spec import StudySpec

#: The proposer for each situation, unless ``proposer_options`` names another.
ROLES = {
    "numeric": "optuna:gp",
    "long": "optuna:cmaes",
    "mixed": "optuna:tpe",
    "multi": "optuna:tpe",
    "multi_long": "optuna:nsga2",
}
GP_MOST_POINTS = 200  # a GP's ask grows with the cube of the points it has seen
GP_AFFORDABLE_S = 1.0  # an ask costing less than this a point is always affordable
MULTI_LONG_AFTER = 500  # ten generations of NSGA-II's default population (50)


@dataclass
class Situation:
    """What the policy knows before an ask."""

    finished: int
    ask_s: float | None = None  # the current proposer's last ask, a point
    run_s: float | None = None  # an evaluation's mean run time
    previous: str | None = None
    gp_dropped: bool = False
    timed: bool = True  # False: a reproducible study, whose choices must not depend on timing
    notes: list[str] = field(default_factory=list)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def choose(spec: StudySpec, now: Situation, roles: dict[str, str]) -> tuple[str, str]:
    """The proposer for the next points of ``spec``, and why (one phrase)."""
    if len(spec.directions) > 1:
        if now.finished >= MULTI_LONG_AFTER:
            return roles["multi_long"], f"{now.finished} points finished, several objectives"
        return roles["multi"], "several objectives, few points yet"
    space = spec.space.values()
    if not spec.space:
        return roles["mixed"], "the objective asks for its own parameters"
    if any(p.when for p in space):
        return roles["mixed"], "a conditional space"
    if spec.constraints:
        return roles["mixed"], "constraints"
    return _numeric(spec, now, roles)


def _numeric(spec: StudySpec, now: Situation, roles: dict[str, str]) -> tuple[str, str]:
    numeric = roles["numeric"]
    if numeric == "optuna:gp" and not _has("torch"):
        numeric = roles["mixed"]
    categorical = any(p.type == "categorical" for p in spec.space.values())
    if not now.gp_dropped and now.finished < GP_MOST_POINTS:
        if not _too_slow(now):
            return numeric, "a space without conditions, few points yet"
        now.gp_dropped = True
        why = f"an ask costs {now.ask_s:.2g} s a point, an evaluation {now.run_s or 0:.2g} s"
    else:
        why = f"{now.finished} points finished"
    dims = len(spec.space)
    generation = 4 + math.floor(3 * math.log(max(dims, 1)))
    left = spec.max_points - now.finished
    long = roles["long"]
    if long == "optuna:cmaes" and (categorical or not _has("cmaes")):
        long = roles["mixed"]  # CMA-ES has no categorical parameters
    if dims >= 2 and left >= 10 * generation:
        return long, why
    return roles["mixed"], why


def _too_slow(now: Situation) -> bool:
    if not now.timed or now.ask_s is None or now.ask_s < GP_AFFORDABLE_S:
        return False
    return now.run_s is None or now.ask_s > now.run_s


class AutoProposer(Proposer):
    """Chooses its proposer by :func:`choose` before each ask; see the module's docstring."""

    def __init__(self, spec: StudySpec, seed: int | None) -> None:
        super().__init__(spec, seed)
        options = dict(spec.proposer_options)
        unknown = sorted(set(options) - set(ROLES))
        if unknown:
            raise SpecError(f"proposer_options for auto: unknown role(s) {', '.join(unknown)}")
        self.roles = {**ROLES, **options}
        reproducible = spec.seed is not None and spec.deterministic
        self.now = Situation(finished=0, timed=not reproducible)
        self.name: str | None = None
        self.current: Proposer | None = None
        self._history: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._runs: list[float] = []
        self._note: str | None = None
        from hpo.proposers import check_proposer

        for name in self.roles.values():
            check_proposer(name)

    def _switch(self) -> Proposer:
        name, why = choose(self.spec, self.now, self.roles)
        if self.current is not None and name == self.name:
            return self.current
        self.current = self._make(name)
        if self.name is not None:
            self._note = f"{self.name} -> {name}: {why}"
        else:
            self._note = f"{name}: {why}"
        self.name = name
        self.now.ask_s = None
        return self.current

    def _make(self, name: str) -> Proposer:
        from hpo.proposers import make_proposer

        spec = self.spec.model_copy(update={"proposer": name, "proposer_options": {}})
        seed = None if self.seed is None else self.seed + len(self._history)
        if name == "optuna:cmaes":
            spec = spec.model_copy(update={"proposer_options": self._cmaes_start()})
        proposer = make_proposer(spec, seed)
        for args, kwargs in self._history:
            proposer.restore(*args, **kwargs)
        return proposer

    def _cmaes_start(self) -> dict[str, Any]:
        """CMA-ES from the best point so far (it learns only from its own points)."""
        done = [(a[1][0], a[0]) for a, k in self._history if a[1] and not k.get("pruned")]
        if not done:
            return {}
        sign = -1.0 if self.spec.directions[0] == "maximize" else 1.0
        _, best = min(done, key=lambda d: sign * d[0])
        return {"x0": dict(best)}

    def ask(self, n: int) -> list[Point]:
        import time

        proposer = self._switch()
        start = time.perf_counter()
        points = proposer.ask(n)
        self.now.ask_s = (time.perf_counter() - start) / max(n, 1)
        return [self._wrap(p, proposer) for p in points]

    def _wrap(self, point: Point, proposer: Proposer) -> Point:
        note, self._note = self._note, None
        return Point(point.params, (proposer, point), by=self.name, note=note)

    def tell(
        self,
        point: Point,
        values: list[float] | None,
        constraints: list[float] | None = None,
        *,
        pruned: bool = False,
    ) -> None:
        proposer, inner = point.handle
        proposer.tell(inner, values, constraints, pruned=pruned)
        self._remember(point.params, values, constraints, pruned=pruned)

    def _remember(self, params: dict[str, Any], values: Any, constraints: Any, **kw: Any) -> None:
        self._history.append(((dict(params), values, constraints), kw))
        self.now.finished += 1

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
        if pending:
            proposer = self._switch()
            inner = proposer.restore(params, None, pending=True, intermediate=intermediate)
            return self._wrap(inner, proposer)  # type: ignore[arg-type]
        kw: dict[str, Any] = {
            "pruned": pruned, "intermediate": intermediate, "distributions": distributions
        }  # fmt: skip
        if self.current is not None:
            self.current.restore(params, values, constraints, **kw)
        self._remember(params, values, constraints, **kw)
        return None

    def report(self, point: Point, step: int, value: float) -> bool:
        proposer, inner = point.handle
        return proposer.report(inner, step, value)

    def suggest(self, point: Point, name: str, distribution: str) -> Any:
        """A define-by-run parameter's value, from the proposer that made the point."""
        proposer, inner = point.handle
        value = proposer.suggest(inner, name, distribution)  # type: ignore[attr-defined]
        point.params[name] = value
        return value

    def observe(self, run_s: float) -> None:
        self._runs.append(run_s)
        self.now.run_s = sum(self._runs[-50:]) / len(self._runs[-50:])
