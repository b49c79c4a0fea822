"""GPU studies across real pilots: local Ray worker nodes and Slurm batch jobs (a one-node
Slurm started by a fixture) joined to the session's Ray, each declaring one logical GPU."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from sites import pilots as tp
from sites.slurm_cluster import missing as slurm_missing
from sites.slurm_cluster import slurm  # noqa: F401 - the fixture

import hpo
from gpu_sites.local import _pilot_pids, kill_tree
from idds import tasks as tq
from idds.cli import main
from idds.config import Settings
from idds.db import connect

SITES_DIR = str(Path(__file__).parents[1] / "sites")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pilots(ray_address, tmp_path_factory, request):
    """One pilot each of `home` and `bad` (local) and `hpc` (Slurm, where Slurm runs)."""
    counts = {"home": 1, "bad": 1}
    work = tmp_path_factory.mktemp("pilots")
    started = tp.start(tp.all_sites(), counts, ray_address, work)
    try:
        if slurm_missing() is None:
            request.getfixturevalue("slurm")
            started.update(tp.start(tp.all_sites(), {"hpc": 1}, ray_address, work))
            counts["hpc"] = 1
        tp.wait_joined(counts, started=started)
        yield started
    finally:
        for site, _ in started.values():
            site.drain()


def _needs_slurm(pilots):
    if "hpc" not in pilots:
        pytest.skip(f"no Slurm here: {slurm_missing()}")


def _study(settings, name, **over):
    fields = {
        "name": name,
        "objective": "site_objectives:on_gpu",
        "space": {
            "x": {"type": "float", "low": -2.0, "high": 2.0},
            "sleep": {"type": "categorical", "choices": [0.3]},
        },
        "max_points": 8,
        "max_attempts": 5,
        "parallel": 3,
        "proposer": "optuna:random",
        "seed": 2,
        "pythonpath": [SITES_DIR],
        "resources": {"gpus": 1},
        **over,
    }
    return hpo.Study(settings=settings, **fields)


def _attempts(settings):
    engine = connect(settings.db_url)
    a, t = tq.attempts, tq.tasks
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(t.c.number, a.c.number, a.c.site, a.c.state, a.c.started, a.c.finished,
                      a.c.error)
            .join(t, t.c.id == a.c.task_id).order_by(t.c.number, a.c.number)
        ).all()  # fmt: skip
    engine.dispose()
    return rows


def _running_at(settings, site):
    """True when an attempt at ``site`` has been seen running (started for over 0.5 s)."""
    try:
        return any(r.site == site and r.state == "running" for r in _attempts(settings))
    except Exception:  # the database is not there yet
        return False


def _idds(capsys, *args):
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _sqlite_settings(tmp_path, ray_address):
    return Settings(db_url=f"sqlite:///{tmp_path / 'idds.db'}", ray_address=ray_address,
                    work_dir=tmp_path / "work", lease_seconds=6.0)  # fmt: skip


@pytest.mark.slurm
def test_a_gpu_study_runs_on_local_and_slurm_pilots_at_once(pilots, settings, tmp_path, capsys):
    _needs_slurm(pilots)
    sites = tp.write_sites(tmp_path / "sites.yaml", ["home", "hpc"])
    settings = replace(settings, sites=sites)
    study = _study(settings, "across")
    study.optimize(progress=False)
    trials = study.trials
    assert len(trials) == 8 and all(t.state == "succeeded" for t in trials)
    assert {t.site for t in trials} == {"home", "hpc"}
    rows = _attempts(settings)
    home = [(r.started, r.finished) for r in rows if r.site == "home"]
    hpc = [(r.started, r.finished) for r in rows if r.site == "hpc"]
    assert any(a0 < b1 and b0 < a1 for a0, a1 in home for b0, b1 in hpc), "never at once"
    # Accounting: GPU-hours per site and per study, from the same attempts.
    code, out, _ = _idds(capsys, "--db", settings.db_url, "sites", "status", "--sites", str(sites))
    assert code == 0
    table = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line.strip()}
    assert table["home"][1] == "active" and table["hpc"][1] == "active"
    assert table["hpc"][2] in ("1+0", "2+0", "1+1")  # Slurm pilots running + waiting
    expected_h = sum(r.finished - r.started for r in rows) / 3600
    owner = next(line for line in out.splitlines() if line.startswith("study/across"))
    assert float(owner.split()[-1]) == pytest.approx(expected_h, abs=2e-4)
    assert float(table["home"][5]) + float(table["hpc"][5]) == pytest.approx(expected_h, abs=2e-4)


def test_a_site_failing_every_task_is_excluded_and_the_study_completes_elsewhere(
    pilots, tmp_path, ray_address, capsys, caplog
):
    settings = _sqlite_settings(tmp_path, ray_address)
    sites = tp.write_sites(tmp_path / "sites.yaml", ["bad", "home"], fail_streak=2, exclude_s=60)
    settings = replace(settings, sites=sites)
    study = _study(settings, "flaky", parallel=2, retry_errors=True)
    with caplog.at_level("WARNING", logger="gpu_sites"):
        study.optimize(progress=False)
    assert [t.state for t in study.trials] == ["succeeded"] * 8
    rows = _attempts(settings)
    bad = [r for r in rows if r.site == "bad"]
    assert bad and all(r.state == "failed" and "GPUs are broken" in r.error for r in bad)
    assert len(bad) <= 3  # cheap, so tried first; excluded after 2 failures in a row
    assert all(r.site == "home" for r in rows if r.state == "succeeded")
    assert "site bad excluded" in caplog.text
    code, out, _ = _idds(capsys, "--db", settings.db_url, "sites", "status", "--sites", str(sites))
    assert code == 0 and "excluded" in next(ln for ln in out.splitlines() if ln.startswith("bad"))


@pytest.mark.slurm
def test_scancel_of_a_pilot_mid_study_and_every_point_is_evaluated_once(
    pilots, tmp_path, ray_address
):
    _needs_slurm(pilots)
    settings = _sqlite_settings(tmp_path, ray_address)
    sites = tp.write_sites(tmp_path / "sites.yaml", ["home", "hpc"])
    settings = replace(settings, sites=sites)
    study = _study(settings, "scancel", max_points=10, space={
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "sleep": {"type": "categorical", "choices": [4.0]},  # long enough to be cut short
    })  # fmt: skip
    hpc_site, _ = pilots["hpc"]
    cancelled: list[str] = []

    def cancel_a_busy_pilot():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cancelled:
            if _running_at(settings, "hpc"):
                job = hpc_site.pilots()[0].ref
                subprocess.run(["scancel", job], check=True)
                cancelled.append(job)
            time.sleep(0.2)

    study.create()  # the database exists before the watcher reads it
    killer = threading.Thread(target=cancel_a_busy_pilot)
    killer.start()
    study.optimize(progress=False)
    killer.join()
    assert cancelled, "no Slurm pilot was busy"
    trials = study.trials
    assert [t.state for t in trials] == ["succeeded"] * 10
    assert len({t.number for t in trials}) == 10
    rows = _attempts(settings)
    ok = [r for r in rows if r.state == "succeeded"]
    assert sorted(r[0] for r in ok) == list(range(10))  # one success per point
    lost = [r for r in rows if r.site == "hpc" and r.state == "failed"]
    assert lost, "the cancelled pilot's attempt did not fail"
    for r in lost:  # each came back as a new attempt that succeeded
        assert any(o[0] == r[0] and o[1] > r[1] for o in ok)


def test_a_pilot_killed_with_sigkill_mid_study_fails_over_to_another_site(
    pilots, tmp_path, ray_address
):
    settings = _sqlite_settings(tmp_path, ray_address)
    sites = tp.write_sites(tmp_path / "sites.yaml", ["spare", "home"])
    started = tp.start(tp.all_sites(), {"spare": 1}, ray_address, tmp_path)
    spare = started["spare"][0]
    tp.wait_joined({"spare": 1}, started=started)
    settings = replace(settings, sites=sites)
    study = _study(settings, "sigkill", max_points=6, parallel=2, space={
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "sleep": {"type": "categorical", "choices": [1.5]},
    })  # fmt: skip
    killed: list[int] = []

    def kill_the_spare_pilot():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if _running_at(settings, "spare"):
                pids = _pilot_pids("spare")
                assert len(pids) == 1, [open(f"/proc/{p}/cmdline").read()[:400] for p in pids]
                (pid,) = pids
                kill_tree(pid)  # kill -9 of the pilot, its raylet and its workers
                killed.append(pid)
            time.sleep(0.2)

    study.create()  # the database exists before the watcher reads it
    killer = threading.Thread(target=kill_the_spare_pilot)
    killer.start()
    try:
        study.optimize(progress=False)
    finally:
        killer.join()
        spare.drain()
    assert killed, "no task ran on the spare pilot"
    assert [t.state for t in study.trials] == ["succeeded"] * 6
    rows = _attempts(settings)
    lost = [r for r in rows if r.site == "spare" and r.state == "failed"]
    assert lost, "the killed pilot's attempt did not fail"
    for r in lost:  # each came back as a new attempt that succeeded
        assert any(o[0] == r[0] and o[1] > r[1] and o.state == "succeeded" for o in rows)


def test_pilots_start_with_queued_work_and_drain_when_idle(ray_address, tmp_path):
    import ray

    from gpu_sites import PilotManager, make_site

    spec = tp.all_sites().site("elastic")
    site = make_site(spec, head_address=ray_address, work_dir=tmp_path)
    queued = {"elastic": 1}
    manager = PilotManager({"elastic": site}, queued=lambda: queued, drained=set, period_s=0.5)
    try:
        manager.step()  # one task waits, no pilot: start one
        assert len(manager.mine["elastic"]) == 1 and len(site.pilots()) == 1
        tp.wait_joined({"elastic": 1})
        queued["elastic"] = 0
        manager.step()
        assert _pilot_pids("elastic")  # idle, but not for idle_s yet
        time.sleep(spec.idle_s + 0.2)
        manager.step()  # idle for longer than idle_s, above min_pilots (0): drained
        assert _pilot_pids("elastic") == []
        deadline = time.monotonic() + 30
        while "site:elastic" in ray.cluster_resources() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "site:elastic" not in ray.cluster_resources()
    finally:
        manager.close()
        site.drain()


def test_drain_stops_a_sites_pilots_and_keeps_work_away(pilots, tmp_path, capsys):
    sites = tp.write_sites(tmp_path / "sites.yaml", ["bad", "home"])
    db = f"sqlite:///{tmp_path / 'idds.db'}"
    assert _pilot_pids("bad")
    code, out, _ = _idds(capsys, "--db", db, "sites", "drain", "bad", "--sites", str(sites))
    assert (code, out.strip()) == (0, "site bad: drained; 1 pilot(s) asked to stop")
    assert _pilot_pids("bad") == []
    code, out, _ = _idds(capsys, "--db", db, "sites", "list", "--sites", str(sites))
    states = {ln.split()[0]: ln.split()[-1] for ln in out.splitlines()[2:]}
    assert states == {"bad": "drained", "home": "active"}
    code, _, err = _idds(capsys, "--db", db, "sites", "drain", "nowhere", "--sites", str(sites))
    assert code == 2 and err.strip() == f"error: no site named 'nowhere' in {sites}"


def test_a_cloud_site_asks_rays_autoscaler_for_nodes_and_counts_them(ray_address, tmp_path):
    from gpu_sites import make_site, parse_sites

    spec = parse_sites({"sites": [{"name": "aws", "kind": "cloud", "slots": 2,
                                   "gpus_per_pilot": 1, "max_pilots": 4}]}).sites[0]  # fmt: skip
    site = make_site(spec, head_address=ray_address, work_dir=tmp_path)
    assert site.submit(2) == ["request-0", "request-1"]  # request_resources, as `ray up` reads
    assert [(p.ref, p.state) for p in site.pilots()] == [
        ("request-0", "pending"), ("request-1", "pending")
    ]  # fmt: skip
    site.cancel(["request-1"])
    assert [p.ref for p in site.pilots()] == ["request-0"]
    site.drain()
    assert site.pilots() == []


def _schedd_answers() -> str | None:
    try:
        import htcondor2
    except ImportError:
        return "the htcondor2 bindings are not installed"
    try:
        htcondor2.Schedd().query(projection=["ClusterId"], limit=1)
    except Exception as exc:  # no pool here
        return f"no HTCondor schedd answers here: {str(exc).splitlines()[0]}"
    return None


def test_htcondor_pilots_join_and_are_removed(ray_address, tmp_path):
    reason = _schedd_answers()
    if reason:
        pytest.skip(reason)
    from gpu_sites import make_site, parse_sites

    spec = parse_sites({"sites": [{"name": "condor", "kind": "htcondor", "gpus_per_pilot": 1,
                                   "settings": {"object_store_mb": 80}}]}).sites[0]  # fmt: skip
    site = make_site(spec, head_address=ray_address, work_dir=tmp_path)
    (ref,) = site.submit(1)
    try:
        tp.wait_joined({"condor": 1}, timeout=300)
        assert [p.ref for p in site.pilots()] == [ref]
    finally:
        site.drain()
