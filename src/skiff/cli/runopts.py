"""`run`/`create` flags and the container-create request they become, as the docker CLI builds it.

`CREATE_FLAGS` lists docker's flags; `build_create_request(opts, args)` turns parsed flags into
(query params, JSON body) for POST /containers/create. Values a daemon treats as "unset" are left
out, so the body equals docker's once Go's zero values are dropped (tests check exactly that).
Malformed values raise `FlagError` with docker's wording ("invalid hostPort: 99999"), exit 125.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Any

from skiff.cli.flags import INT, LIST, STR, Flag, FlagError, Options
from skiff.cli.output import ram_in_bytes
from skiff.errors import InvalidArgument

CREATE_FLAGS: list[Flag] = [
    Flag("add-host", kind=LIST, metavar="list", help="Add a custom host-to-IP mapping (host:ip)"),
    Flag("attach", "a", LIST, metavar="list", help="Attach to STDIN, STDOUT or STDERR"),
    Flag("blkio-weight", kind=INT, default=0, metavar="uint16", help="Block IO weight (10-1000)"),
    Flag("cap-add", kind=LIST, metavar="list", help="Add Linux capabilities"),
    Flag("cap-drop", kind=LIST, metavar="list", help="Drop Linux capabilities"),
    Flag("cgroup-parent", kind=STR, default="", help="Optional parent cgroup for the container"),
    Flag("cgroupns", kind=STR, default="", help="Cgroup namespace to use (host|private)"),
    Flag(
        "cidfile", kind=STR, default="", help="Write the container ID to the file", complete="file"
    ),
    Flag("cpu-period", kind=INT, default=0, help="Limit CPU CFS period"),
    Flag("cpu-quota", kind=INT, default=0, help="Limit CPU CFS quota"),
    Flag("cpu-rt-period", kind=INT, default=0, help="Limit CPU real-time period in microseconds"),
    Flag("cpu-rt-runtime", kind=INT, default=0, help="Limit CPU real-time runtime in microseconds"),
    Flag("cpu-shares", "c", INT, 0, help="CPU shares (relative weight)"),
    Flag("cpus", kind=STR, default="", metavar="decimal", help="Number of CPUs"),
    Flag("cpuset-cpus", kind=STR, default="", help="CPUs in which to allow execution (0-3, 0,1)"),
    Flag("cpuset-mems", kind=STR, default="", help="MEMs in which to allow execution (0-3, 0,1)"),
    Flag("device", kind=LIST, metavar="list", help="Add a host device to the container"),
    Flag(
        "device-cgroup-rule",
        kind=LIST,
        metavar="list",
        help="Add a rule to the cgroup allowed devices list",
    ),
    Flag("dns", kind=LIST, metavar="list", help="Set custom DNS servers"),
    Flag("dns-option", kind=LIST, metavar="list", help="Set DNS options"),
    Flag("dns-search", kind=LIST, metavar="list", help="Set custom DNS search domains"),
    Flag("domainname", kind=STR, default="", help="Container NIS domain name"),
    Flag(
        "entrypoint", kind=STR, default=None, help="Overwrite the default ENTRYPOINT of the image"
    ),
    Flag("env", "e", LIST, metavar="list", help="Set environment variables"),
    Flag(
        "env-file",
        kind=LIST,
        metavar="list",
        help="Read in a file of environment variables",
        complete="file",
    ),
    Flag("expose", kind=LIST, metavar="list", help="Expose a port or a range of ports"),
    Flag("group-add", kind=LIST, metavar="list", help="Add additional groups to join"),
    Flag("health-cmd", kind=STR, default="", help="Command to run to check health"),
    Flag(
        "health-interval",
        kind=STR,
        default="",
        metavar="duration",
        help="Time between running the check (ms|s|m|h)",
    ),
    Flag(
        "health-retries",
        kind=INT,
        default=0,
        help="Consecutive failures needed to report unhealthy",
    ),
    Flag(
        "health-start-interval",
        kind=STR,
        default="",
        metavar="duration",
        help="Time between running the check during the start period",
    ),
    Flag(
        "health-start-period",
        kind=STR,
        default="",
        metavar="duration",
        help="Start period for the container to initialize",
    ),
    Flag(
        "health-timeout",
        kind=STR,
        default="",
        metavar="duration",
        help="Maximum time to allow one check to run",
    ),
    Flag("hostname", "h", STR, "", help="Container host name"),
    Flag("init", help="Run an init inside the container that forwards signals and reaps processes"),
    Flag("interactive", "i", help="Keep STDIN open even if not attached"),
    Flag("ip", kind=STR, default="", help="IPv4 address (e.g., 172.30.100.104)"),
    Flag("ip6", kind=STR, default="", help="IPv6 address (e.g., 2001:db8::33)"),
    Flag("ipc", kind=STR, default="", help="IPC mode to use"),
    Flag("isolation", kind=STR, default="", help="Container isolation technology"),
    Flag("label", "l", LIST, metavar="list", help="Set meta data on a container"),
    Flag(
        "label-file",
        kind=LIST,
        metavar="list",
        help="Read in a line delimited file of labels",
        complete="file",
    ),
    Flag("link", kind=LIST, metavar="list", help="Add link to another container"),
    Flag("log-driver", kind=STR, default="", help="Logging driver for the container"),
    Flag("log-opt", kind=LIST, metavar="list", help="Log driver options"),
    Flag("mac-address", kind=STR, default="", help="Container MAC address"),
    Flag("memory", "m", STR, "", metavar="bytes", help="Memory limit"),
    Flag("memory-reservation", kind=STR, default="", metavar="bytes", help="Memory soft limit"),
    Flag(
        "memory-swap",
        kind=STR,
        default="",
        metavar="bytes",
        help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    ),
    Flag(
        "memory-swappiness",
        kind=INT,
        default=-1,
        help="Tune container memory swappiness (0 to 100)",
    ),
    Flag("mount", kind=LIST, metavar="mount", help="Attach a filesystem mount to the container"),
    Flag("name", kind=STR, default="", help="Assign a name to the container"),
    Flag(
        "network",
        kind=STR,
        default="",
        metavar="network",
        help="Connect a container to a network",
        complete="network",
    ),
    Flag("net", kind=STR, default="", hidden=True),
    Flag(
        "network-alias",
        kind=LIST,
        metavar="list",
        help="Add network-scoped alias for the container",
    ),
    Flag("no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
    Flag("oom-kill-disable", help="Disable OOM Killer"),
    Flag("oom-score-adj", kind=INT, default=0, help="Tune host's OOM preferences (-1000 to 1000)"),
    Flag("pid", kind=STR, default="", help="PID namespace to use"),
    Flag(
        "pids-limit", kind=INT, default=0, help="Tune container pids limit (set -1 for unlimited)"
    ),
    Flag("platform", kind=STR, default="", help="Set platform if server is multi-platform capable"),
    Flag("privileged", help="Give extended privileges to this container"),
    Flag("publish", "p", LIST, metavar="list", help="Publish a container's port(s) to the host"),
    Flag("publish-all", "P", help="Publish all exposed ports to random ports"),
    Flag(
        "pull",
        kind=STR,
        default="missing",
        help='Pull image before running ("always", "missing", "never")',
    ),
    Flag("quiet", "q", help="Suppress the pull output"),
    Flag("read-only", help="Mount the container's root filesystem as read only"),
    Flag("restart", kind=STR, default="no", help="Restart policy to apply when a container exits"),
    Flag("rm", help="Automatically remove the container and its anonymous volumes when it exits"),
    Flag("runtime", kind=STR, default="", help="Runtime to use for this container"),
    Flag("security-opt", kind=LIST, metavar="list", help="Security Options"),
    Flag("shm-size", kind=STR, default="", metavar="bytes", help="Size of /dev/shm"),
    Flag("stop-signal", kind=STR, default="", help="Signal to stop the container"),
    Flag("stop-timeout", kind=INT, default=None, help="Timeout (in seconds) to stop a container"),
    Flag("storage-opt", kind=LIST, metavar="list", help="Storage driver options for the container"),
    Flag("sysctl", kind=LIST, metavar="map", help="Sysctl options"),
    Flag("tmpfs", kind=LIST, metavar="list", help="Mount a tmpfs directory"),
    Flag("tty", "t", help="Allocate a pseudo-TTY"),
    Flag("ulimit", kind=LIST, metavar="ulimit", help="Ulimit options"),
    Flag("user", "u", STR, "", help="Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("userns", kind=STR, default="", help="User namespace to use"),
    Flag("uts", kind=STR, default="", help="UTS namespace to use"),
    Flag("volume", "v", LIST, metavar="list", help="Bind mount a volume"),
    Flag("volume-driver", kind=STR, default="", help="Optional volume driver for the container"),
    Flag(
        "volumes-from",
        kind=LIST,
        metavar="list",
        help="Mount volumes from the specified container(s)",
    ),
    Flag("workdir", "w", STR, "", help="Working directory inside the container"),
    Flag("gpus", kind=STR, default="", help="GPU devices to add to the container (not supported)"),
]

RUN_ONLY_FLAGS: list[Flag] = [
    Flag("detach", "d", help="Run container in background and print container ID"),
    Flag(
        "detach-keys",
        kind=STR,
        default="",
        help="Override the key sequence for detaching a container",
    ),
    Flag("sig-proxy", default=True, help="Proxy received signals to the process"),
]


# -- value parsers ----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str, flag: str = "") -> int:
    """Go's time.ParseDuration, in nanoseconds: "1m30s", "500ms", "2h"."""
    s = text.strip()
    sign = 1
    if s.startswith(("-", "+")):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION.match(s, pos)
        if not m:
            where = f' for "--{flag}" flag' if flag else ""
            raise FlagError(f'invalid argument "{text}"{where}: time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not s:
        raise FlagError(f'invalid argument "{text}": time: invalid duration "{text}"')
    return sign * int(total)


def _size(text: str, flag: str) -> int:
    try:
        return ram_in_bytes(text)
    except InvalidArgument as err:
        raise FlagError(f'invalid argument "{text}" for "{flag}" flag: {err}')


def _port_range(text: str, what: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    try:
        lo = int(start)
        hi = int(end) if sep else lo
    except ValueError:
        raise FlagError(f"invalid {what}: {text}")
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or hi < lo:
        raise FlagError(f"invalid {what}: {text}")
    return lo, hi


def parse_port_spec(spec: str) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """docker's nat.ParsePortSpec: "[ip:][hostPort:]containerPort[/proto]" with ranges."""
    raw, _, proto = spec.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise FlagError(f"invalid proto: {proto}")
    ip, host_port, container_port = "", "", raw
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise FlagError(f"invalid IP address: {raw}")
        ip = raw[1:end]
        rest = raw[end + 1 :].lstrip(":")
        host_port, _, container_port = rest.rpartition(":")
    else:
        parts = raw.split(":")
        if len(parts) == 1:
            container_port = parts[0]
        elif len(parts) == 2:
            host_port, container_port = parts
        elif len(parts) == 3:
            ip, host_port, container_port = parts
        else:
            ip = ":".join(parts[:-2])
            host_port, container_port = parts[-2], parts[-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise FlagError(f"invalid IP address: {ip}")
    if not container_port:
        raise FlagError(f"no port specified: {spec}<empty>")
    c_lo, c_hi = _port_range(container_port, "containerPort")
    h_lo = h_hi = 0
    if host_port:
        h_lo, h_hi = _port_range(host_port, "hostPort")
        if (c_hi - c_lo) != (h_hi - h_lo) and not (h_hi - h_lo > 0 and c_hi == c_lo):
            raise FlagError(
                f"invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            )
    exposed: list[str] = []
    bindings: dict[str, list[dict[str, str]]] = {}
    for i in range(c_hi - c_lo + 1):
        port = f"{c_lo + i}/{proto}"
        exposed.append(port)
        if not host_port:
            hp = ""
        elif c_hi == c_lo and h_hi != h_lo:
            hp = f"{h_lo}-{h_hi}"
        else:
            hp = str(h_lo + i)
        bindings.setdefault(port, []).append({"HostIp": ip, "HostPort": hp})
    return exposed, bindings


def parse_restart(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise FlagError(
            f"invalid restart policy format: unknown policy '{name}'; use one of 'no', 'always', 'on-failure' or 'unless-stopped'"
        )
    if count and name != "on-failure":
        raise FlagError(
            "invalid restart policy format: maximum retry count can only be used with 'on-failure'"
        )
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise FlagError("invalid restart policy format: maximum retry count must be an integer")
    return {"Name": name or "no", "MaximumRetryCount": retries}


def read_kv_file(path: str, what: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise FlagError(f"{what} {path}: {err.strerror}")
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line)
    return out


def _env_value(item: str) -> str | None:
    if "=" in item:
        return item
    if item in os.environ:
        return f"{item}={os.environ[item]}"
    return None


def parse_mount(spec: str) -> dict[str, Any]:
    """--mount type=bind,src=/a,dst=/b,readonly,… → a HostConfig.Mounts entry."""
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    vol: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in next(iter([_csv_fields(spec)])):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq and key in ("readonly", "ro"):
            mount["ReadOnly"] = True
            continue
        if not eq:
            raise FlagError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            if value not in ("bind", "volume", "tmpfs", "npipe", "cluster", "image"):
                raise FlagError(
                    f'invalid argument "{spec}" for "--mount" flag: invalid mount type \'{value}\''
                )
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = value.lower() in ("1", "true")
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = value.lower() in ("1", "true")
        elif key == "volume-nocopy":
            vol["NoCopy"] = value.lower() in ("1", "true", "")
        elif key == "volume-label":
            k, _, v = value.partition("=")
            vol.setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            vol.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            vol.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-subpath":
            vol["Subpath"] = value
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = _size(value, "--mount")
        elif key == "tmpfs-mode":
            tmpfs["Mode"] = int(value, 8)
        else:
            raise FlagError(
                f"invalid argument \"{spec}\" for \"--mount\" flag: unexpected key '{key}' in '{field}'"
            )
    if "Target" not in mount:
        raise FlagError(f'invalid argument "{spec}" for "--mount" flag: target is required')
    if bind:
        mount["BindOptions"] = bind
    if vol:
        mount["VolumeOptions"] = vol
    if tmpfs:
        mount["TmpfsOptions"] = tmpfs
    return mount


def _csv_fields(spec: str) -> list[str]:
    import csv

    rows = list(csv.reader([spec]))
    return rows[0] if rows else []


def split_volume(spec: str) -> tuple[str, str, str]:
    """-v SRC:DST[:OPTS] | DST → (source, destination, options)."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise FlagError(f"invalid volume specification: '{spec}'")


def normalize_cap(cap: str) -> str:
    cap = cap.strip().upper()
    if cap == "ALL":
        return cap
    return cap if cap.startswith("CAP_") else "CAP_" + cap


def _ulimit(text: str) -> dict[str, Any]:
    name, eq, values = text.partition("=")
    if not eq:
        raise FlagError(
            f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit argument: {text}'
        )
    soft, _, hard = values.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise FlagError(
            f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit value: {values}'
        )
    if s > h and h != -1:
        raise FlagError(
            f'invalid argument "{text}" for "--ulimit" flag: ulimit soft limit must be less than or equal to hard limit: {s} > {h}'
        )
    return {"Name": name, "Hard": h, "Soft": s}


def _device(text: str) -> dict[str, str]:
    parts = text.split(":")
    host = parts[0]
    cont = host
    perms = "rwm"
    if len(parts) == 2:
        if set(parts[1]) <= set("rwm") and parts[1]:
            perms = parts[1]
        else:
            cont = parts[1]
    elif len(parts) == 3:
        cont, perms = parts[1], parts[2]
        if not set(perms) <= set("rwm"):
            raise FlagError(f"invalid device mode: {perms}")
    elif len(parts) > 3:
        raise FlagError(f"invalid device specification: {text}")
    return {"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms}


def _security_opt(opt: str) -> str:
    if opt.startswith("seccomp=") or opt.startswith("seccomp:"):
        path = opt[8:]
        if path in ("unconfined", "builtin"):
            return opt.replace(":", "=", 1)
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as err:
            raise FlagError(f"opening seccomp profile ({path}) failed: {err}")
        return "seccomp=" + json.dumps(doc, separators=(",", ":"))
    if opt == "no-new-privileges" or opt.startswith(
        (
            "label",
            "apparmor",
            "no-new-privileges",
            "systempaths",
            "writable-cgroups",
            "mask",
            "unmask",
            "proc",
        )
    ):
        return opt.replace(":", "=", 1) if "=" not in opt and ":" in opt else opt
    raise FlagError(f"invalid --security-opt: {opt!r}")


def _kv_map(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq and what == "sysctl":
            raise FlagError(
                f'invalid argument "{item}" for "--sysctl" flag: sysctl \'{item}\' is not allowed'
            )
        out[k] = v
    return out


# -- the request ------------------------------------------------------------------------------


def build_create_request(
    opts: Options, args: list[str], detach: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(query params, JSON body) for POST /containers/create, as `docker run/create` sends."""
    image, cmd = args[0], args[1:]
    if opts.rm and opts.restart not in ("", "no"):
        raise FlagError("conflicting options: cannot specify both --restart and --rm")
    if opts.gpus:
        raise FlagError("--gpus: GPU devices are not supported by skiff")

    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts.publish:
        ports, port_binds = parse_port_spec(spec)
        for p in ports:
            exposed[p] = {}
        for p, b in port_binds.items():
            bindings.setdefault(p, []).extend(b)
    for spec in opts.expose:
        raw, _, proto = spec.partition("/")
        lo, hi = _port_range(raw, "range for expose")
        for port in range(lo, hi + 1):
            exposed[f"{port}/{proto or 'tcp'}"] = {}

    env: list[str] = []
    for path in opts.env_file:
        env.extend(
            v for v in (_env_value(x) for x in read_kv_file(path, "env file")) if v is not None
        )
    env.extend(v for v in (_env_value(x) for x in opts.env) if v is not None)

    labels: dict[str, str] = {}
    for path in opts.label_file:
        for line in read_kv_file(path, "label file"):
            k, _, v = line.partition("=")
            labels[k] = v
    for item in opts.label:
        k, _, v = item.partition("=")
        labels[k] = v

    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for spec in opts.volume:
        src, dst, _ = split_volume(spec)
        if not dst.startswith("/"):
            raise FlagError(
                f"invalid volume specification: '{spec}': invalid mount config: invalid mount path: '{dst}' mount path must be absolute"
            )
        if src:
            binds.append(spec)
        else:
            volumes[dst] = {}
    mounts = [parse_mount(m) for m in opts.mount]

    tmpfs: dict[str, str] = {}
    for spec in opts.tmpfs:
        path, _, options = spec.partition(":")
        tmpfs[path] = options

    attach = [a.lower() for a in opts.attach]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise FlagError(
                f'invalid argument "{a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR'
            )
    if detach and attach:
        raise FlagError("conflicting options: cannot specify both --attach and --detach")
    if attach:
        att_in, att_out, att_err = "stdin" in attach, "stdout" in attach, "stderr" in attach
    elif detach:
        att_in = att_out = att_err = False
    else:
        att_in, att_out, att_err = bool(opts.interactive), True, True

    network = opts.network or opts.net or "default"

    health: dict[str, Any] | None = None
    if opts.no_healthcheck:
        if opts.health_cmd:
            raise FlagError("--no-healthcheck conflicts with --health-* options")
        health = {"Test": ["NONE"]}
    elif any(
        opts.was_set(f)
        for f in (
            "health-cmd",
            "health-interval",
            "health-timeout",
            "health-start-period",
            "health-retries",
            "health-start-interval",
        )
    ):
        health = {}
        if opts.health_cmd:
            health["Test"] = ["CMD-SHELL", opts.health_cmd]
        for flag, key in (
            ("health_interval", "Interval"),
            ("health_timeout", "Timeout"),
            ("health_start_period", "StartPeriod"),
            ("health_start_interval", "StartInterval"),
        ):
            if getattr(opts, flag):
                health[key] = parse_duration(getattr(opts, flag), flag.replace("_", "-"))
        if opts.health_retries:
            health["Retries"] = opts.health_retries

    nano_cpus = 0
    if opts.cpus:
        try:
            nano_cpus = round(float(opts.cpus) * 1e9)
        except ValueError:
            raise FlagError(
                f'invalid argument "{opts.cpus}" for "--cpus" flag: failed to parse {opts.cpus} as a rational number'
            )

    memory_swap = 0
    if opts.memory_swap:
        memory_swap = -1 if opts.memory_swap == "-1" else _size(opts.memory_swap, "--memory-swap")

    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": parse_restart(opts.restart),
        "AutoRemove": bool(opts.rm),
        "VolumeDriver": opts.volume_driver,
        "VolumesFrom": opts.volumes_from or None,
        "CapAdd": [normalize_cap(c) for c in opts.cap_add] or None,
        "CapDrop": [normalize_cap(c) for c in opts.cap_drop] or None,
        "CgroupnsMode": opts.cgroupns,
        "Dns": opts.dns,
        "DnsOptions": opts.dns_option,
        "DnsSearch": opts.dns_search,
        "ExtraHosts": [h.replace("=", ":", 1) for h in opts.add_host] or None,
        "GroupAdd": opts.group_add or None,
        "IpcMode": opts.ipc,
        "Links": opts.link or None,
        "OomScoreAdj": opts.oom_score_adj,
        "PidMode": opts.pid,
        "Privileged": bool(opts.privileged),
        "PublishAllPorts": bool(opts.publish_all),
        "ReadonlyRootfs": bool(opts.read_only),
        "SecurityOpt": [_security_opt(o) for o in opts.security_opt] or None,
        "UTSMode": opts.uts,
        "UsernsMode": opts.userns,
        "ShmSize": _size(opts.shm_size, "--shm-size") if opts.shm_size else 0,
        "Isolation": opts.isolation,
        "CpuShares": opts.cpu_shares,
        "Memory": _size(opts.memory, "-m, --memory") if opts.memory else 0,
        "NanoCpus": nano_cpus,
        "CgroupParent": opts.cgroup_parent,
        "BlkioWeight": opts.blkio_weight,
        "CpuPeriod": opts.cpu_period,
        "CpuQuota": opts.cpu_quota,
        "CpuRealtimePeriod": opts.cpu_rt_period,
        "CpuRealtimeRuntime": opts.cpu_rt_runtime,
        "CpusetCpus": opts.cpuset_cpus,
        "CpusetMems": opts.cpuset_mems,
        "Devices": [_device(d) for d in opts.device],
        "DeviceCgroupRules": opts.device_cgroup_rule or None,
        "MemoryReservation": _size(opts.memory_reservation, "--memory-reservation")
        if opts.memory_reservation
        else 0,
        "MemorySwap": memory_swap,
        "MemorySwappiness": opts.memory_swappiness,
        "OomKillDisable": bool(opts.oom_kill_disable),
        "PidsLimit": opts.pids_limit,
        "Ulimits": [_ulimit(u) for u in opts.ulimit],
        "LogConfig": {"Type": opts.log_driver, "Config": _kv_map(opts.log_opt, "log-opt")},
        "Runtime": opts.runtime,
        "ConsoleSize": [0, 0],
    }
    if mounts:
        host_config["Mounts"] = mounts
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if opts.sysctl:
        host_config["Sysctls"] = _kv_map(opts.sysctl, "sysctl")
    if opts.storage_opt:
        host_config["StorageOpt"] = _kv_map(opts.storage_opt, "storage-opt")
    if opts.init:
        host_config["Init"] = True
    if opts.tty:
        import shutil

        if os.isatty(1):
            cols, rows = shutil.get_terminal_size()
            host_config["ConsoleSize"] = [rows, cols]

    endpoints: dict[str, Any] = {}
    if opts.ip or opts.ip6 or opts.network_alias or opts.mac_address:
        ep: dict[str, Any] = {}
        if opts.ip or opts.ip6:
            ep["IPAMConfig"] = {
                k: v for k, v in (("IPv4Address", opts.ip), ("IPv6Address", opts.ip6)) if v
            }
        if opts.network_alias:
            ep["Aliases"] = opts.network_alias
        if opts.mac_address:
            ep["MacAddress"] = opts.mac_address
        endpoints[network] = ep

    body: dict[str, Any] = {
        "Hostname": opts.hostname,
        "Domainname": opts.domainname,
        "User": opts.user,
        "AttachStdin": att_in,
        "AttachStdout": att_out,
        "AttachStderr": att_err,
        "ExposedPorts": exposed or None,
        "Tty": bool(opts.tty),
        "OpenStdin": bool(opts.interactive),
        "StdinOnce": bool(opts.interactive) and att_in,
        "Env": env or None,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": volumes,
        "WorkingDir": opts.workdir,
        "Entrypoint": ([opts.entrypoint] if opts.entrypoint else [""])
        if opts.entrypoint is not None
        else None,
        "Labels": labels,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }
    if health is not None:
        body["Healthcheck"] = health
    if opts.stop_signal:
        body["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        body["StopTimeout"] = opts.stop_timeout
    if opts.mac_address:
        body["MacAddress"] = opts.mac_address
    params: dict[str, Any] = {}
    if opts.name:
        params["name"] = opts.name
    if opts.platform:
        params["platform"] = opts.platform
    if opts.pull not in ("missing", "always", "never"):
        raise FlagError(
            f'invalid pull option: \'{opts.pull}\': must be one of "always", "missing" or "never"'
        )
    return params, body
