"""A 125-layer image (Docker's overlay2 stops at 128): its container rootfs is an overlay whose
lowerdir list is far longer than the page mount(2) accepts; ImageStore + mount_all mount it (the
new mount API, one `lowerdir+` per layer) and a process runs in it."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from skiff.images.store import ImageStore
from skiff.linux.mount import mount_all, unmount_all
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import Descriptor, Manifest, canonical_json
from skiff.types.reference import parse_reference

LAYERS = 125


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _ingest(store: ImageStore, data: bytes) -> Digest:
    return store.content.ingest(data, Digest.of_bytes(data))


def test_125_layers_mount_and_run(tmp_path: Path, busybox_rootfs: Path) -> None:
    if not store_supports_overlay(tmp_path):
        pytest.skip("the image store does not use the overlay snapshotter here")
    store = ImageStore(tmp_path / "root")
    base = io.BytesIO()
    with tarfile.open(fileobj=base, mode="w") as tar:
        tar.add(str(busybox_rootfs), arcname=".")
    layers = [base.getvalue()]
    for i in range(1, LAYERS):
        files = {f"layers/{i:03d}": b"%d\n" % i, "top": b"%d\n" % i}
        if i == 5:
            files["gone"] = b"deleted above\n"
        if i == 100:
            files[".wh.gone"] = b""
        layers.append(_layer(files))
    descs = [Descriptor(mt.OCI_LAYER, _ingest(store, data), len(data)) for data in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in descs]},
        "history": [{"created_by": f"layer {i}"} for i in range(LAYERS)],
    }
    cfg = canonical_json(config)
    manifest = Manifest(
        Descriptor(mt.OCI_CONFIG, _ingest(store, cfg), len(cfg)), tuple(descs), mt.OCI_MANIFEST
    )
    rec = store.create_image(_ingest(store, manifest.to_bytes()), [parse_reference("deep:125")])
    assert len(rec.chain_ids) == LAYERS

    mounts = store.prepare_container_rootfs(rec.id, "deep-container")
    data = ",".join(o for m in mounts for o in m.options)
    assert len(data) > os.sysconf("SC_PAGESIZE"), "the test must exceed mount(2)'s limit"
    target = tmp_path / "rootfs"
    target.mkdir()
    mount_all(mounts, str(target))
    try:
        run = subprocess.run(
            [
                "chroot",
                str(target),
                "/bin/sh",
                "-c",
                "ls /layers | wc -l; cat /top; echo x > /w; ls /gone",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.stdout.split() == [str(LAYERS - 1), str(LAYERS - 1)], run
        assert "No such file" in run.stderr, "the whiteout of layer 100 hides /gone"
    finally:
        unmount_all(str(target))
    assert (store.snapshots.upper_path("deep-container") / "w").read_text() == "x\n"
    store.remove_container_rootfs("deep-container")
    store.remove("deep:125")
    assert store.gc()["Snapshots"] == []


def store_supports_overlay(tmp_path: Path) -> bool:
    return ImageStore(tmp_path / "probe").snapshots.whiteout_mode == "overlay"
