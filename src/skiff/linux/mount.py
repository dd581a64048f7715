"""Mounting: mount(2)/umount2(2)/pivot_root(2), fstab/OCI option parsing, and `mount_all`.

Every syscall the container's filesystem setup makes goes through one `MountOps` object:
`RealMountOps` calls the kernel; `RecordingMountOps` only writes down what would have been
called, so unit tests can assert the exact mount sequence of a container start without root
(youki's `Syscall` trait). `MountOps` methods raise `OSError`; callers add the context (which
step, which object) and turn it into a `skiff.errors` error.

Vocabulary: *flags* are mount(2) MS_* bits; *propagation flags* (MS_PRIVATE, MS_SLAVE, … with
MS_REC) need a mount(2) call of their own after the mount exists; *data* is the comma-joined
filesystem-specific string ("mode=755,size=65536k", "lowerdir=…").

Every container start imports this module, so it imports no typing, dataclasses or
collections at run time (they cost ~10 ms): `MountOps` is a Protocol for the type checker
only, and the value classes are plain slotted classes.
"""

from __future__ import annotations

import errno
import os
import stat

from skiff.errors import FailedPrecondition, InvalidArgument, NotImplementedYet, SkiffError
from skiff.linux import cdata, paths
from skiff.linux.syscalls import MNT_DETACH as MNT_DETACH
from skiff.linux.syscalls import MS_BIND as MS_BIND
from skiff.linux.syscalls import (
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODIRATIME,
    MS_NOSYMFOLLOW,
    MS_RELATIME,
    MS_SHARED,
    MS_SILENT,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
    UMOUNT_NOFOLLOW,
    check_call,
    libc,
)
from skiff.linux.syscalls import MS_NODEV as MS_NODEV
from skiff.linux.syscalls import MS_NOEXEC as MS_NOEXEC
from skiff.linux.syscalls import MS_NOSUID as MS_NOSUID
from skiff.linux.syscalls import MS_PRIVATE as MS_PRIVATE
from skiff.linux.syscalls import MS_RDONLY as MS_RDONLY
from skiff.linux.syscalls import MS_REC as MS_REC
from skiff.linux.syscalls import MS_REMOUNT as MS_REMOUNT
from skiff.linux.syscalls import MS_SLAVE as MS_SLAVE
from skiff.linux.syscalls import MS_STRICTATIME as MS_STRICTATIME

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal, Protocol

    from skiff.types.mount import Mount

MNT_EXPIRE = 0x4

PROPAGATION_MASK = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE

# option -> (clear instead of set, flag bits)
FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "symfollow": (True, MS_NOSYMFOLLOW),
}

PROPAGATION_OPTIONS: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# mount_setattr(2) attributes, for the recursive options ("rro", "rnosuid", …).
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

# recursive option -> (clear instead of set, attribute); applied with mount_setattr(AT_RECURSIVE)
RECURSIVE_OPTIONS: dict[str, tuple[bool, int]] = {
    "rro": (False, MOUNT_ATTR_RDONLY),
    "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID),
    "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV),
    "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC),
    "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}

# recursive atime option -> the atime mode it selects (one field, not bits)
RECURSIVE_ATIME_OPTIONS: dict[str, int] = {
    "rrelatime": MOUNT_ATTR_RELATIME,
    "ratime": MOUNT_ATTR_RELATIME,  # leaving noatime: back to the kernel default
    "rnostrictatime": MOUNT_ATTR_RELATIME,
    "rnoatime": MOUNT_ATTR_NOATIME,
    "rstrictatime": MOUNT_ATTR_STRICTATIME,
    "rnorelatime": MOUNT_ATTR_STRICTATIME,  # mount(8): update atime on every access
}

# Handled by the caller (rootfs), never passed to the kernel.
EXTENSION_OPTIONS = frozenset({"tmpcopyup", "notmpcopyup"})

# statvfs f_flag bits that a bind remount must keep when the kernel has locked them
# (mounts inherited into a user namespace): ST_NOSUID, ST_NODEV, ST_NOEXEC, atime bits.
_ST_TO_MS = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}


