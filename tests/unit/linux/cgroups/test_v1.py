"""V1Manager against a fake hybrid cgroupfs (the layout of this project's CI host)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux.cgroups import V1Manager, open_manager

HIERARCHY_OF = {
    "cpu": "cpu",
    "cpuacct": "cpuacct",
    "cpuset": "cpuset",
    "memory": "memory",
    "devices": "devices",
    "freezer": "freezer",
    "blkio": "blkio",
    "pids": "pids",
    "name=systemd": "systemd",
}


@pytest.fixture
def manager(v1_root: Path, v1_proc: str, fake: Any) -> V1Manager:
    """A created manager whose leaf directories hold the kernel's files."""
    m = open_manager(None, "c1", root=str(v1_root), proc_self_cgroup=v1_proc)
    assert isinstance(m, V1Manager)
    # The kernel would have made the control files in skiff/ and the leaf on mkdir.
    for controller, hierarchy in HIERARCHY_OF.items():
        leaf = Path(m.paths()[controller])
        fake.fill_v1(leaf.parent, hierarchy)
        fake.fill_v1(leaf, hierarchy)
    fake.write_files(Path(m.paths()["unified"]), {"cgroup.procs": ""})
    m.create()
    return m


def read(m: V1Manager, controller: str, file: str) -> str:
    return (Path(m.paths()[controller]) / file).read_text()


def test_create_makes_every_hierarchy_dir_and_is_idempotent(v1_root: Path, v1_proc: str) -> None:
    m = open_manager(None, "c2", root=str(v1_root), proc_self_cgroup=v1_proc)
    m.create()
    m.create()
    for path in m.paths().values():
        assert os.path.isdir(path)
    assert not (v1_root / "cpu" / "c2").exists()


def test_create_copies_cpuset_from_the_parent(manager: V1Manager, v1_root: Path) -> None:
    assert read(manager, "cpuset", "cpuset.cpus") == "0-1"
    assert read(manager, "cpuset", "cpuset.mems") == "0"
    assert (v1_root / "cpuset" / "skiff" / "cpuset.cpus").read_text() == "0-1"


def test_apply_writes_v1_files(manager: V1Manager) -> None:
    manager.apply(
        {
            "memory": {
                "limit": 64 << 20,
                "swap": 128 << 20,
                "reservation": 32 << 20,
                "swappiness": 10,
                "disableOOMKiller": True,
                "kernel": 1 << 20,
            },
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 20},
            "blockIO": {
                "weight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            },
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            ],
        }
    )
    assert read(manager, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert read(manager, "memory", "memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(manager, "memory", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(manager, "memory", "memory.swappiness") == "10"
    assert read(manager, "memory", "memory.oom_control") == "1"
    assert read(manager, "cpu", "cpu.shares") == "512"
    assert read(manager, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(manager, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(manager, "cpuset", "cpuset.cpus") == "0"
    assert read(manager, "pids", "pids.max") == "20"
    # No CFQ here: the BFQ files are the ones that exist.
    assert read(manager, "blkio", "blkio.bfq.weight") == "300"
    assert read(manager, "blkio", "blkio.bfq.weight_device") == "8:0 200"
    assert read(manager, "blkio", "blkio.throttle.read_bps_device") == "8:0 1048576"
    # Each rule is one write; the fake file keeps the last one.
    assert read(manager, "devices", "devices.deny") == "a *:* rwm"
    assert read(manager, "devices", "devices.allow") == "c 1:3 rwm"


def test_apply_again_updates(manager: V1Manager) -> None:
    manager.apply({"pids": {"limit": 20}})
    manager.apply({"pids": {"limit": 0}, "memory": {"limit": -1}})
    assert read(manager, "pids", "pids.max") == "max"
    assert read(manager, "memory", "memory.limit_in_bytes") == "-1"


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"memory": {"limit": 1000}}, "linux.resources.memory.limit: must be ≥ 6 MiB or -1"),
        ({"memory": {"limit": 64 << 20, "swap": 32 << 20}}, "linux.resources.memory.swap"),
        ({"memory": {"swappiness": 101}}, "linux.resources.memory.swappiness"),
        ({"memory": {"limit": "64m"}}, "linux.resources.memory.limit: must be an integer"),
        ({"cpu": {"shares": 1}}, "linux.resources.cpu.shares"),
        ({"cpu": {"quota": 10}}, "linux.resources.cpu.quota"),
        ({"cpu": {"period": 5_000_000}}, "linux.resources.cpu.period"),
        ({"cpu": {"cpus": "0-a"}}, "linux.resources.cpu.cpus"),
        ({"pids": {}}, "linux.resources.pids.limit: is required"),
        ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8}]}}, r"throttleReadBpsDevice\[0\]"),
        ({"devices": [{"allow": True, "type": "x"}]}, r"linux.resources.devices\[0\].type"),
        ({"devices": [{"allow": True, "access": "rwx"}]}, r"devices\[0\].access"),
        ({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}, r"hugepageLimits\[0\].pageSize"),
        ({"memory": 5}, "linux.resources.memory: must be an object"),
    ],
)
def test_bad_values_name_the_field_and_write_nothing(
    manager: V1Manager, resources: dict[str, Any], field: str
) -> None:
    before = read(manager, "pids", "pids.max")
    with pytest.raises(InvalidArgument, match=field):
        manager.apply({"pids": {"limit": 7}, **resources})
    assert read(manager, "pids", "pids.max") == before


