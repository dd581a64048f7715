"""Networks and volumes through the real docker CLI against a test skiffd (issue 6)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from typing import Any

import pytest


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _inspect(d: Any, *args: str) -> Any:
    return json.loads(d.docker("inspect", *args).stdout)


def test_user_network_peers_by_name(netd: Any) -> None:
    d = netd
    d.docker("network", "create", "appnet")
    try:
        d.docker(
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "appnet",
            "--network-alias",
            "www",
            "busybox",
            "sh",
            "-c",
            "while true; do echo hello | nc -l -p 8080; done",
        )
        ip = _inspect(d, "web")[0]["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
        assert ip
        out = d.docker("run", "--rm", "--network", "appnet", "busybox", "nslookup", "web").stdout
        assert ip in out
        assert (
            d.docker(
                "run", "--rm", "--network", "appnet", "busybox", "ping", "-c", "1", "-W", "2", "www"
            ).returncode
            == 0
        )
        got = ""
        for _ in range(20):
            got = d.docker(
                "run",
                "--rm",
                "--network",
                "appnet",
                "busybox",
                "nc",
                "-w",
                "2",
                "web",
                "8080",
                check=False,
            ).stdout
            if "hello" in got:
                break
            time.sleep(0.2)
        assert "hello" in got
        net = json.loads(d.docker("network", "inspect", "appnet").stdout)[0]
        assert any(c["Name"] == "web" for c in net["Containers"].values())
    finally:
        d.docker("rm", "-f", "web", check=False)
        d.docker("network", "rm", "appnet", check=False)


def test_published_port_on_loopback_and_gateway(netd: Any) -> None:
    d = netd
    d.docker(
        "run",
        "-d",
        "--name",
        "pub",
        "-p",
        "127.0.0.1::80",
        "-p",
        "18099:80",
        "busybox",
        "sh",
        "-c",
        "while true; do echo pong | nc -l -p 80; done",
    )
    try:
        port = int(d.docker("port", "pub", "80/tcp").stdout.split("\n")[0].rsplit(":", 1)[1])
        gw = _inspect(d, "pub")[0]["NetworkSettings"]["Gateway"]
        for host, p in (("127.0.0.1", port), ("127.0.0.1", 18099), (gw, 18099)):
            got = b""
            for _ in range(30):
                try:
                    with socket.create_connection((host, p), timeout=2) as s:
                        got = s.recv(64)
                    if b"pong" in got:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            assert b"pong" in got, f"{host}:{p}"
        # the same host port again is refused with a clear error, and nothing is left
        res = d.docker(
            "run", "-d", "--name", "pub2", "-p", "18099:80", "busybox", "sleep", "5", check=False
        )
        assert res.returncode != 0 and "already allocated" in res.stderr
    finally:
        d.docker("rm", "-f", "pub", "pub2", check=False)


def test_none_and_host_modes(netd: Any) -> None:
    d = netd
    out = d.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    host_links = _links()
    out = d.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    seen = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    # the host's own interfaces (links that come and go meanwhile aside)
    assert {"lo", "eth0"} <= seen and seen <= host_links | _links()


def test_volumes_persist_share_and_go(netd: Any) -> None:
    d = netd
    d.docker("run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert (
        d.docker("run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/f").stdout
        == "kept\n"
    )
    d.docker("create", "--name", "holder", "-v", "/anon", "-v", "shared:/data", "busybox", "true")
    try:
        out = d.docker(
            "run",
            "--rm",
            "--volumes-from",
            "holder",
            "busybox",
            "sh",
            "-c",
            "echo x > /anon/y; cat /data/f",
        ).stdout
        assert out == "kept\n"
        anon = next(
            m["Name"] for m in _inspect(d, "holder")[0]["Mounts"] if m["Destination"] == "/anon"
        )
        res = d.docker("volume", "rm", "shared", check=False)
        assert res.returncode != 0 and "in use" in res.stderr
    finally:
        d.docker("rm", "-v", "holder")
    vols = d.docker("volume", "ls", "-q").stdout.split()
    assert anon not in vols and "shared" in vols
    d.docker("volume", "rm", "shared")


def test_bad_input_is_4xx_and_leaves_nothing(netd: Any) -> None:
    d = netd
    before = _links()
    d.docker("network", "create", "--subnet", "10.233.7.0/24", "n1")
    try:
        res = d.docker("network", "create", "--subnet", "10.233.7.0/25", "n2", check=False)
        assert res.returncode != 0 and "overlaps" in res.stderr
        res = d.docker("network", "create", "n1", check=False)
        assert res.returncode != 0 and "already exists" in res.stderr
        res = d.docker("run", "--rm", "--network", "nosuchnet", "busybox", "true", check=False)
        assert res.returncode == 125 and "not found" in res.stderr
        names = d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "n2" not in names
    finally:
        d.docker("network", "rm", "n1")
    assert _links() <= before


@pytest.mark.slow
def test_networking_survives_daemon_kill9_and_leaks_nothing(netd: Any) -> None:
    d = netd
    d.docker(
        "run",
        "-d",
        "--name",
        "survivor",
        "-p",
        "18098:80",
        "busybox",
        "sh",
        "-c",
        "while true; do echo alive | nc -l -p 80; done",
    )
    d.docker("run", "-d", "--name", "doomed", "busybox", "sleep", "600")
    doomed = _inspect(d, "doomed")[0]
    d.kill9()
    # the doomed one dies while the daemon is down
    subprocess.run(["kill", "-9", str(doomed["State"]["Pid"])], check=False)
    d.start()
    try:
        got = b""
        for _ in range(30):
            try:
                with socket.create_connection(("127.0.0.1", 18098), timeout=2) as s:
                    got = s.recv(64)
                if b"alive" in got:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert b"alive" in got
        assert _inspect(d, "doomed")[0]["State"]["Running"] is False
        nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
        assert doomed["NetworkSettings"]["IPAddress"] not in nft
    finally:
        d.docker("rm", "-f", "survivor", "doomed", check=False)
