"""The container's root filesystem: one step of the container's init process.

`prepare_rootfs` runs in the init process after unshare(CLONE_NEWNS) (and after the user
namespace's id maps are written) and before exec. It follows runc's rootfs_linux.go:

1. "/" becomes recursively slave (or linux.rootfsPropagation), so nothing leaks to the host;
   the mount holding the rootfs is made private (pivot_root refuses shared parents), and
   root.path is bind-mounted onto itself.
2. config.json `mounts`, in order; every target is resolved inside the rootfs
   (`skiff.linux.paths`), and mounted through an fd opened inside it.
3. /dev: default and linux.devices nodes, /dev/fd & co, /dev/ptmx, /dev/shm, /dev/console.
4. pivot_root(".", ".") on file descriptors, the old root detached, chdir("/").
5. linux.sysctl, linux.readonlyPaths, linux.maskedPaths, then root.readonly.

Every syscall goes through a `MountOps` (`skiff.linux.mount`), so a unit test can record the
whole sequence. Errors name the step and the object:
`mount "proc" to rootfs at "/proc": EPERM: Operation not permitted`.
"""

from __future__ import annotations

import errno
import os

from skiff.errors import FailedPrecondition, InvalidArgument, NotImplementedYet, SkiffError
from skiff.linux import devices as devs
from skiff.linux import paths
from skiff.linux.mount import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    PROPAGATION_OPTIONS,
    RealMountOps,
    bind_remount,
    is_bind,
    needs_remount,
    os_error,
    parse_mountinfo,
    parse_options,
    parse_recursive_options,
)

TYPE_CHECKING = False  # typing, dataclasses and contextlib cost ~15 ms: this runs per container
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from skiff.linux.mount import MountOps

# Mount types handled specially; any other type must be known to the kernel (/proc/filesystems).
_SPECIAL_TYPES = frozenset(
    {"bind", "tmpfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue"}
)

# Files under /proc a mount may cover (lxcfs-style), as runc allows; anything else there is refused.
_PROC_OVERRIDES = frozenset(
    {
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    }
)

# Sysctls that belong to the IPC namespace (besides fs.mqueue.*), as runc's validator lists them.
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)

