"""The minimal rtnetlink client configures a namespace's inside like `ip` would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from skiff.linux import netns, rtnl


def _ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={ns}", "ip", *args], capture_output=True, text=True
    ).stdout


def test_configure_address_route_and_loopback(tmp_path: Path) -> None:
    ns = netns.create(str(tmp_path / "ns"))
    try:
        subprocess.run(
            [
                "nsenter",
                f"--net={ns}",
                "ip",
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0p",
            ],
            check=True,
        )
        rtnl.configure(ns, "eth0", "10.251.3.7", 24, "10.251.3.1")
        addrs = _ip(ns, "-4", "-o", "addr")
        assert "10.251.3.7/24" in addrs and "brd 10.251.3.255" in addrs
        assert "127.0.0.1/8" in addrs  # lo is up, so its address shows
        assert "default via 10.251.3.1 dev eth0" in _ip(ns, "route")
        assert ",UP," in _ip(ns, "-o", "link", "show", "eth0").replace("<", ",").replace(">", ",")
        # a second address add of the same address is an error with the kernel's errno
        with pytest.raises(OSError) as exc:
            rtnl.configure(ns, "eth0", "10.251.3.7", 24, None)
        assert exc.value.errno == 17  # EEXIST
        with pytest.raises(OSError):
            rtnl.configure(ns, "nosuch0", "10.251.3.8", 24, None)
    finally:
        netns.remove(ns)


def test_loopback_only(tmp_path: Path) -> None:
    ns = netns.create(str(tmp_path / "lo"))
    try:
        rtnl.loopback_up(ns)
        assert "127.0.0.1/8" in _ip(ns, "-4", "-o", "addr")
    finally:
        netns.remove(ns)
