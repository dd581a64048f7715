"""The registry client the engine calls: pull, push, login.

`Session` speaks HTTP to one registry (https, or http when the registry is insecure: loopback
by default, as in Docker, or listed in `insecure`) and handles the auth dance: a 401 with
`WWW-Authenticate: Basic` is answered with the credentials, one with `Bearer realm,service,scope`
by fetching a token from the realm (basic credentials, or the identity token as an OAuth2
refresh token) and retrying. Tokens are cached per scope until they expire.

`pull` resolves a reference to a manifest (through an index, picking the platform), then
downloads config and layers concurrently into the content store. Each blob goes through a
content-store writer under a stable ingest ref, so an interrupted download resumes with
`Range: bytes=<offset>-`; the store verifies size and digest at commit, so nothing partial is
ever visible. Progress is reported as Docker's JSON messages through a callback.

`push` uploads what a manifest (or index) references: HEAD skips blobs the registry has, a
cross-repository mount is tried for blobs known to live in another repository of the same
registry, otherwise POST + PATCH (streamed or in chunks) + PUT ?digest=; the manifests last.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from skiff.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SkiffError,
    Unavailable,
)
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import Descriptor, Index, Platform, select_platform
from skiff.types.reference import Reference, parse_reference

from .credentials import AuthConfig, lookup
from .protocol import MANIFEST_ACCEPT, OCI_ARTIFACT_MANIFEST, parse_challenges, parse_error_body

Progress = Callable[[dict[str, Any]], None]
USER_AGENT = "skiff/0.1 (distribution client)"
DOCKER_HUB_REGISTRY = "registry-1.docker.io"
CHUNK = 1 << 20
MAX_MANIFEST = 4 * 1024 * 1024


def _noop(_: dict[str, Any]) -> None:
    pass


# -- endpoints ------------------------------------------------------------------------------
def registry_host(domain: str) -> str:
    """The host to talk to for a reference domain (`docker.io` → `registry-1.docker.io`)."""
    return DOCKER_HUB_REGISTRY if domain in ("docker.io", "index.docker.io") else domain


def is_insecure(host: str, insecure: Iterable[str] = ()) -> bool:
    """Docker's rule: listed by name, or resolving into a listed CIDR or 127.0.0.0/8."""
    entries = set(insecure)
    if host in entries:
        return True
    hostname = urllib.parse.urlsplit(f"//{host}").hostname or host
    nets = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    for e in entries:
        try:
            nets.append(ipaddress.ip_network(e, strict=False))
        except ValueError:
            continue
    addrs: list[str] = []
    try:
        addrs = [str(ipaddress.ip_address(hostname))]
    except ValueError:
        try:
            addrs = [str(ai[4][0]) for ai in socket.getaddrinfo(hostname, None)]
        except OSError:
            return False
    for a in addrs:
        ip = ipaddress.ip_address(a)
        if any(ip.version == n.version and ip in n for n in nets):
            return True
    return False


# -- errors ---------------------------------------------------------------------------------
def _error_from(resp_status: int, body: bytes, context: str) -> SkiffError:
    errs = parse_error_body(body)
    if errs:
        detail = "; ".join(
            f"{str(e.get('code', '')).lower()}: {e.get('message', '')}" for e in errs
        )
        codes = {str(e.get("code")) for e in errs}
    else:
        detail = body.decode(errors="replace").strip()[:200] or http.client.responses.get(
            resp_status, ""
        )
        codes = set()
    msg = f"{context}: {detail}"
    if resp_status == 404 or codes & {"MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"}:
        return NotFound(msg)
    if resp_status in (401, 403):
        return InvalidArgument(
            msg
            if "unauthorized" in msg or "denied" in msg
            else f"{context}: unauthorized: {detail}"
        )
    if resp_status == 429 or resp_status >= 500:
        return Unavailable(msg)
    return InvalidArgument(msg)


# -- HTTP session ---------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    url: str

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""

    def read(self) -> bytes:
        return self.raw.read()

    def close(self) -> None:
        self.raw.close()


Body = bytes | Callable[[], tuple[BinaryIO, int, int]] | None


