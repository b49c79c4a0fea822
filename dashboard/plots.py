"""The study page's figures: Plotly for the full history, Optuna's own visualization functions
for the rest, drawn from an in-memory Optuna study of at most ``limit`` trials.

A study with more finished trials than ``limit`` is drawn from a sample: its best trials (and,
with several objectives, its Pareto front) plus an even draw of the others, so that a page
with 10,000 trials stays quick. The history always shows every trial.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
import plotly.graph_objects as go
from optuna.distributions import json_to_distribution

from hpo.proposers import distributions
from hpo.study import pareto_front
from idds.tasks import TaskState

if TYPE_CHECKING:
    from hpo.spec import StudySpec
    from hpo.study import Trial

#: Finished trials drawn into the Optuna figures (the history shows all of them).
DEFAULT_LIMIT = 1000
#: Trials drawn as lines in the intermediate-values figure.
CURVES_LIMIT = 200
#: Trials drawn as lines in the parallel-coordinates figure (its costliest, and more lines
#: than this hide each other anyway).
PARALLEL_LIMIT = 300
#: Parameters in the contour figure (the most important ones).
CONTOUR_PARAMS = 3


@dataclass
class StudyFigures:
    """The figures of one study, and why each missing one is missing.

    Attributes:
        figures: title -> Plotly figure, in the order the page shows them.
        missing: title -> the reason it is not drawn (e.g. "needs 2 finished trials").
        drawn: how many finished trials the Optuna figures were drawn from.
        finished: how many finished trials the study has.
    """

    figures: dict[str, go.Figure] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    drawn: int = 0
    finished: int = 0


def _finished(trials: list[Trial]) -> list[Trial]:
    return [t for t in trials if t.state in (TaskState.SUCCEEDED, TaskState.FAILED)]


def sample(trials: list[Trial], directions: tuple[str, ...], limit: int) -> list[Trial]:
    """At most ``limit`` finished trials: the best tenth (or the Pareto front) and an even,
    seeded draw of the others, in trial order.

    Args:
        trials: the study's trials.
        directions: the study's directions.
        limit: how many to keep.

    Returns:
        The kept trials, ordered by number.
    """
    finished = _finished(trials)
    if len(finished) <= limit:
        return finished
    if len(directions) > 1:
        keep = {t.number for t in pareto_front(finished, directions)[: limit // 2]}
    else:
        ok = [t for t in finished if t.values and not t.pruned]
        ok.sort(key=lambda t: t.values[0], reverse=directions[0] == "maximize")  # type: ignore[index]
        keep = {t.number for t in ok[: limit // 10]}
    others = [t.number for t in finished if t.number not in keep]
    keep.update(random.Random(0).sample(others, limit - len(keep)))
    return [t for t in finished if t.number in keep]


def optuna_study(trials: list[Trial], spec: StudySpec) -> optuna.Study:
    """An in-memory Optuna study holding ``trials`` (finished ones), for Optuna's figures."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=list(spec.directions))
    space = distributions(spec.space)
    study.add_trials([_frozen(t, space) for t in _finished(trials)])
    return study


def _frozen(t: Trial, space: dict[str, Any]) -> optuna.trial.FrozenTrial:
    asked = {k: json_to_distribution(v) for k, v in t.distributions.items()}
    state, values = optuna.trial.TrialState.FAIL, None
    if t.pruned:
        state = optuna.trial.TrialState.PRUNED
    elif t.state == TaskState.SUCCEEDED and t.values:
        state, values = optuna.trial.TrialState.COMPLETE, t.values
    constraints = {f"c{i}": c for i, c in enumerate(t.constraints or ())} or None
    return optuna.trial.create_trial(
        params=t.params,
        distributions={k: space.get(k) or asked[k] for k in t.params},
        values=values,
        state=state,
        intermediate_values=t.intermediate_values or None,
        constraints=constraints,
    )


