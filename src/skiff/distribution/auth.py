"""Registry-side authentication: htpasswd basic auth and Docker's token auth.

Vocabulary: a *scope* is `repository:<name>:<actions>` (actions pull, push, delete, `*`) or
`registry:catalog:*`; an *access* is the list of granted scopes a token carries. The token
endpoint (`/token` on the registry itself) checks basic credentials against the htpasswd file
and issues an HS256 JWT (HMAC-SHA256 with the registry's key) whose `access` claim holds the
scopes it grants, with `iss`, `aud` (the service), `sub`, `exp`, `nbf`, `iat`, `jti`. Docker
clients treat tokens as opaque, so an HMAC signature is enough and keeps dependencies down.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.errors import FailedPrecondition, InvalidArgument


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope:
        # Names may contain ':' only in a registry host prefix, which repositories here never have.
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise InvalidArgument(f"invalid scope {text!r}: expected type:name:actions")
        return cls(kind, name, frozenset(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from `scope=` query values (each may hold several, space-separated)."""
    out: list[Scope] = []
    for v in values:
        for part in v.split():
            out.append(Scope.parse(part))
    return out


class Htpasswd:
    """An htpasswd file with bcrypt entries (`user:$2y$…`), re-read when it changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._users: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise FailedPrecondition(f"htpasswd {self.path}: no such file")
        if st.st_mtime == self._mtime:
            return
        users: dict[str, bytes] = {}
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith("$2"):
                raise FailedPrecondition(
                    f"htpasswd {self.path}: line {n}: only bcrypt entries are supported (htpasswd -B)"
                )
            users[user] = hashed.encode()
        self._users = users
        self._mtime = st.st_mtime

    def check(self, username: str, password: str) -> bool:
        import bcrypt

        with self._lock:
            self._load()
            hashed = self._users.get(username)
        if hashed is None:
            # Spend the same time as a real check so user names cannot be probed by timing.
            bcrypt.checkpw(b"x", b"$2b$05$" + b"." * 53)
            return False
        # Go and Apache write $2y$; Python's bcrypt verifies it as the equivalent $2b$.
        if hashed.startswith(b"$2y$"):
            hashed = b"$2b$" + hashed[4:]
        try:
            return bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False


def hash_password(password: str, rounds: int = 10) -> str:
    """A bcrypt htpasswd hash in Apache's `$2y$` spelling (what `htpasswd -B` writes)."""
    import bcrypt

    h = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
    return "$2y$" + h[4:]


@dataclass
class TokenIssuer:
    """Signs and verifies the registry's bearer tokens."""

    key: bytes
    issuer: str = "skiff-registry"
    service: str = "skiff-registry"
    expiry: int = 300
    _kid: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self._kid = hashlib.sha256(self.key).hexdigest()[:16]

    def issue(self, subject: str, scopes: list[Scope]) -> tuple[str, int]:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "HS256", "kid": self._kid}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.expiry,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [
                {"type": s.type, "name": s.name, "actions": sorted(s.actions)} for s in scopes
            ],
        }
        signing_input = (
            f"{b64url(json.dumps(header, separators=(',', ':')).encode())}."
            f"{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        )
        sig = hmac.new(self.key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(sig)}", self.expiry

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; InvalidArgument naming the reason when it is not acceptable."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidArgument("token: not a JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("token: malformed")
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise InvalidArgument("token: unsupported signing algorithm")
        want = hmac.new(self.key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(sig, want):
            raise InvalidArgument("token: bad signature")
        if not isinstance(claims, dict):
            raise InvalidArgument("token: malformed claims")
        now = time.time()
        if claims.get("iss") != self.issuer:
            raise InvalidArgument("token: wrong issuer")
        if claims.get("aud") != self.service:
            raise InvalidArgument("token: wrong audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            raise InvalidArgument("token: expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 30:
            raise InvalidArgument("token: not yet valid")
        return claims


def token_grants(claims: dict[str, Any], needed: Scope | None) -> bool:
    """Whether a verified token's `access` claim covers `needed` (None: any valid token)."""
    if needed is None:
        return True
    for entry in claims.get("access") or []:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") != needed.type or entry.get("name") != needed.name:
            continue
        granted = set(entry.get("actions") or [])
        if "*" in granted or needed.actions <= granted:
            return True
    return False


def load_or_create_key(path: Path) -> bytes:
    """The registry's token signing key, made (0600) on first use."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
        finally:
            os.close(fd)
        return key


def parse_basic(header: str) -> tuple[str, str] | None:
    """`Authorization: Basic …` → (user, password), None when it is not well formed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None
