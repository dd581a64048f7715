"""Test helper: run a function in a grandchild process inside new namespaces.

`run_in_namespaces(fn, flags)` forks; the child unshares `flags` (ctypes: os.unshare is
Python 3.12+) and forks again, so that a new PID namespace applies and the grandchild is its
pid 1. The grandchild runs `fn` with stdout and stderr sent to a pipe; `fn` usually ends by
exec'ing busybox. The grandchild dies with the child (PR_SET_PDEATHSIG), the child is killed
on timeout, and the (exit code, output) pair comes back to the test.

Tests run in importlib mode (not as a package), so they load this file by path.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import time
import traceback
from collections.abc import Callable

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CONTAINER_FLAGS = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare({flags:#x}): {os.strerror(err)}")


def _child(fn: Callable[[], None], flags: int, write_fd: int) -> None:
    try:
        unshare(flags)
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(write_fd, 1)
                os.dup2(write_fd, 2)
                os.close(write_fd)
                _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                fn()
                os._exit(0)
            except BaseException:
                os.write(2, traceback.format_exc().encode())
                os._exit(70)
        os.close(write_fd)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    except BaseException:
        os.write(write_fd, traceback.format_exc().encode())
        os._exit(71)


def run_in_namespaces(
    fn: Callable[[], None], flags: int = CONTAINER_FLAGS, *, timeout: float = 30.0
) -> tuple[int, str]:
    """Run `fn` in a grandchild in new namespaces `flags`; return (exit code, stdout+stderr)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(fn, flags, write_fd)
        os._exit(72)  # not reached
    os.close(write_fd)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                output += b"\n[timed out]"
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                output += chunk
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def mountinfo_lines() -> list[str]:
    """This process's mount table, without the mount ids (which are reused)."""
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(line.split()[2:]) for line in f)
