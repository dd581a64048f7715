"""Networks as Docker users know them: `bridge` (the default), `host`, `none`, and user-defined
bridge networks, with endpoints, published ports and an embedded DNS server.

Vocabulary: a *network* is a bridge device + a subnet + firewall rules; an *endpoint* is one
container's veth pair on one network, with an address and maybe published ports. Records are
JSON files under the state dir, written temp -> fsync -> rename; `reconcile()` after a crash
removes whatever (links, addresses, rules) belongs to no live container and re-reserves the rest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.errors import Conflict, InvalidArgument, NotFound
from skiff.network.firewall import Firewall, PortRule
from skiff.network.ipam import Ipam, parse_subnet, pick_subnet
from skiff.network.ports import PortReservations, expand_bindings

PREDEFINED = ("bridge", "host", "none")


@dataclass
class Network:
    id: str
    name: str
    driver: str  # "bridge" | "host" | "null"
    bridge: str = ""
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    default: bool = False  # the daemon's own `bridge` network (no DNS, --link names)
    icc: bool = True

    def scope_dns(self) -> bool:
        """User-defined bridge networks get the embedded DNS server, as in Docker."""
        return self.driver == "bridge" and not self.default


@dataclass
class Endpoint:
    container_id: str
    network_id: str
    veth: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    name: str = ""  # container name, for DNS
    aliases: list[str] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(
        default_factory=list
    )  # {proto, container_port, host_ip, host_port}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def mac_for(ip: str) -> str:
    """Docker's deterministic MAC: 02:42 followed by the IPv4 address."""
    parts = [int(x) for x in ip.split(".")]
    return "02:42:" + ":".join(f"{p:02x}" for p in parts)


