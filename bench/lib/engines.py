"""The engines and registries under test, each started on its own socket, port and data root
inside the bench's temp dir, and stopped with everything it left behind.

Service lifecycle: `start()` launches the process in its own session and waits until it answers
(raises Unavailable with the first line of its stderr if it exits or never answers); `stop()`
terminates it, kills any process still naming its root (re-parented shims, conmon), unmounts
whatever is left under its root, and removes the root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from . import netfilter, procs

VENV_BIN = Path("/opt/skiff/venv/bin")


class Unavailable(Exception):
    """A service could not be started; str() is the one-line reason."""


def skiff_binary(name: str) -> str:
    """The venv's entry point (`skiff`, `skiffd`, `skiff-runtime`), else the one on PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name) or name


def docker_cli_binary() -> str:
    """The docker 28 CLI at /usr/local/bin/docker, else whatever `docker` is on PATH."""
    if os.access("/usr/local/bin/docker", os.X_OK):
        return "/usr/local/bin/docker"
    return shutil.which("docker") or "docker"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DockerCLI:
    """The one docker CLI binary, pointed at one daemon's socket, with a private config dir."""

    def __init__(self, host: str, config_dir: Path, binary: str | None = None):
        self.host = host
        self.binary = binary or docker_cli_binary()
        config_dir.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env.update(
            DOCKER_CONFIG=str(config_dir), DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0"
        )

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "-H", self.host, *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return procs.run(self.argv(*args), timeout=timeout, env=self.env)

    def timed(self, *args: str, timeout: float = 120, cwd: Path | None = None) -> float:
        return procs.timed(self.argv(*args), timeout=timeout, env=self.env, cwd=cwd)

    def rm_all(self, timeout: float = 120) -> None:
        """Remove every container (untimed clean-up between runs). `docker rm -f a b …` sends
        its requests in parallel; where that fails, remove one by one, then check none is left."""
        ids = self.run("ps", "-aq", timeout=60).stdout.split()
        for i in range(0, len(ids), 25):
            try:
                self.run("rm", "-f", *ids[i : i + 25], timeout=timeout)
            except procs.CommandFailed:
                for cid in ids[i : i + 25]:
                    procs.run(self.argv("rm", "-f", cid), timeout=60, env=self.env, check=False)
        left = self.run("ps", "-aq", timeout=60).stdout.split()
        if left:
            raise procs.CommandFailed(f"{len(left)} containers still there after `docker rm -f`")


