import ipaddress
import struct
from pathlib import Path

import pytest

from skiff.errors import Conflict, InvalidArgument
from skiff.network.dns import EmbeddedDNS, build_answer, parse_query
from skiff.network.files import hosts_file, resolv_conf
from skiff.network.ipam import Ipam, pick_subnet
from skiff.network.ports import expand_bindings, parse_port_key


def test_pick_subnet_avoids_routes_and_docker0() -> None:
    used = [
        ipaddress.IPv4Network("10.210.0.0/24"),
        ipaddress.IPv4Network("172.17.0.0/16"),
        ipaddress.IPv4Network("0.0.0.0/0"),
    ]
    assert str(pick_subnet(used)) == "10.210.1.0/24"


def test_ipam_allocates_persists_and_refuses_overlap(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path / "ipam.json")
    pool = ipam.add_pool("n1", ipaddress.IPv4Network("10.5.0.0/29"))
    assert str(pool.gateway) == "10.5.0.1"
    a = ipam.allocate("n1", "c1")
    assert str(a) == "10.5.0.2"
    assert ipam.allocate("n1", "c1") == a  # idempotent per owner
    with pytest.raises(Conflict):
        ipam.add_pool("n2", ipaddress.IPv4Network("10.5.0.0/24"))
    with pytest.raises(Conflict):
        ipam.allocate("n1", "c2", want="10.5.0.2")
    again = Ipam(tmp_path / "ipam.json")
    assert again.owners("n1")["10.5.0.2"] == "c1"
    assert again.release_all_except("n1", set()) == ["10.5.0.2"]
    # the /29 has 6 hosts: gateway + 5
    for i in range(5):
        again.allocate("n1", f"x{i}")
    with pytest.raises(Exception, match="no available"):
        again.allocate("n1", "overflow")


@pytest.mark.parametrize(
    "key,want",
    [("80/tcp", (80, 80, "tcp")), ("53/udp", (53, 53, "udp")), ("8000-8002", (8000, 8002, "tcp"))],
)
def test_port_keys(key: str, want: tuple[int, int, str]) -> None:
    assert parse_port_key(key) == want


@pytest.mark.parametrize("key", ["x/tcp", "80/foo", "0/tcp", "70000", "9-1"])
def test_bad_port_keys(key: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_port_key(key)


def test_expand_bindings_ranges() -> None:
    got = expand_bindings(
        {
            "80-81/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9080-9081"}],
            "53/udp": [{"HostPort": ""}],
        }
    )
    assert ("tcp", 80, "127.0.0.1", 9080) in got and ("tcp", 81, "127.0.0.1", 9081) in got
    assert ("udp", 53, "", 0) in got
    with pytest.raises(InvalidArgument):
        expand_bindings({"80-82/tcp": [{"HostPort": "1-2"}]})


def _query(name: str, qtype: int = 1) -> bytes:
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", qtype, 1)


def test_dns_answers_known_names_only_on_their_network() -> None:
    dns = EmbeddedDNS(upstream=[])
    dns.set_records("10.1.0.1", {"web": ["10.1.0.2"]})
    q = _query("web")
    reply = dns._answer("10.1.0.1", q)
    assert reply is not None
    qid, flags, _qd, an = struct.unpack("!HHHH", reply[:8])
    assert (qid, an) == (0x1234, 1) and flags & 0x8000
    assert reply.endswith(ipaddress.IPv4Address("10.1.0.2").packed)
    # asked on another network: not ours -> forwarded; no upstream -> SERVFAIL, no answer
    other = dns._answer("10.2.0.1", q)
    assert other is not None and struct.unpack("!HHHH", other[:8])[3] == 0
    assert struct.unpack("!H", other[2:4])[0] & 0xF == 2


def test_parse_query_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_query(b"\x00\x01")
    _, _, name, qtype, _, end = parse_query(_query("a.b", 28))
    assert (name, qtype) == ("a.b", 28)
    assert build_answer(_query("x"), end - 2, [])[:2] == b"\x12\x34"


def test_hosts_and_resolv(tmp_path: Path) -> None:
    h = hosts_file("abc", "10.0.0.2", extra_hosts=["db:1.2.3.4"], links=[("alias", "10.0.0.3")])
    assert "10.0.0.2\tabc" in h and "1.2.3.4\tdb" in h and "10.0.0.3\talias" in h
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch example.org\n")
    r = resolv_conf(host_path=str(host))
    assert "127.0.0.53" not in r and "nameserver 9.9.9.9" in r and "search example.org" in r
    assert resolv_conf(host_path=str(host), embedded="10.1.0.1").startswith("nameserver 10.1.0.1")
    assert "nameserver 1.1.1.1" in resolv_conf(host_path=str(host), dns=["1.1.1.1"])
