"""Helpers shared by the distribution integration and e2e tests: registries as subprocesses,
OCI layouts made from a rootfs, htpasswd files."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningRegistry:
    host: str  # host:port
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"


@contextmanager
def skiff_registry(tmp: Path, *extra: str) -> Iterator[RunningRegistry]:
    """`python -m skiff.distribution.server serve` on a free loopback port with a temp root."""
    root = tmp / f"skiffreg-{os.urandom(3).hex()}"
    log = root.with_suffix(".log")
    root.mkdir()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "skiff.distribution.server",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--root",
                str(root / "data"),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=logf,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        m = re.search(r"https?://([\d.]+:\d+)", line)
        if not m:
            raise RuntimeError(f"registry did not start: {line!r} {log.read_text()}")
        yield RunningRegistry(m.group(1), root / "data", proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@contextmanager
def docker_registry(tmp: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """Debian's distribution 2.8 (`docker-registry`) on a free loopback port; yields host:port."""
    exe = shutil.which("docker-registry")
    if exe is None:
        import pytest

        pytest.skip("docker-registry (Debian package docker-registry) is not installed")
    port = free_port()
    root = tmp / f"distribution-{port}"
    root.mkdir()
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {htpasswd}\n"
    cfg = root / "config.yml"
    cfg.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    with open(root / "log", "wb") as logf:
        proc = subprocess.Popen([exe, "serve", str(cfg)], stdout=logf, stderr=logf)
    try:
        wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_htpasswd(path: Path, user: str, password: str) -> Path:
    from skiff.distribution.auth import hash_password

    path.write_text(f"{user}:{hash_password(password, rounds=5)}\n")
    return path


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    h = hashlib.sha256(data).hexdigest()
    p = layout / "blobs" / "sha256" / h
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return {"digest": f"sha256:{h}", "size": len(data)}


def tar_gz_of(rootfs: Path) -> tuple[bytes, str]:
    """(gzipped tar, diff_id) of a directory tree."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for entry in sorted(rootfs.iterdir()):
            tf.add(entry, arcname=entry.name)
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def make_oci_layout(
    layout: Path, layers: list[bytes], *, tag: str = "latest", diff_ids: list[str] | None = None
) -> str:
    """An OCI image layout holding one linux/amd64 image of gzipped `layers`; returns its digest."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    if diff_ids is None:
        diff_ids = [
            "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest() for layer in layers
        ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "skiff test"} for _ in layers],
    }
    cdesc = _blob(layout, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cdesc},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, layer)}
            for layer in layers
        ],
    }
    mdesc = _blob(layout, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **mdesc,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    return str(mdesc["digest"])


def random_gz_layer(size: int, seed: int = 0) -> bytes:
    """A gzipped tar holding one file of `size` incompressible bytes."""
    import random

    data = random.Random(seed).randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo(f"blob{seed}.bin")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=1, mtime=0)