class Session:
    """HTTP/1.1 to one registry host, with auth. Thread-safe (a connection per thread)."""

    def __init__(
        self,
        host: str,
        *,
        auth: AuthConfig | None = None,
        insecure: bool = False,
        scheme: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.auth = auth
        self.insecure = insecure
        self.timeout = timeout
        self._scheme = scheme
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}
        self._basic = False  # the registry asked for basic auth
        self._bearer: dict[str, str] | None = None  # realm/service of the registry's challenge

    # connections
    def scheme(self) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return self._scheme

    def _probe_scheme(self) -> str:
        if not self.insecure:
            return "https"
        # Docker's order for insecure registries: https without verification, then http.
        try:
            conn = self._new_conn("https", self.host)
            conn.request("GET", "/v2/", headers={"User-Agent": USER_AGENT})
            conn.getresponse().read()
            conn.close()
            return "https"
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return "http"

    def _new_conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            ctx = ssl.create_default_context()
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conns: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "conns", {}
        )
        c = conns.get((scheme, netloc))
        if c is None:
            c = conns[(scheme, netloc)] = self._new_conn(scheme, netloc)
        return c

    def _drop_conn(self, scheme: str, netloc: str) -> None:
        conns = self._local.__dict__.get("conns", {})
        c = conns.pop((scheme, netloc), None)
        if c is not None:
            c.close()

    def url(self, path: str) -> str:
        return f"{self.scheme()}://{self.host}{path}"

    # auth
    def _auth_header(self, scopes: frozenset[str]) -> str | None:
        if self._bearer is not None:
            with self._lock:
                cached = self._tokens.get(scopes)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            return None
        if self._basic and self.auth and self.auth.username:
            import base64

            cred = base64.b64encode(f"{self.auth.username}:{self.auth.password}".encode()).decode()
            return f"Basic {cred}"
        return None

    def _handle_challenge(self, header: str, scopes: frozenset[str], context: str) -> None:
        challenges = parse_challenges(header)
        for ch in challenges:
            if ch.scheme == "bearer":
                self._bearer = {
                    "realm": ch.params.get("realm", ""),
                    "service": ch.params.get("service", ""),
                }
                want = set(scopes)
                if ch.params.get("scope"):
                    want.update(ch.params["scope"].split())
                self._fetch_token(scopes, frozenset(want), context)
                return
        for ch in challenges:
            if ch.scheme == "basic":
                if not self.auth or not self.auth.username:
                    raise InvalidArgument(f"{context}: unauthorized: authentication required")
                self._basic = True
                return
        raise InvalidArgument(f"{context}: unauthorized: unsupported challenge {header!r}")

    def _fetch_token(self, key: frozenset[str], scopes: frozenset[str], context: str) -> str:
        assert self._bearer is not None
        realm = self._bearer["realm"]
        if not realm:
            raise InvalidArgument(f"{context}: bearer challenge without realm")
        service = self._bearer["service"]
        split = urllib.parse.urlsplit(realm)
        headers = {"User-Agent": USER_AGENT}
        a = self.auth
        if a is not None and a.registrytoken:
            token, expires = a.registrytoken, 60.0
        else:
            if a is not None and a.identitytoken:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": a.identitytoken,
                    "service": service,
                    "client_id": "skiff",
                    "scope": " ".join(sorted(scopes)),
                }
                method, path = "POST", split.path or "/"
                body: bytes | None = urllib.parse.urlencode(form).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                q = urllib.parse.parse_qsl(split.query)
                if service:
                    q.append(("service", service))
                q.extend(("scope", s) for s in sorted(scopes))
                method, path, body = (
                    "GET",
                    (split.path or "/") + "?" + urllib.parse.urlencode(q),
                    None,
                )
                if a is not None and a.username:
                    import base64

                    cred = base64.b64encode(f"{a.username}:{a.password}".encode()).decode()
                    headers["Authorization"] = f"Basic {cred}"
            conn = self._new_conn(split.scheme or "https", split.netloc)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise Unavailable(f"{context}: token server {realm}: {e}")
            finally:
                conn.close()
            if resp.status != 200:
                err = _error_from(resp.status, data, f"{context}: token server {realm}")
                if resp.status in (401, 403):
                    raise InvalidArgument(
                        f"{context}: unauthorized: incorrect username or password"
                    )
                raise err
            try:
                doc = json.loads(data)
                token = doc.get("token") or doc.get("access_token")
                expires = float(doc.get("expires_in") or 60)
            except (ValueError, AttributeError):
                raise InvalidArgument(f"{context}: token server {realm}: response is not JSON")
            if not token:
                raise InvalidArgument(f"{context}: token server {realm}: no token in response")
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(expires - 10, 5))
        return str(token)

    # requests
    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        context: str = "",
        allow: tuple[int, ...] = (),
    ) -> Response:
        """Send, answering one auth challenge; returns the response unread.

        `path` is a registry path or an absolute URL (upload locations, redirects). Statuses
        >= 400 not in `allow` raise, translated into skiff errors with `context`.
        """
        scope_key = frozenset(scopes)
        context = context or f"{method} {self.host}{path}"
        for attempt in range(3):
            resp = self._send(method, path, scope_key, headers or {}, body, context)
            if resp.status == 401 and attempt == 0:
                data = resp.read()
                challenge = resp.header("WWW-Authenticate")
                if not challenge:
                    raise _error_from(401, data, context)
                self._handle_challenge(challenge, scope_key, context)
                continue
            if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                resp.read()
                path = urllib.parse.urljoin(resp.url, resp.header("Location"))
                continue
            if resp.status >= 400 and resp.status not in allow:
                data = b"" if method == "HEAD" else resp.read()
                raise _error_from(resp.status, data, context)
            return resp
        raise InvalidArgument(f"{context}: unauthorized: authentication required")

    def _send(
        self,
        method: str,
        path: str,
        scopes: frozenset[str],
        headers: Mapping[str, str],
        body: Body,
        context: str,
    ) -> Response:
        if path.startswith(("http://", "https://")):
            split = urllib.parse.urlsplit(path)
            scheme, netloc = split.scheme, split.netloc
            target = urllib.parse.urlunsplit(("", "", split.path, split.query, ""))
        else:
            scheme, netloc, target = self.scheme(), self.host, path
        url = f"{scheme}://{netloc}{target}"
        h = {"User-Agent": USER_AGENT, **headers}
        if netloc == self.host:
            auth = self._auth_header(scopes)
            if auth is None and self._bearer is not None:
                auth = f"Bearer {self._fetch_token(scopes, scopes, context)}"
            if auth:
                h["Authorization"] = auth
        for attempt in range(2):
            conn = self._conn(scheme, netloc)
            try:
                if body is None or isinstance(body, bytes):
                    data = (
                        body
                        if body is not None
                        else (b"" if method in ("PUT", "POST", "PATCH") else None)
                    )
                    conn.request(method, target, body=data, headers=h)
                else:
                    f, offset, count = body()
                    try:
                        conn.putrequest(method, target, skip_accept_encoding=True)
                        for k, v in h.items():
                            conn.putheader(k, v)
                        conn.putheader("Content-Length", str(count))
                        conn.endheaders()
                        assert conn.sock is not None
                        sent = conn.sock.sendfile(f, offset, count) if count else 0
                        if sent != count:
                            raise ConnectionError(f"sent {sent} of {count} bytes")
                    finally:
                        f.close()
                raw = conn.getresponse()
                if raw.will_close:
                    self._local.__dict__.get("conns", {}).pop((scheme, netloc), None)
                return Response(raw.status, raw.headers, raw, url)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A kept-alive connection the server closed: one fresh try.
                self._drop_conn(scheme, netloc)
                if attempt == 1:
                    raise Unavailable(f"{context}: {e}")
            except (OSError, http.client.HTTPException) as e:
                self._drop_conn(scheme, netloc)
                raise Unavailable(f"{context}: {e}")
        raise Unavailable(f"{context}: connection failed")


