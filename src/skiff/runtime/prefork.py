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

This module imports nothing but `os` and the message channel: everything it saves is what
the main process would otherwise import before forking. Not even the C library binding: the
intermediate loads it while the main process, which for `run` needs it only to become a
child subreaper, finds that the installed command did that already.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.runtime.messages import Channel

# runc's global flags that take a value (cli.GLOBAL_FLAGS, which this must not import).
_GLOBAL_VALUE_FLAGS = frozenset(("root", "log", "log-format", "rootless", "criu"))

_pending: tuple[int, Channel] | None = None

# Set by the installed command (launcher.c) when it made this process a child subreaper.
SUBREAPER_ENV = "_SKIFF_RUNTIME_SUBREAPER"
_subreaper = False


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
    global _pending, _subreaper
    _subreaper = os.environ.pop(SUBREAPER_ENV, "") == "1"
    if _pending is not None or verb_of(argv) not in ("create", "run"):
        return
    import gc

    from skiff.runtime import messages

    # As cli.run_and_exit does, for both: no cycle collections (a full one costs ~1 ms) and
    # no copy-on-write faults from them.
    gc.disable()
    parent, child = messages.Channel.pair()
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            from skiff.runtime.intermediate import create_main

            create_main(child)
        finally:
            os._exit(1)
    child.close()
    _pending = (pid, parent)


def is_subreaper() -> bool:
    """Whether the installed command already made this process a child subreaper (`run`):
    then the main process needs no C library binding for it."""
    return _subreaper


def take() -> tuple[int, Channel] | None:
    """The intermediate forked early and the main process's end of its channel, once."""
    global _pending
    pending, _pending = _pending, None
    return pending


def discard() -> None:
    """An early intermediate nobody took (the command failed before `create`): end it."""
    pending = take()
    if pending is None:
        return
    pid, channel = pending
    channel.close()
    try:
        os.kill(pid, 9)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