def parse_options(options: Sequence[str]) -> tuple[int, int, str]:
    """Split fstab/OCI mount options into (flags, propagation flags, data).

    Later options win ("ro,rw" is rw). "tmpcopyup" and the recursive options ("rro", …; see
    `parse_recursive_options`) are accepted and left out; everything
    unknown ("mode=755", "size=64m", "lowerdir=…") is kept, in order, in the data string.
    """
    flags = 0
    propagation = 0
    data: list[str] = []
    for option in options:
        if option in FLAG_OPTIONS:
            clear, bits = FLAG_OPTIONS[option]
            flags = flags & ~bits if clear else flags | bits
        elif option in PROPAGATION_OPTIONS:
            propagation |= PROPAGATION_OPTIONS[option]
        elif (
            option in EXTENSION_OPTIONS
            or option in RECURSIVE_OPTIONS
            or option in RECURSIVE_ATIME_OPTIONS
        ):
            continue
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


def parse_recursive_options(options: Sequence[str]) -> tuple[int, int]:
    """The (attr_set, attr_clr) of mount_setattr(2) for the recursive options ("rro", "rnoexec", …).

    (0, 0) when there are none. Setting an atime mode clears the whole atime field first.
    """
    attr_set = attr_clr = 0
    for option in options:
        if option in RECURSIVE_ATIME_OPTIONS:
            attr_clr |= MOUNT_ATTR__ATIME
            attr_set = (attr_set & ~MOUNT_ATTR__ATIME) | RECURSIVE_ATIME_OPTIONS[option]
        elif option in RECURSIVE_OPTIONS:
            clear, attr = RECURSIVE_OPTIONS[option]
            if clear:
                attr_clr |= attr
                attr_set &= ~attr
            else:
                attr_set |= attr
                attr_clr &= ~attr
    return attr_set, attr_clr


# --- the syscalls -------------------------------------------------------------------------------

_libc = libc()  # loaded at import: filesystem setup must not need it later


def _raise_errno(what: str) -> None:
    err = cdata.get_errno()
    raise OSError(err, os.strerror(err), what)


def _cstr(value: str) -> bytes | None:
    return os.fsencode(value) if value else None


def mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    """mount(2). Empty `source`, `fstype` or `data` pass NULL. Raises OSError."""
    if _libc.mount(_cstr(source), os.fsencode(target), _cstr(fstype), flags, _cstr(data)) != 0:
        _raise_errno(target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2). Raises OSError."""
    if _libc.umount2(os.fsencode(target), flags) != 0:
        _raise_errno(target)


_SYS_MOUNT_SETATTR = 442  # same on every architecture
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000


class _MountAttr(cdata.Structure):
    _fields_ = [
        ("attr_set", cdata.c_uint64),
        ("attr_clr", cdata.c_uint64),
        ("propagation", cdata.c_uint64),
        ("userns_fd", cdata.c_uint64),
    ]


def mount_setattr(target: str, attr_set: int, attr_clr: int, *, recursive: bool = True) -> None:
    """mount_setattr(2) (Linux >= 5.12) on the mount at `target`. Raises OSError."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = _AT_RECURSIVE if recursive else 0
    result = _libc.syscall(
        _SYS_MOUNT_SETATTR,
        cdata.c_int(_AT_FDCWD),
        cdata.c_char_p(os.fsencode(target)),
        cdata.c_uint(flags),
        cdata.byref(attr),
        cdata.c_size_t(cdata.sizeof(attr)),
    )
    if result != 0:
        _raise_errno(target)


