"""/containers/* and /exec/*: Docker's JSON shapes over the engine's container use cases."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from skiff.api import streams
from skiff.api.http import Request, Response, Router, json_response, no_content, start_hijack
from skiff.engine.containers import Engine
from skiff.engine.logs import parse_since, parse_time
from skiff.engine.state import Container, Status
from skiff.errors import Conflict, InvalidArgument, NotFound, SkiffError


def human_duration(seconds: float) -> str:
    """docker/go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def _ts(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError:
        return 0.0


def status_text(c: Container) -> str:
    st = c.state
    status = c.status
    now = time.time()
    if status in (Status.RUNNING, Status.PAUSED):
        text = f"Up {human_duration(now - _ts(st['StartedAt']))}"
        if status is Status.PAUSED:
            text += " (Paused)"
        elif st.get("Health"):
            health = st["Health"]["Status"]
            text += " (health: starting)" if health == "starting" else f" ({health})"
        return text
    if status is Status.RESTARTING:
        return f"Restarting ({st['ExitCode']}) {human_duration(now - _ts(st['FinishedAt']))} ago"
    if status is Status.REMOVING:
        return "Removal In Progress"
    if status is Status.DEAD:
        return "Dead"
    if status is Status.EXITED and c.has_been_started:
        return f"Exited ({st['ExitCode']}) {human_duration(now - _ts(st['FinishedAt']))} ago"
    return "Created"


def mounts_of(c: Container) -> list[dict[str, Any]]:
    out = []
    from skiff.engine.oci import parse_bind

    for bind in c.host_config.get("Binds") or []:
        if not bind.startswith("/"):
            continue  # a volume: reported by the engine's plumbing
        try:
            src, dst, opts = parse_bind(bind)
        except SkiffError:
            continue
        out.append(
            {
                "Type": "bind",
                "Source": src,
                "Destination": dst,
                "Mode": bind.split(":")[2] if bind.count(":") == 2 else "",
                "RW": "ro" not in opts,
                "Propagation": "rprivate",
            }
        )
    for m in c.host_config.get("Mounts") or []:
        kind = m.get("Type")
        if (kind or "volume") == "volume":
            continue
        entry = {
            "Type": kind,
            "Source": m.get("Source", ""),
            "Destination": m.get("Target"),
            "Mode": "",
            "RW": not m.get("ReadOnly"),
            "Propagation": "rprivate" if kind == "bind" else "",
        }
        out.append(entry)
    return out


def all_mounts(engine: Engine, c: Container) -> list[dict[str, Any]]:
    """Host binds and tmpfs from the HostConfig, plus the container's volumes."""
    out = mounts_of(c)
    if engine.plumbing is not None:
        out += engine.plumbing.mounts_view(engine.container_dir(c.id))
    return out


def all_network_settings(engine: Engine, c: Container) -> dict[str, Any]:
    if engine.plumbing is not None:
        running = bool(c.state.get("Running"))
        settings = engine.plumbing.network_settings(
            c.id, engine.container_dir(c.id), c.config, c.host_config, running
        )
        if settings is not None:
            return settings
    return network_settings(c)


def network_settings(c: Container) -> dict[str, Any]:
    mode = c.host_config.get("NetworkMode") or "default"
    networks: dict[str, Any] = {}
    if mode in ("host", "none"):
        networks[mode] = {
            "IPAMConfig": None,
            "Links": None,
            "Aliases": None,
            "MacAddress": "",
            "NetworkID": "",
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DriverOpts": None,
            "DNSNames": None,
        }
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": f"/proc/{c.state['Pid']}/ns/net" if c.state.get("Pid") else "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": {},
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks,
    }