#: How trials that have no value to compete with are drawn in the history: (symbol, colour).
MARKS = {"pruned": ("x", "#9467bd"), "failed": ("x-thin-open", "#d62728"),
         "running": ("circle-open", "#ff7f0e")}  # fmt: skip
#: The history's height per objective, in pixels.
HISTORY_HEIGHT = 380


def history_figure(trials: list[Trial], directions: tuple[str, ...]) -> go.Figure:
    """Every succeeded trial's value(s) against its number, one panel per objective, with the
    best so far (one objective); pruned trials at their last reported value, failed and
    running ones along the foot of the panel, each counted in the legend. WebGL markers, so
    that 10,000 points draw at once."""
    from plotly.subplots import make_subplots

    done = [t for t in trials if t.state == TaskState.SUCCEEDED and t.values and not t.pruned]
    numbers = [t.number for t in done]
    several = len(directions) > 1
    names = [f"objective {i} ({d})" for i, d in enumerate(directions)]
    fig = make_subplots(rows=len(directions), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=names if several else None)  # fmt: skip
    for i, direction in enumerate(directions):
        values = [t.values[i] for t in done]  # type: ignore[index]
        trace = go.Scattergl(x=numbers, y=values, mode="markers",
                             name=names[i] if several else "value")  # fmt: skip
        fig.add_trace(trace, row=i + 1, col=1)
        if not several:
            fig.add_trace(go.Scattergl(x=numbers, y=_best_so_far(done, direction),
                                       mode="lines", name="best so far"), row=1, col=1)  # fmt: skip
        _marks(fig, trials, i, min(values, default=0.0))
        fig.update_yaxes(title_text="value" if not several else f"objective {i}", row=i + 1)
    fig.update_xaxes(title_text="trial", row=len(directions))
    fig.update_layout(title="Optimisation history", height=HISTORY_HEIGHT * len(directions) + 60)
    return fig


def _marks(fig: go.Figure, trials: list[Trial], i: int, foot: float) -> None:
    """Pruned, failed and running trials in objective ``i``'s panel."""
    for state, (symbol, colour) in MARKS.items():
        if state == "pruned":
            group = [t for t in trials if t.pruned and t.values and len(t.values) > i]
            ys = [t.values[i] for t in group]  # type: ignore[index]
        else:
            running = (TaskState.RUNNING, TaskState.DISPATCHED)
            group = [t for t in trials if not t.pruned and (t.state == TaskState.FAILED if
                     state == "failed" else t.state in running)]  # fmt: skip
            ys = [foot] * len(group)
        if group:
            fig.add_trace(go.Scattergl(
                x=[t.number for t in group], y=ys, mode="markers", name=f"{state} ({len(group)})",
                marker={"symbol": symbol, "color": colour, "size": 9}, showlegend=i == 0,
                hovertext=[f"trial {t.number}: {state}" for t in group],
            ), row=i + 1, col=1)  # fmt: skip


def _best_so_far(done: list[Trial], direction: str) -> list[float]:
    pick = max if direction == "maximize" else min
    out: list[float] = []
    for t in done:
        value = t.values[0] if t.feasible else None  # type: ignore[index]
        best = out[-1] if out else value
        out.append(best if value is None else pick(best, value) if best is not None else value)
    return out


#: The figures drawn with Optuna's functions, in the order the page offers them.
OPTUNA_FIGURES = (
    "Parallel coordinates", "Parameter importance", "Slice", "Contour", "Intermediate values",
    "Pareto front",
)  # fmt: skip


