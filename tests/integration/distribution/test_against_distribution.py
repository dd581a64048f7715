"""skiff's registry client against Debian's docker-registry (distribution 2.8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from skiff.content.store import ContentStore
from skiff.distribution import client
from skiff.distribution.credentials import AuthConfig
from skiff.errors import InvalidArgument
from skiff.types.digest import Digest

from .helpers import docker_registry, write_htpasswd

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def local_image(store: ContentStore, layers: list[bytes]) -> Digest:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": str(store.ingest(config, Digest.of_bytes(config))),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": str(store.ingest(x, Digest.of_bytes(x))),
                "size": len(x),
            }
            for x in layers
        ],
    }
    data = json.dumps(doc).encode()
    return store.ingest(data, Digest.of_bytes(data))


def round_trip(host: str, tmp_path: Path, auth: AuthConfig | None) -> None:
    src = ContentStore(tmp_path / "src")
    layers = [os.urandom(2 << 20), os.urandom(70_000)]
    digest = local_image(src, layers)
    msgs: list[dict] = []
    assert (
        client.push(
            f"{host}/skiff/rt:v1", src, digest, OCI_MANIFEST, auth=auth, progress=msgs.append
        )
        == digest
    )
    assert [m["status"] for m in msgs].count("Pushed") == 2
    # Chunked upload (PATCH with Content-Range) and a cross-repository mount.
    client.push(
        f"{host}/skiff/chunked:v1", src, digest, OCI_MANIFEST, auth=auth, chunk_size=1 << 20
    )
    msgs.clear()
    client.push(
        f"{host}/skiff/mounted:v1",
        src,
        digest,
        OCI_MANIFEST,
        auth=auth,
        progress=msgs.append,
        mount_from={str(Digest.of_bytes(x)): ["skiff/rt"] for x in layers},
    )
    assert [m["status"] for m in msgs].count("Mounted from skiff/rt") == 2
    dst = ContentStore(tmp_path / "dst")
    result = client.pull(f"{host}/skiff/chunked:v1", dst, auth=auth)
    assert result.manifest_digest == digest
    for x in layers:
        assert dst.read(Digest.of_bytes(x)) == x


def test_push_pull_against_distribution(tmp_path):
    with docker_registry(tmp_path) as host:
        round_trip(host, tmp_path, None)


def test_push_pull_login_against_distribution_with_htpasswd(tmp_path):
    htpasswd = write_htpasswd(tmp_path / "htpasswd", "carol", "s3cret")
    with docker_registry(tmp_path, htpasswd) as host:
        round_trip(host, tmp_path, AuthConfig(username="carol", password="s3cret"))
        assert client.login(host, "carol", "s3cret")["Status"] == "Login Succeeded"
        with pytest.raises(InvalidArgument, match="incorrect username or password"):
            client.login(host, "carol", "wrong")
        with pytest.raises(InvalidArgument, match="unauthorized"):
            client.pull(f"{host}/skiff/rt:v1", ContentStore(tmp_path / "anon"))