def inspect(engine: Engine, c: Container, size: bool = False) -> dict[str, Any]:
    etc = engine.container_dir(c.id) / "etc"
    config = dict(c.config)
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    host_config = dict(c.host_config)
    for key, default in (
        ("Binds", None),
        ("ContainerIDFile", ""),
        ("PortBindings", {}),
        ("VolumeDriver", ""),
        ("VolumesFrom", None),
        ("CapAdd", None),
        ("CapDrop", None),
        ("Dns", []),
        ("DnsOptions", []),
        ("DnsSearch", []),
        ("ExtraHosts", None),
        ("GroupAdd", None),
        ("IpcMode", "private"),
        ("Cgroup", ""),
        ("Links", None),
        ("OomScoreAdj", 0),
        ("PidMode", ""),
        ("Privileged", False),
        ("PublishAllPorts", False),
        ("ReadonlyRootfs", False),
        ("SecurityOpt", None),
        ("UTSMode", ""),
        ("UsernsMode", ""),
        ("ShmSize", 67108864),
        ("ConsoleSize", [0, 0]),
        ("Isolation", ""),
        ("CpuShares", 0),
        ("Memory", 0),
        ("NanoCpus", 0),
        ("CgroupParent", ""),
        ("BlkioWeight", 0),
        ("CpuPeriod", 0),
        ("CpuQuota", 0),
        ("CpusetCpus", ""),
        ("CpusetMems", ""),
        ("Devices", []),
        ("MemoryReservation", 0),
        ("MemorySwap", 0),
        ("PidsLimit", None),
        ("Ulimits", None),
        ("AutoRemove", False),
        ("Init", None),
        ("Tmpfs", None),
        ("Sysctls", None),
        ("MaskedPaths", None),
        ("ReadonlyPaths", None),
    ):
        host_config.setdefault(key, default)
    state = dict(c.state)
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": str(etc / "resolv.conf"),
        "HostnamePath": str(etc / "hostname"),
        "HostsPath": str(etc / "hosts"),
        "LogPath": engine.log_path(c)
        if (c.host_config.get("LogConfig") or {}).get("Type") != "none"
        else "",
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": [e.id for e in engine.execs.values() if e.container_id == c.id and e.running]
        or None,
        "HostConfig": host_config,
        "GraphDriver": {"Data": {"MergedDir": str(engine.rootfs_dir(c.id))}, "Name": "overlay"},
        "Mounts": all_mounts(engine, c),
        "Config": {
            "Hostname": config.get("Hostname", ""),
            "Domainname": config.get("Domainname", ""),
            "User": config.get("User", ""),
            "AttachStdin": bool(config.get("AttachStdin")),
            "AttachStdout": bool(config.get("AttachStdout")),
            "AttachStderr": bool(config.get("AttachStderr")),
            "Tty": bool(config.get("Tty")),
            "OpenStdin": bool(config.get("OpenStdin")),
            "StdinOnce": bool(config.get("StdinOnce")),
            **{
                k: v
                for k, v in config.items()
                if k
                not in (
                    "Hostname",
                    "Domainname",
                    "User",
                    "AttachStdin",
                    "AttachStdout",
                    "AttachStderr",
                    "Tty",
                    "OpenStdin",
                    "StdinOnce",
                )
            },
        },
        "NetworkSettings": all_network_settings(engine, c),
    }


def summary(engine: Engine, c: Container) -> dict[str, Any]:
    argv = [*(c.config.get("Entrypoint") or []), *(c.config.get("Cmd") or [])]
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.config.get("Image", ""),
        "ImageID": c.image_id,
        "Command": " ".join(argv),
        "Created": int(_ts(c.created)),
        "Ports": engine.plumbing.ports(c.id) if engine.plumbing is not None else [],
        "Labels": c.config.get("Labels") or {},
        "State": c.status.value,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": all_network_settings(engine, c)["Networks"]},
        "Mounts": all_mounts(engine, c),
    }


LIST_FILTERS = {
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "before",
    "since",
    "health",
    "network",
    "volume",
    "is-task",
    "publish",
    "expose",
}


