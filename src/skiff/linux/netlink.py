"""rtnetlink through pyroute2: bridges, veth pairs, addresses and routes.

One `Netlink` per process keeps one socket open to the host namespace (pyroute2 costs ~100 ms
to import, so it is imported here, lazily, and only by the daemon). Work inside a container's
namespace opens a socket there for the duration of one call.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from skiff.errors import AlreadyExists, FailedPrecondition, NotFound


def _pyroute2() -> Any:
    try:
        import pyroute2
    except ImportError as exc:  # pragma: no cover - install brings it
        raise FailedPrecondition("networking needs pyroute2 (make install)") from exc
    return pyroute2


class _OneThread:
    """Runs every call on one worker thread: pyroute2 0.9 opens a netlink socket per calling
    thread and never closes it, so a daemon serving requests on many threads would leak one fd
    per thread (found by the load test)."""

    def __init__(self, make: Any) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._obj: Any = self._pool.submit(make).result()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._pool.submit(attr, *args, **kwargs).result()

        return call

    def shutdown(self) -> None:
        self._pool.submit(self._obj.close).result()
        self._pool.shutdown()


class Netlink:
    """The host namespace's links, addresses and routes."""

    def __init__(self) -> None:
        self._ipr: Any = _OneThread(_pyroute2().IPRoute)

    def close(self) -> None:
        self._ipr.shutdown()

    # -- queries -------------------------------------------------------------------------
    def link_index(self, name: str) -> int | None:
        found = self._ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def link_names(self) -> list[str]:
        return [str(link.get_attr("IFLA_IFNAME")) for link in self._ipr.get_links()]

    def links_on(self, bridge: str) -> list[str]:
        """Names of the links whose master is `bridge`."""
        idx = self.link_index(bridge)
        if idx is None:
            return []
        return [
            str(link.get_attr("IFLA_IFNAME"))
            for link in self._ipr.get_links()
            if link.get_attr("IFLA_MASTER") == idx
        ]

    def used_networks(self) -> list[ipaddress.IPv4Network]:
        """Every IPv4 network the host routes or has an address in (docker0's included)."""
        nets: list[ipaddress.IPv4Network] = []
        for route in self._ipr.get_routes(family=2):
            dst = route.get_attr("RTA_DST")
            if dst is None:
                continue
            nets.append(ipaddress.IPv4Network(f"{dst}/{route['dst_len']}", strict=False))
        for addr in self._ipr.get_addr(family=2):
            ip = addr.get_attr("IFA_ADDRESS")
            if ip and not ip.startswith("127."):
                nets.append(ipaddress.IPv4Network(f"{ip}/{addr['prefixlen']}", strict=False))
        return nets

    # -- bridges -------------------------------------------------------------------------
    def ensure_bridge(self, name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> int:
        """Create bridge `name` with `gateway/prefixlen` and bring it up (idempotent)."""
        idx = self.link_index(name)
        if idx is None:
            self._ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            idx = self.link_index(name)
            if idx is None:
                raise FailedPrecondition(f"bridge {name}: created but not found")
        have = {
            (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
            for a in self._ipr.get_addr(index=idx, family=2)
        }
        if (gateway, prefixlen) not in have:
            self._ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        self._ipr.link("set", index=idx, state="up")
        return idx

    def delete_link(self, name: str) -> bool:
        """Delete a link by name; False when it was not there."""
        idx = self.link_index(name)
        if idx is None:
            return False
        self._ipr.link("del", index=idx)
        return True

    # -- container interfaces ------------------------------------------------------------
    def add_veth_into(
        self,
        host_name: str,
        bridge: str,
        netns_path: str,
        *,
        ifname: str,
        address: str,
        prefixlen: int,
        gateway: str | None,
        mac: str | None = None,
        mtu: int = 1500,
    ) -> None:
        """Make a veth pair: `host_name` on `bridge`, its peer as `ifname` inside the netns,
        configured with `address/prefixlen`, up, lo up, and a default route via `gateway`."""
        bridge_idx = self.link_index(bridge)
        if bridge_idx is None:
            raise NotFound(f"bridge {bridge} does not exist")
        if self.link_index(host_name) is not None:
            raise AlreadyExists(f"interface {host_name} exists already")
        fd = os.open(netns_path, os.O_RDONLY)
        try:
            peer: dict[str, Any] = {"ifname": ifname, "net_ns_fd": fd, "mtu": mtu}
            if mac:
                peer["address"] = mac
            self._ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer)
        finally:
            os.close(fd)
        try:
            host_idx = self.link_index(host_name)
            self._ipr.link("set", index=host_idx, master=bridge_idx, state="up")
            from skiff.linux import rtnl

            rtnl.configure(netns_path, ifname, address, prefixlen, gateway)
        except BaseException:
            self.delete_link(host_name)
            raise


@contextmanager
def in_netns(path: str) -> Iterator[Any]:
    """A pyroute2 IPRoute bound to the namespace pinned at `path`."""
    ipr = _pyroute2().IPRoute(netns=path)
    try:
        yield ipr
    finally:
        ipr.close()


def bring_up_loopback(netns_path: str) -> None:
    from skiff.linux import rtnl

    rtnl.loopback_up(netns_path)