def test_a_missing_controller_is_named_only_when_a_value_needs_it(manager: V1Manager) -> None:
    manager.apply({"hugepageLimits": [], "network": {}, "pids": {"limit": 5}})
    with pytest.raises(FailedPrecondition, match="cgroup controller 'hugetlb'"):
        manager.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]})
    with pytest.raises(FailedPrecondition, match="cgroup controller 'net_cls'"):
        manager.apply({"network": {"classID": 0x100001}})


def test_a_missing_file_is_named(manager: V1Manager) -> None:
    os.unlink(Path(manager.paths()["blkio"]) / "blkio.bfq.weight")
    with pytest.raises(FailedPrecondition, match=r"blkio.*blkio\.weight, blkio\.bfq\.weight"):
        manager.apply({"blockIO": {"weight": 300}})


def test_unified_resources_go_to_the_cgroup2_hierarchy_on_hybrid(
    manager: V1Manager, fake: Any
) -> None:
    leaf = Path(manager.paths()["unified"])
    fake.write_files(leaf, {"hugetlb.2MB.max": "max\n"})
    manager.apply({"unified": {"hugetlb.2MB.max": "4194304"}})
    assert (leaf / "hugetlb.2MB.max").read_text() == "4194304"


def test_add_process_writes_every_hierarchy(manager: V1Manager) -> None:
    manager.add_process(4242)
    for controller in HIERARCHY_OF:
        assert read(manager, controller, "cgroup.procs") == "4242"


def test_pids_covers_the_subtree(manager: V1Manager, fake: Any) -> None:
    leaf = Path(manager.paths()["pids"])
    (leaf / "cgroup.procs").write_text("10\n11\n")
    fake.fill_v1(leaf / "sub", "pids")
    (leaf / "sub" / "cgroup.procs").write_text("12\n")
    (Path(manager.paths()["memory"]) / "cgroup.procs").write_text("11\n13\n")
    assert manager.pids() == [10, 11, 12, 13]


def test_freeze_and_thaw(manager: V1Manager) -> None:
    assert not manager.is_frozen()
    manager.freeze()
    assert read(manager, "freezer", "freezer.state") == "FROZEN"
    assert manager.is_frozen()
    manager.thaw()
    assert not manager.is_frozen()


