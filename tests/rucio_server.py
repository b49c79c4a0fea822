"""The session's Rucio server (carousel/rucioserver.py), for the tests marked ``rucio``;
skipped, saying why, where the server cannot be installed or started."""

from __future__ import annotations

import os

import pytest

from carousel.rucioserver import missing, start, stop


@pytest.fixture(scope="session")
def rucio_server(tmp_path_factory: pytest.TempPathFactory):
    """The session's Rucio server; ``RUCIO_CONFIG`` points at its configuration."""
    why = missing()
    if why:
        pytest.skip(why)
    try:
        server = start(tmp_path_factory.mktemp("rucio"))
    except RuntimeError as error:
        pytest.skip(f"the Rucio server could not be started: {error}")
    old = os.environ.get("RUCIO_CONFIG")
    os.environ["RUCIO_CONFIG"] = str(server.config)
    yield server
    if old is None:
        os.environ.pop("RUCIO_CONFIG", None)
    else:
        os.environ["RUCIO_CONFIG"] = old
    stop(server)
