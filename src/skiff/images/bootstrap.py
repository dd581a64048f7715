"""Offline base images: a busybox root filesystem from the host's static busybox, and the
busybox / Debian (debootstrap) images built from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from skiff.errors import FailedPrecondition, Unavailable

if TYPE_CHECKING:
    from skiff.images.store import ImageStore

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_static_busybox() -> str:
    """Path of the host's static busybox (Debian `busybox-static`)."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            return path
    raise FailedPrecondition(
        "busybox: no static busybox on this host (apt-get install busybox-static)"
    )


def build_busybox_rootfs(dest: Path) -> Path:
    """Lay out a minimal busybox root filesystem at `dest` (created; must not hold files).

    /bin holds busybox and one symlink per applet; /etc has passwd, group and nsswitch so
    users and groups resolve; /dev, /proc, /sys, /tmp, /root exist as mount points.
    """
    busybox = find_static_busybox()
    dest.mkdir(parents=True, exist_ok=True)
    for d in (
        "bin",
        "dev",
        "etc",
        "proc",
        "sys",
        "tmp",
        "root",
        "home",
        "var",
        "usr/bin",
        "usr/sbin",
        "sbin",
        "run",
    ):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    os.chmod(dest / "root", 0o700)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = subprocess.run(
        [busybox, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = dest / applet
        if applet == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "bin:x:2:2:bin:/bin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (dest / "etc" / "group").write_text(
        "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n"
        "wheel:x:10:root\nusers:x:100:\nnogroup:x:65534:\n"
    )
    (dest / "etc" / "nsswitch.conf").write_text("hosts: files dns\npasswd: files\ngroup: files\n")
    return dest


# ---------------------------------------------------------------- base images


def _deterministic_tar(rootfs: Path, out: BinaryIO, mtime: int) -> None:
    """`rootfs` as a layer tar with every mtime set to `mtime`, so the same host busybox
    always gives the same image id."""
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(rootfs, (mtime, mtime))
    from skiff.images.layer import tree_to_tar

    tree_to_tar(rootfs, out)


def _import_tree(
    store: ImageStore, rootfs: Path, ref: str, changes: list[str], comment: str, mtime: int
) -> str:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    with tempfile.TemporaryFile(dir=store.tmp) as tmp:
        _deterministic_tar(rootfs, tmp, mtime)
        tmp.seek(0)
        return store.import_rootfs(tmp, ref, changes, comment, created=created)


def bootstrap_busybox(store: ImageStore, ref: str = "busybox:latest") -> str:
    """A busybox image from the host's static busybox, with no network. Returns its id."""
    mtime = int(os.stat(find_static_busybox()).st_mtime)
    with tempfile.TemporaryDirectory(dir=store.tmp) as tmpdir:
        rootfs = build_busybox_rootfs(Path(tmpdir) / "rootfs")
        return _import_tree(
            store,
            rootfs,
            ref,
            ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["sh"]'],
            "skiff image bootstrap busybox",
            mtime,
        )


DEBIAN_MIRROR = "http://deb.debian.org/debian"


def bootstrap_debian(
    store: ImageStore, suite: str = "bookworm", ref: str | None = None, mirror: str = DEBIAN_MIRROR
) -> str:
    """A Debian image built with `debootstrap --variant=minbase`. Needs the mirror reachable;
    raises Unavailable (with debootstrap's own words) when it is not."""
    if shutil.which("debootstrap") is None:
        raise FailedPrecondition(
            "bootstrap debian: debootstrap is not installed (apt-get install debootstrap)"
        )
    with tempfile.TemporaryDirectory(dir=store.tmp) as tmpdir:
        rootfs = Path(tmpdir) / "rootfs"
        r = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(rootfs), mirror],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise Unavailable(
                f"bootstrap debian {suite}: debootstrap from {mirror} failed: {' / '.join(tail)}"
            )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            d = rootfs / cache
            if d.is_dir():
                for entry in d.iterdir():
                    if entry.is_file():
                        entry.unlink()
        mtime = int(time.time())
        return _import_tree(
            store,
            rootfs,
            ref or f"debian:{suite}",
            [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                'CMD ["bash"]',
            ],
            f"skiff image bootstrap debian {suite}",
            mtime,
        )
