"""A small HTTP/1.1 client protocol for the Engine API: requests out, responses in.

Why not http.client: importing it (and the email package it pulls in) costs ~17 ms, more than
the whole `docker ps` run, and it cannot hand over the socket after an upgrade (attach, exec).
The Engine API needs little: one request per connection, bodies by Content-Length, chunked, or
until close, and a socket the caller may keep after `101 UPGRADED` / `200` on hijack endpoints.

`Response` owns the socket: `read()` returns the whole body, `iter_chunks()` streams it,
`detach()` hands over the raw socket together with any bytes already buffered past the headers.
"""

from __future__ import annotations

from collections.abc import Iterator

from skiff.errors import Unavailable

TYPE_CHECKING = False  # the socket module is not imported at run time: start-up cost
if TYPE_CHECKING:
    import socket

_MAX_HEADER = 64 * 1024
_READ = 64 * 1024


def encode_request(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    """Serialize one request; `Content-Length` is always set when a body is given."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class Response:
    """Status, headers (lower-cased names) and a body reader over the connection's socket."""

    def __init__(
        self,
        sock: socket.socket,
        status: int,
        reason: str,
        headers: dict[str, str],
        rest: bytes,
        head: bool = False,
    ):
        self.sock: socket.socket | None = sock
        self.status = status
        self.reason = reason
        self.headers = headers
        self._buf = rest
        te = headers.get("transfer-encoding", "").lower()
        self._chunked = "chunked" in te
        length = headers.get("content-length")
        self._remaining: int | None = (
            int(length) if length is not None and not self._chunked else None
        )
        self._chunk_left = 0
        self._done = head or status in (204, 304) or self._remaining == 0

    # -- raw reads -------------------------------------------------------------------------
    def _fill(self) -> bool:
        if self.sock is None:
            return False
        data = self.sock.recv(_READ)
        if not data:
            return False
        self._buf += data
        return True

    def _take(self, n: int) -> bytes:
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _readline(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise Unavailable("reading a response from the daemon: connection closed mid-chunk")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def read_some(self) -> bytes:
        """The next piece of the body (b"" at its end), without waiting for more than one recv."""
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size_line = self._readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until an empty line
                    while self._readline():
                        pass
                    self._done = True
                    return b""
                self._chunk_left = size
            if not self._buf and not self._fill():
                raise Unavailable("reading a response from the daemon: connection closed mid-chunk")
            data = self._take(self._chunk_left)
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self._readline()  # the CRLF after the chunk data
            return data
        if self._remaining is not None:
            if not self._buf and not self._fill():
                self._done = True
                return b""
            data = self._take(self._remaining)
            self._remaining -= len(data)
            if self._remaining == 0:
                self._done = True
            return data
        # until close
        if not self._buf and not self._fill():
            self._done = True
            return b""
        data, self._buf = self._buf, b""
        return data

    def iter_chunks(self) -> Iterator[bytes]:
        try:
            while True:
                data = self.read_some()
                if not data:
                    return
                yield data
        finally:
            self.close()

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())

    def detach(self) -> tuple[socket.socket, bytes]:
        """Hand the raw socket and the bytes buffered beyond the headers to the caller."""
        sock, self.sock = self.sock, None
        if sock is None:
            raise Unavailable("the daemon closed the connection before the stream started")
        rest, self._buf = self._buf, b""
        return sock, rest

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


def read_response(sock: socket.socket, head: bool = False) -> Response:
    """Read the status line and headers from `sock`; the body stays on the socket.

    `head`: the request was HEAD, so no body follows whatever Content-Length says.
    """
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(_READ)
        if not data:
            raise Unavailable("the daemon closed the connection without a response")
        buf += data
        if len(buf) > _MAX_HEADER:
            raise Unavailable("the daemon sent a response header over 64 KiB")
    head_bytes, _, rest = buf.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise Unavailable(f"the daemon sent a malformed status line: {lines[0][:80]!r}")
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Response(sock, status, reason, headers, rest, head=head)
