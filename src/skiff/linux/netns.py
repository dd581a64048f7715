"""Network namespaces held open by a bind mount on a file, as `ip netns` and CNI do.

The engine makes a container's network namespace before the runtime starts the container, wires
it (veth, addresses, routes), and hands its path to the runtime in config.json
(`linux.namespaces: [{"type": "network", "path": …}]`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def create(path: str) -> str:
    """Create a new, empty network namespace and pin it at `path` (a file, created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    failure: list[BaseException] = []

    def pin() -> None:
        # unshare(CLONE_NEWNET) applies to this thread only; the thread then ends, while the
        # bind mount keeps the namespace alive.
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            tid = threading.get_native_id()
            src = f"/proc/self/task/{tid}/ns/net".encode()
            _check(_libc.mount(src, path.encode(), None, MS_BIND, None), f"bind netns to {path}")
        except BaseException as exc:
            failure.append(exc)

    t = threading.Thread(target=pin, name="netns-create")
    t.start()
    t.join()
    if failure:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise failure[0]
    return path


def remove(path: str) -> None:
    """Unpin and delete a namespace made by `create`; a missing path is not an error."""
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def is_pinned(path: str) -> bool:
    """True when `path` is a mounted network namespace file."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False
