"""One suite for every CgroupManager implementation, each against its fake cgroupfs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from skiff.linux.cgroups import CgroupManager, load_manager, open_manager

V1_HIERARCHY = {
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


@pytest.fixture(params=["v1", "v2"])
def manager(
    request: pytest.FixtureRequest,
    v1_root: Path,
    v1_proc: str,
    v2_root: Path,
    v2_proc: str,
    fake: Any,
) -> CgroupManager:
    if request.param == "v1":
        m = open_manager(None, "k1", root=str(v1_root), proc_self_cgroup=v1_proc)
        for controller, path in m.paths().items():
            if controller == "unified":
                fake.write_files(Path(path), {"cgroup.procs": ""})
            else:
                fake.fill_v1(Path(path).parent, V1_HIERARCHY[controller])
                fake.fill_v1(Path(path), V1_HIERARCHY[controller])
    else:
        m = open_manager(None, "k1", root=str(v2_root), proc_self_cgroup=v2_proc)
        leaf = Path(m.paths()["unified"])
        fake.fill_v2(leaf.parent)
        fake.fill_v2(leaf, drop=("cgroup.events",))
        # This fake kernel freezes at once.
        (leaf / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    m.create()
    return m


def _sync_v2_events(m: CgroupManager) -> None:
    """Play the kernel for v2: cgroup.events follows cgroup.freeze."""
    if m.version == 2:
        leaf = Path(m.paths()["unified"])
        frozen = (leaf / "cgroup.freeze").read_text().strip()
        (leaf / "cgroup.events").write_text(f"populated 0\nfrozen {frozen}\n")


def test_version_and_paths(manager: CgroupManager) -> None:
    assert manager.version in (1, 2)
    paths = manager.paths()
    assert paths and all(os.path.isabs(p) and "/skiff/k1" in p for p in paths.values())


def test_create_is_idempotent(manager: CgroupManager) -> None:
    manager.create()
    assert all(os.path.isdir(p) for p in manager.paths().values())


def test_apply_pids_limit_and_update(manager: CgroupManager) -> None:
    manager.apply({"pids": {"limit": 10}})
    manager.apply({"pids": {"limit": 11}})
    pids_dir = manager.paths().get("pids") or manager.paths()["unified"]
    assert Path(pids_dir, "pids.max").read_text() == "11"


def test_add_process_then_pids(manager: CgroupManager) -> None:
    manager.add_process(777)
    assert manager.pids() == [777]


def test_freeze_thaw(manager: CgroupManager, monkeypatch: pytest.MonkeyPatch) -> None:
    from skiff.linux.cgroups import fs as cgfs

    real_write = cgfs.write_file

    def write_and_sync(path: str, value: str) -> None:
        real_write(path, value)
        _sync_v2_events(manager)

    monkeypatch.setattr("skiff.linux.cgroups.freezer.write_file", write_and_sync)
    manager.freeze()
    assert manager.is_frozen()
    manager.thaw()
    assert not manager.is_frozen()


def test_stats_has_the_common_sections(manager: CgroupManager) -> None:
    stats = manager.stats()
    assert {"cpu", "memory", "pids", "blkio"} <= set(stats)
    assert set(stats["cpu"]) == {"usage", "throttling"}
    assert {"usage", "max_usage", "limit", "stats", "oom_kill"} <= set(stats["memory"])


def test_round_trip_then_destroy_twice(manager: CgroupManager) -> None:
    again = load_manager(manager.to_dict())
    assert again.paths() == manager.paths() and again.version == manager.version
    again.destroy()
    again.destroy()
    assert not any(os.path.exists(p) for p in manager.paths().values())
