"""The skiff-runtime hot path through skiffd: start/kill/pause/resume/delete run in-process
through the runtime's library, and `create` starts before the bundle is written and waits on a
gate. Each test checks what the command path would have left: exit codes, no runtime record,
no shim, no process waiting on the gate."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Daemon, default_runtime_args, start_daemon

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


def _wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_create_prespawns_the_runtime_and_start_uses_it(skiffd: Daemon) -> None:
    n = name("pre")
    cid = skiffd.docker(
        "create", *RT, "--name", n, "busybox", "sh", "-c", "echo hi from $(hostname); exit 4"
    ).stdout.strip()
    try:
        # the shim and `skiff-runtime create` wait on their gate; nothing is claimed yet
        assert _wait_until(lambda: len(_processes_naming(cid)) >= 2), _processes_naming(cid)
        assert not _runtime_record(skiffd, cid)
        res = skiffd.docker("start", "-a", n, check=False)
        assert res.returncode == 4, res.stderr
        assert res.stdout.strip() == f"hi from {cid[:12]}"
    finally:
        skiffd.docker("rm", "-f", n, check=False)
    assert _wait_until(lambda: not _processes_naming(cid))
    assert not _runtime_record(skiffd, cid)


def test_removing_a_created_container_cancels_its_prespawned_runtime(skiffd: Daemon) -> None:
    n = name("pre")
    cid = skiffd.docker("create", *RT, "--name", n, "busybox", "true").stdout.strip()
    assert _wait_until(lambda: len(_processes_naming(cid)) >= 2)
    skiffd.docker("rm", n)
    assert _wait_until(lambda: not _processes_naming(cid)), _processes_naming(cid)
    assert not _runtime_record(skiffd, cid)
    assert not (skiffd.exec_root / "shims" / cid[:32]).exists()


def test_a_prespawned_runtime_expires_and_a_late_start_spawns_anew(
    tmp_path_factory: pytest.TempPathFactory, helper_env: dict[str, str], busybox_rootfs: Path
) -> None:
    root = Path(tempfile.mkdtemp(prefix="skp-", dir="/tmp"))
    d = start_daemon(
        root,
        {**helper_env, "SKIFFD_PRESPAWN_SECONDS": "0.3"},
        default_runtime_args(),
        busybox_rootfs,
    )
    try:
        cid = d.docker("create", *RT, "busybox", "sh", "-c", "echo late").stdout.strip()
        assert _wait_until(lambda: not _processes_naming(cid), timeout=10)  # expired, cancelled
        res = d.docker("start", "-a", cid, check=False)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "late"
        d.docker("rm", cid)
        assert _wait_until(lambda: not _processes_naming(cid))
    finally:
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)
