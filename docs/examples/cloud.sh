# The KubeRay worker group of the `cloud` site of examples/sites/sites.yaml, written for the
# operator to add to the RayCluster (a `cluster-launcher` site writes a `ray up` YAML instead)
python - <<'PY'
from pathlib import Path

from gpu_sites import load_sites, make_site

sites = load_sites("examples/sites/sites.yaml")
cloud = next(spec for spec in sites.sites if spec.kind == "cloud")
site = make_site(cloud, head_address="HEAD:6380", work_dir=Path("idds-work"))
print(site.write_config().read_text())
PY
