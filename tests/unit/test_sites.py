"""Sites: the sites.yaml spec, each adapter's pilot (script, submit description, worker
group), pilot scaling decisions, GPU-hour accounting, the package's public names."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
import yaml

import gpu_sites
from gpu_sites import SiteSpecError, load_sites, make_site, parse_sites, scale
from gpu_sites.accounting import rollup, usage
from gpu_sites.pilot import parse, ray_start_argv
from idds import owners
from idds import tasks as tq
from idds.records import Records
from idds.tasks import Outcome, TaskSpec


def _site(**over):
    base = {"name": "gpu", "kind": "local", "slots": 2, "gpus_per_pilot": 1}
    return parse_sites({"sites": [{**base, **over}]}).sites[0]


def test_public_names():
    assert set(gpu_sites.__all__) == {
        "BrokerSpec", "CloudSite", "HTCondorSite", "LocalSite", "Need", "Pilot", "PilotManager",
        "Rollup", "Site", "SiteBroker", "SiteError", "SiteSpec", "SiteSpecError", "SiteState",
        "SitesSpec", "SlurmSite", "Usage", "choose", "from_settings", "load_sites", "make_site",
        "parse_sites", "rollup", "scale", "usage",
    }  # fmt: skip
    for name in gpu_sites.__all__:
        assert hasattr(gpu_sites, name), name


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"kind": "pbs"}, "sites.0.kind: Input should be 'local', 'slurm'"),
        ({"min_pilots": 3, "max_pilots": 2}, "min_pilots (3) must not exceed max_pilots (2)"),
        ({"slots": 0}, "sites.0.slots: Input should be greater than or equal to 1"),
        ({"name": "a b"}, "sites.0.name: String should match pattern"),
        ({"settings": {"partition": "gpu"}}, "Extra inputs are not permitted"),
        ({"kind": "slurm", "settings": {"cpus_per_task": 0}}, "greater than or equal to 1"),
    ],
)
def test_a_bad_site_is_one_line_naming_the_field(over, message):
    with pytest.raises(SiteSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _site(**over)


def test_sites_file_errors(tmp_path):
    with pytest.raises(SiteSpecError, match="cannot read"):
        load_sites(tmp_path / "none.yaml")
    twice = tmp_path / "twice.yaml"
    twice.write_text(yaml.safe_dump({"sites": [{"name": "a", "kind": "local"}] * 2}))
    with pytest.raises(SiteSpecError, match="site names must be unique: a given twice"):
        load_sites(twice)
    assert issubclass(SiteSpecError, ValueError)


def test_the_example_sites_file_validates():
    spec = load_sites(Path(__file__).parents[2] / "examples" / "sites" / "sites.yaml")
    assert {s.kind for s in spec.sites} == {"local", "slurm", "htcondor", "cloud"}


def test_a_pilot_becomes_ray_start_with_the_site_label_on_free_ports():
    args = parse(["--address", "h:1", "--site", "gpu", "--slots", "2", "--cpus", "2",
                  "--gpus", "1", "--ref", "7"])  # fmt: skip
    argv = ray_start_argv(args, "7")
    assert argv[1:4] == ["start", "--address", "h:1"] and "--block" in argv
    resources = json.loads(argv[argv.index("--resources") + 1])
    assert resources == {"site:gpu": 2, "pilot:gpu:7": 1}
    assert argv[argv.index("--num-gpus") + 1] == "1"
    ports = [int(argv[argv.index(o) + 1]) for o in ("--node-manager-port", "--object-manager-port")]
    assert 6379 not in ports and all(p > 0 for p in ports)
    assert "idds-pilots" in argv[argv.index("--temp-dir") + 1]  # never Ray's default


def test_slurm_pilot_script(tmp_path):
    site = make_site(
        _site(kind="slurm", settings={"partition": "gpu", "time_limit": "2:00:00",
                                      "sbatch_args": ["--gres=gpu:1"], "env": {"A": "x y"}}),
        head_address="10.0.0.1:6380", work_dir=tmp_path,
    )  # fmt: skip
    script = site.script()
    assert "#SBATCH --job-name=idds-pilot-gpu" in script
    assert "#SBATCH --partition=gpu" in script and "#SBATCH --time=2:00:00" in script
    assert "#SBATCH --gres=gpu:1" in script and "export A='x y'" in script
    last = script.strip().splitlines()[-1]
    assert last.startswith("exec ") and '--ref "$SLURM_JOB_ID"' in last
    argv = shlex.split(last.replace('"$SLURM_JOB_ID"', "42"))[1:]
    assert argv[0] == sys.executable and argv[2] == "gpu_sites.pilot"
    assert argv[argv.index("--address") + 1] == "10.0.0.1:6380"


def test_htcondor_submit_description(tmp_path):
    site = make_site(
        _site(kind="htcondor", settings={"requirements": 'CUDACapability >= 8.0',
                                         "env": {"A": "1"}}),
        head_address="10.0.0.1:6380", work_dir=tmp_path,
    )  # fmt: skip
    desc = site.description()
    assert desc["request_gpus"] == "1" and desc["request_cpus"] == "2"
    assert desc["+IddsSite"] == '"gpu"' and desc["requirements"] == "CUDACapability >= 8.0"
    assert "--ref $(ClusterId).$(ProcId)" in desc["arguments"]
    htcondor2 = pytest.importorskip("htcondor2", reason="htcondor2 bindings not installed")
    submit = htcondor2.Submit(desc)  # the bindings parse it as condor_submit would
    assert submit["request_gpus"] == "1" and submit["arguments"].startswith('"-m gpu_sites.pilot')


def test_htcondor_without_a_schedd_is_a_site_error(tmp_path, monkeypatch):
    site = make_site(_site(kind="htcondor", settings={"schedd": "nowhere",
                                                      "collector": "127.0.0.1:9"}),
                     head_address="h:1", work_dir=tmp_path)  # fmt: skip
    with pytest.raises(gpu_sites.SiteError):
        site.pilots()


def test_cloud_cluster_launcher_config_passes_rays_schema(tmp_path):
    import jsonschema
    import ray.autoscaler

    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    cluster = {
        "cluster_name": "idds",
        "provider": {"type": "aws", "region": "eu-west-1"},
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": {
            "head": {"resources": {}, "node_config": {"InstanceType": "m5.large"}}
        },
        "head_node_type": "head",
    }
    site = make_site(
        _site(kind="cloud", gpus_per_pilot=4, max_pilots=8, idle_s=600,
              settings={"cluster": cluster, "node_config": {"InstanceType": "p4d.24xlarge"}}),
        head_address=None, work_dir=tmp_path,
    )  # fmt: skip
    path = site.write_config()
    config = yaml.safe_load(path.read_text())
    jsonschema.validate(config, json.loads(schema_path.read_text()))  # what `ray up` checks
    group = config["available_node_types"]["site-gpu"]
    assert group["resources"] == {"CPU": 2.0, "GPU": 4, "site:gpu": 2}
    assert (group["min_workers"], group["max_workers"]) == (0, 8)
    assert config["idle_timeout_minutes"] == 10


def test_cloud_kuberay_worker_group(tmp_path):
    site = make_site(
        _site(kind="cloud", min_pilots=1, max_pilots=4, settings={"launcher": "kuberay"}),
        head_address=None, work_dir=tmp_path,
    )  # fmt: skip
    group = yaml.safe_load(site.write_config().read_text())["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (1, 4, 1)
    assert json.loads(group["rayStartParams"]["resources"]) == {"site:gpu": 2}
    assert group["rayStartParams"]["num-gpus"] == "1"
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1


@pytest.mark.parametrize(
    ("known", "pending", "queued", "idle", "expected"),
    [
        (0, 0, 0, [], (1, [])),  # up to min_pilots
        (1, 0, 5, [], (2, [])),  # 5 queued, 2 slots each: 3 more pilots, capped at max 3
        (2, 1, 2, [], (0, [])),  # one pending pilot covers 2 queued
        (3, 0, 9, [], (0, [])),  # at max
        (3, 0, 0, ["a", "b", "c"], (0, ["a", "b"])),  # idle ones drain down to min
        (3, 0, 1, ["a"], (0, [])),  # queued work: no drain
    ],
)
def test_pilots_scale_between_min_and_max(known, pending, queued, idle, expected):
    spec = _site(min_pilots=1, max_pilots=3)
    assert scale(spec, known=known, pending=pending, queued=queued, idle=idle) == expected


def test_gpu_hours_roll_up_per_task_owner_and_site(engine):
    with engine.begin() as conn:
        owner = owners.create(conn, "study", "s", {})
        specs = [TaskSpec(number=i, kind="t", payload={}, resources={"gpus": 2}) for i in range(2)]
        tq.submit(conn, owner, specs)
        claims = tq.claim(conn, owner, 2, lease_seconds=30)
        tq.start_attempts(conn, [(claims[0], "a"), (claims[1], "b")], head="h")
        for claim, site in zip(claims, ["a", "b"], strict=True):
            tq.finish(conn, claim, Outcome(kind="crash", error="x", started=0.0), site=site)
        retry = tq.claim(conn, owner, 2, lease_seconds=30)  # backoff: maybe none yet
    rows = usage(Records(engine))
    assert not retry or all(c.attempt == 2 for c in retry)
    assert len(rows) == 2 and all(r.state == "failed" and r.gpus == 2 for r in rows)
    by_site = {r.key: r for r in rollup(rows, "site")}
    assert set(by_site) == {"a", "b"}
    for r in rows:  # started at epoch 0 on purpose: wall time is the clock now
        assert r.gpu_hours == pytest.approx(r.wall_s * 2 / 3600)
    (by_owner,) = rollup(rows, "owner")
    assert by_owner.key == "study/s" and by_owner.attempts == 2 and by_owner.failed == 2
    assert by_owner.gpu_hours == pytest.approx(sum(r.gpu_hours for r in by_site.values()))
    assert {r.key for r in rollup(rows, "task")} == {"study/s#0", "study/s#1"}


def test_the_command_rejects_a_bad_sites_file_in_one_line_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    from idds.cli import main

    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "sites.yaml"
    bad.write_text(yaml.safe_dump({"sites": [{"name": "a", "kind": "pbs"}]}))
    db = tmp_path / "idds.db"
    for command in (["list"], ["status"], ["drain", "a"], ["up"]):
        with pytest.raises(SystemExit) as exit_:
            main(["--db", f"sqlite:///{db}", "sites", *command, "--sites", str(bad)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "sites.0.kind: Input should be 'local'" in err
    assert not db.exists()
