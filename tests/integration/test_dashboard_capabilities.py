"""The Toy scans, Workflows and Carousel pages through AppTest, on a database seeded by a real
toy scan, a real workflow (one node fails) and two live carousels (two policies), on the
session's Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from idds.config import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
APP = str(ROOT / "dashboard" / "app.py")


def seed_capabilities(settings: Settings) -> None:
    """A small toy scan, a workflow with a fan-out and a failing node, two carousels."""
    from carousel import load_campaign_file, run_live
    from dag import Workflow
    from toys import ToyScan

    ToyScan(settings=settings, name="scan", workspace=str(ROOT / "examples/toys/low_count.json"),
            range=[0, 4], toys=20, batch_size=20, points=3, max_steps=1, tolerance=0.5,
            seed=5).run(progress=False)  # fmt: skip
    out = "printf '%s' > output.json"
    Workflow({"name": "flow", "nodes": [
        {"name": "make", "command": ["sh", "-c", f"echo making; {out % '[1, 2, 3]'}"]},
        {"name": "square", "command": ["sh", "-c", out % "4"], "foreach": "make",
         "args": {"x": "${item}"}},
        {"name": "broken", "command": ["sh", "-c", "echo oops >&2; exit 3"], "max_attempts": 1},
        {"name": "after_broken", "command": ["sh", "-c", out % "1"], "after": ["broken"]},
    ]}, settings=settings).run()  # fmt: skip
    spec = load_campaign_file(ROOT / "examples/carousel/small.yaml").scaled(12)
    run_live(spec.replace(name="c-file"), settings, policy="file-level", speedup=20000)
    run_live(spec.replace(name="c-dataset"), settings, policy="dataset-level", speedup=20000)


@pytest.fixture(scope="module")
def seeded(ray_address, tmp_path_factory) -> Settings:
    base = tmp_path_factory.mktemp("capabilities")
    settings = Settings(db_url=f"sqlite:///{base / 'idds.db'}", ray_address=ray_address,
                        work_dir=base / "work", lease_seconds=6.0)  # fmt: skip
    seed_capabilities(settings)
    return settings


@pytest.fixture
def app(seeded, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("IDDS_DB_URL", seeded.db_url)
    monkeypatch.setenv("IDDS_WORK_DIR", str(seeded.work_dir))
    return AppTest.from_file(APP, default_timeout=60).run()


def _page(at, script, **query):
    """Open a page; ``query`` opens one owner's page (``scan="x"``: ``toys?scan=x``)."""
    at.query_params.clear()
    at.query_params.update(query)
    at.switch_page(f"views/{script}").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _list_html(at) -> str:
    """The list whose names link to each one's page."""
    return next(m.value for m in at.markdown if "idds-list" in m.value)


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_counts_every_kind(app):
    metrics = _metrics(app)
    assert metrics["Toy scans (0 active)"] == "1"
    assert metrics["Workflows (0 active)"] == "1"
    assert metrics["Carousels (0 active)"] == "2"
    failures = next(d.value for d in app.dataframe if "owner" in d.value.columns)
    assert list(failures["owner"]) == ["flow"]


def test_toy_scan_page_draws_cls_with_bands_and_lists_limits(app, seeded):
    from toys import load_scan

    listed = _page(app, "toy_scans.py")
    assert 'href="toys?scan=scan"' in _list_html(listed)
    at = _page(app, "toy_scans.py", scan="scan")
    result = load_scan("scan", settings=seeded).result()
    assert _metrics(at)["Points"] == str(len(result.points))
    figure = at.get("plotly_chart")[0].proto.spec
    for name in ("expected ±2σ", "expected ±1σ", "expected (median)", "observed (toys)"):
        assert name in figure
    limits = next(d.value for d in at.dataframe if "limit" in d.value.columns)
    assert list(limits["limit"]) == ["observed", "expected -2σ", "expected -1σ", "expected",
                                     "expected +1σ", "expected +2σ"]  # fmt: skip
    obs = result.limits["obs"].value
    assert limits["value"][0] == pytest.approx(obs) if obs is not None else True


def test_workflow_page_colours_nodes_and_shows_the_failed_node_logs(app):
    listed = _page(app, "workflows.py")
    assert 'href="workflows?workflow=flow"' in _list_html(listed)
    at = _page(app, "workflows.py", workflow="flow")
    metrics = _metrics(at)
    assert (metrics["State"], metrics["Nodes"], metrics["Failed"]) == ("failed", "7", "1")
    nodes = next(d.value for d in at.dataframe if "node" in d.value.columns)
    states = dict(zip(nodes["node"], nodes["state"], strict=True))
    assert states["square[2]"] == "succeeded" and states["after_broken"] == "blocked"
    assert "3 items" in list(nodes["detail"])
    graph = at.get("plotly_chart")[0].proto.spec
    assert '"blocked"' in graph and '"failed"' in graph and "square[1]" in graph
    assert at.selectbox(key="log-node").value == "broken"  # the failed node first
    assert any("oops" in c.value for c in at.code)  # its stderr


def test_carousel_page_compares_policies_and_draws_counts_and_disk(app):
    listed = _page(app, "carousel.py")
    table = _list_html(listed)
    for name, policy in (("c-file", "file-level"), ("c-dataset", "dataset-level")):
        assert f'href="carousel?carousel={name}"' in table and f"<td>{policy}</td>" in table
    (compare,) = [c.proto.spec for c in listed.get("plotly_chart")]
    assert "dataset-level" in compare and "file-level" in compare
    at = _page(app, "carousel.py", carousel="c-file")
    metrics = _metrics(at)
    assert (metrics["Released to processing"], metrics["Processed"]) == ("12", "12")
    assert len(at.get("plotly_chart")) == 2  # files over time, disk


def test_sites_page_rolls_attempts_up_per_site_and_per_owner(app, seeded):
    pytest.importorskip("gpu_sites", reason="the Sites page needs the gpu_sites package")
    from gpu_sites import usage
    from idds.db import connect
    from idds.records import Records

    used = usage(Records(connect(seeded.db_url)))
    at = _page(app, "sites.py")
    per_site = next(d.value for d in at.dataframe if "site" in d.value.columns)
    assert dict(zip(per_site["site"], per_site["attempts"], strict=True)) == {"local": len(used)}
    per_owner = next(d.value for d in at.dataframe if "owner" in d.value.columns)
    owners = dict(zip(per_owner["owner"], per_owner["failed"], strict=True))
    assert owners["workflow/flow"] == 1  # its one broken node
    # the carousel's processing fails at random (1 % of attempts), as its campaign says
    expected = sum(u.state == "failed" for u in used if u.owner == "carousel/c-file")
    assert owners["carousel/c-file"] == expected
    assert {"toyscan/scan", "carousel/c-dataset"} <= set(owners)
