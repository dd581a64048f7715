"""The Engine API client: one connection per request, version negotiation, error mapping.

Lifecycle: `Client(host)` does no I/O. The first versioned request pings `/_ping` and settles
on min(daemon's API-Version, MAX_API_VERSION) as docker does; every later path is prefixed with
`/v<version>`. Daemon errors (status >= 400) become errors of the closed set with docker's text
"Error response from daemon: <message>"; a refused connection becomes `Unavailable` naming the
host and how to start skiffd.
"""

from __future__ import annotations

import _socket
from collections.abc import Iterator

from skiff.client.hosts import Host, TLSOptions, parse_host
from skiff.client.http import Response, encode_request, read_response
from skiff.errors import (
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    SkiffError,
    Unavailable,
)

TYPE_CHECKING = False  # no `typing` at run time: start-up cost
if TYPE_CHECKING:
    import socket
    from typing import Any

MAX_API_VERSION = "1.47"
MIN_API_VERSION = "1.24"
USER_AGENT = "skiff-cli/0.1.0"

_STATUS_ERRORS: dict[int, type[SkiffError]] = {
    400: InvalidArgument,
    401: InvalidArgument,
    403: Conflict,
    404: NotFound,
    409: Conflict,
    501: NotImplementedYet,
    503: Unavailable,
}


class DaemonError:
    """Namespace for turning an HTTP error response into an error of the closed set."""

    @staticmethod
    def from_response(status: int, body: bytes) -> SkiffError:
        message = ""
        try:
            doc = loads(body or b"{}")
            if isinstance(doc, dict):
                message = str(doc.get("message") or "")
        except ValueError:
            message = body.decode("utf-8", "replace").strip()
        if not message:
            message = f"HTTP {status}"
        cls = _STATUS_ERRORS.get(status, Internal)
        err = cls(f"Error response from daemon: {message}")
        err.status = status  # type: ignore[attr-defined]
        return err


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encode as urllib.parse.quote (not imported: it costs start-up time)."""
    allowed = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in allowed else f"%{b:02X}" for b in text.encode("utf-8"))


def urlencode(pairs: list[tuple[str, str]]) -> str:
    """application/x-www-form-urlencoded, as urllib.parse.urlencode with quote_plus."""
    return "&".join(
        f"{quote(k).replace('%20', '+')}={quote(v).replace('%20', '+')}" for k, v in pairs
    )


def query_string(params: dict[str, Any] | None) -> str:
    """Encode params as docker does: bools as 1/0, dicts/lists as JSON, None dropped."""
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        elif isinstance(value, dict):
            import json

            pairs.append((key, json.dumps(value, separators=(",", ":"))))
        elif isinstance(value, (list, tuple)):
            pairs.extend((key, str(v)) for v in value)
        else:
            pairs.append((key, str(value)))
    return "?" + urlencode(pairs) if pairs else ""


class Client:
    """Talks to skiffd (or any Engine API daemon) at `host`."""

    def __init__(
        self,
        host: str,
        tls: TLSOptions | None = None,
        api_version: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.host: Host = parse_host(host, tls=tls is not None)
        self.tls = tls
        self.timeout = timeout
        self._version = api_version
        self.server_headers: dict[str, str] = {}

    # -- connection ------------------------------------------------------------------------
    def _unreachable(self, err: OSError) -> Unavailable:
        import errno

        if type(err).__module__ == "ssl":
            # connected, but TLS failed: a certificate problem, not a stopped daemon
            return Unavailable(f"TLS connection to {self.host.url} failed: {err}")

        message = (
            f"Cannot connect to skiffd at {self.host.url}: is it running? "
            "start it with `skiffd` or `make demo`"
        )
        if err.errno not in (errno.ENOENT, errno.ECONNREFUSED, None):
            message += f" ({err.strerror or err})"
        return Unavailable(message)

    def connect(self) -> socket.socket:
        try:
            if self.host.scheme == "unix":
                # _socket, not socket: the socket module pulls in enum and selectors (~3 ms)
                usock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                usock.settimeout(self.timeout)
                try:
                    usock.connect(self.host.path)
                except OSError:
                    usock.close()
                    raise
                return usock  # type: ignore[return-value]
            import socket

            sock = socket.create_connection((self.host.hostname, self.host.port), self.timeout)
        except OSError as err:
            raise self._unreachable(err)
        if self.tls is None:
            return sock
        return self._wrap_tls(sock)

    def _wrap_tls(self, sock: socket.socket) -> socket.socket:
        import ssl

        assert self.tls is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.tls.verify:
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
            if self.tls.cacert:
                ctx.load_verify_locations(self.tls.cacert)
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.tls.cert:
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
        try:
            return ctx.wrap_socket(sock, server_hostname=self.host.hostname)
        except (ssl.SSLError, OSError) as err:
            sock.close()
            raise Unavailable(f"TLS handshake with {self.host.url} failed: {err}")

    @property
    def host_header(self) -> str:
        return "docker" if self.host.scheme == "unix" else f"{self.host.hostname}:{self.host.port}"

    # -- version ---------------------------------------------------------------------------
    @property
    def api_version(self) -> str:
        if self._version is None:
            self.ping()
        assert self._version is not None
        return self._version

    def ping(self) -> dict[str, str]:
        """GET /_ping; settles the API version. Returns the response headers."""
        resp = self._send("GET", "/_ping", None, {})
        body = resp.read()
        if resp.status >= 400 and resp.status != 500:
            raise DaemonError.from_response(resp.status, body)
        self.server_headers = resp.headers
        if self._version is None:
            server = resp.headers.get("api-version", "")
            if server and _version_tuple(server) < _version_tuple(MAX_API_VERSION):
                self._version = server
            else:
                self._version = MAX_API_VERSION if server else "1.24"
        return resp.headers

    # -- requests --------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        sock: socket.socket | None = None,
    ) -> Response:
        sock = sock or self.connect()
        hdrs = {"User-Agent": USER_AGENT, **headers}
        try:
            sock.sendall(encode_request(method, target, self.host_header, hdrs, body))
            return read_response(sock, head=method == "HEAD")
        except OSError as err:
            sock.close()
            raise self._unreachable(err)
        except BaseException:
            sock.close()
            raise

    def path(self, path: str, params: dict[str, Any] | None = None, versioned: bool = True) -> str:
        prefix = f"/v{self.api_version}" if versioned else ""
        return prefix + path + query_string(params)

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Response:
        """Send a request and return the open response; raise the mapped error on >= 400.

        `body` is JSON-encoded; `data` is sent as-is (e.g. a tar), with the given headers.
        """
        hdrs = dict(headers or {})
        payload = data
        if body is not None:
            import json

            payload = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif data is None and method in ("POST", "PUT"):
            payload = b""
        resp = self._send(method, self.path(path, params), payload, hdrs)
        if resp.status >= 400:
            raise DaemonError.from_response(resp.status, resp.read())
        return resp

    def request_stream(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        chunks: Iterator[bytes],
        headers: dict[str, str],
    ) -> Response:
        """POST a body sent with chunked transfer encoding (build contexts, image loads)."""
        sock = self.connect()
        hdrs = {"User-Agent": USER_AGENT, "Transfer-Encoding": "chunked", **headers}
        try:
            sock.sendall(
                encode_request(method, self.path(path, params), self.host_header, hdrs, None)
            )
            for chunk in chunks:
                if chunk:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
            resp = read_response(sock)
        except OSError as err:
            sock.close()
            raise self._unreachable(err)
        if resp.status >= 400:
            raise DaemonError.from_response(resp.status, resp.read())
        return resp

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return loads(self.request("GET", path, params).read() or b"null")

    def post_json(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        raw = self.request("POST", path, params, body=body).read()
        return loads(raw) if raw.strip() else None

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        raw = self.request("DELETE", path, params).read()
        return loads(raw) if raw.strip() else None

    def hijack(
        self, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> tuple[socket.socket, bytes, dict[str, str]]:
        """POST with `Upgrade: tcp`; returns the raw socket, bytes already read, headers."""
        hdrs = {"Connection": "Upgrade", "Upgrade": "tcp"}
        payload = b""
        if body is not None:
            import json

            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        resp = self._send("POST", self.path(path, params), payload, hdrs)
        if resp.status >= 400:
            raise DaemonError.from_response(resp.status, resp.read())
        sock, rest = resp.detach()
        return sock, rest, resp.headers


class _ScanContext:
    """What _json.make_scanner reads: the settings of json.JSONDecoder() with no hooks."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scanner: Any = None


