"""The Studies page (a study: ?study=NAME)."""

from dashboard.studies import render

render()
