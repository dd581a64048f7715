"""Bridge networking on the real kernel: veths in namespaces, NAT, published ports, isolation,
DNS and crash reconciliation. Every test uses its own bridge names, nft table and state dir."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skiff.linux import netns, nftables
from skiff.network.dns import EmbeddedDNS
from skiff.network.manager import NetworkManager

BUSYBOX = "/bin/busybox"


def _in(ns: str, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={ns}", *cmd], capture_output=True, text=True, timeout=timeout
    )


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture
def mgr(tmp_path: Path) -> Iterator[NetworkManager]:
    tag = secrets.token_hex(3)
    dns = EmbeddedDNS()
    m = NetworkManager(
        tmp_path / "net", default_bridge=f"skt{tag}", table=f"skifftest_{tag}", dns=dns
    )
    m.start()
    made: list[str] = []
    veths: set[str] = set()
    connect = m.connect

    def recording_connect(*args: Any, **kwargs: Any) -> Any:
        ep = connect(*args, **kwargs)
        veths.add(ep.veth)
        return ep

    m.connect = recording_connect  # type: ignore[method-assign]
    m.test_netns = made  # type: ignore[attr-defined]
    try:
        yield m
    finally:
        bridges = {n.bridge for n in m.networks() if n.bridge}
        dns.close()
        m.destroy_all()
        for p in made:
            netns.remove(p)
        assert not nftables.table_exists("ip", m.firewall.name)
        left = _links()  # only what this test made is checked: other programs may add links
        assert not (bridges | veths) & left, f"left behind: {(bridges | veths) & left}"


def _ns(mgr: NetworkManager, tmp_path: Path, name: str) -> str:
    p = netns.create(str(tmp_path / "ns" / name))
    mgr.test_netns.append(p)  # type: ignore[attr-defined]
    return p


def test_default_bridge_gives_address_route_and_masquerade(
    mgr: NetworkManager, tmp_path: Path
) -> None:
    ns = _ns(mgr, tmp_path, "a")
    ep = mgr.connect("c" * 64, "bridge", ns, name="a")
    out = _in(ns, "ip", "-4", "-o", "addr").stdout
    assert f"{ep.ip}/{ep.prefixlen}" in out and "eth0" in out
    assert f"default via {ep.gateway}" in _in(ns, "ip", "route").stdout
    # the gateway (the host side) answers
    assert _in(ns, BUSYBOX, "ping", "-c", "1", "-W", "2", ep.gateway).returncode == 0
    script = subprocess.run(
        ["nft", "list", "table", "ip", mgr.firewall.name], capture_output=True, text=True
    ).stdout
    assert "masquerade" in script and mgr.get("bridge").subnet in script


def test_user_network_peers_reach_each_other_by_name(mgr: NetworkManager, tmp_path: Path) -> None:
    net = mgr.create("front")
    a, b = _ns(mgr, tmp_path, "a"), _ns(mgr, tmp_path, "b")
    mgr.connect("a" * 64, "front", a, name="web")
    ep_b = mgr.connect("b" * 64, "front", b, name="db", aliases=["database"])
    assert _in(a, BUSYBOX, "ping", "-c", "1", "-W", "2", ep_b.ip).returncode == 0
    # names resolve through the embedded DNS on the gateway
    for name in ("db", "database", "b" * 12):
        res = _in(a, BUSYBOX, "nslookup", name, net.gateway)
        assert ep_b.ip in res.stdout, res.stdout + res.stderr


def test_networks_are_isolated_and_internal_has_no_way_out(
    mgr: NetworkManager, tmp_path: Path
) -> None:
    mgr.create("one")
    mgr.create("two")
    inner = mgr.create("sealed", internal=True)
    a, b, c = (_ns(mgr, tmp_path, x) for x in "abc")
    mgr.connect("a" * 64, "one", a)
    ep_b = mgr.connect("b" * 64, "two", b)
    ep_c = mgr.connect("c" * 64, "sealed", c)
    assert _in(a, BUSYBOX, "ping", "-c", "1", "-W", "1", ep_b.ip).returncode != 0
    assert ep_c.gateway == ""
    assert "default" not in _in(c, "ip", "route").stdout
    assert inner.internal


def test_published_port_answers_on_loopback_and_gateway(
    mgr: NetworkManager, tmp_path: Path
) -> None:
    ns = _ns(mgr, tmp_path, "srv")
    ep = mgr.connect("d" * 64, "bridge", ns)
    made = mgr.publish("d" * 64, {"80/tcp": [{"HostIp": "", "HostPort": ""}]})
    port = made[0]["host_port"]
    assert port > 0
    server = subprocess.Popen(
        ["nsenter", f"--net={ns}", BUSYBOX, "nc", "-ll", "-p", "80", "-e", "/bin/echo", "hello"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for host in ("127.0.0.1", ep.gateway):
            got = b""
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and b"hello" not in got:
                try:
                    with socket.create_connection((host, port), timeout=2) as s:
                        got = s.recv(100)
                except OSError:
                    time.sleep(0.1)
            assert b"hello" in got, f"no answer on {host}:{port}"
        # the host port is reserved: nobody else can bind it
        with pytest.raises(OSError), socket.socket() as s:
            s.bind(("0.0.0.0", port))
    finally:
        server.kill()
        server.wait()
    mgr.disconnect("d" * 64)
    assert str(port) not in str(mgr.firewall.port_elements())


def test_bad_input_is_refused_and_leaves_nothing(mgr: NetworkManager, tmp_path: Path) -> None:
    from skiff.errors import Conflict, InvalidArgument, NotFound

    n = mgr.create("taken")
    with pytest.raises(Conflict):
        mgr.create("taken")
    with pytest.raises(Conflict, match="overlaps"):
        mgr.create("overlap", subnet=n.subnet)
    with pytest.raises(NotFound):
        mgr.get("nonexistent")
    with pytest.raises(InvalidArgument):
        mgr.create("bad", subnet="10.999.0.0/24")
    assert {x.name for x in mgr.networks()} == {"bridge", "host", "none", "taken"}
    ns = _ns(mgr, tmp_path, "x")
    mgr.connect("e" * 64, "bridge", ns)
    with pytest.raises(Conflict):
        mgr.remove("bridge")
    mgr.connect("f" * 64, "taken", _ns(mgr, tmp_path, "y"))
    with pytest.raises(Conflict, match="active endpoints"):
        mgr.remove("taken")


def test_reconcile_after_crash_removes_leaks_and_keeps_live(
    tmp_path: Path, mgr: NetworkManager
) -> None:
    a, b = _ns(mgr, tmp_path, "a"), _ns(mgr, tmp_path, "b")
    live = mgr.connect("1" * 64, "bridge", a)
    dead = mgr.connect("2" * 64, "bridge", b)
    mgr.publish("2" * 64, {"81/tcp": [{"HostPort": ""}]})
    mgr.stop()
    # a new manager on the same state (the daemon restarted after kill -9)
    again = NetworkManager(
        mgr.state_dir, default_bridge=mgr.default_bridge, table=mgr.firewall.name, dns=None
    )
    again.start()
    removed = again.reconcile({"1" * 64})
    assert removed["endpoints"] == ["2" * 64]
    assert dead.veth not in _links() and live.veth in _links()
    assert again.ipam.owners(again.get("bridge").id).get(live.ip) == "1" * 64
    assert dead.ip not in again.ipam.owners(again.get("bridge").id)
    maps = again.firewall.port_elements()
    assert not any(maps[m] for m in ("tcp_any", "tcp_ip", "udp_any", "udp_ip"))