# -- progress ------------------------------------------------------------------------------
def human_size(n: float) -> str:
    """Docker's units.HumanSize: four significant digits, decimal units."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    """Docker's jsonmessage progress string: `[=====>      ]  1.2MB/3.4MB`."""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    return f"[{'=' * pct}>{' ' * (50 - pct)}] {human_size(current):>8}/{human_size(total)}"


class _Progress:
    """A thread-safe wrapper around the callback."""

    def __init__(self, cb: Progress | None) -> None:
        self._cb = cb or _noop
        self._lock = threading.Lock()

    def __call__(
        self,
        status: str,
        id: str | None = None,
        *,
        current: int | None = None,
        total: int | None = None,
        **extra: Any,
    ) -> None:
        msg: dict[str, Any] = {"status": status}
        if current is not None:
            detail = {"current": current}
            if total:
                detail["total"] = total
            msg["progressDetail"] = detail
            msg["progress"] = progress_bar(current, total or 0)
        elif id is not None:
            msg["progressDetail"] = {}
        if id is not None:
            msg["id"] = id
        msg.update(extra)
        with self._lock:
            self._cb(msg)


# -- pull -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullResult:
    reference: Reference
    manifest_digest: Digest
    media_type: str
    config_digest: Digest
    layers: tuple[Descriptor, ...]
    index_digest: Digest | None = None
    downloaded: bool = False