_SYS_MOVE_MOUNT = 429  # the new mount API: same numbers on every architecture
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MS_TO_MOUNT_ATTR = {
    MS_RDONLY: MOUNT_ATTR_RDONLY,
    MS_NOSUID: MOUNT_ATTR_NOSUID,
    MS_NODEV: MOUNT_ATTR_NODEV,
    MS_NOEXEC: MOUNT_ATTR_NOEXEC,
    MS_NODIRATIME: MOUNT_ATTR_NODIRATIME,
    MS_NOSYMFOLLOW: MOUNT_ATTR_NOSYMFOLLOW,
    MS_NOATIME: MOUNT_ATTR_NOATIME,
    MS_STRICTATIME: MOUNT_ATTR_STRICTATIME,
}


def overlay_params(data: str) -> list[tuple[str, str | None]]:
    """Overlay options as fsconfig(2) parameters: one "lowerdir+" per layer (Linux >= 6.8)."""
    params: list[tuple[str, str | None]] = []
    for option in data.split(","):
        key, sep, value = option.partition("=")
        if key == "lowerdir":
            params.extend(("lowerdir+", layer) for layer in value.split(":"))
        else:
            params.append((key, value if sep else None))
    return params


def mount_fs(
    source: str, fstype: str, params: Sequence[tuple[str, str | None]], target: str, flags: int
) -> None:
    """Mount with the new mount API: fsopen, one fsconfig per parameter, fsmount, move_mount.

    For option strings longer than mount(2) accepts. `flags` are MS_* flags. Raises OSError.
    """
    libc = _libc

    def check(result: int, what: str) -> int:
        return check_call(result, what, target)

    fs_fd = check(
        libc.syscall(_SYS_FSOPEN, os.fsencode(fstype), cdata.c_uint(1)), f"fsopen {fstype}"
    )
    try:
        if source:
            params = [("source", source), *params]
        for key, value in params:
            if value is None:
                check(
                    libc.syscall(
                        _SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_FLAG, os.fsencode(key), None, 0
                    ),
                    key,
                )
            else:
                check(
                    libc.syscall(
                        _SYS_FSCONFIG,
                        fs_fd,
                        _FSCONFIG_SET_STRING,
                        os.fsencode(key),
                        os.fsencode(value),
                        0,
                    ),
                    f"fsconfig {key}={value}",
                )
        check(
            libc.syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_CMD_CREATE, None, None, 0),
            "fsconfig create",
        )
        attrs = sum(attr for ms, attr in _MS_TO_MOUNT_ATTR.items() if flags & ms)
        mnt_fd = check(
            libc.syscall(_SYS_FSMOUNT, fs_fd, cdata.c_uint(1), cdata.c_uint(attrs)), "fsmount"
        )
        try:
            check(
                libc.syscall(
                    _SYS_MOVE_MOUNT,
                    mnt_fd,
                    b"",
                    cdata.c_int(_AT_FDCWD),
                    os.fsencode(target),
                    cdata.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
                ),
                "move_mount",
            )
        finally:
            os.close(mnt_fd)
    finally:
        os.close(fs_fd)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (glibc has no wrapper). Raises OSError."""
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise NotImplementedYet(f"pivot_root: syscall number unknown on {os.uname().machine}")
    if _libc.syscall(number, os.fsencode(new_root), os.fsencode(put_old)) != 0:
        _raise_errno(new_root)


if TYPE_CHECKING:
    # For the type checker only (`typing` stays off the container start path): code that
    # takes a MountOps imports it under TYPE_CHECKING too.
    PathKind = Literal["dir", "file", "missing"]

    class MountOps(Protocol):
        """Every syscall of filesystem setup (mounts, device nodes, pivot_root, sysctls).

        Paths are host paths before pivot_root and container paths after it. A target may be a
        "/proc/self/fd/N" path from `open_in_root`, so a mount follows an fd opened safely inside
        the root rather than a path that could be swapped for a symlink meanwhile.
        """

        def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None: ...
        def umount2(self, target: str, flags: int) -> None: ...
        def mount_fs(
            self,
            fstype: str,
            source: str,
            params: Sequence[tuple[str, str | None]],
            target: str,
            flags: int,
        ) -> None:
            """Mount through fsopen/fsconfig/fsmount/move_mount (options one by one)."""
            ...

        def mount_setattr(self, target: str, attr_set: int, attr_clr: int) -> None:
            """Recursively set/clear MOUNT_ATTR_* on the mount tree at `target`."""
            ...

        def pivot_root(self, new_root: str, put_old: str) -> None: ...
        def open_in_root(self, root: str, path: str) -> int: ...
        def open_dir(self, path: str) -> int: ...
        def close(self, fd: int) -> None: ...
        def fchdir(self, fd: int) -> None: ...
        def chdir(self, path: str) -> None: ...
        def mknod(self, path: str, mode: int, device: int) -> None: ...
        def lchown(self, path: str, uid: int, gid: int) -> None: ...
        def chmod(self, path: str, mode: int) -> None: ...
        def symlink(self, target: str, link: str) -> None: ...
        def unlink(self, path: str) -> None: ...
        def copy_up(self, source: str, target: str) -> None: ...
        def write_file(self, path: str, data: str) -> None: ...
        def read_file(self, path: str) -> str: ...
        def readlink(self, path: str) -> str: ...
        def kind(self, path: str, *, follow: bool = False) -> PathKind:
            """ "dir", "file" (anything else) or "missing"; symlinks followed only if `follow`."""
            ...

        def statvfs_flags(self, path: str) -> int: ...


def _copy_tree(source: str, target: str) -> None:
    """`cp -a source/. target/` for the tmpcopyup option (regular files, dirs, links, nodes)."""
    for entry in os.scandir(source):
        src = os.path.join(source, entry.name)
        dst = os.path.join(target, entry.name)
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(dst, stat.S_IMODE(st.st_mode))
            _copy_tree(src, dst)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISREG(st.st_mode):
            with open(src, "rb") as fin, open(dst, "xb") as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)
        else:
            os.mknod(dst, st.st_mode, st.st_rdev)
        os.lchown(dst, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _kind(path: str, follow: bool) -> PathKind:
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


class RealMountOps:
    """`MountOps` on the running kernel."""

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        mount(source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int) -> None:
        umount2(target, flags)

    def mount_setattr(self, target: str, attr_set: int, attr_clr: int) -> None:
        mount_setattr(target, attr_set, attr_clr)

    def mount_fs(
        self,
        fstype: str,
        source: str,
        params: Sequence[tuple[str, str | None]],
        target: str,
        flags: int,
    ) -> None:
        mount_fs(source, fstype, params, target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        pivot_root(new_root, put_old)

    def open_in_root(self, root: str, path: str) -> int:
        return paths.open_in_root(root, path)

    def open_dir(self, path: str) -> int:
        return os.open(path, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)

    def close(self, fd: int) -> None:
        os.close(fd)

    def fchdir(self, fd: int) -> None:
        os.fchdir(fd)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    def mknod(self, path: str, mode: int, device: int) -> None:
        os.mknod(path, mode, device)

    def lchown(self, path: str, uid: int, gid: int) -> None:
        os.lchown(path, uid, gid)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def symlink(self, target: str, link: str) -> None:
        os.symlink(target, link)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def copy_up(self, source: str, target: str) -> None:
        """Copy the tree at `source` into the directory `target`, keeping modes and owners."""
        _copy_tree(source, target)

    def write_file(self, path: str, data: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)

    def read_file(self, path: str) -> str:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()

    def readlink(self, path: str) -> str:
        return os.readlink(path)

    def kind(self, path: str, *, follow: bool = False) -> PathKind:
        return _kind(path, follow)

    def statvfs_flags(self, path: str) -> int:
        f_flag = os.statvfs(path).f_flag
        return sum(ms for st, ms in _ST_TO_MS.items() if f_flag & st)


class RecordingMountOps:
    """`MountOps` that records calls instead of making them, for unit tests without root.

    `calls` holds one tuple per call: ("mount", source, target, fstype, flags, data), … with
    "/proc/self/fd/N" targets written as the path they stand for. Reads see `files` (and
    `kinds`, for host paths a test pretends exist) first, then the real file system; after a
    recorded pivot_root, container paths are looked up under the new root. `fail` maps
    (op, path) to an errno that the next such call raises (once), to test error paths.
    """

    def __init__(
        self,
        files: dict[str, str] | None = None,
        kinds: dict[str, PathKind] | None = None,
        fail: dict[tuple[str, str], int] | None = None,
        statvfs: int = 0,
        calls: list[tuple[object, ...]] | None = None,
        root: str | None = None,
        cwd: str = "/",
    ) -> None:
        self.files = {} if files is None else files
        self.kinds = {} if kinds is None else kinds
        self.fail = {} if fail is None else fail
        self.statvfs = statvfs
        self.calls = [] if calls is None else calls
        self.root = root
        self.cwd = cwd
        self._fds: dict[int, str] = {}
        self._next_fd = 1000

    def __repr__(self) -> str:
        return f"RecordingMountOps(root={self.root!r}, cwd={self.cwd!r}, calls={len(self.calls)})"

    def _path(self, path: str) -> str:
        if path.startswith("/proc/self/fd/"):
            fd = int(path.rsplit("/", 1)[1])
            if fd in self._fds:
                return self._fds[fd]
        return path

    def _host(self, path: str) -> str:
        """Where a path the code under test names lies on the real file system."""
        path = self._path(path)
        if self.root is not None:
            return os.path.join(self.root, path.lstrip("/"))
        return path

    def _record(self, op: str, *args: object) -> None:
        call = (op, *(self._path(a) if isinstance(a, str) else a for a in args))
        self.calls.append(call)
        for a in call[1:]:
            if isinstance(a, str) and (op, a) in self.fail:
                err = self.fail.pop((op, a))
                raise OSError(err, os.strerror(err), a)

    def mounts(self) -> list[tuple[object, ...]]:
        """Only the mount/umount2/pivot_root calls, in order."""
        return [
            c
            for c in self.calls
            if c[0] in ("mount", "umount2", "pivot_root", "mount_setattr", "mount_fs")
        ]

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int) -> None:
        self._record("umount2", target, flags)

    def mount_setattr(self, target: str, attr_set: int, attr_clr: int) -> None:
        self._record("mount_setattr", target, attr_set, attr_clr)

    def mount_fs(
        self,
        fstype: str,
        source: str,
        params: Sequence[tuple[str, str | None]],
        target: str,
        flags: int,
    ) -> None:
        self._record("mount_fs", fstype, source, tuple(params), target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)
        self.root = self.cwd if new_root == "." else new_root

    def open_in_root(self, root: str, path: str) -> int:
        host = paths.resolve_in_root(self._host(root), path)
        if not os.path.lexists(host):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = host
        return fd

    def open_dir(self, path: str) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = self._host(path)
        return fd

    def close(self, fd: int) -> None:
        self._fds.pop(fd, None)

    def fchdir(self, fd: int) -> None:
        self.cwd = self._fds[fd]
        self._record("fchdir", self.cwd)

    def chdir(self, path: str) -> None:
        self._record("chdir", path)

    def mknod(self, path: str, mode: int, device: int) -> None:
        self._record("mknod", path, mode, device)

    def lchown(self, path: str, uid: int, gid: int) -> None:
        self._record("lchown", path, uid, gid)

    def chmod(self, path: str, mode: int) -> None:
        self._record("chmod", path, mode)

    def symlink(self, target: str, link: str) -> None:
        self._record("symlink", target, link)

    def unlink(self, path: str) -> None:
        self._record("unlink", path)

    def copy_up(self, source: str, target: str) -> None:
        self._record("copy_up", source, target)

    def write_file(self, path: str, data: str) -> None:
        self._record("write_file", path, data)

    def read_file(self, path: str) -> str:
        if path in self.files:
            return self.files[path]
        with open(self._host(path), encoding="utf-8", errors="surrogateescape") as f:
            return f.read()

    def readlink(self, path: str) -> str:
        """From `files` if there; else a value unique to the path (namespaces all differ)."""
        return self.files.get(path, f"recorded:{path}")

    def kind(self, path: str, *, follow: bool = False) -> PathKind:
        if path in self.kinds:
            return self.kinds[path]
        return _kind(self._host(path), follow)

    def statvfs_flags(self, path: str) -> int:
        return self.statvfs


def os_error(context: str, err: OSError) -> SkiffError:
    """`err` as a skiff error: "<context>: EPERM: Operation not permitted"."""
    return paths.errno_error(context, err.errno or errno.EIO)


def bind_remount(ops: MountOps, target: str, flags: int) -> None:
    """Remount a bind mount with `flags` (ro, nosuid, …).

    In a user namespace the kernel refuses to clear flags it locked on the source mount; on
    EPERM the locked flags of the mount are added and the remount is tried once more.
    """
    remount = MS_BIND | MS_REMOUNT | (flags & ~(MS_BIND | MS_REC | MS_REMOUNT | PROPAGATION_MASK))
    try:
        ops.mount("", target, "", remount, "")
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        locked = ops.statvfs_flags(target)
        if locked & ~remount == 0:
            raise
        ops.mount("", target, "", remount | locked, "")


def needs_remount(flags: int) -> bool:
    """Whether a bind mount with `flags` needs the second, remounting mount(2)."""
    return flags & ~(MS_BIND | MS_REC | MS_REMOUNT) != 0


def is_bind(mount_type: str, options: Sequence[str]) -> bool:
    """A bind mount is type "bind", or any type with the "bind"/"rbind" option (OCI)."""
    return mount_type == "bind" or "bind" in options or "rbind" in options


_MAX_DATA = os.sysconf("SC_PAGESIZE") - 1


def _mount_one(ops: MountOps, m: Mount, target: str) -> None:
    flags, propagation, data = parse_options(m.options)
    if is_bind(m.type, m.options):
        ops.mount(m.source, target, "", flags & (MS_BIND | MS_REC) | MS_BIND, "")
        if needs_remount(flags & ~MS_REC):
            bind_remount(ops, target, flags)
    else:
        if len(data) > _MAX_DATA:
            # mount(2) takes one page of options; the new mount API takes them one by one.
            if m.type != "overlay":
                raise NotImplementedYet(
                    f"{m.type} mount options are {len(data)} bytes, over the kernel's "
                    f"{_MAX_DATA}-byte limit for mount(2)"
                )
            ops.mount_fs(m.type, m.source, overlay_params(data), target, flags)
        else:
            ops.mount(m.source, target, m.type, flags, data)
    if propagation:
        ops.mount("", target, "", propagation, "")
    attr_set, attr_clr = parse_recursive_options(m.options)
    if attr_set or attr_clr:
        ops.mount_setattr(target, attr_set, attr_clr)


def mount_all(mounts: Sequence[Mount], target: str, *, ops: MountOps | None = None) -> None:
    """Perform `mounts` (as returned by a snapshotter) at directory `target`, in order.

    A mount's own `target` is a path below `target`, resolved without leaving it. If one mount
    fails, the ones done are undone and the error names the failing mount.
    """
    ops = ops or RealMountOps()
    done: list[str] = []
    for index, m in enumerate(mounts):
        dest = target if not m.target else paths.resolve_in_root(target, m.target)
        try:
            _mount_one(ops, m, dest)
        except OSError as e:
            for mounted in reversed(done):
                try:
                    ops.umount2(mounted, MNT_DETACH)
                except OSError:
                    pass
            raise os_error(f'mounts[{index}]: mount {m.type} "{m.source}" at "{dest}"', e) from e
        except SkiffError as e:
            raise e.wrap(f"mounts[{index}]") from e
        done.append(dest)


def _unescape(field_: str) -> str:
    """Decode mountinfo's octal escapes (\\040 for a space, …)."""
    if "\\" not in field_:
        return field_
    out = bytearray()
    raw = field_.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and raw[i + 1 : i + 4].isdigit() and i + 3 < len(raw):
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


