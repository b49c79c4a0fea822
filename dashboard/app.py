"""The Streamlit app: ``idds dashboard`` runs it (``streamlit run dashboard/app.py`` too, with
``IDDS_DB_URL`` set). One page per capability."""

from __future__ import annotations

import streamlit as st

from dashboard._common import sign_in, signed_in
from dashboard.navigation import pages

st.set_page_config(page_title="iDDS dashboard", page_icon=":material/monitoring:", layout="wide")
# Where the database has registered users, a session sees the sign-in form instead of the
# page it asked for (which it sees once it gives a valid token), and no menu.
allowed = signed_in()
page = st.navigation(pages(), position="sidebar" if allowed else "hidden")
if allowed:
    page.run()
else:
    sign_in()
