"""A private dockerd (Debian's docker.io) for comparing with and exchanging images with real
Docker: own data-root, exec-root and unix socket under a temp dir, no iptables, no bridge.
Skips with the reason when it cannot start."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_here = Path(__file__).resolve().parent
_three = _here.parents[1] / "integration" / "images" / "threelayer.py"
if "skiff_test_threelayer" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("skiff_test_threelayer", _three)
    assert _spec and _spec.loader
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules["skiff_test_threelayer"] = _mod
    _spec.loader.exec_module(_mod)


class Dockerd:
    def __init__(self, base: Path, proc: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.proc = proc
        self.host = f"unix://{base}/docker.sock"

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.base / "cli")}
        r = subprocess.run(
            ["docker", *args], input=input, capture_output=True, env=env, timeout=120
        )
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {r.stderr.decode()}")
        return r

    def inspect(self, ref: str) -> dict:
        return json.loads(self.docker("image", "inspect", ref).stdout)[0]


def _mounts_under(base: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(base))]


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    if not (shutil.which("dockerd") and shutil.which("docker")):
        pytest.skip("dockerd/docker not installed (Debian docker.io)")
    base = Path(tempfile.mkdtemp(prefix="skd-", dir="/tmp"))
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [
            "dockerd",
            f"--data-root={base}/data",
            f"--exec-root={base}/exec",
            f"--pidfile={base}/dockerd.pid",
            f"-H=unix://{base}/docker.sock",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--storage-driver=overlay2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    d = Dockerd(base, proc)
    try:
        deadline = time.monotonic() + 40
        while True:
            if proc.poll() is not None:
                pytest.skip(
                    f"dockerd exited ({proc.returncode}): {(base / 'dockerd.log').read_text()[-500:]}"
                )
            if d.docker("version", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.skip(
                    f"dockerd did not start in 40s: {(base / 'dockerd.log').read_text()[-500:]}"
                )
            time.sleep(0.3)
        yield d
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for m in reversed(_mounts_under(base)):
            subprocess.run(["umount", "-l", m], check=False)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def three_layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return sys.modules["skiff_test_threelayer"].build_layers(tmp_path_factory.mktemp("threelayer"))
