"""The dashboard's pages: one per capability that exists in this installation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import streamlit as st

# Not "pages/": Streamlit would serve a script there by its URL without running app.py (and
# so without its sign-in).
PAGES = Path(__file__).parent / "views"

#: (script in views/, title, URL path, the module the capability needs) in menu order; the
#: first is the home page. No module of the dashboard may be named like a capability package
#: (toys, hpo, dag ...): Streamlit puts this directory first on sys.path, where it would
#: shadow the package.
PAGE_LIST = [
    ("overview.py", "Overview", "overview", None),
    ("studies.py", "Studies", "studies", "hpo"),
    ("toy_scans.py", "Toy scans", "toys", "toys"),
    ("workflows.py", "Workflows", "workflows", "dag"),
    ("carousel.py", "Carousel", "carousel", "carousel.live"),
    ("sites.py", "Sites", "sites", "gpu_sites"),
]


def _exists(module: str | None) -> bool:
    """Whether ``module`` is installed (a directory of that name without code, such as a
    tests folder on ``PYTHONPATH``, does not count)."""
    if module is None:
        return True
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        return False
    return spec is not None and spec.origin is not None


def pages() -> list[st.Page]:
    """The app's pages, for ``st.navigation``: those whose capability is installed."""
    return [
        st.Page(PAGES / script, title=title, url_path=path, default=i == 0)
        for i, (script, title, path, module) in enumerate(PAGE_LIST)
        if _exists(module)
    ]
