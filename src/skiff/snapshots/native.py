"""The native snapshotter: every snapshot is a full copy of its parent (`cp -a`, reflinks where
the filesystem has them), returned as a bind mount. For filesystems where overlay is not
available; layers are applied by deleting whited-out files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from skiff.errors import Internal
from skiff.snapshots._base import BaseSnapshotter
from skiff.snapshots.snapshotter import Kind
from skiff.types.mount import Mount


class NativeSnapshotter(BaseSnapshotter):
    name = "native"
    whiteout_mode = "delete"

    def _populate(self, directory: Path, parent_dirs: list[Path]) -> None:
        fs = directory / "fs"
        if not parent_dirs:
            fs.mkdir(mode=0o755)
            return
        r = subprocess.run(
            ["cp", "-a", "--reflink=auto", "-T", str(parent_dirs[0]), str(fs)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            raise Internal(f"native snapshot: copy {parent_dirs[0]} → {fs}: {r.stderr.strip()}")

    def _mounts(self, entry: dict[str, Any], parent_dirs: list[Path]) -> list[Mount]:
        fs = self._dir(entry["id"]) / "fs"
        readonly = entry["kind"] == Kind.VIEW.value
        return [Mount("bind", str(fs), ("ro" if readonly else "rw", "rbind"))]

    def lower_paths(self, key: str) -> list[Path]:
        # Each native snapshot is complete; its parent is the one tree it was copied from.
        return super().lower_paths(key)[:1]
