"""A 125-layer image (Docker's overlay2 allows 128) loaded and run with the docker CLI, against
Debian's dockerd and skiffd alike: the container sees every layer, in order, whiteouts applied."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

LAYERS = 125


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _docker_archive(path: Path, busybox_tar: Path, tag: str) -> None:
    layers = [busybox_tar.read_bytes()]
    for i in range(1, LAYERS):
        files = {f"layers/{i:03d}": b"%d\n" % i, "top": b"%d\n" % i}
        if i == 5:
            files["gone"] = b"deleted above\n"
        if i == 100:
            files[".wh.gone"] = b""
        layers.append(_tar(files))
    diff_ids = ["sha256:" + hashlib.sha256(data).hexdigest() for data in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"layer {i}"} for i in range(LAYERS)],
        }
    ).encode()
    manifest = [
        {
            "Config": "config.json",
            "RepoTags": [tag],
            "Layers": [f"{i:03d}/layer.tar" for i in range(LAYERS)],
        }
    ]
    with tarfile.open(path, "w") as out:
        entries = {"config.json": config, "manifest.json": json.dumps(manifest).encode()}
        entries.update({f"{i:03d}/layer.tar": data for i, data in enumerate(layers)})
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            out.addfile(ti, io.BytesIO(data))


def test_125_layer_image_runs(daemon: Any, busybox_tar: Path, tmp_path: Path, name: str) -> None:
    archive = tmp_path / "deep.tar"
    tag = f"{name}:deep"
    _docker_archive(archive, busybox_tar, tag)
    r = daemon.docker("load", "-i", str(archive), timeout=300)
    assert r.code == 0, r.err
    try:
        r = daemon.docker(
            "run",
            "--rm",
            tag,
            "sh",
            "-c",
            "ls /layers | wc -l; cat /top; ls /gone 2>&1; echo rc=$?",
        )
        assert r.code == 0, r.err
        lines = r.out.split("\n")
        assert [lines[0].strip(), lines[1]] == [str(LAYERS - 1), str(LAYERS - 1)], r.out
        assert "No such file" in lines[2] and lines[3] == "rc=1", r.out
        layers = json.loads(daemon.docker("image", "inspect", tag).out)[0]["RootFS"]["Layers"]
        assert len(layers) == LAYERS
    finally:
        daemon.docker("rmi", "-f", tag)