def _label_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, sep, v = w.partition("=")
        if k not in labels or (sep and labels[k] != v):
            return False
    return True


def list_containers(engine: Engine, req: Request) -> list[dict[str, Any]]:
    filters = req.filters()
    for key in filters:
        if key not in LIST_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    all_ = req.flag("all")
    containers = sorted(engine.all(), key=lambda c: c.created, reverse=True)

    def created_of(ref: str) -> str:
        return engine.get(ref).created

    before = [created_of(r) for r in filters.get("before", [])]
    since = [created_of(r) for r in filters.get("since", [])]
    ancestors: set[str] = set()
    for ref in filters.get("ancestor", []):
        try:
            ancestors.add(engine.images.resolve(ref).id)
        except SkiffError:
            ancestors.add(ref)
    out = []
    for c in containers:
        if (
            not all_
            and not filters
            and c.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
        ):
            continue
        if (
            not all_
            and filters
            and "status" not in filters
            and "exited" not in filters
            and c.status not in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
        ):
            continue
        if "id" in filters and not any(c.id.startswith(i) for i in filters["id"]):
            continue
        if "name" in filters and not any(
            n.lstrip("/") in c.name or _re_search(n, c.name) for n in filters["name"]
        ):
            continue
        if "label" in filters and not _label_match(c.config.get("Labels") or {}, filters["label"]):
            continue
        if "status" in filters and c.status.value not in filters["status"]:
            continue
        if "exited" in filters and (
            c.status is not Status.EXITED or str(c.state["ExitCode"]) not in filters["exited"]
        ):
            continue
        if (
            "ancestor" in filters
            and c.image_id not in ancestors
            and c.config.get("Image") not in filters["ancestor"]
        ):
            continue
        if before and not all(c.created < b for b in before):
            continue
        if since and not all(c.created > s for s in since):
            continue
        if "health" in filters:
            health = (c.state.get("Health") or {}).get("Status", "none")
            if health not in filters["health"]:
                continue
        if "network" in filters and c.host_config.get("NetworkMode") not in filters["network"]:
            continue
        if "volume" in filters and not any(
            m["Source"] in filters["volume"] or m["Destination"] in filters["volume"]
            for m in mounts_of(c)
        ):
            continue
        out.append(summary(engine, c))
    limit = req.int_arg("limit", -1)
    if limit is not None and limit > 0:
        out = out[:limit]
    return out


