"""A Docker container's Config + HostConfig → an OCI runtime config.json.

Pure functions over plain dicts (the JSON docker sends and the image config), plus two small
readers of the container's /etc/passwd and /etc/group and a reader of the host's /dev (for
--privileged). Docker's defaults live here: the 14 default capabilities, the masked and
read-only /proc paths, the device allowlist, /dev/shm, the parsing of --security-opt, what
--privileged changes, and the user namespace of userns-remap.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.errors import InvalidArgument, NotFound, NotImplementedYet

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
INIT_PATH = "/sbin/docker-init"

DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

# Docker's default device cgroup rules: deny all, then these.
DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    {"allow": False, "type": "c", "major": -1, "minor": -1, "access": "m"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)

RLIMITS = {
    "core": "RLIMIT_CORE",
    "cpu": "RLIMIT_CPU",
    "data": "RLIMIT_DATA",
    "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS",
    "memlock": "RLIMIT_MEMLOCK",
    "msgqueue": "RLIMIT_MSGQUEUE",
    "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE",
    "nproc": "RLIMIT_NPROC",
    "rss": "RLIMIT_RSS",
    "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME",
    "sigpending": "RLIMIT_SIGPENDING",
    "stack": "RLIMIT_STACK",
}


@dataclass(frozen=True)
class SecurityOptions:
    """A container's --security-opt list (and --privileged), parsed.

    seccomp: "default" (skiff's builtin Docker-like profile), "unconfined", or the text of a
    Docker-format JSON profile (the docker CLI sends the file's content, not its path).
    """

    seccomp: str = "default"
    no_new_privileges: bool = False
    unconfined_paths: bool = False  # systempaths=unconfined: no masked/read-only paths
    writable_cgroups: bool = False  # writable-cgroups=true: /sys/fs/cgroup mounted rw
    warnings: tuple[str, ...] = ()


def _bool_opt(opt: str, value: str) -> bool:
    if value in ("", "true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid --security-opt {opt!r}: expected true or false")


def security_options(
    host_config: Mapping[str, Any], *, default_no_new_privileges: bool = False
) -> SecurityOptions:
    """Parse HostConfig.SecurityOpt the way dockerd does ("key=value", or the old "key:value")."""
    seccomp = "unconfined" if host_config.get("Privileged") else "default"
    nnp = default_no_new_privileges
    unconfined_paths = bool(host_config.get("Privileged"))
    writable_cgroups = bool(host_config.get("Privileged"))
    warnings: list[str] = []
    for opt in host_config.get("SecurityOpt") or []:
        if not isinstance(opt, str):
            raise InvalidArgument(f"invalid --security-opt {opt!r}: expected a string")
        if opt == "no-new-privileges":
            key, value = opt, ""
        elif "=" in opt:
            key, _, value = opt.partition("=")
        else:
            key, _, value = opt.partition(":")
        if key == "seccomp":
            if not value:
                raise InvalidArgument(f"invalid --security-opt {opt!r}: seccomp needs a value")
            if value in ("unconfined", "builtin"):
                seccomp = "default" if value == "builtin" else "unconfined"
            elif host_config.get("Privileged"):
                pass  # dockerd ignores seccomp profiles of privileged containers
            else:
                import json

                try:
                    profile = json.loads(value)
                except ValueError:
                    raise InvalidArgument(
                        "invalid --security-opt seccomp: the profile is not valid JSON "
                        "(the docker CLI sends the content of the file)"
                    ) from None
                if not isinstance(profile, dict):
                    raise InvalidArgument(
                        "invalid --security-opt seccomp: the profile must be a JSON object"
                    )
                seccomp = value
        elif key == "no-new-privileges":
            nnp = _bool_opt(opt, value)
        elif key == "writable-cgroups":
            writable_cgroups = _bool_opt(opt, value) or writable_cgroups
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidArgument(
                    f"invalid --security-opt {opt!r}: systempaths accepts only 'unconfined'"
                )
            unconfined_paths = True
        elif key == "label":
            if value.split(":", 1)[0] not in (
                "user",
                "role",
                "type",
                "level",
                "disable",
                "nested",
                "filetype",
            ):
                raise InvalidArgument(f"invalid --security-opt {opt!r}: unknown label option")
            if not os.path.exists("/sys/fs/selinux/enforce"):
                warnings.append(
                    f"--security-opt {opt}: SELinux is not enabled on this host; ignored"
                )
        elif key == "apparmor":
            if not value:
                raise InvalidArgument(f"invalid --security-opt {opt!r}: apparmor needs a profile")
            if value != "unconfined" and not _apparmor_enabled():
                warnings.append(
                    f"--security-opt {opt}: AppArmor is not enabled on this host; ignored"
                )
            elif value != "unconfined":
                raise NotImplementedYet(
                    f"--security-opt {opt}: AppArmor profiles are not applied by skiff yet"
                )
        else:
            raise InvalidArgument(f"invalid --security-opt {opt!r}")
    return SecurityOptions(seccomp, nnp, unconfined_paths, writable_cgroups, tuple(warnings))


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


@dataclass(frozen=True)
class IdMap:
    """The user namespace of a userns-remapped container: container id 0.. → host `start`.."""

    uid_start: int
    uid_size: int
    gid_start: int
    gid_size: int

    def oci_mappings(self) -> dict[str, list[dict[str, int]]]:
        return {
            "uidMappings": [{"containerID": 0, "hostID": self.uid_start, "size": self.uid_size}],
            "gidMappings": [{"containerID": 0, "hostID": self.gid_start, "size": self.gid_size}],
        }

    def host_uid(self, uid: int) -> int:
        return self.uid_start + uid if 0 <= uid < self.uid_size else 65534

    def host_gid(self, gid: int) -> int:
        return self.gid_start + gid if 0 <= gid < self.gid_size else 65534


# /dev entries runc's HostDevices skips: they are mounted separately or are not the host's.
_HOST_DEV_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node of the host's /dev as OCI linux.devices entries (for --privileged)."""
    import stat as st

    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in _HOST_DEV_SKIP_DIRS]
        for name in sorted(filenames):
            if name == "console" and dirpath == root:
                continue
            path = os.path.join(dirpath, name)
            try:
                s = os.lstat(path)
            except OSError:
                continue  # gone meanwhile
            if st.S_ISCHR(s.st_mode):
                kind = "c"
            elif st.S_ISBLK(s.st_mode):
                kind = "b"
            else:
                continue
            out.append(
                {
                    "path": "/dev/" + os.path.relpath(path, root),
                    "type": kind,
                    "major": os.major(s.st_rdev),
                    "minor": os.minor(s.st_rdev),
                    "fileMode": s.st_mode & 0o7777,
                    "uid": s.st_uid,
                    "gid": s.st_gid,
                }
            )
    return out


def cgroup2_only() -> bool:
    """Whether the host runs the unified hierarchy alone (dockerd's default cgroupns is then
    private)."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def merge_env(image_env: Sequence[str], env: Sequence[str]) -> list[str]:
    """Image env overridden key by key by the container's env; PATH defaulted."""
    merged: dict[str, str] = {}
    for item in [*image_env, *env]:
        key = item.split("=", 1)[0]
        if "=" not in item:
            continue  # `-e NAME` with NAME unset on the client: docker drops it
        merged[key] = item
    if "PATH" not in merged:
        merged["PATH"] = f"PATH={DEFAULT_PATH}"
    return list(merged.values())


def merge_config(image_config: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The container's effective Config: docker's create-time merge with the image config."""
    out = dict(config)
    img = image_config or {}
    out["Env"] = merge_env(img.get("Env") or [], config.get("Env") or [])
    entrypoint = config.get("Entrypoint")
    cmd = config.get("Cmd")
    if isinstance(entrypoint, list) and entrypoint == [""]:
        entrypoint = []  # `--entrypoint ""`: reset the image's entrypoint
    if not entrypoint:
        if not cmd:
            cmd = img.get("Cmd")
        if entrypoint is None:
            entrypoint = img.get("Entrypoint")
    if isinstance(entrypoint, str):
        entrypoint = ["/bin/sh", "-c", entrypoint]
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    out["Entrypoint"] = entrypoint or None
    out["Cmd"] = cmd or None
    if not out.get("WorkingDir"):
        out["WorkingDir"] = img.get("WorkingDir") or ""
    if not out.get("User"):
        out["User"] = img.get("User") or ""
    labels = dict(img.get("Labels") or {})
    labels.update(config.get("Labels") or {})
    out["Labels"] = labels
    if not out.get("StopSignal") and img.get("StopSignal"):
        out["StopSignal"] = img["StopSignal"]
    if not out.get("Healthcheck") and img.get("Healthcheck"):
        out["Healthcheck"] = img["Healthcheck"]
    volumes = dict(img.get("Volumes") or {})
    volumes.update(config.get("Volumes") or {})
    out["Volumes"] = volumes or None
    exposed = dict(img.get("ExposedPorts") or {})
    exposed.update(config.get("ExposedPorts") or {})
    if exposed:
        out["ExposedPorts"] = exposed
    if not (out["Entrypoint"] or out["Cmd"]):
        raise InvalidArgument("no command specified")
    return out


def parse_signal(value: str | int | None, default: int = signal.SIGTERM) -> int:
    """ "SIGTERM", "TERM", "15" or 15 → 15."""
    if value in (None, ""):
        return int(default)
    if isinstance(value, int):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {value}") from None


def parse_memory_size(value: str) -> int:
    """ "64m", "1g", "512k", "1024" → bytes."""
    text = value.strip().lower().rstrip("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise InvalidArgument(f"invalid size: {value!r}") from None


def _read_db(rootfs: str, name: str) -> list[list[str]]:
    from skiff.linux.paths import resolve_in_root

    try:
        path = resolve_in_root(rootfs, f"/etc/{name}")
        with open(path, encoding="utf-8", errors="replace") as f:
            return [
                line.rstrip("\n").split(":")
                for line in f
                if line.strip() and not line.startswith("#")
            ]
    except (OSError, NotFound):
        return []


def resolve_user(rootfs: str, user: str, group_add: Sequence[str] = ()) -> dict[str, Any]:
    """Docker's User ("name", "uid", "name:group", "uid:gid") → OCI process.user."""
    name, _, group = (user or "").partition(":")
    passwd = _read_db(rootfs, "passwd")
    groups = _read_db(rootfs, "group")
    uid, gid, username = 0, 0, "root"
    if name:
        entry = next((e for e in passwd if len(e) >= 4 and e[0] == name), None)
        if entry is None and name.isdigit():
            entry = next((e for e in passwd if len(e) >= 4 and e[2] == name), None)
            uid, gid, username = int(name), 0, ""
        if entry is not None:
            uid, gid, username = int(entry[2]), int(entry[3]), entry[0]
        elif not name.isdigit():
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
    elif passwd:
        root = next((e for e in passwd if len(e) >= 4 and e[2] == "0"), None)
        if root:
            gid = int(root[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = next((e for e in groups if len(e) >= 3 and e[0] == group), None)
            if g is None:
                raise InvalidArgument(
                    f"unable to find group {group}: no matching entries in group file"
                )
            gid = int(g[2])
    extra: list[int] = []
    if username:
        for g in groups:
            if len(g) >= 4 and username in g[3].split(",") and int(g[2]) != gid:
                extra.append(int(g[2]))
    for add in group_add:
        if add.isdigit():
            extra.append(int(add))
        else:
            g = next((e for e in groups if len(e) >= 3 and e[0] == add), None)
            if g is None:
                raise InvalidArgument(f"unable to find group {add}")
            extra.append(int(g[2]))
    out: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        out["additionalGids"] = sorted(set(extra))
    return out


def available_caps() -> list[str]:
    """ALL_CAPS (in kernel order) limited to what this kernel knows and skiffd's own bounding
    set holds: what --privileged and --cap-add ALL grant (more could never be granted)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        with open("/proc/self/status") as f:
            bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, ValueError, StopIteration):
        return list(ALL_CAPS)
    return [c for i, c in enumerate(ALL_CAPS) if i <= last and bounding >> i & 1]


def capabilities(host_config: Mapping[str, Any]) -> list[str]:
    if host_config.get("Privileged"):
        return available_caps()

    def norm(c: str) -> str:
        c = c.upper()
        return c if c.startswith("CAP_") or c == "ALL" else "CAP_" + c

    adds = [norm(c) for c in host_config.get("CapAdd") or []]
    drops = [norm(c) for c in host_config.get("CapDrop") or []]
    caps = available_caps() if "ALL" in adds else list(DEFAULT_CAPS)
    for c in adds:
        if c != "ALL" and c not in caps:
            if c not in ALL_CAPS:
                raise InvalidArgument(f"unknown capability: {c!r}")
            caps.append(c)
    return [c for c in caps if c in adds] if "ALL" in drops else [c for c in caps if c not in drops]


def resources(host_config: Mapping[str, Any]) -> dict[str, Any]:
    """HostConfig limits → OCI linux.resources."""
    hc = host_config
    res: dict[str, Any] = {}
    devices = [dict(r) for r in DEFAULT_DEVICE_RULES]
    if hc.get("Privileged"):
        devices = [{"allow": True, "access": "rwm"}]
    mem: dict[str, Any] = {}
    if hc.get("Memory"):
        mem["limit"] = int(hc["Memory"])
        swap = hc.get("MemorySwap")
        if swap not in (None, 0):
            mem["swap"] = int(swap)
        else:
            mem["swap"] = int(hc["Memory"]) * 2
    if hc.get("MemoryReservation"):
        mem["reservation"] = int(hc["MemoryReservation"])
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("NanoCpus"):
        cpu["period"] = 100000
        cpu["quota"] = int(hc["NanoCpus"]) * 100000 // 1_000_000_000
    if hc.get("CpuQuota"):
        cpu["quota"] = int(hc["CpuQuota"])
        cpu["period"] = int(hc.get("CpuPeriod") or 100000)
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    if hc.get("PidsLimit") and int(hc["PidsLimit"]) > 0:
        res["pids"] = {"limit": int(hc["PidsLimit"])}
    for dev in hc.get("Devices") or []:
        info = _host_device(dev.get("PathOnHost", ""))
        devices.append(
            {
                "allow": True,
                "type": info["type"],
                "major": info["major"],
                "minor": info["minor"],
                "access": dev.get("CgroupPermissions") or "rwm",
            }
        )
    res["devices"] = devices
    return res


def _host_device(path: str) -> dict[str, Any]:
    import stat as st

    try:
        s = os.stat(path)
    except OSError as err:
        raise InvalidArgument(
            f"error gathering device information while adding custom device {path!r}: {err.strerror}"
        ) from None
    if st.S_ISCHR(s.st_mode):
        kind = "c"
    elif st.S_ISBLK(s.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"{path} is not a device node")
    return {
        "type": kind,
        "major": os.major(s.st_rdev),
        "minor": os.minor(s.st_rdev),
        "fileMode": s.st_mode & 0o7777,
        "uid": s.st_uid,
        "gid": s.st_gid,
    }


def parse_bind(spec: str) -> tuple[str, str, list[str]]:
    """ "/host:/ctr[:ro|rw|z|...]" → (source, destination, options)."""
    parts = spec.split(":")
    if len(parts) < 2 or len(parts) > 3:
        raise InvalidArgument(f"invalid volume specification: {spec!r}")
    src, dst = parts[0], parts[1]
    mode = parts[2].split(",") if len(parts) == 3 else []
    if not dst.startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: {spec!r}: mount path must be absolute"
        )
    if not src.startswith("/"):
        raise NotImplementedYet(
            f"named volume {src!r} ({spec}): volumes are not available yet in skiffd (issue 6); use a host path bind"
        )
    opts = ["rbind"]
    opts.append("ro" if "ro" in mode else "rw")
    for m in mode:
        if m in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            opts.append(m)
    return src, dst, opts


def user_mounts(host_config: Mapping[str, Any], idmap: IdMap | None = None) -> list[dict[str, Any]]:
    """Binds, Mounts and Tmpfs → OCI mounts (bind sources must exist, as docker requires for Mounts).

    Missing -v host paths are created, owned by the container's root (`idmap`: userns-remap).
    """
    out: list[dict[str, Any]] = []
    for bind in host_config.get("Binds") or []:
        src, dst, opts = parse_bind(bind)
        if not os.path.exists(src):
            os.makedirs(src, exist_ok=True)  # docker creates missing -v host paths
            if idmap is not None:
                os.chown(src, idmap.host_uid(0), idmap.host_gid(0))
        out.append({"destination": dst, "type": "bind", "source": src, "options": opts})
    for m in host_config.get("Mounts") or []:
        kind = m.get("Type") or "volume"
        target = m.get("Target") or ""
        if not target.startswith("/"):
            raise InvalidArgument(f"invalid mount config: mount path must be absolute: {target!r}")
        if kind == "bind":
            src = m.get("Source") or ""
            if not os.path.exists(src):
                raise InvalidArgument(
                    f'invalid mount config for type "bind": bind source path does not exist: {src}'
                )
            opts = ["rbind", "ro" if m.get("ReadOnly") else "rw"]
            prop = (m.get("BindOptions") or {}).get("Propagation")
            if prop:
                opts.append(prop)
            out.append({"destination": target, "type": "bind", "source": src, "options": opts})
        elif kind == "tmpfs":
            topts = m.get("TmpfsOptions") or {}
            opts = ["nosuid", "nodev", "noexec"]
            if topts.get("SizeBytes"):
                opts.append(f"size={int(topts['SizeBytes'])}")
            if topts.get("Mode"):
                opts.append(f"mode={int(topts['Mode']):o}")
            if m.get("ReadOnly"):
                opts.append("ro")
            out.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts})
        else:
            raise NotImplementedYet(
                f"mount type {kind!r} for {target}: volumes are not available yet in skiffd (issue 6)"
            )
    for dst, options in (host_config.get("Tmpfs") or {}).items():
        opts = ["nosuid", "nodev", "noexec"]
        if options:
            opts = [o for o in options.split(",") if o]
            if not any(o in ("exec", "noexec") for o in opts):
                opts.append("noexec")
            opts = [*{"nosuid": 1, "nodev": 1}.keys(), *opts]
        out.append({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": opts})
    return out


def build_spec(
    *,
    container_id: str,
    rootfs: str,
    config: Mapping[str, Any],
    host_config: Mapping[str, Any],
    files_dir: str,
    netns_path: str | None,
    pidns_path: str | None,
    ipcns_path: str | None,
    init_binary: str | None,
    seccomp: dict[str, Any] | None,
    security: SecurityOptions | None = None,
    idmap: IdMap | None = None,
) -> dict[str, Any]:
    """The OCI config.json for one container start.

    `seccomp` is the OCI section already narrowed for this container (None: no filter);
    `security` the parsed --security-opt (parsed from host_config when None); `idmap` the user
    namespace of userns-remap (None: the host's user namespace).
    """
    hc = host_config
    privileged = bool(hc.get("Privileged"))
    if security is None:
        security = security_options(hc)
    if idmap is not None and privileged:
        raise InvalidArgument(
            "privileged mode is incompatible with user namespaces: "
            "run the container with --userns=host to use --privileged"
        )
    args = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if hc.get("Init"):
        if not init_binary:
            raise NotImplementedYet("--init: skiff-init is not installed (make install builds it)")
        args = [INIT_PATH, "--", *args]
    env = list(config.get("Env") or [])
    if not any(e.startswith("HOSTNAME=") for e in env):
        env.insert(0, f"HOSTNAME={config.get('Hostname') or container_id[:12]}")
    if config.get("Tty") and not any(e.startswith("TERM=") for e in env):
        env.append("TERM=xterm")
    caps = capabilities(hc)
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": resolve_user(rootfs, config.get("User") or "", hc.get("GroupAdd") or []),
        "args": args,
        "env": env,
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": security.no_new_privileges,
    }
    if hc.get("OomScoreAdj"):
        process["oomScoreAdj"] = int(hc["OomScoreAdj"])
    rlimits = []
    for ul in hc.get("Ulimits") or []:
        name = RLIMITS.get(str(ul.get("Name", "")).lower())
        if not name:
            raise InvalidArgument(f"invalid ulimit type: {ul.get('Name')}")
        rlimits.append(
            {"type": name, "hard": int(ul.get("Hard", 0)), "soft": int(ul.get("Soft", 0))}
        )
    if rlimits:
        process["rlimits"] = rlimits
    shm_size = int(hc.get("ShmSize") or DEFAULT_SHM_SIZE)
    mounts: list[dict[str, Any]] = [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["rw" if security.writable_cgroups else "ro", "nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"],
        },
    ]
    network_mode = hc.get("NetworkMode") or "default"
    for name in ("resolv.conf", "hostname", "hosts"):
        mounts.append(
            {
                "destination": f"/etc/{name}",
                "type": "bind",
                "source": os.path.join(files_dir, name),
                "options": ["rbind", "rprivate", "ro" if hc.get("ReadonlyRootfs") else "rw"],
            }
        )
    user = user_mounts(hc, idmap)
    user_targets = {m["destination"] for m in user}
    mounts = [m for m in mounts if m["destination"] not in user_targets]
    mounts += user
    if hc.get("Init") and init_binary:
        mounts.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": init_binary,
                "options": ["rbind", "ro"],
            }
        )
    namespaces: list[dict[str, Any]] = [{"type": "mount"}, {"type": "uts"}]
    namespaces.append({"type": "pid", "path": pidns_path} if pidns_path else {"type": "pid"})
    namespaces.append({"type": "ipc", "path": ipcns_path} if ipcns_path else {"type": "ipc"})
    if network_mode != "host":
        namespaces.append(
            {"type": "network", "path": netns_path} if netns_path else {"type": "network"}
        )
    cgroupns = hc.get("CgroupnsMode") or ("private" if cgroup2_only() else "host")
    if cgroupns == "private":
        namespaces.append({"type": "cgroup"})
    elif cgroupns != "host":
        raise InvalidArgument(f"invalid --cgroupns {cgroupns!r}: expected 'host' or 'private'")
    if (hc.get("PidMode") or "") == "host":
        namespaces = [n for n in namespaces if n["type"] != "pid"]
    if (hc.get("IpcMode") or "") == "host":
        namespaces = [n for n in namespaces if n["type"] != "ipc"]
    if (hc.get("UTSMode") or "") == "host" or network_mode == "host":
        namespaces = [n for n in namespaces if n["type"] != "uts"]
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": f"skiff/{container_id}",
        "resources": resources(hc),
    }
    if not security.unconfined_paths:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if idmap is not None:
        namespaces.insert(0, {"type": "user"})
        linux.update(idmap.oci_mappings())
        if network_mode == "host" or netns_path:
            # sysfs can only be mounted by the owner of the network namespace, and that one
            # belongs to the host's user namespace: bind the host's /sys instead, read-only
            # (what runc does for rootless containers)
            for m in mounts:
                if m["destination"] == "/sys" and m["type"] == "sysfs":
                    m.update(
                        type="bind",
                        source="/sys",
                        options=["rbind", "nosuid", "noexec", "nodev", "ro"],
                    )
    if hc.get("Sysctls"):
        linux["sysctl"] = dict(hc["Sysctls"])
    if seccomp:
        linux["seccomp"] = seccomp
    by_path = {d["path"]: d for d in host_devices()} if privileged else {}
    for dev in hc.get("Devices") or []:
        info = _host_device(dev.get("PathOnHost", ""))
        path = dev.get("PathInContainer") or dev["PathOnHost"]
        by_path[path] = {"path": path, **info}
    if by_path:
        linux["devices"] = list(by_path.values())
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
        "mounts": mounts,
        "linux": linux,
    }
    if network_mode != "host" and (hc.get("UTSMode") or "") != "host":
        spec["hostname"] = config.get("Hostname") or container_id[:12]
        if config.get("Domainname"):
            spec["domainname"] = config["Domainname"]
    return spec


def etc_files(
    *, container_id: str, config: Mapping[str, Any], host_config: Mapping[str, Any], files_dir: str
) -> None:
    """Write the container's /etc/hostname, /etc/hosts and /etc/resolv.conf sources."""
    hc = host_config
    os.makedirs(files_dir, exist_ok=True)
    network_mode = hc.get("NetworkMode") or "default"
    hostname = config.get("Hostname") or container_id[:12]
    if network_mode == "host":
        hostname = os.uname().nodename
    hosts = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for extra in hc.get("ExtraHosts") or []:
        name, sep, ip = extra.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid extra host {extra!r}: expected host:ip")
        if ip == "host-gateway":
            raise NotImplementedYet(
                f"extra host {extra!r}: host-gateway needs networking (issue 6)"
            )
        hosts.append(f"{ip}\t{name}")
    if network_mode == "host":
        try:
            with open("/etc/hosts") as f:
                hosts = [f.read().rstrip("\n")]
        except OSError:
            pass
    hosts.append(f"127.0.1.1\t{hostname}")
    resolv = []
    if hc.get("Dns") or hc.get("DnsSearch") or hc.get("DnsOptions"):
        resolv += [f"nameserver {d}" for d in hc.get("Dns") or []]
        if hc.get("DnsSearch"):
            resolv.append("search " + " ".join(hc["DnsSearch"]))
        if hc.get("DnsOptions"):
            resolv.append("options " + " ".join(hc["DnsOptions"]))
    else:
        try:
            with open("/etc/resolv.conf") as f:
                for line in f:
                    if (
                        network_mode != "host"
                        and line.startswith("nameserver")
                        and (line.split()[1:2] and line.split()[1].startswith(("127.", "::1")))
                    ):
                        continue  # a host loopback resolver is unreachable from the container's netns
                    resolv.append(line.rstrip("\n"))
        except OSError:
            pass
    for name, text in (
        ("hostname", hostname + "\n"),
        ("hosts", "\n".join(hosts) + "\n"),
        ("resolv.conf", "\n".join(resolv) + "\n"),
    ):
        path = os.path.join(files_dir, name)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(text)
