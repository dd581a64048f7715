from __future__ import annotations

import os
from pathlib import Path

import pytest

from skiff.errors import Conflict, InvalidArgument, NotFound
from skiff.volumes.local import ANONYMOUS_LABEL, LocalVolumes


def _mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in open("/proc/self/mountinfo"))


def test_named_volume_lifecycle_and_in_use(tmp_path: Path) -> None:
    vols = LocalVolumes(tmp_path / "volumes")
    v = vols.create("data", labels={"a": "b"})
    assert vols.create("data") is v  # idempotent, as docker volume create
    host = vols.acquire("data", "c1")
    (host / "file").write_text("kept")
    with pytest.raises(Conflict, match="volume is in use"):
        vols.remove("data")
    vols.release("data", "c1")
    again = LocalVolumes(tmp_path / "volumes")  # a restarted daemon sees the same content
    assert (again.mountpoint("data") / "file").read_text() == "kept"
    assert again.inspect(again.get("data"))["Labels"] == {"a": "b"}
    again.remove("data")
    with pytest.raises(NotFound):
        again.get("data")
    assert not (tmp_path / "volumes" / "data").exists()


def test_tmpfs_volume_is_mounted_while_used(tmp_path: Path) -> None:
    vols = LocalVolumes(tmp_path / "volumes")
    vols.create("scratch", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    mp = vols.acquire("scratch", "c1")
    try:
        assert _mounted(mp)
        vols.acquire("scratch", "c2")
        vols.release("scratch", "c1")
        assert _mounted(mp)
    finally:
        vols.release("scratch", "c2")
    assert not _mounted(mp)
    vols.remove("scratch")


def test_bind_backed_volume_and_bad_options(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("1")
    vols = LocalVolumes(tmp_path / "volumes")
    vols.create("bv", options={"type": "none", "o": "bind", "device": str(src)})
    mp = vols.acquire("bv", "c")
    try:
        assert (mp / "x").read_text() == "1"
    finally:
        vols.release("bv", "c")
    with pytest.raises(InvalidArgument, match="invalid option key"):
        vols.create("bad", options={"nope": "1"})
    with pytest.raises(InvalidArgument, match="invalid characters"):
        vols.create("/abs")
    with pytest.raises(InvalidArgument):
        vols.create(
            "bad2", options={"type": "none", "o": "bind", "device": str(tmp_path / "missing")}
        )
    assert {v.name for v in vols.volumes()} == {"bv"}


def test_copy_up_only_once_and_only_when_empty(tmp_path: Path) -> None:
    image_dir = tmp_path / "image" / "var" / "lib" / "app"
    (image_dir / "sub").mkdir(parents=True)
    (image_dir / "sub" / "conf").write_text("from image")
    os.chown(image_dir / "sub" / "conf", 123, 456)
    os.symlink("sub/conf", image_dir / "link")
    vols = LocalVolumes(tmp_path / "volumes")
    anon = vols.create(None)
    assert ANONYMOUS_LABEL in anon.labels and len(anon.name) == 64
    assert vols.copy_up(anon.name, image_dir)
    got = vols.mountpoint(anon.name)
    assert (got / "sub" / "conf").read_text() == "from image"
    assert (got / "sub" / "conf").stat().st_uid == 123
    assert os.readlink(got / "link") == "sub/conf"
    (got / "sub" / "conf").unlink()
    assert not vols.copy_up(anon.name, image_dir)  # never twice
    deleted, _ = vols.prune()
    assert deleted == [anon.name]
