from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from lib.anchors import missing_packages
from lib.machine import cgroup_mode, cpu_busy_fraction, memory_total, wait_quiet
from workloads import WORKLOADS, select
from workloads.registry import make_oci_image
from workloads.unpack import compare, tree_signature

V1 = "30 1 0:5 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
V2_UNIFIED = "31 1 0:6 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
V2_ROOT = "31 1 0:6 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"


def _stat(user: int, idle: int, iowait: int = 0) -> str:
    return f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\ncpu0 {user} 0 0 {idle} {iowait} 0 0 0 0 0\n"


def test_cpu_busy_fraction_counts_iowait_as_idle() -> None:
    assert cpu_busy_fraction(_stat(100, 100), _stat(150, 150)) == pytest.approx(0.5)
    assert cpu_busy_fraction(_stat(100, 100), _stat(100, 150, 50)) == 0.0
    assert cpu_busy_fraction(_stat(100, 100), _stat(190, 110)) == pytest.approx(0.9)
    assert cpu_busy_fraction(_stat(1, 1), _stat(1, 1)) == 0.0  # no time passed
    with pytest.raises(ValueError):
        cpu_busy_fraction("intr 1\n", "intr 2\n")


def test_wait_quiet_returns_at_once_when_idle_and_gives_up_when_busy(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(_stat(100, 100))  # the same snapshot twice: nothing busy
    assert wait_quiet(window_s=0.01, stat_path=str(stat)) < 0.5

    class Busy:
        """A /proc/stat whose CPUs are always fully busy."""

        n = 0

    def busy_stat() -> None:
        Busy.n += 100
        tmp = tmp_path / "stat.tmp"
        tmp.write_text(_stat(100 + Busy.n, 100))
        tmp.replace(stat)  # a reader sees the old or the new snapshot, never half of one

    import threading

    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            busy_stat()
            stop.wait(0.002)

    t = threading.Thread(target=spin)
    t.start()
    try:
        waited = wait_quiet(window_s=0.02, max_wait_s=0.1, stat_path=str(stat))
    finally:
        stop.set()
        t.join()
    assert 0.1 <= waited < 1.0


def test_cgroup_mode() -> None:
    assert cgroup_mode(V1) == "v1"
    assert cgroup_mode(V1 + V2_UNIFIED) == "hybrid"
    assert cgroup_mode(V2_ROOT) == "v2"
    assert cgroup_mode("") == "none"


def test_memory_total() -> None:
    assert memory_total("MemTotal:       24684000 kB\n") == "23.5 GiB"


def test_missing_packages_maps_binaries_to_debian_packages() -> None:
    present = {"dockerd", "runc", "tar", "zstd", "busybox", "skopeo", "hyperfine"}
    missing = missing_packages(lambda b: f"/usr/bin/{b}" if b in present else None)
    assert missing == ["docker-registry", "docker.io", "podman"]
    assert missing_packages(lambda b: "/x") == []


def test_select_by_name_alias_and_order() -> None:
    assert [m.NAME for m in select(["cli", "pull", "runtime"])] == [
        "runtime-run",
        "registry",
        "cli",
    ]
    assert select(None) == WORKLOADS
    with pytest.raises(KeyError, match="unknown workload 'nope'"):
        select(["nope"])


def test_every_workload_declares_rows_with_unique_ids() -> None:
    ids = [r.id for m in WORKLOADS for quick in (True, False) for r in m.rows(quick)]
    assert len(set(ids)) * 2 == len(ids)
    for m in WORKLOADS:
        full, quick = m.BUDGET
        assert quick <= full


def test_all_goals_of_the_issue_are_in_the_table() -> None:
    goals = {r.id: r.goal for m in WORKLOADS for r in m.rows(False) if r.goal}
    expected = {
        "runtime-run": ("ratio", 1.0), "run-rm": ("ratio", 0.33), "detached": ("ratio", 0.33),
        "ps": ("ratio", 1.0), "idle-rss": ("absolute", 60.0), "ctr-rss": ("absolute", 2.0),
        "pull": ("ratio", 0.7), "unpack-gzip": ("ratio", 1.0), "unpack-zstd": ("ratio", 1.0),
        "build-cold": ("ratio", 1.0), "build-cached": ("ratio", 0.5), "cli-ps": ("ratio", 3.0),
        "net-bridge-added": ("absolute", 0.010),
    }  # fmt: skip
    assert {k: (g.kind, g.limit) for k, g in goals.items()} == expected


def test_tree_signature_and_compare(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / "dir").mkdir(parents=True)
        (d / "dir" / "f").write_text("hello")
        (d / "l").symlink_to("dir/f")
    assert compare(tree_signature(a), tree_signature(b)) == ""
    (b / "dir" / "f").write_text("hello!")
    (b / "extra").write_text("")
    (a / "gone").write_text("")
    diff = compare(tree_signature(a), tree_signature(b))
    assert "1 missing (e.g. gone)" in diff and "1 extra (e.g. extra)" in diff
    assert "1 differ (e.g. dir/f" in diff


def test_make_oci_image_is_a_valid_layout(tmp_path: Path) -> None:
    import hashlib

    digests = make_oci_image(tmp_path / "oci", layers=2, mb=1)
    index = json.loads((tmp_path / "oci" / "index.json").read_text())
    mdesc = index["manifests"][0]
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    manifest_bytes = (blobs / mdesc["digest"].split(":")[1]).read_bytes()
    assert hashlib.sha256(manifest_bytes).hexdigest() == mdesc["digest"].split(":")[1]
    manifest = json.loads(manifest_bytes)
    assert [layer["digest"] for layer in manifest["layers"]] == digests
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_bytes())
    assert len(config["rootfs"]["diff_ids"]) == 2
    for layer in manifest["layers"]:
        path = blobs / layer["digest"].split(":")[1]
        assert path.stat().st_size == layer["size"]
        with tarfile.open(path, "r:gz") as tar:
            (member,) = tar.getmembers()
            assert member.size == 1024 * 1024
    assert digests[0] != digests[1]  # random payloads
