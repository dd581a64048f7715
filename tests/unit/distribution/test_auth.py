"""htpasswd basic auth and Docker token auth, on the wire and as functions."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from skiff.distribution import auth
from skiff.distribution.protocol import parse_challenges
from skiff.errors import InvalidArgument

from .conftest import start


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    p = tmp_path / "htpasswd"
    p.write_text(f"alice:{auth.hash_password('wonderland', rounds=4)}\n")
    return p


@pytest.fixture
def basic_registry(tmp_path, htpasswd):
    yield from start(tmp_path, htpasswd=htpasswd)


@pytest.fixture
def token_registry(tmp_path, htpasswd):
    yield from start(
        tmp_path, htpasswd=htpasswd, token={"key": "test-secret", "service": "test-svc"}
    )


def test_basic_auth(basic_registry):
    r = basic_registry.request("GET", "/v2/")
    assert r.status == 401 and r.codes() == ["UNAUTHORIZED"]
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    assert basic_registry.request("GET", "/v2/", headers=basic("alice", "wrong")).status == 401
    assert basic_registry.request("GET", "/v2/", headers=basic("bob", "wonderland")).status == 401
    assert basic_registry.request("GET", "/v2/", headers=basic("alice", "wonderland")).status == 200


def test_token_flow(token_registry):
    r = token_registry.request("GET", "/v2/a/tags/list")
    assert r.status == 401
    [ch] = parse_challenges(r.headers["WWW-Authenticate"])
    assert ch.scheme == "bearer"
    assert ch.params == {
        "realm": f"http://{token_registry.host}/token",
        "service": "test-svc",
        "scope": "repository:a:pull",
    }
    # The token endpoint wants the htpasswd credentials.
    assert (
        token_registry.request("GET", "/token?service=test-svc&scope=repository:a:pull").status
        == 401
    )
    t = token_registry.request(
        "GET",
        "/token?service=test-svc&scope=repository:a:pull",
        headers=basic("alice", "wonderland"),
    )
    assert t.status == 200
    token = t.json()["token"]
    assert t.json()["expires_in"] == 300
    bearer = {"Authorization": f"Bearer {token}"}
    r = token_registry.request("GET", "/v2/a/tags/list", headers=bearer)
    assert r.status == 404 and r.codes() == ["NAME_UNKNOWN"]  # authorized; the repo is empty
    # Pull scope does not allow a push.
    r = token_registry.request("POST", "/v2/a/blobs/uploads/", headers=bearer)
    assert r.status == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # Nor another repository.
    assert token_registry.request("GET", "/v2/b/tags/list", headers=bearer).status == 401


def test_bad_token_is_401(token_registry):
    t = token_registry.request(
        "GET",
        "/token?service=test-svc&scope=repository:a:pull",
        headers=basic("alice", "wonderland"),
    ).json()["token"]
    header, claims, sig = t.split(".")
    doc = json.loads(auth.b64url_decode(claims))
    doc["access"][0]["name"] = "b"
    forged = f"{header}.{auth.b64url(json.dumps(doc).encode())}.{sig}"
    for bad in (forged, "garbage", t[:-4] + "AAAA"):
        r = token_registry.request(
            "GET", "/v2/b/tags/list", headers={"Authorization": f"Bearer {bad}"}
        )
        assert r.status == 401 and r.codes() == ["UNAUTHORIZED"]
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_token_post_password_grant(token_registry):
    body = "grant_type=password&username=alice&password=wonderland&scope=repository:a:pull,push&service=test-svc"
    r = token_registry.request(
        "POST",
        "/token?service=test-svc",
        body.encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 200 and r.json()["access_token"]
    body = body.replace("wonderland", "nope")
    r = token_registry.request("POST", "/token?service=test-svc", body.encode())
    assert r.status == 401


def test_token_expiry_and_scope_checks():
    issuer = auth.TokenIssuer(b"k", expiry=-100)
    token, _ = issuer.issue("alice", [auth.Scope.parse("repository:a/b:pull,push")])
    with pytest.raises(InvalidArgument, match="expired"):
        issuer.verify(token)
    good = auth.TokenIssuer(b"k")
    claims = good.verify(good.issue("alice", [auth.Scope.parse("repository:a/b:pull,push")])[0])
    assert auth.token_grants(claims, auth.Scope("repository", "a/b", frozenset({"push"})))
    assert not auth.token_grants(claims, auth.Scope("repository", "a/b", frozenset({"delete"})))
    with pytest.raises(InvalidArgument, match="signature"):
        auth.TokenIssuer(b"other").verify(good.issue("x", [])[0])


def test_htpasswd_accepts_apache_2y_and_rejects_other_hashes(tmp_path):
    p = tmp_path / "h"
    p.write_text(f"u:{auth.hash_password('pw', rounds=4)}\n")
    assert p.read_text().startswith("u:$2y$")
    h = auth.Htpasswd(p)
    assert h.check("u", "pw") and not h.check("u", "px")
    p.write_text("u:{SHA}abc\n")
    with pytest.raises(Exception, match="bcrypt"):
        auth.Htpasswd(p)


def test_scope_parse():
    s = auth.Scope.parse("repository:library/busybox:pull,push")
    assert (s.type, s.name, s.actions) == (
        "repository",
        "library/busybox",
        frozenset({"pull", "push"}),
    )
    assert [str(x) for x in auth.parse_scopes(["registry:catalog:* repository:a:pull"])] == [
        "registry:catalog:*",
        "repository:a:pull",
    ]
