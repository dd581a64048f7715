"""A three-layer test image covering every layer feature, built with GNU tar (PAX, xattrs,
sparse) from staged directories, and helpers to mount and describe trees.

Layer 1: files, setuid/setgid bits, relative and absolute symlinks, hard links, char and block
         devices, a fifo, xattrs (text and binary), a sparse file, owners 1000:1000.
Layer 2: deletes (`.wh.` files, a directory), an opaque directory, a file becoming a directory
         and a directory becoming a file, a changed mode, new hard links.
Layer 3: re-adds a deleted file, deletes a symlink, adds into the opaque directory, xattrs.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

from skiff.types.digest import Digest

MTIME = 1_700_000_000


def _w(p: Path, data: bytes | str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    os.lchown(p, *owner)
    os.chmod(p, mode)


def _stage1(d: Path) -> None:
    _w(d / "bin/tool", "#!/bin/sh\necho tool\n", 0o755)
    _w(d / "bin/suid", "suid", 0o4755)
    _w(d / "bin/sgid", "sgid", 0o2755)
    _w(d / "etc/conf", "v1\n")
    os.symlink("conf", d / "etc/link")
    os.symlink("/etc/conf", d / "etc/abs")
    _w(d / "data/hard1", "shared inode\n")
    os.link(d / "data/hard1", d / "data/hard2")
    _w(d / "data/deleteme", "bye\n")
    _w(d / "data/dir-to-delete/x", "x\n")
    _w(d / "opq/a", "a")
    _w(d / "opq/b", "b")
    _w(d / "opq/sub/c", "c")
    (d / "dev").mkdir()
    os.mknod(d / "dev/mychr", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(d / "dev/myblk", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mkfifo(d / "dev/fifo", 0o600)
    _w(d / "xattr/file", "has xattrs", 0o640)
    os.setxattr(d / "xattr/file", "user.foo", b"bar")
    os.setxattr(d / "xattr/file", "user.bin", b"\x00\xff\x01")
    sparse = d / "sparse/big"
    sparse.parent.mkdir()
    with open(sparse, "wb") as f:
        f.truncate(16 << 20)
        f.seek(4096)
        f.write(b"A" * 4096)
        f.seek((16 << 20) - 4096)
        f.write(b"Z" * 4096)
    _w(d / "replace/file-becomes-dir", "file")
    _w(d / "replace/dir-becomes-file/child", "child")
    _w(d / "home/user/owned", "mine", 0o600, (1000, 1000))
    os.lchown(d / "home/user", 1000, 1000)


def _stage2(d: Path) -> None:
    _w(d / "data/.wh.deleteme", "")
    _w(d / "data/.wh.dir-to-delete", "")
    _w(d / "opq/.wh..wh..opq", "")
    _w(d / "opq/new", "new")
    _w(d / "replace/file-becomes-dir/inside", "inside")
    _w(d / "replace/dir-becomes-file", "now a file")
    _w(d / "etc/conf", "v2\n")
    _w(d / "bin/tool", "#!/bin/sh\necho tool v2\n", 0o700)
    _w(d / "newhard/h1", "linked twice")
    os.link(d / "newhard/h1", d / "newhard/h2")


def _stage3(d: Path) -> None:
    _w(d / "data/deleteme", "again\n")
    _w(d / "etc/.wh.abs", "")
    _w(d / "opq/new2", "new2")
    _w(d / "xattr/file2", "more")
    os.setxattr(d / "xattr/file2", "user.x", b"y")


def _fix_times(d: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(d, topdown=False):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(d, (MTIME, MTIME))


def build_layers(work: Path) -> list[Path]:
    """Three uncompressed layer tars under `work` (needs root: devices, owners)."""
    out = []
    for i, stage in enumerate((_stage1, _stage2, _stage3), 1):
        d = work / f"stage{i}"
        d.mkdir(parents=True)
        stage(d)
        _fix_times(d)
        tar = work / f"layer{i}.tar"
        subprocess.run(
            [
                "tar",
                "--format=posix",
                "--xattrs",
                "--xattrs-include=*",
                "--sparse",
                "--numeric-owner",
                "--sort=name",
                "--pax-option=delete=atime,delete=ctime",
                "-C",
                str(d),
                "-cf",
                str(tar),
                ".",
            ],
            check=True,
        )
        out.append(tar)
    return out


def docker_archive(layers: list[Path], dest: Path, tag: str = "threelayer:test") -> Path:
    """An old-style docker-archive (manifest.json + <n>/layer.tar + config) of the layers."""
    diff_ids = [str(Digest.of_bytes(p.read_bytes())) for p in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/tool"]},
        "created": "2024-01-01T00:00:00Z",
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
            for i in range(len(layers))
        ],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cfg_bytes = json.dumps(config).encode()
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    with tarfile.open(dest, "w") as tf:
        names = []
        for i, p in enumerate(layers):
            name = f"l{i}/layer.tar"
            tf.add(p, name)
            names.append(name)
        import io

        ti = tarfile.TarInfo(cfg_name)
        ti.size = len(cfg_bytes)
        tf.addfile(ti, io.BytesIO(cfg_bytes))
        manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]).encode()
        ti = tarfile.TarInfo("manifest.json")
        ti.size = len(manifest)
        tf.addfile(ti, io.BytesIO(manifest))
    return dest


def describe(root: Path) -> dict[str, tuple]:
    """path → (type, mode, uid, gid, size, content sha, link target, rdev, user xattrs, mtime,
    hardlink group) for a tree; hard links are grouped by the first path of their inode."""
    out: dict[str, tuple] = {}
    first_path: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            content = ""
            group = ""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
                group = first_path.setdefault((st.st_dev, st.st_ino), rel)
            xattrs = tuple(
                sorted(
                    (a, os.getxattr(p, a, follow_symlinks=False))
                    for a in os.listxattr(p, follow_symlinks=False)
                    if a.startswith("user.")
                )
            )
            out[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                content,
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else "",
                st.st_rdev if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) else 0,
                xattrs,
                int(st.st_mtime) if not stat.S_ISDIR(st.st_mode) else 0,
                group,
            )
    # a hard link group only counts when two visible paths share the inode
    sizes: dict[str, int] = {}
    for v in out.values():
        if v[10]:
            sizes[v[10]] = sizes.get(v[10], 0) + 1
    return {k: (*v[:10], v[10] if sizes.get(v[10], 0) > 1 else "") for k, v in out.items()}


def mount_overlay_ro(lowers: list[str], target: Path) -> None:
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(lowers), str(target)],
        check=True,
    )


def umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=False)
