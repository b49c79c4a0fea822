"""A PostgreSQL connection carries libpq's network timeouts, unless its URL sets them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from idds.db import PG_NETWORK_TIMEOUTS, _create_engine


class _Stop(Exception):
    pass


def _connect_params(url: str) -> dict:
    engine = _create_engine(url)
    seen: dict = {}

    @sa.event.listens_for(engine, "do_connect")
    def _capture(dialect, conn_rec, cargs, cparams):  # noqa: ANN001, ANN202
        seen.update(cparams)
        raise _Stop

    with pytest.raises(_Stop):
        engine.connect()
    engine.dispose()
    return seen


def test_postgresql_connections_time_out_on_a_network_cut():
    params = _connect_params("postgresql+psycopg://u@db.invalid/x")
    for key, value in PG_NETWORK_TIMEOUTS.items():
        assert params[key] == value


def test_the_url_sets_its_own():
    params = _connect_params("postgresql+psycopg://u@db.invalid/x?tcp_user_timeout=60000")
    assert params["tcp_user_timeout"] == "60000"
    assert params["connect_timeout"] == PG_NETWORK_TIMEOUTS["connect_timeout"]
