"""Notebook reprs: every figure carries a PNG and text besides plotly's JSON, and a workflow
shows its state and graph (no kernel here; the notebook tests run them in one)."""

from __future__ import annotations

import base64

import plotly.graph_objects as go

from dag import Workflow
from idds.config import Settings
from idds.notebook import PLOTLY_MIME, Figure, figure_bundle


def _figure() -> go.Figure:
    fig = go.Figure([go.Scatter(x=[0, 1, 2], y=[3.0, 1.0, 2.0], mode="markers", name="value"),
                     go.Bar(x=["a", "b"], y=[1, 2], name="count")])  # fmt: skip
    fig.update_layout(title="demo: history", yaxis_type="log")
    return fig


def test_a_figure_bundle_carries_plotly_html_a_png_and_text():
    bundle = figure_bundle(_figure())
    assert set(bundle) == {PLOTLY_MIME, "text/html", "image/png", "text/plain"}
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "demo: history" in bundle["text/plain"]
    # viewers that run no script keep the PNG; the script removes it where plotly draws
    html = bundle["text/html"]
    assert html.index("data:image/png;base64,") < html.index("<script")
    assert Figure(_figure())._repr_mimebundle_().keys() == bundle.keys()


def test_a_figure_matplotlib_cannot_draw_has_no_png_rather_than_empty_axes():
    fig = go.Figure(go.Parcoords(dimensions=[{"label": "x", "values": [1, 2]}]))
    bundle = figure_bundle(fig)
    assert "image/png" not in bundle and "<script" in bundle["text/html"]


def test_a_workflow_not_yet_created_shows_its_graph_as_text(tmp_path):
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'idds.db'}", work_dir=str(tmp_path))
    wf = Workflow({"name": "nb-flow", "nodes": [{"name": "a", "callable": "m:f"},
                   {"name": "b", "callable": "m:g", "after": ["a"]}]}, settings=settings)  # fmt: skip
    html = wf._repr_html_()
    assert "<b>Workflow nb-flow</b> · not created yet" in html
    assert "b [callable] &lt;- a" in html
