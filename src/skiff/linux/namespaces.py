"""Linux namespaces: OCI namespace types, their clone flags and /proc names, join order, id maps.

Vocabulary: a namespace is *created* (unshare) when the OCI entry has no `path`, and *joined*
(setns on an open file of that path) when it has one. User namespaces come first in both
cases: joining or creating one changes what the process may do with every other namespace.
"""

from __future__ import annotations

import os

from skiff.linux.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    SYSCALLS,
    Syscalls,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

# OCI type -> (clone flag, name under /proc/<pid>/ns/).
NAMESPACES: dict[str, tuple[int, str]] = {
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "mount": (CLONE_NEWNS, "mnt"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# Join order for setns: user first (it grants the capabilities the rest need), mount last
# but one (joining it changes root and cwd), pid and time affect only children.
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "pid", "time", "mount")


def clone_flag(ns_type: str) -> int:
    return NAMESPACES[ns_type][0]


def proc_name(ns_type: str) -> str:
    return NAMESPACES[ns_type][1]


def supported() -> list[str]:
    """OCI namespace types this kernel offers (those with an entry under /proc/self/ns)."""
    present = set(os.listdir("/proc/self/ns"))
    return [t for t, (_, name) in NAMESPACES.items() if name in present]


def unshare_flags(namespaces: Iterable[Mapping[str, Any]], *, exclude: str = "") -> int:
    """The CLONE_NEW* flags of every namespace to create (no `path`), except type `exclude`."""
    flags = 0
    for ns in namespaces:
        if not ns.get("path") and ns["type"] != exclude:
            flags |= clone_flag(ns["type"])
    return flags


def to_join(namespaces: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(type, path) of each namespace to join, in JOIN_ORDER."""
    by_type = {ns["type"]: ns["path"] for ns in namespaces if ns.get("path")}
    return [(t, by_type[t]) for t in JOIN_ORDER if t in by_type]


def join(entries: Sequence[tuple[str, str]], *, sys: Syscalls = SYSCALLS) -> None:
    """setns into each (type, path). All paths are opened first: joining a mount or user
    namespace may make later paths unreachable."""
    fds: list[tuple[str, str, int]] = []
    try:
        for ns_type, path in entries:
            try:
                fds.append((ns_type, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as err:
                raise OSError(err.errno, f"open namespace {ns_type} {path}: {err.strerror}")
        for ns_type, path, fd in fds:
            try:
                sys.setns(fd, clone_flag(ns_type))
            except OSError as err:
                raise OSError(err.errno, f"setns {ns_type} {path}: {err.strerror}")
    finally:
        for _, _, fd in fds:
            if fd >= 0:
                os.close(fd)


def format_id_map(mappings: Sequence[Mapping[str, Any]]) -> str:
    """OCI uidMappings/gidMappings as the text /proc/<pid>/uid_map expects."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(
    pid: int,
    uid_mappings: Sequence[Mapping[str, Any]],
    gid_mappings: Sequence[Mapping[str, Any]],
    *,
    deny_setgroups: bool = False,
    proc: str = "/proc",
) -> None:
    """Write the uid and gid maps of `pid`'s (new) user namespace, from the parent namespace."""
    if deny_setgroups:
        with open(f"{proc}/{pid}/setgroups", "w") as f:
            f.write("deny")
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        if not mappings:
            continue
        fd = os.open(f"{proc}/{pid}/{name}", os.O_WRONLY)
        try:
            os.write(fd, format_id_map(mappings).encode())
        except OSError as err:
            raise OSError(err.errno, f"write {proc}/{pid}/{name}: {err.strerror}")
        finally:
            os.close(fd)


def write_time_offsets(offsets: Mapping[str, Mapping[str, int]], *, proc: str = "/proc") -> None:
    """Write linux.timeOffsets to /proc/self/timens_offsets (after unshare(CLONE_NEWTIME),
    before the first child is forked)."""
    lines = "".join(
        f"{clock} {int(v.get('secs', 0))} {int(v.get('nanosecs', 0))}\n"
        for clock, v in offsets.items()
    )
    if lines:
        with open(f"{proc}/self/timens_offsets", "w") as f:
            f.write(lines)


def same_namespace(pid_a: int | str, pid_b: int | str, ns_type: str) -> bool:
    """Whether two processes share a namespace (compares /proc/<pid>/ns links)."""
    name = proc_name(ns_type)
    return os.readlink(f"/proc/{pid_a}/ns/{name}") == os.readlink(f"/proc/{pid_b}/ns/{name}")
