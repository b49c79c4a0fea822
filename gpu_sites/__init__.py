"""GPU sites: local, Slurm, HTCondor and cloud resources as Ray pilots, a broker that picks a
site per task, pilot scaling, and GPU-hour accounting.

A site contributes Ray worker nodes (pilots) labelled ``site:NAME``. Name a ``sites.yaml`` in
``IDDS_SITES`` and every dispatcher places its tasks through :class:`SiteBroker`.
"""

from gpu_sites.accounting import Rollup, Usage, rollup, usage
from gpu_sites.broker import Need, SiteBroker, SiteState, choose, from_settings
from gpu_sites.cloud import CloudSite
from gpu_sites.errors import SiteError, SiteSpecError
from gpu_sites.htcondor import HTCondorSite
from gpu_sites.local import LocalSite
from gpu_sites.pilots import PilotManager, scale
from gpu_sites.site import Pilot, Site, make_site
from gpu_sites.slurm import SlurmSite
from gpu_sites.spec import BrokerSpec, SiteSpec, SitesSpec, load_sites, parse_sites

__all__ = [
    "BrokerSpec",
    "CloudSite",
    "HTCondorSite",
    "LocalSite",
    "Need",
    "Pilot",
    "PilotManager",
    "Rollup",
    "Site",
    "SiteBroker",
    "SiteError",
    "SiteSpec",
    "SiteSpecError",
    "SiteState",
    "SitesSpec",
    "SlurmSite",
    "Usage",
    "choose",
    "from_settings",
    "load_sites",
    "make_site",
    "parse_sites",
    "rollup",
    "scale",
    "usage",
]
