"""Start-up work begun before anything else, on a thread: priming the cgroup attach.

The first write to a cgroup.procs file waits for an RCU grace period (the kernel switches
cgroup_threadgroup_rwsem to writer mode: 5-15 ms, holding cgroup_mutex meanwhile, so
cgroup mkdirs wait too); after it, attaches stay fast for about one more grace period.
`create`, `run` and `exec` attach a process to the container's cgroup ~10 ms after the
command starts (after config.json, the fork, the cgroup directories): a no-op attach begun
first — this process into the cgroup it is in already — lets the grace period run
meanwhile instead of after. Repeated every 2 ms, it keeps the fast state until the real
attach is done (the caller says so with `stop_priming`; at the latest after half a second).

It changes nothing: the file written is that of a cgroup whose member list holds this
process, and writing a member into its own cgroup moves nothing. Any failure (no cgroupfs,
another view of /sys/fs/cgroup, a read-only one) only loses the gain.
SKIFF_RUNTIME_NO_CGROUP_PRIMING=1 turns it off.

The thread starts before `create` forks its intermediate: it holds no lock the child could
need (it never imports; between syscalls it only waits for the GIL, which the forking thread
holds), and the child, a fork, has only the forking thread.
"""

from __future__ import annotations

import os
import time

from skiff.runtime import log

PRIMING_SECONDS = 0.5
PRIMING_INTERVAL = 0.002  # well inside one grace period

_stop = False


def prime_cgroup_attach() -> None:
    """Start the no-op attaches on a thread of its own (see the module docstring)."""
    global _stop
    if os.environ.get("SKIFF_RUNTIME_NO_CGROUP_PRIMING"):
        return
    import _thread

    _stop = False
    try:
        _thread.start_new_thread(_keep_primed, ())
    except RuntimeError:
        pass


def stop_priming() -> None:
    """The real attach is done: no more no-op ones."""
    global _stop
    _stop = True


def _keep_primed() -> None:
    procs = attach_to_own_cgroup()
    if procs is None:
        return
    pid = str(os.getpid()).encode()
    deadline = time.monotonic() + PRIMING_SECONDS
    while not _stop and time.monotonic() < deadline:
        time.sleep(PRIMING_INTERVAL)
        try:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        except OSError:
            return


def attach_to_own_cgroup(
    cgroup_root: str = "/sys/fs/cgroup", proc_self_cgroup: str = "/proc/self/cgroup"
) -> str | None:
    """Write this process's pid into the cgroup.procs of a cgroup it is already in (the
    first hierarchy where that file lists it); returns the file written, None if none."""
    pid = str(os.getpid()).encode()
    try:
        with open(proc_self_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1], parts[2].rstrip("/")
        if controllers:
            bases = [f"{cgroup_root}/{controllers.removeprefix('name=')}"]
        else:
            bases = [f"{cgroup_root}/unified", cgroup_root]
        for base in bases:
            procs = f"{base}{path}/cgroup.procs"
            try:
                # Only a file that lists us is ours: /sys/fs/cgroup may show another view.
                with open(procs, "rb") as f:
                    if pid not in f.read().split():
                        continue
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            except OSError:
                continue
            log.trace("cgroup attach primed")
            return procs
    return None