def _re_search(pattern: str, text: str) -> bool:
    import re

    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def register(router: Router, engine: Engine) -> None:
    def create(req: Request) -> Response:
        body = req.json()
        name = req.arg("name") or None
        c, warnings = engine.create(name, body)
        return json_response({"Id": c.id, "Warnings": warnings}, 201)

    def list_(req: Request) -> Response:
        return json_response(list_containers(engine, req))

    def get_json(req: Request) -> Response:
        c = engine.get(req.params["id"])
        return json_response(inspect(engine, c, req.flag("size")))

    def start(req: Request) -> Response:
        c = engine.get(req.params["id"])
        if c.status.is_up():
            return Response(304, content_type="")
        engine.start(c.id)
        return no_content()

    def stop(req: Request) -> Response:
        t = req.int_arg("t")
        if t is None:
            t = req.int_arg("timeout")
        if not engine.stop(req.params["id"], t, req.arg("signal") or None):
            return Response(304, content_type="")
        return no_content()

    def restart(req: Request) -> Response:
        t = req.int_arg("t")
        engine.restart(req.params["id"], t, req.arg("signal") or None)
        return no_content()

    def kill(req: Request) -> Response:
        engine.kill(req.params["id"], req.arg("signal") or None)
        return no_content()

    def pause(req: Request) -> Response:
        engine.pause(req.params["id"])
        return no_content()

    def unpause(req: Request) -> Response:
        engine.unpause(req.params["id"])
        return no_content()

    def wait(req: Request) -> Response:
        c = engine.get(req.params["id"])
        condition = req.arg("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")

        def body() -> Iterator[bytes]:
            yield b""  # the headers go out now; the result when the condition is met
            try:
                result = engine.wait(c.id, condition, req.closed)
            except NotFound:
                result = {"StatusCode": c.state["ExitCode"]}
            yield (json.dumps(result) + "\n").encode()

        return Response(200, stream=_prime(body()))

    def remove(req: Request) -> Response:
        if req.flag("link"):
            raise InvalidArgument("links are not supported by skiffd")
        engine.remove(req.params["id"], force=req.flag("force"), volumes=req.flag("v"))
        return no_content()

    def rename(req: Request) -> Response:
        engine.rename(req.params["id"], req.arg("name"))
        return no_content()

    def update(req: Request) -> Response:
        warnings = engine.update(req.params["id"], req.json())
        return json_response({"Warnings": warnings})

    def top(req: Request) -> Response:
        return json_response(engine.top(req.params["id"], req.arg("ps_args") or "-ef"))

    def stats(req: Request) -> Response:
        c = engine.get(req.params["id"])
        stream = req.flag("stream", True)
        one_shot = req.flag("one-shot")

        def samples() -> Iterator[bytes]:
            prev = None
            first = True
            while True:
                s = engine.stats(c.id)
                if prev is not None:
                    s["preread"] = prev["read"]
                    s["precpu_stats"] = prev["cpu_stats"]
                if not first or not stream or one_shot or prev is not None:
                    yield (json.dumps(s) + "\n").encode()
                prev = s
                if not stream:
                    return
                first = False
                if c.removed or req.closed():
                    return
                time.sleep(1.0 if not first else 0)

        if not stream and not one_shot:
            # like docker: two samples a second apart so the CPU percentage can be computed
            a = engine.stats(c.id)
            time.sleep(1.0) if c.state["Running"] else None
            b = engine.stats(c.id)
            b["preread"], b["precpu_stats"] = a["read"], a["cpu_stats"]
            return json_response(b)
        if not stream:
            return json_response(engine.stats(c.id))
        return Response(200, stream=samples())

    def changes(req: Request) -> Response:
        return json_response(engine.changes(req.params["id"]) or None)

    def export(req: Request) -> Response:
        c = engine.get(req.params["id"])
        buf = _SpoolWriter()
        engine.export(c.id, buf)
        return Response(200, content_type="application/x-tar", stream=buf.chunks())

    def logs(req: Request) -> Response:
        stdout, stderr = req.flag("stdout"), req.flag("stderr")
        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tail_arg = req.arg("tail", "all")
        # Docker: a tail that is not a number means all lines (strconv.Atoi fails -> -1)
        try:
            tail = None if tail_arg in ("all", "") else int(tail_arg)
        except ValueError:
            tail = None
        c, entries = engine.logs(
            req.params["id"],
            stdout=stdout,
            stderr=stderr,
            since=parse_since(req.arg("since")),
            until=parse_since(req.arg("until")),
            tail=tail,
            follow=req.flag("follow"),
        )
        tty = bool(c.config.get("Tty"))
        timestamps = req.flag("timestamps")

        def body() -> Iterator[bytes]:
            for stream_name, ts, data in entries:
                if timestamps:
                    data = ts.encode() + b" " + data
                if tty:
                    yield data
                else:
                    yield streams.mux_header(1 if stream_name == "stdout" else 2, len(data)) + data

        ctype = (
            "application/vnd.docker.raw-stream"
            if tty
            else "application/vnd.docker.multiplexed-stream"
        )
        return Response(200, content_type=ctype, stream=body())

    def attach(req: Request) -> Response:
        cid = req.params["id"]
        c = engine.get(cid)
        want_stdin = req.flag("stdin")
        stdout, stderr = req.flag("stdout"), req.flag("stderr")
        detach_keys = streams.parse_detach_keys(req.arg("detachKeys"))
        replay_logs = req.flag("logs")
        stream = req.flag("stream")
        tty = bool(c.config.get("Tty"))
        if c.status is Status.PAUSED:
            raise Conflict("You cannot attach to a paused container, unpause it first")
        session = (
            engine.attach(
                cid,
                stdin=want_stdin and bool(c.config.get("OpenStdin")),
                stdout=stdout,
                stderr=stderr,
            )
            if stream
            else None
        )

        def hijack(handler: Any) -> None:
            start_hijack(
                handler,
                "application/vnd.docker.raw-stream"
                if tty
                else "application/vnd.docker.multiplexed-stream",
            )
            if replay_logs:
                _, entries = engine.logs(c.id, stdout=stdout, stderr=stderr)
                for stream_name, _ts, data in entries:
                    handler.connection.sendall(
                        data
                        if tty
                        else streams.mux_header(1 if stream_name == "stdout" else 2, len(data))
                        + data
                    )
            if session is None:
                handler.connection.shutdown(2)
                return
            while not session.ready.wait(1.0):
                if req.closed():
                    engine.detach_pending(c.id, session)
                    return
            if session.sock is None:
                try:
                    handler.connection.shutdown(2)
                except OSError:
                    pass
                return
            streams.pump(
                handler,
                session.sock,
                tty=tty,
                stdin=session.stdin,
                close_stdin_on_eof=bool(c.config.get("StdinOnce")),
                detach_keys=detach_keys,
                on_detach=lambda: engine.event(c, "detach"),
            )

        return Response(hijack=hijack)

    def resize(req: Request) -> Response:
        engine.resize(req.params["id"], req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0)
        return Response(200, content_type="text/plain")

    def prune(req: Request) -> Response:
        filters = req.filters()
        until = filters.get("until")
        labels = filters.get("label", [])

        def accept(c: Container) -> bool:
            if until and _ts(c.created) > min(_until_ts(u) for u in until):
                return False
            return _label_match(c.config.get("Labels") or {}, labels) if labels else True

        removed, space = engine.prune(accept)
        return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": space})

    # ---- archive ---------------------------------------------------------------------
    def archive_head(req: Request) -> Response:
        stat = _archive_stat(engine, req.params["id"], req.arg("path"))
        return Response(
            200, content_type="", headers={"X-Docker-Container-Path-Stat": _stat_header(stat)}
        )

    def archive_get(req: Request) -> Response:
        from skiff.linux.paths import resolve_in_root

        c, rootfs, release = engine.rootfs_for_archive(req.params["id"])
        try:
            path = req.arg("path")
            stat = _stat_in(rootfs, path, c.id)
            try:
                host = resolve_in_root(rootfs, path)
                buf = io.BytesIO()
                name = stat["name"]
                with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    _add_tree(tar, host, name if not path.endswith("/.") else ".", rootfs)
            except (FileNotFoundError, NotADirectoryError):  # the container moved it meanwhile
                raise NotFound(f"Could not find the file {path} in container {c.name}") from None
            data = buf.getvalue()
        finally:
            if release:
                engine.release_archive_rootfs(c)
        return Response(
            200,
            body=data,
            content_type="application/x-tar",
            headers={"X-Docker-Container-Path-Stat": _stat_header(stat)},
        )

    def archive_put(req: Request) -> Response:
        from skiff.linux.paths import resolve_in_root

        c, rootfs, release = engine.rootfs_for_archive(req.params["id"])
        try:
            if c.host_config.get("ReadonlyRootfs"):
                raise Conflict("container rootfs is marked read-only")
            path = req.arg("path")
            try:
                host = resolve_in_root(rootfs, path)
            except (FileNotFoundError, NotADirectoryError):  # gone while we looked it up
                raise NotFound(f"Could not find the file {path} in container {c.name}") from None
            if not os.path.isdir(host):
                raise (
                    NotFound(f"Could not find the file {path} in container {c.name}")
                    if not os.path.exists(host)
                    else InvalidArgument(f"extraction point is not a directory: {path}")
                )
            data = req.body()
            try:
                _extract_in_root(
                    rootfs, path, data, no_overwrite_dir_non_dir=req.flag("noOverwriteDirNonDir")
                )
            except OSError as err:
                # the container created, removed or swapped a path while we extracted into it
                if err.errno not in _CHANGED_UNDER_US:
                    raise
                raise Conflict(
                    f"extracting into {path} in container {c.name}: {err.strerror}: "
                    "the path changed during the copy"
                ) from None
        finally:
            if release:
                engine.release_archive_rootfs(c)
        return Response(200, content_type="")

    # ---- exec ------------------------------------------------------------------------
    def exec_create(req: Request) -> Response:
        rec = engine.exec_create(req.params["id"], req.json())
        return json_response({"Id": rec.id}, 201)

    def exec_start(req: Request) -> Response:
        eid = req.params["id"]
        body = req.json()
        rec = engine.exec_get(eid)
        detach = bool(body.get("Detach"))
        tty = bool(body.get("Tty", rec.config.get("Tty")))
        rec.config["Tty"] = tty
        if detach:
            engine.exec_start(eid, detach=True)
            return no_content()
        if rec.started:
            raise Conflict(f"exec {eid} has already been started")
        if not engine.get(rec.container_id).state["Running"]:
            raise Conflict(f"Container {rec.container_id} is not running")

        def hijack(handler: Any) -> None:
            # like dockerd: upgrade first, then start; a failed start is told on the stream
            start_hijack(
                handler,
                "application/vnd.docker.raw-stream"
                if tty
                else "application/vnd.docker.multiplexed-stream",
            )
            try:
                session = engine.exec_start(eid, detach=False)
            except SkiffError as err:
                msg = (err.message + "\r\n").encode()
                handler.connection.sendall(msg if tty else streams.mux_header(2, len(msg)) + msg)
                handler.connection.shutdown(2)
                return
            if session is None or session.sock is None:
                if session is not None and session.error:  # say why there is no output
                    msg = f"attach to exec {eid[:12]}: {session.error}\r\n".encode()
                    handler.connection.sendall(
                        msg if tty else streams.mux_header(2, len(msg)) + msg
                    )
                handler.connection.shutdown(2)
                return
            streams.pump(
                handler,
                session.sock,
                tty=tty,
                stdin=session.stdin,
                close_stdin_on_eof=True,
                detach_keys=streams.parse_detach_keys(rec.config.get("DetachKeys") or ""),
                before_close=lambda: rec.done.wait(10),  # the client asks for ExitCode next
            )

        return Response(hijack=hijack)

    def exec_inspect(req: Request) -> Response:
        rec = engine.exec_get(req.params["id"])
        cfg = rec.config
        return json_response(
            {
                "CanRemove": False,
                "ContainerID": rec.container_id,
                "DetachKeys": cfg.get("DetachKeys", ""),
                "ExitCode": rec.exit_code,
                "ID": rec.id,
                "OpenStderr": bool(cfg.get("AttachStderr")),
                "OpenStdin": bool(cfg.get("AttachStdin")),
                "OpenStdout": bool(cfg.get("AttachStdout")),
                "ProcessConfig": {
                    "arguments": list(cfg.get("Cmd", [])[1:]),
                    "entrypoint": cfg.get("Cmd", [""])[0],
                    "privileged": bool(cfg.get("Privileged")),
                    "tty": bool(cfg.get("Tty")),
                    "user": cfg.get("User", ""),
                },
                "Running": rec.running,
                "Pid": rec.pid,
            }
        )

    def exec_resize(req: Request) -> Response:
        engine.exec_resize(req.params["id"], req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0)
        return Response(201, content_type="")

    r = router.add
    r("POST", "/containers/create", create)
    r("GET", "/containers/json", list_)
    r("POST", "/containers/prune", prune)
    r("GET", "/containers/{id}/json", get_json)
    r("POST", "/containers/{id}/start", start)
    r("POST", "/containers/{id}/stop", stop)
    r("POST", "/containers/{id}/restart", restart)
    r("POST", "/containers/{id}/kill", kill)
    r("POST", "/containers/{id}/pause", pause)
    r("POST", "/containers/{id}/unpause", unpause)
    r("POST", "/containers/{id}/wait", wait)
    r("DELETE", "/containers/{id}", remove)
    r("POST", "/containers/{id}/rename", rename)
    r("POST", "/containers/{id}/update", update)
    r("GET", "/containers/{id}/top", top)
    r("GET", "/containers/{id}/stats", stats)
    r("GET", "/containers/{id}/changes", changes)
    r("GET", "/containers/{id}/export", export)
    r("GET", "/containers/{id}/logs", logs)
    r("POST", "/containers/{id}/attach", attach)
    r("POST", "/containers/{id}/resize", resize)
    r("HEAD", "/containers/{id}/archive", archive_head)
    r("GET", "/containers/{id}/archive", archive_get)
    r("PUT", "/containers/{id}/archive", archive_put)
    r("POST", "/containers/{id}/exec", exec_create)
    r("POST", "/exec/{id}/start", exec_start)
    r("POST", "/exec/{id}/resize", exec_resize)
    r("GET", "/exec/{id}/json", exec_inspect)