def _verify_manifest(data: bytes, want: Digest | None, header: str, context: str) -> Digest:
    if want is not None:
        got = Digest.of_bytes(data, want.algorithm)
        if got != want:
            raise InvalidArgument(
                f"{context}: manifest digest mismatch: expected {want}, got {got}"
            )
        return got
    if header:
        try:
            hd = Digest.parse(header)
        except InvalidArgument:
            hd = None
        if hd is not None:
            got = Digest.of_bytes(data, hd.algorithm)
            if got != hd:
                raise InvalidArgument(
                    f"{context}: manifest digest mismatch: registry says {hd}, content is {got}"
                )
            return Digest.of_bytes(data) if hd.algorithm != "sha256" else got
    return Digest.of_bytes(data)


class _Puller:
    def __init__(
        self,
        session: Session,
        ref: Reference,
        content: Any,
        progress: _Progress,
        platform: Platform,
        concurrency: int,
        retries: int,
    ) -> None:
        self.s = session
        self.ref = ref
        self.repo = ref.path
        self.content = content
        self.progress = progress
        self.platform = platform
        self.concurrency = concurrency
        self.retries = retries
        self.scopes = (f"repository:{self.repo}:pull",)
        self.downloaded = False

    def fetch_manifest(self, reference: str, want: Digest | None) -> tuple[bytes, str, Digest]:
        ctx = f"pull {self.ref.familiar_name()}"
        resp = self.s.request(
            "GET",
            f"/v2/{self.repo}/manifests/{reference}",
            scopes=self.scopes,
            headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
            context=ctx,
            allow=(404,),
        )
        if resp.status == 404:
            resp.read()
            raise NotFound(
                f"manifest for {self.ref.familiar_name()} not found: manifest unknown: manifest unknown"
            )
        length = int(resp.header("Content-Length") or 0)
        if length > MAX_MANIFEST:
            resp.close()
            raise InvalidArgument(f"{ctx}: manifest of {length} bytes exceeds {MAX_MANIFEST}")
        data = resp.read()
        digest = _verify_manifest(data, want, resp.header("Docker-Content-Digest"), ctx)
        media_type = resp.header("Content-Type").split(";")[0].strip()
        try:
            doc = json.loads(data)
        except ValueError:
            raise InvalidArgument(f"{ctx}: manifest {digest} is not JSON")
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str) and doc["mediaType"]:
            media_type = doc["mediaType"]
        elif media_type not in MANIFEST_ACCEPT and isinstance(doc, dict):
            media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
        return data, media_type, digest

    def run(self) -> PullResult:
        ref = self.ref
        reference = str(ref.digest) if ref.digest else (ref.tag or "latest")
        data, media_type, digest = self.fetch_manifest(reference, ref.digest)
        self.progress(f"Pulling from {ref.path}", ref.tag or str(ref.digest))
        index_digest: Digest | None = None
        index_data: bytes | None = None
        if media_type in mt.INDEXES:
            index_digest, index_data = digest, data
            child = select_platform(Index.parse(data), self.platform)
            data, media_type, digest = self.fetch_manifest(str(child.digest), child.digest)
        if media_type not in mt.MANIFESTS:
            raise InvalidArgument(
                f"pull {ref.familiar_name()}: unsupported manifest media type {media_type!r}"
            )
        doc = json.loads(data)
        ctx = f"pull {ref.familiar_name()}: manifest {digest}"
        config = Descriptor.from_json(doc.get("config"), f"{ctx}: config")
        layers = tuple(
            Descriptor.from_json(d, f"{ctx}: layers[{i}]")
            for i, d in enumerate(doc.get("layers") or [])
        )

        for layer in layers:
            if self.content.has(layer.digest):
                self.progress("Already exists", layer.digest.short())
            else:
                self.progress("Pulling fs layer", layer.digest.short())
        self.fetch_blob(config, quiet=True)
        todo = [layer for layer in layers if not self.content.has(layer.digest)]
        if todo:
            with ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="pull"
            ) as pool:
                for i, layer in enumerate(todo):
                    if i >= self.concurrency:
                        self.progress("Waiting", layer.digest.short())
                futures = [pool.submit(self.fetch_blob, layer) for layer in todo]
                errors: list[BaseException] = []
                for f in futures:
                    try:
                        f.result()
                    except BaseException as e:
                        errors.append(e)
                if errors:
                    raise errors[0]
        # Manifests last: once they are in the store, everything they name is there too.
        self._ingest(data, digest)
        if index_data is not None and index_digest is not None:
            self._ingest(index_data, index_digest)
        return PullResult(
            ref, digest, media_type, config.digest, layers, index_digest, self.downloaded
        )

    def _ingest(self, data: bytes, digest: Digest) -> None:
        if not self.content.has(digest):
            self.content.ingest(data, digest)
            self.downloaded = True

    def fetch_blob(self, desc: Descriptor, *, quiet: bool = False) -> None:
        """Download one blob into the content store, resuming into the same ingest on failure."""
        d, total = desc.digest, desc.size
        short = d.short()
        ctx = f"pull {self.ref.familiar_name()}: blob {d}"
        if self.content.has(d):
            return
        first = self._open_writer(d, total, ctx)
        if first is None:
            return
        box = [first]
        committed = False
        try:
            failures = 0
            while box[0].offset < total or total == 0:
                try:
                    self._download(box, desc, short, quiet, ctx)
                    break
                except (Unavailable, OSError, http.client.HTTPException) as e:
                    failures += 1
                    if failures > self.retries:
                        raise Unavailable(
                            f"{ctx}: download failed after {failures} attempts"
                            f" at byte {box[0].offset} of {total}: {e}"
                        )
                    time.sleep(min(0.2 * 2**failures, 2.0))
            if not quiet:
                self.progress("Verifying Checksum", short)
            box[0].commit(total, d)
            committed = True
            self.downloaded = True
            if not quiet:
                self.progress("Download complete", short)
        except InvalidArgument as e:
            committed = True  # commit aborted the ingest itself
            raise InvalidArgument(f"{ctx}: {e}")
        finally:
            if not committed:
                box[0].close()  # the partial ingest stays, invisible, for a later resume

    def _open_writer(self, d: Digest, total: int, ctx: str) -> Any:
        deadline = time.monotonic() + 600
        while True:
            try:
                return self.content.writer(f"pull-{d}", d, total)
            except AlreadyExists:
                return None
            except Unavailable:
                # Another pull downloads the same blob right now: wait for it.
                if self.content.has(d):
                    return None
                if time.monotonic() > deadline:
                    raise Unavailable(f"{ctx}: another download of this blob does not finish")
                time.sleep(0.1)

    def _download(
        self, box: list[Any], desc: Descriptor, short: str, quiet: bool, ctx: str
    ) -> None:
        total = desc.size
        writer = box[0]
        offset = writer.offset
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.s.request(
            "GET",
            f"/v2/{self.repo}/blobs/{desc.digest}",
            scopes=self.scopes,
            headers=headers,
            context=ctx,
            allow=(416,),
        )
        try:
            if resp.status == 416 or (offset and resp.status == 200):
                # The registry cannot resume: start over in a fresh ingest.
                writer.abort()
                writer = box[0] = self.content.writer(f"pull-{desc.digest}", desc.digest, total)
                if resp.status == 416:
                    raise Unavailable(f"{ctx}: registry refused range from byte {offset}")
                offset = 0
            elif resp.status == 206:
                cr = resp.header("Content-Range")
                if not cr.startswith(f"bytes {offset}-"):
                    raise Unavailable(f"{ctx}: registry answered range {cr!r} for bytes={offset}-")
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            last = 0.0
            while True:
                want = min(CHUNK, total - writer.offset) if total else CHUNK
                if want <= 0:
                    break
                n = resp.raw.readinto(view[:want])
                if not n:
                    break
                writer.write(view[:n])
                now = time.monotonic()
                if not quiet and now - last > 0.1:
                    last = now
                    self.progress("Downloading", short, current=writer.offset, total=total)
            if not quiet:
                self.progress("Downloading", short, current=writer.offset, total=total)
            if total and writer.offset < total:
                raise Unavailable(f"{ctx}: connection closed at byte {writer.offset} of {total}")
        finally:
            resp.close()
            # A response cut short leaves the connection unusable.
            if writer.offset < total:
                self.s._drop_conn(*urllib.parse.urlsplit(resp.url)[:2])


