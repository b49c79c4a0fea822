"""Where the default database and work dir live: IDDS_HOME, else the nearest idds.db from the
current directory up, else the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from idds.config import Settings, default_home


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("IDDS_HOME", "IDDS_DB_URL", "IDDS_WORK_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_subdirectory_finds_the_database_above_it(tmp_path, clean_env):
    (tmp_path / "idds.db").touch()
    deep = tmp_path / "analysis" / "plots"
    deep.mkdir(parents=True)
    clean_env.chdir(deep)
    assert default_home() == tmp_path
    settings = Settings.from_env()
    assert settings.db_url == f"sqlite:///{tmp_path / 'idds.db'}"
    assert settings.work_dir == tmp_path / "idds-work"


def test_without_one_it_is_the_current_directory_as_before(tmp_path, clean_env):
    clean_env.chdir(tmp_path)
    assert default_home() is None
    settings = Settings.from_env()
    assert (settings.db_url, settings.work_dir) == ("sqlite:///idds.db", Path("idds-work"))


def test_idds_home_wins_and_flags_win_over_it(tmp_path, clean_env):
    (tmp_path / "idds.db").touch()
    clean_env.chdir(tmp_path)
    home = tmp_path / "home"
    clean_env.setenv("IDDS_HOME", str(home))
    assert Settings.from_env().db_url == f"sqlite:///{home / 'idds.db'}"
    assert Settings.from_env().work_dir == home / "idds-work"
    assert Settings.from_env(db_url="sqlite:///other.db").db_url == "sqlite:///other.db"
    clean_env.setenv("IDDS_WORK_DIR", str(tmp_path / "w"))
    assert Settings.from_env().work_dir == tmp_path / "w"


def test_settings_go_to_a_child_process_through_the_environment_and_come_back(clean_env):
    from dataclasses import fields

    from idds.config import settings_env

    given = Settings(db_url="postgresql+psycopg://u:secret@db/idds", work_dir=Path("/srv/w"),
                     lease_seconds=7.5, token="idds_abc", sites=Path("/srv/sites.yaml"),
                     url="https://idds:8443", oidc_issuer="https://sso", open_logs=True)  # fmt: skip
    env = settings_env(given)
    for name in [f"IDDS_{f.name.upper()}" for f in fields(Settings)]:
        clean_env.delenv(name, raising=False)
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert Settings.from_env() == given
