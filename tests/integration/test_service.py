"""Service mode as a second user meets it: `idds serve` with its HTTP API on SQLite and
PostgreSQL, two users (alice, an admin, and bob), clients with IDDS_URL and tokens only.

Each test is a way one user could reach another's work when every client held the database
URL: the server refuses it now, with a 4xx and one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from service import start_service

import hpo
from idds.cli import main
from idds.config import Settings
from idds.errors import AccessDenied, Exists, NotSignedIn, SpecError

TESTS = Path(__file__).parents[1]
HIDDEN = "(hidden: only its owner or an admin reads errors and logs)"


@pytest.fixture
def service(db_url, ray_address, tmp_path, monkeypatch):
    for var in ("IDDS_TOKEN", "IDDS_USER", "IDDS_URL", "IDDS_DB_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(db_url=db_url, ray_address=ray_address, work_dir=tmp_path / "work")
    svc = start_service(settings, tmp_path / "serve.log")
    yield svc
    svc.stop()


def _study(settings: Settings, name: str = "alice-quad", **fields) -> hpo.Study:
    spec = {
        "name": name, "objective": "objectives:quadratic", "max_points": 4, "parallel": 2,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "proposer": "optuna:random", "seed": 1, "pythonpath": [str(TESTS)], **fields,
    }  # fmt: skip
    return hpo.Study(settings=settings, **spec)


def _refused(response, code: int, *words: str) -> str:
    assert response.status_code == code, response.text
    detail = response.json()["detail"]
    assert "\n" not in detail and all(w in detail for w in words), detail
    return detail


def test_another_users_study_cannot_be_written_into(service):
    alice, bob = service.settings("alice"), service.settings("bob")
    _study(alice).optimize(progress=False)
    with pytest.raises(AccessDenied, match="alice"):
        _study(bob).optimize(progress=False)  # the same name, run by bob: no merge
    with pytest.raises(NotSignedIn):
        _study(service.settings(None)).optimize(progress=False)
    with pytest.raises(AccessDenied):
        hpo.load_study("alice-quad", settings=bob).cancel()
    with pytest.raises(AccessDenied):
        hpo.load_study("alice-quad", settings=bob).enqueue({"x": 0.5})

    study = hpo.load_study("alice-quad", settings=alice)
    assert study.state == "finished" and len(study.trials) == 4  # 4/4, as alice ran it
    http = service.http("bob")
    _refused(http.post(f"/owners/{study.owner_id}/cancel", json={}), 403, "bob", "cancel")
    body = {"kind": "study", "name": "alice-quad", "spec": {"space": {"y": {}}}}
    _refused(http.post("/owners", json=body), 409, "exists already", "alice")
    _refused(service.http(None).get("/owners"), 401, "token")
    assert http.get("/owners").json()[0]["name"] == "alice-quad"  # summaries: for everyone


def test_resuming_with_another_spec_names_the_field_that_differs(service):
    alice = service.settings("alice")
    _study(alice).optimize(progress=False)
    with pytest.raises(SpecError, match="max_points: 4 recorded, 8 given"):
        _study(alice, max_points=8).optimize(progress=False)


def test_names_kept_for_an_owners_parts_cannot_be_taken(service):
    alice, bob = service.settings("alice"), service.settings("bob")
    _study(alice, name="alice-wf2").optimize(progress=False)
    http = service.http("bob")
    body = {"kind": "study", "name": "alice-wf2.tune", "spec": {}}
    _refused(http.post("/owners", json=body), 409, "kept for the parts", "alice-wf2")
    _study(bob, name="carol-x.sweep", max_points=1).optimize(progress=False)
    with pytest.raises(Exists, match="carol-x.sweep"):
        _study(alice, name="carol-x").optimize(progress=False)


def test_errors_and_logs_are_their_owners(service, capsys, monkeypatch):
    alice = service.settings("alice")
    _study(alice, name="leaky", objective="objectives:leaks_to_stderr", max_points=1,
           max_attempts=1).optimize(progress=False)  # fmt: skip
    owner_id = hpo.load_study("leaky", settings=alice).owner_id
    bob = service.http("bob")
    tasks = bob.get(f"/owners/{owner_id}/tasks")
    assert tasks.json()[0]["error"] == HIDDEN and "TOPSECRET" not in tasks.text
    assert "TOPSECRET" not in bob.get("/failures").text
    _refused(bob.get(f"/owners/{owner_id}/tasks/0/logs"), 403, "bob", "logs")
    mine = service.http("alice").get(f"/owners/{owner_id}/tasks/0/logs").json()
    assert "api_key=TOPSECRET-123" in mine["stderr"]

    monkeypatch.setenv("IDDS_TOKEN", service.tokens["bob"])
    with pytest.raises(SystemExit):
        main(["--url", service.url, "hpo", "logs", "leaky", "0"])
    _, err = capsys.readouterr()
    assert "may not read the logs" in err and "TOPSECRET" not in err
    main(["--url", service.url, "hpo", "show", "leaky"])
    out, _ = capsys.readouterr()
    assert "leaky" in out and "TOPSECRET" not in out


def test_the_cli_acts_through_the_server(service, tmp_path, capsys, monkeypatch):
    spec = tmp_path / "study.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "cli-quad", "objective": "objectives:quadratic", "max_points": 3,
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}},
        "proposer": "optuna:random", "seed": 2, "pythonpath": [str(TESTS)],
    }))  # fmt: skip
    monkeypatch.setenv("IDDS_TOKEN", service.tokens["alice"])
    monkeypatch.setenv("IDDS_DB_URL", "sqlite:////nonexistent/dir/never.db")  # never opened

    def idds(*args: str) -> str:
        main(["--url", service.url, *args])
        return capsys.readouterr().out

    assert "best value" in idds("hpo", "launch", str(spec), "--no-progress")
    assert "cli-quad" in idds("hpo", "list") and "3/3" in idds("hpo", "list")
    assert "trial" in idds("hpo", "show", "cli-quad")
    assert "alice (admin)" in idds("whoami")
    assert "bob" in idds("users", "list")
    assert "token" in idds("users", "add", "carol")
    assert not Path("/nonexistent/dir/never.db").exists()


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by its own key (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return str(cert_file), str(key_file)


def test_the_api_serves_https_with_a_certificate(ray_address, tmp_path, monkeypatch):
    import dataclasses

    from idds.client import RemoteRecords
    from idds.errors import ServiceError

    for var in ("IDDS_TOKEN", "IDDS_USER", "IDDS_URL"):
        monkeypatch.delenv(var, raising=False)
    cert, key = _self_signed(tmp_path)
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'idds.db'}", ray_address=ray_address,
                        work_dir=tmp_path / "work")  # fmt: skip
    svc = start_service(settings, tmp_path / "serve.log", tls=(cert, key))
    try:
        assert svc.url.startswith("https://")
        trusted = dataclasses.replace(svc.settings("bob"), ca_bundle=cert)
        assert RemoteRecords(trusted).whoami().name == "bob"
        with pytest.raises(ServiceError, match="does not answer"):  # not the system's CAs
            RemoteRecords(svc.settings("bob")).whoami()
    finally:
        svc.stop()


@pytest.mark.pg
def test_no_password_is_recorded_or_sent_to_workers(pg_url, ray_address, tmp_path, monkeypatch):
    """A workflow with a study node, run by the server on a database URL that holds a
    password: no table holds it (the nodes' payloads included)."""
    import sqlalchemy as sa

    from dag import Workflow
    from idds.db import connect, drop_all

    try:
        drop_all(pg_url)  # an empty database
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {pg_url} does not answer: {str(exc).splitlines()[0]}")
    for var in ("IDDS_TOKEN", "IDDS_USER", "IDDS_URL", "IDDS_DB_URL"):
        monkeypatch.delenv(var, raising=False)
    secret = "pw-SECRET-42"  # the server trusts this host: any password connects
    url = sa.make_url(pg_url).set(password=secret).render_as_string(hide_password=False)
    settings = Settings(db_url=url, ray_address=ray_address, work_dir=tmp_path / "work")
    svc = start_service(settings, tmp_path / "serve.log")
    try:
        study = {"objective": "objectives:quadratic", "pythonpath": [str(TESTS)],
                 "max_points": 3, "proposer": "optuna:random", "seed": 1,
                 "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}}}  # fmt: skip
        wf = Workflow({"name": "wf-pw", "nodes": [{"name": "search", "study": study}]},
                      settings=svc.settings("alice"))  # fmt: skip
        assert wf.run() == "finished"
        assert hpo.load_study("wf-pw.search", settings=svc.settings("bob")).user == "alice"
    finally:
        svc.stop()
    engine = connect(pg_url)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        dump = "".join(str(conn.execute(sa.text(f'SELECT * FROM "{t}"')).all()) for t in tables)
    engine.dispose()
    assert "wf-pw.search" in dump and secret not in dump
