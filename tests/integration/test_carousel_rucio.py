"""``RucioDM`` against a real Rucio server (tests/rucio_server.py: the ``rucio`` package's
Flask application under gunicorn, on its own PostgreSQL database), through ``rucio-clients``.

Played, not real: the part that moves bytes. FTS, CTA and Rucio's conveyor daemons cannot
run here (no grid, no tape), so ``carousel.tapeplayer.TapePlayer`` reads the staging rules
from Rucio, lets the tape emulator decide when each file is on disk, and marks the buffer
replicas available (or unavailable) through Rucio's own API; the rule locks go
``REPLICATING -> OK`` (or ``STUCK``) inside Rucio. Everything ``RucioDM`` does is real.
"""

from __future__ import annotations

import datetime
import email.utils

import pytest
from carousel_conformance import DataManagementConformance, Recorder, campaign
from rucio_server import rucio_server

from carousel.catalog import build_catalog
from carousel.clock import SimClock
from carousel.dm import FileState
from carousel.rucio import RucioDM
from carousel.rucioserver import BUFFER, TAPE, bootstrap, register, unique_scope
from carousel.tape import TapeEmulator
from carousel.tapeplayer import TapePlayer

pytestmark = [pytest.mark.rucio, pytest.mark.slow, pytest.mark.usefixtures("rucio_server")]
__all__ = ["rucio_server"]  # the fixture, imported
HOUR = datetime.timedelta(hours=1)


class Counting:
    """A client that counts the calls made through it."""

    def __init__(self, client) -> None:
        self._client, self.calls = client, {}

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def _let_go(rule: dict) -> bool:
    """Whether Rucio let ``rule`` go: a deleted rule expires at once (RucioDM's rules are made
    to live a week), and Rucio's judge-cleaner daemon removes it, with its locks, later."""
    expires = rule["expires_at"]
    if isinstance(expires, str):
        try:
            expires = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            expires = datetime.datetime.fromisoformat(expires)
    expires = expires.replace(tzinfo=None)
    return expires < datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + HOUR


def _setup(server, read_failure: float = 0.0, **options):
    spec = campaign(unique_scope(), read_failure)
    catalog = build_catalog(spec)
    client = server.client()
    bootstrap(client, spec.name)
    register(client, catalog)
    return _over(catalog, client, spec.tape, **options)


def _over(catalog, client, tape_spec, **options):
    """A RucioDM (its client counting calls) and a tape player over a registered catalogue."""
    clock = SimClock()
    tape = TapeEmulator(catalog, tape_spec, clock, seed=1)
    player = TapePlayer(tape, catalog, client, rse=BUFFER)
    counting = Counting(client)
    dm = RucioDM(catalog, counting, rse=BUFFER, source=TAPE, max_stuck=1, **options)
    return dm, player, counting, client


class TestRucioServer(DataManagementConformance):
    @pytest.fixture(autouse=True)
    def _server(self, rucio_server):
        self.server = rucio_server

    def make(self, read_failure: float = 0.0):
        dm, player, _, _ = _setup(self.server, read_failure)

        def advance():
            player.pump()
            dm.poll()

        return dm, advance

    def again(self, dm):
        # Rucio kept the rules; the new process has a new client, adapter and player.
        new, player, counting, _ = _over(dm.catalog, self.server.client(), campaign().tape)

        def advance():
            player.pump()
            new.poll()

        self.counting = counting
        return new, advance

    def test_a_new_instance_takes_up_what_the_last_one_left_and_asks_for_nothing_again(self):
        super().test_a_new_instance_takes_up_what_the_last_one_left_and_asks_for_nothing_again()
        assert "add_replication_rule" not in self.counting.calls  # the rules were found again


def test_a_whole_dataset_is_one_rule_whose_locks_go_ok_inside_rucio(rucio_server):
    dm, player, counting, client = _setup(rucio_server)
    dm.attach(Recorder())
    dm.request_staging(list(range(10)))
    assert counting.calls == {"add_replication_rule": 1}
    (rule,) = {dm._rule[f] for f in range(10)}
    assert {lock["state"] for lock in client.list_replica_locks(rule)} == {"REPLICATING"}
    player.pump()
    assert {lock["state"] for lock in client.list_replica_locks(rule)} == {"OK"}
    assert client.get_replication_rule(rule)["state"] == "OK"


def test_a_poll_is_bulk_not_one_call_per_file(rucio_server):
    dm, player, counting, _ = _setup(rucio_server)
    rec = Recorder()
    dm.attach(rec)
    dm.request_staging([0, 2, 4, 11, 13, 15])  # file rules in both datasets
    player.pump(until=0.0)
    counting.calls.clear()
    dm.poll()
    assert counting.calls == {"list_replication_rules": 1}  # file rules: their states
    player.pump()
    dm.poll()
    assert sorted(rec.staged) == [0, 2, 4, 11, 13, 15]


def test_release_deletes_the_rule(rucio_server):
    dm, player, _, client = _setup(rucio_server)
    dm.attach(Recorder())
    dm.request_staging([6])
    rule = dm._rule[6]
    player.pump()
    dm.poll()
    dm.release(6)
    assert dm.state(6) is FileState.RELEASED
    assert _let_go(client.get_replication_rule(rule))


