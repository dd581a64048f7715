"""Snapshotters (overlay, native copy). They return mounts and never mount anything themselves.

`snapshotter.py` defines the protocol and its vocabulary; `overlay.py` and `native.py`
implement it; `new_snapshotter` is the one place that lists what is wired in.
"""

from __future__ import annotations

from pathlib import Path

from skiff.errors import InvalidArgument
from skiff.snapshots.native import NativeSnapshotter
from skiff.snapshots.overlay import OverlaySnapshotter, overlay_supported
from skiff.snapshots.snapshotter import Info, Kind, Snapshotter, Usage

SNAPSHOTTERS = ("overlayfs", "native")


def new_snapshotter(name: str, root: Path) -> OverlaySnapshotter | NativeSnapshotter:
    """The snapshotter called `name` ("overlayfs" or "native") storing under `root`."""
    if name in ("overlayfs", "overlay", "overlay2"):
        return OverlaySnapshotter(root)
    if name in ("native", "vfs"):
        return NativeSnapshotter(root)
    raise InvalidArgument(f"snapshotter {name!r}: unknown (known: {', '.join(SNAPSHOTTERS)})")


__all__ = [
    "Info",
    "Kind",
    "NativeSnapshotter",
    "OverlaySnapshotter",
    "Snapshotter",
    "Usage",
    "new_snapshotter",
    "overlay_supported",
]
