"""Namespace helpers, the recording syscalls, and pty plumbing (no root needed)."""

from __future__ import annotations

import os
import socket

import pytest

from skiff.linux import namespaces as ns
from skiff.linux import pty
from skiff.linux.syscalls import CLONE_NEWNET, CLONE_NEWPID, RecordingSyscalls, syscall_number


def test_unshare_flags_and_join_order() -> None:
    entries = [
        {"type": "mount"},
        {"type": "pid"},
        {"type": "network", "path": "/x"},
        {"type": "user", "path": "/u"},
    ]
    assert ns.unshare_flags(entries) == ns.clone_flag("mount") | CLONE_NEWPID
    assert ns.to_join(entries) == [("user", "/u"), ("network", "/x")]
    assert ns.proc_name("network") == "net"


def test_id_map_text() -> None:
    maps = [
        {"containerID": 0, "hostID": 100000, "size": 1},
        {"containerID": 1, "hostID": 200000, "size": 65535},
    ]
    assert ns.format_id_map(maps) == "0 100000 1\n1 200000 65535\n"


def test_join_opens_all_paths_before_any_setns() -> None:
    sys = RecordingSyscalls()
    ns.join([("network", "/proc/self/ns/net"), ("ipc", "/proc/self/ns/ipc")], sys=sys)
    assert [c[1][1] for c in sys.calls] == [CLONE_NEWNET, ns.clone_flag("ipc")]
    sys = RecordingSyscalls()
    with pytest.raises(OSError, match="open namespace ipc /nonexistent"):
        ns.join([("network", "/proc/self/ns/net"), ("ipc", "/nonexistent")], sys=sys)
    assert sys.calls == []  # nothing joined when one path is missing


def test_recording_syscalls_can_fail() -> None:
    sys = RecordingSyscalls(fail={"unshare": 1})
    with pytest.raises(OSError):
        sys.unshare(CLONE_NEWPID)
    assert sys.names() == ["unshare"]
    assert syscall_number("pivot_root") in (155, 41)


def test_supported_namespaces_include_the_basics() -> None:
    assert {"mount", "pid", "network", "uts", "ipc"} <= set(ns.supported())


def test_open_pty_and_pass_master_over_a_socket() -> None:
    if not os.path.exists("/dev/ptmx"):
        pytest.skip("no /dev/ptmx")
    pair = pty.open_pty("/dev/ptmx")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert pair.slave_path.startswith("/dev/pts/")
        pty.send_fd_on(a.fileno(), pair.master)
        name, master = pty.recv_fd(b.fileno())
        assert name == "/dev/ptmx"
        os.write(pair.slave, b"ping\n")
        assert b"ping" in os.read(master, 100)
        os.close(master)
    finally:
        pair.close()
        a.close()
        b.close()