_CGROUP_TMPFS_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC
_READONLY_PATH_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def _namespace_types(spec: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    linux = spec.get("linux") or {}
    return {ns.get("type", ""): ns for ns in linux.get("namespaces") or ()}


def validate_sysctls(spec: Mapping[str, Any]) -> None:
    """Refuse sysctls that would change the host: each must belong to a namespace the container owns.

    IPC sysctls need an ipc namespace, net.* a network namespace, kernel.hostname and
    kernel.domainname a uts namespace; anything else is global and refused (as runc does).
    """
    sysctls = (spec.get("linux") or {}).get("sysctl") or {}
    namespaces = _namespace_types(spec)
    for key in sysctls:
        dotted = key.replace("/", ".")
        if dotted in _IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
            needed = "ipc"
        elif dotted.startswith("net."):
            needed = "network"
        elif dotted in ("kernel.hostname", "kernel.domainname"):
            needed = "uts"
        else:
            raise InvalidArgument(f"linux.sysctl: {key!r} is not in a separate kernel namespace")
        if needed not in namespaces:
            raise InvalidArgument(
                f"linux.sysctl: {key!r} needs a new {needed} namespace, which the config does not have"
            )


class _FdTarget:
    """`with rootfs.target(path) as target:` — a "/proc/self/fd/N" path for a container
    path opened inside the rootfs, closed on exit (contextlib's decorator costs an import)."""

    __slots__ = ("fd", "ops")

    def __init__(self, ops: MountOps, fd: int) -> None:
        self.ops = ops
        self.fd = fd

    def __enter__(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *exc: object) -> None:
        self.ops.close(self.fd)


class _Rootfs:
    __slots__ = (
        "before_cgroup_mount",
        "bundle",
        "cgroupns",
        "deferred",
        "deferred_ro",
        "known_filesystems",
        "new_netns",
        "ops",
        "root",
        "spec",
        "userns",
    )

    def __init__(self, spec: Mapping[str, Any], bundle: str, ops: MountOps) -> None:
        self.spec = spec
        self.bundle = bundle
        self.ops = ops
        self.deferred_ro: list[tuple[str, int, str]] = []
        self.before_cgroup_mount: Callable[[], None] | None = None
        self.deferred: list[tuple[int, Mapping[str, Any]]] = []
        self.known_filesystems: frozenset[str] | None = None
        root_path = (self.spec.get("root") or {}).get("path")
        if not isinstance(root_path, str) or not root_path:
            raise InvalidArgument("config.json: root.path is missing")
        if not os.path.isabs(root_path):
            root_path = os.path.join(self.bundle, root_path)
        self.root = os.path.realpath(root_path)
        if not os.path.isdir(self.root):
            raise FailedPrecondition(f'rootfs "{self.root}" is not a directory')
        namespaces = _namespace_types(self.spec)
        self.userns = "user" in namespaces or self._in_userns()
        self.new_netns = "network" in namespaces and not namespaces["network"].get("path")
        self.cgroupns = "cgroup" in namespaces

    def _in_userns(self) -> bool:
        try:
            uid_map = self.ops.read_file("/proc/self/uid_map").split()
        except OSError:
            return False
        return uid_map != ["0", "0", "4294967295"]

    @property
    def linux(self) -> Mapping[str, Any]:
        return self.spec.get("linux") or {}

    def target(self, container_path: str) -> _FdTarget:
        """A "/proc/self/fd/N" path for `container_path`, opened inside the rootfs."""
        return _FdTarget(self.ops, self.ops.open_in_root(self.root, container_path))

    def check_own_mount_namespace(self) -> None:
        """Refuse to run in the mount namespace of pid 1: every step below would hit the host.

        Where pid 1 cannot be inspected (EACCES: ptrace rules, an outer sandbox), the check
        cannot be made and is skipped.
        """
        try:
            mine = self.ops.readlink("/proc/self/ns/mnt")
            init = self.ops.readlink("/proc/1/ns/mnt")
        except (PermissionError, FileNotFoundError):
            return
        except OSError as e:
            raise os_error("read the mount namespace of this process and of pid 1", e) from e
        if mine == init:
            raise FailedPrecondition(
                "prepare rootfs: this process is in the host's mount namespace "
                "(config.json needs a new mount namespace: linux.namespaces type mount)"
            )

    # --- step 1: propagation and the rootfs bind ------------------------------------------------

    def prepare_root(self) -> None:
        propagation = self.linux.get("rootfsPropagation")
        if propagation and propagation not in PROPAGATION_OPTIONS:
            raise InvalidArgument(f"config.json: linux.rootfsPropagation: unknown {propagation!r}")
        flags = PROPAGATION_OPTIONS[propagation] if propagation else MS_SLAVE | MS_REC
        try:
            self.ops.mount("", "/", "", flags, "")
        except OSError as e:
            raise os_error('make "/" ' + (propagation or "rslave"), e) from e
        parent = self._parent_mount(self.root)
        if parent is not None:
            try:
                self.ops.mount("", parent, "", MS_PRIVATE, "")
            except OSError as e:
                raise os_error(f'make "{parent}" (parent of the rootfs) private', e) from e
        try:
            self.ops.mount(self.root, self.root, "bind", MS_BIND | MS_REC, "")
        except OSError as e:
            raise os_error(f'bind-mount rootfs "{self.root}" onto itself', e) from e

    def _parent_mount(self, path: str) -> str | None:
        """The mount point holding `path`, when it is shared (pivot_root needs it not to be)."""
        best = None
        for entry in parse_mountinfo(self.ops.read_file("/proc/self/mountinfo")):
            mp = entry.mountpoint
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and (
                best is None or len(mp) >= len(best.mountpoint)
            ):
                best = entry
        if best is not None and any(o.startswith("shared:") for o in best.optional):
            return best.mountpoint
        return None

    # --- step 2: config.json mounts -------------------------------------------------------------

    def mount_all(self) -> None:
        """Every config.json mount, in order; a cgroup mount that nothing later sits in, under
        or over waits for `mount_deferred` when `before_cgroup_mount` is set (init waits
        there to be in its cgroup: /dev is set up meanwhile)."""
        mounts = list(self.spec.get("mounts") or ())
        self.deferred = []
        for index, m in enumerate(mounts):
            if (
                self.before_cgroup_mount is not None
                and m.get("type") == "cgroup"
                and _nothing_later_overlaps(index, mounts)
            ):
                self.deferred.append((index, m))
                continue
            self._mount_one(index, m)

    def mount_deferred(self) -> None:
        for index, m in self.deferred:
            self._mount_one(index, m)
        self.deferred = []

    def _mount_one(self, index: int, m: Mapping[str, Any]) -> None:
        where = f"mounts[{index}]"
        destination = m.get("destination")
        if not isinstance(destination, str) or not destination:
            raise InvalidArgument(f"config.json: {where}: destination is missing")
        destination = _clean(destination)
        mount_type = m.get("type") or ""
        options = list(m.get("options") or ())
        bind = is_bind(mount_type, options)
        if not bind and mount_type not in _SPECIAL_TYPES:
            if self.known_filesystems is None:
                self.known_filesystems = self._kernel_filesystems()
            if mount_type not in self.known_filesystems:
                raise InvalidArgument(
                    f"config.json: {where}: unknown mount type {mount_type!r} "
                    f'(destination "{destination}")'
                )
        self._check_proc_target(where, destination, mount_type)
        if {"idmap", "ridmap"} & set(options) or m.get("uidMappings") or m.get("gidMappings"):
            raise NotImplementedYet(f"config.json: {where}: id-mapped mounts are not supported")
        source = m.get("source") or mount_type
        context = f'mount "{source}" to rootfs at "{destination}"'
        try:
            if bind:
                self._mount_bind(destination, source, options)
            elif mount_type == "cgroup":
                if self.before_cgroup_mount is not None:
                    self.before_cgroup_mount()
                self._mount_cgroup(destination, options)
            elif mount_type == "tmpfs":
                self._mount_tmpfs(destination, source, options)
            elif mount_type == "sysfs" and self.userns:
                self._mount_sysfs_in_userns(destination, source, options)
            else:
                self._mount_fs(destination, source, mount_type, options)
        except OSError as e:
            raise os_error(context, e) from e
        except SkiffError as e:
            raise e.wrap(context) from e

    def _mount_sysfs_in_userns(self, destination: str, source: str, options: Sequence[str]) -> None:
        """sysfs needs a network namespace owned by our user namespace; else bind the host's /sys.

        In the host's network namespace that is never the case; a joined one may be ours or not.
        """
        if not self.new_netns:
            joined = "network" in _namespace_types(self.spec)
            if not joined:
                self._mount_bind(destination, "/sys", [*options, "rbind"])
                return
            try:
                self._mount_fs(destination, source, "sysfs", options)
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EBUSY):
                    raise
                self._mount_bind(destination, "/sys", [*options, "rbind"])
            return
        self._mount_fs(destination, source, "sysfs", options)

    def _kernel_filesystems(self) -> frozenset[str]:
        text = self.ops.read_file("/proc/filesystems")
        return frozenset(line.split()[-1] for line in text.splitlines() if line.strip())

    def _check_proc_target(self, where: str, destination: str, mount_type: str) -> None:
        if destination == "/proc":
            if mount_type != "proc":
                raise InvalidArgument(f"config.json: {where}: only a proc mount may go on /proc")
        elif destination.startswith("/proc/") and destination not in _PROC_OVERRIDES:
            raise InvalidArgument(
                f'config.json: {where}: "{destination}" cannot be mounted because it is inside /proc'
            )

    def _propagate(self, destination: str, options: Sequence[str]) -> None:
        """Apply what needs the mount to exist: propagation, then recursive options ("rro")."""
        _, propagation, _ = parse_options(options)
        if propagation:
            with self.target(destination) as target:
                self.ops.mount("", target, "", propagation, "")
        attr_set, attr_clr = parse_recursive_options(options)
        if attr_set or attr_clr:
            with self.target(destination) as target:
                self.ops.mount_setattr(target, attr_set, attr_clr)

    def _mount_bind(self, destination: str, source: str, options: Sequence[str]) -> None:
        if not os.path.isabs(source):
            source = os.path.join(self.bundle, source)
        flags, _, _ = parse_options(options)
        kind = self.ops.kind(source, follow=True)
        if kind == "missing":
            raise paths.errno_error(f'bind source "{source}"', errno.ENOENT)
        if kind == "dir":
            paths.mkdir_all_in_root(self.root, destination)
        else:
            paths.create_file_in_root(self.root, destination)
        with self.target(destination) as target:
            self.ops.mount(source, target, "", MS_BIND | (flags & MS_REC), "")
        if needs_remount(flags & ~MS_REC):
            with self.target(destination) as target:
                bind_remount(self.ops, target, flags)
        self._propagate(destination, options)

    def _mount_tmpfs(self, destination: str, source: str, options: Sequence[str]) -> None:
        flags, _, data = parse_options(options)
        paths.mkdir_all_in_root(self.root, destination)
        with self.target(destination) as target:
            self.ops.mount(source, target, "tmpfs", flags & ~MS_RDONLY, data)
            if "tmpcopyup" in options:
                # `target` still names the directory the tmpfs now covers: copy it up.
                with self.target(destination) as tmpfs:
                    self.ops.copy_up(target, tmpfs)
        if flags & MS_RDONLY:
            remount = (source, flags | MS_REMOUNT, data)
            if destination == "/dev":
                self.deferred_ro.append((destination, remount[1], data))  # devices go in first
            else:
                with self.target(destination) as target:
                    self.ops.mount(source, target, "tmpfs", remount[1], data)
        self._propagate(destination, options)

    def _mount_fs(self, destination: str, source: str, fstype: str, options: Sequence[str]) -> None:
        flags, _, data = parse_options(options)
        if fstype in ("proc", "sysfs"):
            # never mount these through a symlink or onto a file
            host = paths.resolve_in_root(self.root, destination)
            kind = self.ops.kind(host)
            if kind == "file":
                raise FailedPrecondition(f'"{destination}" exists and is not a directory')
        paths.mkdir_all_in_root(self.root, destination)
        with self.target(destination) as target:
            try:
                self.ops.mount(source, target, fstype, flags, data)
            except OSError as e:
                # In a user namespace without group 5 (tty) mapped, devpts refuses gid=5;
                # like crun, mount it without the gid option then.
                without_gid = ",".join(o for o in data.split(",") if not o.startswith("gid="))
                if fstype != "devpts" or e.errno != errno.EINVAL or without_gid == data:
                    raise
                self.ops.mount(source, target, fstype, flags, without_gid)
        self._propagate(destination, options)

    def _mount_cgroup(self, destination: str, options: Sequence[str]) -> None:
        flags, _, data = parse_options(options)
        mountinfo = parse_mountinfo(self.ops.read_file("/proc/self/mountinfo"))
        unified = any(e.mountpoint == "/sys/fs/cgroup" and e.fstype == "cgroup2" for e in mountinfo)
        paths.mkdir_all_in_root(self.root, destination)
        own = _own_cgroups(self.ops.read_file("/proc/self/cgroup"))
        if unified:
            if self.cgroupns:
                with self.target(destination) as target:
                    self.ops.mount("cgroup2", target, "cgroup2", flags, data)
            else:
                source = os.path.join("/sys/fs/cgroup", own.get("", "/").lstrip("/"))
                self._mount_bind(destination, source, [*options, "rbind"])
            self._propagate(destination, options)
            return
        with self.target(destination) as target:
            self.ops.mount("tmpfs", target, "tmpfs", _CGROUP_TMPFS_FLAGS, "mode=755")
        for entry in mountinfo:
            if entry.fstype != "cgroup" or not entry.mountpoint.startswith("/sys/fs/cgroup/"):
                continue
            super_options = set(entry.super_options.split(","))
            matches = [k for k in own if k and set(k.split(",")) <= super_options]
            controllers = matches[0] if matches else None
            name = os.path.basename(entry.mountpoint)
            sub_destination = os.path.join(destination, name)
            if self.cgroupns:
                subsystems = controllers or ",".join(sorted(super_options - {"rw", "ro"}))
                paths.mkdir_all_in_root(self.root, sub_destination)
                with self.target(sub_destination) as target:
                    self.ops.mount("cgroup", target, "cgroup", flags, subsystems)
            else:
                if controllers is None:
                    continue  # a hierarchy this process is not in: nothing to show
                path = own[controllers]
                relative = os.path.relpath(path, entry.root)
                source = os.path.normpath(os.path.join(entry.mountpoint, relative))
                self._mount_bind(sub_destination, source, ["rbind", *options])
            if "," in name:  # co-mounted controllers: cpu -> cpu,cpuacct
                for controller in name.split(","):
                    link = paths.resolve_in_root(self.root, os.path.join(destination, controller))
                    if self.ops.kind(link) == "missing":
                        self.ops.symlink(name, link)
        # "ro" applies to the hierarchies, not to the tmpfs holding them: runc (and so Docker on
        # cgroup v1 hosts) leaves that tmpfs writable.
        self._propagate(destination, options)

    # --- step 3: /dev ---------------------------------------------------------------------------

    def setup_dev(self, console_slave: str | None) -> None:
        mounts = self.spec.get("mounts") or ()
        destinations = {_clean(m.get("destination") or "") for m in mounts}
        dev_is_bind = any(
            _clean(m.get("destination") or "") == "/dev"
            and is_bind(m.get("type") or "", m.get("options") or ())
            for m in mounts
        )
        if not dev_is_bind:
            configured = devs.parse_devices(self.linux.get("devices"))
            paths_configured = {d.path for d in configured}
            wanted = [
                d for d in devs.DEFAULT_DEVICES if d.path not in paths_configured
            ] + configured
            for device in wanted:
                if device.path in destinations or device.path == "/dev/ptmx":
                    continue
                devs.create_device(self.ops, self.root, device, bind_from_host=self.userns)
            devs.create_dev_symlinks(self.ops, self.root)
            devs.setup_ptmx(self.ops, self.root)
            if "/dev/shm" not in destinations:
                try:
                    paths.mkdir_all_in_root(self.root, "/dev/shm", 0o1777)
                except SkiffError as e:
                    raise e.wrap('create "/dev/shm" in rootfs') from e
        if console_slave:
            context = f'bind console "{console_slave}" to rootfs at "/dev/console"'
            try:
                paths.create_file_in_root(self.root, "/dev/console", 0o600)
                with self.target("/dev/console") as target:
                    self.ops.mount(console_slave, target, "", MS_BIND, "")
            except OSError as e:
                raise os_error(context, e) from e
            except SkiffError as e:
                raise e.wrap(context) from e
        cwd = (self.spec.get("process") or {}).get("cwd")
        if isinstance(cwd, str) and cwd:
            try:
                paths.mkdir_all_in_root(self.root, cwd)
            except SkiffError as e:
                raise e.wrap(f'create process.cwd "{cwd}" in rootfs') from e

    # --- step 4: pivot_root ---------------------------------------------------------------------

    def pivot(self) -> None:
        ops = self.ops
        try:
            old_root = ops.open_dir("/")
            try:
                new_root = ops.open_dir(self.root)
                try:
                    ops.fchdir(new_root)
                    ops.pivot_root(".", ".")
                    # The old root now sits on top of the new one; detach it (slave first, so
                    # the detach does not propagate back to the host).
                    ops.fchdir(old_root)
                    ops.mount("", ".", "", MS_SLAVE | MS_REC, "")
                    ops.umount2(".", MNT_DETACH)
                    ops.chdir("/")
                finally:
                    ops.close(new_root)
            finally:
                ops.close(old_root)
        except OSError as e:
            raise os_error(f'pivot_root into "{self.root}"', e) from e
        propagation = self.linux.get("rootfsPropagation")
        if propagation:
            try:
                ops.mount("", "/", "", PROPAGATION_OPTIONS[propagation], "")
            except OSError as e:
                raise os_error(f'make "/" {propagation}', e) from e

    # --- step 5: after pivot_root ---------------------------------------------------------------

    def write_sysctls(self) -> None:
        sysctls = self.linux.get("sysctl") or {}
        validate_sysctls(self.spec)
        for key, value in sysctls.items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                self.ops.write_file(path, str(value))
            except OSError as e:
                raise os_error(f'write sysctl {key}="{value}" ({path})', e) from e

    def readonly_paths(self) -> None:
        for path in self.linux.get("readonlyPaths") or ():
            if self.ops.kind(path, follow=True) == "missing":
                continue
            try:
                self.ops.mount(path, path, "", MS_BIND | MS_REC, "")
                bind_remount(self.ops, path, _READONLY_PATH_FLAGS)
            except OSError as e:
                if e.errno == errno.ENOENT:  # gone meanwhile
                    continue
                raise os_error(f'make "{path}" read-only', e) from e

    def masked_paths(self) -> None:
        for path in self.linux.get("maskedPaths") or ():
            kind = self.ops.kind(path, follow=True)
            try:
                if kind == "dir":
                    self.ops.mount("tmpfs", path, "tmpfs", MS_RDONLY, "")
                elif kind == "file":
                    self.ops.mount("/dev/null", path, "", MS_BIND, "")
            except OSError as e:
                if e.errno == errno.ENOENT:
                    continue
                raise os_error(f'mask "{path}"', e) from e

    def finalize(self) -> None:
        for destination, flags, data in self.deferred_ro:
            try:
                self.ops.mount("tmpfs", destination, "tmpfs", flags, data)
            except OSError as e:
                raise os_error(f'remount "{destination}" read-only', e) from e
        if (self.spec.get("root") or {}).get("readonly"):
            try:
                bind_remount(self.ops, "/", MS_RDONLY | MS_REC)
            except OSError as e:
                raise os_error('remount "/" read-only', e) from e


