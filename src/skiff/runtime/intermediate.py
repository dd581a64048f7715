"""The intermediate process: enter the cgroup and the namespaces, then fork the container process.

Runs in the child of the main process and never returns (os._exit). For `create` it starts
in `create_main`: import what init needs, wait for the Start message, go on with step 2
(the main process puts init into the container's cgroup, and init unshares a new cgroup
namespace itself: see `create_main`). For `exec`:
1. join the cgroup, always before unsharing the cgroup namespace, whose root the cgroup
   becomes;
2. setns into every namespace given by path (user first);
3. unshare a new user namespace and ask the main process to write its id maps, then become
   root in it;
4. unshare every other new namespace, set `lo` up in a new network namespace (as runc),
   write time offsets;
5. fork: the child is pid 1 of the new pid namespace (init, or the `exec`ed process); it
   starts only once step 6 is done, so the main process always knows its pid first;
6. send its pid to the main process, let the child go, and exit.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, SkiffError
from skiff.linux import namespaces as ns
from skiff.linux.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWNET,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    SYSCALLS,
    Syscalls,
)
from skiff.runtime import log, loopback, messages

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from skiff.runtime.messages import Channel


class NamespacePlan:
    """Which namespaces to join (type, path) and which to create (flags), plus id-map needs."""

    __slots__ = ("join", "new_user", "time_offsets", "unshare_flags")

    def __init__(
        self,
        join: Sequence[tuple[str, str]],
        new_user: bool,
        unshare_flags: int,
        time_offsets: Mapping[str, Any] | None = None,
    ) -> None:
        self.join = list(join)
        self.new_user = new_user
        self.unshare_flags = unshare_flags
        self.time_offsets = time_offsets

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> NamespacePlan:
        linux = spec.get("linux") or {}
        entries = list(linux.get("namespaces") or [])
        new_user = any(e["type"] == "user" and not e.get("path") for e in entries)
        return cls(
            ns.to_join(entries),
            new_user,
            ns.unshare_flags(entries, exclude="user"),
            linux.get("timeOffsets"),
        )


def enter(
    plan: NamespacePlan,
    channel: Channel,
    *,
    cgroup: Any = None,
    sys: Syscalls = SYSCALLS,
    lo_up: Callable[[], None] = loopback.set_up,
) -> None:
    """Steps 1-4 in the calling process."""
    if cgroup is not None:
        cgroup.add_process(os.getpid())
    log.trace("intermediate entering namespaces")
    ns.join(plan.join, sys=sys)
    if plan.new_user:
        sys.unshare(CLONE_NEWUSER)
        channel.send(messages.Message(messages.USERNS_UNSHARED, pid=os.getpid()))
        channel.expect(messages.USERNS_MAPPED)
        become_root(sys)
    if plan.unshare_flags:
        sys.unshare(plan.unshare_flags)
        if plan.unshare_flags & CLONE_NEWNET:
            lo_up()
    log.trace("intermediate unshared")
    if plan.time_offsets:
        ns.write_time_offsets(plan.time_offsets)


def become_root(sys: Syscalls = SYSCALLS) -> None:
    """Become uid/gid 0 of the (just mapped) user namespace, when 0 is mapped."""
    for setter in (sys.setresgid, sys.setresuid):
        try:
            setter(0, 0, 0)
        except OSError as err:
            if err.errno != 22:  # EINVAL: 0 is not mapped; stay as we are
                raise


def run(
    plan: NamespacePlan,
    channel: Channel,
    child: Callable[[], None],
    *,
    cgroup: Any = None,
) -> None:
    """The whole intermediate process. `child` is the container process's main; never returns."""
    code = 1
    try:
        enter(plan, channel, cgroup=cgroup)
        # The child waits for a byte on this pipe, written once its pid is on the channel:
        # the main process must learn the pid before anything the child says (Ready, …).
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(go_w)
                if os.read(go_r, 1) != b"1":  # the intermediate failed: say nothing
                    os._exit(1)
                os.close(go_r)
                child()
            finally:
                os._exit(1)
        os.close(go_r)
        try:
            channel.send(messages.Message(messages.INIT_PID, pid=pid))
            os.write(go_w, b"1")
        finally:
            os.close(go_w)
        code = 0
    except messages.ChildFailed:
        code = 1
    except BaseException as err:  # report every failure to the main process, then exit
        try:
            channel.send(messages.Message(messages.FAILED, reason=describe(err)))
        except OSError:
            pass
    finally:
        os._exit(code)


def describe(err: BaseException) -> str:
    """A user-facing one-line reason for an exception raised in a child process."""
    if isinstance(err, SkiffError):
        return err.message
    if isinstance(err, OSError):
        what = err.strerror or str(err)
        return f"{what}" + (f": {err.filename}" if err.filename else "")
    return f"{type(err).__name__}: {err}"


# --- create: the intermediate before it knows the container ------------------------------------


def create_main(channel: Channel, *, pre_init: bool = False) -> None:
    """`create`'s intermediate: preload, wait for Start, enter the namespaces, fork init.

    It does not wait for the container's cgroup: the main process makes it meanwhile and
    moves init into it from outside, and init waits for that before anything needs it
    (init.CgroupJoin). A new cgroup namespace, whose root must be that cgroup, is therefore
    unshared by init, after the move, not here.

    `pre_init`: this process is pid 1 of the container's new pid namespace already (forked
    early, see prefork.py); it enters the other namespaces and becomes init itself. Start
    only comes when the config suits that; the main process closes the channel otherwise."""
    from skiff.runtime import init

    try:
        init.preload()
        log.trace("intermediate preloaded")
        try:
            msg, fds = channel.recv_fds()
        except messages.ChannelClosed:
            os._exit(0)  # the main process refused the command or the config: nothing to do
        if msg.kind != messages.START or not msg.data:
            raise FailedPrecondition(f"runtime protocol: expected start, got {msg.kind}")
        if msg.data.get("log"):
            log.configure(*msg.data["log"])
        from skiff.runtime.context import StartContext

        ctx = StartContext.from_data(msg.data, fds, channel)
        plan = NamespacePlan.from_spec(ctx.spec)
        late_flags = plan.unshare_flags & CLONE_NEWCGROUP
        plan.unshare_flags &= ~CLONE_NEWCGROUP
        if pre_init:
            plan.unshare_flags &= ~CLONE_NEWPID  # we are its pid 1 already
            enter(plan, channel)
    except BaseException as err:
        try:
            channel.send(messages.Message(messages.FAILED, reason=describe(err)))
        finally:
            os._exit(1)
    if pre_init:
        init.run(ctx, init.CgroupJoin(channel, late_flags))
    run(plan, channel, lambda: init.run(ctx, init.CgroupJoin(channel, late_flags)))
