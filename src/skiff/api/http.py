"""The HTTP edge of the Engine API: requests, responses, routing, hijacking, error mapping.

One thread per connection (ThreadingMixIn): requests that block — wait, logs -f, attach,
events — just block their thread. The route table maps (method, path pattern) to a handler
`fn(req) -> Response`; the leading `/v1.NN` is stripped and checked first. Errors from the
closed set are turned into `{"message": ...}` with a status here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import socketserver
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from skiff import errors

MAX_JSON_BODY = 16 << 20  # the request body size limit for JSON bodies (issue 9)
log = logging.getLogger("skiffd.api")

MIN_API_VERSION = "1.24"
API_VERSION = "1.47"
_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)$")

STATUS_FOR_ERROR: dict[type[errors.SkiffError], int] = {
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.InvalidArgument: 400,
    errors.FailedPrecondition: 400,
    errors.Unavailable: 503,
    errors.NotImplementedYet: 501,
    errors.Internal: 500,
}


def status_for(err: BaseException) -> int:
    for cls in type(err).__mro__:
        if cls in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[cls]
    return 500


class Request:
    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: str,
        version: str,
        params: dict[str, str],
    ) -> None:
        self.handler = handler
        self.method = method
        self.path = path
        self.query = urllib.parse.parse_qs(query, keep_blank_values=True)
        self.version = version
        self.params = params
        self.headers = handler.headers
        self._body_read = False

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name, "")
        if value == "":
            return default
        return value.lower() not in ("0", "false", "no")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name, "")
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise errors.InvalidArgument(f"invalid value for {name}: {value!r}") from None

    def body_stream(self) -> Iterator[bytes]:
        """The request body, de-chunked, in pieces."""
        self._body_read = True
        rfile = self.handler.rfile
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                line = rfile.readline()
                if not line:
                    return
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    chunk = rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return
                    remaining -= len(chunk)
                    yield chunk
                rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                chunk = rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def body(self) -> bytes:
        return b"".join(self.body_stream())

    def json(self) -> Any:
        chunks: list[bytes] = []
        size = 0
        for chunk in self.body_stream():
            size += len(chunk)
            if size > MAX_JSON_BODY:  # JSON is parsed in memory: cap it (archives are streamed)
                self.handler.close_connection = True  # the rest of the body stays unread
                raise errors.InvalidArgument(
                    f"request body too large: JSON bodies are limited to {MAX_JSON_BODY >> 20} MiB"
                )
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data.strip():
            return {}
        try:
            value = json.loads(data)
        except ValueError as err:
            raise errors.InvalidArgument(f"invalid JSON body: {err}") from None
        if value is None:  # Go's decoder leaves the target untouched on `null`
            return {}
        if not isinstance(value, dict):  # every JSON body of the Engine API is an object
            raise errors.InvalidArgument(
                f"invalid JSON body: expected an object, got {type(value).__name__}"
            )
        return value

    def fileobj(self) -> Any:
        return _IterReader(self.body_stream())

    def filters(self) -> dict[str, list[str]]:
        """Docker's `filters` query: {"k": ["v"]} or {"k": {"v": true}} → {"k": ["v"]}."""
        raw = self.arg("filters", "")
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise errors.InvalidArgument(f"invalid filter {raw!r}") from None
        if data is not None and not isinstance(data, dict):
            raise errors.InvalidArgument(f"invalid filter {raw!r}: expected a JSON object")
        out: dict[str, list[str]] = {}
        for key, value in (data or {}).items():
            if isinstance(value, dict):
                out[key] = [k for k, v in value.items() if v]
            elif isinstance(value, list):
                out[key] = [str(v) for v in value]
            else:
                out[key] = [str(value)]
        return out

    def closed(self) -> bool:
        """True once the client has gone away (for long polls)."""
        sock = self.handler.connection
        try:
            sock.setblocking(False)
            try:
                data: bytes = sock.recv(1, socket.MSG_PEEK)
                return data == b""
            finally:
                sock.setblocking(True)
        except BlockingIOError:
            return False
        except OSError:
            return True


