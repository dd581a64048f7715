"""SIGKILL a process while it unpacks an image, at random points: no committed snapshot is
half a layer, stale extractions are dropped, the image is registered only when complete, and
loading again finishes the job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from skiff_test_threelayer import describe

from skiff.images.store import ImageStore
from skiff.snapshots import Kind

SCRIPT = r"""
import sys
from pathlib import Path
from skiff.images.store import ImageStore
store = ImageStore(Path(sys.argv[1]), snapshotter=sys.argv[3])
print("ready", flush=True)
with open(sys.argv[2], "rb") as f:
    store.load(f)
"""


@pytest.fixture(scope="module")
def busy_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer image, each layer ~600 files and 8 MB, saved by skiff (gzip layers)."""
    work = tmp_path_factory.mktemp("busy")
    store = ImageStore(work / "src")
    parent = None
    for i in range(3):
        d = work / f"l{i}"
        for j in range(600):
            p = d / f"dir{j % 30}" / f"f{i}-{j}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(os.urandom(64) * (j % 7 + 1))
        (d / f"blob{i}").write_bytes(os.urandom(8 << 20))
        tar = work / f"l{i}.tar.gz"
        subprocess.run(["tar", "-C", str(d), "-czf", str(tar), "."], check=True)
        if parent is None:
            with open(tar, "rb") as f:
                parent = store.import_rootfs(f, "busy:0", [])
        else:
            key = f"c{i}"
            store.prepare_container_rootfs(parent, key)
            subprocess.run(["cp", "-a", f"{d}/.", str(store.snapshots.upper_path(key))], check=True)
            parent = store.commit(
                key, parent, ref=f"busy:{i}", config={}, comment="", author="", changes=[]
            )
    out = work / "busy.tar"
    with open(out, "wb") as f:
        store.save(["busy:2"], f)
    return out


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_sigkill_during_unpack(tmp_path: Path, busy_archive: Path, snapshotter: str) -> None:
    reference = ImageStore(tmp_path / "reference", snapshotter=snapshotter)
    started = time.monotonic()
    with open(busy_archive, "rb") as f:
        reference.load(f)
    duration = time.monotonic() - started
    want_id = reference.resolve("busy:2").id
    want = {
        str(c): describe(reference.snapshots.upper_path(str(c)))
        for c in reference.resolve(want_id).chain_ids
    }

    rng = random.Random(99)
    root = tmp_path / "victim"
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(root), str(busy_archive), snapshotter],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() == b"ready":
                time.sleep(rng.uniform(0.0, duration))
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    kills += 1
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        store = ImageStore(root, snapshotter=snapshotter)  # reopening drops dead extractions
        infos = list(store.snapshots.walk())
        assert all(i.kind == Kind.COMMITTED for i in infos), [i.name for i in infos]
        for info in infos:
            assert describe(store.snapshots.upper_path(info.name)) == want[info.name], (
                f"layer {info.name} is incomplete"
            )
        images = store.list()
        if images:
            rec = store.resolve("busy:2")
            assert rec.id == want_id and all(store.snapshots.stat(str(c)) for c in rec.chain_ids)
    assert kills >= 1
    store = ImageStore(root, snapshotter=snapshotter)
    with open(busy_archive, "rb") as f:
        assert store.load(f) == ["busy:2"]
    rec = store.resolve("busy:2")
    assert {str(c): describe(store.snapshots.upper_path(str(c))) for c in rec.chain_ids} == want
