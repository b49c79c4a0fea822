"""The Streamlit app: ``idds dashboard`` runs it (``streamlit run dashboard/app.py`` too, with
``IDDS_DB_URL`` set). One page per capability."""

from __future__ import annotations

import streamlit as st

from dashboard.navigation import pages

st.set_page_config(page_title="iDDS dashboard", page_icon=":material/monitoring:", layout="wide")
st.navigation(pages()).run()
