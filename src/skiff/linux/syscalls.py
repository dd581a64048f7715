"""Every raw Linux syscall skiff makes that the `os` module lacks, in one place.

`Syscalls` calls libc through ctypes' C core (skiff.linux.cdata) and raises `OSError` (errno, strerror, argument) exactly as
`os` functions do, so callers map errors the same way. `RecordingSyscalls` has the same surface
but records each call instead of making it, so unit tests can assert an exact sequence
(unshare → setns → mount …) without root. Code that takes a `Syscalls` defaults to `SYSCALLS`.

The C library is loaded once, on first use: the runtime's hot path pays for it only when it
needs it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing costs 2 ms to import; every container start pays for imports
if TYPE_CHECKING:
    from typing import Any

    from skiff.linux import cdata

# clone(2)/unshare(2)/setns(2) flags.
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

# umount2(2) flags.
MNT_FORCE = 0x1
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# close_range(2) flags.
# setrlimit(2) resources by the names config.json uses.
RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

CLOSE_RANGE_CLOEXEC = 1 << 2

# keyctl(2).
KEYCTL_JOIN_SESSION_KEYRING = 1

# seccomp(2).
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1

_SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "pivot_root": 155,
        "keyctl": 250,
        "capget": 125,
        "capset": 126,
        "seccomp": 317,
        "pidfd_send_signal": 424,
        "pidfd_open": 434,
        "close_range": 436,
    },
    "aarch64": {
        "pivot_root": 41,
        "keyctl": 219,
        "capget": 90,
        "capset": 91,
        "seccomp": 277,
        "pidfd_send_signal": 424,
        "pidfd_open": 434,
        "close_range": 436,
    },
}


def syscall_number(name: str) -> int:
    """The number of syscall `name` on this machine's architecture."""
    machine = os.uname().machine
    try:
        return _SYSCALL_NUMBERS[machine][name]
    except KeyError:
        raise OSError(38, f"syscall {name} unknown on architecture {machine}") from None


_libc: cdata.CDLL | None = None


def libc() -> cdata.CDLL:
    """The C library, loaded with errno capture on first use; skiff's one handle on it."""
    global _libc
    if _libc is None:
        from skiff.linux import cdata

        handle = cdata.CDLL(None, use_errno=True)
        char_p = cdata.c_char_p
        handle.mount.argtypes = [char_p, char_p, char_p, cdata.c_ulong, char_p]
        handle.umount2.argtypes = [char_p, cdata.c_int]
        _libc = handle
    return _libc


def check_call(result: int, what: str, arg: object = None) -> int:
    """`result` of a libc call, or OSError(errno, "what: strerror", arg) when it is negative."""
    if result < 0:
        from skiff.linux import cdata

        err = cdata.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", None if arg is None else str(arg))
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else os.fsencode(value)


class Syscalls:
    """The real syscalls. Methods raise OSError naming the syscall and its argument."""

    def unshare(self, flags: int) -> None:
        check_call(libc().unshare(flags), "unshare", hex(flags))

    def setns(self, fd: int, nstype: int = 0) -> None:
        check_call(libc().setns(fd, nstype), "setns", hex(nstype))

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int = 0,
        data: str | None = None,
    ) -> None:
        check_call(
            libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
            f"mount {source or 'none'} on {target}",
            target,
        )

    def umount2(self, target: str, flags: int = 0) -> None:
        check_call(libc().umount2(_b(target), flags), "umount2", target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        number = syscall_number("pivot_root")
        check_call(libc().syscall(number, _b(new_root), _b(put_old)), "pivot_root", new_root)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        check_call(libc().sethostname(raw, len(raw)), "sethostname", name)

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        check_call(libc().setdomainname(raw, len(raw)), "setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        from skiff.linux import cdata

        ul = cdata.c_ulong
        return check_call(
            libc().prctl(option, ul(arg2), ul(arg3), ul(arg4), ul(arg5)), "prctl", option
        )

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        from skiff.linux import cdata

        limits = (cdata.c_ulong * 2)(soft, hard)  # struct rlimit; 2**64-1 is RLIM_INFINITY
        check_call(libc().setrlimit(resource, cdata.byref(limits)), "setrlimit", resource)

    def close_range(self, first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
        from skiff.linux import cdata

        number = syscall_number("close_range")
        check_call(
            libc().syscall(number, cdata.c_uint(first), cdata.c_uint(last), cdata.c_uint(flags)),
            "close_range",
            first,
        )

    def pidfd_open(self, pid: int) -> int:
        return os.pidfd_open(pid)

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None:
        number = syscall_number("pidfd_send_signal")
        check_call(libc().syscall(number, pidfd, sig, None, 0), "pidfd_send_signal", sig)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        os.setresuid(ruid, euid, suid)

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        os.setresgid(rgid, egid, sgid)

    def setgroups(self, groups: list[int]) -> None:
        os.setgroups(groups)

    def join_session_keyring(self, name: str) -> int:
        """keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring named `name`."""
        number = syscall_number("keyctl")
        return check_call(
            libc().syscall(number, KEYCTL_JOIN_SESSION_KEYRING, name.encode()), "keyctl join", name
        )

    def raw_syscall(self, name: str, *args: Any) -> int:
        """An arbitrary syscall by name (for the few wrappers other modules build)."""
        return check_call(libc().syscall(syscall_number(name), *args), name)


class RecordingSyscalls(Syscalls):
    """Records `(name, args)` for each call instead of making it; for unit tests.

    `fail` maps a syscall name to an errno: that call raises OSError instead of recording
    success, so tests can walk error paths.
    """

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.fail = dict(fail or {})

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            err = self.fail[name]
            raise OSError(err, f"{name}: {os.strerror(err)}")

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        self._record("setrlimit", resource, soft, hard)

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._record("setns", fd, nstype)

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: int = 0,
        data: str | None = None,
    ) -> None:
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def sethostname(self, name: str) -> None:
        self._record("sethostname", name)

    def setdomainname(self, name: str) -> None:
        self._record("setdomainname", name)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self._record("prctl", option, arg2, arg3, arg4, arg5)
        return 0

    def close_range(self, first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
        self._record("close_range", first, last, flags)

    def pidfd_open(self, pid: int) -> int:
        self._record("pidfd_open", pid)
        return -1

    def pidfd_send_signal(self, pidfd: int, sig: int) -> None:
        self._record("pidfd_send_signal", pidfd, sig)

    def setresuid(self, ruid: int, euid: int, suid: int) -> None:
        self._record("setresuid", ruid, euid, suid)

    def setresgid(self, rgid: int, egid: int, sgid: int) -> None:
        self._record("setresgid", rgid, egid, sgid)

    def setgroups(self, groups: list[int]) -> None:
        self._record("setgroups", list(groups))

    def join_session_keyring(self, name: str) -> int:
        self._record("join_session_keyring", name)
        return 0

    def raw_syscall(self, name: str, *args: Any) -> int:
        self._record(name, *args)
        return 0


SYSCALLS = Syscalls()
