"""Parent images in the store, without a daemon: `commit` records the container's image as the
new image's parent; a parent with children cannot be deleted by id, loses only its tag by name,
and goes with its last child on prune — Docker's rules for intermediate images."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from skiff.errors import Conflict
from skiff.images.store import ImageStore


def _import(store: ImageStore, ref: str) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("base")
        ti.size = 2
        tar.addfile(ti, io.BytesIO(b"b\n"))
    buf.seek(0)
    return store.import_rootfs(buf, ref, [])


def _commit_child(store: ImageStore, parent: str, key: str) -> str:
    store.prepare_container_rootfs(parent, key)
    (store.snapshots.upper_path(key) / key).write_text(key)
    try:
        return store.commit(key, parent, ref=None, config={}, comment="", author="", changes=[])
    finally:
        store.remove_container_rootfs(key)


def test_parent_chain_rules(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    base = _import(store, "base:1")
    child = _commit_child(store, base, "c1")
    grandchild = _commit_child(store, child, "c2")
    assert store.inspect(grandchild)["Parent"] == child
    assert store.inspect(child)["Parent"] == base
    assert store.parent_ids() == {base, child}

    with pytest.raises(Conflict, match="dependent child images"):
        store.remove(child, force=True)
    assert store.remove("base:1") == [{"Untagged": "base:1"}], "a parent keeps its image"
    assert base in {r.id for r in store.list()}

    # prune: the dangling head goes with its parent chain, unless a container uses it.
    result = store.prune(dangling_only=True, in_use=lambda i: i == grandchild)
    assert result["ImagesDeleted"] is None, "the head is in use: its parents stay"
    result = store.prune(dangling_only=True)
    deleted = [
        d["Deleted"]
        for d in result["ImagesDeleted"]
        if d["Deleted"].startswith("sha256:") and d["Deleted"] in (base, child, grandchild)
    ]
    assert deleted == [grandchild, child, base]
    assert store.list() == []
    assert store.gc(grace_seconds=0)["Snapshots"] == []


def test_prune_all_takes_tagged_parents_after_their_children(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    base = _import(store, "base:1")
    child = _commit_child(store, base, "c1")
    assert store.prune(dangling_only=True)["ImagesDeleted"] is not None  # the child only
    assert [r.id for r in store.list()] == [base]
    child = _commit_child(store, base, "c1")
    result = store.prune(dangling_only=False)
    assert {"Untagged": "base:1"} in result["ImagesDeleted"]
    ids = [d["Deleted"] for d in result["ImagesDeleted"] if d.get("Deleted") in (base, child)]
    assert ids == [child, base]
    assert store.list() == []
