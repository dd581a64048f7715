"""/_ping, /version, /info, /events, /system/df, /auth."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from typing import Any

from skiff.api.http import API_VERSION, MIN_API_VERSION, Request, Response, Router, json_response
from skiff.engine import oci
from skiff.engine.containers import Engine
from skiff.engine.events import EventBus
from skiff.engine.logs import parse_since
from skiff.engine.state import Status
from skiff.errors import InvalidArgument

VERSION = "0.1.0"
EVENT_FILTERS = {
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
    "config",
}


def _event_filter(filters: dict[str, list[str]]) -> Any:
    for key in filters:
        if key not in EVENT_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")

    def accept(e: dict[str, Any]) -> bool:
        attrs = e["Actor"]["Attributes"]
        if "type" in filters and e["Type"] not in filters["type"]:
            return False
        if "event" in filters and not any(
            e["Action"] == f or e["Action"].split(":")[0] == f for f in filters["event"]
        ):
            return False
        if "container" in filters and (
            e["Type"] != "container"
            or not any(
                e["Actor"]["ID"].startswith(v) or attrs.get("name") == v
                for v in filters["container"]
            )
        ):
            return False
        if "image" in filters and not any(
            attrs.get("image") == v or attrs.get("name") == v or e["Actor"]["ID"] == v
            for v in filters["image"]
        ):
            return False
        if "label" in filters:
            for w in filters["label"]:
                k, sep, v = w.partition("=")
                if k not in attrs or (sep and attrs[k] != v):
                    return False
        return True

    return accept


def register(router: Router, engine: Engine, events: EventBus, info_extra: dict[str, Any]) -> None:
    def ping(req: Request) -> Response:
        return Response(
            200,
            body=b"OK",
            content_type="text/plain; charset=utf-8",
            headers={
                "Builder-Version": "1",
                "Cache-Control": "no-cache, no-store, must-revalidate",
                "Pragma": "no-cache",
            },
        )

    def version(req: Request) -> Response:
        uname = os.uname()
        return json_response(
            {
                "Platform": {"Name": "skiff"},
                "Components": [
                    {
                        "Name": "Engine",
                        "Version": VERSION,
                        "Details": {
                            "ApiVersion": API_VERSION,
                            "MinAPIVersion": MIN_API_VERSION,
                            "Os": "linux",
                            "Arch": _arch(),
                        },
                    }
                ],
                "Version": VERSION,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "GitCommit": "",
                "GoVersion": "python" + platform.python_version(),
                "Os": "linux",
                "Arch": _arch(),
                "KernelVersion": uname.release,
                "BuildTime": "",
            }
        )

    def info(req: Request) -> Response:
        cs = engine.all()
        running = sum(1 for c in cs if c.status is Status.RUNNING)
        paused = sum(1 for c in cs if c.status is Status.PAUSED)
        images = len(engine.images.list()) if engine.images is not None else 0
        uname = os.uname()
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        runtimes = {name: {"path": path} for name, path in engine.runtimes.paths.items()}
        return json_response(
            {
                "ID": info_extra.get("id", ""),
                "Containers": len(cs),
                "ContainersRunning": running,
                "ContainersPaused": paused,
                "ContainersStopped": len(cs) - running - paused,
                "Images": images,
                "Driver": "overlay",
                "DriverStatus": [],
                "Plugins": {
                    "Volume": [],
                    "Network": ["host", "none"],
                    "Authorization": None,
                    "Log": ["json-file", "none"],
                },
                "MemoryLimit": True,
                "SwapLimit": True,
                "CpuCfsPeriod": True,
                "CpuCfsQuota": True,
                "CPUShares": True,
                "CPUSet": True,
                "PidsLimit": True,
                "IPv4Forwarding": False,
                "BridgeNfIptables": False,
                "BridgeNfIp6tables": False,
                "Debug": info_extra.get("debug", False),
                "NFd": len(os.listdir("/proc/self/fd")),
                "OomKillDisable": True,
                "NGoroutines": 0,
                "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
                "LoggingDriver": "json-file",
                "CgroupDriver": "cgroupfs",
                "CgroupVersion": "1",
                "NEventsListener": 0,
                "KernelVersion": uname.release,
                "OperatingSystem": _os_name(),
                "OSVersion": "",
                "OSType": "linux",
                "Architecture": uname.machine,
                "IndexServerAddress": "https://index.docker.io/v1/",
                "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": []},
                "NCPU": os.cpu_count() or 1,
                "MemTotal": mem,
                "GenericResources": None,
                "DockerRootDir": str(engine.data_root),
                "HttpProxy": "",
                "HttpsProxy": "",
                "NoProxy": "",
                "Name": uname.nodename,
                "Labels": [],
                "ExperimentalBuild": False,
                "ServerVersion": VERSION,
                "Runtimes": runtimes,
                "DefaultRuntime": engine.runtimes.default,
                "Swarm": {
                    "NodeID": "",
                    "NodeAddr": "",
                    "LocalNodeState": "inactive",
                    "ControlAvailable": False,
                    "Error": "",
                    "RemoteManagers": None,
                },
                "LiveRestoreEnabled": True,
                "Isolation": "",
                "InitBinary": "skiff-init",
                "ContainerdCommit": {"ID": ""},
                "RuncCommit": {"ID": ""},
                "InitCommit": {"ID": ""},
                "SecurityOptions": engine.security.security_options(cgroupns=oci.cgroup2_only()),
                "Warnings": _warnings(engine),
            }
        )

    def events_(req: Request) -> Response:
        since = parse_since(req.arg("since"))
        until = parse_since(req.arg("until"))
        accept = _event_filter(req.filters())
        it = events.subscribe(
            int(since * 1e9) if since is not None else None,
            int(until * 1e9) if until is not None else None,
            accept,
            req.closed,
        )

        def body() -> Iterator[bytes]:
            yield b""
            for e in it:
                if not e:
                    if req.closed():
                        return
                    continue
                yield (json.dumps(e) + "\n").encode()

        return Response(200, stream=body())

    def df(req: Request) -> Response:
        from skiff.api.containers import summary
        from skiff.api.images import _summary

        images = [_summary(r) for r in engine.images.list()] if engine.images is not None else []
        for i in images:
            i["Containers"] = sum(1 for c in engine.all() if c.image_id == i["Id"])
        containers = []
        for c in engine.all():
            s = summary(engine, c)
            s["SizeRw"] = 0
            s["SizeRootFs"] = 0
            containers.append(s)
        usage = (
            engine.images.usage()
            if engine.images is not None and hasattr(engine.images, "usage")
            else {}
        )
        layers = (
            usage.get("LayersSize", sum(i["Size"] for i in images))
            if isinstance(usage, dict)
            else 0
        )
        return json_response(
            {
                "LayersSize": layers,
                "Images": images,
                "Containers": containers,
                "Volumes": [],
                "BuildCache": [],
            }
        )

    def auth(req: Request) -> Response:
        from skiff.engine import registry

        body = req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON body: expected an object")
        return json_response(registry.login(body, engine.registry))

    r = router.add
    r("GET", "/_ping", ping)
    r("HEAD", "/_ping", ping)
    r("GET", "/version", version)
    r("GET", "/info", info)
    r("GET", "/events", events_)
    r("GET", "/system/df", df)
    r("POST", "/auth", auth)


def _warnings(engine: Engine) -> list[str]:
    out = []
    plumbing = getattr(engine, "plumbing", None)
    if plumbing is None or getattr(plumbing, "networking", None) is None:
        out.append(
            "WARNING: bridge networking is disabled: containers in the default network get a "
            "private network namespace with only the loopback interface"
        )
    if engine.security.seccomp_profile == "unconfined":
        out.append("WARNING: seccomp-profile is unconfined: containers run without seccomp")
    return out


def _arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
