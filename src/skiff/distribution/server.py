"""`skiff registry serve|gc`: an OCI distribution spec v1.1 registry over the filesystem storage.

A `ThreadingHTTPServer` whose handler turns each request into a call on `Storage`; blob bodies
go out with sendfile(2). Authentication (htpasswd basic, or Docker token auth with a built-in
`/token` endpoint) is checked per request against the scope the route needs. RegistryErrors
become the spec's JSON error bodies here, at the HTTP edge, and nowhere else.

Entry point: `main(argv)`; also `python -m skiff.distribution.server serve --addr … --root …`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from skiff.errors import FailedPrecondition, SkiffError
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest

from . import auth
from .protocol import (
    API_VERSION_HEADER,
    OCI_ARTIFACT_MANIFEST,
    RegistryError,
    format_challenge,
    next_link,
    paginate,
    parse_byte_range,
    parse_content_range,
    upload_range,
    valid_name,
    valid_tag,
)
from .storage import Storage, manifest_media_type

DEFAULT_MAX_MANIFEST = 4 * 1024 * 1024
CHUNK = 1 << 20
ALL_MANIFEST_TYPES = mt.MANIFESTS | mt.INDEXES | {OCI_ARTIFACT_MANIFEST}


@dataclass
class Config:
    root: Path
    htpasswd: Path | None = None
    token: dict[str, Any] | None = None  # realm, service, issuer, key, expiry
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_manifest_size: int = DEFAULT_MAX_MANIFEST
    delete_enabled: bool = True

    @classmethod
    def load(cls, root: Path, path: Path | None) -> Config:
        cfg = cls(root=root)
        if path is None:
            return cfg
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"skiff registry: config {path}: {e}")
        a = doc.get("auth") or {}
        if a.get("htpasswd"):
            cfg.htpasswd = Path(a["htpasswd"])
        if a.get("token"):
            cfg.token = dict(a["token"])
        tls = doc.get("tls") or {}
        if tls.get("cert"):
            cfg.tls_cert, cfg.tls_key = Path(tls["cert"]), Path(tls.get("key") or tls["cert"])
        if "max_manifest_size" in doc:
            cfg.max_manifest_size = int(doc["max_manifest_size"])
        if "delete" in doc:
            cfg.delete_enabled = bool(doc["delete"])
        return cfg


class Registry:
    """What the handler threads share: storage, config, auth state."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.storage = Storage(config.root)
        self.htpasswd = auth.Htpasswd(config.htpasswd) if config.htpasswd else None
        self.issuer: auth.TokenIssuer | None = None
        if config.token is not None:
            if self.htpasswd is None:
                # The token endpoint checks credentials against htpasswd; without it, it
                # would hand every scope to anyone.
                raise FailedPrecondition(
                    "registry: token auth needs an htpasswd file (auth.htpasswd)"
                )
            t = config.token
            key = t.get("key")
            key_bytes = (
                key.encode()
                if isinstance(key, str) and key
                else auth.load_or_create_key(config.root / "token.key")
            )
            self.issuer = auth.TokenIssuer(
                key_bytes,
                issuer=t.get("issuer", "skiff-registry"),
                service=t.get("service", "skiff-registry"),
                expiry=int(t.get("expiry", 300)),
            )
        self._basic_cache: dict[str, float] = {}
        self._basic_lock = threading.Lock()

    def check_basic(self, user: str, password: str) -> bool:
        """htpasswd check, remembering good credentials for a minute (bcrypt is slow on purpose)."""
        assert self.htpasswd is not None
        key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        now = time.monotonic()
        with self._basic_lock:
            if self._basic_cache.get(key, 0) > now:
                return True
        ok = self.htpasswd.check(user, password)
        if ok:
            with self._basic_lock:
                self._basic_cache[key] = now + 60
        return ok


