"""The Streamlit dashboard: ``idds dashboard [--db URL | --url SERVER] [--port N]``.

Pages: Overview (owners by kind and state, tasks running per site, recent failures) and
Studies (the list with filters; a study's figures, trials, a trial's logs; cancel and enqueue).
The dashboard only reads, through the helpers below (on a records object: the database's, or
an ``idds serve`` HTTP API's with the visitor's token) and hpo's public API, and acts only
through that API. Its pieces are usable on their own, e.g. in a notebook::

    import hpo, dashboard
    study = hpo.load_study("svc-digits")
    figures = dashboard.study_figures(study.trials, study.spec)
    figures.figures["Optimisation history"].show()
"""

from pathlib import Path

from dashboard.data import (
    Failure,
    StudyRow,
    list_studies,
    owner_counts,
    recent_failures,
    study_version,
    tasks_by_site,
)
from dashboard.plots import StudyFigures, history_figure, sample, study_figures

#: The Streamlit script (``streamlit run`` it with ``IDDS_DB_URL`` set, or use the command).
APP = Path(__file__).parent / "app.py"

__all__ = [
    "APP",
    "Failure",
    "StudyFigures",
    "StudyRow",
    "history_figure",
    "list_studies",
    "owner_counts",
    "recent_failures",
    "sample",
    "study_figures",
    "study_version",
    "tasks_by_site",
]
