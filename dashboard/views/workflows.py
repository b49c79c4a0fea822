"""The Workflows page (a workflow: ?workflow=NAME)."""

from dashboard.workflows import render

render()
