"""Published ports: Docker's PortBindings -> concrete host ports, reserved while in use."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

from skiff.errors import Conflict, InvalidArgument


@dataclass(frozen=True)
class Binding:
    proto: str
    container_port: int
    host_ip: str
    host_port: int


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def parse_port_key(key: str) -> tuple[int, int, str]:
    """'80/tcp', '8000-8010/udp', '53' -> (first, last, proto)."""
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid port {key!r}: unknown protocol {proto!r}")
    first, _, last = port.partition("-")
    try:
        a, b = int(first), int(last or first)
    except ValueError:
        raise InvalidArgument(f"invalid port {key!r}: not a number") from None
    if not (0 < a <= b <= 65535):
        raise InvalidArgument(f"invalid port {key!r}: out of range")
    return a, b, proto


class PortReservations:
    """Holds one bound socket per published host port so no other program takes it."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, int], socket.socket] = {}

    def reserve(self, proto: str, host_ip: str, host_port: int) -> int:
        """Bind host_ip:host_port (0 = a free one); return the port. Conflict when taken."""
        if proto == "sctp":
            raise InvalidArgument("publishing sctp ports is not supported by skiff")
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        addr = host_ip or "0.0.0.0"
        if host_port == 0:
            lo, hi = _ephemeral_range()
            candidates = random.sample(range(lo, hi + 1), k=min(200, hi - lo + 1))
        else:
            candidates = [host_port]
        last_err: OSError | None = None
        for port in candidates:
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind((addr, port))
            except OSError as exc:
                s.close()
                last_err = exc
                continue
            self._held[(proto, addr, port)] = s
            return port
        if host_port:
            raise Conflict(
                f"Bind for {addr}:{host_port} failed: port is already allocated ({last_err.strerror if last_err else ''})"
            )
        raise Conflict(f"no free host port for {proto} on {addr}")

    def release(self, proto: str, host_ip: str, host_port: int) -> None:
        s = self._held.pop((proto, host_ip or "0.0.0.0", host_port), None)
        if s is not None:
            s.close()

    def close(self) -> None:
        for s in self._held.values():
            s.close()
        self._held.clear()


def expand_bindings(
    port_bindings: dict[str, list[dict[str, str]] | None],
) -> list[tuple[str, int, str, int]]:
    """Docker's HostConfig.PortBindings -> [(proto, container_port, host_ip, host_port or 0)].

    A key with a range maps onto a host range of the same length, or onto random ports.
    """
    out: list[tuple[str, int, str, int]] = []
    for key, binds in (port_bindings or {}).items():
        first, last, proto = parse_port_key(key)
        for b in binds or [{}]:
            host_ip = (b or {}).get("HostIp", "") or ""
            host_port_text = (b or {}).get("HostPort", "") or ""
            if host_ip and ":" in host_ip:
                continue  # IPv6 bindings: skiff's bridge is IPv4-only
            if host_port_text:
                hfirst, hlast, _ = parse_port_key(host_port_text + "/" + proto)
            else:
                hfirst = hlast = 0
            count = last - first + 1
            if hfirst and hlast - hfirst + 1 != count:
                if count == 1:
                    hlast = hfirst
                else:
                    raise InvalidArgument(
                        f"invalid port range {host_port_text}:{key}: ranges must be of equal length"
                    )
            for i in range(count):
                out.append((proto, first + i, host_ip, hfirst + i if hfirst else 0))
    return out
