"""skiff-runtime under real engines: Debian's dockerd (containerd-shim-runc-v2) and podman/conmon.

Each engine gets its own data root, exec root and socket in a temp dir, no bridge and no
iptables; the image is a `docker import`/`podman import` of the busybox rootfs. Skips with
the reason when an engine is not installed or will not start here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

RUNTIME = "/usr/local/bin/skiff-runtime"
# The sandbox this runs in may lack CAP_SYS_RESOURCE: keep rlimits at or below the host's.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _rootfs_tar(rootfs: Path, dest: Path) -> Path:
    tar_path = dest / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
    return tar_path


def _unmount_under(path: Path) -> None:
    targets = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4]
            if mountpoint.startswith(str(path)):
                targets.append(mountpoint)
    for target in sorted(targets, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


@pytest.fixture
def runtime_binary() -> str:
    if not os.path.exists(RUNTIME):
        pytest.skip(f"{RUNTIME} is not installed (make install links it)")
    return RUNTIME


@pytest.fixture
def dockerd(runtime_binary: str) -> Iterator[list[str]]:
    if not shutil.which("dockerd") or not os.path.exists("/usr/bin/docker"):
        pytest.skip("dockerd / docker CLI (Debian docker.io) not installed")
    top = Path(tempfile.mkdtemp(prefix="skd-", dir="/tmp"))
    sock = top / "d.sock"
    log = open(top / "dockerd.log", "wb")
    proc = subprocess.Popen(
        [
            "dockerd",
            "--data-root", str(top / "data"),
            "--exec-root", str(top / "exec"),
            "--pidfile", str(top / "d.pid"),
            "-H", f"unix://{sock}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--storage-driver", "vfs",
            "--add-runtime", f"skiff={runtime_binary}",
            # relative: skiff-runtime nests it under the caller's own cgroup (never a root)
            "--cgroup-parent", f"skiff-e2e-{uuid.uuid4().hex[:8]}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    cli = ["/usr/bin/docker", "-H", f"unix://{sock}"]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([*cli, "version"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"dockerd did not start: {(top / 'dockerd.log').read_text()[-500:]}")
            time.sleep(0.2)
        yield cli
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(top)
        shutil.rmtree(top, ignore_errors=True)


def test_docker_run_with_skiff_runtime(
    dockerd: list[str], busybox_rootfs: Path, tmp_path: Path
) -> None:
    image = f"skiff-busybox:{uuid.uuid4().hex[:8]}"
    tar_path = _rootfs_tar(busybox_rootfs, tmp_path)
    subprocess.run([*dockerd, "import", str(tar_path), image], check=True, capture_output=True)
    run = [*dockerd, "run", "--rm", "--network", "none", "--runtime", "skiff", image]
    out = subprocess.run(
        [*run, "sh", "-c", "echo hello; grep -c . /proc/self/status >/dev/null; exit 3"],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 3, out.stderr
    assert out.stdout == b"hello\n"
    out = subprocess.run(
        [*dockerd, "run", "--rm", "-t", "--network", "none", "--runtime", "skiff", image, "tty"],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"/dev/pts/0"
    name = f"skiff-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [
            *dockerd,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--runtime",
            "skiff",
            image,
            "sleep",
            "60",
        ],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    try:
        out = subprocess.run(
            [*dockerd, "exec", name, "sh", "-c", "echo in-exec; exit 4"],
            capture_output=True,
            timeout=60,
        )
        assert (out.returncode, out.stdout) == (4, b"in-exec\n"), out.stderr
        assert subprocess.run([*dockerd, "pause", name], capture_output=True).returncode == 0
        assert subprocess.run([*dockerd, "unpause", name], capture_output=True).returncode == 0
        out = subprocess.run([*dockerd, "stop", "-t", "1", name], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        code = subprocess.run(
            [*dockerd, "inspect", "-f", "{{.State.ExitCode}}", name], capture_output=True, text=True
        )
        assert code.stdout.strip() == "137"
    finally:
        subprocess.run([*dockerd, "rm", "-f", name], capture_output=True)


@pytest.fixture
def podman(runtime_binary: str) -> Iterator[list[str]]:
    if not shutil.which("podman"):
        pytest.skip("podman not installed")
    top = Path(tempfile.mkdtemp(prefix="skp-", dir="/tmp"))
    cli = [
        "podman",
        "--root", str(top / "root"),
        "--runroot", str(top / "run"),
        "--tmpdir", str(top / "tmp"),
        "--runtime", runtime_binary,
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
        "--storage-driver", "vfs",
    ]  # fmt: skip
    try:
        probe = subprocess.run([*cli, "info"], capture_output=True, timeout=60)
        if probe.returncode != 0:
            pytest.skip(f"podman cannot run here: {probe.stderr.decode()[-300:]}")
        yield cli
    finally:
        subprocess.run([*cli, "system", "reset", "-f"], capture_output=True, timeout=60)
        _unmount_under(top)
        shutil.rmtree(top, ignore_errors=True)


def test_podman_run_with_skiff_runtime(
    podman: list[str], busybox_rootfs: Path, tmp_path: Path
) -> None:
    image = f"localhost/skiff-busybox:{uuid.uuid4().hex[:8]}"
    tar_path = _rootfs_tar(busybox_rootfs, tmp_path)
    subprocess.run([*podman, "import", str(tar_path), image], check=True, capture_output=True)
    run = [*podman, "run", "--rm", "--network", "none", *ULIMITS]
    out = subprocess.run(
        [*run, image, "sh", "-c", "echo hi from podman; exit 5"], capture_output=True, timeout=60
    )
    assert out.returncode == 5, out.stderr
    assert out.stdout == b"hi from podman\n"
    out = subprocess.run([*run, "-t", image, "tty"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"/dev/pts/0"
    name = f"skiff-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [
            *podman,
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            *ULIMITS,
            image,
            "sleep",
            "60",
        ],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    try:
        out = subprocess.run(
            [*podman, "exec", name, "sh", "-c", "echo in-exec; exit 6"],
            capture_output=True,
            timeout=60,
        )
        assert (out.returncode, out.stdout) == (6, b"in-exec\n"), out.stderr
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)
