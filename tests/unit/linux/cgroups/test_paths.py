"""Layout detection and path rules, against fake cgroupfs trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.errors import InvalidArgument
from skiff.linux.cgroups import V1Manager, V2Manager, load_manager, open_manager
from skiff.linux.cgroups.paths import detect, expand_slice, parse_proc_cgroup


def test_parse_proc_cgroup_splits_joint_controllers() -> None:
    parsed = parse_proc_cgroup("4:cpu,cpuacct:/a\n2:name=systemd:/b\n0::/c\n")
    assert parsed == {"cpu": "/a", "cpuacct": "/a", "name=systemd": "/b", "": "/c"}


def test_detect_hybrid_and_v2_from_the_tree(v1_root: Path, v2_root: Path, v1_proc: str) -> None:
    hybrid = detect(str(v1_root), v1_proc)
    assert hybrid.mode == "hybrid"
    assert hybrid.unified is not None and hybrid.unified.mount == str(v1_root / "unified")
    controllers = {c for h in hybrid.hierarchies for c in h.controllers}
    assert {"cpu", "memory", "pids", "freezer", "name=systemd"} <= controllers
    assert detect(str(v2_root), v1_proc).mode == "v2"


def test_detect_joint_hierarchy_and_symlinks(tmp_path: Path, v1_proc: str) -> None:
    root = tmp_path / "cg"
    (root / "cpu,cpuacct").mkdir(parents=True)
    (root / "memory").mkdir()
    (root / "cpu").symlink_to("cpu,cpuacct")
    layout = detect(str(root), v1_proc)
    assert layout.mode == "v1"
    assert sorted(h.controllers for h in layout.hierarchies) == [("cpu", "cpuacct"), ("memory",)]


def test_detect_reads_mountinfo_beside_proc_cgroup(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("0::/\n")
    (proc / "mountinfo").write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n"
        "32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )
    layout = detect("/sys/fs/cgroup", str(proc / "cgroup"))
    assert layout.mode == "hybrid"
    (h,) = layout.hierarchies
    assert (h.mount, h.mount_root, h.controllers) == (
        "/sys/fs/cgroup/cpu,cpuacct",
        "/docker/abc",
        ("cpu", "cpuacct"),
    )


def test_v1_nests_under_own_cgroup_per_hierarchy(v1_root: Path, v1_proc: str, fake: Any) -> None:
    m = open_manager(None, "c1", root=str(v1_root), proc_self_cgroup=v1_proc)
    assert isinstance(m, V1Manager) and m.version == 1
    paths = m.paths()
    assert paths["memory"] == str(v1_root / "memory" / fake.own_memory.lstrip("/") / "skiff" / "c1")
    assert paths["cpu"] == str(v1_root / "cpu" / "skiff" / "c1")
    assert paths["name=systemd"] == str(v1_root / "systemd" / "skiff" / "c1")
    assert paths["unified"] == str(v1_root / "unified" / "skiff" / "c1")
    for path in paths.values():
        assert "/skiff/" in path


def test_relative_cgroups_path_goes_in_the_skiff_subtree(v2_root: Path, v2_proc: str) -> None:
    m = open_manager("pods/web", "c1", root=str(v2_root), proc_self_cgroup=v2_proc)
    assert isinstance(m, V2Manager)
    assert m.paths() == {
        "unified": str(v2_root / "user.slice" / "app.service" / "skiff" / "pods" / "web")
    }


def test_absolute_path_is_honoured_as_given(v2_root: Path, v2_proc: str) -> None:
    m = open_manager("/machine/c1", "c1", root=str(v2_root), proc_self_cgroup=v2_proc)
    assert m.paths() == {"unified": str(v2_root / "machine" / "c1")}


def test_systemd_form_maps_to_a_scope_path(v2_root: Path, v2_proc: str) -> None:
    m = open_manager(
        "system-web.slice:docker:abc", "abc", root=str(v2_root), proc_self_cgroup=v2_proc
    )
    assert m.paths() == {
        "unified": str(v2_root / "system.slice" / "system-web.slice" / "docker-abc.scope")
    }
    assert expand_slice("a-b-c.slice", "f") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice", "f") == "/"


@pytest.mark.parametrize("bad", ["../escape", "a/../../b", "/", "/.."])
def test_paths_that_escape_or_name_a_root_are_refused(
    bad: str, v2_root: Path, v2_proc: str
) -> None:
    with pytest.raises(InvalidArgument, match=r"linux\.cgroupsPath"):
        open_manager(bad, "c1", root=str(v2_root), proc_self_cgroup=v2_proc)


def test_bad_slice_names_are_refused(v2_root: Path, v2_proc: str) -> None:
    with pytest.raises(InvalidArgument, match="slice"):
        open_manager("web:docker:abc", "abc", root=str(v2_root), proc_self_cgroup=v2_proc)


def test_to_dict_round_trips(v1_root: Path, v1_proc: str) -> None:
    m = open_manager(None, "c1", root=str(v1_root), proc_self_cgroup=v1_proc)
    again = load_manager(m.to_dict())
    assert isinstance(again, V1Manager)
    assert again.to_dict() == m.to_dict()


@pytest.mark.parametrize(
    "saved",
    [
        {},
        {"version": 3, "root": "/", "paths": {}},
        {"version": 2, "root": "/", "paths": {"x": "rel"}},
    ],
)
def test_load_refuses_what_to_dict_never_wrote(saved: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="cgroup state"):
        load_manager(saved)
