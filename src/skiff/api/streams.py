"""Hijacked streams: attach and exec start, between an HTTP client and a shim socket.

Without a TTY the client gets Docker's multiplexed frames (byte 0 = stream 1/2, bytes 4-7 =
length) — the same header the shim speaks, so frames pass through unchanged. With a TTY the
payload goes raw. Client bytes become STDIN frames; the detach keys end the session.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from skiff.engine import shim_client
from skiff.errors import InvalidArgument

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str) -> bytes:
    out = bytearray()
    for key in (spec or DEFAULT_DETACH_KEYS).split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
        elif key.startswith("ctrl-") and len(key) == 6:
            c = key[5]
            if c.isalpha() or c in "@[\\]^_":
                out.append(
                    ord(c.upper()) & 0x1F
                    if c.isalpha()
                    else {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[c]
                )
            else:
                raise InvalidArgument(f"Invalid escape keys ({spec}) provided")
        else:
            raise InvalidArgument(f"Invalid escape keys ({spec}) provided")
    return bytes(out)


def mux_header(stream: int, length: int) -> bytes:
    return struct.pack(">BxxxI", stream, length)


class DetachMatcher:
    """Finds the detach sequence in a byte stream; holds back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.pending = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, detached?)."""
        if not self.keys:
            return data, False
        buf = self.pending + data
        self.pending = b""
        idx = buf.find(self.keys)
        if idx >= 0:
            return buf[:idx], True
        for n in range(min(len(self.keys) - 1, len(buf)), 0, -1):
            if buf.endswith(self.keys[:n]):
                self.pending = buf[-n:]
                return buf[:-n], False
        return buf, False


def pump(
    handler: BaseHTTPRequestHandler,
    shim_sock: socket.socket,
    *,
    tty: bool,
    stdin: bool,
    close_stdin_on_eof: bool,
    detach_keys: bytes,
    on_detach: Callable[[], None] = lambda: None,
    before_close: Callable[[], object] = lambda: None,
) -> None:
    """Copy between the hijacked client and the shim until the process exits or the client leaves."""
    client = handler.connection
    done = threading.Event()

    def stdin_loop() -> None:
        matcher = DetachMatcher(detach_keys)
        rfile = handler.rfile
        try:
            while not done.is_set():
                data = rfile.read1(65536)
                if not data:
                    if close_stdin_on_eof:
                        shim_sock.sendall(shim_client.frame(shim_client.CLOSE_STDIN))
                    return
                forward, detached = matcher.feed(data)
                if forward:
                    shim_sock.sendall(shim_client.frame(shim_client.STDIN, forward))
                if detached:
                    on_detach()
                    done.set()
                    try:
                        shim_sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
        except (OSError, ValueError):
            return

    if stdin:
        threading.Thread(target=stdin_loop, name="attach-stdin", daemon=True).start()
    try:
        while True:
            f = shim_client.read_frame(shim_sock)
            if f is None or f[0] == shim_client.EXIT:
                break
            kind, payload = f
            if kind not in (shim_client.STDOUT, shim_client.STDERR):
                continue
            if tty:
                client.sendall(payload)
            else:
                client.sendall(mux_header(kind, len(payload)) + payload)
    except OSError:
        pass
    finally:
        done.set()
        try:
            shim_sock.close()
        except OSError:
            pass
        before_close()
        try:
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass
