"""The skiff-runtime hot path through skiffd: start/kill/pause/resume/delete run in-process
through the runtime's library, and `create` starts before the bundle is written and waits on a
gate. Each test checks what the command path would have left: exit codes, no runtime record,
no shim, no process waiting on the gate."""

from __future__ import annotations

import os
import time
import uuid

from .conftest import Daemon

RT = ["--runtime", "skiff-runtime"]


def name(prefix: str = "hp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _processes_naming(needle: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def _runtime_record(skiffd: Daemon, cid: str) -> bool:
    return (skiffd.exec_root / "runtime" / cid).exists()


def test_run_rm_has_lo_up_and_leaves_nothing(skiffd: Daemon) -> None:
    n = name()
    res = skiffd.docker(
        "run", "--rm", *RT, "--network", "none", "--name", n, "busybox",
        "sh", "-c", "ip -o link show lo; exit 7",
        check=False,
    )  # fmt: skip
    assert res.returncode == 7, res.stderr
    assert "LOOPBACK,UP" in res.stdout
    assert n not in skiffd.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not list((skiffd.exec_root / "runtime").glob("*"))


def test_detached_lifecycle_through_the_library(skiffd: Daemon) -> None:
    n = name()
    script = 'trap "exit 3" USR1; while :; do sleep 0.1; done'
    cid = skiffd.docker("run", "-d", *RT, "--name", n, "busybox", "sh", "-c", script).stdout.strip()
    try:
        assert _runtime_record(skiffd, cid)
        skiffd.docker("pause", n)
        assert skiffd.docker("inspect", "-f", "{{.State.Status}}", n).stdout.strip() == "paused"
        skiffd.docker("unpause", n)
        skiffd.docker("kill", "-s", "USR1", n)
        code = skiffd.docker("wait", n).stdout.strip()
        assert code == "3"
        assert not _runtime_record(skiffd, cid)  # deleted on exit
        # started again (the runtime record of the last run is gone), then force-removed
        skiffd.docker("start", n)
        assert skiffd.docker("inspect", "-f", "{{.State.Running}}", n).stdout.strip() == "true"
    finally:
        skiffd.docker("rm", "-f", n, check=False)
    assert not _runtime_record(skiffd, cid)
    assert not _processes_naming(cid)


def test_a_start_that_fails_before_the_gate_cancels_the_waiting_runtime(
    skiffd: Daemon,
) -> None:
    stopped, n = name("stopped"), name()
    skiffd.docker("create", "--name", stopped, "busybox", "true")
    try:
        res = skiffd.docker(
            "run", *RT, "--name", n, "--network", f"container:{stopped}", "busybox", "true",
            check=False,
        )  # fmt: skip
        assert res.returncode != 0
        assert "non running container" in res.stderr
        cid = skiffd.docker("inspect", "-f", "{{.Id}}", n).stdout.strip()
        deadline = time.monotonic() + 5
        while _processes_naming(cid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _processes_naming(cid)  # neither the shim nor a runtime waiting on the gate
        assert not _runtime_record(skiffd, cid)
        # the container can still be started once the other one runs
        skiffd.docker("start", stopped)
    finally:
        skiffd.docker("rm", "-f", n, stopped, check=False)
