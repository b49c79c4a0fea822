"""The Sites page: GPU-hours and wall time per site and per owner (study, workflow ...) from
the attempts the core records (``gpu_sites.usage``), tasks in flight per site, and, where
``IDDS_SITES`` names a ``sites.yaml``, each declared site's pilots and free slots."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import data
from dashboard._common import live, records, settings


def render() -> None:
    """Draw the page."""
    st.title("Sites")
    busy = data.tasks_by_site(records())
    live(_body, active=bool(busy), key="sites-refresh")


def _body() -> None:
    from gpu_sites import rollup, usage

    used = usage(records())
    busy = {site: sum(kinds.values()) for site, kinds in data.tasks_by_site(records()).items()}
    _declared(busy)
    if not used:
        st.info("No attempt has run yet: GPU-hours appear once work runs.")
        return
    per_site = _frame(rollup(used, "site"), "site")
    per_site["in flight"] = [busy.get(s, 0) for s in per_site["site"]]
    st.subheader("Per site")
    st.dataframe(per_site, hide_index=True)
    per_owner = _frame(rollup(used, "owner"), "owner")
    st.subheader("Per study, workflow, scan, carousel")
    st.dataframe(per_owner, hide_index=True)
    metric = "GPU-hours" if per_owner["GPU-hours"].sum() > 0 else "wall (s)"
    fig = px.bar(per_owner, x="owner", y=metric, title=f"{metric} per owner")
    st.plotly_chart(fig, key="per-owner")


def _frame(rows: list, key: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{key: r.key, "attempts": r.attempts, "failed": r.failed, "wall (s)": r.wall_s,
          "GPU-hours": r.gpu_hours} for r in rows],
        columns=[key, "attempts", "failed", "wall (s)", "GPU-hours"],
    )  # fmt: skip


def _join_ray(spec: Any) -> None:
    """Join the Ray cluster the dashboard was given, where a cloud site's pilots are its
    nodes (a cluster that does not answer leaves those sites unreachable)."""
    address = settings().ray_address
    if not address or not any(s.kind == "cloud" for s in spec.sites):
        return
    from idds.errors import IddsError
    from idds.runtime import ensure_ray

    try:
        ensure_ray(address, tries=1)
    except IddsError as exc:
        st.warning(f"Ray at {address}: {exc}")


def _declared(busy: dict[str, int]) -> None:
    """The sites of ``IDDS_SITES``: pilots running and waiting as each site reports them."""
    path = settings().sites
    if not path:
        st.caption("Set IDDS_SITES to a sites.yaml to see each site's pilots and free slots.")
        return
    from gpu_sites import SiteError, SiteSpecError, load_sites, make_site

    try:
        spec = load_sites(path)
    except SiteSpecError as exc:
        st.warning(f"IDDS_SITES: {exc}")
        return
    _join_ray(spec)
    rows = []
    for s in spec.sites:
        site = make_site(s, head_address=None, work_dir=settings().work_dir)
        try:
            pilots = site.pilots()
        except SiteError as exc:
            why = str(exc)
            if s.kind == "cloud" and not settings().ray_address:
                why = "its pilots are Ray nodes: start `idds --ray-address HOST:PORT dashboard`"
            rows.append({"site": s.name, "kind": s.kind, "pilots": f"unreachable ({why})"})
            continue
        running = sum(p.state == "running" for p in pilots)
        waiting = len(pilots) - running
        rows.append({"site": s.name, "kind": s.kind, "gpu type": s.gpu_type,
                     "pilots running": running, "pilots waiting": waiting,
                     "slots busy": busy.get(s.name, 0),
                     "slots free": max(running * s.slots - busy.get(s.name, 0), 0)})  # fmt: skip
    st.subheader("Declared sites")
    st.dataframe(pd.DataFrame(rows), hide_index=True)
