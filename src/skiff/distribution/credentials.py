"""Where registry credentials come from: X-Registry-Auth, ~/.docker/config.json, credential helpers.

`AuthConfig` is Docker's `types.AuthConfig`. The engine gets one per request from the API's
`X-Registry-Auth` header (`decode_registry_auth`); when none is given, `lookup` consults the
docker config file: `credHelpers[host]`, then `credsStore`, then `auths[host].auth`
(base64 `user:password`) and `identitytoken`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import InvalidArgument, Unavailable

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_AUTH_KEY}


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""

    def empty(self) -> bool:
        return not (self.username or self.password or self.identitytoken or self.registrytoken)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AuthConfig:
        lower = {str(k).lower(): v for k, v in doc.items()}
        username = str(lower.get("username") or "")
        password = str(lower.get("password") or "")
        if lower.get("auth") and not username:
            username, password = _decode_basic(str(lower["auth"]))
        return cls(
            username=username,
            password=password,
            serveraddress=str(lower.get("serveraddress") or ""),
            identitytoken=str(lower.get("identitytoken") or ""),
            registrytoken=str(lower.get("registrytoken") or ""),
        )


def _decode_basic(text: str) -> tuple[str, str]:
    try:
        user, sep, password = (
            base64.b64decode(text + "=" * (-len(text) % 4)).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("docker config: auth: invalid base64 user:password")
    if not sep:
        raise InvalidArgument("docker config: auth: expected base64 of user:password")
    return user, password


def decode_registry_auth(header: str) -> AuthConfig | None:
    """Decode an `X-Registry-Auth` header (base64url JSON); None for an empty header.

    Docker clients send URL-safe base64, sometimes without padding, sometimes standard base64.
    """
    header = header.strip()
    if not header:
        return None
    padded = header + "=" * (-len(header) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        doc = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("X-Registry-Auth: not base64url-encoded JSON")
    if not isinstance(doc, dict):
        raise InvalidArgument("X-Registry-Auth: expected a JSON object")
    auth = AuthConfig.from_dict(doc)
    return None if auth.empty() else auth


def encode_registry_auth(auth: AuthConfig) -> str:
    doc = {
        "username": auth.username,
        "password": auth.password,
        "serveraddress": auth.serveraddress,
        "identitytoken": auth.identitytoken,
    }
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _keys_for(host: str) -> list[str]:
    if host in _HUB_ALIASES:
        return [DOCKER_HUB_AUTH_KEY, "docker.io", "index.docker.io", "registry-1.docker.io"]
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]


def run_helper(helper: str, host: str) -> AuthConfig | None:
    """`docker-credential-<helper> get` with the server address on stdin."""
    exe = f"docker-credential-{helper}"
    server = DOCKER_HUB_AUTH_KEY if host in _HUB_ALIASES else host
    try:
        proc = subprocess.run([exe, "get"], input=server.encode(), capture_output=True, timeout=30)
    except FileNotFoundError:
        raise Unavailable(f"credential helper {exe}: not found in PATH")
    except subprocess.TimeoutExpired:
        raise Unavailable(f"credential helper {exe}: timed out")
    if proc.returncode != 0:
        msg = (proc.stdout or proc.stderr).decode(errors="replace").strip()
        if "credentials not found" in msg.lower():
            return None
        raise Unavailable(
            f"credential helper {exe} get {server}: {msg or f'exit {proc.returncode}'}"
        )
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        raise Unavailable(f"credential helper {exe}: output is not JSON")
    user, secret = str(doc.get("Username") or ""), str(doc.get("Secret") or "")
    if user == "<token>":
        return AuthConfig(identitytoken=secret, serveraddress=server)
    return AuthConfig(username=user, password=secret, serveraddress=server)


def lookup(host: str, path: Path | None = None) -> AuthConfig | None:
    """Credentials for registry `host` from the docker config file, or None."""
    path = path or config_path()
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"docker config {path}: {e}")
    if not isinstance(doc, dict):
        return None
    helpers = doc.get("credHelpers") or {}
    for key in _keys_for(host):
        if key in helpers:
            return run_helper(str(helpers[key]), host)
    if doc.get("credsStore"):
        found = run_helper(str(doc["credsStore"]), host)
        if found is not None:
            return found
    auths = doc.get("auths") or {}
    for key in _keys_for(host):
        entry = auths.get(key)
        if isinstance(entry, dict):
            auth = AuthConfig.from_dict({**entry, "serveraddress": key})
            if not auth.empty():
                return auth
    return None
