"""Entry point of `skiffd`: flags (like dockerd's), configuration, and the wiring.

Containers outlive skiffd: stopping the daemon (SIGTERM/SIGINT) closes the listeners and leaves
every container running under its shim; the next start adopts them.
"""

from __future__ import annotations

import argparse
import grp
import json
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from skiff.errors import InvalidArgument, SkiffError

DEFAULT_SOCKET = "unix:///run/skiff/skiff.sock"
DEFAULT_RUNTIME = "skiff-runtime"

log = logging.getLogger("skiffd")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="skiffd", description="skiff's container engine daemon (serves the Docker Engine API)"
    )
    p.add_argument(
        "-H",
        "--host",
        action="append",
        default=None,
        help="daemon socket(s) to listen on (unix:// or tcp://)",
    )
    p.add_argument(
        "--data-root", default=None, help="root of persistent state (default /var/lib/skiff)"
    )
    p.add_argument("--exec-root", default=None, help="root of runtime state (default /run/skiff)")
    p.add_argument(
        "-p",
        "--pidfile",
        default=None,
        help="path of the pid file (default <exec-root>/skiffd.pid)",
    )
    p.add_argument(
        "-l", "--log-level", default=None, choices=["debug", "info", "warn", "error", "fatal"]
    )
    p.add_argument("-D", "--debug", action="store_true")
    p.add_argument(
        "--default-runtime", default=None, help="OCI runtime for containers (default skiff-runtime)"
    )
    p.add_argument(
        "--add-runtime", action="append", default=None, help="name=path of an extra OCI runtime"
    )
    p.add_argument(
        "--config-file", default=None, help="JSON configuration file (dockerd's daemon.json keys)"
    )
    p.add_argument(
        "-G",
        "--group",
        default=None,
        help="group owning the unix socket (default skiff, when it exists)",
    )
    p.add_argument(
        "-b",
        "--bridge",
        default=None,
        help="name of the default bridge (default skiff0; 'none' disables bridge networking)",
    )
    p.add_argument(
        "--bip", default=None, help="address/prefix of the default bridge (default: a free /24)"
    )
    p.add_argument(
        "--icc",
        default=None,
        choices=["true", "false"],
        help="traffic between containers on the default bridge",
    )
    p.add_argument(
        "--seccomp-profile",
        default=None,
        help="default seccomp profile: a Docker-format JSON file, 'unconfined' or 'builtin'",
    )
    p.add_argument(
        "--no-new-privileges",
        action="store_true",
        default=None,
        help="set no-new-privileges on every container by default",
    )
    p.add_argument(
        "--userns-remap",
        default=None,
        help="map containers' root to a subordinate id range: 'default' or user[:group]",
    )
    p.add_argument("--tlsverify", action="store_true")
    p.add_argument("--tlscacert", default=None)
    p.add_argument("--tlscert", default=None)
    p.add_argument("--tlskey", default=None)
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """Flags over the config file over defaults; the file uses dockerd's daemon.json keys."""
    cfg: dict[str, Any] = {}
    if args.config_file:
        try:
            with open(args.config_file) as f:
                cfg = json.load(f)
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"config file {args.config_file}: {err}") from None
    hosts = args.host or cfg.get("hosts") or [DEFAULT_SOCKET]
    runtimes: dict[str, str] = {}
    for name, spec in (cfg.get("runtimes") or {}).items():
        runtimes[name] = spec["path"] if isinstance(spec, dict) else str(spec)
    for item in args.add_runtime or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise InvalidArgument(f"--add-runtime {item!r}: expected name=path")
        runtimes[name] = path
    for name in ("skiff-runtime", "runc"):
        if name not in runtimes:
            found = shutil.which(name) or (
                f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
            )
            if found:
                runtimes[name] = found
    level = (
        args.log_level
        or cfg.get("log-level")
        or ("debug" if args.debug or cfg.get("debug") else "info")
    )
    return {
        "hosts": hosts,
        "data_root": Path(args.data_root or cfg.get("data-root") or "/var/lib/skiff"),
        "exec_root": Path(args.exec_root or cfg.get("exec-root") or "/run/skiff"),
        "pidfile": args.pidfile or cfg.get("pidfile"),
        "log_level": level,
        "debug": level == "debug",
        "default_runtime": args.default_runtime or cfg.get("default-runtime") or DEFAULT_RUNTIME,
        "runtimes": runtimes,
        "group": args.group or cfg.get("group"),
        "bridge": args.bridge or cfg.get("bridge") or "skiff0",
        "insecure_registries": list(cfg.get("insecure-registries") or []),
        "registry_mirrors": list(cfg.get("registry-mirrors") or []),
        "bip": args.bip or cfg.get("bip"),
        "icc": (args.icc or str(cfg.get("icc", "true")).lower()) != "false",
        "security": _security_defaults(args, cfg),
        "tlsverify": args.tlsverify or bool(cfg.get("tlsverify")),
        "tlscacert": args.tlscacert or cfg.get("tlscacert"),
        "tlscert": args.tlscert or cfg.get("tlscert"),
        "tlskey": args.tlskey or cfg.get("tlskey"),
    }


