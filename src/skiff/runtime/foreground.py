"""Foreground `run` and `exec`: forward signals, proxy the pty, wait, and report the exit code.

The runtime is a child subreaper while it starts a foreground container, so the container
process becomes its child once the intermediate exits; it then waits for it directly. Exit
code: the process's own, or 128 + signal number when a signal killed it (as a shell does).
"""

from __future__ import annotations

import os

from skiff.linux.syscalls import SYSCALLS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

FORWARDED = (1, 2, 3, 10, 12, 13, 14, 15, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31)
SIGWINCH = 28


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 1


def wait(pid: int, pidfd: int, *, master: int | None = None) -> int:
    """Forward signals to `pid` until it exits; proxy `master` to our stdio if given."""
    import _signal

    def forward(signum: int, _frame: object) -> None:
        if master is not None and signum == SIGWINCH:
            from skiff.linux import pty

            pty.copy_winsize(0, master)
            return
        try:
            SYSCALLS.pidfd_send_signal(pidfd, signum)
        except OSError:
            pass

    previous: dict[int, object] = {}
    for signum in FORWARDED:
        try:
            previous[signum] = _signal.signal(signum, forward)
        except (OSError, ValueError):
            pass
    restore_tty = None
    from skiff.runtime import warmup

    warmup.reap_primer()  # stopped by now: no zombie while we wait
    try:
        if master is not None:
            from skiff.linux import pty

            restore_tty = _raw_stdin()
            pty.copy_winsize(0, master)
            pty.proxy(master, 0, 1, until_fd=pidfd)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return exit_code(status)
            except ChildProcessError:
                return _wait_not_child(pidfd)
    finally:
        if restore_tty is not None:
            restore_tty()
        for signum, handler in previous.items():
            try:
                _signal.signal(signum, handler)
            except (OSError, ValueError, TypeError):
                pass


def _wait_not_child(pidfd: int) -> int:
    """The process is not our child: its exit status cannot be collected; say so."""
    from skiff.errors import Internal

    raise Internal("foreground process is not a child of the runtime (subreaper not set)")


def _raw_stdin() -> Callable[[], None] | None:
    """Put stdin in raw mode when it is a terminal; returns a restore function or None."""
    if not os.isatty(0):
        return None
    import termios
    import tty

    saved = termios.tcgetattr(0)
    tty.setraw(0)

    def restore() -> None:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)

    return restore
