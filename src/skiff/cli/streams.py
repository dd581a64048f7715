"""Interactive streams: raw terminal, detach keys, resize on SIGWINCH, signal proxying.

`pump(sock, …)` moves bytes between the local terminal and a hijacked attach/exec connection
until the daemon closes the stream (returns "ended") or the user types the detach sequence
(returns "detached"). Without a TTY the daemon multiplexes stdout/stderr in 8-byte-header
frames, which are split here.
"""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from skiff.cli.flags import FlagError

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
_SPECIAL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """docker's term.ToBytes: "ctrl-p,ctrl-q" → b"\\x10\\x11"; "a,b" → b"ab"."""
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if len(key) > 1 and key.lower().startswith("ctrl-"):
            ch = key[5:]
            if len(ch) != 1:
                raise FlagError(f"invalid detach keys: unknown character: '{key}'")
            if ch.isalpha():
                out.append(ord(ch.lower()) - ord("a") + 1)
            elif ch in _SPECIAL:
                out.append(_SPECIAL[ch])
            else:
                raise FlagError(f"invalid detach keys: unknown character: '{key}'")
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise FlagError(f"invalid detach keys: unknown character: '{key}'")
    return bytes(out)


class EscapeFilter:
    """Passes input through, holding back a partial detach sequence; `feed` reports detaching."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            candidate = self.held + bytes([b])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
            else:
                out += candidate
                self.held = b""
        return bytes(out), False


@contextmanager
def raw_terminal(fd: int, enabled: bool) -> Iterator[None]:
    """Put `fd` in raw mode for the block when it is a terminal and `enabled`."""
    if not enabled or not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on `fd`, or None if it is not one."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


@contextmanager
def on_resize(resize: Callable[[int, int], None], enabled: bool) -> Iterator[None]:
    """Call `resize(rows, cols)` now and on every SIGWINCH while in the block."""
    if not enabled:
        yield
        return

    def handler(_sig: int, _frame: Any) -> None:
        size = terminal_size(1) or terminal_size(0)
        if size:
            try:
                resize(*size)
            except Exception:
                pass

    old = signal.signal(signal.SIGWINCH, handler)
    try:
        _initial_resize(resize)
        yield
    finally:
        signal.signal(signal.SIGWINCH, old)


def _initial_resize(resize: Callable[[int, int], None], tries: int = 8) -> None:
    """Size the remote terminal once; retried, as docker does, because a daemon may refuse the
    resize until the process it just started exists."""
    size = terminal_size(1) or terminal_size(0)
    if not size:
        return
    import time

    for attempt in range(tries):
        try:
            resize(*size)
            return
        except Exception:
            time.sleep(0.01 * (attempt + 1))


PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@contextmanager
def proxy_signals(kill: Callable[[int], None], enabled: bool) -> Iterator[None]:
    """Forward the usual terminating signals to the container while in the block."""
    if not enabled:
        yield
        return
    saved: dict[int, Any] = {}

    def handler(sig: int, _frame: Any) -> None:
        try:
            kill(sig)
        except Exception:
            pass

    for name in PROXIED_SIGNALS:
        num = getattr(signal, name)
        saved[num] = signal.signal(num, handler)
    try:
        yield
    finally:
        for num, old in saved.items():
            signal.signal(num, old)


def pump(
    sock: socket.socket,
    rest: bytes,
    tty: bool,
    stdin: bool,
    detach_keys: bytes,
    out_fd: int = 1,
    err_fd: int = 2,
    in_fd: int = 0,
) -> str:
    """Copy terminal ↔ stream until the stream ends ("ended") or the user detaches ("detached")."""
    pending = b""
    escape = EscapeFilter(detach_keys if stdin else b"")
    read_stdin = stdin

    def output(data: bytes) -> None:
        nonlocal pending
        if tty:
            _write_all(out_fd, data)
            return
        from skiff.client.api import demux_frames

        frames, pending = demux_frames(pending + data)
        for stream, payload in frames:
            _write_all(err_fd if stream == 2 else out_fd, payload)

    if rest:
        output(rest)
    sock.setblocking(True)
    while True:
        fds: list[Any] = [sock]
        if read_stdin:
            fds.append(in_fd)
        readable, _, _ = select.select(fds, [], [])
        if sock in readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return "ended"
            output(data)
        if read_stdin and in_fd in readable:
            data = os.read(in_fd, 4096)
            if not data:
                read_stdin = False
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            data, detached = escape.feed(data)
            if data:
                sock.sendall(data)
            if detached:
                return "detached"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
