"""Talking to skiff-shim: start one per container process or exec, and connect to its socket.

Vocabulary: a *shim dir* holds what one shim owns: `attach.sock` (while it runs), `pid` (the
process it supervises), `exit` (JSON written atomically when that process exits) and
`shim.log` (the shim's own errors). skiffd never holds a shim's pipes, so it can stop, crash or
be upgraded while containers run; on start it reconnects through the shim dir.

Frames (both directions): byte 0 type, bytes 4-7 payload length, big endian — see shim.c.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import FailedPrecondition, InvalidArgument, Unavailable

STDIN, STDOUT, STDERR, CLOSE_STDIN, RESIZE, EXIT, START, HELLO = range(8)
WANT_STDOUT, WANT_STDERR = 1, 2
SOCKET_NAME = "attach.sock"
MAX_SOCKET_PATH = 107

_HEADER = struct.Struct(">BxxxI")


def find_shim() -> str:
    """The skiff-shim binary: $SKIFF_SHIM, /usr/local/lib/skiff/skiff-shim, or on PATH."""
    for candidate in (os.environ.get("SKIFF_SHIM"), "/usr/local/lib/skiff/skiff-shim"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("skiff-shim")
    if found:
        return found
    raise FailedPrecondition(
        "skiff-shim not found: set SKIFF_SHIM or install it to /usr/local/lib/skiff/skiff-shim "
        "(make install compiles src/skiff/engine/shim/shim.c)"
    )


def find_init() -> str | None:
    """The skiff-init binary bind-mounted as /sbin/docker-init for `--init` containers."""
    for candidate in (os.environ.get("SKIFF_INIT"), "/usr/local/lib/skiff/skiff-init"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("skiff-init")


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """The next frame from a shim, or None at end of stream."""
    header = _recv_exact(sock, 8)
    if header is None:
        return None
    kind, length = _HEADER.unpack(header)
    payload = _recv_exact(sock, length) if length else b""
    if payload is None:
        return None
    return kind, payload


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n > 0:
        try:
            chunk = sock.recv(n)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class ShimSpec:
    """What one shim supervises."""

    shim_dir: Path
    runtime: str
    runtime_root: str
    process_id: str  # the container id the runtime knows
    bundle: str | None = None  # for a container
    exec_process: str | None = None  # process.json for an exec
    log_path: str | None = None
    log_max_size: int = 0  # bytes; 0 = no rotation
    log_max_files: int = 1
    tty: bool = False
    stdin: bool = False
    wait_start: bool = False
    # skiff-runtime only: the read end of a pipe its `create` waits on before it reads the
    # bundle (see `skiff.runtime.create.wait_for_gate`), so the shim and the runtime start
    # while skiffd still prepares the network and writes config.json.
    gate_fd: int | None = None
    # extra environment for the runtime (skiffd: "the attach is primed, do not prime again")
    runtime_env: dict[str, str] | None = None


def socket_path(shim_dir: Path) -> str:
    path = str(shim_dir / SOCKET_NAME)
    if len(path) > MAX_SOCKET_PATH:
        raise InvalidArgument(
            f"shim socket path {path!r} is longer than {MAX_SOCKET_PATH} bytes: use a shorter --exec-root"
        )
    return path


def spawn(spec: ShimSpec) -> Launch:
    """Start a shim; returns the launcher process whose stdout is the shim's status stream.

    The launcher exits at once; the shim itself lives detached and reports on a pipe.
    """
    socket_path(spec.shim_dir)
    spec.shim_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("exit", "pid"):
        try:
            (spec.shim_dir / stale).unlink()
        except FileNotFoundError:
            pass
    argv = [find_shim(), "--runtime", spec.runtime, "--runtime-root", spec.runtime_root]
    read_end, write_end = os.pipe()
    argv += ["--id", spec.process_id, "--dir", str(spec.shim_dir), "--status-fd", str(write_end)]
    if spec.bundle:
        argv += ["--bundle", spec.bundle]
    if spec.exec_process:
        argv += ["--exec-process", spec.exec_process]
    if spec.log_path:
        argv += ["--log", spec.log_path]
        if spec.log_max_size > 0:
            argv += [
                "--log-max-size",
                str(spec.log_max_size),
                "--log-max-files",
                str(spec.log_max_files),
            ]
    if spec.tty:
        argv.append("--tty")
    if spec.stdin:
        argv.append("--stdin")
    if spec.wait_start:
        argv.append("--wait-start")
    env = {**os.environ, **spec.runtime_env} if spec.runtime_env else None
    pass_fds: tuple[int, ...] = (write_end,)
    if spec.gate_fd is not None:
        from skiff.runtime.create import GATE_ENV

        env = {**(env or os.environ), GATE_ENV: str(spec.gate_fd)}
        pass_fds += (spec.gate_fd,)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=pass_fds,
            env=env,
        )
    finally:
        os.close(write_end)
    proc.wait()
    return Launch(os.fdopen(read_end, "rb"))


class Launch:
    """The status stream of a shim that is starting."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def line(self) -> str:
        """One status line: "ready", "pid N" or "error MSG"."""
        line: str = self.stream.readline().decode(errors="replace").strip()
        if not line:
            self.stream.close()
            raise Unavailable("skiff-shim exited without reporting a status (see its shim.log)")
        return line

    def expect_ready(self) -> None:
        line = self.line()
        if line.startswith("error "):
            self.stream.close()
            raise FailedPrecondition(line[6:])

    def drain(self) -> None:
        """Read the stream to its end (the shim has reported and is done starting)."""
        try:
            while self.stream.readline():
                pass
        finally:
            self.stream.close()

    def expect_pid(self) -> int:
        """Read status lines until the process pid (or the error) arrives."""
        while True:
            line = self.line()
            if line.startswith("pid "):
                self.stream.close()
                return int(line[4:])
            if line.startswith("error "):
                self.stream.close()
                raise FailedPrecondition(_clean_runtime_error(line[6:]))


def connect(shim_dir: Path, want: int = 0, timeout: float | None = None) -> socket.socket:
    """Connect to a running shim; `want` selects the output streams (WANT_STDOUT|WANT_STDERR)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path(shim_dir))
        sock.sendall(frame(HELLO, bytes([want])))
    except OSError as err:
        sock.close()
        raise Unavailable(f"shim {shim_dir}: connect: {err.strerror or err}") from err
    sock.settimeout(None)
    return sock


def read_exit(shim_dir: Path) -> dict[str, Any] | None:
    """The exit record the shim wrote, or None while the process has not exited."""
    try:
        data: dict[str, Any] = json.loads((shim_dir / "exit").read_text())
        return data
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def read_pid(shim_dir: Path) -> int:
    try:
        return int((shim_dir / "pid").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


_LOGFMT_MSG = re.compile(r'level=\w+ msg="((?:[^"\\]|\\.)*)"')


def _clean_runtime_error(text: str) -> str:
    """runc logs errors as logfmt (`time=… level=error msg="…"`): keep the messages only."""
    found = _LOGFMT_MSG.findall(text)
    if not found:
        return text
    prefix = text.split("time=", 1)[0].rstrip(": ")
    msgs = "; ".join(m.encode().decode("unicode_escape", errors="replace") for m in found)
    return f"{prefix}: {msgs}" if prefix else msgs
