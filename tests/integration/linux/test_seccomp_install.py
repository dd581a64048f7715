"""seccomp filters installed on the real kernel, each in a forked child that reports back."""

from __future__ import annotations

import ctypes
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import FailedPrecondition
from skiff.linux import seccomp
from skiff.linux.seccomp_docker import docker_profile_to_oci

PR_SET_NO_NEW_PRIVS = 38


def in_child(
    program: bytes, flags: int, action: Callable[[], int], *, nnp: bool = True
) -> tuple[int, int | None]:
    """Fork; the child sets no_new_privs, installs `program` and exits with `action()`.

    Returns (exit code or -signal, the number the child wrote to the pipe or None).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 100
        try:
            os.close(r)
            libc = ctypes.CDLL(None, use_errno=True)
            if nnp and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                os._exit(101)
            seccomp.install(program, flags)
            os.write(w, str(action()).encode())
            code = 0
        except FailedPrecondition:
            code = 102
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return rc, int(data) if data else None


def mkdir_errno(path: Path) -> Callable[[], int]:
    def act() -> int:
        try:
            os.mkdir(path)
            return 0
        except OSError as e:
            return e.errno or -1

    return act


def compile_(profile: dict[str, Any]) -> bytes:
    return seccomp.compile(profile, cache_dir=None)


def test_denies_a_syscall_with_the_configured_errno(tmp_path: Path) -> None:
    program = compile_(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ],
        }
    )
    rc, errno = in_child(program, 0, mkdir_errno(tmp_path / "a"))
    assert (rc, errno) == (0, 38)
    assert not (tmp_path / "a").exists()
    # The parent is not filtered.
    os.mkdir(tmp_path / "b")


def test_errno_defaults_to_eperm(tmp_path: Path) -> None:
    program = compile_(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
        }
    )
    assert in_child(program, 0, mkdir_errno(tmp_path / "a")) == (0, 1)


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"])
def test_kill_action_kills_the_child_with_sigsys(tmp_path: Path, action: str) -> None:
    program = compile_(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}],
        }
    )
    rc, reported = in_child(program, 0, mkdir_errno(tmp_path / "a"))
    assert rc == -signal.SIGSYS
    assert reported is None
    assert not (tmp_path / "a").exists()


def test_flags_are_passed_through(tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": [
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC",
        ],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    assert in_child(compile_(profile), seccomp.flags_of(profile), mkdir_errno(tmp_path / "a")) == (
        0,
        13,
    )


def test_bad_flags_are_refused_by_the_kernel(tmp_path: Path) -> None:
    program = compile_({"defaultAction": "SCMP_ACT_ALLOW"})
    rc, _ = in_child(program, 1 << 30, mkdir_errno(tmp_path / "a"))
    assert rc == 100  # InvalidArgument from install() → the child's generic failure code


def test_without_no_new_privs_an_unprivileged_caller_is_refused(tmp_path: Path) -> None:
    """As root (CAP_SYS_ADMIN) no_new_privs is not needed; after dropping to nobody it is."""
    program = compile_({"defaultAction": "SCMP_ACT_ALLOW"})

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 100
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                seccomp.install(program)
                code = 0
            except FailedPrecondition as e:
                os.write(w, str(e).encode())
                code = 102
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 102
    assert "no_new_privs or CAP_SYS_ADMIN" in message


def test_docker_default_profile_in_a_real_child(reference_dir: Path, tmp_path: Path) -> None:
    profile = json.loads((reference_dir / "docker-default-seccomp.json").read_text())
    caps = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"}
    oci = docker_profile_to_oci(profile, caps, os.uname().machine)
    program = compile_(oci)
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS = 0x00020000

    def unshare_errno() -> int:
        os.mkdir(tmp_path / "allowed")  # ordinary syscalls still work
        if libc.unshare(CLONE_NEWNS) == 0:
            return 0
        return ctypes.get_errno()

    assert in_child(program, seccomp.flags_of(oci), unshare_errno) == (0, 1)  # EPERM
    assert (tmp_path / "allowed").is_dir()


def test_install_needs_no_file_from_the_host_after_chroot(tmp_path: Path) -> None:
    """The container's init installs the filter after pivot_root: nothing may be loaded then."""
    program = compile_(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 61}],
        }
    )
    empty = tmp_path / "empty"
    empty.mkdir()

    def getcwd_errno() -> int:
        try:
            os.getcwd()
            return 0
        except OSError as e:
            return e.errno or -1

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 100
        try:
            os.close(r)
            os.chroot(empty)
            os.chdir("/")
            ctypes.CDLL(None).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            seccomp.install(program)
            os.write(w, str(getcwd_errno()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert int(data) == 61