def _security_defaults(args: argparse.Namespace, cfg: dict[str, Any]) -> Any:
    """dockerd's `seccomp-profile`, `no-new-privileges` and `userns-remap` keys (flags win)."""
    from skiff.engine.security import SecurityDefaults, load_seccomp_profile

    nnp = (
        args.no_new_privileges
        if args.no_new_privileges is not None
        else cfg.get("no-new-privileges", False)
    )
    if not isinstance(nnp, bool):
        raise InvalidArgument(f"config no-new-privileges: expected true or false, got {nnp!r}")
    remap = args.userns_remap if args.userns_remap is not None else cfg.get("userns-remap", "")
    if not isinstance(remap, str):
        raise InvalidArgument(f"config userns-remap: expected a string, got {remap!r}")
    idmap = None
    if remap:
        from skiff.engine import userns

        idmap = userns.resolve(remap)
    return SecurityDefaults(
        seccomp_profile=load_seccomp_profile(args.seccomp_profile or cfg.get("seccomp-profile")),
        no_new_privileges=nnp,
        idmap=idmap,
        userns_remap=remap,
    )


def _listen(host: str, handler: Any, cfg: dict[str, Any]) -> Any:
    from skiff.api.http import TCPHTTPServer, UnixHTTPServer

    if host.startswith("unix://"):
        path = host[len("unix://") :]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
        server = UnixHTTPServer(path, handler)
        group = cfg["group"]
        gid = None
        try:
            gid = grp.getgrnam(group or "skiff").gr_gid
        except KeyError:
            if group:
                raise InvalidArgument(f"--group {group}: no such group") from None
        if gid is not None:
            os.chown(path, 0, gid)
        os.chmod(path, 0o660)
        return server
    if host.startswith("tcp://"):  # check_hosts made sure mutual TLS is configured
        import ssl

        hostport = host[len("tcp://") :]
        addr, _, port = hostport.rpartition(":")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg["tlscert"], cfg["tlskey"])
        ctx.load_verify_locations(cfg["tlscacert"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        return TCPHTTPServer((addr or "0.0.0.0", int(port or 2376)), handler, ctx)
    raise InvalidArgument(f"invalid --host {host!r}: expected unix://PATH or tcp://HOST:PORT")


def open_image_store(data_root: Path) -> Any:
    from skiff.images.store import ImageStore

    return ImageStore(data_root)


def open_plumbing(cfg: dict[str, Any], data_root: Path, exec_root: Path) -> Any:
    """Networks (a bridge of our own, its nft table, the embedded DNS) and volumes."""
    from skiff.engine.networking import Networking
    from skiff.engine.plumbing import Plumbing
    from skiff.volumes.local import LocalVolumes

    networking = None
    if cfg["bridge"] != "none":
        from skiff.network.dns import EmbeddedDNS
        from skiff.network.manager import NetworkManager

        manager = NetworkManager(
            data_root / "network",
            default_bridge=cfg["bridge"],
            bip=cfg["bip"],
            icc=cfg["icc"],
            dns=EmbeddedDNS(),
        )
        manager.start()
        networking = Networking(manager, exec_root)
    return Plumbing(networking, LocalVolumes(data_root / "volumes"))


def check_hosts(cfg: dict[str, Any]) -> None:
    """Refuse a listener configuration before anything is created."""
    for host in cfg["hosts"]:
        if host.startswith("tcp://"):
            if not (cfg["tlsverify"] and cfg["tlscacert"] and cfg["tlscert"] and cfg["tlskey"]):
                raise InvalidArgument(
                    f"{host}: listening on TCP requires --tlsverify --tlscacert --tlscert --tlskey (mutual TLS)"
                )
        elif not host.startswith("unix://"):
            raise InvalidArgument(
                f"invalid --host {host!r}: expected unix://PATH or tcp://HOST:PORT"
            )


def serve(cfg: dict[str, Any]) -> int:
    from skiff.api.server import build_router, handler_class
    from skiff.engine.containers import Engine, Runtimes
    from skiff.engine.events import EventBus

    data_root: Path = cfg["data_root"]
    exec_root: Path = cfg["exec_root"]
    check_hosts(cfg)  # a refused listener must not leave a bridge, rules or state behind
    data_root.mkdir(parents=True, exist_ok=True)
    exec_root.mkdir(parents=True, exist_ok=True)
    pidfile = Path(cfg["pidfile"] or exec_root / "skiffd.pid")
    _write_pidfile(pidfile)
    events = EventBus(data_root / "events.jsonl")
    engine = Engine(
        data_root=data_root,
        exec_root=exec_root,
        runtimes=Runtimes(cfg["runtimes"], cfg["default_runtime"]),
        images=open_image_store(data_root),
        events=events,
    )
    engine.security = cfg["security"]
    from skiff.build import steprun

    steprun.security_defaults = cfg["security"]
    if engine.security.idmap is not None:
        from skiff.engine import userns

        # the remapped root must be able to reach its rootfs and files below these (dockerd
        # makes its root dir 0711 for the same reason); parents are the administrator's
        for d in (data_root, exec_root):
            userns.make_traversable(d)
        for gone in userns.prune_shifted_layers(data_root / "userns"):
            log.info("userns-remap: removed the shifted copy %s of a deleted layer", gone)
        log.info(
            "userns-remap %s: containers' root is host uid %d, gid %d",
            engine.security.userns_remap,
            engine.security.idmap.uid_start,
            engine.security.idmap.gid_start,
        )
    engine.plumbing = open_plumbing(cfg, data_root, exec_root)
    engine.registry.insecure = cfg["insecure_registries"]
    engine.registry.mirrors = cfg["registry_mirrors"]
    engine.load_and_reconcile()
    id_file = data_root / "engine-id"
    if not id_file.exists():
        import secrets

        id_file.write_text(secrets.token_hex(16))
    router = build_router(
        engine, events, {"id": id_file.read_text().strip(), "debug": cfg["debug"]}
    )
    handler = handler_class(router)
    servers = [_listen(h, handler, cfg) for h in cfg["hosts"]]
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        log.info(
            "received %s: shutting down (containers keep running)", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        for s in servers
    ]
    for t in threads:
        t.start()
    log.info("skiffd ready: listening on %s", ", ".join(cfg["hosts"]))
    events.publish("daemon", "start", id_file.read_text().strip(), {"name": os.uname().nodename})
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
        for h in cfg["hosts"]:
            if h.startswith("unix://"):
                try:
                    os.unlink(h[len("unix://") :])
                except OSError:
                    pass
        engine.shutdown()
        try:
            pidfile.unlink()
        except OSError:
            pass
    return 0


def _write_pidfile(path: Path) -> None:
    if path.exists():
        try:
            other = int(path.read_text().strip())
            if (
                other != os.getpid()
                and os.path.exists(f"/proc/{other}")
                and "skiffd" in open(f"/proc/{other}/cmdline").read()
            ):
                raise InvalidArgument(
                    f"pid file found, ensure skiffd is not running or delete {path} (pid {other})"
                )
        except (ValueError, OSError):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args)
    except SkiffError as err:
        print(f"skiffd: {err}", file=sys.stderr)
        return 1
    levels = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "error": logging.ERROR,
        "fatal": logging.CRITICAL,
    }
    logging.basicConfig(
        level=levels.get(cfg["log_level"], logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if os.geteuid() != 0:
        print(
            "skiffd: must run as root (it creates namespaces, mounts and cgroups)", file=sys.stderr
        )
        return 1
    try:
        return serve(cfg)
    except SkiffError as err:
        print(f"skiffd: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
