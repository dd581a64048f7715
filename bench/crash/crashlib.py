"""Crash rounds: kill -9 skiffd at a random moment during an operation, restart, check the state.

One round: start an operation through the real docker CLI (load of a fresh image, build, run,
rm), wait a random 0..0.8 s, `kill -9` skiffd, restart it, then check every invariant:

  blobs        every blob under content/blobs/ hashes to its name (no visible partial blob)
  images       every image inspects and a container from it runs `true` (no missing layer)
  mounts       every mount under the daemon's roots belongs to a running container
  cgroups      no cgroup directory of a known, non-running container (every hierarchy)
  survivors    every container running before the kill is running after it, adopted, with its logs
  network      no veth on the daemon's bridge and no nft rule for a container that is not running
               (checked when skiffd gives containers a network address; else reported n/a)

Pull is not exercised: skiffd answers POST /images/create with 501 until the registry client is
wired into the daemon (issue 5); load stands in for it. Used by bench/crash/run (50 rounds) and
by tests/e2e/hardening/test_crash.py (a bounded 5 rounds); both load this file by path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import random
import re
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HEX64 = re.compile(r"[0-9a-f]{64}")


def daemon_module() -> ModuleType:
    """tests/e2e/daemon/conftest.py: the test daemon (Daemon, start_daemon, build_helpers)."""
    path = REPO / "tests" / "e2e" / "daemon" / "conftest.py"
    spec = importlib.util.spec_from_file_location("skiff_e2e_daemon_conftest_crash", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def daemon_bridges(d: Any) -> list[str]:
    """The host bridges of the daemon's bridge-driver networks."""
    ids = d.docker("network", "ls", "-q", "--filter", "driver=bridge", check=False).stdout.split()
    names = []
    for nid in ids:
        r = d.docker(
            "network",
            "inspect",
            "-f",
            '{{index .Options "com.docker.network.bridge.name"}}',
            nid,
            check=False,
        )
        name = r.stdout.strip()
        if r.returncode == 0 and name and name != "<no value>":
            names.append(name)
    return names


def stop_daemon(d: Any) -> None:
    """d.cleanup() (containers, the daemon, mounts), then the bridges and nft tables skiffd
    leaves behind on shutdown (its networks persist, like Docker's): a test's daemon must not."""
    bridges = daemon_bridges(d) if d.proc is not None and d.proc.poll() is None else []
    d.cleanup()
    for name in bridges:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", f"skiff_{name}"], capture_output=True)


# ---- inputs ---------------------------------------------------------------------------------


