"""Start-up work begun before anything else: priming the cgroup attach.

The first write to a cgroup.procs file waits for an RCU grace period (the kernel switches
cgroup_threadgroup_rwsem to writer mode: 5-15 ms, holding cgroup_mutex meanwhile, so
cgroup mkdirs wait too); after it, attaches stay fast for about one more grace period.
`create`, `run` and `exec` attach a process to the container's cgroup ~15 ms after the
command starts (after config.json, the fork, the cgroup directories): a no-op attach begun
first — a process into the cgroup it is in already — lets the grace period run meanwhile
instead of after. Repeated every 2 ms, it keeps the fast state until the real attach is
done (the caller says so with `stop_priming`; at the latest after half a second).

The installed command (launcher.c) does it from a child of its own, started before the
interpreter even loads, and hands it over here (PRIMER_ENV): `stop_priming` closes the pipe
that child polls, `reap_primer` collects it. Without the launcher, a thread of this process
does the same (`prime_cgroup_attach`).

It changes nothing: the file written is that of a cgroup whose member list holds the writer,
and writing a member into its own cgroup moves nothing. Any failure (no cgroupfs, another
view of /sys/fs/cgroup, a read-only one) only loses the gain.
SKIFF_RUNTIME_NO_CGROUP_PRIMING=1 turns it off.

skiffd does the same with an `AttachPrimer`: kicked when a container is created, started or
exec'd, it keeps the attach fast for a second after the last kick, so the runtime it spawns
finds the fast state already there. Under load the grace period grows to 20 ms and more; a
run of `docker run -d` then pays it once, not once per container.

The thread starts before `create` forks: it holds no lock the child could need (it never
imports; between syscalls it only waits for the GIL, which the forking thread holds), and
the child, a fork, has only the forking thread.
"""

from __future__ import annotations

import os
import time

from skiff.runtime import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PRIMING_SECONDS = 0.5
PRIMING_INTERVAL = 0.002  # well inside one grace period

# The main thread imports meanwhile and keeps the GIL for a whole switch interval (5 ms) at a
# time: until the first write is under way the thread must get it back within a fraction.
EAGER_SWITCH_INTERVAL = 0.0002

_stop = False
_started = False
_switch_interval = 0.005


# The installed command's priming child: its pid, and our end of the pipe it polls.
PRIMER_ENV = "_SKIFF_RUNTIME_PRIMER"
_primer_pid = 0
_primer_stop = -1


def prime_cgroup_attach() -> None:
    """Keep the attach fast until `stop_priming` (see the module docstring); once per
    process. The launcher's child does it if there is one, else a thread of ours."""
    global _stop, _started, _switch_interval, _primer_pid, _primer_stop
    if _started:
        return
    _started = True
    primer = os.environ.pop(PRIMER_ENV, "")
    if primer:
        pid, _, fd = primer.partition(":")
        if pid.isdigit() and fd.isdigit():
            _primer_pid, _primer_stop = int(pid), int(fd)
            try:
                os.set_inheritable(_primer_stop, False)
            except OSError:
                _primer_stop = -1
            return
    if os.environ.get("SKIFF_RUNTIME_NO_CGROUP_PRIMING"):
        return
    import _thread
    import sys

    _stop = False
    _switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(EAGER_SWITCH_INTERVAL)
    try:
        _thread.start_new_thread(_keep_primed, ())
    except RuntimeError:
        sys.setswitchinterval(_switch_interval)


def forget_primer() -> None:
    """In a child forked from this process: the launcher's priming child is not ours, and
    our copy of its pipe must not keep it going."""
    global _primer_pid, _primer_stop
    if _primer_stop >= 0:
        os.close(_primer_stop)
    _primer_pid, _primer_stop = 0, -1


def reap_primer() -> None:
    """Collect the launcher's priming child once it is stopped (before a long wait, such as
    a foreground container's, so no zombie is kept meanwhile)."""
    global _primer_pid
    stop_priming()
    if _primer_pid:
        try:
            os.waitpid(_primer_pid, 0)
        except OSError:
            pass
        _primer_pid = 0


def _first_write_begins() -> None:
    import sys

    sys.setswitchinterval(_switch_interval)


def stop_priming() -> None:
    """The real attach is done: no more no-op ones."""
    global _stop, _primer_stop
    _stop = True
    if _primer_stop >= 0:
        os.close(_primer_stop)  # the launcher's child sees end-of-file and exits
        _primer_stop = -1


def _keep_primed() -> None:
    procs = attach_to_own_cgroup(before_write=_first_write_begins)
    if procs is None:
        _first_write_begins()
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


class AttachPrimer:
    """No-op attaches of this process (see the module docstring) from a thread of its own,
    every PRIMING_INTERVAL until `linger` seconds after the last `kick()`."""

    def __init__(
        self,
        linger: float = 1.0,
        *,
        cgroup_root: str = "/sys/fs/cgroup",
        proc_self_cgroup: str = "/proc/self/cgroup",
    ) -> None:
        import _thread

        self.linger = linger
        self.cgroup_root = cgroup_root
        self.proc_self_cgroup = proc_self_cgroup
        self.disabled = bool(os.environ.get("SKIFF_RUNTIME_NO_CGROUP_PRIMING"))
        self._lock = _thread.allocate_lock()
        self._until = 0.0
        self._running = False
        self._procs: str | None = None
        self.attaches = 0  # no-op attaches done (tests, debugging)

    def kick(self) -> None:
        if self.disabled:
            return
        with self._lock:
            self._until = time.monotonic() + self.linger
            if self._running:
                return
            self._running = True
        import threading

        threading.Thread(target=self._loop, name="cgroup-attach-primer", daemon=True).start()

    def _loop(self) -> None:
        try:
            procs = self._procs
            if procs is None:
                procs = attach_to_own_cgroup(self.cgroup_root, self.proc_self_cgroup)
                if procs is None:
                    self.disabled = True  # no cgroupfs that lists us: nothing to gain
                else:
                    self._procs = procs
                    self.attaches += 1
            pid = str(os.getpid()).encode()
            while procs is not None and not self.disabled:
                with self._lock:
                    if time.monotonic() >= self._until:
                        self._running = False  # decided under the lock: a kick now starts anew
                        return
                time.sleep(PRIMING_INTERVAL)
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
                self.attaches += 1
        except OSError:
            self.disabled = True
        with self._lock:
            self._running = False


def attach_to_own_cgroup(
    cgroup_root: str = "/sys/fs/cgroup",
    proc_self_cgroup: str = "/proc/self/cgroup",
    before_write: Callable[[], None] | None = None,
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
                    if before_write is not None:
                        before_write()
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            except OSError:
                continue
            log.trace("cgroup attach primed")
            return procs
    return None
