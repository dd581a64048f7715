"""`exec`: run another process inside a created or running container.

The same three-process shape as create: the main process forks an intermediate that joins
the container's cgroup and namespaces (/proc/<init>/ns/*, user first), which forks the new
process so it lands in the container's pid namespace. That process opens its pty through the
container's /dev/ptmx, applies user/capabilities/seccomp exactly as init does, reports Ready
and execs. Without --detach the runtime (a subreaper) waits and exits with its code.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux import namespaces as ns
from skiff.linux.syscalls import PR_SET_CHILD_SUBREAPER, SYSCALLS
from skiff.runtime import config, messages, warmup
from skiff.runtime import state as st

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ExecOptions:
    __slots__ = ("console_socket", "detach", "pid_file", "preserve_fds")

    def __init__(
        self,
        *,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        preserve_fds: int = 0,
    ) -> None:
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds


def load_process_file(path: str) -> dict[str, Any]:
    from skiff.runtime import jsonio

    try:
        with open(path, "rb") as f:
            process = jsonio.loads(f.read())
    except OSError as err:
        raise InvalidArgument(f"exec --process {path}: {err.strerror}") from None
    except ValueError as err:
        raise InvalidArgument(f"exec --process {path}: malformed JSON: {err}") from None
    if not isinstance(process, dict):
        raise InvalidArgument(f"exec --process {path}: must be a JSON object")
    return process


def process_from_flags(
    base: dict[str, Any],
    args: list[str],
    *,
    tty: bool = False,
    cwd: str | None = None,
    env: list[str] | None = None,
    user: str | None = None,
    caps: list[str] | None = None,
    no_new_privs: bool = False,
) -> dict[str, Any]:
    """The container's process object with exec's flags applied (as runc builds it)."""
    import copy

    process = copy.deepcopy(base)
    process["args"] = list(args)
    process["terminal"] = tty
    if cwd:
        process["cwd"] = cwd
    if env:
        process["env"] = list(process.get("env") or []) + list(env)
    if user:
        uid_text, _, gid_text = user.partition(":")
        try:
            u = dict(process.get("user") or {})
            u["uid"] = int(uid_text)
            if gid_text:
                u["gid"] = int(gid_text)
            process["user"] = u
        except ValueError:
            raise InvalidArgument(f"exec --user {user!r}: want uid[:gid] as numbers") from None
    if caps:
        sets = dict(process.get("capabilities") or {})
        for kind in ("bounding", "effective", "permitted"):
            sets[kind] = list(sets.get(kind) or []) + list(caps)
        if sets.get("inheritable") is not None:
            sets["ambient"] = list(sets.get("ambient") or []) + list(caps)
        process["capabilities"] = sets
    if no_new_privs:
        process["noNewPrivileges"] = True
    return process


def join_plan(state: st.ContainerState) -> Any:
    """Every namespace of the container's config, joined through its init's /proc entries."""
    from skiff.runtime.intermediate import NamespacePlan

    entries = []
    for entry in config.namespaces(state.spec):
        kind = entry["type"]
        path = f"/proc/{state.pid}/ns/{ns.proc_name(kind)}"
        if kind == "user" and ns.same_namespace("self", state.pid, "user"):
            continue
        entries.append({"type": kind, "path": path})
    return NamespacePlan(ns.to_join(entries), False, 0)


def exec_process(root: str, container_id: str, process: dict[str, Any], opts: ExecOptions) -> int:
    state = st.ContainerState.load(root, container_id)
    status = state.status()
    if status == st.STOPPED:
        raise FailedPrecondition("cannot exec in a stopped container")
    if status == st.PAUSED:
        raise FailedPrecondition("cannot exec in a paused container")
    config.validate_process(process, "process.")
    terminal = bool(process.get("terminal"))
    if terminal and opts.detach and not opts.console_socket:
        raise InvalidArgument(
            "cannot allocate tty if skiff-runtime will detach without setting console socket"
        )
    if opts.console_socket and not terminal:
        raise InvalidArgument("cannot use --console-socket if the process has no terminal (-t)")
    from skiff.runtime.create import compile_seccomp, reap, wait_gone, write_pid_file

    seccomp_program, seccomp_flags = compile_seccomp(state.spec)
    from skiff.runtime import process as proc

    proc.preload(process, seccomp=seccomp_program is not None)
    from skiff.runtime.lifecycle import _manager, open_init

    init_pidfd = open_init(state)
    if init_pidfd < 0:
        raise FailedPrecondition("cannot exec in a stopped container")
    plan = join_plan(state)
    console_fd: int | None = None
    if opts.console_socket:
        from skiff.linux import pty

        console_fd = pty.connect(opts.console_socket)
    manager = _manager(state)
    parent, child = messages.Channel.pair()
    pid = 0
    pidfd = -1
    master: int | None = None
    try:
        if not opts.detach:
            SYSCALLS.prctl(PR_SET_CHILD_SUBREAPER, 1)
        intermediate_pid = os.fork()
        if intermediate_pid == 0:
            from skiff.runtime import intermediate

            try:
                parent.close()
                warmup.forget_primer()
                intermediate.run(
                    plan,
                    child,
                    lambda: exec_child(
                        child, process, console_fd, opts, seccomp_program, seccomp_flags
                    ),
                    cgroup=manager,
                )
            finally:
                os._exit(1)
        child.close()
        child = None  # type: ignore[assignment]
        if console_fd is not None:
            os.close(console_fd)
            console_fd = None
        try:
            while True:
                try:
                    msg, fd = parent.recv()
                except messages.ChannelClosed:
                    raise FailedPrecondition("exec: process died before it was ready") from None
                warmup.stop_priming()  # the intermediate has joined the cgroup
                if msg.kind == messages.INIT_PID:
                    pid = msg.pid
                    pidfd = os.pidfd_open(pid)
                elif msg.kind == messages.CONSOLE:
                    master = fd
                elif msg.kind == messages.READY:
                    break
                elif msg.kind == messages.FAILED:
                    raise FailedPrecondition(f"exec failed: {msg.reason}")
                if fd is not None and msg.kind != messages.CONSOLE:
                    os.close(fd)
        finally:
            reap(intermediate_pid)
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        if opts.detach:
            # The process execs when this one is gone: a duplicate of our end of the channel,
            # closed only by the kernel at our exit, is what it waits for. Whoever reads the
            # pid file after we exit (conmon, the shim) then always knows the pid before the
            # process can exit.
            os.dup(parent.fileno())
            return 0
        from skiff.runtime import foreground

        return foreground.wait(pid, pidfd, master=master)
    except BaseException:
        if pidfd >= 0:
            try:
                SYSCALLS.pidfd_send_signal(pidfd, 9)
            except OSError:
                pass
            wait_gone(pid, pidfd, 2.0)
        raise
    finally:
        os.close(init_pidfd)
        if pidfd >= 0:
            os.close(pidfd)
        if master is not None:
            os.close(master)
        if console_fd is not None:
            os.close(console_fd)
        parent.close()
        if child is not None:
            child.close()


def exec_child(
    channel: messages.Channel,
    process: dict[str, Any],
    console_fd: int | None,
    opts: ExecOptions,
    seccomp_program: bytes | None,
    seccomp_flags: int,
) -> None:
    """The exec'd process, inside the container; never returns."""
    from skiff.runtime import process as proc
    from skiff.runtime.intermediate import describe

    ready = False
    try:
        if process.get("terminal"):
            from skiff.linux import pty

            os.setsid()
            pair = pty.open_pty("/dev/ptmx")
            try:
                if console_fd is not None:
                    pty.send_fd_on(console_fd, pair.master)
                    os.close(console_fd)
                else:
                    channel.send(messages.Message(messages.CONSOLE), fd=pair.master)
                pty.make_controlling_terminal(pair.slave)
            finally:
                pair.close()
        proc.apply_rlimits(process.get("rlimits") or ())
        setgroups_allowed = True
        try:
            with open("/proc/self/setgroups") as f:
                setgroups_allowed = f.read().strip() != "deny"
        except OSError:
            pass
        prepared = proc.finalize(
            process,
            seccomp=seccomp_program,
            seccomp_flags=seccomp_flags,
            preserve_fds=opts.preserve_fds,
            setgroups_allowed=setgroups_allowed,
        )
        channel.send(messages.Message(messages.READY))
        ready = True
        if opts.detach:
            try:
                channel.recv()
            except messages.ChannelClosed:
                pass
        prepared.exec_()
    except BaseException as err:
        reason = describe(err)
        try:
            if not ready:
                channel.send(messages.Message(messages.FAILED, reason=reason))
            else:
                os.write(2, f"skiff-runtime exec: {reason}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(127 if ready else 1)
