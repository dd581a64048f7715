"""Safe path resolution inside a container root filesystem.

A container path is resolved as if `root` were "/": absolute symlinks are re-rooted at `root`,
`..` stops at `root`, and the result never leaves it. This is what keeps a mount target that is a
symlink to "/etc" (CVE-2021-30465 and its cousins) from landing on the host's /etc.

The kernel does this itself with openat2(RESOLVE_IN_ROOT) (Linux >= 5.6); when openat2 is missing
or the path does not exist yet, a pure-Python walker does the same one component at a time.

Vocabulary: a *container path* is what config.json names ("/etc/hosts"); a *host path* is where
that lands on this host ("<root>/etc/hosts").
"""

from __future__ import annotations

import errno
import os
import stat

from skiff.errors import FailedPrecondition, InvalidArgument, NotFound, SkiffError
from skiff.linux import cdata

MAX_SYMLINKS = 40  # the kernel's limit (MAXSYMLINKS)

_SYS_OPENAT2 = 437  # same number on every architecture (new syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10

_libc = cdata.CDLL(None, use_errno=True)
_openat2_missing = False


class _OpenHow(cdata.Structure):
    _fields_ = [("flags", cdata.c_uint64), ("mode", cdata.c_uint64), ("resolve", cdata.c_uint64)]