def test_file_level_releases_a_file_by_deleting_its_own_rule(rucio_server):
    dm, player, counting, client = _setup(rucio_server, dataset_rules=False)
    dm.attach(Recorder())
    dm.request_staging(list(range(10)))  # a whole dataset, one call, a rule per file
    assert counting.calls == {"add_replication_rule": 1}
    rules = [dm._rule[f] for f in range(10)]
    assert len(set(rules)) == 10
    player.pump()
    dm.poll()
    dm.release(3)
    # its lock on the buffer replica goes with its rule; the others stay pinned
    assert _let_go(client.get_replication_rule(rules[3]))
    assert not any(_let_go(client.get_replication_rule(r)) for r in rules[4:])


def test_dataset_level_deletes_the_dataset_rule_with_its_last_file(rucio_server):
    dm, player, _, client = _setup(rucio_server)
    dm.attach(Recorder())
    dm.request_staging(list(range(10)))
    (rule,) = {dm._rule[f] for f in range(10)}
    player.pump()
    dm.poll()
    for f in range(9):
        dm.release(f)
    assert not _let_go(client.get_replication_rule(rule))  # the dataset stays pinned
    dm.release(9)
    assert _let_go(client.get_replication_rule(rule))


@pytest.mark.slow
def test_a_live_carousel_stages_through_rucio_and_processes_every_file_once(
    rucio_server, ray_address, tmp_path
):
    from carousel.live import run_live
    from carousel.rucio import RucioSite
    from carousel.spec import CampaignSpec
    from idds.config import Settings

    # SQLite only: what this test checks is the staging, which does not touch the database.
    settings = Settings(db_url=f"sqlite:///{tmp_path}/idds.db", ray_address=ray_address,
                        work_dir=tmp_path / "work", lease_seconds=6.0)  # fmt: skip

    spec = CampaignSpec.from_mapping(
        {"name": unique_scope("live"), "files": {"count": 20, "datasets": 3},
         "tape": {"cartridges": 4, "cartridges_per_dataset": 2, "drives": 2, "read_failure": 0},
         "processing": {"slots": 4, "time_s": 600}, "buffer": "14GB"}
    )  # fmt: skip
    client = rucio_server.client()
    bootstrap(client, spec.name)
    catalog = build_catalog(spec)
    register(client, catalog)
    site = RucioSite(client, rse=BUFFER, source=TAPE, poll_s=0.2, player=True)
    result = run_live(spec, settings, speedup=6000, rucio=site)
    assert result.files == 20 and not result.lost and not result.failed
    assert result.peak_bytes <= 14e9
    assert result.dm_stats["polls"] > 0
    rules = list(client.list_replication_rules({"scope": spec.name}))
    assert rules and all(_let_go(r) for r in rules)  # every rule let go
    # file-level: one rule per file, each deleted as soon as its file was processed
    assert sorted(f"{r['scope']}:{r['name']}" for r in rules) == sorted(catalog.names)


@pytest.mark.slow
def test_a_carousel_whose_head_stopped_goes_on_with_the_rules_rucio_kept(
    rucio_server, ray_address, tmp_path
):
    """A first head requests and stages part of the campaign and stops without a word (its
    objects dropped, as a kill leaves them); resume_live goes on to the end. Rucio's own
    rules say that each file was asked for exactly once."""
    import collections
    import time

    from carousel.live import Carousel, CarouselRun, resume_live
    from carousel.rucio import RucioSite
    from carousel.spec import CampaignSpec
    from idds.config import Settings

    settings = Settings(db_url=f"sqlite:///{tmp_path}/idds.db", ray_address=ray_address,
                        work_dir=tmp_path / "work", lease_seconds=6.0)  # fmt: skip
    spec = CampaignSpec.from_mapping(
        {"name": unique_scope("resumed"), "files": {"count": 20, "datasets": 3},
         "tape": {"cartridges": 4, "cartridges_per_dataset": 2, "drives": 2, "read_failure": 0},
         "processing": {"slots": 2, "time_s": 600, "failure": 0.0}, "buffer": "10GB"}
    )  # fmt: skip
    client = rucio_server.client()
    bootstrap(client, spec.name)
    catalog = build_catalog(spec)
    register(client, catalog)
    carousel = Carousel(spec.name, settings=settings)
    owner_id = carousel.create(spec, "file-level", speedup=6000.0, pythonpath=[])
    from carousel.journal import Journal

    site = RucioSite(client, rse=BUFFER, source=TAPE, poll_s=0.0, player=True)
    # a slow tape for the first head, so that it stops with files on disk and others not
    first = CarouselRun(spec, "file-level", owner_id, speedup=60.0, rucio=site,
                        journal=Journal(carousel.records, owner_id))  # fmt: skip
    deadline = time.monotonic() + 60
    while first.orchestrator.on_disk == 0 and time.monotonic() < deadline:
        first.new_tasks(0)  # ticks: the tape plays, Rucio is polled; nothing is processed
        time.sleep(0.01)
    assert first.orchestrator.on_disk > 0
    outstanding = [
        f for f in first.orchestrator.request_order if first.dm.state(f).value == "requested"
    ]
    del first

    again = RucioSite(rucio_server.client(), rse=BUFFER, source=TAPE, poll_s=0.2, player=True)
    result = resume_live(spec.name, settings, rucio=again)
    assert result.files == 20 and not result.lost and not result.failed
    rules = list(client.list_replication_rules({"scope": spec.name}))
    per_file = collections.Counter(f"{r['scope']}:{r['name']}" for r in rules)
    assert per_file == collections.Counter(dict.fromkeys(catalog.names, 1))  # asked once each
    assert all(_let_go(r) for r in rules)
    assert outstanding  # the first head stopped with requests in flight, Rucio's to answer