class Service:
    """A long-running process of the bench (a daemon or a registry)."""

    name = "service"

    def __init__(self, root: Path, extra_dirs: Sequence[Path] = ()):
        self.root = root
        self.extra_dirs = list(extra_dirs)  # outside root, also the service's (see Skiffd)
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout_path = root / f"{self.name}.stdout.log"
        self.stderr_path = root / f"{self.name}.stderr.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files and make directories before the process starts."""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def first_stderr_line(self) -> str:
        text = ""
        for path in (self.stderr_path, self.stdout_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
            if text.strip():
                break
        return procs.first_line(text)

    @property
    def markers(self) -> list[str]:
        """Paths that every process of this service names (or works in)."""
        return [str(d) for d in (self.root, *self.extra_dirs)]

    def start(self, timeout: float = 60) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in self.extra_dirs:
            d.mkdir(parents=True, exist_ok=True)
        self.prepare()
        argv = self.argv()
        try:
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
                )
        except OSError as e:
            raise Unavailable(f"{self.name} did not start: {argv[0]}: {e.strerror or e}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(
                    f"{self.name} did not start: exit {self.proc.returncode}: "
                    f"{self.first_stderr_line()}"
                )
            try:
                if self.ready():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise Unavailable(
            f"{self.name} did not start: not ready within {timeout:g} s "
            f"(log: {self.first_stderr_line()})"
        )

    def before_stop(self) -> None:
        """Remove what the service holds (containers) while it still answers."""

    def stop(self) -> list[str]:
        """Stop and clean up; returns problems found (never raises)."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.before_stop()
            except Exception as e:
                problems.append(f"{self.name}: removing containers: {e}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name}: did not stop on SIGTERM within 30 s; killed")
                self.proc.kill()
                self.proc.wait(timeout=10)
        time.sleep(0.2)
        for marker in self.markers:
            procs.kill_marked(marker)
        for _ in range(20):
            listing = procs.list_processes().values()
            if not any(m in p.cmdline for p in listing for m in self.markers):
                break
            time.sleep(0.1)
        for marker in self.markers:
            left = procs.unmount_under(marker)
            if left:
                problems.append(f"{self.name}: could not unmount {left}")
        for d in self.extra_dirs:
            shutil.rmtree(d, ignore_errors=True)
            if d.exists():
                problems.append(f"{self.name}: could not remove {d}")
        return problems


class Daemon(Service):
    """A Docker-API daemon driven through the docker CLI on a private socket."""

    def __init__(self, root: Path, cgroup_parent: str, extra_dirs: Sequence[Path] = ()):
        super().__init__(root, extra_dirs)
        self.socket = root / f"{self.name}.sock"
        self.cgroup_parent = cgroup_parent
        self.cli = DockerCLI(f"unix://{self.socket}", root / "docker-cli-config")

    def ready(self) -> bool:
        if not self.socket.exists():
            return False
        res = subprocess.run(
            self.cli.argv("version", "--format", "{{.Server.Version}}"),
            env=self.cli.env,
            capture_output=True,
            timeout=10,
        )
        return res.returncode == 0

    def health(self) -> str | None:
        """None while the daemon runs and answers; else why not (it exited, or hangs)."""
        if self.proc is None:
            return f"{self.name} was never started"
        if self.proc.poll() is not None:
            return (
                f"{self.name} exited during the bench (exit {self.proc.returncode}): "
                f"{procs.first_line(self.stderr_path.read_text(errors='replace'))}"
            )
        try:
            if self.ready():
                return None
        except subprocess.TimeoutExpired:
            pass
        return f"{self.name} stopped answering `docker version` on its socket"

    def server_version(self) -> str:
        try:
            return self.cli.run("version", "--format", "{{.Server.Version}}").stdout.strip()
        except procs.CommandFailed as e:
            return f"unknown ({e})"

    def before_stop(self) -> None:
        self.cli.rm_all()

    def memory(self) -> procs.MemorySample:
        return procs.engine_memory(
            [self.pid] if self.pid else [], self.markers, exclude=[os.getpid()]
        )


class Dockerd(Daemon):
    name = "dockerd"

    def prepare(self) -> None:
        (self.root / "daemon.json").write_text("{}\n")

    def argv(self) -> list[str]:
        r = self.root
        return [
            "dockerd",
            "--data-root", str(r / "data"),
            "--exec-root", str(r / "exec"),
            "-H", f"unix://{self.socket}",
            "--pidfile", str(r / "dockerd.pid"),
            "--config-file", str(r / "daemon.json"),
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--cgroup-parent", self.cgroup_parent,
            "--log-level", "warn",
        ]  # fmt: skip


class Skiffd(Daemon):
    """skiffd with its data root in the bench's temp dir and its exec-root in a short dir of
    its own (the first of extra_dirs): socket paths under the exec-root must fit in
    sockaddr_un's 108 bytes, as they do under skiffd's default /run/skiff."""

    name = "skiffd"

    def argv(self) -> list[str]:
        r = self.root
        return [
            skiff_binary("skiffd"),
            "--data-root", str(r / "data"),
            "--exec-root", str(self.extra_dirs[0] if self.extra_dirs else r / "exec"),
            "--bridge", "none",  # as its dockerd (--bridge=none); BridgedSkiffd overrides
            "-H", f"unix://{self.socket}",
            "--pidfile", str(r / "skiffd.pid"),
        ]  # fmt: skip


class BridgedSkiffd(Skiffd):
    """skiffd whose default `bridge` network is a bridge of its own (`--bridge NAME`, a free /24
    picked by skiffd). skiffd leaves its bridge, its nft table `skiff_NAME` and its two iptables
    FORWARD accept rules in place when it exits (as dockerd leaves docker0); stop() removes
    exactly those."""

    def __init__(
        self, root: Path, cgroup_parent: str, bridge: str, extra_dirs: Sequence[Path] = ()
    ):
        super().__init__(root, cgroup_parent, extra_dirs)
        self.bridge = bridge

    def argv(self) -> list[str]:
        return [*super().argv(), "--bridge", self.bridge]

    def stop(self) -> list[str]:
        problems = super().stop()
        problems += netfilter.remove_skiff_network(self.bridge)
        return problems


class BridgedDockerd(Dockerd):
    """dockerd with bridge networking and iptables on: its default network is a bridge the
    bench makes (`--bridge NAME`, address `gateway/24` on a free subnet), never docker0 or
    172.17.0.0/16. dockerd adds its DOCKER* chains and jumps (and sets the iptables FORWARD
    policy to DROP when it has to turn ip_forward on); stop() removes what this dockerd added (rules and chains that were not
    there before it started, and that are Docker's or name its bridge or subnet), puts the
    FORWARD policy and the bridge-netfilter sysctls back, and deletes the bridge."""

    def __init__(self, root: Path, cgroup_parent: str, bridge: str, subnet: ipaddress.IPv4Network):
        super().__init__(root, cgroup_parent)
        self.bridge = bridge
        self.subnet = subnet
        self.before: netfilter.Snapshot | None = None
        self.made_bridge = False

    def prepare(self) -> None:
        super().prepare()
        self.before = netfilter.snapshot()
        gateway = f"{next(self.subnet.hosts())}/{self.subnet.prefixlen}"
        procs.run(["ip", "link", "add", self.bridge, "type", "bridge"], timeout=30)
        self.made_bridge = True
        procs.run(["ip", "addr", "add", gateway, "dev", self.bridge], timeout=30)
        procs.run(["ip", "link", "set", self.bridge, "up"], timeout=30)

    def argv(self) -> list[str]:
        argv = super().argv()
        swap = {"--iptables=false": "--iptables=true", "--bridge=none": f"--bridge={self.bridge}"}
        return [swap.get(a, a) for a in argv]

    def stop(self) -> list[str]:
        problems = super().stop()
        # docker-proxy runs as `docker-proxy … -container-ip 10.x.y.z …`: ours name our /24.
        octets = str(self.subnet.network_address).split(".")[:3]
        left = procs.kill_marked(f"-container-ip {'.'.join(octets)}.")
        if left:
            problems.append(f"dockerd: {len(left)} docker-proxy processes left running; killed")
        if self.before is not None:
            problems += netfilter.remove_docker_rules(self.before, self.bridge, str(self.subnet))
        if self.made_bridge:
            res = procs.run(["ip", "link", "del", self.bridge], timeout=30, check=False)
            if res.returncode != 0 and "Cannot find device" not in res.stderr:
                problems.append(f"dockerd: ip link del {self.bridge}: {res.stderr.strip()}")
        return problems


class Podman:
    """podman with its own storage, run root and temp dir (daemonless: no start/stop process)."""

    name = "podman"

    def __init__(self, root: Path, cgroup_parent: str):
        self.root = root
        self.cgroup_parent = cgroup_parent
        root.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERS_")}

    def argv(self, *args: str) -> list[str]:
        r = self.root
        return [
            "podman",
            "--root", str(r / "root"),
            "--runroot", str(r / "run"),
            "--tmpdir", str(r / "tmp"),
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
            "--runtime", "runc",
            "--storage-driver", "overlay",
            *args,
        ]  # fmt: skip

    def run_flags(self) -> list[str]:
        """Flags for `podman run`: the bench's cgroup parent (podman's default is
        /libpod_parent at each hierarchy's root), and rlimits this machine allows — podman 4's
        default nofile/nproc exceed its hard limits (EPERM in runc init); docker sets none."""
        return [
            "--cgroup-parent", self.cgroup_parent,
            "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
        ]  # fmt: skip

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return procs.run(self.argv(*args), timeout=timeout, env=self.env)

    def timed(self, *args: str, timeout: float = 120) -> float:
        return procs.timed(self.argv(*args), timeout=timeout, env=self.env)

    def stop(self) -> list[str]:
        problems = []
        try:
            self.run("rm", "-af", "-t", "0", timeout=120)
        except procs.CommandFailed as e:
            problems.append(f"podman: rm -af: {e}")
        procs.kill_marked(str(self.root))
        left = procs.unmount_under(str(self.root))
        if left:
            problems.append(f"podman: could not unmount {left}")
        return problems


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as e:
        return e.code == 401  # a registry that wants auth still answers
    except OSError:
        return False


class Registry(Service):
    def __init__(self, root: Path, port: int | None = None):
        super().__init__(root)
        self.port = port or free_port()
        self.storage = root / "storage"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return _http_ok(f"http://{self.address}/v2/")

    def stop(self) -> list[str]:
        problems = super().stop()
        shutil.rmtree(self.storage, ignore_errors=True)
        return problems


class Distribution(Registry):
    """Debian's docker-registry (distribution 2.8) with filesystem storage on a loopback port."""

    name = "distribution"

    def prepare(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address},
        }
        # JSON is valid YAML.
        (self.root / "config.yml").write_text(json.dumps(config))

    def argv(self) -> list[str]:
        return ["docker-registry", "serve", str(self.root / "config.yml")]


class SkiffRegistry(Registry):
    """`skiff registry serve --addr 127.0.0.1:PORT --root DIR` (issue 5)."""

    name = "skiff-registry"

    def prepare(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [
            skiff_binary("skiff"), "registry", "serve",
            "--addr", self.address, "--root", str(self.storage),
        ]  # fmt: skip