def study_figures(
    trials: list[Trial],
    spec: StudySpec,
    *,
    limit: int = DEFAULT_LIMIT,
    only: list[str] | None = None,
) -> StudyFigures:
    """The figures of the study page: the history, then Optuna's.

    Args:
        trials: the study's trials (``Study.trials``).
        spec: the study's spec (directions and space).
        limit: finished trials drawn into Optuna's figures (see :func:`sample`).
        only: draw only these of :data:`OPTUNA_FIGURES` (all by default); the history is
            always drawn.

    Returns:
        The figures, and the reason for each one left out.
    """
    out = StudyFigures(finished=len(_finished(trials)))
    out.figures["Optimisation history"] = history_figure(trials, spec.directions)
    kept = sample(trials, spec.directions, limit)
    out.drawn = len(kept)
    study = optuna_study(kept, spec)
    for title, draw in _optuna_figures(spec, study, kept):
        if only is not None and title not in only:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings
                out.figures[title] = draw().update_layout(height=HEIGHTS.get(title, 480))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            out.missing[title] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return out


def _optuna_figures(spec: StudySpec, study: optuna.Study, kept: list[Trial]) -> list[Any]:
    vis = optuna.visualization
    complete = [t for t in study.get_trials(deepcopy=False) if t.values is not None]
    several = len(spec.directions) > 1
    target = (lambda t: t.values[0]) if several else None  # noqa: E731 - Optuna's signature
    target_name = "objective 0" if several else "Objective Value"
    curves = [t for t in kept if t.intermediate_values][-CURVES_LIMIT:]

    def need(n: int) -> None:
        if len(complete) < n:
            raise ValueError(f"needs {n} succeeded trials ({len(complete)} so far)")

    def importance() -> go.Figure:
        need(2)
        return vis.plot_param_importances(
            study, evaluator=_evaluator(), target=target, target_name=target_name
        )

    def contour() -> go.Figure:
        need(2)
        params = _top_params(study, target, spec)
        if len(params) < 2:
            raise ValueError("needs 2 parameters")
        return vis.plot_contour(study, params=params, target=target, target_name=target_name)

    def intermediate() -> go.Figure:
        if not curves:
            raise ValueError("no trial reported intermediate values (hpo.report)")
        return vis.plot_intermediate_values(optuna_study(curves, spec))

    def pareto() -> go.Figure:
        if not several:
            raise ValueError("one objective: see the history")
        need(1)
        return vis.plot_pareto_front(study)

    def plain(fn: Any) -> Any:
        def draw() -> go.Figure:
            need(1)
            return fn(study, target=target, target_name=target_name)

        return draw

    def parallel() -> go.Figure:
        need(1)
        lines = sample(kept, spec.directions, PARALLEL_LIMIT)
        sub = study if len(lines) == len(kept) else optuna_study(lines, spec)
        return vis.plot_parallel_coordinate(sub, target=target, target_name=target_name)

    return [
        ("Parallel coordinates", parallel),
        ("Parameter importance", importance),
        ("Slice", plain(vis.plot_slice)),
        ("Contour", contour),
        ("Intermediate values", intermediate),
        ("Pareto front", pareto),
    ]


#: Heights of Optuna's figures, in pixels, so that each is drawn large enough to read (a
#: contour matrix of three parameters is nine panels).
HEIGHTS = {"Contour": 760, "Parallel coordinates": 520, "Slice": 440}


def figure_titles(directions: tuple[str, ...]) -> tuple[str, ...]:
    """The figures a study of these directions offers (a Pareto front needs two objectives)."""
    if len(directions) > 1:
        return OPTUNA_FIGURES
    return tuple(t for t in OPTUNA_FIGURES if t != "Pareto front")


def _evaluator() -> Any:
    # PED-ANOVA is Optuna's fast evaluator (seconds for fANOVA become milliseconds).
    return optuna.importance.PedAnovaImportanceEvaluator()


def _top_params(study: optuna.Study, target: Any, spec: StudySpec) -> list[str]:
    names = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    if len(names) <= CONTOUR_PARAMS:
        return names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = optuna.importance.get_param_importances(
            study, evaluator=_evaluator(), target=target
        )
    return list(ranked)[:CONTOUR_PARAMS]
