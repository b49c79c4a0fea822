"""Jupyter: a study's rich HTML (``Study._repr_html_``) and a live view of a running study.

The live view redraws in place, in the cell that called :func:`watch`, and its history figure
carries a PNG too, so a saved notebook shows it on GitHub (:mod:`idds.notebook`).

``study.optimize()`` in a notebook shows tqdm's notebook progress bar (``tqdm.auto``; it needs
``ipywidgets``, and falls back to a text bar without it). To keep working while a study runs::

    from hpo.jupyter import watch
    live = watch(study)   # runs study.optimize() in a background thread; the cell returns
    ...                   # the view above updates every 2 s: best value, history, last trials
    live.wait()           # blocks until the study ends (re-raises an error of the run)

``watch(hpo.load_study("name"), run=False)`` follows a study that another process runs.
"""

from __future__ import annotations

import html
import threading
from typing import TYPE_CHECKING, Any

from hpo.study import best_of, pareto_front
from idds.errors import NotFound
from idds.notebook import figure_bundle
from idds.records import best_index

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hpo.study import Study, Trial

__all__ = ["LiveStudy", "study_html", "watch"]

_STYLE = "border-collapse:collapse;font-size:90%"


def study_html(study: Study, *, rows: int = 10) -> str:
    """An HTML summary of a study: state, progress, best value (or Pareto front) and its last
    trials.

    Args:
        study: the study (created or not yet).
        rows: how many of its last trials to list.

    Returns:
        The HTML, every recorded text escaped.
    """
    spec = study.spec
    head = (f"<b>Study {_e(study.name)}</b> · {_e('/'.join(spec.directions))} · proposer "
            f"{_e(spec.proposer)}")  # fmt: skip
    try:
        state = study.state
    except NotFound:
        return f"<div>{head} · not created yet ({spec.max_points} points to run)</div>"
    if study.segments:
        parts = [study_html(segment, rows=rows) for segment in study._segments_here()]
        return f"<div>{head} · {_e(state)} · segmented</div>" + "".join(parts)
    trials = study.trials
    return f"<div>{head} · {_e(state)}<br>{_progress(study, trials)}{_table(trials[-rows:])}</div>"


def _e(text: object) -> str:
    return html.escape(str(text))


def _progress(study: Study, trials: list[Trial]) -> str:
    spec = study.spec
    states = [t.state for t in trials]
    running = states.count("running") + states.count("dispatched")
    line = (f"{len(trials)}/{spec.max_points} trials, {running} running, "
            f"{states.count('failed')} failed")  # fmt: skip
    if len(spec.directions) > 1:
        return f"{line} · Pareto front: {len(pareto_front(trials, spec.directions))} trials<br>"
    best = best_of(trials, spec.directions[0])
    if best is None:
        return f"{line} · no succeeded trial yet<br>"
    return (f"{line} · best <b>{best.value:.6g}</b> (trial {best.number}) at "
            f"<code>{_e(best.params)}</code><br>")  # fmt: skip


def _table(trials: list[Trial]) -> str:
    if not trials:
        return ""
    cells = "".join(
        f"<tr><td>{t.number}</td><td>{_e(t.state)}{' (pruned)' if t.pruned else ''}</td>"
        f"<td>{_values(t)}</td><td><code>{_e(t.params)}</code></td></tr>"
        for t in trials
    )
    head = "<tr><th>trial</th><th>state</th><th>value</th><th>params</th></tr>"
    return f"<table style='{_STYLE}'>{head}{cells}</table>"


def _values(t: Trial) -> str:
    return ", ".join(f"{v:.6g}" for v in t.values) if t.values else ""


def history_figure(study: Study, trials: list[Trial]) -> go.Figure:
    """Each succeeded trial's first value against its number, and the best so far."""
    import plotly.graph_objects as go

    done = [t for t in trials if t.counts_for_best]
    x = [t.number for t in done]
    y = [t.values[0] for t in done]  # type: ignore[index]
    best: list[float] = []
    for value in y:
        better = not best or best_index([[best[-1]], [value]], study.spec.directions[0])
        best.append(value if better else best[-1])
    fig = go.Figure([go.Scatter(x=x, y=y, mode="markers", name="value"),
                     go.Scatter(x=x, y=best, mode="lines", name="best so far")])  # fmt: skip
    fig.update_layout(title=f"{study.name}: history", xaxis_title="trial", height=320,
                      margin={"t": 40, "b": 30})  # fmt: skip
    return fig