def _as_reference(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else parse_reference(str(ref))


def _session_for(
    host: str, auth: AuthConfig | None, insecure: Iterable[str], scheme: str | None = None
) -> Session:
    if auth is None or auth.empty():
        auth = lookup(host) if host != DOCKER_HUB_REGISTRY else lookup("docker.io")
    return Session(host, auth=auth, insecure=is_insecure(host, insecure), scheme=scheme)


def pull(
    ref: Reference | str,
    content: Any,
    *,
    auth: AuthConfig | None = None,
    progress: Progress | None = None,
    platform: Platform | str = "linux/amd64",
    insecure: Iterable[str] = (),
    mirrors: Iterable[str] = (),
    concurrency: int = 3,
    retries: int = 5,
    emit_summary: bool = True,
) -> PullResult:
    """Pull `ref` into `content` (a skiff.content.store.ContentStore); see the module docstring."""
    r = _as_reference(ref)
    plat = platform if isinstance(platform, Platform) else Platform.parse(platform)
    prog = _Progress(progress)
    insecure = set(insecure)
    sessions: list[Session] = []
    if r.domain == "docker.io":
        for m in mirrors:
            split = urllib.parse.urlsplit(m if "://" in m else f"https://{m}")
            sessions.append(
                Session(
                    split.netloc,
                    auth=None,
                    insecure=is_insecure(split.netloc, insecure) or split.scheme == "http",
                    scheme=split.scheme or "https",
                )
            )
    sessions.append(_session_for(registry_host(r.domain), auth, insecure))
    last_error: SkiffError | None = None
    for i, s in enumerate(sessions):
        try:
            result = _Puller(s, r, content, prog, plat, concurrency, retries).run()
            break
        except (Unavailable, NotFound, InvalidArgument) as e:
            last_error = e
            if i == len(sessions) - 1:
                raise
    else:  # pragma: no cover - the loop either breaks or raises
        raise last_error or Unavailable(f"pull {r}: no endpoint")
    if emit_summary:
        prog(f"Digest: {result.index_digest or result.manifest_digest}")
        word = "Downloaded newer image for" if result.downloaded else "Image is up to date for"
        prog(f"Status: {word} {r.familiar_name()}")
    return result


# -- push -----------------------------------------------------------------------------------
class _Pusher:
    def __init__(
        self,
        session: Session,
        ref: Reference,
        content: Any,
        progress: _Progress,
        mount_from: Mapping[str, Iterable[str]],
        chunk_size: int | None,
        concurrency: int,
    ) -> None:
        self.s = session
        self.ref = ref
        self.repo = ref.path
        self.content = content
        self.progress = progress
        self.mount_from = mount_from
        self.chunk_size = chunk_size
        self.concurrency = concurrency
        self.scopes = (f"repository:{self.repo}:pull,push",)
        self._done: set[Digest] = set()
        self._lock = threading.Lock()

    def blob_exists(self, d: Digest) -> bool:
        resp = self.s.request(
            "HEAD",
            f"/v2/{self.repo}/blobs/{d}",
            scopes=self.scopes,
            allow=(404,),
            context=f"push {self.ref.familiar_name()}: blob {d}",
        )
        resp.read()
        return resp.status == 200

    def push_blob(self, desc: Descriptor, *, quiet: bool = False) -> None:
        d = desc.digest
        short = d.short()
        ctx = f"push {self.ref.familiar_name()}: blob {d}"
        with self._lock:
            if d in self._done:
                return
        if self.blob_exists(d):
            if not quiet:
                self.progress("Layer already exists", short)
            self._mark(d)
            return
        location = ""
        for source in self.mount_from.get(str(d), ()):
            if source == self.repo:
                continue
            q = urllib.parse.urlencode({"mount": str(d), "from": source})
            resp = self.s.request(
                "POST",
                f"/v2/{self.repo}/blobs/uploads/?{q}",
                scopes=(*self.scopes, f"repository:{source}:pull"),
                context=ctx,
            )
            resp.read()
            if resp.status == 201:
                if not quiet:
                    self.progress(f"Mounted from {source}", short)
                self._mark(d)
                return
            location = resp.header("Location")  # 202: the registry opened an upload instead
            break
        if not location:
            resp = self.s.request(
                "POST", f"/v2/{self.repo}/blobs/uploads/", scopes=self.scopes, context=ctx
            )
            resp.read()
            if resp.status != 202:
                raise InvalidArgument(f"{ctx}: upload start answered {resp.status}, want 202")
            location = resp.header("Location")
        if not location:
            raise InvalidArgument(f"{ctx}: registry gave no upload location")
        location = urllib.parse.urljoin(self.s.url(f"/v2/{self.repo}/blobs/uploads/"), location)
        total = self.content.size(d)
        path = self.content.path(d) if hasattr(self.content, "path") else None
        step = self.chunk_size or max(total, 1)
        sent = 0
        if not quiet:
            self.progress("Pushing", short, current=0, total=total)
        while sent < total:
            n = min(step, total - sent)
            start = sent

            def body(start: int = start, n: int = n) -> tuple[BinaryIO, int, int]:
                f = open(path, "rb") if path is not None else self.content.open(d)
                return f, start, n

            headers = {"Content-Type": "application/octet-stream"}
            if self.chunk_size:
                headers["Content-Range"] = f"{start}-{start + n - 1}"
            resp = self.s.request(
                "PATCH", location, scopes=self.scopes, headers=headers, body=body, context=ctx
            )
            resp.read()
            if resp.status != 202:
                raise InvalidArgument(f"{ctx}: chunk upload answered {resp.status}, want 202")
            location = urllib.parse.urljoin(location, resp.header("Location") or location)
            sent += n
            if not quiet:
                self.progress("Pushing", short, current=sent, total=total)
        sep = "&" if "?" in location else "?"
        resp = self.s.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(str(d))}",
            scopes=self.scopes,
            headers={"Content-Type": "application/octet-stream"},
            body=b"",
            context=ctx,
        )
        resp.read()
        if resp.status != 201:
            raise InvalidArgument(f"{ctx}: upload commit answered {resp.status}, want 201")
        if not quiet:
            self.progress("Pushed", short)
        self._mark(d)

    def _mark(self, d: Digest) -> None:
        with self._lock:
            self._done.add(d)

    def push_manifest(self, data: bytes, media_type: str, reference: str) -> Digest:
        ctx = f"push {self.ref.familiar_name()}: manifest {reference}"
        resp = self.s.request(
            "PUT",
            f"/v2/{self.repo}/manifests/{reference}",
            scopes=self.scopes,
            headers={"Content-Type": media_type},
            body=data,
            context=ctx,
        )
        resp.read()
        local = Digest.of_bytes(data)
        remote = resp.header("Docker-Content-Digest")
        if remote and remote != str(local) and remote.startswith("sha256:"):
            raise InvalidArgument(f"{ctx}: registry stored digest {remote}, pushed {local}")
        return local

    def push_image(self, digest: Digest, media_type: str, reference: str) -> Digest:
        data = self.content.read(digest)
        doc = json.loads(data)
        ctx = f"push {self.ref.familiar_name()}: manifest {digest}"
        if media_type in mt.INDEXES:
            for i, m in enumerate(doc.get("manifests") or []):
                child = Descriptor.from_json(m, f"{ctx}: manifests[{i}]")
                if not self.content.has(child.digest):
                    raise FailedPrecondition(
                        f"{ctx}: manifests[{i}] {child.digest} is not in the local content store"
                    )
                self.push_image(child.digest, child.media_type, str(child.digest))
            return self.push_manifest(data, media_type, reference)
        blobs: list[Descriptor] = []
        if media_type == OCI_ARTIFACT_MANIFEST:
            blobs = [
                Descriptor.from_json(b, f"{ctx}: blobs[{i}]")
                for i, b in enumerate(doc.get("blobs") or [])
            ]
            config = None
        else:
            config = Descriptor.from_json(doc.get("config"), f"{ctx}: config")
            blobs = [
                Descriptor.from_json(b, f"{ctx}: layers[{i}]")
                for i, b in enumerate(doc.get("layers") or [])
            ]
        blobs = [
            b
            for b in blobs
            if not (b.urls and ("foreign" in b.media_type or "nondistributable" in b.media_type))
        ]
        for b in blobs:
            self.progress("Preparing", b.digest.short())
        for i, b in enumerate(blobs):
            if i >= self.concurrency:
                self.progress("Waiting", b.digest.short())
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push") as pool:
            futures = [pool.submit(self.push_blob, b) for b in blobs]
            if config is not None:
                futures.append(pool.submit(self.push_blob, config, quiet=True))
            errors = []
            for f in futures:
                try:
                    f.result()
                except BaseException as e:
                    errors.append(e)
            if errors:
                raise errors[0]
        return self.push_manifest(data, media_type, reference)


