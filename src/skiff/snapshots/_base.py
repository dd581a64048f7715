"""What the snapshotters share: the metadata file and the directory per snapshot.

Layout under `root`:
  metadata.json            {key: {id, kind, parent, created, updated, labels, size, inodes}}
  snapshots/<id>/fs        the snapshot's files (overlay: its upper dir)
  snapshots/<id>/work      overlay work dir (overlay only)
  lock                     flock(2)ed around every read-modify-write of metadata.json

metadata.json is replaced by temp → fsync → rename, so a crash leaves the old or the new
state. Directories are created before their metadata entry and removed after it, so a crash
can leave only an unreferenced directory, which `cleanup()` removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skiff.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from skiff.snapshots.snapshotter import Info, Kind, Usage
from skiff.types.mount import Mount


def disk_usage(path: Path) -> Usage:
    """Apparent size of everything but directories, and inodes, under `path`, counting hard
    links once (what Docker reports as a layer's size)."""
    seen: set[tuple[int, int]] = set()
    size = inodes = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            inodes += 1
            if not stat.S_ISDIR(st.st_mode):
                size += st.st_size
    return Usage(size, inodes)


class BaseSnapshotter:
    name = "base"
    whiteout_mode = "delete"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        (self.root / "snapshots").mkdir(parents=True, exist_ok=True)
        self._tlock = threading.RLock()
        self.cleanup()

    # metadata
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with self._tlock:
            fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield self._load()
            finally:
                os.close(fd)

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.root / "metadata.json").read_text())
        except FileNotFoundError:
            data = {"next_id": 1, "snapshots": {}}
        return data

    def _save(self, meta: dict[str, Any]) -> None:
        tmp = self.root / f"metadata.json.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "metadata.json")
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _dir(self, snap_id: str) -> Path:
        return self.root / "snapshots" / snap_id

    def _get(self, meta: dict[str, Any], key: str) -> dict[str, Any]:
        entry = meta["snapshots"].get(key)
        if entry is None:
            raise NotFound(f"snapshot {key!r}: not found")
        return entry  # type: ignore[no-any-return]

    def _chain(self, meta: dict[str, Any], key: str) -> list[dict[str, Any]]:
        """The entry for `key` and its ancestors, nearest first."""
        out = []
        cur = key
        while cur:
            entry = self._get(meta, cur)
            out.append(entry)
            cur = entry["parent"]
        return out

    # hooks for implementations
    def _populate(self, directory: Path, parent_dirs: list[Path]) -> None:
        (directory / "fs").mkdir()

    def _mounts(self, entry: dict[str, Any], parent_dirs: list[Path]) -> list[Mount]:
        raise NotImplementedError

    # protocol
    def _create(
        self, key: str, parent: str, kind: Kind, labels: dict[str, str] | None
    ) -> list[Mount]:
        if not key:
            raise InvalidArgument("snapshot: empty key")
        with self._locked() as meta:
            if key in meta["snapshots"]:
                raise AlreadyExists(f"snapshot {key!r}: already exists")
            parent_dirs: list[Path] = []
            if parent:
                p = self._get(meta, parent)
                if p["kind"] != Kind.COMMITTED.value:
                    raise FailedPrecondition(
                        f"snapshot {key!r}: parent {parent!r} is not committed"
                    )
                parent_dirs = [self._dir(e["id"]) / "fs" for e in self._chain(meta, parent)]
            snap_id = str(meta["next_id"])
            meta["next_id"] += 1
            d = self._dir(snap_id)
            if d.exists():
                shutil.rmtree(d)
            # a unique name: a copy left running by a killed process (native's `cp -a`) may still
            # be writing into an older one; cleanup() removes those
            tmp = self.root / "snapshots" / f"new-{snap_id}-{os.urandom(4).hex()}"
            tmp.mkdir()
            try:
                self._populate(tmp, parent_dirs)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            os.rename(tmp, d)
            now = time.time()
            entry = {
                "id": snap_id,
                "kind": kind.value,
                "parent": parent,
                "created": now,
                "updated": now,
                "labels": dict(labels or {}),
            }
            meta["snapshots"][key] = entry
            self._save(meta)
            return self._mounts(entry, parent_dirs)

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        return self._create(key, parent, Kind.ACTIVE, labels)

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(key, parent, Kind.VIEW, labels)

    def mounts(self, key: str) -> list[Mount]:
        with self._locked() as meta:
            entry = self._get(meta, key)
            if entry["kind"] == Kind.COMMITTED.value:
                raise FailedPrecondition(f"snapshot {key!r}: committed snapshots cannot be mounted")
            parent_dirs = (
                [self._dir(e["id"]) / "fs" for e in self._chain(meta, entry["parent"])]
                if entry["parent"]
                else []
            )
            return self._mounts(entry, parent_dirs)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        with self._locked() as meta:
            entry = self._get(meta, key)
            if entry["kind"] != Kind.ACTIVE.value:
                raise FailedPrecondition(
                    f"snapshot {key!r}: only active snapshots can be committed (it is {entry['kind']})"
                )
            if name in meta["snapshots"]:
                raise AlreadyExists(f"snapshot {name!r}: already exists")
            usage = disk_usage(self._dir(entry["id"]) / "fs")
            work = self._dir(entry["id"]) / "work"
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir()
            del meta["snapshots"][key]
            entry.update(
                kind=Kind.COMMITTED.value,
                updated=time.time(),
                size=usage.size,
                inodes=usage.inodes,
                labels={**entry.get("labels", {}), **(labels or {})},
            )
            meta["snapshots"][name] = entry
            self._save(meta)

    def remove(self, key: str) -> None:
        with self._locked() as meta:
            entry = self._get(meta, key)
            children = [k for k, e in meta["snapshots"].items() if e["parent"] == key]
            if children:
                raise FailedPrecondition(
                    f"snapshot {key!r}: cannot remove, it is the parent of {len(children)} snapshot(s) ({children[0]!r})"
                )
            del meta["snapshots"][key]
            self._save(meta)
            self._rmtree(self._dir(entry["id"]))

    def _rmtree(self, d: Path) -> None:
        if not d.exists():
            return
        trash = self.root / "snapshots" / f"rm-{d.name}-{time.monotonic_ns()}"
        os.rename(d, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _info(self, key: str, e: dict[str, Any]) -> Info:
        return Info(
            key, Kind(e["kind"]), e["parent"], e["created"], e["updated"], dict(e.get("labels", {}))
        )

    def stat(self, key: str) -> Info:
        with self._locked() as meta:
            return self._info(key, self._get(meta, key))

    def walk(self) -> Iterator[Info]:
        with self._locked() as meta:
            infos = [self._info(k, e) for k, e in meta["snapshots"].items()]
        yield from infos

    def usage(self, key: str) -> Usage:
        with self._locked() as meta:
            e = self._get(meta, key)
        if e["kind"] == Kind.COMMITTED.value and "size" in e:
            return Usage(e["size"], e["inodes"])
        return disk_usage(self._dir(e["id"]) / "fs")

    def upper_path(self, key: str) -> Path:
        """The directory holding this snapshot's own files (write a layer here)."""
        with self._locked() as meta:
            return self._dir(self._get(meta, key)["id"]) / "fs"

    def lower_paths(self, key: str) -> list[Path]:
        """The `fs` directories of the parents of `key`, nearest first."""
        with self._locked() as meta:
            e = self._get(meta, key)
            if not e["parent"]:
                return []
            return [self._dir(x["id"]) / "fs" for x in self._chain(meta, e["parent"])]

    def cleanup(self) -> list[str]:
        """Remove directories no snapshot refers to (left by a crash). Returns their names."""
        removed = []
        with self._locked() as meta:
            ids = {e["id"] for e in meta["snapshots"].values()}
            for d in (self.root / "snapshots").iterdir():
                if d.name not in ids:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(d.name)
            for tmp in self.root.glob("metadata.json.*.tmp"):
                tmp.unlink(missing_ok=True)
        return removed
