"""The Overview page."""

from dashboard.overview import render

render()
