"""The anchors skiff is measured against, installed from Debian when absent."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

# binary -> Debian package that brings it
ANCHOR_BINARIES: dict[str, str] = {
    "dockerd": "docker.io",
    "containerd": "docker.io",
    "containerd-shim-runc-v2": "docker.io",
    "runc": "runc",
    "podman": "podman",
    "conmon": "podman",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "hyperfine": "hyperfine",
    "tar": "tar",
    "zstd": "zstd",
    "busybox": "busybox-static",
}


def missing_packages(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Debian packages to install so that every anchor binary is on PATH (sorted, unique)."""
    return sorted({pkg for binary, pkg in ANCHOR_BINARIES.items() if which(binary) is None})


def ensure_anchors(log: Callable[[str], None]) -> list[str]:
    """apt-get install -y whatever is missing (apt-get update first if the install fails).
    Returns the packages installed; raises RuntimeError when installation fails."""
    pkgs = missing_packages()
    if not pkgs:
        return []
    log(f"installing anchors from Debian: {' '.join(pkgs)}")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(cmd, env=env).returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(pkgs)} failed")
    return pkgs
