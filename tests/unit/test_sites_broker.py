"""Brokerage: which site a task goes to, by resources, GPU type, free slots, queued work,
measured run times and recent failures; a failing site is excluded for a while, visibly."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from gpu_sites import Need, SiteBroker, SiteError, SiteState, choose, parse_sites
from gpu_sites.stats import SiteStats, summarise
from idds import owners
from idds import tasks as tq
from idds.dispatch import Dispatcher, LocalBroker, default_broker
from idds.records import AttemptRecord
from idds.tasks import AttemptKind, Claim, Outcome, TaskSpec, TaskState

SITES = {
    "sites": [
        {"name": "big", "kind": "local", "slots": 4, "gpus_per_pilot": 4, "gpu_type": "A100",
         "max_pilots": 1},
        {"name": "small", "kind": "slurm", "slots": 2, "gpus_per_pilot": 1, "gpu_type": "T4",
         "max_pilots": 1},
    ],
    "broker": {"fail_streak": 2, "exclude_s": 60, "refresh_s": 0, "scale_period_s": 0},
}  # fmt: skip


def _states(**over):
    spec = parse_sites(SITES)
    states = {s.name: SiteState(spec=s, pilots=1) for s in spec.sites}
    for name, values in over.items():
        for key, value in values.items():
            setattr(states[name], key, value)
    return states


def _claim(resources=None, *, token="t", site=None, attempt=1):
    return Claim(
        task_id=1, owner_id=1, number=0, attempt=attempt, token=token, payload={},
        resources=resources or {}, site=site, timeout_s=None, max_attempts=3, retry_errors=True,
    )  # fmt: skip


def test_gpu_type_and_count_decide_which_sites_match():
    states = _states()
    assert choose(states, Need(gpus=1, gpu_type="T4"), now=0) == "small"
    assert choose(states, Need(gpus=1, gpu_type="A100"), now=0) == "big"
    assert choose(states, Need(gpus=2), now=0) == "big"  # small has 1 GPU per pilot
    with pytest.raises(
        SiteError, match=r"no site can run a task needing .*H100.*big: GPU type A100"
    ):
        choose(states, Need(gpus=1, gpu_type="H100"), now=0)
    with pytest.raises(SiteError, match="8 GPU"):
        choose(states, Need(gpus=8), now=0)


def test_a_task_names_its_allowed_sites():
    states = _states()
    assert choose(states, Need(sites=("small",)), now=0) == "small"
    need = Need.of(_claim({"sites": ["small"], "gpus": 1}))
    assert need.sites == ("small",) and need.gpus == 1
    # A first attempt's site column is a constraint (a workflow node's `site:`) ...
    assert Need.of(_claim(site="small")).sites == ("small",)
    # ... a retry's is where the last attempt ran, which the broker avoids where it can.
    assert Need.of(_claim(site="small", attempt=2)).sites is None
    assert choose(states, Need(), now=0, previous="big") == "small"


def test_tasks_fill_the_free_slots_of_both_sites_in_proportion_to_capacity():
    states = _states()
    placed = []
    for _ in range(6):
        name = choose(states, Need(), now=0)
        states[name].placed += 1
        placed.append(name)
    assert placed.count("big") == 4 and placed.count("small") == 2
    assert states["big"].free == states["small"].free == 0
    for _ in range(6):  # both full and unable to grow: the queue follows capacity (4:2)
        name = choose(states, Need(), now=0)
        states[name].placed += 1
    assert (states["big"].queued, states["small"].queued) == (4, 2)


def test_measured_run_time_and_cost_weight_steer_the_choice():
    slow_big = _states(big={"stats": SiteStats(succeeded=5, mean_s=10.0)},
                       small={"stats": SiteStats(succeeded=5, mean_s=1.0)})  # fmt: skip
    assert choose(slow_big, Need(), now=0) == "small"
    # Full small site: its next slot frees in 1 s; the idle big site takes 10 s to run it.
    slow_big["small"].placed = 2
    assert choose(slow_big, Need(), now=0) == "small"
    slow_big["small"].placed = 40  # 20 s of queue at small
    assert choose(slow_big, Need(), now=0) == "big"
    cheap = _states(small={"spec": _states()["small"].spec.model_copy(update={"cost_weight": 0.1})})
    assert choose(cheap, Need(), now=0) == "small"


def test_a_site_with_room_to_start_pilots_waits_only_its_start_up():
    states = _states(small={"pilots": 0})
    states["small"].spec = states["small"].spec.model_copy(update={"max_pilots": 3})
    states["big"].placed = 12  # three rounds of queue at 1 s each
    assert states["small"].expected_s(1.0) == pytest.approx(30.0 + 1.0)
    assert choose(states, Need(), now=0) == "big"
    states["small"].spec = states["small"].spec.model_copy(update={"startup_s": 1.0})
    assert choose(states, Need(), now=0) == "small"


def _ended(kind, finished):
    """A finished attempt that ended so (started at 0)."""
    state = TaskState.SUCCEEDED if kind == "succeeded" else TaskState.FAILED
    return AttemptRecord(
        task_id=1, owner_id=1, task_number=0, number=1, state=state, kind=AttemptKind(kind),
        site="big", node=None, head="h", dispatched=0.0, started=0.0, finished=finished,
        error=None if kind == "succeeded" else "boom",
    )  # fmt: skip


def test_recent_failures_weigh_and_a_failing_site_is_excluded_until_its_time_is_up():
    rules = parse_sites(SITES).broker
    rows = [_ended("error", 10.0), _ended("error", 9.0), _ended("succeeded", 8.0)]
    stats = summarise(rows, 0, now=20.0, rules=rules)
    assert stats.streak == 2 and stats.excluded_until == 70.0
    assert summarise(rows, 0, now=71.0, rules=rules).excluded_until is None
    lost = [_ended("lost", 10.0), _ended("lost", 9.0)]
    assert summarise(lost, 0, now=20.0, rules=rules).streak == 0  # not the site's fault
    states = _states(big={"stats": stats})
    assert choose(states, Need(), now=20.0) == "small"
    # Every matching site excluded: the one whose exclusion ends first still gets the work.
    assert choose(states, Need(gpu_type="A100"), now=20.0) == "big"
    flaky = _states(big={"stats": SiteStats(succeeded=1, failed=3, mean_s=1.0)},
                    small={"stats": SiteStats(succeeded=4, mean_s=1.5)})  # fmt: skip
    assert choose(flaky, Need(), now=0) == "small"


def test_a_drained_site_gets_no_work():
    states = _states(big={"drained": True})
    assert choose(states, Need(), now=0) == "small"
    with pytest.raises(SiteError, match="big: drained"):
        choose(states, Need(gpu_type="A100"), now=0)


def _record_attempts(engine, site, outcomes):
    """Tasks of one owner run at ``site`` with the given outcomes, through the core's calls."""
    with engine.begin() as conn:
        owner = owners.create(conn, "test", f"o-{site}", {})
        tq.submit(conn, owner, [TaskSpec(number=i, kind="t", payload={}, resources={"gpus": 1})
                                for i in range(len(outcomes))])  # fmt: skip
        claims = tq.claim(conn, owner, len(outcomes), lease_seconds=30)
        tq.start_attempts(conn, [(c, site) for c in claims], head="h")
        for claim, kind in zip(claims, outcomes, strict=True):
            outcome = Outcome(kind=kind, error=None if kind == "ok" else "boom", started=1.0)
            tq.finish(conn, claim, outcome, site=site)


