"""The last steps before a container process execs, shared by init and `exec`.

Order (runc's finalizeNamespace + standard init): rlimits, oom score, user (groups, gid,
KEEPCAPS, uid), capabilities, umask, cwd (checked to be inside the container:
CVE-2024-21626), no_new_privs, every fd above stdio + preserved marked close-on-exec
(no runtime or host fd reaches the container: CVE-2019-5736, CVE-2024-21626), seccomp last
(first, before dropping privileges, when no_new_privs is off: loading a filter then needs
CAP_SYS_ADMIN). The program is resolved in the container's PATH before anyone is told the
process is ready, so a missing binary fails `create`/`exec`, not `start`.
"""

from __future__ import annotations

import os

from skiff.errors import FailedPrecondition, NotFound
from skiff.linux.syscalls import (
    CLOSE_RANGE_CLOEXEC,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    SYSCALLS,
    Syscalls,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_of(process: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env") or ():
        key, _, value = item.partition("=")
        env[key] = value
    return env


def look_path(program: str, env: Mapping[str, str]) -> str:
    """Resolve `program` like runc (Go's exec.LookPath) in the current root, with the
    process's PATH: the result is a regular file with an execute bit. The messages are runc's,
    which docker maps to exit 127 (not found) and 126 (permission denied)."""
    import stat

    if "/" in program:
        try:
            st = os.stat(program)
        except OSError as err:
            raise NotFound(
                f'exec: "{program}": stat {program}: {(err.strerror or "").lower()}'
            ) from None
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            raise FailedPrecondition(f'exec: "{program}": permission denied')
        return program
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", program)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise NotFound(f'exec: "{program}": executable file not found in $PATH')


def apply_rlimits(rlimits: Sequence[Mapping[str, Any]], *, sys: Syscalls = SYSCALLS) -> None:
    from skiff.linux.syscalls import RLIMITS

    for rl in rlimits:
        kind = rl["type"]
        try:
            sys.setrlimit(RLIMITS[kind], int(rl["soft"]), int(rl["hard"]))
        except OSError as err:
            raise FailedPrecondition(
                f"setrlimit {kind} soft={rl['soft']} hard={rl['hard']}: {os.strerror(err.errno or 0)}"
            ) from None


def write_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as err:
        raise FailedPrecondition(f"write oom_score_adj {value}: {err.strerror}")


def set_user(
    user: Mapping[str, Any], *, sys: Syscalls = SYSCALLS, setgroups_allowed: bool = True
) -> None:
    """Supplementary groups, gid, uid (keeping capabilities across the uid change)."""
    uid = int(user.get("uid", 0))
    gid = int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or ()]
    if setgroups_allowed:
        try:
            sys.setgroups(groups)
        except OSError as err:
            raise FailedPrecondition(f"setgroups {groups}: {err.strerror}")
    try:
        sys.setresgid(gid, gid, gid)
    except OSError as err:
        raise FailedPrecondition(f"setgid {gid}: {err.strerror}")
    sys.prctl(PR_SET_KEEPCAPS, 1)
    try:
        sys.setresuid(uid, uid, uid)
    except OSError as err:
        raise FailedPrecondition(f"setuid {uid}: {err.strerror}")


def set_capabilities(caps: Mapping[str, Sequence[str]] | None) -> None:
    from skiff.linux import capabilities

    capabilities.apply(ambient_raisable(caps))


def ambient_raisable(
    caps: Mapping[str, Sequence[str]] | None,
) -> Mapping[str, Sequence[str]] | None:
    """Drop ambient capabilities the kernel cannot raise (not both permitted and inheritable):
    runc skips them with a warning; raising them fails with EPERM."""
    if not caps or not caps.get("ambient"):
        return caps
    allowed = set(caps.get("permitted") or ()) & set(caps.get("inheritable") or ())
    out = dict(caps)
    out["ambient"] = [c for c in caps["ambient"] if c in allowed]
    return out


def change_dir(cwd: str) -> None:
    """chdir to the process cwd and prove it is inside the container's root."""
    try:
        os.chdir(cwd)
    except OSError as err:
        raise FailedPrecondition(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {err.strerror}"
        )
    here = os.getcwd()
    # A cwd outside the root (an inherited host directory fd, CVE-2024-21626) reads as
    # "(unreachable)/…" from getcwd.
    if not here.startswith("/"):
        raise FailedPrecondition(f"cwd {here!r} is outside the container root")


def close_fds(keep_above: int, *, sys: Syscalls = SYSCALLS) -> None:
    """Mark every fd >= keep_above close-on-exec (stdio + preserved fds stay open)."""
    try:
        sys.close_range(keep_above, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)
    except OSError:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= keep_above:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


def preload(process: Mapping[str, Any], *, seccomp: bool, hooks: bool = False) -> None:
    """Import now every module the steps after pivot_root/setns(mnt) need: from then on the
    host's Python library is out of reach."""
    names = ["skiff.linux.capabilities", "resource"]
    if seccomp:
        names.append("skiff.linux.seccomp")
    if process.get("terminal"):
        names += ["skiff.linux.pty", "fcntl", "struct"]
    if hooks:
        names += ["select", "time"]
    for name in names:
        __import__(name)  # importlib costs an import of its own


class Prepared:
    """A process that has been set up and only needs `exec_()`: path, argv, env."""

    __slots__ = ("argv", "env", "path")

    def __init__(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        self.path = path
        self.argv = argv
        self.env = env

    def exec_(self) -> None:
        os.execve(self.path, self.argv, self.env)


def finalize(
    process: Mapping[str, Any],
    *,
    seccomp: bytes | None,
    seccomp_flags: int = 0,
    preserve_fds: int = 0,
    setgroups_allowed: bool = True,
    sys: Syscalls = SYSCALLS,
) -> Prepared:
    """Apply every process attribute; returns what to exec. Runs inside the container root."""
    env = env_of(process)
    if "PATH" not in env:
        env["PATH"] = DEFAULT_PATH
    if "HOME" not in env:
        env["HOME"] = _home_of(int((process.get("user") or {}).get("uid", 0)))
    args = list(process["args"])
    path = look_path(args[0], env)
    no_new_privs = bool(process.get("noNewPrivileges"))
    if seccomp and not no_new_privs:
        _install_seccomp(seccomp, seccomp_flags)
    user = process.get("user") or {}
    set_user(user, sys=sys, setgroups_allowed=setgroups_allowed)
    set_capabilities(process.get("capabilities"))
    if user.get("umask") is not None:
        os.umask(int(user["umask"]))
    change_dir(process.get("cwd") or "/")
    if no_new_privs:
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    close_fds(3 + preserve_fds, sys=sys)
    if seccomp and no_new_privs:
        _install_seccomp(seccomp, seccomp_flags)
    return Prepared(path, args, env)


def _install_seccomp(program: bytes, flags: int) -> None:
    from skiff.linux import seccomp

    seccomp.install(program, flags)


def _home_of(uid: int) -> str:
    """HOME from the container's /etc/passwd, "/" when the user is not listed (as runc)."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"
