"""Device nodes in a container's /dev: the default set, linux.devices entries, and /dev symlinks.

A device is created with mknod(2); in a user namespace, where mknod is refused, the host's
node is bind-mounted onto an empty file instead (runc does the same). All calls go through a
`MountOps`, so unit tests record them.
"""

from __future__ import annotations

import errno
import os
import stat

from skiff.errors import InvalidArgument, SkiffError
from skiff.linux import paths
from skiff.linux.mount import MS_BIND, FrozenValue, os_error

TYPE_CHECKING = False  # typing and dataclasses cost ~10 ms: every container start imports this
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from skiff.linux.mount import MountOps

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class Device(FrozenValue):
    """One OCI linux.devices entry: a node at container path `path`. An immutable value,
    equal when all fields are."""

    FIELDS = ("path", "type", "major", "minor", "file_mode", "uid", "gid")
    __slots__ = FIELDS
    path: str
    type: str  # "c", "u" (unbuffered char), "b" or "p"
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int

    def __init__(
        self,
        path: str,
        type: str,
        major: int = 0,
        minor: int = 0,
        file_mode: int = 0o666,
        uid: int = 0,
        gid: int = 0,
    ) -> None:
        self._init(path, type, major, minor, file_mode, uid, gid)

    @property
    def mode(self) -> int:
        """File type and permission bits for mknod(2)."""
        return _TYPES[self.type] | (self.file_mode & 0o7777)

    @property
    def rdev(self) -> int:
        return os.makedev(self.major, self.minor) if self.type != "p" else 0


DEFAULT_DEVICES: tuple[Device, ...] = (
    Device("/dev/null", "c", 1, 3),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9),
    Device("/dev/tty", "c", 5, 0),
)

DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def parse_devices(entries: Sequence[Mapping[str, Any]] | None) -> list[Device]:
    """The config.json linux.devices list as `Device`s; errors name the entry."""
    devices = []
    for i, entry in enumerate(entries or ()):
        where = f"linux.devices[{i}]"
        try:
            path = entry["path"]
            dev_type = entry["type"]
        except KeyError as e:
            raise InvalidArgument(f"{where}: missing {e.args[0]!r}") from e
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidArgument(f"{where}: path {path!r} is not absolute")
        if dev_type not in _TYPES:
            raise InvalidArgument(f"{where}: unknown device type {dev_type!r} (want c, u, b or p)")
        if dev_type != "p" and ("major" not in entry or "minor" not in entry):
            raise InvalidArgument(f"{where}: type {dev_type!r} needs major and minor")
        mode = entry.get("fileMode")
        devices.append(
            Device(
                path=path,
                type=dev_type,
                major=int(entry.get("major", 0)),
                minor=int(entry.get("minor", 0)),
                file_mode=0o666 if mode is None else int(mode),
                uid=int(entry.get("uid", 0)),
                gid=int(entry.get("gid", 0)),
            )
        )
    return devices


def _bind_from_host(ops: MountOps, root: str, device: Device) -> None:
    paths.create_file_in_root(root, device.path)
    fd = ops.open_in_root(root, device.path)
    try:
        ops.mount(device.path, f"/proc/self/fd/{fd}", "", MS_BIND, "")
    finally:
        ops.close(fd)


def create_device(ops: MountOps, root: str, device: Device, *, bind_from_host: bool) -> None:
    """Create `device` inside `root`: mknod + chmod + chown, or a bind of the host's node.

    An existing node is kept; mknod refused with EPERM falls back to the bind.
    """
    context = f'create device "{device.path}" in rootfs'
    try:
        paths.mkdir_all_in_root(root, os.path.dirname(device.path))
        if bind_from_host:
            _bind_from_host(ops, root, device)
            return
        dest = paths.resolve_in_root(root, device.path)
        try:
            ops.mknod(dest, device.mode, device.rdev)
        except OSError as e:
            if e.errno == errno.EEXIST:
                return
            if e.errno == errno.EPERM:
                _bind_from_host(ops, root, device)
                return
            raise
        ops.chmod(dest, device.file_mode & 0o7777)
        ops.lchown(dest, device.uid, device.gid)
    except OSError as e:
        raise os_error(context, e) from e
    except SkiffError as e:
        raise e.wrap(context) from e


def create_dev_symlinks(ops: MountOps, root: str) -> None:
    """/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr, /dev/core (if the kernel has /proc/kcore)."""
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, link in links:
        host = paths.resolve_in_root(root, link)
        try:
            ops.symlink(target, host)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise os_error(f'symlink "{link}" -> "{target}" in rootfs', e) from e


def setup_ptmx(ops: MountOps, root: str) -> None:
    """Make /dev/ptmx a symlink to pts/ptmx, the devpts instance's own multiplexer."""
    host = paths.resolve_in_root(root, "/dev/ptmx")
    try:
        if ops.kind(host) != "missing":
            ops.unlink(host)
        ops.symlink("pts/ptmx", host)
    except OSError as e:
        raise os_error('symlink "/dev/ptmx" -> "pts/ptmx" in rootfs', e) from e


__all__ = [
    "DEFAULT_DEVICES",
    "DEV_SYMLINKS",
    "Device",
    "create_dev_symlinks",
    "create_device",
    "parse_devices",
    "setup_ptmx",
]