class _IterReader:
    """A file-like reader over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readable(self) -> bool:
        return True


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None  # chunked body
    hijack: Callable[[BaseHTTPRequestHandler], None] | None = None


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status=status, body=(json.dumps(data) + "\n").encode())


def no_content() -> Response:
    return Response(status=204, content_type="")


Handler = Callable[[Request], Response]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.compile(
            "^"
            + re.sub(
                r"\{(\w+)\}",
                lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(1) == 'name' else '[^/]+'})",
                pattern,
            )
            + "$"
        )
        self.routes.append((method, regex, pattern, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        path_matched = False
        for m, regex, _, handler in self.routes:
            found = regex.match(path)
            if found:
                path_matched = True
                if m == method or (method == "HEAD" and m == "GET" and path == "/_ping"):
                    return handler, {
                        k: urllib.parse.unquote(v) for k, v in found.groupdict().items()
                    }
        if path_matched:
            return None
        return None

    def table(self) -> list[tuple[str, str]]:
        return [(m, p) for m, _, p, _ in self.routes]


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "skiffd"
    router: Router

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def address_string(self) -> str:
        return (
            "unix"
            if isinstance(self.client_address, (str, bytes)) or not self.client_address
            else str(self.client_address[0])
        )

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        method = self.command
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        version = API_VERSION
        m = _VERSION_PREFIX.match(path)
        req: Request | None = None
        try:
            if m:
                version, path = m.group(1), m.group(2)
                if _vtuple(version) > _vtuple(API_VERSION):
                    raise errors.InvalidArgument(
                        f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
                    )
                if _vtuple(version) < _vtuple(MIN_API_VERSION):
                    raise errors.InvalidArgument(
                        f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
                    )
            found = self.router.match(method, path)
            if found is None:
                self._send(
                    Response(404, json.dumps({"message": "page not found"}).encode()), method
                )
                return
            handler, params = found
            req = Request(self, method, path, parsed.query, version, params)
            resp = handler(req)
        except errors.SkiffError as err:
            status = status_for(err)
            if status == 500:
                log.error("%s %s: %s", method, path, err)
            resp = json_response({"message": err.message}, status)
        except Exception as err:  # a bug: answer 500 and keep serving
            log.exception("%s %s", method, path)
            resp = json_response({"message": f"internal error: {type(err).__name__}: {err}"}, 500)
        if req is not None and not req._body_read and resp.hijack is None:
            length = int(self.headers.get("Content-Length") or 0)
            if length or "chunked" in (self.headers.get("Transfer-Encoding") or ""):
                for _ in req.body_stream():
                    pass
        self._send(resp, method)

    def _send(self, resp: Response, method: str) -> None:
        if resp.hijack is not None:
            self.close_connection = True
            resp.hijack(self)
            return
        self.send_response(resp.status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Server", "skiffd")
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        if resp.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for chunk in resp.stream:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (ConnectionError, OSError):
                self.close_connection = True
            finally:
                close = getattr(resp.stream, "close", None)
                if close:
                    close()
            return
        if resp.status not in (204, 304):
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if method != "HEAD" and resp.status not in (204, 304):
            self.wfile.write(resp.body)


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # `docker rm -f $(docker ps -aq)` connects once per container at once

    def __init__(self, path: str, handler: type[RequestHandler]) -> None:
        super().__init__(path, handler, bind_and_activate=True)


class TCPHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], handler: type[RequestHandler], ssl_context: Any
    ) -> None:
        self.ssl_context = ssl_context
        super().__init__(address, handler, bind_and_activate=True)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        return self.ssl_context.wrap_socket(sock, server_side=True), addr


def start_hijack(handler: BaseHTTPRequestHandler, content_type: str) -> None:
    """Answer `101 UPGRADED` (clients that asked for an upgrade) or a raw 200 stream."""
    upgrade = "upgrade" in (handler.headers.get("Connection") or "").lower()
    if upgrade:
        head = f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: {API_VERSION}\r\n\r\n"
    else:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nApi-Version: {API_VERSION}\r\n\r\n"
        )
    handler.wfile.write(head.encode())
    handler.wfile.flush()