def _until_ts(value: str) -> float:
    v = parse_since(value)
    return v if v is not None else time.time()


def _prime(it: Iterator[bytes]) -> Iterator[bytes]:
    """Run the generator up to its first yield so errors surface before the 200 is sent."""
    first = next(it, None)

    def gen() -> Iterator[bytes]:
        if first:
            yield first
        yield from it

    return gen()


class _SpoolWriter:
    """A write target that spools to a temp file and then streams it back."""

    def __init__(self) -> None:
        import tempfile

        self.f = tempfile.TemporaryFile()

    def write(self, data: bytes) -> int:
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def chunks(self) -> Iterator[bytes]:
        self.f.seek(0)
        try:
            while True:
                chunk = self.f.read(1 << 20)
                if not chunk:
                    return
                yield chunk
        finally:
            self.f.close()


def _stat_in(rootfs: str, path: str, cid: str) -> dict[str, Any]:
    import stat as st

    if not path:
        raise InvalidArgument("path is required")
    from skiff.linux.paths import resolve_in_root

    try:
        host = resolve_in_root(rootfs, path)
        s = os.lstat(host)
    except (OSError, NotFound):
        raise NotFound(f"Could not find the file {path} in container {cid}") from None
    link = os.readlink(host) if st.S_ISLNK(s.st_mode) else ""
    mode = st.S_IMODE(s.st_mode)
    if st.S_ISDIR(s.st_mode):
        mode |= 1 << 31
    elif st.S_ISLNK(s.st_mode):
        mode |= 1 << 27
    from datetime import datetime

    name = os.path.basename(path.rstrip("/")) or "/"
    if path.endswith("/."):
        name = os.path.basename(path[:-2].rstrip("/")) or "/"
    return {
        "name": name,
        "size": s.st_size,
        "mode": mode,
        "mtime": datetime.fromtimestamp(s.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "linkTarget": link,
    }


def _stat_header(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def _archive_stat(engine: Engine, ref: str, path: str) -> dict[str, Any]:
    c, rootfs, release = engine.rootfs_for_archive(ref)
    try:
        return _stat_in(rootfs, path, c.id)
    finally:
        if release:
            engine.release_archive_rootfs(c)


def _add_tree(tar: tarfile.TarFile, host: str, arcname: str, rootfs: str) -> None:
    """Add host path recursively without following symlinks (they stay links in the tar)."""
    tar.add(host, arcname=arcname, recursive=False)
    if os.path.isdir(host) and not os.path.islink(host):
        for entry in sorted(os.listdir(host)):
            _add_tree(
                tar,
                os.path.join(host, entry),
                os.path.join(arcname, entry) if arcname != "." else entry,
                rootfs,
            )


# errnos of a path the container changed while we copied into it (not our bug: a 409)
_CHANGED_UNDER_US = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ELOOP, errno.ENOTEMPTY}
)