def test_kill_all_signals_members_and_leaves_the_cgroup_thawed(manager: V1Manager) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (Path(manager.paths()["freezer"]) / "cgroup.procs").write_text(f"{child.pid}\n")
        manager.kill_all(signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
        assert not manager.is_frozen()
    finally:
        child.kill()
        child.wait()


def test_stats_parse_v1_files(manager: V1Manager) -> None:
    p = manager.paths()
    Path(p["cpuacct"], "cpuacct.usage").write_text("3000\n")
    Path(p["cpuacct"], "cpuacct.usage_percpu").write_text("1000 2000 \n")
    Path(p["cpuacct"], "cpuacct.usage_user").write_text("2000\n")
    Path(p["cpuacct"], "cpuacct.usage_sys").write_text("1000\n")
    Path(p["cpu"], "cpu.stat").write_text("nr_periods 5\nnr_throttled 2\nthrottled_time 777\n")
    Path(p["memory"], "memory.usage_in_bytes").write_text("4096\n")
    Path(p["memory"], "memory.max_usage_in_bytes").write_text("8192\n")
    Path(p["memory"], "memory.limit_in_bytes").write_text("67108864\n")
    Path(p["memory"], "memory.failcnt").write_text("3\n")
    Path(p["memory"], "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
    )
    Path(p["memory"], "memory.stat").write_text("cache 10\nrss 20\n")
    Path(p["pids"], "pids.current").write_text("2\n")
    Path(p["pids"], "pids.max").write_text("max\n")
    Path(p["blkio"], "blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 100\n8:0 Write 200\nTotal 300\n"
    )
    stats = manager.stats()
    assert stats["cpu"] == {
        "usage": {"total": 3000, "per_cpu": [1000, 2000], "user": 2000, "system": 1000},
        "throttling": {"periods": 5, "throttled_periods": 2, "throttled_time": 777},
    }
    mem = stats["memory"]
    assert (mem["usage"], mem["max_usage"], mem["limit"], mem["failcnt"], mem["oom_kill"]) == (
        4096,
        8192,
        67108864,
        3,
        1,
    )
    assert mem["stats"] == {"cache": 10, "rss": 20}
    assert stats["pids"] == {"current": 2, "limit": None}
    # BFQ counters are empty here, so the throttle ones are used (runc's order).
    assert stats["blkio"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 100},
        {"major": 8, "minor": 0, "op": "Write", "value": 200},
    ]


def test_unlimited_memory_reads_as_none(manager: V1Manager) -> None:
    assert manager.stats()["memory"]["limit"] is None


def test_destroy_removes_leaf_and_empty_skiff_dirs(
    manager: V1Manager, v1_root: Path, fake: Any
) -> None:
    sibling = v1_root / "cpu" / "skiff" / "other"
    fake.fill_v1(sibling, "cpu")
    fake.fill_v1(Path(manager.paths()["cpu"]) / "nested", "cpu")
    manager.destroy()
    for path in manager.paths().values():
        assert not os.path.exists(path)
    assert sibling.is_dir()  # another container's cgroup keeps the cpu skiff subtree
    assert not (v1_root / "memory" / fake.own_memory.lstrip("/") / "skiff").exists()
    assert (v1_root / "memory" / fake.own_memory.lstrip("/")).is_dir()
    manager.destroy()  # idempotent


def test_unlimited_swap_without_swap_accounting_is_not_an_error(manager: V1Manager) -> None:
    os.unlink(Path(manager.paths()["memory"]) / "memory.memsw.limit_in_bytes")
    manager.apply({"memory": {"limit": 64 << 20, "swap": -1}})
    assert read(manager, "memory", "memory.limit_in_bytes") == str(64 << 20)
    with pytest.raises(FailedPrecondition, match=r"memory\.memsw\.limit_in_bytes"):
        manager.apply({"memory": {"limit": 64 << 20, "swap": 128 << 20}})


def test_device_rules_go_through_one_open_file_one_rule_per_write(
    manager: V1Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rw"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    ]
    writes: list[tuple[int, bytes]] = []
    opened: list[str] = []
    real_open, real_write = os.open, os.write

    def spy_open(path: str, flags: int, *args: Any) -> int:
        opened.append(os.path.basename(path))
        return real_open(path, flags, *args)

    def spy_write(fd: int, data: bytes) -> int:
        writes.append((fd, bytes(data)))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", spy_write)
    manager.apply({"devices": rules})
    assert opened.count("devices.allow") == 1  # three allow rules, one open
    assert opened.count("devices.deny") == 1
    assert [w for _, w in writes] == [b"a *:* rwm", b"c 1:3 rwm", b"c 1:5 rw", b"c 136:* rwm"]
    # a plain file shows every rule (the kernel would have taken each write as one rule)
    assert read(manager, "devices", "devices.allow") == "c 1:3 rwmc 1:5 rwc 136:* rwm"
