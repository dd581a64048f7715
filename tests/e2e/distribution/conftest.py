"""Fixtures for driving real clients (skopeo, dockerd + docker CLI) against `skiff registry serve`."""

from __future__ import annotations

import importlib.util
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

_spec = importlib.util.spec_from_file_location(
    "skiff_distribution_test_helpers",
    Path(__file__).resolve().parents[2] / "integration" / "distribution" / "helpers.py",
)
assert _spec is not None and _spec.loader is not None
helpers = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = helpers
_spec.loader.exec_module(helpers)


@pytest.fixture(scope="session")
def busybox_layout(
    busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """An OCI image layout (tag `latest`) of the busybox rootfs; and its manifest digest."""
    layer, diff_id = helpers.tar_gz_of(busybox_rootfs)
    layout = tmp_path_factory.mktemp("layout") / "busybox"
    digest = helpers.make_oci_layout(layout, [layer], diff_ids=[diff_id])
    return layout, digest


class Dockerd:
    def __init__(self, base: Path, proc: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.proc = proc
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{base}/docker.sock",
            "DOCKER_CONFIG": str(base / "cli"),
        }

    def docker(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            ["docker", *args],
            env=self.env,
            input=input.decode() if input else None,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}"
            )
        return r


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    """Debian's dockerd with its own data-root, exec-root, socket; no bridge, no iptables."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("dockerd / docker CLI not installed (Debian docker.io)")
    base = Path(tempfile.mkdtemp(prefix="skiffdist-dockerd-", dir="/tmp"))
    tag = base.name.replace("-", "")
    log = open(base / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [
            "dockerd",
            "--data-root",
            str(base / "data"),
            "--exec-root",
            str(base / "exec"),
            "-H",
            f"unix://{base}/docker.sock",
            "--pidfile",
            str(base / "docker.pid"),
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--containerd-namespace",
            tag,
            "--containerd-plugins-namespace",
            f"{tag}p",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    d = Dockerd(base, proc)
    try:
        deadline = time.monotonic() + 60
        while d.docker("version", check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"dockerd did not start: {(base / 'dockerd.log').read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield d
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(base / "data")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
