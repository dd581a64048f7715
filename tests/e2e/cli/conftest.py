"""A test daemon for the CLI's end-to-end tests, and helpers to run skiff and docker against it.

The `daemon` fixture is parametrized: "docker" starts Debian's dockerd (own data-root,
exec-root, socket, pidfile, no bridge, no iptables, cgroups nested under this process's memory
cgroup); "skiffd" starts skiff's daemon the same way and skips, with skiffd's own words, when it
does not come up. Both get a `busybox:latest` image imported from the busybox rootfs fixture.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"
SKIFF_BIN = str(Path(sys.executable).with_name("skiff"))
SKIFFD_BIN = str(Path(sys.executable).with_name("skiffd"))


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Daemon:
    kind: str
    host: str
    root: Path
    env: dict[str, str]

    def skiff(self, *args: str, input: str | None = None, timeout: float = 60) -> Result:
        return self._run(SKIFF_BIN, args, input, timeout)

    def docker(self, *args: str, input: str | None = None, timeout: float = 60) -> Result:
        return self._run(DOCKER_CLI, args, input, timeout)

    def _run(self, binary: str, args: tuple[str, ...], input: str | None, timeout: float) -> Result:
        cp = subprocess.run(
            [binary, *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=input,
            timeout=timeout,
        )
        return Result(cp.returncode, cp.stdout, cp.stderr)


def _memory_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path.rstrip("/")
    return ""


def _wait_socket(sock: Path, proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if sock.exists():
            import socket as _s

            s = _s.socket(_s.AF_UNIX)
            try:
                s.connect(str(sock))
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1."):
                    return True
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.1)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _unmount_under(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)


@pytest.fixture(scope="session")
def busybox_tar(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bbtar") / "busybox.tar"
    with tarfile.open(path, "w") as tar:
        for entry in sorted(busybox_rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    return path


@pytest.fixture(scope="session", params=["docker", "skiffd"])
def daemon(request: pytest.FixtureRequest, busybox_tar: Path) -> Iterator[Daemon]:
    kind = request.param
    tag = uuid.uuid4().hex[:8]
    # short: shim and attach socket paths under exec-root must stay below 108 bytes
    root = Path(f"/tmp/skc-{kind[0]}{tag}")
    root.mkdir(parents=True)
    sock = root / "d.sock"
    log = open(root / "daemon.log", "wb")
    cgroup_parent = f"{_memory_cgroup()}/skiff-cli-e2e-{tag}"
    if kind == "docker":
        if not shutil.which("dockerd"):
            pytest.skip("dockerd is not installed (apt-get install docker.io)")
        argv = [
            "dockerd",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "-H",
            f"unix://{sock}",
            "--pidfile",
            str(root / "pid"),
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--cgroup-parent",
            cgroup_parent,
            "--containerd-namespace",
            f"skiffcli{tag}",
            "--containerd-plugins-namespace",
            f"skiffclip{tag}",
        ]
    else:
        if not os.path.exists(SKIFFD_BIN):
            pytest.skip("skiffd is not installed in the venv")
        # skiffd puts <exec-root>/containers/<64-hex id>/shim/attach.sock under 108 bytes only
        # when the exec-root is this short
        exec_root = Path(f"/tmp/x{tag[:6]}")
        argv = [
            SKIFFD_BIN,
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(exec_root),
            "-H",
            f"unix://{sock}",
            "--bridge",
            f"skc{tag[:6]}",
        ]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not _wait_socket(sock, proc, 30):
            _stop(proc)
            tail = (root / "daemon.log").read_text(errors="replace").strip().splitlines()[-3:]
            pytest.skip(f"{kind} daemon did not start: {' | '.join(tail) or 'no output'}")
        env = dict(os.environ)
        env.update(
            DOCKER_HOST=f"unix://{sock}",
            SKIFF_HOST=f"unix://{sock}",
            DOCKER_CONFIG=str(root / "dockercfg"),
            SKIFF_CONFIG=str(root / "skiffcfg"),
            DOCKER_CLI_HINTS="false",
        )
        d = Daemon(kind, f"unix://{sock}", root, env)
        r = d.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        if r.code != 0:
            pytest.skip(f"{kind} daemon cannot import an image: {r.err.strip()[:200]}")
        # The baseline is the docker CLI against this daemon: without a working `docker run`
        # there is nothing to compare skiff with.
        r = d.docker(
            "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo ok", timeout=30
        )
        if (r.code, r.out) != (0, "ok\n"):
            pytest.skip(
                f"{kind} daemon cannot run a container for the docker CLI: {r.err.strip()[:200]}"
            )
        yield d
    finally:
        try:
            if proc.poll() is None:
                env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
                ids = subprocess.run(
                    [DOCKER_CLI, "ps", "-aq"], capture_output=True, text=True, env=env
                ).stdout.split()
                if ids:
                    subprocess.run(
                        [DOCKER_CLI, "rm", "-f", *ids], capture_output=True, env=env, timeout=60
                    )
        finally:
            _stop(proc)
            log.close()
            _unmount_under(root)
            for hier in Path("/sys/fs/cgroup").iterdir():
                target = hier / cgroup_parent.lstrip("/")
                if target.is_dir():
                    for sub in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                        if sub.is_dir():
                            try:
                                sub.rmdir()
                            except OSError:
                                pass
                    try:
                        target.rmdir()
                    except OSError:
                        pass
            if kind == "skiffd":
                from tests.e2e.daemon.conftest import remove_networks

                remove_networks(root / "data", f"skc{tag[:6]}")
            shutil.rmtree(root, ignore_errors=True)
            if kind == "skiffd":
                _unmount_under(Path(f"/tmp/x{tag[:6]}"))
                shutil.rmtree(f"/tmp/x{tag[:6]}", ignore_errors=True)


@pytest.fixture
def name() -> str:
    """A unique container/object name for one test."""
    return f"skt-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A loopback docker-registry (distribution 2.8) on a free port."""
    import shutil
    import socket
    import subprocess

    binary = shutil.which("docker-registry")
    if not binary:
        pytest.skip("docker-registry is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "registry.yml"
    cfg.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/reg\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield lambda: f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
