"""Access control as users meet it: work has an owner; others may look at it but not change
it or read its logs; tokens once users are registered; the dashboard's sign-in and read-only
pages; secrets and paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

import hpo
from idds import auth
from idds.cli import main
from idds.db import connect
from idds.errors import AccessDenied, SpecError

TESTS = Path(__file__).parents[1]
APP = str(Path(__file__).parents[2] / "dashboard" / "app.py")


@pytest.fixture(autouse=True)
def _no_identity_from_outside(monkeypatch):
    monkeypatch.delenv("IDDS_TOKEN", raising=False)
    monkeypatch.delenv("IDDS_USER", raising=False)


def _spec(path: Path, name: str) -> Path:
    path.write_text(yaml.safe_dump({
        "name": name, "objective": "objectives:quadratic", "max_points": 2, "parallel": 2,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "proposer": "optuna:random", "seed": 1, "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    return path


def _as(monkeypatch, capsys, settings, *, user=None, token=None):
    """A function that runs `idds ARGS` as that user; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        for var, value in (("IDDS_USER", user), ("IDDS_TOKEN", token)):
            if value is None:
                monkeypatch.delenv(var, raising=False)
            else:
                monkeypatch.setenv(var, value)
        db = ["--db", settings.db_url, "--ray-address", settings.ray_address]
        try:
            main([*db, *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _one_line_error(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(w in lines[0] for w in words), err


def test_others_may_look_but_not_change_nor_read_logs(settings, tmp_path, capsys, monkeypatch):
    alice = _as(monkeypatch, capsys, settings, user="alice")
    bob = _as(monkeypatch, capsys, settings, user="bob")
    spec = _spec(tmp_path / "s.yaml", "alices")
    assert alice("hpo", "launch", str(spec), "--detach")[0] == 0

    code, out, _ = bob("hpo", "list")
    assert code == 0 and "alices" in out and "alice" in out.splitlines()[2]
    code, _, err = bob("hpo", "cancel", "alices")
    assert code == 1
    _one_line_error(err, "'bob' may not cancel study 'alices' of user 'alice'")
    code, _, err = bob("hpo", "enqueue", "alices", "x=0.5")
    assert code == 1 and "may not enqueue into" in err
    code, _, err = bob("hpo", "logs", "alices", "0")
    assert code == 1 and "may not read the logs of" in err
    study = hpo.load_study("alices", settings=settings)
    assert study.state == "active" and study.spec.initial_points == []  # nothing changed

    assert alice("hpo", "enqueue", "alices", "x=0.5")[0] == 0
    code, out, err = bob("hpo", "resume", "alices", "--no-progress")  # a head runs anyone's
    assert code == 0, err
    code, out, err = alice("hpo", "logs", "alices", "0")
    assert code == 0 and "--- stdout of trial 0" in out, err
    assert hpo.load_study("alices", settings=settings).trials[0].params == {"x": 0.5}


def test_a_suspended_workflow_is_resumed_only_by_its_owner(settings, tmp_path, capsys, monkeypatch):
    from dag import load_workflow

    flow = tmp_path / "wf.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "alices-flow", "pythonpath": [str(TESTS)],
        "nodes": [{"name": "a", "callable": "objectives:quadratic", "args": {"params": {"x": 1}}}],
    }))  # fmt: skip
    alice = _as(monkeypatch, capsys, settings, user="alice")
    bob = _as(monkeypatch, capsys, settings, user="bob")
    assert alice("dag", "launch", str(flow), "--detach")[0] == 0
    code, _, err = bob("dag", "suspend", "alices-flow")
    assert code == 1 and "'bob' may not suspend workflow 'alices-flow'" in err
    assert alice("dag", "suspend", "alices-flow")[0] == 0
    code, _, err = bob("dag", "resume", "alices-flow", "--no-progress")
    assert code == 1 and "may not resume" in err
    wf = load_workflow("alices-flow", settings=dataclasses.replace(settings, user="alice"))
    assert wf.state == "suspended" and wf.user == "alice"
    assert alice("dag", "resume", "alices-flow", "--no-progress")[0] == 0
    assert wf.state == "finished"


