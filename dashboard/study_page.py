"""One study: its figures, its trials, a trial's logs, and the actions cancel and enqueue.

Trials and figures are computed once per recorded state of the study (see
:func:`dashboard.data.study_version`), so a page that refreshes while nothing changed costs a
few cheap queries, and one with 10,000 trials draws its Optuna figures from a sample.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import hpo
from dashboard import data
from dashboard._common import acting_settings, actor, live, logs_of, records, service, source
from dashboard.plots import StudyFigures, figure_titles, study_figures
from hpo.study import best_of, pareto_front
from idds.errors import AccessDenied, IddsError
from idds.records.views import LOST

if TYPE_CHECKING:
    from hpo.study import Trial


@st.cache_resource(show_spinner=False, max_entries=16)
def _study(url: str, name: str) -> hpo.Study:
    return hpo.load_study(name, settings=acting_settings())


@st.cache_resource(show_spinner=False, max_entries=8)
def _trials(url: str, name: str, version: tuple[Any, ...]) -> list[Trial]:
    return _study(url, name).trials


@st.cache_resource(show_spinner=False, max_entries=32)
def _figures(url: str, name: str, version: tuple[Any, ...], title: str) -> StudyFigures:
    study = _study(url, name)
    return study_figures(_trials(url, name, version), study.spec, only=[title])


@st.cache_resource(show_spinner=False, max_entries=8)
def _table(url: str, name: str, version: tuple[Any, ...]) -> pd.DataFrame:
    return trials_frame(_trials(url, name, version))


def render_study(name: str) -> None:
    """Draw study ``name``: header, actions, then the part that refreshes while it runs."""
    url = source()
    study = _study(url, name)
    spec = study.spec
    st.header(f"Study {name}")
    what = spec.objective or " ".join(spec.argv or [])
    st.caption(f"{'/'.join(spec.directions)} {what} · proposer {spec.proposer} · "
               f"{spec.max_points} points, {spec.parallel} at a time")  # fmt: skip
    _actions(study)
    live(lambda: _body(url, name), active=study.state == "active", key="study-refresh")


def _body(url: str, name: str) -> None:
    version = data.study_version(records(), name)
    study = _study(url, name)
    trials = _trials(url, name, version)
    _metrics(study, trials)
    log = st.toggle("Log scale", key="history-log", help="The history's value axis.")
    history = st.container()  # filled below, once the chosen figure is known
    titles = figure_titles(study.spec.directions)
    title = st.segmented_control("Figure", titles, default=titles[0], key="figure")
    _show_figures(_figures(url, name, version, title or titles[0]), history, log=log)
    st.subheader("Trials")
    st.dataframe(_table(url, name, version), hide_index=True, key="trials-table")
    _trial_detail(study, trials)


def _metrics(study: hpo.Study, trials: list[Trial]) -> None:
    states = pd.Series([_state(t) for t in trials], dtype="object").value_counts()
    shown = data.shown_owner(records(), data.STUDY_KINDS, study.name)
    cols = st.columns(6)
    cols[0].metric("State", shown.state)
    cols[1].metric("Trials", f"{len(trials)}/{study.spec.max_points}")
    in_flight = int(states.get("running", 0) + states.get("dispatched", 0))
    cols[2].metric("Running", 0 if shown.stopped else in_flight)
    if shown.lost:
        cols[2].caption(f"{shown.lost} {LOST}")
    cols[3].metric("Pruned", int(states.get("pruned", 0)))
    cols[4].metric("Failed", int(states.get("failed", 0)))
    if len(study.spec.directions) == 1:
        best = best_of(trials, study.spec.directions[0])
        label = "Best" if best is None else f"Best (trial {best.number})"
        cols[5].metric(label, "—" if best is None else f"{best.value:.6g}")
    else:
        front = pareto_front(trials, study.spec.directions)
        cols[5].metric("Pareto front", f"{len(front)} trials")


def _show_figures(figures: StudyFigures, history: Any, *, log: bool = False) -> None:
    """The history in its place above the figure chooser (on a log axis where asked and its
    values allow), then the chosen figure (each Optuna figure is drawn only when chosen)."""
    for title, figure in figures.figures.items():
        where = history if title == "Optimisation history" else st
        if title == "Optimisation history" and log:
            figure = _logged(figure, where)
        where.plotly_chart(figure, key=f"fig-{title}")
    for title, reason in figures.missing.items():
        st.caption(f"{title} not drawn: {reason}.")
    if figures.drawn < figures.finished:
        st.caption(
            f"Figures other than the history show {figures.drawn} of "
            f"{figures.finished} finished trials: the best ones and an even sample."
        )


def _logged(figure: Any, where: Any) -> Any:
    """A copy of the history on a log value axis, or itself with a note where a value is not
    positive (the cached figure is shared, so it is never changed in place)."""
    values = [y for trace in figure.data for y in (trace.y or ()) if y is not None]
    if any(y <= 0 for y in values):
        where.caption("Log scale: not drawn, the values are not all positive.")
        return figure
    return go.Figure(figure).update_yaxes(type="log")


def _state(t: Trial) -> str:
    return "pruned" if t.pruned else t.state


def trials_frame(trials: list[Trial]) -> pd.DataFrame:
    """The trials table: one row per trial, a column per value and per parameter.

    Args:
        trials: the study's trials.

    Returns:
        The table, in trial order.
    """
    frame = pd.DataFrame({
        "trial": [t.number for t in trials], "state": [t.state for t in trials],
        "pruned": [t.pruned for t in trials], "proposer": [t.proposer for t in trials],
        "attempt": [t.attempt for t in trials], "site": [t.site for t in trials],
        "node": [t.node for t in trials], "run (s)": [t.run_s for t in trials],
        "recorded after (s)": [t.duration_s for t in trials],
    })  # fmt: skip
    width = max((len(t.values or ()) for t in trials), default=0)
    for i in range(width):
        column = [t.values[i] if t.values and len(t.values) > i else None for t in trials]
        frame["value" if i == 0 else f"value {i}"] = pd.Series(column, dtype="float64")
    params = pd.DataFrame([t.params for t in trials], index=frame.index)
    for name in params.columns:
        frame[f"param {name}"] = _column(params[name])
    frame["error"] = [data.last_line(t.error) for t in trials]
    return frame


def _column(values: pd.Series) -> pd.Series:
    """A parameter's column: numbers stay numbers; mixed choices become text (Arrow needs
    one type per column)."""
    kinds = {type(v) for v in values.dropna()}
    if kinds <= {int, float}:
        return values
    return values.map(lambda v: None if v is None or v != v else str(v))


def _trial_detail(study: hpo.Study, trials: list[Trial]) -> None:
    if not trials:
        return
    st.subheader("A trial")
    by_number = {t.number: t for t in trials}
    start = _best_number(study, trials)
    number = st.number_input("Trial (the best one first)", min_value=0,
                             max_value=max(by_number), value=start, key="trial-number")  # fmt: skip
    t = by_number.get(int(number))
    if t is None:
        st.caption(f"No trial {number}.")
        return
    left, right = st.columns(2)
    left.json({"state": t.state, "pruned": t.pruned, "run_s": t.run_s, "params": t.params,
               "values": t.values, "constraints": t.constraints,
               "user_attrs": t.user_attrs})  # fmt: skip
    if t.intermediate_values:
        right.line_chart(pd.Series(t.intermediate_values, name="intermediate value"))
    if t.error:
        st.code(t.error, language="text")
    _logs(study, t)


def _best_number(study: hpo.Study, trials: list[Trial]) -> int:
    if len(study.spec.directions) == 1:
        best = best_of(trials, study.spec.directions[0])
        if best is not None:
            return best.number
    return trials[-1].number


def _logs(study: hpo.Study, t: Trial) -> None:
    owner = study.user
    if not service() and not actor().may_change(owner):
        st.caption(f"Logs are shown to the study's owner ({owner}) and admins only.")
        return
    attempts = list(range(max(t.attempt, 1), 0, -1))
    attempt = st.selectbox("Attempt", attempts, key="trial-attempt")
    acting = hpo.load_study(study.name, settings=acting_settings())
    try:
        attempt, texts = logs_of(acting, t.number, attempt)
    except AccessDenied:  # the server's answer (in service mode)
        st.caption(f"Logs are shown to the study's owner ({owner}) and admins only.")
        return
    for label, text in texts.items():
        with st.expander(f"{label} of trial {t.number}, attempt {attempt}", expanded=bool(text)):
            st.code(text, language="text")


def _actions(study: hpo.Study) -> None:
    with st.expander("Actions: cancel, enqueue a point"):
        if study.state != "active":
            st.caption(f"The study is {study.state}: nothing to cancel or enqueue.")
            return
        owner = study.user
        if not actor().may_change(owner):
            st.caption(f"Read-only: the study is {owner}'s (its owner or an admin may change it).")
            return
        acting = hpo.load_study(study.name, settings=acting_settings())  # the session's user
        _cancel(acting)
        _enqueue(acting)


def _cancel(study: hpo.Study) -> None:
    sure = st.checkbox("I mean to cancel this study", key="cancel-sure")
    if st.button("Cancel the study", disabled=not sure, key="cancel"):
        n = study.cancel()
        st.success(f"Cancelled ({n} evaluation(s) not run to the end).")


def _enqueue(study: hpo.Study) -> None:
    space = study.spec.space
    if not space:
        st.caption("Its space comes from the objective's suggest calls: no point to enqueue.")
        return
    with st.form("enqueue"):
        st.write("Evaluate this point next:")
        point = {name: _input(name, p) for name, p in space.items()}
        if st.form_submit_button("Enqueue"):
            _submit(study, point)


def _input(name: str, p: Any) -> Any:
    if p.type == "categorical":
        return st.selectbox(name, p.choices, key=f"enqueue-{name}")
    middle = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
    if p.type == "int":
        return st.number_input(name, int(p.low), int(p.high), int(middle), step=int(p.step),
                               key=f"enqueue-{name}")  # fmt: skip
    return st.number_input(name, float(p.low), float(p.high), float(middle), format="%g",
                           key=f"enqueue-{name}")  # fmt: skip


def _submit(study: hpo.Study, point: dict[str, Any]) -> None:
    """Enqueue ``point`` less the parameters that its other values leave out (``when``)."""
    kept: dict[str, Any] = {}
    for name, p in study.spec.space.items():
        if all(kept.get(k) in allowed for k, allowed in p.when.items()):
            kept[name] = point[name]
    try:
        done = study.enqueue(kept)
    except (IddsError, ValueError) as exc:
        st.error(f"Not enqueued: {exc}")
        return
    st.success(f"Enqueued {json.dumps(done)}: a head running the study evaluates it next.")
