"""What a container gets from networks and volumes, at each point of its life.

The container engine calls in at five points — create, start, exit, remove, and daemon start
(reconcile) — and asks for Docker's JSON views (NetworkSettings, Mounts, Ports). Volume mount
points are kept per container in `<container dir>/mounts.json`; network endpoints are kept by
the NetworkManager.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from skiff.engine import volumemounts
from skiff.engine.networking import NetSetup, Networking, network_mode, validate_mode
from skiff.errors import Conflict, NotFound
from skiff.network import files
from skiff.volumes.local import LocalVolumes


class Plumbing:
    def __init__(self, networking: Networking | None, volumes: LocalVolumes | None) -> None:
        self.networking = networking
        self.volumes = volumes
        self._cache: dict[str, Any] = {}

    # -- create ------------------------------------------------------------------------------
    def validate(self, host_config: dict[str, Any]) -> None:
        if self.networking is not None:
            validate_mode(self.networking.manager, host_config)

    def plan(
        self,
        cid: str,
        container_dir: Path,
        config: dict[str, Any],
        host_config: dict[str, Any],
        image_config: dict[str, Any],
        networking_config: dict[str, Any] | None,
        volumes_from: Any,
    ) -> None:
        if networking_config:
            self._save(container_dir / "networking.json", networking_config)
        if self.volumes is None:
            return
        points = volumemounts.plan(
            self.volumes, cid, config, host_config, image_config.get("Volumes"), volumes_from
        )
        self._save(container_dir / "mounts.json", points)

    def _read(self, path: Path, default: Any) -> Any:
        """A per-container file, from memory after the first read: every write goes through
        `_save`, and `docker ps` reads these for every container."""
        key = str(path)
        if key not in self._cache:
            try:
                self._cache[key] = json.loads(path.read_text())
            except (OSError, ValueError):
                return default
        return self._cache[key]

    def _save(self, path: Path, data: Any) -> None:
        _write(path, data)
        self._cache[str(path)] = data

    def forget(self, container_dir: Path) -> None:
        for name in ("mounts.json", "networking.json"):
            self._cache.pop(str(container_dir / name), None)

    def points(self, container_dir: Path) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._read(container_dir / "mounts.json", [])
        return data

    def networking_config(self, container_dir: Path) -> dict[str, Any] | None:
        data: dict[str, Any] | None = self._read(container_dir / "networking.json", None)
        return data

    def stripped(self, host_config: dict[str, Any]) -> dict[str, Any]:
        return volumemounts.strip_volumes(host_config) if self.volumes is not None else host_config

    # -- start / exit ----------------------------------------------------------------------------
    def before_start(
        self,
        cid: str,
        name: str,
        container_dir: Path,
        rootfs: str,
        config: dict[str, Any],
        host_config: dict[str, Any],
    ) -> tuple[NetSetup | None, list[dict[str, Any]]]:
        """Wire the network and prepare volumes; returns (net setup, OCI volume mounts)."""
        mounts: list[dict[str, Any]] = []
        points = self.points(container_dir)
        if self.volumes is not None and points:
            volumemounts.copy_up(self.volumes, points, rootfs)
            mounts = volumemounts.oci_mounts(points)
        net = None
        if self.networking is not None:
            net = self.networking.setup(
                cid, name, config, host_config, self.networking_config(container_dir)
            )
            if net.netns_path is not None and network_mode(host_config) != "none":
                self._write_etc(container_dir / "etc", config, host_config, net)
        return net, mounts

    def _write_etc(
        self, etc: Path, config: dict[str, Any], hc: dict[str, Any], net: NetSetup
    ) -> None:
        etc.mkdir(parents=True, exist_ok=True)
        hostname = config.get("Hostname") or ""
        hosts = files.hosts_file(
            hostname,
            net.ip,
            extra_hosts=[_host_gateway(h, net) for h in hc.get("ExtraHosts") or []],
            domainname=config.get("Domainname") or "",
        )
        resolv = files.resolv_conf(
            dns=hc.get("Dns") or [],
            search=hc.get("DnsSearch") or [],
            options=hc.get("DnsOptions") or [],
            embedded=net.dns_server,
        )
        for fname, text in (("hosts", hosts), ("resolv.conf", resolv)):
            # rewrite in place: the file is bind-mounted into the container by path
            with open(etc / fname, "w") as f:
                f.write(text)

    def after_exit(self, cid: str) -> None:
        if self.networking is not None:
            self.networking.teardown(cid)

    # -- docker network connect / disconnect -------------------------------------------------------
    def connect(
        self,
        cid: str,
        name: str,
        container_dir: Path,
        running: bool,
        network: str,
        endpoint: dict[str, Any],
    ) -> None:
        if self.networking is None:
            raise NotFound("networking is not enabled in this daemon")
        n = self.networking.manager.get(network)
        nc = self.networking_config(container_dir) or {}
        eps = dict(nc.get("EndpointsConfig") or {})
        if n.name in eps or any(
            e.network_id == n.id for e in self.networking.manager.endpoints_of(cid)
        ):
            raise Conflict(
                f"endpoint with name {name.lstrip('/')} already exists in network {n.name}"
            )
        if running:
            self.networking.connect_running(cid, name, n.name, endpoint)
        gone = set(nc.get("_Disconnected") or []) - {n.name}
        nc["_Disconnected"] = sorted(gone)
        eps[n.name] = endpoint
        nc["EndpointsConfig"] = eps
        self._save(container_dir / "networking.json", nc)

    def disconnect(
        self,
        cid: str,
        container_dir: Path,
        running: bool,
        network: str,
        host_config: dict[str, Any],
    ) -> None:
        if self.networking is None:
            raise NotFound("networking is not enabled in this daemon")
        manager = self.networking.manager
        n = manager.get(network)
        nc = self.networking_config(container_dir) or {}
        eps = dict(nc.get("EndpointsConfig") or {})
        connected = any(e.network_id == n.id for e in manager.endpoints_of(cid))
        mode = network_mode(host_config)
        primary = (
            mode not in ("host", "none")
            and not mode.startswith("container:")
            and (manager.get(mode).id == n.id)
        )
        gone = set(nc.get("_Disconnected") or [])
        if (n.name not in eps and not connected and not primary) or n.name in gone:
            raise NotFound(f"container {cid[:12]} is not connected to network {n.name}")
        if primary:
            gone.add(n.name)  # `docker network disconnect` of the network it was created on
            nc["_Disconnected"] = sorted(gone)
        if running and connected:
            self.networking.manager.disconnect(cid, n.id)
        eps.pop(n.name, None)
        nc["EndpointsConfig"] = eps
        self._save(container_dir / "networking.json", nc)

    # -- remove ----------------------------------------------------------------------------------
    def on_remove(self, cid: str, container_dir: Path, *, remove_anonymous: bool) -> None:
        if self.networking is not None:
            self.networking.teardown(cid)
        if self.volumes is not None:
            volumemounts.release(
                self.volumes, cid, self.points(container_dir), remove_anonymous=remove_anonymous
            )
        self.forget(container_dir)

    # -- daemon start ----------------------------------------------------------------------------
    def reconcile(self, running: set[str], existing: set[str]) -> None:
        if self.networking is not None:
            self.networking.manager.reconcile(running)
            root = self.networking.root
            if root.is_dir():
                for entry in os.listdir(root):
                    if entry not in running:
                        from skiff.linux import netns

                        netns.remove(str(root / entry))
        if self.volumes is not None:
            self.volumes.reconcile(existing)

    # -- Docker's views --------------------------------------------------------------------------
    def mounts_view(self, container_dir: Path) -> list[dict[str, Any]]:
        return volumemounts.inspect_points(self.points(container_dir))

    def network_settings(
        self,
        cid: str,
        container_dir: Path,
        config: dict[str, Any],
        host_config: dict[str, Any],
        running: bool,
    ) -> dict[str, Any] | None:
        if self.networking is None:
            return None
        return self.networking.settings(
            cid, config, host_config, running, self.networking_config(container_dir)
        )

    def ports(self, cid: str) -> list[dict[str, Any]]:
        return self.networking.ports_summary(cid) if self.networking is not None else []


def _host_gateway(entry: str, net: NetSetup) -> str:
    name, _, ip = entry.partition(":")
    if ip == "host-gateway":
        return f"{name}:{net.gateway or '127.0.0.1'}"
    return entry


def _write(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
