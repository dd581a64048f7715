"""`start`, `kill`, `delete`, `pause`, `resume`: moving a created container through its states.

created --start--> running --(exit)--> stopped --delete--> (gone)
running --pause--> paused --resume--> running; kill signals created/running/paused ones.
Status checks use the rules in state.py; error texts follow runc's.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux.syscalls import SYSCALLS
from skiff.runtime import hooks, log
from skiff.runtime import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SIGNALS = {
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
    "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
    "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28,
    "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}  # fmt: skip


def parse_signal(text: str) -> int:
    """A signal given as a number, a name, or a name without SIG (RTMIN+n too)."""
    raw = text.strip()
    if raw.isdigit():
        number = int(raw)
        if not 0 < number <= 64:
            raise InvalidArgument(f"invalid signal: {text}")
        return number
    name = raw.upper()
    if name.startswith("SIG"):
        name = name[3:]
    if name in SIGNALS:
        return SIGNALS[name]
    if name.startswith("RTMIN") or name.startswith("RTMAX"):
        base = 34 if name.startswith("RTMIN") else 64
        rest = name[5:]
        try:
            offset = int(rest) if rest else 0
        except ValueError:
            raise InvalidArgument(f"unknown signal {text!r}") from None
        number = base + offset
        if 34 <= number <= 64:
            return number
    raise InvalidArgument(f"unknown signal {text!r}")


def open_init(state: st.ContainerState) -> int:
    """A pidfd of the container's init, after proving the pid still names it (-1 if gone)."""
    if state.pid <= 0:
        return -1
    try:
        pidfd = os.pidfd_open(state.pid)
    except OSError:
        return -1
    # The pidfd pins the process; checking the start time after opening closes the race.
    if not state.alive():
        os.close(pidfd)
        return -1
    return pidfd


def start(root: str, container_id: str) -> st.ContainerState:
    state = st.ContainerState.load(root, container_id)
    start_state(state)
    return state


def start_state(state: st.ContainerState) -> None:
    """Start a loaded container: release its init, then run the poststart hooks."""
    status = state.status()
    if status == st.STOPPED:
        raise FailedPrecondition("cannot start a container that has stopped")
    if status != st.CREATED:
        raise FailedPrecondition(f"cannot start an already {status} container")
    release_init(state)
    try:
        hooks.run_hooks(
            "poststart", hooks.hooks_of(state.spec, "poststart"), state.oci_state(st.RUNNING)
        )
    except Exception as err:
        log.warning(f"poststart hook failed: {err}")


def release_init(state: st.ContainerState) -> None:
    """Open the exec fifo for reading: init's blocked open returns and it execs."""
    import select

    fd = os.open(state.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                data = os.read(fd, 16)
                if data:
                    break
            if not state.alive():
                raise FailedPrecondition("cannot start a container that has stopped")
    finally:
        os.close(fd)
    try:
        os.unlink(state.fifo)
    except FileNotFoundError:
        pass


def kill(
    root: str, container_id: str, signal: str = "SIGTERM", *, all_processes: bool = False
) -> None:
    sig = parse_signal(signal)
    state = st.ContainerState.load(root, container_id)
    status = state.status()
    if not st.can_kill(status):
        raise FailedPrecondition("container not running")
    if all_processes and state.cgroup:
        state.cgroup_manager().kill_all(sig)
        return
    signal_init(state, sig)


def signal_init(state: st.ContainerState, sig: int) -> None:
    pidfd = open_init(state)
    if pidfd < 0:
        raise FailedPrecondition("container not running")
    try:
        SYSCALLS.pidfd_send_signal(pidfd, sig)
    except OSError as err:
        raise FailedPrecondition(
            f"kill container init {state.pid} with signal {sig}: {err.strerror}"
        ) from None
    finally:
        os.close(pidfd)


def delete(root: str, container_id: str, *, force: bool = False) -> None:
    try:
        state = st.ContainerState.load(root, container_id)
    except Exception:
        if force:
            return
        raise
    delete_state(state, force=force)


def delete_state(state: st.ContainerState, *, force: bool = False) -> None:
    container_id = state.id
    status = state.status()
    if status in (st.RUNNING, st.PAUSED) and not force:
        raise FailedPrecondition(
            f"cannot delete container {container_id} that is not stopped: {status}"
        )
    if status != st.STOPPED:
        stop_everything(state, paused=status == st.PAUSED)
    destroy(state)


def stop_everything(state: st.ContainerState, *, paused: bool = False) -> None:
    """SIGKILL every process of the container and wait for init to be gone."""
    from skiff.runtime.create import wait_gone

    pidfd = open_init(state)
    manager = _manager(state)
    if manager is not None:
        try:
            manager.kill_all(9)
        except Exception as err:
            log.warning(f"kill container processes: {err}")
        if paused:
            try:
                manager.thaw()
            except Exception as err:
                log.warning(f"thaw container: {err}")
    if pidfd >= 0:
        try:
            SYSCALLS.pidfd_send_signal(pidfd, 9)
        except OSError:
            pass
        wait_gone(state.pid, pidfd, 5.0)
        os.close(pidfd)


def destroy(state: st.ContainerState) -> None:
    """Remove what the container left: cgroup, then poststop hooks, then the state dir."""
    manager = _manager(state)
    if manager is not None:
        try:
            manager.destroy()
        except Exception as err:
            log.warning(f"remove cgroup of {state.id}: {err}")
    try:
        hooks.run_hooks(
            "poststop", hooks.hooks_of(state.spec, "poststop"), state.oci_state(st.STOPPED)
        )
    except Exception as err:
        log.warning(f"poststop hook failed: {err}")
    st.remove_state_dir(state.dir)


def _manager(state: st.ContainerState) -> Any:
    if not state.cgroup:
        return None
    try:
        return state.cgroup_manager()
    except Exception as err:
        log.warning(f"load cgroup of {state.id}: {err}")
        return None


def pause(root: str, container_id: str) -> None:
    state = st.ContainerState.load(root, container_id)
    status = state.status()
    if status != st.RUNNING:
        raise FailedPrecondition("container not running")
    manager = _manager(state)
    if manager is None:
        raise FailedPrecondition(f"container {container_id} has no cgroup to freeze")
    manager.freeze()


def resume(root: str, container_id: str) -> None:
    state = st.ContainerState.load(root, container_id)
    status = state.status()
    if status != st.PAUSED:
        raise FailedPrecondition("container not paused")
    manager = _manager(state)
    if manager is None:
        raise FailedPrecondition(f"container {container_id} has no cgroup to thaw")
    manager.thaw()
