"""Who a request acts as: the server's tokens, and OIDC bearer tokens checked against the
issuer's keys (a key pair made here, its JWKS served on 127.0.0.1 by a real HTTP server)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from idds import auth
from idds.api import make_app
from idds.config import Settings
from idds.db import connect

ISSUER = "https://login.example.org/realms/physics"
AUDIENCE = "idds"


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def issuer():
    """The issuer's signing key, and its JWKS served on a free loopback port."""
    key = _key()
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield key, f"http://127.0.0.1:{server.server_port}/jwks.json"
    server.shutdown()


def _token(key, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now,
            "preferred_username": "dana", **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def client(issuer, tmp_path):
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'idds.db'}", oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer[1], oidc_admin_group="idds-admins",
    )  # fmt: skip
    engine = connect(settings.db_url)
    token = auth.add_user(engine, auth.Actor("alice", admin=True), "alice")
    with TestClient(make_app(settings)) as client:
        yield client, token


def _whoami(client, token: str):
    return client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})


def test_a_good_oidc_token_acts_as_its_user_and_a_group_makes_an_admin(client, issuer):
    client, _ = client
    assert _whoami(client, _token(issuer[0])).json() == {"name": "dana", "admin": False}
    admin = _token(issuer[0], groups=["cms", "idds-admins"])
    assert _whoami(client, admin).json() == {"name": "dana", "admin": True}


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"exp": 1_000_000}, "expired"),
        ({"aud": "another-service"}, "audience"),
        ({"iss": "https://evil.example.org"}, "issuer"),
        ({"preferred_username": "bad name/with slash"}, "not a user name"),
    ],
)
def test_bad_oidc_tokens_are_refused_in_one_line(client, issuer, claims, words):
    client, _ = client
    response = _whoami(client, _token(issuer[0], **claims))
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert words in detail.lower() and "\n" not in detail


def test_a_token_signed_by_another_key_is_refused(client):
    client, _ = client
    response = _whoami(client, _token(_key()))
    assert response.status_code == 401 and "signature" in response.json()["detail"].lower()


def test_the_servers_own_tokens_and_none(client):
    client, token = client
    assert _whoami(client, token).json() == {"name": "alice", "admin": True}
    assert _whoami(client, "idds_not-a-token").status_code == 401
    assert client.get("/api/v1/whoami").status_code == 401  # users exist: a token is needed
