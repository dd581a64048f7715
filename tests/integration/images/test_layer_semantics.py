"""A three-layer image with deletes, opaque dirs, hard links, symlinks, setuid bits, devices,
xattrs and a sparse file unpacks to exactly the expected tree (checked through a real overlay
mount and on the native snapshotter); commit then save reproduces the change set."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from skiff_test_threelayer import describe, docker_archive

from skiff.images.layer import apply_layer
from skiff.images.store import ImageStore
from skiff.types import mediatypes as mt


def _load(tmp: Path, layers: list[Path], snapshotter: str) -> tuple[ImageStore, str]:
    store = ImageStore(tmp / f"root-{snapshotter}", snapshotter=snapshotter)
    archive = docker_archive(layers, tmp / "three.tar")
    with open(archive, "rb") as f:
        assert store.load(f) == ["threelayer:test"]
    return store, store.resolve("threelayer:test").id


def check_expected_tree(root: Path) -> None:
    r = root
    assert (r / "data/deleteme").read_text() == "again\n"
    assert not os.path.lexists(r / "data/dir-to-delete")
    assert sorted(os.listdir(r / "opq")) == ["new", "new2"]
    assert (r / "replace/file-becomes-dir").is_dir() and (
        r / "replace/file-becomes-dir/inside"
    ).read_text() == "inside"
    assert (r / "replace/dir-becomes-file").read_text() == "now a file"
    assert (r / "etc/conf").read_text() == "v2\n"
    assert os.readlink(r / "etc/link") == "conf" and (r / "etc/link").read_text() == "v2\n"
    assert not os.path.lexists(r / "etc/abs")
    assert stat.S_IMODE(os.lstat(r / "bin/tool").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(r / "bin/suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(r / "bin/sgid").st_mode) == 0o2755
    h1, h2 = os.lstat(r / "data/hard1"), os.lstat(r / "data/hard2")
    assert h1.st_ino == h2.st_ino and h1.st_nlink == 2
    n1, n2 = os.lstat(r / "newhard/h1"), os.lstat(r / "newhard/h2")
    assert n1.st_ino == n2.st_ino
    chr_ = os.lstat(r / "dev/mychr")
    assert stat.S_ISCHR(chr_.st_mode) and chr_.st_rdev == os.makedev(1, 3)
    blk = os.lstat(r / "dev/myblk")
    assert stat.S_ISBLK(blk.st_mode) and blk.st_rdev == os.makedev(7, 0)
    assert stat.S_ISFIFO(os.lstat(r / "dev/fifo").st_mode)
    assert os.getxattr(r / "xattr/file", "user.foo") == b"bar"
    assert os.getxattr(r / "xattr/file", "user.bin") == b"\x00\xff\x01"
    assert os.getxattr(r / "xattr/file2", "user.x") == b"y"
    big = os.lstat(r / "sparse/big")
    assert big.st_size == 16 << 20
    assert big.st_blocks * 512 < 1 << 20, "sparse file was written densely"
    with open(r / "sparse/big", "rb") as f:
        f.seek(4096)
        assert f.read(4096) == b"A" * 4096
        assert f.read(4096) == b"\0" * 4096
        f.seek((16 << 20) - 4096)
        assert f.read() == b"Z" * 4096
    owned = os.lstat(r / "home/user/owned")
    assert (owned.st_uid, owned.st_gid, stat.S_IMODE(owned.st_mode)) == (1000, 1000, 0o600)
    assert int(os.lstat(r / "etc/conf").st_mtime) == 1_700_000_000


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_three_layers_unpack_to_the_expected_tree(
    tmp_path: Path, three_layers: list[Path], mounter, snapshotter: str
) -> None:
    store, image_id = _load(tmp_path, three_layers, snapshotter)
    rec = store.resolve(image_id)
    assert len(rec.chain_ids) == 3
    mounts = store.prepare_container_rootfs(image_id, "c1")
    merged = mounter.mount(mounts, tmp_path / "merged")
    check_expected_tree(merged)
    # export (no mount needed) gives the same tree as the kernel's merged view
    buf = io.BytesIO()
    store.export_container("c1", buf)
    exported = tmp_path / "exported"
    exported.mkdir()
    buf.seek(0)
    apply_layer(buf, exported, mt.OCI_LAYER, overlay=False)
    assert describe(exported) == describe(merged)
    mounter.umount(merged)
    store.remove_container_rootfs("c1")


def test_overlay_and_native_agree(tmp_path: Path, three_layers: list[Path], mounter) -> None:
    trees = []
    for name in ("overlayfs", "native"):
        store, image_id = _load(tmp_path / name, three_layers, name)
        m = mounter.mount(store.prepare_container_rootfs(image_id, "c"), tmp_path / name / "m")
        trees.append(describe(m))
    assert trees[0] == trees[1]


def _layer_entries(store: ImageStore, image_id: str) -> dict[str, tarfile.TarInfo]:
    top = store.resolve(image_id).layers[-1]
    with store.content.open(top.digest) as f, tarfile.open(fileobj=f, mode="r|*") as tf:
        return {ti.name.rstrip("/"): ti for ti in tf}


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_commit_then_save_reproduces_the_change_set(
    tmp_path: Path, three_layers: list[Path], mounter, snapshotter: str
) -> None:
    store, image_id = _load(tmp_path, three_layers, snapshotter)
    merged = mounter.mount(store.prepare_container_rootfs(image_id, "box"), tmp_path / "box")
    subprocess.run(
        "rm /m/data/hard2 && rm -rf /m/opq && mkdir /m/opq && echo fresh > /m/opq/fresh"
        " && echo v3 >> /m/etc/conf && mkdir -p /m/newdir/deep && echo n > /m/newdir/deep/f"
        " && chmod 0700 /m/bin/suid && rm /m/etc/link && ln -s /nowhere /m/etc/dangling".replace(
            "/m/", f"{merged}/"
        ),
        shell=True,
        check=True,
    )
    want = describe(merged)
    changes = {(c["Path"], c["Kind"]) for c in store.changes("box")}
    assert ("/data/hard2", 2) in changes
    assert ("/etc/link", 2) in changes
    assert ("/etc/conf", 0) in changes
    assert ("/newdir", 1) in changes and ("/newdir/deep/f", 1) in changes
    assert ("/opq/fresh", 1) in changes
    mounter.umount(merged)

    new_id = store.commit(
        "box",
        image_id,
        ref="committed:1",
        config={"Cmd": ["sh"]},
        comment="c",
        author="me",
        changes=["ENV X=1"],
    )
    entries = _layer_entries(store, new_id)
    assert "data/.wh.hard2" in entries and "etc/.wh.link" in entries
    assert "opq/fresh" in entries and "etc/conf" in entries and "newdir/deep/f" in entries
    if snapshotter == "overlayfs":
        assert "opq/.wh..wh..opq" in entries  # rm -rf + mkdir makes the dir opaque
    else:
        assert "opq/.wh.new" in entries and "opq/.wh.new2" in entries
    assert not any(n.startswith("dev/") or n.startswith("sparse") for n in entries)
    cfg = store.inspect(new_id)
    assert (
        cfg["Config"] == {"Cmd": ["sh"], "Env": ["X=1"]}
        and cfg["Author"] == "me"
        and cfg["Parent"] == image_id
    )
    assert len(cfg["RootFS"]["Layers"]) == 4
    hist = store.history(new_id)
    assert (
        hist[0]["CreatedBy"] == "sh"
        and hist[0]["Id"] == new_id
        and hist[0]["Tags"] == ["committed:1"]
    )
    assert (
        hist[1]["Id"] == image_id
        and hist[1]["Tags"] == ["threelayer:test"]
        and hist[1]["CreatedBy"] == "layer 2"
    )
    assert [h["Id"] for h in hist[2:]] == ["<missing>", "<missing>"]
    assert hist[0]["Size"] > 0 and len(hist) == 4

    buf = io.BytesIO()
    store.save(["committed:1"], buf)
    for target in ("overlayfs", "native"):
        other = ImageStore(tmp_path / f"loaded-{target}", snapshotter=target)
        buf.seek(0)
        assert other.load(buf) == ["committed:1"]
        assert other.resolve("committed:1").id == new_id
        assert [str(d) for d in other.resolve("committed:1").diff_ids] == cfg["RootFS"]["Layers"]
        m = mounter.mount(
            other.prepare_container_rootfs(new_id, "check"), tmp_path / f"check-{target}"
        )
        got = describe(m)
        assert {
            k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)
        } == {}