_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("base", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("upload", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]+)$")),
    ("uploads", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$")),
    ("blob", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("manifest", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")),
    ("tags", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("referrers", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
    ("token", re.compile(r"^/token/?$")),
]


def _route(path: str) -> tuple[str, dict[str, str]] | None:
    for kind, pattern in _ROUTES:
        m = pattern.match(path)
        if m:
            return kind, m.groupdict()
    return None


def _needed_scope(kind: str, method: str, params: dict[str, str]) -> auth.Scope | None:
    if kind == "base":
        return None
    if kind == "catalog":
        return auth.Scope("registry", "catalog", frozenset({"*"}))
    if method in ("GET", "HEAD"):
        action = "pull"
    elif method == "DELETE" and kind in ("blob", "manifest"):
        action = "delete"
    else:
        action = "push"
    return auth.Scope("repository", params["name"], frozenset({action}))


def _parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except SkiffError as e:
        raise RegistryError(
            "DIGEST_INVALID", "provided digest did not match uploaded content", str(e)
        )


class _Unauthorized(Exception):
    def __init__(self, challenge: str, error: RegistryError) -> None:
        self.challenge = challenge
        self.error = error


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "skiff-registry/0.1"
    timeout = 300  # idle keep-alive connections give their thread back after this
    registry: Registry  # set on the subclass made by make_server
    quiet = False

    # -- plumbing ----------------------------------------------------------------------
    def setup(self) -> None:
        self._tls_probe = False
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
            self.request.settimeout(None)
        else:
            # Docker and skopeo try https first on insecure registries: a TLS ClientHello
            # (0x16) on a plain-HTTP port is answered by closing, not logged as a bad request.
            try:
                self.request.settimeout(30)
                self._tls_probe = self.request.recv(1, socket.MSG_PEEK) == b"\x16"
                self.request.settimeout(None)
            except OSError:
                self._tls_probe = True
        super().setup()

    def handle(self) -> None:
        if not self._tls_probe:
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body as chunks: Content-Length or chunked transfer coding.

        Marks the body consumed only when it was read to the end; otherwise the response
        closes the connection, whose next bytes would be the rest of this body.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise RegistryError("BLOB_UPLOAD_INVALID", "malformed chunked transfer coding")
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    self._body_read = True
                    return
                left = size
                while left:
                    chunk = self.rfile.read(min(left, CHUNK))
                    if not chunk:
                        raise ConnectionError("client closed the connection mid-body")
                    left -= len(chunk)
                    yield chunk
                self.rfile.readline(8)
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, CHUNK))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            length -= len(chunk)
            yield chunk
        self._body_read = True

    def _read_body(self, limit: int) -> bytes:
        """The whole body, at most `limit` bytes (413 SIZE_INVALID beyond).

        A too-large body of reasonable size is drained first, so the client reads the 413
        instead of a broken pipe; a huge one closes the connection.
        """
        out = bytearray()
        chunks = self._body_chunks()
        length = int(self.headers.get("Content-Length") or 0)
        for chunk in chunks:
            out += chunk
            if len(out) > limit:
                if length <= 64 * limit:
                    for _ in chunks:
                        pass
                raise RegistryError(
                    "SIZE_INVALID", f"body exceeds the limit of {limit} bytes", status=413
                )
        return bytes(out)

    def _has_body(self) -> bool:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        try:
            return int(self.headers.get("Content-Length") or 0) > 0
        except ValueError:
            return True  # unknown framing: treat as an unread body, so the connection closes

    def _send(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header(*API_VERSION_HEADER)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if content_type:
            self.send_header("Content-Type", content_type)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        if self._has_body() and not self._body_read and "Connection" not in (headers or {}):
            # The request body was not consumed (auth or validation failed first): this
            # connection cannot carry another request.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(
        self,
        status: int,
        doc: object,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self._send(status, headers, json.dumps(doc).encode(), content_type)

    def _url(self, path: str) -> str:
        host = self.headers.get("Host")
        if not host:
            return path
        scheme = "https" if isinstance(self.request, ssl.SSLSocket) else "http"
        return f"{scheme}://{host}{path}"

    def _dispatch(self) -> None:
        self._body_read = False
        split = urlsplit(self.path)
        self._query = parse_qs(split.query, keep_blank_values=True)
        try:
            routed = _route(split.path)
            if routed is None:
                raise RegistryError(
                    "UNSUPPORTED", f"no route for {self.command} {split.path}", status=404
                )
            kind, params = routed
            if kind == "token":
                self._token()
                return
            if "name" in params and not valid_name(params["name"]):
                raise RegistryError(
                    "NAME_INVALID", "invalid repository name", {"name": params["name"]}
                )
            self._authorize(kind, params)
            handler: Callable[[dict[str, str]], None] | None = getattr(
                self, f"_{kind}_{self.command.lower()}", None
            )
            if handler is None:
                raise RegistryError(
                    "UNSUPPORTED", f"{self.command} is not supported on {kind}", status=405
                )
            handler(params)
        except _Unauthorized as u:
            self._send(
                401,
                {"WWW-Authenticate": u.challenge, **u.error.headers},
                u.error.body(),
                "application/json",
            )
        except RegistryError as e:
            self._send(e.status, e.headers, e.body(), "application/json")
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
        except SkiffError as e:
            err = RegistryError("UNSUPPORTED", str(e), status=400)
            self._send(err.status, {}, err.body(), "application/json")
        except ValueError as e:
            # Malformed numbers in headers (Content-Length, n=…) and the like.
            err = RegistryError("UNSUPPORTED", f"malformed request: {e}", status=400)
            self.close_connection = True
            self._send(err.status, {"Connection": "close"}, err.body(), "application/json")
        except Exception as e:
            sys.stderr.write(
                f"skiff registry: internal error on {self.command} {self.path}: {e!r}\n"
            )
            err = RegistryError("UNKNOWN", "internal registry error", status=500)
            self.close_connection = True
            self._send(err.status, {"Connection": "close"}, err.body(), "application/json")

    # -- auth --------------------------------------------------------------------------
    def _authorize(self, kind: str, params: dict[str, str]) -> None:
        reg = self.registry
        needed = _needed_scope(kind, self.command, params)
        header = self.headers.get("Authorization", "")
        if reg.issuer is not None:
            t = reg.config.token or {}
            realm = t.get("realm") or self._url("/token")
            challenge_params = {"realm": realm, "service": reg.issuer.service}
            if needed is not None:
                challenge_params["scope"] = str(needed)
            challenge = format_challenge("Bearer", challenge_params)
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise _Unauthorized(
                    challenge,
                    RegistryError(
                        "UNAUTHORIZED",
                        "authentication required",
                        [
                            {
                                "Type": needed.type,
                                "Name": needed.name,
                                "Action": ",".join(sorted(needed.actions)),
                            }
                        ]
                        if needed
                        else None,
                    ),
                )
            try:
                claims = reg.issuer.verify(token.strip())
            except SkiffError as e:
                challenge = challenge + ',error="invalid_token"'
                raise _Unauthorized(challenge, RegistryError("UNAUTHORIZED", f"invalid token: {e}"))
            if not auth.token_grants(claims, needed):
                challenge = challenge + ',error="insufficient_scope"'
                raise _Unauthorized(
                    challenge, RegistryError("UNAUTHORIZED", "insufficient scope", str(needed))
                )
            return
        if reg.htpasswd is not None:
            creds = auth.parse_basic(header)
            if creds is None or not reg.check_basic(*creds):
                raise _Unauthorized(
                    'Basic realm="skiff-registry"',
                    RegistryError("UNAUTHORIZED", "authentication required"),
                )

    def _token(self) -> None:
        reg = self.registry
        if reg.issuer is None:
            raise RegistryError("UNSUPPORTED", "token auth is not configured", status=404)
        subject = ""
        scopes_text = self._query.get("scope", [])
        if self.command == "POST":
            form = parse_qs(self._read_body(65536).decode(errors="replace"))
            if form.get("grant_type", [""])[0] != "password":
                raise RegistryError(
                    "UNSUPPORTED", "only grant_type=password is supported", status=400
                )
            user, password = form.get("username", [""])[0], form.get("password", [""])[0]
            scopes_text = form.get("scope", [])
            if reg.htpasswd is not None and not reg.check_basic(user, password):
                raise RegistryError("UNAUTHORIZED", "invalid username or password")
            subject = user
        elif self.command == "GET":
            creds = auth.parse_basic(self.headers.get("Authorization", ""))
            if reg.htpasswd is not None and (creds is None or not reg.check_basic(*creds)):
                raise _Unauthorized(
                    'Basic realm="skiff-registry-token"',
                    RegistryError("UNAUTHORIZED", "invalid username or password"),
                )
            subject = creds[0] if creds else "anonymous"
        else:
            raise RegistryError("UNSUPPORTED", "token endpoint takes GET or POST", status=405)
        try:
            scopes = auth.parse_scopes(scopes_text)
        except SkiffError as e:
            raise RegistryError("UNSUPPORTED", str(e), status=400)
        service = (self._query.get("service") or [reg.issuer.service])[0]
        if service != reg.issuer.service:
            raise RegistryError("DENIED", f"unknown service {service!r}")
        token, expires = reg.issuer.issue(subject, scopes)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._send_json(
            200, {"token": token, "access_token": token, "expires_in": expires, "issued_at": now}
        )

    # -- base, catalog, tags -----------------------------------------------------------
    def _base_get(self, params: dict[str, str]) -> None:
        self._send_json(200, {})

    _base_head = _base_get

    def _q(self, key: str) -> str | None:
        values = self._query.get(key)
        return values[0] if values else None

    def _page_args(self) -> tuple[int | None, str | None]:
        n_text = self._q("n")
        last = self._q("last")
        n: int | None = None
        if n_text not in (None, ""):
            try:
                n = int(n_text)
                if n < 0:
                    raise ValueError
            except ValueError:
                raise RegistryError(
                    "PAGINATION_NUMBER_INVALID",
                    "invalid number of results requested",
                    {"n": n_text},
                    status=400,
                )
        return n, last

    def _catalog_get(self, params: dict[str, str]) -> None:
        n, last = self._page_args()
        page, more = paginate(self.registry.storage.repositories(), n, last)
        headers = {"Link": next_link("/v2/_catalog", n or 0, page[-1])} if more and page else {}
        self._send_json(200, {"repositories": page}, headers)

    def _tags_get(self, params: dict[str, str]) -> None:
        name = params["name"]
        st = self.registry.storage
        if not st.repo_exists(name):
            raise RegistryError(
                "NAME_UNKNOWN", "repository name not known to registry", {"name": name}
            )
        n, last = self._page_args()
        page, more = paginate(st.tags(name), n, last)
        headers = (
            {"Link": next_link(f"/v2/{name}/tags/list", n or 0, page[-1])} if more and page else {}
        )
        self._send_json(200, {"name": name, "tags": page}, headers)

    # -- blobs -------------------------------------------------------------------------
    def _blob_get(self, params: dict[str, str]) -> None:
        d = _parse_digest(params["digest"])
        f = self.registry.storage.open_blob(params["name"], d)
        with f:
            total = os.fstat(f.fileno()).st_size
            headers = {
                "Docker-Content-Digest": str(d),
                "ETag": f'"{d}"',
                "Accept-Ranges": "bytes",
                "Cache-Control": "max-age=31536000",
                "Last-Modified": formatdate(os.fstat(f.fileno()).st_mtime, usegmt=True),
            }
            start, end, status = 0, total - 1, 200
            rng = self.headers.get("Range")
            if rng and total > 0:
                parsed = parse_byte_range(rng, total)
                if parsed is None:
                    raise RegistryError(
                        "SIZE_INVALID",
                        f"range {rng!r} not satisfiable for {total} bytes",
                        status=416,
                        headers={"Content-Range": f"bytes */{total}"},
                    )
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{total}"
            count = end - start + 1 if total else 0
            headers["Content-Length"] = str(count)
            self._send(status, headers, content_type="application/octet-stream")
            if self.command == "HEAD" or count == 0:
                return
            self.wfile.flush()
            self.connection.sendfile(f, start, count)

    _blob_head = _blob_get

    def _blob_delete(self, params: dict[str, str]) -> None:
        if not self.registry.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletes are disabled on this registry", status=405)
        d = _parse_digest(params["digest"])
        self.registry.storage.unlink_blob(params["name"], d)
        self._send(202, {"Docker-Content-Digest": str(d)})

    def _upload_headers(self, name: str, uid: str, offset: int) -> dict[str, str]:
        return {
            "Location": self._url(f"/v2/{name}/blobs/uploads/{uid}"),
            "Range": upload_range(offset),
            "Docker-Upload-UUID": uid,
        }

    def _blob_created(self, name: str, d: Digest) -> None:
        self._send(
            201, {"Location": self._url(f"/v2/{name}/blobs/{d}"), "Docker-Content-Digest": str(d)}
        )

    def _uploads_post(self, params: dict[str, str]) -> None:
        name = params["name"]
        st = self.registry.storage
        mount = self._q("mount")
        if mount:
            d = _parse_digest(mount)
            source = self._q("from")
            if source:
                if valid_name(source) and st.blob_linked(source, d) and self._may_pull(source):
                    st.link_blob(name, d)
                    self._blob_created(name, d)
                    return
            elif st.blob_exists(d):
                # Anonymous mount (spec 1.1): the digest alone names content the registry has.
                st.link_blob(name, d)
                self._blob_created(name, d)
                return
            # Not mountable: fall through to an ordinary upload session (202).
        digest_text = self._q("digest")
        if digest_text:
            d = _parse_digest(digest_text)
            uid = st.start_upload(name)
            try:
                st.append_upload(name, uid, self._body_chunks())
                st.finish_upload(name, uid, d)
            except BaseException:
                st._drop_upload(uid)
                raise
            self._blob_created(name, d)
            return
        uid = st.start_upload(name)
        if self._has_body():
            st.append_upload(name, uid, self._body_chunks())
        self._send(202, self._upload_headers(name, uid, st.upload_offset(name, uid)))

    def _may_pull(self, source: str) -> bool:
        """Whether the request's credentials may read `source` (for cross-repo mount)."""
        reg = self.registry
        if reg.issuer is None:
            return True
        token = self.headers.get("Authorization", "").partition(" ")[2].strip()
        try:
            claims = reg.issuer.verify(token)
        except SkiffError:
            return False
        return auth.token_grants(claims, auth.Scope("repository", source, frozenset({"pull"})))

    def _upload_get(self, params: dict[str, str]) -> None:
        name, uid = params["name"], params["uuid"]
        offset = self.registry.storage.upload_offset(name, uid)
        self._send(204, self._upload_headers(name, uid, offset))

    _upload_head = _upload_get

    def _upload_patch(self, params: dict[str, str]) -> None:
        name, uid = params["name"], params["uuid"]
        st = self.registry.storage
        start: int | None = None
        cr = self.headers.get("Content-Range")
        if cr:
            try:
                start, end = parse_content_range(cr)
            except ValueError as e:
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID",
                    str(e),
                    status=416,
                    headers={"Range": upload_range(st.upload_offset(name, uid))},
                )
            length = self.headers.get("Content-Length")
            if length is not None and int(length) != end - start + 1:
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID",
                    f"Content-Range {cr} does not match Content-Length {length}",
                    status=416,
                    headers={"Range": upload_range(st.upload_offset(name, uid))},
                )
        offset = st.append_upload(name, uid, self._body_chunks(), start)
        self._send(202, self._upload_headers(name, uid, offset))

    def _upload_put(self, params: dict[str, str]) -> None:
        name, uid = params["name"], params["uuid"]
        st = self.registry.storage
        digest_text = self._q("digest")
        if not digest_text:
            raise RegistryError("DIGEST_INVALID", "digest query parameter is required")
        d = _parse_digest(digest_text)
        if self._has_body():
            start: int | None = None
            cr = self.headers.get("Content-Range")
            if cr:
                try:
                    start, _ = parse_content_range(cr)
                except ValueError as e:
                    raise RegistryError("BLOB_UPLOAD_INVALID", str(e), status=416)
            st.append_upload(name, uid, self._body_chunks(), start)
        st.finish_upload(name, uid, d)
        self._blob_created(name, d)

    def _upload_delete(self, params: dict[str, str]) -> None:
        self.registry.storage.cancel_upload(params["name"], params["uuid"])
        self._send(204)

    # -- manifests ---------------------------------------------------------------------
    def _manifest_get(self, params: dict[str, str]) -> None:
        name, reference = params["name"], params["reference"]
        self._check_reference(reference)
        info, data = self.registry.storage.get_manifest(name, reference)
        self._send(
            200,
            {"Docker-Content-Digest": str(info.digest), "ETag": f'"{info.digest}"'},
            data,
            info.media_type,
        )

    _manifest_head = _manifest_get

    @staticmethod
    def _check_reference(reference: str) -> None:
        if ":" in reference:
            _parse_digest(reference)
        elif not valid_tag(reference):
            raise RegistryError("MANIFEST_INVALID", "invalid tag", {"tag": reference})

    def _manifest_put(self, params: dict[str, str]) -> None:
        name, reference = params["name"], params["reference"]
        reg = self.registry
        st = reg.storage
        self._check_reference(reference)
        data = self._read_body(reg.config.max_manifest_size)
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise RegistryError("MANIFEST_INVALID", "manifest invalid", f"not JSON: {e}")
        if not isinstance(doc, dict):
            raise RegistryError("MANIFEST_INVALID", "manifest invalid", "not a JSON object")
        content_type = self.headers.get("Content-Type", "")
        media_type = manifest_media_type(doc, content_type)
        declared = doc.get("mediaType")
        ct = content_type.split(";")[0].strip()
        if isinstance(declared, str) and ct and ct != declared and ct in ALL_MANIFEST_TYPES:
            raise RegistryError(
                "MANIFEST_INVALID",
                "manifest invalid",
                f"mediaType {declared} does not match Content-Type {ct}",
            )
        if media_type not in ALL_MANIFEST_TYPES:
            raise RegistryError(
                "MANIFEST_INVALID",
                "manifest invalid",
                f"unsupported manifest media type {media_type!r}",
            )
        if media_type != OCI_ARTIFACT_MANIFEST and doc.get("schemaVersion") != 2:
            raise RegistryError("MANIFEST_INVALID", "manifest invalid", "schemaVersion must be 2")

        if ":" in reference:
            want = _parse_digest(reference)
            digest = Digest(want.algorithm, hashlib.new(want.algorithm, data).hexdigest())
            if digest != want:
                raise RegistryError(
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                    {"expected": str(want), "actual": str(digest)},
                )
            tag = None
        else:
            digest = Digest.of_bytes(data)
            tag = reference
        referrer = None
        headers = {
            "Location": self._url(f"/v2/{name}/manifests/{digest}"),
            "Docker-Content-Digest": str(digest),
        }
        subject = doc.get("subject")
        if isinstance(subject, dict):
            subject_digest = _parse_digest(str(subject.get("digest")))
            descriptor: dict[str, Any] = {
                "mediaType": media_type,
                "digest": str(digest),
                "size": len(data),
            }
            artifact_type = doc.get("artifactType")
            if not artifact_type and isinstance(doc.get("config"), dict):
                artifact_type = doc["config"].get("mediaType")
            if artifact_type:
                descriptor["artifactType"] = artifact_type
            if isinstance(doc.get("annotations"), dict) and doc["annotations"]:
                descriptor["annotations"] = doc["annotations"]
            referrer = (subject_digest, descriptor)
            headers["OCI-Subject"] = str(subject_digest)
        # Validation and the write share gc's lock, so gc cannot sweep a blob in between.
        with st.locked():
            self._validate_manifest(name, media_type, doc)
            st.put_manifest(name, data, digest, media_type, tag, referrer)
        self._send(201, headers)

    def _validate_manifest(self, name: str, media_type: str, doc: dict[str, Any]) -> None:
        st = self.registry.storage

        def descriptor(d: Any, where: str) -> Digest:
            if (
                not isinstance(d, dict)
                or not isinstance(d.get("digest"), str)
                or not isinstance(d.get("size"), int)
            ):
                raise RegistryError(
                    "MANIFEST_INVALID", "manifest invalid", f"{where}: not a descriptor"
                )
            if not isinstance(d.get("mediaType"), str):
                raise RegistryError(
                    "MANIFEST_INVALID", "manifest invalid", f"{where}: mediaType missing"
                )
            try:
                return Digest.parse(d["digest"])
            except SkiffError as e:
                raise RegistryError("MANIFEST_INVALID", "manifest invalid", f"{where}: {e}")

        if media_type in mt.INDEXES:
            children = doc.get("manifests")
            if not isinstance(children, list):
                raise RegistryError(
                    "MANIFEST_INVALID", "manifest invalid", "manifests must be a list"
                )
            for i, child in enumerate(children):
                d = descriptor(child, f"manifests[{i}]")
                if not st.manifest_known(name, d):
                    raise RegistryError(
                        "MANIFEST_UNKNOWN", "manifest unknown", {"digest": str(d)}, status=400
                    )
        else:
            blobs: list[tuple[Any, str]] = []
            if media_type == OCI_ARTIFACT_MANIFEST:
                for i, b in enumerate(doc.get("blobs") or []):
                    blobs.append((b, f"blobs[{i}]"))
            else:
                if "config" not in doc:
                    raise RegistryError(
                        "MANIFEST_INVALID", "manifest invalid", "config is required"
                    )
                blobs.append((doc["config"], "config"))
                layers = doc.get("layers")
                if layers is None:
                    layers = []
                if not isinstance(layers, list):
                    raise RegistryError(
                        "MANIFEST_INVALID", "manifest invalid", "layers must be a list"
                    )
                for i, b in enumerate(layers):
                    blobs.append((b, f"layers[{i}]"))
            for b, where in blobs:
                d = descriptor(b, where)
                if b.get("urls") and (
                    "nondistributable" in b["mediaType"] or "foreign" in b["mediaType"]
                ):
                    continue  # Foreign layers live elsewhere by definition.
                if not st.blob_linked(name, d):
                    raise RegistryError(
                        "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", {"digest": str(d)}
                    )
        if "subject" in doc and doc["subject"] is not None:
            descriptor(doc["subject"], "subject")

    def _manifest_delete(self, params: dict[str, str]) -> None:
        if not self.registry.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletes are disabled on this registry", status=405)
        self._check_reference(params["reference"])
        self.registry.storage.delete_manifest(params["name"], params["reference"])
        self._send(202)

    # -- referrers ---------------------------------------------------------------------
    def _referrers_get(self, params: dict[str, str]) -> None:
        d = _parse_digest(params["digest"])
        found = self.registry.storage.referrers(params["name"], d)
        headers: dict[str, str] = {}
        wanted = self._query.get("artifactType")
        if wanted:
            found = [r for r in found if r.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        self._send_json(
            200,
            {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found},
            headers,
            content_type=mt.OCI_INDEX,
        )


class RegistryServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()


def make_server(config: Config, host: str, port: int, *, quiet: bool = False) -> RegistryServer:
    registry = Registry(config)
    handler = type("BoundHandler", (Handler,), {"registry": registry, "quiet": quiet})
    server = RegistryServer((host, port), handler)
    if config.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key or config.tls_cert))
        server.socket = ctx.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    return server


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep:
        raise SystemExit(f"skiff registry: --addr {addr!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skiff registry", description="An OCI distribution registry.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the registry")
    s.add_argument("--addr", default="127.0.0.1:5000", help="host:port to listen on (port 0: any)")
    s.add_argument("--root", required=True, help="storage directory")
    s.add_argument(
        "--config", type=Path, help="JSON config: auth.htpasswd, auth.token, tls, max_manifest_size"
    )
    s.add_argument("--htpasswd", type=Path, help="bcrypt htpasswd file for basic auth")
    s.add_argument(
        "--token-auth",
        action="store_true",
        help="Docker token auth with the built-in /token endpoint",
    )
    s.add_argument("--tls-cert", type=Path)
    s.add_argument("--tls-key", type=Path)
    s.add_argument("--quiet", action="store_true", help="do not log requests")
    g = sub.add_parser("gc", help="remove blobs no manifest refers to")
    g.add_argument("--root", required=True)
    g.add_argument(
        "--grace", type=float, default=3600.0, help="spare blobs younger than this (seconds)"
    )
    g.add_argument(
        "--delete-untagged", action="store_true", help="also remove manifests no tag reaches"
    )
    g.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)

    root = Path(args.root)
    if args.cmd == "gc":
        report = Storage(root).gc(
            grace_seconds=args.grace, delete_untagged=args.delete_untagged, dry_run=args.dry_run
        )
        for m in report.deleted_manifests:
            print(f"manifest eligible for deletion: {m}")
        for b in report.deleted_blobs:
            print(f"blob eligible for deletion: {b}")
        verb = "would free" if args.dry_run else "freed"
        print(
            f"{report.marked} blobs marked, {len(report.deleted_blobs)} blobs deleted, {verb} {report.freed_bytes} bytes"
        )
        return 0

    config = Config.load(root, args.config)
    if args.htpasswd:
        config.htpasswd = args.htpasswd
    if args.token_auth and config.token is None:
        config.token = {}
    if args.tls_cert:
        config.tls_cert = args.tls_cert
        config.tls_key = args.tls_key or args.tls_cert
    host, port = _split_addr(args.addr)
    try:
        server = make_server(config, host, port, quiet=args.quiet)
    except SkiffError as e:
        print(f"skiff registry: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"skiff registry: listen {args.addr}: {e.strerror or e}", file=sys.stderr)
        return 1
    scheme = "https" if config.tls_cert else "http"
    bound_host, bound_port = server.server_address[:2]
    print(f"skiff registry listening on {scheme}://{bound_host!s}:{bound_port}", flush=True)
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


__all__ = ["Config", "Registry", "RegistryServer", "make_server", "main"]

if __name__ == "__main__":
    sys.exit(main())
