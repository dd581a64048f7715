"""The HTTP layer and client over scripted bytes (socketpair), and host parsing."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from skiff.client.api import Client, demux_frames, iter_json_messages, query_string
from skiff.client.hosts import parse_host, resolve_host
from skiff.client.http import read_response
from skiff.errors import InvalidArgument, NotFound


def scripted(data: bytes) -> socket.socket:
    a, b = socket.socketpair()

    def feed() -> None:
        for i in range(0, len(data), 7):  # dribble, to exercise partial reads
            b.sendall(data[i : i + 7])
        b.close()

    threading.Thread(target=feed, daemon=True).start()
    return a


def test_content_length_and_chunked_bodies() -> None:
    r = read_response(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"))
    assert (r.status, r.read()) == (200, b"hello")
    body = b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n"
    r = read_response(scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
    assert r.read() == b"Wikipedia"
    r = read_response(scripted(b"HTTP/1.0 200 OK\r\n\r\nuntil close"))
    assert r.read() == b"until close"
    r = read_response(scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"), head=True)
    assert r.read() == b""


def test_hijack_keeps_the_bytes_after_the_headers() -> None:
    r = read_response(
        scripted(b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00\x00\x00\x00\x02hi")
    )
    sock, rest = r.detach()
    data = rest + sock.recv(100)
    frames, left = demux_frames(data)
    assert frames == [(1, b"hi")] and left == b""


def test_json_stream_and_query_encoding() -> None:
    body = b'{"status":"a"}\n{"status":"b"}{"id":"x"}'
    r = read_response(
        scripted(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    )
    assert [m.get("status", m.get("id")) for m in iter_json_messages(r)] == ["a", "b", "x"]
    assert query_string(
        {"all": True, "x": None, "filters": {"status": {"exited": True}}, "t": ["a", "b"]}
    ) == ("?all=1&filters=%7B%22status%22%3A%7B%22exited%22%3Atrue%7D%7D&t=a&t=b")


def test_daemon_errors_map_to_the_closed_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "d.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(4)

    def serve() -> None:
        for _ in range(2):
            conn, _ = srv.accept()
            req = conn.recv(65536)
            if b"/_ping" in req:
                conn.sendall(b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK")
            else:
                msg = json.dumps({"message": "No such container: x"}).encode()
                conn.sendall(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(msg), msg)
                )
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    client = Client(f"unix://{path}")
    with pytest.raises(NotFound, match=r"^Error response from daemon: No such container: x$"):
        client.get_json("/containers/x/json")
    assert client.api_version == "1.41"
    srv.close()


def test_hosts() -> None:
    assert parse_host("unix:///run/x.sock").path == "/run/x.sock"
    h = parse_host("tcp://10.0.0.1:2376")
    assert (h.hostname, h.port) == ("10.0.0.1", 2376)
    assert parse_host("tcp://example", tls=True).port == 2376
    assert parse_host(":2375").hostname == "127.0.0.1"
    with pytest.raises(InvalidArgument):
        parse_host("ftp://x")
    assert (
        resolve_host(None, {"DOCKER_HOST": "unix:///d", "SKIFF_HOST": "unix:///s"}) == "unix:///s"
    )
    assert resolve_host(None, {}) == "unix:///run/skiff/skiff.sock"
    assert resolve_host("tcp://h:1", {"SKIFF_HOST": "unix:///s"}) == "tcp://h:1"