class FrozenValue:
    """Base of the immutable value classes on the container start path (`MountInfo`,
    `devices.Device`): equality, hash and repr over `FIELDS`. Plain slots rather than a frozen
    dataclass because importing dataclasses costs every container start ~10 ms."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()

    def _init(self, *values: object) -> None:
        for name, value in zip(self.FIELDS, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({inner})"


class MountInfo(FrozenValue):
    """One line of /proc/<pid>/mountinfo: an immutable value, equal when all fields are."""

    FIELDS = (
        "mount_id",
        "parent_id",
        "root",
        "mountpoint",
        "options",
        "optional",
        "fstype",
        "source",
        "super_options",
    )
    __slots__ = FIELDS
    mount_id: int
    parent_id: int
    root: str
    mountpoint: str
    options: str
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: str

    def __init__(
        self,
        mount_id: int,
        parent_id: int,
        root: str,
        mountpoint: str,
        options: str,
        optional: tuple[str, ...],
        fstype: str,
        source: str,
        super_options: str,
    ) -> None:
        self._init(
            mount_id, parent_id, root, mountpoint, options, optional, fstype, source, super_options
        )


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse /proc/<pid>/mountinfo text (see proc(5))."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            entries.append(
                MountInfo(
                    mount_id=int(fields[0]),
                    parent_id=int(fields[1]),
                    root=_unescape(fields[3]),
                    mountpoint=_unescape(fields[4]),
                    options=fields[5],
                    optional=tuple(fields[6:sep]),
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]),
                    super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
                )
            )
        except (ValueError, IndexError) as e:
            raise InvalidArgument(f"mountinfo: malformed line {line!r}") from e
    return entries


def mounts_under(target: str, mountinfo: str) -> list[str]:
    """Mount points at or below `target`, deepest (and most recently mounted) first."""
    target = target.rstrip("/") or "/"
    prefix = target if target == "/" else target + "/"
    found = [
        (i, e.mountpoint)
        for i, e in enumerate(parse_mountinfo(mountinfo))
        if e.mountpoint == target or e.mountpoint.startswith(prefix)
    ]
    found.sort(key=lambda item: (item[1].count("/"), item[0]), reverse=True)
    return [mountpoint for _, mountpoint in found]


def unmount_all(target: str, *, ops: MountOps | None = None) -> None:
    """Unmount `target` and every mount below it, deepest first; lazily (MNT_DETACH) if busy."""
    ops = ops or RealMountOps()
    target = os.path.realpath(target)
    previous: list[str] = []
    while True:  # stacked mounts on one point need one round each
        pending = mounts_under(target, ops.read_file("/proc/self/mountinfo"))
        if not pending:
            return
        if pending == previous:
            raise FailedPrecondition(f'unmount "{target}": {pending[0]!r} stays mounted')
        previous = pending
        for mountpoint in pending:
            try:
                ops.umount2(mountpoint, UMOUNT_NOFOLLOW)
            except OSError as e:
                if e.errno == errno.EBUSY:
                    try:
                        ops.umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW)
                    except OSError as e2:
                        if e2.errno not in (errno.EINVAL, errno.ENOENT):
                            raise os_error(f'unmount "{mountpoint}"', e2) from e2
                elif e.errno not in (errno.EINVAL, errno.ENOENT):
                    raise os_error(f'unmount "{mountpoint}"', e) from e


__all__ = [
    "MountInfo",
    "RealMountOps",
    "RecordingMountOps",
    "bind_remount",
    "is_bind",
    "mount",
    "mount_all",
    "mounts_under",
    "needs_remount",
    "os_error",
    "parse_mountinfo",
    "parse_options",
    "parse_recursive_options",
    "mount_setattr",
    "mount_fs",
    "overlay_params",
    "pivot_root",
    "umount2",
    "unmount_all",
]