def push(
    ref: Reference | str,
    content: Any,
    manifest_digest: Digest,
    media_type: str,
    *,
    auth: AuthConfig | None = None,
    progress: Progress | None = None,
    insecure: Iterable[str] = (),
    mount_from: Mapping[str, Iterable[str]] | None = None,
    chunk_size: int | None = None,
    concurrency: int = 5,
) -> Digest:
    """Push the manifest (or index) `manifest_digest` and what it names from `content` as `ref`.

    `mount_from` maps a blob digest (str) to repositories of the same registry known to hold
    it, for cross-repository mounts. `chunk_size` switches to chunked PATCHes with
    Content-Range; the default streams each blob in one PATCH.
    """
    r = _as_reference(ref)
    prog = _Progress(progress)
    host = registry_host(r.domain)
    s = _session_for(host, auth, insecure)
    prog(f"The push refers to repository [{r.name}]")
    reference = str(r.digest) if r.digest else (r.tag or "latest")
    pusher = _Pusher(s, r, content, prog, mount_from or {}, chunk_size, concurrency)
    digest = pusher.push_image(manifest_digest, media_type, reference)
    size = content.size(manifest_digest)
    if r.tag:
        prog(f"{r.tag}: digest: {digest} size: {size}")
        prog("", None, aux={"Tag": r.tag, "Digest": str(digest), "Size": size})
    return digest


