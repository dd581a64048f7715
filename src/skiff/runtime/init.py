"""The container's init process (pid 1 of its pid namespace), from fork to execve.

Meanwhile the main process makes the container's cgroup and moves init into it; init waits
for its word (CgroupJoined) before the first step that needs the cgroup (`CgroupJoin`).
1. new session; prestart/createRuntime hooks run by the main process (RunCreateHooks →
   HooksDone), then createContainer hooks here, in the container's namespaces;
2. hostname, domainname, oom_score_adj, rlimits;
3. the root filesystem (`skiff.runtime.rootfs.prepare_rootfs`: mounts, /dev, pivot_root);
4. the console: a pty opened through the container's own /dev/ptmx, its slave bound on
   /dev/console and made the controlling terminal and stdio, its master sent over
   --console-socket (or to the main process for `run` to proxy);
5. user, capabilities, cwd, no_new_privs, fds, seccomp (`skiff.runtime.process.finalize`);
6. Ready, then block opening the exec fifo for writing until `start` opens it for reading;
7. startContainer hooks, then a byte into the fifo (so `start` runs poststart after them),
   execve.
Failures before Ready go to the main process as Failed(reason); after it, to stderr.
"""

from __future__ import annotations

import os

from skiff.linux.syscalls import MS_BIND, SYSCALLS
from skiff.runtime import hooks, log, messages
from skiff.runtime.intermediate import describe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from skiff.runtime.context import StartContext


class CgroupJoin:
    """Init's side of the cgroup move: the main process makes the container's cgroup while
    init starts its setup, puts init in it from outside and says CgroupJoined. `wait()` comes
    before the first step that needs the cgroup — a cgroup mount (it shows init's own
    cgroup), the create hooks, Ready at the latest — and then unshares the new cgroup
    namespace, if any, whose root that cgroup must be (`late_flags`)."""

    __slots__ = ("channel", "done", "late_flags")

    def __init__(self, channel: messages.Channel, late_flags: int = 0) -> None:
        self.channel = channel
        self.late_flags = late_flags
        self.done = False

    def wait(self) -> None:
        if self.done:
            return
        self.channel.expect(messages.CGROUP_JOINED)
        if self.late_flags:
            SYSCALLS.unshare(self.late_flags)
        self.done = True
        log.trace("init in its cgroup")


def run(ctx: StartContext, cgroup: CgroupJoin) -> None:
    """The init process; never returns."""
    ready = False
    try:
        prepared = setup(ctx, cgroup)
        ready = True
        ctx.channel.send(messages.Message(messages.READY))
        state = {
            "ociVersion": ctx.spec.get("ociVersion"),
            "id": ctx.container_id,
            "pid": os.getpid(),
            "status": "created",
            "bundle": ctx.bundle,
            "rootfs": ctx.rootfs,
            "annotations": ctx.spec.get("annotations") or {},
        }
        start_hooks = hooks.hooks_of(ctx.spec, "startContainer")
        wait_for_start(ctx.fifo_fd, lambda: hooks.run_hooks("startContainer", start_hooks, state))
        prepared.exec_()
    except BaseException as err:
        reason = describe(err)
        if not ready:
            try:
                ctx.channel.send(messages.Message(messages.FAILED, reason=reason))
            except OSError:
                pass
        else:
            try:
                os.write(2, f"skiff-runtime: container init: {reason}\n".encode())
            except OSError:
                pass
    finally:
        os._exit(127 if ready else 1)


def preload() -> None:
    """Import what every init needs (in the intermediate, while the main process validates
    and makes the cgroup). What only some configs need (seccomp, pty, hooks) is imported by
    `setup` before pivot_root: after it the host's Python library is out of reach."""
    import skiff.runtime.rootfs
    from skiff.linux.syscalls import libc
    from skiff.runtime import context
    from skiff.runtime import process as proc

    _ = skiff.runtime.rootfs, context  # the Start message becomes a StartContext
    libc()  # load the C library now, not on the first unshare
    proc.preload({}, seccomp=False, hooks=False)


