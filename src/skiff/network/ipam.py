"""IP address management: picking free subnets and handing out addresses in them.

State lives in one JSON file, written temp -> fsync -> rename, so a crash leaves the old or
the new allocation table. Subnets are picked from a pool and never overlap a network the host
already routes (docker0's 172.17.0.0/16 included) or another skiff network.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from skiff.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Unavailable

# The default pool: 10.210.0.0/16 cut into /24s (256 networks). Docker's own pools
# (172.17-31.0.0/16, 192.168.0.0/16) are left to Docker so both engines can live side by side.
DEFAULT_POOL = ipaddress.IPv4Network("10.210.0.0/16")
DEFAULT_PREFIX = 24


@dataclass
class Pool:
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    # address -> owner (container id, or "gateway")
    allocated: dict[str, str] = field(default_factory=dict)


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError as exc:
        raise InvalidArgument(f"invalid subnet {text!r}: {exc}") from None
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {text}: too small (a /30 at least is needed)")
    return net


def pick_subnet(
    used: Iterable[ipaddress.IPv4Network],
    pool: ipaddress.IPv4Network = DEFAULT_POOL,
    prefix: int = DEFAULT_PREFIX,
) -> ipaddress.IPv4Network:
    """The first `prefix`-sized subnet of `pool` that overlaps nothing in `used`."""
    taken = [n for n in used if n.prefixlen > 0]  # a default route overlaps everything
    for candidate in pool.subnets(new_prefix=prefix):
        if not any(candidate.overlaps(n) for n in taken):
            return candidate
    raise Unavailable(f"no free /{prefix} subnet left in the address pool {pool}")


class Ipam:
    """Address pools, one per network, persisted at `path`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._pools: dict[str, Pool] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return
        for net_id, p in data.get("pools", {}).items():
            self._pools[net_id] = Pool(
                ipaddress.IPv4Network(p["subnet"]),
                ipaddress.IPv4Address(p["gateway"]),
                dict(p.get("allocated", {})),
            )

    def _save(self) -> None:
        data = {
            "pools": {
                net_id: {
                    "subnet": str(p.subnet),
                    "gateway": str(p.gateway),
                    "allocated": p.allocated,
                }
                for net_id, p in self._pools.items()
            }
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)

    def subnets(self) -> list[ipaddress.IPv4Network]:
        with self._lock:
            return [p.subnet for p in self._pools.values()]

    def pool(self, net_id: str) -> Pool:
        try:
            return self._pools[net_id]
        except KeyError:
            raise NotFound(f"network {net_id}: no address pool") from None

    def add_pool(
        self,
        net_id: str,
        subnet: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address | None = None,
    ) -> Pool:
        with self._lock:
            if net_id in self._pools:
                raise AlreadyExists(f"network {net_id}: address pool exists")
            for other_id, other in self._pools.items():
                if other.subnet.overlaps(subnet):
                    raise Conflict(
                        f"Pool overlaps with other one on this address space: {subnet} "
                        f"overlaps {other.subnet} of network {other_id[:12]}"
                    )
            gw = gateway or next(subnet.hosts())
            if gw not in subnet:
                raise InvalidArgument(f"gateway {gw} is not in subnet {subnet}")
            pool = Pool(subnet, gw, {str(gw): "gateway"})
            self._pools[net_id] = pool
            self._save()
            return pool

    def remove_pool(self, net_id: str) -> None:
        with self._lock:
            if self._pools.pop(net_id, None) is not None:
                self._save()

    def allocate(self, net_id: str, owner: str, want: str | None = None) -> ipaddress.IPv4Address:
        """An address for `owner` (the same one again if it has one); `want` asks for one."""
        with self._lock:
            pool = self.pool(net_id)
            for addr, who in pool.allocated.items():
                if who == owner and (want is None or addr == want):
                    return ipaddress.IPv4Address(addr)
            if want is not None:
                ip = ipaddress.IPv4Address(want)
                if ip not in pool.subnet or ip in (
                    pool.subnet.network_address,
                    pool.subnet.broadcast_address,
                ):
                    raise InvalidArgument(f"address {want} is not usable in subnet {pool.subnet}")
                if str(ip) in pool.allocated:
                    raise Conflict(f"Address already in use: {want}")
                pool.allocated[str(ip)] = owner
                self._save()
                return ip
            for ip in pool.subnet.hosts():
                if str(ip) not in pool.allocated:
                    pool.allocated[str(ip)] = owner
                    self._save()
                    return ip
            raise Unavailable(
                f"no available IPv4 addresses on network {net_id[:12]} ({pool.subnet})"
            )

    def release(self, net_id: str, owner: str) -> None:
        with self._lock:
            pool = self._pools.get(net_id)
            if pool is None:
                return
            gone = [a for a, who in pool.allocated.items() if who == owner]
            for a in gone:
                del pool.allocated[a]
            if gone:
                self._save()

    def owners(self, net_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self.pool(net_id).allocated)

    def release_all_except(self, net_id: str, keep: set[str]) -> list[str]:
        """Reconcile: free addresses whose owner is not in `keep` (and not the gateway)."""
        with self._lock:
            pool = self._pools.get(net_id)
            if pool is None:
                return []
            gone = [a for a, who in pool.allocated.items() if who != "gateway" and who not in keep]
            for a in gone:
                del pool.allocated[a]
            if gone:
                self._save()
            return gone
