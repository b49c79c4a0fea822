"""Pilots the sites tests start (and stop): a few local sites and, where Slurm runs, Slurm
pilots; each pilot declares one logical GPU, so GPU studies run on this CPU machine."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from gpu_sites import SitesSpec, make_site, parse_sites

HERE = Path(__file__).parent

#: Every site the tests use; each test's sites.yaml names a few of them.
SITES = {
    "home": {"kind": "local", "gpu_type": "T4"},
    "bad": {"kind": "local", "gpu_type": "T4", "cost_weight": 0.1,
            "settings": {"env": {"IDDS_TEST_BROKEN_SITE": "1"}}},
    "hpc": {"kind": "slurm", "gpu_type": "T4", "max_pilots": 2},
    "spare": {"kind": "local", "gpu_type": "T4", "cost_weight": 0.5},
    "elastic": {"kind": "local", "gpu_type": "T4", "idle_s": 1, "startup_s": 5},
}  # fmt: skip
_COMMON = {"slots": 1, "gpus_per_pilot": 1, "min_pilots": 0, "idle_s": 600, "startup_s": 15}


def sites_spec(names: list[str], **broker: object) -> dict:
    """A sites declaration of the named test sites (each pilot: 1 slot, 1 logical GPU)."""
    sites = []
    for name in names:
        site = {"name": name, **_COMMON, **SITES[name]}  # type: ignore[dict-item]
        site["settings"] = {"object_store_mb": 80, **site.get("settings", {})}
        sites.append(site)
    return {"sites": sites, "broker": {"refresh_s": 0.2, **broker}}


def write_sites(path: Path, names: list[str], **broker: object) -> Path:
    path.write_text(yaml.safe_dump(sites_spec(names, **broker)))
    return path


def start(spec: SitesSpec, counts: dict[str, int], head: str, work_dir: Path) -> dict:
    """Submit ``counts[site]`` pilots per site; returns the adapters and their refs."""
    started = {}
    for name, count in counts.items():
        site = make_site(spec.site(name), head_address=head, work_dir=work_dir)
        started[name] = (site, site.submit(count))
    return started


def wait_joined(counts: dict[str, int], timeout: float = 120.0, started: dict | None = None):
    """Wait until Ray shows each site's pilots (``counts[site]`` slots of ``site:NAME``).

    A pilot that died while starting (Ray gives a node 30 s to register, which a loaded
    machine may miss) is submitted again, as the pilot manager would.
    """
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        have = ray.cluster_resources()
        short = {n: c for n, c in counts.items() if have.get(f"site:{n}", 0) < c}
        if not short:
            return
        for name in short:
            if started and name in started:
                site, refs = started[name]
                alive = {p.ref for p in site.pilots()}
                for ref in [r for r in refs if r not in alive]:
                    refs.remove(ref)
                    refs.extend(site.submit(1))
        time.sleep(0.5)
    raise TimeoutError(f"pilots did not join in {timeout:g} s: want {counts}, have {have}")


def all_sites() -> SitesSpec:
    return parse_sites(sites_spec(list(SITES)))
