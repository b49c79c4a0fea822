"""Toy-MC CLs upper limits: multi-step scans of a pyhf likelihood's POI, run as task batches.

Define a scan in YAML (``idds toys launch scan.yaml``) or in Python::

    from hpo.toys import ToyScan
    scan = ToyScan(name="demo", workspace="workspace.json", range=[0, 5], toys=1000)
    result = scan.run()
    print(result.limits["obs"].value, result.limits["obs"].error)

Modules: :mod:`~hpo.toys.spec` (the spec), :mod:`~hpo.toys.stats` (toys, tail fractions,
CLs), :mod:`~hpo.toys.scan` (limits and the plan of each step), :mod:`~hpo.toys.run` (the
scan as the dispatcher drives it), :mod:`~hpo.toys.toyscan` (the API), :mod:`~hpo.toys.cli`.
"""

from hpo.toys.scan import Limit, Point
from hpo.toys.spec import ToyScanError, ToyScanSpec, load_scan_file
from hpo.toys.stats import BANDS
from hpo.toys.toyscan import ScanResult, ToyScan, load_scan

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
