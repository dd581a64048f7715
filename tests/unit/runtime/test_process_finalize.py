"""The order of a container process's last steps, recorded without root."""

from __future__ import annotations

import os

import pytest

from skiff.errors import NotFound
from skiff.linux.syscalls import (
    CLOSE_RANGE_CLOEXEC,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    RecordingSyscalls,
)
from skiff.runtime import process as proc


@pytest.fixture(autouse=True)
def _restore_cwd_and_umask() -> object:
    cwd = os.getcwd()
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.chdir(cwd)
    os.umask(mask)


def test_finalize_sequence() -> None:
    sys = RecordingSyscalls()
    process = {
        "args": ["true"],
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin"],
        "user": {"uid": 5, "gid": 6, "additionalGids": [7, 8], "umask": 0o027},
        "noNewPrivileges": True,
    }
    prepared = proc.finalize(process, seccomp=None, preserve_fds=2, sys=sys)
    assert sys.calls == [
        ("setgroups", ([7, 8],)),
        ("setresgid", (6, 6, 6)),
        ("prctl", (PR_SET_KEEPCAPS, 1, 0, 0, 0)),
        ("setresuid", (5, 5, 5)),
        ("prctl", (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)),
        ("close_range", (5, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)),
    ]
    assert prepared.path in ("/bin/true", "/usr/bin/true")
    assert prepared.env["HOME"]
    assert os.umask(0o022) == 0o027


def test_setgroups_skipped_when_denied() -> None:
    sys = RecordingSyscalls()
    proc.finalize(
        {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        seccomp=None,
        setgroups_allowed=False,
        sys=sys,
    )
    assert "setgroups" not in sys.names()


def test_missing_program_fails_before_any_privilege_change() -> None:
    sys = RecordingSyscalls()
    with pytest.raises(
        NotFound, match='exec: "nope-not-here": executable file not found in \\$PATH'
    ):
        proc.finalize(
            {"args": ["nope-not-here"], "cwd": "/", "user": {"uid": 1, "gid": 1}},
            seccomp=None,
            sys=sys,
        )
    assert sys.calls == []


def test_ambient_needs_inheritable() -> None:
    caps = {
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL", "CAP_CHOWN"],
    }
    assert proc.ambient_raisable(caps)["ambient"] == ["CAP_KILL"]  # type: ignore[index]
    assert proc.ambient_raisable(None) is None


def test_rlimits_are_set_by_number_and_a_refusal_names_the_limit() -> None:
    import errno

    from skiff.errors import FailedPrecondition
    from skiff.linux.syscalls import RecordingSyscalls
    from skiff.runtime.process import apply_rlimits

    sys = RecordingSyscalls()
    apply_rlimits(
        [
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
            {"type": "RLIMIT_CORE", "soft": 2**64 - 1, "hard": 2**64 - 1},
        ],
        sys=sys,
    )
    assert sys.calls == [("setrlimit", (7, 1024, 4096)), ("setrlimit", (4, 2**64 - 1, 2**64 - 1))]
    failing = RecordingSyscalls(fail={"setrlimit": errno.EPERM})
    with pytest.raises(FailedPrecondition, match="setrlimit RLIMIT_NPROC soft=1 hard=2: Operation"):
        apply_rlimits([{"type": "RLIMIT_NPROC", "soft": 1, "hard": 2}], sys=failing)
