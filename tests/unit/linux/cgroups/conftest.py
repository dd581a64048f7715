"""A fake cgroupfs in a temp dir: hierarchies as directories, control files as regular files.

The kernel fills a new cgroup directory with its control files; `fill()` plays that part for a
directory a manager has just created.
"""

from __future__ import annotations

from pathlib import Path

import pytest

V1_FILES: dict[str, dict[str, str]] = {
    "cpu": {
        "cpu.shares": "1024\n",
        "cpu.cfs_period_us": "100000\n",
        "cpu.cfs_quota_us": "-1\n",
        "cpu.cfs_burst_us": "0\n",
        "cpu.rt_period_us": "1000000\n",
        "cpu.rt_runtime_us": "0\n",
        "cpu.idle": "0\n",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
    },
    "cpuacct": {
        "cpuacct.usage": "0\n",
        "cpuacct.usage_percpu": "0 0 \n",
        "cpuacct.usage_user": "0\n",
        "cpuacct.usage_sys": "0\n",
        "cpuacct.stat": "user 0\nsystem 0\n",
    },
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712\n",
        "memory.memsw.limit_in_bytes": "9223372036854771712\n",
        "memory.soft_limit_in_bytes": "9223372036854771712\n",
        "memory.swappiness": "60\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.usage_in_bytes": "0\n",
        "memory.max_usage_in_bytes": "0\n",
        "memory.memsw.usage_in_bytes": "0\n",
        "memory.failcnt": "0\n",
        "memory.stat": "cache 0\nrss 0\n",
        "memory.kmem.tcp.limit_in_bytes": "9223372036854771712\n",
        "memory.use_hierarchy": "1\n",
    },
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "blkio": {
        "blkio.bfq.weight": "100\n",
        "blkio.bfq.weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "Total 0\n",
        "blkio.throttle.io_serviced_recursive": "Total 0\n",
        "blkio.bfq.io_service_bytes_recursive": "Total 0\n",
        "blkio.bfq.io_serviced_recursive": "Total 0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "systemd": {},
}
V1_COMMON = {"cgroup.procs": "", "tasks": "", "notify_on_release": "0\n"}

V2_FILES: dict[str, str] = {
    "cgroup.procs": "",
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids\n",
    "cgroup.subtree_control": "\n",
    "cgroup.freeze": "0\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.kill": "",
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.max.burst": "0\n",
    "cpu.idle": "0\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "cpuset.cpus": "\n",
    "cpuset.mems": "\n",
    "memory.max": "max\n",
    "memory.high": "max\n",
    "memory.swap.max": "max\n",
    "memory.low": "0\n",
    "memory.current": "0\n",
    "memory.stat": "anon 0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "io.weight": "default 100\n",
    "io.max": "",
    "io.stat": "",
    "hugetlb.2MB.max": "max\n",
    "hugetlb.2MB.current": "0\n",
    "pids.max": "max\n",
    "pids.current": "0\n",
}

OWN_MEMORY = "/process_api/28620bbc"


def write_files(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)


def fill_v1(directory: Path, hierarchy: str) -> None:
    """What the kernel puts in a new v1 cgroup directory of `hierarchy`."""
    write_files(directory, {**V1_COMMON, **V1_FILES[hierarchy]})


def fill_v2(directory: Path, *, drop: tuple[str, ...] = ()) -> None:
    write_files(directory, {k: v for k, v in V2_FILES.items() if not k.startswith(drop)})


@pytest.fixture
def v1_root(tmp_path: Path) -> Path:
    """A hybrid host like this one: v1 hierarchies plus an empty cgroup2 at unified/."""
    root = tmp_path / "cgroup"
    for hierarchy in V1_FILES:
        fill_v1(root / hierarchy, hierarchy)
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    fill_v1(root / "memory" / OWN_MEMORY.lstrip("/"), "memory")
    write_files(root / "unified", {"cgroup.controllers": "hugetlb\n", "cgroup.procs": ""})
    return root


@pytest.fixture
def v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup2"
    fill_v2(root)
    fill_v2(root / "user.slice" / "app.service")
    return root


HYBRID_PROC_CGROUP = (
    "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
    f"4:memory:{OWN_MEMORY}\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n"
)
V2_PROC_CGROUP = "0::/user.slice/app.service\n"


def _proc(tmp_path: Path, text: str) -> str:
    """A fake /proc/self/cgroup in its own dir (no mountinfo beside it: layout from the tree)."""
    d = tmp_path / "proc-self"
    d.mkdir(exist_ok=True)
    path = d / "cgroup"
    path.write_text(text)
    return str(path)


@pytest.fixture
def v1_proc(tmp_path: Path) -> str:
    return _proc(tmp_path, HYBRID_PROC_CGROUP)


@pytest.fixture
def v2_proc(tmp_path: Path) -> str:
    return _proc(tmp_path, V2_PROC_CGROUP)


class Fake:
    """The kernel's part, for tests: fill directories with control files."""

    own_memory = OWN_MEMORY
    fill_v1 = staticmethod(fill_v1)
    fill_v2 = staticmethod(fill_v2)
    write_files = staticmethod(write_files)


@pytest.fixture
def fake() -> type[Fake]:
    return Fake
