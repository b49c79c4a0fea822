"""The dashboard's pages: one per capability that exists."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

#: (script in pages/, title, URL path) in the order of the menu; the first is the home page.
PAGE_LIST = [
    ("overview.py", "Overview", "overview"),
    ("studies.py", "Studies", "studies"),
]


def pages() -> list[st.Page]:
    """The app's pages, for ``st.navigation``."""
    return [
        st.Page(PAGES / script, title=title, url_path=path, default=i == 0)
        for i, (script, title, path) in enumerate(PAGE_LIST)
    ]