class NetworkManager:
    """All networks of one daemon. `used_networks` tells which subnets the host already routes."""

    def __init__(
        self,
        state_dir: Path,
        *,
        default_bridge: str = "skiff0",
        bip: str | None = None,
        icc: bool = True,
        table: str | None = None,
        netlink: Any = None,
        dns: Any = None,
    ) -> None:
        self.state_dir = state_dir
        self.default_bridge = default_bridge
        self.bip = bip
        self.icc = icc
        self.firewall = Firewall(
            table
            or (
                "skiff"
                if default_bridge == "skiff0"
                else f"skiff_{default_bridge}".replace("-", "_")
            )
        )
        self.ipam = Ipam(state_dir / "ipam.json")
        self.ports = PortReservations()
        self._lock = threading.RLock()
        self._networks: dict[str, Network] = {}
        self._endpoints: dict[tuple[str, str], Endpoint] = {}
        self._netlink = netlink
        self.dns = dns
        self._load()

    # -- persistence ---------------------------------------------------------------------
    def _load(self) -> None:
        for p in sorted((self.state_dir / "networks").glob("*.json")):
            n = Network(**json.loads(p.read_text()))
            self._networks[n.id] = n
        ep_file = self.state_dir / "endpoints.json"
        if ep_file.exists():
            for e in json.loads(ep_file.read_text()):
                ep = Endpoint(**e)
                self._endpoints[(ep.container_id, ep.network_id)] = ep

    def _save_network(self, n: Network) -> None:
        _write_json(self.state_dir / "networks" / f"{n.id}.json", asdict(n))

    def _save_endpoints(self) -> None:
        _write_json(
            self.state_dir / "endpoints.json", [asdict(e) for e in self._endpoints.values()]
        )

    @property
    def netlink(self) -> Any:
        if self._netlink is None:
            from skiff.linux.netlink import Netlink

            self._netlink = Netlink()
        return self._netlink

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Make sure the predefined networks and the firewall table exist; wire the bridges."""
        with self._lock:
            _sysctl("net/ipv4/ip_forward", "1")
            self.firewall.ensure()
            for name, driver in (("host", "host"), ("none", "null")):
                if self._find(name) is None:
                    n = Network(id=_new_id(), name=name, driver=driver, created=_now())
                    self._networks[n.id] = n
                    self._save_network(n)
            if self._find("bridge") is None:
                subnet = parse_subnet(self.bip) if self.bip else pick_subnet(self._used())
                gateway = ipaddress.IPv4Interface(self.bip).ip if self.bip else None
                n = Network(
                    id=_new_id(),
                    name="bridge",
                    driver="bridge",
                    bridge=self.default_bridge,
                    subnet=str(subnet),
                    created=_now(),
                    default=True,
                    icc=self.icc,
                    options={"com.docker.network.bridge.name": self.default_bridge},
                )
                pool = self.ipam.add_pool(n.id, subnet, gateway)
                n.gateway = str(pool.gateway)
                self._networks[n.id] = n
                self._save_network(n)
            for n in self._networks.values():
                if n.driver == "bridge":
                    self._wire(n)

    def _wire(self, n: Network) -> None:
        net = ipaddress.IPv4Network(n.subnet)
        self.netlink.ensure_bridge(n.bridge, n.gateway, net.prefixlen)
        _sysctl(f"net/ipv4/conf/{n.bridge}/route_localnet", "1")
        self.firewall.add_network(n.bridge, n.subnet, internal=n.internal, icc=n.icc)
        if self.dns is not None and n.scope_dns():
            self.dns.listen(n.gateway)

    def _used(self) -> list[ipaddress.IPv4Network]:
        return list(self.netlink.used_networks()) + self.ipam.subnets()

    def stop(self) -> None:
        """Release the port reservations (rules and links stay for containers that live on)."""
        self.ports.close()

    def destroy_all(self) -> None:
        """Remove every bridge, rule and record this manager made (tests, `--cleanup`)."""
        with self._lock:
            for ep in list(self._endpoints.values()):
                self._teardown_endpoint(ep)
            self._endpoints.clear()
            self._save_endpoints()
            for n in list(self._networks.values()):
                if n.driver == "bridge":
                    self.firewall.remove_network(n.bridge, n.subnet)
                    self.netlink.delete_link(n.bridge)
            self.firewall.destroy()
            self.ports.close()

    # -- networks ------------------------------------------------------------------------
    def _find(self, name_or_id: str) -> Network | None:
        for n in self._networks.values():
            if n.name == name_or_id or n.id == name_or_id:
                return n
        matches = [n for n in self._networks.values() if n.id.startswith(name_or_id)]
        return matches[0] if len(matches) == 1 else None

    def get(self, name_or_id: str) -> Network:
        with self._lock:
            n = self._find(name_or_id)
            if n is None:
                raise NotFound(f"network {name_or_id} not found")
            return n

    def networks(self) -> list[Network]:
        with self._lock:
            return sorted(self._networks.values(), key=lambda n: n.created)

    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> Network:
        if not name:
            raise InvalidArgument("network name must not be empty")
        if driver not in ("bridge", ""):
            raise InvalidArgument(f"network driver {driver!r} is not supported (only bridge)")
        with self._lock:
            if name in PREDEFINED or any(n.name == name for n in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            net = parse_subnet(subnet) if subnet else pick_subnet(self._used())
            if subnet:
                for used in self.netlink.used_networks():
                    if used.prefixlen > 0 and used.overlaps(net):
                        raise Conflict(
                            f"Pool overlaps with other one on this address space: {net} overlaps the host route {used}"
                        )
            gw = ipaddress.IPv4Address(gateway) if gateway else None
            nid = _new_id()
            bridge = (options or {}).get("com.docker.network.bridge.name") or f"br-{nid[:12]}"
            if len(bridge) > 15:
                raise InvalidArgument(f"bridge name {bridge!r} is longer than 15 characters")
            pool = self.ipam.add_pool(nid, net, gw)
            n = Network(
                id=nid,
                name=name,
                driver="bridge",
                bridge=bridge,
                subnet=str(net),
                gateway=str(pool.gateway),
                internal=internal,
                labels=dict(labels or {}),
                options=dict(options or {}),
                created=_now(),
            )
            try:
                self._wire(n)
            except BaseException:
                self.firewall.remove_network(bridge, str(net))
                self.netlink.delete_link(bridge)
                self.ipam.remove_pool(nid)
                raise
            self._networks[nid] = n
            self._save_network(n)
            return n

    def remove(self, name_or_id: str) -> None:
        with self._lock:
            n = self.get(name_or_id)
            if n.name in PREDEFINED:
                raise Conflict(f"{n.name} is a pre-defined network and cannot be removed")
            users = [e.container_id for e in self._endpoints.values() if e.network_id == n.id]
            if users:
                raise Conflict(
                    f"error while removing network: network {n.name} id {n.id} has active endpoints"
                )
            if self.dns is not None and n.scope_dns():
                self.dns.unlisten(n.gateway)
            self.firewall.remove_network(n.bridge, n.subnet)
            self.netlink.delete_link(n.bridge)
            self.ipam.remove_pool(n.id)
            del self._networks[n.id]
            (self.state_dir / "networks" / f"{n.id}.json").unlink(missing_ok=True)

    def prune(self, keep: Callable[[Network], bool] = lambda n: False) -> list[str]:
        removed = []
        with self._lock:
            for n in list(self._networks.values()):
                if n.name in PREDEFINED or keep(n):
                    continue
                if any(e.network_id == n.id for e in self._endpoints.values()):
                    continue
                self.remove(n.id)
                removed.append(n.name)
        return removed

    # -- endpoints -----------------------------------------------------------------------
    def endpoints_of(self, container_id: str) -> list[Endpoint]:
        with self._lock:
            return [e for (cid, _), e in self._endpoints.items() if cid == container_id]

    def endpoints_on(self, network_id: str) -> list[Endpoint]:
        with self._lock:
            return [e for (_, nid), e in self._endpoints.items() if nid == network_id]

    def connect(
        self,
        container_id: str,
        network: str,
        netns_path: str,
        *,
        name: str = "",
        ip: str | None = None,
        aliases: Iterable[str] = (),
        ifname: str | None = None,
    ) -> Endpoint:
        """Give the container an interface on `network` inside the netns at `netns_path`."""
        with self._lock:
            n = self.get(network)
            if n.driver != "bridge":
                raise InvalidArgument(
                    f"container cannot be connected to network {n.name} ({n.driver})"
                )
            if (container_id, n.id) in self._endpoints:
                raise Conflict(
                    f"endpoint with name {name or container_id[:12]} already exists in network {n.name}"
                )
            if ip and n.default:
                raise InvalidArgument(
                    "user specified IP address is supported on user defined networks only"
                )
            addr = self.ipam.allocate(n.id, container_id, ip)
            prefix = ipaddress.IPv4Network(n.subnet).prefixlen
            veth = "sk" + hashlib.sha256(f"{container_id}/{n.id}".encode()).hexdigest()[:11]
            index = len(self.endpoints_of(container_id))
            ep = Endpoint(
                container_id=container_id,
                network_id=n.id,
                veth=veth,
                ip=str(addr),
                prefixlen=prefix,
                gateway="" if n.internal else n.gateway,
                mac=mac_for(str(addr)),
                name=name,
                aliases=list(aliases),
            )
            try:
                self.netlink.add_veth_into(
                    veth,
                    n.bridge,
                    netns_path,
                    ifname=ifname or f"eth{index}",
                    address=ep.ip,
                    prefixlen=prefix,
                    gateway=ep.gateway if index == 0 else None,
                    mac=ep.mac,
                )
            except BaseException:
                self.ipam.release(n.id, container_id)
                raise
            self._endpoints[(container_id, n.id)] = ep
            self._save_endpoints()
            if self.dns is not None:
                self.dns.refresh(self)
            return ep

    def publish(
        self, container_id: str, port_bindings: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """Publish ports of the container's first bridge endpoint; returns the bindings made."""
        wanted = expand_bindings(port_bindings or {})
        if not wanted:
            return []
        with self._lock:
            eps = self.endpoints_of(container_id)
            if not eps:
                raise InvalidArgument("ports can only be published on a bridge network")
            ep = eps[0]
            made: list[dict[str, Any]] = []
            try:
                for proto, cport, host_ip, hport in wanted:
                    port = self.ports.reserve(proto, host_ip, hport)
                    made.append(
                        {
                            "proto": proto,
                            "container_port": cport,
                            "host_ip": host_ip,
                            "host_port": port,
                        }
                    )
                self.firewall.add_ports([_rule(ep, m) for m in made])
            except BaseException:
                for m in made:
                    self.ports.release(m["proto"], m["host_ip"], m["host_port"])
                raise
            ep.ports = made
            self._save_endpoints()
            return made

    def disconnect(
        self, container_id: str, network: str | None = None, *, netns_going: bool = False
    ) -> None:
        """Remove the container's endpoint on `network` (all of them when None).

        `netns_going`: the caller destroys the container's namespace next, and the kernel then
        removes both ends of each veth; deleting them here would only wait on the kernel.
        """
        with self._lock:
            eps = self.endpoints_of(container_id)
            if network is not None:
                n = self.get(network)
                eps = [e for e in eps if e.network_id == n.id]
                if not eps:
                    raise NotFound(
                        f"container {container_id[:12]} is not connected to network {n.name}"
                    )
            for ep in eps:
                self._teardown_endpoint(ep, delete_link=not netns_going)
                del self._endpoints[(ep.container_id, ep.network_id)]
            self._save_endpoints()
            if self.dns is not None:
                self.dns.refresh(self)

    def _teardown_endpoint(self, ep: Endpoint, delete_link: bool = True) -> None:
        self.firewall.remove_ports([_rule(ep, m) for m in ep.ports])
        for m in ep.ports:
            self.ports.release(m["proto"], m["host_ip"], m["host_port"])
        if delete_link:
            self.netlink.delete_link(ep.veth)
        self.ipam.release(ep.network_id, ep.container_id)

    def reconcile(self, live: set[str]) -> dict[str, list[str]]:
        """After a crash: drop endpoints of containers not in `live`, delete stray skiff veths,
        re-reserve the ports of the live ones, and free addresses nobody owns."""
        removed: dict[str, list[str]] = {"endpoints": [], "links": [], "addresses": []}
        with self._lock:
            for key, ep in list(self._endpoints.items()):
                if ep.container_id not in live:
                    self._teardown_endpoint(ep)
                    del self._endpoints[key]
                    removed["endpoints"].append(ep.container_id)
                else:
                    for m in ep.ports:
                        try:
                            self.ports.reserve(m["proto"], m["host_ip"], m["host_port"])
                        except Conflict:
                            pass
                    self.firewall.add_ports([_rule(ep, m) for m in ep.ports])
            # only veths on this manager's own bridges: other daemons' are none of our business
            known = {ep.veth for ep in self._endpoints.values()}
            for n in self._networks.values():
                if n.driver != "bridge":
                    continue
                for link in self.netlink.links_on(n.bridge):
                    if link.startswith("sk") and link not in known and _is_hex(link[2:]):
                        self.netlink.delete_link(link)
                        removed["links"].append(link)
            for n in self._networks.values():
                if n.driver == "bridge":
                    owners = {ep.container_id for ep in self.endpoints_on(n.id)}
                    removed["addresses"] += self.ipam.release_all_except(n.id, owners)
            self._save_endpoints()
        return removed

    # -- Docker's JSON -------------------------------------------------------------------
    def inspect(
        self, n: Network, container_names: Callable[[str], str] = lambda cid: ""
    ) -> dict[str, Any]:
        containers = {}
        for ep in self.endpoints_on(n.id):
            containers[ep.container_id] = {
                "Name": container_names(ep.container_id) or ep.name,
                "EndpointID": hashlib.sha256(f"{ep.container_id}{n.id}".encode()).hexdigest(),
                "MacAddress": ep.mac,
                "IPv4Address": f"{ep.ip}/{ep.prefixlen}",
                "IPv6Address": "",
            }
        ipam_config = [{"Subnet": n.subnet, "Gateway": n.gateway}] if n.subnet else []
        return {
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam_config},
            "Internal": n.internal,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": n.options,
            "Labels": n.labels,
        }

    def endpoint_settings(self, ep: Endpoint) -> dict[str, Any]:
        """One entry of a container's NetworkSettings.Networks, in Docker's shape."""
        n = self._networks.get(ep.network_id)
        return {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": ep.aliases or None,
            "MacAddress": ep.mac,
            "DriverOpts": None,
            "NetworkID": ep.network_id,
            "EndpointID": hashlib.sha256(f"{ep.container_id}{ep.network_id}".encode()).hexdigest(),
            "Gateway": ep.gateway,
            "IPAddress": ep.ip,
            "IPPrefixLen": ep.prefixlen,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": (
                [ep.name, ep.container_id[:12], *ep.aliases] if n and n.scope_dns() else None
            ),
        }


def _rule(ep: Endpoint, m: dict[str, Any]) -> PortRule:
    return PortRule(m["proto"], m["host_ip"], m["host_port"], ep.ip, m["container_port"])


def _new_id() -> str:
    return secrets.token_hex(32)


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdef" for c in s)


def _sysctl(key: str, value: str) -> None:
    path = f"/proc/sys/{key}"
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass
