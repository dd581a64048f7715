"""Content leases: a pull that found a layer "Already exists" keeps it even when `rmi` removes
the only image that used it meanwhile; released, gc (or the next rmi) takes it. Every race is
played deterministically, in one thread, in the order that used to lose the blob."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from skiff.errors import FailedPrecondition
from skiff.images.store import ImageStore
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import Descriptor, Manifest, canonical_json
from skiff.types.reference import parse_reference


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "root")


def _import(store: ImageStore, ref: str) -> Digest:
    """A one-layer image `ref`; returns its layer blob's digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("hello")
        ti.size = 3
        tar.addfile(ti, io.BytesIO(b"hi\n"))
    buf.seek(0)
    rec = store.resolve(store.import_rootfs(buf, ref, []))
    return rec.layers[0].digest


def _manifest_sharing(store: ImageStore, source: str) -> Digest:
    """What a pull of another image with `source`'s layer ingests last: config and manifest."""
    rec = store.resolve(source)
    cfg = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["other"]},
            "rootfs": {"type": "layers", "diff_ids": [str(d) for d in rec.diff_ids]},
        }
    )
    cfg_digest = store.content.ingest(cfg, Digest.of_bytes(cfg))
    data = Manifest(
        Descriptor(mt.OCI_CONFIG, cfg_digest, len(cfg)), rec.layers, mt.OCI_MANIFEST
    ).to_bytes()
    return store.content.ingest(data, Digest.of_bytes(data))


def test_pull_lease_keeps_a_shared_layer_through_rmi(store: ImageStore) -> None:
    layer = _import(store, "a:1")
    with store.lease("pull b:1"):
        assert store.content.has(layer)  # the pull: "Already exists", no download
        manifest = _manifest_sharing(store, "a:1")
        deleted = store.remove("a:1")  # rmi meanwhile
        assert {"Untagged": "a:1"} in deleted
        assert store.content.has(layer), "the leased layer outlives the image that had it"
        with pytest.raises(FailedPrecondition, match="pull b:1"):
            store.content.delete(layer)
        rec = store.create_image(manifest, [parse_reference("b:1")])
        assert rec.layers[0].digest == layer
    assert store.content.leased() == {}
    store.remove("b:1")
    assert not store.content.has(layer), "released: the last image's rmi deletes it"


def test_held_lease_then_gc_after_release(store: ImageStore) -> None:
    layer = _import(store, "a:1")
    lease = store.lease("load")
    try:
        lease.add(layer)
        store.remove("a:1")
        assert store.content.has(layer)
        store.gc(grace_seconds=0)
        assert store.content.has(layer), "gc keeps leased blobs"
    finally:
        lease.release()
    assert str(layer) in store.gc(grace_seconds=0)["Blobs"]
    assert not store.content.has(layer)


def test_lease_of_a_dead_holder_is_dropped(store: ImageStore, tmp_path: Path) -> None:
    layer = _import(store, "a:1")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from skiff.content.store import ContentStore\n"
            "from skiff.types.digest import Digest\n"
            "lease = ContentStore(sys.argv[1]).lease('crashing pull')\n"
            "lease.add(Digest.parse(sys.argv[2]))\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(store.content.root),
            str(layer),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert store.content.leased() == {layer: "crashing pull"}
        store.remove("a:1")
        assert store.content.has(layer)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert store.content.leased() == {}, "a lease nobody holds is stale"
    assert str(layer) in store.gc(grace_seconds=0)["Blobs"]