class LiveStudy:
    """A view of a study in a notebook that refreshes itself while the study runs.

    Args:
        study: the study to show.
        interval: seconds between refreshes.

    Attributes:
        error: the exception the background run ended with, if any.
    """

    def __init__(self, study: Study, *, interval: float = 2.0) -> None:
        self.study = study
        self.interval = interval
        self.error: BaseException | None = None
        self.refreshes = 0
        self._handles: list[Any] = []
        self._runner: threading.Thread | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    def display(self) -> LiveStudy:
        """Show the view in the cell's output (a summary and, with one objective, the history).
        Outside IPython the summary is printed once and not refreshed."""
        from IPython.display import HTML, display

        self._handles = [display(HTML(study_html(self.study)), display_id=True)]
        shown = self._handles[0] is not None  # None: not in IPython, the summary was printed
        if shown and len(self.study.spec.directions) == 1 and not self.study.segments:
            # A raw MIME bundle, not a plotly figure: a figure displays itself (its
            # _ipython_display_) and ignores the handle, so it would land in the running cell.
            self._handles.append(display({"text/plain": ""}, raw=True, display_id=True))
        return self

    def refresh(self) -> None:
        """Read the study again and redraw the view."""
        from IPython.display import HTML

        if not self._handles:
            self.display()
        if self._handles[0] is None:  # not in IPython: display() printed the summary once
            self.refreshes += 1
            return
        self._handles[0].update(HTML(study_html(self.study)))
        if len(self._handles) > 1:
            try:
                trials = self.study.trials
            except NotFound:
                trials = []
            if trials:
                bundle = figure_bundle(history_figure(self.study, trials))
                self._handles[1].update(bundle, raw=True)
        self.refreshes += 1

    def start(self, *, run: bool = True) -> LiveStudy:
        """Refresh in the background; with ``run``, run ``study.optimize()`` there too.

        Returns:
            self, for chaining.
        """
        if run:
            self._runner = threading.Thread(target=self._run, daemon=True, name="hpo-live-run")
            self._runner.start()
        self._poller = threading.Thread(target=self._poll, daemon=True, name="hpo-live-view")
        self._poller.start()
        return self

    def _run(self) -> None:
        try:
            self.study.optimize(progress=False)
        except BaseException as exc:  # noqa: BLE001 - handed to wait()
            self.error = exc

    def _poll(self) -> None:
        while not self._stop.is_set() and not self._finished():
            self.refresh()
            self._stop.wait(self.interval)
        self.refresh()

    def _finished(self) -> bool:
        if self._runner is not None:
            return not self._runner.is_alive()
        try:
            return self.study.state != "active"
        except NotFound:
            return False

    @property
    def running(self) -> bool:
        """Whether the view still refreshes itself."""
        return self._poller is not None and self._poller.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the study's run ends (or ``timeout`` seconds pass), then redraw.

        Raises:
            Exception: the error the background run ended with.
        """
        for thread in (self._runner, self._poller):
            if thread is not None:
                thread.join(timeout)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Stop refreshing (a background run goes on; ``study.cancel()`` stops it)."""
        self._stop.set()


def watch(study: Study, *, interval: float = 2.0, run: bool = True) -> LiveStudy:
    """Show a live view of ``study`` and, with ``run``, run it in a background thread.

    Args:
        study: the study (created or not: ``optimize`` creates it).
        interval: seconds between refreshes.
        run: run ``study.optimize()`` in the background; False follows a study run elsewhere
            until it is no longer active.

    Returns:
        The view; ``.wait()`` blocks until the run ends.
    """
    return LiveStudy(study, interval=interval).display().start(run=run)