def setup(ctx: StartContext, cgroup: CgroupJoin) -> Any:
    from skiff.runtime import process as proc

    spec = ctx.spec
    p = ctx.process
    os.setsid()
    log.trace("init started")
    create_hooks = hooks.hooks_of(spec, "prestart") + hooks.hooks_of(spec, "createRuntime")
    container_hooks = hooks.hooks_of(spec, "createContainer")
    host_pid = 0
    if create_hooks or container_hooks:
        ctx.channel.send(messages.Message(messages.RUN_CREATE_HOOKS))
        cgroup.wait()  # the hooks see the container in its cgroup; CgroupJoined comes first
        host_pid = ctx.channel.expect(messages.HOOKS_DONE).pid
    if container_hooks:
        state = {
            "ociVersion": spec.get("ociVersion"),
            "id": ctx.container_id,
            "pid": host_pid,
            "status": "creating",
            "bundle": ctx.bundle,
            "rootfs": ctx.rootfs,
            "annotations": spec.get("annotations") or {},
        }
        hooks.run_hooks("createContainer", container_hooks, state)
    if ctx.new_keyring:
        join_keyring(ctx.container_id)
    if spec.get("hostname"):
        SYSCALLS.sethostname(spec["hostname"])
    if spec.get("domainname"):
        SYSCALLS.setdomainname(spec["domainname"])
    proc.write_oom_score_adj(p.get("oomScoreAdj"))
    proc.apply_rlimits(p.get("rlimits") or ())
    from skiff.runtime.rootfs import prepare_rootfs

    proc.preload(
        p, seccomp=ctx.seccomp is not None, hooks=bool(hooks.hooks_of(spec, "startContainer"))
    )
    prepare_rootfs(spec, ctx.bundle, before_cgroup_mount=cgroup.wait)
    log.trace("rootfs done")
    cgroup.wait()
    if p.get("terminal"):
        setup_console(ctx)
    setgroups_allowed = True
    try:
        with open("/proc/self/setgroups") as f:
            setgroups_allowed = f.read().strip() != "deny"
    except OSError:
        pass
    return proc.finalize(
        p,
        seccomp=ctx.seccomp,
        seccomp_flags=ctx.seccomp_flags,
        preserve_fds=ctx.preserve_fds,
        setgroups_allowed=setgroups_allowed,
    )


def join_keyring(container_id: str) -> None:
    """A session keyring of the container's own (runc's default; --no-new-keyring skips it),
    so keys of the caller's session are not reachable. Kernels without keyrings (ENOSYS)
    or sandboxes that forbid keyctl (EACCES, EPERM) leave the session as it is, as runc."""
    try:
        SYSCALLS.join_session_keyring(f"_ses.{container_id}")
    except OSError as err:
        if err.errno not in (38, 13, 1):
            raise


def setup_console(ctx: StartContext) -> None:
    """Open a pty in the container's devpts, bind its slave on /dev/console, hand the master
    over, and make the slave our controlling terminal and stdio."""
    from skiff.linux import pty

    pair = pty.open_pty("/dev/ptmx")
    try:
        bind_console(pair.slave_path)
        size = ctx.process.get("consoleSize")
        if size:
            import fcntl
            import struct

            fcntl.ioctl(
                pair.slave,
                pty.TIOCSWINSZ,
                struct.pack("HHHH", int(size["height"]), int(size["width"]), 0, 0),
            )
        if ctx.console_socket is not None:
            pty.send_fd_on(ctx.console_socket, pair.master)
            os.close(ctx.console_socket)
        else:
            ctx.channel.send(messages.Message(messages.CONSOLE), fd=pair.master)
        pty.make_controlling_terminal(pair.slave)
    finally:
        pair.close()


def bind_console(slave_path: str) -> None:
    """Bind the pty slave over /dev/console (created when missing, as runc does)."""
    try:
        if not os.path.lexists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        elif os.path.islink("/dev/console"):
            return  # never follow a link planted in the image
        SYSCALLS.mount(slave_path, "/dev/console", None, MS_BIND)
    except OSError as err:
        if err.errno not in (30, 2):  # a read-only /dev: the console stays unbound
            raise


def wait_for_start(fifo_fd: int, started: Callable[[], None]) -> None:
    """Block until `start` opens the exec fifo for reading; run `started` (the
    startContainer hooks), then tell `start` we are going: its poststart hooks come after."""
    try:
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as err:
        raise OSError(err.errno, f"open exec fifo (is /proc mounted?): {err.strerror}")
    try:
        started()
        os.write(fd, b"0")
    finally:
        os.close(fd)
    os.close(fifo_fd)
