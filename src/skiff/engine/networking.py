"""A container's networking, from its HostConfig to a wired network namespace.

Modes, as Docker's `--network`: `bridge`/`default` (the daemon's bridge), a user-defined
network name or id (with DNS), `none` (a namespace with only `lo`), `host` (no namespace of
its own) and `container:<id>` (the engine joins the other container's namespace). The
namespace is made and wired *before* the runtime creates the container, pinned under
`<exec-root>/netns/<id>`, and handed to the runtime as a namespace path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.errors import InvalidArgument, NotFound
from skiff.linux import netns
from skiff.network.manager import NetworkManager


@dataclass
class NetSetup:
    """What the engine needs to start the container: where its netns is, and its address."""

    netns_path: str | None
    ip: str | None = None
    dns_server: str | None = None  # the embedded DNS, for user-defined networks
    gateway: str | None = None
    networks: list[str] = field(default_factory=list)


def network_mode(host_config: dict[str, Any]) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def validate_mode(manager: NetworkManager, host_config: dict[str, Any]) -> None:
    """At create time: an unknown network is a 404 before anything is made."""
    mode = network_mode(host_config)
    if mode in ("host", "none", "bridge") or mode.startswith("container:"):
        return
    manager.get(mode)  # NotFound("network x not found")


class Networking:
    def __init__(self, manager: NetworkManager, exec_root: Path) -> None:
        self.manager = manager
        self.root = exec_root / "netns"

    def netns_path(self, cid: str) -> str:
        return str(self.root / cid)

    def setup(
        self,
        cid: str,
        name: str,
        config: dict[str, Any],
        host_config: dict[str, Any],
        networking_config: dict[str, Any] | None,
    ) -> NetSetup:
        mode = network_mode(host_config)
        if mode in ("host", "none") or mode.startswith("container:"):
            # none: the runtime makes a fresh namespace itself and brings lo up, as runc does
            return NetSetup(None)
        path = self.netns_path(cid)
        if os.path.exists(path):  # a restart: start from a clean namespace
            self.teardown(cid)
        netns.create(path)
        endpoints = {
            ("bridge" if k == "default" else k): v
            for k, v in ((networking_config or {}).get("EndpointsConfig") or {}).items()
        }
        disconnected = set((networking_config or {}).get("_Disconnected") or [])
        first = mode
        if first in disconnected or self._net_id(first) in {self._net_id(d) for d in disconnected}:
            from skiff.linux.netlink import bring_up_loopback

            bring_up_loopback(path)
            endpoints.pop(first, None)
            if not endpoints:
                return NetSetup(path)
            first = next(iter(endpoints))
        order = [first] + [
            n for n in endpoints if n != first and self._net_id(n) != self._net_id(first)
        ]
        setup = NetSetup(path)
        try:
            for i, net in enumerate(order):
                ep_conf = endpoints.get(net) or {}
                ipam = ep_conf.get("IPAMConfig") or {}
                ep = self.manager.connect(
                    cid,
                    net,
                    path,
                    name=name.lstrip("/"),
                    ip=ipam.get("IPv4Address") or None,
                    aliases=ep_conf.get("Aliases") or (),
                    ifname=f"eth{i}",
                )
                n = self.manager.get(net)
                setup.networks.append(n.name)
                if i == 0:
                    setup.ip = ep.ip
                    setup.gateway = ep.gateway or n.gateway
                    setup.dns_server = n.gateway if n.scope_dns() else None
            self.manager.publish(cid, _bindings(config, host_config))
        except BaseException:
            self.teardown(cid)
            raise
        return setup

    def _net_id(self, name: str) -> str:
        try:
            return self.manager.get(name).id
        except NotFound:
            return name

    def teardown(self, cid: str) -> None:
        with contextlib.suppress(NotFound):
            self.manager.disconnect(cid, netns_going=True)
        netns.remove(self.netns_path(cid))

    def connect_running(self, cid: str, name: str, network: str, endpoint: dict[str, Any]) -> None:
        path = self.netns_path(cid)
        if not os.path.exists(path):
            raise InvalidArgument(
                f"container {name.lstrip('/')} has no network namespace of its own to connect"
            )
        ipam = endpoint.get("IPAMConfig") or {}
        self.manager.connect(
            cid,
            network,
            path,
            name=name.lstrip("/"),
            ip=ipam.get("IPv4Address") or None,
            aliases=endpoint.get("Aliases") or (),
            ifname=f"eth{len(self.manager.endpoints_of(cid))}",
        )

    # -- Docker's NetworkSettings ----------------------------------------------------------
    def settings(
        self,
        cid: str,
        config: dict[str, Any],
        host_config: dict[str, Any],
        running: bool,
        networking_config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        mode = network_mode(host_config)
        eps = {e.network_id: e for e in self.manager.endpoints_of(cid)} if running else {}
        networks: dict[str, Any] = {}
        nc = networking_config or {}
        gone = set(nc.get("_Disconnected") or [])
        configured = {
            ("bridge" if k == "default" else k): v
            for k, v in (nc.get("EndpointsConfig") or {}).items()
        }
        names: list[str] = []
        if not mode.startswith("container:") and mode not in gone:
            names.append(mode)
        for extra in configured:
            if extra not in names and extra not in gone:
                names.append(extra)
        for e in eps.values():
            with contextlib.suppress(NotFound):
                n = self.manager.get(e.network_id)
                if n.name not in names:
                    names.append(n.name)
        for net_name in names:
            try:
                n = self.manager.get(net_name)
            except NotFound:
                continue
            ep = eps.get(n.id)
            if ep is not None:
                networks[n.name] = self.manager.endpoint_settings(ep)
            else:
                networks[n.name] = _blank_endpoint(n.id)
                wanted = configured.get(net_name) or configured.get(n.name) or {}
                if wanted.get("Aliases"):
                    networks[n.name]["Aliases"] = list(wanted["Aliases"])
        primary = next(iter(eps.values()), None)
        ports: dict[str, Any] = {}
        for key in config.get("ExposedPorts") or {}:
            ports[key if "/" in key else f"{key}/tcp"] = None
        for ep in eps.values():
            for m in ep.ports:
                key = f"{m['container_port']}/{m['proto']}"
                ports.setdefault(key, None)
                ports[key] = (ports[key] or []) + [
                    {"HostIp": m["host_ip"] or "0.0.0.0", "HostPort": str(m["host_port"])}
                ]
        sandbox = self.netns_path(cid) if running and mode not in ("host", "none") else ""
        return {
            "Bridge": "",
            "SandboxID": hashlib.sha256(sandbox.encode()).hexdigest() if sandbox else "",
            "SandboxKey": sandbox,
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": (primary and self.manager.endpoint_settings(primary)["EndpointID"]) or "",
            "Gateway": primary.gateway if primary else "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": primary.ip if primary else "",
            "IPPrefixLen": primary.prefixlen if primary else 0,
            "IPv6Gateway": "",
            "MacAddress": primary.mac if primary else "",
            "Networks": networks,
        }

    def ports_summary(self, cid: str) -> list[dict[str, Any]]:
        """`Ports` of GET /containers/json."""
        out = []
        for ep in self.manager.endpoints_of(cid):
            for m in ep.ports:
                out.append(
                    {
                        "IP": m["host_ip"] or "0.0.0.0",
                        "PrivatePort": m["container_port"],
                        "PublicPort": m["host_port"],
                        "Type": m["proto"],
                    }
                )
        return out


def _blank_endpoint(network_id: str) -> dict[str, Any]:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "MacAddress": "",
        "DriverOpts": None,
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def _bindings(config: dict[str, Any], host_config: dict[str, Any]) -> dict[str, Any]:
    """PortBindings, plus every EXPOSEd port on a random host port with -P."""
    bindings = dict(host_config.get("PortBindings") or {})
    if host_config.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            k = key if "/" in key else f"{key}/tcp"
            bindings.setdefault(k, [{"HostIp": "", "HostPort": ""}])
    return bindings
