"""Toy-MC CLs upper limits: multi-step scans of a pyhf likelihood's POI, run as task batches.

Define a scan in YAML (``idds toys launch scan.yaml``) or in Python::

    from toys import ToyScan
    scan = ToyScan(name="demo", workspace="workspace.json", range=[0, 5], toys=1000)
    result = scan.run()
    print(result.limits["obs"].value, result.limits["obs"].error)

Modules: :mod:`~toys.spec` (the spec), :mod:`~toys.stats` (toys, tail fractions,
CLs), :mod:`~toys.scan` (limits and the plan of each step), :mod:`~toys.run` (the
scan as the dispatcher drives it), :mod:`~toys.toyscan` (the API), :mod:`~toys.cli`.
"""

from toys.scan import Limit, Point
from toys.spec import ToyScanError, ToyScanSpec, load_scan_file
from toys.stats import BANDS
from toys.toyscan import ScanResult, ToyScan, load_scan

__all__ = [
    "BANDS",
    "Limit",
    "Point",
    "ScanResult",
    "ToyScan",
    "ToyScanError",
    "ToyScanSpec",
    "load_scan",
    "load_scan_file",
]
