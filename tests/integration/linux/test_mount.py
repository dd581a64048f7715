"""skiff.linux.mount on the real kernel: mount_all of snapshot-style mounts, unmount_all."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.errors import InvalidArgument
from skiff.linux import mount as m
from skiff.types.mount import Mount


def mounted_under(target: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return m.mounts_under(str(target), f.read())


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    t = tmp_path / "mnt"
    t.mkdir()
    try:
        yield t
    finally:
        if mounted_under(t):
            subprocess.run(["umount", "-R", "-l", str(t)], check=False)


def test_overlay_with_tmpfs_and_bind_then_unmount_all(tmp_path: Path, target: Path) -> None:
    lower1, lower2, upper, work, data = (
        tmp_path / n for n in ("l1", "l2", "upper", "work", "data")
    )
    for d in (lower1, lower2, upper, work, data):
        d.mkdir()
    (lower1 / "a").write_text("lower1\n")
    (lower2 / "a").write_text("lower2 wins\n")
    (lower1 / "sub").mkdir()
    (data / "file").write_text("data\n")
    mounts = [
        Mount(
            "overlay",
            "overlay",
            (f"lowerdir={lower2}:{lower1}", f"upperdir={upper}", f"workdir={work}"),
        ),
        Mount("tmpfs", "tmpfs", ("size=1m", "mode=700"), target="sub"),
        Mount("bind", str(data), ("rbind", "ro"), target="sub"),
    ]
    m.mount_all(mounts, str(target))
    assert (target / "a").read_text() == "lower2 wins\n"
    (target / "new").write_text("x")
    assert (upper / "new").exists()
    assert (target / "sub" / "file").read_text() == "data\n"
    with pytest.raises(OSError):
        (target / "sub" / "other").write_text("ro")
    assert len(mounted_under(target)) == 3
    busy = open(target / "sub" / "file")  # keeps the bind busy: unmount goes lazy
    try:
        m.unmount_all(str(target))
    finally:
        busy.close()
    assert mounted_under(target) == []
    assert os.listdir(target) == []


def test_overlay_with_more_layers_than_mount2_takes(tmp_path: Path, target: Path) -> None:
    layers = []
    for i in range(120):
        layer = tmp_path / f"layer-{i:03d}-with-a-rather-long-snapshot-directory-name"
        layer.mkdir()
        (layer / f"f{i}").write_text(str(i))
        (layer / "top").write_text(str(i))
        layers.append(str(layer))
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    data = f"lowerdir={':'.join(reversed(layers))}"
    assert len(data) > os.sysconf("SC_PAGESIZE")
    m.mount_all(
        [Mount("overlay", "overlay", (data, f"upperdir={upper}", f"workdir={work}"))], str(target)
    )
    try:
        assert (target / "f0").read_text() == "0" and (target / "f119").read_text() == "119"
        assert (target / "top").read_text() == "119"  # the first lowerdir is the top layer
    finally:
        m.unmount_all(str(target))
    assert mounted_under(target) == []


def test_recursive_readonly_covers_submounts(tmp_path: Path, target: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    m.mount("tmpfs", str(src / "sub"), "tmpfs", 0, "size=1m")
    try:
        m.mount_all([Mount("bind", str(src), ("rbind", "rro"))], str(target))
        with pytest.raises(OSError):
            (target / "sub" / "x").write_text("no")
        (src / "sub" / "y").write_text("the source stays writable")
    finally:
        m.unmount_all(str(target))
        m.unmount_all(str(src))
    assert mounted_under(target) == [] and mounted_under(src) == []


def test_mount_all_failure_unmounts_what_it_did(tmp_path: Path, target: Path) -> None:
    mounts = [Mount("tmpfs", "tmpfs", ("size=1m",)), Mount("tmpfs", "tmpfs", ("size=nonsense",))]
    with pytest.raises(InvalidArgument, match=r"mounts\[1\]: mount tmpfs .*EINVAL"):
        m.mount_all(mounts, str(target))
    assert mounted_under(target) == []


def test_unmount_all_on_nothing_mounted(target: Path) -> None:
    m.unmount_all(str(target))
    assert mounted_under(target) == []
