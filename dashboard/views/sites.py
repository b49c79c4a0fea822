"""The Sites page."""

from dashboard.sites import render

render()