def _tar_bytes(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add(tar)
    return buf.getvalue()


def _file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def image_archive(base_layer: bytes, tag: str, extra_bytes: int) -> bytes:
    """A docker-archive: the busybox layer plus a layer of `extra_bytes` random bytes (new blobs)."""
    extra = _tar_bytes(
        lambda t: _file(t, f"payload-{tag.replace(':', '-')}", os.urandom(extra_bytes))
    )
    layers = [base_layer, extra]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": names}]).encode()

    def add(tar: tarfile.TarFile) -> None:
        for name, layer in zip(names, layers, strict=True):
            _file(tar, name, layer)
        _file(tar, config_name, config)
        _file(tar, "manifest.json", manifest)

    return _tar_bytes(add)


# ---- checks ---------------------------------------------------------------------------------


@dataclass
class RoundResult:
    round: int
    op: str
    delay: float
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.problems


def check_blobs(data_root: Path) -> list[str]:
    problems = []
    blobs = data_root / "content" / "blobs"
    for algo_dir in blobs.iterdir() if blobs.is_dir() else []:
        for blob in algo_dir.iterdir():
            h = hashlib.new(algo_dir.name)
            with open(blob, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != blob.name:
                problems.append(f"blob {algo_dir.name}:{blob.name[:12]} does not match its digest")
    return problems


def _mounts_under(root: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == str(root) or target.startswith(str(root) + "/"):
            out.append(target)
    return out


def known_ids(d: Any) -> set[str]:
    ids: set[str] = set()
    for base in (d.data_root, d.exec_root):
        for dirpath, dirnames, _ in os.walk(base):
            ids.update(n for n in dirnames if HEX64.fullmatch(n))
            if dirpath.count(os.sep) - str(base).count(os.sep) >= 2:
                dirnames[:] = []
    return ids


def _cgroup_paths(pid: int) -> list[tuple[str, str]]:
    """(hierarchy mount, path inside it) for every v1 hierarchy of `pid`."""
    out = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if not controllers:
            continue
        name = controllers.replace("name=", "")
        for mount in (f"/sys/fs/cgroup/{name}", f"/sys/fs/cgroup/{controllers}"):
            if os.path.isdir(mount):
                out.append((mount, path))
                break
    return out


class Checker:
    def __init__(self, d: Any) -> None:
        self.d = d

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        res: subprocess.CompletedProcess[str] = self.d.docker(*args, check=False, timeout=timeout)
        return res

    def running(self) -> dict[str, int]:
        """Running container id -> pid."""
        ids = self.docker("ps", "-q", "--no-trunc").stdout.split()
        out = {}
        for cid in ids:
            pid = self.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()
            if pid.isdigit() and int(pid) > 0:
                out[cid] = int(pid)
        return out

    def check_images(self) -> list[str]:
        problems = []
        for image in set(self.docker("image", "ls", "-q", "--no-trunc").stdout.split()):
            r = self.docker("image", "inspect", image)
            if r.returncode != 0:
                problems.append(f"image {image[:19]} does not inspect: {r.stderr.strip()[:200]}")
                continue
            r = self.docker("run", "--rm", image, "true")
            if r.returncode != 0:
                problems.append(
                    f"a container from image {image[:19]} does not start: {r.stderr.strip()[:200]}"
                )
        return problems

    def check_mounts(self, running: dict[str, int]) -> list[str]:
        problems = []
        for target in _mounts_under(self.d.root):
            ids = HEX64.findall(target)
            if not ids or not any(i in running for i in ids):
                problems.append(f"leaked mount {target}")
        return problems

    def check_cgroups(self, running: dict[str, int]) -> list[str]:
        paths: list[tuple[str, str]] = []
        sample_id = ""
        for cid, pid in running.items():  # learn the layout from a live container
            try:
                paths, sample_id = _cgroup_paths(pid), cid
                break
            except FileNotFoundError:  # it exited meanwhile
                continue
        if not paths:
            return []
        problems = []
        stale = known_ids(self.d) - set(running)
        for mount, path in paths:
            if sample_id not in path:
                continue
            for cid in stale:
                leaked = Path(mount + path.replace(sample_id, cid))
                if leaked.is_dir():
                    problems.append(f"leaked cgroup {leaked}")
        return problems

    def network_wired(self, cid: str) -> bool:
        r = self.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid)
        return bool(r.stdout.strip())

    def bridge(self) -> str | None:
        r = self.docker(
            "network",
            "inspect",
            "bridge",
            "-f",
            '{{index .Options "com.docker.network.bridge.name"}}',
        )
        name = r.stdout.strip()
        return name if r.returncode == 0 and name and name != "<no value>" else None

    def check_veths(self, running: dict[str, int]) -> list[str]:
        """Every veth on the daemon's bridge belongs to a running container (all ours are bridged)."""
        bridge = self.bridge()
        if not bridge:
            return []
        out = subprocess.run(
            ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
        ).stdout
        veths = [line.split(":")[1].strip() for line in out.splitlines() if line.strip()]
        if len(veths) > len(running):
            return [
                f"leaked veth: {len(veths)} on {bridge} for {len(running)} running containers ({', '.join(veths)})"
            ]
        return []

    def check_nft(self, running: dict[str, int]) -> list[str]:
        """No nft rule names the address of a container that is not running."""
        bridge = self.bridge()
        if not bridge:
            return []
        live = {
            self.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", c).stdout.strip()
            for c in running
        }
        r = subprocess.run(
            ["nft", "list", "table", "ip", f"skiff_{bridge}"], capture_output=True, text=True
        )
        if r.returncode != 0:
            return []
        subnet = self.docker(
            "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"
        ).stdout.strip()
        prefix = subnet.rsplit(".", 1)[0] + "." if subnet else None
        stale = set()
        for ip in re.findall(r"\b(\d+\.\d+\.\d+\.\d+)\b", r.stdout):
            if (
                prefix
                and ip.startswith(prefix)
                and ip != subnet
                and not ip.endswith(".0")
                and ip not in live
            ):
                stale.add(ip)
        return [f"nft rule for a gone container address {ip}" for ip in sorted(stale)]


# ---- rounds ---------------------------------------------------------------------------------


class CrashRun:
    """Owns one test daemon for a whole run; `round(i)` is one kill -9 and its checks."""

    OPS = ("load", "build", "run", "rm", "start")

    def __init__(
        self,
        root: Path,
        rootfs: Path,
        helper_env: dict[str, str],
        seed: int,
        log: Callable[[str], None],
    ) -> None:
        self.mod = daemon_module()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.log = log
        self.d = self.mod.start_daemon(root, helper_env, self.mod.default_runtime_args(), rootfs)
        self.check = Checker(self.d)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(rootfs), arcname=".")
        self.base_layer = buf.getvalue()
        self.survivors: dict[str, str] = {}  # name -> the line its log must hold
        self.unavailable: dict[str, str] = {}
        self.network = "n/a: skiffd gives containers no network address yet (no veth, no nft rule)"
        r = self.d.docker(
            "build",
            "-q",
            "-t",
            "crash-probe:1",
            "-",
            input=b"FROM busybox\nRUN true\n",
            check=False,
            timeout=120,
        )
        if r.returncode != 0:
            self.unavailable["build"] = (r.stderr.strip().splitlines() or ["?"])[-1][:200]

    def close(self) -> None:
        stop_daemon(self.d)

    def _op(self, op: str, i: int) -> subprocess.Popen[str]:
        env = self.d.env
        dk = self.mod.DOCKER
        if op == "load":
            path = self.root / f"img-{i}.tar"
            path.write_bytes(image_archive(self.base_layer, f"crash-img:{i}", 8 << 20))
            argv = [dk, "load", "-q", "-i", str(path)]
        elif op == "build":
            ctx = self.root / f"ctx-{i}"
            ctx.mkdir(exist_ok=True)
            (ctx / "Dockerfile").write_text(
                f"FROM busybox\nRUN echo {i} > /round && dd if=/dev/urandom of=/blob bs=1M count=4\n"
            )
            argv = [dk, "build", "-q", "-t", f"crash-build:{i}", str(ctx)]
        elif op == "run":
            argv = [
                dk,
                "run",
                "--name",
                f"crash-run-{i}",
                "busybox",
                "sh",
                "-c",
                f"echo run-{i}; sleep 0.3",
            ]
        elif op == "rm":
            self.d.docker(
                "run", "-d", "--name", f"crash-rm-{i}", "busybox", "sleep", "600", check=False
            )
            argv = [dk, "rm", "-f", f"crash-rm-{i}"]
        else:  # start: a container that must survive the crash and be adopted
            name = f"crash-survivor-{i}"
            self.survivors[name] = f"hello-{i}"
            argv = [
                dk,
                "run",
                "-d",
                "--name",
                name,
                "busybox",
                "sh",
                "-c",
                f"echo hello-{i}; exec sleep 3600",
            ]
        return subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def round(self, i: int) -> RoundResult:
        ops = [o for o in self.OPS if o not in self.unavailable]
        op = ops[i % len(ops)] if i < len(ops) else self.rng.choice(ops)
        delay = self.rng.uniform(0.0, 0.8)
        res = RoundResult(i, op, delay)
        t0 = time.monotonic()
        before = set(self.check.running())
        proc = self._op(op, i)
        time.sleep(delay)
        self.d.kill9()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.d.start()
        running = self.check.running()
        for cid in before - set(running):
            res.problems.append(
                f"container {cid[:12]} was running before the kill and is not after it"
            )
        for name, line in list(self.survivors.items()):
            state = self.check.docker("inspect", "-f", "{{.State.Running}}", name)
            if state.returncode != 0:
                if op == "start" and name == f"crash-survivor-{i}":
                    del self.survivors[name]  # killed before its create was recorded: fine
                    continue
                res.problems.append(f"survivor {name} is gone: {state.stderr.strip()[:200]}")
                continue
            if state.stdout.strip() != "true":
                if name == f"crash-survivor-{i}":
                    del self.survivors[name]  # killed before it started
                    continue
                res.problems.append(f"survivor {name} is not running after the restart")
            logs = self.check.docker("logs", name)
            if line not in logs.stdout:
                res.problems.append(
                    f"survivor {name}: logs lost ({logs.stdout[-100:]!r} {logs.stderr[-200:]!r})"
                )
                del self.survivors[name]  # reported once, in the round that lost them
        res.problems += check_blobs(self.d.data_root)
        res.problems += self.check.check_mounts(running)
        res.problems += self.check.check_cgroups(running)
        res.problems += self.check.check_images()
        if running and self.check.network_wired(next(iter(running))):
            self.network = (
                "checked: veths on the daemon's bridge, nft rules naming container addresses"
            )
            res.problems += self.check.check_veths(running)
            res.problems += self.check.check_nft(running)
        self._tidy(i)
        res.seconds = time.monotonic() - t0
        self.log(
            f"round {i}: {op} killed after {delay:.2f}s: "
            + ("clean" if res.clean else "; ".join(res.problems))
        )
        return res

    def _tidy(self, i: int) -> None:
        """Keep the state small: drop this round's images and finished containers, keep 2 survivors."""
        for name in sorted(self.survivors)[:-2]:
            r = self.d.docker("rm", "-f", name, check=False)
            if r.returncode == 0:
                del self.survivors[name]
        keep = set(self.survivors)
        names = self.d.docker("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        stale = [n for n in names if n not in keep]
        if stale:
            self.d.docker("rm", "-f", *stale, check=False, timeout=120)
        for ref in (f"crash-img:{i}", f"crash-build:{i}"):
            self.d.docker("rmi", "-f", ref, check=False)
        for p in (self.root / f"img-{i}.tar",):
            p.unlink(missing_ok=True)


def disk_full(
    root: Path, rootfs: Path, helper_env: dict[str, str], size_mib: int = 64
) -> list[str]:
    """A tmpfs of `size_mib` as the data root: load a small image, then one bigger than the disk.
    Returns problems (empty when the error is a clear ENOSPC and the store is intact)."""
    mod = daemon_module()
    data = root / "data"
    data.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "skiff-hardening-full", str(data)],
        check=True,
    )
    problems: list[str] = []
    d = None
    try:
        d = mod.start_daemon(root, helper_env, mod.default_runtime_args(), rootfs)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(rootfs), arcname=".")
        big = root / "big.tar"  # outside the tmpfs
        big.write_bytes(image_archive(buf.getvalue(), "crash-big:1", (size_mib + 16) << 20))
        r = d.docker("load", "-i", str(big), check=False, timeout=300)
        text = (r.stdout + r.stderr).lower()
        if r.returncode == 0 and "error" not in text:
            problems.append("loading an image bigger than the disk succeeded?")
        if "no space left on device" not in text and "enospc" not in text:
            problems.append(
                f"load on a full disk: not a clear ENOSPC error: {(r.stdout + r.stderr).strip()[:300]!r}"
            )
        if "500" in text or "internal error" in text:
            problems.append(f"load on a full disk answered an internal error: {text[:300]!r}")
        problems += check_blobs(d.data_root)
        r = d.docker("run", "--rm", "busybox", "echo", "still-fine", check=False)
        if r.stdout.strip() != "still-fine":
            problems.append(
                f"the store is not intact after ENOSPC: busybox does not run: {r.stderr.strip()[:300]}"
            )
        if d.docker("image", "inspect", "crash-big:1", check=False).returncode == 0:
            problems.append("a half-loaded image is visible after ENOSPC")
        big.unlink()
        return problems
    finally:
        if d is not None:
            stop_daemon(d)
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
