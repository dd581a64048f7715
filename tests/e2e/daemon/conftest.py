"""A test skiffd (own data-root, exec-root, socket; shim compiled from source) and a busybox image."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
SHIM_DIR = SRC / "skiff" / "engine" / "shim"
SKIFFD = [str(Path("/opt/skiff/venv/bin/python")), "-m", "skiff.daemon.main"]
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def build_helpers(dest: Path) -> dict[str, str]:
    """Compile skiff-shim and skiff-init from the source tree (what `make install` does)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build skiff-shim")
    shim, init = dest / "skiff-shim", dest / "skiff-init"
    subprocess.run(["gcc", "-O2", "-Wall", "-o", str(shim), str(SHIM_DIR / "shim.c")], check=True)
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-static", "-o", str(init), str(SHIM_DIR / "init.c")], check=True
    )
    return {"SKIFF_SHIM": str(shim), "SKIFF_INIT": str(init)}


class Daemon:
    """One skiffd process with its own directories; `docker(...)` runs the real CLI against it."""

    def __init__(self, root: Path, env: dict[str, str], extra_args: list[str]) -> None:
        self.root = root
        self.data_root = root / "data"
        self.exec_root = root / "run"
        self.socket = root / "skiffd.sock"
        self.host = f"unix://{self.socket}"
        self.env = {
            **os.environ,
            **env,
            "DOCKER_HOST": self.host,
            "DOCKER_CONFIG": str(root / "docker-config"),
        }
        self.env.pop("DOCKER_CONTEXT", None)
        self.extra_args = extra_args
        # a bridge (and so an nft table) of its own: test daemons never share skiff0
        self.bridge = next(
            (extra_args[i + 1] for i, a in enumerate(extra_args[:-1]) if a in ("--bridge", "-b")),
            f"skt{secrets.token_hex(3)}",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "skiffd.log", "ab")
        self.proc = subprocess.Popen(
            [
                *SKIFFD,
                "--data-root",
                str(self.data_root),
                "--exec-root",
                str(self.exec_root),
                "-H",
                self.host,
                "--log-level",
                "debug",
                *(["--bridge", self.bridge] if self.bridge not in self.extra_args else []),
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
            env=self.env,
            cwd=str(SRC),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"skiffd exited: {(self.root / 'skiffd.log').read_text()[-3000:]}"
                )
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("skiffd did not come up in 20s")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def docker(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [DOCKER, *args],
            env=self.env,
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} -> {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
            )
        return res

    def cleanup(self) -> None:
        """Remove every container (so no shim, mount or cgroup outlives the test), then stop."""
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=120)
        self.stop()
        # a container whose daemon died: kill its shim's processes through the runtime
        runtime_root = self.exec_root / "runtime"
        for runtime in ("/usr/local/bin/skiff-runtime", "/usr/sbin/runc"):
            if runtime_root.exists() and os.path.exists(runtime):
                for cid in os.listdir(runtime_root):
                    subprocess.run(
                        [runtime, "--root", str(runtime_root), "delete", "--force", cid],
                        capture_output=True,
                    )
        remove_networks(self.data_root, self.bridge)
        subprocess.run(["umount", "-R", "-l", str(self.exec_root)], capture_output=True)
        for line in Path("/proc/mounts").read_text().splitlines():
            target = line.split()[1]
            if target.startswith(str(self.root)):
                subprocess.run(["umount", "-l", target], capture_output=True)


def remove_networks(data_root: Path, bridge: str) -> None:
    """What a stopped test daemon leaves on purpose (as dockerd leaves docker0): its bridges,
    its nft table and its netns pins. Tests remove them."""
    bridges = {bridge}
    for rec in (data_root / "network" / "networks").glob("*.json"):
        try:
            name = json.loads(rec.read_text()).get("bridge")
        except (OSError, ValueError):
            continue
        if name:
            bridges.add(name)
    for b in bridges:
        subprocess.run(["ip", "link", "del", b], capture_output=True)
    subprocess.run(
        ["nft", "delete", "table", "ip", f"skiff_{bridge}".replace("-", "_")], capture_output=True
    )


def busybox_tar(rootfs: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(rootfs), arcname=".")
    return buf.getvalue()


def start_daemon(root: Path, env: dict[str, str], extra: list[str], rootfs: Path) -> Daemon:
    d = Daemon(root, env, extra)
    d.start()
    tar = root / "busybox.tar"
    tar.write_bytes(busybox_tar(rootfs))
    d.docker("import", str(tar), "busybox:latest")
    return d


RUNC = "/usr/sbin/runc"
SKIFF_RUNTIME = shutil.which("skiff-runtime") or "/usr/local/bin/skiff-runtime"


def default_runtime_args() -> list[str]:
    """runc is the default runtime of the test daemon unless SKIFF_E2E_RUNTIME names another
    (skiff-runtime is built alongside skiffd and can be mid-change); the other one is added
    by name so `--runtime` picks it (see test_second_runtime)."""
    default = os.environ.get("SKIFF_E2E_RUNTIME") or (
        "runc" if os.path.exists(RUNC) else "skiff-runtime"
    )
    args = ["--default-runtime", default]
    if os.path.exists(RUNC):
        args += ["--add-runtime", f"runc={RUNC}"]
    if os.path.exists(SKIFF_RUNTIME):
        args += ["--add-runtime", f"skiff-runtime={SKIFF_RUNTIME}"]
    return args


@pytest.fixture(scope="session")
def helper_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return build_helpers(tmp_path_factory.mktemp("skiff-bin"))


@pytest.fixture(scope="session")
def skiffd(helper_env: dict[str, str], busybox_rootfs: Path) -> Iterator[Daemon]:
    if not os.path.exists(DOCKER):
        pytest.skip("the docker CLI is not installed")
    # short root: shim sockets live under it and unix socket paths are limited to 108 bytes
    root = Path(tempfile.mkdtemp(prefix="skd-", dir="/tmp"))
    d = start_daemon(root, helper_env, default_runtime_args(), busybox_rootfs)
    try:
        yield d
    finally:
        d.cleanup()
        shutil.rmtree(root, ignore_errors=True)