def _clean(path: str) -> str:
    """A container path made absolute and normal ("//a/./b/" -> "/a/b")."""
    return os.path.normpath("/" + path.lstrip("/"))


def _nothing_later_overlaps(index: int, mounts: Sequence[Any]) -> bool:
    """Whether no mount after `index` goes on, under or over its destination (so it may be
    made after them all without hiding or being hidden differently)."""
    here = mounts[index].get("destination")
    if not isinstance(here, str) or not here:
        return False
    here = _clean(here)
    if here == "/":
        return False
    for m in mounts[index + 1 :]:
        there = m.get("destination") if isinstance(m, dict) else None
        if not isinstance(there, str) or not there:
            return False
        there = _clean(there)
        if there == here or there.startswith(here + "/") or here.startswith(there + "/"):
            return False
    return True


def _own_cgroups(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {sorted comma-joined controllers: path}; "" is the v2 hierarchy."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers = ",".join(sorted(c for c in parts[1].split(",") if c))
        result[controllers] = parts[2]
    return result


def prepare_rootfs(
    spec: Mapping[str, Any],
    bundle: str,
    *,
    console_slave: str | None = None,
    ops: MountOps | None = None,
    before_cgroup_mount: Callable[[], None] | None = None,
) -> None:
    """Set up the container's root filesystem and pivot into it (see the module docstring).

    Runs in the container's init process, in its new mount namespace. On return the process's
    "/" is the rootfs and its cwd is "/". `before_cgroup_mount` is called before a mount of
    type cgroup (which shows this process's own cgroups: init waits there to be in them); with
    it, such a mount that no later one overlaps is made after /dev is set up, not in order.
    """
    rootfs = _Rootfs(spec, bundle, ops or RealMountOps())
    rootfs.before_cgroup_mount = before_cgroup_mount
    rootfs.check_own_mount_namespace()
    rootfs.prepare_root()
    rootfs.mount_all()
    rootfs.setup_dev(console_slave)
    rootfs.mount_deferred()
    rootfs.pivot()
    rootfs.write_sysctls()
    rootfs.readonly_paths()
    rootfs.masked_paths()
    rootfs.finalize()


__all__ = ["prepare_rootfs", "validate_sysctls"]