def errno_error(context: str, err: int) -> SkiffError:
    """The closed-set error for errno `err`: "<context>: ENOENT: No such file or directory"."""
    name = errno.errorcode.get(err, f"errno {err}")
    message = f"{context}: {name}: {os.strerror(err)}"
    if err == errno.ENOENT:
        return NotFound(message)
    if err in (errno.EINVAL, errno.ELOOP, errno.ENAMETOOLONG, errno.EXDEV):
        return InvalidArgument(message)
    return FailedPrecondition(message)


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """openat2(2); raises OSError (ENOSYS when the kernel lacks it)."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    # With RESOLVE_IN_ROOT and "..", the kernel answers EAGAIN when a mount or rename happened
    # anywhere during the walk (it cannot prove the walk stayed inside); trying again is the
    # documented answer.
    for _ in range(64):
        fd = _libc.syscall(
            _SYS_OPENAT2,
            cdata.c_int(dirfd),
            cdata.c_char_p(os.fsencode(path)),
            cdata.byref(how),
            cdata.c_size_t(cdata.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = cdata.get_errno()
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def fd_path(fd: int) -> str:
    """The host path an open file descriptor refers to."""
    return os.readlink(f"/proc/self/fd/{fd}")


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _walk(root: str, path: str) -> str:
    """Pure-Python resolution of `path` inside `root` (already a real path).

    Missing components are taken literally; what follows them is resolved lexically, since
    nothing below a missing directory can be a symlink.
    """
    pending = _components(path)[::-1]  # a stack: the next component is at the end
    resolved: list[str] = []
    followed = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise errno_error(f'resolve "{path}" in root "{root}"', errno.ELOOP)
        try:
            target = os.readlink(candidate)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOENT):
                raise
            pending.append(part)  # no longer a symlink (a container races us): look again
            continue
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed(_components(target)))
    return os.path.join(root, *resolved) if resolved else root


def _open_root(root: str) -> int:
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _real_path_of(fd: int, root: str) -> str:
    """The canonical path of directory `root`, open as `fd`: the kernel's name for the fd
    (one readlink, where os.path.realpath makes an lstat per component: a container start
    resolves ~100 paths in its rootfs). os.path.realpath when /proc cannot tell."""
    try:
        path = fd_path(fd)
    except OSError:
        return os.path.realpath(root)
    if path.startswith("/") and not path.endswith(" (deleted)"):
        return path
    return os.path.realpath(root)


def real_root_path(root: str) -> str:
    """os.path.realpath(root) for an existing directory `root`, asked of the kernel."""
    try:
        fd = _open_root(root)
    except OSError:
        return os.path.realpath(root)
    try:
        return _real_path_of(fd, root)
    finally:
        os.close(fd)


def open_in_root(root: str, path: str, flags: int = os.O_PATH) -> int:
    """Open container path `path` inside `root` without leaving it; returns a (CLOEXEC) fd.

    Uses openat2(RESOLVE_IN_ROOT); without it, resolves with the walker, opens with O_NOFOLLOW
    and checks through /proc/self/fd that what was opened is still inside `root`.
    """
    global _openat2_missing
    if not _openat2_missing:
        rootfd = _open_root(root)
        try:
            return _openat2(rootfd, path, flags, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno != errno.ENOSYS:
                context = f'open "{path}" in root "{_real_path_of(rootfd, root)}"'
                raise errno_error(context, e.errno or errno.EIO) from e
            _openat2_missing = True
        finally:
            os.close(rootfd)
    real_root = os.path.realpath(root)
    context = f'open "{path}" in root "{real_root}"'
    host = _walk(real_root, path)
    try:
        fd = os.open(host, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise errno_error(context, e.errno or errno.EIO) from e
    if not _within(real_root, fd_path(fd)):
        os.close(fd)
        raise errno_error(f"{context}: raced with a rename out of the root", errno.EXDEV)
    return fd


def resolve_in_root(root: str, path: str) -> str:
    """The host path of container path `path` inside `root`, symlinks followed as if `root` were "/".

    The path need not exist; its missing tail is appended as written (with `..` clamped).
    Symlink loops raise InvalidArgument (ELOOP).
    """
    global _openat2_missing
    if _openat2_missing:
        return _walk(os.path.realpath(root), path)
    rootfd = _open_root(root)
    try:
        real_root = _real_path_of(rootfd, root)
        try:
            fd = _openat2(rootfd, path, os.O_PATH, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno == errno.ENOSYS:
                _openat2_missing = True
            elif e.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise errno_error(
                    f'resolve "{path}" in root "{real_root}"', e.errno or errno.EIO
                ) from e
            # the kernel stops at the first missing component; the walker goes on lexically
            return _walk(real_root, path)
    finally:
        os.close(rootfd)
    try:
        host = fd_path(fd)
    finally:
        os.close(fd)
    if _within(real_root, host):
        return host
    raise errno_error(f'resolve "{path}" in root "{real_root}": escaped to "{host}"', errno.EXDEV)


def _existing_ancestor(root: str, host: str) -> str:
    """The deepest existing directory on the way from `root` down to `host`."""
    current = root
    for part in _components(os.path.relpath(host, root)):
        nxt = os.path.join(current, part)
        if not os.path.lexists(nxt):
            break
        current = nxt
    return current


def mkdir_all_in_root(root: str, path: str, mode: int = 0o755) -> str:
    """Create directory `path` and its parents inside `root` (like `mkdir -p`); returns its host path.

    Each missing component is created with mkdir(2), which never follows a final symlink, and
    the path is resolved again after every step, so a symlink planted meanwhile cannot lead out.
    """
    if not _openat2_missing:
        done = _mkdir_leaf_in_root(root, path, mode)
        if done is not None:
            return done
    real_root = real_root_path(root)
    for _ in range(len(_components(path)) + MAX_SYMLINKS + 1):
        host = resolve_in_root(real_root, path)
        if os.path.isdir(host) and not os.path.islink(host):
            return host
        if os.path.lexists(host):
            raise errno_error(f'mkdir "{path}" in root "{real_root}"', errno.ENOTDIR)
        parent = _existing_ancestor(real_root, host)
        if not os.path.isdir(parent) or os.path.islink(parent):
            raise errno_error(
                f'mkdir "{path}" in root "{real_root}": "{parent}" is not a directory',
                errno.ENOTDIR,
            )
        rest = _components(os.path.relpath(host, parent))
        if not rest:
            continue  # it appeared since we resolved it (a container races us): look again
        try:
            os.mkdir(os.path.join(parent, rest[0]), mode)
        except FileExistsError:
            continue  # someone else created it (maybe as a symlink): resolve again
        except OSError as e:
            raise errno_error(f'mkdir "{path}" in root "{real_root}"', e.errno or errno.EIO) from e
    raise errno_error(f'mkdir "{path}" in root "{real_root}"', errno.ELOOP)


def _mkdir_leaf_in_root(root: str, path: str, mode: int) -> str | None:
    """The common cases of `mkdir_all_in_root` in a few syscalls: `path` is a directory
    already, or only its last component is missing (made with mkdirat in its parent, opened
    inside the root by the kernel). None: anything else, for the general walk to handle."""
    rootfd = _open_root(root)
    try:
        how = _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS
        dir_flags = os.O_PATH | os.O_DIRECTORY
        try:
            fd = _openat2(rootfd, path, dir_flags, how)
        except OSError as e:
            if e.errno != errno.ENOENT:
                return None
        else:
            try:
                host = fd_path(fd)
            finally:
                os.close(fd)
            return host if _within(_real_path_of(rootfd, root), host) else None
        parent, _, name = path.rstrip("/").rpartition("/")
        if name in ("", ".", ".."):
            return None
        try:
            parent_fd = _openat2(rootfd, parent or "/", dir_flags, how)
        except OSError:
            return None
        try:
            try:
                os.mkdir(name, mode, dir_fd=parent_fd)
            except OSError:
                return None  # made meanwhile, not a directory, refused: the walk says why
            host = os.path.join(fd_path(parent_fd), name)
        finally:
            os.close(parent_fd)
        return host if _within(_real_path_of(rootfd, root), host) else None
    finally:
        os.close(rootfd)


def create_file_in_root(root: str, path: str, mode: int = 0o644) -> str:
    """Make sure `path` exists inside `root` as a non-directory (an empty file if it was missing).

    This is the target of a file bind mount. Returns its host path.
    """
    real_root = real_root_path(root)
    parent = os.path.dirname("/" + path.lstrip("/"))
    for _ in range(MAX_SYMLINKS + 1):
        mkdir_all_in_root(real_root, parent)
        host = resolve_in_root(real_root, path)
        if os.path.lexists(host):
            if os.path.isdir(host):
                raise errno_error(f'create file "{path}" in root "{real_root}"', errno.EISDIR)
            return host
        try:
            fd = os.open(
                host, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC, mode
            )
        except FileExistsError:
            continue
        except OSError as e:
            raise errno_error(
                f'create file "{path}" in root "{real_root}"', e.errno or errno.EIO
            ) from e
        os.close(fd)
        return host
    raise errno_error(f'create file "{path}" in root "{real_root}"', errno.ELOOP)


__all__ = [
    "MAX_SYMLINKS",
    "create_file_in_root",
    "errno_error",
    "fd_path",
    "mkdir_all_in_root",
    "open_in_root",
    "resolve_in_root",
]