def loads(data: bytes | str) -> Any:
    """json.loads without importing json (and re, ~5 ms of start-up) on the hot path.

    Uses the C scanner json itself uses; falls back to json for errors and odd input so the
    error messages stay json's.
    """
    global _scanner
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    start, end = 0, len(text)
    while start < end and text[start] in " \t\n\r":
        start += 1
    while end > start and text[end - 1] in " \t\n\r":
        end -= 1
    try:
        if _scanner is None:
            import _json

            _scanner = _json.make_scanner(_ScanContext)  # type: ignore[arg-type]
        obj, stop = _scanner(text, start)
        _ScanContext.memo.clear()
        if stop == end:
            return obj
    except (ImportError, StopIteration, ValueError):
        pass
    import json

    return json.loads(text)


def q(name: str) -> str:
    """Quote an object name for a URL path segment."""
    return quote(name, safe="")


def iter_json_messages(resp: Response) -> Iterator[dict[str, Any]]:
    """Decode a stream of JSON objects (newline-separated or back to back)."""
    import json

    decoder = json.JSONDecoder()
    buf = ""
    for chunk in resp.iter_chunks():
        buf += chunk.decode("utf-8", "replace")
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break
            buf = buf[end:]
            if isinstance(obj, dict):
                yield obj
    if buf.strip():
        raise Unavailable(f"the daemon sent a truncated JSON message: {buf[:80]!r}")


def demux_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split multiplexed stream bytes into (stream, payload) frames; return the leftover."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while len(data) - pos >= 8:
        stream = data[pos]
        size = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if len(data) - pos - 8 < size:
            break
        frames.append((stream, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size
    return frames, data[pos:]
