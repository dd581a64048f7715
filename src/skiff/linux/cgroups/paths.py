"""Where the cgroup hierarchies are and where a container's cgroup goes in each.

Vocabulary:
  root       the directory holding the hierarchies (/sys/fs/cgroup).
  hierarchy  one mounted cgroup filesystem: a v1 hierarchy with its controllers
             (cpu, memory, name=systemd, …) or the v2 unified one.
  own        the cgroup the calling process is in, per hierarchy (/proc/self/cgroup).
  leaf       the container's cgroup directory in one hierarchy.

Layouts: "v2" (root is a cgroup2 mount), "hybrid" (v1 hierarchies plus a cgroup2 at
root/unified) and "v1". They are read from /proc/self/mountinfo (found beside the given
/proc/self/cgroup); when no cgroup mount lies under root (a fake tree in tests), from the
directory itself: cgroup.controllers marks a v2 hierarchy, other directories are v1 hierarchies
named after their controllers ("cpu,cpuacct", "systemd" for name=systemd).

Path rules (runc's cgroupfs rules, plus skiff's nesting):
  absolute cgroupsPath      relative to each hierarchy's root, as given;
  "slice:prefix:name"       the systemd form, mapped to /<expanded slice>/<prefix>-<name>.scope;
  relative or empty         <own>/skiff/<cgroupsPath or container id>, never at a root.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument

V1_CONTROLLERS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
    }
)
UNIFIED = "unified"
SKIFF_SUBTREE = "skiff"


class Hierarchy:
    """One mounted hierarchy: its directory, the cgroup path mounted there, its controllers."""

    __slots__ = ("controllers", "mount", "mount_root")

    def __init__(self, mount: str, mount_root: str, controllers: tuple[str, ...]) -> None:
        self.mount = mount
        self.mount_root = mount_root
        self.controllers = controllers  # () for the v2 unified hierarchy

    def __repr__(self) -> str:
        return f"Hierarchy({self.mount!r}, {self.mount_root!r}, {self.controllers!r})"


class Layout:
    __slots__ = ("hierarchies", "mode", "unified")

    def __init__(
        self, mode: str, hierarchies: tuple[Hierarchy, ...], unified: Hierarchy | None
    ) -> None:
        self.mode = mode  # "v1", "hybrid" or "v2"
        self.hierarchies = hierarchies  # the v1 ones, or the single unified one in v2
        self.unified = unified  # the cgroup2 mount in hybrid mode


def _systemd_form(path: str) -> tuple[str, str, str] | None:
    """ "slice:prefix:name" → its three parts; None for anything else."""
    parts = path.split(":")
    if len(parts) != 3 or "/" in path or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup → {controller or "name=x": path}, the v2 entry under key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
            continue
        for c in controllers.split(","):
            out[c] = path
    return out


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _from_mountinfo(root: str, mountinfo: str) -> Layout | None:
    try:
        with open(mountinfo) as f:
            text = f.read()
    except OSError:
        return None
    root = os.path.normpath(root)
    v1: list[Hierarchy] = []
    unified: Hierarchy | None = None
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount_root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        fstype, super_opts = tail[0], tail[2]
        if os.path.dirname(mount_point) != root and mount_point != root:
            continue
        if fstype == "cgroup2":
            unified = Hierarchy(mount_point, mount_root, ())
        elif fstype == "cgroup":
            ctrls = tuple(
                o for o in super_opts.split(",") if o in V1_CONTROLLERS or o.startswith("name=")
            )
            if ctrls:
                v1.append(Hierarchy(mount_point, mount_root, ctrls))
    if unified is not None and unified.mount == root:
        return Layout("v2", (unified,), None)
    if v1:
        return Layout("hybrid" if unified is not None else "v1", tuple(v1), unified)
    return None


def _from_directory(root: str) -> Layout:
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return Layout("v2", (Hierarchy(root, "/", ()),), None)
    v1: list[Hierarchy] = []
    unified: Hierarchy | None = None
    seen: set[str] = set()
    try:
        names = sorted(os.listdir(root))
    except OSError as e:
        raise FailedPrecondition(
            f"cgroup: cannot list {root}: {os.strerror(e.errno or 0)}"
        ) from None
    for name in names:
        path = os.path.join(root, name)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if os.path.exists(os.path.join(path, "cgroup.controllers")):
            unified = Hierarchy(path, "/", ())
            continue
        ctrls = tuple(
            "name=systemd" if c == "systemd" else c
            for c in name.split(",")
            if c in V1_CONTROLLERS or c == "systemd"
        )
        if ctrls:
            v1.append(Hierarchy(path, "/", ctrls))
    if not v1:
        raise FailedPrecondition(f"cgroup: no cgroup hierarchy found under {root}")
    return Layout("hybrid" if unified is not None else "v1", tuple(v1), unified)


def detect(root: str, proc_self_cgroup: str) -> Layout:
    """The layout of the hierarchies under `root`."""
    mountinfo = os.path.join(os.path.dirname(proc_self_cgroup), "mountinfo")
    return _from_mountinfo(root, mountinfo) or _from_directory(root)


def expand_slice(slice_name: str, field: str) -> str:
    """systemd's slice expansion: "a-b.slice" → "/a.slice/a-b.slice"; "-.slice" → "/"."""
    if slice_name in ("", "-.slice"):
        return "/"
    if not slice_name.endswith(".slice") or "/" in slice_name:
        raise InvalidArgument(f"{field}: {slice_name!r} is not a systemd slice name")
    stem = slice_name[: -len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise InvalidArgument(f"{field}: {slice_name!r} is not a valid systemd slice name")
    path, prefix = "", ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


def relative_parts(cgroups_path: str | None, container_id: str) -> tuple[bool, str]:
    """(absolute?, path) after the systemd form and the container-id default are applied."""
    field = "linux.cgroupsPath"
    path = cgroups_path or ""
    m = _systemd_form(path)
    if m:
        slice_name, prefix, name = m
        slice_path = expand_slice(slice_name or "system.slice", field)
        unit = (
            name
            if name.endswith(".slice")
            else (f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
        )
        return True, os.path.join(slice_path, unit)
    if path.startswith("/"):
        return True, path
    if not path:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise InvalidArgument(f"container id {container_id!r}: cannot name a cgroup")
        return False, container_id
    return False, path


def _clean(path: str, field: str) -> str:
    parts = [p for p in path.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise InvalidArgument(f"{field}: {path!r} must not contain '..'")
    return "/".join(parts)


def own_path(hierarchy: Hierarchy, own: dict[str, str]) -> str:
    """The caller's cgroup in `hierarchy`, relative to the hierarchy's mount."""
    if not hierarchy.controllers:
        path = own.get("", "/")
    else:
        path = next((own[c] for c in hierarchy.controllers if c in own), "/")
    # Without a cgroup namespace the mount may show a subtree (a container's own cgroup).
    mroot = hierarchy.mount_root
    if mroot not in ("", "/"):
        if path == mroot:
            path = "/"
        elif path.startswith(mroot.rstrip("/") + "/"):
            path = path[len(mroot.rstrip("/")) :]
    return path


def leaf_and_prunable(
    hierarchy: Hierarchy, own: dict[str, str], cgroups_path: str | None, container_id: str
) -> tuple[str, list[str]]:
    """The leaf directory in `hierarchy` and the skiff-owned ancestors destroy may remove."""
    field = "linux.cgroupsPath"
    absolute, path = relative_parts(cgroups_path, container_id)
    rel = _clean(path, field)
    if not rel:
        raise InvalidArgument(f"{field}: {cgroups_path!r} names a hierarchy root")
    if absolute:
        return os.path.join(hierarchy.mount, rel), []
    base = os.path.join(hierarchy.mount, _clean(own_path(hierarchy, own), field), SKIFF_SUBTREE)
    base = os.path.normpath(base)
    leaf = os.path.join(base, rel)
    prunable = [base]
    cur = os.path.dirname(leaf)
    while cur != base and cur.startswith(base + "/"):
        prunable.append(cur)
        cur = os.path.dirname(cur)
    return leaf, prunable
