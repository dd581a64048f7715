"""Load: N concurrent docker-py clients creating, starting, exec-ing, stopping and removing containers.

Each client (a thread with its own docker-py DockerClient on the daemon's unix socket) runs
`iterations` cycles of create -> start -> exec (`true`, exit 0 checked) -> stop -> remove.
Before (after one warm-up cycle) and after the run it samples skiffd: open fds, RSS, mounts
under the daemon's roots, cgroup directories of its containers, veths on its bridge. The
result says what was held (operations/s, latency percentiles) and what leaked.

Used by bench/load/run (long form) and tests/e2e/hardening/test_load.py (20 clients x 3).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEX64 = re.compile(r"[0-9a-f]{64}")
# a container that stops at once on SIGTERM (sleep as pid 1 would ignore it for 10 s)
CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 120 & wait"]


@dataclass
class Sample:
    fds: int
    rss_kib: int
    mounts: int
    cgroups: int
    veths: int


@dataclass
class LoadResult:
    clients: int
    iterations: int
    ops: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    idle: Sample | None = None
    after: Sample | None = None

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, op: str, q: float) -> float:
        values = sorted(self.latencies.get(op, []))
        if not values:
            return 0.0
        return values[min(len(values) - 1, int(q * len(values)))]

    def leaks(self, fd_slack: int = 2) -> list[str]:
        assert self.idle and self.after
        out = []
        if self.after.fds > self.idle.fds + fd_slack:
            out.append(f"skiffd fds {self.idle.fds} -> {self.after.fds}")
        for name in ("mounts", "cgroups", "veths"):
            if getattr(self.after, name) > getattr(self.idle, name):
                out.append(f"{name} {getattr(self.idle, name)} -> {getattr(self.after, name)}")
        return out

    def summary(self) -> str:
        lat = ", ".join(
            f"{op} p50 {statistics.median(v) * 1000:.0f} ms / p95 {self.percentile(op, 0.95) * 1000:.0f} ms"
            for op, v in self.latencies.items()
            if v
        )
        assert self.idle and self.after
        return (
            f"{self.clients} clients x {self.iterations} iterations: {self.ops} operations in {self.seconds:.1f}s "
            f"= {self.ops_per_s:.1f} ops/s, {len(self.errors)} errors; {lat}; "
            f"fds {self.idle.fds} -> {self.after.fds}, RSS {self.idle.rss_kib >> 10} -> {self.after.rss_kib >> 10} MiB, "
            f"mounts {self.idle.mounts} -> {self.after.mounts}, cgroups {self.idle.cgroups} -> {self.after.cgroups}, "
            f"veths {self.idle.veths} -> {self.after.veths}"
        )


def _cgroup_dirs(ids: set[str]) -> int:
    """Container cgroup directories (any v1 hierarchy, any depth under a `skiff` dir) of `ids`."""
    count = 0
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if not hierarchy.is_dir():
            continue
        for _, dirnames, _ in os.walk(hierarchy):
            hits = [d for d in dirnames if d in ids]
            count += len(hits)
            dirnames[:] = [d for d in dirnames if not HEX64.fullmatch(d)]
    return count


def _bridge_veths(bridge: str | None) -> int:
    if not bridge:
        return 0
    out = subprocess.run(
        ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def sample(pid: int, root: Path, known: set[str], bridge: str | None) -> Sample:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    mounts = sum(
        1
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(root) + "/")
    )
    return Sample(fds, rss, mounts, _cgroup_dirs(known), _bridge_veths(bridge))


def run_load(
    host: str,
    pid: int,
    root: Path,
    clients: int,
    iterations: int,
    image: str = "busybox",
    timeout: float = 600,
) -> LoadResult:
    import docker

    res = LoadResult(clients, iterations)
    lock = threading.Lock()
    known: set[str] = set()
    api = docker.DockerClient(base_url=host, timeout=120)
    bridge = None
    try:
        net = api.networks.get("bridge")
        bridge = (net.attrs.get("Options") or {}).get("com.docker.network.bridge.name")
    except Exception:  # no networks yet: no veths to count
        bridge = None

    def cycle(client: Any, tag: str, record: bool) -> None:
        times: dict[str, float] = {}
        t = time.monotonic()
        c = client.containers.create(image, CMD, name=f"load-{tag}-{uuid.uuid4().hex[:6]}")
        with lock:
            known.add(c.id)
        times["create"] = time.monotonic() - t
        try:
            t = time.monotonic()
            c.start()
            times["start"] = time.monotonic() - t
            t = time.monotonic()
            code, out = c.exec_run(["sh", "-c", "echo ok"])
            times["exec"] = time.monotonic() - t
            if code != 0 or out.strip() != b"ok":
                raise RuntimeError(f"exec in {c.id[:12]}: exit {code}, output {out[:100]!r}")
            t = time.monotonic()
            c.stop(timeout=5)
            times["stop"] = time.monotonic() - t
        finally:
            t = time.monotonic()
            c.remove(force=True)
            times["remove"] = time.monotonic() - t
        if record:
            with lock:
                res.ops += len(times)
                for op, dt in times.items():
                    res.latencies.setdefault(op, []).append(dt)

    cycle(api, "warmup", record=False)  # first use loads modules and caches: not a leak
    res.idle = sample(pid, root, known, bridge)

    def worker(n: int) -> None:
        client = docker.DockerClient(base_url=host, timeout=120)
        try:
            for i in range(iterations):
                try:
                    cycle(client, f"{n}-{i}", record=True)
                except Exception as err:  # counted and reported, the load goes on
                    with lock:
                        res.errors.append(f"client {n} iteration {i}: {type(err).__name__}: {err}")
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(max(1.0, timeout - (time.monotonic() - t0)))
    res.seconds = time.monotonic() - t0
    if any(th.is_alive() for th in threads):
        res.errors.append(f"the load did not finish within {timeout:.0f}s")
    time.sleep(1.0)  # let the shims' last exits be reaped
    res.after = sample(pid, root, known, bridge)
    api.close()
    return res
