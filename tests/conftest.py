"""Shared fixtures: one Ray for the whole session, and the database each test runs on.

The session's Ray is a local one, or with ``--ray-cluster N`` a cluster of N nodes that
``ray start`` starts on this machine (``tests/ray_cluster.py``).

Every test that takes ``db_url`` (or ``engine``) runs twice: on a SQLite file and on the
PostgreSQL server at ``IDDS_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``),
which is skipped, with the reason, only where that server does not answer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from idds.config import Settings
from idds.db import connect

HERE = Path(__file__).parent
PG_URL = os.environ.get("IDDS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

sys.path.insert(0, str(HERE))  # tests/objectives.py for in-process studies

from ray_cluster import LocalCluster, cluster_auth_env  # noqa: E402 - found through the line above


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--ray-cluster", type=int, default=0, metavar="N",
        help="run on a Ray cluster of N nodes (a head and N-1 worker nodes, 1 CPU each) that "
        "`ray start` starts on this machine, instead of a local Ray",
    )  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--ray-cluster"):
        # The cluster's own token, in the environment before Ray is imported (Ray reads it
        # once per process): this process and every process it starts join with it.
        os.environ.update(cluster_auth_env())


@pytest.fixture(scope="session")
def ray_address(request: pytest.FixtureRequest) -> str:
    """A local Ray started once per session, or with ``--ray-cluster N`` a cluster of N nodes;
    its address lets subprocesses join it."""
    import ray

    from idds.runtime import ensure_ray

    os.environ.setdefault("PYTHONPATH", str(HERE))
    nodes = request.config.getoption("--ray-cluster")
    if not nodes:
        ensure_ray()
        yield ray.get_runtime_context().gcs_address
        ray.shutdown()
        return
    cluster = LocalCluster(nodes)
    try:
        cluster.start()
        ensure_ray(cluster.address)
        cluster.wait_alive()
        yield ray.get_runtime_context().gcs_address
        ray.shutdown()
    finally:
        cluster.stop()


def _pg_reset() -> str | None:
    """Empty the PostgreSQL test database; the reason it cannot be used, or None."""
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:  # no server here: the pg tests are skipped
        return f"PostgreSQL at {PG_URL} does not answer: {str(exc).splitlines()[0]}"
    drop_all_tables(engine)
    engine.dispose()
    return None


def drop_all_tables(engine: sa.Engine) -> None:
    """Drop the platform's tables (and Alembic's) so that a test starts from nothing."""
    from idds.db import drop_all

    drop_all(engine.url.render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def pg_url() -> str:
    return PG_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'idds.db'}"
    reason = _pg_reset()
    if reason:
        pytest.skip(reason)
    return PG_URL


@pytest.fixture
def engine(db_url: str):
    engine = connect(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(db_url: str, ray_address: str, tmp_path: Path) -> Settings:
    return Settings(
        db_url=db_url, ray_address=ray_address, work_dir=tmp_path / "work", lease_seconds=6.0
    )
