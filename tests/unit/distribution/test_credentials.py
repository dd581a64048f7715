"""X-Registry-Auth decoding, docker config auths and credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from skiff.distribution import credentials as c
from skiff.errors import InvalidArgument


def test_decode_registry_auth_urlsafe_unpadded():
    doc = {"username": "u", "password": "p?>", "serveraddress": "reg:5000", "identitytoken": ""}
    header = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    a = c.decode_registry_auth(header)
    assert a == c.AuthConfig(username="u", password="p?>", serveraddress="reg:5000")
    assert c.decode_registry_auth(c.encode_registry_auth(a)) == a
    assert c.decode_registry_auth("") is None
    assert c.decode_registry_auth(base64.b64encode(b"{}").decode()) is None
    with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
        c.decode_registry_auth("!!!notbase64")


def test_decode_registry_auth_auth_field_and_identity_token():
    header = base64.b64encode(
        json.dumps({"auth": base64.b64encode(b"me:secret").decode()}).encode()
    ).decode()
    assert c.decode_registry_auth(header) == c.AuthConfig(username="me", password="secret")
    header = base64.b64encode(json.dumps({"IdentityToken": "tok"}).encode()).decode()
    assert c.decode_registry_auth(header).identitytoken == "tok"


def test_lookup_auths_and_hub_key(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "auths": {
                    "reg.example:5000": {"auth": base64.b64encode(b"a:b").decode()},
                    "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
                }
            }
        )
    )
    assert c.lookup("reg.example:5000", cfg) == c.AuthConfig("a", "b", "reg.example:5000")
    assert c.lookup("registry-1.docker.io", cfg).username == "hub"
    assert c.lookup("other:1", cfg) is None
    assert c.lookup("x", tmp_path / "missing.json") is None


def test_credential_helper(tmp_path, monkeypatch):
    helper = tmp_path / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        'if [ "$server" = "reg.example:5000" ]; then echo \'{"ServerURL":"reg.example:5000","Username":"helper-user","Secret":"s3"}\'; '
        'elif [ "$server" = "tok.example" ]; then echo \'{"Username":"<token>","Secret":"idtok"}\'; '
        'else echo "credentials not found in native keychain"; exit 1; fi\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"credHelpers": {"reg.example:5000": "fake"}, "credsStore": "fake"}))
    assert c.lookup("reg.example:5000", cfg) == c.AuthConfig(
        "helper-user", "s3", "reg.example:5000"
    )
    assert c.lookup("tok.example", cfg).identitytoken == "idtok"
    assert c.lookup("none.example", cfg) is None
