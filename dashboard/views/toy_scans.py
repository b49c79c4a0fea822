"""The Toy scans page (a scan: ?scan=NAME)."""

from dashboard.toy_scans import render

render()
