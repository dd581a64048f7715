"""Offline base images: a busybox root filesystem from the host's static busybox."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from skiff.errors import FailedPrecondition

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_static_busybox() -> str:
    """Path of the host's static busybox (Debian `busybox-static`)."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            return path
    raise FailedPrecondition("busybox: no static busybox on this host (apt-get install busybox-static)")


def build_busybox_rootfs(dest: Path) -> Path:
    """Lay out a minimal busybox root filesystem at `dest` (created; must not hold files).

    /bin holds busybox and one symlink per applet; /etc has passwd, group and nsswitch so
    users and groups resolve; /dev, /proc, /sys, /tmp, /root exist as mount points.
    """
    busybox = find_static_busybox()
    dest.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "home", "var", "usr/bin", "usr/sbin", "sbin", "run"):
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
