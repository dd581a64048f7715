"""Tables, sizes, durations and port strings as docker prints them."""

from __future__ import annotations

import pytest

from skiff.cli.containers import displayable_ports
from skiff.cli.flags import FlagError
from skiff.cli.output import ellipsis, human_duration, human_size, ram_in_bytes, tabwrite
from skiff.cli.runopts import parse_duration, parse_port_spec


def test_tabwrite_matches_go_tabwriter() -> None:
    text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox\tx\n"
    assert tabwrite(text) == "CONTAINER ID   IMAGE     NAMES\nabc            busybox   x\n"
    # empty cells still pad to the minimum width of 10
    assert tabwrite("A\tB\tC\n\t\tz\n") == "A         B         C\n                    z\n"
    # a line without tabs ends the column block
    assert tabwrite("a\tb\nplain\nlonger-cell\tc\n") == "a         b\nplain\nlonger-cell   c\n"


@pytest.mark.parametrize(
    ("size", "prec", "text"),
    [
        (0, 3, "0B"),
        (999, 3, "999B"),
        (1000, 3, "1kB"),
        (1_990_000, 3, "1.99MB"),
        (4_261_000, 4, "4.261MB"),
        (1_234_567_890, 3, "1.23GB"),
    ],
)
def test_human_size(size: int, prec: int, text: str) -> None:
    assert human_size(size, prec) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (3 * 60, "3 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_units_parsing() -> None:
    assert ram_in_bytes("512m") == 512 << 20
    assert ram_in_bytes("1.5g") == int(1.5 * (1 << 30))
    assert ram_in_bytes("100") == 100
    with pytest.raises(Exception, match="invalid size: 'lots'"):
        ram_in_bytes("lots")
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("500ms") == 500 * 10**6
    with pytest.raises(FlagError):
        parse_duration("5 parsecs")
    assert ellipsis("a" * 30, 20) == "a" * 19 + "…"


def test_port_specs() -> None:
    assert parse_port_spec("8080:80") == (
        ["80/tcp"],
        {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
    )
    assert parse_port_spec("127.0.0.1::53/udp")[1] == {
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]
    }
    assert parse_port_spec("[::1]:80:80")[1] == {"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}
    assert parse_port_spec("7000-7001")[0] == ["7000/tcp", "7001/tcp"]
    for bad, msg in (
        ("99999:80", "invalid hostPort: 99999"),
        ("80:x", "invalid containerPort: x"),
        ("80/xyz", "invalid proto: xyz"),
        ("1.2.3.999:80:80", "invalid IP address: 1.2.3.999"),
    ):
        with pytest.raises(FlagError, match=msg):
            parse_port_spec(bad)


def test_displayable_ports_groups_ranges_like_docker() -> None:
    ports = [
        {"PrivatePort": 80, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 53, "Type": "udp"},
    ]
    assert displayable_ports(ports) == "0.0.0.0:53->53/udp, 80-81/tcp, 0.0.0.0:8443->443/tcp"