def test_the_broker_reads_failures_from_the_database_and_says_it_excludes(engine, caplog):
    spec = parse_sites(SITES)
    broker = SiteBroker(spec, engine, observe=lambda: {"big": (1, 0), "small": (1, 0)})
    claim = _claim({"gpus": 1}, token="a")
    first = broker.place(claim)
    assert first.site == "big"
    assert first.ray_options == {"num_cpus": 1.0, "num_gpus": 1.0,
                                 "resources": {"site:big": 0.001}}  # fmt: skip
    _record_attempts(engine, "big", ["error", "error"])
    with caplog.at_level(logging.WARNING, logger="gpu_sites"):
        broker.refresh(force=True)
    assert "site big excluded" in caplog.text
    assert set(broker.exclusions()) == {"big"} and 55 < broker.exclusions()["big"] <= 60
    assert broker.place(_claim({"gpus": 1}, token="b")).site == "small"
    assert broker.states["small"].in_flight == 1  # placed, not yet in the database


def test_attempts_lost_with_their_head_are_not_held_against_the_site(engine):
    spec = parse_sites(SITES)
    broker = SiteBroker(spec, engine, observe=lambda: {"big": (1, 0), "small": (1, 0)})
    _record_attempts(engine, "big", ["lost", "lost", "lost"])  # recorded as lost, by kind
    broker.refresh(force=True)
    stats = broker.states["big"].stats
    assert (stats.streak, stats.failed, stats.excluded_until) == (0, 0, None)
    assert broker.exclusions() == {}


def test_in_flight_work_is_counted_from_the_database_once_committed(engine):
    spec = parse_sites(SITES)
    broker = SiteBroker(spec, engine, observe=lambda: {"big": (1, 0), "small": (1, 0)})
    with engine.begin() as conn:
        owner = owners.create(conn, "test", "o", {})
        tq.submit(conn, owner, [TaskSpec(number=i, kind="t", payload={}) for i in range(3)])
        claims = tq.claim(conn, owner, 3, lease_seconds=30)
        placed = [(c, broker.place(c).site) for c in claims]
        tq.start_attempts(conn, placed, head="h")
    assert broker.states["big"].in_flight == 3
    broker.refresh(force=True)  # now in the attempts table, and no longer in the ledger
    assert broker.states["big"].stats.in_flight == 3 and broker.states["big"].placed == 0
    n = sa.func.count()
    with engine.begin() as conn:
        assert conn.execute(sa.select(n).select_from(tq.attempts)).scalar_one() == 3


def test_the_dispatcher_takes_the_sites_broker_from_idds_sites(engine, tmp_path, monkeypatch):
    import yaml

    monkeypatch.delenv("IDDS_SITES", raising=False)
    assert isinstance(default_broker(engine), LocalBroker)
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump(SITES))
    monkeypatch.setenv("IDDS_SITES", str(path))
    broker = Dispatcher(engine).broker
    assert isinstance(broker, SiteBroker) and [s.name for s in broker.spec.sites] == [
        "big", "small"
    ]  # fmt: skip
