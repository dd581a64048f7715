"""A tiny Engine API stand-in on a unix socket that records requests and answers from a script.

Used to capture exactly what the docker CLI and skiff send for the same command line.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Handler = Callable[[Recorded], tuple[int, dict[str, str], bytes]]


def default_handler(req: Recorded) -> tuple[int, dict[str, str], bytes]:
    path = req.path.split("?")[0]
    if path.endswith("/_ping"):
        return 200, {"API-Version": "1.47", "OSType": "linux", "Content-Type": "text/plain"}, b"OK"
    if path.endswith("/containers/create"):
        body = json.dumps({"Id": "0123456789ab" + "c" * 52, "Warnings": []}).encode()
        return 201, {"Content-Type": "application/json"}, body
    return (
        404,
        {"Content-Type": "application/json"},
        b'{"message":"not recorded: ' + path.encode() + b'"}',
    )


@dataclass
class Recorder:
    socket_path: Path
    handler: Handler = default_handler
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(self.socket_path))
        self._srv.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = b""
                if headers.get("transfer-encoding") == "chunked":
                    while True:
                        while b"\r\n" not in buf:
                            buf += conn.recv(65536)
                        size_line, _, buf = buf.partition(b"\r\n")
                        size = int(size_line, 16)
                        while len(buf) < size + 2:
                            buf += conn.recv(65536)
                        body += buf[:size]
                        buf = buf[size + 2 :]
                        if size == 0:
                            break
                else:
                    n = int(headers.get("content-length", "0"))
                    while len(buf) < n:
                        buf += conn.recv(65536)
                    body, buf = buf[:n], buf[n:]
                req = Recorded(method, target, headers, body)
                self.requests.append(req)
                status, rh, rbody = self.handler(req)
                head_out = f"HTTP/1.1 {status} X\r\nContent-Length: {len(rbody)}\r\n"
                head_out += "".join(f"{k}: {v}\r\n" for k, v in rh.items())
                conn.sendall(head_out.encode() + b"\r\n" + (b"" if method == "HEAD" else rbody))

    def close(self) -> None:
        self._srv.close()

    def bodies(self, suffix: str) -> list[Any]:
        return [r.json() for r in self.requests if r.path.split("?")[0].endswith(suffix)]
