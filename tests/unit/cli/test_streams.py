"""pump(): multiplexed output split to stdout/stderr, stdin forwarded then half-closed, detach keys."""

from __future__ import annotations

import os
import socket
import threading

from skiff.cli.streams import pump


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    out = b""
    try:
        while chunk := os.read(fd, 65536):
            out += chunk
    except BlockingIOError:
        pass
    return out


def test_demux_and_stdin_half_close() -> None:
    ours, daemon = socket.socketpair()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    received = []

    def fake_daemon() -> None:
        # echo what arrives on stdin until EOF (the half-close), then send frames and hang up
        data = b""
        while chunk := daemon.recv(100):
            data += chunk
        received.append(data)
        payload = frame(1, b"out-" + data) + frame(2, b"err")
        for i in range(0, len(payload), 3):  # split frames across reads
            daemon.sendall(payload[i : i + 3])
        daemon.close()

    t = threading.Thread(target=fake_daemon)
    t.start()
    os.write(in_w, b"typed")
    os.close(in_w)
    outcome = pump(
        ours,
        frame(1, b"early;"),
        tty=False,
        stdin=True,
        detach_keys=b"\x10\x11",
        out_fd=out_w,
        err_fd=err_w,
        in_fd=in_r,
    )
    t.join(5)
    assert outcome == "ended"
    assert received == [b"typed"]
    assert _drain(out_r) == b"early;out-typed"
    assert _drain(err_r) == b"err"
    for fd in (out_r, out_w, err_r, err_w, in_r):
        os.close(fd)


def test_detach_sequence_stops_without_forwarding_it() -> None:
    ours, daemon = socket.socketpair()
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    os.write(in_w, b"ls\r\x10\x11never sent")
    outcome = pump(
        ours,
        b"",
        tty=True,
        stdin=True,
        detach_keys=b"\x10\x11",
        out_fd=out_w,
        err_fd=out_w,
        in_fd=in_r,
    )
    assert outcome == "detached"
    daemon.settimeout(1)
    assert daemon.recv(100) == b"ls\r"
    for fd in (out_r, out_w, in_r, in_w):
        os.close(fd)
    ours.close()
    daemon.close()