def test_tokens_name_users_once_users_are_registered(settings, tmp_path, capsys, monkeypatch):
    nobody = _as(monkeypatch, capsys, settings)
    code, out, _ = nobody("users", "add", "alice")
    assert code == 0 and "token" in out
    alice_token = out.split()[-1]
    alice = _as(monkeypatch, capsys, settings, token=alice_token)
    code, out, _ = alice("whoami")
    assert out.strip() == "alice (admin)"  # the first user is an admin
    bob_token = alice("users", "add", "bob")[1].split()[-1]
    carol_token = alice("users", "add", "carol")[1].split()[-1]
    bob = _as(monkeypatch, capsys, settings, token=bob_token)
    carol = _as(monkeypatch, capsys, settings, token=carol_token)

    spec = _spec(tmp_path / "b.yaml", "bobs")
    code, _, err = nobody("hpo", "launch", str(spec), "--detach")  # no token: no new work
    assert code == 1 and "set IDDS_TOKEN" in err
    code, _, err = _as(monkeypatch, capsys, settings, user="alice")("hpo", "launch", str(spec))
    assert code == 1 and "set IDDS_TOKEN" in err  # not even as IDDS_USER
    assert nobody("hpo", "list")[1].strip() == "no studies"  # reading needs the database only
    code, _, err = _as(monkeypatch, capsys, settings, token="idds_guessed")("whoami")
    _one_line_error(err, "not that of a user")
    assert "idds_guessed" not in err
    code, _, err = bob("users", "add", "mallory")
    assert code == 1 and "only an admin may" in err

    assert bob("hpo", "launch", str(spec), "--detach")[0] == 0
    code, _, err = nobody("hpo", "resume", "bobs", "--no-progress")  # a head needs a user too
    assert code == 1 and "set IDDS_TOKEN" in err
    code, _, err = carol("hpo", "cancel", "bobs")
    _one_line_error(err, "'carol' may not cancel study 'bobs' of user 'bob'")
    with pytest.raises(AccessDenied):
        hpo.load_study("bobs", settings=dataclasses.replace(settings, token=carol_token)).cancel()
    assert hpo.load_study("bobs", settings=settings).state == "active"
    code, out, err = alice("hpo", "cancel", "bobs")  # an admin may
    assert code == 0, err
    assert hpo.load_study("bobs", settings=settings).state == "cancelled"

    new_token = bob("users", "token", "bob")[1].split()[-1]
    assert bob("whoami")[0] == 1  # the old token stops working
    assert _as(monkeypatch, capsys, settings, token=new_token)("whoami")[1].strip() == "bob"
    code, _, err = alice("users", "remove", "alice")
    assert code == 1 and "last admin" in err
    assert alice("users", "remove", "carol")[0] == 0
    assert carol("whoami")[0] == 1
    code, out, _ = alice("users", "list")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["alice", "bob"]
    engine = connect(settings.db_url)
    with engine.connect() as conn:
        stored = [r.token_hash for r in conn.execute(auth.users.select())]
    engine.dispose()
    assert alice_token not in stored and auth.hash_token(alice_token) in stored


def test_the_dashboard_asks_for_a_token_and_is_read_only_for_others(
    settings, tmp_path, monkeypatch
):
    from streamlit.testing.v1 import AppTest

    engine = connect(settings.db_url)
    alice_token = auth.add_user(engine, settings, "alice")
    bob_token = auth.add_user(engine, dataclasses.replace(settings, token=alice_token), "bob")
    engine.dispose()
    hpo.Study(settings=dataclasses.replace(settings, token=alice_token), name="alices",
              objective="objectives:quadratic", max_points=2, pythonpath=[str(TESTS)],
              space={"x": {"type": "float", "low": -2.0, "high": 2.0}}).create()  # fmt: skip
    monkeypatch.setenv("IDDS_DB_URL", settings.db_url)
    monkeypatch.setenv("IDDS_WORK_DIR", str(settings.work_dir))
    monkeypatch.setenv("IDDS_TOKEN", alice_token)  # the server's own token is not the viewer's

    at = AppTest.from_file(APP, default_timeout=60).run()
    assert [t.value for t in at.title] == ["iDDS dashboard"]  # the sign-in form, no page
    assert not at.dataframe
    at.text_input[0].input("idds_wrong")
    at.button[0].click().run()
    assert "not the token of a user" in at.error[0].value

    at.text_input[0].input(bob_token)
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Signed in as **bob**" in "\n".join(c.value for c in at.sidebar.caption)
    assert at.title[0].value == "Overview"

    at.switch_page("views/studies.py").run()
    studies = next(m.value for m in at.markdown if "idds-list" in m.value)
    assert 'href="studies?study=alices"' in studies and "<td>alice</td>" in studies
    at.query_params["study"] = "alices"
    at.switch_page("views/studies.py").run()
    captions = "\n".join(c.value for c in at.caption)
    assert "Read-only: the study is alice's" in captions
    assert not [b for b in at.button if b.key == "cancel"]  # no cancel button for bob


def test_database_passwords_never_show(tmp_path, capsys, monkeypatch):
    url = "postgresql+psycopg://idds:s3cret-pw@127.0.0.1:1/idds"
    code = None
    try:
        main(["--db", url, "hpo", "list"])
    except SystemExit as exc:
        code = exc.code
    _, err = capsys.readouterr()
    assert code == 1 and "s3cret-pw" not in err and "***" in err
    from idds.config import Settings

    settings = Settings(db_url=url, token="idds_t0ken")
    assert "idds_t0ken" not in repr(settings) and "s3cret-pw" not in settings.db_url_safe


def test_paths_from_names_stay_in_the_work_directory(tmp_path):
    from dag.spec import WorkflowSpec
    from idds.config import path_inside

    for bad in ("../escape.txt", "/etc/passwd", "a/../../b"):
        with pytest.raises(SpecError, match="declared file"):
            WorkflowSpec.from_mapping({"name": "w", "nodes": [
                {"name": "a", "callable": "m:f", "files": [bad]}]})  # fmt: skip
    assert path_inside(tmp_path, "x", "y.txt") == (tmp_path / "x" / "y.txt").resolve()
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(SpecError, match="leads out of"):
        path_inside(tmp_path, "link", "etc")
    with pytest.raises(SpecError):
        hpo.StudySpec.from_mapping({"name": "../up", "objective": "m:f", "max_points": 1,
                                    "space": {"x": {"type": "float", "low": 0, "high": 1}}})  # fmt: skip
