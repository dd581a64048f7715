"""The intermediate, forked before the CLI is even imported (`create` and `run`).

A container start is mostly Python imports: the main process's (the CLI, config.json's
validation, the state, the cgroups) and the intermediate's (the mounts, the process setup)
are about the same size. Forked as soon as the interpreter is up, the intermediate imports
its half on the second core while the main process imports its own, instead of after it.
(A second interpreter started by the launcher beside the first was tried: on two cores it
was no faster, both start-ups competing for the CPU, and the fork shares this one's.)
The installed command calls `fork_early` first thing; `create` then takes the child over
(`take`). Until the Start message the child only imports and waits: if the main process
refuses the command line or the config, the child sees end-of-stream and exits, and
`discard` (the CLI's exit path) reaps it.

The child is forked into a new pid namespace of which it is pid 1 (unshare(CLONE_NEWPID)
moves only the children; the installed command does it before the interpreter starts, and
this process's later children, if any, go back to its own namespace: `children_back_home`).
When config.json asks for a new pid namespace and nothing that must precede it (a user
namespace) or that only children enter (a time namespace), this "pre-init" enters the other
namespaces itself and becomes the container's init: no intermediate, one Python fork less
on the way to the container. Otherwise `create` dismisses it and forks an intermediate.

This module imports nothing but `os` and the message channel: everything it saves is what
the main process would otherwise import before forking. Not even the C library binding: the
intermediate loads it while the main process, which for `run` needs it only to become a
child subreaper and to make the pid namespace, finds that the installed command did both.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.runtime.messages import Channel

# runc's global flags that take a value (cli.GLOBAL_FLAGS, which this must not import).
_GLOBAL_VALUE_FLAGS = frozenset(("root", "log", "log-format", "rootless", "criu"))

# (pid, main process's end of the channel, whether it is a pre-init: pid 1 of a new pid
# namespace, which becomes the container's init itself when the config allows)
_pending: tuple[int, Channel, bool] | None = None

# Set by the installed command (launcher.c) when it made this process a child subreaper.
SUBREAPER_ENV = "_SKIFF_RUNTIME_SUBREAPER"
_subreaper = False
# Set by the installed command when it unshared the pid namespace for our children: an fd of
# our own pid namespace, to send later children back to (`children_back_home`).
HOME_PIDNS_ENV = "_SKIFF_RUNTIME_HOME_PIDNS"
_home_pidns = -1


def verb_of(argv: list[str]) -> str | None:
    """The verb of a runc-style command line (the first argument that is not a global flag
    or its value), or None."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not arg.startswith("-") or arg == "-":
            return arg
        name = arg.lstrip("-")
        if "=" not in name and name in _GLOBAL_VALUE_FLAGS:
            i += 1
        i += 1
    return None


def fork_early(argv: list[str]) -> None:
    """For `create` and `run`: fork the intermediate now (see the module docstring)."""
    global _pending, _subreaper, _home_pidns
    _subreaper = os.environ.pop(SUBREAPER_ENV, "") == "1"
    home = _launcher_home_pidns()
    if _pending is not None or verb_of(argv) not in ("create", "run"):
        _home_pidns = home
        children_back_home()
        return
    import gc

    from skiff.runtime import messages

    # As cli.run_and_exit does, for both: no cycle collections (a full one costs ~1 ms) and
    # no copy-on-write faults from them.
    gc.disable()
    parent, child = messages.Channel.pair()
    ours = home < 0  # the launcher did not make the namespace: do it here
    if ours:
        home = _new_pid_namespace_for_children()
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            if home >= 0:
                os.close(home)
            from skiff.runtime import warmup
            from skiff.runtime.intermediate import create_main

            warmup.forget_primer()
            create_main(child, pre_init=home >= 0)
        finally:
            os._exit(1)
    child.close()
    _home_pidns = home
    _pending = (pid, parent, home >= 0)
    if ours:
        # The C library is loaded already, and a thread (the priming, without the launcher)
        # can only be made once our children's pid namespace is our own again.
        children_back_home()


def children_back_home() -> None:
    """Before this process forks anything else after the pre-init (a hook, an intermediate):
    its children go to its own pid namespace again, not to the pre-init's. Not done at once:
    it needs the C library, which the main process of a plain `run` never loads otherwise."""
    global _home_pidns
    if _home_pidns < 0:
        return
    home, _home_pidns = _home_pidns, -1
    from skiff.linux.syscalls import CLONE_NEWPID, SYSCALLS

    try:
        SYSCALLS.setns(home, CLONE_NEWPID)
    finally:
        os.close(home)


def _launcher_home_pidns() -> int:
    """The installed command (launcher.c) unshared the pid namespace for our children already
    and left an fd of its own in HOME_PIDNS_ENV: take it (close-on-exec from now on)."""
    raw = os.environ.pop(HOME_PIDNS_ENV, "")
    if not raw.isdigit():
        return -1
    fd = int(raw)
    try:
        os.set_inheritable(fd, False)
    except OSError:
        return -1
    return fd


def _new_pid_namespace_for_children() -> int:
    """unshare(CLONE_NEWPID): the next child is pid 1 of a new pid namespace (this process
    stays where it is). Returns an fd of our own pid namespace, to set our children's back
    with, or -1 when it could not be done (the early child is then a plain intermediate)."""
    from skiff.linux.syscalls import CLONE_NEWPID, SYSCALLS

    try:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        SYSCALLS.unshare(CLONE_NEWPID)
    except OSError:
        os.close(own)
        return -1
    return own


def is_subreaper() -> bool:
    """Whether the installed command already made this process a child subreaper (`run`):
    then the main process needs no C library binding for it."""
    return _subreaper


def take() -> tuple[int, Channel, bool] | None:
    """The process forked early, the main process's end of its channel, and whether it is a
    pre-init (pid 1 of a new pid namespace); once."""
    global _pending
    pending, _pending = _pending, None
    return pending


def discard() -> None:
    """An early child nobody took (the command failed before `create`): end it."""
    pending = take()
    if pending is not None:
        _end(pending[0], pending[1])


def _end(pid: int, channel: Channel) -> None:
    channel.close()
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