def _extract_in_root(rootfs: str, dest: str, data: bytes, no_overwrite_dir_non_dir: bool) -> None:
    """Extract a tar under `dest` inside the container.

    Each entry's parent directory is opened with openat2(RESOLVE_IN_ROOT) and every operation is
    done relative to that descriptor (mkdirat, openat with O_NOFOLLOW, symlinkat, linkat,
    fchownat, …), so a container that swaps a directory for a symlink meanwhile cannot redirect
    a write out of its root filesystem.
    """

    from skiff.linux.paths import mkdir_all_in_root, open_in_root

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            name = os.path.normpath("/" + member.name).lstrip("/")
            if not name or name == ".":
                continue
            target_path = os.path.join(dest, name)
            parent = os.path.dirname(target_path)
            base = os.path.basename(target_path)
            mkdir_all_in_root(rootfs, parent)
            dirfd = open_in_root(rootfs, parent, os.O_PATH | os.O_DIRECTORY)
            try:
                _extract_member(
                    tar, member, dirfd, base, rootfs, dest, target_path, no_overwrite_dir_non_dir
                )
            finally:
                os.close(dirfd)


def _extract_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    dirfd: int,
    base: str,
    rootfs: str,
    dest: str,
    target_path: str,
    no_overwrite_dir_non_dir: bool,
) -> None:
    import shutil
    import stat as st

    from skiff.linux.paths import open_in_root

    mode = member.mode & 0o7777
    try:
        existing = os.stat(base, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        is_dir = st.S_ISDIR(existing.st_mode)
        if no_overwrite_dir_non_dir and is_dir != member.isdir():
            raise InvalidArgument(
                f"cannot overwrite {'directory' if is_dir else 'non-directory'} {target_path!r} with {'directory' if member.isdir() else 'non-directory'}"
            )
        if member.isdir() and is_dir:
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dirfd)
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            return
        if is_dir:
            shutil.rmtree(base, dir_fd=dirfd)
        else:
            os.unlink(base, dir_fd=dirfd)
    if member.isdir():
        os.mkdir(base, mode, dir_fd=dirfd)
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dirfd)
        try:
            _own(fd, member)  # chown first: it clears set-id bits that chmod then sets
            os.fchmod(fd, mode)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)
    elif member.issym():
        os.symlink(member.linkname, base, dir_fd=dirfd)
        try:
            os.chown(base, member.uid, member.gid, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            pass
    elif member.islnk():
        link_path = os.path.join(dest, os.path.normpath("/" + member.linkname).lstrip("/"))
        src_fd = open_in_root(rootfs, link_path, os.O_PATH | os.O_NOFOLLOW)
        try:
            os.link(f"/proc/self/fd/{src_fd}", base, dst_dir_fd=dirfd, follow_symlinks=True)
        finally:
            os.close(src_fd)
    elif member.isfile():
        src = tar.extractfile(member)
        assert src is not None
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dirfd)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
            out.flush()
            _own(out.fileno(), member)
            os.fchmod(out.fileno(), mode)
            os.utime(out.fileno(), (member.mtime, member.mtime))
    # devices and fifos: not copied into containers


def _own(fd: int, member: tarfile.TarInfo) -> None:
    try:
        os.fchown(fd, member.uid, member.gid)
    except OSError:
        pass
