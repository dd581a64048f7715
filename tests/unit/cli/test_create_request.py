"""skiff builds the same container-create request as the docker CLI for the same flags.

Both CLIs talk to a recording stand-in daemon; the bodies must be equal once Go's zero values
(which a daemon treats as unset) are dropped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .recorder import Recorder

DOCKER = shutil.which("docker")

CASES = [
    ["busybox"],
    ["-it", "busybox", "sh"],
    [
        "--name",
        "x",
        "-e",
        "A=1",
        "-e",
        "B",
        "-l",
        "a=b",
        "-w",
        "/tmp",
        "-u",
        "1000:1000",
        "busybox",
        "echo",
        "hi",
    ],
    [
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:53:53/udp",
        "-p",
        "9000-9001:7000-7001",
        "-P",
        "--expose",
        "99",
        "busybox",
    ],
    [
        "-v",
        "/tmp:/data:ro",
        "-v",
        "/anon",
        "-v",
        "named:/n",
        "--mount",
        "type=volume,src=v,dst=/v",
        "--mount",
        "type=bind,source=/tmp,target=/b,readonly",
        "--tmpfs",
        "/run:size=1m",
        "busybox",
    ],
    [
        "--memory",
        "512m",
        "--memory-swap",
        "-1",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "10",
        "--shm-size",
        "64m",
        "--ulimit",
        "nofile=100:200",
        "--oom-score-adj",
        "100",
        "busybox",
    ],
    [
        "--restart",
        "on-failure:3",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "ALL",
        "--privileged",
        "--read-only",
        "--security-opt",
        "no-new-privileges",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--init",
        "busybox",
    ],
    [
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        "--health-retries",
        "3",
        "--health-timeout",
        "1m30s",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "5",
        "busybox",
    ],
    [
        "--network",
        "none",
        "--hostname",
        "hh",
        "--add-host",
        "h:1.2.3.4",
        "--dns",
        "8.8.8.8",
        "--dns-search",
        "x",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=1m",
        "--device",
        "/dev/null:/dev/xnull:rw",
        "--entrypoint",
        "/bin/sh",
        "busybox",
        "-c",
        "true",
    ],
    [
        "--rm",
        "-a",
        "stdout",
        "--entrypoint",
        "",
        "--no-healthcheck",
        "--platform",
        "linux/amd64",
        "busybox",
    ],
]


def drop_zero(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: drop_zero(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [drop_zero(v) for v in value]
    return value


def capture(tmp_path: Path, argv: list[str], env: dict[str, str]) -> tuple[str, Any]:
    sock = tmp_path / f"rec{len(list(tmp_path.iterdir()))}.sock"
    rec = Recorder(sock)
    try:
        cp = subprocess.run(
            argv,
            env=dict(env, DOCKER_HOST=f"unix://{sock}", SKIFF_HOST=f"unix://{sock}"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert cp.returncode == 0, cp.stderr
        reqs = [r for r in rec.requests if r.path.split("?")[0].endswith("/containers/create")]
        assert len(reqs) == 1
        query = reqs[0].path.partition("?")[2]
        return query, reqs[0].json()
    finally:
        rec.close()


@pytest.mark.skipif(DOCKER is None, reason="docker CLI not installed")
@pytest.mark.parametrize("args", CASES, ids=[" ".join(c)[:40] for c in CASES])
def test_create_body_matches_docker(tmp_path: Path, args: list[str]) -> None:
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "cfg"), B="from-env")
    assert DOCKER is not None
    dq, docker_body = capture(tmp_path, [DOCKER, "create", *args], env)
    sq, skiff_body = capture(
        tmp_path, [sys.executable, "-m", "skiff.cli.main", "create", *args], env
    )
    assert sorted(sq.split("&")) == sorted(dq.split("&"))
    # docker builds Binds and Env through Go maps: their order changes from run to run
    for body in (skiff_body, docker_body):
        if body["HostConfig"].get("Binds"):
            body["HostConfig"]["Binds"].sort()
        if body.get("Env"):
            body["Env"].sort()
    assert drop_zero(skiff_body) == drop_zero(docker_body)
