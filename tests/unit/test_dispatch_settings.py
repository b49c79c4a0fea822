"""The dispatcher takes its lease length, outage limit and sites file from the Settings its
caller passes in: no environment variable is needed (Settings is the one reader of them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from idds.config import Settings
from idds.dispatch import Dispatcher, LocalBroker
from idds.errors import DatabaseError

AWAY = "postgresql+psycopg://idds@127.0.0.1:1/nowhere"


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch):
    for name in ("IDDS_DB_OUTAGE_S", "IDDS_LEASE_SECONDS", "IDDS_SITES"):
        monkeypatch.delenv(name, raising=False)


def test_a_settings_value_reaches_the_outage_wait():
    d = Dispatcher(sa.create_engine(AWAY), settings=Settings(db_outage_s=0.3, lease_seconds=7.0))
    assert (d.outage_s, d.lease_seconds) == (0.3, 7.0)
    assert isinstance(d.broker, LocalBroker)
    with pytest.raises(DatabaseError, match=r"did not answer for 0\.3 s"):
        d.start([])  # the database is away: waited out for 0.3 s, not 600


def test_arguments_win_over_settings():
    d = Dispatcher(
        sa.create_engine("sqlite://"),
        settings=Settings(db_outage_s=9.0, lease_seconds=9.0),
        lease_seconds=3.0,
        outage_s=1.0,
    )
    assert (d.outage_s, d.lease_seconds) == (1.0, 3.0)


def test_the_sites_file_comes_from_settings(tmp_path):
    import yaml

    from gpu_sites import SiteBroker

    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump({"sites": [{"name": "big", "kind": "local", "slots": 2}]}))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'idds.db'}")
    broker = Dispatcher(engine, settings=Settings(sites=path)).broker
    assert isinstance(broker, SiteBroker) and [s.name for s in broker.spec.sites] == ["big"]


@pytest.mark.parametrize(("raw", "expected"), [("", None), ("s.yaml", Path("s.yaml"))])
def test_idds_sites_is_a_settings_field(monkeypatch, raw, expected):
    monkeypatch.setenv("IDDS_SITES", raw)
    assert Settings.from_env().sites == expected


def test_a_study_runs_its_dispatcher_with_its_settings(tmp_path, monkeypatch):
    from hpo import Study, StudySpec

    seen: list[tuple[float, float]] = []

    class Stop(Exception):
        pass

    def hold_waiting(self: Dispatcher, owner_id: int, what: str) -> None:
        seen.append((self.outage_s, self.lease_seconds))
        raise Stop

    monkeypatch.setattr(Dispatcher, "hold_waiting", hold_waiting)
    monkeypatch.setattr(Study, "check_capacity", lambda self: None)  # no Ray
    spec = StudySpec.from_mapping({
        "name": "s", "objective": "objectives:quadratic",
        "space": {"x": {"type": "float", "low": -2, "high": 2}},
    })  # fmt: skip
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'idds.db'}", work_dir=tmp_path / "work",
        db_outage_s=5.0, lease_seconds=4.0,
    )  # fmt: skip
    study = Study(spec, settings=settings, base_dir=Path(__file__).parents[1])
    with pytest.raises(Stop):
        study.optimize(progress=False)
    assert seen == [(5.0, 4.0)]
