"""The snapshotter protocol, after containerd's.

Vocabulary:
  key        the name of an *active* or *view* snapshot, chosen by the caller.
  name       the name of a *committed* snapshot (for image layers: the layer's chain id).
  parent     the committed snapshot a new one starts from ("" = empty).
  active     writable; created by `prepare`; becomes committed by `commit(name, key)`.
  view       read-only active snapshot made by `view`; cannot be committed.
  committed  immutable; may be a parent; removable only once it has no children.

Importing a layer: `prepare("extract-<random> <chainid>", parent_chainid)` → mounts; apply the
layer into them; `commit(chainid, key)`. Until that commit nobody can use the layer, so a crash
mid-unpack leaves only an active snapshot that is cleaned up, never a half layer.

Running a container: `prepare(container_key, top_chainid)` → mounts for its rootfs; the runtime
mounts them. `remove(container_key)` when the container goes.

Snapshotters never mount anything: they return `Mount` values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from skiff.types.mount import Mount


class Kind(enum.Enum):
    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class Info:
    name: str
    kind: Kind
    parent: str = ""
    created: float = 0.0
    updated: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    size: int
    inodes: int


class Snapshotter(Protocol):
    name: str
    #: how layers are applied into `upper_path`: "overlay" (whiteouts as char 0/0 devices and
    #: opaque xattrs) or "delete" (whiteouts remove files from a full copy).
    whiteout_mode: str

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]: ...
    def view(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]: ...
    def mounts(self, key: str) -> list[Mount]: ...
    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None: ...
    def remove(self, key: str) -> None: ...
    def stat(self, key: str) -> Info: ...
    def walk(self) -> Iterator[Info]: ...
    def usage(self, key: str) -> Usage: ...
    def upper_path(self, key: str) -> Path: ...
    def lower_paths(self, key: str) -> list[Path]: ...
    def cleanup(self) -> list[str]: ...
