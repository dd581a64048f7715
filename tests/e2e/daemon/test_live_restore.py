"""Containers outlive skiffd: kill -9 the daemon, start it again, and everything is adopted."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon, default_runtime_args, start_daemon


@pytest.fixture
def own_daemon(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="skl-", dir="/tmp"))
    d = start_daemon(root, helper_env, default_runtime_args(), busybox_rootfs)
    try:
        yield d
    finally:
        if d.proc is None or d.proc.poll() is not None:
            d.start()
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_kill9_daemon_then_adopt(own_daemon: Daemon) -> None:
    d = own_daemon
    d.docker(
        "run",
        "-d",
        "--name",
        "keeps",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done",
    )
    d.docker("run", "-d", "--name", "exits", "busybox", "sh", "-c", "sleep 1; echo bye; exit 42")
    d.docker("run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "300")
    pid_keeps = d.docker("inspect", "-f", "{{.State.Pid}}", "keeps").stdout.strip()
    d.kill9()
    time.sleep(2.0)  # "exits" exits while no daemon runs
    assert Path(f"/proc/{pid_keeps}").exists(), "the container died with the daemon"
    d.start()
    running = d.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(running) == ["always", "keeps"]
    assert d.docker("inspect", "-f", "{{.State.Pid}}", "keeps").stdout.strip() == pid_keeps
    assert d.docker(
        "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "exits"
    ).stdout.split() == ["exited", "42"]
    assert d.docker("logs", "exits").stdout == "bye\n"
    before = len(d.docker("logs", "keeps").stdout.split())
    time.sleep(0.6)
    assert len(d.docker("logs", "keeps").stdout.split()) > before, "logs stopped flowing"
    d.docker("stop", "-t", "5", "keeps")
    assert d.docker("wait", "keeps").stdout.strip() == "0"
    # an adopted container's later exit is seen too
    d.docker("kill", "always")
    deadline = time.monotonic() + 10
    while (
        d.docker("inspect", "-f", "{{.RestartCount}}", "always").stdout.strip() == "0"
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert d.docker("inspect", "-f", "{{.RestartCount}}", "always").stdout.strip() == "1"
    deadline = time.monotonic() + 10
    while (
        d.docker("inspect", "-f", "{{.State.Status}}", "always").stdout.strip() != "running"
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert d.docker("inspect", "-f", "{{.State.Status}}", "always").stdout.strip() == "running"


def test_daemon_stop_leaves_containers_running(own_daemon: Daemon) -> None:
    d = own_daemon
    d.docker("run", "-d", "--name", "survivor", "busybox", "sleep", "300")
    d.stop()
    d.start()
    assert d.docker("ps", "--format", "{{.Names}} {{.State}}").stdout.split() == [
        "survivor",
        "running",
    ]
    assert d.docker("exec", "survivor", "echo", "still here").stdout == "still here\n"


def test_shim_and_daemon_both_killed_leave_no_ghost(own_daemon: Daemon) -> None:
    import os
    import signal

    d = own_daemon
    d.docker("run", "-d", "--name", "orphan", "busybox", "sleep", "300")
    cid = d.docker("inspect", "-f", "{{.Id}}", "orphan").stdout.strip()
    pid = int(d.docker("inspect", "-f", "{{.State.Pid}}", "orphan").stdout)
    shim_pid = int(Path(f"/proc/{pid}/status").read_text().split("PPid:")[1].split()[0])
    assert "skiff-shim" in Path(f"/proc/{shim_pid}/cmdline").read_text()
    d.kill9()
    os.kill(shim_pid, signal.SIGKILL)
    d.start()
    assert d.docker("inspect", "-f", "{{.State.Status}}", "orphan").stdout.strip() == "exited"
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the container's process outlived its cleanup"
    assert cid not in Path("/proc/mounts").read_text()
    d.docker("rm", "orphan")


def test_start_that_was_never_recorded_is_adopted(own_daemon: Daemon) -> None:
    """kill -9 between the shim's start and the state write: the next start adopts the process."""
    import json

    d = own_daemon
    d.docker("run", "-d", "--name", "unrecorded", "busybox", "sleep", "300")
    cid = d.docker("inspect", "-f", "{{.Id}}", "unrecorded").stdout.strip()
    pid = d.docker("inspect", "-f", "{{.State.Pid}}", "unrecorded").stdout.strip()
    d.kill9()
    state_file = d.data_root / "containers" / cid / "config.v2.json"
    record = json.loads(state_file.read_text())
    record["State"].update({"Status": "created", "Running": False, "Pid": 0})
    state_file.write_text(json.dumps(record))
    d.start()
    assert d.docker(
        "inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "unrecorded"
    ).stdout.split() == ["running", pid]
    d.docker("rm", "-f", "unrecorded")
    assert (
        not Path(f"/proc/{pid}").exists() or "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()
    )