# -- login ----------------------------------------------------------------------------------
def login(
    server: str, username: str, password: str, *, insecure: Iterable[str] = ()
) -> dict[str, str]:
    """Check credentials against a registry, as `docker login` does. Raises InvalidArgument when
    the registry refuses them."""
    host = server
    if "://" in host:
        host = urllib.parse.urlsplit(host).netloc
    host = host.rstrip("/")
    if host in ("", "docker.io", "index.docker.io"):
        host = DOCKER_HUB_REGISTRY
    s = Session(
        host,
        auth=AuthConfig(username=username, password=password, serveraddress=server),
        insecure=is_insecure(host, insecure),
    )
    ctx = f"login {server}"
    resp = s.request("GET", "/v2/", context=ctx, allow=(401,))
    data = resp.read()
    if resp.status == 401:
        # The challenge was answered once and the registry still refuses.
        raise InvalidArgument(f"{ctx}: unauthorized: incorrect username or password")
    del data  # a registry that lets everyone in accepts any login, as with Docker
    return {"Status": "Login Succeeded", "IdentityToken": ""}


__all__ = [
    "AuthConfig",
    "Descriptor",
    "Platform",
    "PullResult",
    "Session",
    "human_size",
    "is_insecure",
    "login",
    "progress_bar",
    "pull",
    "push",
    "registry_host",
]
