"""The Toy scans page (a scan: ?scan=NAME)."""

from dashboard.toys import render

render()
