"""V2Manager against a fake unified cgroupfs (what most users' hosts are)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import FailedPrecondition, InvalidArgument
from skiff.linux.cgroups import V2Manager, open_manager
from skiff.linux.cgroups import fs as cgfs
from skiff.linux.cgroups import v2 as v2mod
from skiff.linux.cgroups.blkio import weight_to_io_weight
from skiff.linux.cgroups.cpu import shares_to_weight


@pytest.fixture
def manager(v2_root: Path, v2_proc: str, fake: Any) -> V2Manager:
    m = open_manager(None, "c1", root=str(v2_root), proc_self_cgroup=v2_proc)
    assert isinstance(m, V2Manager)
    leaf = Path(m.paths()["unified"])
    fake.fill_v2(leaf.parent)
    fake.fill_v2(leaf)
    m.create()
    return m


def leaf(m: V2Manager) -> Path:
    return Path(m.paths()["unified"])


def test_runc_conversions() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000
    assert weight_to_io_weight(10) == 1
    assert weight_to_io_weight(500) == 4950
    assert weight_to_io_weight(1000) == 10000


def test_apply_writes_v2_files_with_conversions(manager: V2Manager) -> None:
    manager.apply(
        {
            "memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "idle": 1},
            "pids": {"limit": -1},
            "blockIO": {
                "weight": 500,
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
            "unified": {"memory.high": "50331648"},
        }
    )
    d = leaf(manager)
    assert (d / "memory.max").read_text() == str(64 << 20)
    assert (d / "memory.swap.max").read_text() == str(32 << 20)  # swap - limit
    assert (d / "memory.low").read_text() == str(16 << 20)
    assert (d / "cpu.weight").read_text() == "39"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpu.idle").read_text() == "1"
    assert (d / "cpuset.cpus").read_text() == "0-1"
    assert (d / "pids.max").read_text() == "max"
    assert (d / "io.weight").read_text() == "4950"
    assert (d / "io.max").read_text() == "8:16 wiops=100"
    assert (d / "hugetlb.2MB.max").read_text() == str(4 << 20)
    assert (d / "memory.high").read_text() == "50331648"


def test_bfq_weight_is_preferred_and_takes_the_raw_value(manager: V2Manager) -> None:
    (leaf(manager) / "io.bfq.weight").write_text("default 100\n")
    manager.apply({"blockIO": {"weight": 500}})
    assert (leaf(manager) / "io.bfq.weight").read_text() == "500"


def test_unlimited_values(manager: V2Manager) -> None:
    manager.apply({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "period": 50000}})
    d = leaf(manager)
    assert (d / "memory.max").read_text() == "max"
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "cpu.max").read_text() == "max 50000"


@pytest.mark.parametrize(
    ("resources", "error", "match"),
    [
        (
            {"memory": {"swap": 1 << 30}},
            InvalidArgument,
            "memory.swap: cgroup v2 cannot limit swap",
        ),
        ({"cpu": {"realtimeRuntime": 950}}, FailedPrecondition, "cpu.realtimeRuntime"),
        ({"unified": {"../etc": "x"}}, InvalidArgument, "linux.resources.unified"),
        ({"unified": {"memory.high": 5}}, InvalidArgument, "must be a string"),
    ],
)
def test_v2_specific_errors(
    manager: V2Manager, resources: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        manager.apply(resources)


def test_a_controller_not_enabled_is_named(v2_root: Path, v2_proc: str, fake: Any) -> None:
    m = open_manager(None, "c2", root=str(v2_root), proc_self_cgroup=v2_proc)
    fake.fill_v2(Path(m.paths()["unified"]), drop=("memory.", "io."))
    m.create()
    m.apply({"pids": {"limit": 10}, "memory": {}})
    with pytest.raises(FailedPrecondition, match=r"controller 'memory'.*memory\.max"):
        m.apply({"memory": {"limit": 64 << 20}})
    with pytest.raises(FailedPrecondition, match="controller 'io'"):
        m.apply({"blockIO": {"weight": 100}})


def test_create_enables_controllers_in_the_levels_it_made(
    v2_root: Path, v2_proc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, str]] = []

    def record(path: str, value: str) -> None:
        written.append((os.path.relpath(path, v2_root), value))

    monkeypatch.setattr(v2mod, "write_file", record)
    m = open_manager("a/b", "c3", root=str(v2_root), proc_self_cgroup=v2_proc)
    m.create()
    # The fake kernel fills no files into new dirs, so only the existing parent offers controllers.
    assert written == [
        ("user.slice/app.service/cgroup.subtree_control", f"+{c}")
        for c in ("cpuset", "cpu", "io", "memory", "hugetlb", "pids")
    ]
    assert os.path.isdir(m.paths()["unified"])


def test_freeze_waits_for_cgroup_events(manager: V2Manager) -> None:
    events = leaf(manager) / "cgroup.events"

    def kernel_freezes() -> None:
        events.write_text("populated 1\nfrozen 1\n")

    timer = threading.Timer(0.05, kernel_freezes)
    timer.start()
    manager.freeze()
    timer.join()
    assert (leaf(manager) / "cgroup.freeze").read_text() == "1"
    assert manager.is_frozen()
    events.write_text("populated 1\nfrozen 0\n")
    manager.thaw()
    assert (leaf(manager) / "cgroup.freeze").read_text() == "0"
    assert not manager.is_frozen()


def test_kill_all_uses_cgroup_kill_for_sigkill(manager: V2Manager) -> None:
    manager.kill_all(signal.SIGKILL)
    assert (leaf(manager) / "cgroup.kill").read_text() == "1"


def test_stats_parse_v2_files(manager: V2Manager) -> None:
    d = leaf(manager)
    (d / "cpu.stat").write_text(
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
        "nr_periods 4\nnr_throttled 1\nthrottled_usec 20\n"
    )
    (d / "memory.current").write_text("8192\n")
    (d / "memory.peak").write_text("16384\n")
    (d / "memory.max").write_text("67108864\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
    (d / "pids.current").write_text("3\n")
    (d / "pids.max").write_text("100\n")
    (d / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n")
    stats = manager.stats()
    assert stats["cpu"] == {
        "usage": {"total": 1_500_000, "per_cpu": [], "user": 1_000_000, "system": 500_000},
        "throttling": {"periods": 4, "throttled_periods": 1, "throttled_time": 20_000},
    }
    mem = stats["memory"]
    assert (mem["usage"], mem["max_usage"], mem["limit"], mem["oom_kill"], mem["failcnt"]) == (
        8192,
        16384,
        67108864,
        1,
        7,
    )
    assert stats["pids"] == {"current": 3, "limit": 100}
    assert stats["blkio"] == {
        "io_service_bytes_recursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 4096},
            {"major": 8, "minor": 0, "op": "Write", "value": 8192},
        ],
        "io_serviced_recursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 1},
            {"major": 8, "minor": 0, "op": "Write", "value": 2},
        ],
    }
    assert stats["hugetlb"] == {"2MB": {"usage": 0, "max_usage": 0, "failcnt": 0}}


def test_destroy_removes_leaf_and_skiff_subtree(manager: V2Manager, v2_root: Path) -> None:
    manager.destroy()
    assert not (v2_root / "user.slice" / "app.service" / "skiff").exists()
    assert (v2_root / "user.slice" / "app.service").is_dir()
    manager.destroy()


def test_ordered_writes_retry_in_reverse_on_einval(
    manager: V2Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memory limit above the current memory+swap limit: the kernel wants memsw raised first."""
    real = cgfs.write_file
    order: list[str] = []

    def kernel(path: str, value: str) -> None:
        name = os.path.basename(path)
        order.append(name)
        if name == "a" and "b" not in order:
            raise OSError(22, "Invalid argument")
        real(path, value)

    (leaf(manager) / "a").write_text("")
    (leaf(manager) / "b").write_text("")
    monkeypatch.setattr(cgfs, "write_file", kernel)
    steps: list[cgfs.Step] = [
        cgfs.Ordered((cgfs.write("x", "a", 1, "f.a"), cgfs.write("x", "b", 2, "f.b")))
    ]
    cgfs.execute(steps, lambda _c: str(leaf(manager)), "root")
    assert order == ["a", "b", "a"]
    assert (leaf(manager) / "a").read_text() == "1"
