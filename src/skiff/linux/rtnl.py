"""A minimal rtnetlink client for configuring the inside of a network namespace.

Opening a pyroute2 socket in another namespace costs ~9 ms (it forks); this does the few things
a container's side needs — link up, an IPv4 address, a default route — with hand-built
messages on a NETLINK_ROUTE socket created by a thread that has joined the namespace (a socket
belongs to the namespace it was created in; setns on a thread changes only that thread).
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from skiff.linux.syscalls import libc

NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000
RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFF_UP = 0x1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

T = TypeVar("T")


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


class Rtnl:
    """One NETLINK_ROUTE socket; every request is acknowledged or raises OSError."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> None:
        self.seq += 1
        header = struct.pack(
            "=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0
        )
        self.sock.send(header + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if mtype == NLMSG_ERROR and seq == self.seq:
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(length, 16)

    def link_up(self, index: int) -> None:
        self.request(
            RTM_NEWLINK, 0, struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        )

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        ip = ipaddress.IPv4Address(address)
        net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
        body = struct.pack("=BBBBI", socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += _attr(IFA_LOCAL, ip.packed) + _attr(IFA_ADDRESS, ip.packed)
        if prefixlen < 31:
            body += _attr(IFA_BROADCAST, net.broadcast_address.packed)
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, gateway: str) -> None:
        body = struct.pack(
            "=BBBBBBBBI",
            socket.AF_INET,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
        )
        body += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)


def in_netns(netns_path: str, work: Callable[[Rtnl], T]) -> T:
    """Run `work(rtnl)` on a thread that joined the namespace pinned at `netns_path`."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc().setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            rtnl = Rtnl()
            try:
                result.append(work(rtnl))
            finally:
                rtnl.close()
        except BaseException as exc:
            failure.append(exc)

    # the thread ends inside the other namespace, and nothing else ever runs on it
    t = threading.Thread(target=run, name="netns-config")
    t.start()
    t.join()
    if failure:
        raise failure[0]
    return result[0]


def configure(
    netns_path: str, ifname: str, address: str, prefixlen: int, gateway: str | None
) -> None:
    """lo up; `ifname` up with `address/prefixlen`; a default route via `gateway`."""

    def work(rtnl: Rtnl) -> None:
        rtnl.link_up(socket.if_nametoindex("lo"))
        index = socket.if_nametoindex(ifname)
        rtnl.add_address(index, address, prefixlen)
        rtnl.link_up(index)
        if gateway:
            try:
                rtnl.add_default_route(gateway)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise

    in_netns(netns_path, work)


def loopback_up(netns_path: str) -> None:
    in_netns(netns_path, lambda rtnl: rtnl.link_up(socket.if_nametoindex("lo")))
