"""One sample of a container's resource usage in Docker's stats JSON, from cgroup v1 files."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from skiff.engine.state import Container, now_rfc3339

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _int(path: str) -> int:
    text = _read(path).strip()
    try:
        return int(text)
    except ValueError:
        return 0


def _kv(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def system_cpu_usage() -> int:
    for line in _read("/proc/stat").splitlines():
        if line.startswith("cpu "):
            return sum(int(v) for v in line.split()[1:8]) * 1_000_000_000 // CLOCK_TICKS
    return 0


def network_stats(pid: int) -> dict[str, Any]:
    nets: dict[str, Any] = {}
    if not pid:
        return nets
    for line in _read(f"/proc/{pid}/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        v = rest.split()
        if name == "lo" or len(v) < 16:
            continue
        nets[name] = {
            "rx_bytes": int(v[0]),
            "rx_packets": int(v[1]),
            "rx_errors": int(v[2]),
            "rx_dropped": int(v[3]),
            "tx_bytes": int(v[8]),
            "tx_packets": int(v[9]),
            "tx_errors": int(v[10]),
            "tx_dropped": int(v[11]),
        }
    return nets


def collect(c: Container, cgroup_dirs: Callable[[Container, str], list[str]]) -> dict[str, Any]:
    def first(controller: str) -> str:
        dirs = cgroup_dirs(c, controller)
        return dirs[0] if dirs else ""

    running = bool(c.state.get("Running"))
    cpuacct, memory, pids, blkio = (
        first(k) if running else "" for k in ("cpuacct", "memory", "pids", "blkio")
    )
    percpu = (
        [int(x) for x in _read(os.path.join(cpuacct, "cpuacct.usage_percpu")).split()]
        if cpuacct
        else []
    )
    cpu_stat = _kv(os.path.join(cpuacct, "cpuacct.stat")) if cpuacct else {}
    throttle = _kv(os.path.join(first("cpu"), "cpu.stat")) if running and first("cpu") else {}
    cpu = {
        "cpu_usage": {
            "total_usage": _int(os.path.join(cpuacct, "cpuacct.usage")) if cpuacct else 0,
            "percpu_usage": percpu,
            "usage_in_kernelmode": cpu_stat.get("system", 0) * 1_000_000_000 // CLOCK_TICKS,
            "usage_in_usermode": cpu_stat.get("user", 0) * 1_000_000_000 // CLOCK_TICKS,
        },
        "system_cpu_usage": system_cpu_usage() if running else 0,
        "online_cpus": os.cpu_count() or 1,
        "throttling_data": {
            "periods": throttle.get("nr_periods", 0),
            "throttled_periods": throttle.get("nr_throttled", 0),
            "throttled_time": throttle.get("throttled_time", 0),
        },
    }
    mem: dict[str, Any] = {}
    if memory:
        mem = {
            "usage": _int(os.path.join(memory, "memory.usage_in_bytes")),
            "max_usage": _int(os.path.join(memory, "memory.max_usage_in_bytes")),
            "failcnt": _int(os.path.join(memory, "memory.failcnt")),
            "limit": min(
                _int(os.path.join(memory, "memory.limit_in_bytes")),
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            ),
            "stats": _kv(os.path.join(memory, "memory.stat")),
        }
    blk: list[dict[str, Any]] = []
    if blkio:
        for line in _read(os.path.join(blkio, "blkio.throttle.io_service_bytes")).splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                major, minor = parts[0].split(":")
                blk.append(
                    {
                        "major": int(major),
                        "minor": int(minor),
                        "op": parts[1].lower(),
                        "value": int(parts[2]),
                    }
                )
    pid_limit = _read(os.path.join(pids, "pids.max")).strip() if pids else ""
    return {
        "read": now_rfc3339(),
        "preread": "0001-01-01T00:00:00Z",
        "id": c.id,
        "name": "/" + c.name,
        "pids_stats": {
            "current": _int(os.path.join(pids, "pids.current")) if pids else 0,
            **({"limit": int(pid_limit)} if pid_limit.isdigit() else {}),
        },
        "blkio_stats": {
            "io_service_bytes_recursive": blk or None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu,
        "precpu_stats": {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": mem,
        "networks": network_stats(int(c.state.get("Pid") or 0)) if running else {},
    }
