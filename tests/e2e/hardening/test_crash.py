"""Crash tests, bounded: 5 rounds of kill -9 of skiffd during load/build/run/rm/start, and disk-full.

The long form is `bench/crash/run --rounds 50`; both use bench/crash/crashlib.py (what one round
checks is listed there).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CRASHLIB = Path(__file__).resolve().parents[3] / "bench" / "crash" / "crashlib.py"
ROUNDS = int(os.environ.get("SKIFF_CRASH_ROUNDS", "5"))


@pytest.fixture(scope="module")
def crashlib() -> ModuleType:
    spec = importlib.util.spec_from_file_location("skiff_crashlib", CRASHLIB)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["skiff_crashlib"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="skcr-", dir="/tmp"))  # short: unix socket paths
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_kill9_rounds_leave_a_clean_state(
    crashlib: ModuleType, work: Path, busybox_rootfs: Path, helper_env: dict[str, str]
) -> None:
    lines: list[str] = []
    run: Any = crashlib.CrashRun(work / "d", busybox_rootfs, helper_env, seed=9, log=lines.append)
    try:
        results = [run.round(i) for i in range(ROUNDS)]
    finally:
        run.close()
    dirty = [r for r in results if not r.clean]
    assert not dirty, "\n".join(lines)
    assert {r.op for r in results} >= {"load", "run", "rm", "start"}, lines


def test_disk_full_is_a_clear_enospc_and_the_store_survives(
    crashlib: ModuleType, work: Path, busybox_rootfs: Path, helper_env: dict[str, str]
) -> None:
    problems = crashlib.disk_full(work / "full", busybox_rootfs, helper_env, size_mib=64)
    assert not problems, "\n".join(problems)


def test_container_started_as_the_daemon_dies_keeps_its_logs_or_leaves_no_mount(
    crashlib: ModuleType, work: Path, busybox_rootfs: Path, helper_env: dict[str, str]
) -> None:
    """kill -9 of skiffd while `docker run -d` starts a container: if the container is running
    after the restart (adopted), the line it printed first is in its logs; if it is not, its
    rootfs is not left mounted."""
    mod = crashlib.daemon_module()
    (work / "d").mkdir()
    d = mod.start_daemon(work / "d", helper_env, mod.default_runtime_args(), busybox_rootfs)
    lost = []
    try:
        for i, delay in enumerate((0.03, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2)):
            name = f"dying-{i}"
            argv = [
                mod.DOCKER,
                "run",
                "-d",
                "--name",
                name,
                "busybox",
                "sh",
                "-c",
                f"echo hello-{i}; exec sleep 600",
            ]
            proc = subprocess.Popen(
                argv, env=d.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(delay)
            d.kill9()
            proc.wait(30)
            d.start()
            state = d.docker(
                "inspect", "-f", "{{.State.Running}} {{.Id}}", name, check=False
            ).stdout.split()
            if state and state[0] == "true":
                logs = d.docker("logs", name, check=False).stdout
                if f"hello-{i}" not in logs:
                    lost.append(
                        f"killed {delay}s into `docker run -d`: running after the restart, logs {logs!r}"
                    )
            elif state:
                mounts = [m for m in crashlib._mounts_under(d.root) if state[1] in m]
                if mounts:
                    lost.append(
                        f"killed {delay}s into `docker run -d`: not running after the restart, mounts left {mounts}"
                    )
            d.docker("rm", "-f", name, check=False)
    finally:
        crashlib.stop_daemon(d)
    assert not lost, "\n".join(lost)
