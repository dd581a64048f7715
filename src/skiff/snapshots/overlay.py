"""The overlayfs snapshotter: each snapshot is one directory; a snapshot with parents is an
overlay mount whose lower dirs are its parents' directories (nearest first) and whose upper
dir is its own. A committed layer is stored once and shared by every snapshot above it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skiff.snapshots._base import BaseSnapshotter
from skiff.snapshots.snapshotter import Kind
from skiff.types.mount import Mount


def overlay_supported() -> bool:
    """Whether the kernel lists overlay (mounting it is the caller's business)."""
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1:] == ["overlay"] for line in f)
    except OSError:
        return False


class OverlaySnapshotter(BaseSnapshotter):
    name = "overlayfs"
    whiteout_mode = "overlay"

    def _populate(self, directory: Path, parent_dirs: list[Path]) -> None:
        (directory / "fs").mkdir()
        (directory / "work").mkdir()
        os.chmod(directory / "fs", 0o755)

    def _mounts(self, entry: dict[str, Any], parent_dirs: list[Path]) -> list[Mount]:
        fs = self._dir(entry["id"]) / "fs"
        work = self._dir(entry["id"]) / "work"
        readonly = entry["kind"] == Kind.VIEW.value
        if not parent_dirs:
            return [Mount("bind", str(fs), ("ro" if readonly else "rw", "rbind"))]
        if readonly:
            if len(parent_dirs) == 1:
                return [Mount("bind", str(parent_dirs[0]), ("ro", "rbind"))]
            lower = ":".join(str(p) for p in parent_dirs)
            return [Mount("overlay", "overlay", (f"lowerdir={lower}",))]
        lower = ":".join(str(p) for p in parent_dirs)
        return [
            Mount(
                "overlay",
                "overlay",
                ("index=off", f"workdir={work}", f"upperdir={fs}", f"lowerdir={lower}"),
            )
        ]
